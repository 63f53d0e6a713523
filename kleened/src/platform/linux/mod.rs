//! The Linux runtime: containers as namespaced, confined process trees rooted in their ZFS dataset,
//! tracked by a cgroup each. The namespace work happens in a helper process ([`helper`]); this
//! module prepares it (environment, confinement from the jail parameters
//! ([`confine::params`]), terminal or pipes, cgroup; the user is looked up by the helper inside
//! the container) and ends containers through their cgroup.

pub mod cgroup;
pub mod confine;
pub mod helper;
pub mod net;

use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kleene_api::NetworkDriver;
use nix::sys::signal::Signal;

use super::io::TerminalControl;
use super::passwd;
use super::runtime::{Limits, ProcessIo, ProcessSpec, Runtime, RuntimeError, Spawned};
use cgroup::{CgroupError, Cgroups};
use confine::Confinement;
use helper::{Event, Mode, Spec, HELPER_ARG, HELPER_NAME, SPEC_ENV};
use net::LinuxNetwork;

/// How long to wait for a container's processes to go after SIGKILL.
const KILL_TIMEOUT: Duration = Duration::from_secs(5);

fn host(err: CgroupError) -> RuntimeError {
    RuntimeError::Host(err.to_string())
}

/// The jail parameters of a spec, as the Linux runtime reads them; refusals are the user's.
fn linux_params(jail_params: &[String]) -> Result<confine::params::LinuxParams, RuntimeError> {
    confine::params::parse(jail_params).map_err(RuntimeError::Invalid)
}

/// A terminal comes from the container's own devpts, in the `/dev` that `mount.nodevfs` leaves out.
fn terminal_needs_devfs(
    spec: &ProcessSpec,
    params: &confine::params::LinuxParams,
) -> Result<(), RuntimeError> {
    if spec.tty && !params.devfs {
        return Err(RuntimeError::Invalid(
            "a container with mount.nodevfs has no /dev, so no terminal: run it without -t".into(),
        ));
    }
    Ok(())
}

/// How many PID namespaces deep this process is (1 in the initial one), from `NSpid`.
fn pid_namespace_depth(status: &str) -> Option<usize> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .map(|ids| ids.split_whitespace().count())
}

/// Containers as Linux namespaces.
#[derive(Debug)]
pub struct NamespaceRuntime {
    /// The program started as the helper (the daemon's own binary).
    helper: PathBuf,
    cgroups: Cgroups,
    /// Wires vnet containers to their networks.
    network: Arc<LinuxNetwork>,
}

/// The descriptor the helper is given for the start-up conversation with the daemon (vnet).
const SYNC_FD: i32 = 3;

/// How long the daemon waits for the helper to reach the point where the network is wired.
const SYNC_TIMEOUT: Duration = Duration::from_secs(10);

impl NamespaceRuntime {
    /// A runtime whose containers' cgroups are under `cgroup_parent` (in the `hierarchy` asked
    /// for, or the one found), run by `helper`.
    pub fn new(
        helper: PathBuf,
        cgroup_parent: &str,
        hierarchy: Option<cgroup::Version>,
        network: Arc<LinuxNetwork>,
    ) -> Result<NamespaceRuntime, RuntimeError> {
        let cgroups = Cgroups::open(cgroup_parent, hierarchy).map_err(host)?;
        tracing::info!(version = ?cgroups.version(), parent = %cgroups.path("").display(), "container cgroups");
        Ok(NamespaceRuntime {
            helper,
            cgroups,
            network,
        })
    }

    /// Starts the helper, with `sync` as its descriptor [`SYNC_FD`]. The daemon reads nothing of
    /// the container: the helper looks the user up once it sees the container's root as its own.
    fn spawn(
        &self,
        spec: &ProcessSpec,
        mode: Mode,
        sync: &std::os::unix::net::UnixStream,
    ) -> Result<Spawned, RuntimeError> {
        if spec.cmd.is_empty() {
            return Err(RuntimeError::Invalid(
                "no command given and the image has none".into(),
            ));
        }
        let helper_spec = Spec {
            mode,
            cgroup_procs: self.cgroups.procs_files(&spec.container_id),
            argv: spec.cmd.clone(),
            env: spec.env.clone(),
            user: spec.user.clone(),
            tty: spec.tty,
            tty_size: spec.tty_size,
            sync_fd: Some(SYNC_FD),
        };
        let text =
            serde_json::to_string(&helper_spec).map_err(|e| RuntimeError::Host(e.to_string()))?;
        let mut command = tokio::process::Command::new(&self.helper);
        // The helper becomes the container's PID 1: a plain name, and nothing of the daemon's
        // environment.
        command
            .arg0(HELPER_NAME)
            .arg(HELPER_ARG)
            .env_clear()
            .env(SPEC_ENV, text)
            .kill_on_drop(false);
        // The helper gets pipes; for a terminal it opens one inside the container and relays.
        let io = ProcessIo::pipes_for(&mut command).map_err(RuntimeError::io("pipes"))?;
        pass_descriptor(&mut command, sync);
        let child = command.spawn().map_err(RuntimeError::io(format!(
            "cannot start {}",
            self.helper.display()
        )))?;
        // `command` still holds the child's ends of the pipes or terminal; drop them so the daemon
        // sees end-of-file when the process is done.
        drop(command);
        Ok(Spawned {
            child,
            io,
            interfaces: vec![],
        })
    }

    /// The start-up conversation of a vnet container: the helper says the container's PID 1
    /// ([`Event::Pid`]) and that its network namespace exists ([`Event::Network`]); the daemon
    /// wires the container's endpoints and answers `g` (go). Answers the host-side interfaces, by
    /// endpoint ID.
    fn wire(
        &self,
        sync: &mut Conversation,
        endpoints: &[crate::platform::ContainerEndpoint],
    ) -> Result<Vec<(String, String)>, RuntimeError> {
        let Event::Pid(pid) = sync.expect("its PID")? else {
            return Err(RuntimeError::Host(
                "the container's helper did not say its PID".into(),
            ));
        };
        if sync.expect("its network namespace")? != Event::Network {
            return Err(RuntimeError::Host(
                "the container's helper did not make its network namespace".into(),
            ));
        }
        let interfaces = self
            .network
            .wire(pid, endpoints)
            .map_err(|e| RuntimeError::Host(e.to_string()))?;
        sync.go()?;
        Ok(interfaces)
    }

    /// The host PID of the container's PID 1: the process of its cgroup subtree that is PID 1 of a
    /// PID namespace one level below the daemon's (a container cannot make PID namespaces, and one
    /// it made would be deeper).
    fn init_pid(&self, container_id: &str) -> Result<Option<i32>, RuntimeError> {
        let own = std::fs::read_to_string("/proc/self/status")
            .ok()
            .as_deref()
            .and_then(pid_namespace_depth)
            .ok_or_else(|| RuntimeError::Host("cannot read NSpid of /proc/self/status".into()))?;
        Ok(self
            .cgroups
            .pids(container_id)
            .map_err(host)?
            .into_iter()
            .find(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|status| {
                    let ids: Vec<&str> = status
                        .lines()
                        .find_map(|l| l.strip_prefix("NSpid:"))
                        .map(|ids| ids.split_whitespace().collect())
                        .unwrap_or_default();
                    ids.len() == own + 1 && ids.last() == Some(&"1")
                })
            }))
    }
}

/// The daemon's end of the conversation with a helper (see [`Event`]), each read bounded by
/// [`SYNC_TIMEOUT`]: a helper that hangs fails its own start, nothing else waits for it.
#[derive(Debug)]
struct Conversation {
    stream: std::os::unix::net::UnixStream,
    /// Bytes read and not yet taken as an event.
    said: Vec<u8>,
}

impl Conversation {
    fn new(stream: std::os::unix::net::UnixStream) -> Result<Conversation, RuntimeError> {
        stream
            .set_read_timeout(Some(SYNC_TIMEOUT))
            .map_err(RuntimeError::io("the container's helper"))?;
        Ok(Conversation {
            stream,
            said: vec![],
        })
    }

    /// The next event. A failure the helper reports is the start's error, in its words.
    fn expect(&mut self, what: &str) -> Result<Event, RuntimeError> {
        use std::io::Read;
        let deadline = std::time::Instant::now() + SYNC_TIMEOUT;
        let mut closed = false;
        loop {
            match Event::parse(&self.said, closed) {
                Some(Ok((Event::Failed(message), _))) => {
                    return Err(RuntimeError::Invalid(message))
                }
                Some(Ok((event, used))) => {
                    self.said.drain(..used);
                    return Ok(event);
                }
                Some(Err(message)) => return Err(RuntimeError::Host(message)),
                None if closed => {
                    return Err(RuntimeError::Host(format!(
                        "the container's helper ended before it said {what}"
                    )))
                }
                None => {}
            }
            if std::time::Instant::now() >= deadline {
                return Err(RuntimeError::Host(format!(
                    "the container's helper did not say {what} within {SYNC_TIMEOUT:?}"
                )));
            }
            let mut buf = [0u8; 512];
            match self.stream.read(&mut buf) {
                Ok(0) => closed = true,
                Ok(n) => self.said.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => {
                    return Err(RuntimeError::io(format!(
                        "the container's helper did not say {what}"
                    ))(e))
                }
            }
        }
    }

    /// Waits until the helper is done with everything before the command.
    fn ready(&mut self) -> Result<(), RuntimeError> {
        match self.expect("it is ready")? {
            Event::Ready => Ok(()),
            other => Err(RuntimeError::Host(format!(
                "the container's helper said {other:?} where it should say it is ready"
            ))),
        }
    }

    /// Lets PID 1 go on once its network is wired.
    fn go(&mut self) -> Result<(), RuntimeError> {
        use std::io::Write;
        self.stream
            .write_all(b"g")
            .map_err(RuntimeError::io("the container's helper"))
    }

    /// The stream, for the terminal's sizes (nothing more is read from it).
    fn into_stream(self) -> std::os::unix::net::UnixStream {
        self.stream
    }
}

/// Gives the helper `sync` as descriptor [`SYNC_FD`] (dup2(2) in the child before exec, which also
/// clears close-on-exec on the copy).
#[allow(unsafe_code)]
fn pass_descriptor(command: &mut tokio::process::Command, sync: &std::os::unix::net::UnixStream) {
    use std::os::fd::AsRawFd;
    let fd = sync.as_raw_fd();
    // SAFETY: the closure runs in the forked child before exec and only calls dup2(2) or fcntl(2),
    // which are async-signal-safe; `fd` stays open in the parent until the spawn returns.
    unsafe {
        command.pre_exec(move || {
            let result = if fd == SYNC_FD {
                // Already in place: only close-on-exec must go.
                nix::libc::fcntl(fd, nix::libc::F_SETFD, 0)
            } else {
                nix::libc::dup2(fd, SYNC_FD)
            };
            if result < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// The environment of a container process: a login-like base for the user, then `env` (already
/// merged image < container < exec) over it.
pub(super) fn process_env(env: &[String], user: &passwd::User, tty: bool) -> Vec<String> {
    let mut merged: Vec<String> = vec![
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        format!("HOME={}", user.home),
        format!("USER={}", user.name),
        format!("LOGNAME={}", user.name),
        "SHELL=/bin/sh".into(),
    ];
    if tty {
        merged.push("TERM=xterm".into());
    }
    for entry in env {
        let name = entry.split_once('=').map_or(entry.as_str(), |(n, _)| n);
        merged.retain(|e| e.split_once('=').map_or(e.as_str(), |(n, _)| n) != name);
        merged.push(entry.clone());
    }
    merged
}

/// The hostname a container gets: `host.hostname=` from its jail parameters, else its ID. The
/// parameters without a Linux meaning are named in the log.
fn hostname(container_id: &str, params: &confine::params::LinuxParams) -> String {
    for param in &params.ignored {
        tracing::info!(container = container_id, parameter = %param, "jail parameter has no meaning on Linux; ignored");
    }
    params
        .hostname
        .clone()
        .unwrap_or_else(|| container_id.to_owned())
}

impl NamespaceRuntime {
    /// Runs the helper for a change without a process (the hostname); its stderr is the refusal.
    fn run_helper(&self, spec: &Spec) -> Result<(), RuntimeError> {
        let text = serde_json::to_string(spec).map_err(|e| RuntimeError::Host(e.to_string()))?;
        let output = std::process::Command::new(&self.helper)
            .arg0(HELPER_NAME)
            .arg(HELPER_ARG)
            .env_clear()
            .env(SPEC_ENV, text)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(RuntimeError::io(format!(
                "cannot start {}",
                self.helper.display()
            )))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(RuntimeError::Invalid(
                String::from_utf8_lossy(&output.stderr)
                    .trim_end()
                    .to_owned(),
            ))
        }
    }
}

impl Runtime for NamespaceRuntime {
    fn check_jail_params(&self, jail_params: &[String]) -> Result<(), RuntimeError> {
        linux_params(jail_params).map(drop)
    }

    fn start(&self, spec: &ProcessSpec) -> Result<Spawned, RuntimeError> {
        // An ipnet container has a namespace of its own too, wired to its networks' bridges as a
        // vnet container is (see `net`): the host's stack is not one a container may share.
        let new_network = spec.network != NetworkDriver::Host;
        let params = linux_params(&spec.jail_params)?;
        terminal_needs_devfs(spec, &params)?;
        if !spec.endpoints.is_empty()
            && !matches!(spec.network, NetworkDriver::Vnet | NetworkDriver::Ipnet)
        {
            return Err(RuntimeError::Invalid(
                "only vnet and ipnet containers are connected to networks".into(),
            ));
        }
        // Limits the host cannot enforce refuse the start before anything is made.
        self.cgroups
            .check_limits(&spec.limits)
            .map_err(|e| RuntimeError::Invalid(e.to_string()))?;
        self.cgroups.create(&spec.container_id).map_err(host)?;
        if let Err(err) = self
            .cgroups
            .create_limited(&spec.container_id, &spec.limits)
        {
            let _ = self.cgroups.remove(&spec.container_id);
            return Err(RuntimeError::Host(format!(
                "cannot set the container's limits: {err}"
            )));
        }
        let wait_for_network = !spec.endpoints.is_empty();
        let mode = Mode::Init {
            rootfs: spec.rootfs.clone(),
            hostname: hostname(&spec.container_id, &params),
            new_network,
            confinement: Confinement::from(&params),
            wait_for_network,
            mounts: spec.mounts.clone(),
            devfs: params.devfs,
        };
        let (ours, theirs) =
            std::os::unix::net::UnixStream::pair().map_err(RuntimeError::io("socket pair"))?;
        let mut spawned = self.spawn(spec, mode, &theirs).inspect_err(|_| {
            let _ = self.cgroups.remove(&spec.container_id);
        })?;
        drop(theirs);
        let mut sync = Conversation::new(ours)?;
        let started = (|| {
            if wait_for_network {
                spawned.interfaces = self.wire(&mut sync, &spec.endpoints)?;
            }
            // PID 1 is in the cgroup before it sets anything up, and says when all is done
            // but the command: the container runs once start returns, or it failed to start.
            sync.ready()
        })();
        if let Err(err) = started {
            let _ = spawned.child.start_kill();
            let _ = self.cgroups.kill_all(&spec.container_id);
            let _ = self.cgroups.wait_empty(&spec.container_id, KILL_TIMEOUT);
            let _ = self.cgroups.remove(&spec.container_id);
            return Err(err);
        }
        if spec.tty {
            spawned.io.terminal = Some(TerminalControl::Relay(sync.into_stream()));
        }
        Ok(spawned)
    }

    fn exec(&self, spec: &ProcessSpec) -> Result<Spawned, RuntimeError> {
        let params = linux_params(&spec.jail_params)?;
        terminal_needs_devfs(spec, &params)?;
        let init_pid = self
            .init_pid(&spec.container_id)?
            .ok_or_else(|| RuntimeError::Invalid("container not running".into()))?;
        let mode = Mode::Exec {
            init_pid,
            confinement: Confinement::from(&params),
        };
        let (ours, theirs) =
            std::os::unix::net::UnixStream::pair().map_err(RuntimeError::io("socket pair"))?;
        let mut spawned = self.spawn(spec, mode, &theirs)?;
        drop(theirs);
        let mut sync = Conversation::new(ours)?;
        if let Err(err) = sync.ready() {
            // The helper ends by itself once it reported; a helper that said nothing is ended.
            let _ = spawned.child.start_kill();
            return Err(err);
        }
        if spec.tty {
            spawned.io.terminal = Some(TerminalControl::Relay(sync.into_stream()));
        }
        Ok(spawned)
    }

    fn is_running(&self, container_id: &str) -> Result<bool, RuntimeError> {
        self.cgroups.populated(container_id).map_err(host)
    }

    fn jid(&self, container_id: &str) -> Option<i64> {
        self.init_pid(container_id).ok().flatten().map(i64::from)
    }

    fn running(&self) -> Result<Vec<String>, RuntimeError> {
        self.cgroups.running().map_err(host)
    }

    fn stop(&self, container_id: &str, grace: Duration) -> Result<(), RuntimeError> {
        self.cgroups
            .signal_all(container_id, Signal::SIGTERM)
            .map_err(host)?;
        if !self.cgroups.wait_empty(container_id, grace).map_err(host)? {
            tracing::info!(
                container = container_id,
                "processes still running after {grace:?}; killing them"
            );
            let deadline = std::time::Instant::now() + KILL_TIMEOUT;
            loop {
                self.cgroups.kill_all(container_id).map_err(host)?;
                if self
                    .cgroups
                    .wait_empty(container_id, Duration::from_millis(100))
                    .map_err(host)?
                {
                    break;
                }
                if std::time::Instant::now() >= deadline {
                    return Err(RuntimeError::Host(format!(
                        "processes of container {container_id} are still there after SIGKILL"
                    )));
                }
            }
        }
        self.cleanup(container_id)
    }

    fn cleanup(&self, container_id: &str) -> Result<(), RuntimeError> {
        // The container's mounts lived in its own mount namespace and went with its last process;
        // what is left on the host is its cgroup.
        if !self
            .cgroups
            .wait_empty(container_id, Duration::from_millis(500))
            .map_err(host)?
        {
            return Err(RuntimeError::Host(format!(
                "container {container_id} still has processes"
            )));
        }
        self.cgroups.remove(container_id).map_err(host)
    }

    fn update(
        &self,
        container_id: &str,
        network: NetworkDriver,
        jail_params: &[String],
    ) -> Result<(), RuntimeError> {
        // What the container's namespaces fixed when it started is refused, as `jail -m` refuses
        // it. Of the rest only `host.hostname` can change on a running container; like `jail -m`,
        // only the parameters given are changed. The others apply at the next start.
        if let Some(reason) = crate::platform::runtime::changed_after_creation(jail_params, network)
        {
            return Err(RuntimeError::Invalid(reason));
        }
        let params = linux_params(jail_params)?;
        let Some(hostname) = params.hostname else {
            return Ok(());
        };
        let init_pid = self
            .init_pid(container_id)?
            .ok_or_else(|| RuntimeError::Invalid("container not running".into()))?;
        self.run_helper(&Spec {
            mode: Mode::SetHostname { init_pid, hostname },
            cgroup_procs: vec![],
            argv: vec![],
            env: vec![],
            user: String::new(),
            tty: false,
            tty_size: (24, 80),
            sync_fd: None,
        })
    }

    fn update_limits(&self, container_id: &str, limits: &Limits) -> Result<bool, RuntimeError> {
        self.cgroups
            .set_limits(container_id, limits)
            .map_err(|err| match err {
                CgroupError::Unsupported(message) => RuntimeError::Invalid(message),
                err => RuntimeError::Host(err.to_string()),
            })
    }

    fn oom_kills(&self, container_id: &str) -> Option<u64> {
        self.cgroups.oom_kills(container_id)
    }

    fn connected(
        &self,
        container_id: &str,
        endpoint: &crate::platform::ContainerEndpoint,
    ) -> Result<Option<String>, RuntimeError> {
        // A running ipnet container joins the network at once, as in the reference (the engine
        // refuses a running vnet container, as the reference does).
        let init_pid = self
            .init_pid(container_id)?
            .ok_or_else(|| RuntimeError::Invalid("container not running".into()))?;
        // Its namespace, never the host's (a PID 1 that has not made its own yet).
        let namespace = |pid: &str| {
            std::fs::metadata(format!("/proc/{pid}/ns/net"))
                .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
                .map_err(RuntimeError::io("cannot read a network namespace"))
        };
        if namespace(&init_pid.to_string())? == namespace("self")? {
            return Err(RuntimeError::Invalid(
                "the container has no network namespace of its own".into(),
            ));
        }
        self.network
            .wire_one(init_pid, endpoint)
            .map(Some)
            .map_err(|e| RuntimeError::Host(e.to_string()))
    }

    fn disconnected(
        &self,
        _container_id: &str,
        endpoint: &crate::platform::ContainerEndpoint,
    ) -> Result<(), RuntimeError> {
        let Some(name) = &endpoint.host_interface else {
            return Ok(());
        };
        self.network
            .unwire(name)
            .and_then(|()| self.network.forget_neighbours(endpoint))
            .map_err(|e| RuntimeError::Host(e.to_string()))
    }

    fn released(&self, container_id: &str, endpoints: &[crate::platform::ContainerEndpoint]) {
        // The veths go with the container's network namespace: the kernel removes them after its
        // last process, without the daemon waiting for it (a veth removal takes tens of
        // milliseconds), and each start names its own. The host's neighbour entries for the
        // container are on the bridge and stay until they are removed.
        for endpoint in endpoints {
            if let Err(err) = self.network.forget_neighbours(endpoint) {
                tracing::warn!(container = container_id, endpoint = %endpoint.endpoint_id, error = %err, "could not remove the container's neighbour entries");
            }
        }
    }

    fn close(&self) {
        if let Ok(mut ids) = self.cgroups.all() {
            ids.extend(self.cgroups.stray_limit_cgroups());
            for id in ids {
                if matches!(self.cgroups.populated(&id), Ok(false)) {
                    let _ = self.cgroups.remove(&id);
                }
            }
        }
        self.cgroups.remove_parent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_is_login_like_with_the_given_variables_on_top() {
        let user = passwd::User {
            uid: 0,
            gid: 0,
            groups: vec![],
            name: "root".into(),
            home: "/root".into(),
        };
        let env = process_env(&["PATH=/opt/bin".into(), "A=1".into()], &user, true);
        assert!(env.contains(&"PATH=/opt/bin".to_owned()));
        assert!(!env.iter().any(|e| e.starts_with("PATH=/usr")));
        assert!(env.contains(&"HOME=/root".to_owned()));
        assert!(env.contains(&"TERM=xterm".to_owned()));
        assert_eq!(env.last().map(String::as_str), Some("A=1"));
    }

    #[test]
    fn host_hostname_sets_the_hostname() {
        let parse = |p: &str| confine::params::parse(&[p.to_owned()]).unwrap();
        assert_eq!(hostname("abc", &parse("mount.devfs=true")), "abc");
        assert_eq!(hostname("abc", &parse("host.hostname=web")), "web");
    }

    #[test]
    fn the_pid_namespace_depth_is_read_from_nspid() {
        assert_eq!(pid_namespace_depth("Name:\tx\nNSpid:\t4242\n"), Some(1));
        assert_eq!(pid_namespace_depth("NSpid:\t4242\t7\t1\n"), Some(3));
        assert_eq!(pid_namespace_depth("Name:\tx\n"), None);
    }
}
