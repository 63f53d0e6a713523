//! What every process of the helper shares: how a set-up failure is reported and the process
//! ends (exit 125), how exit statuses become codes, waiting for a child, and writing a whole
//! buffer to a descriptor.
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicI32, Ordering};

use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

/// Exit code when the container could not be set up (as Docker uses 125).
pub(super) const EXIT_SETUP: i32 = 125;

/// The conversation descriptor while PID 1 or the exec is being set up (-1: none): where
/// [`fail`] reports.
pub(super) static REPORT_TO: AtomicI32 = AtomicI32::new(-1);

/// Reports a set-up failure to the daemon (while the set-up runs: [`Event::Failed`]) or on
/// stderr (which the daemon shows to the client), and exits 125.
pub(super) fn fail(what: &str, err: impl std::fmt::Display) -> ! {
    let message = format!("{what}: {err}");
    let fd = REPORT_TO.swap(-1, Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: REPORT_TO holds the conversation descriptor only while it is open.
        let sync = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        let _ = write_all(sync, format!("E{message}").as_bytes());
    } else {
        eprintln!("kleened: {message}");
    }
    std::process::exit(EXIT_SETUP)
}

/// The exit code of a wait status: the code, or 128 + the signal.
pub(super) fn status_code(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, signal, _) => Some(128 + signal as i32),
        _ => None,
    }
}

/// Waits for `child`, reaping any other child (PID 1 inherits orphans), and answers its exit code.
pub(super) fn wait_for(child: Pid) -> i32 {
    loop {
        match waitpid(Pid::from_raw(-1), None) {
            Ok(status) if status.pid() == Some(child) => {
                if let Some(code) = status_code(status) {
                    return code;
                }
            }
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => {}
            Err(nix::errno::Errno::ECHILD) => return EXIT_SETUP,
            Err(err) => fail("waiting for the container process", err),
        }
    }
}

/// Writes all of `data` to `fd`, again after interruptions.
pub(super) fn write_all(
    fd: std::os::fd::BorrowedFd<'_>,
    mut data: &[u8],
) -> Result<(), nix::errno::Errno> {
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}
