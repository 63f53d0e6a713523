//! `klee network`: networks and the containers connected to them.

use clap::{Args, Subcommand};

use super::{ForceArg, ObjectArg};
#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Create a network.
    Create(NetworkCreateArgs),
    /// List networks.
    #[command(visible_alias = "list")]
    Ls,
    /// Show everything about a network and the containers connected to it.
    Inspect(ObjectArg),
    /// Remove networks, disconnecting their containers first (stops at the first failure).
    Rm(NetworksArg),
    /// Remove every network no container is connected to.
    Prune(ForceArg),
    /// Connect a container to a network.
    Connect(ConnectArgs),
    /// Disconnect a container from a network (a running one too).
    Disconnect {
        /// The network: ID, ID prefix or name.
        network: String,
        /// The container: ID, ID prefix or name.
        container: String,
    },
}

/// Kind of a network's host interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NetworkTypeArg {
    /// A bridge; vnet containers are wired to it and may get a gateway.
    Bridge,
    /// A loopback interface (FreeBSD; a bridge on Linux, for its ipnet containers).
    Loopback,
    /// An existing interface, named by --interface, that kleened neither creates nor destroys.
    Custom,
}

#[derive(Debug, Args)]
pub struct NetworkCreateArgs {
    /// Kind of host interface.
    #[arg(
        short = 't',
        long = "type",
        value_name = "TYPE",
        value_enum,
        default_value = "loopback"
    )]
    pub kind: NetworkTypeArg,
    /// Host interface [default: kleene<N>]; for a custom network an existing interface.
    #[arg(
        short,
        long,
        value_name = "IFACE",
        default_value = "",
        hide_default_value = true
    )]
    pub interface: String,
    /// IPv4 subnet in CIDR notation [default: none].
    #[arg(
        long,
        value_name = "CIDR",
        default_value = "",
        hide_default_value = true
    )]
    pub subnet: String,
    /// IPv6 subnet in CIDR notation [default: none].
    #[arg(
        long,
        value_name = "CIDR",
        default_value = "",
        hide_default_value = true
    )]
    pub subnet6: String,
    /// Bridge networks only: IPv4 default route of vnet containers; `auto` is the first address
    /// of the subnet, put on the bridge; "" for none [default: auto].
    #[arg(long = "gw", value_name = "IP|auto")]
    pub gateway: Option<String>,
    /// Bridge networks only: IPv6 default route of vnet containers, as --gw [default: auto].
    #[arg(long = "gw6", value_name = "IP|auto")]
    pub gateway6: Option<String>,
    /// Translate outgoing IPv4 traffic to this interface's address [default: the interface of
    /// the host's default route].
    #[arg(
        long,
        visible_alias = "nat-if",
        value_name = "IFACE",
        conflicts_with = "no_nat"
    )]
    pub nat: Option<String>,
    /// No NAT for outgoing traffic.
    #[arg(long)]
    pub no_nat: bool,
    /// Containers of the network may talk to each other (the default).
    #[arg(long, overrides_with = "no_icc")]
    pub icc: bool,
    /// Containers of the network may not talk to each other.
    #[arg(long, overrides_with = "icc")]
    pub no_icc: bool,
    /// No traffic may leave the network.
    #[arg(long)]
    pub internal: bool,
    /// Name of the network.
    pub name: String,
}

#[derive(Debug, Args)]
pub struct NetworksArg {
    /// Networks: IDs, ID prefixes or names.
    #[arg(required = true)]
    pub networks: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// IPv4 address [default: an unused one of the network's subnet, if it has one].
    #[arg(long, value_name = "IP")]
    pub ip: Option<String>,
    /// IPv6 address [default: an unused one of the network's IPv6 subnet, if it has one].
    #[arg(long, value_name = "IP")]
    pub ip6: Option<String>,
    /// The network: ID, ID prefix or name.
    pub network: String,
    /// The container: ID, ID prefix or name.
    pub container: String,
}
