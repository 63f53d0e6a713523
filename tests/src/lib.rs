//! Harness for the end-to-end tests: the real `kleened` and `klee` binaries (built by
//! `cargo build --workspace --bins` before the tests run), a daemon per test on its own temporary
//! socket, certificates made per test, and the published Python client.
//!
//! Nothing here fakes the daemon: tests talk to it over real sockets, as users do.
//!
//! - [`daemon`]: a running `kleened` of the test's own, its configuration and its stop.
//! - [`clients`]: our klee and the Python klee against it, and what a test asks of their output
//!   ([`clients::ok`], [`clients::text`]).
//! - [`output`]: what a test asks of a command's output ([`output::ok`], [`output::text`]), a
//!   leaf the clients and the host helpers share.
//! - [`pool`]: the zfs test pool, the datasets under a root, a root dataset per test.
//! - [`base`]: the base archive and the base image tests start from.
//! - [`probe`]: the hostile-container probe and its image.
//! - [`host`]: the host's view of what containers leave: mounts, processes, cgroups, jails, memory.
//! - [`wait`]: [`wait::eventually`], the one way a test waits for something to happen.
//! - [`skip`]: the one way a test is skipped, [`require!`].
//! - [`netns`], [`fileserver`], [`store`]: stand-in networks, a file server, and a daemon's
//!   database written directly.

use std::path::{Path, PathBuf};

pub mod base;
pub mod clients;
pub mod daemon;
pub mod fileserver;
pub mod golden;
pub mod host;
pub mod netns;
pub mod output;
pub mod pool;
pub mod probe;
pub mod skip;
pub mod store;
pub mod wait;

/// The directory holding the workspace's binaries (`target/debug`).
fn bin_dir() -> PathBuf {
    // Test executables live in target/<profile>/deps.
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(Path::parent)
        .expect("test executable is in target/<profile>/deps")
        .to_owned()
}

/// Path of a workspace binary; fails loudly when it was not built.
pub fn bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.is_file(),
        "{} is missing: build the binaries first with `cargo build --workspace --bins`",
        path.display()
    );
    path
}

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the workspace")
        .to_owned()
}
