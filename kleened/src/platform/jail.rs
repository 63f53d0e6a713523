//! The FreeBSD runtime: containers as jails.
//!
//! A container starts as `jail -c path=... name=<id> <network> <parameters> persist`, which creates
//! the jail (and mounts its devfs) without running anything; its first process is then run with
//! `jexec -l -U <user> <id> /usr/bin/env ...`, like every later one. jexec's exit status is the
//! process's (128 + the signal when it was killed), which jail(8) itself does not pass on for a
//! `command=`. When the first process ends, `jail -m name=<id> nopersist` hands the jail back to
//! the kernel, which removes it once no process is left in it: a container lives while processes
//! remain, as a jail started with `command=` does. It is stopped with `jail -r`, and a devfs left
//! at `<mountpoint>/dev` is unmounted. Whether a container runs is asked of the kernel with jls(8).
//!
//! Every command line is built by a pure function below and pinned by a golden file
//! (`kleened/tests/goldens/freebsd/`) that names the man page it was checked against. Network
//! parameters for `ipnet` and `vnet` come with networks.

use std::os::fd::OwnedFd;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

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

/// The user's jail parameters after the defaults: each default is added only when no parameter
/// of the user sets the same parameter (see [`param_name`]), so `mount.nodevfs` drops
/// `mount.devfs=true` and `allow.raw_sockets` drops `allow.noraw_sockets`.
pub fn jail_params(container_id: &str, user: &str, own: &[String]) -> Vec<String> {
    let defaults = [
        "mount.devfs=true".to_owned(),
        // jail(8) takes a parameter's value verbatim from its argument: no quotes around it.
        "exec.stop=/bin/sh /etc/rc.shutdown".to_owned(),
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

fn user_or_root(user: &str) -> &str {
    if user.is_empty() {
        "root"
    } else {
        user
    }
}

/// jail(8): create the jail, persistent until its first process has ended (`persist` comes last,
/// so a user's `nopersist` cannot remove the jail before that process runs).
pub fn jail_create(spec: &ProcessSpec) -> CommandSpec {
    CommandSpec::new(JAIL)
        .args([
            "-c".to_owned(),
            format!("path={}", spec.rootfs.display()),
            format!("name={}", spec.container_id),
        ])
        .args(network_params(spec.network))
        .args(jail_params(
            &spec.container_id,
            user_or_root(&spec.user),
            &spec.jail_params,
        ))
        .arg("persist")
}

/// jail(8) `-m ... nopersist`: the jail goes when its last process has.
pub fn jail_release(container_id: &str) -> CommandSpec {
    CommandSpec::new(JAIL).args([
        "-m".to_owned(),
        format!("name={container_id}"),
        "nopersist".to_owned(),
    ])
}

/// The search path of a process whose user has no home directory (FreeBSD's login.conf default).
const DEFAULT_PATH: &str = "PATH=/sbin:/bin:/usr/sbin:/usr/bin:/usr/local/sbin:/usr/local/bin";

/// jexec(8): run a process in the running jail as `user` (a name in the jail's password database).
/// With `login` (the user's home directory exists in the jail) it gets the user's login
/// environment and starts in the home directory (`-l`); otherwise (`nobody`, `www`: home
/// `/nonexistent`, where `-l` fails) it starts in `/` with a minimal environment made here. The
/// container's variables come last, over either.
pub fn jexec(spec: &ProcessSpec, user: &str, login: bool) -> Vec<String> {
    let mut argv = vec![JEXEC.to_owned()];
    if login {
        argv.push("-l".to_owned());
    }
    argv.extend([
        "-U".to_owned(),
        user.to_owned(),
        spec.container_id.clone(),
        ENV.to_owned(),
    ]);
    if !login {
        argv.extend([
            "-i".to_owned(),
            "HOME=/".to_owned(),
            format!("USER={user}"),
            format!("LOGNAME={user}"),
            "SHELL=/bin/sh".to_owned(),
            DEFAULT_PATH.to_owned(),
        ]);
        if spec.tty {
            argv.push("TERM=xterm".to_owned());
        }
    }
    argv.extend(spec.env.iter().cloned());
    argv.extend(spec.cmd.iter().cloned());
    argv
}

/// jail(8) `-r`: run the jail's `exec.stop`, end its processes, remove it.
pub fn jail_remove(container_id: &str) -> CommandSpec {
    CommandSpec::new(JAIL).args(["-r".to_owned(), container_id.to_owned()])
}

/// jail(8) `-m`: change parameters of the running jail.
pub fn jail_modify(container_id: &str, params: &[String]) -> CommandSpec {
    CommandSpec::new(JAIL)
        .args(["-m".to_owned(), format!("name={container_id}")])
        .args(params.iter().cloned())
}

/// jls(8): the jail's name, if it exists (exit status 1 otherwise).
pub fn jls_one(container_id: &str) -> CommandSpec {
    CommandSpec::new(JLS).args(["-j".to_owned(), container_id.to_owned(), "name".to_owned()])
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

/// Containers as FreeBSD jails.
#[derive(Debug)]
pub struct JailRuntime {
    runner: Arc<dyn Runner>,
    /// Where container datasets are mounted, to find a devfs left at `<mountpoint>/dev`.
    containers_root: String,
}

impl JailRuntime {
    /// A runtime running jls/jail -r/umount through `runner`; `containers_root` is the mountpoint
    /// of the container datasets' parent.
    pub fn new(runner: Arc<dyn Runner>, containers_root: String) -> JailRuntime {
        JailRuntime {
            runner,
            containers_root,
        }
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
        Ok(Spawned { child, io })
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
}

impl Runtime for JailRuntime {
    fn start(&self, spec: &ProcessSpec) -> Result<Spawned, RuntimeError> {
        if spec.cmd.is_empty() {
            return Err(RuntimeError::Invalid(
                "no command given and the image has none".into(),
            ));
        }
        let argv = process_argv(spec)?;
        // A devfs left by an earlier run would be mounted over, not replaced.
        self.cleanup(&spec.container_id)?;
        // jail(8) undoes its own steps when creation fails, so nothing is left to remove then.
        self.run_ok(&jail_create(spec), |code, stderr| {
            RuntimeError::Invalid(format!(
                "could not create the jail ({JAIL} exited with {code}): {stderr}"
            ))
        })?;
        self.spawn(argv, spec.tty).inspect_err(|_| {
            let _ = self.run(&jail_remove(&spec.container_id));
            let _ = self.cleanup(&spec.container_id);
        })
    }

    fn exec(&self, spec: &ProcessSpec) -> Result<Spawned, RuntimeError> {
        if spec.cmd.is_empty() {
            return Err(RuntimeError::Invalid(
                "no command given and the container has none".into(),
            ));
        }
        if !self.is_running(&spec.container_id)? {
            return Err(RuntimeError::Invalid("container not running".into()));
        }
        self.spawn(process_argv(spec)?, spec.tty)
    }

    fn is_running(&self, container_id: &str) -> Result<bool, RuntimeError> {
        Ok(self.run(&jls_one(container_id))?.succeeded())
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
        // jail -r sends SIGTERM to the jail's processes, waits stop.timeout (10 s unless
        // jail.conf says otherwise), then removes the jail, which kills what is left.
        let removed = self.run_ok(&jail_remove(container_id), |code, stderr| {
            RuntimeError::Host(format!(
                "{JAIL} exited abnormally with exit code {code}: '{stderr}'"
            ))
        });
        self.cleanup(container_id)?;
        removed.map(drop)
    }

    fn first_process_ended(&self, container_id: &str) {
        // Fails when the jail is already gone (stopped), which is fine.
        if let Err(err) = self.run_ok(&jail_release(container_id), |code, stderr| {
            RuntimeError::Host(format!("exit code {code}: {stderr}"))
        }) {
            tracing::debug!(container = container_id, %err, "jail not released");
        }
    }

    fn update(&self, container_id: &str, jail_params: &[String]) -> Result<(), RuntimeError> {
        self.run_ok(&jail_modify(container_id, jail_params), |code, stderr| {
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

/// The jexec line for a process: its user looked up in the container's own passwd and group files
/// (a clear error for an unknown user before anything starts), `-l` when the home exists.
fn process_argv(spec: &ProcessSpec) -> Result<Vec<String>, RuntimeError> {
    let passwd_file = passwd::read_container_file(&spec.rootfs, "etc/passwd");
    let group_file = passwd::read_container_file(&spec.rootfs, "etc/group");
    let user = passwd::resolve(&spec.user, passwd_file.as_deref(), group_file.as_deref())
        .map_err(RuntimeError::Invalid)?;
    let login = in_root(&spec.rootfs, &user.home).is_dir();
    Ok(jexec(spec, &user.name, login))
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
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("etc")).unwrap();
        std::fs::create_dir_all(root.path().join("root")).unwrap();
        std::fs::write(
            root.path().join("etc/passwd"),
            "root:*:0:0:Charlie &:/root:/bin/sh\nnobody:*:65534:65534:Unprivileged user:/nonexistent:/usr/sbin/nologin\n",
        )
        .unwrap();
        let mut spec = ProcessSpec {
            container_id: "c0ffee000001".into(),
            rootfs: root.path().to_owned(),
            cmd: vec!["/usr/bin/id".into()],
            env: vec!["A=1".into()],
            user: String::new(),
            tty: false,
            network: NetworkDriver::Host,
            jail_params: vec![],
        };
        assert_eq!(
            process_argv(&spec).unwrap().join(" "),
            "/usr/sbin/jexec -l -U root c0ffee000001 /usr/bin/env A=1 /usr/bin/id"
        );
        spec.user = "nobody".into();
        assert_eq!(
            process_argv(&spec).unwrap().join(" "),
            "/usr/sbin/jexec -U nobody c0ffee000001 /usr/bin/env -i HOME=/ USER=nobody \
             LOGNAME=nobody SHELL=/bin/sh \
             PATH=/sbin:/bin:/usr/sbin:/usr/bin:/usr/local/sbin:/usr/local/bin A=1 /usr/bin/id"
        );
        spec.user = "ghost".into();
        let err = process_argv(&spec).unwrap_err();
        assert!(matches!(err, RuntimeError::Invalid(_)));
        assert!(
            err.to_string().contains("unable to find user ghost"),
            "{err}"
        );
    }

    #[test]
    fn a_refused_modification_reports_jails_exit_code_and_message() {
        let runner = Arc::new(RecordingRunner::new());
        let runtime = JailRuntime::new(runner.clone(), "/zroot/kleene/container".into());
        runner.push_ok("");
        runtime
            .update("c0ffee000001", &["host.hostname=web".into()])
            .unwrap();
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
                "/usr/sbin/jail -m name=c0ffee000001 host.hostname=web",
                "/usr/sbin/jail -m name=c0ffee000001 allow.nothing"
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
        };
        // No stale devfs; jail -c works; the process cannot start: the jail is removed and
        // cleaned up.
        runner.push_ok("");
        runner.push_ok("");
        assert!(runtime.start(&spec).is_err());
        let lines = runner.lines();
        assert_eq!(lines[0], "/sbin/mount -p -t devfs");
        assert!(
            lines[1]
                .starts_with("/usr/sbin/jail -c path=/nonexistent/kleene/container/c0ffee000001 ")
                && lines[1].ends_with(" persist"),
            "{lines:?}"
        );
        assert_eq!(
            lines[2..],
            ["/usr/sbin/jail -r c0ffee000001", "/sbin/mount -p -t devfs"]
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
    fn running_state_and_cleanup_use_the_kernel_view() {
        let runner = Arc::new(RecordingRunner::new());
        let runtime = JailRuntime::new(runner.clone(), "/zroot/kleene/container".into());
        runner.push_err(1, "jls: jail \"c0ffee000001\" not found\n");
        assert!(!runtime.is_running("c0ffee000001").unwrap());
        runner.push_ok("c0ffee000001\nother\n");
        assert_eq!(runtime.running().unwrap(), ["c0ffee000001", "other"]);
        // stop: jail -r, then the devfs left at <mountpoint>/dev is unmounted.
        runner.push_ok("");
        runner.push_ok("devfs\t\t\t/dev\t\tdevfs\trw\t\t0 0\ndevfs\t\t\t/zroot/kleene/container/c0ffee000001/dev\tdevfs\trw\t0 0\n");
        runner.push_ok("");
        runner.clear_calls();
        runtime.stop("c0ffee000001", Duration::ZERO).unwrap();
        assert_eq!(
            runner.lines(),
            [
                "/usr/sbin/jail -r c0ffee000001",
                "/sbin/mount -p -t devfs",
                "/sbin/umount /zroot/kleene/container/c0ffee000001/dev"
            ]
        );
    }
}
