//! The daemon's lifetime: pidfile, store, listeners, serving until a signal, and an orderly exit.

use std::path::{Path, PathBuf};

use anyhow::Context;
use tokio::sync::watch;

use std::sync::Arc;

use kleene_runner::{Runner, SystemRunner};
use zfs::{RetryPolicy, Zfs, ZfsPrograms};

use crate::config::{Config, TargetOs};
use crate::engine::{Engine, EngineParts};
use crate::layout::Layout;
use crate::platform::Host;
use crate::server;
use crate::store::Store;

/// Runs the daemon until SIGTERM or SIGINT. Returns an error (and leaves nothing behind) when it
/// cannot start.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let pidfile = Pidfile::create(&config.pidfile)?;
    let os = TargetOs::current();
    let runner: Arc<dyn Runner> = Arc::new(SystemRunner::new());
    let layout = Layout::new(&config.kleene_root).context("invalid value for 'kleene_root'")?;
    // zfs-fuse answers "dataset is busy" for some milliseconds after clones and unmounts: up to
    // about 1.3 s of retries (5 ms doubling), short enough for a request.
    let zfs = Zfs::new(runner.clone())
        .with_programs(ZfsPrograms::host_default())
        .with_retry(RetryPolicy {
            attempts: 9,
            initial_delay: std::time::Duration::from_millis(5),
        });
    // The store lives in the root dataset by default, so storage is checked first.
    let store_path = config.metadata_path.clone();
    let reservation = config.storage.root_reservation;
    let (zfs, store, containers_mountpoint, root_mountpoint, root_lock) =
        tokio::task::spawn_blocking({
            let layout = layout.clone();
            move || -> anyhow::Result<(Zfs, Store, PathBuf, PathBuf, std::fs::File)> {
                let root_mountpoint = layout.prepare(&zfs)?;
                // Not fatal: the daemon still serves on a pool too full to give it; the log says why.
                if let Err(err) = layout.reserve(&zfs, reservation) {
                    tracing::warn!(error = %err, "a full pool may stop the metadata database");
                }
                let lock = lock_root(&root_mountpoint, layout.root.as_str())?;
                let containers = zfs
                    .mountpoint(&layout.containers)?
                    .unwrap_or_else(|| root_mountpoint.join("container"));
                let path = store_path.unwrap_or_else(|| root_mountpoint.join("metadata.sqlite"));
                Ok((zfs, Store::open(&path)?, containers, root_mountpoint, lock))
            }
        })
        .await??;
    // Bound before the runtime makes anything on the host, so a bad address leaves nothing behind.
    let listeners = server::listen::bind_all(&config.listeners).await?;
    let platform = platform(&config, runner.clone(), &containers_mountpoint)?;
    let engine = Engine::new(EngineParts {
        store,
        zfs,
        layout,
        host: Host::new(runner, os),
        runtime: platform.runtime,
        network: platform.network,
        containers_mountpoint: Some(containers_mountpoint),
        root_mountpoint: Some(root_mountpoint),
        logs: config.container_logs.clone(),
        storage: config.storage,
    })?;
    engine.set_doctor_settings(crate::doctor::Settings::from_config(&config));
    engine.startup().await?;

    let (stop, stopped) = watch::channel(false);
    let serving = tokio::spawn(server::listen::serve_all(
        listeners,
        server::routes(engine.clone()),
        stopped,
        config.shutdown_timeout,
    ));
    tracing::info!(pid = std::process::id(), "kleened is ready");

    let signal = wait_for_signal().await?;
    tracing::info!(signal, "shutting down");
    stop.send_replace(true);
    serving.await.context("listeners failed")?;
    engine.shutdown(config.shutdown_timeout).await;
    drop(root_lock);
    drop(pidfile);
    tracing::info!("stopped");
    Ok(())
}

/// The platform's container runtime and host networking: namespaces, veth pairs, bridges and
/// nftables on Linux.
#[cfg(target_os = "linux")]
fn platform(
    config: &Config,
    runner: Arc<dyn Runner>,
    _containers: &Path,
) -> anyhow::Result<Platform> {
    use crate::config::CgroupHierarchy;
    use crate::platform::linux::cgroup::Version;
    use crate::platform::linux::net::LinuxNetwork;
    let helper = std::env::current_exe().context("cannot find the daemon's own binary")?;
    let hierarchy = config.cgroup_hierarchy.map(|h| match h {
        CgroupHierarchy::V2 => Version::V2,
        CgroupHierarchy::V1Pids => Version::V1Pids,
    });
    let network = Arc::new(LinuxNetwork::new(
        runner,
        &config.nft_table,
        &format!("kleened:{}", config.kleene_root),
    ));
    let runtime = crate::platform::linux::NamespaceRuntime::new(
        helper,
        &config.cgroup_parent,
        hierarchy,
        Arc::clone(&network),
    )?;
    Ok(Platform {
        runtime: Some(Arc::new(runtime)),
        network: Some(network),
    })
}

/// The platform's container runtime and host networking: jails, epairs, bridges and pf on
/// FreeBSD. Interfaces the daemon makes (networks' bridges, the epairs of vnet containers) carry
/// its identity as their description.
#[cfg(not(target_os = "linux"))]
fn platform(
    config: &Config,
    runner: Arc<dyn Runner>,
    containers: &Path,
) -> anyhow::Result<Platform> {
    use crate::platform::freebsd::net::PfNetwork;
    let marker = format!("kleened:{}", config.kleene_root);
    let (Some(pf_conf), Some(template)) = (
        config.pf_config_path.clone(),
        config.pf_config_template_path.clone(),
    ) else {
        anyhow::bail!("pf_config_path and pf_config_template_path must be set on FreeBSD");
    };
    let network = Arc::new(PfNetwork::new(
        Arc::clone(&runner),
        pf_conf,
        template,
        &marker,
    ));
    let runtime =
        crate::platform::freebsd::JailRuntime::new(runner, containers.display().to_string())
            .with_interface_marker(&marker);
    Ok(Platform {
        runtime: Some(Arc::new(runtime)),
        network: Some(network),
    })
}

/// What the platform gives the engine.
struct Platform {
    runtime: Option<Arc<dyn crate::platform::Runtime>>,
    network: Option<Arc<dyn crate::platform::NetworkHost>>,
}

async fn wait_for_signal() -> anyhow::Result<&'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}

/// Locks `kleene_root` for this daemon (flock(2) of `.kleened.lock` in its mountpoint): two
/// daemons on one root would destroy each other's datasets. A lock left by a crash goes with the
/// process that held it.
fn lock_root(mountpoint: &Path, root: &str) -> anyhow::Result<std::fs::File> {
    let path = mountpoint.join(".kleened.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    if let Err(err) = file.try_lock() {
        anyhow::bail!(
            "another kleened uses kleene_root '{root}' ({} is locked: {err}); one daemon per root",
            path.display()
        );
    }
    Ok(file)
}

/// The pidfile, locked while the daemon runs and removed when dropped. The lock (flock(2), on FreeBSD
/// and Linux alike) is what tells a second daemon that the first one still runs; a pidfile left by a
/// crash is not locked and is simply taken over.
#[derive(Debug)]
struct Pidfile {
    path: PathBuf,
    _locked: std::fs::File,
}

impl Pidfile {
    fn create(path: &Path) -> anyhow::Result<Pidfile> {
        use std::io::{Read, Seek, Write};
        let context = || format!("cannot write pidfile {} (key 'pidfile')", path.display());
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .with_context(context)?;
        if let Err(err) = file.try_lock() {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            anyhow::bail!(
                "kleened seems to run already: pidfile {} is locked by pid {} ({err})",
                path.display(),
                holder.trim()
            );
        }
        file.set_len(0).with_context(context)?;
        file.rewind().with_context(context)?;
        writeln!(file, "{}", std::process::id()).with_context(context)?;
        Ok(Pidfile {
            path: path.to_owned(),
            _locked: file,
        })
    }
}

impl Drop for Pidfile {
    fn drop(&mut self) {
        if let Err(err) = std::fs::remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), error = %err, "could not remove pidfile");
        }
    }
}
