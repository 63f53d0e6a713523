//! The base image tests start from: the archive the test command builds (a BusyBox root on
//! Linux, a small part of the userland on FreeBSD), the dataset holding a whole userland on
//! FreeBSD, and the image `base:latest` made from one of them.

use std::path::PathBuf;

use crate::clients::ok_for;
use crate::daemon::Daemon;
use crate::pool::{test_pool, zfs};
use crate::workspace_root;

/// The base archive the image tests use: `KLEENE_TEST_BASE_ARCHIVE`, or the one the test command
/// builds into `.cache/`: on Linux a BusyBox root (`scripts/base-image.sh busybox`), on FreeBSD a
/// small part of the base dataset's userland (`scripts/base-image.sh freebsd-mini`).
pub fn base_archive() -> PathBuf {
    let (default, kind) = if cfg!(target_os = "freebsd") {
        (".cache/base-freebsd.tar", "freebsd-mini")
    } else {
        (".cache/base-busybox.tar", "busybox")
    };
    let path = std::env::var_os("KLEENE_TEST_BASE_ARCHIVE")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(default));
    assert!(
        path.is_file(),
        "the base archive {} is missing: run the test command (scripts/test), or build it with \
         `scripts/base-image.sh {kind} {}`",
        path.display(),
        path.display()
    );
    path
}

/// The dataset holding a whole extracted userland that base images are cloned from:
/// `KLEENE_TEST_BASE_DATASET`, on FreeBSD by default `<pool>/basejail` (made by
/// `scripts/base-image.sh freebsd-dataset`). `None` on Linux unless set: there the base image is
/// fetched from the BusyBox archive.
pub fn base_dataset() -> Option<String> {
    match std::env::var("KLEENE_TEST_BASE_DATASET") {
        Ok(name) if !name.is_empty() => Some(name),
        _ if cfg!(target_os = "freebsd") => Some(format!("{}/basejail", test_pool())),
        _ => None,
    }
}

/// Creates a base image `base:latest` and answers its ID: a `zfs-clone` of the base dataset where
/// there is one (FreeBSD: unpacking a whole userland per test would take far too long), else a
/// `fetch` of the BusyBox archive.
pub fn base_image(daemon: &Daemon) -> String {
    match base_dataset() {
        Some(dataset) => {
            let name = zfs::DatasetName::new(dataset.clone()).expect("valid base dataset name");
            assert!(
                zfs().exists(&name).unwrap_or(false),
                "the base dataset {dataset} is missing: run the test command (scripts/test), which \
                 makes it, or `scripts/base-image.sh freebsd-dataset {dataset}`; \
                 KLEENE_TEST_BASE_DATASET names another"
            );
            create_image(daemon, "zfs-clone", &dataset, "base")
        }
        None => {
            let url = format!("file://{}", base_archive().display());
            create_image(daemon, "fetch", &url, "base")
        }
    }
}

/// `klee image create <method> <source> -t <tag> --no-dns --no-localtime`, asserted to succeed;
/// answers the new image's ID.
pub fn create_image(daemon: &Daemon, method: &str, source: &str, tag: &str) -> String {
    let out = daemon.klee(&[
        "image",
        "create",
        method,
        source,
        "-t",
        tag,
        "--no-dns",
        "--no-localtime",
    ]);
    let printed = ok_for(format_args!("creating the {tag} image"), &out);
    printed
        .rsplit("image created: ")
        .next()
        .unwrap_or("")
        .trim()
        .to_owned()
}

impl Daemon {
    /// [`Daemon::start`], with the base image [`base_image`].
    pub fn with_base() -> Daemon {
        let daemon = Daemon::start();
        base_image(&daemon);
        daemon
    }
}
