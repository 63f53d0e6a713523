//! The policy both renderers read: networks (interface, subnets, NAT, icc, internal, the host-side
//! interfaces of their running containers) and published ports (interfaces, host port or range,
//! container port, protocol, the container's addresses), plus the host's gateway interface.

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
    /// Host-side interfaces of the network's running vnet containers (FreeBSD `epairNa`; on Linux
    /// the veth ends, which are ports of the bridge).
    pub members: Vec<String>,
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

fn port_number(text: &str) -> Result<u16, PortError> {
    if text.is_empty() || !text.chars().all(|c| c.is_ascii_digit()) {
        return Err(PortError::Shape);
    }
    text.parse::<u16>().map_err(|_| PortError::Value)
}

impl PortRange {
    /// Parses `N` or `N:M`.
    pub fn parse(text: &str) -> Result<PortRange, PortError> {
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
    fn host_ports_and_ranges() {
        assert_eq!(
            PortRange::parse("8080").unwrap(),
            PortRange {
                first: 8080,
                last: 8080
            }
        );
        assert_eq!(PortRange::parse("5000:6000").unwrap().span(), 1000);
        assert_eq!(PortRange::parse("3leet"), Err(PortError::Shape));
        assert_eq!(
            PortRange::parse("3leet").unwrap_err().to_string(),
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
        assert_eq!(ContainerPort::parse("x:*", host), Err(PortError::Shape));
    }
}
