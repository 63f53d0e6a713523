//! The policy as an nftables script for Linux, with the meaning of the pf.conf rules.
//!
//! The daemon owns one table, `inet <name>`; the script declares it, deletes it and fills it again,
//! and `nft -f` runs a script as one transaction: the old rules stay in force until the new ones
//! are complete, and a script the kernel refuses changes nothing. Nothing outside the table is
//! touched.
//!
//! | pf.conf (FreeBSD) | nftables (Linux) |
//! |---|---|
//! | `nat on $nat_if from (iface:network) to any -> ($nat_if)` | `postrouting`: `oifname NAT ip saddr SUBNET masquerade` |
//! | `rdr on IF ... to (IF) port H -> IP port C` | `prerouting`: `iifname IF fib daddr type local ... dport H dnat to IP:C`; also `output` for connections the host itself makes to any of its addresses (127.0.0.1 included; the bridge needs `route_localnet` and `postrouting` masquerades 127/8 towards it) |
//! | `block in log from any to SUBNET` | `forward`: `ip daddr SUBNET log drop`, after the accepts below |
//! | icc: `pass quick on $all_interfaces from SUBNET to SUBNET` | `forward`: `iifname IF oifname IF ip saddr SUBNET ip daddr SUBNET accept`; bridged traffic between containers is also kept apart or let through at layer 2 by the bridge port's `isolated` flag, which the runtime sets when icc is off |
//! | internal: `block out quick log on $kleenet_network_interfaces from SUBNET`, `block out ... on $nat_if` | `forward`: `ip saddr SUBNET oifname != IF log drop`, first |
//! | `pass quick on IF ... to IP port C` (published ports) | `forward`: `ct status dnat accept` and `ip daddr IP dport C accept` |
//!
//! Connections a container made are let back in (`ct state established,related accept`), as pf's
//! state does. Traffic to published ports from another container of the same network comes back
//! through the host (hairpin), so it is masqueraded to the gateway on the way.

use std::fmt::Write as _;

use crate::model::{ContainerPort, NetworkPolicy, Policy, PortRange, PublishedPort};

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
    /// `prerouting` (nat, dstnat): published ports arriving on their interfaces.
    pub prerouting: Vec<String>,
    /// `output` (nat, dstnat): published ports the host itself connects to.
    pub output: Vec<String>,
    /// `postrouting` (nat, srcnat): masquerading.
    pub postrouting: Vec<String>,
    /// `forward` (filter): isolation, icc, internal, published ports.
    pub forward: Vec<String>,
}

/// The rules of the policy, chain by chain.
pub fn rules(policy: &Policy) -> NftRules {
    let mut rules = NftRules::default();
    for port in &policy.ports {
        let proto = port.protocol.as_str();
        let host = ports(port.host_port);
        for (family, address) in port_addresses(port) {
            let target = dnat_target(port, family, &address);
            for interface in &port.interfaces {
                rules.prerouting.push(format!(
                    "iifname {} fib daddr type local {proto} dport {host} {target}",
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
    rules
        .forward
        .push("ct state established,related accept".to_owned());
    for network in policy.networks.iter().filter(|n| n.internal) {
        for (family, subnet) in subnets(network) {
            rules.forward.push(format!(
                "{} saddr {subnet} oifname != {} log prefix \"kleened internal: \" drop",
                family.keyword(),
                quoted(&network.interface)
            ));
        }
    }
    for network in policy.networks.iter().filter(|n| n.icc) {
        let interface = quoted(&network.interface);
        for (family, subnet) in subnets(network) {
            let keyword = family.keyword();
            rules.forward.push(format!(
                "iifname {interface} oifname {interface} {keyword} saddr {subnet} {keyword} daddr {subnet} accept"
            ));
        }
    }
    if !policy.ports.is_empty() {
        rules.forward.push("ct status dnat accept".to_owned());
    }
    for port in &policy.ports {
        let proto = port.protocol.as_str();
        let container = ports(port.container_port.resolved(port.host_port));
        for (family, address) in port_addresses(port) {
            rules.forward.push(format!(
                "{} daddr {address} {proto} dport {container} accept",
                family.keyword()
            ));
        }
    }
    for network in &policy.networks {
        for (family, subnet) in subnets(network) {
            rules.forward.push(format!(
                "{} daddr {subnet} log prefix \"kleened blocked: \" drop",
                family.keyword()
            ));
        }
    }
    rules
}

/// The script that replaces the table `inet <table>` by the policy's rules, in one transaction.
pub fn render(policy: &Policy, table: &str) -> String {
    let rules = rules(policy);
    let mut script = String::new();
    let _ = writeln!(
        script,
        "# kleened's packet filter: replaces table inet {table} as one transaction (nft -f)."
    );
    // Declaring the table first makes the delete succeed when it does not exist yet.
    let _ = writeln!(script, "table inet {table}");
    let _ = writeln!(script, "delete table inet {table}");
    let _ = writeln!(script, "table inet {table} {{");
    let chains: [(&str, &str, &[String]); 4] = [
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
            "forward",
            "type filter hook forward priority filter; policy accept;",
            &rules.forward,
        ),
    ];
    for (name, hook, lines) in chains {
        let _ = writeln!(script, "\tchain {name} {{");
        let _ = writeln!(script, "\t\t{hook}");
        for line in lines {
            let _ = writeln!(script, "\t\t{line}");
        }
        let _ = writeln!(script, "\t}}");
    }
    let _ = writeln!(script, "}}");
    script
}

/// The script that removes the table (the daemon's rules) and nothing else.
pub fn render_removal(table: &str) -> String {
    format!("table inet {table}\ndelete table inet {table}\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Protocol;

    fn network(id: &str, interface: &str) -> NetworkPolicy {
        NetworkPolicy {
            id: id.into(),
            interface: interface.into(),
            subnet: Some("10.13.37.0/24".parse().unwrap()),
            subnet6: None,
            nat: Some("up0".into()),
            icc: true,
            internal: false,
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
        assert!(at("kleened internal") < at("oifname \"kleene0\" ip saddr"));
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
    fn the_script_replaces_only_its_own_table() {
        let script = render(&Policy::default(), "kleene");
        assert!(script.starts_with("# kleened"));
        assert!(script.contains("table inet kleene\ndelete table inet kleene\ntable inet kleene {"));
        assert_eq!(script.matches("chain ").count(), 4);
        assert_eq!(
            render_removal("kt"),
            "table inet kt\ndelete table inet kt\n"
        );
    }
}
