//! The policy both renderers read: networks (interface, subnets, NAT, icc, internal, and their
//! members: each container's host-side interface, MAC address and addresses) and published ports
//! (interfaces, host port or range, container port, protocol, the container's addresses), plus the
//! host's gateway interface.
//!
//! A container's MAC address on a network is derived from its address ([`MacAddress::of_endpoint`]),
//! so the wiring that sets it and the rules that check it cannot disagree, and a container replaced
//! by one with the same address keeps the address the host's neighbour cache holds.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

/// Everything the packet filter enforces for one daemon.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Policy {
    /// The interface of the host's default IPv4 route, if there is one.
    pub host_gateway: Option<String>,
    /// Every network, in name order.
    pub networks: Vec<NetworkPolicy>,
    /// Every published port: containers in creation order, each container's ports in order. Only
    /// ports whose container has an address are listed.
    pub ports: Vec<PublishedPort>,
}

/// One network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkPolicy {
    /// The network's ID (pf macros are named `kleenet_<id>_...`).
    pub id: String,
    /// Its host interface (a bridge, a loopback or dummy interface, or the custom interface).
    pub interface: String,
    /// IPv4 subnet, if it has one.
    pub subnet: Option<Ipv4Net>,
    /// IPv6 subnet, if it has one.
    pub subnet6: Option<Ipv6Net>,
    /// Interface that outgoing IPv4 traffic is translated to, if any.
    pub nat: Option<String>,
    /// Containers of the network may talk to each other.
    pub icc: bool,
    /// Traffic may not leave the network.
    pub internal: bool,
    /// Its interface is a bridge the daemon made, whose ports are its containers' interfaces
    /// (vnet). Rules that match whatever arrives on the interface (internal networks kept off the
    /// host, isolation by interface) are written only for such networks: a `custom` network's
    /// interface is the host's own, and a loopback network has no ports.
    pub bridge: bool,
    /// The network's containers that are ports of its bridge, with what they may send as.
    pub members: Vec<Member>,
}

/// A container on a network's bridge: the port its frames arrive on and the only addresses they
/// may carry as their source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The host-side interface, as the rules name it: FreeBSD's `epairNa` while the container
    /// runs; on Linux a pattern (`kv<endpoint>*`) naming the host end of the endpoint's veth at
    /// every start.
    pub interface: String,
    /// The MAC address of the container's side.
    pub mac: MacAddress,
    /// Its IPv4 address, if it has one.
    pub ip_address: Option<Ipv4Addr>,
    /// Its IPv6 address, if it has one (besides the link-local one of its MAC).
    pub ip_address6: Option<Ipv6Addr>,
}

/// An Ethernet (MAC) address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MacAddress(pub [u8; 6]);

impl MacAddress {
    /// The MAC address of a container's interface on a network: `02:42:` and the four bytes of
    /// its IPv4 address (locally administered, unicast, as Docker makes them), or, without an
    /// IPv4 address, `06:42:` and four bytes of a hash of the endpoint's ID (FNV-1a), so the two
    /// kinds never meet. Pure: the wiring and the packet filter both ask it.
    pub fn of_endpoint(ipv4: Option<Ipv4Addr>, endpoint_id: &str) -> MacAddress {
        let (first, rest) = match ipv4 {
            Some(ip) => (0x02, ip.octets()),
            None => {
                let mut hash: u32 = 0x811c_9dc5;
                for byte in endpoint_id.bytes() {
                    hash = (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193);
                }
                (0x06, hash.to_be_bytes())
            }
        };
        MacAddress([first, 0x42, rest[0], rest[1], rest[2], rest[3]])
    }

    /// The IPv6 link-local address an interface with this MAC address makes for itself (RFC 4291
    /// appendix A: the modified EUI-64 interface identifier, universal/local bit inverted), which
    /// both Linux and FreeBSD do by default.
    pub fn link_local(self) -> Ipv6Addr {
        let m = self.0;
        let word = |a: u8, b: u8| u16::from_be_bytes([a, b]);
        Ipv6Addr::new(
            0xfe80,
            0,
            0,
            0,
            word(m[0] ^ 0x02, m[1]),
            word(m[2], 0xff),
            word(0xfe, m[3]),
            word(m[4], m[5]),
        )
    }
}

impl std::fmt::Display for MacAddress {
    /// `02:42:0a:0d:25:02`, as ip(8), nft(8), ifconfig(8) and arp(8) take it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

/// Transport protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// `tcp` or `udp`, as both rule languages write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// Why a port specification was refused; the messages are the Kleened API's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    /// Not of the form `N`, `N:M` (or `N:*` for a container port).
    #[error("could not decode port publishing specification")]
    Shape,
    /// A number outside 0 - 65535.
    #[error("invalid port value (should be in the range 0 - 65535)")]
    Value,
    /// A range whose end is below its start.
    #[error("invalid port range {0}: the first port is above the last")]
    Reversed(String),
    /// A container range whose length differs from the host range.
    #[error("the container port range {container} is not as long as the host port range {host}")]
    Length {
        /// The host range as given.
        host: String,
        /// The container range as given.
        container: String,
    },
}

/// A host port or range: `N` or `N:M`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    /// First port.
    pub first: u16,
    /// Last port (equal to `first` for a single port).
    pub last: u16,
}

/// A port number: anything but an integer in 0-65535 is the reference's "invalid port value".
fn port_number(text: &str) -> Result<u16, PortError> {
    if text.is_empty() || !text.chars().all(|c| c.is_ascii_digit()) {
        return Err(PortError::Value);
    }
    text.parse::<u16>().map_err(|_| PortError::Value)
}

impl PortRange {
    /// Parses `N` or `N:M`.
    pub fn parse(text: &str) -> Result<PortRange, PortError> {
        // More than two parts is no shape the reference knows.
        if text.matches(':').count() > 1 {
            return Err(PortError::Shape);
        }
        let (first, last) = match text.split_once(':') {
            None => {
                let port = port_number(text)?;
                (port, port)
            }
            Some((first, last)) => (port_number(first)?, port_number(last)?),
        };
        if last < first {
            return Err(PortError::Reversed(text.to_owned()));
        }
        Ok(PortRange { first, last })
    }

    /// Whether it is a single port.
    pub fn is_single(self) -> bool {
        self.first == self.last
    }

    /// How many ports after the first it spans.
    pub fn span(self) -> u16 {
        self.last - self.first
    }

    /// Whether the two ranges share a port.
    pub fn overlaps(self, other: PortRange) -> bool {
        self.first <= other.last && other.first <= self.last
    }
}

impl std::fmt::Display for PortRange {
    /// `N`, or `N:M` as pf writes ranges.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_single() {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}:{}", self.first, self.last)
        }
    }
}

/// A container port: `N` (every host port goes to it), `N:M` (a range as long as the host's), or
/// `N:*` (the host range mapped onto the range starting at `N`, port by port).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerPort {
    /// `N` or `N:M`.
    Ports(PortRange),
    /// `N:*`.
    From(u16),
}

impl ContainerPort {
    /// Parses a container port for the host port range `host`.
    pub fn parse(text: &str, host: PortRange) -> Result<ContainerPort, PortError> {
        match text.split_once(':') {
            Some((first, "*")) => Ok(ContainerPort::From(port_number(first)?)),
            _ => {
                let range = PortRange::parse(text)?;
                if !range.is_single() && range.span() != host.span() {
                    return Err(PortError::Length {
                        host: host.to_string(),
                        container: text.to_owned(),
                    });
                }
                Ok(ContainerPort::Ports(range))
            }
        }
    }

    /// The container ports the host ports `host` reach, as one range: `N:*` becomes
    /// `N:(N + span)`, a single `N` stays `N`.
    pub fn resolved(self, host: PortRange) -> PortRange {
        match self {
            ContainerPort::Ports(range) => range,
            ContainerPort::From(first) => PortRange {
                first,
                last: first.saturating_add(host.span()),
            },
        }
    }
}

impl std::fmt::Display for ContainerPort {
    /// As given: `N`, `N:M` or `N:*`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ContainerPort::Ports(range) => range.fmt(f),
            ContainerPort::From(first) => write!(f, "{first}:*"),
        }
    }
}

/// A published port of a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedPort {
    /// Host interfaces it is published on (the daemon puts the host gateway's for `[]`).
    pub interfaces: Vec<String>,
    /// Host port or range.
    pub host_port: PortRange,
    /// Container port.
    pub container_port: ContainerPort,
    /// Protocol.
    pub protocol: Protocol,
    /// The container's first IPv4 address, if it has one.
    pub ip_address: Option<Ipv4Addr>,
    /// The container's first IPv6 address, if it has one.
    pub ip_address6: Option<Ipv6Addr>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_come_from_the_address_or_the_endpoint() {
        let mac = MacAddress::of_endpoint(Some("10.13.37.2".parse().unwrap()), "e1");
        assert_eq!(mac.to_string(), "02:42:0a:0d:25:02");
        assert_eq!(
            mac,
            MacAddress::of_endpoint(Some("10.13.37.2".parse().unwrap()), "another endpoint"),
            "the same address, the same MAC"
        );
        assert_eq!(
            mac.link_local(),
            "fe80::42:aff:fe0d:2502".parse::<Ipv6Addr>().unwrap(),
            "what Linux makes of 02:42:0a:0d:25:02"
        );
        let without = MacAddress::of_endpoint(None, "abcdef012345");
        assert_eq!(without, MacAddress::of_endpoint(None, "abcdef012345"));
        assert_ne!(without, MacAddress::of_endpoint(None, "abcdef012346"));
        assert_eq!(without.0[..2], [0x06, 0x42], "{without}");
        for mac in [mac, without] {
            assert_eq!(mac.0[0] & 0x03, 0x02, "locally administered unicast: {mac}");
        }
    }

    #[test]
    fn host_ports_and_ranges() {
        assert_eq!(
            PortRange::parse("8080").unwrap(),
            PortRange {
                first: 8080,
                last: 8080
            }
        );
        assert_eq!(PortRange::parse("5000:6000").unwrap().span(), 1000);
        // The reference's case: a port that is no integer is an invalid value.
        assert_eq!(PortRange::parse("3leet"), Err(PortError::Value));
        assert_eq!(
            PortRange::parse("3leet").unwrap_err().to_string(),
            "invalid port value (should be in the range 0 - 65535)"
        );
        assert_eq!(PortRange::parse("1:2:3"), Err(PortError::Shape));
        assert_eq!(
            PortRange::parse("1:2:3").unwrap_err().to_string(),
            "could not decode port publishing specification"
        );
        assert_eq!(PortRange::parse("70000"), Err(PortError::Value));
        assert_eq!(
            PortRange::parse("70000").unwrap_err().to_string(),
            "invalid port value (should be in the range 0 - 65535)"
        );
        assert!(matches!(
            PortRange::parse("90:80"),
            Err(PortError::Reversed(_))
        ));
        assert_eq!(
            PortRange::parse("8080:8090").unwrap().to_string(),
            "8080:8090"
        );
        let range = |text| PortRange::parse(text).unwrap();
        assert!(range("8080:8090").overlaps(range("8090")));
        assert!(range("8085").overlaps(range("8080:8090")));
        assert!(!range("8080:8090").overlaps(range("8091:9000")));
        assert!(!range("80").overlaps(range("81")));
    }

    #[test]
    fn container_ports() {
        let host = PortRange::parse("8080:8090").unwrap();
        let from = ContainerPort::parse("80:*", host).unwrap();
        assert_eq!(from.to_string(), "80:*");
        assert_eq!(from.resolved(host).to_string(), "80:90");
        let single = PortRange::parse("8080").unwrap();
        assert_eq!(
            ContainerPort::parse("80:*", single)
                .unwrap()
                .resolved(single)
                .to_string(),
            "80"
        );
        assert!(matches!(
            ContainerPort::parse("80:85", host),
            Err(PortError::Length { .. })
        ));
        assert_eq!(
            ContainerPort::parse("80:90", host)
                .unwrap()
                .resolved(host)
                .to_string(),
            "80:90"
        );
        assert_eq!(ContainerPort::parse("x:*", host), Err(PortError::Value));
        assert_eq!(ContainerPort::parse("1:2:*", host), Err(PortError::Shape));
    }
}
