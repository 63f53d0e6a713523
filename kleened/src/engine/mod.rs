//! The daemon's domain logic, free of HTTP: what each API operation does, in terms of the store, ZFS
//! and the host. Handlers in `server/` decode a request, call one function here and encode its result.

pub mod build;
mod containers;
mod doctor;
mod exec;
#[cfg(test)]
pub(crate) mod fake;
mod fetch;
pub mod ids;
mod images;
mod lifecycle;
pub mod limits;
pub mod logs;
pub mod names;
mod networks;
pub mod progress;
mod reaper;
mod recovery;
pub mod restart;
#[cfg(test)]
mod tests;
mod volumes;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use zfs::{Zfs, ZfsError};

use crate::config::TargetOs;
use crate::platform::{Host, NetworkHost, Runtime};

use crate::store::{Store, StoreError};
pub use exec::{Client, ClientEvent, ExitRecorder, RunningExec};
pub use reaper::Removed;

pub use crate::config::StorageConfig;
use crate::layout::Layout;

/// An I/O error as the reference words it: its errno as an Erlang atom (`:enoent`), as Kleene's
/// messages carry them.
pub(crate) fn errno_atom(err: &std::io::Error) -> String {
    err.raw_os_error().map_or_else(
        || err.kind().to_string(),
        |code| format!(":{:?}", nix::errno::Errno::from_raw(code)).to_lowercase(),
    )
}

/// Why an operation failed, by cause. `server::reply` is the one place that turns a cause into
/// the HTTP status the API gives it for each operation; the message is what the client prints.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The object the request names does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The object's state does not allow the operation: it runs or does not, it is in use, its
    /// name is taken.
    #[error("{0}")]
    Conflict(String),
    /// A value in the request is refused (a name, a parameter, an image reference, a port).
    #[error("{0}")]
    Invalid(String),
    /// The host refused or failed the operation; `context` says what was being done (when it is
    /// empty the host's words are the whole message).
    #[error("{}", with_context(context, cause))]
    Host {
        /// What was being done.
        context: String,
        /// What the host said.
        #[source]
        cause: HostCause,
    },
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// ZFS failed where no more can be said than what it printed.
    #[error(transparent)]
    Zfs(#[from] ZfsError),
    /// The daemon itself failed (a task that panicked, a setting it cannot use).
    #[error("{0}")]
    Internal(String),
}

/// `context: cause`, or the cause alone without a context.
fn with_context(context: &str, cause: &HostCause) -> String {
    if context.is_empty() {
        cause.to_string()
    } else {
        format!("{context}: {cause}")
    }
}

/// The host's side of an [`EngineError::Host`].
#[derive(Debug, thiserror::Error)]
pub enum HostCause {
    /// zfs(8).
    #[error(transparent)]
    Zfs(#[from] ZfsError),
    /// The container runtime (jail(8), jexec(8), the Linux runtime helper).
    #[error(transparent)]
    Runtime(#[from] crate::platform::RuntimeError),
    /// Host networking (interfaces, the packet filter).
    #[error(transparent)]
    Network(#[from] crate::platform::NetworkError),
    /// Another host command (tar, uname, freebsd-update).
    #[error(transparent)]
    Command(#[from] crate::platform::HostError),
}

impl EngineError {
    /// Maps a host failure to [`EngineError::Host`] saying what was being done:
    /// `.map_err(EngineError::host("could not stop container x"))`.
    pub fn host<E: Into<HostCause>>(context: impl Into<String>) -> impl FnOnce(E) -> EngineError {
        let context = context.into();
        move |cause| EngineError::Host {
            context,
            cause: cause.into(),
        }
    }
}

/// A blocking task that did not finish (it panicked or was cancelled): the daemon's own failure.
impl From<tokio::task::JoinError> for EngineError {
    fn from(err: tokio::task::JoinError) -> Self {
        EngineError::Internal(format!("a task of the daemon failed: {err}"))
    }
}

/// What the engine is built from.
#[derive(Debug)]
pub struct EngineParts {
    /// The metadata store.
    pub store: Store,
    /// The ZFS client.
    pub zfs: Zfs,
    /// Where objects live in ZFS.
    pub layout: Layout,
    /// Host commands.
    pub host: Host,
    /// The container runtime of the platform, if it has one.
    pub runtime: Option<Arc<dyn Runtime>>,
    /// Host networking of the platform, if it has it.
    pub network: Option<Arc<dyn NetworkHost>>,
    /// Where container datasets are mounted (their parent's mountpoint), if known.
    pub containers_mountpoint: Option<PathBuf>,
    /// The root dataset's mountpoint (downloads are kept there), if known.
    pub root_mountpoint: Option<PathBuf>,
    /// Where and how much of the containers' output is kept.
    pub logs: logs::LogConfig,
    /// Default sizes of containers and volumes.
    pub storage: StorageConfig,
}

/// Shared state of the daemon: everything a request may need.
#[derive(Debug)]
pub struct Engine {
    store: Store,
    zfs: Arc<Zfs>,
    layout: Layout,
    host: Host,
    runtime: Option<Arc<dyn Runtime>>,
    network: Option<Arc<dyn NetworkHost>>,
    /// The interface of the host's default route, found at start (NAT `<host-gateway>`, and the
    /// interface of ports published on `[]`).
    host_gateway: std::sync::Mutex<Option<String>>,
    containers_mountpoint: Option<PathBuf>,
    root_mountpoint: Option<PathBuf>,
    execs: exec::Execs,
    /// Shared by every exec start, taken alone by what no start may run beside (a volume's
    /// removal, the doctor's fixes). A start holds it for a bounded time: the runtime reads
    /// nothing of the container that could make it wait (see `platform::linux::helper`).
    starting: tokio::sync::RwLock<()>,
    /// One lock per container while an exec of it starts, so two execs cannot both create the
    /// same container and one instance cannot be started twice, while other containers start
    /// freely beside it.
    container_starts: ObjectLocks,
    /// One lock per object being changed (a container's removal, stop, update), so that
    /// concurrent requests on one object run one after the other.
    objects: ObjectLocks,
    http: reqwest::Client,
    /// Long operations (image creation) run here, so shutdown can wait for them.
    tasks: TaskTracker,
    /// Fires when the daemon shuts down; long operations stop and clean up.
    cancel: CancellationToken,
    /// When the engine was made, at the daemon's start: its uptime in `GET /info`.
    started: std::time::Instant,
    /// Removed containers' datasets, destroyed in the background.
    reaper: reaper::Reaper,
    /// The containers' output.
    logs: logs::Logs,
    storage: StorageConfig,
    /// The back-off of containers restarted by their policy.
    restarts: restart::Restarts,
    /// The engine itself, for tasks it starts on its own (restarts).
    me: std::sync::Weak<Engine>,
    /// The configuration `GET /doctor` checks against.
    doctor: std::sync::OnceLock<crate::doctor::Settings>,
}

impl Engine {
    /// An engine over its parts.
    pub fn new(parts: EngineParts) -> Result<Arc<Engine>, EngineError> {
        // reqwest and the listeners use the process-wide rustls provider; installing it twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(60))
            .user_agent(concat!("kleened/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| EngineError::Internal(format!("cannot set up the HTTP client: {e}")))?;
        Ok(Arc::new_cyclic(|me| Engine {
            store: parts.store,
            zfs: Arc::new(parts.zfs),
            layout: parts.layout,
            host: parts.host,
            runtime: parts.runtime,
            network: parts.network,
            host_gateway: std::sync::Mutex::new(None),
            containers_mountpoint: parts.containers_mountpoint,
            root_mountpoint: parts.root_mountpoint,
            execs: exec::Execs::default(),
            starting: tokio::sync::RwLock::new(()),
            container_starts: ObjectLocks::default(),
            objects: ObjectLocks::default(),
            http,
            tasks: TaskTracker::new(),
            cancel: CancellationToken::new(),
            started: std::time::Instant::now(),
            reaper: reaper::Reaper::default(),
            logs: logs::Logs::new(parts.logs),
            storage: parts.storage,
            restarts: restart::Restarts::default(),
            me: me.clone(),
            doctor: std::sync::OnceLock::new(),
        }))
    }

    /// The platform the daemon runs on.
    pub fn os(&self) -> TargetOs {
        self.host.os()
    }

    /// What the daemon says about itself. Never fails: a figure that cannot be read (the store,
    /// the runtime, zfs or uname failing) is `None`, with a warning in the log, so the fixed
    /// facts (versions, the default network driver klee asks for) are always answered.
    pub async fn info(&self) -> kleene_api::Info {
        let (os, runtime) = match self.os() {
            TargetOs::FreeBsd => ("freebsd", "jail"),
            TargetOs::Linux => ("linux", "namespaces"),
        };
        // The reference's default on both platforms (on Linux ipnet has a namespace of its own).
        let driver = kleene_api::NetworkDriver::Ipnet;
        fn known<T, E: std::fmt::Display>(what: &str, result: Result<T, E>) -> Option<T> {
            result
                .inspect_err(|err| tracing::warn!("info: cannot read {what}: {err}"))
                .ok()
        }
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);

        let host = self.host.clone();
        let release = known(
            "the host's release",
            tokio::task::spawn_blocking(move || host.release().map_err(|e| e.to_string()))
                .await
                .unwrap_or_else(|e| Err(e.to_string())),
        );
        // zfs's own view of the root: `used` counts everything below it, `available` is what
        // the pool (and any quota) leaves it.
        let root = self.layout.root.as_str().to_owned();
        let usage = known(
            "the space of kleene_root",
            self.zfs(move |zfs| zfs.list(&zfs::ListQuery::new(["used", "available"]).root(root)))
                .await
                .map_err(|e| e.to_string())
                .and_then(|rows| match <[_; 1]>::try_from(rows) {
                    Ok([row]) => Ok((row[0].clone(), row[1].clone())),
                    Err(rows) => Err(format!("zfs list answered {} rows", rows.len())),
                }),
        );
        let containers = known(
            "the containers",
            self.store.read(|db| db.list_containers()).await,
        );
        // As `list_containers` does: which containers run is the runtime's word, never the
        // store's; a runtime that cannot tell leaves the count unknown, not zero.
        let running = match self.runtime.clone() {
            None => Some(std::collections::HashSet::new()),
            Some(containers_runtime) => known(
                "which containers run",
                tokio::task::spawn_blocking(move || {
                    containers_runtime.running().map_err(|e| e.to_string())
                })
                .await
                .unwrap_or_else(|e| Err(e.to_string()))
                .map(|ids| ids.into_iter().collect::<std::collections::HashSet<_>>()),
            ),
        };
        let images = known("the images", self.list_images().await);
        let networks = known("the networks", self.list_networks().await);
        let volumes = known("the volumes", self.list_volumes().await);

        kleene_api::Info {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            api_version: kleene_api::API_VERSION.to_owned(),
            os: os.to_owned(),
            runtime: runtime.to_owned(),
            default_network_driver: driver,
            kleene_root: self.layout.root.as_str().to_owned(),
            os_version: release.as_ref().map(|r| r.version.clone()),
            machine: release.map(|r| r.machine),
            kleene_root_used: usage.as_ref().map(|(used, _)| used.clone()),
            kleene_root_available: usage.map(|(_, available)| available),
            images: images.map(|i| count(i.len())),
            containers: containers.as_ref().map(|c| count(c.len())),
            containers_running: containers.zip(running).map(|(containers, running)| {
                count(
                    containers
                        .iter()
                        .filter(|s| running.contains(&s.container.id))
                        .count(),
                )
            }),
            networks: networks.map(|n| count(n.len())),
            volumes: volumes.map(|v| count(v.len())),
            uptime_seconds: Some(self.started.elapsed().as_secs()),
        }
    }

    /// Stops long operations and running containers, and waits (at most `grace`) for them to clean
    /// up.
    pub async fn shutdown(&self, grace: Duration) {
        self.stop_all().await;
        self.networks_shutdown().await;
        self.cancel.cancel();
        self.tasks.close();
        if tokio::time::timeout(grace, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("long operations still running after {grace:?}");
        }
    }

    /// Runs blocking ZFS work on the blocking pool.
    async fn zfs<T, F>(&self, f: F) -> Result<T, ZfsError>
    where
        T: Send + 'static,
        F: FnOnce(&Zfs) -> Result<T, ZfsError> + Send + 'static,
    {
        let zfs = Arc::clone(&self.zfs);
        match tokio::task::spawn_blocking(move || f(&zfs)).await {
            Ok(result) => result,
            Err(err) => Err(ZfsError::Other {
                argv: vec![],
                stderr: format!("zfs task failed: {err}"),
                code: None,
            }),
        }
    }
}

/// Locks by object ID, made when first asked for and dropped when nobody holds or waits for them.
#[derive(Debug, Default)]
struct ObjectLocks {
    locks: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl ObjectLocks {
    /// Waits for the lock of `id`; it is held until the guard is dropped.
    async fn lock(&self, id: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
            // Forget the locks nobody holds any more, so the map stays small.
            locks.retain(|_, lock| Arc::strong_count(lock) > 1);
            Arc::clone(locks.entry(id.to_owned()).or_default())
        };
        lock.lock_owned().await
    }
}

/// An engine over `store` whose commands go to a recording fake (for in-process tests).
#[cfg(test)]
pub(crate) fn test_engine(store: Store) -> (Arc<Engine>, Arc<kleene_runner::RecordingRunner>) {
    test_engine_with(store, None)
}

/// [`test_engine`] with a container runtime (a fake).
#[cfg(test)]
pub(crate) fn test_engine_with(
    store: Store,
    runtime: Option<Arc<dyn Runtime>>,
) -> (Arc<Engine>, Arc<kleene_runner::RecordingRunner>) {
    let runner = Arc::new(kleene_runner::RecordingRunner::new());
    let engine = Engine::new(EngineParts {
        store,
        zfs: Zfs::new(runner.clone()).with_retry(zfs::RetryPolicy::none()),
        layout: Layout::new("zroot/kleene").expect("valid root"),
        host: Host::new(runner.clone(), TargetOs::Linux),
        runtime,
        network: None,
        containers_mountpoint: None,
        root_mountpoint: None,
        logs: logs::LogConfig {
            dir: std::env::temp_dir().join(format!("kleene-test-logs-{}", ids::new_id())),
            max_size: logs::LogConfig::DEFAULT_MAX_SIZE,
            max_files: logs::LogConfig::DEFAULT_MAX_FILES,
        },
        storage: Default::default(),
    })
    .expect("engine");
    (engine, runner)
}
