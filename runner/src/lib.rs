//! The one seam through which kleened runs external commands.
//!
//! Short commands (`zfs`, `pf`, the host and network commands of the platforms) are never run
//! with `std::process::Command` directly: they are described as a [`CommandSpec`] and handed to a
//! [`Runner`]. The runtimes' long-lived processes (the Linux helper, jexec(8)) are started by
//! the runtimes themselves. In production that
//! is [`SystemRunner`]; in tier-1 tests it is [`RecordingRunner`], which records every command
//! and answers from a script, so argv construction and output handling are tested without
//! touching the host.
//!
//! The trait is synchronous on purpose: the commands are short-lived, and async callers wrap a
//! whole driver operation (which may run several commands and retry) in `spawn_blocking` rather
//! than paying for async plumbing in every driver.
//!
//! Every command has a deadline ([`CommandSpec::timeout`], [`DEFAULT_TIMEOUT`] unless the driver
//! sets another): a hung `zfs` or `jail -R` must not hold a blocking thread, and the request
//! waiting on it, for ever. At the deadline the command is killed and the caller gets
//! [`RunError::TimedOut`] naming it.

mod recording;
mod system;

use std::fmt;
use std::io;
use std::time::Duration;

pub use recording::{Recorded, RecordingRunner, Reply};
pub use system::SystemRunner;

/// How long a command may run unless its spec says otherwise: five minutes.
///
/// The daemon's commands take milliseconds (a zfs-fuse clone about 15 ms) to seconds (`jail -R`
/// waits up to 10 s for a jail's processes; destroying a large dataset tree on a slow disk takes
/// tens of seconds). Five minutes is far beyond any of that on a healthy host, and still bounds
/// a command that hangs (a wedged zfs-fuse daemon, an unresponsive jail) so that its thread and
/// its request come back with an error instead of never.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// The deadline for commands whose duration grows with the data they move: unpacking an image
/// archive, `zfs send | zfs receive` of an image, `freebsd-update` downloading patches. An hour
/// covers gigabytes on a slow disk or a slow mirror; it is a bound, not an estimate.
pub const LONG_TIMEOUT: Duration = Duration::from_secs(3600);

/// A command to run: program, arguments, extra environment, optional standard input, and how long
/// it may take.
///
/// The program is not resolved through a shell: arguments are passed verbatim, so no quoting
/// is needed and nothing in an argument can be interpreted as shell syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSpec {
    /// Program to execute: an absolute path, or a bare name looked up in `PATH`.
    pub program: String,
    /// Arguments, not including the program itself.
    pub args: Vec<String>,
    /// Variables added to (or overriding) the inherited environment.
    pub env: Vec<(String, String)>,
    /// Bytes written to the command's standard input; `None` means stdin is `/dev/null`.
    pub stdin: Option<Vec<u8>>,
    /// How long the command may run before it is killed ([`DEFAULT_TIMEOUT`] unless set with
    /// [`CommandSpec::timeout`]). For a pipeline, the longer of its two commands' deadlines
    /// bounds the whole pipeline.
    pub timeout: Duration,
}

impl Default for CommandSpec {
    fn default() -> Self {
        CommandSpec {
            program: String::new(),
            args: Vec::new(),
            env: Vec::new(),
            stdin: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl CommandSpec {
    /// A command running `program` with no arguments and the [`DEFAULT_TIMEOUT`].
    pub fn new(program: impl Into<String>) -> Self {
        CommandSpec {
            program: program.into(),
            ..CommandSpec::default()
        }
    }

    /// Appends one argument.
    #[must_use]
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Appends several arguments.
    #[must_use]
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Adds an environment variable.
    #[must_use]
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Sets the bytes fed to standard input.
    #[must_use]
    pub fn stdin(mut self, input: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(input.into());
        self
    }

    /// Sets how long the command may run before it is killed, for commands that legitimately
    /// take longer than [`DEFAULT_TIMEOUT`] (see [`LONG_TIMEOUT`]) or must give up sooner.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The full argument vector: the program followed by its arguments.
    pub fn argv(&self) -> Vec<String> {
        let mut argv = Vec::with_capacity(self.args.len() + 1);
        argv.push(self.program.clone());
        argv.extend(self.args.iter().cloned());
        argv
    }
}

/// Renders the command as one line (program and arguments separated by spaces), for logs,
/// error messages and golden tests. Not shell-quoted: it is meant to be read, not executed.
impl fmt::Display for CommandSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.program)?;
        for arg in &self.args {
            write!(f, " {arg}")?;
        }
        Ok(())
    }
}

/// What a finished command produced.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Output {
    /// Exit code; `None` when the process was killed by a signal.
    pub code: Option<i32>,
    /// Everything written to standard output.
    pub stdout: Vec<u8>,
    /// Everything written to standard error.
    pub stderr: Vec<u8>,
}

impl Output {
    /// A successful exit (code 0) with the given standard output and empty stderr.
    pub fn success(stdout: impl Into<Vec<u8>>) -> Self {
        Output {
            code: Some(0),
            stdout: stdout.into(),
            stderr: Vec::new(),
        }
    }

    /// A failed exit with the given code and standard error, and empty stdout.
    pub fn failure(code: i32, stderr: impl Into<Vec<u8>>) -> Self {
        Output {
            code: Some(code),
            stdout: Vec::new(),
            stderr: stderr.into(),
        }
    }

    /// Whether the command exited with code 0.
    pub fn succeeded(&self) -> bool {
        self.code == Some(0)
    }

    /// Standard output as text; invalid UTF-8 is replaced rather than failing, because the
    /// tools we run print ASCII and a stray byte should not hide the rest of the output.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Standard error as text, trimmed of surrounding whitespace (see [`Output::stdout_text`]).
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).trim().to_owned()
    }
}

/// What a two-command pipeline (`producer | consumer`) produced.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PipeOutput {
    /// The producer's result; its `stdout` is always empty since it went to the consumer.
    pub producer: Output,
    /// The consumer's result.
    pub consumer: Output,
}

impl PipeOutput {
    /// Whether both commands exited with code 0.
    pub fn succeeded(&self) -> bool {
        self.producer.succeeded() && self.consumer.succeeded()
    }
}

/// A command could not be run at all (as opposed to running and failing, which is an
/// [`Output`] with a non-zero code).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The process could not be started, typically because the program does not exist.
    #[error("could not start `{program}`")]
    Spawn {
        /// The program that failed to start.
        program: String,
        /// The underlying OS error.
        #[source]
        source: io::Error,
    },
    /// The process started but talking to it (stdin, stdout, waiting) failed.
    #[error("i/o error while running `{program}`")]
    Io {
        /// The program being run.
        program: String,
        /// The underlying OS error.
        #[source]
        source: io::Error,
    },
    /// The command did not finish (exit and close its output) within its
    /// [`CommandSpec::timeout`], and was killed with SIGKILL together with its process group.
    #[error("`{command}` did not finish in {} and was killed", seconds(*after))]
    TimedOut {
        /// The program that was killed (a pipeline's producer).
        program: String,
        /// The whole command line as [`CommandSpec`]'s `Display` renders it (` | ` between a
        /// pipeline's sides).
        command: String,
        /// The deadline it missed.
        after: Duration,
    },
}

impl RunError {
    /// Whether the command was killed at its deadline.
    pub fn is_timeout(&self) -> bool {
        matches!(self, RunError::TimedOut { .. })
    }
}

/// `300 s`, or `0.2 s` for a deadline that is not whole seconds.
fn seconds(duration: Duration) -> String {
    if duration.subsec_nanos() == 0 {
        format!("{} s", duration.as_secs())
    } else {
        format!("{:.1} s", duration.as_secs_f64())
    }
}

/// Runs commands. Object safe, so drivers hold an `Arc<dyn Runner>` chosen at start-up.
pub trait Runner: Send + Sync + fmt::Debug {
    /// Runs one command to completion and returns what it produced.
    ///
    /// A non-zero exit is not an error here: the caller decides what a failure means. A command
    /// still running at its deadline is killed and answered with [`RunError::TimedOut`].
    fn run(&self, spec: &CommandSpec) -> Result<Output, RunError>;

    /// Runs `producer | consumer`: the producer's stdout feeds the consumer's stdin directly,
    /// with no shell in between. `consumer.stdin` is ignored.
    fn run_pipe(
        &self,
        producer: &CommandSpec,
        consumer: &CommandSpec,
    ) -> Result<PipeOutput, RunError>;
}
