//! The hostile-container probe (`tests/probe/probe.c`): built statically with the host's C
//! compiler, and put into a test image next to the base archive's userland, so that a container
//! can try system calls BusyBox has no applet for (keyctl, init_module, raw sockets, ...).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::base::{base_archive, create_image};
use crate::clients::{describe, ok_for};
use crate::daemon::Daemon;
use crate::{bin, workspace_root};

/// Where the probe is installed in the test image.
pub const PROBE: &str = "/usr/local/bin/probe";

/// The statically linked probe, built once per test process into `target/<profile>/kleene-probe/`.
/// Fails loudly when the host has no C compiler or no static C library.
pub fn probe_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let source = workspace_root().join("tests/probe/probe.c");
            let dir = bin("kleened")
                .parent()
                .expect("target directory")
                .join("kleene-probe");
            std::fs::create_dir_all(&dir).expect("create the probe directory");
            let path = dir.join("probe");
            // Built under a name of its own and renamed, so concurrent builds never share a file.
            let partial = dir.join(format!("probe.{}", std::process::id()));
            let out = Command::new("cc")
                .args(["-static", "-O2", "-Wall", "-o"])
                .arg(&partial)
                .arg(&source)
                .output()
                .unwrap_or_else(|e| {
                    panic!("cannot run cc to build the probe (install gcc or clang): {e}")
                });
            assert!(
                out.status.success(),
                "building {} failed (a C compiler with a static libc is needed, e.g. Debian's \
                 gcc and libc6-dev): {}",
                source.display(),
                describe(&out)
            );
            std::fs::rename(&partial, &path).expect("install the probe");
            path
        })
        .clone()
}

/// Makes the image `probe:latest` (the base archive plus the probe at [`PROBE`]) and answers its
/// ID.
pub fn probe_image(daemon: &Daemon) -> String {
    let work = tempfile::tempdir().expect("temporary directory");
    let archive = work.path().join("probe.tar");
    std::fs::copy(base_archive(), &archive).expect("copy the base archive");
    let staging = work.path().join("root");
    let target = staging.join(PROBE.trim_start_matches('/'));
    std::fs::create_dir_all(target.parent().expect("parent")).expect("staging directory");
    std::fs::copy(probe_binary(), &target).expect("stage the probe");
    append(&archive, &staging, PROBE.trim_start_matches('/'));
    let url = format!("file://{}", archive.display());
    create_image(daemon, "fetch", &url, "probe")
}

impl Daemon {
    /// [`Daemon::start`], with the probe image [`probe_image`].
    pub fn with_probe() -> Daemon {
        let daemon = Daemon::start();
        probe_image(&daemon);
        daemon
    }
}

/// Appends `member` (relative to `dir`) to a tar archive.
fn append(archive: &Path, dir: &Path, member: &str) {
    let out = Command::new("tar")
        .arg("-rf")
        .arg(archive)
        .arg("-C")
        .arg(dir)
        .arg(member)
        .output()
        .expect("run tar");
    ok_for(format_args!("tar -rf {}", archive.display()), &out);
}
