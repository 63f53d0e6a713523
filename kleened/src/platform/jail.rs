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
//! removes the jail and kills the rest), and unmounts a devfs left at `<mountpoint>/dev`. Whether a
//! container runs, and a jail's jid after a daemon restart, are asked of the kernel with jls(8).
//!
//! Every command line is built by a pure function below and pinned by a golden file
//! (`kleened/tests/goldens/freebsd/`) that names the man page it was checked against. Network
//! parameters for `ipnet` and `vnet` come with networks.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::process::Stdio;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use kleene_api::NetworkDriver;
use kleene_runner::{CommandSpec, Runner};

use super::host::in_root;
use super::io::FdStream;
use super::passwd;
use super::runtime::{ProcessIo, ProcessSpec, Runtime, RuntimeError, Spawned};

const JAIL: &str = "/usr/sbin/jail";
const JEXEC: &str = "/usr/sbin/jexec";
const JLS: &str = "/usr/sbin/jls";
const ENV: &str = "/usr/bin/env";
const TIMEOUT: &str = "/usr/bin/timeout";
const SH: &str = "/bin/sh";

/// The `exec.stop` of a container whose parameters name none: the jail's rc.d services stop.
pub const DEFAULT_EXEC_STOP: &str = "/bin/sh /etc/rc.shutdown";

/// jail(8)'s `stop.timeout` when none is given (usr.sbin/jail/command.c), in seconds.
pub const DEFAULT_STOP_TIMEOUT_SECS: u32 = 10;

/// jail(8) parameters for a network driver. `ipnet` and `vnet` parameters depend on the networks a
/// container is connected to; without networks they have none.
pub fn network_params(driver: NetworkDriver) -> Vec<String> {
    match driver {
        NetworkDriver::Disabled => vec!["ip4=disable".into(), "ip6=disable".into()],
        NetworkDriver::Host => vec!["ip4=inherit".into(), "ip6=inherit".into()],
        NetworkDriver::Vnet => vec!["vnet".into()],
        NetworkDriver::Ipnet => vec![],
    }
}

/// What every container is confined to unless the user names the same parameter: devfs with
/// ruleset 4 (`devfsrules_jail`) enforced, statfs(2) limited to the jail's own mount point, no
/// child jails, and the `allow.*` permissions off. Only permissions that exist in every FreeBSD
/// 13.x and 14.x kernel without extra modules are named (jail(8) refuses an unknown parameter).
/// `allow.reserved_ports`, `allow.unprivileged_proc_debug` and `allow.suser` keep their kernel
/// default (on), and `securelevel` is the user's. `docs/freebsd-jail-defaults.md` says why.
pub const CONFINEMENT: [&str; 12] = [
    "devfs_ruleset=4",
    "enforce_statfs=2",
    "children.max=0",
    "allow.noset_hostname",
    "allow.nosysvipc",
    "allow.noraw_sockets",
    "allow.nochflags",
    "allow.nomount",
    "allow.nomlock",
    "allow.noquotas",
    "allow.nosocket_af",
    "allow.noread_msgbuf",
];

/// The parameter a jail(8) argument sets: its name before any `=`, without the `no` that negates
/// a boolean in its last component, as jail(8) compares names: `allow.raw_sockets`,
/// `allow.raw_sockets=1` and `allow.noraw_sockets` all set `allow.raw_sockets`, while
/// `allow.mount.zfs` is a parameter of its own, not `allow.mount`.
pub fn param_name(param: &str) -> String {
    let name = param.split_once('=').map_or(param, |(name, _)| name);
    match name.rsplit_once('.') {
        Some((parent, last)) => format!("{parent}.{}", last.strip_prefix("no").unwrap_or(last)),
        None => name.strip_prefix("no").unwrap_or(name).to_owned(),
    }
}

/// Whether a parameter name negates a boolean (`allow.noraw_sockets`, `exec.noclean`).
fn negated(name: &str) -> bool {
    name.rsplit('.')
        .next()
        .is_some_and(|last| last.starts_with("no"))
}

/// The user's jail parameters after the defaults: each default is added only when no parameter
/// of the user sets the same parameter (see [`param_name`]), so `mount.nodevfs` drops
/// `mount.devfs=true` and `allow.raw_sockets` drops `allow.noraw_sockets`. `exec.clean` and
/// `exec.jail_user` only matter to commands jail(8) runs in the jail (a user's `exec.start`) and to
/// the `exec.stop` kleened runs (see [`stop_plan`]); `exec.stop` itself has no effect on a
/// `jail -c` line and is not added.
pub fn jail_params(container_id: &str, user: &str, own: &[String]) -> Vec<String> {
    let defaults = [
        "mount.devfs=true".to_owned(),
        "exec.clean=true".to_owned(),
        format!("exec.jail_user={user}"),
        format!("host.hostname={container_id}"),
    ]
    .into_iter()
    .chain(CONFINEMENT.iter().map(|p| (*p).to_owned()));
    let named: Vec<String> = own.iter().map(|p| param_name(p)).collect();
    let mut params: Vec<String> = defaults
        .filter(|default| !named.contains(&param_name(default)))
        .collect();
    params.extend(own.iter().cloned());
    params
}

/// Refuses jail parameters kleened cannot pass to jail(8): `command` or `command=...`, which
/// jail(8) takes as the start of the command to run, making every later argument (the trailing
/// `persist` included) part of that command (a container's first process is its `cmd`); `path`,
/// `name` and `jid`, which kleened sets (a `path=/` would root the jail at the host's root); and
/// the Linux runtime's `linux.*`, unknown to jail(8). Pure:
/// the engine asks it through [`Runtime::check_jail_params`] when a container is created or
/// updated, and start and update check again.
pub fn validate_jail_params(params: &[String]) -> Result<(), RuntimeError> {
    for param in params {
        let name = param
            .split_once('=')
            .map_or(param.as_str(), |(name, _)| name);
        let reason = match name {
            "command" => {
                "jail(8) would run it, with every parameter after it, as a command; a \
                          container's first process is its cmd"
            }
            "path" | "name" | "jid" => {
                "kleened sets it: the jail's root is the container's \
                                        dataset, its name the container ID"
            }
            _ if name.starts_with("linux.") => "it applies to the Linux runtime only",
            _ => continue,
        };
        return Err(RuntimeError::Invalid(format!(
            "jail parameter '{param}' is not allowed: {reason}"
        )));
    }
    Ok(())
}

/// jail(8) `-i -c`: create the jail, persistent until its first process has ended (`persist`
/// comes last, so a user's `nopersist` cannot remove the jail before that process runs), and
/// print its jid. `user` is the first process's user, the default `exec.jail_user`.
pub fn jail_create(spec: &ProcessSpec, user: &str) -> CommandSpec {
    CommandSpec::new(JAIL)
        .args([
            "-i".to_owned(),
            "-c".to_owned(),
            format!("path={}", spec.rootfs.display()),
            format!("name={}", spec.container_id),
        ])
        .args(network_params(spec.network))
        .args(jail_params(&spec.container_id, user, &spec.jail_params))
        .arg("persist")
}

/// The jid `jail -i` printed, when its output is only that. Output of a user's `exec.prestart` or
/// `exec.start` (jail(8) prints the jid between the two) makes it ambiguous: `None`, and the jid
/// is asked of jls(8).
pub fn parse_jid(stdout: &str) -> Option<u32> {
    let text = stdout.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok().filter(|jid| *jid > 0)
}

/// jail(8) `-m jid=<jid> nopersist`: the jail goes when its last process has.
pub fn jail_release(jid: u32) -> CommandSpec {
    CommandSpec::new(JAIL).args([
        "-m".to_owned(),
        format!("jid={jid}"),
        "nopersist".to_owned(),
    ])
}

/// The search path of a process whose user has no home directory (FreeBSD's login.conf default).
const DEFAULT_PATH: &str = "PATH=/sbin:/bin:/usr/sbin:/usr/bin:/usr/local/sbin:/usr/local/bin";

/// The terminal type of processes on a terminal. The daemon has no `TERM` of its own to pass on
/// (service(8) starts it without one), and `jexec -l` keeps only the caller's.
const TERM: &str = "TERM=xterm";

/// jexec(8)'s arguments up to the command: as `user` (a name in the jail's password database),
/// with `-l` when `login`.
fn jexec_args(jid: u32, user: &str, login: bool) -> Vec<String> {
    let mut args = vec![];
    if login {
        args.push("-l".to_owned());
    }
    args.extend(["-U".to_owned(), user.to_owned(), jid.to_string()]);
    args
}

/// jexec(8): run a process in the running jail `jid` as `user` (a name in the jail's password
/// database). With `login` (the user's home directory exists in the jail) it gets the user's
/// login environment and starts in the home directory (`-l`); otherwise (`nobody`, `www`: home
/// `/nonexistent`, where `-l` fails) it starts in `/` with a minimal environment made here. A
/// process on a terminal gets `TERM=xterm`. The container's variables come last, over either.
pub fn jexec(spec: &ProcessSpec, jid: u32, user: &str, login: bool) -> Vec<String> {
    let mut argv = vec![JEXEC.to_owned()];
    argv.extend(jexec_args(jid, user, login));
    argv.push(ENV.to_owned());
    if !login {
        argv.extend([
            "-i".to_owned(),
            "HOME=/".to_owned(),
            format!("USER={user}"),
            format!("LOGNAME={user}"),
            "SHELL=/bin/sh".to_owned(),
            DEFAULT_PATH.to_owned(),
        ]);
    }
    if spec.tty {
        argv.push(TERM.to_owned());
    }
    argv.extend(spec.env.iter().cloned());
    argv.extend(spec.cmd.iter().cloned());
    argv
}

/// The check run before a process starts: jexec(8) as [`jexec`] will run it, with `env -i` (an
/// empty environment, printed: nothing) as the command. jexec's own failures (unknown user in the
/// jail's pwd.db, a home it cannot chdir to) then become a start error with jexec's words, instead
/// of exit code 1 of the container's process.
pub fn jexec_check(jid: u32, user: &str, login: bool) -> CommandSpec {
    CommandSpec::new(JEXEC)
        .args(jexec_args(jid, user, login))
        .args([ENV, "-i"])
}

/// How a container's jail is stopped: the `exec.stop` jail(8) would run for a jail.conf entry
/// with the container's parameters, which it never runs for a jail made on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopPlan {
    /// The `exec.stop` commands, in order; none with `exec.nostop` or an empty `exec.stop`.
    pub commands: Vec<String>,
    /// `exec.jail_user`: who runs them, a name in the jail's password database.
    pub user: String,
    /// `exec.clean`: in the user's login environment and home directory (`jexec -l`).
    pub clean: bool,
    /// `stop.timeout`: how long they may run together, in seconds (at least 1).
    pub timeout_secs: u32,
}

/// The stop plan of a container whose first process runs as `user`, read from its jail
/// parameters as jail(8) reads a command line: `exec.stop=...` adds a command (several run in
/// order), `exec.stop` without a value or `exec.nostop` clears them, an empty one is skipped; the
/// last `exec.jail_user`, `exec.clean` and `stop.timeout` win.
pub fn stop_plan(user: &str, own: &[String]) -> StopPlan {
    let mut plan = StopPlan {
        commands: vec![DEFAULT_EXEC_STOP.to_owned()],
        user: user.to_owned(),
        clean: true,
        timeout_secs: DEFAULT_STOP_TIMEOUT_SECS,
    };
    let mut own_stop = false;
    for param in own {
        let (name, value) = match param.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (param.as_str(), None),
        };
        match param_name(param).as_str() {
            "exec.stop" => {
                if !own_stop {
                    plan.commands.clear();
                    own_stop = true;
                }
                match value {
                    Some(command) if !negated(name) => {
                        if !command.trim().is_empty() {
                            plan.commands.push(command.to_owned());
                        }
                    }
                    _ => plan.commands.clear(),
                }
            }
            "exec.jail_user" => {
                if let Some(jail_user) = value {
                    plan.user = jail_user.to_owned();
                }
            }
            "exec.clean" => {
                // jail(8): no value, "true" or a non-zero number is true; "no" inverts it.
                let set = value.is_none_or(|v| {
                    v.eq_ignore_ascii_case("true") || v.trim().parse::<i64>().is_ok_and(|n| n != 0)
                });
                plan.clean = set != negated(name);
            }
            "stop.timeout" => {
                if let Some(secs) = value.and_then(|v| v.trim().parse::<u32>().ok()) {
                    plan.timeout_secs = secs.max(1);
                }
            }
            _ => {}
        }
    }
    plan
}

/// A command string as jail(8) runs it: through `sh -c` when it has a character special to the
/// shell, otherwise split at white space.
fn command_argv(command: &str) -> Vec<String> {
    const SPECIAL: &str = "!\"$&'()*;<>?[\\]`{|}~";
    if command.contains(|c| SPECIAL.contains(c)) {
        vec![SH.to_owned(), "-c".to_owned(), command.to_owned()]
    } else {
        command.split_whitespace().map(str::to_owned).collect()
    }
}

/// timeout(1) around jexec(8): one `exec.stop` command of `plan` in the jail, SIGTERM after
/// `secs` seconds and SIGKILL 2 s later, to it and its descendants.
pub fn exec_stop(jid: u32, plan: &StopPlan, command: &str, secs: u32) -> CommandSpec {
    CommandSpec::new(TIMEOUT)
        .args(["-k".to_owned(), "2".to_owned(), secs.to_string()])
        .arg(JEXEC)
        .args(jexec_args(jid, &plan.user, plan.clean))
        .args(command_argv(command))
}

/// jail(8) `-R`: remove the jail without reading /etc/jail.conf: SIGTERM to its processes, wait
/// up to 10 s (jail(8)'s default `stop.timeout`), then remove it, which kills what is left.
pub fn jail_remove(jid: u32) -> CommandSpec {
    CommandSpec::new(JAIL).args(["-R".to_owned(), jid.to_string()])
}

/// jail(8) `-m`: change parameters of the running jail.
pub fn jail_modify(jid: u32, params: &[String]) -> CommandSpec {
    CommandSpec::new(JAIL)
        .args(["-m".to_owned(), format!("jid={jid}")])
        .args(params.iter().cloned())
}

/// jls(8): the jid of the container's jail, if it exists (exit status 1 otherwise).
pub fn jls_jid(container_id: &str) -> CommandSpec {
    CommandSpec::new(JLS).args(["-j".to_owned(), container_id.to_owned(), "jid".to_owned()])
}

/// jls(8): the names of every jail, one per line.
pub fn jls_all() -> CommandSpec {
    CommandSpec::new(JLS).arg("name")
}

/// mount(8): devfs mounts in fstab(5) format.
pub fn devfs_mounts() -> CommandSpec {
    CommandSpec::new("/sbin/mount").args(["-p", "-t", "devfs"].map(str::to_owned))
}

/// umount(8) of a path.
pub fn unmount(path: &str) -> CommandSpec {
    CommandSpec::new("/sbin/umount").arg(path)
}

/// The jail of a container's latest start by this daemon.
#[derive(Debug, Clone)]
struct Run {
    /// The jail's jid, printed by `jail -i -c`.
    jid: u32,
    /// What stopping it runs first.
    stop: StopPlan,
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
}

/// Containers as FreeBSD jails.
#[derive(Debug)]
pub struct JailRuntime {
    runner: Arc<dyn Runner>,
    /// Where container datasets are mounted, to find a devfs left at `<mountpoint>/dev`.
    containers_root: String,
    /// The jails this daemon made. Held only to read or change it, never while a command runs.
    jails: Mutex<Jails>,
}

impl JailRuntime {
    /// A runtime running jls/jail/jexec/umount through `runner`; `containers_root` is the
    /// mountpoint of the container datasets' parent.
    pub fn new(runner: Arc<dyn Runner>, containers_root: String) -> JailRuntime {
        JailRuntime {
            runner,
            containers_root,
            jails: Mutex::new(Jails::default()),
        }
    }

    // A panic elsewhere while the lock was held leaves the records as consistent as any single
    // change makes them, so a poisoned lock is taken over.
    fn jails(&self) -> MutexGuard<'_, Jails> {
        self.jails.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn spawn(&self, argv: Vec<String>, tty: bool) -> Result<Spawned, RuntimeError> {
        let host =
            |what: &str, e: &dyn std::fmt::Display| RuntimeError::Host(format!("{what}: {e}"));
        tracing::debug!(?argv, "starting jail process");
        let mut command = tokio::process::Command::new(&argv[0]);
        command.args(&argv[1..]).kill_on_drop(false);
        let io = if tty {
            // A terminal from the host's devpts; jails with mount.devfs see /dev/pts.
            let pty = nix::pty::openpty(None, None).map_err(|e| host("openpty", &e))?;
            let slave: OwnedFd = pty.slave;
            command
                .stdin(Stdio::from(slave.try_clone().map_err(|e| host("dup", &e))?))
                .stdout(Stdio::from(slave.try_clone().map_err(|e| host("dup", &e))?))
                .stderr(Stdio::from(slave));
            controlling_terminal(&mut command);
            let input = pty.master.try_clone().map_err(|e| host("dup", &e))?;
            ProcessIo {
                output: FdStream::new(pty.master).map_err(|e| host("pty", &e))?,
                input: FdStream::new(input).map_err(|e| host("pty", &e))?,
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
        let id = &spec.container_id;
        self.jails().runs.remove(id);
        // A devfs left by an earlier run would be mounted over, not replaced.
        self.cleanup(id)?;
        // jail(8) undoes its own steps when creation fails, so nothing is left to remove then.
        let created = self.run_ok(&jail_create(spec, &user), |code, stderr| {
            RuntimeError::Invalid(format!(
                "could not create the jail ({JAIL} exited with {code}): {stderr}"
            ))
        })?;
        let jid = match parse_jid(&created.stdout_text()) {
            Some(jid) => jid,
            None => self.lookup_jid(id)?.ok_or_else(|| {
                RuntimeError::Host(format!("the jail of {id} was created but has gone"))
            })?,
        };
        let undo = |err: RuntimeError| {
            let _ = self.run(&jail_remove(jid));
            let _ = self.cleanup(id);
            err
        };
        self.check_jexec(jid, &user, login).map_err(undo)?;
        let spawned = self
            .spawn(jexec(spec, jid, &user, login), spec.tty)
            .map_err(undo)?;
        let mut jails = self.jails();
        jails.runs.insert(
            id.clone(),
            Run {
                jid,
                stop: stop_plan(&user, &spec.jail_params),
            },
        );
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
        self.spawn(jexec(spec, jid, &user, login), spec.tty)
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

    fn cleanup(&self, container_id: &str) -> Result<(), RuntimeError> {
        // A jail that went by itself leaves its devfs mounted at <mountpoint>/dev.
        let node = format!("{}/{container_id}/dev", self.containers_root);
        let mounted = || -> Result<bool, RuntimeError> {
            let mounts = self.run(&devfs_mounts())?.stdout_text();
            Ok(mounts
                .lines()
                .any(|line| line.split_whitespace().nth(1) == Some(node.as_str())))
        };
        if mounted()? {
            let output = self.run(&unmount(&node))?;
            // jail(8) unmounts it too when a jail's creation fails; gone is gone.
            if !output.succeeded() && mounted()? {
                return Err(RuntimeError::Host(format!(
                    "cannot unmount {node}: {}",
                    output.stderr_text().trim_end()
                )));
            }
        }
        Ok(())
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
    let passwd_file = passwd::read_container_file(&spec.rootfs, "etc/passwd");
    let group_file = passwd::read_container_file(&spec.rootfs, "etc/group");
    let user = passwd::resolve(&spec.user, passwd_file.as_deref(), group_file.as_deref())
        .map_err(RuntimeError::Invalid)?;
    let login = in_root(&spec.rootfs, &user.home).is_dir();
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
mod tests {
    use super::*;
    use kleene_runner::RecordingRunner;

    const ROOT: &str = "/zroot/kleene/container";

    fn spec(rootfs: &std::path::Path) -> ProcessSpec {
        ProcessSpec {
            container_id: "c0ffee000001".into(),
            rootfs: rootfs.to_owned(),
            cmd: vec!["/usr/bin/id".into()],
            env: vec!["A=1".into()],
            user: String::new(),
            tty: false,
            network: NetworkDriver::Host,
            jail_params: vec![],
            endpoints: vec![],
        }
    }

    /// A container root with root (home /root, which exists), nobody (home /nonexistent) and
    /// ghost (in /etc/passwd, which jexec does not read).
    fn image() -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("etc")).unwrap();
        std::fs::create_dir_all(root.path().join("root")).unwrap();
        std::fs::write(
            root.path().join("etc/passwd"),
            "root:*:0:0:Charlie &:/root:/bin/sh\n\
             nobody:*:65534:65534:Unprivileged user:/nonexistent:/usr/sbin/nologin\n\
             ghost:*:1001:1001:Not in pwd.db:/root:/bin/sh\n",
        )
        .unwrap();
        root
    }

    fn recording() -> (Arc<RecordingRunner>, JailRuntime) {
        let runner = Arc::new(RecordingRunner::new());
        (runner.clone(), JailRuntime::new(runner, ROOT.into()))
    }

    #[test]
    fn parameter_names_ignore_values_and_the_no_of_booleans() {
        assert_eq!(param_name("allow.raw_sockets"), "allow.raw_sockets");
        assert_eq!(param_name("allow.raw_sockets=1"), "allow.raw_sockets");
        assert_eq!(param_name("allow.noraw_sockets"), "allow.raw_sockets");
        assert_eq!(param_name("allow.mount.nodevfs"), "allow.mount.devfs");
        assert_eq!(param_name("nopersist"), "persist");
        assert_eq!(
            param_name("exec.stop=/bin/sh /etc/rc.shutdown"),
            "exec.stop"
        );
        // A value that looks like a negation is a value.
        assert_eq!(param_name("host.hostname=nobody"), "host.hostname");
    }

    #[test]
    fn confinement_is_on_unless_the_user_names_the_same_parameter() {
        let defaults = jail_params("c0ffee000001", "root", &[]);
        for param in CONFINEMENT {
            assert!(
                defaults.contains(&param.to_owned()),
                "{param}: {defaults:?}"
            );
        }
        // Every form of a user's parameter replaces the default, and goes to jail(8) as given.
        for own in [
            "allow.raw_sockets",
            "allow.raw_sockets=true",
            "allow.noraw_sockets",
        ] {
            let params = jail_params("c0ffee000001", "root", &[own.to_owned()]);
            let raw: Vec<&String> = params
                .iter()
                .filter(|p| param_name(p) == "allow.raw_sockets")
                .collect();
            assert_eq!(raw, [own], "{params:?}");
            assert!(params.contains(&"allow.nochflags".to_owned()), "{params:?}");
        }
        let params = jail_params(
            "c0ffee000001",
            "root",
            &[
                "enforce_statfs=1".into(),
                "allow.mount".into(),
                "allow.mount.zfs".into(),
            ],
        );
        assert!(
            !params.contains(&"enforce_statfs=2".to_owned()),
            "{params:?}"
        );
        assert!(!params.contains(&"allow.nomount".to_owned()), "{params:?}");
        // allow.mount.zfs is a parameter of its own: it does not turn allow.mount on.
        let params = jail_params("c0ffee000001", "root", &["allow.mount.zfs".into()]);
        assert!(params.contains(&"allow.nomount".to_owned()), "{params:?}");
        assert_eq!(params.last().map(String::as_str), Some("allow.mount.zfs"));
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
    fn processes_on_a_terminal_get_term_with_and_without_login() {
        let root = image();
        let mut spec = spec(root.path());
        spec.tty = true;
        spec.cmd = vec!["/bin/sh".into()];
        assert_eq!(
            jexec(&spec, 7, "root", true).join(" "),
            "/usr/sbin/jexec -l -U root 7 /usr/bin/env TERM=xterm A=1 /bin/sh"
        );
        let argv = jexec(&spec, 7, "nobody", false);
        assert!(argv.contains(&"TERM=xterm".to_owned()), "{argv:?}");
        // The container's own TERM comes later, so env(1) lets it win.
        spec.env.push("TERM=vt100".into());
        let argv = jexec(&spec, 7, "root", true);
        let at = |v: &str| argv.iter().position(|a| a == v).unwrap();
        assert!(at("TERM=xterm") < at("TERM=vt100"), "{argv:?}");
        spec.tty = false;
        spec.env.clear();
        assert!(!jexec(&spec, 7, "root", true)
            .iter()
            .any(|a| a.starts_with("TERM=")));
    }

    #[test]
    fn parameters_kleened_sets_or_linux_owns_are_refused() {
        for param in ["path=/", "name=other", "jid=1", "linux.seccomp=unconfined"] {
            let err = validate_jail_params(&[param.into()]).unwrap_err();
            assert!(err.to_string().contains(&format!("'{param}'")), "{err}");
        }
        assert!(validate_jail_params(&["host.hostname=web".into(), "pathless=1".into()]).is_ok());
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
    fn jids_printed_by_jail_are_parsed_and_anything_else_is_not() {
        assert_eq!(parse_jid("7\n"), Some(7));
        assert_eq!(parse_jid(" 123 \n"), Some(123));
        for other in [
            "",
            "0\n",
            "-1",
            "7\nstarting nginx\n",
            "c0ffee000001",
            "99999999999",
        ] {
            assert_eq!(parse_jid(other), None, "{other:?}");
        }
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
        let runtime = JailRuntime::new(runner.clone(), "/nonexistent/kleene/container".into());
        let spec = ProcessSpec {
            container_id: "c0ffee000001".into(),
            rootfs: "/nonexistent/kleene/container/c0ffee000001".into(),
            cmd: vec!["/bin/sh".into()],
            env: vec![],
            user: String::new(),
            tty: false,
            network: NetworkDriver::Host,
            jail_params: vec![],
            endpoints: vec![],
        };
        // No stale devfs; jail -i -c prints the jid; jexec's check passes (without -l: the image
        // has no /root); the process cannot start: the jail is removed by its jid and cleaned up.
        runner.push_ok("");
        runner.push_ok("7\n");
        runner.push_ok("");
        assert!(runtime.start(&spec).is_err());
        let lines = runner.lines();
        assert_eq!(lines[0], "/sbin/mount -p -t devfs");
        assert!(
            lines[1].starts_with(
                "/usr/sbin/jail -i -c path=/nonexistent/kleene/container/c0ffee000001 "
            ) && lines[1].ends_with(" persist"),
            "{lines:?}"
        );
        assert_eq!(
            lines[2..],
            [
                "/usr/sbin/jexec -U root 7 /usr/bin/env -i",
                "/usr/sbin/jail -R 7",
                "/sbin/mount -p -t devfs"
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
            ["/usr/sbin/jail -R 8", "/sbin/mount -p -t devfs"]
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

    #[test]
    fn the_stop_plan_reads_exec_stop_as_jail_does() {
        let plan = |own: &[&str]| {
            stop_plan(
                "root",
                &own.iter().map(|p| (*p).to_owned()).collect::<Vec<_>>(),
            )
        };
        let default = plan(&[]);
        assert_eq!(default.commands, [DEFAULT_EXEC_STOP]);
        assert_eq!(default.user, "root");
        assert!(default.clean);
        assert_eq!(default.timeout_secs, DEFAULT_STOP_TIMEOUT_SECS);
        assert!(plan(&["exec.nostop"]).commands.is_empty());
        assert!(plan(&["exec.stop="]).commands.is_empty());
        assert!(plan(&["exec.stop"]).commands.is_empty());
        assert_eq!(
            plan(&["exec.stop=/bin/sh /etc/rc.shutdown jail", "exec.stop=sync"]).commands,
            ["/bin/sh /etc/rc.shutdown jail", "sync"]
        );
        assert_eq!(
            plan(&["exec.stop=a", "exec.nostop", "exec.stop=b"]).commands,
            ["b"]
        );
        let own = plan(&["exec.jail_user=www", "exec.noclean", "stop.timeout=30"]);
        assert_eq!(
            (own.user.as_str(), own.clean, own.timeout_secs),
            ("www", false, 30)
        );
        assert!(!plan(&["exec.clean=false"]).clean);
        assert!(plan(&["exec.clean=1"]).clean);
        assert_eq!(plan(&["stop.timeout=0"]).timeout_secs, 1);
        // jail(8) runs a command with shell syntax through sh -c, others split at white space.
        assert_eq!(
            command_argv("/bin/sh /etc/rc.shutdown"),
            ["/bin/sh", "/etc/rc.shutdown"]
        );
        assert_eq!(
            command_argv("service nginx stop; sync"),
            ["/bin/sh", "-c", "service nginx stop; sync"]
        );
    }

    fn remember(runtime: &JailRuntime, jid: u32, own: &[&str]) {
        let own: Vec<String> = own.iter().map(|p| (*p).to_owned()).collect();
        runtime.jails().runs.insert(
            "c0ffee000001".into(),
            Run {
                jid,
                stop: stop_plan("root", &own),
            },
        );
    }

    #[test]
    fn stop_runs_exec_stop_in_the_jail_then_removes_it_by_jid() {
        let (runner, runtime) = recording();
        remember(&runtime, 7, &[]);
        runner.push_ok("");
        runner.push_ok("");
        runner.push_ok(&format!(
            "devfs\t\t\t/dev\t\tdevfs\trw\t\t0 0\ndevfs\t\t\t{ROOT}/c0ffee000001/dev\tdevfs\trw\t0 0\n"
        ));
        runtime.stop("c0ffee000001", Duration::ZERO).unwrap();
        assert_eq!(
            runner.lines(),
            [
                "/usr/bin/timeout -k 2 10 /usr/sbin/jexec -l -U root 7 /bin/sh /etc/rc.shutdown",
                "/usr/sbin/jail -R 7",
                "/sbin/mount -p -t devfs",
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
                ["/usr/sbin/jail -R 7", "/sbin/mount -p -t devfs"],
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
                "/sbin/mount -p -t devfs"
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
                "/sbin/mount -p -t devfs"
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
