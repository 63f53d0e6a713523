//! Host set-up command lines: the kernel modules kleened needs ([`MODULES`]), kldstat(8) and
//! kldload(8) for them, sysrc(8) for loader.conf and rc.conf, and sysctl(8). Built here for
//! `kleened init` ([`crate::init`]) and `kleened doctor` ([`crate::doctor::freebsd`]), pinned by the
//! goldens of `kleened/tests/freebsd_commands.rs`.

use kleene_runner::CommandSpec;

/// Kernel modules kleened uses: ZFS, the pf firewall and its log device, bridges and epairs.
pub const MODULES: [&str; 5] = ["zfs", "pf", "pflog", "if_bridge", "if_epair"];

/// kldstat(8): `-q` quiet, `-m` a module; the exit status says whether it is loaded.
pub fn kldstat(module: &str) -> CommandSpec {
    CommandSpec::new("/sbin/kldstat").args(["-q", "-m", module].map(str::to_owned))
}

/// kldload(8): load a module; `-n`: not an error when it is loaded already.
pub fn kldload(module: &str) -> CommandSpec {
    CommandSpec::new("/sbin/kldload").args(["-n", module].map(str::to_owned))
}

/// sysrc(8): `-n` value only, `-f` the file.
pub fn sysrc_get(file: &str, name: &str) -> CommandSpec {
    CommandSpec::new("/usr/sbin/sysrc").args(["-n", "-f", file, name].map(str::to_owned))
}

/// sysrc(8): set `name=value` in the file.
pub fn sysrc_set(file: &str, name: &str, value: &str) -> CommandSpec {
    CommandSpec::new("/usr/sbin/sysrc").args([
        "-f".to_owned(),
        file.to_owned(),
        format!("{name}={value}"),
    ])
}

/// sysctl(8): the value of a variable only.
pub fn sysctl_get(name: &str) -> CommandSpec {
    CommandSpec::new("/sbin/sysctl").args(["-n", name].map(str::to_owned))
}
