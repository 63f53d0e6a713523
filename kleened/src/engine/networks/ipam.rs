//! Addresses of networks: reading subnets and gateways as the API gives them, the `<auto>`
//! gateway, and the lowest free address of a subnet. Pure; the engine runs the allocation inside
//! the store transaction that records the endpoint, so two connects never get the same address.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// What `subnet`/`gateway` values say when they are not an address of the right family.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Not a CIDR block or an address.
    #[error("could not parse cidr block: \"{0}\"")]
    Unparsable(String),
    /// IPv6 where IPv4 was wanted, or the other way round.
    #[error("wrong IP protocol")]
    Family,
}

/// A CIDR block or a bare address (a /32 or /128), as the API accepts subnets and gateways.
fn cidr(text: &str) -> Result<IpNet, AddressError> {
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| AddressError::Unparsable(text.to_owned()))
}

/// An IPv4 subnet (`""` is none), with its host bits cleared.
pub fn subnet4(text: &str) -> Result<Option<Ipv4Net>, AddressError> {
    match text {
        "" => Ok(None),
        _ => match cidr(text)? {
            IpNet::V4(net) => Ok(Some(net.trunc())),
            IpNet::V6(_) => Err(AddressError::Family),
        },
    }
}

/// An IPv6 subnet (`""` is none), with its host bits cleared.
pub fn subnet6(text: &str) -> Result<Option<Ipv6Net>, AddressError> {
    match text {
        "" => Ok(None),
        _ => match cidr(text)? {
            IpNet::V6(net) => Ok(Some(net.trunc())),
            IpNet::V4(_) => Err(AddressError::Family),
        },
    }
}

/// The literal `<auto>` of gateways and endpoint addresses.
pub const AUTO: &str = "<auto>";

/// Checks a gateway value: `""`, `<auto>`, or an address (or block) of the family.
pub fn check_gateway(text: &str, v6: bool) -> Result<(), AddressError> {
    if text.is_empty() || text == AUTO {
        return Ok(());
    }
    match (cidr(text)?, v6) {
        (IpNet::V4(_), false) | (IpNet::V6(_), true) => Ok(()),
        _ => Err(AddressError::Family),
    }
}

/// The IPv4 gateway of vnet containers: the subnet's first address for `<auto>`, the given
/// address otherwise, none for `""` or without a subnet.
pub fn gateway4(text: &str, subnet: Option<Ipv4Net>) -> Option<Ipv4Addr> {
    let subnet = subnet?;
    match text {
        "" => None,
        AUTO => first_host4(subnet),
        other => match cidr(other).ok()? {
            IpNet::V4(net) => Some(net.addr()),
            IpNet::V6(_) => None,
        },
    }
}

/// The IPv6 gateway, likewise.
pub fn gateway6(text: &str, subnet: Option<Ipv6Net>) -> Option<Ipv6Addr> {
    let subnet = subnet?;
    match text {
        "" => None,
        AUTO => first_host6(subnet),
        other => match cidr(other).ok()? {
            IpNet::V6(net) => Some(net.addr()),
            IpNet::V4(_) => None,
        },
    }
}

/// The network address + 1, when the subnet has it.
fn first_host4(subnet: Ipv4Net) -> Option<Ipv4Addr> {
    let first = u32::from(subnet.network()).checked_add(1)?;
    subnet
        .contains(&Ipv4Addr::from(first))
        .then(|| first.into())
}

fn first_host6(subnet: Ipv6Net) -> Option<Ipv6Addr> {
    let first = u128::from(subnet.network()).checked_add(1)?;
    subnet
        .contains(&Ipv6Addr::from(first))
        .then(|| first.into())
}

/// The lowest IPv4 address of `subnet` not in `taken`, from the network address + 1 up to the
/// last address. The broadcast address (the last one) is left out when `keep_broadcast` is false:
/// a container on a bridge cannot use it, while a /32 alias (FreeBSD ipnet) can.
pub fn next4(subnet: Ipv4Net, taken: &HashSet<Ipv4Addr>, keep_broadcast: bool) -> Option<Ipv4Addr> {
    let first = u32::from(subnet.network()).checked_add(1)?;
    let mut last = u32::from(subnet.broadcast());
    if !keep_broadcast && subnet.prefix_len() < 31 {
        last -= 1;
    }
    (first..=last)
        .map(Ipv4Addr::from)
        .find(|candidate| !taken.contains(candidate))
}

/// The lowest IPv6 address of `subnet` not in `taken`, from the network address + 1 on.
pub fn next6(subnet: Ipv6Net, taken: &HashSet<Ipv6Addr>) -> Option<Ipv6Addr> {
    let first = u128::from(subnet.network()).checked_add(1)?;
    let last = u128::from(subnet.broadcast());
    // At most one more candidate than addresses taken needs looking at.
    (first..=last)
        .take(taken.len() + 1)
        .map(Ipv6Addr::from)
        .find(|candidate| !taken.contains(candidate))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_and_their_messages() {
        assert_eq!(subnet4("").unwrap(), None);
        assert_eq!(
            subnet4("10.13.37.5/24").unwrap().unwrap().to_string(),
            "10.13.37.0/24"
        );
        assert_eq!(
            subnet4("10.1.2.3").unwrap().unwrap().to_string(),
            "10.1.2.3/32"
        );
        assert_eq!(
            subnet4("172.18.0.0-16").unwrap_err().to_string(),
            "could not parse cidr block: \"172.18.0.0-16\""
        );
        assert_eq!(
            subnet4("beef:beef::/64").unwrap_err().to_string(),
            "wrong IP protocol"
        );
        assert_eq!(
            subnet6("10.1.2.0/24").unwrap_err().to_string(),
            "wrong IP protocol"
        );
        assert_eq!(check_gateway("127.0.0.1", true), Err(AddressError::Family));
        assert_eq!(
            check_gateway("beef:beef::1", false),
            Err(AddressError::Family)
        );
        assert!(check_gateway(AUTO, false).is_ok());
    }

    #[test]
    fn a_slash_30_gives_three_addresses_to_aliases_and_two_to_bridges() {
        let subnet: Ipv4Net = "10.0.0.0/30".parse().unwrap();
        let mut taken = HashSet::new();
        let mut given = vec![];
        while let Some(ip) = next4(subnet, &taken, true) {
            taken.insert(ip);
            given.push(ip.to_string());
        }
        assert_eq!(given, ["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
        let mut taken = HashSet::new();
        taken.insert(Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(
            next4(subnet, &taken, false),
            Some(Ipv4Addr::new(10, 0, 0, 2))
        );
        taken.insert(Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(
            next4(subnet, &taken, false),
            None,
            "the broadcast is left out"
        );
    }

    #[test]
    fn auto_gateways_are_the_first_address() {
        let subnet = subnet4("172.19.1.0/24").unwrap();
        assert_eq!(gateway4(AUTO, subnet), Some(Ipv4Addr::new(172, 19, 1, 1)));
        assert_eq!(
            gateway4("172.19.1.99", subnet),
            Some(Ipv4Addr::new(172, 19, 1, 99))
        );
        assert_eq!(gateway4("", subnet), None);
        assert_eq!(gateway4(AUTO, None), None);
        let subnet6 = subnet6("fdef:1234:5678::/48").unwrap();
        assert_eq!(
            gateway6(AUTO, subnet6),
            Some("fdef:1234:5678::1".parse().unwrap())
        );
        let mut taken = HashSet::new();
        taken.insert("fdef:1234:5678::1".parse().unwrap());
        assert_eq!(
            next6(subnet6.unwrap(), &taken),
            Some("fdef:1234:5678::2".parse().unwrap())
        );
    }
}
