//! Reporting a test that did not run because the run opted out of it (`KLEENE_SKIP_HOST_TESTS=1`,
//! `KLEENE_SKIP_PYTHON_CLIENT=1`). Such a test returns early and the harness counts it as passed,
//! so the skip is said where it cannot be missed: on stderr directly (the harness captures and
//! hides `eprintln!` of passing tests), and as a line `<reason>\t<test>` in the file named by
//! `KLEENE_SKIP_LOG`, from which the test command prints the count of skipped tests by reason.
//!
//! A test states what it needs with [`require!`]: `require!(host_tests())` as its first line, and
//! `let klee = require!(python_klee())` for the Python client. A requirement answers `None` after
//! reporting the skip, and [`require!`] then returns from the test.
//!
//! One file for every crate with host tests: the harness crate has it as a module, the other
//! crates' test files include it with `#[path]`.

use std::io::Write;

/// Returns from the calling test when a requirement is not met (the requirement has reported the
/// skip); else answers what the requirement found. `require!(host_tests())`,
/// `let klee = require!(python_klee())`.
#[macro_export]
macro_rules! require {
    ($requirement:expr) => {
        match $requirement {
            Some(found) => found,
            None => return,
        }
    };
}

/// Reports that the running test is skipped for `reason` (the opt-out, e.g.
/// `KLEENE_SKIP_HOST_TESTS=1`). The test is named after its thread, which the harness names after it.
pub fn skipped(reason: &str) {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a test");
    let _ = writeln!(std::io::stderr(), "\n*** SKIPPED {test}: {reason} ***\n");
    if let Some(log) = std::env::var_os("KLEENE_SKIP_LOG") {
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .and_then(|mut file| file.write_all(format!("{reason}\t{test}\n").as_bytes()));
        if let Err(err) = written {
            panic!("cannot record the skip in {}: {err}", log.to_string_lossy());
        }
    }
}

/// True, after reporting the skip, when the run opted out of host tests with
/// `KLEENE_SKIP_HOST_TESTS=1`.
pub fn skip_host_tests() -> bool {
    let skip = std::env::var("KLEENE_SKIP_HOST_TESTS").as_deref() == Ok("1");
    if skip {
        skipped("KLEENE_SKIP_HOST_TESTS=1");
    }
    skip
}

/// The requirement of a host test, for [`require!`]: `None`, after reporting the skip, when the
/// run opted out of host tests.
pub fn host_tests() -> Option<()> {
    (!skip_host_tests()).then_some(())
}
