//! Containers as the API reports them.

use serde::{Deserialize, Serialize};

use crate::network::EndPoint;

/// How a container is attached to networks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum NetworkDriver {
    /// Shared-IP: addresses are aliases on the network's host interface.
    Ipnet,
    /// The host's network stack.
    Host,
    /// A virtual network stack of its own, wired to a bridge.
    Vnet,
    /// No network at all (only loopback).
    Disabled,
}

/// When the daemon starts a container by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum RestartPolicy {
    /// Never.
    #[serde(rename = "no")]
    No,
    /// Whenever the daemon starts.
    #[serde(rename = "on-startup")]
    OnStartup,
    /// Whenever its first process ends, and when the daemon starts, until `stop` (additive).
    /// Restarts wait 100 ms, doubling to 1 min, back to 100 ms after 10 s of running.
    #[serde(rename = "always")]
    Always,
    /// When its first process ends with a non-zero exit code, at most `restart_max_retries`
    /// times in a row when that is set; and when the daemon starts if it was running, until
    /// `stop` (additive). The same back-off as `always`.
    #[serde(rename = "on-failure")]
    OnFailure,
}

/// `restart_policy` in an answer: the reference's `no` or `on-startup`.
fn reference_restart_policy<S: serde::Serializer>(
    policy: &RestartPolicy,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let known = match policy {
        RestartPolicy::No => RestartPolicy::No,
        RestartPolicy::OnStartup | RestartPolicy::Always | RestartPolicy::OnFailure => {
            RestartPolicy::OnStartup
        }
    };
    known.serialize(serializer)
}

/// Transport protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum PortProtocol {
    /// TCP
    Tcp,
    /// UDP
    Udp,
}

/// A port of a container published on host interfaces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PublishedPort {
    /// Host interfaces the port is published on.
    pub interfaces: Vec<String>,
    /// Host port or range, `N` or `N:M`.
    pub host_port: String,
    /// Container port, `N`, `N:M` or `N:*`.
    pub container_port: String,
    /// Transport protocol.
    pub protocol: PortProtocol,
    /// IPv4 address of the container the port forwards to (`""` when none).
    pub ip_address: String,
    /// IPv6 address of the container the port forwards to (`""` when none).
    pub ip_address6: String,
}

/// Kind of a mount inside a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum MountPointType {
    /// A kleened volume.
    Volume,
    /// A host directory or file.
    Nullfs,
}

/// A mount of a volume or host path into a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MountPoint {
    /// Volume or host path.
    #[serde(rename = "type")]
    pub kind: MountPointType,
    /// The container it belongs to.
    pub container_id: String,
    /// Path inside the container.
    pub destination: String,
    /// Volume name or absolute host path.
    pub source: String,
    /// Mounted read-only.
    pub read_only: bool,
    /// Setuid and setgid bits take effect on the mount (otherwise it is `nosuid`). Additive.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub setuid: bool,
    /// Device nodes on the mount open (otherwise it is `nodev`). Additive.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub devices: bool,
}

/// A container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Container {
    /// Container ID.
    pub id: String,
    /// Container name, if any.
    pub name: Option<String>,
    /// ID of the image it was cloned from.
    pub image_id: String,
    /// Default command.
    pub cmd: Vec<String>,
    /// Default user.
    pub user: String,
    /// Environment, `NAME=value`.
    pub env: Vec<String>,
    /// Network driver.
    pub network_driver: NetworkDriver,
    /// Published ports.
    pub public_ports: Vec<PublishedPort>,
    /// Jail parameters, `name=value`.
    pub jail_param: Vec<String>,
    /// Restart policy as the reference knows it: `no`, or `on-startup` for every policy that
    /// has the daemon start the container (`on-startup`, `always`, `on-failure`), so that clients
    /// that know only the reference's two values keep reading it; `restart` is the policy itself.
    #[serde(serialize_with = "reference_restart_policy")]
    pub restart_policy: RestartPolicy,
    /// The restart policy itself: `no`, `on-startup`, `always` or `on-failure`. Additive.
    #[serde(default)]
    pub restart: Option<RestartPolicy>,
    /// With `on-failure`: how many restarts in a row at most; `null`: no bound. Additive.
    #[serde(default)]
    pub restart_max_retries: Option<u32>,
    /// How many times the daemon restarted it by its restart policy since it was last started
    /// by a client. Additive.
    #[serde(default)]
    pub restart_count: u64,
    /// Kept by `container prune` when true.
    pub persist: bool,
    /// Creation time, ISO-8601 UTC.
    pub created: String,
    /// The ZFS dataset holding its filesystem.
    pub dataset: String,
    /// Whether it runs now.
    pub running: bool,
    /// Memory limit in bytes (resident memory, swap included where the host can tell them
    /// apart); `null`: unlimited. Additive.
    #[serde(default)]
    pub memory: Option<u64>,
    /// Most processes (and threads, on Linux) it may have at once; `null`: unlimited. Additive.
    #[serde(default)]
    pub pids_limit: Option<u64>,
    /// The most its file system may hold, in bytes (its dataset's ZFS `quota`); `null`:
    /// unlimited. Additive.
    #[serde(default)]
    pub storage_size: Option<u64>,
    /// CPU time it may use, in CPUs (`0.5`: half of one CPU; `2`: two CPUs); `null`: unlimited.
    /// Additive.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<f64>))]
    pub cpus: Option<serde_json::Number>,
    /// How its first process ended the last time it ran; `null` when it never ended (never
    /// started, or running for the first time). Additive.
    #[serde(default)]
    pub last_exit: Option<LastExit>,
}

/// Why a container's first process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ExitReason {
    /// It exited, or a signal ended it (the exit code says which).
    Exited,
    /// The kernel's out-of-memory killer ended it because the container exceeded its memory
    /// limit (exit code 137, SIGKILL). Only reported on Linux: FreeBSD's rctl denies memory
    /// instead of killing.
    OomKilled,
}

/// How a container's first process ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LastExit {
    /// Its exit code: the code it exited with, or 128 + the signal that ended it.
    pub exit_code: i32,
    /// Why it ended.
    pub reason: ExitReason,
    /// How many processes of the container the out-of-memory killer ended during that run (0
    /// where the host does not count them).
    pub oom_kills: u64,
    /// When, ISO-8601 UTC.
    pub finished_at: String,
}

/// A container in a list, with its image's name and tag and its jail id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContainerSummary {
    /// The container.
    #[serde(flatten)]
    pub container: Container,
    /// Name of its image.
    pub image_name: String,
    /// Tag of its image.
    pub image_tag: String,
    /// Jail id while running, else null.
    pub jid: Option<i64>,
}

/// Everything known about a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContainerInspect {
    /// The container.
    pub container: Container,
    /// Its network connections.
    pub container_endpoints: Vec<EndPoint>,
    /// Its mounts.
    pub container_mountpoints: Vec<MountPoint>,
}

/// A port to publish, as requested.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PublishedPortConfig {
    /// Host interfaces; `[]` means the host's gateway interface.
    #[serde(default)]
    pub interfaces: Vec<String>,
    /// Host port or range, `N` or `N:M`.
    pub host_port: String,
    /// Container port, `N`, `N:M` or `N:*`.
    pub container_port: String,
    /// Transport protocol.
    #[serde(default = "tcp")]
    pub protocol: PortProtocol,
}

fn tcp() -> PortProtocol {
    PortProtocol::Tcp
}

/// A mount to make when the container starts, as requested.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MountPointConfig {
    /// Volume or host path.
    #[serde(rename = "type")]
    pub kind: MountPointType,
    /// Path inside the container.
    pub destination: String,
    /// Volume name or absolute host path.
    pub source: String,
    /// Mount read-only.
    #[serde(default, deserialize_with = "crate::de::lenient_bool")]
    pub read_only: bool,
    /// Let setuid and setgid bits take effect (default: the mount is `nosuid`, so a file a
    /// container leaves there gives nobody its owner's rights). Additive.
    #[serde(
        default,
        skip_serializing_if = "std::ops::Not::not",
        deserialize_with = "crate::de::lenient_bool"
    )]
    pub setuid: bool,
    /// Let device nodes open (default: the mount is `nodev`). Additive.
    #[serde(
        default,
        skip_serializing_if = "std::ops::Not::not",
        deserialize_with = "crate::de::lenient_bool"
    )]
    pub devices: bool,
}

/// The body of `POST /containers/create` and `POST /containers/{id}/update`. On update, `null`
/// keeps the stored value; `image`, `mounts`, `network_driver` and `public_ports` are not changed.
/// The resource limits (`memory`, `pids_limit`, `cpus`) are applied when the container starts
/// (cgroups on Linux, rctl(8) on FreeBSD); an update applies them to a running container at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContainerConfig {
    /// Container name (`/?[a-zA-Z0-9][a-zA-Z0-9_.-]+`); not necessarily unique.
    #[serde(default)]
    pub name: Option<String>,
    /// `image[:tag][@snapshot]` or an image ID, optionally with `@snapshot`.
    #[serde(default)]
    pub image: Option<String>,
    /// Command; `[]` uses the image's.
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    /// User; `""` uses the image's.
    #[serde(default)]
    pub user: Option<String>,
    /// Environment `NAME=value`, over the image's.
    #[serde(default)]
    pub env: Option<Vec<String>>,
    /// Mounts made at every start.
    #[serde(default)]
    pub mounts: Option<Vec<MountPointConfig>>,
    /// Jail parameters, `name=value`.
    #[serde(default)]
    pub jail_param: Option<Vec<String>>,
    /// Network driver (default `ipnet`).
    #[serde(default)]
    pub network_driver: Option<NetworkDriver>,
    /// Ports to publish.
    #[serde(default)]
    pub public_ports: Option<Vec<PublishedPortConfig>>,
    /// Restart policy (default `no`).
    #[serde(default)]
    pub restart_policy: Option<RestartPolicy>,
    /// With `on-failure`: how many restarts in a row at most (`0` or absent on create: no bound;
    /// on update, `null` keeps it and `0` removes it). Additive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_max_retries: Option<u32>,
    /// Kept by `container prune` when true.
    #[serde(default)]
    pub persist: Option<bool>,
    /// Memory limit: bytes with an optional suffix `k`, `m`, `g` or `t` (powers of 1024, as
    /// Docker: `32m`, `1g`, `1048576`), or a JSON integer of bytes; at least `6m`. `"0"` removes
    /// the limit. Additive.
    #[serde(
        default,
        deserialize_with = "crate::de::lenient_size",
        skip_serializing_if = "Option::is_none"
    )]
    pub memory: Option<String>,
    /// The most the container's file system may hold (its dataset's ZFS `quota`): bytes with an
    /// optional suffix `k`, `m`, `g` or `t` (powers of 1024: `512m`, `10g`), or a JSON integer of
    /// bytes; at least `1m`. Absent: the daemon's `container_storage_size`, if configured; `"0"`:
    /// unlimited. Set at creation. Additive.
    #[serde(
        default,
        deserialize_with = "crate::de::lenient_size",
        skip_serializing_if = "Option::is_none"
    )]
    pub storage_size: Option<String>,
    /// Most processes it may have at once, at least 1; `0` removes the limit. Additive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<i64>,
    /// CPU time it may use, in CPUs, a multiple of 0.01 (`0.5`: half of one CPU); `0` removes
    /// the limit. Additive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<f64>))]
    pub cpus: Option<serde_json::Number>,
}
