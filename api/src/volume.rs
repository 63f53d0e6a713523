//! Volumes as the API reports them.

use serde::{Deserialize, Serialize};

use crate::container::MountPoint;

/// The body of `POST /volumes/create`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VolumeConfig {
    /// Volume name: letters, digits, `_`, `.` and `-`, starting with a letter or digit, at most
    /// 255 bytes. A volume of that name that exists already is answered as it is.
    pub name: String,
    /// The most the volume may hold, as zfs(8) reads a size (`10G`, `500M`): its `quota`.
    /// Additive: the reference has no size. `null` or absent: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
}

/// A volume: a ZFS dataset that can be mounted into containers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Volume {
    /// Volume name.
    pub name: String,
    /// The ZFS dataset holding it.
    pub dataset: String,
    /// Where the dataset is mounted on the host.
    pub mountpoint: String,
    /// Creation time, ISO-8601 UTC.
    pub created: String,
}

/// Everything known about a volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VolumeInspect {
    /// The volume.
    pub volume: Volume,
    /// Where it is mounted.
    pub mountpoints: Vec<MountPoint>,
}
