//! A hostile container, end to end: each test attacks the host from inside a container started
//! through `klee`, expects the refusal, and then checks through the host's own view (files,
//! `/proc/sys`, `ip`, mounts, cgroups) that nothing changed. Also: the documented capability set
//! and filter, the opt-ins (`-J allow.raw_sockets`, `-J linux.seccomp=unconfined`), and ordinary
//! workloads that must keep working inside that confinement.
//!
//! The attacks use BusyBox's applets and the probe (`tests/probe/probe.c`, see
//! `kleene_tests::probe`) for system calls BusyBox does not make. On FreeBSD the jail defaults
//! refuse the same attacks; the checks that only hold for one runtime are written per OS.

// Test code: a failed setup step should panic where it happens.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

#[cfg(target_os = "linux")]
use kleene_tests::base::base_image;
use kleene_tests::clients::{describe, stdout, text};
#[cfg(target_os = "linux")]
use kleene_tests::clients::{ok, ok_for};
use kleene_tests::daemon::Daemon;
#[cfg(target_os = "linux")]
use kleene_tests::daemon::{CgroupHierarchy, DaemonOptions};
#[cfg(target_os = "linux")]
use kleene_tests::host::{cgroup_mount, cgroup_v1_pids_mount};
use kleene_tests::pool::{root_mountpoint, test_pool, zfs_tree};
use kleene_tests::probe::PROBE;
use kleene_tests::require;
use kleene_tests::skip::host_tests;

/// `klee run --rm [options] probe /bin/sh -c script`.
fn sh(daemon: &Daemon, options: &[&str], script: &str) -> Output {
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(options);
    args.extend(["probe", "/bin/sh", "-c", script]);
    daemon.klee(&args)
}

/// Runs the probe's `attempt` in a container and asserts the kernel refused it with `errno`.
fn assert_refused(daemon: &Daemon, options: &[&str], attempt: &[&str], errno: &str) {
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(options);
    args.extend(["probe", PROBE]);
    args.extend_from_slice(attempt);
    let out = daemon.klee(&args);
    assert!(
        out.status.success() && text(&out).contains(&format!("refused {errno}")),
        "{attempt:?} was not refused with {errno}: {}",
        describe(&out)
    );
}

/// The host's addresses, as `ip -o addr` prints them.
#[cfg(target_os = "linux")]
fn host_addresses() -> String {
    ok(&Command::new("ip").args(["-o", "addr"]).output().unwrap())
}

/// The host's mount table (mount points and file system types).
/// The host's mount points, but those of other test daemons' roots (a test before this one may
/// still be unmounting its datasets, or tests of another checkout may share the pool) and the
/// container datasets of this one: what this daemon's containers do shows inside their datasets or
/// elsewhere on the host.
fn host_mounts(daemon: &Daemon) -> Vec<String> {
    #[cfg(target_os = "linux")]
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    #[cfg(target_os = "freebsd")]
    let text = String::from_utf8_lossy(
        &Command::new("/sbin/mount")
            .arg("-p")
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned();
    let mut mounts: Vec<String> = text
        .lines()
        .map(|line| {
            line.split_whitespace()
                .skip(if cfg!(target_os = "linux") { 4 } else { 1 })
                .take(1)
                .collect::<String>()
        })
        .collect();
    let own = root_mountpoint(&daemon.root.name);
    let pool = root_mountpoint(&test_pool());
    mounts.retain(|m| {
        let other_root = m
            .strip_prefix(&format!("{pool}/"))
            .is_some_and(|rest| rest.starts_with("kleene-e2e-"));
        // A container's own dataset comes and goes with it (removed ones are destroyed in the
        // background); a mount inside one, or anywhere else, is compared.
        let container_dataset = m
            .strip_prefix(&format!("{own}/container/"))
            .is_some_and(|id| !id.contains('/'));
        !container_dataset && (!other_root || m == &own || m.starts_with(&format!("{own}/")))
    });
    mounts.sort();
    mounts
}

#[cfg(target_os = "linux")]
#[test]
fn processes_have_the_documented_capabilities_and_the_filter() {
    require!(host_tests());
    let daemon = Daemon::with_probe();
    // Docker's default set minus CAP_MKNOD and CAP_NET_RAW, for the first process and for exec.
    daemon.run_detached("victim", &["probe", "sleep", "60"]);
    for args in [
        vec!["run", "--rm", "probe", "cat", "/proc/self/status"],
        vec!["exec", "victim", "cat", "/proc/self/status"],
    ] {
        let out = daemon.klee(&args);
        ok(&out);
        let status = text(&out);
        for line in [
            "CapInh:\t0000000000000000",
            "CapPrm:\t00000000a00405fb",
            "CapEff:\t00000000a00405fb",
            "CapBnd:\t00000000a00405fb",
            "CapAmb:\t0000000000000000",
            "Seccomp:\t2",
            "NoNewPrivs:\t0",
        ] {
            assert!(status.contains(line), "{args:?}: no '{line}' in:\n{status}");
        }
    }
    // An unprivileged user has no capability at all, and the same bounding set.
    let out = daemon.klee(&["exec", "-u", "nobody", "victim", "cat", "/proc/self/status"]);
    let status = text(&out);
    assert!(status.contains("CapEff:\t0000000000000000"), "{status}");
    assert!(status.contains("CapBnd:\t00000000a00405fb"), "{status}");
    // PID 1 is named plainly, not by the daemon's path, and cannot be traced.
    let out = daemon.klee(&["exec", "victim", "cat", "/proc/1/cmdline"]);
    assert!(
        text(&out).starts_with("kleene-init\0"),
        "{}",
        describe(&out)
    );
    let out = daemon.klee(&["exec", "victim", PROBE, "ptrace-init"]);
    assert!(text(&out).contains("refused EPERM"), "{}", describe(&out));
    daemon.klee_ok(&["rmc", "-f", "victim"]);
}

#[test]
fn a_host_disk_cannot_be_reached_through_a_device_node() {
    require!(host_tests());
    let daemon = Daemon::with_probe();
    let marker = format!("kleene-escape-{}", std::process::id());
    // The device of the host's root file system.
    #[cfg(target_os = "linux")]
    let (major, minor) = {
        use std::os::unix::fs::MetadataExt as _;
        let dev = std::fs::metadata("/").unwrap().dev();
        (nix_major(dev), nix_minor(dev))
    };
    #[cfg(target_os = "freebsd")]
    let (major, minor) = (0u64, 0u64);
    let script = format!(
        "mknod /tmp/hostdisk b {major} {minor}; echo mknod=$?; mkdir -p /mnt/h; \
         mount /tmp/hostdisk /mnt/h; echo mount=$?; echo pwned > /mnt/h/{marker}; \
         {PROBE} mknod"
    );
    for driver in ["host", "vnet"] {
        let mounts = host_mounts(&daemon);
        let out = sh(&daemon, &["-l", driver], &script);
        let output = text(&out);
        assert!(
            output.contains("mknod=1") && output.contains("mount=1"),
            "{driver}: {output}"
        );
        assert!(output.contains("refused EPERM"), "{driver}: {output}");
        assert!(
            !std::path::Path::new("/").join(&marker).exists(),
            "{driver}: the container wrote /{marker} on the host"
        );
        assert_eq!(
            host_mounts(&daemon),
            mounts,
            "{driver}: the host's mounts changed"
        );
    }
}

#[cfg(target_os = "linux")]
fn nix_major(dev: u64) -> u64 {
    ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0x0000_0fff)
}

#[cfg(target_os = "linux")]
fn nix_minor(dev: u64) -> u64 {
    ((dev >> 12) & 0xffff_ff00) | (dev & 0x0000_00ff)
}

#[cfg(target_os = "linux")]
#[test]
fn a_device_node_in_the_image_opens_nothing() {
    require!(host_tests());
    let daemon = Daemon::with_probe();
    let id = daemon
        .klee_ok(&[
            "create",
            "--name",
            "victim",
            "probe",
            "/bin/sh",
            "-c",
            "head -c 512 /hostdisk | wc -c",
        ])
        .trim()
        .to_owned();
    // As if the image had shipped it: a node for the host's root disk in the container's root.
    use std::os::unix::fs::MetadataExt as _;
    let dev = std::fs::metadata("/").unwrap().dev();
    let node = format!(
        "{}/container/{id}/hostdisk",
        root_mountpoint(&daemon.root.name)
    );
    let made = Command::new("mknod")
        .args([
            &node,
            "b",
            &nix_major(dev).to_string(),
            &nix_minor(dev).to_string(),
        ])
        .status()
        .unwrap();
    assert!(made.success(), "mknod {node} on the host");
    let out = daemon.klee(&["start", "victim"]);
    let output = text(&out);
    assert!(
        output.contains("Permission denied") && !output.contains("512"),
        "the container read the host's disk: {}",
        describe(&out)
    );
    daemon.klee_ok(&["rmc", "victim"]);
}

#[cfg(target_os = "linux")]
#[test]
fn kernel_settings_and_sysfs_are_read_only() {
    require!(host_tests());
    let daemon = Daemon::with_probe();
    let swappiness = std::fs::read_to_string("/proc/sys/vm/swappiness").unwrap();
    let changed = if swappiness.trim() == "61" {
        "62"
    } else {
        "61"
    };
    let script = format!(
        "echo {changed} > /proc/sys/vm/swappiness; echo sysctl=$?; \
         mount -o remount,rw /sys; echo sys=$?; \
         touch /sys/kernel/kleene 2>/dev/null; echo systouch=$?; \
         echo h > /proc/sysrq-trigger 2>/dev/null; echo sysrq=$?; \
         echo kcore=$(cat /proc/kcore 2>/dev/null | head -c 64 | wc -c); \
         echo keys=$(cat /proc/keys 2>/dev/null | wc -c); \
         echo timers=$(cat /proc/timer_list 2>/dev/null | wc -c); \
         echo firmware=$(ls /sys/firmware | wc -l)"
    );
    for driver in ["host", "vnet"] {
        let out = sh(&daemon, &["-l", driver], &script);
        let output = text(&out);
        for expected in [
            "sysctl=1",
            "sys=1",
            "systouch=1",
            "sysrq=1",
            "kcore=0",
            "keys=0",
            "timers=0",
            "firmware=0",
        ] {
            assert!(
                output.contains(expected),
                "{driver}: no {expected} in: {output}"
            );
        }
        assert_eq!(
            std::fs::read_to_string("/proc/sys/vm/swappiness").unwrap(),
            swappiness,
            "{driver}: the host's swappiness changed"
        );
    }
}

#[cfg(target_os = "linux")]
#[test]
fn cgroup_file_systems_cannot_be_mounted() {
    require!(host_tests());
    let daemon = Daemon::with_probe();
    let mounts = host_mounts(&daemon);
    let out = sh(
        &daemon,
        &[],
        "mkdir /cg; mount -t cgroup2 none /cg; echo v2=$?; \
         mount -t cgroup -o pids none /cg; echo v1=$?; \
         mount -t cgroup -o memory none /cg; echo memory=$?; ls /cg | wc -l",
    );
    let output = text(&out);
    for expected in ["v2=1", "v1=1", "memory=1"] {
        assert!(output.contains(expected), "{expected}: {output}");
    }
    assert!(
        output.trim_end().ends_with('0'),
        "/cg is not empty: {output}"
    );
    assert_eq!(host_mounts(&daemon), mounts);
}

/// The hierarchies this host offers the runtime: v2 where mounted (the default) and v1 `pids`.
#[cfg(target_os = "linux")]
fn hierarchies() -> Vec<CgroupHierarchy> {
    let mut found = vec![CgroupHierarchy::Auto];
    if cgroup_v1_pids_mount().is_some() && cgroup_mount() != cgroup_v1_pids_mount() {
        found.push(CgroupHierarchy::V1);
    } else {
        println!("this host has no separate v1 'pids' hierarchy: only the default one is tested");
    }
    found
}

#[cfg(target_os = "linux")]
#[test]
fn a_process_in_a_sub_cgroup_is_still_tracked_and_stopped() {
    require!(host_tests());
    for hierarchy in hierarchies() {
        let daemon = Daemon::start_with(DaemonOptions {
            cgroup_hierarchy: hierarchy,
            ..Default::default()
        });
        base_image(&daemon);
        let id = daemon.run_detached(
            "victim",
            &["base", "/bin/sh", "-c", "sleep 1000 & sleep 1000"],
        );
        let cgroup = daemon.cgroup_parent().unwrap().join(&id);
        // What a container with cgroupfs access would do to hide: move every process into a
        // cgroup below its own. The host does it here (a confined container cannot mount cgroupfs).
        let hidden = cgroup.join("hidden");
        std::fs::create_dir(&hidden).unwrap();
        let pids = std::fs::read_to_string(cgroup.join("cgroup.procs")).unwrap();
        assert!(
            !pids.trim().is_empty(),
            "{hierarchy:?}: no process in {}",
            cgroup.display()
        );
        for pid in pids.lines() {
            std::fs::write(hidden.join("cgroup.procs"), pid).unwrap();
        }
        assert!(std::fs::read_to_string(cgroup.join("cgroup.procs"))
            .unwrap()
            .trim()
            .is_empty());
        let listed = daemon.klee_list(&["--json", "lsc"]);
        assert_eq!(
            listed.len(),
            1,
            "{hierarchy:?}: not listed as running: {listed:?}"
        );
        let out = daemon.klee(&["exec", "victim", "echo", "still here"]);
        assert!(
            text(&out).contains("still here"),
            "{hierarchy:?}: {}",
            describe(&out)
        );
        ok_for(
            format_args!("{hierarchy:?}: stop"),
            &daemon.klee(&["stop", "victim"]),
        );
        assert!(
            !cgroup.exists(),
            "{hierarchy:?}: {} is left",
            cgroup.display()
        );
        let left: Vec<String> = pids
            .lines()
            .filter(|pid| std::path::Path::new("/proc").join(pid.trim()).exists())
            .map(str::to_owned)
            .collect();
        assert!(
            left.is_empty(),
            "{hierarchy:?}: processes {left:?} survived the stop"
        );
        ok_for(
            format_args!("{hierarchy:?}: rmc"),
            &daemon.klee(&["rmc", "victim"]),
        );
    }
}

#[cfg(target_os = "linux")]
#[test]
fn the_host_network_cannot_be_changed_from_a_host_network_container() {
    require!(host_tests());
    let daemon = Daemon::with_probe();
    let before = host_addresses();
    let out = sh(
        &daemon,
        &["-l", "host"],
        "ip addr add 127.0.0.77/8 dev lo; echo addr=$?; \
         ip link add kt-probe type dummy; echo link=$?; \
         ip route add 203.0.113.0/24 dev lo; echo route=$?; \
         ip link set lo mtu 1280; echo mtu=$?",
    );
    let output = text(&out);
    for attempt in ["addr", "link", "route", "mtu"] {
        assert!(
            output.contains(&format!("{attempt}=")),
            "{attempt} did not run: {output}"
        );
        assert!(
            !output.contains(&format!("{attempt}=0")),
            "{attempt} succeeded: {output}"
        );
    }
    assert_eq!(host_addresses(), before, "the host's addresses changed");
    let links = Command::new("ip")
        .args(["link", "show", "kt-probe"])
        .output()
        .unwrap();
    assert!(!links.status.success(), "kt-probe exists on the host");
}

#[cfg(target_os = "linux")]
#[test]
fn namespaces_cannot_be_made_or_joined() {
    require!(host_tests());
    let daemon = Daemon::with_probe();
    let out = sh(
        &daemon,
        &[],
        "unshare -U true; echo user=$?; unshare -m true; echo mount=$?; \
         unshare -n true; echo net=$?; nsenter -t 1 -m true; echo nsenter=$?",
    );
    let output = text(&out);
    for expected in ["user=1", "mount=1", "net=1", "nsenter=1"] {
        assert!(output.contains(expected), "{expected}: {output}");
    }
    for kind in ["user", "mount", "net", "pid", "cgroup"] {
        assert_refused(&daemon, &[], &["unshare", kind], "EPERM");
    }
    assert_refused(&daemon, &[], &["setns"], "EPERM");
    // clone3 answers "not implemented", so C libraries use clone(2), whose flags are checked.
    let out = daemon.klee(&["run", "--rm", "probe", PROBE, "clone3"]);
    assert!(text(&out).contains("clone3: ENOSYS"), "{}", describe(&out));
}

#[cfg(target_os = "linux")]
#[test]
fn kernel_interfaces_are_refused() {
    require!(host_tests());
    let daemon = Daemon::with_probe();
    let attempts = [
        "init-module",
        "reboot",
        "keyctl",
        "bpf",
        "perf",
        "settime",
        "swapon",
        "open-by-handle",
    ];
    let script: String = attempts.iter().map(|a| format!("{PROBE} {a}; ")).collect();
    for driver in ["host", "vnet"] {
        let out = sh(&daemon, &["-l", driver], &script);
        let output = text(&out);
        for line in output.lines() {
            assert!(line.contains("refused EPERM"), "{driver}: {line}\n{output}");
        }
        assert_eq!(output.lines().count(), attempts.len(), "{driver}: {output}");
    }
}

#[test]
fn raw_sockets_need_allow_raw_sockets() {
    require!(host_tests());
    let daemon = Daemon::with_probe();
    assert_refused(&daemon, &[], &["raw-socket"], "EPERM");
    let out = daemon.klee(&[
        "run",
        "--rm",
        "-J",
        "allow.raw_sockets",
        "probe",
        PROBE,
        "raw-socket",
    ]);
    assert!(
        text(&out).contains("raw socket: ALLOWED"),
        "{}",
        describe(&out)
    );
    #[cfg(target_os = "linux")]
    {
        let out = daemon.klee(&[
            "run",
            "--rm",
            "-J",
            "allow.raw_sockets=true",
            "probe",
            "grep",
            "CapEff",
            "/proc/self/status",
        ]);
        assert!(
            text(&out).contains("00000000a00425fb"),
            "CAP_NET_RAW added: {}",
            describe(&out)
        );
    }
}

#[test]
fn setuid_files_of_a_container_are_no_way_up_on_the_host() {
    require!(host_tests());
    let daemon = Daemon::with_probe();
    daemon.klee_ok(&[
        "run",
        "--name",
        "victim",
        "probe",
        "/bin/sh",
        "-c",
        "cp /bin/busybox /suid && chmod 4755 /suid && ls -l /suid",
    ]);
    let id = daemon.klee_json(&["--json", "isc", "victim"])["container"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let root = root_mountpoint(&daemon.root.name);
    let suid = format!("{root}/container/{id}/suid");
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&suid).unwrap().permissions().mode();
    assert_eq!(mode & 0o4000, 0o4000, "the file is setuid on the host side");
    for parent in ["container", "image", "volumes"] {
        let mode = std::fs::metadata(format!("{root}/{parent}"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o777,
            0o700,
            "{root}/{parent} is mode {:o}",
            mode & 0o777
        );
    }
    // An unprivileged user of the host tries to run it.
    #[cfg(target_os = "linux")]
    // (setpriv keeps its capabilities up to its own exec, so the attempt is made by a shell that
    // has none, as a logged-in user's would.)
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "/bin/sh",
            "-c",
        ])
        .arg(format!("grep CapEff /proc/self/status; exec {suid} id -u"))
        .output()
        .unwrap();
    #[cfg(target_os = "freebsd")]
    let out = Command::new("/usr/bin/su")
        .args(["-m", "nobody", "-c", &format!("{suid} id -u")])
        .output()
        .unwrap();
    assert!(
        !out.status.success()
            && text(&out).contains("ermission denied")
            && !text(&out).contains("\n0\n"),
        "nobody ran the container's setuid file: {}",
        describe(&out)
    );
    #[cfg(target_os = "linux")]
    assert!(
        text(&out).contains("CapEff:\t0000000000000000"),
        "{}",
        describe(&out)
    );
    daemon.klee_ok(&["rmc", "victim"]);
}

#[cfg(target_os = "linux")]
#[test]
fn ordinary_workloads_still_work() {
    require!(host_tests());
    let daemon = Daemon::with_probe();
    // A web server answering on the container's loopback, files changing owner, su to a user.
    let out = sh(
        &daemon,
        &["-l", "vnet"],
        "mkdir /www && echo served > /www/index.html && httpd -p 127.0.0.1:80 -h /www && \
         wget -q -O - http://127.0.0.1/ && touch /f && chown nobody:nogroup /f && ls -ln /f && \
         su -s /bin/sh nobody -c id",
    );
    ok(&out);
    let output = text(&out);
    assert!(output.contains("served"), "{output}");
    assert!(output.contains(" 65534 "), "chown: {output}");
    assert!(output.contains("uid=65534(nobody)"), "su: {output}");
    // ping through an ICMP datagram socket in the container's own network namespace, as root and
    // as nobody, without CAP_NET_RAW.
    let out = sh(
        &daemon,
        &["-l", "vnet"],
        &format!("{PROBE} ping 127.0.0.1 && su -s /bin/sh nobody -c '{PROBE} ping 127.0.0.1'"),
    );
    assert!(
        out.status.success() && text(&out).matches("reply from 127.0.0.1").count() == 2,
        "{}",
        describe(&out)
    );
}

#[test]
fn parameters_a_platform_cannot_honour_are_refused_at_create() {
    require!(host_tests());
    let daemon = Daemon::with_probe();
    let before = zfs_tree(&daemon.root.name);
    #[cfg(target_os = "linux")]
    let refused = [
        ("allow.mount", "CAP_SYS_ADMIN"),
        ("allow.set_hostname=1", "host.hostname"),
        ("allow.vmm", "no Linux equivalent"),
        ("linux.seccomp=off", "unconfined"),
    ];
    #[cfg(target_os = "freebsd")]
    let refused = [
        ("command=/bin/sh", "as a command"),
        ("path=/", "kleened sets it"),
        ("linux.seccomp=unconfined", "Linux runtime only"),
    ];
    for (param, reason) in refused {
        let out = daemon.klee(&["create", "-J", param, "probe", "true"]);
        assert!(
            !out.status.success() && text(&out).contains(reason),
            "{param}: {}",
            describe(&out)
        );
    }
    assert_eq!(zfs_tree(&daemon.root.name), before, "datasets left");
    let out = daemon.klee(&["--json", "lsc", "-a"]);
    assert_eq!(stdout(&out).trim(), "[]");
}

#[cfg(target_os = "linux")]
#[test]
fn the_system_call_filter_can_be_turned_off_per_container() {
    require!(host_tests());
    let daemon = Daemon::with_probe();
    let out = daemon.klee(&[
        "run",
        "--rm",
        "-J",
        "linux.seccomp=unconfined",
        "probe",
        "/bin/sh",
        "-c",
        &format!("grep -E '^(Seccomp|CapEff):' /proc/self/status; {PROBE} keyctl"),
    ]);
    let output = text(&out);
    assert!(output.contains("Seccomp:\t0"), "{output}");
    assert!(
        output.contains("CapEff:\t00000000a00405fb"),
        "the capabilities stay reduced: {output}"
    );
    // keyctl needs no capability: without the filter it reaches the kernel.
    assert!(output.contains("keyctl: ALLOWED"), "{output}");
}
