//! Networks and their endpoints as the API reports them.

use serde::{Deserialize, Serialize};

/// What kind of host interface a network has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum NetworkType {
    /// A bridge interface.
    Bridge,
    /// A loopback interface.
    Loopback,
    /// An existing interface kleened neither creates nor destroys.
    Custom,
}

/// A network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Network {
    /// Network ID.
    pub id: String,
    /// Network name.
    pub name: String,
    /// Kind of host interface.
    #[serde(rename = "type")]
    pub kind: NetworkType,
    /// IPv4 subnet in CIDR notation (`""` when none).
    pub subnet: String,
    /// IPv6 subnet in CIDR notation (`""` when none).
    pub subnet6: String,
    /// Host interface name.
    pub interface: String,
    /// IPv4 gateway for vnet containers (`""`, an address or `<auto>`).
    pub gateway: String,
    /// IPv6 gateway for vnet containers (`""`, an address or `<auto>`).
    pub gateway6: String,
    /// Interface whose address outgoing IPv4 traffic is translated to (`""` for none).
    pub nat: String,
    /// Whether containers on the network may talk to each other.
    pub icc: bool,
    /// Whether traffic leaving the network is blocked.
    pub internal: bool,
}

/// The connection of a container to a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EndPoint {
    /// Endpoint ID.
    pub id: String,
    /// The network.
    pub network_id: String,
    /// The container.
    pub container_id: String,
    /// Host side of the virtual interface pair, while a vnet container runs.
    pub epair: Option<String>,
    /// IPv4 address (`""` when none).
    pub ip_address: String,
    /// IPv6 address (`""` when none).
    pub ip_address6: String,
}

/// Everything known about a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NetworkInspect {
    /// The network.
    pub network: Network,
    /// The containers connected to it.
    pub network_endpoints: Vec<EndPoint>,
}

fn host_gateway() -> String {
    "<host-gateway>".to_owned()
}

/// A network to create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NetworkConfig {
    /// Network name.
    pub name: String,
    /// Kind of host interface.
    #[serde(rename = "type")]
    pub kind: NetworkType,
    /// Host interface name; `""` picks `kleene<N>`. For `custom`, an existing interface.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_length = 15))]
    pub interface: String,
    /// IPv4 subnet in CIDR notation (`""` for none).
    #[serde(default)]
    pub subnet: String,
    /// IPv6 subnet in CIDR notation (`""` for none).
    #[serde(default)]
    pub subnet6: String,
    /// IPv4 gateway of vnet containers on a bridge: `""`, an address, or `<auto>` (the subnet's
    /// first address, put on the bridge).
    #[serde(default)]
    pub gateway: String,
    /// IPv6 gateway, likewise.
    #[serde(default)]
    pub gateway6: String,
    /// Interface outgoing IPv4 traffic is translated to: `<host-gateway>` (the interface of the
    /// host's default route, resolved at creation), an interface, or `""` for none.
    #[serde(default = "host_gateway")]
    pub nat: String,
    /// Containers of the network may talk to each other.
    #[serde(
        default = "crate::de::yes",
        deserialize_with = "crate::de::lenient_bool"
    )]
    pub icc: bool,
    /// Traffic may not leave the network.
    #[serde(default, deserialize_with = "crate::de::lenient_bool")]
    pub internal: bool,
}

/// A connection of a container to a network, as requested.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EndPointConfig {
    /// Container ID, ID prefix or name.
    pub container: String,
    /// Network ID, ID prefix or name.
    pub network: String,
    /// IPv4 address: `<auto>` allocates one, `""` means none.
    #[serde(default)]
    pub ip_address: String,
    /// IPv6 address: `<auto>` allocates one, `""` means none.
    #[serde(default)]
    pub ip_address6: String,
}
