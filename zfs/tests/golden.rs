//! Golden command lines: every operation's exact argv as run on FreeBSD (`/sbin/zfs`,
//! `/sbin/zpool`). Each test names the man page section (OpenZFS zfs-*(8) / zpool-*(8), as
//! shipped with FreeBSD 13/14) whose synopsis the line follows. A change here changes what
//! runs on production hosts, so it must be deliberate.

use std::path::Path;
use std::sync::Arc;

use kleene_runner::RecordingRunner;
use zfs::{DatasetName, DestroyFlags, RetryPolicy, SnapshotName, Zfs, ZfsPrograms};

fn client() -> (Arc<RecordingRunner>, Zfs) {
    let runner = Arc::new(RecordingRunner::new());
    let zfs = Zfs::new(runner.clone())
        .with_programs(ZfsPrograms::freebsd())
        .with_retry(RetryPolicy::none());
    (runner, zfs)
}

fn ds(name: &str) -> DatasetName {
    DatasetName::new(name).expect("valid dataset name")
}

fn snap(name: &str) -> SnapshotName {
    SnapshotName::new(name).expect("valid snapshot name")
}

// zfs-create(8): zfs create [-o property=value]… filesystem
#[test]
fn create_plain() {
    let (runner, zfs) = client();
    zfs.create(&ds("zroot/kleene/volumes/data"), &[])
        .expect("create");
    assert_eq!(
        runner.lines(),
        ["/sbin/zfs create zroot/kleene/volumes/data"]
    );
}

// zfs-create(8): zfs create [-o property=value]… filesystem
#[test]
fn create_with_properties() {
    let (runner, zfs) = client();
    zfs.create(
        &ds("zroot/kleene/volumes/data"),
        &[("quota", "10M"), ("org.kleene:id", "abc")],
    )
    .expect("create");
    assert_eq!(
        runner.lines(),
        ["/sbin/zfs create -o quota=10M -o org.kleene:id=abc zroot/kleene/volumes/data"]
    );
}

// zfs-snapshot(8): zfs snapshot dataset@snapname
#[test]
fn snapshot() {
    let (runner, zfs) = client();
    zfs.snapshot(&snap("zroot/kleene/image/0123456789ab@image"))
        .expect("snapshot");
    assert_eq!(
        runner.lines(),
        ["/sbin/zfs snapshot zroot/kleene/image/0123456789ab@image"]
    );
}

// zfs-clone(8): zfs clone [-o property=value]… snapshot filesystem
#[test]
fn clone() {
    let (runner, zfs) = client();
    zfs.clone_snapshot(
        &snap("zroot/kleene/image/0123456789ab@image"),
        &ds("zroot/kleene/container/ba9876543210"),
        &[],
    )
    .expect("clone");
    zfs.clone_snapshot(
        &snap("zroot/kleene/image/0123456789ab@image"),
        &ds("zroot/kleene/container/ba9876543211"),
        &[("quota", "1G")],
    )
    .expect("clone");
    assert_eq!(
        runner.lines(),
        [
            "/sbin/zfs clone zroot/kleene/image/0123456789ab@image zroot/kleene/container/ba9876543210",
            "/sbin/zfs clone -o quota=1G zroot/kleene/image/0123456789ab@image zroot/kleene/container/ba9876543211",
        ]
    );
}

// zfs-destroy(8): zfs destroy [-Rfnprv] filesystem|volume
#[test]
fn destroy_flags() {
    let (runner, zfs) = client();
    let name = ds("zroot/kleene/container/ba9876543210");
    zfs.destroy(&name, DestroyFlags::default())
        .expect("destroy");
    zfs.destroy(&name, DestroyFlags::force())
        .expect("destroy -f");
    zfs.destroy(&name, DestroyFlags::recursive())
        .expect("destroy -r");
    zfs.destroy(&name, DestroyFlags::recursive_force())
        .expect("destroy -r -f");
    zfs.destroy(
        &name,
        DestroyFlags {
            recursive: true,
            recursive_dependents: true,
            force: true,
        },
    )
    .expect("destroy -r -R -f");
    assert_eq!(
        runner.lines(),
        [
            "/sbin/zfs destroy zroot/kleene/container/ba9876543210",
            "/sbin/zfs destroy -f zroot/kleene/container/ba9876543210",
            "/sbin/zfs destroy -r zroot/kleene/container/ba9876543210",
            "/sbin/zfs destroy -r -f zroot/kleene/container/ba9876543210",
            "/sbin/zfs destroy -r -R -f zroot/kleene/container/ba9876543210",
        ]
    );
}

// zfs-destroy(8): zfs destroy [-Rdnprv] filesystem|volume@snap
#[test]
fn destroy_snapshot() {
    let (runner, zfs) = client();
    zfs.destroy_snapshot(
        &snap("zroot/kleene/image/0123456789ab@5f2c1d0e9a8b"),
        DestroyFlags::force(),
    )
    .expect("destroy snapshot");
    assert_eq!(
        runner.lines(),
        ["/sbin/zfs destroy -f zroot/kleene/image/0123456789ab@5f2c1d0e9a8b"]
    );
}

// zfs-destroy(8): zfs destroy [-Rfnprv] filesystem|volume, with -n (dry run) and -v (list)
#[test]
fn destroy_dry_run() {
    let (runner, zfs) = client();
    runner
        .push_ok("would destroy zroot/kleene/image/a@image\nwould destroy zroot/kleene/image/a\n");
    let would = zfs
        .destroy_dry_run(&ds("zroot/kleene/image/a"), DestroyFlags::recursive())
        .expect("dry run");
    assert_eq!(
        runner.lines(),
        ["/sbin/zfs destroy -r -n -v zroot/kleene/image/a"]
    );
    assert_eq!(
        would,
        ["zroot/kleene/image/a@image", "zroot/kleene/image/a"]
    );
}

// zfs-rename(8): zfs rename filesystem filesystem, bracketed by zfs-list(8) (which file
// systems are mounted), zfs-unmount(8) and zfs-mount(8), since zfs-fuse cannot rename a
// mounted file system.
#[test]
fn rename_of_mounted_dataset() {
    let (runner, zfs) = client();
    runner.push_ok("zroot/kleene/container/c1\tyes\nzroot/kleene/container/c1/sub\tyes\n");
    zfs.rename(
        &ds("zroot/kleene/container/c1"),
        &ds("zroot/kleene/image/i1"),
    )
    .expect("rename");
    assert_eq!(
        runner.lines(),
        [
            "/sbin/zfs list -H -t filesystem -o name,mounted -r zroot/kleene/container/c1",
            "/sbin/zfs unmount zroot/kleene/container/c1/sub",
            "/sbin/zfs unmount zroot/kleene/container/c1",
            "/sbin/zfs rename zroot/kleene/container/c1 zroot/kleene/image/i1",
            "/sbin/zfs mount zroot/kleene/image/i1",
            "/sbin/zfs mount zroot/kleene/image/i1/sub",
        ]
    );
}

// zfs-rename(8): an unmounted file system is renamed directly.
#[test]
fn rename_of_unmounted_dataset() {
    let (runner, zfs) = client();
    runner.push_ok("zroot/a\tno\n");
    zfs.rename(&ds("zroot/a"), &ds("zroot/b")).expect("rename");
    assert_eq!(
        runner.lines(),
        [
            "/sbin/zfs list -H -t filesystem -o name,mounted -r zroot/a",
            "/sbin/zfs rename zroot/a zroot/b",
        ]
    );
}

// zfs-promote(8): zfs promote clone
#[test]
fn promote() {
    let (runner, zfs) = client();
    zfs.promote(&ds("zroot/kleene/container/c1"))
        .expect("promote");
    assert_eq!(
        runner.lines(),
        ["/sbin/zfs promote zroot/kleene/container/c1"]
    );
}

// zfs-list(8): zfs list -H -o name dataset (Kleened's existence check, without the shell)
#[test]
fn exists() {
    let (runner, zfs) = client();
    runner.push_ok("zroot/kleene\n");
    assert!(zfs.exists(&ds("zroot/kleene")).expect("exists"));
    assert_eq!(runner.lines(), ["/sbin/zfs list -H -o name zroot/kleene"]);
}

// zfs-list(8): zfs list -H -t snapshot -o name dataset@snap
#[test]
fn snapshot_exists() {
    let (runner, zfs) = client();
    runner.push_ok("zroot/kleene/image/a@image\n");
    assert!(zfs
        .snapshot_exists(&snap("zroot/kleene/image/a@image"))
        .expect("exists"));
    assert_eq!(
        runner.lines(),
        ["/sbin/zfs list -H -t snapshot -o name zroot/kleene/image/a@image"]
    );
}

// zfs-list(8): zfs list -H -o mountpoint dataset (Kleened's mountpoint query)
#[test]
fn mountpoint() {
    let (runner, zfs) = client();
    runner.push_ok("/zroot/kleene/container/c1\n");
    assert_eq!(
        zfs.mountpoint(&ds("zroot/kleene/container/c1"))
            .expect("mountpoint"),
        Some("/zroot/kleene/container/c1".into())
    );
    assert_eq!(
        runner.lines(),
        ["/sbin/zfs list -H -o mountpoint zroot/kleene/container/c1"]
    );
}

// zfs-list(8): zfs list -H -o name -d 1 dataset
#[test]
fn children() {
    let (runner, zfs) = client();
    runner.push_ok("zroot/kleene/image\nzroot/kleene/image/a\nzroot/kleene/image/b\n");
    let children = zfs.children(&ds("zroot/kleene/image")).expect("children");
    assert_eq!(
        runner.lines(),
        ["/sbin/zfs list -H -o name -d 1 zroot/kleene/image"]
    );
    assert_eq!(
        children,
        [ds("zroot/kleene/image/a"), ds("zroot/kleene/image/b")]
    );
}

// zfs-list(8): zfs list -H -o name -r dataset
#[test]
fn descendants() {
    let (runner, zfs) = client();
    runner.push_ok("zroot/kleene\nzroot/kleene/image\nzroot/kleene/image/a\n");
    let all = zfs.descendants(&ds("zroot/kleene")).expect("descendants");
    assert_eq!(
        runner.lines(),
        ["/sbin/zfs list -H -o name -r zroot/kleene"]
    );
    assert_eq!(all, [ds("zroot/kleene/image"), ds("zroot/kleene/image/a")]);
}

// zfs-list(8): zfs list -H -t snapshot -o name -d 1 dataset
#[test]
fn snapshots() {
    let (runner, zfs) = client();
    runner.push_ok("zroot/kleene/image/a@b1\nzroot/kleene/image/a@image\n");
    let snaps = zfs
        .snapshots(&ds("zroot/kleene/image/a"))
        .expect("snapshots");
    assert_eq!(
        runner.lines(),
        ["/sbin/zfs list -H -t snapshot -o name -d 1 zroot/kleene/image/a"]
    );
    assert_eq!(
        snaps,
        [
            snap("zroot/kleene/image/a@b1"),
            snap("zroot/kleene/image/a@image")
        ]
    );
}

// zfs-list(8): zfs list -H -t snapshot -o name,clones -r root (Kleened's snapshot/clones map;
// `clones` is described in zfsprops(7))
#[test]
fn snapshots_with_clones() {
    let (runner, zfs) = client();
    runner.push_ok(
        "zroot/kleene/image/a@image\tzroot/kleene/container/c1,zroot/kleene/image/b\n\
         zroot/kleene/image/b@image\t\n",
    );
    let map = zfs
        .snapshots_with_clones(&ds("zroot/kleene"))
        .expect("snapshot map");
    assert_eq!(
        runner.lines(),
        ["/sbin/zfs list -H -t snapshot -o name,clones -r zroot/kleene"]
    );
    assert_eq!(map.len(), 2);
    assert_eq!(
        map[0].clones,
        [ds("zroot/kleene/container/c1"), ds("zroot/kleene/image/b")]
    );
    assert!(map[1].clones.is_empty());
}

// zfs-get(8): zfs get -H -o value property dataset
#[test]
fn get_property() {
    let (runner, zfs) = client();
    runner.push_ok("10M\n");
    assert_eq!(
        zfs.get(&ds("zroot/kleene/volumes/v"), "quota")
            .expect("get"),
        Some("10M".to_owned())
    );
    assert_eq!(
        runner.lines(),
        ["/sbin/zfs get -H -o value quota zroot/kleene/volumes/v"]
    );
}

// zfs-set(8): zfs set property=value dataset
#[test]
fn set_property() {
    let (runner, zfs) = client();
    zfs.set(&ds("zroot/kleene/volumes/v"), "quota", "1G")
        .expect("set");
    assert_eq!(
        runner.lines(),
        ["/sbin/zfs set quota=1G zroot/kleene/volumes/v"]
    );
}

// zfs-mount(8): zfs mount filesystem; zfs unmount [-f] filesystem
#[test]
fn mount_and_unmount() {
    let (runner, zfs) = client();
    let name = ds("zroot/kleene/container/c1");
    zfs.mount(&name).expect("mount");
    zfs.unmount(&name, false).expect("unmount");
    zfs.unmount(&name, true).expect("unmount -f");
    assert_eq!(
        runner.lines(),
        [
            "/sbin/zfs mount zroot/kleene/container/c1",
            "/sbin/zfs unmount zroot/kleene/container/c1",
            "/sbin/zfs unmount -f zroot/kleene/container/c1",
        ]
    );
}

// zfs-send(8): zfs send snapshot | zfs-receive(8): zfs receive filesystem
// (Kleened ran `send -v` through `/bin/sh -c`; -v only adds progress on stderr, so it is
// dropped, and the pipe is made directly between the two processes.)
#[test]
fn send_receive() {
    let (runner, zfs) = client();
    zfs.send_receive(
        &snap("zroot/kleene/image/a@image"),
        &ds("zroot/kleene/image/b"),
    )
    .expect("copy");
    assert_eq!(
        runner.lines(),
        ["/sbin/zfs send zroot/kleene/image/a@image | /sbin/zfs receive zroot/kleene/image/b"]
    );
}

// zpool-list(8): zpool list -H -o property[,property]… [pool]
#[test]
fn zpool_list() {
    let (runner, zfs) = client();
    runner.push_ok("zroot\n");
    runner.push_ok("zroot\t19.5G\tONLINE\n");
    assert!(zfs.pool_exists("zroot").expect("pool exists"));
    let pools = zfs.pools().expect("pools");
    assert_eq!(
        runner.lines(),
        [
            "/sbin/zpool list -H -o name zroot",
            "/sbin/zpool list -H -o name,size,health",
        ]
    );
    assert_eq!(pools[0].name, "zroot");
    assert_eq!(pools[0].size, "19.5G");
    assert_eq!(pools[0].health, "ONLINE");
}

// zpool-create(8): zpool create [-m mountpoint] pool vdev…
#[test]
fn zpool_create() {
    let (runner, zfs) = client();
    zfs.pool_create(
        "kleene-test",
        Some(Path::new("/kleene-test")),
        &[Path::new("/var/lib/kleene-test/kleene-test.img")],
    )
    .expect("create pool");
    assert_eq!(
        runner.lines(),
        ["/sbin/zpool create -m /kleene-test kleene-test /var/lib/kleene-test/kleene-test.img"]
    );
}

// zpool-destroy(8): zpool destroy [-f] pool
#[test]
fn zpool_destroy() {
    let (runner, zfs) = client();
    zfs.pool_destroy("kleene-test", true).expect("destroy pool");
    zfs.pool_destroy("kleene-test", false)
        .expect("destroy pool");
    assert_eq!(
        runner.lines(),
        [
            "/sbin/zpool destroy -f kleene-test",
            "/sbin/zpool destroy kleene-test"
        ]
    );
}

// The same invocations on Linux run `zfs`/`zpool` from PATH.
#[test]
fn linux_programs_come_from_path() {
    let runner = Arc::new(RecordingRunner::new());
    let zfs = Zfs::new(runner.clone()).with_programs(ZfsPrograms::from_path());
    zfs.promote(&ds("tank/c")).expect("promote");
    assert_eq!(runner.lines(), ["zfs promote tank/c"]);
}

// Nothing anywhere may use -p: zfs-fuse (pool version 23) rejects it.
#[test]
fn no_command_uses_the_parsable_flag() {
    let (runner, zfs) = client();
    let a = ds("p/a");
    let s = snap("p/a@s");
    let _ = zfs.create(&a, &[("quota", "1M")]);
    let _ = zfs.snapshot(&s);
    let _ = zfs.clone_snapshot(&s, &ds("p/b"), &[]);
    let _ = zfs.exists(&a);
    let _ = zfs.mountpoint(&a);
    let _ = zfs.snapshots_with_clones(&a);
    let _ = zfs.get(&a, "origin");
    let _ = zfs.send_receive(&s, &ds("p/c"));
    let _ = zfs.pools();
    for line in runner.lines() {
        assert!(
            !line.split(' ').any(|arg| arg == "-p" || arg == "-Hp"),
            "{line}"
        );
    }
}

// zfs-list(8): zfs list -H -o property[,property]... filesystem
#[test]
fn mounted_at() {
    let (runner, zfs) = client();
    runner.push_ok("yes\t/zroot/kleene/container/abc\n");
    let at = zfs
        .mounted_at(&ds("zroot/kleene/container/abc"))
        .expect("mounted_at");
    assert_eq!(
        at,
        Some(std::path::PathBuf::from("/zroot/kleene/container/abc"))
    );
    assert_eq!(
        runner.lines(),
        ["/sbin/zfs list -H -o mounted,mountpoint zroot/kleene/container/abc"]
    );
    runner.push_ok("no\t/zroot/kleene/container/abc\n");
    assert_eq!(
        zfs.mounted_at(&ds("zroot/kleene/container/abc"))
            .expect("mounted_at"),
        None
    );
}
