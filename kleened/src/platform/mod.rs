//! Everything that touches the operating system besides ZFS: host commands ([`host`]), the
//! container runtime ([`runtime`]) and host networking ([`network`]), with one implementation per
//! platform: namespaces, veth, bridges and nftables on Linux ([`linux`]); jails, epairs, bridges and
//! pf on FreeBSD ([`freebsd`]).

pub mod freebsd;
pub mod host;
pub mod inroot;
pub mod io;
#[cfg(target_os = "linux")]
pub mod linux;
pub mod network;
pub mod passwd;
pub mod runtime;

pub use host::{freebsd_base_url, in_root, Host, HostError, Release};
pub use network::{ContainerEndpoint, NetworkError, NetworkHost, NetworkSetup};
pub use runtime::{Limits, Mount, ProcessIo, ProcessSpec, Runtime, RuntimeError, Spawned};
