//! Tier-1 behaviour of the [`Zfs`] client with a scripted runner: retries, error
//! classification end to end, and the zfs-fuse fallbacks. The stderr strings are the ones
//! zfs-fuse 0.7.0 prints (captured on the Debian test host).

use std::sync::Arc;

use kleene_runner::{Output, PipeOutput, RecordingRunner, Reply};
use zfs::{DatasetName, DestroyFlags, RetryPolicy, SnapshotName, Zfs, ZfsError, ZfsPrograms};

fn client(attempts: u32) -> (Arc<RecordingRunner>, Zfs) {
    let runner = Arc::new(RecordingRunner::new());
    let zfs = Zfs::new(runner.clone())
        .with_programs(ZfsPrograms::from_path())
        .with_retry(RetryPolicy::immediate(attempts));
    (runner, zfs)
}

fn ds(name: &str) -> DatasetName {
    DatasetName::new(name).expect("valid dataset name")
}

fn snap(name: &str) -> SnapshotName {
    SnapshotName::new(name).expect("valid snapshot name")
}

const BUSY: &str = "cannot destroy 'kt/c1': dataset is busy\n";

#[test]
fn busy_destroy_is_retried_until_it_succeeds() {
    let (runner, zfs) = client(5);
    runner.push_err(1, BUSY).push_err(1, BUSY);
    zfs.destroy(&ds("kt/c1"), DestroyFlags::default())
        .expect("third attempt succeeds");
    assert_eq!(runner.lines(), ["zfs destroy kt/c1"; 3]);
}

#[test]
fn busy_is_returned_once_attempts_are_used_up() {
    let (runner, zfs) = client(3);
    for _ in 0..5 {
        runner.push_err(1, BUSY);
    }
    let err = zfs
        .destroy(&ds("kt/c1"), DestroyFlags::default())
        .expect_err("still busy");
    assert!(matches!(err, ZfsError::Busy { ref dataset } if dataset == "kt/c1"));
    assert_eq!(err.to_string(), "dataset 'kt/c1' is busy");
    assert_eq!(runner.calls().len(), 3);
}

#[test]
fn destroy_with_clones_is_refused_with_dependents() {
    let (runner, zfs) = client(5);
    runner.push_err(
        1,
        "cannot destroy 'kt/a': filesystem has dependent clones\n\
         use '-R' to destroy the following datasets:\nkt/c1\n",
    );
    let err = zfs
        .destroy(&ds("kt/a"), DestroyFlags::recursive())
        .expect_err("refused");
    assert!(
        matches!(err, ZfsError::HasDependents { ref dataset, ref dependents }
        if dataset == "kt/a" && dependents == &["kt/c1"])
    );
    // A refusal is final: no retry.
    assert_eq!(runner.calls().len(), 1);
}

#[test]
fn exists_is_false_for_a_missing_dataset() {
    let (runner, zfs) = client(5);
    runner.push_err(1, "cannot open 'kt/nope': dataset does not exist\n");
    assert!(!zfs.exists(&ds("kt/nope")).expect("answers"));
}

#[test]
fn exists_is_false_for_a_missing_pool() {
    let (runner, zfs) = client(5);
    runner.push_err(1, "cannot open 'nopool/x': dataset does not exist\n");
    assert!(!zfs.exists(&ds("nopool/x")).expect("answers"));
    runner.push_err(1, "cannot open 'nopool': no such pool\n");
    assert!(!zfs.pool_exists("nopool").expect("answers"));
}

#[test]
fn exists_propagates_unexpected_failures() {
    let (runner, zfs) = client(5);
    runner.push_err(1, "internal error: out of memory\n");
    let err = zfs.exists(&ds("kt/a")).expect_err("not an answer");
    assert!(matches!(err, ZfsError::Other { ref argv, .. }
        if argv == &["zfs", "list", "-H", "-o", "name", "kt/a"]));
}

#[test]
fn mountpoint_none_and_legacy_are_none() {
    let (runner, zfs) = client(5);
    runner.push_ok("none\n").push_ok("legacy\n");
    assert_eq!(zfs.mountpoint(&ds("kt/a")).expect("mountpoint"), None);
    assert_eq!(zfs.mountpoint(&ds("kt/b")).expect("mountpoint"), None);
}

#[test]
fn get_of_unset_property_is_none() {
    let (runner, zfs) = client(5);
    runner.push_ok("-\n");
    assert_eq!(zfs.get(&ds("kt/a"), "origin").expect("get"), None);
}

#[test]
fn snapshot_map_falls_back_to_origin_on_zfs_fuse_and_remembers() {
    let (runner, zfs) = client(5);
    runner
        .push_err(
            2,
            "bad property list: invalid property 'clones'\nusage:\n\tlist [-rH][-d max] ...\n",
        )
        .push_ok("kt/k/a@s1\nkt/k/a@s2\n")
        .push_ok("kt\t-\nkt/k\t-\nkt/k/a\t-\nkt/k/c1\tkt/k/a@s1\nkt/other\tkt/k/a@s1\n");
    let map = zfs.snapshots_with_clones(&ds("kt/k")).expect("map");
    assert_eq!(map.len(), 2);
    assert_eq!(map[0].snapshot, snap("kt/k/a@s1"));
    assert_eq!(map[0].clones, [ds("kt/k/c1"), ds("kt/other")]);
    assert!(map[1].clones.is_empty());

    runner.push_ok("kt/k/a@s1\n").push_ok("kt/k/a\t-\n");
    zfs.snapshots_with_clones(&ds("kt/k")).expect("map again");
    assert_eq!(
        runner.lines(),
        [
            "zfs list -H -t snapshot -o name,clones -r kt/k",
            "zfs list -H -t snapshot -o name -r kt/k",
            "zfs list -H -t filesystem,volume -o name,origin -r kt",
            // Second call: straight to the fallback.
            "zfs list -H -t snapshot -o name -r kt/k",
            "zfs list -H -t filesystem,volume -o name,origin -r kt",
        ]
    );
}

#[test]
fn dependents_are_clones_outside_the_tree_transitively() {
    let (runner, zfs) = client(5);
    runner.push_ok(
        "kt/img/a@image\tkt/ctr/c1,kt/img/a/inner\n\
         kt/img/a/inner@x\tkt/ctr/c2\n\
         kt/ctr/c1@s\tkt/ctr/c3\n\
         kt/img/b@image\tkt/ctr/c4\n",
    );
    let deps = zfs.dependents(&ds("kt/img/a")).expect("dependents");
    assert_eq!(deps, [ds("kt/ctr/c1"), ds("kt/ctr/c2"), ds("kt/ctr/c3")]);
    assert_eq!(
        runner.lines(),
        ["zfs list -H -t snapshot -o name,clones -r kt"]
    );
}

#[test]
fn failed_send_reports_the_sender_error() {
    let (runner, zfs) = client(5);
    runner.push(Reply::Pipe(PipeOutput {
        producer: Output::failure(1, "cannot open 'kt/a@nope': dataset does not exist\n"),
        consumer: Output::failure(1, "cannot receive: failed to read from stream\n"),
    }));
    let err = zfs
        .send_receive(&snap("kt/a@nope"), &ds("kt/b"))
        .expect_err("no such snapshot");
    assert!(matches!(err, ZfsError::NotFound { ref dataset } if dataset == "kt/a@nope"));
}

#[test]
fn receive_into_existing_dataset_is_already_exists() {
    let (runner, zfs) = client(5);
    runner.push_err(
        1,
        "cannot receive new filesystem stream: destination 'kt/b' exists\nmust specify -F to overwrite it\n",
    );
    let err = zfs
        .send_receive(&snap("kt/a@s"), &ds("kt/b"))
        .expect_err("exists");
    assert!(matches!(err, ZfsError::AlreadyExists { ref dataset } if dataset == "kt/b"));
}

#[test]
fn unknown_pipe_failure_names_both_commands() {
    let (runner, zfs) = client(5);
    runner.push_err(1, "cannot receive: out of widgets\n");
    let err = zfs
        .send_receive(&snap("kt/a@s"), &ds("kt/b"))
        .expect_err("fails");
    assert_eq!(
        err.to_string(),
        "`zfs send kt/a@s | zfs receive kt/b` failed (exit code 1): cannot receive: out of widgets"
    );
}

#[test]
fn failed_rename_remounts_what_it_unmounted() {
    let (runner, zfs) = client(1);
    runner
        .push_ok("kt/a\tyes\n")
        .push_ok("")
        .push_err(1, "cannot rename 'kt/a': dataset already exists\n");
    let err = zfs.rename(&ds("kt/a"), &ds("kt/b")).expect_err("exists");
    assert!(matches!(err, ZfsError::AlreadyExists { .. }));
    assert_eq!(
        runner.lines(),
        [
            "zfs list -H -t filesystem -o name,mounted -r kt/a",
            "zfs unmount kt/a",
            "zfs rename kt/a kt/b",
            "zfs mount kt/a",
        ]
    );
}

#[test]
fn rename_of_missing_dataset_is_not_found() {
    let (runner, zfs) = client(5);
    runner.push_err(1, "cannot open 'kt/nope': dataset does not exist\n");
    let err = zfs
        .rename(&ds("kt/nope"), &ds("kt/x"))
        .expect_err("missing");
    assert!(err.is_not_found());
}

#[test]
fn malformed_list_output_is_a_parse_error() {
    let (runner, zfs) = client(5);
    runner.push_ok("kt/a\tyes\textra\n");
    let err = zfs
        .rename(&ds("kt/a"), &ds("kt/b"))
        .expect_err("bad output");
    assert!(matches!(err, ZfsError::Parse { .. }));
}

#[test]
fn spawn_failure_is_a_run_error() {
    let (runner, zfs) = client(5);
    runner.push(Reply::SpawnError("no such file or directory".into()));
    let err = zfs.exists(&ds("kt/a")).expect_err("zfs missing");
    assert!(matches!(err, ZfsError::Run(_)));
    assert_eq!(err.to_string(), "could not start `zfs`");
}

#[test]
fn invalid_pool_names_are_rejected_before_running() {
    let (runner, zfs) = client(5);
    assert!(matches!(zfs.pool_exists("-f"), Err(ZfsError::Name(_))));
    assert!(matches!(
        zfs.pool_destroy("a/b", true),
        Err(ZfsError::Name(_))
    ));
    assert!(runner.calls().is_empty());
}
