//! The process side of the Linux runtime. The daemon is multi-threaded, and namespaces cannot be
//! set up safely from a multi-threaded process (unshare affects one thread; fork copies no other
//! thread). So the daemon starts its own binary again as a single-threaded helper
//! (`kleened __runtime-helper`, the spec in an environment variable) and the helper does the work:
//!
//! - **init**: the helper moves into a new PID namespace and forks the container's PID 1 (placed in
//!   the container's cgroup before it goes on). PID 1 makes new mount, UTS, IPC, cgroup and (unless
//!   host networking) network namespaces, sets up the root ([`rootfs`]), sets the hostname,
//!   confines itself ([`super::confine`]: capabilities, system-call filter, not dumpable) and forks
//!   the command as PID 2, which inherits that confinement. PID 1 forwards signals to the command
//!   and reaps orphans; when the command exits, PID 1 exits with its status and the kernel ends
//!   every other process of the namespace.
//! - **exec**: the helper joins the cgroup and the namespaces of a running container's PID 1 and
//!   forks the command there, which confines itself before it runs anything of the container's.
//!
//! In both, the helper waits for its child, forwards SIGTERM/SIGINT/SIGHUP/SIGQUIT/SIGUSR1/SIGUSR2/
//! SIGWINCH to it, and exits with its status (a code, or 128 + the signal that killed it). The child
//! has PR_SET_PDEATHSIG=SIGKILL, so killing the helper kills the process it runs.
//!
//! The daemon always hands the helper pipes. For a terminal, the process that forks the command
//! (PID 1, or the exec helper once in the container's mount namespace) opens one from the
//! container's own devpts and relays ([`tty`]).
//!
//! Everything here runs in the single-threaded child. With [`child`], [`tty`], [`mount_attr`],
//! [`super::confine::seccomp`], the `pre_exec` of [`super`], `platform::io`, FreeBSD's one
//! `pre_exec` and `main.rs`'s `mallopt` this is where the daemon has `unsafe` code: fork(2),
//! signal handlers, ioctl(2) and mount_setattr(2), each commented where it is.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::os::fd::{AsFd, FromRawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};

use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::signal::{kill, sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::unistd::{
    chdir, execve, fork, setgid, setgroups, sethostname, setsid, setuid, ForkResult, Gid, Pid, Uid,
};
use serde::{Deserialize, Serialize};

mod child;
mod mount_attr;
pub mod rootfs;
mod tty;

use super::confine::{self, Confinement};
use crate::platform::passwd;
use child::{fail, wait_for, write_all, EXIT_SETUP, REPORT_TO};
use rootfs::RootOptions;

/// The argument that starts the helper.
pub const HELPER_ARG: &str = "__runtime-helper";
/// The name the helper runs under (its `argv[0]`): what `ps` shows as the container's PID 1.
pub const HELPER_NAME: &str = "kleene-init";
/// The environment variable carrying the spec.
pub const SPEC_ENV: &str = "KLEENE_RUNTIME_SPEC";

/// What the helper is to do.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum Mode {
    /// Create the container around the command.
    Init {
        /// The container's root filesystem.
        rootfs: PathBuf,
        /// Its hostname.
        hostname: String,
        /// Give it a network namespace of its own (only `lo`).
        new_network: bool,
        /// How its processes are confined.
        confinement: Confinement,
        /// Wait for the daemon to wire the network namespace (vnet) before the command runs.
        wait_for_network: bool,
        /// Host paths mounted into the container, in order.
        mounts: Vec<crate::platform::Mount>,
        /// Give it the small `/dev` (`mount.devfs`); without, it sees its dataset's own.
        devfs: bool,
    },
    /// Run the command in the container whose PID 1 has this host PID.
    Exec {
        /// Host PID of the container's PID 1.
        init_pid: i32,
        /// How the process is confined (the container's confinement).
        confinement: Confinement,
    },
    /// Change the hostname of the running container whose PID 1 has this host PID; no command.
    SetHostname {
        /// Host PID of the container's PID 1.
        init_pid: i32,
        /// The new hostname.
        hostname: String,
    },
}

/// Everything the helper needs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Spec {
    pub mode: Mode,
    /// `cgroup.procs` of the container's cgroups: the one that tracks it first, then those of
    /// its limits in v1 hierarchies. The process joins them all before anything of the
    /// container runs.
    pub cgroup_procs: Vec<PathBuf>,
    pub argv: Vec<String>,
    /// The environment asked for (image < container < exec), without the login variables the
    /// user adds.
    pub env: Vec<String>,
    /// The user, as the API names it (`name`, `uid`, `uid:gid`, `name:group`; `""` is root):
    /// looked up in the container's own `/etc/passwd` and `/etc/group`, as the container sees
    /// them once its root is set up (exec: once in its mount namespace), never by the daemon.
    pub user: String,
    pub tty: bool,
    /// The terminal's size (rows, columns), for `tty`.
    pub tty_size: (u16, u16),
    /// The descriptor of the conversation with the daemon (see [`Event`]). For a terminal the
    /// daemon then sends its sizes, one `r<rows> <cols>` line each, to the process that relays
    /// it.
    pub sync_fd: Option<i32>,
}

/// What the helper tells the daemon on the conversation descriptor, one byte each but the PID and
/// the failure: at an init with networks the helper's `P<pid>\n` (PID 1's host PID) and PID 1's
/// `N` (its network namespace exists; it then waits for the daemon's `g`); at every init and
/// exec `R` once everything before the command is done (the root, the user looked up, the
/// confinement), or `E<message>` and the end of the conversation when that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `P<pid>\n`.
    Pid(i32),
    /// `N`.
    Network,
    /// `R`.
    Ready,
    /// `E<message>`, to the end.
    Failed(String),
}

impl Event {
    /// The event at the start of `said` (bytes read so far), if it is complete; a failure is
    /// complete only at `closed` (the end of the conversation).
    pub fn parse(said: &[u8], closed: bool) -> Option<Result<(Event, usize), String>> {
        let (&first, rest) = said.split_first()?;
        match first {
            b'N' => Some(Ok((Event::Network, 1))),
            b'R' => Some(Ok((Event::Ready, 1))),
            b'P' => {
                let end = rest.iter().position(|b| *b == b'\n')?;
                let text = String::from_utf8_lossy(&rest[..end]);
                Some(match text.trim().parse() {
                    Ok(pid) => Ok((Event::Pid(pid), end + 2)),
                    Err(_) => Err(format!("the helper said 'P{text}'")),
                })
            }
            b'E' if closed => Some(Ok((
                Event::Failed(String::from_utf8_lossy(rest).trim_end().to_owned()),
                said.len(),
            ))),
            b'E' => None,
            other => Some(Err(format!("the helper said '{}'", other.escape_ascii()))),
        }
    }
}

/// Tells the daemon the set-up is done: from now on failures are the command's own.
fn report_ready(sync: Option<&std::os::fd::OwnedFd>) {
    if let Some(sync) = sync {
        if let Err(err) = write_all(sync.as_fd(), b"R") {
            fail("cannot tell the daemon the container is ready", err);
        }
    }
    REPORT_TO.store(-1, Ordering::SeqCst);
}

/// The PID signals are forwarded to (0: none yet).
static FORWARD_TO: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward_signal(signal: nix::libc::c_int) {
    let pid = FORWARD_TO.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill(2) is async-signal-safe; the PID was stored before the handler was installed.
        unsafe {
            nix::libc::kill(pid, signal);
        }
    }
}

const FORWARDED: [Signal; 7] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

fn forward_signals_to(pid: Pid) {
    FORWARD_TO.store(pid.as_raw(), Ordering::SeqCst);
    let action = SigAction::new(
        SigHandler::Handler(forward_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for signal in FORWARDED {
        // SAFETY: the handler only reads an atomic and calls kill(2).
        let _ = unsafe { sigaction(signal, &action) };
    }
}

/// Puts every signal the command might inherit a disposition for back to its default.
fn default_signals() {
    let action = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for signal in FORWARDED.iter().copied().chain([Signal::SIGPIPE]) {
        // SAFETY: installing SIG_DFL has no handler code.
        let _ = unsafe { sigaction(signal, &action) };
    }
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&SigSet::empty()),
        None,
    );
}

/// Runs the helper; never returns.
pub fn main() -> ! {
    let spec: Spec = match std::env::var(SPEC_ENV)
        .map_err(|e| e.to_string())
        .and_then(|text| serde_json::from_str(&text).map_err(|e| e.to_string()))
    {
        Ok(spec) => spec,
        Err(err) => fail("invalid runtime spec", err),
    };
    if let Some(fd) = spec.sync_fd {
        // The conversation is the helper's: the command never inherits it.
        // SAFETY: the daemon handed this descriptor to the helper; it is open for its whole life.
        let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        if let Err(err) = nix::fcntl::fcntl(
            borrowed,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        ) {
            fail("the conversation descriptor", err);
        }
        REPORT_TO.store(fd, Ordering::SeqCst);
    }
    match &spec.mode {
        Mode::Init { .. } => init(&spec),
        Mode::Exec {
            init_pid,
            confinement,
        } => exec_in(&spec, *init_pid, confinement),
        Mode::SetHostname { init_pid, hostname } => set_hostname(*init_pid, hostname),
    }
}

fn init(spec: &Spec) -> ! {
    let (ready_read, ready_write) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap_or_else(|e| fail("pipe", e));
    if let Err(err) = unshare(CloneFlags::CLONE_NEWPID) {
        fail("cannot create a PID namespace", err);
    }
    // SAFETY: the helper is single-threaded, so the child may do anything after fork.
    match unsafe { fork() } {
        Err(err) => fail("fork", err),
        Ok(ForkResult::Child) => {
            drop(ready_write);
            // Wait until the helper has put this process into the container's cgroup.
            let mut byte = [0u8; 1];
            if !matches!(nix::unistd::read(&ready_read, &mut byte), Ok(1)) {
                std::process::exit(EXIT_SETUP);
            }
            container_init(spec)
        }
        Ok(ForkResult::Parent { child }) => {
            drop(ready_read);
            if let Err((procs, err)) = join_cgroups(&spec.cgroup_procs, child) {
                let _ = kill(child, Signal::SIGKILL);
                fail(&format!("cannot join cgroup {}", procs.display()), err);
            }
            forward_signals_to(child);
            if let (
                Some(fd),
                Mode::Init {
                    wait_for_network: true,
                    ..
                },
            ) = (spec.sync_fd, &spec.mode)
            {
                // SAFETY: the descriptor was handed to this process by the daemon for this
                // conversation; PID 1 has its own copy.
                let sync = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
                if let Err(err) = write_all(sync.as_fd(), format!("P{child}\n").as_bytes()) {
                    let _ = kill(child, Signal::SIGKILL);
                    fail("cannot tell the daemon the container's PID", err);
                }
            }
            // PID 1 has its own copy of the conversation and reports from here on.
            REPORT_TO.store(-1, Ordering::SeqCst);
            let _ = nix::unistd::write(&ready_write, b"1");
            drop(ready_write);
            std::process::exit(wait_for(child))
        }
    }
}

/// PID 1 of the container.
fn container_init(spec: &Spec) -> ! {
    let Mode::Init {
        rootfs,
        hostname,
        new_network,
        confinement,
        wait_for_network,
        mounts,
        devfs,
    } = &spec.mode
    else {
        fail("init", "wrong mode")
    };
    // SAFETY: the descriptor was handed to the helper by the daemon for this conversation.
    let sync = spec
        .sync_fd
        .map(|fd| unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) });
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    let mut flags = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWCGROUP;
    if *new_network {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    if let Err(err) = unshare(flags) {
        fail("cannot create namespaces", err);
    }
    if let (Some(sync), true) = (&sync, *wait_for_network) {
        // The daemon wires the new network namespace while the root is set up.
        if let Err(err) = write_all(sync.as_fd(), b"N") {
            fail("cannot tell the daemon the network namespace is there", err);
        }
    }
    let root = RootOptions {
        rootfs: rootfs.clone(),
        own_network: *new_network,
        mounts: mounts.clone(),
        devfs: *devfs,
    };
    if let Err(err) = rootfs::apply(&root) {
        // The error names the path as the container sees it, first: the message reaches clients
        // in a close frame's few bytes.
        fail("root filesystem", err);
    }
    if let Err(err) = sethostname(hostname) {
        fail("cannot set the hostname", err);
    }
    if *new_network {
        if let Err(err) = loopback_up() {
            fail("cannot bring up lo", err);
        }
    }
    if let (Some(sync), true) = (&sync, *wait_for_network) {
        let mut go = [0u8; 1];
        if !matches!(nix::unistd::read(sync, &mut go), Ok(1) if go == *b"g") {
            fail("the network was not set up", "the daemon gave up");
        }
    }
    let identity = identity(spec);
    if let Err(err) = confine::enter(confinement) {
        fail("cannot confine the container", err);
    }
    report_ready(sync.as_ref());
    std::process::exit(fork_command(spec, &identity, confinement, false, sync))
}

/// Who the command runs as, and with what environment and directory.
struct Identity {
    uid: u32,
    gid: u32,
    groups: Vec<u32>,
    cwd: String,
    env: Vec<String>,
}

/// Looks the spec's user up in the container's own `/etc/passwd` and `/etc/group`. This process
/// sees the container's root as its own by now, so links there stay inside it; each file is read
/// only when it is a regular file of at most [`passwd::MAX_FILE`] bytes, without waiting (a FIFO
/// there is refused, not opened for good).
fn identity(spec: &Spec) -> Identity {
    let root = Path::new("/");
    let read = |path: &str| {
        passwd::read_container_file(root, path)
            .unwrap_or_else(|e| fail("cannot look up the user", e))
    };
    let passwd_text = read("/etc/passwd");
    let group_text = read("/etc/group");
    let user = passwd::resolve(&spec.user, passwd_text.as_deref(), group_text.as_deref())
        .unwrap_or_else(|e| fail("cannot run the process", e));
    Identity {
        env: super::process_env(&spec.env, &user, spec.tty),
        uid: user.uid,
        gid: user.gid,
        groups: user.groups,
        cwd: user.home,
    }
}

/// Forks the command (on a new terminal when the spec asks for one) and answers its exit code once
/// it ended. With `enter`, the command's process takes the first stage of its confinement itself
/// (exec); PID 1 took it already, and its command inherits that. `control` is the daemon's end of
/// the conversation, which sends the terminal's sizes.
fn fork_command(
    spec: &Spec,
    identity: &Identity,
    confinement: &Confinement,
    enter: bool,
    control: Option<std::os::fd::OwnedFd>,
) -> i32 {
    let terminal = spec.tty.then(|| {
        let (master, slave) =
            tty::open_terminal().unwrap_or_else(|e| fail("cannot open a terminal", e));
        let (rows, cols) = spec.tty_size;
        if let Err(err) = crate::platform::io::set_window_size(master.as_fd(), rows, cols) {
            fail("cannot size the terminal", err);
        }
        (master, slave)
    });
    // SAFETY: the helper is single-threaded.
    match unsafe { fork() } {
        Err(err) => fail("fork", err),
        Ok(ForkResult::Child) => {
            if enter {
                let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
                if let Err(err) = confine::enter(confinement) {
                    fail("cannot confine the process", err);
                }
            }
            drop(control);
            if let Some((master, slave)) = terminal {
                drop(master);
                let _ = nix::unistd::dup2_stdin(&slave);
                let _ = nix::unistd::dup2_stdout(&slave);
                let _ = nix::unistd::dup2_stderr(&slave);
            }
            run_command(spec, identity, confinement)
        }
        Ok(ForkResult::Parent { child }) => {
            forward_signals_to(child);
            match terminal {
                None => {
                    drop(control);
                    wait_for(child)
                }
                Some((master, slave)) => {
                    drop(slave);
                    tty::relay(master, child, control)
                }
            }
        }
    }
}

fn exec_in(spec: &Spec, init_pid: i32, confinement: &Confinement) -> ! {
    let open = |kind: &str| {
        std::fs::File::open(format!("/proc/{init_pid}/ns/{kind}")).unwrap_or_else(|e| {
            fail(
                &format!("the container is not running ({kind} namespace)"),
                e,
            )
        })
    };
    let namespaces = [
        (open("cgroup"), CloneFlags::CLONE_NEWCGROUP),
        (open("ipc"), CloneFlags::CLONE_NEWIPC),
        (open("uts"), CloneFlags::CLONE_NEWUTS),
        (open("net"), CloneFlags::CLONE_NEWNET),
        (open("pid"), CloneFlags::CLONE_NEWPID),
        (open("mnt"), CloneFlags::CLONE_NEWNS),
    ];
    let own = Pid::from_raw(std::process::id() as i32);
    if let Err((procs, err)) = join_cgroups(&spec.cgroup_procs, own) {
        fail(&format!("cannot join cgroup {}", procs.display()), err);
    }
    for (file, kind) in &namespaces {
        if let Err(err) = setns(file.as_fd(), *kind) {
            fail(
                &format!("cannot join the container's namespace {kind:?}"),
                err,
            );
        }
    }
    // SAFETY: the descriptor was handed to the helper by the daemon for this conversation.
    let control = spec
        .sync_fd
        .map(|fd| unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) });
    // This process sees the container's root as its own now (setns of the mount namespace).
    let identity = identity(spec);
    report_ready(control.as_ref());
    // The child is the first process of this helper in the joined PID namespace.
    std::process::exit(fork_command(spec, &identity, confinement, true, control))
}

/// Moves `pid` into each of the cgroups whose `cgroup.procs` files are given, in order.
fn join_cgroups(files: &[PathBuf], pid: Pid) -> Result<(), (&Path, std::io::Error)> {
    for procs in files {
        std::fs::write(procs, pid.as_raw().to_string()).map_err(|e| (procs.as_path(), e))?;
    }
    Ok(())
}

fn set_hostname(init_pid: i32, hostname: &str) -> ! {
    let uts = std::fs::File::open(format!("/proc/{init_pid}/ns/uts"))
        .unwrap_or_else(|e| fail("the container is not running (uts namespace)", e));
    if let Err(err) = setns(uts.as_fd(), CloneFlags::CLONE_NEWUTS) {
        fail("cannot join the container's uts namespace", err);
    }
    if let Err(err) = nix::unistd::sethostname(hostname) {
        fail(&format!("cannot set the hostname '{hostname}'"), err);
    }
    std::process::exit(0)
}

/// Brings up `lo` in a new network namespace.
fn loopback_up() -> Result<(), String> {
    use nix::libc;
    // SAFETY: a plain socket(2) call; the descriptor is closed below.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if sock < 0 {
        return Err(std::io::Error::last_os_error().to_string());
    }
    // SAFETY: ifreq is plain data; zeroed is a valid value. The name "lo" fits IFNAMSIZ.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in request.ifr_name.iter_mut().zip(b"lo\0") {
        *slot = *byte as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the flags member of the ifreq passed.
    let result = unsafe {
        if libc::ioctl(sock, libc::SIOCGIFFLAGS as _, &mut request) < 0 {
            -1
        } else {
            request.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            libc::ioctl(sock, libc::SIOCSIFFLAGS as _, &request)
        }
    };
    let error = std::io::Error::last_os_error();
    // SAFETY: closing the socket opened above.
    unsafe { libc::close(sock) };
    if result < 0 {
        return Err(error.to_string());
    }
    Ok(())
}

/// Becomes the command: session and terminal, user, the rest of the confinement, directory,
/// signals, then execve.
fn run_command(spec: &Spec, identity: &Identity, confinement: &Confinement) -> ! {
    let _ = setsid();
    if spec.tty {
        // SAFETY: TIOCSCTTY on stdin (the terminal's slave side) takes no pointer argument.
        unsafe { nix::libc::ioctl(0, nix::libc::TIOCSCTTY as _, 0) };
    }
    let groups: Vec<Gid> = identity.groups.iter().map(|g| Gid::from_raw(*g)).collect();
    if let Err(err) = setgroups(&groups) {
        fail("setgroups", err);
    }
    if let Err(err) = setgid(Gid::from_raw(identity.gid)) {
        fail("setgid", err);
    }
    if let Err(err) = confine::bound(confinement) {
        fail("cannot confine the process", err);
    }
    if let Err(err) = setuid(Uid::from_raw(identity.uid)) {
        fail("setuid", err);
    }
    if let Err(err) = confine::finish(confinement) {
        fail("cannot confine the process", err);
    }
    if chdir(identity.cwd.as_str()).is_err() {
        let _ = chdir("/");
    }
    default_signals();
    let Some(program) = spec.argv.first() else {
        fail("run", "the command is empty")
    };
    let path = match find_program(program, &identity.env) {
        Some(path) => path,
        None => {
            eprintln!("kleened: cannot run '{program}': executable file not found in $PATH");
            std::process::exit(127);
        }
    };
    let c = |s: &str| {
        CString::new(s).unwrap_or_else(|_| fail("run", format!("'{s}' contains a NUL byte")))
    };
    let argv: Vec<CString> = spec.argv.iter().map(|a| c(a)).collect();
    let env: Vec<CString> = identity.env.iter().map(|e| c(e)).collect();
    let Err(err) = execve(&c(&path.to_string_lossy()), &argv, &env);
    eprintln!("kleened: cannot run '{program}': {}", err.desc());
    std::process::exit(if err == nix::errno::Errno::ENOENT {
        127
    } else {
        126
    })
}

/// `program` itself when it has a slash, else the first match in the command's `PATH`.
fn find_program(program: &str, env: &[String]) -> Option<PathBuf> {
    if program.contains('/') {
        return Some(PathBuf::from(program));
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    path.split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|candidate| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_round_trip_through_json() {
        let spec = Spec {
            mode: Mode::Init {
                rootfs: "/pool/c".into(),
                hostname: "abc".into(),
                new_network: true,
                wait_for_network: false,
                devfs: true,
                mounts: vec![crate::platform::Mount {
                    source: "/pool/volumes/v".into(),
                    destination: "/data".into(),
                    read_only: true,
                    setuid: false,
                    devices: false,
                }],
                confinement: Confinement {
                    capabilities: vec![caps::Capability::CAP_CHOWN],
                    seccomp: true,
                },
            },
            cgroup_procs: vec![
                "/sys/fs/cgroup/kleene/abc/cgroup.procs".into(),
                "/sys/fs/cgroup/memory/kleene/abc/cgroup.procs".into(),
            ],
            argv: vec!["/bin/sh".into()],
            env: vec!["PATH=/bin".into()],
            user: "www:staff".into(),
            tty: false,
            tty_size: (24, 80),
            sync_fd: Some(3),
        };
        let text = serde_json::to_string(&spec).unwrap();
        assert_eq!(serde_json::from_str::<Spec>(&text).unwrap(), spec);
    }

    #[test]
    fn the_helpers_events_are_read_whole_or_not_yet() {
        assert_eq!(Event::parse(b"", false), None);
        assert_eq!(Event::parse(b"P42", false), None);
        assert_eq!(
            Event::parse(b"P42\nN", false),
            Some(Ok((Event::Pid(42), 4)))
        );
        assert_eq!(Event::parse(b"NR", false), Some(Ok((Event::Network, 1))));
        assert_eq!(Event::parse(b"R", false), Some(Ok((Event::Ready, 1))));
        // A failure is the whole rest of the conversation.
        assert_eq!(Event::parse(b"Eno such user", false), None);
        assert_eq!(
            Event::parse(b"Eno such user\n", true),
            Some(Ok((Event::Failed("no such user".into()), 14)))
        );
        assert!(matches!(Event::parse(b"Px\n", false), Some(Err(_))));
        assert!(matches!(Event::parse(b"?", false), Some(Err(_))));
    }

    #[test]
    fn programs_are_found_in_the_commands_path() {
        let env = vec!["PATH=/nonexistent:/bin:/usr/bin".to_owned()];
        assert_eq!(find_program("sh", &env), Some(PathBuf::from("/bin/sh")));
        assert_eq!(find_program("/x/y", &env), Some(PathBuf::from("/x/y")));
        assert_eq!(find_program("no-such-program-here", &env), None);
    }
}
