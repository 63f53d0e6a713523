//! The policy as an nftables script for Linux, with the meaning of the pf.conf rules, and the
//! defences a bridge needs against containers that craft their own packets (raw sockets).
//!
//! The daemon owns two tables of one name: `inet <name>` (addresses, NAT, filtering) and
//! `bridge <name>` (what each bridge port may send). The script declares both, deletes both and
//! fills them again, and `nft -f` runs a script as one transaction: the old rules stay in force
//! until the new ones are complete, and a script the kernel refuses changes nothing. Nothing
//! outside the two tables is touched.
//!
//! | pf.conf (FreeBSD) | nftables (Linux) |
//! |---|---|
//! | `block in quick on ! lo0 to 127.0.0.0/8` | `loopback` (prerouting, raw priority): `iifname != "lo" ip daddr 127.0.0.0/8 drop` (and `::1`): before conntrack undoes NAT, so the answers to the host's own connections to 127.0.0.1 that were sent to a container (they come back addressed to the gateway) still pass; every bridge has `route_localnet`, which would otherwise let a container reach the host's loopback services |
//! | `nat on $nat_if from (iface:network) to any -> ($nat_if)` | `postrouting`: `oifname NAT ip saddr SUBNET masquerade` |
//! | `rdr on IF ... to (IF) port H -> IP port C` | `prerouting`: `iifname IF fib daddr . iif type local ... dport H dnat to IP:C` (only the addresses of IF, as pf's `(IF)`); also `output` for connections the host itself makes to any of its addresses (127.0.0.1 included; the bridge needs `route_localnet` and `postrouting` masquerades 127/8 towards it) |
//! | internal: `block in quick on IF to (self)` | `input`: `iifname IF drop`, after `ct state established,related accept` (answers to the host's own connections) and the neighbour discovery the host's IPv6 needs |
//! | `block in log from any to SUBNET` | `forward`: `oifname IF log drop`, after the accepts below |
//! | icc: `pass quick on $all_interfaces from SUBNET to SUBNET` | `forward`: `iifname IF oifname IF accept`; bridged traffic between containers is also kept apart or let through at layer 2 by the bridge port's `isolated` flag, which the runtime sets when icc is off |
//! | internal: `block in quick on IF to ! SUBNET`, `block out quick log on $kleenet_network_interfaces from SUBNET` | `forward`: `iifname IF oifname != IF log drop`, first |
//! | `pass quick on IF ... to IP port C tagged ...` (published ports) | `forward`: `ct status dnat accept` (only connections a published port translated) |
//! | antispoofing per epair: `block in quick on epairNa from ! IP` | `bridge` table: per member port, frames whose source MAC, ARP sender or IP source is not the member's own are dropped |
//!
//! Rules by interface are written for bridge networks ([`NetworkPolicy::bridge`]); a `custom`
//! network's interface is the host's own, so its rules stay by address, as before. Connections a
//! container made are let back in (`ct state established,related accept`), as pf's state does.
//! Traffic to published ports from another container of the same network comes back through the
//! host (hairpin), so it is masqueraded to the gateway on the way.

use std::fmt::Write as _;

use crate::model::{ContainerPort, Member, NetworkPolicy, Policy, PortRange, PublishedPort};

/// `nft` address-family keywords of the two IP versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

impl Family {
    fn keyword(self) -> &'static str {
        match self {
            Family::V4 => "ip",
            Family::V6 => "ip6",
        }
    }
}

/// An interface name as an nft string.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', ""))
}

/// `N` or `N-M`, as nft writes port ranges.
fn ports(range: PortRange) -> String {
    if range.is_single() {
        range.first.to_string()
    } else {
        format!("{}-{}", range.first, range.last)
    }
}

/// The destination of a DNAT: one container port for every host port, or host port `H + i` to
/// container port `C + i` through a map.
fn dnat_target(port: &PublishedPort, family: Family, address: &str) -> String {
    let host = port.host_port;
    let container = port.container_port.resolved(host);
    let address = match family {
        Family::V4 => address.to_owned(),
        Family::V6 => format!("[{address}]"),
    };
    let keyword = family.keyword();
    let offset = matches!(port.container_port, ContainerPort::From(_)) || !container.is_single();
    if host.is_single() || !offset {
        return format!("dnat {keyword} to {address}:{}", container.first);
    }
    let pairs: Vec<String> = (0..=host.span())
        .map(|i| format!("{} : {}", host.first + i, container.first + i))
        .collect();
    format!(
        "dnat {keyword} to {address} : {} dport map {{ {} }}",
        port.protocol.as_str(),
        pairs.join(", ")
    )
}

/// The addresses of a port, per family, as text.
fn port_addresses(port: &PublishedPort) -> Vec<(Family, String)> {
    let mut addresses = vec![];
    if let Some(ip) = port.ip_address {
        addresses.push((Family::V4, ip.to_string()));
    }
    if let Some(ip) = port.ip_address6 {
        addresses.push((Family::V6, ip.to_string()));
    }
    addresses
}

/// The subnets of a network, per family, as text.
fn subnets(network: &NetworkPolicy) -> Vec<(Family, String)> {
    let mut subnets = vec![];
    if let Some(subnet) = network.subnet {
        subnets.push((Family::V4, subnet.to_string()));
    }
    if let Some(subnet) = network.subnet6 {
        subnets.push((Family::V6, subnet.to_string()));
    }
    subnets
}

/// The rules of each chain, one string per rule.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct NftRules {
    /// `loopback` (filter, prerouting at raw priority): loopback destinations from elsewhere.
    pub loopback: Vec<String>,
    /// `prerouting` (nat, dstnat): published ports arriving on their interfaces.
    pub prerouting: Vec<String>,
    /// `output` (nat, dstnat): published ports the host itself connects to.
    pub output: Vec<String>,
    /// `postrouting` (nat, srcnat): masquerading.
    pub postrouting: Vec<String>,
    /// `input` (filter): the host's own addresses, closed to internal networks.
    pub input: Vec<String>,
    /// `forward` (filter): isolation, icc, internal, published ports.
    pub forward: Vec<String>,
    /// The `bridge` table: the `ports` chain's jumps, then one chain per member.
    pub ports: Vec<String>,
    /// The member chains of the `bridge` table: name and rules.
    pub members: Vec<(String, Vec<String>)>,
}

/// What a member's frames may carry, each rule dropping what it may not.
fn member_rules(member: &Member) -> Vec<String> {
    let mac = member.mac;
    let link_local = mac.link_local();
    let mut types = vec![];
    let mut rules = vec![format!("ether saddr != {mac} drop")];
    if member.ip_address.is_some() {
        types.extend(["ip", "arp"]);
    }
    types.push("ip6");
    rules.push(format!("ether type != {{ {} }} drop", types.join(", ")));
    // A container is no router: its router advertisements and redirects would move the host's
    // and its neighbours' routes to it.
    rules.push("icmpv6 type { nd-router-advert, nd-redirect } drop".to_owned());
    if member.ip_address.is_some() {
        rules.push("icmp type redirect drop".to_owned());
    }
    if let Some(ip) = member.ip_address {
        // The kernel only takes Ethernet/IPv4 ARP, whose fields are where these rules look.
        rules.push("arp hlen != 6 drop".to_owned());
        rules.push("arp plen != 4 drop".to_owned());
        rules.push(format!("arp saddr ether != {mac} drop"));
        rules.push(format!("arp saddr ip != {ip} drop"));
        rules.push(format!("ip saddr != {ip} drop"));
    }
    // `::` is the source of duplicate address detection.
    let mut own6 = vec![link_local];
    own6.extend(member.ip_address6);
    let mut sources: Vec<String> = vec!["::".to_owned()];
    sources.extend(own6.iter().map(ToString::to_string));
    rules.push(format!("ip6 saddr != {{ {} }} drop", sources.join(", ")));
    // A neighbour advertisement names its target 8 bytes into the ICMPv6 header; nft 1.0.6 has
    // no keyword for it, so it is read as 128 bits.
    let targets: Vec<String> = own6
        .iter()
        .map(|ip| format!("0x{:032x}", u128::from(*ip)))
        .collect();
    rules.push(format!(
        "icmpv6 type nd-neighbor-advert @th,64,128 != {{ {} }} drop",
        targets.join(", ")
    ));
    rules
}

/// The rules of the policy, chain by chain.
pub fn rules(policy: &Policy) -> NftRules {
    let mut rules = NftRules::default();
    // Loopback destinations only from `lo`, whatever `route_localnet` says.
    rules.loopback.push(
        "iifname != \"lo\" ip daddr 127.0.0.0/8 log prefix \"kleened loopback: \" drop".to_owned(),
    );
    rules
        .loopback
        .push("iifname != \"lo\" ip6 daddr ::1 log prefix \"kleened loopback: \" drop".to_owned());
    for port in &policy.ports {
        let proto = port.protocol.as_str();
        let host = ports(port.host_port);
        for (family, address) in port_addresses(port) {
            let target = dnat_target(port, family, &address);
            for interface in &port.interfaces {
                // Only the addresses of the interface the packet came in on, as pf's `(IF)`.
                rules.prerouting.push(format!(
                    "iifname {} fib daddr . iif type local {proto} dport {host} {target}",
                    quoted(interface)
                ));
            }
            // The host reaches its published ports on any of its addresses; 127.0.0.1 too (IPv6's
            // ::1 cannot be routed away from the host, so not that one).
            let local = match family {
                Family::V4 => "fib daddr type local",
                Family::V6 => "fib daddr type local ip6 daddr != ::1",
            };
            rules
                .output
                .push(format!("{local} {proto} dport {host} {target}"));
        }
    }
    for network in &policy.networks {
        let interface = quoted(&network.interface);
        if let (Some(nat), Some(subnet), false) = (&network.nat, network.subnet, network.internal) {
            rules.postrouting.push(format!(
                "oifname {} ip saddr {subnet} masquerade",
                quoted(nat)
            ));
        }
        if !policy.ports.is_empty() {
            // Connections of the host to 127.0.0.1 that were sent to a container.
            rules.postrouting.push(format!(
                "oifname {interface} ip saddr 127.0.0.0/8 masquerade"
            ));
            if let Some(subnet) = network.subnet {
                rules.postrouting.push(format!(
                    "oifname {interface} ip saddr {subnet} ip daddr {subnet} ct status dnat masquerade"
                ));
            }
        }
    }
    for network in policy.networks.iter().filter(|n| n.internal && n.bridge) {
        let interface = quoted(&network.interface);
        // Answers to connections the host made to the containers.
        rules.input.push(format!(
            "iifname {interface} ct state established,related accept"
        ));
        if network.subnet6.is_some() {
            // The host's IPv6 needs the containers' neighbour solicitations and advertisements.
            rules.input.push(format!(
                "iifname {interface} icmpv6 type {{ nd-neighbor-solicit, nd-neighbor-advert }} accept"
            ));
        }
        // Services of the host offered to an internal network (DNS on its gateway) are accepted
        // here, before the drop; there are none yet.
        rules.input.push(format!(
            "iifname {interface} log prefix \"kleened internal: \" drop"
        ));
    }
    rules
        .forward
        .push("ct state established,related accept".to_owned());
    for network in policy.networks.iter().filter(|n| n.internal) {
        let interface = quoted(&network.interface);
        if network.bridge {
            rules.forward.push(format!(
                "iifname {interface} oifname != {interface} log prefix \"kleened internal: \" drop"
            ));
            continue;
        }
        for (family, subnet) in subnets(network) {
            rules.forward.push(format!(
                "{} saddr {subnet} oifname != {interface} log prefix \"kleened internal: \" drop",
                family.keyword(),
            ));
        }
    }
    for network in policy.networks.iter().filter(|n| n.icc) {
        let interface = quoted(&network.interface);
        if network.bridge {
            rules
                .forward
                .push(format!("iifname {interface} oifname {interface} accept"));
            continue;
        }
        for (family, subnet) in subnets(network) {
            let keyword = family.keyword();
            rules.forward.push(format!(
                "iifname {interface} oifname {interface} {keyword} saddr {subnet} {keyword} daddr {subnet} accept"
            ));
        }
    }
    if !policy.ports.is_empty() {
        // Only what a published port translated: not the container's port directly.
        rules.forward.push("ct status dnat accept".to_owned());
    }
    for network in &policy.networks {
        if network.bridge {
            rules.forward.push(format!(
                "oifname {} log prefix \"kleened blocked: \" drop",
                quoted(&network.interface)
            ));
            continue;
        }
        for (family, subnet) in subnets(network) {
            rules.forward.push(format!(
                "{} daddr {subnet} log prefix \"kleened blocked: \" drop",
                family.keyword()
            ));
        }
    }
    for member in policy.networks.iter().flat_map(|n| &n.members) {
        let chain = format!("member_{}", rules.members.len());
        rules.ports.push(format!(
            "iifname {} jump {chain}",
            quoted(&member.interface)
        ));
        rules.members.push((chain, member_rules(member)));
    }
    rules
}

/// Writes one chain.
fn chain(script: &mut String, name: &str, hook: Option<&str>, lines: &[String]) {
    let _ = writeln!(script, "\tchain {name} {{");
    if let Some(hook) = hook {
        let _ = writeln!(script, "\t\t{hook}");
    }
    for line in lines {
        let _ = writeln!(script, "\t\t{line}");
    }
    let _ = writeln!(script, "\t}}");
}

/// The script that replaces the tables `inet <table>` and `bridge <table>` by the policy's rules,
/// in one transaction.
pub fn render(policy: &Policy, table: &str) -> String {
    let rules = rules(policy);
    let mut script = String::new();
    let _ = writeln!(
        script,
        "# kleened's packet filter: replaces tables inet {table} and bridge {table} as one transaction (nft -f)."
    );
    script.push_str(&render_removal(table));
    let _ = writeln!(script, "table inet {table} {{");
    let chains: [(&str, &str, &[String]); 6] = [
        (
            "loopback",
            "type filter hook prerouting priority raw; policy accept;",
            &rules.loopback,
        ),
        (
            "prerouting",
            "type nat hook prerouting priority dstnat; policy accept;",
            &rules.prerouting,
        ),
        (
            "output",
            "type nat hook output priority -100; policy accept;",
            &rules.output,
        ),
        (
            "postrouting",
            "type nat hook postrouting priority srcnat; policy accept;",
            &rules.postrouting,
        ),
        (
            "input",
            "type filter hook input priority filter; policy accept;",
            &rules.input,
        ),
        (
            "forward",
            "type filter hook forward priority filter; policy accept;",
            &rules.forward,
        ),
    ];
    for (name, hook, lines) in chains {
        chain(&mut script, name, Some(hook), lines);
    }
    let _ = writeln!(script, "}}");
    // Without members the bridge table stays empty: no hook on any bridge.
    if !rules.members.is_empty() {
        let _ = writeln!(script, "table bridge {table} {{");
        chain(
            &mut script,
            "ports",
            Some("type filter hook prerouting priority filter; policy accept;"),
            &rules.ports,
        );
        for (name, lines) in &rules.members {
            chain(&mut script, name, None, lines);
        }
        let _ = writeln!(script, "}}");
    }
    script
}

/// The script that removes the tables (the daemon's rules) and nothing else. Declaring a table
/// first makes its delete succeed when it does not exist yet.
pub fn render_removal(table: &str) -> String {
    format!(
        "table inet {table}\ndelete table inet {table}\ntable bridge {table}\ndelete table bridge {table}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{MacAddress, Protocol};

    fn network(id: &str, interface: &str) -> NetworkPolicy {
        NetworkPolicy {
            id: id.into(),
            interface: interface.into(),
            subnet: Some("10.13.37.0/24".parse().unwrap()),
            subnet6: None,
            nat: Some("up0".into()),
            icc: true,
            internal: false,
            bridge: true,
            members: vec![],
        }
    }

    fn port(host: &str, container: &str) -> PublishedPort {
        let host = PortRange::parse(host).unwrap();
        PublishedPort {
            interfaces: vec!["up0".into()],
            host_port: host,
            container_port: ContainerPort::parse(container, host).unwrap(),
            protocol: Protocol::Tcp,
            ip_address: Some("10.13.37.2".parse().unwrap()),
            ip_address6: None,
        }
    }

    #[test]
    fn ranges_map_port_by_port_and_single_ports_directly() {
        let single = port("8080", "80");
        assert_eq!(
            dnat_target(&single, Family::V4, "10.13.37.2"),
            "dnat ip to 10.13.37.2:80"
        );
        let from = port("8080:8081", "80:*");
        assert_eq!(
            dnat_target(&from, Family::V4, "10.13.37.2"),
            "dnat ip to 10.13.37.2 : tcp dport map { 8080 : 80, 8081 : 81 }"
        );
        let all_to_one = port("8080:8081", "80");
        assert_eq!(
            dnat_target(&all_to_one, Family::V6, "fd00::2"),
            "dnat ip6 to [fd00::2]:80"
        );
    }

    #[test]
    fn internal_drops_come_before_accepts_and_blocks_last() {
        let mut internal = network("n1", "kleene0");
        internal.internal = true;
        let policy = Policy {
            host_gateway: None,
            networks: vec![internal],
            ports: vec![port("8080", "80")],
        };
        let forward = rules(&policy).forward;
        let at = |needle: &str| forward.iter().position(|r| r.contains(needle)).unwrap();
        assert_eq!(at("established"), 0);
        assert!(at("kleened internal") < at("oifname \"kleene0\" accept"));
        assert!(at("ct status dnat accept") < at("kleened blocked"));
        assert!(
            !rules(&policy)
                .postrouting
                .iter()
                .any(|r| r.starts_with("oifname \"up0\"")),
            "no NAT out of an internal network"
        );
    }

    #[test]
    fn bridges_are_matched_by_interface_and_custom_networks_by_address() {
        let mut bridge = network("n1", "kleene0");
        bridge.internal = true;
        let mut custom = network("n2", "eth1");
        custom.internal = true;
        custom.bridge = false;
        let rules = rules(&Policy {
            host_gateway: None,
            networks: vec![bridge, custom],
            ports: vec![],
        });
        assert!(rules.forward.contains(
            &"iifname \"kleene0\" oifname != \"kleene0\" log prefix \"kleened internal: \" drop"
                .to_owned()
        ));
        assert!(rules.forward.contains(
            &"ip saddr 10.13.37.0/24 oifname != \"eth1\" log prefix \"kleened internal: \" drop"
                .to_owned()
        ));
        assert!(
            rules
                .input
                .iter()
                .all(|r| r.starts_with("iifname \"kleene0\"")),
            "{:?}",
            rules.input
        );
        assert_eq!(
            rules.input.last().unwrap(),
            "iifname \"kleene0\" log prefix \"kleened internal: \" drop"
        );
        assert!(rules.input[0].contains("established,related accept"));
    }

    #[test]
    fn published_ports_answer_on_their_interfaces_addresses_and_only_translated() {
        let rules = rules(&Policy {
            host_gateway: None,
            networks: vec![network("n1", "kleene0")],
            ports: vec![port("8080", "80")],
        });
        assert_eq!(
            rules.prerouting,
            ["iifname \"up0\" fib daddr . iif type local tcp dport 8080 dnat ip to 10.13.37.2:80"]
        );
        assert!(rules.forward.contains(&"ct status dnat accept".to_owned()));
        assert!(
            !rules.forward.iter().any(|r| r.contains("10.13.37.2")),
            "no direct way to the container's port: {:?}",
            rules.forward
        );
    }

    #[test]
    fn members_may_only_send_as_themselves() {
        let mut net = network("n1", "kleene0");
        net.members = vec![
            Member {
                interface: "kvabcdef012*".into(),
                mac: MacAddress::of_endpoint(Some("10.13.37.2".parse().unwrap()), "e"),
                ip_address: Some("10.13.37.2".parse().unwrap()),
                ip_address6: None,
            },
            Member {
                interface: "kv123456789*".into(),
                mac: MacAddress::of_endpoint(None, "123456789abc"),
                ip_address: None,
                ip_address6: Some("fd00::3".parse().unwrap()),
            },
        ];
        let rules = rules(&Policy {
            host_gateway: None,
            networks: vec![net],
            ports: vec![],
        });
        assert_eq!(
            rules.ports,
            [
                "iifname \"kvabcdef012*\" jump member_0",
                "iifname \"kv123456789*\" jump member_1"
            ]
        );
        let (_, first) = &rules.members[0];
        assert!(first.contains(&"ether saddr != 02:42:0a:0d:25:02 drop".to_owned()));
        assert!(first.contains(&"arp saddr ip != 10.13.37.2 drop".to_owned()));
        assert!(first.contains(&"arp saddr ether != 02:42:0a:0d:25:02 drop".to_owned()));
        assert!(first.contains(&"ip saddr != 10.13.37.2 drop".to_owned()));
        assert!(first.contains(&"ip6 saddr != { ::, fe80::42:aff:fe0d:2502 } drop".to_owned()));
        let (_, second) = &rules.members[1];
        assert!(
            second.contains(&"ether type != { ip6 } drop".to_owned()),
            "no IPv4 address, no IPv4 nor ARP: {second:?}"
        );
        assert!(second.iter().any(|r| r
            .starts_with("icmpv6 type nd-neighbor-advert @th,64,128 != { 0xfe80")
            && r.contains("0xfd000000000000000000000000000003")));
    }

    #[test]
    fn the_script_replaces_only_its_own_tables() {
        let script = render(&Policy::default(), "kleene");
        assert!(script.starts_with("# kleened"));
        assert!(script.contains(
            "table inet kleene\ndelete table inet kleene\ntable bridge kleene\ndelete table bridge kleene\ntable inet kleene {"
        ));
        assert_eq!(script.matches("chain ").count(), 6);
        assert!(
            !script.contains("table bridge kleene {"),
            "no members, no bridge hook"
        );
        assert_eq!(
            render_removal("kt"),
            "table inet kt\ndelete table inet kt\ntable bridge kt\ndelete table bridge kt\n"
        );
    }
}
