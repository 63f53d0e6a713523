//! `kleened doctor` and `klee doctor` end to end on this host: a clean root is healthy (exit 0);
//! a leaked container dataset and forwarding turned off under a network with NAT are named with
//! their commands (exit 1) and fixed by `--fix` — through the running daemon (`klee doctor
//! --fix`) and, with the daemon stopped, by `kleened doctor --fix` — after which the doctor exits
//! 0. Forwarding is only ever changed inside a network namespace of the test's own.

#![cfg(target_os = "linux")]
// Test code: a failed setup step should panic where it happens.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

use kleene_tests::bin;
use kleene_tests::clients::{ok, text};
use kleene_tests::daemon::Daemon;
use kleene_tests::netns::{request, NetHost};
use kleene_tests::pool::zfs_tree;
use kleene_tests::require;
use kleene_tests::skip::host_tests;
use serde_json::json;

/// `kleened doctor [args]` on the daemon's configuration, in the network namespace `netns` (or
/// the host's).
fn kleened_doctor(daemon: &Daemon, netns: Option<&NetHost>, args: &[&str]) -> Output {
    let mut command = match netns {
        Some(host) => {
            let mut command = Command::new("nsenter");
            command.args(host.enter_args()).arg(bin("kleened"));
            command
        }
        None => Command::new(bin("kleened")),
    };
    command
        .arg("--config")
        .arg(daemon.config_path())
        .arg("doctor")
        .args(args)
        .output()
        .expect("run kleened doctor")
}

/// net.ipv4.ip_forward in the stand-in host's namespace.
fn forwarding(host: &NetHost) -> String {
    ok(&host.exec("cat", &["/proc/sys/net/ipv4/ip_forward"]))
        .trim()
        .to_owned()
}

/// Turns forwarding off in the stand-in host's namespace (never the real host's).
fn forwarding_off(host: &NetHost) {
    ok(&host.exec("sh", &["-c", "echo 0 > /proc/sys/net/ipv4/ip_forward"]));
    assert_eq!(forwarding(host), "0");
}

/// A dataset under the root's `container/` that no container owns.
fn leak_dataset(daemon: &Daemon, id: &str) -> String {
    let name = format!("{}/container/{id}", daemon.root.name);
    ok(&Command::new("zfs")
        .args(["create", &name])
        .output()
        .unwrap());
    name
}

fn exit_code(out: &Output) -> i32 {
    out.status.code().expect("exited")
}

#[test]
fn a_clean_root_is_healthy_and_fix_is_refused_while_the_daemon_runs() {
    require!(host_tests());
    let mut daemon = Daemon::start();
    let out = kleened_doctor(&daemon, None, &[]);
    assert_eq!(exit_code(&out), 0, "{}", text(&out));
    let report = text(&out);
    assert!(
        report.contains("0 problems, 0 warnings (kleened is running)"),
        "{report}"
    );
    assert!(report.contains("ok       zfs.root"), "{report}");
    assert!(report.contains("ok       zfs.pool"), "{report}");

    let out = daemon.klee(&["doctor"]);
    assert_eq!(exit_code(&out), 0, "{}", text(&out));
    let out = daemon.klee(&["--json", "doctor"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["healthy"], true, "{json}");
    assert_eq!(json["daemon_running"], true, "{json}");

    let out = kleened_doctor(&daemon, None, &["--fix"]);
    assert_eq!(exit_code(&out), 2, "{}", text(&out));
    assert!(
        text(&out).contains("stop it before `kleened doctor --fix`"),
        "{}",
        text(&out)
    );

    daemon.stop();
    let out = kleened_doctor(&daemon, None, &[]);
    assert_eq!(exit_code(&out), 0, "{}", text(&out));
    assert!(
        text(&out).contains("(kleened is not running)"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_leaked_dataset_and_forwarding_off_are_named_and_fixed() {
    require!(host_tests());
    let host = NetHost::create();
    let mut daemon = Daemon::start_in(&host);
    let answer = request(
        &daemon.socket(),
        "POST",
        "/networks/create",
        Some(
            &json!({"name": "outward", "type": "bridge", "subnet": "10.31.0.0/24", "gateway": "<auto>"}),
        ),
    );
    assert_eq!(answer.status, 201, "{}", answer.body);
    assert_eq!(forwarding(&host), "1", "the daemon turns forwarding on");

    // Through the running daemon.
    let leaked = leak_dataset(&daemon, "d0c70e000001");
    forwarding_off(&host);
    let out = daemon.klee(&["doctor"]);
    assert_eq!(exit_code(&out), 1, "{}", text(&out));
    let report = text(&out);
    assert!(
        report.contains(&format!("{leaked} is the dataset of no container")),
        "{report}"
    );
    assert!(
        report.contains(&format!(
            "fix: zfs destroy -r -f {leaked} (--fix does this)"
        )),
        "{report}"
    );
    assert!(
        report.contains("net.ipv4.ip_forward is 0: networks with NAT"),
        "{report}"
    );
    assert!(
        report.contains("fix: sysctl -w net.ipv4.ip_forward=1 (--fix does this)"),
        "{report}"
    );
    let out = daemon.klee(&["doctor", "--fix"]);
    assert_eq!(exit_code(&out), 0, "{}", text(&out));
    let report = text(&out);
    assert!(
        report.contains(&format!(
            "fixed    leftover.dataset         zfs destroy -r -f {leaked}"
        )),
        "{report}"
    );
    assert!(
        report.contains("fixed    linux.ip-forward         sysctl -w net.ipv4.ip_forward=1"),
        "{report}"
    );
    assert_eq!(forwarding(&host), "1");
    assert!(!zfs_tree(&daemon.root.name).contains(&leaked));
    let out = daemon.klee(&["doctor"]);
    assert_eq!(exit_code(&out), 0, "{}", text(&out));

    // With the daemon stopped, by kleened doctor in the same namespace.
    daemon.stop();
    let leaked = leak_dataset(&daemon, "d0c70e000002");
    forwarding_off(&host);
    let out = kleened_doctor(&daemon, Some(&host), &[]);
    assert_eq!(exit_code(&out), 1, "{}", text(&out));
    let report = text(&out);
    assert!(
        report.contains(&format!("{leaked} is the dataset of no container")),
        "{report}"
    );
    assert!(
        report.contains("net.ipv4.ip_forward is 0: networks with NAT"),
        "{report}"
    );
    assert!(
        report.contains("2 problems, 0 warnings; --fix fixes 2 of them (kleened is not running)"),
        "{report}"
    );
    let out = kleened_doctor(&daemon, Some(&host), &["--fix"]);
    assert_eq!(exit_code(&out), 0, "{}", text(&out));
    let report = text(&out);
    assert!(
        report.contains(&format!(
            "fixed    leftover.dataset         zfs destroy -r -f {leaked}"
        )),
        "{report}"
    );
    assert!(report.contains("fixed    linux.ip-forward"), "{report}");
    assert_eq!(forwarding(&host), "1");
    assert!(!zfs_tree(&daemon.root.name).contains(&leaked));
    let out = kleened_doctor(&daemon, Some(&host), &[]);
    assert_eq!(exit_code(&out), 0, "{}", text(&out));
}
