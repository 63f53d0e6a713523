//! Creating a container: the configuration checked before anything is made, the clone of the
//! image's snapshot, the mounts, and the record; any failure undoes what was made.

use kleene_api::{
    Container, ContainerConfig, IdResponse, NetworkDriver, PublishedPort, RestartPolicy,
};
use zfs::{DatasetName, Property, SnapshotName};

use super::mounts::check_mount;
use super::{check_max_retries, merge_env, name_taken};
use crate::engine::limits::{self, LimitChange};
use crate::engine::recovery::{Intent, Recorded};
use crate::engine::{ids, names, Engine, EngineError};

impl Engine {
    /// Creates a container: a clone of the image's snapshot with the image's defaults under the
    /// configuration. Every failure answers 404, as the API says, and leaves nothing behind.
    pub async fn create_container(
        &self,
        config: ContainerConfig,
    ) -> Result<IdResponse, EngineError> {
        self.create_container_as(config, None).await
    }

    /// [`Engine::create_container`] with the ID given (a build container has its image's).
    pub(in crate::engine) async fn create_container_as(
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
        if storage_size.is_some_and(|bytes| bytes < crate::engine::StorageConfig::MIN_SIZE) {
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
                        crate::engine::networks::firewall::port_clash(&record.public_ports, &others)
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
    pub(in crate::engine) async fn find_snapshot(
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
    pub(super) async fn undo_container_creation(
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
}
