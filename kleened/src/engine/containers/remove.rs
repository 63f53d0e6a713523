//! Stopping, removing, cleaning up after and pruning containers.

use kleene_api::IdResponse;
use zfs::DatasetName;

use crate::engine::recovery::Intent;
use crate::engine::{Engine, EngineError, Removed};
use crate::platform::runtime::DEFAULT_STOP_GRACE;

impl Engine {
    /// Removes a stopped container, its dataset and its records; answers once the dataset is
    /// destroyed (or handed to the reaper when ZFS keeps it busy, which the answer says). Only a
    /// container the runtime proves stopped is removed: when it cannot tell, nothing is destroyed.
    pub async fn remove_container(
        &self,
        identifier: String,
    ) -> Result<Removed<IdResponse>, EngineError> {
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
        // Gone for the API; its dataset goes before the answer, unless ZFS keeps it busy.
        self.logs.remove(&container.id);
        self.restarts.forget(&container.id);
        let in_background = if self.destroy_or_reap(dataset).await {
            vec![]
        } else {
            vec![container.dataset.clone()]
        };
        self.done(intent).await;
        tracing::info!(container = %container.id, "container removed");
        Ok(Removed {
            answer: IdResponse { id: container.id },
            in_background,
        })
    }

    /// Runs the runtime's cleanup for a container that is not running, and forgets the host-side
    /// interfaces of its endpoints; failures are logged.
    pub(in crate::engine) async fn cleanup_container(&self, id: &str) {
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

    pub(in crate::engine) async fn stop_running(&self, id: &str) -> Result<(), EngineError> {
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

    /// Removes every stopped container that is not marked `persist`; answers their IDs, oldest
    /// first, once their datasets are destroyed (see [`Engine::remove_container`]).
    pub async fn prune_containers(&self) -> Result<Removed<Vec<String>>, EngineError> {
        let mut removed = Removed {
            answer: vec![],
            in_background: vec![],
        };
        // Oldest first, as the reference lists what it pruned (the listing is newest first).
        for summary in self.list_containers(true).await?.into_iter().rev() {
            let c = summary.container;
            if c.running || c.persist {
                continue;
            }
            match self.remove_container(c.id.clone()).await {
                Ok(gone) => {
                    removed.answer.push(gone.answer.id);
                    removed.in_background.extend(gone.in_background);
                }
                Err(err) => {
                    tracing::warn!(container = %c.id, error = %err, "prune could not remove container")
                }
            }
        }
        Ok(removed)
    }
}
