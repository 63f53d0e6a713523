//! [`SystemRunner`]: runs commands on the host with `std::process::Command`.

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::thread;

use tracing::debug;

use crate::{CommandSpec, Output, PipeOutput, RunError, Runner};

/// Runs commands for real. Every command is logged at `debug` with its argv before it starts,
/// and again with its exit code when it ends.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemRunner;

impl SystemRunner {
    /// A runner that executes commands on this host.
    pub fn new() -> Self {
        SystemRunner
    }
}

/// Builds a `Command` with the spec's program, arguments and extra environment.
fn command(spec: &CommandSpec) -> Command {
    let mut cmd = Command::new(&spec.program);
    cmd.args(&spec.args);
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
    result.map_err(|source| RunError::Io {
        program: program.to_owned(),
        source,
    })
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
    debug!(argv = ?spec.argv(), env = ?env, "running command");
}

fn log_end(spec: &CommandSpec, output: &Output) {
    debug!(
        program = %spec.program,
        code = ?output.code,
        stderr = %output.stderr_text(),
        "command finished"
    );
}

impl Runner for SystemRunner {
    fn run(&self, spec: &CommandSpec) -> Result<Output, RunError> {
        log_start(spec);
        let mut child = spawn(
            command(spec)
                .stdin(stdin_mode(spec))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
            spec,
        )?;
        let feeder = feed_stdin(child.stdin.take(), spec.stdin.as_ref());
        let out = child.wait_with_output().map_err(|source| RunError::Io {
            program: spec.program.clone(),
            source,
        })?;
        join_feeder(feeder, &spec.program)?;
        let output = Output {
            code: out.status.code(),
            stdout: out.stdout,
            stderr: out.stderr,
        };
        log_end(spec, &output);
        Ok(output)
    }

    fn run_pipe(
        &self,
        producer: &CommandSpec,
        consumer: &CommandSpec,
    ) -> Result<PipeOutput, RunError> {
        debug!(
            producer = ?producer.argv(),
            consumer = ?consumer.argv(),
            "running pipeline"
        );
        let mut first = spawn(
            command(producer)
                .stdin(stdin_mode(producer))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
            producer,
        )?;
        let Some(pipe) = first.stdout.take() else {
            // Cannot happen with Stdio::piped(), but do not leave the producer behind if it does.
            let _ = first.kill();
            let _ = first.wait();
            return Err(RunError::Io {
                program: producer.program.clone(),
                source: std::io::Error::other("producer stdout was not captured"),
            });
        };
        let second = command(consumer)
            .stdin(Stdio::from(pipe))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let second = match second {
            Ok(child) => child,
            Err(source) => {
                // Without a consumer the producer would block forever on a full pipe.
                let _ = first.kill();
                let _ = first.wait();
                return Err(RunError::Spawn {
                    program: consumer.program.clone(),
                    source,
                });
            }
        };
        let feeder = feed_stdin(first.stdin.take(), producer.stdin.as_ref());
        // The producer's stderr is drained concurrently so a chatty producer cannot stall.
        let producer_stderr = first.stderr.take().map(|mut err| {
            thread::spawn(move || {
                let mut buf = Vec::new();
                err.read_to_end(&mut buf).map(|_| buf)
            })
        });
        let consumer_out = match second.wait_with_output() {
            Ok(out) => out,
            Err(source) => {
                // Do not leave the producer running with nobody reading its output.
                let _ = first.kill();
                let _ = first.wait();
                return Err(RunError::Io {
                    program: consumer.program.clone(),
                    source,
                });
            }
        };
        let producer_status = first.wait().map_err(|source| RunError::Io {
            program: producer.program.clone(),
            source,
        })?;
        join_feeder(feeder, &producer.program)?;
        let producer_stderr = match producer_stderr {
            Some(handle) => handle
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("stderr reader thread panicked")))
                .map_err(|source| RunError::Io {
                    program: producer.program.clone(),
                    source,
                })?,
            None => Vec::new(),
        };
        let output = PipeOutput {
            producer: Output {
                code: producer_status.code(),
                stdout: Vec::new(),
                stderr: producer_stderr,
            },
            consumer: Output {
                code: consumer_out.status.code(),
                stdout: consumer_out.stdout,
                stderr: consumer_out.stderr,
            },
        };
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
