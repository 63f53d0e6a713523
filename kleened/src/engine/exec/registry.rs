//! The registry of exec instances: what `POST /exec/create` made, until its process ends or it is
//! stopped; unstarted ones expire after [`UNSTARTED_TTL`] and are capped per container.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// How long an exec instance that was never started is kept. `klee exec` and `klee run` start
/// theirs within milliseconds of creating it; an hour leaves any script ample time.
pub(crate) const UNSTARTED_TTL: Duration = Duration::from_secs(3600);

/// How many never-started exec instances one container may have. Clients create one and start it
/// at once, so a container seldom has more than one waiting; 64 leaves room for scripts that
/// prepare several, and bounds a leaky client to a few hundred KiB per container instead of the
/// 4 KiB per create, never freed, that 20 000 creates cost before.
pub(crate) const UNSTARTED_PER_CONTAINER: usize = 64;

/// An exec instance.
#[derive(Debug)]
pub(super) struct ExecInstance {
    pub(super) container_id: String,
    pub(super) cmd: Vec<String>,
    pub(super) env: Vec<String>,
    pub(super) user: String,
    pub(super) tty: bool,
    /// When it was created, for its expiry while it is not started.
    pub(super) created: Instant,
    /// Set once started: the helper's PID and the exit code once it ended.
    pub(super) started: Option<(u32, watch::Receiver<Option<i32>>)>,
}

/// Where the registry reads the time: the monotonic clock, or one a test moves.
#[derive(Clone)]
pub(super) struct Clock(Arc<dyn Fn() -> Instant + Send + Sync>);

impl Clock {
    fn now(&self) -> Instant {
        (self.0)()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock(Arc::new(Instant::now))
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

/// The instances and when the next unstarted one expires.
#[derive(Debug, Default)]
struct Registry {
    map: HashMap<String, ExecInstance>,
    /// The earliest expiry among unstarted instances, if any; nothing is looked at before it.
    next_expiry: Option<Instant>,
}

impl Registry {
    /// Forgets unstarted instances older than `ttl`, when one is due.
    fn expire(&mut self, now: Instant, ttl: Duration) {
        if self.next_expiry.is_none_or(|due| now < due) {
            return;
        }
        let before = self.map.len();
        self.map
            .retain(|_, i| i.started.is_some() || now.duration_since(i.created) < ttl);
        let expired = before - self.map.len();
        if expired > 0 {
            tracing::info!(
                expired,
                "forgot exec instances never started within {ttl:?}"
            );
        }
        self.next_expiry = self
            .map
            .values()
            .filter(|i| i.started.is_none())
            .map(|i| i.created + ttl)
            .min();
    }
}

/// The in-memory registry of exec instances.
#[derive(Debug)]
pub(crate) struct Execs {
    registry: std::sync::Mutex<Registry>,
    clock: Clock,
    /// How long an unstarted instance is kept.
    pub(super) ttl: Duration,
    /// How many unstarted instances one container may have.
    per_container: usize,
}

impl Default for Execs {
    fn default() -> Self {
        Execs::new(Clock::default(), UNSTARTED_TTL, UNSTARTED_PER_CONTAINER)
    }
}

/// A container has as many unstarted exec instances as it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct TooManyUnstarted {
    /// The bound it reached.
    pub(super) limit: usize,
}

impl Execs {
    pub(super) fn new(clock: Clock, ttl: Duration, per_container: usize) -> Execs {
        Execs {
            registry: std::sync::Mutex::default(),
            clock,
            ttl,
            per_container,
        }
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        // A poisoned lock only means a panic elsewhere; the map itself stays consistent.
        let mut registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        registry.expire(self.clock.now(), self.ttl);
        registry
    }

    /// Runs `f` on the live instances (expired ones are gone first).
    pub(super) fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, ExecInstance>) -> T) -> T {
        f(&mut self.registry().map)
    }

    /// Registers a new, unstarted instance, unless its container has as many unstarted ones as
    /// it may.
    pub(super) fn insert(
        &self,
        id: String,
        mut instance: ExecInstance,
    ) -> Result<(), TooManyUnstarted> {
        let now = self.clock.now();
        let mut registry = self.registry();
        let waiting = registry
            .map
            .values()
            .filter(|i| i.started.is_none() && i.container_id == instance.container_id)
            .count();
        if waiting >= self.per_container {
            return Err(TooManyUnstarted {
                limit: self.per_container,
            });
        }
        instance.created = now;
        let expiry = now + self.ttl;
        registry.next_expiry = Some(registry.next_expiry.map_or(expiry, |due| due.min(expiry)));
        registry.map.insert(id, instance);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A clock that stands still until the test moves it.
    fn movable_clock() -> (Clock, Arc<Mutex<Instant>>) {
        let now = Arc::new(Mutex::new(Instant::now()));
        let read = Arc::clone(&now);
        (
            Clock(Arc::new(move || {
                *read.lock().unwrap_or_else(|e| e.into_inner())
            })),
            now,
        )
    }

    fn advance(now: &Mutex<Instant>, by: Duration) {
        *now.lock().unwrap_or_else(|e| e.into_inner()) += by;
    }

    fn instance(container: &str) -> ExecInstance {
        ExecInstance {
            container_id: container.to_owned(),
            cmd: vec!["/bin/true".into()],
            env: vec![],
            user: String::new(),
            tty: false,
            created: Instant::now(),
            started: None,
        }
    }

    fn ids(execs: &Execs) -> Vec<String> {
        let mut ids: Vec<String> = execs.with(|map| map.keys().cloned().collect());
        ids.sort();
        ids
    }

    #[test]
    fn unstarted_instances_expire_after_their_time() {
        let (clock, now) = movable_clock();
        let execs = Execs::new(clock, Duration::from_secs(3600), 64);
        execs.insert("a".into(), instance("c1")).unwrap();
        advance(&now, Duration::from_secs(1800));
        execs.insert("b".into(), instance("c1")).unwrap();
        advance(&now, Duration::from_secs(1799));
        assert_eq!(ids(&execs), ["a", "b"], "neither is an hour old yet");
        advance(&now, Duration::from_secs(1));
        assert_eq!(ids(&execs), ["b"], "a is an hour old");
        advance(&now, Duration::from_secs(1800));
        assert_eq!(ids(&execs), Vec::<String>::new());
    }

    #[test]
    fn started_instances_do_not_expire() {
        let (clock, now) = movable_clock();
        let execs = Execs::new(clock, Duration::from_secs(60), 64);
        execs.insert("run".into(), instance("c1")).unwrap();
        let (_exited, watcher) = watch::channel(None);
        execs.with(|map| map.get_mut("run").unwrap().started = Some((42, watcher)));
        advance(&now, Duration::from_secs(24 * 3600));
        assert_eq!(ids(&execs), ["run"]);
    }

    #[test]
    fn unstarted_instances_are_capped_per_container() {
        let (clock, now) = movable_clock();
        let execs = Execs::new(clock, Duration::from_secs(3600), 3);
        for id in ["a", "b", "c"] {
            execs.insert(id.into(), instance("c1")).unwrap();
        }
        assert_eq!(
            execs.insert("d".into(), instance("c1")),
            Err(TooManyUnstarted { limit: 3 })
        );
        execs
            .insert("x".into(), instance("c2"))
            .expect("another container has its own room");
        // A started instance no longer waits, and one stopped is gone: both make room.
        let (_exited, watcher) = watch::channel(None);
        execs.with(|map| map.get_mut("a").unwrap().started = Some((42, watcher)));
        execs.insert("d".into(), instance("c1")).unwrap();
        execs.with(|map| map.remove("b"));
        execs.insert("e".into(), instance("c1")).unwrap();
        assert!(execs.insert("f".into(), instance("c1")).is_err());
        // And so does expiry.
        advance(&now, Duration::from_secs(3600));
        execs.insert("f".into(), instance("c1")).unwrap();
        assert_eq!(ids(&execs), ["a", "f"], "the rest expired, x with them");
    }
}
