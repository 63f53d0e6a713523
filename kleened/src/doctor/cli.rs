//! `kleened doctor [--fix]`: the examination with the daemon's clients made from its
//! configuration, printed as text. Exit status 0 when every finding is ok, 1 when there are
//! warnings or problems, 2 when the doctor itself could not run.
//!
//! While a daemon runs on the root (it holds `.kleened.lock` in the root's mountpoint) the checks
//! only read, and `--fix` is refused: the running daemon fixes its own host (`klee doctor
//! --fix`). Otherwise the doctor holds that lock while it works, so no daemon starts under it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use kleene_runner::{Runner, SystemRunner};
use zfs::{RetryPolicy, Zfs, ZfsPrograms};

use super::gather::{examine, Clients, StoreSource};
use super::Settings;
use crate::config::{Config, TargetOs};
use crate::layout::Layout;
use crate::platform::NetworkHost;
use crate::store::Store;

/// Exit status: the doctor could not run.
const CANNOT_RUN: u8 = 2;

/// Runs `kleened doctor`.
pub fn main(config_path: &Path, fix: bool) -> ExitCode {
    match run(config_path, fix) {
        Ok(report) => {
            print!("{}", report.to_text());
            if report.healthy {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(message) => {
            eprintln!("kleened: {message}");
            ExitCode::from(CANNOT_RUN)
        }
    }
}

fn run(config_path: &Path, fix: bool) -> Result<kleene_api::DoctorReport, String> {
    let os = TargetOs::current();
    let config = Config::load(config_path, os).map_err(|e| e.to_string())?;
    let layout = Layout::new(&config.kleene_root)
        .map_err(|e| format!("invalid value for 'kleene_root': {e}"))?;
    let settings = Settings::from_config(&config);
    let runner: Arc<dyn Runner> = Arc::new(SystemRunner::new());
    let zfs = Arc::new(
        Zfs::new(Arc::clone(&runner))
            .with_programs(ZfsPrograms::host_default())
            .with_retry(RetryPolicy {
                attempts: 9,
                initial_delay: std::time::Duration::from_millis(5),
            }),
    );
    // A root that is missing or unmounted has no daemon; its finding says so.
    let mountpoint = zfs.mountpoint(&layout.root).ok().flatten();
    let lock = match &mountpoint {
        Some(mountpoint) => RootLock::try_take(mountpoint)?,
        None => RootLock::Free { _file: None },
    };
    let daemon_running = matches!(lock, RootLock::Held);
    if daemon_running && fix {
        return Err(format!(
            "kleened is running on kleene_root '{}' (its .kleened.lock is held): stop it before \
             `kleened doctor --fix`, or let the running daemon fix its host with `klee doctor \
             --fix`",
            config.kleene_root
        ));
    }
    let store_path = settings
        .metadata_path
        .clone()
        .or_else(|| mountpoint.as_ref().map(|m| m.join("metadata.sqlite")));
    let store = match &store_path {
        Some(path) if path.exists() => Store::open(path).map(Some).map_err(|e| e.to_string()),
        _ => Ok(None),
    };
    let containers = zfs
        .mountpoint(&layout.containers)
        .ok()
        .flatten()
        .or_else(|| mountpoint.as_ref().map(|m| m.join("container")))
        .unwrap_or_else(|| PathBuf::from("/nonexistent"));
    let (network, runtime) = platform(&config, &settings, &runner, &containers);
    let clients = Arc::new(Clients {
        zfs,
        layout,
        settings,
        runner,
        network,
        runtime,
    });
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let report = tokio.block_on(examine(
        clients,
        StoreSource {
            store,
            path: store_path,
        },
        daemon_running,
        vec![],
        fix,
    ));
    drop(lock);
    Ok(report)
}

type Platform = (
    Option<Arc<dyn NetworkHost>>,
    Option<Arc<dyn crate::platform::Runtime>>,
);

/// Linux: the daemon's network host; which containers run is read from the cgroups (making
/// the namespace runtime would make its cgroup parent).
#[cfg(target_os = "linux")]
fn platform(
    config: &Config,
    settings: &Settings,
    runner: &Arc<dyn Runner>,
    _containers: &Path,
) -> Platform {
    let network = crate::platform::linux::net::LinuxNetwork::new(
        Arc::clone(runner),
        &config.nft_table,
        &settings.marker,
    );
    (Some(Arc::new(network)), None)
}

/// FreeBSD: the daemon's network host (pf) and the jail runtime, which knows the running jails.
#[cfg(not(target_os = "linux"))]
fn platform(
    config: &Config,
    settings: &Settings,
    runner: &Arc<dyn Runner>,
    containers: &Path,
) -> Platform {
    let runtime = crate::platform::freebsd::JailRuntime::new(
        Arc::clone(runner),
        containers.display().to_string(),
    )
    .with_interface_marker(&settings.marker);
    let network: Option<Arc<dyn NetworkHost>> = match (
        config.pf_config_path.clone(),
        config.pf_config_template_path.clone(),
    ) {
        (Some(conf), Some(template)) => {
            Some(Arc::new(crate::platform::freebsd::net::PfNetwork::new(
                Arc::clone(runner),
                conf,
                template,
                &settings.marker,
            )))
        }
        _ => None,
    };
    (network, Some(Arc::new(runtime)))
}

/// The daemon's lock on its root, as `daemon.rs` takes it.
enum RootLock {
    /// A daemon holds it.
    Held,
    /// Nobody did; the doctor holds it now (when the file exists: the daemon makes it).
    Free {
        /// The locked file, unlocked when dropped.
        _file: Option<std::fs::File>,
    },
}

impl RootLock {
    fn try_take(mountpoint: &Path) -> Result<RootLock, String> {
        let path = mountpoint.join(".kleened.lock");
        let file = match std::fs::OpenOptions::new().write(true).open(&path) {
            Ok(file) => file,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Ok(RootLock::Free { _file: None })
            }
            Err(err) => return Err(format!("cannot open {}: {err}", path.display())),
        };
        match file.try_lock() {
            Ok(()) => Ok(RootLock::Free { _file: Some(file) }),
            Err(std::fs::TryLockError::WouldBlock) => Ok(RootLock::Held),
            Err(std::fs::TryLockError::Error(err)) => {
                Err(format!("cannot lock {}: {err}", path.display()))
            }
        }
    }
}
