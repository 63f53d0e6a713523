//! Containers: creation as a clone of an image snapshot, listing with the live running state from
//! the runtime, update, stop, removal and pruning, and what the daemon does with them when it starts
//! and stops.

use std::path::PathBuf;
use std::sync::Arc;

use kleene_api::{
    Container, ContainerConfig, ContainerInspect, ContainerSummary, IdResponse, MountPoint,
    MountPointConfig, MountPointType, NetworkDriver, PublishedPort, RestartPolicy,
};
use zfs::{DatasetName, DestroyFlags, Property, SnapshotName};

use super::limits::{self, LimitChange};
use super::recovery::{Intent, Recorded};
use super::restart;
use super::{ids, names, Engine, EngineError};
use crate::platform::runtime::DEFAULT_STOP_GRACE;
use crate::platform::{inroot, Mount, Runtime};

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

/// Refuses a mount that cannot work, before anything is made: a destination that is not an
/// absolute path, a volume name that is not one, a host path that is relative, missing, or
/// neither a directory nor a file.
fn check_mount(mount: &MountPointConfig) -> Result<(), EngineError> {
    let refuse = |m: String| Err(EngineError::Invalid(m));
    let destination = &mount.destination;
    if !destination.starts_with('/') || destination.contains('\0') {
        return refuse(format!(
            "mount destination '{destination}' is not an absolute path"
        ));
    }
    // As written; the runtime checks again where it leads through the container's links.
    let mut lexical = PathBuf::new();
    for component in std::path::Path::new(destination).components() {
        match component {
            std::path::Component::Normal(name) => lexical.push(name),
            std::path::Component::ParentDir => {
                lexical.pop();
            }
            _ => {}
        }
    }
    if let Some(place) = crate::platform::runtime::reserved_destination(&lexical) {
        return refuse(format!(
            "mount destination '{destination}' is {place} or inside it, which the runtime sets up"
        ));
    }
    match mount.kind {
        MountPointType::Volume => {
            if !names::valid_volume_name(&mount.source) {
                return refuse(names::invalid_volume_name(&mount.source));
            }
        }
        MountPointType::Nullfs => {
            let source = std::path::Path::new(&mount.source);
            if !source.is_absolute() {
                return refuse(format!(
                    "mount source '{}' is not an absolute path",
                    mount.source
                ));
            }
            match std::fs::metadata(source) {
                Ok(meta) if meta.is_dir() || meta.is_file() => {}
                Ok(_) => {
                    return refuse(format!(
                        "mount source '{}' is neither a directory nor a regular file",
                        mount.source
                    ))
                }
                Err(err) => {
                    return refuse(format!(
                        "mount source '{}' cannot be used: {err}",
                        mount.source
                    ))
                }
            }
        }
    }
    Ok(())
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
    async fn running_set(&self) -> Result<std::collections::HashSet<String>, EngineError> {
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

    /// Creates a container: a clone of the image's snapshot with the image's defaults under the
    /// configuration. Every failure answers 404, as the API says, and leaves nothing behind.
    pub async fn create_container(
        &self,
        config: ContainerConfig,
    ) -> Result<IdResponse, EngineError> {
        self.create_container_as(config, None).await
    }

    /// [`Engine::create_container`] with the ID given (a build container has its image's).
    pub(super) async fn create_container_as(
        &self,
        config: ContainerConfig,
        id: Option<String>,
    ) -> Result<IdResponse, EngineError> {
        let refuse = |m: String| EngineError::Invalid(m);
        if let Some(name) = &config.name {
            if !names::valid_container_name(name) {
                return Err(refuse(names::invalid_container_name(name)));
            }
        }
        let reference = config
            .image
            .clone()
            .ok_or_else(|| refuse("no image given".into()))?;
        let (image_ref, snapshot) = match reference.split_once('@') {
            Some((image, snap)) => (image.to_owned(), Some(snap.to_owned())),
            None => (reference.clone(), None),
        };
        let lookup = image_ref.clone();
        let image = self
            .store
            .read(move |db| db.find_image(&lookup))
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("no such image '{reference}'")))?;
        let driver = config.network_driver.unwrap_or(NetworkDriver::Ipnet);
        if driver == NetworkDriver::Ipnet && self.os() == crate::config::TargetOs::Linux {
            return Err(refuse(
                "the 'ipnet' network driver is not available on Linux; use 'vnet', 'host' or 'disabled'".into(),
            ));
        }
        let mut ports = config.public_ports.clone().unwrap_or_default();
        if !ports.is_empty() {
            if matches!(driver, NetworkDriver::Host | NetworkDriver::Disabled) {
                let driver = serde_json::to_value(driver)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                return Err(refuse(format!(
                    "cannot publish ports of a container using the '{driver}' network driver"
                )));
            }
            let gateway = self.host_gateway();
            for port in &mut ports {
                let host =
                    pf::PortRange::parse(&port.host_port).map_err(|e| refuse(e.to_string()))?;
                pf::ContainerPort::parse(&port.container_port, host)
                    .map_err(|e| refuse(e.to_string()))?;
                if let Some(bad) = port.interfaces.iter().find(|i| !names::valid_interface(i)) {
                    return Err(refuse(format!("invalid interface name '{bad}'")));
                }
                // `[]` means the interface of the host's default route.
                if port.interfaces.is_empty() {
                    port.interfaces.extend(gateway.clone());
                }
            }
        }
        if let Some(runtime) = &self.runtime {
            runtime
                .check_jail_params(config.jail_param.as_deref().unwrap_or_default())
                .map_err(|e| refuse(e.to_string()))?;
        }
        let mounts = config.mounts.clone().unwrap_or_default();
        for mount in &mounts {
            check_mount(mount)?;
        }
        let limits = LimitChange::from_config(&config).map_err(refuse)?;
        let storage_size = match config.storage_size.as_deref() {
            None => self.storage.container_size,
            Some(text) => limits::parse_size("storage_size", text).map_err(refuse)?,
        };
        if storage_size.is_some_and(|bytes| bytes < super::StorageConfig::MIN_SIZE) {
            return Err(refuse(
                "storage_size: the smallest size is 1m (1048576 bytes); 0 is unlimited".into(),
            ));
        }
        let restart_policy = config.restart_policy.unwrap_or(RestartPolicy::No);
        let restart_max_retries = config.restart_max_retries.filter(|n| *n > 0);
        check_max_retries(restart_policy, restart_max_retries).map_err(refuse)?;
        let name = config.name.as_deref().map(|n| n.trim_start_matches('/'));
        self.check_name_free(name, "").await?;
        let id = id.unwrap_or_else(ids::new_id);
        let dataset = self
            .layout
            .containers
            .child(&id)
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        let origin = match snapshot.as_deref() {
            None => SnapshotName::new(format!("{}@image", image.dataset))
                .map_err(|e| refuse(format!("invalid snapshot: {e}")))?,
            Some(snap) => self.find_snapshot(&image.dataset, snap).await?,
        };
        let (clone_origin, clone_target) = (origin.clone(), dataset.clone());
        // A crash from here on is finished or undone at the next start (engine/recovery.rs).
        let intent = self.intend(Intent::ContainerCreate, &id).await?;
        if let Err(err) = self
            .zfs(move |zfs| {
                let quota = storage_size.map(|bytes| bytes.to_string());
                let properties: Vec<Property<'_>> =
                    quota.as_deref().map(|q| ("quota", q)).into_iter().collect();
                zfs.clone_snapshot(&clone_origin, &clone_target, &properties)
            })
            .await
        {
            // zfs may have made the clone and failed to mount it (zfs-fuse: "Input/output
            // error"): nothing half made stays.
            self.undo_container_creation(&dataset, vec![], intent).await;
            return Err(EngineError::host(format!(
                "could not clone {} for the container",
                origin.as_str()
            ))(err));
        }
        let mut made_volumes = vec![];
        let records = match self
            .prepare_mounts(&id, &dataset, &mounts, &mut made_volumes)
            .await
        {
            Ok(records) => records,
            Err(err) => {
                self.undo_container_creation(&dataset, made_volumes, intent)
                    .await;
                return Err(err);
            }
        };
        let cmd = config
            .cmd
            .clone()
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| image.cmd.clone());
        let user = config
            .user
            .clone()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| image.user.clone());
        let mut container = Container {
            id: id.clone(),
            name: config
                .name
                .clone()
                .map(|n| n.trim_start_matches('/').to_owned()),
            image_id: image.id.clone(),
            cmd,
            user,
            env: merge_env(&image.env, &config.env.clone().unwrap_or_default()),
            network_driver: driver,
            public_ports: ports
                .into_iter()
                .map(|p| PublishedPort {
                    interfaces: p.interfaces,
                    host_port: p.host_port,
                    container_port: p.container_port,
                    protocol: p.protocol,
                    ip_address: String::new(),
                    ip_address6: String::new(),
                })
                .collect(),
            jail_param: config.jail_param.clone().unwrap_or_default(),
            restart_policy,
            restart: Some(restart_policy),
            restart_max_retries,
            restart_count: 0,
            persist: config.persist.unwrap_or(false),
            created: ids::now(),
            dataset: dataset.as_str().to_owned(),
            running: false,
            memory: None,
            pids_limit: None,
            cpus: None,
            last_exit: None,
            storage_size,
        };
        limits.apply_to(&mut container);
        let record = container.clone();
        // The name is checked in the transaction that records the container, so two creates
        // cannot both take it.
        if let Err(err) = self
            .store
            .write_with(move |db| {
                if let Some(name) = &record.name {
                    if let Some(holder) = db.container_name_clash(name, &record.id)? {
                        return Err(name_taken(name, &holder));
                    }
                }
                if !record.public_ports.is_empty() {
                    let others: Vec<Container> = db
                        .list_containers()?
                        .into_iter()
                        .map(|s| s.container)
                        .collect();
                    if let Some((port, holder)) =
                        super::firewall::port_clash(&record.public_ports, &others)
                    {
                        return Err(EngineError::Conflict(match holder {
                            Some(holder) => format!(
                                "host port {port} is already published by container {holder}"
                            ),
                            None => format!("host port {port} is published twice"),
                        }));
                    }
                }
                db.insert_container(&record)?;
                for mount in &records {
                    db.insert_mount(mount)?;
                }
                Ok(())
            })
            .await
        {
            self.undo_container_creation(&dataset, made_volumes, intent)
                .await;
            return Err(err);
        }
        self.done(intent).await;
        tracing::info!(container = %id, image = %image.id, "container created");
        Ok(IdResponse { id })
    }

    /// The snapshot `snap` of an image's dataset. A built image's steps that came from the build
    /// cache are snapshots of the image it was cloned from: the dataset's origins are looked
    /// through, nearest first.
    pub(super) async fn find_snapshot(
        &self,
        dataset: &str,
        snap: &str,
    ) -> Result<SnapshotName, EngineError> {
        let invalid = || EngineError::NotFound(format!("invalid snapshot @{snap}"));
        let start = DatasetName::new(dataset.to_owned()).map_err(|_| invalid())?;
        let snap = snap.to_owned();
        let found = self
            .zfs(move |zfs| {
                let mut current = start;
                for _ in 0..32 {
                    let Ok(candidate) = current.snapshot(&snap) else {
                        return Ok(None);
                    };
                    if zfs.snapshot_exists(&candidate)? {
                        return Ok(Some(candidate));
                    }
                    let origin = zfs.get(&current, "origin")?;
                    match origin.and_then(|o| SnapshotName::new(o).ok()) {
                        Some(origin) => current = origin.dataset(),
                        None => return Ok(None),
                    }
                }
                Ok(None)
            })
            .await?;
        found.ok_or_else(invalid)
    }

    /// Undoes a container creation that failed after its clone: the clone and the volumes made
    /// for it go. What cannot be removed now stays with the intent, for the next start.
    async fn undo_container_creation(
        &self,
        dataset: &DatasetName,
        volumes: Vec<String>,
        intent: Recorded,
    ) {
        for name in volumes {
            if let Err(err) = self.remove_volume(name.clone()).await {
                tracing::error!(volume = %name, error = %err, "could not remove a volume made for a container that was not created");
            }
        }
        if let Err(err) = self.destroy_dataset(dataset).await {
            tracing::error!(dataset = dataset.as_str(), error = %err, "could not destroy dataset");
            return;
        }
        self.done(intent).await;
    }

    /// Makes the volumes a new container mounts that do not exist yet, and fills each new one with
    /// what the image has at its destination (an existing volume keeps its data as it is).
    /// Answers the mount records; `made` gets the volumes made.
    async fn prepare_mounts(
        &self,
        id: &str,
        dataset: &DatasetName,
        mounts: &[MountPointConfig],
        made: &mut Vec<String>,
    ) -> Result<Vec<MountPoint>, EngineError> {
        let mut records = Vec::with_capacity(mounts.len());
        for mount in mounts {
            if mount.kind == MountPointType::Volume {
                let (volume, new) = self.volume(&mount.source, None).await?;
                if new {
                    made.push(volume.name.clone());
                    let root = self.dataset_root(dataset, id).await?;
                    self.fill_volume(&root, &mount.destination, &volume).await?;
                }
            }
            records.push(MountPoint {
                kind: mount.kind,
                container_id: id.to_owned(),
                destination: mount.destination.clone(),
                source: mount.source.clone(),
                read_only: mount.read_only,
                setuid: mount.setuid,
                devices: mount.devices,
            });
        }
        Ok(records)
    }

    /// Copies what the image holds at `destination` (a directory, resolved inside `root`) into a
    /// new, empty volume. Nothing there, or not a directory: nothing to copy.
    async fn fill_volume(
        &self,
        root: &std::path::Path,
        destination: &str,
        volume: &kleene_api::Volume,
    ) -> Result<(), EngineError> {
        let (root, destination) = (root.to_owned(), destination.to_owned());
        let host = self.host.clone();
        let target = PathBuf::from(&volume.mountpoint);
        let name = volume.name.clone();
        tokio::task::spawn_blocking(move || {
            let source = match inroot::open(&root, &destination, inroot::Create::Nothing) {
                Ok(opened) if opened.is_dir => opened.path,
                Ok(_) => return Ok(()),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(err) => {
                    return Err(EngineError::Invalid(format!(
                        "cannot read the image's {destination}: {err}"
                    )))
                }
            };
            let empty = std::fs::read_dir(&source)
                .map(|mut entries| entries.next().is_none())
                .unwrap_or(true);
            if empty {
                return Ok(());
            }
            host.copy_contents(&source, &target)
                .map_err(EngineError::host(format!(
                    "could not copy the image's {destination} into volume {name}"
                )))
        })
        .await?
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

    /// Removes a stopped container, its dataset and its records. Only a container the runtime
    /// proves stopped is removed: when it cannot tell, nothing is destroyed.
    pub async fn remove_container(&self, identifier: String) -> Result<IdResponse, EngineError> {
        let found = self
            .find_container(&identifier)
            .await?
            .ok_or_else(|| EngineError::NotFound("no such container".into()))?;
        // One change at a time per container; a removal that waited finds it gone.
        let _held = self.objects.lock(&found.id).await;
        let container = self
            .find_container(&found.id)
            .await?
            .filter(|c| c.id == found.id)
            .ok_or_else(|| EngineError::NotFound("no such container".into()))?;
        if self.is_running(&container.id).await? {
            return Err(EngineError::Conflict(
                "you cannot remove a running container".into(),
            ));
        }
        self.cleanup_container(&container.id).await;
        let dataset = DatasetName::new(container.dataset.clone())
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        // From here the removal is finished at the next start if the daemon dies meanwhile.
        let intent = self.intend(Intent::ContainerRemove, &container.id).await?;
        let id = container.id.clone();
        let connected = {
            let id = id.clone();
            !self
                .store
                .read(move |db| db.endpoints_of_container(&id))
                .await?
                .is_empty()
        };
        let forgotten = if connected || !container.public_ports.is_empty() {
            // Its endpoints go with it, and its published ports from the packet filter.
            self.change_with_firewall(move |db| Ok(db.delete_container(&id)?))
                .await
        } else {
            self.store
                .write(move |db| db.delete_container(&id))
                .await
                .map_err(EngineError::from)
        };
        if let Err(err) = forgotten {
            // Nothing was removed: the container stays as it was.
            self.done(intent).await;
            return Err(err);
        }
        // Gone for the API; its dataset is destroyed in the background (engine/reaper.rs).
        self.reap(dataset);
        self.logs.remove(&container.id);
        self.restarts.forget(&container.id);
        self.done(intent).await;
        tracing::info!(container = %container.id, "container removed");
        Ok(IdResponse { id: container.id })
    }

    /// Runs the runtime's cleanup for a container that is not running, and forgets the host-side
    /// interfaces of its endpoints; failures are logged.
    pub(super) async fn cleanup_container(&self, id: &str) {
        let wiring = self.wiring_of(id).await.unwrap_or_default();
        let stale: Vec<_> = wiring
            .into_iter()
            .filter(|e| e.host_interface.is_some())
            .collect();
        if !stale.is_empty() {
            if let Some(runtime) = self.runtime.clone() {
                let (container_id, endpoints) = (id.to_owned(), stale.clone());
                let _ = tokio::task::spawn_blocking(move || {
                    runtime.released(&container_id, &endpoints)
                })
                .await;
            }
            let forget = stale.into_iter().map(|e| (e.endpoint_id, None)).collect();
            if let Err(err) = self.record_interfaces(id, forget).await {
                tracing::warn!(container = id, error = %err, "could not forget the container's interfaces");
            }
        }
        let Some(runtime) = self.runtime.clone() else {
            return;
        };
        let id = id.to_owned();
        let result =
            tokio::task::spawn_blocking(move || runtime.cleanup(&id).map_err(|e| (id, e))).await;
        if let Ok(Err((id, err))) = result {
            tracing::warn!(container = %id, error = %err, "cleanup failed");
        }
    }

    /// Stops a running container: SIGTERM to every process, SIGKILL after the grace period.
    pub async fn stop_container(&self, identifier: String) -> Result<IdResponse, EngineError> {
        let found = self
            .find_container(&identifier)
            .await?
            .ok_or_else(|| EngineError::NotFound("container not found".into()))?;
        let _held = self.objects.lock(&found.id).await;
        let container = self
            .find_container(&found.id)
            .await?
            .filter(|c| c.id == found.id)
            .ok_or_else(|| EngineError::NotFound("container not found".into()))?;
        // Stopped for good: its restart policy does not bring it back (nor a pending restart).
        let id = container.id.clone();
        self.store
            .write(move |db| db.set_keep_running(&id, false, false))
            .await?;
        self.restarts.forget(&container.id);
        if !self.is_running(&container.id).await? {
            self.cleanup_container(&container.id).await;
            return Err(EngineError::Conflict("container not running".into()));
        }
        self.stop_running(&container.id).await?;
        Ok(IdResponse { id: container.id })
    }

    pub(super) async fn stop_running(&self, id: &str) -> Result<(), EngineError> {
        let runtime = self.runtime()?.clone();
        let target = id.to_owned();
        tokio::task::spawn_blocking(move || runtime.stop(&target, DEFAULT_STOP_GRACE))
            .await?
            .map_err(EngineError::host(format!("could not stop container {id}")))?;
        // What the container left on the host goes now, not when its exec notices.
        self.cleanup_container(id).await;
        tracing::info!(container = id, "container stopped");
        Ok(())
    }

    /// Updates name, user, env, cmd, persist, restart policy, jail parameters and resource
    /// limits; `null` keeps a value. A running container keeps running: on Linux, jail parameters
    /// take effect at its next start; new limits apply to it at once (its cgroups, or rctl(8)).
    pub async fn update_container(
        &self,
        identifier: String,
        config: ContainerConfig,
    ) -> Result<IdResponse, EngineError> {
        let found = self
            .find_container(&identifier)
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("no such container '{identifier}'")))?;
        // One change at a time per container: an update never saves over a removal or another
        // update that came first.
        let _held = self.objects.lock(&found.id).await;
        let container = self
            .find_container(&found.id)
            .await?
            .filter(|c| c.id == found.id)
            .ok_or_else(|| EngineError::NotFound(format!("no such container '{identifier}'")))?;
        if let Some(name) = &config.name {
            if !names::valid_container_name(name) {
                return Err(EngineError::Invalid(names::invalid_container_name(name)));
            }
        }
        let limits = LimitChange::from_config(&config).map_err(EngineError::Invalid)?;
        let mut updated = container.clone();
        limits.apply_to(&mut updated);
        if let Some(name) = config.name {
            updated.name = Some(name.trim_start_matches('/').to_owned());
        }
        if let Some(user) = config.user {
            updated.user = user;
        }
        if let Some(env) = config.env {
            updated.env = env;
        }
        if let Some(cmd) = config.cmd {
            updated.cmd = cmd;
        }
        if let Some(persist) = config.persist {
            updated.persist = persist;
        }
        if let Some(policy) = config.restart_policy {
            updated.restart_policy = policy;
            updated.restart = Some(policy);
            if policy != RestartPolicy::OnFailure {
                updated.restart_max_retries = None;
            }
        }
        if let Some(max) = config.restart_max_retries {
            updated.restart_max_retries = (max > 0).then_some(max);
        }
        check_max_retries(updated.restart_policy, updated.restart_max_retries)
            .map_err(EngineError::Invalid)?;
        if let Some(params) = config.jail_param {
            if let Some(runtime) = &self.runtime {
                runtime.check_jail_params(&params).map_err(|e| {
                    EngineError::Conflict(format!(
                        "an error ocurred while updating the container: {e}"
                    ))
                })?;
            }
            updated.jail_param = params;
        }
        if updated.name != container.name {
            self.check_name_free(updated.name.as_deref(), &container.id)
                .await?;
        }
        if updated != container {
            if updated.jail_param != container.jail_param && self.is_running(&container.id).await? {
                // A running container gets its new parameters now (FreeBSD `jail -m`); when the
                // host refuses them, nothing is saved.
                let runtime = Arc::clone(self.runtime()?);
                let id = container.id.clone();
                let params = updated.jail_param.clone();
                // The reference's wording, spelling included.
                tokio::task::spawn_blocking(move || runtime.update(&id, &params))
                    .await?
                    .map_err(EngineError::host(
                        "an error ocurred while updating the container",
                    ))?;
            }
            let new_limits = limits::of(&updated);
            if new_limits != limits::of(&container) && self.is_running(&container.id).await? {
                // A running container gets its new limits now where the runtime can change
                // them; when the host refuses them, nothing is saved.
                let runtime = Arc::clone(self.runtime()?);
                let id = container.id.clone();
                let applied =
                    tokio::task::spawn_blocking(move || runtime.update_limits(&id, &new_limits))
                        .await?
                        .map_err(EngineError::host(format!(
                            "could not change the limits of container {}",
                            container.id
                        )))?;
                if !applied {
                    tracing::info!(container = %container.id, "new limits apply at the container's next start");
                }
            }
            let record = updated.clone();
            let new_name = (updated.name != container.name).then(|| updated.name.clone());
            self.store
                .write_with(move |db| {
                    // Checked again here, where no other change can come between.
                    if let Some(Some(name)) = &new_name {
                        if let Some(holder) = db.container_name_clash(name, &record.id)? {
                            return Err(name_taken(name, &holder));
                        }
                    }
                    Ok(db.update_container(&record)?)
                })
                .await?;
        }
        Ok(IdResponse { id: container.id })
    }

    /// Removes every stopped container that is not marked `persist`.
    pub async fn prune_containers(&self) -> Result<Vec<String>, EngineError> {
        let mut removed = vec![];
        for summary in self.list_containers(true).await? {
            let c = summary.container;
            if c.running || c.persist {
                continue;
            }
            match self.remove_container(c.id.clone()).await {
                Ok(_) => removed.push(c.id),
                Err(err) => {
                    tracing::warn!(container = %c.id, error = %err, "prune could not remove container")
                }
            }
        }
        Ok(removed)
    }

    /// At daemon start: containers left running by a daemon that died are stopped (their output and
    /// exit codes cannot be recovered), leftovers are cleaned up, and `on-startup` containers start.
    pub async fn startup(self: &Arc<Self>) -> Result<(), EngineError> {
        if self.runtime.is_none() {
            return Ok(());
        }
        for id in self.running_set().await? {
            tracing::warn!(container = %id, "stopping a container left running by an earlier daemon");
            if let Err(err) = self.stop_running(&id).await {
                tracing::error!(container = %id, error = %err, "could not stop it");
            }
        }
        self.recover().await;
        self.start_reaper();
        let containers = self.store.read(|db| db.list_containers()).await?;
        for summary in &containers {
            self.cleanup_container(&summary.container.id).await;
        }
        self.networks_startup().await;
        let kept: std::collections::HashSet<String> = self
            .store
            .read(|db| db.kept_running())
            .await?
            .into_iter()
            .collect();
        let Some(engine) = self.me.upgrade() else {
            return Ok(());
        };
        for summary in containers {
            let c = summary.container;
            if !restart::starts_with_daemon(c.restart_policy, kept.contains(&c.id)) {
                continue;
            }
            let policy = serde_json::to_value(c.restart_policy).unwrap_or_default();
            match engine.start_detached(&c.id, true).await {
                Ok(()) => tracing::info!(container = %c.id, "started (restart policy {policy})"),
                Err(err) => {
                    tracing::error!(container = %c.id, error = %err, "could not start (restart policy {policy})")
                }
            }
        }
        Ok(())
    }

    /// At daemon stop: every running container is stopped (their restart policies still hold
    /// at the next start).
    pub(super) async fn stop_all(&self) {
        self.restarts.daemon_stopping();
        let running = match self.running_set().await {
            Ok(running) => running,
            Err(err) => {
                tracing::error!(error = %err, "cannot stop the containers at shutdown");
                Default::default()
            }
        };
        for id in running {
            if let Err(err) = self.stop_running(&id).await {
                tracing::error!(container = %id, error = %err, "could not stop container at shutdown");
            }
        }
        if let Some(runtime) = &self.runtime {
            runtime.close();
        }
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
        fn update(&self, _: &str, _: &[String]) -> Result<(), RuntimeError> {
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
