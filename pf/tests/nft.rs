//! The nftables renderer against golden files, for every icc × internal × nat combination with
//! IPv4, IPv6 and both (a bridge network with one member, whose port may only send as itself),
//! an internal `custom` network (rules by address), and published ports (single, ranges, `N:*`,
//! udp, IPv6, several interfaces). As root with `nft` installed, every golden script also passes
//! `nft -c -f` (the kernel's own check, which changes nothing); `KLEENE_SKIP_HOST_TESTS=1` opts
//! out of that, loudly.
//!
//! `KLEENE_UPDATE_GOLDENS=1 cargo test -p pf --test nft` rewrites the files.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)] // Each crate uses part of it.
#[path = "../../tests/src/skip.rs"]
mod skip;

#[allow(dead_code)] // Each crate uses part of it.
#[path = "../../tests/src/golden.rs"]
mod golden;

use std::path::{Path, PathBuf};

use pf::{
    ContainerPort, MacAddress, Member, NetworkPolicy, Policy, PortRange, Protocol, PublishedPort,
};

fn goldens() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/goldens/nft")
}

fn network(icc: bool, internal: bool, nat: bool, v4: bool, v6: bool) -> NetworkPolicy {
    let ip = v4.then(|| "10.13.37.2".parse().unwrap());
    NetworkPolicy {
        id: "0f0f0f0f0f0f".into(),
        interface: "kleene0".into(),
        subnet: v4.then(|| "10.13.37.0/24".parse().unwrap()),
        subnet6: v6.then(|| "fd00:13:37::/64".parse().unwrap()),
        nat: nat.then(|| "up0".to_owned()),
        icc,
        internal,
        bridge: true,
        members: vec![Member {
            interface: "kve1e1e1e1e1*".into(),
            mac: MacAddress::of_endpoint(ip, "e1e1e1e1e1e1"),
            ip_address: ip,
            ip_address6: v6.then(|| "fd00:13:37::2".parse().unwrap()),
        }],
    }
}

fn port(
    interfaces: &[&str],
    host: &str,
    container: &str,
    protocol: Protocol,
    v6: bool,
) -> PublishedPort {
    let host = PortRange::parse(host).unwrap();
    PublishedPort {
        interfaces: interfaces.iter().map(|i| (*i).to_owned()).collect(),
        host_port: host,
        container_port: ContainerPort::parse(container, host).unwrap(),
        protocol,
        ip_address: Some("10.13.37.2".parse().unwrap()),
        ip_address6: v6.then(|| "fd00:13:37::2".parse().unwrap()),
    }
}

/// Every case: file name and policy.
fn cases() -> Vec<(String, Policy)> {
    let mut cases = vec![("empty".to_owned(), Policy::default())];
    for (family, v4, v6) in [
        ("ipv4", true, false),
        ("ipv6", false, true),
        ("dual", true, true),
    ] {
        for icc in [true, false] {
            for internal in [false, true] {
                for nat in [true, false] {
                    let name = format!(
                        "{family}-{}-{}-{}",
                        if icc { "icc" } else { "noicc" },
                        if internal { "internal" } else { "external" },
                        if nat { "nat" } else { "nonat" },
                    );
                    cases.push((
                        name,
                        Policy {
                            host_gateway: Some("eth0".into()),
                            networks: vec![network(icc, internal, nat, v4, v6)],
                            ports: vec![],
                        },
                    ));
                }
            }
        }
    }
    let mut custom = network(true, true, false, true, false);
    custom.interface = "eth1".into();
    custom.bridge = false;
    custom.members = vec![];
    cases.push((
        "custom-internal".to_owned(),
        Policy {
            host_gateway: Some("eth0".into()),
            networks: vec![custom],
            ports: vec![],
        },
    ));
    let mut second = network(false, false, false, true, false);
    second.id = "1e1e1e1e1e1e".into();
    second.interface = "kleene1".into();
    second.subnet = Some("10.13.38.0/24".parse().unwrap());
    second.members = vec![];
    cases.push((
        "published-ports".to_owned(),
        Policy {
            host_gateway: Some("eth0".into()),
            networks: vec![network(true, false, true, true, true), second],
            ports: vec![
                port(&["up0"], "18080", "80", Protocol::Tcp, true),
                port(&["up0", "eth0"], "5353", "53", Protocol::Udp, false),
                port(&["up0"], "5000:5003", "4000:*", Protocol::Tcp, false),
                port(&["up0"], "7000:7001", "80", Protocol::Tcp, false),
            ],
        },
    ));
    cases
}

#[test]
fn every_policy_renders_as_its_golden_file() {
    for (name, policy) in cases() {
        let script = pf::nft::render(&policy, "kleene");
        let path = goldens().join(format!("{name}.nft"));
        if let Err(failure) = golden::compare(&path, &script) {
            panic!("{name}: {failure}");
        }
        assert_eq!(
            pf::nft::render(&policy, "kleene"),
            script,
            "{name}: not deterministic"
        );
    }
}

#[test]
fn every_golden_script_passes_the_kernels_check() {
    if skip::skip_host_tests() {
        return;
    }
    for (name, _) in cases() {
        let path = goldens().join(format!("{name}.nft"));
        let out = std::process::Command::new("nft")
            .arg("-c")
            .arg("-f")
            .arg(&path)
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run nft (apt-get install nftables, as root), or set KLEENE_SKIP_HOST_TESTS=1: {e}")
            });
        assert!(
            out.status.success(),
            "nft -c -f {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
