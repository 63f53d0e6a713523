//! What a container's jail(8) parameters mean on Linux, so that one `-J` works on both platforms.
//!
//! A container gets Docker's default capabilities minus `CAP_MKNOD` and `CAP_NET_RAW` (a jail can
//! make no device nodes and open no raw sockets by default either) and the system-call filter of
//! [`super::seccomp`]. The `allow.*` parameters that opt in to more on FreeBSD opt in to the
//! matching capability here:
//!
//! | parameter | FreeBSD | Linux |
//! |---|---|---|
//! | `allow.raw_sockets` | raw sockets | `CAP_NET_RAW` |
//! | `allow.chflags` | system file flags | `CAP_LINUX_IMMUTABLE` (immutable and append-only flags) |
//! | `allow.mlock` | mlock(2) | `CAP_IPC_LOCK` (beyond `RLIMIT_MEMLOCK`) |
//! | `allow.reserved_ports` | bind ports below 1024 | `CAP_NET_BIND_SERVICE` (on by default; `allow.noreserved_ports` drops it) |
//! | `allow.sysvipc` | System V IPC | always: the container has its own IPC namespace |
//! | `allow.suser` | root is privileged (on by default) | on by default; `allow.nosuser` leaves root without any capability |
//! | `allow.unprivileged_proc_debug` | users debug their own processes (on by default) | always; turning it off is refused |
//! | `allow.set_hostname`, `allow.mount*`, any other `allow.*` | | refused: it needs `CAP_SYS_ADMIN` or has no equivalent |
//!
//! Turning off an `allow.*` that is off anyway (`allow.nofoo`, `allow.foo=false`) is accepted. `host.hostname`
//! names the container's host. `mount.devfs` is on by default, as the reference's jails mount devfs:
//! `mount.nodevfs` (or `mount.devfs=false`) leaves the container without the daemon's `/dev` (it
//! sees its dataset's own `/dev` directory, on a root without device nodes), as a jail without
//! devfs; such a container cannot have a terminal. `exec.jail_user=USER` runs the process that
//! starts the container as USER (the engine reads it). `linux.seccomp=unconfined` runs the container without the
//! system-call filter (dangerous: it exposes every kernel interface the capabilities do not guard);
//! `linux.seccomp=default` is the filter. Other parameters have no Linux meaning and are ignored
//! (the daemon's log names them).

use caps::Capability;

/// The capabilities every container's root has (Docker's default set minus `CAP_MKNOD` and
/// `CAP_NET_RAW`).
pub const DEFAULT_CAPABILITIES: [Capability; 12] = [
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FOWNER,
    Capability::CAP_FSETID,
    Capability::CAP_KILL,
    Capability::CAP_SETGID,
    Capability::CAP_SETUID,
    Capability::CAP_SETPCAP,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_SYS_CHROOT,
    Capability::CAP_AUDIT_WRITE,
    Capability::CAP_SETFCAP,
];

/// What the jail parameters ask of the Linux runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinuxParams {
    /// `host.hostname`, if given.
    pub hostname: Option<String>,
    /// The capability set of the container's root, sorted.
    pub capabilities: Vec<Capability>,
    /// Whether the system-call filter is installed.
    pub seccomp: bool,
    /// Whether the container gets the daemon's `/dev` (`mount.devfs`, on by default).
    pub devfs: bool,
    /// Parameters without a Linux meaning.
    pub ignored: Vec<String>,
}

/// A boolean jail parameter: `name`, `name=true|1`, `noname`, `name=false|0`. Answers the name
/// without the `no` and the value.
fn boolean<'a>(prefix: &str, param: &'a str) -> Option<Result<(&'a str, bool), String>> {
    let rest = param.strip_prefix(prefix)?;
    let (name, value) = match rest.split_once('=') {
        None => match rest.strip_prefix("no") {
            Some(name) => (name, Some(false)),
            None => (rest, Some(true)),
        },
        Some((name, value)) => (
            name,
            match value.trim_matches('"') {
                "true" | "1" => Some(true),
                "false" | "0" => Some(false),
                _ => None,
            },
        ),
    };
    Some(match value {
        Some(value) => Ok((name, value)),
        None => Err(format!(
            "jail parameter '{param}': {prefix}{name} is a boolean (true, false, 1 or 0)"
        )),
    })
}

/// What `params` ask of the Linux runtime, or why they cannot run on Linux.
pub fn parse(params: &[String]) -> Result<LinuxParams, String> {
    let mut capabilities: Vec<Capability> = DEFAULT_CAPABILITIES.to_vec();
    let mut hostname = None;
    let mut seccomp = true;
    let mut devfs = true;
    let mut ignored = vec![];
    let mut suser = true;
    for param in params {
        if let Some(allow) = boolean("allow.", param) {
            let (name, on) = allow?;
            let capability = match name {
                "raw_sockets" => Some(Capability::CAP_NET_RAW),
                "chflags" => Some(Capability::CAP_LINUX_IMMUTABLE),
                "mlock" => Some(Capability::CAP_IPC_LOCK),
                "reserved_ports" => Some(Capability::CAP_NET_BIND_SERVICE),
                "sysvipc" => None,
                "suser" => {
                    // Root without privileges: no capability at all.
                    suser = on;
                    None
                }
                "unprivileged_proc_debug" if on => None,
                "unprivileged_proc_debug" => {
                    return Err(format!(
                        "jail parameter '{param}' is not available on Linux: processes of a \
                         container may always debug processes of the same user there"
                    ))
                }
                _ if !on => None,
                "set_hostname" => {
                    return Err(format!(
                        "jail parameter '{param}' is not available on Linux: changing the hostname \
                         from inside needs CAP_SYS_ADMIN, which opens the host; set it with \
                         host.hostname=NAME"
                    ))
                }
                _ if name == "mount" || name.starts_with("mount.") => {
                    return Err(format!(
                        "jail parameter '{param}' is not available on Linux: mounting inside a \
                         container needs CAP_SYS_ADMIN, which opens the host; use volumes or mounts \
                         given at create time"
                    ))
                }
                _ => {
                    return Err(format!(
                        "jail parameter '{param}' has no Linux equivalent; on Linux the allow.* \
                         parameters raw_sockets, chflags, mlock, reserved_ports and sysvipc are \
                         supported"
                    ))
                }
            };
            if let Some(capability) = capability {
                capabilities.retain(|c| *c != capability);
                if on {
                    capabilities.push(capability);
                }
            }
            continue;
        }
        if param == "mount.devfs" || param == "mount.nodevfs" || param.starts_with("mount.devfs=") {
            if let Some(on) = boolean("mount.", param) {
                devfs = on?.1;
            }
            continue;
        }
        match param.split_once('=') {
            Some(("host.hostname", value)) => hostname = Some(value.trim_matches('"').to_owned()),
            // Read by the engine: the user that starts the container.
            Some(("exec.jail_user", _)) => {}
            Some(("linux.seccomp", value)) => match value.trim_matches('"') {
                "unconfined" => seccomp = false,
                "default" => seccomp = true,
                other => {
                    return Err(format!(
                        "jail parameter 'linux.seccomp={other}': the value is 'default' or \
                         'unconfined'"
                    ))
                }
            },
            _ if param.starts_with("linux.") => {
                return Err(format!(
                    "unknown jail parameter '{param}': the Linux-only parameter is linux.seccomp"
                ))
            }
            _ => ignored.push(param.clone()),
        }
    }
    if !suser {
        capabilities.clear();
    }
    capabilities.sort_by_key(|c| c.index());
    Ok(LinuxParams {
        hostname,
        capabilities,
        seccomp,
        devfs,
        ignored,
    })
}

/// The capability set as the kernel shows it in `/proc/<pid>/status` (`CapEff` and the like).
pub fn mask(capabilities: &[Capability]) -> u64 {
    capabilities.iter().fold(0, |mask, c| mask | c.bitmask())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(list: &[&str]) -> Result<LinuxParams, String> {
        parse(&list.iter().map(|p| (*p).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn the_default_set_is_dockers_without_mknod_and_net_raw() {
        let default = params(&[]).unwrap();
        assert_eq!(
            format!("{:016x}", mask(&default.capabilities)),
            "00000000a00405fb"
        );
        assert!(default.seccomp);
        assert_eq!(default.hostname, None);
    }

    #[test]
    fn allow_parameters_add_their_capability() {
        let raw = params(&["allow.raw_sockets"]).unwrap();
        assert!(raw.capabilities.contains(&Capability::CAP_NET_RAW));
        for form in [
            "allow.raw_sockets=true",
            "allow.raw_sockets=1",
            "allow.raw_sockets=\"true\"",
        ] {
            assert_eq!(params(&[form]).unwrap(), raw, "{form}");
        }
        assert!(params(&["allow.chflags"])
            .unwrap()
            .capabilities
            .contains(&Capability::CAP_LINUX_IMMUTABLE));
        assert!(params(&["allow.mlock=1"])
            .unwrap()
            .capabilities
            .contains(&Capability::CAP_IPC_LOCK));
    }

    #[test]
    fn turning_off_is_accepted_and_the_last_value_wins() {
        let off = params(&["allow.raw_sockets", "allow.noraw_sockets"]).unwrap();
        assert_eq!(off.capabilities, params(&[]).unwrap().capabilities);
        let no_ports = params(&["allow.reserved_ports=false"]).unwrap();
        assert!(!no_ports
            .capabilities
            .contains(&Capability::CAP_NET_BIND_SERVICE));
        for harmless in [
            "allow.nomount",
            "allow.set_hostname=0",
            "allow.noquotas",
            "allow.sysvipc",
        ] {
            assert!(params(&[harmless]).is_ok(), "{harmless}");
        }
    }

    #[test]
    fn what_linux_cannot_grant_is_refused_with_the_reason() {
        let err = params(&["allow.mount.zfs"]).unwrap_err();
        assert!(err.contains("CAP_SYS_ADMIN"), "{err}");
        let err = params(&["allow.set_hostname=true"]).unwrap_err();
        assert!(err.contains("host.hostname"), "{err}");
        let err = params(&["allow.vmm"]).unwrap_err();
        assert!(err.contains("no Linux equivalent"), "{err}");
        let err = params(&["allow.raw_sockets=maybe"]).unwrap_err();
        assert!(err.contains("boolean"), "{err}");
        let err = params(&["linux.seccomp=off"]).unwrap_err();
        assert!(err.contains("unconfined"), "{err}");
        assert!(params(&["linux.apparmor=x"]).is_err());
    }

    #[test]
    fn defaults_that_are_on_on_freebsd_are_on_here_too() {
        let default = params(&[]).unwrap();
        for on in [
            "allow.suser",
            "allow.unprivileged_proc_debug",
            "allow.reserved_ports",
        ] {
            assert_eq!(params(&[on]).unwrap(), default, "{on}");
        }
        assert!(params(&["allow.nosuser"]).unwrap().capabilities.is_empty());
        assert!(params(&["allow.nounprivileged_proc_debug"]).is_err());
    }

    #[test]
    fn hostname_seccomp_and_the_rest() {
        let parsed = params(&[
            "host.hostname=web",
            "linux.seccomp=unconfined",
            "mount.devfs=true",
            "exec.jail_user=www",
            "exec.clean",
        ])
        .unwrap();
        assert_eq!(parsed.hostname.as_deref(), Some("web"));
        assert!(!parsed.seccomp);
        assert!(parsed.devfs);
        assert_eq!(parsed.ignored, vec!["exec.clean".to_owned()]);
    }

    #[test]
    fn devfs_is_on_unless_turned_off_and_the_last_value_wins() {
        assert!(params(&[]).unwrap().devfs);
        for off in ["mount.nodevfs", "mount.devfs=false", "mount.devfs=0"] {
            assert!(!params(&[off]).unwrap().devfs, "{off}");
        }
        assert!(params(&["mount.nodevfs", "mount.devfs"]).unwrap().devfs);
        // A ruleset is no switch (the reference's prefix match took it for one).
        let ruleset = params(&["mount.devfs_ruleset=4"]).unwrap();
        assert!(ruleset.devfs);
        assert_eq!(ruleset.ignored, vec!["mount.devfs_ruleset=4".to_owned()]);
        assert!(params(&["mount.devfs=maybe"]).is_err());
    }
}
