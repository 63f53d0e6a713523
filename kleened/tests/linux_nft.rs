//! The Linux packet filter against the real kernel, in a network namespace of the test's own: a
//! ruleset nft refuses is never loaded and the rules in force stay; the daemon's table is the only
//! thing it touches, and clearing removes it. Needs root and nft(8); `KLEENE_SKIP_HOST_TESTS=1`
//! opts out, loudly.

#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)] // Each crate uses part of it.
#[macro_use]
#[path = "../../tests/src/skip.rs"]
mod skip;

use std::process::Command;
use std::sync::Arc;

use kleene_runner::{CommandSpec, Output, PipeOutput, RunError, Runner, SystemRunner};
use kleened::platform::linux::net::LinuxNetwork;
use kleened::platform::{NetworkError, NetworkHost};

/// Runs every command inside one network namespace (`nsenter --net=...`).
#[derive(Debug)]
struct InNamespace {
    namespace: String,
    inner: SystemRunner,
}

impl InNamespace {
    fn wrap(&self, spec: &CommandSpec) -> CommandSpec {
        let mut wrapped = CommandSpec::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.namespace))
            .arg(spec.program.clone())
            .args(spec.args.clone());
        wrapped.stdin = spec.stdin.clone();
        wrapped
    }
}

impl Runner for InNamespace {
    fn run(&self, spec: &CommandSpec) -> Result<Output, RunError> {
        self.inner.run(&self.wrap(spec))
    }

    fn run_pipe(
        &self,
        producer: &CommandSpec,
        consumer: &CommandSpec,
    ) -> Result<PipeOutput, RunError> {
        self.inner
            .run_pipe(&self.wrap(producer), &self.wrap(consumer))
    }
}

/// A namespace of the test's own, removed when dropped.
struct Namespace(String);

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.0])
            .status();
    }
}

fn ruleset(namespace: &str) -> String {
    let out = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{namespace}"))
        .args(["nft", "list", "ruleset"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn network(interface: &str) -> pf::NetworkPolicy {
    pf::NetworkPolicy {
        id: "0f0f0f0f0f0f".into(),
        interface: interface.into(),
        subnet: Some("10.40.0.0/24".parse().unwrap()),
        subnet6: None,
        nat: Some("eth0".into()),
        icc: true,
        internal: false,
        bridge: true,
        members: vec![pf::Member {
            interface: "kvabcdef012*".into(),
            mac: pf::MacAddress::of_endpoint(Some("10.40.0.2".parse().unwrap()), "abcdef012345"),
            ip_address: Some("10.40.0.2".parse().unwrap()),
            ip_address6: None,
        }],
    }
}

#[test]
fn a_refused_ruleset_is_never_loaded_and_the_old_one_stays() {
    require!(skip::host_tests());
    let name = format!("kt-nft{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let status = Command::new("ip")
        .args(["netns", "add", &name])
        .status()
        .expect("ip netns add (as root, iproute2 installed)");
    assert!(status.success(), "ip netns add {name} failed: run as root");
    let namespace = Namespace(name);
    let runner = Arc::new(InNamespace {
        namespace: namespace.0.clone(),
        inner: SystemRunner::new(),
    });
    let host = LinuxNetwork::new(runner, "kt", "kleened:test");

    let good = pf::Policy {
        host_gateway: None,
        networks: vec![network("kleene0")],
        ports: vec![],
    };
    host.apply_firewall(&good).expect("a valid ruleset loads");
    let loaded = ruleset(&namespace.0);
    assert!(loaded.contains("table inet kt"), "{loaded}");
    assert!(loaded.contains("table bridge kt"), "{loaded}");
    assert!(loaded.contains("10.40.0.0/24"), "{loaded}");

    // Interface names are at most 15 bytes: the kernel's check refuses this one.
    let bad = pf::Policy {
        host_gateway: None,
        networks: vec![network("an-interface-name-far-too-long")],
        ports: vec![],
    };
    let err = host.apply_firewall(&bad).unwrap_err();
    match &err {
        NetworkError::Refused { checker, message } => {
            assert!(checker.starts_with("nft -c -f -"), "{checker}");
            assert!(
                message.contains("far-too-long"),
                "the message names the rule: {message}"
            );
        }
        other => panic!("not a refusal: {other}"),
    }
    assert_eq!(ruleset(&namespace.0), loaded, "the old rules stay in force");

    host.clear_firewall().expect("clear");
    assert_eq!(
        ruleset(&namespace.0).trim(),
        "",
        "only the daemon's table was there"
    );
    host.clear_firewall().expect("clearing twice is fine");
}
