//! pf.conf rules for FreeBSD: [`render`] turns a [`Policy`] into the three blocks of rules kleened
//! owns (macros and tables, translation, filtering), and [`fill_template`] puts them into the
//! user's template at its three [`PLACEHOLDERS`].
//!
//! The network rules are those of the Kleened API 0.1.1 reference (§5.5), so a pf.conf written by
//! Kleene and one written by kleened read alike, with these differences:
//! - the "host gateway" input of the internal-network rules is the policy's detected
//!   [`Policy::host_gateway`] (the reference reads it from a configuration key that is never set,
//!   so it never emits the IPv6 rule);
//! - a rule naming `$kleenet_host_gw_if` is left out when no host gateway is known, because that
//!   macro is then undefined and pfctl would refuse the whole file ("macro not defined");
//! - defences against containers that craft their own packets (raw sockets), first in the
//!   filtering block: loopback destinations from anywhere but `lo0` are blocked; each running vnet
//!   container's epair only passes packets from the container's own addresses (antispoofing, so
//!   the rules by address that follow cannot be fooled); an internal bridge network is kept off
//!   every address of the host (`to (self)`) and off everything outside its subnets, whatever
//!   the packets' source;
//! - a published port is passed only for packets its `rdr` translated (`tag`/`tagged`), and the
//!   reference's extra `pass` of the container's port on every network interface is gone: other
//!   networks' containers do not reach the container's port directly.
//!
//! Everything here is pure and deterministic: the same policy gives the same text. The crate's
//! README explains what each rule does and why.

use crate::model::{Member, NetworkPolicy, Policy, PublishedPort};

/// Replaced by the macros (`kleenet_...="..."` definitions).
pub const MACROS_PLACEHOLDER: &str = "<%= kleene_macros %>";
/// Replaced by the translation rules (`nat`, `rdr`).
pub const TRANSLATION_PLACEHOLDER: &str = "<%= kleene_translation %>";
/// Replaced by the filtering rules (`block`, `pass`).
pub const FILTERING_PLACEHOLDER: &str = "<%= kleene_filtering %>";

/// What a pf.conf template must contain, in the order pf needs the rules (pf.conf(5), "STATEMENT
/// ORDER": macros, then translation, then filtering). These are Kleene's EEx placeholders, so
/// a template written for Kleene works unchanged. This is the one place they are spelled.
pub const PLACEHOLDERS: [&str; 3] = [
    MACROS_PLACEHOLDER,
    TRANSLATION_PLACEHOLDER,
    FILTERING_PLACEHOLDER,
];

/// The loopback interface, always part of kleened's interface lists.
const LOOPBACK: &str = "lo0";

/// The tag an `rdr` of a published port puts on what it translates, and the only packets the
/// port's `pass` rules pass (pf.conf(5) PARAMETERS, `tag`: "to determine if packets have been
/// processed by translation rules").
pub const PUBLISHED_TAG: &str = "kleened_published";

/// The rules kleened generates, one rule (or macro definition) per line, in the order pf reads
/// them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PfRules {
    /// Macro definitions: the host gateway, the list of network interfaces, and per network its
    /// interface, subnets, NAT interface and the interfaces of its running containers; then the
    /// tables of the IPv6 addresses each running vnet container may send from (pf.conf(5)
    /// STATEMENT ORDER: tables, like macros, may come anywhere before their use).
    pub macros: Vec<String>,
    /// `nat` rules of the networks, then `rdr` rules of the published ports.
    pub translation: Vec<String>,
    /// `block` and `pass` rules of the networks, then `pass` rules of the published ports.
    pub filtering: Vec<String>,
}

/// The template cannot take the rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// One or more placeholders are not in the template.
    #[error("the pf.conf template lacks {}", missing.join(", "))]
    MissingPlaceholders {
        /// The placeholders not found, in [`PLACEHOLDERS`] order.
        missing: Vec<&'static str>,
    },
}

/// The placeholders `template` lacks, in [`PLACEHOLDERS`] order (empty when it has them all).
pub fn missing_placeholders(template: &str) -> Vec<&'static str> {
    PLACEHOLDERS
        .into_iter()
        .filter(|p| !template.contains(p))
        .collect()
}

/// `template` with each placeholder replaced by its rules joined with `\n` (every occurrence,
/// as Kleene's EEx rendering does). Rule text is inserted verbatim and never searched for
/// placeholders itself. Fails, naming them, when placeholders are missing.
pub fn fill_template(template: &str, rules: &PfRules) -> Result<String, TemplateError> {
    let missing = missing_placeholders(template);
    if !missing.is_empty() {
        return Err(TemplateError::MissingPlaceholders { missing });
    }
    let blocks = [
        rules.macros.join("\n"),
        rules.translation.join("\n"),
        rules.filtering.join("\n"),
    ];
    let mut out =
        String::with_capacity(template.len() + blocks.iter().map(String::len).sum::<usize>());
    let mut rest = template;
    // One pass over the template: the earliest placeholder next, so text already inserted is
    // never scanned again.
    while let Some((at, index)) = PLACEHOLDERS
        .iter()
        .enumerate()
        .filter_map(|(index, p)| rest.find(p).map(|at| (at, index)))
        .min()
    {
        out.push_str(&rest[..at]);
        out.push_str(&blocks[index]);
        rest = &rest[at + PLACEHOLDERS[index].len()..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The macro prefix of a network: `kleenet_<id>`.
fn prefix(network: &NetworkPolicy) -> String {
    format!("kleenet_{}", network.id)
}

/// An optional interface name, treating the empty string as absent.
fn present(name: &Option<String>) -> Option<&str> {
    name.as_deref().filter(|n| !n.is_empty())
}

/// Renders the policy as pf.conf rules (reference §5.5).
pub fn render(policy: &Policy) -> PfRules {
    let mut rules = PfRules::default();
    let host_gateway = present(&policy.host_gateway);

    // Macros. `kleenet_network_interfaces` is always defined: the port rules use it.
    if let Some(gateway) = host_gateway {
        rules
            .macros
            .push(format!("kleenet_host_gw_if=\"{gateway}\""));
    }
    rules
        .macros
        .push(network_interfaces_macro(&policy.networks));
    for network in &policy.networks {
        network_macros(network, &mut rules.macros);
    }
    for member in policy.networks.iter().flat_map(|n| &n.members) {
        rules.macros.push(format!(
            "table <{}> const {{ {} }}",
            spoof_table(member),
            own_sources6(member).join(", ")
        ));
    }

    // Loopback destinations only from lo0 (pf.conf(5) BLOCKING SPOOFED TRAFFIC writes the same
    // for sources: `block drop in on ! lo0 inet from 127.0.0.1/8 to any`).
    rules.filtering.push(format!(
        "block in quick log on ! {LOOPBACK} inet from any to 127.0.0.0/8"
    ));
    rules.filtering.push(format!(
        "block in quick log on ! {LOOPBACK} inet6 from any to ::1"
    ));
    for member in policy.networks.iter().flat_map(|n| &n.members) {
        member_filtering(member, &mut rules.filtering);
    }
    for network in &policy.networks {
        if let Some(rule) = network_translation(network) {
            rules.translation.push(rule);
        }
        network_filtering(network, host_gateway.is_some(), &mut rules.filtering);
    }

    for port in &policy.ports {
        port_translation(port, &mut rules.translation);
        port_filtering(port, &mut rules.filtering);
    }
    rules
}

/// `kleenet_network_interfaces="{lo0}"`, or `"{lo0, if1,if2}"`: `lo0, ` and then the networks'
/// interfaces joined by a bare comma, exactly as Kleene writes it (pf accepts both separators).
fn network_interfaces_macro(networks: &[NetworkPolicy]) -> String {
    if networks.is_empty() {
        return format!("kleenet_network_interfaces=\"{{{LOOPBACK}}}\"");
    }
    let interfaces: Vec<&str> = networks.iter().map(|n| n.interface.as_str()).collect();
    format!(
        "kleenet_network_interfaces=\"{{{LOOPBACK}, {}}}\"",
        interfaces.join(",")
    )
}

/// `P_interface`, `P_subnet`, `P_subnet6`, `P_nat_if` (each only when set), then always
/// `P_all_interfaces="{<iface>, lo0, <member>, ...}"`.
fn network_macros(network: &NetworkPolicy, macros: &mut Vec<String>) {
    let p = prefix(network);
    if !network.interface.is_empty() {
        macros.push(format!("{p}_interface=\"{}\"", network.interface));
    }
    if let Some(subnet) = network.subnet {
        macros.push(format!("{p}_subnet=\"{subnet}\""));
    }
    if let Some(subnet6) = network.subnet6 {
        macros.push(format!("{p}_subnet6=\"{subnet6}\""));
    }
    if let Some(nat) = present(&network.nat) {
        macros.push(format!("{p}_nat_if=\"{nat}\""));
    }
    let mut all = vec![network.interface.as_str(), LOOPBACK];
    all.extend(network.members.iter().map(|m| m.interface.as_str()));
    macros.push(format!("{p}_all_interfaces=\"{{{}}}\"", all.join(", ")));
    if network.internal && network.bridge {
        // Where the containers' packets arrive: their epairs (bridge members, filtered on the way
        // in) and the bridge (the host's input). Both, as a state made on one would pass the
        // packet on the other (states are floating).
        let mut arriving = vec![network.interface.as_str()];
        arriving.extend(network.members.iter().map(|m| m.interface.as_str()));
        macros.push(format!(
            "{p}_container_interfaces=\"{{{}}}\"",
            arriving.join(", ")
        ));
    }
}

/// The table of the IPv6 sources a member may use: `kleenet_spoof_<epair>` (at most 29
/// characters: pf's table names are shorter than 32).
fn spoof_table(member: &Member) -> String {
    format!("kleenet_spoof_{}", member.interface)
}

/// The IPv6 sources of a member: `::` (duplicate address detection), its link-local address
/// (from its MAC) and its address.
fn own_sources6(member: &Member) -> Vec<String> {
    let mut sources = vec!["::".to_owned(), member.mac.link_local().to_string()];
    sources.extend(member.ip_address6.map(|ip| ip.to_string()));
    sources
}

/// Antispoofing of a running vnet container: what comes in on its epair from another source is
/// blocked (all IPv4 when it has no IPv4 address), and so are router advertisements and
/// redirects. ARP is not filtered by pf on a bridge (if_bridge(4): "ARP and REVARP packets are
/// forwarded without being filtered"); forging it needs bpf(4), which the jails' devfs ruleset
/// hides.
fn member_filtering(member: &Member, filtering: &mut Vec<String>) {
    let epair = &member.interface;
    filtering.push(match member.ip_address {
        Some(ip) => format!("block in quick log on {epair} inet from ! {ip} to any"),
        None => format!("block in quick log on {epair} inet all"),
    });
    filtering.push(format!(
        "block in quick log on {epair} inet6 from ! <{}> to any",
        spoof_table(member)
    ));
    // A container is no router: router advertisements and redirects (ICMPv6 `routeradv`, `redir`;
    // ICMP `redir`) from it would move the host's and its neighbours' routes to it.
    filtering.push(format!(
        "block in quick log on {epair} inet6 proto icmp6 icmp6-type {{ routeradv, redir }}"
    ));
    if member.ip_address.is_some() {
        filtering.push(format!(
            "block in quick log on {epair} inet proto icmp icmp-type redir"
        ));
    }
}

/// `nat` from the network's addresses to the NAT interface's, unless the network is internal.
fn network_translation(network: &NetworkPolicy) -> Option<String> {
    present(&network.nat)?;
    if network.internal {
        return None;
    }
    let p = prefix(network);
    Some(format!(
        "nat on ${p}_nat_if from (${p}_interface:network) to any -> (${p}_nat_if)"
    ))
}

/// The block and pass rules of one network: for each family with a subnet, first the `block in`
/// rules (IPv4, then IPv6), then the icc/internal rules (all IPv4 ones, then all IPv6 ones).
fn network_filtering(
    network: &NetworkPolicy,
    host_gateway_known: bool,
    filtering: &mut Vec<String>,
) {
    let p = prefix(network);
    // (subnet macro, is IPv4) for the families the network has.
    let families: Vec<(String, bool)> = [
        network.subnet.map(|_| (format!("${p}_subnet"), true)),
        network.subnet6.map(|_| (format!("${p}_subnet6"), false)),
    ]
    .into_iter()
    .flatten()
    .collect();

    for (subnet, _) in &families {
        filtering.push(format!("block in log from any to {subnet}"));
    }
    if network.internal && network.bridge && !families.is_empty() {
        // Whatever arrives from its containers, whatever its source: nothing of the host is theirs (its gateway, other networks' gateways, its own addresses), nor is
        // anything outside the network. Answers to the host's own connections pass by their
        // state, which pf checks before any rule. The host's IPv6 needs the containers'
        // neighbour discovery. Services of the host offered to an internal network (DNS on its
        // gateway) would be passed here, before the blocks; there are none yet.
        let interface = format!("${p}_container_interfaces");
        if network.subnet6.is_some() {
            filtering.push(format!(
                "pass in quick on {interface} inet6 proto icmp6 icmp6-type {{ neighbrsol, neighbradv }} no state"
            ));
        }
        filtering.push(format!(
            "block in quick log on {interface} from any to (self)"
        ));
        for (subnet, ipv4) in &families {
            let family = if *ipv4 { "inet" } else { "inet6" };
            filtering.push(format!(
                "block in quick log on {interface} {family} from any to ! {subnet}"
            ));
        }
    }
    let nat = present(&network.nat).is_some();
    for (subnet, ipv4) in &families {
        let icc = format!("pass quick on ${p}_all_interfaces from {subnet} to {subnet}");
        let deny = format!("block out quick log on $kleenet_network_interfaces from {subnet}");
        // Where the network's traffic would leave the host: NAT is IPv4 only, so IPv6 always
        // leaves by the host gateway.
        let exit = if *ipv4 && nat {
            Some(format!("block out quick log on ${p}_nat_if from {subnet}"))
        } else if host_gateway_known {
            Some(format!(
                "block out quick log on $kleenet_host_gw_if from {subnet}"
            ))
        } else {
            None
        };
        match (network.internal, network.icc) {
            (false, true) => filtering.push(icc),
            (false, false) => {}
            (true, true) => {
                filtering.push(icc);
                filtering.push(deny);
                filtering.extend(exit);
            }
            (true, false) => {
                filtering.push(deny);
                // Without icc the reference blocks the exit only when the network has NAT
                // (for both families); kept as it is (see the README).
                if nat {
                    filtering.extend(exit);
                }
            }
        }
    }
}

/// `rdr` of the host port on each interface to the container's address: every interface for
/// IPv4, then every interface for IPv6, tagged [`PUBLISHED_TAG`]. `to (IF)` is the interface's
/// own addresses, followed as they change: a packet that arrives on IF for another address of
/// the host is not translated. The container port is written as given (`80:*` stays `80:*`: pf
/// maps a host range onto the range starting there, pf.conf(5) "TRANSLATION").
fn port_translation(port: &PublishedPort, translation: &mut Vec<String>) {
    let proto = port.protocol.as_str();
    let host = port.host_port;
    let container = port.container_port;
    let addresses = [
        ("inet", port.ip_address.map(|a| a.to_string())),
        ("inet6", port.ip_address6.map(|a| a.to_string())),
    ];
    for (family, address) in &addresses {
        let Some(address) = address else { continue };
        for interface in &port.interfaces {
            translation.push(format!(
                "rdr on {interface} {family} proto {proto} from any to ({interface}) port {host} tag {PUBLISHED_TAG} -> {address} port {container}"
            ));
        }
    }
}

/// `pass` of the translated packets: on each interface with the port's protocol, for IPv4 and
/// then IPv6, only when the port's `rdr` tagged them. Filter rules see packets after
/// translation, so they name the container's address and port (`80:*` resolved to `80`, or
/// `80:90` for an 11-port host range).
fn port_filtering(port: &PublishedPort, filtering: &mut Vec<String>) {
    let proto = port.protocol.as_str();
    let resolved = port.container_port.resolved(port.host_port);
    let addresses = [
        ("inet", port.ip_address.map(|a| a.to_string())),
        ("inet6", port.ip_address6.map(|a| a.to_string())),
    ];
    for (family, address) in &addresses {
        let Some(address) = address else { continue };
        for interface in &port.interfaces {
            filtering.push(format!(
                "pass quick on {interface} {family} proto {proto} from any to {address} port {resolved} tagged {PUBLISHED_TAG}"
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    //! The checks of the reference's `pf_config_test.exs` (§9.9), as unit tests.
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::model::{ContainerPort, MacAddress, PortRange, Protocol};

    /// The loopback rules every filtering block starts with.
    const LOOPBACK_RULES: [&str; 2] = [
        "block in quick log on ! lo0 inet from any to 127.0.0.0/8",
        "block in quick log on ! lo0 inet6 from any to ::1",
    ];

    /// The rules, with the loopback rules every filtering block starts with taken off (checked
    /// here), so the reference's checks read the rest as the reference has them.
    fn render(policy: &Policy) -> PfRules {
        let mut rules = super::render(policy);
        assert_eq!(rules.filtering[..2], LOOPBACK_RULES);
        rules.filtering.drain(..2);
        rules
    }

    /// A network as the reference's tests have them: its interface not a bridge of the daemon's,
    /// so only the reference's rules (the bridge's own are checked apart).
    fn network(id: &str, interface: &str) -> NetworkPolicy {
        NetworkPolicy {
            id: id.into(),
            interface: interface.into(),
            subnet: Some("10.13.37.0/24".parse().unwrap()),
            subnet6: None,
            nat: None,
            icc: true,
            internal: false,
            bridge: false,
            members: vec![],
        }
    }

    fn member(epair: &str, ip: &str) -> Member {
        let ip = ip.parse().unwrap();
        Member {
            interface: epair.into(),
            mac: MacAddress::of_endpoint(Some(ip), "e"),
            ip_address: Some(ip),
            ip_address6: None,
        }
    }

    fn port(interfaces: &[&str], host: &str, container: &str) -> PublishedPort {
        let host_port = PortRange::parse(host).unwrap();
        PublishedPort {
            interfaces: interfaces.iter().map(|i| (*i).to_owned()).collect(),
            host_port,
            container_port: ContainerPort::parse(container, host_port).unwrap(),
            protocol: Protocol::Tcp,
            ip_address: Some("10.13.37.2".parse().unwrap()),
            ip_address6: None,
        }
    }

    fn with_ports(ports: Vec<PublishedPort>) -> Policy {
        Policy {
            host_gateway: Some("em0".into()),
            networks: vec![],
            ports,
        }
    }

    #[test]
    fn host_gateway_macro_only_when_known() {
        let known = render(&Policy {
            host_gateway: Some("vtnet0".into()),
            ..Policy::default()
        });
        assert!(known
            .macros
            .contains(&"kleenet_host_gw_if=\"vtnet0\"".to_owned()));
        let unknown = render(&Policy::default());
        assert!(unknown
            .macros
            .iter()
            .all(|m| !m.contains("kleenet_host_gw_if")));
    }

    #[test]
    fn network_interfaces_macro_lists_lo0_then_every_network() {
        let none = render(&Policy::default());
        assert_eq!(none.macros, ["kleenet_network_interfaces=\"{lo0}\""]);
        let two = render(&Policy {
            networks: vec![network("aaa", "kleene0"), network("bbb", "kleene1")],
            ..Policy::default()
        });
        assert!(two
            .macros
            .contains(&"kleenet_network_interfaces=\"{lo0, kleene0,kleene1}\"".to_owned()));
    }

    #[test]
    fn network_macros_only_for_what_is_set_and_all_interfaces_always() {
        let mut net = network("netid", "kleene0");
        net.members = vec![
            member("epair0a", "10.13.37.2"),
            member("epair3a", "10.13.37.3"),
        ];
        let rules = render(&Policy {
            networks: vec![net],
            ..Policy::default()
        });
        assert_eq!(
            rules.macros,
            [
                "kleenet_network_interfaces=\"{lo0, kleene0}\"",
                "kleenet_netid_interface=\"kleene0\"",
                "kleenet_netid_subnet=\"10.13.37.0/24\"",
                "kleenet_netid_all_interfaces=\"{kleene0, lo0, epair0a, epair3a}\"",
                "table <kleenet_spoof_epair0a> const { ::, fe80::42:aff:fe0d:2502 }",
                "table <kleenet_spoof_epair3a> const { ::, fe80::42:aff:fe0d:2503 }",
            ]
        );
    }

    #[test]
    fn members_only_send_from_their_own_addresses_before_any_other_rule() {
        let mut net = network("netid", "kleene0");
        let mut v6 = member("epair1a", "10.13.37.3");
        v6.ip_address = None;
        v6.ip_address6 = Some("fd00::3".parse().unwrap());
        net.members = vec![member("epair0a", "10.13.37.2"), v6];
        let rules = render(&Policy {
            networks: vec![net],
            ..Policy::default()
        });
        assert_eq!(
            rules.filtering[..7],
            [
                "block in quick log on epair0a inet from ! 10.13.37.2 to any",
                "block in quick log on epair0a inet6 from ! <kleenet_spoof_epair0a> to any",
                "block in quick log on epair0a inet6 proto icmp6 icmp6-type { routeradv, redir }",
                "block in quick log on epair0a inet proto icmp icmp-type redir",
                "block in quick log on epair1a inet all",
                "block in quick log on epair1a inet6 from ! <kleenet_spoof_epair1a> to any",
                "block in quick log on epair1a inet6 proto icmp6 icmp6-type { routeradv, redir }",
            ]
        );
        assert!(rules.macros.contains(
            &"table <kleenet_spoof_epair1a> const { ::, fe80::42:aff:fe0d:2503, fd00::3 }"
                .to_owned()
        ));
    }

    #[test]
    fn internal_bridges_are_kept_off_the_host_and_in_their_subnets() {
        let mut net = network("n", "kleene0");
        net.bridge = true;
        net.internal = true;
        net.subnet6 = Some("fd00::/64".parse().unwrap());
        let rules = render(&Policy {
            networks: vec![net.clone()],
            ..Policy::default()
        });
        assert_eq!(
            rules.filtering[2..7],
            [
                "pass in quick on $kleenet_n_container_interfaces inet6 proto icmp6 icmp6-type { neighbrsol, neighbradv } no state",
                "block in quick log on $kleenet_n_container_interfaces from any to (self)",
                "block in quick log on $kleenet_n_container_interfaces inet from any to ! $kleenet_n_subnet",
                "block in quick log on $kleenet_n_container_interfaces inet6 from any to ! $kleenet_n_subnet6",
                "pass quick on $kleenet_n_all_interfaces from $kleenet_n_subnet to $kleenet_n_subnet",
            ]
        );
        assert!(rules
            .macros
            .contains(&"kleenet_n_container_interfaces=\"{kleene0}\"".to_owned()));
        net.internal = false;
        let external = render(&Policy {
            networks: vec![net],
            ..Policy::default()
        });
        assert!(!external.filtering.iter().any(|r| r.contains("(self)")));
    }

    #[test]
    fn published_port_gives_rdr_and_pass() {
        let rules = render(&with_ports(vec![port(&["em0"], "8080", "80")]));
        assert_eq!(
            rules.translation,
            ["rdr on em0 inet proto tcp from any to (em0) port 8080 tag kleened_published -> 10.13.37.2 port 80"]
        );
        assert_eq!(
            rules.filtering,
            ["pass quick on em0 inet proto tcp from any to 10.13.37.2 port 80 tagged kleened_published"]
        );
    }

    #[test]
    fn one_rdr_per_interface() {
        let rules = render(&with_ports(vec![port(&["em0", "em1"], "8080", "80")]));
        assert_eq!(
            rules.translation,
            [
                "rdr on em0 inet proto tcp from any to (em0) port 8080 tag kleened_published -> 10.13.37.2 port 80",
                "rdr on em1 inet proto tcp from any to (em1) port 8080 tag kleened_published -> 10.13.37.2 port 80",
            ]
        );
        assert_eq!(rules.filtering.len(), 2);
    }

    #[test]
    fn udp_is_carried() {
        let mut udp = port(&["em0"], "5353", "53");
        udp.protocol = Protocol::Udp;
        let rules = render(&with_ports(vec![udp]));
        assert_eq!(
            rules.translation,
            ["rdr on em0 inet proto udp from any to (em0) port 5353 tag kleened_published -> 10.13.37.2 port 53"]
        );
        assert_eq!(
            rules.filtering,
            ["pass quick on em0 inet proto udp from any to 10.13.37.2 port 53 tagged kleened_published"]
        );
    }

    #[test]
    fn ipv6_address_gives_inet6_rules_after_the_inet_ones() {
        let mut both = port(&["em0"], "8080", "80");
        both.ip_address6 = Some("fd00:13:37::2".parse().unwrap());
        let rules = render(&with_ports(vec![both]));
        assert_eq!(
            rules.translation,
            [
                "rdr on em0 inet proto tcp from any to (em0) port 8080 tag kleened_published -> 10.13.37.2 port 80",
                "rdr on em0 inet6 proto tcp from any to (em0) port 8080 tag kleened_published -> fd00:13:37::2 port 80",
            ]
        );
        assert_eq!(
            rules.filtering[1..],
            ["pass quick on em0 inet6 proto tcp from any to fd00:13:37::2 port 80 tagged kleened_published"]
        );
        let mut v6_only = port(&["em0"], "8080", "80");
        v6_only.ip_address = None;
        v6_only.ip_address6 = Some("fd00:13:37::2".parse().unwrap());
        let rules = render(&with_ports(vec![v6_only]));
        assert!(rules.translation.iter().all(|r| r.contains(" inet6 ")));
        assert!(rules.filtering.iter().all(|r| r.contains(" inet6 ")));
    }

    #[test]
    fn a_port_without_addresses_gives_no_rules() {
        let mut none = port(&["em0"], "8080", "80");
        none.ip_address = None;
        let rules = render(&with_ports(vec![none]));
        assert!(rules.translation.is_empty());
        assert!(rules.filtering.is_empty());
    }

    #[test]
    fn several_containers_each_add_rules_in_order() {
        let mut second = port(&["em0"], "8081", "81");
        second.ip_address = Some("10.13.37.3".parse().unwrap());
        let rules = render(&with_ports(vec![port(&["em0"], "8080", "80"), second]));
        assert_eq!(rules.translation.len(), 2);
        assert!(rules.translation[0].ends_with("-> 10.13.37.2 port 80"));
        assert!(rules.translation[1].ends_with("-> 10.13.37.3 port 81"));
        assert_eq!(rules.filtering.len(), 2);
    }

    #[test]
    fn no_containers_no_translation() {
        let rules = render(&Policy {
            host_gateway: Some("em0".into()),
            networks: vec![network("netid", "kleene0")],
            ports: vec![],
        });
        assert!(rules.translation.is_empty());
    }

    #[test]
    fn host_range_onto_container_range_start() {
        let rules = render(&with_ports(vec![port(&["em0"], "8080:8090", "80:*")]));
        assert_eq!(
            rules.translation,
            ["rdr on em0 inet proto tcp from any to (em0) port 8080:8090 tag kleened_published -> 10.13.37.2 port 80:*"]
        );
        assert!(rules
            .filtering
            .iter()
            .all(|r| r.ends_with(" port 80:90 tagged kleened_published")));
    }

    #[test]
    fn single_host_port_onto_container_range_start() {
        let rules = render(&with_ports(vec![port(&["em0"], "8080", "80:*")]));
        assert!(rules.translation[0]
            .ends_with("port 8080 tag kleened_published -> 10.13.37.2 port 80:*"));
        assert!(rules
            .filtering
            .iter()
            .all(|r| r.ends_with(" port 80 tagged kleened_published")));
        assert!(rules.filtering.iter().all(|r| !r.contains("80:*")));
    }

    /// Network `netid` with NAT on em0 and host gateway em0, as the reference's isolation tests.
    fn isolation(icc: bool, internal: bool) -> PfRules {
        let mut net = network("netid", "kleene0");
        net.nat = Some("em0".into());
        net.icc = icc;
        net.internal = internal;
        render(&Policy {
            host_gateway: Some("em0".into()),
            networks: vec![net],
            ports: vec![],
        })
    }

    const BLOCK_IN: &str = "block in log from any to $kleenet_netid_subnet";
    const ICC: &str =
        "pass quick on $kleenet_netid_all_interfaces from $kleenet_netid_subnet to $kleenet_netid_subnet";
    const DENY: &str =
        "block out quick log on $kleenet_network_interfaces from $kleenet_netid_subnet";
    const DENY_NAT: &str =
        "block out quick log on $kleenet_netid_nat_if from $kleenet_netid_subnet";

    #[test]
    fn incoming_traffic_to_the_network_is_always_blocked() {
        for (icc, internal) in [(true, true), (true, false), (false, true), (false, false)] {
            assert_eq!(isolation(icc, internal).filtering[0], BLOCK_IN);
        }
    }

    #[test]
    fn icc_passes_traffic_within_the_network() {
        assert!(isolation(true, false).filtering.contains(&ICC.to_owned()));
        assert!(isolation(true, true).filtering.contains(&ICC.to_owned()));
        assert!(!isolation(false, false).filtering.contains(&ICC.to_owned()));
        assert!(!isolation(false, true).filtering.contains(&ICC.to_owned()));
    }

    #[test]
    fn internal_blocks_traffic_leaving_the_network() {
        for icc in [true, false] {
            let internal = isolation(icc, true).filtering;
            assert!(internal.contains(&DENY.to_owned()));
            assert!(internal.contains(&DENY_NAT.to_owned()));
            let external = isolation(icc, false).filtering;
            assert!(!external.contains(&DENY.to_owned()));
            assert!(!external.contains(&DENY_NAT.to_owned()));
        }
    }

    #[test]
    fn nat_gives_a_nat_rule_unless_internal() {
        assert_eq!(
            isolation(true, false).translation,
            ["nat on $kleenet_netid_nat_if from ($kleenet_netid_interface:network) to any -> ($kleenet_netid_nat_if)"]
        );
        assert!(isolation(true, true).translation.is_empty());
    }

    #[test]
    fn every_combination_for_both_families_in_order() {
        let mut net = network("n", "kleene0");
        net.subnet6 = Some("fd00::/64".parse().unwrap());
        let gw = "block out quick log on $kleenet_host_gw_if from";
        let cases: [(bool, bool, bool, &[&str]); 8] = [
            (false, true, false, &[
                "block in log from any to $kleenet_n_subnet",
                "block in log from any to $kleenet_n_subnet6",
                "pass quick on $kleenet_n_all_interfaces from $kleenet_n_subnet to $kleenet_n_subnet",
                "pass quick on $kleenet_n_all_interfaces from $kleenet_n_subnet6 to $kleenet_n_subnet6",
            ]),
            (false, true, true, &[
                "block in log from any to $kleenet_n_subnet",
                "block in log from any to $kleenet_n_subnet6",
                "pass quick on $kleenet_n_all_interfaces from $kleenet_n_subnet to $kleenet_n_subnet",
                "pass quick on $kleenet_n_all_interfaces from $kleenet_n_subnet6 to $kleenet_n_subnet6",
            ]),
            (false, false, false, &[
                "block in log from any to $kleenet_n_subnet",
                "block in log from any to $kleenet_n_subnet6",
            ]),
            (false, false, true, &[
                "block in log from any to $kleenet_n_subnet",
                "block in log from any to $kleenet_n_subnet6",
            ]),
            (true, true, false, &[
                "block in log from any to $kleenet_n_subnet",
                "block in log from any to $kleenet_n_subnet6",
                "pass quick on $kleenet_n_all_interfaces from $kleenet_n_subnet to $kleenet_n_subnet",
                "block out quick log on $kleenet_network_interfaces from $kleenet_n_subnet",
                &format!("{gw} $kleenet_n_subnet"),
                "pass quick on $kleenet_n_all_interfaces from $kleenet_n_subnet6 to $kleenet_n_subnet6",
                "block out quick log on $kleenet_network_interfaces from $kleenet_n_subnet6",
                &format!("{gw} $kleenet_n_subnet6"),
            ]),
            (true, true, true, &[
                "block in log from any to $kleenet_n_subnet",
                "block in log from any to $kleenet_n_subnet6",
                "pass quick on $kleenet_n_all_interfaces from $kleenet_n_subnet to $kleenet_n_subnet",
                "block out quick log on $kleenet_network_interfaces from $kleenet_n_subnet",
                "block out quick log on $kleenet_n_nat_if from $kleenet_n_subnet",
                "pass quick on $kleenet_n_all_interfaces from $kleenet_n_subnet6 to $kleenet_n_subnet6",
                "block out quick log on $kleenet_network_interfaces from $kleenet_n_subnet6",
                &format!("{gw} $kleenet_n_subnet6"),
            ]),
            (true, false, false, &[
                "block in log from any to $kleenet_n_subnet",
                "block in log from any to $kleenet_n_subnet6",
                "block out quick log on $kleenet_network_interfaces from $kleenet_n_subnet",
                "block out quick log on $kleenet_network_interfaces from $kleenet_n_subnet6",
            ]),
            (true, false, true, &[
                "block in log from any to $kleenet_n_subnet",
                "block in log from any to $kleenet_n_subnet6",
                "block out quick log on $kleenet_network_interfaces from $kleenet_n_subnet",
                "block out quick log on $kleenet_n_nat_if from $kleenet_n_subnet",
                "block out quick log on $kleenet_network_interfaces from $kleenet_n_subnet6",
                &format!("{gw} $kleenet_n_subnet6"),
            ]),
        ];
        for (internal, icc, nat, want) in cases {
            let mut net = net.clone();
            net.internal = internal;
            net.icc = icc;
            net.nat = nat.then(|| "em0".to_owned());
            let rules = render(&Policy {
                host_gateway: Some("em0".into()),
                networks: vec![net],
                ports: vec![],
            });
            assert_eq!(
                rules.filtering, want,
                "internal={internal} icc={icc} nat={nat}"
            );
        }
    }

    #[test]
    fn no_rule_names_the_host_gateway_when_it_is_unknown() {
        for (icc, nat) in [(true, false), (true, true), (false, true)] {
            let mut net = network("n", "kleene0");
            net.subnet6 = Some("fd00::/64".parse().unwrap());
            net.internal = true;
            net.icc = icc;
            net.nat = nat.then(|| "em0".to_owned());
            let rules = render(&Policy {
                host_gateway: None,
                networks: vec![net],
                ports: vec![],
            });
            assert!(
                rules
                    .filtering
                    .iter()
                    .all(|r| !r.contains("kleenet_host_gw_if")),
                "{:?}",
                rules.filtering
            );
            // The rest stays: the IPv4 NAT exit rule does not depend on the gateway.
            assert_eq!(
                rules
                    .filtering
                    .iter()
                    .any(|r| r.contains("block out quick log on $kleenet_n_nat_if")),
                nat
            );
        }
    }

    #[test]
    fn a_network_without_subnets_has_no_filtering() {
        let mut net = network("n", "kleene0");
        net.subnet = None;
        net.internal = true;
        let rules = render(&Policy {
            host_gateway: Some("em0".into()),
            networks: vec![net],
            ports: vec![],
        });
        assert!(rules.filtering.is_empty());
        assert!(rules
            .macros
            .contains(&"kleenet_n_all_interfaces=\"{kleene0, lo0}\"".to_owned()));
    }

    #[test]
    fn rendering_is_deterministic() {
        let policy = Policy {
            host_gateway: Some("em0".into()),
            networks: vec![network("aaa", "kleene0"), network("bbb", "kleene1")],
            ports: vec![port(&["em0", "em1"], "8080:8090", "80:*")],
        };
        assert_eq!(render(&policy), render(&policy.clone()));
    }

    fn rules() -> PfRules {
        PfRules {
            macros: vec!["a=\"1\"".into(), "b=\"2\"".into()],
            translation: vec![],
            filtering: vec!["pass all".into()],
        }
    }

    #[test]
    fn template_keeps_the_markers_and_gets_the_rules() {
        let template = "### KLEENED MACROS START ###\n<%= kleene_macros %>\n### END\n\
                        ### KLEENED TRANSLATION RULES START ###\n<%= kleene_translation %>\n\
                        ### KLEENED FILTERING RULES START ###\n<%= kleene_filtering %>\n";
        let text = fill_template(template, &rules()).unwrap();
        assert_eq!(
            text,
            "### KLEENED MACROS START ###\na=\"1\"\nb=\"2\"\n### END\n\
             ### KLEENED TRANSLATION RULES START ###\n\n\
             ### KLEENED FILTERING RULES START ###\npass all\n"
        );
    }

    #[test]
    fn template_without_a_placeholder_is_refused_naming_it() {
        let err =
            fill_template("<%= kleene_macros %>\n<%= kleene_filtering %>\n", &rules()).unwrap_err();
        assert_eq!(
            err,
            TemplateError::MissingPlaceholders {
                missing: vec![TRANSLATION_PLACEHOLDER]
            }
        );
        assert_eq!(
            err.to_string(),
            "the pf.conf template lacks <%= kleene_translation %>"
        );
        assert_eq!(missing_placeholders("pass all\n").len(), 3);
    }

    #[test]
    fn inserted_rules_are_not_searched_for_placeholders() {
        let sneaky = PfRules {
            macros: vec![format!("# {FILTERING_PLACEHOLDER}")],
            translation: vec![],
            filtering: vec!["pass all".into()],
        };
        let text = fill_template(&PLACEHOLDERS.join("\n"), &sneaky).unwrap();
        assert_eq!(text, format!("# {FILTERING_PLACEHOLDER}\n\npass all"));
    }

    #[test]
    fn every_occurrence_is_replaced() {
        let template = format!("{}\n{}", PLACEHOLDERS.join("\n"), FILTERING_PLACEHOLDER);
        let text = fill_template(&template, &rules()).unwrap();
        assert_eq!(text, "a=\"1\"\nb=\"2\"\n\npass all\npass all");
    }
}
