//! How a container's jail is put on its networks. A `vnet` jail gets one epair(4) per endpoint:
//! the `a` end on the network's bridge ([`vnet_host_side`]), the `b` end moved into the jail and
//! configured from inside with the image's ifconfig(8) and route(8) ([`vnet_inside`]). An `ipnet`
//! jail shares the host's stack: its addresses are aliased on the networks' interfaces and given
//! to the jail as `ip4.addr`/`ip6.addr` ([`super::jail::address_params`], [`super::jail::address_lists`]). Pure functions,
//! pinned by the goldens of `kleened/tests/freebsd_commands.rs`.

use std::net::IpAddr;

use kleene_runner::CommandSpec;

use super::ifconfig::{self as net, IFCONFIG};
use super::jail::JEXEC;
use crate::platform::network::ContainerEndpoint;

/// route(8), run inside vnet jails from the container's image.
const ROUTE: &str = "/sbin/route";

/// The host side of a vnet endpoint whose epair's `a` end is `a_end`: made a member of the
/// network's bridge, marked as the daemon's (when it has a mark) and brought up.
pub fn vnet_host_side(bridge: &str, a_end: &str, marker: Option<&str>) -> Vec<CommandSpec> {
    let up = match marker {
        Some(marker) => net::mark_up(a_end, marker),
        None => CommandSpec::new(IFCONFIG).args([a_end, "up"]),
    };
    vec![net::add_member(bridge, a_end), up]
}

/// jexec(8) `<jid> <program> ...`: a program of the container's image, run in the jail with the
/// daemon's credentials (root), in the jail's root directory.
fn in_jail<I, S>(jid: u32, program: &str, args: I) -> CommandSpec
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    CommandSpec::new(JEXEC)
        .arg(jid.to_string())
        .arg(program)
        .args(args)
}

/// Inside a vnet jail: its own `lo0` up with 127.0.0.1 (a new vnet's loopback has no address,
/// and nothing like rc.d/netif runs in a container).
pub fn jail_loopback(jid: u32) -> CommandSpec {
    in_jail(jid, IFCONFIG, ["lo0", "inet", "127.0.0.1/8", "up"])
}

/// Inside a vnet jail: an address with its subnet's prefix length on `interface` (the first
/// address brings the interface up); IPv6 also clears `ifdisabled`.
pub fn jail_address(jid: u32, interface: &str, address: ipnet::IpNet) -> CommandSpec {
    match address {
        ipnet::IpNet::V4(address) => in_jail(
            jid,
            IFCONFIG,
            [interface.to_owned(), "inet".into(), address.to_string()],
        ),
        ipnet::IpNet::V6(address) => in_jail(
            jid,
            IFCONFIG,
            [
                interface.to_owned(),
                "inet6".into(),
                address.to_string(),
                "-ifdisabled".into(),
            ],
        ),
    }
}

/// Inside a vnet jail: the default route of the gateway's family.
pub fn jail_default_route(jid: u32, gateway: IpAddr) -> CommandSpec {
    let family = if gateway.is_ipv4() { "-inet" } else { "-inet6" };
    in_jail(
        jid,
        ROUTE,
        [
            "add".to_owned(),
            family.into(),
            "default".into(),
            gateway.to_string(),
        ],
    )
}

/// Everything configured inside a vnet jail `jid` whose endpoints' epairs have their `b` ends in
/// it: `lo0`, each endpoint's addresses on its `b` end, then the default route of each family
/// through the first endpoint that has a gateway of that family (a second default route would
/// fail: "route already in table").
pub fn vnet_inside(jid: u32, wired: &[(ContainerEndpoint, String)]) -> Vec<CommandSpec> {
    let mut commands = vec![jail_loopback(jid)];
    for (endpoint, b_end) in wired {
        if let Some(address) = endpoint.address {
            commands.push(jail_address(jid, b_end, address.into()));
        }
        if let Some(address) = endpoint.address6 {
            commands.push(jail_address(jid, b_end, address.into()));
        }
    }
    if let Some(gateway) = wired
        .iter()
        .filter(|(e, _)| e.address.is_some())
        .find_map(|(e, _)| e.gateway)
    {
        commands.push(jail_default_route(jid, IpAddr::V4(gateway)));
    }
    if let Some(gateway) = wired
        .iter()
        .filter(|(e, _)| e.address6.is_some())
        .find_map(|(e, _)| e.gateway6)
    {
        commands.push(jail_default_route(jid, IpAddr::V6(gateway)));
    }
    commands
}
