//! What the daemon says about itself (`GET /info`, beyond the Kleened API 0.1.1).

use serde::{Deserialize, Serialize};

/// The daemon and its host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Info {
    /// kleened's version.
    pub version: String,
    /// The version of the Kleened API it speaks.
    pub api_version: String,
    /// The host's operating system: `freebsd` or `linux`.
    pub os: String,
    /// How containers run there: `jail` or `namespaces`.
    pub runtime: String,
    /// The network driver a container connected to a network gets when none is asked for:
    /// `ipnet` on FreeBSD, `vnet` on Linux (which has no ipnet).
    pub default_network_driver: crate::NetworkDriver,
    /// The root ZFS dataset.
    pub kleene_root: String,
}
