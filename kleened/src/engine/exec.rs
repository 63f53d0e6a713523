//! Exec instances: a process to run in a container, created by `POST /exec/create` and started once
//! over the `/exec/start` websocket. The first one started on a stopped container starts the
//! container around it. Instances live in memory only and disappear when their process ends or they
//! are stopped; one never started expires after [`UNSTARTED_TTL`], and a container has at most
//! [`UNSTARTED_PER_CONTAINER`] of those, so creates that are never started cannot grow the daemon
//! without bound.
//!
//! The engine owns a started process's whole life: [`Engine::attach`] pumps its output to a
//! [`Client`] and the client's input, end of input and terminal sizes to it, ends it when the client
//! goes away, waits for it, and answers the closing message; a detached process is pumped the same
//! way with nobody listening. The server only turns websocket frames into [`ClientEvent`]s and
//! output into frames.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use kleene_api::{ExecConfig, IdResponse, NetworkDriver};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::sync::watch;

use super::containers::merge_env;
use super::logs::{ContainerLog, LogFeed};
use super::{ids, Engine, EngineError};
use crate::platform::runtime::exit_code;
use crate::platform::{ProcessIo, ProcessSpec};

/// How long exec stop waits for the process to end.
const STOP_WAIT: Duration = Duration::from_secs(5);

/// How long an exec instance that was never started is kept. `klee exec` and `klee run` start
/// theirs within milliseconds of creating it; an hour leaves any script ample time.
pub(super) const UNSTARTED_TTL: Duration = Duration::from_secs(3600);

/// How many never-started exec instances one container may have. Clients create one and start it
/// at once, so a container seldom has more than one waiting; 64 leaves room for scripts that
/// prepare several, and bounds a leaky client to a few hundred KiB per container instead of the
/// 4 KiB per create, never freed, that 20 000 creates cost before.
pub(super) const UNSTARTED_PER_CONTAINER: usize = 64;

/// An exec instance.
#[derive(Debug)]
pub(super) struct ExecInstance {
    container_id: String,
    cmd: Vec<String>,
    env: Vec<String>,
    user: String,
    tty: bool,
    /// When it was created, for its expiry while it is not started.
    created: Instant,
    /// Set once started: the helper's PID and the exit code once it ended.
    started: Option<(u32, watch::Receiver<Option<i32>>)>,
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
pub(super) struct Execs {
    registry: std::sync::Mutex<Registry>,
    clock: Clock,
    /// How long an unstarted instance is kept.
    ttl: Duration,
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
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, ExecInstance>) -> T) -> T {
        f(&mut self.registry().map)
    }

    /// Registers a new, unstarted instance, unless its container has as many unstarted ones as
    /// it may.
    fn insert(&self, id: String, mut instance: ExecInstance) -> Result<(), TooManyUnstarted> {
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

/// A started exec instance: its process, its input/output, and what the caller must report at the
/// end through [`Engine::finish_exec`].
#[derive(Debug)]
pub struct RunningExec {
    /// The exec instance.
    pub exec_id: String,
    /// Its container.
    pub container_id: String,
    /// The process's input and output.
    pub io: ProcessIo,
    /// The process.
    pub child: tokio::process::Child,
    /// Whether it is the container's first process (it started the container).
    pub first: bool,
    /// Whether it runs on a terminal.
    pub tty: bool,
    exited: watch::Sender<Option<i32>>,
    /// The container's out-of-memory kills when the process started, if the runtime counts them.
    oom_before: Option<u64>,
}

impl RunningExec {
    /// Records the exit code for `stop_exec` waiters and answers it.
    pub fn exited(&self, status: std::io::Result<std::process::ExitStatus>) -> i32 {
        record_exit(&self.exited, status)
    }

    /// Splits into input/output, process, and the recorder of its end (an [`ExitRecorder`]).
    pub fn into_parts(self) -> (ProcessIo, tokio::process::Child, ExitRecorder) {
        let recorder = ExitRecorder {
            exec_id: self.exec_id,
            container_id: self.container_id,
            first: self.first,
            exited: self.exited,
            oom_before: self.oom_before,
        };
        (self.io, self.child, recorder)
    }
}

/// Records how a started exec ended.
#[derive(Debug)]
pub struct ExitRecorder {
    /// The exec instance.
    pub exec_id: String,
    /// Its container.
    pub container_id: String,
    /// Whether it was the container's first process.
    pub first: bool,
    exited: watch::Sender<Option<i32>>,
    /// The container's out-of-memory kills when the process started, if the runtime counts them.
    oom_before: Option<u64>,
}

impl ExitRecorder {
    /// Records the exit code for `stop_exec` waiters and answers it.
    pub fn record(&self, status: std::io::Result<std::process::ExitStatus>) -> i32 {
        record_exit(&self.exited, status)
    }
}

/// How long output is still read after the process exited while more keeps coming, at most,
/// between two reads: a process may leave its output open to a child of its own.
const OUTPUT_IDLE: Duration = Duration::from_millis(200);

/// What an attached client says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// Bytes for the process's input.
    Input(Vec<u8>),
    /// The input ended.
    EndOfInput,
    /// The client's terminal has this many rows and columns now.
    Resize(u16, u16),
    /// The client went away.
    Gone,
}

/// The client side of an attached process.
pub trait Client: Send {
    /// Sends a chunk of the process's output; an error means the client is gone. Awaiting it
    /// applies back-pressure: a slow client slows the process.
    fn send(&mut self, chunk: &[u8]) -> impl std::future::Future<Output = Result<(), ()>> + Send;
    /// What the client says next; `None` once it will say nothing more (it may still listen).
    fn next(&mut self) -> impl std::future::Future<Output = Option<ClientEvent>> + Send;
    /// The output ended: send what is held back.
    fn flush(&mut self) -> impl std::future::Future<Output = ()> + Send;
}

/// Nobody: the output of a detached process is read and dropped.
#[derive(Debug)]
struct Nobody;

impl Client for Nobody {
    async fn send(&mut self, _: &[u8]) -> Result<(), ()> {
        Ok(())
    }
    async fn next(&mut self) -> Option<ClientEvent> {
        std::future::pending().await
    }
    async fn flush(&mut self) {}
}

/// Sends SIGTERM to the process the runtime started (the helper or jexec forwards it).
fn terminate(child: &tokio::process::Child) {
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
}

/// The largest output frame: what a process wrote since the last read, up to this, goes out in
/// one frame.
const FRAME_MAX: usize = 128 * 1024;

/// Pumps a started process until it ended and its output is read; answers its exit status.
async fn pump(
    io: ProcessIo,
    child: &mut tokio::process::Child,
    tty: bool,
    client: &mut impl Client,
    log: &ContainerLog,
) -> std::io::Result<std::process::ExitStatus> {
    use tokio::io::AsyncWriteExt;
    let ProcessIo {
        output: mut reader,
        input,
        terminal,
    } = io;
    let mut input = Some(input);
    let mut buf = vec![0u8; FRAME_MAX];
    let (mut listening, mut talking, mut eof) = (true, true, false);
    let mut status = None;
    let idle = tokio::time::sleep(Duration::from_secs(86_400));
    tokio::pin!(idle);
    let mut feed = LogFeed::new(log);
    let flush = tokio::time::sleep(Duration::from_secs(86_400));
    tokio::pin!(flush);
    while !(eof && status.is_some()) {
        tokio::select! {
            read = reader.read(&mut buf), if !eof => match read {
                Ok(0) | Err(_) => eof = true,
                Ok(first) => {
                    // What the process has written meanwhile joins this frame (fewer, larger
                    // frames for a fast writer); nothing waits, so a prompt goes out at once.
                    let mut n = first;
                    while n < buf.len() {
                        match reader.read(&mut buf[n..]).now_or_never() {
                            Some(Ok(0)) | Some(Err(_)) => {
                                eof = true;
                                break;
                            }
                            Some(Ok(more)) => n += more,
                            None => break,
                        }
                    }
                    if listening && client.send(&buf[..n]).await.is_err() {
                        listening = false;
                        terminate(child);
                    }
                    let deadline = feed.deadline();
                    buf = feed.keep(buf, n);
                    if feed.deadline() != deadline {
                        if let Some(at) = feed.deadline() {
                            flush.as_mut().reset(tokio::time::Instant::from_std(at));
                        }
                    }
                    if status.is_some() {
                        idle.as_mut().reset(tokio::time::Instant::now() + OUTPUT_IDLE);
                    }
                }
            },
            exit = child.wait(), if status.is_none() => {
                status = Some(exit);
                idle.as_mut().reset(tokio::time::Instant::now() + OUTPUT_IDLE);
            },
            () = &mut idle, if status.is_some() && !eof => eof = true,
            () = &mut flush, if feed.deadline().is_some() => feed.flush(),
            event = client.next(), if talking => match event {
                Some(ClientEvent::Input(bytes)) => {
                    if let Some(writer) = &mut input {
                        let _ = writer.write_all(&bytes).await;
                    }
                }
                Some(ClientEvent::EndOfInput) => {
                    if tty {
                        // A terminal reads end-of-file when its end-of-file character comes.
                        if let Some(writer) = &mut input {
                            let _ = writer.write_all(&[0x04]).await;
                        }
                    } else {
                        input = None;
                    }
                }
                Some(ClientEvent::Resize(rows, cols)) => {
                    if let Some(terminal) = &terminal {
                        if let Err(err) = terminal.resize(rows, cols) {
                            tracing::debug!(error = %err, "cannot resize the terminal");
                        }
                    }
                }
                Some(ClientEvent::Gone) => {
                    talking = false;
                    listening = false;
                    terminate(child);
                }
                None => talking = false,
            },
        }
    }
    feed.flush();
    if listening {
        client.flush().await;
    }
    status.unwrap_or_else(|| Err(std::io::Error::other("no exit status")))
}

/// Whether a process that exited with `code` was ended by the out-of-memory killer: it died of
/// SIGKILL (137) and the container's count of such kills grew while it ran.
fn oom_killed(code: i32, before: Option<u64>, after: Option<u64>) -> bool {
    code == 128 + Signal::SIGKILL as i32 && after.unwrap_or(0) > before.unwrap_or(0)
}

/// The closing message of a process the out-of-memory killer ended. The reference's wording
/// with the reason would not fit the close frame's 123 bytes; the exit code stays last, where
/// clients read it.
fn oom_message(exec_id: &str, code: i32) -> String {
    format!("executable {exec_id} killed for exceeding its memory limit, exit-code {code}")
}

fn record_exit(
    sender: &watch::Sender<Option<i32>>,
    status: std::io::Result<std::process::ExitStatus>,
) -> i32 {
    let code = status.map(exit_code).unwrap_or(255);
    sender.send_replace(Some(code));
    code
}

impl Engine {
    /// Creates an exec instance for a container.
    pub async fn create_exec(&self, config: ExecConfig) -> Result<IdResponse, EngineError> {
        let container = self
            .find_container(&config.container_id)
            .await?
            .ok_or_else(|| EngineError::NotFound("container not found".into()))?;
        let id = ids::new_id();
        let instance = ExecInstance {
            container_id: container.id.clone(),
            cmd: config.cmd,
            env: config.env,
            user: config.user,
            tty: config.tty,
            created: Instant::now(),
            started: None,
        };
        self.execs.insert(id.clone(), instance).map_err(|full| {
            EngineError::Conflict(format!(
                "container {} has {} execution instances that were never started, as many \
                     as it may: start or stop one, or wait for them to expire after {} minutes",
                container.id,
                full.limit,
                self.execs.ttl.as_secs() / 60
            ))
        })?;
        Ok(IdResponse { id })
    }

    /// Starts an exec instance: in the running container, or, with `start_container`, by starting the
    /// container around it. The error is the reason, for the client.
    pub async fn start_exec(
        &self,
        exec_id: &str,
        start_container: bool,
        tty_size: Option<kleene_api::TtySize>,
    ) -> Result<RunningExec, String> {
        self.start_exec_as(exec_id, start_container, tty_size, false)
            .await
    }

    /// [`Engine::start_exec`]; `by_policy` says the daemon starts the container by its restart
    /// policy, which keeps its restart count (a client's start resets it and has the daemon
    /// keep the container running).
    pub(super) async fn start_exec_as(
        &self,
        exec_id: &str,
        start_container: bool,
        tty_size: Option<kleene_api::TtySize>,
        by_policy: bool,
    ) -> Result<RunningExec, String> {
        let runtime = self.runtime().map_err(|e| e.to_string())?.clone();
        let unknown = || format!("could not find execution instance matching '{exec_id}'");
        let of_container = self
            .execs
            .with(|map| map.get(exec_id).map(|i| i.container_id.clone()))
            .ok_or_else(unknown)?;
        // One start at a time per container, so two execs cannot both create the same container
        // and one exec cannot be started twice; other containers start meanwhile.
        let _starts = self.starting.read().await;
        let _container = self.container_starts.lock(&of_container).await;
        let (container_id, cmd, env, user, tty) =
            self.execs.with(|map| match map.get(exec_id) {
                None => Err(unknown()),
                Some(instance) if instance.started.is_some() => {
                    Err("executable already started".to_owned())
                }
                Some(i) => Ok((
                    i.container_id.clone(),
                    i.cmd.clone(),
                    i.env.clone(),
                    i.user.clone(),
                    i.tty,
                )),
            })?;
        let container = self
            .find_container(&container_id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "container not found".to_owned())?;
        let rootfs = self
            .container_rootfs(&container)
            .await
            .map_err(|e| e.to_string())?;
        let running = self
            .is_running(&container.id)
            .await
            .map_err(|e| e.to_string())?;
        if !running && !start_container {
            return Err("cannot start container when 'start_container' is false.".to_owned());
        }
        // A container starting is wired to its networks (vnet, and ipnet on FreeBSD).
        let endpoints = if running
            || matches!(
                container.network_driver,
                NetworkDriver::Host | NetworkDriver::Disabled
            ) {
            vec![]
        } else {
            self.wiring_of(&container.id)
                .await
                .map_err(|e| e.to_string())?
        };
        let mounts = if running {
            vec![]
        } else {
            self.mounts_of(&container.id)
                .await
                .map_err(|e| e.to_string())?
        };
        let spec = ProcessSpec {
            container_id: container.id.clone(),
            rootfs,
            cmd: if cmd.is_empty() {
                container.cmd.clone()
            } else {
                cmd
            },
            env: merge_env(&container.env, &env),
            user: if user.is_empty() {
                container.user.clone()
            } else {
                user
            },
            tty,
            tty_size: {
                let size = tty_size.unwrap_or_default();
                (size.rows, size.cols)
            },
            network: container.network_driver,
            jail_params: container.jail_param.clone(),
            endpoints,
            mounts,
            limits: super::limits::of(&container),
        };
        let (spawned, oom_before) = tokio::task::spawn_blocking(move || {
            let spawned = if running {
                runtime.exec(&spec)
            } else {
                runtime.start(&spec)
            }?;
            // The out-of-memory kills counted so far, to tell whether this process was one.
            Ok::<_, crate::platform::RuntimeError>((spawned, runtime.oom_kills(&spec.container_id)))
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
        // A child the runtime just started has a PID; 0 would mean "my process group" to kill(2).
        let pid = spawned
            .child
            .id()
            .ok_or_else(|| "the started process has no PID".to_owned())?;
        let interfaces: Vec<(String, Option<String>)> = spawned
            .interfaces
            .iter()
            .map(|(endpoint, interface)| (endpoint.clone(), Some(interface.clone())))
            .collect();
        if let Err(err) = self.record_interfaces(&container.id, interfaces).await {
            tracing::warn!(container = %container.id, error = %err, "could not record the container's interfaces");
        }
        let (exited, watcher) = watch::channel(None);
        self.execs.with(|map| {
            if let Some(instance) = map.get_mut(exec_id) {
                instance.started = Some((pid, watcher));
            }
        });
        tracing::info!(exec = exec_id, container = %container.id, pid, first = !running, "exec started");
        if !running {
            if !by_policy {
                // A client's start: the daemon keeps it running by its policy from now on.
                self.restarts.forget(&container.id);
                let id = container.id.clone();
                if let Err(err) = self
                    .store
                    .write(move |db| db.set_keep_running(&id, true, true))
                    .await
                {
                    tracing::warn!(container = %container.id, error = %err, "cannot record the start for the restart policy");
                }
            }
            self.restarts
                .started(&container.id, std::time::Instant::now());
        }
        Ok(RunningExec {
            exec_id: exec_id.to_owned(),
            container_id: container.id,
            io: spawned.io,
            child: spawned.child,
            first: !running,
            tty,
            exited,
            oom_before,
        })
    }

    /// Ends an exec instance whose process exited with `code`: forgets it, tells the runtime when
    /// it was the container's first process, cleans up the container when that stopped too, and
    /// answers the closing message. `oom_before` is the container's count of out-of-memory kills
    /// when the process started: a process killed by SIGKILL while it grew was killed for
    /// exceeding the container's memory limit, which the message and (for the first process) the
    /// container's `last_exit` say.
    pub async fn finish_exec(
        &self,
        exec_id: &str,
        container_id: &str,
        first: bool,
        code: i32,
        oom_before: Option<u64>,
    ) -> String {
        self.execs.with(|map| map.remove(exec_id));
        // Read before the cleanup removes the container's cgroups.
        let oom_kills = self.oom_kills(container_id).await;
        let oom_killed = oom_killed(code, oom_before, oom_kills);
        if oom_killed {
            tracing::warn!(
                exec = exec_id,
                container = container_id,
                "killed for exceeding the container's memory limit"
            );
        }
        if first {
            let exit = kleene_api::LastExit {
                exit_code: code,
                reason: if oom_killed {
                    kleene_api::ExitReason::OomKilled
                } else {
                    kleene_api::ExitReason::Exited
                },
                oom_kills: oom_kills
                    .unwrap_or(0)
                    .saturating_sub(oom_before.unwrap_or(0)),
                finished_at: ids::now(),
            };
            let id = container_id.to_owned();
            if let Err(err) = self
                .store
                .write(move |db| db.set_last_exit(&id, &exit))
                .await
            {
                tracing::warn!(container = container_id, error = %err, "could not record how the container's process ended");
            }
        }
        if first {
            if let Ok(runtime) = self.runtime() {
                let runtime = Arc::clone(runtime);
                let id = container_id.to_owned();
                let _ = tokio::task::spawn_blocking(move || runtime.first_process_ended(&id)).await;
            }
        }
        let message = match self.is_running(container_id).await {
            Ok(false) => {
                self.cleanup_container(container_id).await;
                if first {
                    self.first_process_exited(container_id, code).await;
                }
                format!("executable {exec_id} and its container exited with exit-code {code}")
            }
            Ok(true) => format!("{exec_id} has exited with exit-code {code}"),
            Err(err) => {
                tracing::error!(container = container_id, error = %err, "after its process ended");
                format!("{exec_id} has exited with exit-code {code}")
            }
        };
        if oom_killed {
            oom_message(exec_id, code)
        } else {
            message
        }
    }

    /// The container's count of out-of-memory kills, if the runtime keeps one.
    async fn oom_kills(&self, container_id: &str) -> Option<u64> {
        let runtime = Arc::clone(self.runtime.as_ref()?);
        let id = container_id.to_owned();
        tokio::task::spawn_blocking(move || runtime.oom_kills(&id))
            .await
            .ok()
            .flatten()
    }

    /// Runs a started exec without a client: its output is read and dropped, and its end is
    /// handled as for an attached one.
    pub fn detach(self: &Arc<Self>, running: RunningExec) {
        let engine = Arc::clone(self);
        self.tasks.spawn(async move {
            let exec_id = running.exec_id.clone();
            let message = engine.attach(running, &mut Nobody).await;
            tracing::info!(exec = %exec_id, "{message}");
        });
    }

    /// Runs a started exec for an attached client until the process ended and its output is
    /// read; answers the closing message. A client that goes away gets its process terminated
    /// (SIGTERM), as a detached start would have been asked for explicitly.
    pub async fn attach(&self, running: RunningExec, client: &mut impl Client) -> String {
        self.attach_for_code(running, client).await.1
    }

    /// [`Engine::attach`], answering the exit code beside the closing message.
    pub(super) async fn attach_for_code(
        &self,
        running: RunningExec,
        client: &mut impl Client,
    ) -> (i32, String) {
        let tty = running.tty;
        let (io, mut child, recorder) = running.into_parts();
        let log = self.logs.of(&recorder.container_id);
        let status = pump(io, &mut child, tty, client, &log).await;
        let code = recorder.record(status);
        let message = self
            .finish_exec(
                &recorder.exec_id,
                &recorder.container_id,
                recorder.first,
                code,
                recorder.oom_before,
            )
            .await;
        (code, message)
    }

    /// Stops an exec instance: its process (SIGTERM, or SIGKILL with `force`), or with
    /// `stop_container` its whole container. The instance is gone afterwards.
    pub async fn stop_exec(
        &self,
        exec_id: String,
        force: bool,
        stop_container: bool,
    ) -> Result<IdResponse, EngineError> {
        let not_found = || {
            EngineError::NotFound(format!(
                "could not find execution instance matching '{exec_id}'"
            ))
        };
        let (container_id, started) = self
            .execs
            .with(|map| {
                map.get(&exec_id)
                    .map(|i| (i.container_id.clone(), i.started.clone()))
            })
            .ok_or_else(not_found)?;
        let Some((pid, mut exited)) = started else {
            if stop_container {
                return Err(EngineError::NotFound(
                    "execution instance have not been started".into(),
                ));
            }
            self.execs.with(|map| map.remove(&exec_id));
            return Ok(IdResponse { id: exec_id });
        };
        if stop_container {
            self.stop_running(&container_id).await?;
        } else {
            let signal = if force {
                Signal::SIGKILL
            } else {
                Signal::SIGTERM
            };
            let target = i32::try_from(pid).map_err(|_| not_found())?;
            kill(Pid::from_raw(target), signal)
                .map_err(|e| EngineError::NotFound(format!("error closing process: {e}")))?;
        }
        let ended = tokio::time::timeout(STOP_WAIT, exited.wait_for(Option::is_some)).await;
        if ended.is_err() && stop_container {
            return Err(EngineError::NotFound(
                "timed out while waiting for jail to stop".into(),
            ));
        }
        self.execs.with(|map| map.remove(&exec_id));
        Ok(IdResponse { id: exec_id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    use kleene_api::{ContainerConfig, ImageCreateConfig};

    use crate::engine::fake;
    use crate::server::error::{status, Operation};

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

    #[tokio::test]
    async fn exec_create_past_the_cap_is_refused_naming_the_container() {
        let (engine, _host, _runtime) = fake::engine();
        let config: ImageCreateConfig = serde_json::from_value(serde_json::json!({
            "method": "zfs-clone", "tag": "base", "zfs_dataset": "zroot/data", "url": "",
            "dns": false, "localtime": false, "update": false, "autotag": false,
        }))
        .unwrap();
        let (mut progress, task) = engine.start_image_creation(config);
        while progress.recv().await.is_some() {}
        task.await.unwrap().expect("image");
        let mut containers = vec![];
        for name in ["one", "two"] {
            let created = engine
                .create_container(ContainerConfig {
                    name: Some(name.to_owned()),
                    image: Some("base".to_owned()),
                    network_driver: Some(kleene_api::NetworkDriver::Host),
                    ..ContainerConfig::default()
                })
                .await
                .expect("container");
            containers.push(created.id);
        }
        let create = |container: &str| {
            engine.create_exec(ExecConfig {
                container_id: container.to_owned(),
                cmd: vec![],
                env: vec![],
                user: String::new(),
                tty: false,
            })
        };
        for _ in 0..UNSTARTED_PER_CONTAINER {
            create("one").await.expect("under the cap");
        }
        let err = create("one").await.expect_err("past the cap");
        assert!(matches!(err, EngineError::Conflict(_)), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "container {} has 64 execution instances that were never started, as many as it \
                 may: start or stop one, or wait for them to expire after 60 minutes",
                containers[0]
            )
        );
        // The reference lists only 201 and 404 for /exec/create, and the Python client crashes
        // on any other status.
        assert_eq!(
            status(Operation::ExecCreate, &err),
            http::StatusCode::NOT_FOUND
        );
        create("two")
            .await
            .expect("another container has its own room");
    }
}
