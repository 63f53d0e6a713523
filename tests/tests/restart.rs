//! Restart policies end to end: `on-failure:3` restarts a failing container exactly three times
//! with growing waits, and not one that succeeds; `always` brings a container back after its
//! process is killed and after a daemon restart, and `klee stop` ends it for good, also across a
//! daemon restart.

// Test code: a failed setup step should panic where it happens.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use kleene_tests::clients::{describe, python, python_klee, python_ok_for};
use kleene_tests::daemon::Daemon;
use kleene_tests::host::host_pid_of;
use kleene_tests::require;
use kleene_tests::skip::host_tests;
use kleene_tests::wait::eventually;

fn inspect(daemon: &Daemon, name: &str) -> serde_json::Value {
    daemon.klee_json(&["container", "inspect", name])["container"].clone()
}

/// Waits until `check` holds for the container's record.
fn wait_for(daemon: &Daemon, name: &str, what: &str, check: impl Fn(&serde_json::Value) -> bool) {
    let waited = eventually(Duration::from_secs(30), || {
        let record = inspect(daemon, name);
        if check(&record) {
            Ok(())
        } else {
            Err(record)
        }
    });
    if let Err(record) = waited {
        panic!("{name}: never {what}: {record}\n{}", daemon.log());
    }
}

/// The times (microseconds into the day, growing across midnight) of the lines `klee logs -t`
/// shows, from their RFC 3339 stamps (`2026-12-01T18:40:12.123456Z`).
fn log_times(daemon: &Daemon, name: &str) -> Vec<i128> {
    let mut times: Vec<i128> = vec![];
    for line in daemon.klee_ok(&["logs", "-t", name]).lines() {
        let stamp = line.split_once(' ').expect("a timestamp").0;
        let clock = stamp
            .split_once('T')
            .and_then(|(_, c)| c.strip_suffix('Z'))
            .unwrap_or_else(|| panic!("not RFC 3339 UTC: {stamp}"));
        let parts: Vec<f64> = clock.split(':').map(|p| p.parse().unwrap()).collect();
        let mut micros = ((parts[0] * 3600.0 + parts[1] * 60.0 + parts[2]) * 1e6) as i128;
        if let Some(last) = times.last() {
            if micros < *last {
                micros += 86_400_000_000;
            }
        }
        times.push(micros);
    }
    times
}

#[test]
fn on_failure_restarts_a_failing_container_a_bounded_number_of_times() {
    require!(host_tests());
    let daemon = Daemon::with_base();
    daemon.run_detached(
        "failing",
        &[
            "--restart",
            "on-failure:3",
            "base",
            "/bin/sh",
            "-c",
            "echo run; exit 3",
        ],
    );
    wait_for(&daemon, "failing", "restarted three times", |c| {
        c["restart_count"] == 3 && c["running"] == false && c["last_exit"]["exit_code"] == 3
    });
    // And no more: the policy is done.
    std::thread::sleep(Duration::from_millis(1500));
    let record = inspect(&daemon, "failing");
    assert_eq!(record["restart_count"], 3, "{record}");
    // The reference's field keeps its two values (this one is started by the daemon); the
    // policy itself is `restart`.
    assert_eq!(record["restart_policy"], "on-startup", "{record}");
    assert_eq!(record["restart"], "on-failure", "{record}");
    assert_eq!(record["restart_max_retries"], 3, "{record}");
    let times = log_times(&daemon, "failing");
    assert_eq!(times.len(), 4, "one line per run: {times:?}");
    // The waits between runs are at least 100, 200 and 400 ms: they double.
    for (k, pair) in times.windows(2).enumerate() {
        let gap_ms = (pair[1] - pair[0]) / 1000;
        assert!(gap_ms >= 100 << k, "wait {k} was {gap_ms} ms: {times:?}");
    }

    // A client's start counts from zero again: four more runs.
    daemon.klee_ok(&["container", "start", "-d", "failing"]);
    assert!(
        eventually(Duration::from_secs(30), || {
            log_times(&daemon, "failing").len() >= 8
        }),
        "{}",
        daemon.log()
    );
    wait_for(&daemon, "failing", "counted from zero", |c| {
        c["restart_count"] == 3 && c["running"] == false
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(log_times(&daemon, "failing").len(), 8);

    // A process that succeeds is not restarted by on-failure.
    daemon.run_detached("fine", &["--restart", "on-failure", "base", "/bin/true"]);
    wait_for(&daemon, "fine", "ended", |c| {
        c["running"] == false && c["last_exit"]["exit_code"] == 0
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(inspect(&daemon, "fine")["restart_count"], 0);

    // Bad policies are refused by klee, and a bound with another policy by the daemon.
    let out = daemon.klee(&["create", "--restart", "sometimes", "base"]);
    assert!(!out.status.success(), "{}", describe(&out));
    let out = daemon.klee(&["create", "--restart", "always:2", "base"]);
    assert!(!out.status.success(), "{}", describe(&out));
}

#[test]
fn always_restarts_after_a_kill_and_a_daemon_restart_until_stopped() {
    require!(host_tests());
    let mut daemon = Daemon::with_base();
    daemon.run_detached(
        "service",
        &["--restart", "always", "base", "/bin/sleep", "4242"],
    );
    let cmdline = "/bin/sleep\x004242\x00";
    let first = host_pid_of(cmdline);
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &first.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    wait_for(&daemon, "service", "restarted after the kill", |c| {
        c["restart_count"] == 1 && c["running"] == true
    });
    assert_ne!(host_pid_of(cmdline), first);

    // The published Python client lists and inspects a container with a policy it does not know.
    if let Some(klee) = python_klee() {
        for args in [
            &["container", "ls", "-a"][..],
            &["container", "inspect", "service"],
        ] {
            let said = python_ok_for(format_args!("{args:?}"), &python(&klee, &daemon, args));
            assert!(said.contains("service"), "{args:?}: {said}");
        }
    }

    // The daemon stops its containers when it stops, and starts this one again.
    daemon.restart();
    wait_for(&daemon, "service", "started with the daemon", |c| {
        c["running"] == true
    });

    // Stopped by a client: it stays down, also across a daemon restart.
    daemon.klee_ok(&["stop", "service"]);
    std::thread::sleep(Duration::from_millis(1000));
    let record = inspect(&daemon, "service");
    assert_eq!(record["running"], false, "{record}");
    daemon.restart();
    std::thread::sleep(Duration::from_millis(1000));
    let record = inspect(&daemon, "service");
    assert_eq!(record["running"], false, "{record}");

    // A client's start brings back the policy; rm -f ends it.
    daemon.klee_ok(&["container", "start", "-d", "service"]);
    wait_for(&daemon, "service", "running", |c| c["running"] == true);
    daemon.klee_ok(&["rm", "-f", "service"]);
    std::thread::sleep(Duration::from_millis(500));
    let out = daemon.klee(&["container", "inspect", "service"]);
    assert!(
        !out.status.success(),
        "removed for good: {}",
        describe(&out)
    );
}
