//! The network seam: what the engine needs from a platform for networks. Host interfaces of
//! networks (bridges, loopback or dummy interfaces, an existing interface for `custom`), what the
//! address allocation must know (addresses on an interface, the host's gateway interface), and the
//! packet filter ([`pf::Policy`], checked before it is loaded and loaded as a whole).
//!
//! Every interface the daemon makes is marked with the daemon's identity (its `kleene_root`), so
//! that one left by a crash is recognised and removed at the next start, and an interface that is
//! not the daemon's is never destroyed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};
use kleene_api::NetworkType;

/// Why a network operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// The request cannot work on this host (an interface name taken by another program's
    /// interface, a custom interface that does not exist, ...); the message says why.
    #[error("{0}")]
    Invalid(String),
    /// The packet filter's own check refused the ruleset; nothing was loaded and the previous
    /// rules stay in force.
    #[error("the packet filter refused the new rules ({checker}): {message}")]
    Refused {
        /// The command that checked (`nft -c -f -`, `pfctl -n -f <file>`).
        checker: String,
        /// Its message, naming the rule.
        message: String,
    },
    /// The host failed.
    #[error("{0}")]
    Host(String),
}

/// What the host needs to know of a network to make its interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkSetup {
    /// Kind of interface.
    pub kind: NetworkType,
    /// Its name.
    pub interface: String,
    /// The IPv4 gateway address to put on a bridge (an `<auto>` gateway), with the subnet's
    /// prefix length.
    pub gateway: Option<Ipv4Net>,
    /// The same for IPv6.
    pub gateway6: Option<Ipv6Net>,
}

/// A container's connection to a network, as its runtime wires it at start (vnet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerEndpoint {
    /// The endpoint's ID.
    pub endpoint_id: String,
    /// The network's host interface (the bridge).
    pub interface: String,
    /// Containers of the network may not talk to each other (icc off).
    pub isolated: bool,
    /// The container's IPv4 address with the subnet's prefix length.
    pub address: Option<Ipv4Net>,
    /// Its IPv4 default route.
    pub gateway: Option<Ipv4Addr>,
    /// The container's IPv6 address with the subnet's prefix length.
    pub address6: Option<Ipv6Net>,
    /// Its IPv6 default route.
    pub gateway6: Option<Ipv6Addr>,
    /// The MAC address of the container's interface ([`pf::MacAddress::of_endpoint`], the one
    /// the packet filter lets it send as).
    pub mac: pf::MacAddress,
    /// The container's addresses the host keeps a static neighbour entry for, on the bridge,
    /// while the container runs: those of the families whose gateway is the bridge's own
    /// address, so that no frame the container (or its neighbours) send changes where the host
    /// sends the container's traffic.
    pub neighbours: Vec<IpAddr>,
    /// The host-side interface made for it, while the container runs (FreeBSD `epairNa`, the
    /// Linux veth's host end).
    pub host_interface: Option<String>,
}

/// A platform's host networking. Every method blocks (runs commands); call them off the async
/// threads.
pub trait NetworkHost: Send + Sync + std::fmt::Debug {
    /// Makes the host ready for networks at daemon start (IP forwarding on).
    fn prepare(&self) -> Result<(), NetworkError>;

    /// The interface of the host's default IPv4 route, if it has one.
    fn host_gateway(&self) -> Result<Option<String>, NetworkError>;

    /// Whether an interface of that name exists.
    fn interface_exists(&self, name: &str) -> Result<bool, NetworkError>;

    /// Interfaces this daemon made (marked as its own), by name.
    fn own_interfaces(&self) -> Result<Vec<String>, NetworkError>;

    /// The addresses configured on an interface (none when it does not exist).
    fn addresses(&self, interface: &str) -> Result<Vec<IpAddr>, NetworkError>;

    /// Makes the interface of a bridge or loopback network, marked as the daemon's, with its
    /// gateway addresses (nothing for `custom`). An interface of that name that is the daemon's is
    /// made again; one that is not is refused ([`NetworkError::Invalid`]).
    fn create(&self, network: &NetworkSetup) -> Result<(), NetworkError>;

    /// Removes the interface of a bridge or loopback network (a `custom` one is left alone).
    fn remove(&self, network: &NetworkSetup) -> Result<(), NetworkError>;

    /// Checks the policy with the packet filter's own checker and, only if it passes, loads it
    /// in place of the daemon's previous rules, as a whole.
    fn apply_firewall(&self, policy: &pf::Policy) -> Result<(), NetworkError>;

    /// Removes the daemon's rules (at shutdown).
    fn clear_firewall(&self) -> Result<(), NetworkError>;

    /// Whether the policy names the host-side interfaces of running containers (FreeBSD's
    /// epairs): then it is applied again whenever a vnet container starts or stops.
    fn policy_names_members(&self) -> bool {
        false
    }

    /// The network types whose interface is a bridge here, filtered per port: bridge networks
    /// (on Linux loopback networks too, whose containers have veth pairs on them).
    fn bridged(&self) -> Vec<NetworkType> {
        vec![NetworkType::Bridge]
    }

    /// How the packet filter names the host-side interface of an endpoint's container
    /// ([`pf::Member::interface`]), given the one recorded for its running container; `None`
    /// when there is nothing to name. By default the recorded one (FreeBSD's epairs are named by
    /// the kernel at each start, so the policy follows starts and stops).
    fn member_interface(&self, _endpoint_id: &str, recorded: Option<&str>) -> Option<String> {
        recorded.map(str::to_owned)
    }
}
