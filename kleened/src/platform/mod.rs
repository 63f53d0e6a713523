//! Everything that touches the operating system besides ZFS: host commands ([`host`]) and the
//! container runtime ([`runtime`]), with one implementation per platform: namespaces on Linux
//! ([`linux`]); the FreeBSD jail runtime plugs into the same trait.

pub mod host;
pub mod io;
#[cfg(target_os = "linux")]
pub mod linux;
pub mod runtime;

pub use host::{freebsd_base_url, in_root, Host, HostError, Release};
pub use runtime::{ProcessIo, ProcessSpec, Runtime, RuntimeError, Spawned};
