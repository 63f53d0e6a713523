//! Resource limits end to end on the Linux runtime: a container with `--pids-limit` cannot fork
//! past it, one with `--memory` that grows past it is killed (exit code 137) and inspect says so,
//! `--cpus` sets the container's CPU quota, `update` changes the limits of a running container,
//! bad values are refused naming the field, and the limit cgroups go with the container.

// Test code: a failed setup step should panic where it happens.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Duration;

use kleene_tests::clients::{describe, stdout, text};
use kleene_tests::daemon::Daemon;
use kleene_tests::host::host_pid_of;
use kleene_tests::require;
use kleene_tests::skip::host_tests;
use kleene_tests::wait::eventually;

fn inspect(daemon: &Daemon, name: &str) -> serde_json::Value {
    daemon.klee_json(&["container", "inspect", name])
}

/// The directory of the cgroup of `pid` that has `controller`: its v1 hierarchy when one is
/// mounted with it, else the unified hierarchy.
fn cgroup_dir(pid: u32, controller: &str) -> PathBuf {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        if controllers.split(',').any(|c| c == controller) {
            let mount = std::fs::read_to_string("/proc/self/mountinfo")
                .unwrap()
                .lines()
                .find_map(|l| {
                    let (left, right) = l.split_once(" - ")?;
                    let mut fields = right.split_whitespace();
                    let (fstype, _, options) = (fields.next()?, fields.next()?, fields.next()?);
                    (fstype == "cgroup" && options.split(',').any(|o| o == controller))
                        .then(|| PathBuf::from(left.split_whitespace().nth(4).unwrap()))
                })
                .unwrap();
            return mount.join(path.trim_start_matches('/'));
        }
    }
    let path = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .expect("a v2 cgroup");
    PathBuf::from("/sys/fs/cgroup/unified").join(path.trim_start_matches('/'))
}

/// The memory limit in bytes of the cgroup directory, in v1 or v2 terms.
fn memory_limit(dir: &std::path::Path) -> String {
    std::fs::read_to_string(dir.join("memory.limit_in_bytes"))
        .or_else(|_| std::fs::read_to_string(dir.join("memory.max")))
        .unwrap()
        .trim()
        .to_owned()
}

#[test]
fn a_container_cannot_fork_past_its_pids_limit_nor_grow_past_its_memory() {
    require!(host_tests());
    let daemon = Daemon::with_base();

    // Thirty background sleeps asked for, at most ten processes allowed: the shell prints how
    // many it started, and its first fork that fails ends it (sh: can't fork).
    let out = daemon.klee(&[
        "run",
        "--rm",
        "--pids-limit",
        "10",
        "base",
        "/bin/sh",
        "-c",
        "i=0; while [ $i -lt 30 ]; do sleep 5 & i=$((i+1)); echo $i; done",
    ]);
    let started = stdout(&out)
        .lines()
        .filter_map(|l| l.trim().parse::<u32>().ok())
        .max()
        .unwrap_or(0);
    assert!(
        (1..10).contains(&started) && !out.status.success(),
        "{started} processes started with a limit of 10: {}",
        describe(&out)
    );
    assert!(describe(&out).contains("can't fork"), "{}", describe(&out));

    // 64 MiB asked for in one buffer with a limit of 16 MiB (this host has no swap; with swap,
    // memory and swap together are limited): the kernel kills it.
    let out = daemon.klee(&[
        "run",
        "--name",
        "hungry",
        "--memory",
        "16m",
        "base",
        "/bin/dd",
        "if=/dev/zero",
        "of=/dev/null",
        "bs=64M",
        "count=1",
    ]);
    assert_eq!(out.status.code(), Some(137), "{}", describe(&out));
    let container = inspect(&daemon, "hungry");
    let record = &container["container"];
    assert_eq!(record["memory"], 16 << 20, "{container}");
    assert_eq!(record["last_exit"]["reason"], "oom_killed", "{container}");
    assert_eq!(record["last_exit"]["exit_code"], 137, "{container}");
    // Without the limit the same command ends well, and inspect says it exited.
    daemon.klee_ok(&["container", "update", "--memory", "0", "hungry"]);
    let out = daemon.klee(&["container", "start", "hungry"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let container = inspect(&daemon, "hungry");
    assert_eq!(container["container"]["memory"], serde_json::Value::Null);
    assert_eq!(
        container["container"]["last_exit"]["reason"], "exited",
        "{container}"
    );
    daemon.klee_ok(&["rm", "hungry"]);
}

#[test]
fn cpu_and_memory_limits_are_set_changed_while_running_and_removed_with_the_container() {
    require!(host_tests());
    let daemon = Daemon::with_base();
    daemon.run_detached(
        "limited",
        &[
            "--cpus",
            "0.25",
            "--memory",
            "32m",
            "base",
            "/bin/sleep",
            "4711",
        ],
    );
    let pid = host_pid_of("/bin/sleep\x004711\x00");
    let cpu = cgroup_dir(pid, "cpu");
    let memory = cgroup_dir(pid, "memory");
    let quota = std::fs::read_to_string(cpu.join("cpu.cfs_quota_us"))
        .map(|q| format!("{} {}", q.trim(), 100000))
        .or_else(|_| std::fs::read_to_string(cpu.join("cpu.max")).map(|m| m.trim().to_owned()))
        .unwrap();
    let period: u64 = std::fs::read_to_string(cpu.join("cpu.cfs_period_us"))
        .map(|p| p.trim().parse().unwrap())
        .unwrap_or(100000);
    let quota_us: u64 = quota.split_whitespace().next().unwrap().parse().unwrap();
    assert_eq!(
        quota_us * 100 / period,
        25,
        "quota {quota}, period {period}"
    );
    assert_eq!(memory_limit(&memory), (32u64 << 20).to_string());

    // Changed on the running container at once; refused values change nothing.
    daemon.klee_ok(&["container", "update", "--memory", "48m", "limited"]);
    assert_eq!(memory_limit(&memory), (48u64 << 20).to_string());
    for (flag, value, field) in [
        ("--memory", "1k", "memory"),
        ("--memory", "lots", "memory"),
        ("--pids-limit", "-3", "pids_limit"),
        ("--cpus", "0.001", "cpus"),
    ] {
        let out = daemon.klee(&["container", "update", &format!("{flag}={value}"), "limited"]);
        assert!(!out.status.success(), "{flag} {value}: {}", describe(&out));
        let said = text(&out);
        assert!(said.contains(field), "{flag} {value}: {said}");
    }
    assert_eq!(memory_limit(&memory), (48u64 << 20).to_string());
    let record = inspect(&daemon, "limited");
    assert_eq!(record["container"]["memory"], 48 << 20, "{record}");
    assert_eq!(record["container"]["cpus"], 0.25, "{record}");

    // Refused at create as well, and nothing is made.
    let out = daemon.klee(&["create", "--name", "tiny", "--memory", "5m", "base"]);
    assert!(!out.status.success(), "{}", describe(&out));
    let out = daemon.klee(&["container", "inspect", "tiny"]);
    assert!(!out.status.success(), "{}", describe(&out));

    daemon.klee_ok(&["rm", "-f", "limited"]);
    assert!(
        eventually(Duration::from_secs(20), || !cpu.exists()
            && !memory.exists()),
        "the container's cgroups stay: {} {}",
        cpu.display(),
        memory.display()
    );
}
