//! [`RecordingRunner`]: a fake [`Runner`] for tier-1 tests.
//!
//! It runs nothing. It remembers every command it was asked to run, in order, and answers
//! each one with the next scripted [`Reply`], or with a plain success once the script is used
//! up. Tests then assert on the exact command lines (golden argv) and drive error paths by
//! scripting the stderr a real tool prints.

use std::collections::VecDeque;
use std::io;
use std::sync::{Mutex, MutexGuard};

use crate::{CommandSpec, Output, PipeOutput, RunError, Runner};

/// A scripted answer to the next command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The command ran and produced this. Answering a pipeline, it is the consumer's output
    /// and the producer succeeds.
    Output(Output),
    /// Answers a pipeline with both sides' results. Answering a single command, the
    /// consumer's output is used.
    Pipe(PipeOutput),
    /// The program could not be started; the string becomes the OS error's message.
    SpawnError(String),
    /// The command did not finish within its deadline and was killed: answered with
    /// [`RunError::TimedOut`] for the command's own timeout (a pipeline's longer one).
    TimedOut,
}

/// One recorded invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// A single command, from [`Runner::run`].
    Run(CommandSpec),
    /// A pipeline, from [`Runner::run_pipe`].
    Pipe(CommandSpec, CommandSpec),
}

impl Recorded {
    /// The invocation as one line: `program args…`, with ` | ` between a pipeline's sides.
    pub fn line(&self) -> String {
        match self {
            Recorded::Run(spec) => spec.to_string(),
            Recorded::Pipe(producer, consumer) => format!("{producer} | {consumer}"),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    calls: Vec<Recorded>,
    replies: VecDeque<Reply>,
}

/// A [`Runner`] that records commands instead of running them and answers from a script.
#[derive(Debug, Default)]
pub struct RecordingRunner {
    state: Mutex<State>,
}

impl RecordingRunner {
    /// A runner with an empty script: every command succeeds with empty output.
    pub fn new() -> Self {
        RecordingRunner::default()
    }

    // A panic in another test thread while holding the lock must not hide what was recorded,
    // so a poisoned lock is simply taken over.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues a reply for the next command not yet answered.
    pub fn push(&self, reply: Reply) -> &Self {
        self.state().replies.push_back(reply);
        self
    }

    /// Queues a success printing `stdout`.
    pub fn push_ok(&self, stdout: &str) -> &Self {
        self.push(Reply::Output(Output::success(stdout)))
    }

    /// Queues a failure with exit `code` printing `stderr`.
    pub fn push_err(&self, code: i32, stderr: &str) -> &Self {
        self.push(Reply::Output(Output::failure(code, stderr)))
    }

    /// Every invocation so far, in order.
    pub fn calls(&self) -> Vec<Recorded> {
        self.state().calls.clone()
    }

    /// Every invocation so far as a one-line string (see [`Recorded::line`]).
    pub fn lines(&self) -> Vec<String> {
        self.state().calls.iter().map(Recorded::line).collect()
    }

    /// How many scripted replies have not been used yet.
    pub fn pending_replies(&self) -> usize {
        self.state().replies.len()
    }

    /// Forgets the recorded invocations (the script is kept).
    pub fn clear_calls(&self) {
        self.state().calls.clear();
    }

    fn next_reply(&self, call: Recorded) -> Option<Reply> {
        let mut state = self.state();
        state.calls.push(call);
        state.replies.pop_front()
    }
}

fn timed_out(program: &str, command: String, after: std::time::Duration) -> RunError {
    RunError::TimedOut {
        program: program.to_owned(),
        command,
        after,
    }
}

fn spawn_error(program: &str, message: String) -> RunError {
    RunError::Spawn {
        program: program.to_owned(),
        source: io::Error::new(io::ErrorKind::NotFound, message),
    }
}

impl Runner for RecordingRunner {
    fn run(&self, spec: &CommandSpec) -> Result<Output, RunError> {
        match self.next_reply(Recorded::Run(spec.clone())) {
            None => Ok(Output::success(Vec::new())),
            Some(Reply::Output(output)) => Ok(output),
            Some(Reply::Pipe(pipe)) => Ok(pipe.consumer),
            Some(Reply::SpawnError(message)) => Err(spawn_error(&spec.program, message)),
            Some(Reply::TimedOut) => Err(timed_out(&spec.program, spec.to_string(), spec.timeout)),
        }
    }

    fn run_pipe(
        &self,
        producer: &CommandSpec,
        consumer: &CommandSpec,
    ) -> Result<PipeOutput, RunError> {
        match self.next_reply(Recorded::Pipe(producer.clone(), consumer.clone())) {
            None => Ok(PipeOutput {
                producer: Output::success(Vec::new()),
                consumer: Output::success(Vec::new()),
            }),
            Some(Reply::Output(output)) => Ok(PipeOutput {
                producer: Output::success(Vec::new()),
                consumer: output,
            }),
            Some(Reply::Pipe(pipe)) => Ok(pipe),
            Some(Reply::SpawnError(message)) => Err(spawn_error(&producer.program, message)),
            Some(Reply::TimedOut) => Err(timed_out(
                &producer.program,
                format!("{producer} | {consumer}"),
                producer.timeout.max(consumer.timeout),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn records_commands_in_order_and_succeeds_by_default() {
        let runner = RecordingRunner::new();
        let out = runner
            .run(&CommandSpec::new("/sbin/zfs").args(["list", "-H"]))
            .expect("fake run");
        assert!(out.succeeded());
        assert!(out.stdout.is_empty());
        runner
            .run_pipe(
                &CommandSpec::new("/sbin/zfs").args(["send", "p/a@s"]),
                &CommandSpec::new("/sbin/zfs").args(["receive", "p/b"]),
            )
            .expect("fake pipe");
        assert_eq!(
            runner.lines(),
            [
                "/sbin/zfs list -H",
                "/sbin/zfs send p/a@s | /sbin/zfs receive p/b"
            ]
        );
    }

    #[test]
    fn answers_from_the_script_then_defaults_to_success() {
        let runner = RecordingRunner::new();
        runner.push_ok("a\n").push_err(1, "boom\n");
        let spec = CommandSpec::new("x");
        assert_eq!(runner.run(&spec).expect("1").stdout_text(), "a\n");
        let second = runner.run(&spec).expect("2");
        assert_eq!(second.code, Some(1));
        assert_eq!(second.stderr_text(), "boom");
        assert!(runner.run(&spec).expect("3").succeeded());
        assert_eq!(runner.pending_replies(), 0);
        assert_eq!(runner.calls().len(), 3);
    }

    #[test]
    fn scripted_spawn_error_names_the_program() {
        let runner = RecordingRunner::new();
        runner.push(Reply::SpawnError("no such file".into()));
        let err = runner
            .run(&CommandSpec::new("/sbin/zfs"))
            .expect_err("scripted failure");
        assert_eq!(err.to_string(), "could not start `/sbin/zfs`");
    }

    #[test]
    fn a_scripted_timeout_names_the_command_and_its_deadline() {
        use std::time::Duration;
        let runner = RecordingRunner::new();
        runner.push(Reply::TimedOut).push(Reply::TimedOut);
        let err = runner
            .run(&CommandSpec::new("/sbin/zfs").args(["destroy", "-r", "p/a"]))
            .expect_err("scripted timeout");
        assert_eq!(
            err.to_string(),
            "`/sbin/zfs destroy -r p/a` did not finish in 300 s and was killed"
        );
        let err = runner
            .run_pipe(
                &CommandSpec::new("zfs")
                    .args(["send", "p/a@s"])
                    .timeout(crate::LONG_TIMEOUT),
                &CommandSpec::new("zfs").args(["receive", "p/b"]),
            )
            .expect_err("scripted timeout");
        assert!(
            matches!(err, RunError::TimedOut { ref program, after, .. } if program == "zfs" && after == Duration::from_secs(3600)),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "`zfs send p/a@s | zfs receive p/b` did not finish in 3600 s and was killed"
        );
    }

    #[test]
    fn the_recorded_spec_keeps_its_timeout() {
        let runner = RecordingRunner::new();
        let spec = CommandSpec::new("tar").timeout(crate::LONG_TIMEOUT);
        runner.run(&spec).expect("fake run");
        assert_eq!(runner.calls(), [Recorded::Run(spec)]);
        assert_eq!(
            CommandSpec::new("zfs").timeout,
            crate::DEFAULT_TIMEOUT,
            "every command has a deadline unless it asks for another"
        );
    }

    #[test]
    fn pipe_reply_gives_both_sides() {
        let runner = RecordingRunner::new();
        runner.push(Reply::Pipe(PipeOutput {
            producer: Output::failure(1, "send failed"),
            consumer: Output::failure(1, "receive failed"),
        }));
        let out = runner
            .run_pipe(&CommandSpec::new("a"), &CommandSpec::new("b"))
            .expect("fake pipe");
        assert_eq!(out.producer.stderr_text(), "send failed");
        assert!(!out.succeeded());
    }

    #[test]
    fn usable_as_a_shared_trait_object() {
        let fake = Arc::new(RecordingRunner::new());
        let runner: Arc<dyn Runner> = fake.clone();
        runner
            .run(&CommandSpec::new("true").env("K", "V").stdin("in"))
            .expect("fake run");
        assert_eq!(
            fake.calls(),
            [Recorded::Run(CommandSpec {
                program: "true".into(),
                args: vec![],
                env: vec![("K".into(), "V".into())],
                stdin: Some(b"in".to_vec()),
                timeout: crate::DEFAULT_TIMEOUT,
            })]
        );
    }

    #[test]
    fn command_spec_argv_and_display() {
        let spec = CommandSpec::new("/sbin/zfs").args(["get", "-H", "name"]);
        assert_eq!(spec.argv(), ["/sbin/zfs", "get", "-H", "name"]);
        assert_eq!(spec.to_string(), "/sbin/zfs get -H name");
    }
}
