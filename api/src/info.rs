//! What the daemon says about itself (`GET /info`, beyond the Kleened API 0.1.1).

use serde::{Deserialize, Serialize};

/// The daemon and its host.
///
/// The first six fields are those of the first version of `/info`; the later ones are missing
/// from an older daemon's answer (read as unknown), and `null` when the daemon could not read the
/// figure (its log says why): a figure it cannot tell is never given as zero.
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
    /// `ipnet`, the reference's, on both platforms.
    pub default_network_driver: crate::NetworkDriver,
    /// The root ZFS dataset.
    pub kleene_root: String,
    /// The kernel's release, as `uname -r` prints it (e.g. `14.3-RELEASE-p2`).
    #[serde(default)]
    pub os_version: Option<String>,
    /// The machine's hardware name, as `uname -m` prints it (e.g. `amd64`, `x86_64`).
    #[serde(default)]
    pub machine: Option<String>,
    /// Space used by `kleene_root` and everything below it, as zfs prints it (e.g. `1.52G`).
    /// zfs-fuse cannot print exact byte counts, so sizes are passed on as zfs words them.
    #[serde(default)]
    pub kleene_root_used: Option<String>,
    /// Space available to `kleene_root` (the pool's free space, less quotas), as zfs prints it.
    #[serde(default)]
    pub kleene_root_available: Option<String>,
    /// Number of images.
    #[serde(default)]
    pub images: Option<u64>,
    /// Number of containers, running or not.
    #[serde(default)]
    pub containers: Option<u64>,
    /// Number of running containers, as the runtime sees them.
    #[serde(default)]
    pub containers_running: Option<u64>,
    /// Number of networks.
    #[serde(default)]
    pub networks: Option<u64>,
    /// Number of volumes.
    #[serde(default)]
    pub volumes: Option<u64>,
    /// Seconds since the daemon started.
    #[serde(default)]
    pub uptime_seconds: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_info_of_the_first_version_still_reads() {
        let info: Info = serde_json::from_str(
            r#"{"version":"0.1.0","api_version":"0.1.1","os":"linux","runtime":"namespaces",
                "default_network_driver":"vnet","kleene_root":"pool/kleene"}"#,
        )
        .unwrap();
        assert_eq!(info.kleene_root, "pool/kleene");
        assert_eq!((info.images, info.uptime_seconds), (None, None));
    }
}
