//! The container runtime seam: what the engine needs from a platform to run containers.
//!
//! A container runs while its processes run. [`Runtime::start`] creates the container around its
//! first process (on FreeBSD `jail -i -c ... persist` and `jexec`, on Linux new namespaces and a
//! pivot_root into the container's dataset, confined); [`Runtime::exec`] runs another process in a
//! running container (`jexec`, or joining the namespaces); [`Runtime::stop`] ends every process of
//! a container (`exec.stop` and `jail -R`, or the container's cgroup); whether a container runs is
//! always read from the kernel, and "cannot tell" is an error.

use std::path::PathBuf;
use std::time::Duration;

use kleene_api::NetworkDriver;

use super::io::{FdStream, TerminalControl};
use super::network::ContainerEndpoint;

/// A runtime failure, with a message for the user; where the host's own error is known it is
/// kept as the cause (`source()`), and the message is what was being done, then that error.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The request cannot work (unknown user, container not running...).
    #[error("{0}")]
    Invalid(String),
    /// The host failed.
    #[error("{0}")]
    Host(String),
    /// A system call or file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// What the kernel said.
        #[source]
        source: std::io::Error,
    },
    /// A host command could not be run.
    #[error("{context}: {source}")]
    Command {
        /// What was being done (the program).
        context: String,
        /// Why it could not run or be waited for.
        #[source]
        source: kleene_runner::RunError,
    },
}

impl RuntimeError {
    /// Maps an I/O failure to [`RuntimeError::Io`] saying what was being done:
    /// `.map_err(RuntimeError::io("socket pair"))`.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> RuntimeError {
        let context = context.into();
        move |source| RuntimeError::Io { context, source }
    }
}

/// A host directory or file mounted into a container while it runs (a volume's dataset or a
/// host path; `nullfs` on FreeBSD, a bind mount on Linux).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Mount {
    /// The host path.
    pub source: PathBuf,
    /// Where it appears, as the container sees it (absolute). Resolved inside the container's
    /// root ([`super::inroot`]): a link in the image never leads the mount out of it.
    pub destination: String,
    /// Mounted read-only.
    pub read_only: bool,
    /// Setuid and setgid bits take effect (off: `nosuid`, the default).
    #[serde(default)]
    pub setuid: bool,
    /// Device nodes open (off: `nodev`, the default).
    #[serde(default)]
    pub devices: bool,
}

/// Why `params` cannot be applied to a running container with the `network` driver: the first
/// parameter that asks for a different value of what is fixed when its jail is made, in the
/// kernel's words (jail(8) `-m` answers the same on FreeBSD): `vnet` (only vnet containers have
/// their own network stack), `ip4`/`ip6` (`inherit` for host and vnet containers, `disable` for
/// disabled ones, `new` for ipnet ones), IP address restrictions on a vnet container, `path`,
/// `osrelease` and `osreldate`.
pub fn changed_after_creation(params: &[String], network: NetworkDriver) -> Option<String> {
    let fixed = |name: &str| format!("{name} cannot be changed after creation");
    for param in params {
        let (name, value) = match param.split_once('=') {
            Some((name, value)) => (name, Some(value.trim_matches('"'))),
            None => (param.as_str(), None),
        };
        let own_stack = network == NetworkDriver::Vnet;
        match (name, value) {
            ("vnet", None | Some("new" | "1" | "true")) if !own_stack => {
                return Some(fixed("vnet"))
            }
            ("novnet", None) | ("vnet", Some("inherit" | "0" | "false")) if own_stack => {
                return Some(fixed("vnet"))
            }
            ("ip4" | "ip6", Some(mode)) => {
                let current = match network {
                    NetworkDriver::Host | NetworkDriver::Vnet => "inherit",
                    NetworkDriver::Disabled => "disable",
                    NetworkDriver::Ipnet => "new",
                };
                if mode != current {
                    return Some(fixed(name));
                }
            }
            ("ip4.addr" | "ip6.addr", _) if own_stack => {
                return Some("vnet jails cannot have IP address restrictions".to_owned())
            }
            ("path" | "osrelease" | "osreldate", _) => return Some(fixed(name)),
            _ => {}
        }
    }
    None
}

/// Where a container's mounts may not go: `/`, `/proc`, `/sys` and `/dev/pts` or below, and `/dev`
/// itself. The runtime makes these (or the jail's devfs goes there), and a mount there would
/// replace or hide what protects the host. `relative` is the destination under the root, without
/// its leading `/` and without links (resolved inside the root, or lexically for a check before
/// anything exists); answers the place it is or leads into.
pub fn reserved_destination(relative: &std::path::Path) -> Option<&'static str> {
    use std::path::Path;
    if relative.as_os_str().is_empty() {
        return Some("/");
    }
    if relative == Path::new("dev") {
        return Some("/dev");
    }
    [("proc", "/proc"), ("sys", "/sys"), ("dev/pts", "/dev/pts")]
        .into_iter()
        .find(|(place, _)| relative.starts_with(place))
        .map(|(_, shown)| shown)
}

/// The resource limits a container runs with; `None` is unlimited. Linux enforces them with the
/// container's cgroups, FreeBSD with rctl(8) rules on its jail.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Memory, in bytes.
    pub memory: Option<u64>,
    /// Processes (and threads, on Linux) at once.
    pub pids: Option<u64>,
    /// CPU time, in percent of one CPU (50: half of one CPU; 200: two CPUs).
    pub cpu_percent: Option<u32>,
}

impl Limits {
    /// Whether any limit is set.
    pub fn any(&self) -> bool {
        self.memory.is_some() || self.pids.is_some() || self.cpu_percent.is_some()
    }
}

/// A process to run in a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessSpec {
    /// The container.
    pub container_id: String,
    /// The container's root filesystem on the host (its dataset's mountpoint).
    pub rootfs: PathBuf,
    /// Program and arguments.
    pub cmd: Vec<String>,
    /// Environment, `NAME=value`, already merged (image < container < exec).
    pub env: Vec<String>,
    /// User name (looked up in the container's `/etc/passwd`) or `uid[:gid]`; `""` means root.
    pub user: String,
    /// Run on a pseudo-terminal instead of pipes.
    pub tty: bool,
    /// The terminal's size (rows, columns), for `tty`.
    pub tty_size: (u16, u16),
    /// The container's network driver (only used by `start`).
    pub network: NetworkDriver,
    /// The container's jail parameters (only used by `start`).
    pub jail_params: Vec<String>,
    /// The container's connections to networks, to wire at its start (only used by `start`).
    pub endpoints: Vec<ContainerEndpoint>,
    /// What is mounted into the container at its start, in order (only used by `start`).
    pub mounts: Vec<Mount>,
    /// The container's resource limits, set before its first process runs (only used by
    /// `start`). A limit the host cannot enforce fails the start.
    pub limits: Limits,
}

/// How the daemon talks to a started process: pipes. With a terminal, the runtime relays between
/// these pipes and a terminal inside the container.
#[derive(Debug)]
pub struct ProcessIo {
    /// Where the process writes (stdout and stderr merged, or the terminal's output).
    pub output: FdStream,
    /// The process's standard input (or the terminal's input).
    pub input: FdStream,
    /// For a process on a terminal: how its size is changed.
    pub terminal: Option<TerminalControl>,
}

impl ProcessIo {
    /// Gives `command` a pipe as its stdin and one pipe as both its stdout and stderr, and answers
    /// the daemon's ends.
    pub fn pipes_for(command: &mut tokio::process::Command) -> std::io::Result<ProcessIo> {
        use nix::fcntl::OFlag;
        use std::process::Stdio;
        // Close-on-exec: only the process gets its ends (as its stdio); no other process the
        // daemon starts meanwhile inherits one, which would hold the input open for ever.
        let (out_read, out_write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
        // Room for a fast writer to go on while a frame is being sent (the default is 64 KiB);
        // a host that refuses keeps the default.
        #[cfg(target_os = "linux")]
        let _ = nix::fcntl::fcntl(&out_read, nix::fcntl::FcntlArg::F_SETPIPE_SZ(1 << 20));
        let (in_read, in_write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
        command
            .stdin(Stdio::from(in_read))
            .stdout(Stdio::from(out_write.try_clone()?))
            .stderr(Stdio::from(out_write));
        Ok(ProcessIo {
            output: FdStream::new(out_read)?,
            input: FdStream::new(in_write)?,
            terminal: None,
        })
    }
}

/// A started process.
#[derive(Debug)]
pub struct Spawned {
    /// The host process the daemon waits for; its exit status is the container process's (a code,
    /// or 128 + the signal that killed it).
    pub child: tokio::process::Child,
    /// Its input and output.
    pub io: ProcessIo,
    /// The host-side interfaces made for the container's endpoints at its start, by endpoint ID.
    pub interfaces: Vec<(String, String)>,
}

/// A platform's way of running containers. Blocking methods are called off the async threads.
pub trait Runtime: Send + Sync + std::fmt::Debug {
    /// Checks a container's jail parameters before anything is made with them (create, update).
    /// A refusal is [`RuntimeError::Invalid`] saying what is wrong. Pure.
    fn check_jail_params(&self, _jail_params: &[String]) -> Result<(), RuntimeError> {
        Ok(())
    }

    /// Creates the container around its first process.
    fn start(&self, spec: &ProcessSpec) -> Result<Spawned, RuntimeError>;

    /// Runs another process in a running container.
    fn exec(&self, spec: &ProcessSpec) -> Result<Spawned, RuntimeError>;

    /// Whether the container has processes now. An error means the runtime cannot tell: the
    /// caller must not take the container for stopped.
    fn is_running(&self, container_id: &str) -> Result<bool, RuntimeError>;

    /// The number the host knows a running container by: the jail's jid on FreeBSD, the host
    /// PID of the container's PID 1 on Linux. `None` when it is not running or the runtime cannot
    /// tell.
    fn jid(&self, _container_id: &str) -> Option<i64> {
        None
    }

    /// IDs of every container that has processes now.
    fn running(&self) -> Result<Vec<String>, RuntimeError>;

    /// Ends every process of the container: a polite signal, then after `grace` a kill; returns once
    /// they are gone and the container is cleaned up. Blocks.
    fn stop(&self, container_id: &str, grace: Duration) -> Result<(), RuntimeError>;

    /// Removes what a stopped container left on the host. Blocks.
    fn cleanup(&self, container_id: &str) -> Result<(), RuntimeError>;

    /// Applies a running container's new jail parameters (FreeBSD `jail -m`). Parameters the
    /// platform cannot change on a running container apply at its next start. A refusal is
    /// [`RuntimeError::Invalid`] with the host's reason, and nothing was changed: a parameter fixed
    /// when the container's jail was made ([`changed_after_creation`]) among them. Blocks.
    fn update(
        &self,
        container_id: &str,
        network: NetworkDriver,
        jail_params: &[String],
    ) -> Result<(), RuntimeError>;

    /// Applies a running container's new resource limits at once (the whole set: `None` removes
    /// a limit). Answers false when the platform cannot change them on a running container, so
    /// they apply at its next start. A limit the host cannot enforce is [`RuntimeError::Invalid`],
    /// and nothing was changed. Blocks.
    fn update_limits(&self, _container_id: &str, _limits: &Limits) -> Result<bool, RuntimeError> {
        Ok(false)
    }

    /// How many processes of the container the kernel's out-of-memory killer has ended since the
    /// container started; `None` when the platform does not count them (FreeBSD, or a container
    /// without memory accounting). Read before [`Runtime::cleanup`], which removes the counter.
    fn oom_kills(&self, _container_id: &str) -> Option<u64> {
        None
    }

    /// Wires a running container to a network it was just connected to (FreeBSD ipnet: the
    /// address is aliased and given to the jail; Linux ipnet: a veth pair on the network's
    /// bridge). Answers the host-side interface it made, to record for the container. A refusal
    /// means the connection is undone.
    fn connected(
        &self,
        _container_id: &str,
        _endpoint: &ContainerEndpoint,
    ) -> Result<Option<String>, RuntimeError> {
        Ok(None)
    }

    /// Takes a running container off a network it is being disconnected from (its interface or
    /// address goes); also called for the endpoints of a container that stopped, to remove what
    /// is left of their wiring. What is gone already is fine.
    fn disconnected(
        &self,
        _container_id: &str,
        _endpoint: &ContainerEndpoint,
    ) -> Result<(), RuntimeError> {
        Ok(())
    }

    /// Removes what is left of the wiring of a container that stopped (its endpoints that still
    /// name a host-side interface). Failures are logged here: the container is stopped anyway.
    fn released(&self, container_id: &str, endpoints: &[ContainerEndpoint]) {
        for endpoint in endpoints {
            if let Err(err) = self.disconnected(container_id, endpoint) {
                tracing::warn!(container = container_id, endpoint = %endpoint.endpoint_id, error = %err, "could not remove the container's interface");
            }
        }
    }

    /// Hears that the container's first process ended. On FreeBSD the container then lives on
    /// while other processes remain in it, as a jail does; on Linux it ended with that process.
    fn first_process_ended(&self, _container_id: &str) {}

    /// Releases what the runtime holds on the host, at daemon stop (after every container stopped).
    fn close(&self) {}
}

/// The exit code the API reports for a wait status: the code, or 128 + the signal.
pub fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => 255,
    }
}

/// How long [`Runtime::stop`] waits after the polite signal by default.
pub const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(3);

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn what_a_jail_fixes_at_creation_cannot_change_on_a_running_container() {
        let refused = |params: &[&str], network| {
            let params: Vec<String> = params.iter().map(|p| (*p).to_owned()).collect();
            changed_after_creation(&params, network)
        };
        use NetworkDriver::*;
        for network in [Ipnet, Host, Disabled] {
            assert_eq!(
                refused(&["host.hostname=a", "vnet"], network).as_deref(),
                Some("vnet cannot be changed after creation")
            );
            assert_eq!(refused(&["novnet"], network), None);
        }
        assert_eq!(refused(&["vnet"], Vnet), None);
        assert_eq!(refused(&["vnet=new"], Vnet), None);
        assert_eq!(
            refused(&["vnet=inherit"], Vnet).as_deref(),
            Some("vnet cannot be changed after creation")
        );
        assert_eq!(refused(&["ip4=inherit"], Host), None);
        assert_eq!(
            refused(&["ip4=new"], Host).as_deref(),
            Some("ip4 cannot be changed after creation")
        );
        assert_eq!(
            refused(&["ip6=inherit"], Disabled).as_deref(),
            Some("ip6 cannot be changed after creation")
        );
        assert_eq!(
            refused(&["ip4.addr=10.0.0.2"], Vnet).as_deref(),
            Some("vnet jails cannot have IP address restrictions")
        );
        assert_eq!(refused(&["ip4.addr=10.0.0.2"], Ipnet), None);
        assert_eq!(
            refused(&["path=/tmp"], Ipnet).as_deref(),
            Some("path cannot be changed after creation")
        );
        assert_eq!(
            refused(
                &["allow.raw_sockets", "mount.devfs", "exec.jail_user=www"],
                Ipnet
            ),
            None
        );
    }

    #[test]
    fn mounts_may_not_go_where_the_runtime_works() {
        for (path, place) in [
            ("", Some("/")),
            ("proc", Some("/proc")),
            ("proc/sys/kernel", Some("/proc")),
            ("sys/fs", Some("/sys")),
            ("dev", Some("/dev")),
            ("dev/pts", Some("/dev/pts")),
            ("dev/pts/x", Some("/dev/pts")),
            ("dev/shm", None),
            ("devices", None),
            ("procfs", None),
            ("var/proc", None),
        ] {
            assert_eq!(reserved_destination(Path::new(path)), place, "{path}");
        }
    }
}
