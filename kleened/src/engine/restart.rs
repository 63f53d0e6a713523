//! Restart policies: `always` and `on-failure[:N]` bring a container back when its first process
//! ends, after a back-off, until a client stops it.
//!
//! Whether the daemon keeps a container running is kept in the store (`keep_running`): a
//! client's start sets it, `stop` clears it before the container is stopped, and so does an exit
//! the policy lets stay down. The decision is therefore the same after a daemon restart: at
//! start-up, `always` and `on-failure` containers the daemon was keeping running are started
//! again. The back-off lives in memory: 100 ms before the first restart, doubled for each next
//! one up to a minute, and back to 100 ms when the container ran at least 10 s.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use kleene_api::{Container, ExecConfig, RestartPolicy};

use super::Engine;

/// The wait before the first restart.
pub const FIRST_DELAY: Duration = Duration::from_millis(100);
/// The longest wait between restarts.
pub const MAX_DELAY: Duration = Duration::from_secs(60);
/// A run at least this long resets the wait to [`FIRST_DELAY`].
pub const STABLE_RUN: Duration = Duration::from_secs(10);

/// Whether a container whose first process ended with `code` is restarted, by its policy and the
/// restarts counted so far.
pub fn wants_restart(container: &Container, code: i32) -> bool {
    match container.restart_policy {
        RestartPolicy::No | RestartPolicy::OnStartup => false,
        RestartPolicy::Always => true,
        RestartPolicy::OnFailure => {
            code != 0
                && container
                    .restart_max_retries
                    .is_none_or(|max| container.restart_count < u64::from(max))
        }
    }
}

/// Whether the policy starts the container when the daemon starts (given the daemon kept it
/// running before).
pub fn starts_with_daemon(policy: RestartPolicy, kept_running: bool) -> bool {
    match policy {
        RestartPolicy::No => false,
        RestartPolicy::OnStartup => true,
        RestartPolicy::Always | RestartPolicy::OnFailure => kept_running,
    }
}

/// The back-off of one container.
#[derive(Debug, Clone, Copy)]
struct Backoff {
    /// The wait before its next restart.
    next: Duration,
    /// When its current run started.
    started: Instant,
}

/// The back-off of every container the daemon restarts, and whether the daemon is stopping (its
/// containers' exits are then not restarts).
#[derive(Debug, Default)]
pub struct Restarts {
    backoff: Mutex<HashMap<String, Backoff>>,
    stopping: AtomicBool,
}

impl Restarts {
    /// A run of the container started at `now`.
    pub fn started(&self, id: &str, now: Instant) {
        let mut map = self.backoff.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = map.entry(id.to_owned()).or_insert(Backoff {
            next: FIRST_DELAY,
            started: now,
        });
        entry.started = now;
    }

    /// The wait before restarting the container whose run ended at `now`; the next one is twice
    /// as long (at most [`MAX_DELAY`]), unless the run was stable.
    pub fn next_delay(&self, id: &str, now: Instant) -> Duration {
        let mut map = self.backoff.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = map.entry(id.to_owned()).or_insert(Backoff {
            next: FIRST_DELAY,
            started: now,
        });
        if now.saturating_duration_since(entry.started) >= STABLE_RUN {
            entry.next = FIRST_DELAY;
        }
        let delay = entry.next;
        entry.next = (delay * 2).min(MAX_DELAY);
        delay
    }

    /// Forgets the container's back-off (a client started or stopped it, or it is gone).
    pub fn forget(&self, id: &str) {
        self.backoff
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
    }

    /// The daemon stops its containers: their exits are not restarted.
    pub fn daemon_stopping(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    fn is_daemon_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }
}

impl Engine {
    /// After the first process of a container ended with `code` and the container stopped:
    /// schedules its restart when its policy asks for one and the daemon keeps it running, or
    /// records that it stays down.
    pub(super) async fn first_process_exited(&self, container_id: &str, code: i32) {
        let Some(mut delay) = self.restart_delay(container_id, code).await else {
            return;
        };
        let Some(engine) = self.me.upgrade() else {
            return;
        };
        let id = container_id.to_owned();
        let cancel = self.cancel.clone();
        self.tasks.spawn(async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = cancel.cancelled() => return,
                }
                if engine.restart_by_policy(&id).await {
                    return;
                }
                // A start that failed is a run that failed: the policy decides again.
                match engine.restart_delay(&id, 127).await {
                    Some(next) => delay = next,
                    None => return,
                }
            }
        });
    }

    /// Whether the container whose run ended with `code` is restarted, and after how long;
    /// when not, records that it stays down.
    async fn restart_delay(&self, container_id: &str, code: i32) -> Option<Duration> {
        if self.restarts.is_daemon_stopping() || self.cancel.is_cancelled() {
            return None;
        }
        let id = container_id.to_owned();
        let found = self
            .store
            .read(move |db| Ok((db.find_container(&id)?, db.keeps_running(&id)?)))
            .await;
        let (container, keep) = match found {
            Ok((Some(container), keep)) if container.id == container_id => (container, keep),
            Ok(_) => return None,
            Err(err) => {
                tracing::error!(container = container_id, error = %err, "cannot read the restart policy");
                return None;
            }
        };
        if !keep {
            return None;
        }
        if !wants_restart(&container, code) {
            if matches!(
                container.restart_policy,
                RestartPolicy::Always | RestartPolicy::OnFailure
            ) {
                tracing::info!(
                    container = container_id,
                    code,
                    "not restarted: its restart policy is done"
                );
            }
            self.restarts.forget(container_id);
            let id = container_id.to_owned();
            if let Err(err) = self
                .store
                .write(move |db| db.set_keep_running(&id, false, false))
                .await
            {
                tracing::warn!(container = container_id, error = %err, "cannot record that it stays stopped");
            }
            return None;
        }
        let delay = self.restarts.next_delay(container_id, Instant::now());
        tracing::info!(
            container = container_id,
            code,
            delay_ms = delay.as_millis() as u64,
            "restarting by its restart policy"
        );
        Some(delay)
    }

    /// Starts a container again by its policy, unless a client stopped, started or removed it
    /// meanwhile (answers true then too); false when the start failed.
    async fn restart_by_policy(self: &Arc<Self>, id: &str) -> bool {
        if self.restarts.is_daemon_stopping() {
            return true;
        }
        let _held = self.objects.lock(id).await;
        let key = id.to_owned();
        let keep = self.store.read(move |db| db.keeps_running(&key)).await;
        if !matches!(keep, Ok(true)) || matches!(self.is_running(id).await, Ok(true)) {
            return true;
        }
        let key = id.to_owned();
        match self.store.write(move |db| db.count_restart(&key)).await {
            Ok(Some(count)) => tracing::info!(container = id, count, "restart"),
            Ok(None) => return true,
            Err(err) => {
                tracing::error!(container = id, error = %err, "cannot count the restart");
                return true;
            }
        }
        match self.start_detached(id, true).await {
            Ok(()) => true,
            Err(err) => {
                tracing::error!(container = id, error = %err, "could not restart it");
                false
            }
        }
    }

    /// Starts a stopped container with its own command, without a client; `by_policy` keeps its
    /// restart count (a client's start resets it).
    pub(super) async fn start_detached(
        self: &Arc<Self>,
        id: &str,
        by_policy: bool,
    ) -> Result<(), String> {
        let exec = self
            .create_exec(ExecConfig {
                container_id: id.to_owned(),
                cmd: vec![],
                env: vec![],
                user: String::new(),
                tty: false,
            })
            .await
            .map_err(|e| e.to_string())?;
        let running = self
            .start_exec_as(&exec.id, true, None, by_policy)
            .await
            .map_err(|e| e.to_string())?;
        self.detach(running);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testdata::container;

    fn with(policy: RestartPolicy, max: Option<u32>, count: u64) -> Container {
        let mut c = container("c0ffee000001", None, "i1", "2024-01-01T00:00:00Z");
        c.restart_policy = policy;
        c.restart_max_retries = max;
        c.restart_count = count;
        c
    }

    #[test]
    fn policies_decide_by_exit_code_and_count() {
        assert!(!wants_restart(&with(RestartPolicy::No, None, 0), 1));
        assert!(!wants_restart(&with(RestartPolicy::OnStartup, None, 0), 1));
        assert!(wants_restart(&with(RestartPolicy::Always, None, 9), 0));
        assert!(wants_restart(&with(RestartPolicy::Always, None, 0), 137));
        assert!(!wants_restart(&with(RestartPolicy::OnFailure, None, 0), 0));
        assert!(wants_restart(&with(RestartPolicy::OnFailure, None, 100), 1));
        assert!(wants_restart(
            &with(RestartPolicy::OnFailure, Some(3), 2),
            1
        ));
        assert!(!wants_restart(
            &with(RestartPolicy::OnFailure, Some(3), 3),
            1
        ));
    }

    #[test]
    fn the_daemon_starts_what_it_kept_running() {
        assert!(starts_with_daemon(RestartPolicy::OnStartup, false));
        assert!(!starts_with_daemon(RestartPolicy::No, true));
        assert!(starts_with_daemon(RestartPolicy::Always, true));
        assert!(!starts_with_daemon(RestartPolicy::Always, false));
        assert!(starts_with_daemon(RestartPolicy::OnFailure, true));
    }

    #[test]
    fn the_wait_doubles_to_a_minute_and_resets_after_a_stable_run() {
        let restarts = Restarts::default();
        let t0 = Instant::now();
        restarts.started("c", t0);
        let waits: Vec<u128> = (0..12)
            .map(|_| restarts.next_delay("c", t0).as_millis())
            .collect();
        assert_eq!(
            waits,
            [100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 51200, 60000, 60000]
        );
        // A run of 10 s starts over.
        restarts.started("c", t0);
        assert_eq!(restarts.next_delay("c", t0 + STABLE_RUN).as_millis(), 100);
        // The next run is short again: the wait doubles.
        restarts.started("c", t0 + STABLE_RUN);
        let short = t0 + STABLE_RUN + Duration::from_millis(50);
        assert_eq!(restarts.next_delay("c", short).as_millis(), 200);
        restarts.forget("c");
        assert_eq!(restarts.next_delay("c", t0).as_millis(), 100);
    }
}
