//! Crash consistency. Every multi-step operation on the host records its intent in the store
//! before it touches anything and clears it when it is done; at start-up the daemon finishes or
//! undoes what an intent left behind, then checks that the store and ZFS agree, so a daemon
//! killed at any instant comes back to a state klee can see and remove.
//!
//! | intent | recorded before | after a crash |
//! |---|---|---|
//! | `image <id>` | the image's dataset or download is made | no image row: its dataset and download go; a row: done |
//! | `image-remove <id>` | the image's dataset is destroyed | the dataset (with the source snapshot named after it) and the row both go |
//! | `snapshot <dataset@id>` | a source dataset is snapshotted (zfs-copy, zfs-clone) | no image row: the snapshot goes (after the image's dataset, a clone of it) |
//! | `container-create <id>` | the clone is made | no container row: the clone goes |
//! | `container-remove <id>` | the dataset is destroyed | the dataset and the row both go |
//! | `volume <name>` | the volume's dataset is made | no volume row: the dataset goes |
//! | `volume-remove <name>` | the volume's dataset is destroyed | the dataset, its mounts and the row go |
//! | `build <id>` | a build starts | no image row: the build container (row and dataset) and the image's dataset go |
//!
//! Then, beyond intents: a dataset under `image/` or `container/` without a row goes (a container's
//! only when it is proven stopped, through the reaper: a removed container's dataset that was still
//! queued when the daemon died is one), an image or container row without its dataset goes, and downloads
//! (`.fetch-<id>`) left in the root's mountpoint go. Volumes are touched only as their intents say:
//! they are data.

use std::collections::HashSet;

use zfs::{DatasetName, DestroyFlags, SnapshotName};

use super::{Engine, EngineError};
use crate::layout::Layout;

/// What an operation is about to do, as recorded in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Intent {
    /// Creating the image with this ID.
    Image,
    /// Removing the image with this ID.
    ImageRemove,
    /// Taking this snapshot of a source dataset for an image.
    Snapshot,
    /// Creating the container with this ID.
    ContainerCreate,
    /// Removing the container with this ID.
    ContainerRemove,
    /// Creating the volume with this name.
    Volume,
    /// Removing the volume with this name.
    VolumeRemove,
    /// Building the image with this ID (its build container has the same ID).
    Build,
}

impl Intent {
    fn as_str(self) -> &'static str {
        match self {
            Intent::Image => "image",
            Intent::ImageRemove => "image-remove",
            Intent::Snapshot => "snapshot",
            Intent::ContainerCreate => "container-create",
            Intent::ContainerRemove => "container-remove",
            Intent::Volume => "volume",
            Intent::VolumeRemove => "volume-remove",
            Intent::Build => "build",
        }
    }

    fn parse(text: &str) -> Option<Intent> {
        Some(match text {
            "image" => Intent::Image,
            "image-remove" => Intent::ImageRemove,
            "snapshot" => Intent::Snapshot,
            "container-create" => Intent::ContainerCreate,
            "container-remove" => Intent::ContainerRemove,
            "volume" => Intent::Volume,
            "volume-remove" => Intent::VolumeRemove,
            "build" => Intent::Build,
            _ => return None,
        })
    }
}

/// A recorded intent, to clear once its operation is done.
#[derive(Debug)]
#[must_use = "an intent must be cleared when its operation is done"]
pub(super) struct Recorded(i64);

impl Engine {
    /// Records that an operation is about to touch the host.
    pub(super) async fn intend(
        &self,
        intent: Intent,
        object: &str,
    ) -> Result<Recorded, EngineError> {
        let object = object.to_owned();
        Ok(Recorded(
            self.store
                .write(move |db| db.add_intent(intent.as_str(), &object))
                .await?,
        ))
    }

    /// Clears an intent whose operation is done (finished or undone). A failure only leaves
    /// work for the next start.
    pub(super) async fn done(&self, recorded: Recorded) {
        let id = recorded.0;
        if let Err(err) = self.store.write(move |db| db.remove_intent(id)).await {
            tracing::warn!(intent = id, error = %err, "could not clear an intent");
        }
    }

    /// At start-up, before anything else: finishes or undoes what a crash left, and makes the store
    /// and ZFS agree. Failures are logged: what cannot be done now is tried at the next start.
    pub(super) async fn recover(&self) {
        let intents = match self.store.read(|db| db.list_intents()).await {
            Ok(intents) => intents,
            Err(err) => {
                tracing::error!(error = %err, "cannot read the recorded intents");
                return;
            }
        };
        // Images before their source snapshots: an image dataset may be a clone of one.
        let mut ordered: Vec<(i64, Intent, String)> = intents
            .into_iter()
            .filter_map(|(id, kind, object)| {
                let parsed = Intent::parse(&kind);
                if parsed.is_none() {
                    tracing::warn!(intent = id, %kind, "unknown intent; dropped");
                }
                Some((id, parsed?, object))
            })
            .collect();
        ordered.sort_by_key(|(id, kind, _)| (*kind == Intent::Snapshot, *id));
        for (id, kind, object) in ordered {
            tracing::info!(intent = kind.as_str(), %object, "finishing what an earlier daemon left");
            let result = match kind {
                Intent::Image => self.recover_image(&object).await,
                Intent::ImageRemove => self.recover_image_removal(&object).await,
                Intent::Snapshot => self.recover_snapshot(&object).await,
                Intent::ContainerCreate => self.recover_container(&object, false).await,
                Intent::ContainerRemove => self.recover_container(&object, true).await,
                Intent::Volume => self.recover_volume(&object, false).await,
                Intent::VolumeRemove => self.recover_volume(&object, true).await,
                Intent::Build => self.recover_build(&object).await,
            };
            match result {
                Ok(()) => self.done(Recorded(id)).await,
                Err(err) => {
                    tracing::error!(intent = kind.as_str(), %object, error = %err, "could not finish it; trying again at the next start")
                }
            }
        }
        if let Err(err) = self.reconcile().await {
            tracing::error!(error = %err, "could not check the store against ZFS");
        }
    }

    async fn recover_image(&self, id: &str) -> Result<(), EngineError> {
        let lookup = id.to_owned();
        let recorded = self
            .store
            .read(move |db| db.image_by_id(&lookup))
            .await?
            .is_some();
        self.remove_download(id).await;
        if recorded {
            return Ok(());
        }
        let dataset = self
            .layout
            .image(id)
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        self.destroy_if_there(dataset, false).await
    }

    async fn recover_image_removal(&self, id: &str) -> Result<(), EngineError> {
        let lookup = id.to_owned();
        match self.store.read(move |db| db.image_by_id(&lookup)).await? {
            Some(image) => self.remove_image_now(&image).await,
            None => {
                let dataset = self
                    .layout
                    .image(id)
                    .map_err(|e| EngineError::Internal(e.to_string()))?;
                self.destroy_if_there(dataset, false).await
            }
        }
    }

    async fn recover_snapshot(&self, name: &str) -> Result<(), EngineError> {
        let snapshot = SnapshotName::new(name.to_owned())
            .map_err(|e| EngineError::Internal(format!("intent names no snapshot: {e}")))?;
        let image = snapshot.snap().to_owned();
        let recorded = self
            .store
            .read(move |db| db.image_by_id(&image))
            .await?
            .is_some();
        if recorded {
            // The image was made: for zfs-clone the snapshot is its origin and stays.
            return Ok(());
        }
        self.zfs(move |zfs| {
            if zfs.snapshot_exists(&snapshot)? {
                zfs.destroy_snapshot(&snapshot, DestroyFlags::default())?;
            }
            Ok(())
        })
        .await?;
        Ok(())
    }

    async fn recover_container(&self, id: &str, removing: bool) -> Result<(), EngineError> {
        let lookup = id.to_owned();
        let recorded = self
            .store
            .read(move |db| db.container_by_id(&lookup))
            .await?
            .is_some();
        if recorded && !removing {
            return Ok(());
        }
        if self.is_running(id).await? {
            return Err(EngineError::Conflict(format!(
                "container {id} still has processes"
            )));
        }
        let dataset = self
            .layout
            .containers
            .child(id)
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        self.destroy_if_there(dataset, true).await?;
        if recorded {
            let id = id.to_owned();
            self.store.write(move |db| db.delete_container(&id)).await?;
        }
        Ok(())
    }

    async fn recover_build(&self, id: &str) -> Result<(), EngineError> {
        let lookup = id.to_owned();
        if self
            .store
            .read(move |db| db.image_by_id(&lookup))
            .await?
            .is_some()
        {
            return Ok(());
        }
        self.recover_container(id, true).await?;
        let dataset = self
            .layout
            .image(id)
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        self.destroy_if_there(dataset, true).await
    }

    /// Destroys a dataset of the layout and everything below it, if it exists.
    async fn destroy_if_there(&self, dataset: DatasetName, force: bool) -> Result<(), EngineError> {
        self.zfs(move |zfs| {
            if !zfs.exists(&dataset)? {
                return Ok(());
            }
            zfs.destroy(
                &dataset,
                DestroyFlags {
                    recursive: true,
                    force,
                    ..DestroyFlags::default()
                },
            )
        })
        .await?;
        Ok(())
    }

    async fn remove_download(&self, id: &str) {
        let Some(root) = &self.root_mountpoint else {
            return;
        };
        let path = root.join(format!(".fetch-{id}"));
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {
                tracing::info!(path = %path.display(), "removed a download left by an earlier daemon")
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "could not remove a download")
            }
        }
    }

    /// Datasets without rows and container rows without datasets, whatever left them.
    async fn reconcile(&self) -> Result<(), EngineError> {
        let layout = self.layout.clone();
        let (images, containers) = self
            .zfs(move |zfs| {
                Ok((
                    zfs.children(&layout.images)?,
                    zfs.children(&layout.containers)?,
                ))
            })
            .await?;
        let (image_rows, container_rows) = self
            .store
            .read(|db| {
                Ok((
                    db.list_images()?,
                    db.list_containers()?
                        .into_iter()
                        .map(|s| s.container)
                        .collect::<Vec<_>>(),
                ))
            })
            .await?;
        let known_images: HashSet<&str> = image_rows.iter().map(|i| i.dataset.as_str()).collect();
        let known_containers: HashSet<&str> =
            container_rows.iter().map(|c| c.dataset.as_str()).collect();
        for dataset in &containers {
            if known_containers.contains(dataset.as_str()) {
                continue;
            }
            let Some(id) = Layout::id_under(&self.layout.containers, dataset.as_str()) else {
                continue;
            };
            if self.is_running(id).await? {
                tracing::warn!(
                    dataset = dataset.as_str(),
                    "a dataset without a container runs; left alone"
                );
                continue;
            }
            tracing::info!(
                dataset = dataset.as_str(),
                "a container dataset the store does not know: destroyed in the background"
            );
            self.reap(dataset.clone());
        }
        for dataset in &images {
            if known_images.contains(dataset.as_str()) {
                continue;
            }
            tracing::warn!(
                dataset = dataset.as_str(),
                "destroying an image dataset the store does not know"
            );
            if let Err(err) = self.destroy_if_there(dataset.clone(), false).await {
                tracing::error!(dataset = dataset.as_str(), error = %err, "could not destroy it");
            }
        }
        // Logs of containers that are gone (removed while the daemon died).
        let known_ids: HashSet<&str> = container_rows.iter().map(|c| c.id.as_str()).collect();
        for id in self.logs.containers() {
            if !known_ids.contains(id.as_str()) {
                tracing::info!(container = %id, "removing the log of a container that is gone");
                self.logs.remove(&id);
            }
        }
        let present_images: HashSet<&str> = images.iter().map(DatasetName::as_str).collect();
        for image in &image_rows {
            let ours = Layout::id_under(&self.layout.images, &image.dataset).is_some();
            if !ours || present_images.contains(image.dataset.as_str()) {
                continue;
            }
            tracing::warn!(image = %image.id, dataset = %image.dataset, "removing an image whose dataset is gone");
            let id = image.id.clone();
            self.store.write(move |db| db.delete_image(&id)).await?;
        }
        let present: HashSet<&str> = containers.iter().map(DatasetName::as_str).collect();
        for container in &container_rows {
            // Only rows of this root are judged: a row naming a dataset elsewhere (a database
            // kept across a change of kleene_root) is not this daemon's to drop.
            let ours = Layout::id_under(&self.layout.containers, &container.dataset).is_some();
            if !ours || present.contains(container.dataset.as_str()) {
                continue;
            }
            tracing::warn!(container = %container.id, dataset = %container.dataset, "removing a container whose dataset is gone");
            let id = container.id.clone();
            self.store.write(move |db| db.delete_container(&id)).await?;
        }
        if let Some(root) = &self.root_mountpoint {
            let mut entries = match tokio::fs::read_dir(root).await {
                Ok(entries) => entries,
                Err(_) => return Ok(()),
            };
            while let Ok(Some(entry)) = entries.next_entry().await {
                if let Some(id) = entry
                    .file_name()
                    .to_str()
                    .and_then(|n| n.strip_prefix(".fetch-"))
                {
                    self.remove_download(id).await;
                }
            }
        }
        Ok(())
    }
}
