//! The pf.conf renderer against golden files: the rules of every icc × internal × nat combination
//! with IPv4, IPv6 and both, and of published ports (single, ranges with `N:*`, udp, IPv6, several
//! interfaces, several containers, no host gateway), each filled into the shipped template
//! `example/pf.conf.kleene` exactly as kleened writes `pf_config_path`.
//!
//! A golden file starts with `#` lines naming what it was checked against (pf.conf(5) sections,
//! the Kleened API reference) and saying that it has not been through pfctl(8): there is no pfctl
//! on Linux, so each was reviewed by reading; the FreeBSD VM in `vagrant/` runs `pfctl -n -f` on
//! them. What can be checked here is: every `$macro` is defined above its first use (pfctl refuses
//! the whole file otherwise), and translation rules come before filtering rules.
//!
//! `KLEENE_UPDATE_GOLDENS=1 cargo test -p pf --test pfconf` rewrites the files; review the diff
//! against pf.conf(5) before committing it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)] // Each crate uses part of it.
#[path = "../../tests/src/golden.rs"]
mod golden;

use std::path::{Path, PathBuf};

use pf::pfconf::{fill_template, render};
use pf::{
    ContainerPort, MacAddress, Member, NetworkPolicy, Policy, PortRange, Protocol, PublishedPort,
};

/// The template kleened ships and `kleened init` installs.
const TEMPLATE: &str = include_str!("../../example/pf.conf.kleene");

/// Said by every golden.
const COMMON: &[&str] = &[
    "the Kleened API 0.1.1 reference §5.5 (macros, translation, filtering and their order) and §9.9",
    "pf.conf(5) STATEMENT ORDER: macros, then translation (nat, rdr), then packet filtering; \
     MACROS: name=\"value\", used as $name, a value in braces expands to a list; tables, like \
     macros, are outside the enforced order",
    "pf.conf(5) BLOCKING SPOOFED TRAFFIC: `antispoof for lo0` expands to `block drop in on ! lo0 \
     inet from 127.0.0.1/8 to any`; the same form blocks 127.0.0.0/8 and ::1 as destinations",
    "pf.conf(5) TABLES: `table <name> const { addresses }` (names shorter than 32 characters); \
     GRAMMAR: `host = [ \"!\" ] ( address | \"<\" string \">\" )`, so `from ! <table>` negates a table \
     (a negated list in braces would expand to one rule per address, each blocking the others)",
];

const NOT_RUN: &str = "NOT run through pfctl(8): there is no pfctl on Linux; reviewed by reading \
                       against pf.conf(5); the vagrant/ VM checks it with `pfctl -n -f`";

const NETWORK_RULES: &[&str] = &[
    "pf.conf(5) TRANSLATION: `nat on <if> from (<if>:network) to any -> (<if>)`: the parentheses \
     follow the interface's addresses as they change, `:network` is the networks attached to it",
    "pf.conf(5) PACKET FILTERING: the last matching rule decides unless a rule is `quick`; `log` \
     sends to pflog0; `on {a, b}` is expanded to one rule per interface",
    "pf.conf(5) GRAMMAR: `\"to\" ( \"any\" | \"no-route\" | \"self\" | host ...)` and `address = \
     \"(\" interface-group \")\"`: `(self)` is every address of the host, followed as they change; \
     STATEFUL FILTERING: packets of a state pass before rules are evaluated (answers to the host's \
     own connections); PARAMETERS `icmp6-type` with icmp6(4) names, `no state`",
    "pf.conf(5) PARAMETERS `icmp-type`/`icmp6-type` names: ICMP `redir` (5), ICMPv6 `routeradv` \
     (134) and `redir` (137): what a member sends as a router is blocked on its epair",
];

const PORT_RULES: &[&str] = &[
    "pf.conf(5) TRANSLATION: `rdr ... port 2000:2999 -> ... port 4000:*` maps each port onto the \
     range starting at 4000; `port 4000` sends the whole range to one port; filter rules see \
     packets after translation, so the pass rules name the container's address and port",
    "pf.conf(5) PARAMETERS: `port a:b` is the inclusive range a..b; `inet`/`inet6` pick the family",
    "pf.conf(5) PARAMETERS `tag`: \"to determine if packets have been processed by translation \
     rules\", set by `rdr` (GRAMMAR: rdr-rule ... hosts [ \"tag\" string ] ... \"->\"), matched by \
     `tagged`; `(IF)` in `rdr ... to (IF)` is the addresses of IF only",
];

struct Case {
    /// File name under `tests/goldens/pfconf/`, without `.conf`.
    name: String,
    /// What the policy is, in a line.
    about: String,
    /// What the rules were checked against, beyond [`COMMON`].
    checked: Vec<&'static str>,
    policy: Policy,
}

const NETWORK_ID: &str = "0f0f0f0f0f0f";

/// A running vnet container on its epair, with the addresses of the families it has.
fn member(epair: &str, ip: Option<&str>, ip6: Option<&str>) -> Member {
    let ip = ip.map(|ip| ip.parse().unwrap());
    Member {
        interface: epair.into(),
        mac: MacAddress::of_endpoint(ip, epair),
        ip_address: ip,
        ip_address6: ip6.map(|ip| ip.parse().unwrap()),
    }
}

fn network(icc: bool, internal: bool, nat: bool, v4: bool, v6: bool) -> NetworkPolicy {
    NetworkPolicy {
        id: NETWORK_ID.into(),
        interface: "kleene0".into(),
        subnet: v4.then(|| "10.13.37.0/24".parse().unwrap()),
        subnet6: v6.then(|| "fd00:13:37::/64".parse().unwrap()),
        nat: nat.then(|| "em0".to_owned()),
        icc,
        internal,
        bridge: true,
        members: vec![member(
            "epair0a",
            v4.then_some("10.13.37.2"),
            v6.then_some("fd00:13:37::2"),
        )],
    }
}

fn port(
    interfaces: &[&str],
    host: &str,
    container: &str,
    protocol: Protocol,
    v4: bool,
    v6: bool,
) -> PublishedPort {
    let host = PortRange::parse(host).unwrap();
    PublishedPort {
        interfaces: interfaces.iter().map(|i| (*i).to_owned()).collect(),
        host_port: host,
        container_port: ContainerPort::parse(container, host).unwrap(),
        protocol,
        ip_address: v4.then(|| "10.13.37.2".parse().unwrap()),
        ip_address6: v6.then(|| "fd00:13:37::2".parse().unwrap()),
    }
}

fn with_ports(networks: Vec<NetworkPolicy>, ports: Vec<PublishedPort>) -> Policy {
    Policy {
        host_gateway: Some("em0".into()),
        networks,
        ports,
    }
}

fn cases() -> Vec<Case> {
    let mut cases = vec![Case {
        name: "empty".into(),
        about: "no networks, no published ports".into(),
        checked: vec!["reference §5.5: kleenet_network_interfaces is always defined, as {lo0}"],
        policy: Policy {
            host_gateway: Some("em0".into()),
            ..Policy::default()
        },
    }];

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
                    let mut checked = NETWORK_RULES.to_vec();
                    if internal && !icc && !nat {
                        checked.push(
                            "reference §5.5: internal without icc and without NAT has no rule on \
                             the host gateway (unlike with icc); kept as the reference has it",
                        );
                    }
                    if internal && nat {
                        checked.push(
                            "reference §5.5: an internal network gets no nat rule; IPv4 is \
                             blocked on the NAT interface, IPv6 on the host gateway",
                        );
                    }
                    cases.push(Case {
                        about: format!(
                            "one bridge network with a running vnet container (epair0a), {}, \
                             icc={icc}, internal={internal}, nat={}, host gateway em0",
                            match family {
                                "ipv4" => "IPv4 only",
                                "ipv6" => "IPv6 only",
                                _ => "IPv4 and IPv6",
                            },
                            if nat { "em0" } else { "none" },
                        ),
                        name,
                        checked,
                        policy: with_ports(vec![network(icc, internal, nat, v4, v6)], vec![]),
                    });
                }
            }
        }
    }

    let port_case = |name: &str, about: &str, policy: Policy| Case {
        name: name.into(),
        about: about.into(),
        checked: PORT_RULES.to_vec(),
        policy,
    };
    let ipv4_net = || network(true, false, true, true, false);
    cases.push(port_case(
        "port-single",
        "ipv4-icc-external-nat plus host port 8080 on em0 to container port 80/tcp",
        with_ports(
            vec![ipv4_net()],
            vec![port(&["em0"], "8080", "80", Protocol::Tcp, true, false)],
        ),
    ));
    cases.push(port_case(
        "port-ranges",
        "ipv4-icc-external-nat plus 8080:8090 -> 80:*, 9000 -> 90:* and 7000:7001 -> 80",
        with_ports(
            vec![ipv4_net()],
            vec![
                port(&["em0"], "8080:8090", "80:*", Protocol::Tcp, true, false),
                port(&["em0"], "9000", "90:*", Protocol::Tcp, true, false),
                port(&["em0"], "7000:7001", "80", Protocol::Tcp, true, false),
            ],
        ),
    ));
    cases.push(port_case(
        "port-udp",
        "ipv4-icc-external-nat plus host port 5353 on em0 to container port 53/udp \
         (the extra pass on the network interfaces is proto tcp, as in the reference)",
        with_ports(
            vec![ipv4_net()],
            vec![port(&["em0"], "5353", "53", Protocol::Udp, true, false)],
        ),
    ));
    cases.push(port_case(
        "port-ipv6",
        "dual-icc-external-nat plus host port 8080 on em0 to container port 80/tcp on both \
         addresses (IPv4 rules first, then IPv6)",
        with_ports(
            vec![network(true, false, true, true, true)],
            vec![port(&["em0"], "8080", "80", Protocol::Tcp, true, true)],
        ),
    ));
    cases.push(port_case(
        "port-ipv6-only",
        "ipv6-icc-external-nonat plus host port 8080 on em0 to container port 80/tcp on the \
         container's IPv6 address only",
        with_ports(
            vec![network(true, false, false, false, true)],
            vec![port(&["em0"], "8080", "80", Protocol::Tcp, false, true)],
        ),
    ));
    cases.push(port_case(
        "port-several-interfaces",
        "ipv4-icc-external-nat plus host port 8080 on em0 and em1 to container port 80/tcp",
        with_ports(
            vec![ipv4_net()],
            vec![port(
                &["em0", "em1"],
                "8080",
                "80",
                Protocol::Tcp,
                true,
                false,
            )],
        ),
    ));

    let mut second_net = network(false, false, false, true, false);
    second_net.id = "1e1e1e1e1e1e".into();
    second_net.interface = "kleene1".into();
    second_net.subnet = Some("10.13.38.0/24".parse().unwrap());
    second_net.members = vec![
        member("epair1a", Some("10.13.38.2"), None),
        member("epair2a", Some("10.13.38.3"), None),
    ];
    let mut other_container = port(&["em0"], "8081", "80", Protocol::Tcp, true, false);
    other_container.ip_address = Some("10.13.38.2".parse().unwrap());
    cases.push(port_case(
        "two-networks",
        "two networks (kleene0 with NAT and icc, kleene1 without, two running containers) and \
         a published port of a container on each",
        with_ports(
            vec![ipv4_net(), second_net],
            vec![
                port(&["em0"], "8080", "80", Protocol::Tcp, true, false),
                other_container,
            ],
        ),
    ));

    let mut internal_nonat = network(true, true, false, true, true);
    internal_nonat.members = vec![];
    let mut internal_nat = network(false, true, true, true, true);
    internal_nat.id = "1e1e1e1e1e1e".into();
    internal_nat.interface = "kleene1".into();
    internal_nat.subnet = Some("10.13.38.0/24".parse().unwrap());
    internal_nat.subnet6 = Some("fd00:13:38::/64".parse().unwrap());
    internal_nat.members = vec![];
    let mut checked = PORT_RULES.to_vec();
    checked.extend(NETWORK_RULES);
    checked.push(
        "no kleenet_host_gw_if macro, so every rule naming $kleenet_host_gw_if is left out: pfctl \
         refuses a file using an undefined macro (parse.y: \"macro '%s' not defined\")",
    );
    cases.push(Case {
        name: "no-host-gateway".into(),
        about: "no host gateway detected: two internal dual-stack networks (kleene0 icc without \
                NAT, kleene1 without icc with NAT on em0) and a port published on lo0"
            .into(),
        checked,
        policy: Policy {
            host_gateway: None,
            networks: vec![internal_nonat, internal_nat],
            ports: vec![port(&["lo0"], "15081", "80", Protocol::Tcp, true, false)],
        },
    });
    cases
}

fn goldens() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/goldens/pfconf")
}

fn golden_text(case: &Case) -> String {
    let mut text = format!("# golden {}: {}\n", case.name, case.about);
    for line in COMMON.iter().chain(&case.checked) {
        text.push_str("# checked against: ");
        text.push_str(line);
        text.push('\n');
    }
    text.push_str("# ");
    text.push_str(NOT_RUN);
    text.push('\n');
    text.push_str(&fill_template(TEMPLATE, &render(&case.policy)).unwrap());
    text
}

#[test]
fn every_policy_renders_as_its_golden_file() {
    let dir = goldens();
    let cases = cases();
    let mut failures = vec![];
    for case in &cases {
        let path = dir.join(format!("{}.conf", case.name));
        let want = golden_text(case);
        assert_eq!(want, golden_text(case), "{}: not deterministic", case.name);
        if let Err(failure) = golden::compare(&path, &want) {
            failures.push(failure);
        }
    }
    // No golden file without a case.
    let names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    for name in golden::orphans(&dir, "conf", &names) {
        failures.push(format!("{name}: no case renders this golden file"));
    }
    assert!(
        failures.is_empty(),
        "pf.conf rules changed (KLEENE_UPDATE_GOLDENS=1 rewrites the files; review the diff \
         against pf.conf(5)):\n\n{}",
        failures.join("\n\n")
    );
}

/// The `$name` macro references in a line (a name is a letter, then letters, digits and `_`).
fn macro_uses(line: &str) -> Vec<&str> {
    let mut uses = vec![];
    for (at, _) in line.match_indices('$') {
        let rest = &line[at + 1..];
        let len = rest
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
            .count();
        if len > 0 {
            uses.push(&rest[..len]);
        }
    }
    uses
}

/// What pfctl would refuse and can be seen without it: a macro used before it is defined, or a
/// translation rule after a filtering rule (pf.conf(5) STATEMENT ORDER, enforced by default).
#[test]
fn every_macro_is_defined_before_use_and_translation_precedes_filtering() {
    for case in cases() {
        let text = fill_template(TEMPLATE, &render(&case.policy)).unwrap();
        let mut defined: Vec<&str> = vec![];
        let mut filtering_seen = false;
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            for name in macro_uses(line) {
                assert!(
                    defined.contains(&name),
                    "{}: line {}: ${name} is not defined above: {line}",
                    case.name,
                    number + 1
                );
            }
            if let Some((name, value)) = line.split_once('=') {
                if !name.contains(' ') && value.starts_with('"') && value.ends_with('"') {
                    defined.push(name);
                    continue;
                }
            }
            match line.split_whitespace().next() {
                Some("nat" | "rdr") => assert!(
                    !filtering_seen,
                    "{}: line {}: translation after filtering: {line}",
                    case.name,
                    number + 1
                ),
                Some("pass" | "block") => filtering_seen = true,
                // pf.conf(5) STATEMENT ORDER: tables, like macros, may come anywhere.
                Some("table") => {}
                other => panic!("{}: unexpected statement {other:?}: {line}", case.name),
            }
        }
    }
}

/// pfctl(8): `-n` "Do not actually load rules, just parse them"; `-f file` "Load the rules
/// contained in file"; `-e` "Enable the packet filter".
#[test]
fn pfctl_command_lines() {
    let path = Path::new("/etc/pf.conf");
    assert_eq!(
        pf::pfctl::check(path).argv(),
        ["/sbin/pfctl", "-n", "-f", "/etc/pf.conf"]
    );
    assert_eq!(
        pf::pfctl::load(path).argv(),
        ["/sbin/pfctl", "-f", "/etc/pf.conf"]
    );
    assert_eq!(pf::pfctl::enable().argv(), ["/sbin/pfctl", "-e"]);
}
