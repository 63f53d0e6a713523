//! A started process and its I/O pump: output to the attached [`Client`] (and the container's log),
//! the client's input, end of input and terminal sizes to the process, until it ended and its
//! output is read.

use std::time::Duration;

use futures_util::FutureExt;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::sync::watch;

use crate::engine::logs::{ContainerLog, LogFeed};
use crate::platform::io::{FdStream, TerminalControl};
use crate::platform::runtime::exit_code;
use crate::platform::ProcessIo;

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
    pub(super) exited: watch::Sender<Option<i32>>,
    /// The container's out-of-memory kills when the process started, if the runtime counts them.
    pub(super) oom_before: Option<u64>,
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
    pub(super) oom_before: Option<u64>,
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
    /// The client went away ([`WhenGone`] says what becomes of the process); its output goes on
    /// to the container's log only.
    Gone,
    /// The client asks the process to end (SIGTERM).
    Cancel,
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
pub(super) struct Nobody;

impl Client for Nobody {
    async fn send(&mut self, _: &[u8]) -> Result<(), ()> {
        Ok(())
    }
    async fn next(&mut self) -> Option<ClientEvent> {
        std::future::pending().await
    }
    async fn flush(&mut self) {}
}

/// Sends `signal` to the process the runtime started (the helper or jexec forwards it).
fn signal(child: &tokio::process::Child, signal: Signal) {
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
        let _ = kill(Pid::from_raw(pid), signal);
    }
}

/// What becomes of an attached process whose client went away, as in the reference: the process
/// that started its container runs on (only a stop ends it), an exec into a running container
/// gets SIGTERM, and a process on a terminal is hung up (SIGHUP), as when a terminal closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WhenGone {
    RunOn,
    Signal(Signal),
}

impl WhenGone {
    pub(super) fn of(first: bool, tty: bool) -> WhenGone {
        match (first, tty) {
            (_, true) => WhenGone::Signal(Signal::SIGHUP),
            (true, false) => WhenGone::RunOn,
            (false, false) => WhenGone::Signal(Signal::SIGTERM),
        }
    }
}

/// The largest output frame: what a process wrote since the last read, up to this, goes out in
/// one frame.
const FRAME_MAX: usize = 128 * 1024;

/// Follows a process whose client went away to its end, with nobody attached; answers its exit
/// status.
pub(super) async fn follow_unattended(
    remains: Remains,
    child: &mut tokio::process::Child,
    tty: bool,
    log: &ContainerLog,
) -> std::io::Result<std::process::ExitStatus> {
    match pump(remains, child, tty, &mut Nobody, log, WhenGone::RunOn).await {
        Pumped::Ended(status) => status,
        // Nobody never goes away.
        Pumped::ClientGone(_) => Err(std::io::Error::other("the process was left unfollowed")),
    }
}

/// How a pump ended.
pub(super) enum Pumped {
    /// The process ended and its output is read.
    Ended(std::io::Result<std::process::ExitStatus>),
    /// The client went away from a process that runs on ([`WhenGone::RunOn`]): what is left to
    /// follow it with, without the client.
    ClientGone(Remains),
}

/// A running process's ends, as a pump left them.
pub(super) struct Remains {
    output: FdStream,
    input: Option<FdStream>,
    terminal: Option<TerminalControl>,
}

impl From<ProcessIo> for Remains {
    fn from(io: ProcessIo) -> Remains {
        Remains {
            output: io.output,
            input: Some(io.input),
            terminal: io.terminal,
        }
    }
}

/// Pumps a started process until it ended and its output is read, or until its client went away
/// from a process that runs on.
pub(super) async fn pump(
    io: impl Into<Remains>,
    child: &mut tokio::process::Child,
    tty: bool,
    client: &mut impl Client,
    log: &ContainerLog,
    when_gone: WhenGone,
) -> Pumped {
    use tokio::io::AsyncWriteExt;
    let Remains {
        output: mut reader,
        mut input,
        terminal,
    } = io.into();
    let mut handed_over = false;
    let mut buf = vec![0u8; FRAME_MAX];
    let (mut listening, mut talking, mut eof) = (true, true, false);
    let mut status = None;
    let idle = tokio::time::sleep(Duration::from_secs(86_400));
    tokio::pin!(idle);
    let mut feed = LogFeed::new(log);
    let flush = tokio::time::sleep(Duration::from_secs(86_400));
    tokio::pin!(flush);
    // Until the process ended and its output is read, or it runs on without its client.
    while !(eof && status.is_some() || handed_over && status.is_none()) {
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
                        talking = false;
                        match when_gone {
                            WhenGone::Signal(sent) => signal(child, sent),
                            WhenGone::RunOn => handed_over = true,
                        }
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
                    // A process that runs on keeps its input open: it reads nothing more rather
                    // than an end of file.
                    talking = false;
                    listening = false;
                    match when_gone {
                        WhenGone::Signal(sent) => signal(child, sent),
                        WhenGone::RunOn => handed_over = true,
                    }
                }
                Some(ClientEvent::Cancel) => {
                    talking = false;
                    signal(child, Signal::SIGTERM);
                }
                None => talking = false,
            },
        }
    }
    feed.flush();
    if handed_over && status.is_none() {
        return Pumped::ClientGone(Remains {
            output: reader,
            input,
            terminal,
        });
    }
    if listening {
        client.flush().await;
    }
    Pumped::Ended(status.unwrap_or_else(|| Err(std::io::Error::other("no exit status"))))
}

fn record_exit(
    sender: &watch::Sender<Option<i32>>,
    status: std::io::Result<std::process::ExitStatus>,
) -> i32 {
    let code = status.map(exit_code).unwrap_or(255);
    sender.send_replace(Some(code));
    code
}
