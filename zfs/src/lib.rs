//! A typed wrapper over the zfs(8) and zpool(8) command-line tools.
//!
//! Kleened keeps images, containers and volumes in ZFS datasets on both FreeBSD and Linux.
//! There is no usable libzfs binding, so, like Kleene and Docker's ZFS driver, this crate drives
//! the CLI:
//! - [`name`]: validated [`DatasetName`] / [`SnapshotName`], checked once at the boundary;
//! - [`command`]: pure argv builders, one per operation, pinned by golden tests;
//! - [`parse`]: parsers for `-H` (tab-separated, headerless) output;
//! - [`error`]: stderr classified into [`ZfsError`] variants callers can branch on;
//! - [`retry`]: the bounded backoff for "dataset is busy";
//! - [`client`]: [`Zfs`], which runs all of the above through a [`kleene_runner::Runner`].
//!
//! The same command lines must work on OpenZFS (FreeBSD 13/14, Linux) and on zfs-fuse 0.7
//! (pool version 23), which the Linux test hosts use: see [`command`] for what that rules out.

pub mod client;
pub mod command;
pub mod error;
pub mod name;
pub mod parse;
pub mod retry;

pub use client::{PoolInfo, PoolUsage, SnapshotClones, Zfs, ZfsName, ZfsPrograms};
pub use command::{DatasetType, Depth, DestroyFlags, Invocation, ListQuery, Property, Tool};
pub use error::ZfsError;
pub use name::{DatasetName, NameError, SnapshotName};
pub use retry::RetryPolicy;
