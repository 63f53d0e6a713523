//! The FreeBSD runtime: containers as jails.
//!
//! A container starts as `jail -i -c path=... name=<id> <network> <parameters> persist`, which
//! creates the jail (and mounts its devfs) without running anything and prints its jid; from then
//! on that run's jail is addressed by its jid, never by its name, so a command meant for one run
//! cannot land on the next run's jail of the same name. The first process runs with
//! `jexec -l -U <user> <jid> /usr/bin/env ...`, like every later one, after a check run of jexec
//! (`... /usr/bin/env -i`) that turns jexec's own refusals ("no such user", "chdir:") into a start
//! error. jexec's exit status is the process's (128 + the signal when it was killed), which
//! jail(8) itself does not pass on for a `command=`. When the first process ends,
//! `jail -m jid=<jid> nopersist` hands the jail back to the kernel, which removes it once no
//! process is left in it: a container lives while processes remain, as a jail started with
//! `command=` does.
//!
//! Stopping runs the container's `exec.stop` (`/bin/sh /etc/rc.shutdown` unless the user's
//! parameters say otherwise) in the jail under `timeout(1)`, which jail(8) never does for a jail made
//! on the command line, then `jail -R <jid>` (SIGTERM to what is left, up to 10 s, then the kernel
//! removes the jail and kills the rest), and unmounts what is mounted under the container's root.
//! Whether a container runs, and a jail's jid after a daemon restart, are asked of the kernel with
//! jls(8).
//!
//! Mounts (volumes and host paths): before its jail is created, each of the container's mounts,
//! in order, is resolved inside the container's root as the container would see it
//! ([`super::inroot`]: a link in the image never leads out of the root; what is missing is made),
//! checked to be of the source's type, and mounted with mount_nullfs(8), `-o nosuid` unless
//! setuid files may work and `ro` added when read-only.
//! A mount that fails fails the start, and those already made are unmounted. Stop and cleanup
//! unmount every nullfs and devfs file system under the root, the deepest first, as the kernel's
//! mount table lists them (`mount --libxo json`), so those a crashed daemon made go as well.
//!
//! Networks: a `vnet` container gets one epair(4) per endpoint, made before its jail: the `a` end
//! is marked as the daemon's, made a member of the network's bridge and brought up; after
//! `jail -c ... vnet` the `b` end is moved into the jail (`ifconfig epairNb vnet <jid>`) and
//! configured from inside with the image's own ifconfig(8) and route(8) under jexec(8): `lo0`,
//! the endpoint's addresses, the default routes. These run as separate commands rather than
//! jail(8)'s `vnet.interface`/`exec.start`, so a failure names the step and the runtime undoes what
//! it made. An `ipnet` container's addresses are aliased on its networks' interfaces and given to
//! the jail (`ip4.addr`/`ip6.addr`); connecting or disconnecting it while it runs changes both
//! (`jail -m jid=N ip4.addr=<full list>`). What a run made is remembered and removed when the
//! container is stopped or cleaned up, or when a start fails; the epairs are reported to the
//! engine (`Spawned::interfaces`), which records them and puts them in the pf rules.
//!
//!
//! Every command line is built by a pure function in this folder and pinned by a golden file
//! (`kleened/tests/goldens/freebsd/`) that names the man page it was checked against: jail(8),
//! jexec(8) and jls(8) in [`jail`], the vnet and ipnet wiring in [`wiring`] (with ifconfig(8),
//! netstat(1) and their parsers in [`ifconfig`]), nullfs mounts and the mount table in [`mounts`],
//! resource limits in [`rctl`], and the host set-up `kleened init` and `kleened doctor` run
//! (kldstat, kldload, sysrc, sysctl) in [`host`]. The FreeBSD `NetworkHost` is [`net`]'s
//! [`net::PfNetwork`].

pub mod host;
pub mod ifconfig;
pub mod jail;
pub mod mounts;
pub mod net;
pub mod rctl;
pub mod wiring;

use std::collections::HashMap;
use std::net::IpAddr;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use kleene_api::NetworkDriver;
use kleene_runner::{CommandSpec, Runner};

use self::ifconfig::IFCONFIG;
use self::jail::{address_lists, endpoint_addresses};
use self::jail::{
    exec_stop, jail_create, jail_modify, jail_release, jail_remove, jexec, jexec_check, jls_all,
    jls_jid, parse_jid, stop_plan, validate_jail_params, StopPlan, JAIL, JEXEC, JLS,
};
use self::mounts::{
    check_devfs_node, mount_node, mount_nullfs, mount_table, parse_mount_table, unmount,
    unmount_order, Mounted,
};
use self::rctl::{rctl_add, rctl_remove, RCTL};
use self::wiring::{vnet_host_side, vnet_inside};
use super::inroot;
use super::io::{FdStream, TerminalControl};
use super::network::ContainerEndpoint;
use super::passwd;
use super::runtime::{Limits, Mount, ProcessIo, ProcessSpec, Runtime, RuntimeError, Spawned};

/// The jail of a container's latest start by this daemon.
#[derive(Debug, Clone)]
struct Run {
    /// The jail's jid, printed by `jail -i -c`.
    jid: u32,
    /// What stopping it runs first.
    stop: StopPlan,
    /// Its network driver.
    driver: NetworkDriver,
}

/// Something a run made on the host for one of its endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Link {
    /// vnet: an epair whose `a` end (`host`) is a member of `bridge`; its `b` end is in the jail.
    Epair {
        /// The endpoint.
        endpoint_id: String,
        /// The network's bridge.
        bridge: String,
        /// The `a` end.
        host: String,
    },
    /// ipnet: an address aliased on the network's interface and given to the jail.
    Alias {
        /// The endpoint.
        endpoint_id: String,
        /// The network's interface.
        interface: String,
        /// The address.
        address: IpAddr,
    },
}

impl Link {
    fn endpoint_id(&self) -> &str {
        match self {
            Link::Epair { endpoint_id, .. } | Link::Alias { endpoint_id, .. } => endpoint_id,
        }
    }
}

/// The addresses a container's jail has from its aliases, in the order they were given.
fn aliased(links: &[Link]) -> Vec<IpAddr> {
    links
        .iter()
        .filter_map(|link| match link {
            Link::Alias { address, .. } => Some(*address),
            Link::Epair { .. } => None,
        })
        .collect()
}

/// A jail kept persistent while its first process runs.
#[derive(Debug)]
struct FirstProcess {
    /// The container.
    container_id: String,
    /// Its jail in that run.
    jid: u32,
    /// The host PID of the first process (jexec execs it, so it is the jailed process).
    pid: u32,
}

/// What the runtime knows of the jails it made; lost when the daemon restarts.
#[derive(Debug, Default)]
struct Jails {
    /// Each container's latest run.
    runs: HashMap<String, Run>,
    /// Jails to release (`nopersist`) when their first process has ended.
    first_processes: Vec<FirstProcess>,
    /// What each container's latest run made on the host for its networks, until it is removed.
    links: HashMap<String, Vec<Link>>,
    /// Containers whose jails have rctl rules, removed with the container's run.
    limited: std::collections::HashSet<String>,
}

/// Containers as FreeBSD jails.
#[derive(Debug)]
pub struct JailRuntime {
    runner: Arc<dyn Runner>,
    /// Where container datasets are mounted, to find what is left mounted under
    /// `<mountpoint>/<container>`.
    containers_root: String,
    /// The jails this daemon made. Held only to read or change it, never while a command runs.
    jails: Mutex<Jails>,
    /// The description the daemon's interfaces carry (the epairs' `a` ends), if any.
    marker: Option<String>,
    /// Tests: the program started in place of jexec(8) for a process (there is none off FreeBSD).
    #[cfg(test)]
    launcher: Option<String>,
}

impl JailRuntime {
    /// A runtime running jls/jail/jexec/umount through `runner`; `containers_root` is the
    /// mountpoint of the container datasets' parent.
    pub fn new(runner: Arc<dyn Runner>, containers_root: String) -> JailRuntime {
        JailRuntime {
            runner,
            containers_root,
            jails: Mutex::new(Jails::default()),
            marker: None,
            #[cfg(test)]
            launcher: None,
        }
    }

    /// The same, marking the interfaces it makes with `marker` as their description, as the
    /// network host marks its own, so one left by a crash is recognised at the next start.
    pub fn with_interface_marker(mut self, marker: &str) -> JailRuntime {
        self.marker = Some(marker.to_owned());
        self
    }

    // A panic elsewhere while the lock was held leaves the records as consistent as any single
    // change makes them, so a poisoned lock is taken over.
    fn jails(&self) -> MutexGuard<'_, Jails> {
        self.jails.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts `argv`, on pipes, or on a new terminal of `tty` rows × columns.
    fn spawn(&self, argv: Vec<String>, tty: Option<(u16, u16)>) -> Result<Spawned, RuntimeError> {
        let host =
            |what: &str, e: &dyn std::fmt::Display| RuntimeError::Host(format!("{what}: {e}"));
        tracing::debug!(?argv, "starting jail process");
        #[cfg(test)]
        let argv = match &self.launcher {
            Some(launcher) => std::iter::once(launcher.clone())
                .chain(argv.into_iter().skip(1))
                .collect(),
            None => argv,
        };
        let mut command = tokio::process::Command::new(&argv[0]);
        command.args(&argv[1..]).kill_on_drop(false);
        let io = if let Some((rows, cols)) = tty {
            // A terminal from the host's devpts; jails with mount.devfs see /dev/pts.
            let size = nix::pty::Winsize {
                ws_row: rows,
                ws_col: cols,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            let pty = nix::pty::openpty(Some(&size), None).map_err(|e| host("openpty", &e))?;
            // Close-on-exec: no other process the daemon starts meanwhile inherits the terminal.
            for fd in [&pty.master, &pty.slave] {
                nix::fcntl::fcntl(
                    fd,
                    nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
                )
                .map_err(|e| host("fcntl", &e))?;
            }
            let slave: OwnedFd = pty.slave;
            command
                .stdin(Stdio::from(slave.try_clone().map_err(|e| host("dup", &e))?))
                .stdout(Stdio::from(slave.try_clone().map_err(|e| host("dup", &e))?))
                .stderr(Stdio::from(slave));
            controlling_terminal(&mut command);
            let input = pty.master.try_clone().map_err(|e| host("dup", &e))?;
            let control = pty.master.try_clone().map_err(|e| host("dup", &e))?;
            ProcessIo {
                output: FdStream::new(pty.master).map_err(|e| host("pty", &e))?,
                input: FdStream::new(input).map_err(|e| host("pty", &e))?,
                terminal: Some(TerminalControl::Master(control)),
            }
        } else {
            ProcessIo::pipes_for(&mut command).map_err(|e| host("pipes", &e))?
        };
        let child = command
            .spawn()
            .map_err(|e| host(&format!("cannot start {}", argv[0]), &e))?;
        drop(command);
        Ok(Spawned {
            child,
            io,
            interfaces: vec![],
        })
    }

    /// Runs `spec`, answering its output when it exited 0 and `fail(code, stderr)` otherwise.
    fn run_ok(
        &self,
        spec: &CommandSpec,
        fail: impl FnOnce(i32, String) -> RuntimeError,
    ) -> Result<kleene_runner::Output, RuntimeError> {
        let output = self.run(spec)?;
        if output.succeeded() {
            Ok(output)
        } else {
            Err(fail(
                output.code.unwrap_or(-1),
                output.stderr_text().trim_end().to_owned(),
            ))
        }
    }

    fn run(&self, spec: &CommandSpec) -> Result<kleene_runner::Output, RuntimeError> {
        self.runner
            .run(spec)
            .map_err(|e| RuntimeError::Host(format!("{}: {e}", spec.program)))
    }

    /// The jid of the container's jail as the kernel knows it now, `None` when it has none.
    fn lookup_jid(&self, container_id: &str) -> Result<Option<u32>, RuntimeError> {
        let output = self.run(&jls_jid(container_id))?;
        if !output.succeeded() {
            return Ok(None);
        }
        parse_jid(&output.stdout_text()).map(Some).ok_or_else(|| {
            RuntimeError::Host(format!(
                "{JLS} answered no jid for {container_id}: '{}'",
                output.stdout_text().trim()
            ))
        })
    }

    /// The jail of the container's latest start, or after a daemon restart the jail the kernel
    /// knows by the container's name (whose `exec.stop` is then unknown).
    fn current(&self, container_id: &str) -> Result<Option<(u32, Option<StopPlan>)>, RuntimeError> {
        let run = self.jails().runs.get(container_id).cloned();
        match run {
            Some(run) => Ok(Some((run.jid, Some(run.stop)))),
            None => Ok(self.lookup_jid(container_id)?.map(|jid| (jid, None))),
        }
    }

    /// Replaces the rctl rules of the container's jail with those of `limits` (none: nothing is
    /// run). A host whose kernel does not account resources refuses them, and says how to turn
    /// accounting on.
    fn set_limits(&self, container_id: &str, limits: &Limits) -> Result<(), RuntimeError> {
        if self.jails().limited.remove(container_id) || limits.any() {
            // No rule matching is an error (ESRCH) that leaves nothing to undo.
            let _ = self.run(&rctl_remove(container_id));
        }
        let Some(add) = rctl_add(container_id, limits) else {
            return Ok(());
        };
        self.run_ok(&add, |code, stderr| {
            RuntimeError::Invalid(format!(
                "could not set the container's resource limits ({RCTL} exited with {code}): \
                 {stderr}; rctl needs resource accounting: kern.racct.enable=1 in \
                 /boot/loader.conf, then a reboot"
            ))
        })?;
        self.jails().limited.insert(container_id.to_owned());
        Ok(())
    }

    /// Runs jexec's check; its refusal is the start error, in jexec's words.
    fn check_jexec(&self, jid: u32, user: &str, login: bool) -> Result<(), RuntimeError> {
        self.run_ok(&jexec_check(jid, user, login), |code, stderr| {
            RuntimeError::Invalid(if stderr.is_empty() {
                format!(
                    "cannot run a process as {user} in the container: {JEXEC} exited with {code}"
                )
            } else {
                format!("cannot run a process as {user} in the container: {stderr}")
            })
        })
        .map(drop)
    }

    /// Runs the plan's `exec.stop` commands in the jail, together bounded by its timeout. A
    /// failure is logged: the jail is removed anyway.
    fn run_exec_stop(&self, container_id: &str, jid: u32, plan: &StopPlan) {
        let deadline = Instant::now() + Duration::from_secs(plan.timeout_secs.into());
        for command in &plan.commands {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                tracing::warn!(container = container_id, %command, "exec.stop skipped: stop.timeout used up");
                continue;
            }
            let whole = left.as_secs() + u64::from(left.subsec_nanos() > 0);
            let secs = u32::try_from(whole).unwrap_or(plan.timeout_secs);
            match self.run(&exec_stop(jid, plan, command, secs)) {
                Ok(output) if output.succeeded() => {}
                // timeout(1)'s status when the time ran out.
                Ok(output) if output.code == Some(124) => tracing::warn!(
                    container = container_id,
                    %command,
                    "exec.stop timed out after {secs} s"
                ),
                Ok(output) => tracing::warn!(
                    container = container_id,
                    %command,
                    code = ?output.code,
                    stderr = %output.stderr_text(),
                    "exec.stop failed"
                ),
                Err(err) => {
                    tracing::warn!(container = container_id, %command, %err, "exec.stop not run")
                }
            }
        }
    }

    /// Forgets the jail `jid`: it has been removed.
    fn forget(&self, container_id: &str, jid: u32) {
        let mut jails = self.jails();
        if jails
            .runs
            .get(container_id)
            .is_some_and(|run| run.jid == jid)
        {
            jails.runs.remove(container_id);
        }
        jails.first_processes.retain(|first| first.jid != jid);
    }

    /// Runs a network command that must succeed; a failure names the step and says why.
    fn wire(&self, what: &str, spec: &CommandSpec) -> Result<String, RuntimeError> {
        tracing::debug!(command = %spec, "network command");
        self.run_ok(spec, |code, stderr| {
            RuntimeError::Host(format!("{what}: '{spec}' exited with {code}: {stderr}"))
        })
        .map(|output| output.stdout_text())
    }

    /// Whether an interface exists on the host (`ifconfig -l`).
    fn interface_exists(&self, name: &str) -> Result<bool, RuntimeError> {
        let names = self.wire("cannot list interfaces", &ifconfig::list_interfaces())?;
        Ok(ifconfig::parse_interface_list(&names)
            .iter()
            .any(|n| n == name))
    }

    /// Makes the host side of a starting container's endpoints: per vnet endpoint an epair on
    /// its bridge (answered with the `b` end to move into the jail), per ipnet address an alias.
    /// Everything made is in `links`, also when a step fails.
    fn link_host_side(
        &self,
        spec: &ProcessSpec,
        links: &mut Vec<Link>,
    ) -> Result<Vec<(ContainerEndpoint, String)>, RuntimeError> {
        let mut inner = vec![];
        for endpoint in &spec.endpoints {
            match spec.network {
                NetworkDriver::Vnet => {
                    let printed = self.wire("cannot create an epair", &ifconfig::create_epair())?;
                    let (a_end, b_end) = ifconfig::epair_ends(&printed).ok_or_else(|| {
                        RuntimeError::Host(format!(
                            "'{IFCONFIG} epair create' printed no epair name: '{}'",
                            printed.trim()
                        ))
                    })?;
                    links.push(Link::Epair {
                        endpoint_id: endpoint.endpoint_id.clone(),
                        bridge: endpoint.interface.clone(),
                        host: a_end.clone(),
                    });
                    for step in vnet_host_side(&endpoint.interface, &a_end, self.marker.as_deref())
                    {
                        self.wire(
                            &format!("cannot connect {a_end} to bridge {}", endpoint.interface),
                            &step,
                        )?;
                    }
                    inner.push((endpoint.clone(), b_end));
                }
                NetworkDriver::Ipnet => {
                    for address in endpoint_addresses(endpoint.address, endpoint.address6) {
                        self.wire(
                            &format!("cannot add {address} to {}", endpoint.interface),
                            &ifconfig::add_alias(&endpoint.interface, address),
                        )?;
                        links.push(Link::Alias {
                            endpoint_id: endpoint.endpoint_id.clone(),
                            interface: endpoint.interface.clone(),
                            address,
                        });
                    }
                }
                NetworkDriver::Host | NetworkDriver::Disabled => {}
            }
        }
        Ok(inner)
    }

    /// Moves the `b` ends into the vnet jail `jid` and configures them from inside.
    fn link_inside(
        &self,
        jid: u32,
        inner: &[(ContainerEndpoint, String)],
    ) -> Result<(), RuntimeError> {
        for (_, b_end) in inner {
            self.wire(
                &format!("cannot move {b_end} into the container"),
                &ifconfig::move_to_jail(b_end, jid),
            )?;
        }
        for step in vnet_inside(jid, inner) {
            self.wire("cannot configure the container's network", &step)?;
        }
        Ok(())
    }

    /// Removes what a link made; what is gone already is fine.
    fn unlink(&self, link: &Link) -> Result<(), RuntimeError> {
        match link {
            Link::Epair { bridge, host, .. } => {
                // Destroying the epair also takes it off the bridge; deletem first, as a member
                // that is gone is no error.
                let _ = self.run(&ifconfig::remove_member(bridge, host));
                match self.wire(&format!("cannot remove {host}"), &ifconfig::destroy(host)) {
                    Err(_) if !self.interface_exists(host)? => Ok(()),
                    other => other.map(drop),
                }
            }
            Link::Alias {
                interface, address, ..
            } => {
                let removed = self.wire(
                    &format!("cannot remove {address} from {interface}"),
                    &ifconfig::remove_alias(interface, *address),
                );
                match removed {
                    Err(err) => {
                        let status = self.run(&ifconfig::status(interface))?;
                        let still = status.succeeded()
                            && ifconfig::parse_status(&status.stdout_text())
                                .iter()
                                .any(|i| &i.name == interface && i.addresses.contains(address));
                        if still {
                            Err(err)
                        } else {
                            Ok(())
                        }
                    }
                    Ok(_) => Ok(()),
                }
            }
        }
    }

    /// Mounts the container's mounts, in order, each resolved inside its root just before it is
    /// mounted (so a later destination inside an earlier mount is walked through that mount).
    /// Answers the nodes mounted; when one fails, those already mounted are unmounted again.
    fn mount_all(&self, spec: &ProcessSpec) -> Result<Vec<String>, RuntimeError> {
        let mut made = vec![];
        for mount in &spec.mounts {
            match self.mount_one(&spec.rootfs, mount) {
                Ok(node) => made.push(node),
                Err(err) => {
                    self.unmount_made(&spec.container_id, &made);
                    return Err(err);
                }
            }
        }
        Ok(made)
    }

    /// Mounts one mount under `root`; answers its node.
    fn mount_one(&self, root: &Path, mount: &Mount) -> Result<String, RuntimeError> {
        let node = mount_node(root, mount)?;
        let source = mount.source.to_str().ok_or_else(|| {
            RuntimeError::Invalid(format!(
                "cannot mount {}: the source {} is not UTF-8",
                mount.destination,
                mount.source.display()
            ))
        })?;
        let spec = mount_nullfs(source, &node, mount.read_only, mount.setuid);
        tracing::debug!(command = %spec, "mount");
        self.run_ok(&spec, |code, stderr| {
            RuntimeError::Host(format!(
                "cannot mount {}: '{spec}' exited with {code}: {stderr}",
                mount.destination
            ))
        })?;
        Ok(node)
    }

    /// Unmounts what a start mounted (`made`, in the order mounted), the last first, logging
    /// what fails: the start fails anyway, and [`Runtime::cleanup`] finds what is left in the
    /// mount table.
    fn unmount_made(&self, container_id: &str, made: &[String]) {
        for node in made.iter().rev() {
            let unmounted = self.run_ok(&unmount(node), |code, stderr| {
                RuntimeError::Host(format!("exit code {code}: {stderr}"))
            });
            if let Err(err) = unmounted {
                tracing::warn!(container = container_id, node = %node, %err, "mount not undone");
            }
        }
    }

    /// The nullfs and devfs file systems mounted now, from the kernel's mount table.
    fn mounted(&self) -> Result<Vec<Mounted>, RuntimeError> {
        let spec = mount_table();
        let output = self.run_ok(&spec, |code, stderr| {
            RuntimeError::Host(format!("'{spec}' exited with {code}: {stderr}"))
        })?;
        parse_mount_table(&output.stdout_text()).map_err(RuntimeError::Host)
    }

    /// Unmounts every nullfs and devfs file system under `root`, the deepest first, as the mount
    /// table lists them now: what this daemon mounted, and what an earlier one that crashed left.
    fn unmount_under(&self, root: &Path) -> Result<(), RuntimeError> {
        // The kernel names mount points by their real paths (mount_nullfs takes the realpath(3)
        // of its node).
        let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_owned());
        let root = root.to_string_lossy();
        let mut failed = vec![];
        for node in unmount_order(&self.mounted()?, &root) {
            tracing::debug!(node = %node, "unmount");
            let output = self.run(&unmount(&node))?;
            if !output.succeeded() {
                failed.push((node, output.stderr_text().trim_end().to_owned()));
            }
        }
        if failed.is_empty() {
            return Ok(());
        }
        // jail(8) unmounts the devfs itself when a jail's creation fails, and a stop at the
        // same time may have unmounted the rest: gone is gone.
        let left = unmount_order(&self.mounted()?, &root);
        match failed.into_iter().find(|(node, _)| left.contains(node)) {
            Some((node, stderr)) => Err(RuntimeError::Host(format!(
                "cannot unmount {node}: {stderr}"
            ))),
            None => Ok(()),
        }
    }

    /// Removes what links made, in reverse order, logging what fails; answers the first failure.
    fn unlink_all(&self, container_id: &str, links: &[Link]) -> Result<(), RuntimeError> {
        let mut first = None;
        for link in links.iter().rev() {
            if let Err(err) = self.unlink(link) {
                tracing::warn!(container = container_id, %err, "network wiring not removed");
                first.get_or_insert(err);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

impl Runtime for JailRuntime {
    fn jid(&self, container_id: &str) -> Option<i64> {
        match self.jails().runs.get(container_id) {
            Some(run) => Some(i64::from(run.jid)),
            None => self.lookup_jid(container_id).ok().flatten().map(i64::from),
        }
    }

    fn check_jail_params(&self, jail_params: &[String]) -> Result<(), RuntimeError> {
        validate_jail_params(jail_params)
    }

    fn start(&self, spec: &ProcessSpec) -> Result<Spawned, RuntimeError> {
        validate_jail_params(&spec.jail_params)?;
        if spec.cmd.is_empty() {
            return Err(RuntimeError::Invalid(
                "no command given and the image has none".into(),
            ));
        }
        let (user, login) = resolve_user(spec)?;
        check_devfs_node(&spec.rootfs)?;
        let id = &spec.container_id;
        self.jails().runs.remove(id);
        // A devfs or nullfs mount left by an earlier run would be mounted over, not replaced.
        self.cleanup(id)?;
        // The container's mounts first, while nothing runs in it: a start that cannot make one
        // makes nothing, and its first process sees them all.
        let mounts = self.mount_all(spec)?;
        // The host side of the networks next: the jail is created with its ipnet addresses on
        // the interfaces, and the epairs exist to be moved into it.
        let mut links = vec![];
        let inner = match self.link_host_side(spec, &mut links) {
            Ok(inner) => inner,
            Err(err) => {
                let _ = self.unlink_all(id, &links);
                self.unmount_made(id, &mounts);
                return Err(err);
            }
        };
        // jail(8) undoes its own steps when creation fails, so only the links are left then.
        let created = self.run_ok(&jail_create(spec, &user), |code, stderr| {
            RuntimeError::Invalid(format!(
                "could not create the jail ({JAIL} exited with {code}): {stderr}"
            ))
        });
        let jid = created.and_then(|created| match parse_jid(&created.stdout_text()) {
            Some(jid) => Ok(jid),
            None => self.lookup_jid(id)?.ok_or_else(|| {
                RuntimeError::Host(format!("the jail of {id} was created but has gone"))
            }),
        });
        let jid = match jid {
            Ok(jid) => jid,
            Err(err) => {
                let _ = self.unlink_all(id, &links);
                self.unmount_made(id, &mounts);
                return Err(err);
            }
        };
        let undo = |err: RuntimeError| {
            let _ = self.run(&jail_remove(jid));
            let _ = self.unlink_all(id, &links);
            self.unmount_made(id, &mounts);
            let _ = self.cleanup(id);
            err
        };
        if spec.network == NetworkDriver::Vnet {
            self.link_inside(jid, &inner).map_err(undo)?;
        }
        self.set_limits(id, &spec.limits).map_err(undo)?;
        self.check_jexec(jid, &user, login).map_err(undo)?;
        let mut spawned = self
            .spawn(
                jexec(spec, jid, &user, login),
                spec.tty.then_some(spec.tty_size),
            )
            .map_err(undo)?;
        spawned.interfaces = links
            .iter()
            .filter_map(|link| match link {
                Link::Epair {
                    endpoint_id, host, ..
                } => Some((endpoint_id.clone(), host.clone())),
                Link::Alias { .. } => None,
            })
            .collect();
        let mut jails = self.jails();
        jails.runs.insert(
            id.clone(),
            Run {
                jid,
                stop: stop_plan(&user, &spec.jail_params),
                driver: spec.network,
            },
        );
        if !links.is_empty() {
            jails.links.insert(id.clone(), links);
        }
        if let Some(pid) = spawned.child.id() {
            jails.first_processes.push(FirstProcess {
                container_id: id.clone(),
                jid,
                pid,
            });
        }
        Ok(spawned)
    }

    fn exec(&self, spec: &ProcessSpec) -> Result<Spawned, RuntimeError> {
        if spec.cmd.is_empty() {
            return Err(RuntimeError::Invalid(
                "no command given and the container has none".into(),
            ));
        }
        let Some(jid) = self.lookup_jid(&spec.container_id)? else {
            return Err(RuntimeError::Invalid("container not running".into()));
        };
        let (user, login) = resolve_user(spec)?;
        self.check_jexec(jid, &user, login)?;
        self.spawn(
            jexec(spec, jid, &user, login),
            spec.tty.then_some(spec.tty_size),
        )
    }

    fn is_running(&self, container_id: &str) -> Result<bool, RuntimeError> {
        Ok(self.run(&jls_jid(container_id))?.succeeded())
    }

    fn running(&self) -> Result<Vec<String>, RuntimeError> {
        let output = self.run(&jls_all())?;
        Ok(output
            .stdout_text()
            .lines()
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect())
    }

    fn stop(&self, container_id: &str, _grace: Duration) -> Result<(), RuntimeError> {
        let Some((jid, plan)) = self.current(container_id)? else {
            // Gone by itself meanwhile.
            return self.cleanup(container_id);
        };
        match &plan {
            Some(plan) => self.run_exec_stop(container_id, jid, plan),
            None => tracing::info!(
                container = container_id,
                jid,
                "started by an earlier daemon: its exec.stop is not known and is not run"
            ),
        }
        // jail -R: SIGTERM, up to 10 s, then the kernel removes the jail and kills the rest.
        let removed = match self.run_ok(&jail_remove(jid), |code, stderr| {
            RuntimeError::Host(format!(
                "{JAIL} exited abnormally with exit code {code}: '{stderr}'"
            ))
        }) {
            Ok(_) => Ok(()),
            // Gone meanwhile (by itself, or by a stop at the same time) is removed all the same.
            Err(err) if self.lookup_jid(container_id)?.is_some() => Err(err),
            Err(_) => Ok(()),
        };
        if removed.is_ok() {
            self.forget(container_id, jid);
        }
        self.cleanup(container_id)?;
        removed
    }

    fn first_process_ended(&self, container_id: &str) {
        // The engine has reaped the process before telling: a first process of this container
        // whose PID no longer exists is the one that ended (or an earlier run's, whose jail is
        // gone). Matching by PID rather than taking the latest run keeps a late notice of an
        // earlier run from releasing the next run's jail before its first process is in it.
        let ended: Vec<u32> = {
            let mut jails = self.jails();
            let (ended, kept): (Vec<FirstProcess>, Vec<FirstProcess>) =
                std::mem::take(&mut jails.first_processes)
                    .into_iter()
                    .partition(|first| {
                        first.container_id == container_id && !process_exists(first.pid)
                    });
            jails.first_processes = kept;
            ended.into_iter().map(|first| first.jid).collect()
        };
        for jid in ended {
            // Fails when the jail is already gone (stopped), which is fine.
            if let Err(err) = self.run_ok(&jail_release(jid), |code, stderr| {
                RuntimeError::Host(format!("exit code {code}: {stderr}"))
            }) {
                tracing::debug!(container = container_id, jid, %err, "jail not released");
            }
        }
    }

    fn update(&self, container_id: &str, jail_params: &[String]) -> Result<(), RuntimeError> {
        validate_jail_params(jail_params)?;
        let Some((jid, _)) = self.current(container_id)? else {
            return Err(RuntimeError::Invalid("container not running".into()));
        };
        self.run_ok(&jail_modify(jid, jail_params), |code, stderr| {
            RuntimeError::Invalid(format!(
                "'{JAIL}' returned non-zero exitcode {code} when attempting to modify the \
                 container '{stderr}'"
            ))
        })
        .map(drop)
    }

    fn update_limits(&self, container_id: &str, limits: &Limits) -> Result<bool, RuntimeError> {
        if self.current(container_id)?.is_none() {
            return Ok(false);
        }
        self.set_limits(container_id, limits)?;
        Ok(true)
    }

    fn cleanup(&self, container_id: &str) -> Result<(), RuntimeError> {
        // Its rctl rules, kept by the jail's name after the jail is gone.
        if self.jails().limited.remove(container_id) {
            if let Err(err) = self.run(&rctl_remove(container_id)) {
                tracing::warn!(container = container_id, %err, "rctl rules not removed");
            }
        }
        // The epairs and aliases of its latest run.
        let links = self.jails().links.remove(container_id).unwrap_or_default();
        let unlinked = self.unlink_all(container_id, &links);
        // The container's nullfs mounts, and the devfs at <mountpoint>/dev that a jail which
        // went by itself leaves mounted; found in the mount table, so that those of a run that
        // a crashed daemon made go too.
        self.unmount_under(&Path::new(&self.containers_root).join(container_id))?;
        unlinked
    }

    fn connected(
        &self,
        container_id: &str,
        endpoint: &ContainerEndpoint,
    ) -> Result<(), RuntimeError> {
        let run = self.jails().runs.get(container_id).cloned();
        let Some(run) = run else {
            return Err(RuntimeError::Invalid(
                "the container was started by an earlier kleened: restart it to connect it \
                 to networks"
                    .into(),
            ));
        };
        match run.driver {
            NetworkDriver::Ipnet => {}
            NetworkDriver::Vnet => {
                return Err(RuntimeError::Invalid(
                    "cannot connect a running vnet container to a network".into(),
                ))
            }
            NetworkDriver::Host | NetworkDriver::Disabled => return Ok(()),
        }
        let addresses = endpoint_addresses(endpoint.address, endpoint.address6);
        let mut made = vec![];
        for address in &addresses {
            let added = self.wire(
                &format!("cannot add {address} to {}", endpoint.interface),
                &ifconfig::add_alias(&endpoint.interface, *address),
            );
            if let Err(err) = added {
                let _ = self.unlink_all(container_id, &made);
                return Err(err);
            }
            made.push(Link::Alias {
                endpoint_id: endpoint.endpoint_id.clone(),
                interface: endpoint.interface.clone(),
                address: *address,
            });
        }
        if made.is_empty() {
            return Ok(());
        }
        // The jail's full list: what it has, then the new addresses (its primary stays first).
        let mut all = aliased(
            self.jails()
                .links
                .get(container_id)
                .map_or(&[][..], Vec::as_slice),
        );
        all.extend(&addresses);
        let params = address_lists(
            &all,
            addresses.iter().any(IpAddr::is_ipv4),
            addresses.iter().any(IpAddr::is_ipv6),
        );
        let modified = self.run_ok(&jail_modify(run.jid, &params), |code, stderr| {
            RuntimeError::Invalid(format!(
                "could not give the container its new address ({JAIL} exited with {code}): \
                 {stderr}"
            ))
        });
        if let Err(err) = modified {
            let _ = self.unlink_all(container_id, &made);
            return Err(err);
        }
        self.jails()
            .links
            .entry(container_id.to_owned())
            .or_default()
            .extend(made);
        Ok(())
    }

    fn disconnected(
        &self,
        container_id: &str,
        endpoint: &ContainerEndpoint,
    ) -> Result<(), RuntimeError> {
        let (mut gone, left, jid) = {
            let mut jails = self.jails();
            let jid = jails.runs.get(container_id).map(|run| run.jid);
            let links = jails.links.remove(container_id).unwrap_or_default();
            let (gone, left): (Vec<Link>, Vec<Link>) = links
                .into_iter()
                .partition(|link| link.endpoint_id() == endpoint.endpoint_id);
            if !left.is_empty() {
                jails.links.insert(container_id.to_owned(), left.clone());
            }
            (gone, left, jid)
        };
        let restore = |gone: Vec<Link>| {
            let mut jails = self.jails();
            let links = jails.links.entry(container_id.to_owned()).or_default();
            links.extend(gone);
        };
        // An epair the engine recorded that this daemon did not make (an earlier daemon's run).
        if let Some(host) = &endpoint.host_interface {
            let known = gone
                .iter()
                .any(|link| matches!(link, Link::Epair { host: h, .. } if h == host));
            if !known {
                if !self.interface_exists(host)? {
                    return Ok(());
                }
                gone.push(Link::Epair {
                    endpoint_id: endpoint.endpoint_id.clone(),
                    bridge: endpoint.interface.clone(),
                    host: host.clone(),
                });
            }
        }
        // An ipnet jail gives its addresses up before they leave the interface.
        let removed = aliased(&gone);
        if let (Some(jid), false) = (jid, removed.is_empty()) {
            let params = address_lists(
                &aliased(&left),
                removed.iter().any(IpAddr::is_ipv4),
                removed.iter().any(IpAddr::is_ipv6),
            );
            let modified = self.run_ok(&jail_modify(jid, &params), |code, stderr| {
                RuntimeError::Invalid(format!(
                    "could not take the address from the container ({JAIL} exited with \
                     {code}): {stderr}"
                ))
            });
            if let Err(err) = modified {
                // A jail that has ended meanwhile has no addresses to give up.
                if self.lookup_jid(container_id)? == Some(jid) {
                    restore(gone);
                    return Err(err);
                }
            }
        }
        self.unlink_all(container_id, &gone)
            .inspect_err(|_| restore(gone.clone()))
    }
}

/// Whether a process with this PID exists (a zombie counts).
fn process_exists(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    // Signal 0 only checks: ESRCH means no such process, EPERM that one exists.
    !matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(nix::errno::Errno::ESRCH)
    )
}

/// A process's user, looked up in the container's own passwd and group files (a clear error for
/// an unknown user before anything starts), and whether to run it with `-l` (its home exists).
fn resolve_user(spec: &ProcessSpec) -> Result<(String, bool), RuntimeError> {
    let read =
        |path: &str| passwd::read_container_file(&spec.rootfs, path).map_err(RuntimeError::Invalid);
    let passwd_file = read("/etc/passwd")?;
    let group_file = read("/etc/group")?;
    let user = passwd::resolve(&spec.user, passwd_file.as_deref(), group_file.as_deref())
        .map_err(RuntimeError::Invalid)?;
    // The home as the jail will see it: resolved inside the root, never through a link out.
    let login = inroot::open(&spec.rootfs, &user.home, inroot::Create::Nothing)
        .is_ok_and(|home| home.is_dir);
    Ok((user.name, login))
}

/// Makes the child a session leader with its standard input (a terminal) as its controlling
/// terminal, which neither jail(8) nor jexec(8) does, so shells get job control and `^C`.
fn controlling_terminal(command: &mut tokio::process::Command) {
    #[allow(unsafe_code)]
    // SAFETY: the closure runs in the forked child before exec and only makes two system calls,
    // setsid(2) and ioctl(2), both async-signal-safe; it touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            nix::unistd::setsid()?;
            if nix::libc::ioctl(0, nix::libc::TIOCSCTTY as _, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod testdata;

#[cfg(test)]
mod tests {
    use super::testdata::{image, mount, sources, spec};
    use super::*;
    use kleene_runner::{Recorded, RecordingRunner};

    const ROOT: &str = "/zroot/kleene/container";

    fn recording() -> (Arc<RecordingRunner>, JailRuntime) {
        let runner = Arc::new(RecordingRunner::new());
        (runner.clone(), JailRuntime::new(runner, ROOT.into()))
    }

    /// `mount --libxo json` listing file systems of these types at these nodes, in this order.
    fn table(mounts: &[(&str, &str)]) -> String {
        let mounted: Vec<serde_json::Value> = mounts
            .iter()
            .map(|(fstype, node)| {
                serde_json::json!({
                    "special": if *fstype == "devfs" { "devfs" } else { "/zroot/kleene/volumes/v" },
                    "node": node,
                    "fstype": fstype,
                    "opts": ["local"],
                })
            })
            .collect();
        serde_json::json!({ "mount": { "mounted": mounted } }).to_string()
    }

    #[test]
    fn users_come_from_the_container_and_a_missing_home_means_no_login() {
        let root = image();
        let mut spec = spec(root.path());
        let (user, login) = resolve_user(&spec).unwrap();
        assert_eq!(
            jexec(&spec, 7, &user, login).join(" "),
            "/usr/sbin/jexec -l -U root 7 /usr/bin/env A=1 /usr/bin/id"
        );
        spec.user = "nobody".into();
        let (user, login) = resolve_user(&spec).unwrap();
        assert_eq!(
            jexec(&spec, 7, &user, login).join(" "),
            "/usr/sbin/jexec -U nobody 7 /usr/bin/env -i HOME=/ USER=nobody \
             LOGNAME=nobody SHELL=/bin/sh \
             PATH=/sbin:/bin:/usr/sbin:/usr/bin:/usr/local/sbin:/usr/local/bin A=1 /usr/bin/id"
        );
        spec.user = "nosuchuser".into();
        let err = resolve_user(&spec).unwrap_err();
        assert!(matches!(err, RuntimeError::Invalid(_)));
        assert!(
            err.to_string().contains("unable to find user nosuchuser"),
            "{err}"
        );
    }

    #[test]
    fn a_command_parameter_is_refused_before_anything_runs() {
        assert!(validate_jail_params(&["allow.raw_sockets".into(), "commander=1".into()]).is_ok());
        for param in ["command", "command=/bin/sh", "command=", "command=echo hi"] {
            let err = validate_jail_params(&["allow.mlock".into(), param.into()]).unwrap_err();
            assert!(matches!(err, RuntimeError::Invalid(_)), "{param}");
            assert!(err.to_string().contains(&format!("'{param}'")), "{err}");
        }
        let (runner, runtime) = recording();
        // The engine asks at create and update time; start and update refuse too.
        assert!(matches!(
            runtime.check_jail_params(&["command".into()]),
            Err(RuntimeError::Invalid(_))
        ));
        assert!(runtime.check_jail_params(&["allow.mlock".into()]).is_ok());
        let root = image();
        let mut spec = spec(root.path());
        spec.jail_params = vec!["command=/bin/sh".into()];
        assert!(matches!(
            runtime.start(&spec),
            Err(RuntimeError::Invalid(_))
        ));
        assert!(matches!(
            runtime.update("c0ffee000001", &["command=/bin/sh".into()]),
            Err(RuntimeError::Invalid(_))
        ));
        assert!(runner.lines().is_empty(), "{:?}", runner.lines());
    }

    #[test]
    fn jexec_refusals_become_the_start_error_in_jexec_words() {
        let root = image();
        let mut spec = spec(root.path());
        spec.user = "ghost".into();
        let (runner, runtime) = recording();
        runner.push_ok("7\n");
        runner.push_err(1, "jexec: ghost: no such user\n");
        let err = runtime.exec(&spec).unwrap_err();
        assert!(matches!(err, RuntimeError::Invalid(_)));
        assert_eq!(
            err.to_string(),
            "cannot run a process as ghost in the container: jexec: ghost: no such user"
        );
        assert_eq!(
            runner.lines(),
            [
                "/usr/sbin/jls -j c0ffee000001 jid",
                "/usr/sbin/jexec -l -U ghost 7 /usr/bin/env -i"
            ]
        );

        // A home jexec cannot enter, and a container that is not running.
        runner.clear_calls();
        runner.push_ok("7\n");
        runner.push_err(1, "jexec: chdir: /root: Permission denied\n");
        let err = runtime.exec(&spec).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("jexec: chdir: /root: Permission denied"),
            "{err}"
        );
        runner.push_err(1, "jls: jail \"c0ffee000001\" not found\n");
        assert_eq!(
            runtime.exec(&spec).unwrap_err().to_string(),
            "container not running"
        );
    }

    #[test]
    fn a_refused_modification_reports_jails_exit_code_and_message() {
        let (runner, runtime) = recording();
        runner.push_ok("7\n");
        runner.push_ok("");
        runtime
            .update("c0ffee000001", &["host.hostname=web".into()])
            .unwrap();
        runner.push_ok("7\n");
        runner.push_err(1, "jail: unknown parameter: allow.nothing\n");
        let err = runtime
            .update("c0ffee000001", &["allow.nothing".into()])
            .unwrap_err();
        assert!(matches!(err, RuntimeError::Invalid(_)));
        assert_eq!(
            err.to_string(),
            "'/usr/sbin/jail' returned non-zero exitcode 1 when attempting to modify the container \
             'jail: unknown parameter: allow.nothing'"
        );
        assert_eq!(
            runner.lines(),
            [
                "/usr/sbin/jls -j c0ffee000001 jid",
                "/usr/sbin/jail -m jid=7 host.hostname=web",
                "/usr/sbin/jls -j c0ffee000001 jid",
                "/usr/sbin/jail -m jid=7 allow.nothing"
            ]
        );
    }

    // Off FreeBSD /usr/sbin/jexec does not exist, which makes the first process fail to start.
    #[cfg(not(target_os = "freebsd"))]
    #[tokio::test]
    async fn a_first_process_that_cannot_start_removes_the_jail_again() {
        let runner = Arc::new(RecordingRunner::new());
        let containers = tempfile::tempdir().unwrap();
        let root = containers.path().join("c0ffee000001");
        std::fs::create_dir(&root).unwrap();
        let runtime = JailRuntime::new(runner.clone(), containers.path().display().to_string());
        let spec = ProcessSpec {
            container_id: "c0ffee000001".into(),
            rootfs: root.clone(),
            cmd: vec!["/bin/sh".into()],
            env: vec![],
            user: String::new(),
            tty: false,
            tty_size: (24, 80),
            network: NetworkDriver::Host,
            jail_params: vec![],
            endpoints: vec![],
            mounts: vec![],
            limits: Limits::default(),
        };
        // No stale devfs; jail -i -c prints the jid; jexec's check passes (without -l: the image
        // has no /root); the process cannot start: the jail is removed by its jid and cleaned up.
        runner.push_ok("");
        runner.push_ok("7\n");
        runner.push_ok("");
        assert!(runtime.start(&spec).is_err());
        let lines = runner.lines();
        assert_eq!(lines[0], "/sbin/mount --libxo json -t nullfs,devfs");
        assert!(
            lines[1].starts_with(&format!("/usr/sbin/jail -i -c path={} ", root.display()))
                && lines[1].ends_with(" persist"),
            "{lines:?}"
        );
        assert_eq!(
            lines[2..],
            [
                "/usr/sbin/jexec -U root 7 /usr/bin/env -i",
                "/usr/sbin/jail -R 7",
                "/sbin/mount --libxo json -t nullfs,devfs"
            ]
        );
        assert!(runtime.jails().runs.is_empty());

        // jexec refuses the user: the jail goes too, and the error is jexec's.
        runner.clear_calls();
        runner.push_ok("");
        runner.push_ok("8\n");
        runner.push_err(1, "jexec: root: no such user\n");
        let err = runtime.start(&spec).unwrap_err();
        assert!(
            err.to_string().ends_with("jexec: root: no such user"),
            "{err}"
        );
        assert_eq!(
            runner.lines()[3..],
            [
                "/usr/sbin/jail -R 8",
                "/sbin/mount --libxo json -t nullfs,devfs"
            ]
        );

        // Output of a user's exec.start hides the jid: it is asked of jls(8).
        runner.clear_calls();
        runner.push_ok("");
        runner.push_ok("9\nStarting nginx.\n");
        runner.push_ok("9\n");
        assert!(runtime.start(&spec).is_err());
        assert_eq!(runner.lines()[2], "/usr/sbin/jls -j c0ffee000001 jid");
        assert_eq!(
            runner.lines()[3],
            "/usr/sbin/jexec -U root 9 /usr/bin/env -i"
        );

        // A refused creation is the user's error, with jail(8)'s reason.
        runner.clear_calls();
        runner.push_ok("");
        runner.push_err(1, "jail: mount.devfs: /x/dev: No such file or directory\n");
        let err = runtime.start(&spec).unwrap_err();
        assert!(matches!(err, RuntimeError::Invalid(_)));
        assert!(
            err.to_string().contains("No such file or directory"),
            "{err}"
        );
        assert_eq!(
            runner.lines().len(),
            2,
            "nothing to undo: {:?}",
            runner.lines()
        );
    }

    fn remember(runtime: &JailRuntime, jid: u32, own: &[&str]) {
        let own: Vec<String> = own.iter().map(|p| (*p).to_owned()).collect();
        runtime.jails().runs.insert(
            "c0ffee000001".into(),
            Run {
                jid,
                stop: stop_plan("root", &own),
                driver: NetworkDriver::Host,
            },
        );
    }

    #[test]
    fn stop_runs_exec_stop_in_the_jail_then_removes_it_by_jid() {
        let (runner, runtime) = recording();
        remember(&runtime, 7, &[]);
        runner.push_ok("");
        runner.push_ok("");
        runner.push_ok(&table(&[
            ("devfs", "/dev"),
            ("devfs", &format!("{ROOT}/c0ffee000001/dev")),
        ]));
        runtime.stop("c0ffee000001", Duration::ZERO).unwrap();
        assert_eq!(
            runner.lines(),
            [
                "/usr/bin/timeout -k 2 10 /usr/sbin/jexec -l -U root 7 /bin/sh /etc/rc.shutdown",
                "/usr/sbin/jail -R 7",
                "/sbin/mount --libxo json -t nullfs,devfs",
                "/sbin/umount /zroot/kleene/container/c0ffee000001/dev"
            ]
        );
        assert!(runtime.jails().runs.is_empty());

        // A failed or timed-out exec.stop does not keep the jail.
        let (runner, runtime) = recording();
        remember(&runtime, 7, &["exec.jail_user=www", "exec.noclean"]);
        runner.push_err(124, "");
        runtime.stop("c0ffee000001", Duration::ZERO).unwrap();
        assert_eq!(
            runner.lines()[..2],
            [
                "/usr/bin/timeout -k 2 10 /usr/sbin/jexec -U www 7 /bin/sh /etc/rc.shutdown",
                "/usr/sbin/jail -R 7"
            ]
        );
    }

    #[test]
    fn stop_skips_exec_stop_when_the_user_turned_it_off() {
        for own in ["exec.nostop", "exec.stop="] {
            let (runner, runtime) = recording();
            remember(&runtime, 7, &[own]);
            runtime.stop("c0ffee000001", Duration::ZERO).unwrap();
            assert_eq!(
                runner.lines(),
                [
                    "/usr/sbin/jail -R 7",
                    "/sbin/mount --libxo json -t nullfs,devfs"
                ],
                "{own}"
            );
        }
    }

    #[test]
    fn after_a_daemon_restart_stop_finds_the_jid_and_runs_no_unknown_exec_stop() {
        let (runner, runtime) = recording();
        runner.push_ok("12\n");
        runtime.stop("c0ffee000001", Duration::ZERO).unwrap();
        assert_eq!(
            runner.lines(),
            [
                "/usr/sbin/jls -j c0ffee000001 jid",
                "/usr/sbin/jail -R 12",
                "/sbin/mount --libxo json -t nullfs,devfs"
            ]
        );

        // Gone before the stop: nothing to remove. Gone during the stop: stopped all the same.
        runner.clear_calls();
        runner.push_err(1, "jls: jail \"c0ffee000001\" not found\n");
        runtime.stop("c0ffee000001", Duration::ZERO).unwrap();
        assert_eq!(
            runner.lines(),
            [
                "/usr/sbin/jls -j c0ffee000001 jid",
                "/sbin/mount --libxo json -t nullfs,devfs"
            ]
        );
        runner.clear_calls();
        runner.push_ok("12\n");
        runner.push_err(1, "jail: \"12\" not found\n");
        runner.push_err(1, "");
        runtime.stop("c0ffee000001", Duration::ZERO).unwrap();
        // Still there: the failure is the answer.
        runner.push_ok("12\n");
        runner.push_err(1, "jail: jail_remove: Operation not permitted\n");
        runner.push_ok("12\n");
        let err = runtime.stop("c0ffee000001", Duration::ZERO).unwrap_err();
        assert!(err.to_string().contains("Operation not permitted"), "{err}");
    }

    #[test]
    fn only_jails_whose_first_process_is_gone_are_released() {
        let (runner, runtime) = recording();
        let mut ended = std::process::Command::new("true").spawn().unwrap();
        let ended_pid = ended.id();
        ended.wait().unwrap();
        {
            let mut jails = runtime.jails();
            // An earlier run whose first process ended, and the current run, whose first
            // process (this test) still runs.
            jails.first_processes.push(FirstProcess {
                container_id: "c0ffee000001".into(),
                jid: 7,
                pid: ended_pid,
            });
            jails.first_processes.push(FirstProcess {
                container_id: "c0ffee000001".into(),
                jid: 8,
                pid: std::process::id(),
            });
        }
        runtime.first_process_ended("c0ffee000001");
        assert_eq!(runner.lines(), ["/usr/sbin/jail -m jid=7 nopersist"]);
        assert_eq!(runtime.jails().first_processes.len(), 1);
        // Another container's notice releases nothing of this one.
        runner.clear_calls();
        runtime.first_process_ended("c0ffee000002");
        assert!(runner.lines().is_empty());
    }

    #[test]
    fn running_state_comes_from_the_kernel() {
        let (runner, runtime) = recording();
        runner.push_err(1, "jls: jail \"c0ffee000001\" not found\n");
        assert!(!runtime.is_running("c0ffee000001").unwrap());
        runner.push_ok("7\n");
        assert!(runtime.is_running("c0ffee000001").unwrap());
        runner.push_ok("c0ffee000001\nother\n");
        assert_eq!(runtime.running().unwrap(), ["c0ffee000001", "other"]);
        assert_eq!(
            runner.lines(),
            [
                "/usr/sbin/jls -j c0ffee000001 jid",
                "/usr/sbin/jls -j c0ffee000001 jid",
                "/usr/sbin/jls name"
            ]
        );
    }

    fn endpoint(
        id: &str,
        interface: &str,
        address: Option<&str>,
        gateway: Option<&str>,
    ) -> ContainerEndpoint {
        ContainerEndpoint {
            endpoint_id: id.into(),
            interface: interface.into(),
            isolated: false,
            address: address.map(|a| a.parse().unwrap()),
            gateway: gateway.map(|g| g.parse().unwrap()),
            address6: None,
            gateway6: None,
            mac: pf::MacAddress::of_endpoint(None, id),
            neighbours: vec![],
            host_interface: None,
        }
    }

    /// Two endpoints of a vnet container: both families on kleene0, IPv4 on kleene2.
    fn vnet_endpoints() -> Vec<ContainerEndpoint> {
        let mut first = endpoint(
            "e1e1e1e1e1e1",
            "kleene0",
            Some("10.13.37.2/24"),
            Some("10.13.37.1"),
        );
        first.address6 = Some("fd00:13:37::2/64".parse().unwrap());
        first.gateway6 = Some("fd00:13:37::1".parse().unwrap());
        let mut second = endpoint(
            "e2e2e2e2e2e2",
            "kleene2",
            Some("10.13.38.2/24"),
            Some("10.13.38.1"),
        );
        second.isolated = true;
        vec![first, second]
    }

    fn networked(
        root: &std::path::Path,
        network: NetworkDriver,
    ) -> (Arc<RecordingRunner>, JailRuntime, ProcessSpec) {
        let runner = Arc::new(RecordingRunner::new());
        let mut runtime = JailRuntime::new(runner.clone(), ROOT.into())
            .with_interface_marker("kleened:zroot/kleene");
        runtime.launcher = Some("/bin/true".into());
        let mut spec = spec(root);
        spec.network = network;
        (runner, runtime, spec)
    }

    const VNET_WIRING: [&str; 7] = [
        "/sbin/mount --libxo json -t nullfs,devfs",
        "/sbin/ifconfig epair create",
        "/sbin/ifconfig kleene0 addm epair0a",
        "/sbin/ifconfig epair0a description kleened:zroot/kleene up",
        "/sbin/ifconfig epair create",
        "/sbin/ifconfig kleene2 addm epair1a",
        "/sbin/ifconfig epair1a description kleened:zroot/kleene up",
    ];

    /// Replies up to and including `jail -i -c` printing jid 7 for a vnet start.
    fn script_vnet_start(runner: &RecordingRunner) {
        for reply in ["", "epair0a\n", "", "", "epair1a\n", "", "", "7\n"] {
            runner.push_ok(reply);
        }
    }

    #[tokio::test]
    async fn a_vnet_start_wires_the_epairs_and_reports_them() {
        let root = image();
        let (runner, runtime, mut spec) = networked(root.path(), NetworkDriver::Vnet);
        spec.endpoints = vnet_endpoints();
        script_vnet_start(&runner);
        let mut spawned = runtime.start(&spec).unwrap();
        spawned.child.wait().await.unwrap();
        assert_eq!(
            spawned.interfaces,
            [
                ("e1e1e1e1e1e1".to_owned(), "epair0a".to_owned()),
                ("e2e2e2e2e2e2".to_owned(), "epair1a".to_owned())
            ]
        );
        let lines = runner.lines();
        assert_eq!(lines[..7], VNET_WIRING);
        assert!(
            lines[7].starts_with(&format!(
                "/usr/sbin/jail -i -c path={} name=c0ffee000001 vnet ",
                root.path().display()
            )) && lines[7].ends_with(" persist"),
            "{lines:?}"
        );
        assert_eq!(
            lines[8..],
            [
                "/sbin/ifconfig epair0b vnet 7",
                "/sbin/ifconfig epair1b vnet 7",
                "/usr/sbin/jexec 7 /sbin/ifconfig lo0 inet 127.0.0.1/8 up",
                "/usr/sbin/jexec 7 /sbin/ifconfig epair0b inet 10.13.37.2/24",
                "/usr/sbin/jexec 7 /sbin/ifconfig epair0b inet6 fd00:13:37::2/64 -ifdisabled",
                "/usr/sbin/jexec 7 /sbin/ifconfig epair1b inet 10.13.38.2/24",
                "/usr/sbin/jexec 7 /sbin/route add -inet default 10.13.37.1",
                "/usr/sbin/jexec 7 /sbin/route add -inet6 default fd00:13:37::1",
                "/usr/sbin/jexec -l -U root 7 /usr/bin/env -i",
            ]
        );

        // Stop removes the jail, then its epairs (the `b` ends go with the `a` ends).
        runner.clear_calls();
        runtime.stop("c0ffee000001", Duration::ZERO).unwrap();
        assert_eq!(
            runner.lines(),
            [
                "/usr/bin/timeout -k 2 10 /usr/sbin/jexec -l -U root 7 /bin/sh /etc/rc.shutdown",
                "/usr/sbin/jail -R 7",
                "/sbin/ifconfig kleene2 deletem epair1a",
                "/sbin/ifconfig epair1a destroy",
                "/sbin/ifconfig kleene0 deletem epair0a",
                "/sbin/ifconfig epair0a destroy",
                "/sbin/mount --libxo json -t nullfs,devfs",
            ]
        );
        // The engine's disconnect of the recorded epair then finds it gone.
        runner.clear_calls();
        runner.push_ok("em0 lo0 kleene0 kleene2\n");
        let mut recorded = vnet_endpoints().remove(0);
        recorded.host_interface = Some("epair0a".into());
        runtime.disconnected("c0ffee000001", &recorded).unwrap();
        assert_eq!(runner.lines(), ["/sbin/ifconfig -l"]);
    }

    #[test]
    fn a_failed_vnet_step_destroys_what_was_made() {
        let root = image();
        // The second bridge refuses its member: no jail, both epairs destroyed.
        let (runner, runtime, mut spec) = networked(root.path(), NetworkDriver::Vnet);
        spec.endpoints = vnet_endpoints();
        for reply in ["", "epair0a\n", "", "", "epair1a\n"] {
            runner.push_ok(reply);
        }
        runner.push_err(1, "ifconfig: BRDGADD epair1a: Device busy\n");
        let err = runtime.start(&spec).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot connect epair1a to bridge kleene2: '/sbin/ifconfig kleene2 addm epair1a' \
             exited with 1: ifconfig: BRDGADD epair1a: Device busy"
        );
        assert_eq!(
            runner.lines()[5..],
            [
                "/sbin/ifconfig kleene2 addm epair1a",
                "/sbin/ifconfig kleene2 deletem epair1a",
                "/sbin/ifconfig epair1a destroy",
                "/sbin/ifconfig kleene0 deletem epair0a",
                "/sbin/ifconfig epair0a destroy",
            ]
        );

        // A step inside the jail fails: the jail goes, then the epairs.
        let (runner, runtime, mut spec) = networked(root.path(), NetworkDriver::Vnet);
        spec.endpoints = vnet_endpoints();
        script_vnet_start(&runner);
        for _ in 0..6 {
            runner.push_ok("");
        }
        runner.push_err(
            1,
            "route: writing to routing socket: Network is unreachable\n",
        );
        let err = runtime.start(&spec).unwrap_err();
        assert!(err.to_string().ends_with("Network is unreachable"), "{err}");
        let lines = runner.lines();
        assert_eq!(
            lines[lines.len() - 7..],
            [
                "/usr/sbin/jexec 7 /sbin/route add -inet default 10.13.37.1",
                "/usr/sbin/jail -R 7",
                "/sbin/ifconfig kleene2 deletem epair1a",
                "/sbin/ifconfig epair1a destroy",
                "/sbin/ifconfig kleene0 deletem epair0a",
                "/sbin/ifconfig epair0a destroy",
                "/sbin/mount --libxo json -t nullfs,devfs",
            ]
        );
        assert!(runtime.jails().runs.is_empty());
        assert!(runtime.jails().links.is_empty());

        // ifconfig prints no epair name: nothing to undo, and a clear error.
        let (runner, runtime, mut spec) = networked(root.path(), NetworkDriver::Vnet);
        spec.endpoints = vnet_endpoints();
        runner.push_ok("");
        runner.push_ok("");
        let err = runtime.start(&spec).unwrap_err();
        assert_eq!(
            err.to_string(),
            "'/sbin/ifconfig epair create' printed no epair name: ''"
        );
        assert_eq!(runner.lines().len(), 2, "{:?}", runner.lines());
    }

    #[tokio::test]
    async fn a_running_ipnet_container_is_connected_and_disconnected_live() {
        let root = image();
        let (runner, runtime, mut spec) = networked(root.path(), NetworkDriver::Ipnet);
        spec.endpoints = vec![endpoint(
            "e1e1e1e1e1e1",
            "kleene1",
            Some("10.0.0.2/24"),
            None,
        )];
        runner.push_ok("");
        runner.push_ok("");
        runner.push_ok("7\n");
        let mut spawned = runtime.start(&spec).unwrap();
        spawned.child.wait().await.unwrap();
        assert!(spawned.interfaces.is_empty());
        let lines = runner.lines();
        assert_eq!(lines[1], "/sbin/ifconfig kleene1 inet 10.0.0.2/32 alias");
        assert!(
            lines[2].contains(" name=c0ffee000001 ip4.addr=10.0.0.2 mount.devfs=true "),
            "{lines:?}"
        );

        // Connect: the aliases, then the jail's full lists (its primary address stays first).
        runner.clear_calls();
        let mut second = endpoint("e2e2e2e2e2e2", "kleene3", Some("10.1.0.5/16"), None);
        second.address6 = Some("fd00::5/64".parse().unwrap());
        runtime.connected("c0ffee000001", &second).unwrap();
        assert_eq!(
            runner.lines(),
            [
                "/sbin/ifconfig kleene3 inet 10.1.0.5/32 alias",
                "/sbin/ifconfig kleene3 inet6 fd00::5/128 alias",
                "/usr/sbin/jail -m jid=7 ip4.addr=10.0.0.2,10.1.0.5 ip6.addr=fd00::5",
            ]
        );

        // A connection the kernel refuses is undone.
        runner.clear_calls();
        runner.push_ok("");
        runner.push_err(1, "jail: ip4.addr: IPv4 addresses clash\n");
        let third = endpoint("e3e3e3e3e3e3", "kleene4", Some("10.2.0.9/24"), None);
        let err = runtime.connected("c0ffee000001", &third).unwrap_err();
        assert!(matches!(err, RuntimeError::Invalid(_)));
        assert!(err.to_string().ends_with("IPv4 addresses clash"), "{err}");
        assert_eq!(
            runner.lines(),
            [
                "/sbin/ifconfig kleene4 inet 10.2.0.9/32 alias",
                "/usr/sbin/jail -m jid=7 ip4.addr=10.0.0.2,10.1.0.5,10.2.0.9",
                "/sbin/ifconfig kleene4 inet 10.2.0.9 -alias",
            ]
        );

        // Disconnect: the jail gives the address up, then it leaves the interface.
        runner.clear_calls();
        runtime
            .disconnected("c0ffee000001", &spec.endpoints[0])
            .unwrap();
        assert_eq!(
            runner.lines(),
            [
                "/usr/sbin/jail -m jid=7 ip4.addr=10.1.0.5",
                "/sbin/ifconfig kleene1 inet 10.0.0.2 -alias",
            ]
        );
        runner.clear_calls();
        runtime.disconnected("c0ffee000001", &second).unwrap();
        assert_eq!(
            runner.lines(),
            [
                "/usr/sbin/jail -m jid=7 ip4.addr= ip6.addr=",
                "/sbin/ifconfig kleene3 inet6 fd00::5 -alias",
                "/sbin/ifconfig kleene3 inet 10.1.0.5 -alias",
            ]
        );
        assert!(runtime.jails().links.is_empty());
    }

    #[test]
    fn ipnet_aliases_go_at_cleanup_and_a_gone_one_is_fine() {
        let (runner, runtime) = recording();
        runtime.jails().links.insert(
            "c0ffee000001".into(),
            vec![Link::Alias {
                endpoint_id: "e1e1e1e1e1e1".into(),
                interface: "kleene1".into(),
                address: "10.0.0.2".parse().unwrap(),
            }],
        );
        runner.push_err(
            49,
            "ifconfig: ioctl (SIOCDIFADDR): Can't assign requested address\n",
        );
        runner.push_ok("kleene1: flags=8049<UP,LOOPBACK,RUNNING,MULTICAST> metric 0 mtu 16384\n\tinet 10.0.0.3 netmask 0xffffffff\n");
        runtime.cleanup("c0ffee000001").unwrap();
        assert_eq!(
            runner.lines(),
            [
                "/sbin/ifconfig kleene1 inet 10.0.0.2 -alias",
                "/sbin/ifconfig kleene1",
                "/sbin/mount --libxo json -t nullfs,devfs",
            ]
        );
    }

    #[test]
    fn connecting_a_container_another_daemon_started_is_refused() {
        let (runner, runtime) = recording();
        let other = endpoint("e1e1e1e1e1e1", "kleene1", Some("10.0.0.2/24"), None);
        let err = runtime.connected("c0ffee000001", &other).unwrap_err();
        assert!(matches!(err, RuntimeError::Invalid(_)), "{err}");
        assert!(runner.lines().is_empty());
    }

    #[tokio::test]
    async fn a_start_mounts_in_order_before_the_jail_and_its_first_process() {
        let root = image();
        let (_sources, data, conf) = sources();
        let (runner, runtime, mut spec) = networked(root.path(), NetworkDriver::Host);
        spec.mounts = vec![
            mount(&data, "/var/db/data", false),
            mount(&conf, "/usr/local/etc/site.conf", true),
        ];
        // Nothing left mounted; both mounts succeed; jail -i -c prints jid 7.
        runner.push_ok("");
        runner.push_ok("");
        runner.push_ok("");
        runner.push_ok("7\n");
        let mut spawned = runtime.start(&spec).unwrap();
        spawned.child.wait().await.unwrap();
        let r = root.path().display();
        let lines = runner.lines();
        assert_eq!(
            lines[..3],
            [
                "/sbin/mount --libxo json -t nullfs,devfs".to_owned(),
                format!(
                    "/sbin/mount_nullfs -o nosuid {} {r}/var/db/data",
                    data.display()
                ),
                format!(
                    "/sbin/mount_nullfs -o ro,nosuid {} {r}/usr/local/etc/site.conf",
                    conf.display()
                ),
            ]
        );
        assert!(
            lines[3].starts_with(&format!("/usr/sbin/jail -i -c path={r} ")),
            "{lines:?}"
        );
        assert_eq!(lines[4..], ["/usr/sbin/jexec -l -U root 7 /usr/bin/env -i"]);
        // The destinations were made in the image: a directory, and an empty file.
        assert!(root.path().join("var/db/data").is_dir());
        let made = root.path().join("usr/local/etc/site.conf");
        assert!(made.is_file());
        assert_eq!(std::fs::read(&made).unwrap().len(), 0);
    }

    #[test]
    fn a_mount_that_fails_unmounts_those_made_and_starts_nothing() {
        let root = image();
        let (_sources, data, conf) = sources();
        let (runner, runtime, mut spec) = networked(root.path(), NetworkDriver::Vnet);
        spec.endpoints = vnet_endpoints();
        spec.mounts = vec![
            mount(&data, "/var/db/data", false),
            mount(&conf, "/usr/local/etc/site.conf", true),
        ];
        runner.push_ok("");
        runner.push_ok("");
        runner.push_err(
            71,
            "mount_nullfs: /r/usr/local/etc/site.conf: Operation not supported\n",
        );
        let err = runtime.start(&spec).unwrap_err();
        assert!(matches!(err, RuntimeError::Host(_)), "{err}");
        assert!(
            err.to_string().starts_with(
                "cannot mount /usr/local/etc/site.conf: '/sbin/mount_nullfs -o ro,nosuid "
            ) && err.to_string().ends_with("Operation not supported"),
            "{err}"
        );
        let r = root.path().display();
        let lines = runner.lines();
        assert_eq!(lines.len(), 4, "{lines:?}");
        assert_eq!(lines[3], format!("/sbin/umount {r}/var/db/data"));
        // No epair, no jail, no run.
        assert!(runtime.jails().runs.is_empty());
        assert!(runtime.jails().links.is_empty());

        // What the image has there is of the other type: refused before mount_nullfs runs.
        for (source, destination, there) in [
            (&data, "/etc/passwd", "a file"),
            (&conf, "/etc", "a directory"),
        ] {
            let (runner, runtime, mut spec) = networked(root.path(), NetworkDriver::Host);
            spec.mounts = vec![
                mount(&data, "/var/db/data", false),
                mount(source, destination, false),
            ];
            let err = runtime.start(&spec).unwrap_err();
            assert!(matches!(err, RuntimeError::Invalid(_)), "{err}");
            assert!(
                err.to_string().contains(&format!(
                    "mount {destination}: the container has {there} there"
                )),
                "{err}"
            );
            assert_eq!(
                runner.lines()[1..],
                [
                    format!(
                        "/sbin/mount_nullfs -o nosuid {} {r}/var/db/data",
                        data.display()
                    ),
                    format!("/sbin/umount {r}/var/db/data"),
                ]
            );
        }
    }

    #[test]
    fn stop_and_cleanup_unmount_what_the_table_lists_under_the_root_deepest_first() {
        let container = format!("{ROOT}/c0ffee000001");
        let listed = table(&[
            ("devfs", "/dev"),
            ("nullfs", &format!("{container}/var/db/data")),
            ("nullfs", &format!("{container}/srv/my site")),
            ("nullfs", &format!("{container}/var/db/data/cache")),
            ("devfs", &format!("{container}/dev")),
            ("nullfs", &format!("{ROOT}/c0ffee000002/data")),
            ("nullfs", &format!("{ROOT}/c0ffee0000010/data")),
        ]);
        let unmounts = [
            format!("/sbin/umount {container}/var/db/data/cache"),
            format!("/sbin/umount {container}/var/db/data"),
            format!("/sbin/umount {container}/srv/my site"),
            format!("/sbin/umount {container}/dev"),
        ];
        let (runner, runtime) = recording();
        remember(&runtime, 7, &["exec.nostop"]);
        runner.push_ok("");
        runner.push_ok(&listed);
        runtime.stop("c0ffee000001", Duration::ZERO).unwrap();
        let lines = runner.lines();
        assert_eq!(
            lines[..2],
            [
                "/usr/sbin/jail -R 7",
                "/sbin/mount --libxo json -t nullfs,devfs"
            ]
        );
        assert_eq!(lines[2..], unmounts);
        // The path with a space is one argument.
        let Recorded::Run(spaced) = &runner.calls()[4] else {
            panic!("not a command")
        };
        assert_eq!(spaced.args, [format!("{container}/srv/my site")]);

        // A daemon restarted after a crash knows nothing of the run: the table tells.
        let (runner, runtime) = recording();
        runner.push_ok(&listed);
        runtime.cleanup("c0ffee000001").unwrap();
        assert_eq!(runner.lines()[1..], unmounts);

        // A mount that will not go fails the cleanup; one gone meanwhile does not.
        let (runner, runtime) = recording();
        runner.push_ok(&listed);
        runner.push_ok("");
        runner.push_err(
            1,
            &format!("umount: unmount of {container}/var/db/data failed: Device busy\n"),
        );
        runner.push_err(1, "");
        runner.push_ok("");
        runner.push_ok(&table(&[("nullfs", &format!("{container}/var/db/data"))]));
        let err = runtime.cleanup("c0ffee000001").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "cannot unmount {container}/var/db/data: umount: unmount of \
                 {container}/var/db/data failed: Device busy"
            )
        );
        let (runner, runtime) = recording();
        runner.push_ok(&listed);
        runner.push_err(1, "umount: /x: not a file system root directory\n");
        runner.push_ok(&table(&[("devfs", "/dev")]));
        runtime.cleanup("c0ffee000001").unwrap();
        assert_eq!(
            runner.lines().last().unwrap(),
            "/sbin/mount --libxo json -t nullfs,devfs"
        );
    }

    #[tokio::test]
    async fn mount_destinations_behind_links_stay_inside_the_root() {
        let root = image();
        let (sources, data, _conf) = sources();
        // A host directory the image names by an absolute link: never touched.
        let host = sources.path().join("host");
        std::fs::create_dir(&host).unwrap();
        std::os::unix::fs::symlink("/", root.path().join("top")).unwrap();
        std::os::unix::fs::symlink("../../..", root.path().join("up")).unwrap();
        std::os::unix::fs::symlink(&host, root.path().join("away")).unwrap();
        let (runner, runtime, mut spec) = networked(root.path(), NetworkDriver::Host);
        spec.mounts = vec![
            mount(&data, "/top/vol", false),
            mount(&data, "/up/x", true),
            mount(&data, "/../../etc/../y", false),
            mount(&data, "/away/z", false),
        ];
        runner.push_ok("");
        for _ in 0..4 {
            runner.push_ok("");
        }
        runner.push_ok("7\n");
        let mut spawned = runtime.start(&spec).unwrap();
        spawned.child.wait().await.unwrap();
        let nodes: Vec<String> = runner.calls()[1..5]
            .iter()
            .map(|call| match call {
                Recorded::Run(spec) => {
                    assert_eq!(spec.program, "/sbin/mount_nullfs");
                    spec.args.last().unwrap().clone()
                }
                Recorded::Pipe(..) => panic!("a pipeline"),
            })
            .collect();
        let inside = |p: &std::path::Path| p.display().to_string();
        assert_eq!(
            nodes,
            [
                inside(&root.path().join("vol")),
                inside(&root.path().join("x")),
                inside(&root.path().join("y")),
                inside(&root.path().join(host.strip_prefix("/").unwrap()).join("z")),
            ]
        );
        assert!(root.path().join("vol").is_dir() && root.path().join("x").is_dir());
        assert_eq!(
            std::fs::read_dir(&host).unwrap().count(),
            0,
            "nothing made on the host"
        );
    }
}
