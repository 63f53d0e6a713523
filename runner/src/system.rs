//! [`SystemRunner`]: runs commands on the host with `std::process::Command`, each under its
//! deadline.
//!
//! How a command is waited for without spinning: the calling thread reads the command's output
//! pipes as poll(2) reports them ready, with the time left as poll's timeout; once every pipe
//! has ended it polls `try_wait`, first yielding the CPU a few times and then with a pause that
//! doubles from 50 µs, because a process closes its output as it exits and is reaped a moment
//! later. So a fast command is noticed within microseconds of its exit and costs no extra
//! thread, and a slow one costs no CPU while it runs. Every command leads a process group of its own, so at the deadline SIGKILL reaches
//! whatever it started too (GNU tar's decompressor, a shell's children), and nothing keeps the
//! output pipes open after it.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tracing::{debug, warn};

use crate::{CommandSpec, Output, PipeOutput, RunError, Runner};

/// How many times the CPU is yielded between two `try_wait` after the output ended, before
/// pausing.
const YIELDS: u32 = 8;
/// The first pause between two `try_wait` after the yields; it doubles up to [`LAST_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_micros(50);
/// The longest pause between two `try_wait`: only a process that closed its output long before
/// exiting waits this long to be noticed.
const LAST_PAUSE: Duration = Duration::from_millis(20);
/// How long a killed command may take to be reaped before a thread is left to reap it: a process
/// in an uninterruptible wait (I/O on a hung FUSE file system) dies only when that wait ends.
const KILL_GRACE: Duration = Duration::from_secs(2);
/// Stack of the thread left to reap a command that would not die: it only waits.
const REAPER_STACK: usize = 64 * 1024;

/// Runs commands for real. Every command is logged at `debug` with its argv before it starts,
/// and again with its exit code when it ends; one killed at its deadline is logged at `warn`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemRunner;

impl SystemRunner {
    /// A runner that executes commands on this host.
    pub fn new() -> Self {
        SystemRunner
    }
}

/// Builds a `Command` with the spec's program, arguments and extra environment, leading a
/// process group of its own.
fn command(spec: &CommandSpec) -> Command {
    let mut cmd = Command::new(&spec.program);
    cmd.args(&spec.args).process_group(0);
    for (key, value) in &spec.env {
        cmd.env(key, value);
    }
    cmd
}

fn spawn(cmd: &mut Command, spec: &CommandSpec) -> Result<Child, RunError> {
    cmd.spawn().map_err(|source| RunError::Spawn {
        program: spec.program.clone(),
        source,
    })
}

fn io_error(program: &str) -> impl FnOnce(io::Error) -> RunError + '_ {
    move |source| RunError::Io {
        program: program.to_owned(),
        source,
    }
}

/// The instant `timeout` from now; a timeout too large to represent is a deadline a century
/// away.
fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 86_400))
}

/// Feeds stdin from its own thread: writing everything before reading the output would
/// deadlock once the child fills its stdout pipe while we still block on its stdin.
fn feed_stdin(
    stdin: Option<ChildStdin>,
    input: Option<&Vec<u8>>,
) -> Option<thread::JoinHandle<std::io::Result<()>>> {
    let (mut pipe, input) = (stdin?, input?.clone());
    Some(thread::spawn(move || {
        match pipe.write_all(&input) {
            // The child may exit without reading all of its input; that is its business and
            // shows up in its exit code, not as our error.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            other => other,
        }
        // `pipe` drops here, closing the child's stdin so it sees end of file.
    }))
}

fn join_feeder(
    feeder: Option<thread::JoinHandle<std::io::Result<()>>>,
    program: &str,
) -> Result<(), RunError> {
    let Some(handle) = feeder else {
        return Ok(());
    };
    let result = handle
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("stdin writer thread panicked")));
    result.map_err(io_error(program))
}

/// One output pipe of a command, read to its end.
struct Pipe {
    /// The pipe while it is open; `None` once it reached its end (or never existed, which
    /// cannot happen with `Stdio::piped()` and reads as empty).
    file: Option<File>,
    /// What was read so far.
    bytes: Vec<u8>,
}

impl Pipe {
    fn new(pipe: Option<impl Into<OwnedFd>>) -> Pipe {
        Pipe {
            file: pipe.map(|pipe| File::from(pipe.into())),
            bytes: Vec::new(),
        }
    }
}

/// Reads every pipe to its end, as poll(2) reports each ready. Answers `false` at the deadline.
fn drain(pipes: &mut [&mut Pipe], deadline: Instant) -> io::Result<bool> {
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let ready: Vec<bool> = {
            let mut fds: Vec<PollFd<'_>> = pipes
                .iter()
                .filter_map(|pipe| pipe.file.as_ref())
                .map(|file| PollFd::new(file.as_fd(), PollFlags::POLLIN))
                .collect();
            if fds.is_empty() {
                return Ok(true);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            // Rounded up, so that the last wait does not become a spin of zero timeouts.
            let millis = i32::try_from(left.as_micros().div_ceil(1000)).unwrap_or(i32::MAX);
            let timeout = PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX);
            match poll(&mut fds, timeout) {
                Ok(_) => {}
                Err(Errno::EINTR) => continue,
                Err(errno) => return Err(errno.into()),
            }
            // Readable, at its end (POLLHUP) or in error: a read tells which without blocking.
            fds.iter()
                .map(|fd| fd.revents().is_some_and(|events| !events.is_empty()))
                .collect()
        };
        let open = pipes.iter_mut().filter(|pipe| pipe.file.is_some());
        for (pipe, ready) in open.zip(ready) {
            let Some(file) = pipe.file.as_mut().filter(|_| ready) else {
                continue;
            };
            match file.read(&mut chunk) {
                Ok(0) => pipe.file = None,
                Ok(n) => pipe.bytes.extend_from_slice(&chunk[..n]),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
    }
}

/// Started processes, each with its exit status once reaped. Dropped while one has not been
/// reaped (at the deadline, or after an error), it kills that one's process group and reaps it,
/// so nothing is left running and no zombie is left behind.
struct Group {
    children: Vec<(Child, Option<ExitStatus>)>,
}

impl Group {
    fn new(child: Child) -> Group {
        Group {
            children: vec![(child, None)],
        }
    }

    /// Reads `pipes` to their end and waits until every process has exited. Answers `false` at
    /// the deadline.
    fn wait(&mut self, pipes: &mut [&mut Pipe], deadline: Instant) -> io::Result<bool> {
        if !drain(pipes, deadline)? {
            return Ok(false);
        }
        let mut pause = FIRST_PAUSE;
        for round in 0.. {
            let mut running = false;
            for (child, status) in &mut self.children {
                if status.is_none() {
                    *status = child.try_wait()?;
                    running |= status.is_none();
                }
            }
            if !running {
                return Ok(true);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            // The process is usually in the middle of exiting: give it the CPU a few times
            // before sleeping, as the shortest sleep costs some 60 µs of timer slack.
            if round < YIELDS {
                thread::yield_now();
            } else {
                thread::sleep(pause.min(left));
                pause = (pause * 2).min(LAST_PAUSE);
            }
        }
        Ok(false)
    }

    /// The exit status of the `index`th process, once [`Group::wait`] answered `true`.
    fn status(&self, index: usize) -> Option<ExitStatus> {
        self.children.get(index).and_then(|(_, status)| *status)
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        for (mut child, status) in self.children.drain(..) {
            if status.is_some() {
                continue;
            }
            // Not reaped yet, so its PID (and process group ID) cannot have been reused.
            match i32::try_from(child.id()) {
                Ok(pid) if pid > 0 => {
                    let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
                }
                _ => {
                    let _ = child.kill();
                }
            }
            let deadline = deadline_after(KILL_GRACE);
            let mut pause = FIRST_PAUSE;
            let reaped = loop {
                match child.try_wait() {
                    Ok(None) if Instant::now() < deadline => {
                        thread::sleep(pause);
                        pause = (pause * 2).min(LAST_PAUSE);
                    }
                    Ok(None) => break false,
                    Ok(Some(_)) | Err(_) => break true,
                }
            };
            if !reaped {
                warn!(
                    pid = child.id(),
                    "a killed command has not exited yet; a thread is left to reap it"
                );
                let _ = thread::Builder::new()
                    .name("runner-reaper".into())
                    .stack_size(REAPER_STACK)
                    .spawn(move || child.wait());
            }
        }
    }
}

fn stdin_mode(spec: &CommandSpec) -> Stdio {
    if spec.stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    }
}

fn log_start(spec: &CommandSpec) {
    let env: Vec<&str> = spec.env.iter().map(|(k, _)| k.as_str()).collect();
    debug!(argv = ?spec.argv(), env = ?env, timeout = ?spec.timeout, "running command");
}

fn log_end(spec: &CommandSpec, output: &Output) {
    debug!(
        program = %spec.program,
        code = ?output.code,
        stderr = %output.stderr_text(),
        "command finished"
    );
}

/// The error for a command killed at its deadline, logged here since the kill is the runner's
/// own doing.
fn timed_out(program: &str, command: String, after: Duration) -> RunError {
    let err = RunError::TimedOut {
        program: program.to_owned(),
        command,
        after,
    };
    warn!(error = %err, "killed a command at its deadline");
    err
}

impl Runner for SystemRunner {
    fn run(&self, spec: &CommandSpec) -> Result<Output, RunError> {
        log_start(spec);
        let deadline = deadline_after(spec.timeout);
        let mut child = spawn(
            command(spec)
                .stdin(stdin_mode(spec))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
            spec,
        )?;
        let mut stdout = Pipe::new(child.stdout.take());
        let mut stderr = Pipe::new(child.stderr.take());
        let feeder = feed_stdin(child.stdin.take(), spec.stdin.as_ref());
        // From here on, an early return kills the command.
        let mut group = Group::new(child);
        if !group
            .wait(&mut [&mut stdout, &mut stderr], deadline)
            .map_err(io_error(&spec.program))?
        {
            // The feeder ends once the group is dead; nobody waits for it.
            drop(group);
            return Err(timed_out(&spec.program, spec.to_string(), spec.timeout));
        }
        let output = Output {
            code: group.status(0).and_then(|status| status.code()),
            stdout: stdout.bytes,
            stderr: stderr.bytes,
        };
        join_feeder(feeder, &spec.program)?;
        log_end(spec, &output);
        Ok(output)
    }

    fn run_pipe(
        &self,
        producer: &CommandSpec,
        consumer: &CommandSpec,
    ) -> Result<PipeOutput, RunError> {
        let after = producer.timeout.max(consumer.timeout);
        debug!(
            producer = ?producer.argv(),
            consumer = ?consumer.argv(),
            timeout = ?after,
            "running pipeline"
        );
        let deadline = deadline_after(after);
        let mut first = spawn(
            command(producer)
                .stdin(stdin_mode(producer))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
            producer,
        )?;
        let pipe = first.stdout.take();
        // The producer's stderr is drained too, so a chatty producer cannot stall.
        let mut producer_err = Pipe::new(first.stderr.take());
        let feeder = feed_stdin(first.stdin.take(), producer.stdin.as_ref());
        // From here on, an early return kills what was started: without a consumer the producer
        // would block for ever on a full pipe.
        let mut group = Group::new(first);
        let Some(pipe) = pipe else {
            return Err(RunError::Io {
                program: producer.program.clone(),
                source: std::io::Error::other("producer stdout was not captured"),
            });
        };
        // The `Command` holding our end of the pipe is a temporary, dropped at the end of this
        // statement, so the consumer sees end of file when the producer exits.
        let mut second = spawn(
            command(consumer)
                .stdin(Stdio::from(pipe))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
            consumer,
        )?;
        let mut consumer_out = Pipe::new(second.stdout.take());
        let mut consumer_err = Pipe::new(second.stderr.take());
        group.children.push((second, None));
        if !group
            .wait(
                &mut [&mut producer_err, &mut consumer_out, &mut consumer_err],
                deadline,
            )
            .map_err(io_error(&consumer.program))?
        {
            drop(group);
            return Err(timed_out(
                &producer.program,
                format!("{producer} | {consumer}"),
                after,
            ));
        }
        let output = PipeOutput {
            producer: Output {
                code: group.status(0).and_then(|status| status.code()),
                stdout: Vec::new(),
                stderr: producer_err.bytes,
            },
            consumer: Output {
                code: group.status(1).and_then(|status| status.code()),
                stdout: consumer_out.bytes,
                stderr: consumer_err.bytes,
            },
        };
        join_feeder(feeder, &producer.program)?;
        log_end(producer, &output.producer);
        log_end(consumer, &output.consumer);
        Ok(output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> CommandSpec {
        CommandSpec::new("/bin/sh").arg("-c").arg(script)
    }

    #[test]
    fn run_captures_stdout_stderr_and_exit_code() {
        let out = SystemRunner
            .run(&sh("echo out; echo err >&2; exit 3"))
            .expect("sh runs");
        assert_eq!(out.code, Some(3));
        assert_eq!(out.stdout_text(), "out\n");
        assert_eq!(out.stderr_text(), "err");
        assert!(!out.succeeded());
    }

    #[test]
    fn run_passes_arguments_verbatim_without_a_shell() {
        let spec = CommandSpec::new("printf").args(["%s|", "a b", "$HOME", "'q'"]);
        let out = SystemRunner.run(&spec).expect("printf runs");
        assert!(out.succeeded());
        assert_eq!(out.stdout_text(), "a b|$HOME|'q'|");
    }

    #[test]
    fn run_sets_extra_environment() {
        let out = SystemRunner
            .run(&sh("printf %s \"$KLEENE_RUNNER_TEST\"").env("KLEENE_RUNNER_TEST", "v1"))
            .expect("sh runs");
        assert_eq!(out.stdout_text(), "v1");
    }

    #[test]
    fn run_feeds_large_stdin_without_deadlock() {
        // Larger than a pipe buffer in both directions: would hang if stdin were written
        // before stdout is drained.
        let input = vec![b'x'; 1 << 20];
        let out = SystemRunner
            .run(&CommandSpec::new("cat").stdin(input.clone()))
            .expect("cat runs");
        assert!(out.succeeded());
        assert_eq!(out.stdout, input);
    }

    #[test]
    fn run_without_stdin_reads_end_of_file() {
        let out = SystemRunner
            .run(&CommandSpec::new("cat"))
            .expect("cat runs");
        assert!(out.succeeded());
        assert!(out.stdout.is_empty());
    }

    #[test]
    fn run_of_missing_program_is_a_spawn_error() {
        let err = SystemRunner
            .run(&CommandSpec::new("/nonexistent/kleene-runner-test"))
            .expect_err("must not start");
        assert!(
            matches!(err, RunError::Spawn { ref program, .. } if program == "/nonexistent/kleene-runner-test")
        );
        assert_eq!(
            err.to_string(),
            "could not start `/nonexistent/kleene-runner-test`"
        );
    }

    #[test]
    fn run_pipe_connects_producer_to_consumer() {
        let out = SystemRunner
            .run_pipe(
                &CommandSpec::new("printf").arg("b\\na\\n"),
                &CommandSpec::new("sort"),
            )
            .expect("pipe runs");
        assert!(out.succeeded());
        assert_eq!(out.consumer.stdout_text(), "a\nb\n");
        assert!(out.producer.stdout.is_empty());
    }

    #[test]
    fn run_pipe_reports_each_side_separately() {
        let out = SystemRunner
            .run_pipe(
                &sh("echo data; echo perr >&2; exit 4"),
                &sh("cat >/dev/null; echo cerr >&2"),
            )
            .expect("pipe runs");
        assert_eq!(out.producer.code, Some(4));
        assert_eq!(out.producer.stderr_text(), "perr");
        assert_eq!(out.consumer.code, Some(0));
        assert_eq!(out.consumer.stderr_text(), "cerr");
        assert!(!out.succeeded());
    }

    #[test]
    fn run_pipe_feeds_producer_stdin() {
        let out = SystemRunner
            .run_pipe(
                &CommandSpec::new("cat").stdin("z\ny\n"),
                &CommandSpec::new("sort"),
            )
            .expect("pipe runs");
        assert_eq!(out.consumer.stdout_text(), "y\nz\n");
    }

    #[test]
    fn run_pipe_with_missing_consumer_does_not_hang() {
        let err = SystemRunner
            .run_pipe(
                &CommandSpec::new("yes"),
                &CommandSpec::new("/nonexistent/consumer"),
            )
            .expect_err("consumer cannot start");
        assert!(
            matches!(err, RunError::Spawn { ref program, .. } if program == "/nonexistent/consumer")
        );
    }

    #[test]
    fn a_command_past_its_deadline_is_killed_and_named() {
        let started = Instant::now();
        let err = SystemRunner
            .run(
                &CommandSpec::new("sleep")
                    .arg("30")
                    .timeout(Duration::from_millis(300)),
            )
            .expect_err("sleep 30 cannot finish in 0.3 s");
        let took = started.elapsed();
        assert!(err.is_timeout(), "{err:?}");
        assert_eq!(
            err.to_string(),
            "`sleep 30` did not finish in 0.3 s and was killed"
        );
        assert!(
            matches!(err, RunError::TimedOut { ref program, after, .. } if program == "sleep" && after == Duration::from_millis(300))
        );
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_secs(3),
            "killed after {took:?}"
        );
    }

    #[test]
    fn whole_second_deadlines_read_as_seconds() {
        let err = RunError::TimedOut {
            program: "/sbin/zfs".into(),
            command: "/sbin/zfs destroy -r p/a".into(),
            after: Duration::from_secs(300),
        };
        assert_eq!(
            err.to_string(),
            "`/sbin/zfs destroy -r p/a` did not finish in 300 s and was killed"
        );
    }

    /// The state letter of a process from /proc, `None` once it is gone.
    #[cfg(target_os = "linux")]
    fn process_state(pid: &str) -> Option<char> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // `pid (comm) S ...`: the state follows the last parenthesis.
        stat.rsplit_once(')')?.1.trim_start().chars().next()
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_deadline_kills_what_the_command_started_too() {
        // The shell exits at once but leaves a child holding its output open: without a deadline
        // this would be waited for as long as the child lives. The child is killed with the
        // shell's process group.
        let dir = std::env::temp_dir().join(format!("kleene-runner-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let pidfile = dir.join("child.pid");
        let script = format!("sleep 30 & echo $! > {}", pidfile.display());
        let started = Instant::now();
        let err = SystemRunner
            .run(&sh(&script).timeout(Duration::from_millis(500)))
            .expect_err("the child keeps the output open");
        assert!(err.is_timeout(), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(4));
        let pid = std::fs::read_to_string(&pidfile).expect("pid written");
        let _ = std::fs::remove_dir_all(&dir);
        let pid = pid.trim();
        // Orphaned, it is reaped by whoever adopts it; a zombie is dead enough.
        let gone = Instant::now() + Duration::from_secs(3);
        while process_state(pid).is_some_and(|state| state != 'Z') {
            assert!(
                Instant::now() < gone,
                "the command's child {pid} still runs"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn a_pipeline_past_its_deadline_is_killed_whole() {
        let started = Instant::now();
        let err = SystemRunner
            .run_pipe(
                &CommandSpec::new("sleep")
                    .arg("30")
                    .timeout(Duration::from_millis(200)),
                &CommandSpec::new("cat").timeout(Duration::from_millis(400)),
            )
            .expect_err("cannot finish");
        assert!(started.elapsed() < Duration::from_secs(3));
        assert_eq!(
            err.to_string(),
            "`sleep 30 | cat` did not finish in 0.4 s and was killed",
            "the longer deadline of the two bounds the pipeline"
        );
    }

    #[test]
    fn a_fast_command_is_not_held_up_by_its_deadline() {
        // The wait is driven by the output's end, not by a polling period: a hundred `true`s take
        // about as long as a hundred fork/execs.
        let spec = CommandSpec::new("true");
        let started = Instant::now();
        for _ in 0..100 {
            assert!(SystemRunner.run(&spec).expect("true runs").succeeded());
        }
        let each = started.elapsed() / 100;
        assert!(each < Duration::from_millis(50), "{each:?} per command");
    }

    #[test]
    fn run_pipe_producer_stops_when_consumer_exits_early() {
        // `yes` never ends on its own; it must die of SIGPIPE once `head` has exited.
        let out = SystemRunner
            .run_pipe(
                &CommandSpec::new("yes"),
                &CommandSpec::new("head").args(["-n", "2"]),
            )
            .expect("pipe runs");
        assert_eq!(out.consumer.stdout_text(), "y\ny\n");
        assert!(out.consumer.succeeded());
        assert_ne!(out.producer.code, Some(0));
    }
}
