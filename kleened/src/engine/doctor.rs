//! The daemon's own examination of its host (`GET /doctor`, `POST /doctor/fix`): the doctor's
//! checks ([`crate::doctor`]) with the engine's clients, its store and its reaper's queue, so a
//! removed container's dataset being destroyed is not taken for a leftover.

use std::sync::Arc;

use kleene_api::DoctorReport;

use super::Engine;
use crate::doctor::gather::{examine, Clients, StoreSource};
use crate::doctor::Settings;

impl Engine {
    /// Gives the doctor the configuration it checks against (at daemon start); without it the
    /// configuration's defaults for the root are used.
    pub fn set_doctor_settings(&self, settings: Settings) {
        let _ = self.doctor.set(settings);
    }

    /// Examines the host; with `fix`, does the safe fixes first and examines it again. Holds the
    /// start lock meanwhile, so no container starts while leftovers are removed.
    pub async fn doctor(&self, fix: bool) -> DoctorReport {
        let settings = self
            .doctor
            .get()
            .cloned()
            .unwrap_or_else(|| Settings::defaults(self.layout.root.as_str()));
        let path = settings.metadata_path.clone().or_else(|| {
            self.root_mountpoint
                .as_ref()
                .map(|m| m.join("metadata.sqlite"))
        });
        let clients = Arc::new(Clients {
            zfs: Arc::clone(&self.zfs),
            layout: self.layout.clone(),
            settings,
            runner: self.host.runner(),
            network: self.network.clone(),
            runtime: self.runtime.clone(),
        });
        let _starting = if fix {
            Some(self.starting.write().await)
        } else {
            None
        };
        examine(
            clients,
            StoreSource {
                store: Ok(Some(self.store.clone())),
                path,
            },
            true,
            self.reaper.queued(),
            fix,
        )
        .await
    }
}
