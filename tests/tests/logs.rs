//! Container logs end to end: what a detached container prints is kept and shown by `klee logs`
//! (the last lines, since a time, with timestamps), followed as it comes and across a restart of
//! the container until it is removed, kept across a daemon restart, and bounded under a flood
//! whose newest output is kept whole and written soon after the flood pauses.

// Test code: a failed setup step should panic where it happens.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use kleene_tests::bin;
use kleene_tests::clients::{describe, stdout};
use kleene_tests::daemon::Daemon;
use kleene_tests::require;
use kleene_tests::skip::host_tests;
use kleene_tests::wait::eventually;

/// Waits until `klee logs` of `name` holds at least `lines` lines.
fn wait_for_lines(daemon: &Daemon, name: &str, lines: usize) -> String {
    eventually(Duration::from_secs(20), || {
        let said = daemon.klee_ok(&["logs", name]);
        if said.lines().count() >= lines {
            Ok(said)
        } else {
            Err(said)
        }
    })
    .unwrap_or_else(|said| panic!("only {said:?}"))
}

#[test]
fn the_output_of_a_detached_container_is_kept_tailed_and_followed() {
    require!(host_tests());
    let mut daemon = Daemon::with_base();
    daemon.run_detached(
        "ticker",
        &[
            "base",
            "/bin/sh",
            "-c",
            "i=0; while [ $i -lt 30 ]; do echo line $i; i=$((i+1)); sleep 0.01; done",
        ],
    );
    let all = wait_for_lines(&daemon, "ticker", 30);
    let expected: String = (0..30).map(|i| format!("line {i}\n")).collect();
    assert_eq!(all, expected);

    let out = daemon.klee(&["logs", "--tail", "5", "ticker"]);
    let expected: String = (25..30).map(|i| format!("line {i}\n")).collect();
    assert_eq!(stdout(&out), expected, "{}", describe(&out));

    let out = daemon.klee(&["logs", "-t", "--tail", "2", "ticker"]);
    let said = stdout(&out);
    for line in said.lines() {
        let (stamp, rest) = line.split_once(' ').unwrap();
        assert!(stamp.ends_with('Z') && stamp.contains('T'), "{line}");
        assert!(rest.starts_with("line 2"), "{line}");
    }
    let out = daemon.klee(&["logs", "--since", "2999-01-01T00:00:00Z", "ticker"]);
    assert_eq!(stdout(&out), "", "{}", describe(&out));
    let out = daemon.klee(&["logs", "--since", "1h", "ticker"]);
    assert_eq!(stdout(&out).lines().count(), 30);

    // Kept across a daemon restart.
    daemon.restart();
    assert_eq!(wait_for_lines(&daemon, "ticker", 30).lines().count(), 30);

    // Followed: a restart of the container appends, and removing it ends the stream.
    let mut follower = Command::new(bin("klee"))
        .args([
            "--host",
            &daemon.host,
            "logs",
            "-f",
            "--tail",
            "1",
            "ticker",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    daemon.klee_ok(&["start", "ticker"]);
    wait_for_lines(&daemon, "ticker", 60);
    daemon.klee_ok(&["rm", "-f", "ticker"]);
    let status = eventually(Duration::from_secs(10), || follower.try_wait().unwrap())
        .expect("logs -f did not end with the container");
    assert!(status.success());
    let mut followed = String::new();
    follower
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut followed)
        .unwrap();
    let expected: String = std::iter::once("line 29\n".to_owned())
        .chain((0..30).map(|i| format!("line {i}\n")))
        .collect();
    assert_eq!(followed, expected);
    let out = daemon.klee(&["logs", "ticker"]);
    assert!(!out.status.success(), "the log goes with the container");
    assert!(
        std::fs::read_dir(daemon.dir().join("container-logs"))
            .map(|d| d.count())
            .unwrap_or(0)
            == 0,
        "no log directory left"
    );
}

#[test]
fn a_flood_of_output_keeps_the_log_bounded() {
    require!(host_tests());
    let daemon = Daemon::with_base();
    // 64 MiB of output, far over the default 2 files of 8 MiB.
    daemon.klee_ok(&[
        "run",
        "--name",
        "flood",
        "base",
        "/bin/sh",
        "-c",
        "dd if=/dev/zero bs=65536 count=1024 2>/dev/null | tr '\\0' 'x'; echo; echo the end",
    ]);
    let dir = daemon.dir().join("container-logs");
    let total: u64 = walk(&dir);
    assert!(total <= 2 * 8 * 1024 * 1024 + 65536, "{total} bytes kept");
    let out = daemon.klee(&["logs", "--tail", "1", "flood"]);
    assert_eq!(stdout(&out), "the end\n", "{}", describe(&out));
    daemon.klee_ok(&["rm", "flood"]);
}

#[test]
fn a_paused_flood_is_on_disk_soon_with_its_newest_output_whole() {
    require!(host_tests());
    let daemon = Daemon::with_base();
    // About 23 MB of numbered lines, then the process goes quiet and keeps running.
    daemon.run_detached(
        "pause",
        &["base", "/bin/sh", "-c", "seq 1 3000000; sleep 60"],
    );
    let last = eventually(Duration::from_secs(30), || {
        let out = daemon.klee(&["logs", "--tail", "1", "pause"]);
        if stdout(&out) == "3000000\n" {
            Ok(())
        } else {
            Err(out)
        }
    });
    if let Err(out) = last {
        panic!("the last line never came: {}", describe(&out));
    }
    // The newest 8 MiB (what the default files keep whole) are consecutive lines.
    let out = daemon.klee(&["logs", "pause"]);
    let all = stdout(&out);
    let numbers: Vec<u64> = all.lines().map(|l| l.parse().unwrap()).collect();
    let mut run = 1;
    while run < numbers.len()
        && numbers[numbers.len() - run - 1] + 1 == numbers[numbers.len() - run]
    {
        run += 1;
    }
    let whole: usize = numbers[numbers.len() - run..]
        .iter()
        .map(|n| n.to_string().len() + 1)
        .sum();
    assert!(
        whole >= 8 * 1024 * 1024 - 128 * 1024,
        "only the last {whole} bytes are whole"
    );
    daemon.klee_ok(&["rm", "-f", "pause"]);
}

fn walk(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| {
                    let meta = e.metadata().unwrap();
                    if meta.is_dir() {
                        walk(&e.path())
                    } else {
                        meta.len()
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}
