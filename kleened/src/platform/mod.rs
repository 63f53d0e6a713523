//! Everything that touches the operating system besides ZFS: host commands ([`host`]) and the
//! container runtime ([`runtime`]), with one implementation per platform: namespaces on Linux
//! ([`linux`]) and jails on FreeBSD ([`jail`]).

pub mod host;
pub mod io;
pub mod jail;
#[cfg(target_os = "linux")]
pub mod linux;
pub mod passwd;
pub mod runtime;

pub use host::{freebsd_base_url, in_root, Host, HostError, Release};
pub use runtime::{ProcessIo, ProcessSpec, Runtime, RuntimeError, Spawned};
