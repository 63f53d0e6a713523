//! ifconfig(8) and netstat(1) command lines and parsers of what they print: interfaces made,
//! marked, addressed, bridged, moved into a jail and destroyed; their names, status and the
//! default route's interface read back. Used by the network host ([`super::net`]) for networks and
//! by the jail runtime ([`super::wiring`]) for the epairs of vnet containers and the aliases of
//! ipnet containers. Pure functions, pinned by the goldens of `kleened/tests/freebsd_commands.rs`
//! (`network-*.txt`).

use std::net::IpAddr;

use ipnet::{Ipv4Net, Ipv6Net};
use kleene_api::NetworkType;
use kleene_runner::CommandSpec;

/// ifconfig(8).
pub const IFCONFIG: &str = "/sbin/ifconfig";
/// netstat(1).
pub const NETSTAT: &str = "/usr/bin/netstat";

fn ifconfig<I, S>(args: I) -> CommandSpec
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    CommandSpec::new(IFCONFIG).args(args)
}

/// ifconfig(8) `-l`: the names of every interface, on one line.
pub fn list_interfaces() -> CommandSpec {
    ifconfig(["-l"])
}

/// ifconfig(8) `-a`: the status of every interface.
pub fn status_all() -> CommandSpec {
    ifconfig(["-a"])
}

/// ifconfig(8): the status of one interface (flags, description, addresses, bridge members).
pub fn status(name: &str) -> CommandSpec {
    ifconfig([name])
}

/// The cloner that makes a network's interface: if_bridge(4) for bridge networks, lo(4) for
/// loopback networks; `custom` networks use an interface that exists.
pub fn cloner(kind: NetworkType) -> Option<&'static str> {
    match kind {
        NetworkType::Bridge => Some("bridge"),
        NetworkType::Loopback => Some("lo"),
        NetworkType::Custom => None,
    }
}

/// ifconfig(8) `<cloner> create name <name>`: a new interface of that kind, named at once.
pub fn clone_named(cloner: &str, name: &str) -> CommandSpec {
    ifconfig([cloner, "create", "name", name])
}

/// ifconfig(8) `<name> description <marker> up`: the daemon's mark on an interface it made, and
/// the interface up.
pub fn mark_up(name: &str, marker: &str) -> CommandSpec {
    ifconfig([name, "description", marker, "up"])
}

/// ifconfig(8) `<name> inet <address>/<prefix> alias`: an IPv4 address added to those the
/// interface has.
pub fn add_inet(name: &str, address: Ipv4Net) -> CommandSpec {
    ifconfig([
        name.to_owned(),
        "inet".into(),
        address.to_string(),
        "alias".into(),
    ])
}

/// ifconfig(8) `<name> inet6 <address>/<prefix> alias -ifdisabled`: an IPv6 address added, with
/// IPv6 enabled on the interface (rc.conf(5)'s default marks a new interface `ifdisabled`).
pub fn add_inet6(name: &str, address: Ipv6Net) -> CommandSpec {
    ifconfig([
        name.to_owned(),
        "inet6".into(),
        address.to_string(),
        "alias".into(),
        "-ifdisabled".into(),
    ])
}

/// The alias an ipnet container's address gets on its network's interface: the address alone
/// (`/32`, `/128`), so it never changes the interface's own subnet route.
pub fn add_alias(name: &str, address: IpAddr) -> CommandSpec {
    match address {
        IpAddr::V4(ip) => add_inet(name, Ipv4Net::from(ip)),
        IpAddr::V6(ip) => ifconfig([
            name.to_owned(),
            "inet6".into(),
            format!("{ip}/128"),
            "alias".into(),
        ]),
    }
}

/// ifconfig(8) `<name> inet|inet6 <address> -alias`: an address removed from the interface.
pub fn remove_alias(name: &str, address: IpAddr) -> CommandSpec {
    let family = if address.is_ipv4() { "inet" } else { "inet6" };
    ifconfig([
        name.to_owned(),
        family.into(),
        address.to_string(),
        "-alias".into(),
    ])
}

/// ifconfig(8) `<bridge> addm <member>`: an interface made a member of the bridge.
pub fn add_member(bridge: &str, member: &str) -> CommandSpec {
    ifconfig([bridge, "addm", member])
}

/// ifconfig(8) `<bridge> deletem <member>`: a member taken off the bridge.
pub fn remove_member(bridge: &str, member: &str) -> CommandSpec {
    ifconfig([bridge, "deletem", member])
}

/// ifconfig(8) `<name> destroy`: a cloned interface removed (for an epair, both ends).
pub fn destroy(name: &str) -> CommandSpec {
    ifconfig([name, "destroy"])
}

/// ifconfig(8) `epair create`: a new epair(4); prints the name of its `a` end.
pub fn create_epair() -> CommandSpec {
    ifconfig(["epair", "create"])
}

/// ifconfig(8) `<name> vnet <jid>`: the interface moved into the vnet jail `jid`.
pub fn move_to_jail(name: &str, jid: u32) -> CommandSpec {
    ifconfig([name.to_owned(), "vnet".into(), jid.to_string()])
}

/// netstat(1) `--libxo json -rn`: the routing tables as JSON, addresses numeric.
pub fn routes() -> CommandSpec {
    CommandSpec::new(NETSTAT).args(["--libxo", "json", "-rn"])
}

/// The two ends of the epair whose `a` end `ifconfig epair create` printed (`epair3a` →
/// `epair3a`, `epair3b`).
pub fn epair_ends(printed: &str) -> Option<(String, String)> {
    let a = printed.trim();
    let unit = a.strip_prefix("epair")?.strip_suffix('a')?;
    if unit.is_empty() || !unit.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((a.to_owned(), format!("epair{unit}b")))
}

/// One interface as ifconfig(8) shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterfaceStatus {
    /// Its name.
    pub name: String,
    /// Its description, if it has one (the daemon's mark on its own interfaces).
    pub description: Option<String>,
    /// Its IPv4 and IPv6 addresses (without a scope or prefix).
    pub addresses: Vec<IpAddr>,
    /// The members of a bridge.
    pub members: Vec<String>,
}

/// The names `ifconfig -l` printed.
pub fn parse_interface_list(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

/// ifconfig(8)'s status output, one entry per interface: a block starts with `<name>: flags=` at
/// the start of a line; its other lines are indented (`description: ...`, `inet <address> ...`,
/// `inet6 <address>[%scope] ...`, `member: <name> flags=...`).
pub fn parse_status(text: &str) -> Vec<InterfaceStatus> {
    let mut interfaces: Vec<InterfaceStatus> = vec![];
    for line in text.lines() {
        if !line.starts_with(char::is_whitespace) {
            if let Some((name, rest)) = line.split_once(": ") {
                if rest.starts_with("flags=") {
                    interfaces.push(InterfaceStatus {
                        name: name.to_owned(),
                        ..InterfaceStatus::default()
                    });
                }
            }
            continue;
        }
        let Some(current) = interfaces.last_mut() else {
            continue;
        };
        let line = line.trim();
        if let Some(description) = line.strip_prefix("description: ") {
            current.description = Some(description.trim_end().to_owned());
        } else if let Some(rest) = line
            .strip_prefix("inet ")
            .or_else(|| line.strip_prefix("inet6 "))
        {
            let word = rest.split_whitespace().next().unwrap_or_default();
            // `inet 10.0.0.1/24` with IFCONFIG_FORMAT=inet:cidr; `fe80::1%lo0` has a scope.
            let word = word.split(['/', '%']).next().unwrap_or_default();
            if let Ok(address) = word.parse() {
                current.addresses.push(address);
            }
        } else if let Some(rest) = line.strip_prefix("member: ") {
            if let Some(member) = rest.split_whitespace().next() {
                current.members.push(member.to_owned());
            }
        }
    }
    interfaces
}

/// The interface of the IPv4 default route in `netstat --libxo json -rn`'s output: in the table
/// whose `address-family` is `Internet`, the `rt-entry` whose `destination` is `default`, its
/// `interface-name`. The tables are looked for wherever they are nested.
pub fn parse_default_interface(json: &str) -> Result<Option<String>, String> {
    fn find(value: &serde_json::Value) -> Option<String> {
        match value {
            serde_json::Value::Object(map) => {
                if map.get("address-family").and_then(|f| f.as_str()) == Some("Internet") {
                    let entries = map.get("rt-entry").and_then(|e| e.as_array())?;
                    return entries
                        .iter()
                        .find(|e| e["destination"].as_str() == Some("default"))
                        .and_then(|e| e["interface-name"].as_str())
                        .map(str::to_owned);
                }
                map.values().find_map(find)
            }
            serde_json::Value::Array(items) => items.iter().find_map(find),
            _ => None,
        }
    }
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("cannot read netstat's JSON: {e}"))?;
    Ok(find(&value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::freebsd::testdata::{BRIDGE_STATUS, MARKER};
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn v4(text: &str) -> Ipv4Addr {
        text.parse().unwrap()
    }

    fn v6(text: &str) -> Ipv6Addr {
        text.parse().unwrap()
    }

    #[test]
    fn ifconfig_status_is_read_block_by_block() {
        let text = format!(
            "em0: flags=8863<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST> metric 0 mtu 1500\n\
             \tinet 10.0.2.15/24 broadcast 10.0.2.255\n{BRIDGE_STATUS}\
             lo0: flags=8049<UP,LOOPBACK,RUNNING,MULTICAST> metric 0 mtu 16384\n\
             \tinet 127.0.0.1 netmask 0xff000000\n\tinet6 ::1 prefixlen 128\n"
        );
        let status = parse_status(&text);
        assert_eq!(
            status.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["em0", "kleene0", "lo0"]
        );
        assert_eq!(status[0].addresses, [IpAddr::V4(v4("10.0.2.15"))]);
        assert_eq!(status[0].description, None);
        let bridge = &status[1];
        assert_eq!(bridge.description.as_deref(), Some(MARKER));
        assert_eq!(
            bridge.addresses,
            [
                IpAddr::V4(v4("10.13.37.1")),
                IpAddr::V6(v6("fe80::5a9c:fcff:fe10:ffe4")),
                IpAddr::V6(v6("fd00:13:37::1")),
            ]
        );
        assert_eq!(bridge.members, ["epair1a", "epair0a"]);
        assert_eq!(
            parse_interface_list("em0 lo0 kleene0\n"),
            ["em0", "lo0", "kleene0"]
        );
    }

    #[test]
    fn epair_names_come_from_what_ifconfig_printed() {
        assert_eq!(
            epair_ends("epair12a\n"),
            Some(("epair12a".into(), "epair12b".into()))
        );
        for other in ["", "epaira", "epair1b", "bridge0", "epair1a epair2a"] {
            assert_eq!(epair_ends(other), None, "{other:?}");
        }
    }

    #[test]
    fn the_default_route_interface_is_read_from_netstat_json() {
        let json = r#"{"__version": "1", "statistics": {"route-information": {"route-table": {"rt-family": [
            {"address-family": "Internet", "rt-entry": [
                {"destination": "default", "gateway": "10.0.2.2", "flags": "UGS", "interface-name": "em0"},
                {"destination": "127.0.0.1", "gateway": "link#2", "flags": "UH", "interface-name": "lo0"}]},
            {"address-family": "Internet6", "rt-entry": [
                {"destination": "default", "gateway": "fe80::1%em1", "flags": "UGS", "interface-name": "em1"}]}
        ]}}}}"#;
        assert_eq!(
            parse_default_interface(json).unwrap().as_deref(),
            Some("em0")
        );
        let without = r#"{"statistics": {"route-information": {"route-table": {"rt-family": [
            {"address-family": "Internet", "rt-entry": [
                {"destination": "127.0.0.1", "gateway": "link#2", "flags": "UH", "interface-name": "lo0"}]}]}}}}"#;
        assert_eq!(parse_default_interface(without).unwrap(), None);
        assert!(parse_default_interface("netstat: nope").is_err());
    }
}
