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

/// How `/images/create` makes a base image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ImageCreateMethod {
    /// Download a tar archive of a root filesystem from `url` and unpack it.
    #[serde(rename = "fetch")]
    Fetch,
    /// Download the FreeBSD base system matching the host's release (FreeBSD only).
    #[serde(rename = "fetch-auto")]
    FetchAuto,
    /// Copy the contents of `zfs_dataset` into a new dataset.
    #[serde(rename = "zfs-copy")]
    ZfsCopy,
    /// Clone a snapshot of `zfs_dataset`; the image depends on the source.
    #[serde(rename = "zfs-clone")]
    ZfsClone,
}

impl ImageCreateMethod {
    /// The method's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ImageCreateMethod::Fetch => "fetch",
            ImageCreateMethod::FetchAuto => "fetch-auto",
            ImageCreateMethod::ZfsCopy => "zfs-copy",
            ImageCreateMethod::ZfsClone => "zfs-clone",
        }
    }
}

/// The configuration frame of the `/images/build` websocket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImageBuildConfig {
    /// The build context: an absolute path on the daemon's host.
    pub context: String,
    /// The Dockerfile, relative to the context.
    #[serde(default = "dockerfile")]
    pub dockerfile: String,
    /// Send no status lines and no process output (snapshot lines are still sent).
    #[serde(default, deserialize_with = "crate::de::lenient_bool")]
    pub quiet: bool,
    /// On failure remove the build container; `false` keeps what was built as `<name>:failed`.
    #[serde(
        default = "crate::de::yes",
        deserialize_with = "crate::de::lenient_bool"
    )]
    pub cleanup: bool,
    /// `name[:tag]` of the new image; `""` leaves it untagged.
    #[serde(default)]
    pub tag: String,
    /// Values for the Dockerfile's `ARG` variables (only declared ones are used).
    #[serde(default)]
    pub buildargs: std::collections::BTreeMap<String, String>,
    /// The build container's configuration; its `image`, when set, replaces the `FROM` image.
    pub container_config: crate::ContainerConfig,
    /// Networks the build container is connected to (`container` is replaced by its ID).
    #[serde(default)]
    pub networks: Vec<crate::EndPointConfig>,
    /// Run every step, using no cached one. Additive: the reference has no build cache.
    #[serde(default, deserialize_with = "crate::de::lenient_bool")]
    pub nocache: bool,
}

fn dockerfile() -> String {
    "Dockerfile".to_owned()
}

/// The configuration frame of the `/images/create` websocket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImageCreateConfig {
    /// How to make the image.
    pub method: ImageCreateMethod,
    /// `name[:tag]` of the new image; `""` leaves it untagged.
    #[serde(default)]
    pub tag: String,
    /// Copy the host's `/etc/resolv.conf` into the image.
    #[serde(
        default = "crate::de::yes",
        deserialize_with = "crate::de::lenient_bool"
    )]
    pub dns: bool,
    /// Copy the host's `/etc/localtime` into the image, if the host has one.
    #[serde(
        default = "crate::de::yes",
        deserialize_with = "crate::de::lenient_bool"
    )]
    pub localtime: bool,
    /// Update the image with freebsd-update(8) (FreeBSD only).
    #[serde(default, deserialize_with = "crate::de::lenient_bool")]
    pub update: bool,
    /// Source dataset for `zfs-copy` and `zfs-clone`.
    #[serde(default)]
    pub zfs_dataset: String,
    /// Archive URL for `fetch`: `http://`, `https://` or `file://`.
    #[serde(default)]
    pub url: String,
    /// `fetch-auto`: name the image `FreeBSD-<version>:latest`, overriding `tag`.
    #[serde(default, deserialize_with = "crate::de::lenient_bool")]
    pub autotag: bool,
}
