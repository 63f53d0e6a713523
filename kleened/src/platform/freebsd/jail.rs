//! jail(8), jexec(8) and jls(8) command lines for a container's jail: the parameters every
//! container is confined with ([`CONFINEMENT`]) and the user's own, checked and merged
//! ([`validate_jail_params`], [`jail_params`]); the `jail -i -c` that creates the jail and the jid it
//! prints ([`jail_create`], [`parse_jid`]); the jexec(8) lines of its processes; how it is stopped
//! ([`stop_plan`], [`exec_stop`], [`jail_remove`]); and jls(8), which says whether it runs. Pure
//! functions, pinned by the goldens of `kleened/tests/freebsd_commands.rs`. The network parameters
//! are here too: `vnet`, `ip4`/`ip6` and an ipnet jail's `ip4.addr`/`ip6.addr` ([`network_params`],
//! [`address_params`]).

use std::net::IpAddr;

use ipnet::{Ipv4Net, Ipv6Net};
use kleene_api::NetworkDriver;
use kleene_runner::CommandSpec;

use crate::platform::runtime::{ProcessSpec, RuntimeError};

pub(super) const JAIL: &str = "/usr/sbin/jail";
pub(super) const JEXEC: &str = "/usr/sbin/jexec";
pub(super) const JLS: &str = "/usr/sbin/jls";
const ENV: &str = "/usr/bin/env";
const TIMEOUT: &str = "/usr/bin/timeout";
const SH: &str = "/bin/sh";

/// The `exec.stop` of a container whose parameters name none: the jail's rc.d services stop.
pub const DEFAULT_EXEC_STOP: &str = "/bin/sh /etc/rc.shutdown";

/// jail(8)'s `stop.timeout` when none is given (usr.sbin/jail/command.c), in seconds.
pub const DEFAULT_STOP_TIMEOUT_SECS: u32 = 10;

/// jail(8) parameters for a network driver. An `ipnet` jail's addresses come from its endpoints
/// ([`address_params`]); a `vnet` jail's interfaces are moved in after it is created.
pub fn network_params(driver: NetworkDriver) -> Vec<String> {
    match driver {
        NetworkDriver::Disabled => vec!["ip4=disable".into(), "ip6=disable".into()],
        NetworkDriver::Host => vec!["ip4=inherit".into(), "ip6=inherit".into()],
        NetworkDriver::Vnet => vec!["vnet".into()],
        NetworkDriver::Ipnet => vec![],
    }
}

/// jail(8) `ip4.addr`/`ip6.addr` of an ipnet jail: its endpoints' addresses, each family that has
/// any (a jail made without them has no address of that family: kern_jail.c gives a new non-vnet
/// jail `PR_IP4_USER`/`PR_IP6_USER` with an empty list). Other drivers get none.
pub fn address_params(spec: &ProcessSpec) -> Vec<String> {
    if spec.network != NetworkDriver::Ipnet {
        return vec![];
    }
    let addresses: Vec<IpAddr> = spec
        .endpoints
        .iter()
        .flat_map(|e| endpoint_addresses(e.address, e.address6))
        .collect();
    let v4 = addresses.iter().any(IpAddr::is_ipv4);
    let v6 = addresses.iter().any(IpAddr::is_ipv6);
    address_lists(&addresses, v4, v6)
}

/// `ip4.addr=<list>` when `v4`, `ip6.addr=<list>` when `v6`: every address of that family in
/// `addresses`, in order (the first is the jail's primary address), comma-separated; an empty
/// list takes the jail's addresses of that family away (libjail reads an empty array value as
/// no elements).
pub fn address_lists(addresses: &[IpAddr], v4: bool, v6: bool) -> Vec<String> {
    let mut params = vec![];
    if v4 {
        params.push(format!("ip4.addr={}", address_list(addresses, false)));
    }
    if v6 {
        params.push(format!("ip6.addr={}", address_list(addresses, true)));
    }
    params
}

/// The addresses of an endpoint without their prefix lengths, IPv4 first: what an ipnet container
/// gets as aliases and in its jail's `ip4.addr`/`ip6.addr`.
pub fn endpoint_addresses(address: Option<Ipv4Net>, address6: Option<Ipv6Net>) -> Vec<IpAddr> {
    address
        .map(|a| IpAddr::V4(a.addr()))
        .into_iter()
        .chain(address6.map(|a| IpAddr::V6(a.addr())))
        .collect()
}

/// The addresses of one family, joined with commas as jail(8) takes `ip4.addr`/`ip6.addr`.
pub fn address_list(addresses: &[IpAddr], v6: bool) -> String {
    addresses
        .iter()
        .filter(|a| a.is_ipv6() == v6)
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
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
/// the Linux runtime's `linux.*`, unknown to jail(8). Pure: the engine asks it through
/// [`Runtime::check_jail_params`](crate::platform::Runtime::check_jail_params) when a container is
/// created or updated, and start and update check again.
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
        .args(address_params(spec))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::freebsd::testdata::{image, spec};

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
}
