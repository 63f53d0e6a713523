//! Containers: creation as a clone of an image snapshot, listing with the live running state from
//! the runtime, update, stop, removal and pruning, and what the daemon does with them when it starts
//! and stops.

mod create;
mod mounts;
mod remove;
mod update;

use std::path::PathBuf;
use std::sync::Arc;

use kleene_api::{Container, ContainerInspect, ContainerSummary, MountPointType, RestartPolicy};
use zfs::{DatasetName, DestroyFlags};

use super::{Engine, EngineError};
use crate::platform::{Mount, Runtime};

/// Whether a file system is mounted at `path`: its device differs from its parent directory's.
fn is_mount_point(path: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    let (Ok(own), Some(Ok(parent))) = (
        std::fs::symlink_metadata(path),
        path.parent().map(std::fs::symlink_metadata),
    ) else {
        return false;
    };
    own.is_dir() && own.dev() != parent.dev()
}

/// The refusal of a name another container already has (or is the ID of).
fn name_taken(name: &str, holder: &str) -> EngineError {
    EngineError::Conflict(format!(
        "container name '{name}' is already in use by container {holder}"
    ))
}

/// `a=1` entries of `over` replace those of `base` with the same name; the rest are appended.
pub fn merge_env(base: &[String], over: &[String]) -> Vec<String> {
    let name = |e: &str| e.split_once('=').map_or(e, |(n, _)| n).to_owned();
    let mut merged: Vec<String> = base.to_vec();
    for entry in over {
        let key = name(entry);
        merged.retain(|e| name(e) != key);
        merged.push(entry.clone());
    }
    merged
}

impl Engine {
    pub(super) fn runtime(&self) -> Result<&Arc<dyn Runtime>, EngineError> {
        self.runtime.as_ref().ok_or_else(|| {
            EngineError::Internal("this daemon has no container runtime for its platform".into())
        })
    }

    /// Whether a container runs, from the runtime (never from the store). When the runtime cannot
    /// tell, this is an error: nothing may take the container for stopped.
    pub(super) async fn is_running(&self, id: &str) -> Result<bool, EngineError> {
        let Some(runtime) = self.runtime.clone() else {
            return Ok(false);
        };
        let target = id.to_owned();
        tokio::task::spawn_blocking(move || runtime.is_running(&target))
            .await?
            .map_err(EngineError::host(format!(
                "cannot tell whether container {id} is running"
            )))
    }

    /// IDs of the running containers; an error when the runtime cannot tell.
    pub(super) async fn running_set(
        &self,
    ) -> Result<std::collections::HashSet<String>, EngineError> {
        let Some(runtime) = self.runtime.clone() else {
            return Ok(Default::default());
        };
        Ok(tokio::task::spawn_blocking(move || runtime.running())
            .await?
            .map_err(EngineError::host(
                "cannot tell which containers are running",
            ))?
            .into_iter()
            .collect())
    }

    /// Containers, newest first: all of them, or only those running.
    pub async fn list_containers(&self, all: bool) -> Result<Vec<ContainerSummary>, EngineError> {
        let mut containers = self.store.read(|db| db.list_containers()).await?;
        let running = self.running_set().await?;
        let runtime = self.runtime.clone();
        let ids: Vec<String> = running.iter().cloned().collect();
        let jids: std::collections::HashMap<String, i64> = match runtime {
            Some(runtime) => tokio::task::spawn_blocking(move || {
                ids.into_iter()
                    .filter_map(|id| runtime.jid(&id).map(|jid| (id, jid)))
                    .collect()
            })
            .await
            .unwrap_or_default(),
            None => Default::default(),
        };
        for summary in &mut containers {
            summary.container.running = running.contains(&summary.container.id);
            summary.jid = jids.get(&summary.container.id).copied();
        }
        Ok(containers
            .into_iter()
            .filter(|c| all || c.container.running)
            .collect())
    }

    /// One container with its endpoints and mounts, by ID, ID prefix or name.
    pub async fn inspect_container(
        &self,
        identifier: String,
    ) -> Result<ContainerInspect, EngineError> {
        let mut inspect = self
            .store
            .read(move |db| {
                let Some(container) = db.find_container(&identifier)? else {
                    return Ok(None);
                };
                Ok(Some(ContainerInspect {
                    container_endpoints: db.endpoints_of_container(&container.id)?,
                    container_mountpoints: db.mounts_of_container(&container.id)?,
                    container,
                }))
            })
            .await?
            .ok_or_else(|| EngineError::NotFound("container not found".into()))?;
        inspect.container.running = self.is_running(&inspect.container.id).await?;
        Ok(inspect)
    }

    pub(super) async fn find_container(
        &self,
        identifier: &str,
    ) -> Result<Option<Container>, EngineError> {
        let identifier = identifier.to_owned();
        Ok(self
            .store
            .read(move |db| db.find_container(&identifier))
            .await?)
    }

    /// The container's dataset mountpoint (its root filesystem).
    pub(super) async fn container_rootfs(
        &self,
        container: &Container,
    ) -> Result<PathBuf, EngineError> {
        let dataset = DatasetName::new(container.dataset.clone()).map_err(|e| {
            EngineError::Internal(format!(
                "container {} has an invalid dataset: {e}",
                container.id
            ))
        })?;
        self.dataset_root(&dataset, &container.id).await
    }

    /// Where the dataset of container `id` is mounted (mounting it when it is not).
    async fn dataset_root(&self, dataset: &DatasetName, id: &str) -> Result<PathBuf, EngineError> {
        let dataset = dataset.clone();
        // A clone inherits its parent's mountpoint: when a file system is mounted where the
        // dataset's would be, that is it, and zfs need not be asked (a round trip per start).
        if let Some(path) = self
            .containers_mountpoint
            .as_ref()
            .map(|parent| parent.join(dataset.basename()))
        {
            if is_mount_point(&path) {
                return Ok(path);
            }
        }
        self.zfs(move |zfs| match zfs.mounted_at(&dataset)? {
            Some(path) => Ok(Some(path)),
            None => {
                zfs.mount(&dataset)?;
                zfs.mountpoint(&dataset)
            }
        })
        .await?
        .ok_or_else(|| {
            EngineError::Internal(format!("the dataset of container {id} has no mountpoint"))
        })
    }

    /// What a container mounts at its start: its mount records, in order, with their host paths
    /// (a volume's mountpoint, or the host path as given).
    pub(super) async fn mounts_of(&self, container_id: &str) -> Result<Vec<Mount>, EngineError> {
        let id = container_id.to_owned();
        let records = self
            .store
            .read(move |db| db.mounts_of_container(&id))
            .await?;
        let mut mounts = Vec::with_capacity(records.len());
        for record in records {
            let source = match record.kind {
                MountPointType::Nullfs => PathBuf::from(&record.source),
                MountPointType::Volume => {
                    let name = record.source.clone();
                    let volume = self
                        .store
                        .read(move |db| db.find_volume(&name))
                        .await?
                        .ok_or_else(|| {
                            EngineError::NotFound(format!(
                                "volume {} of container {container_id} does not exist",
                                record.source
                            ))
                        })?;
                    PathBuf::from(volume.mountpoint)
                }
            };
            mounts.push(Mount {
                source,
                destination: record.destination,
                read_only: record.read_only,
                setuid: record.setuid,
                devices: record.devices,
            });
        }
        Ok(mounts)
    }

    /// Refuses a name another container than `except` holds (or has as its ID), before anything
    /// is changed; the store transaction that saves the name checks again.
    async fn check_name_free(&self, name: Option<&str>, except: &str) -> Result<(), EngineError> {
        let Some(name) = name else { return Ok(()) };
        let (lookup, except) = (name.to_owned(), except.to_owned());
        match self
            .store
            .read(move |db| db.container_name_clash(&lookup, &except))
            .await?
        {
            Some(holder) => Err(name_taken(name, &holder)),
            None => Ok(()),
        }
    }

    /// Destroys a container's dataset (and anything below it); one already gone is fine. No lookup
    /// first: each zfs call costs time.
    async fn destroy_dataset(&self, dataset: &DatasetName) -> Result<(), zfs::ZfsError> {
        let target = dataset.clone();
        let flags = DestroyFlags {
            recursive: true,
            force: true,
            ..DestroyFlags::default()
        };
        self.zfs(move |zfs| match zfs.destroy(&target, flags) {
            Err(err) if err.is_not_found() => Ok(()),
            other => other,
        })
        .await
    }
}

/// A bound on restarts belongs to the `on-failure` policy only (as Docker refuses it with
/// `always`).
fn check_max_retries(policy: RestartPolicy, max: Option<u32>) -> Result<(), String> {
    match (policy, max) {
        (RestartPolicy::OnFailure, _) | (_, None) => Ok(()),
        (_, Some(_)) => Err(
            "restart_max_retries: a number of retries is only taken with the on-failure restart \
             policy"
                .into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::{ProcessSpec, RuntimeError, Spawned};
    use crate::store::Store;
    use kleene_api::NetworkDriver;

    /// A runtime that cannot tell whether anything runs (its cgroups cannot be read).
    #[derive(Debug)]
    struct BlindRuntime;

    impl Runtime for BlindRuntime {
        fn start(&self, _: &ProcessSpec) -> Result<Spawned, RuntimeError> {
            Err(RuntimeError::Host("blind".into()))
        }
        fn exec(&self, _: &ProcessSpec) -> Result<Spawned, RuntimeError> {
            Err(RuntimeError::Host("blind".into()))
        }
        fn is_running(&self, _: &str) -> Result<bool, RuntimeError> {
            Err(RuntimeError::Host("cannot read cgroup.events".into()))
        }
        fn running(&self) -> Result<Vec<String>, RuntimeError> {
            Err(RuntimeError::Host("cannot read cgroup.events".into()))
        }
        fn stop(&self, _: &str, _: std::time::Duration) -> Result<(), RuntimeError> {
            Err(RuntimeError::Host("blind".into()))
        }
        fn cleanup(&self, _: &str) -> Result<(), RuntimeError> {
            Ok(())
        }
        fn update(
            &self,
            _: &str,
            _: kleene_api::NetworkDriver,
            _: &[String],
        ) -> Result<(), RuntimeError> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_container_whose_state_is_unknown_is_neither_removed_nor_pruned() {
        let store = Store::open_in_memory().unwrap();
        store
            .write(|db| {
                db.insert_image(&kleene_api::Image {
                    id: "1a2b3c4d5e6f".into(),
                    name: "base".into(),
                    tag: "latest".into(),
                    cmd: vec![],
                    env: vec![],
                    user: String::new(),
                    instructions: vec![],
                    created: "2026-01-01T00:00:00.000000Z".into(),
                    dataset: "zroot/kleene/image/1a2b3c4d5e6f".into(),
                })?;
                db.insert_container(&Container {
                    id: "c0ffee000001".into(),
                    name: Some("web".into()),
                    image_id: "1a2b3c4d5e6f".into(),
                    cmd: vec![],
                    user: String::new(),
                    env: vec![],
                    network_driver: NetworkDriver::Host,
                    public_ports: vec![],
                    jail_param: vec![],
                    restart_policy: RestartPolicy::No,
                    restart: Some(RestartPolicy::No),
                    restart_max_retries: None,
                    restart_count: 0,
                    persist: false,
                    created: "2026-01-01T00:00:00.000000Z".into(),
                    dataset: "zroot/kleene/container/c0ffee000001".into(),
                    running: false,
                    memory: None,
                    pids_limit: None,
                    cpus: None,
                    last_exit: None,
                    storage_size: None,
                })
            })
            .await
            .unwrap();
        let (engine, runner) = crate::engine::test_engine_with(store, Some(Arc::new(BlindRuntime)));
        let err = engine.remove_container("web".into()).await.unwrap_err();
        assert!(
            err.to_string()
                .contains("cannot tell whether container c0ffee000001 is running"),
            "{err}"
        );
        assert!(engine.prune_containers().await.is_err());
        assert!(engine.stop_container("web".into()).await.is_err());
        assert!(engine.list_containers(true).await.is_err());
        assert!(
            runner.lines().is_empty(),
            "nothing may run on the host: {:?}",
            runner.lines()
        );
        assert!(engine.find_container("web").await.unwrap().is_some());
    }

    #[test]
    fn mount_points_are_told_by_their_device() {
        // /dev is a file system of its own on Linux (devtmpfs) and FreeBSD (devfs).
        assert!(is_mount_point(std::path::Path::new("/dev")));
        let dir = tempfile::tempdir().unwrap();
        assert!(!is_mount_point(dir.path()));
        assert!(!is_mount_point(&dir.path().join("missing")));
    }

    #[test]
    fn container_env_overrides_image_env() {
        let merged = merge_env(&["A=1".into(), "B=2".into()], &["B=3".into(), "C=4".into()]);
        assert_eq!(merged, vec!["A=1", "B=3", "C=4"]);
    }
}
