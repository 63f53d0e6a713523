//! Crash consistency: the daemon is killed (SIGKILL) at random moments during random operations,
//! restarted, and checked: the store and ZFS agree (every image, container and volume row has its
//! dataset, every dataset under `image/`, `container/` and `volumes/` has its row, images have their
//! `@image` snapshot, every volume a container mounts exists), no download is left in the root, no container process, cgroup or mount is left, and
//! what klee lists it can remove. 50 rounds; the seed is printed, and `KLEENE_CRASH_SEED` replays one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kleene_tests::base::base_archive;
use kleene_tests::bin;
use kleene_tests::clients::ok;
use kleene_tests::daemon::Daemon;
use kleene_tests::pool::{root_mountpoint, zfs_tree};
use kleene_tests::require;
use kleene_tests::skip::host_tests;
use kleene_tests::wait::eventually;

/// A small generator (xorshift), enough to pick operations and moments.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// An operation run in the background with our klee, to be interrupted.
fn background(daemon: &Daemon, args: &[&str]) -> Child {
    Command::new(bin("klee"))
        .arg("--host")
        .arg(&daemon.host)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start klee")
}

/// The invariants after a restart.
fn check(daemon: &Daemon, round: usize) {
    let root = &daemon.root.name;
    let images = daemon.klee_list(&["--json", "lsi"]);
    let containers = daemon.klee_list(&["--json", "lsc", "-a"]);
    // A container's dataset whose row is gone (removed, or never finished) is destroyed by the
    // daemon's background reaper, which a restart queues again: give it time to finish.
    let container_parent = format!("{root}/container/");
    let orphan = |datasets: &[String]| {
        datasets
            .iter()
            .filter(|d| d.starts_with(&container_parent) && !d.contains('@'))
            .filter(|d| !containers.iter().any(|c| c["dataset"] == **d))
            .cloned()
            .collect::<Vec<_>>()
    };
    let datasets = eventually(Duration::from_secs(60), || {
        let datasets = zfs_tree(root);
        if orphan(&datasets).is_empty() {
            Ok(datasets)
        } else {
            Err(datasets)
        }
    })
    .unwrap_or_else(|datasets| datasets);
    let volumes = daemon.klee_list(&["--json", "volume", "ls"]);
    for volume in &volumes {
        let dataset = volume["dataset"].as_str().unwrap();
        assert!(
            datasets.iter().any(|d| d == dataset),
            "round {round}: volume without dataset {dataset}"
        );
    }
    // Every volume a container mounts exists.
    for container in &containers {
        let id = container["id"].as_str().unwrap();
        let inspect = daemon.klee_json(&["isc", id]);
        for mount in inspect["container_mountpoints"].as_array().unwrap() {
            if mount["type"] == "volume" {
                assert!(
                    volumes.iter().any(|v| v["name"] == mount["source"]),
                    "round {round}: container {id} mounts a missing volume {}",
                    mount["source"]
                );
            }
        }
    }
    for image in &images {
        let dataset = image["dataset"].as_str().unwrap();
        assert!(
            datasets.iter().any(|d| d == dataset),
            "round {round}: image without dataset {dataset}"
        );
        assert!(
            datasets.iter().any(|d| *d == format!("{dataset}@image")),
            "round {round}: image {dataset} without @image"
        );
    }
    for container in &containers {
        let dataset = container["dataset"].as_str().unwrap();
        assert!(
            datasets.iter().any(|d| d == dataset),
            "round {round}: container without dataset {dataset}"
        );
        assert_eq!(
            container["running"], false,
            "round {round}: a container runs after a restart"
        );
    }
    for dataset in &datasets {
        let Some(rest) = dataset.strip_prefix(&format!("{root}/")) else {
            continue;
        };
        let known = |list: &[serde_json::Value]| list.iter().any(|o| o["dataset"] == *dataset);
        if rest.starts_with("image/") && !rest.contains('@') {
            assert!(
                known(&images),
                "round {round}: image dataset without a row: {dataset}"
            );
        }
        if rest.starts_with("volumes/") && !rest.contains('@') {
            assert!(
                known(&volumes),
                "round {round}: volume dataset without a row: {dataset}"
            );
        }
        if rest.starts_with("container/") && !rest.contains('@') {
            assert!(
                known(&containers),
                "round {round}: container dataset without a row: {dataset}"
            );
        }
    }
    let mountpoint = root_mountpoint(root);
    let downloads: Vec<String> = std::fs::read_dir(&mountpoint)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".fetch-"))
        .collect();
    assert!(
        downloads.is_empty(),
        "round {round}: downloads left: {downloads:?}"
    );
    #[cfg(not(target_os = "freebsd"))]
    {
        let stray = kleene_tests::host::stray_mounts(&mountpoint);
        assert!(stray.is_empty(), "round {round}: mounts left: {stray:?}");
    }
}

#[test]
fn a_daemon_killed_at_random_moments_comes_back_consistent() {
    require!(host_tests());
    let seed = std::env::var("KLEENE_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("KLEENE_CRASH_SEED={seed}");
    let mut dice = Dice(seed);
    let mut daemon = Daemon::with_base();
    // A bigger archive, so that image creation has moments to be killed in: the base userland
    // and 48 MiB of data.
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("big.tar");
    std::fs::copy(base_archive(), &archive).unwrap();
    std::fs::create_dir_all(work.path().join("payload")).unwrap();
    let blob = work.path().join("payload/blob");
    let out = Command::new("head")
        .args(["-c", "50331648", "/dev/urandom"])
        .stdout(std::fs::File::create(&blob).unwrap())
        .status()
        .unwrap();
    assert!(out.success());
    let out = Command::new("tar")
        .arg("-rf")
        .arg(&archive)
        .arg("-C")
        .arg(work.path())
        .arg("payload/blob")
        .output()
        .unwrap();
    ok(&out);
    let url = format!("file://{}", archive.display());

    for round in 0..50 {
        let containers = daemon.klee_list(&["--json", "lsc", "-a"]);
        let any = containers
            .first()
            .map(|c| c["id"].as_str().unwrap().to_owned());
        let mut operations: Vec<Vec<String>> = vec![
            vec![
                "image".into(),
                "create".into(),
                "fetch".into(),
                url.clone(),
                "--no-dns".into(),
                "--no-localtime".into(),
            ],
            vec!["create".into(), "base".into(), "true".into()],
            vec![
                "run".into(),
                "base".into(),
                "/bin/sh".into(),
                "-c".into(),
                "sleep 0.2".into(),
            ],
            vec!["container".into(), "prune".into(), "-f".into()],
            vec!["image".into(), "prune".into(), "-f".into()],
            vec![
                "run".into(),
                "-m".into(),
                format!("v{}:/data", dice.below(3)),
                "base".into(),
                "/bin/sh".into(),
                "-c".into(),
                "echo x > /data/f".into(),
            ],
            vec![
                "volume".into(),
                "create".into(),
                format!("v{}", dice.below(3)),
            ],
            vec!["volume".into(), "rm".into(), format!("v{}", dice.below(3))],
            vec!["volume".into(), "prune".into(), "-f".into()],
        ];
        if let Some(id) = any {
            operations.push(vec!["rmc".into(), "-f".into(), id.clone()]);
            operations.push(vec!["start".into(), "-d".into(), id]);
        }
        let pick = &operations[dice.below(operations.len() as u64) as usize];
        let args: Vec<&str> = pick.iter().map(String::as_str).collect();
        let mut operation = background(&daemon, &args);
        std::thread::sleep(Duration::from_millis(dice.below(1000)));
        daemon.kill();
        let _ = operation.kill();
        let _ = operation.wait();
        daemon.start_again();
        check(&daemon, round);
        // Keep the number of objects bounded.
        if round % 10 == 9 {
            daemon.klee_ok(&["container", "prune", "-f"]);
        }
    }
    // The rounds did interrupt operations that the restarts then finished or undid.
    let log = daemon.log();
    let recovered = log.matches("finishing what an earlier daemon left").count();
    let reconciled = log.matches("the store does not know").count()
        + log.matches("whose dataset is gone").count();
    println!("{recovered} intents finished or undone, {reconciled} objects reconciled");
    assert!(recovered > 0, "no round interrupted an operation: {log}");
    // What is listed can be removed: everything goes.
    for container in daemon.klee_list(&["--json", "lsc", "-a"]) {
        daemon.klee_ok(&["rmc", "-f", container["id"].as_str().unwrap()]);
    }
    daemon.klee_ok(&["image", "prune", "-a", "-f"]);
    assert!(daemon.klee_list(&["--json", "lsi"]).is_empty());
    daemon.klee_ok(&["volume", "prune", "-f"]);
    assert!(daemon.klee_list(&["--json", "volume", "ls"]).is_empty());
}

/// A removal of many containers killed midway: at the next start every container the daemon no
/// longer lists has no dataset left (its removal was finished, however far the kill let it go),
/// every one it still lists is whole and can be removed, and the containers it keeps are intact.
#[test]
fn removals_cut_off_by_a_killed_daemon_are_finished_at_the_next_start() {
    require!(host_tests());
    let mut daemon = Daemon::with_base();
    let mut doomed = vec![];
    for n in 0..12 {
        daemon.klee_ok(&["create", "--name", &format!("doomed{n}"), "base", "true"]);
        doomed.push(format!("doomed{n}"));
    }
    let mut kept = vec![];
    for n in 0..3 {
        let name = format!("kept{n}");
        daemon.klee_ok(&["create", "--name", &name, "base", "true"]);
        kept.push(name);
    }
    let datasets = |daemon: &Daemon, names: &[String]| -> Vec<(String, String)> {
        daemon
            .klee_list(&["--json", "lsc", "-a"])
            .iter()
            .filter(|c| names.iter().any(|n| c["name"] == n.as_str()))
            .map(|c| {
                (
                    c["name"].as_str().unwrap().to_owned(),
                    c["dataset"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let doomed_datasets = datasets(&daemon, &doomed);
    let kept_datasets = datasets(&daemon, &kept);
    assert_eq!(doomed_datasets.len(), 12);
    let mut args = vec!["rm"];
    args.extend(doomed.iter().map(String::as_str));
    let mut removal = background(&daemon, &args);
    // Killed once the first removal is through: the others are under way or still to come.
    let first = doomed_datasets
        .iter()
        .find(|(name, _)| *name == doomed[0])
        .map(|(_, dataset)| dataset.clone())
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while zfs_tree(&daemon.root.name).contains(&first) {
        assert!(
            std::time::Instant::now() < deadline,
            "the first removal did not finish"
        );
    }
    daemon.kill();
    let _ = removal.kill();
    let _ = removal.wait();
    let listed: Vec<String> = json_after_restart(&mut daemon)
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect();
    println!(
        "{} of 12 containers were still listed after the kill",
        listed.len()
    );
    assert!(
        !listed.contains(&doomed[0]),
        "a finished removal stays finished"
    );
    let left = eventually(Duration::from_secs(60), || {
        let tree = zfs_tree(&daemon.root.name);
        let left: Vec<&String> = doomed_datasets
            .iter()
            .filter(|(name, dataset)| !listed.contains(name) && tree.contains(dataset))
            .map(|(_, dataset)| dataset)
            .collect();
        if left.is_empty() {
            Ok(())
        } else {
            Err(left)
        }
    });
    if let Err(left) = left {
        panic!("datasets of removed containers left after the restart: {left:?}");
    }
    let tree = zfs_tree(&daemon.root.name);
    for (name, dataset) in doomed_datasets.iter().chain(&kept_datasets) {
        if listed.contains(name) || kept.contains(name) {
            assert!(
                tree.contains(dataset),
                "a listed container's dataset went: {dataset}"
            );
        }
    }
    for name in listed.iter().chain(&kept) {
        daemon.klee_ok(&["rm", name]);
    }
    let containers = format!("{}/container/", daemon.root.name);
    let stray: Vec<String> = zfs_tree(&daemon.root.name)
        .into_iter()
        .filter(|d| d.starts_with(&containers))
        .collect();
    assert_eq!(stray, Vec::<String>::new(), "every container is gone");
}

/// Restarts a killed daemon and answers the containers named doomed* it lists.
fn json_after_restart(daemon: &mut Daemon) -> Vec<serde_json::Value> {
    daemon.start_again();
    daemon
        .klee_list(&["--json", "lsc", "-a"])
        .into_iter()
        .filter(|c| c["name"].as_str().is_some_and(|n| n.starts_with("doomed")))
        .collect()
}
