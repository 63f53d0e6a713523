//! Volumes as the API reports them.

use serde::{Deserialize, Serialize};

use crate::container::MountPoint;

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
