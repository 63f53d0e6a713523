//! Terminals for container processes: a pseudo-terminal opened from the container's own devpts
//! (so the process sees a terminal that exists in its file system), and the relay between the
//! daemon's pipes and that terminal, run by the process that forked the command.
#![allow(unsafe_code)]

use std::os::fd::{AsFd, OwnedFd};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use super::child::{fail, status_code, write_all};

/// The `statfs` type of devpts.
const DEVPTS_SUPER_MAGIC: i64 = 0x1cd1;

/// Opens a pseudo-terminal pair from the container's own devpts: its `/dev/pts/ptmx`, reached
/// without following any link (the container's root may have put one anywhere in `/dev`) and
/// checked to be devpts's, and the other end from the master itself (`TIOCGPTPEER`), never
/// through a path.
pub(super) fn open_terminal() -> Result<(OwnedFd, OwnedFd), String> {
    use rustix::fs::{Mode, OFlags, ResolveFlags, CWD};
    use rustix::pty::OpenptFlags;
    let master = rustix::fs::openat2(
        CWD,
        "/dev/pts/ptmx",
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    )
    .map_err(|e| format!("/dev/pts/ptmx: {e}"))?;
    let kind = rustix::fs::fstatfs(&master)
        .map_err(|e| format!("/dev/pts/ptmx: {e}"))?
        .f_type;
    // `f_type`'s width differs between architectures.
    #[allow(clippy::useless_conversion)]
    let kind = i64::from(kind);
    if kind != DEVPTS_SUPER_MAGIC {
        return Err("/dev/pts/ptmx is not on a devpts file system".into());
    }
    rustix::pty::grantpt(&master).map_err(|e| e.to_string())?;
    rustix::pty::unlockpt(&master).map_err(|e| e.to_string())?;
    let slave = rustix::pty::ioctl_tiocgptpeer(&master, OpenptFlags::RDWR | OpenptFlags::NOCTTY)
        .map_err(|e| format!("the terminal's other end: {e}"))?;
    Ok((master, slave))
}

/// `r<rows> <cols>` lines of the daemon, complete ones taken from the front of `pending`.
fn sizes(pending: &mut Vec<u8>) -> Vec<(u16, u16)> {
    let mut found = vec![];
    while let Some(end) = pending.iter().position(|b| *b == b'\n') {
        let line: Vec<u8> = pending.drain(..=end).collect();
        let text = String::from_utf8_lossy(&line);
        let parsed = text.trim().strip_prefix('r').and_then(|rest| {
            let (rows, cols) = rest.split_once(' ')?;
            Some((rows.parse().ok()?, cols.parse().ok()?))
        });
        found.extend(parsed);
    }
    found
}

/// Copies stdin to the terminal and the terminal to stdout until the command ends; answers its
/// exit code. Sizes the daemon sends on `control` are given to the terminal (the kernel then
/// sends SIGWINCH to its foreground process group). Reaps other children meanwhile (PID 1
/// inherits orphans).
pub(super) fn relay(master: OwnedFd, child: Pid, control: Option<std::os::fd::OwnedFd>) -> i32 {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use nix::sys::wait::WaitPidFlag;
    use std::os::fd::BorrowedFd;
    // SAFETY: descriptors 0 and 1 stay open for the helper's whole life.
    let (stdin, stdout) = unsafe { (BorrowedFd::borrow_raw(0), BorrowedFd::borrow_raw(1)) };
    let mut buf = [0u8; 16 * 1024];
    let mut input_open = true;
    let mut control = control;
    let mut pending = Vec::new();
    let mut code = None;
    loop {
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(status) if status.pid() == Some(child) => code = status_code(status).or(code),
                Ok(_) => {}
            }
        }
        let mut fds = vec![PollFd::new(master.as_fd(), PollFlags::POLLIN)];
        if input_open {
            fds.push(PollFd::new(stdin, PollFlags::POLLIN));
        }
        let control_at = fds.len();
        if let Some(control) = &control {
            fds.push(PollFd::new(control.as_fd(), PollFlags::POLLIN));
        }
        // Once the command is gone, only what is left in the terminal is read.
        let timeout = if code.is_some() {
            PollTimeout::ZERO
        } else {
            PollTimeout::from(100u16)
        };
        match poll(&mut fds, timeout) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(err) => fail("poll", err),
            Ok(_) => {}
        }
        let master_ready = fds[0].revents().unwrap_or(PollFlags::empty());
        let input_ready = if input_open {
            fds.get(1)
                .and_then(PollFd::revents)
                .unwrap_or(PollFlags::empty())
        } else {
            PollFlags::empty()
        };
        let control_ready = fds
            .get(control_at)
            .and_then(PollFd::revents)
            .unwrap_or(PollFlags::empty());
        if control_ready.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
            let mut chunk = [0u8; 256];
            match control.as_ref().map(|c| nix::unistd::read(c, &mut chunk)) {
                Some(Ok(n)) if n > 0 => {
                    pending.extend_from_slice(&chunk[..n]);
                    for (rows, cols) in sizes(&mut pending) {
                        let _ = crate::platform::io::set_window_size(master.as_fd(), rows, cols);
                    }
                }
                // The daemon is done with the conversation.
                _ => control = None,
            }
        }
        let mut drained = true;
        if master_ready.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
            match nix::unistd::read(&master, &mut buf) {
                Ok(n) if n > 0 => {
                    drained = false;
                    if write_all(stdout, &buf[..n]).is_err() {
                        // Nobody reads the output any more: end the command.
                        let _ = kill(child, Signal::SIGHUP);
                    }
                }
                _ => {}
            }
        }
        if input_ready.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
            match nix::unistd::read(stdin, &mut buf) {
                Ok(n) if n > 0 => {
                    let _ = write_all(master.as_fd(), &buf[..n]);
                }
                _ => input_open = false,
            }
        }
        if let Some(code) = code {
            if drained {
                return code;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn size_lines_are_read_whole() {
        let mut pending = b"r40 100\nr30 9".to_vec();
        assert_eq!(super::sizes(&mut pending), vec![(40, 100)]);
        assert_eq!(pending, b"r30 9");
        pending.extend_from_slice(b"0\nbogus\n");
        assert_eq!(super::sizes(&mut pending), vec![(30, 90)]);
        assert!(pending.is_empty());
    }
}
