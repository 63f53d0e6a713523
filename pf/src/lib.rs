//! The packet-filter policy of kleened: NAT for networks, isolation between them, published ports.
//!
//! One pure model ([`model::Policy`], built by the daemon from its store) and two renderers from it,
//! with the same meaning:
//! - [`pfconf`]: pf.conf rules for FreeBSD, rendered into the user's template at its three
//!   placeholders, checked with `pfctl -n -f` and loaded with `pfctl -f` ([`pfctl`]);
//! - [`nft`]: an nftables script for Linux that replaces the daemon's own tables in one
//!   transaction, checked with `nft -c -f` and loaded with `nft -f`.
//!
//! Rendering is deterministic: the same policy gives the same text, pinned by golden files.

pub mod model;
pub mod nft;
pub mod pfconf;
pub mod pfctl;

pub use model::{
    ContainerPort, MacAddress, Member, NetworkPolicy, Policy, PortError, PortRange, Protocol,
    PublishedPort,
};
pub use pfconf::{PfRules, TemplateError};
pub use pfctl::{PfEnabled, Pfctl, PfctlError, RuleProblem};
