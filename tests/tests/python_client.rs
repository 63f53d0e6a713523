//! The published Python client (PyPI kleene-cli 0.1.0rc4) against our daemon: every command that
//! exists so far must succeed without a traceback, on empty lists and on lists with content.

// Test code: a failed setup step should panic where it happens.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kleene_tests::{
    describe, python, python_klee, sample_objects, seed_store, skip_host_tests, Daemon,
};

fn assert_clean(out: &std::process::Output, args: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python klee {args:?}: {}",
        describe(out)
    );
    assert!(
        !stderr.contains("Traceback") && !stdout.contains("Traceback"),
        "python klee {args:?}: {}",
        describe(out)
    );
    assert!(
        !stdout.contains("Unset object"),
        "a field the client needs is missing: {}",
        describe(out)
    );
}

const LISTS: &[&[&str]] = &[
    &["image", "ls"],
    &["container", "ls", "-a"],
    &["network", "ls"],
    &["volume", "ls"],
];

#[test]
fn python_klee_lists_on_an_empty_daemon() {
    if skip_host_tests() {
        return;
    }
    let Some(klee) = python_klee() else { return };
    let daemon = Daemon::start();
    for args in LISTS
        .iter()
        .chain([&["lsi"][..], &["lsc"][..], &["lsn"][..], &["lsv"][..]].iter())
    {
        let out = python(&klee, &daemon, args);
        assert_clean(&out, args);
    }
}

#[test]
fn python_klee_lists_and_inspects_stored_objects() {
    if skip_host_tests() {
        return;
    }
    let Some(klee) = python_klee() else { return };
    // The sample objects include a network: the daemon makes its interface at start, so it runs
    // in a network namespace of the test's own.
    let net = kleene_tests::netns::NetHost::create();
    let mut daemon = Daemon::start_with(kleene_tests::DaemonOptions {
        netns: Some(net.name.clone()),
        ..Default::default()
    });
    daemon.stop();
    seed_store(&daemon.metadata_path(), sample_objects);
    daemon.restart();
    for (args, expected) in [
        (&["image", "ls"][..], "1a2b3c4d5e6f"),
        (&["container", "ls", "-a"][..], "abcdef012345"),
        (&["network", "ls"][..], "default"),
        (&["volume", "ls"][..], "data"),
        (&["image", "inspect", "base"][..], "1a2b3c4d5e6f"),
        (&["container", "inspect", "web"][..], "abcdef012345"),
        (&["network", "inspect", "default"][..], "kleene0"),
        (
            &["volume", "inspect", "data"][..],
            "/kleene-test/volumes/data",
        ),
    ] {
        let out = python(&klee, &daemon, args);
        assert_clean(&out, args);
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(expected),
            "python klee {args:?}: {}",
            describe(&out)
        );
    }
}

#[test]
fn python_klee_reports_unknown_objects_without_a_traceback() {
    if skip_host_tests() {
        return;
    }
    let Some(klee) = python_klee() else { return };
    let daemon = Daemon::start();
    for args in [
        ["image", "inspect", "nope"],
        ["container", "inspect", "nope"],
        ["network", "inspect", "nope"],
    ] {
        let out = python(&klee, &daemon, &args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !text.contains("Traceback"),
            "python klee {args:?}: {}",
            describe(&out)
        );
        assert!(
            text.contains("not found"),
            "python klee {args:?}: {}",
            describe(&out)
        );
    }
}
