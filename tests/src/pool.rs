//! The zfs pool the host tests work in: a client patient with zfs-fuse, the datasets under a
//! root (and waiting for them to settle), a uniquely named root dataset per test destroyed when
//! dropped, and where a dataset is mounted.

use std::process::Command;
use std::time::Duration;

use crate::wait::eventually;

/// The zfs pool host tests work in (`KLEENE_TEST_POOL`, default `kleene-test`).
pub fn test_pool() -> String {
    std::env::var("KLEENE_TEST_POOL").unwrap_or_else(|_| "kleene-test".to_owned())
}

/// A ZFS client for tests, patient with zfs-fuse's "dataset is busy" (common right after unmounts).
pub fn zfs() -> zfs::Zfs {
    zfs::Zfs::new(std::sync::Arc::new(kleene_runner::SystemRunner::new())).with_retry(
        zfs::RetryPolicy {
            attempts: 9,
            initial_delay: Duration::from_millis(25),
        },
    )
}

/// Names of every dataset and snapshot under `root` (empty when it does not exist).
pub fn zfs_tree(root: &str) -> Vec<String> {
    let out = Command::new("zfs")
        .args(["list", "-H", "-o", "name", "-t", "all", "-r", root])
        .output();
    match out {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect(),
        _ => vec![],
    }
}

/// The datasets under `root` once they are `expected`: removed containers' datasets are destroyed
/// in the background. Waits at most 30 s, then answers what is there.
pub fn settled_tree(root: &str, expected: &[String]) -> Vec<String> {
    eventually(Duration::from_secs(30), || {
        let tree = zfs_tree(root);
        if tree == expected {
            Ok(tree)
        } else {
            Err(tree)
        }
    })
    .unwrap_or_else(|tree| tree)
}

/// The mountpoint of a test dataset (`/<name>` when zfs does not say).
pub fn root_mountpoint(name: &str) -> String {
    zfs::DatasetName::new(name.to_owned())
        .ok()
        .and_then(|dataset| zfs().mountpoint(&dataset).ok().flatten())
        .map(|path| path.display().to_string())
        .unwrap_or_else(|| format!("/{name}"))
}

/// A uniquely named dataset `<pool>/kleene-e2e-<random>`, destroyed with everything under it when
/// dropped.
#[derive(Debug)]
pub struct TestRoot {
    /// The dataset's name.
    pub name: String,
}

impl TestRoot {
    /// Creates the dataset; fails loudly when the pool is not there.
    pub fn create() -> TestRoot {
        let pool = test_pool();
        let client = zfs();
        assert!(
            client.pool_exists(&pool).unwrap_or(false),
            "the zfs pool '{pool}' is missing: run `scripts/zfs-pool.sh up` as root (or set \
             KLEENE_SKIP_HOST_TESTS=1 to opt out of host tests)"
        );
        let suffix = &uuid::Uuid::new_v4().simple().to_string()[..10];
        let name = format!("{pool}/kleene-e2e-{suffix}");
        let dataset = zfs::DatasetName::new(name.clone()).expect("valid test dataset name");
        client
            .create(&dataset, &[])
            .expect("create the test root dataset");
        TestRoot { name }
    }
}

impl Drop for TestRoot {
    fn drop(&mut self) {
        let Ok(dataset) = zfs::DatasetName::new(self.name.clone()) else {
            return;
        };
        // Images cloned from a dataset outside the root (the base dataset of the FreeBSD tests)
        // leave their origin snapshot there when the root goes; find them while the clones exist.
        let outside = origins_outside(&self.name);
        let flags = zfs::DestroyFlags {
            recursive: true,
            recursive_dependents: true,
            force: true,
        };
        // zfs-fuse may still be busy with the last unmounts of a daemon that just stopped (its
        // own retries span about 13 s): try again a little later before giving up.
        let mut attempt = 0;
        while let Err(err) = zfs().destroy(&dataset, flags) {
            if zfs_tree(&self.name).is_empty() {
                break;
            }
            attempt += 1;
            if attempt == 4 {
                eprintln!("could not destroy test dataset {}: {err}", self.name);
                return;
            }
            std::thread::sleep(Duration::from_secs(2));
        }
        for origin in outside {
            let Ok(snapshot) = zfs::SnapshotName::new(origin.clone()) else {
                continue;
            };
            // Without -R: a snapshot that still has clones elsewhere stays.
            if let Err(err) = zfs().destroy_snapshot(&snapshot, zfs::DestroyFlags::default()) {
                eprintln!("could not destroy origin snapshot {origin}: {err}");
            }
        }
    }
}

/// Origin snapshots, outside `root`, of the filesystems under `root`.
fn origins_outside(root: &str) -> Vec<String> {
    let out = Command::new("zfs")
        .args(["list", "-H", "-o", "origin", "-t", "filesystem", "-r", root])
        .output();
    let Ok(out) = out else { return vec![] };
    let inside = [format!("{root}/"), format!("{root}@")];
    let mut origins: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|o| *o != "-" && o.contains('@'))
        .filter(|o| !inside.iter().any(|prefix| o.starts_with(prefix.as_str())))
        .map(str::to_owned)
        .collect();
    origins.sort();
    origins.dedup();
    origins
}
