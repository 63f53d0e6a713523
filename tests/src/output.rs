//! What a test asks of a command's output: [`ok`] (the one success assertion, showing the
//! command's output when it fails), [`text`] (what a user sees: stdout, then stderr),
//! [`stdout`], [`stderr`] and [`describe`] (for assertion messages). A leaf: the clients and the
//! host helpers both use it.

use std::fmt::Display;
use std::process::Output;

/// Text of a command's stdout and stderr, for assertion messages.
pub fn describe(output: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// What a command printed on stdout.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// What a command printed on stderr.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// What a command printed, as a user sees it: stdout, then stderr.
pub fn text(output: &Output) -> String {
    stdout(output) + &stderr(output)
}

/// Asserts that a command succeeded; the panic shows its exit code, stdout and stderr. Answers
/// its stdout.
#[track_caller]
pub fn ok(output: &Output) -> String {
    ok_for("the command", output)
}

/// [`ok`], the panic naming first what the command was (`klee ["lsi"]`, a loop's case).
#[track_caller]
pub fn ok_for(what: impl Display, output: &Output) -> String {
    assert!(
        output.status.success(),
        "{what} failed: {}",
        describe(output)
    );
    stdout(output)
}
