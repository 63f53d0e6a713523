//! Non-blocking reads and writes on a pipe end or a pseudo-terminal master, driven by the tokio
//! reactor, so a process's output streams without a thread per process.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::pin::Pin;
use std::task::{Context, Poll};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A pipe end or terminal master as an async stream. A terminal whose other side is closed reads
/// as end-of-file (Linux answers EIO there).
#[derive(Debug)]
pub struct FdStream {
    fd: AsyncFd<OwnedFd>,
}

impl FdStream {
    /// Wraps `fd`, switching it to non-blocking mode. Must be called inside the tokio runtime.
    pub fn new(fd: OwnedFd) -> io::Result<FdStream> {
        let flags = OFlag::from_bits_truncate(fcntl(fd.as_fd(), FcntlArg::F_GETFL)?);
        fcntl(fd.as_fd(), FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
        // SAFETY: `fd` is owned here and moved into the AsyncFd, so no other registration or user of
        // the descriptor exists while it is registered.
        #[allow(unsafe_code)]
        let fd = unsafe { AsyncFd::register(fd) }.map_err(|e| e.into_parts().1)?;
        Ok(FdStream { fd })
    }
}

impl AsyncRead for FdStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = match self.fd.poll_read_ready(cx) {
                Poll::Ready(guard) => guard?,
                Poll::Pending => return Poll::Pending,
            };
            let unfilled = buf.initialize_unfilled();
            match guard
                .try_io(|fd| nix::unistd::read(fd.get_ref(), unfilled).map_err(io::Error::from))
            {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(err)) if err.raw_os_error() == Some(nix::libc::EIO) => {
                    return Poll::Ready(Ok(()))
                }
                Ok(Err(err)) => return Poll::Ready(Err(err)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for FdStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = match self.fd.poll_write_ready(cx) {
                Poll::Ready(guard) => guard?,
                Poll::Pending => return Poll::Pending,
            };
            match guard.try_io(|fd| nix::unistd::write(fd.get_ref(), data).map_err(io::Error::from))
            {
                Ok(result) => return Poll::Ready(result),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl AsRawFd for FdStream {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }
}

/// Sets the size of the terminal whose master (or slave) is `fd`; the kernel sends SIGWINCH to
/// its foreground process group.
pub fn set_window_size(fd: std::os::fd::BorrowedFd<'_>, rows: u16, cols: u16) -> io::Result<()> {
    let size = nix::pty::Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one `winsize` from the pointer, which is valid for the call.
    #[allow(unsafe_code)]
    let result = unsafe {
        nix::libc::ioctl(
            fd.as_raw_fd(),
            nix::libc::TIOCSWINSZ as _,
            &size as *const nix::pty::Winsize,
        )
    };
    if result < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// How the size of a running process's terminal is changed.
#[derive(Debug)]
pub enum TerminalControl {
    /// The daemon holds the terminal's master (FreeBSD: jexec on a terminal the daemon opened).
    Master(OwnedFd),
    /// The process relaying the terminal (Linux: the runtime helper) is told sizes over a
    /// socket, one `r<rows> <cols>` line each.
    Relay(std::os::unix::net::UnixStream),
}

impl TerminalControl {
    /// Gives the terminal `rows` × `cols`.
    pub fn resize(&self, rows: u16, cols: u16) -> io::Result<()> {
        match self {
            TerminalControl::Master(fd) => set_window_size(fd.as_fd(), rows, cols),
            TerminalControl::Relay(socket) => {
                use std::io::Write as _;
                (&*socket).write_all(format!("r{rows} {cols}\n").as_bytes())
            }
        }
    }
}
