//! The order of the daemon's life: at start, containers an earlier daemon left running are
//! stopped, intents finished or undone, the reaper started, leftovers cleaned up, networks made
//! again and the containers whose policy says so started; at stop, every running container
//! stopped.

use std::sync::Arc;

use super::{restart, Engine, EngineError};

impl Engine {
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
