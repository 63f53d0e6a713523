//! Volumes: datasets `<kleene_root>/volumes/<name>` that containers mount and that outlive them.
//!
//! Creation is idempotent by name; removal is refused while a running container mounts the
//! volume (its mounts in stopped containers are forgotten with it); prune removes the volumes no
//! container mounts. Both record an intent first, so a crash is finished at the next start.

use kleene_api::{IdResponse, Volume, VolumeConfig, VolumeInspect};
use zfs::{DatasetName, DestroyFlags, Property};

use super::names::{invalid_volume_name, valid_volume_name};
use super::recovery::Intent;
use super::{ids, Engine, EngineError};

fn check_volume_name(name: &str) -> Result<(), EngineError> {
    if valid_volume_name(name) {
        return Ok(());
    }
    Err(EngineError::Invalid(invalid_volume_name(name)))
}

impl Engine {
    /// Every volume, newest first.
    pub async fn list_volumes(&self) -> Result<Vec<Volume>, EngineError> {
        Ok(self.store.read(|db| db.list_volumes()).await?)
    }

    /// One volume with the mounts that use it, by exact name.
    pub async fn inspect_volume(&self, name: String) -> Result<VolumeInspect, EngineError> {
        self.store
            .read(move |db| {
                let Some(volume) = db.find_volume(&name)? else {
                    return Ok(None);
                };
                Ok(Some(VolumeInspect {
                    mountpoints: db.mounts_of_volume(&volume.name)?,
                    volume,
                }))
            })
            .await?
            .ok_or_else(|| EngineError::NotFound("No such volume".into()))
    }

    async fn find_volume(&self, name: &str) -> Result<Option<Volume>, EngineError> {
        let name = name.to_owned();
        Ok(self.store.read(move |db| db.find_volume(&name)).await?)
    }

    /// Creates a volume, or answers the one of that name as it is. `size` (or the configured
    /// `volume_size`) becomes the dataset's ZFS quota.
    pub async fn create_volume(&self, config: VolumeConfig) -> Result<IdResponse, EngineError> {
        self.volume(&config.name, config.size.as_deref())
            .await
            .map(|(volume, _)| IdResponse { id: volume.name })
    }

    /// The volume `name`, made when missing; answers whether it was made now.
    pub(super) async fn volume(
        &self,
        name: &str,
        size: Option<&str>,
    ) -> Result<(Volume, bool), EngineError> {
        check_volume_name(name)?;
        if let Some(size) = size {
            if size.is_empty() || !size.chars().all(|c| c.is_ascii_alphanumeric() || c == '.') {
                return Err(EngineError::Invalid(format!(
                    "invalid volume size '{size}': a size as zfs reads it, such as 500M or 10G"
                )));
            }
        }
        // Without a size of its own, the configured default (`volume_size`).
        let default = self.storage.volume_size.map(|bytes| bytes.to_string());
        let size = size.or(default.as_deref());
        let _held = self.objects.lock(&format!("volume:{name}")).await;
        if let Some(volume) = self.find_volume(name).await? {
            return Ok((volume, false));
        }
        let dataset = self
            .layout
            .volumes
            .child(name)
            .map_err(|e| EngineError::Invalid(format!("invalid volume name '{name}': {e}")))?;
        // A crash from here on is undone at the next start (engine/recovery.rs).
        let intent = self.intend(Intent::Volume, name).await?;
        let volume = match self.make_volume(name, &dataset, size).await {
            Ok(volume) => volume,
            Err(failed) => {
                if let Err(err) = self.destroy_volume_dataset(&dataset).await {
                    // The intent stays: the next start removes it.
                    tracing::error!(dataset = dataset.as_str(), error = %err, "could not remove a volume's dataset");
                    return Err(failed);
                }
                self.done(intent).await;
                return Err(failed);
            }
        };
        self.done(intent).await;
        tracing::info!(volume = name, "volume created");
        Ok((volume, true))
    }

    async fn make_volume(
        &self,
        name: &str,
        dataset: &DatasetName,
        size: Option<&str>,
    ) -> Result<Volume, EngineError> {
        let target = dataset.clone();
        let quota = size.map(str::to_owned);
        let mountpoint = self
            .zfs(move |zfs| {
                let properties: Vec<Property<'_>> =
                    quota.as_deref().map(|q| ("quota", q)).into_iter().collect();
                zfs.create(&target, &properties)?;
                zfs.mountpoint(&target)
            })
            .await
            .map_err(|e| match e {
                zfs::ZfsError::Other { .. } if size.is_some() => EngineError::Invalid(format!(
                    "could not create volume {name} of size {}: {e}",
                    size.unwrap_or_default()
                )),
                e => EngineError::host(format!("could not create volume {name}"))(e),
            })?
            .ok_or_else(|| {
                EngineError::Internal(format!("the dataset of volume {name} has no mountpoint"))
            })?;
        let volume = Volume {
            name: name.to_owned(),
            dataset: dataset.as_str().to_owned(),
            mountpoint: mountpoint.display().to_string(),
            created: ids::now(),
        };
        let record = volume.clone();
        self.store
            .write(move |db| db.insert_volume(&record))
            .await?;
        Ok(volume)
    }

    /// Destroys a volume's dataset and everything in it; one already gone is fine.
    async fn destroy_volume_dataset(&self, dataset: &DatasetName) -> Result<(), zfs::ZfsError> {
        let target = dataset.clone();
        self.zfs(move |zfs| {
            match zfs.destroy(
                &target,
                DestroyFlags {
                    recursive: true,
                    force: true,
                    ..DestroyFlags::default()
                },
            ) {
                Err(err) if err.is_not_found() => Ok(()),
                other => other,
            }
        })
        .await
    }

    /// Removes a volume and its data. Refused while a running container mounts it; the mounts of
    /// stopped containers are forgotten (those containers start without it).
    pub async fn remove_volume(&self, name: String) -> Result<IdResponse, EngineError> {
        let no_such = || EngineError::NotFound("No such volume".into());
        let _held = self.objects.lock(&format!("volume:{name}")).await;
        // No container starts meanwhile (it could mount the volume being removed).
        let _starting = self.starting.write().await;
        let volume = self.find_volume(&name).await?.ok_or_else(no_such)?;
        let lookup = name.clone();
        let users = self
            .store
            .read(move |db| db.mounts_of_volume(&lookup))
            .await?;
        let mut running = vec![];
        for mount in &users {
            if !running.contains(&mount.container_id)
                && self.is_running(&mount.container_id).await?
            {
                running.push(mount.container_id.clone());
            }
        }
        if !running.is_empty() {
            return Err(EngineError::Conflict(format!(
                "volume {name} is in use by running container{} {}; stop {} first",
                if running.len() == 1 { "" } else { "s" },
                running.join(", "),
                if running.len() == 1 { "it" } else { "them" },
            )));
        }
        let dataset = DatasetName::new(volume.dataset.clone()).map_err(|e| {
            EngineError::Internal(format!("volume {name} has an invalid dataset: {e}"))
        })?;
        let intent = self.intend(Intent::VolumeRemove, &name).await?;
        if let Err(err) = self.destroy_volume_dataset(&dataset).await {
            self.done(intent).await;
            return Err(EngineError::host(format!(
                "could not destroy the dataset of volume {name}"
            ))(err));
        }
        let forget = name.clone();
        self.store
            .write(move |db| {
                db.delete_mounts_of_volume(&forget)?;
                db.delete_volume(&forget)
            })
            .await?;
        self.done(intent).await;
        tracing::info!(volume = %name, "volume removed");
        Ok(IdResponse { id: name })
    }

    /// Removes every volume no container mounts; answers their names.
    pub async fn prune_volumes(&self) -> Result<Vec<String>, EngineError> {
        let volumes = self.list_volumes().await?;
        let mut removed = vec![];
        // Oldest first, as the reference lists what it pruned (the listing is newest first).
        for volume in volumes.into_iter().rev() {
            let name = volume.name.clone();
            let used = self
                .store
                .read(move |db| Ok(!db.mounts_of_volume(&name)?.is_empty()))
                .await?;
            if used {
                continue;
            }
            match self.remove_volume(volume.name.clone()).await {
                Ok(_) => removed.push(volume.name),
                Err(err) => {
                    tracing::warn!(volume = %volume.name, error = %err, "prune could not remove volume")
                }
            }
        }
        Ok(removed)
    }

    /// After a crash: a volume being made without its record goes; one being removed is removed.
    pub(super) async fn recover_volume(
        &self,
        name: &str,
        removing: bool,
    ) -> Result<(), EngineError> {
        let recorded = self.find_volume(name).await?.is_some();
        if recorded && !removing {
            return Ok(());
        }
        let dataset = self
            .layout
            .volumes
            .child(name)
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        self.destroy_volume_dataset(&dataset)
            .await
            .map_err(EngineError::host(format!("could not remove volume {name}")))?;
        let forget = name.to_owned();
        self.store
            .write(move |db| {
                db.delete_mounts_of_volume(&forget)?;
                db.delete_volume(&forget)
            })
            .await?;
        Ok(())
    }
}
