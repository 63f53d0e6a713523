//! Updating a container: name, environment, restart policy, jail parameters and limits, applied
//! to a running container at once or not at all.

use std::sync::Arc;

use kleene_api::{ContainerConfig, IdResponse, RestartPolicy};

use super::{check_max_retries, name_taken};
use crate::engine::limits::{self, LimitChange};
use crate::engine::{names, Engine, EngineError};

impl Engine {
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
                let network = container.network_driver;
                // The reference's wording, spelling included.
                tokio::task::spawn_blocking(move || runtime.update(&id, network, &params))
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
}
