//! Images as the API reports them.

use serde::{Deserialize, Serialize};

/// An image: a ZFS dataset with an `@image` snapshot that containers are cloned from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Image {
    /// Image ID.
    pub id: String,
    /// Name (`""` when untagged).
    pub name: String,
    /// Tag (`""` when untagged).
    pub tag: String,
    /// Default command of containers made from it.
    pub cmd: Vec<String>,
    /// Default environment, `NAME=value`.
    pub env: Vec<String>,
    /// Default user.
    pub user: String,
    /// The build instructions that made it: pairs of `[instruction, snapshot or ""]`.
    pub instructions: Vec<[String; 2]>,
    /// Creation time, ISO-8601 UTC.
    pub created: String,
    /// The ZFS dataset holding its filesystem.
    pub dataset: String,
}
