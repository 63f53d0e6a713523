//! Terminals for container processes: a pseudo-terminal opened from the container's own devpts
//! (so the process sees a terminal that exists in its file system), and the relay between the
//! daemon's pipes and that terminal, run by the process that forked the command.
#![allow(unsafe_code)]

use std::os::fd::AsFd;

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use super::helper::{fail, status_code};

/// Opens a pseudo-terminal pair from this process's `/dev/ptmx`.
pub(super) fn open_terminal() -> Result<(nix::pty::PtyMaster, std::os::fd::OwnedFd), String> {
    use nix::fcntl::OFlag;
    let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .map_err(|e| e.to_string())?;
    nix::pty::grantpt(&master).map_err(|e| e.to_string())?;
    nix::pty::unlockpt(&master).map_err(|e| e.to_string())?;
    let name = nix::pty::ptsname_r(&master).map_err(|e| e.to_string())?;
    let slave = nix::fcntl::open(
        name.as_str(),
        OFlag::O_RDWR | OFlag::O_NOCTTY,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| format!("{name}: {e}"))?;
    Ok((master, slave))
}

/// Copies stdin to the terminal and the terminal to stdout until the command ends; answers its
/// exit code. Reaps other children meanwhile (PID 1 inherits orphans).
pub(super) fn relay(master: nix::pty::PtyMaster, child: Pid) -> i32 {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use nix::sys::wait::WaitPidFlag;
    use std::os::fd::BorrowedFd;
    // SAFETY: descriptors 0 and 1 stay open for the helper's whole life.
    let (stdin, stdout) = unsafe { (BorrowedFd::borrow_raw(0), BorrowedFd::borrow_raw(1)) };
    let mut buf = [0u8; 16 * 1024];
    let mut input_open = true;
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
        let input_ready = fds
            .get(1)
            .and_then(PollFd::revents)
            .unwrap_or(PollFlags::empty());
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
