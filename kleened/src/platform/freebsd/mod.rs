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
//! Every command line is built by a pure function in this folder and pinned by a golden file
//! (`kleened/tests/goldens/freebsd/`) that names the man page it was checked against: jail(8),
//! jexec(8) and jls(8) in [`jail`], the vnet and ipnet wiring in [`wiring`] (with ifconfig(8),
//! netstat(1) and their parsers in [`ifconfig`]), nullfs mounts and the mount table in [`mounts`],
//! resource limits in [`rctl`], and the host set-up `kleened init` and `kleened doctor` run
//! (kldstat, kldload, sysrc, sysctl) in [`host`]. The FreeBSD `NetworkHost` is [`net`]'s
//! [`net::PfNetwork`]. The runtime's own steps for links and mounts (make, undo, remember) are
//! `impl JailRuntime` blocks beside their command lines, in [`wiring`] and [`mounts`].

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

use self::jail::{address_lists, endpoint_addresses};
use self::jail::{
    exec_stop, jail_create, jail_modify, jail_release, jail_remove, jexec, jexec_check, jls_all,
    jls_jid, parse_jid, stop_plan, validate_jail_params, StopPlan, JAIL, JEXEC, JLS,
};
use self::mounts::check_devfs_node;
use self::rctl::{rctl_add, rctl_remove, RCTL};
use self::wiring::{aliased, Link};
use super::inroot;
use super::io::{FdStream, TerminalControl};
use super::network::ContainerEndpoint;
use super::passwd;
use super::runtime::{Limits, ProcessIo, ProcessSpec, Runtime, RuntimeError, Spawned};

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
            .map_err(|source| RuntimeError::Command {
                context: spec.program.clone(),
                source,
            })
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

    fn update(
        &self,
        container_id: &str,
        _network: NetworkDriver,
        jail_params: &[String],
    ) -> Result<(), RuntimeError> {
        validate_jail_params(jail_params)?;
        let Some((jid, _)) = self.current(container_id)? else {
            return Err(RuntimeError::Invalid("container not running".into()));
        };
        let output = self.run(&jail_modify(jid, jail_params))?;
        if output.succeeded() {
            return Ok(());
        }
        // The reference's message: jail(8)'s whole output, its line end included, in quotes.
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        Err(RuntimeError::Invalid(format!(
            "'{JAIL}' returned non-zero exitcode {} when attempting to modify the container \
             '{said}'",
            output.code.unwrap_or(-1)
        )))
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
    ) -> Result<Option<String>, RuntimeError> {
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
            NetworkDriver::Host | NetworkDriver::Disabled => return Ok(None),
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
            return Ok(None);
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
        // Aliases on the network's interface: no interface of its own to record.
        Ok(None)
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
    use super::testdata::{image, spec};
    use super::*;
    use kleene_runner::RecordingRunner;

    pub(super) const ROOT: &str = "/zroot/kleene/container";

    pub(super) fn recording() -> (Arc<RecordingRunner>, JailRuntime) {
        let runner = Arc::new(RecordingRunner::new());
        (runner.clone(), JailRuntime::new(runner, ROOT.into()))
    }

    /// `mount --libxo json` listing file systems of these types at these nodes, in this order.
    pub(super) fn table(mounts: &[(&str, &str)]) -> String {
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
            runtime.update(
                "c0ffee000001",
                NetworkDriver::Ipnet,
                &["command=/bin/sh".into()]
            ),
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
            .update(
                "c0ffee000001",
                NetworkDriver::Ipnet,
                &["host.hostname=web".into()],
            )
            .unwrap();
        runner.push_ok("7\n");
        runner.push_err(1, "jail: unknown parameter: allow.nothing\n");
        let err = runtime
            .update(
                "c0ffee000001",
                NetworkDriver::Ipnet,
                &["allow.nothing".into()],
            )
            .unwrap_err();
        assert!(matches!(err, RuntimeError::Invalid(_)));
        assert_eq!(
            err.to_string(),
            "'/usr/sbin/jail' returned non-zero exitcode 1 when attempting to modify the container \
             'jail: unknown parameter: allow.nothing\n'"
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

    pub(super) fn remember(runtime: &JailRuntime, jid: u32, own: &[&str]) {
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
}
