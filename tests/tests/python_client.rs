//! The published Python client (PyPI kleene-cli 0.1.0rc4) against our daemon: every command that
//! exists so far must succeed without a traceback, on empty lists and on lists with content.

// Test code: a failed setup step should panic where it happens.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kleene_tests::clients::{describe, python, python_klee, python_ok_for, stdout, text};
use kleene_tests::daemon::Daemon;
use kleene_tests::require;
use kleene_tests::skip::host_tests;
use kleene_tests::store::daemon_with_samples;

fn assert_clean(out: &std::process::Output, args: &[&str]) {
    let stdout = python_ok_for(format_args!("python klee {args:?}"), out);
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
    require!(host_tests());
    let klee = require!(python_klee());
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
    require!(host_tests());
    let klee = require!(python_klee());
    let (_net, daemon) = daemon_with_samples();
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
            stdout(&out).contains(expected),
            "python klee {args:?}: {}",
            describe(&out)
        );
    }
}

#[test]
fn python_klee_reports_unknown_objects_without_a_traceback() {
    require!(host_tests());
    let klee = require!(python_klee());
    let daemon = Daemon::start();
    for args in [
        ["image", "inspect", "nope"],
        ["container", "inspect", "nope"],
        ["network", "inspect", "nope"],
    ] {
        let out = python(&klee, &daemon, &args);
        let text = text(&out);
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
