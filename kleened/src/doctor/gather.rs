//! Reading the facts and doing the fixes, through the clients the daemon itself uses; and the
//! whole examination (look, judge, fix, look again) that `kleened doctor` and the daemon's
//! `GET /doctor` and `POST /doctor/fix` share.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use kleene_api::{DoctorReport, FixOutcome, NetworkType};
use kleene_runner::Runner;
use zfs::{DatasetName, DatasetType, Depth, DestroyFlags, ListQuery, Zfs};

use super::{judge, plan, report, Action, DatasetState, Facts, HostFacts, Settings, StoreFacts};
use crate::layout::Layout;
use crate::platform::{NetworkHost, NetworkSetup, Runtime};
use crate::store::Store;

/// What the doctor reads and changes the host with: the daemon's own clients.
#[derive(Debug)]
pub struct Clients {
    /// ZFS.
    pub zfs: Arc<Zfs>,
    /// The root and its parents.
    pub layout: Layout,
    /// The rest of the configuration the checks need.
    pub settings: Settings,
    /// Host commands (nft, pfctl, sysctl, kldstat).
    pub runner: Arc<dyn Runner>,
    /// The platform's host networking (the daemon's interfaces, forwarding, the packet filter).
    pub network: Option<Arc<dyn NetworkHost>>,
    /// The container runtime, to know which containers run; without it (Linux, `kleened
    /// doctor`) the cgroups tell.
    pub runtime: Option<Arc<dyn Runtime>>,
}

/// Where the store's facts come from.
#[derive(Debug, Clone)]
pub struct StoreSource {
    /// The open store; `Ok(None)` when there is no database yet.
    pub store: Result<Option<Store>, String>,
    /// Its path, for messages.
    pub path: Option<PathBuf>,
}

impl Clients {
    /// Reads every fact but the store's (given). Blocks (zfs, host commands).
    pub fn gather(
        &self,
        daemon_running: bool,
        store: Result<Option<StoreFacts>, String>,
        store_path: Option<PathBuf>,
        reaping: Vec<String>,
    ) -> Facts {
        let root = self.layout.root.as_str();
        let datasets = self
            .zfs
            .list(
                &ListQuery::new(["name", "mounted", "mountpoint"])
                    .types(&[DatasetType::Filesystem])
                    .depth(Depth::Recursive)
                    .root(root),
            )
            .map(|rows| {
                rows.into_iter()
                    .map(|row| DatasetState {
                        name: row[0].clone(),
                        mounted: row[1] == "yes",
                        mountpoint: zfs::parse::mountpoint(&row[2]),
                    })
                    .collect::<Vec<_>>()
            })
            .or_else(|err| {
                if err.is_not_found() {
                    Ok(vec![])
                } else {
                    Err(err.to_string())
                }
            });
        let containers_mountpoint = datasets.as_ref().ok().and_then(|all| {
            all.iter()
                .find(|d| d.name == self.layout.containers.as_str() && d.mounted)
                .and_then(|d| d.mountpoint.clone())
        });
        let pool = self
            .zfs
            .pool_usage(self.layout.root.pool())
            .map_err(|e| e.to_string());
        let interfaces = match &self.network {
            Some(network) => network.own_interfaces().map_err(|e| e.to_string()),
            None => Ok(vec![]),
        };
        let host = self.host_facts(containers_mountpoint.as_deref());
        let running = match (&self.runtime, &host) {
            (Some(runtime), _) => runtime
                .running()
                .map(|ids| ids.into_iter().collect::<HashSet<_>>())
                .map_err(|e| e.to_string()),
            (None, HostFacts::Linux(linux)) => match &linux.cgroups {
                Ok(cgroups) => cgroups
                    .children
                    .iter()
                    .filter_map(|(id, populated)| match populated {
                        Ok(true) => Some(Ok(id.clone())),
                        Ok(false) => None,
                        Err(err) => Some(Err(err.clone())),
                    })
                    .collect(),
                Err(err) => Err(err.clone()),
            },
            (None, HostFacts::FreeBsd(_)) => Err("no runtime to ask".into()),
        };
        Facts {
            daemon_running,
            layout: self.layout.clone(),
            datasets,
            pool,
            store,
            store_path,
            running,
            reaping,
            interfaces,
            host,
        }
    }

    /// The platform's facts. Blocks.
    #[cfg(target_os = "linux")]
    fn host_facts(&self, containers_mountpoint: Option<&std::path::Path>) -> HostFacts {
        HostFacts::Linux(super::linux::gather(
            self.runner.as_ref(),
            &self.settings,
            containers_mountpoint,
            self.layout.root.as_str(),
        ))
    }

    /// The platform's facts. Blocks.
    #[cfg(not(target_os = "linux"))]
    fn host_facts(&self, containers_mountpoint: Option<&std::path::Path>) -> HostFacts {
        HostFacts::FreeBsd(super::freebsd::gather(
            self.runner.as_ref(),
            containers_mountpoint,
        ))
    }

    /// Unmounts a leftover mount, lazily (a busy one goes once its last user does).
    #[cfg(target_os = "linux")]
    fn unmount(&self, path: &std::path::Path) -> Result<(), String> {
        super::linux::unmount(path)
    }

    /// Unmounts a leftover mount with umount(8), as the jail runtime's cleanup does.
    #[cfg(not(target_os = "linux"))]
    fn unmount(&self, path: &std::path::Path) -> Result<(), String> {
        let spec = crate::platform::freebsd::mounts::unmount(&path.to_string_lossy());
        let out = self.runner.run(&spec).map_err(|e| format!("{spec}: {e}"))?;
        if out.code == Some(0) {
            Ok(())
        } else {
            Err(format!(
                "{spec}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// Does one fix, through the code the daemon uses for it. Blocks.
    pub fn perform(&self, action: &Action) -> Result<(), String> {
        let network = || {
            self.network
                .as_ref()
                .ok_or_else(|| "no host networking on this platform".to_owned())
        };
        let dataset = |name: &str| DatasetName::new(name).map_err(|e| e.to_string());
        match action {
            Action::PrepareNetworking => network()?.prepare().map_err(|e| e.to_string()),
            // Only where the platform has host networking (never for an engine without it).
            Action::SwitchOn(path) => network().and_then(|_| switch_on(path)),
            Action::PrepareLayout => self
                .layout
                .prepare(&self.zfs)
                .map(drop)
                .map_err(|e| e.to_string()),
            Action::Mount(name) => self.zfs.mount(&dataset(name)?).map_err(|e| e.to_string()),
            Action::Unmount(path) => self.unmount(path),
            Action::RemoveInterface(name) => network()?
                .remove(&NetworkSetup {
                    kind: NetworkType::Bridge,
                    interface: name.clone(),
                    gateway: None,
                    gateway6: None,
                })
                .map_err(|e| e.to_string()),
            Action::ClearFirewall => network()?.clear_firewall().map_err(|e| e.to_string()),
            Action::RemoveCgroup(id) => remove_cgroup(&self.settings, id),
            Action::DestroyContainerDataset(name) => self
                .zfs
                .destroy(
                    &dataset(name)?,
                    DestroyFlags {
                        recursive: true,
                        recursive_dependents: false,
                        force: true,
                    },
                )
                .map_err(|e| e.to_string()),
            Action::DestroyImageDataset(name) => self
                .zfs
                .destroy(
                    &dataset(name)?,
                    DestroyFlags {
                        recursive: true,
                        ..DestroyFlags::default()
                    },
                )
                .map_err(|e| e.to_string()),
        }
    }
}

#[cfg(target_os = "linux")]
fn switch_on(path: &str) -> Result<(), String> {
    super::linux::switch_on(path)
}

#[cfg(target_os = "linux")]
fn remove_cgroup(settings: &Settings, id: &str) -> Result<(), String> {
    super::linux::remove_cgroup(settings, id)
}

// The FreeBSD judges never ask for these two.
#[cfg(not(target_os = "linux"))]
fn switch_on(path: &str) -> Result<(), String> {
    Err(format!("{path}: not a setting of this platform"))
}

#[cfg(not(target_os = "linux"))]
fn remove_cgroup(_settings: &Settings, id: &str) -> Result<(), String> {
    Err(format!("{id}: no cgroups on this platform"))
}

/// Reads the facts: the store's on the blocking pool, then the rest.
async fn look(
    clients: &Arc<Clients>,
    source: &StoreSource,
    daemon_running: bool,
    reaping: &[String],
) -> Facts {
    let store = match &source.store {
        Ok(Some(store)) => store
            .read(StoreFacts::read)
            .await
            .map(Some)
            .map_err(|e| e.to_string()),
        Ok(None) => Ok(None),
        Err(err) => Err(err.clone()),
    };
    let clients = Arc::clone(clients);
    let (path, reaping) = (source.path.clone(), reaping.to_vec());
    match tokio::task::spawn_blocking(move || clients.gather(daemon_running, store, path, reaping))
        .await
    {
        Ok(facts) => facts,
        Err(err) => std::panic::resume_unwind(err.into_panic()),
    }
}

/// The whole examination: the facts, judged; with `fix`, the plan's actions done (each once, in
/// order, going on after a failure), then the facts read and judged again.
pub async fn examine(
    clients: Arc<Clients>,
    source: StoreSource,
    daemon_running: bool,
    reaping: Vec<String>,
    fix: bool,
) -> DoctorReport {
    let facts = look(&clients, &source, daemon_running, &reaping).await;
    let judged = judge(&facts);
    if !fix {
        return report(daemon_running, judged, vec![]);
    }
    let actions = plan(&judged);
    let fixes = {
        let clients = Arc::clone(&clients);
        tokio::task::spawn_blocking(move || {
            actions
                .into_iter()
                .map(|(check, command, action)| {
                    let error = clients.perform(&action).err();
                    match &error {
                        None => tracing::info!(%check, %command, "doctor fixed"),
                        Some(error) => {
                            tracing::warn!(%check, %command, %error, "doctor fix failed")
                        }
                    }
                    FixOutcome {
                        check,
                        action: command,
                        error,
                    }
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default()
    };
    let facts = look(&clients, &source, daemon_running, &reaping).await;
    report(daemon_running, judge(&facts), fixes)
}
