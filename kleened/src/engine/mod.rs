//! The daemon's domain logic, free of HTTP: what each API operation does, in terms of the store (and,
//! as they arrive, the platform drivers). Handlers in `server/` decode a request, call one function
//! here and encode its result.

use std::sync::Arc;

use kleene_api::{
    ContainerInspect, ContainerSummary, Image, Network, NetworkInspect, Volume, VolumeInspect,
};

use crate::store::{Store, StoreError};

/// Why an operation failed. The server maps each variant to one HTTP status (`server::error`).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The object named in the request does not exist; the message is the API's.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the state of an object.
    #[error("{0}")]
    Conflict(String),
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Shared state of the daemon: everything a request may need.
#[derive(Debug, Clone)]
pub struct Engine {
    store: Store,
}

impl Engine {
    /// An engine over an opened store.
    pub fn new(store: Store) -> Arc<Engine> {
        Arc::new(Engine { store })
    }

    /// Every image, newest first.
    pub async fn list_images(&self) -> Result<Vec<Image>, EngineError> {
        Ok(self.store.read(|db| db.list_images()).await?)
    }

    /// One image, by ID, ID prefix or `name[:tag]`.
    pub async fn inspect_image(&self, identifier: String) -> Result<Image, EngineError> {
        self.store
            .read(move |db| db.find_image(&identifier))
            .await?
            .ok_or_else(|| EngineError::NotFound("image not found".into()))
    }

    /// Containers, newest first: all of them, or only those running.
    pub async fn list_containers(&self, all: bool) -> Result<Vec<ContainerSummary>, EngineError> {
        let containers = self.store.read(|db| db.list_containers()).await?;
        // No runtime driver is wired into the daemon yet, so the store's `running: false` is the truth.
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
        self.store
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
            .ok_or_else(|| EngineError::NotFound("container not found".into()))
    }

    /// Every network, by name.
    pub async fn list_networks(&self) -> Result<Vec<Network>, EngineError> {
        Ok(self.store.read(|db| db.list_networks()).await?)
    }

    /// One network with its endpoints, by ID, ID prefix or name.
    pub async fn inspect_network(&self, identifier: String) -> Result<NetworkInspect, EngineError> {
        self.store
            .read(move |db| {
                let Some(network) = db.find_network(&identifier)? else {
                    return Ok(None);
                };
                Ok(Some(NetworkInspect {
                    network_endpoints: db.endpoints_of_network(&network.id)?,
                    network,
                }))
            })
            .await?
            .ok_or_else(|| EngineError::NotFound("network not found".into()))
    }

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
}
