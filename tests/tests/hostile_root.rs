//! A hostile image or an earlier run of a container, end to end: links, FIFOs and huge files
//! planted on the paths the runtime's set-up mounts over or reads, host-path mounts that would
//! carry setuid files and device nodes, a container that fills its storage, and image sources
//! inside a kleene root. Each test plants the attack (from inside a container, or in the
//! container's dataset as an image would have it), expects a refusal that names the path, and then
//! checks that the host, the daemon and other containers are untouched.

// Test code: a failed setup step should panic where it happens.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[cfg(target_os = "linux")]
use std::path::{Path, PathBuf};
#[cfg(target_os = "linux")]
use std::time::Duration;

use kleene_tests::clients::{describe, ok, text};
use kleene_tests::daemon::Daemon;
#[cfg(target_os = "linux")]
use kleene_tests::host::peak_rss_kib;
#[cfg(target_os = "linux")]
use kleene_tests::pool::{root_mountpoint, zfs};
use kleene_tests::require;
use kleene_tests::skip::host_tests;
#[cfg(target_os = "linux")]
use kleene_tests::wait::eventually;

/// The ID of a container.
fn id_of(daemon: &Daemon, name: &str) -> String {
    daemon.klee_json(&["--json", "isc", name])["container"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[cfg(target_os = "linux")]
/// Where the container's dataset is mounted on the host: its root as the image left it.
fn dataset_root(daemon: &Daemon, name: &str) -> PathBuf {
    let root = root_mountpoint(&daemon.root.name);
    PathBuf::from(format!("{root}/container/{}", id_of(daemon, name)))
}

#[cfg(target_os = "linux")]
/// What a test compares before and after an attack: the names in the host's `/` and in the
/// daemon's working directory, the kernel's core pattern, and the host's mount points.
#[derive(Debug, PartialEq, Eq)]
struct HostView {
    root: Vec<String>,
    daemon_cwd: Vec<String>,
    core_pattern: String,
    mounts: Vec<String>,
}

#[cfg(target_os = "linux")]
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[cfg(target_os = "linux")]
fn host_view(daemon: &Daemon) -> HostView {
    let cwd = std::fs::read_link(format!("/proc/{}/cwd", daemon.pid())).unwrap();
    let own = root_mountpoint(&daemon.root.name);
    let mut mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|line| line.split_whitespace().nth(4).map(str::to_owned))
        // Other tests' datasets come and go; this daemon's containers' own datasets too.
        .filter(|m| !m.contains("/kleene-e2e-") || m.starts_with(&format!("{own}/")))
        .filter(|m| {
            m.strip_prefix(&format!("{own}/container/"))
                .is_none_or(|id| id.contains('/'))
        })
        .collect();
    mounts.sort();
    HostView {
        root: names(Path::new("/")),
        daemon_cwd: names(&cwd),
        core_pattern: std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap(),
        mounts,
    }
}

#[cfg(target_os = "linux")]
/// Replaces `path` in a container's root (as its image or an earlier run could have) by a
/// symbolic link to `target`.
fn plant_link(root: &Path, path: &str, target: &str) {
    let place = root.join(path);
    match std::fs::symlink_metadata(&place) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(&place).unwrap(),
        Ok(_) => std::fs::remove_file(&place).unwrap(),
        Err(_) => {}
    }
    std::os::unix::fs::symlink(target, &place).unwrap();
}

#[cfg(target_os = "linux")]
#[test]
fn links_on_the_set_ups_mountpoints_fail_the_start_and_touch_nothing() {
    require!(host_tests());
    let daemon = Daemon::with_probe();
    let before = host_view(&daemon);
    // /proc leading to the host's procfs view or anywhere else, /dev to / or to the daemon's
    // working directory, /sys to /: procfs, tmpfs or sysfs would be mounted where the link
    // points and the masks applied through paths that no longer lead there.
    let plants = [
        ("proc", "/"),
        ("proc", "/tmp"),
        ("dev", "/"),
        ("dev", "/proc/self/cwd"),
        ("dev", "../../../../../../.."),
        ("sys", "/"),
    ];
    for (path, target) in plants {
        daemon.klee_ok(&["create", "--name", "victim", "probe", "/bin/true"]);
        let root = dataset_root(&daemon, "victim");
        plant_link(&root, path, target);
        let out = daemon.klee(&["start", "victim"]);
        assert!(
            !out.status.success()
                && text(&out).contains(&format!("/{path} in the container is a symbolic link")),
            "{path} -> {target}: {}",
            describe(&out)
        );
        assert_eq!(host_view(&daemon), before, "{path} -> {target}");
        // Nothing half made: the container is stopped, and starts once its root is repaired.
        std::fs::remove_file(root.join(path)).unwrap();
        std::fs::create_dir(root.join(path)).unwrap();
        daemon.klee_ok(&["start", "victim"]);
        daemon.klee_ok(&["rmc", "victim"]);
    }
    assert_eq!(host_view(&daemon), before);
}

#[cfg(target_os = "linux")]
#[test]
fn links_on_mask_targets_and_read_only_paths_fail_the_start() {
    require!(host_tests());
    let daemon = Daemon::with_probe();
    // /proc is a directory but what the set-up mounts over it later is not its business; the
    // image cannot reach procfs' own entries. A mount destination the image turned into a link
    // into the kernel's settings is refused by the in-root walk, never followed.
    daemon.klee_ok(&["volume", "create", "conf"]);
    let before = host_view(&daemon);
    daemon.klee_ok(&[
        "create",
        "--name",
        "victim",
        "-m",
        "conf:/etc/app",
        "probe",
        "/bin/true",
    ]);
    let root = dataset_root(&daemon, "victim");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    plant_link(&root, "etc/app", "/proc/sys/kernel");
    let out = daemon.klee(&["start", "victim"]);
    assert!(
        !out.status.success() && text(&out).contains("/etc/app"),
        "{}",
        describe(&out)
    );
    assert_eq!(host_view(&daemon), before);
    daemon.klee_ok(&["rmc", "victim"]);
}

/// The second start of a container, after its first run changed its root: here a restart by
/// policy, after the process moved the directory holding its volume's mount away and left a
/// link to the kernel's settings in its place.
#[cfg(target_os = "linux")]
#[test]
fn a_restart_after_the_run_planted_a_link_is_refused_too() {
    require!(host_tests());
    let daemon = Daemon::with_probe();
    daemon.klee_ok(&["volume", "create", "data"]);
    let before = host_view(&daemon);
    daemon.run_detached(
        "victim",
        &[
            "--restart",
            "on-failure",
            "-m",
            "data:/mnt/data",
            "probe",
            "/bin/sh",
            "-c",
            "[ -L /mnt/data ] && exit 0; cd / && mv /mnt /mnt.old && mkdir /mnt && \
             ln -s /proc/sys/kernel /mnt/data; exit 1",
        ],
    );
    let root = dataset_root(&daemon, "victim");
    // The run planted the link (seen from the host, in the container's dataset)...
    let planted = eventually(Duration::from_secs(10), || {
        std::fs::symlink_metadata(root.join("mnt/data")).is_ok_and(|m| m.file_type().is_symlink())
    });
    assert!(
        planted,
        "the first run did not plant its link: {}",
        daemon.log()
    );
    // ...and the policy's restart refuses the root, naming the destination, and gives up.
    let refused = eventually(Duration::from_secs(10), || {
        daemon.log().contains("/mnt/data")
    });
    assert!(refused, "{}", daemon.log());
    assert_eq!(host_view(&daemon), before);
    daemon.klee_ok(&["rmc", "-f", "victim"]);
}

#[cfg(target_os = "linux")]
/// Output of `klee exec` into a container, run in a thread so that the test can drive other
/// containers meanwhile.
fn exec_in_background(
    daemon: &Daemon,
    args: &[&str],
) -> std::thread::JoinHandle<std::process::Output> {
    let host = daemon.host.clone();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    std::thread::spawn(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        kleene_tests::clients::klee(&host, &args)
    })
}

#[cfg(target_os = "linux")]
#[test]
fn a_fifo_or_a_huge_passwd_fails_only_its_own_container() {
    require!(host_tests());
    let daemon = Daemon::with_probe();
    let before = host_view(&daemon);
    daemon.run_detached(
        "fifo",
        &[
            "probe",
            "/bin/sh",
            "-c",
            "rm /etc/passwd && mkfifo /etc/passwd && touch /ready && exec sleep 600",
        ],
    );
    daemon.run_detached(
        "huge",
        &[
            "probe",
            "/bin/sh",
            "-c",
            "dd if=/dev/zero of=/etc/passwd bs=1 count=0 seek=1G 2>/dev/null && touch /ready && \
             exec sleep 600",
        ],
    );
    for name in ["fifo", "huge"] {
        let ready = dataset_root(&daemon, name).join("ready");
        assert!(
            eventually(Duration::from_secs(10), || ready.exists()),
            "{name} did not plant its passwd"
        );
    }
    let rss_before = peak_rss_kib(daemon.pid());
    // Both execs need the user's entry; while they fail, another container runs and execs.
    let stalled = exec_in_background(&daemon, &["exec", "-u", "nobody", "fifo", "/usr/bin/id"]);
    let huge = exec_in_background(&daemon, &["exec", "-u", "nobody", "huge", "/usr/bin/id"]);
    let out = daemon.klee(&["run", "--rm", "-u", "nobody", "probe", "/usr/bin/id", "-u"]);
    ok(&out);
    assert!(text(&out).contains("65534"), "{}", describe(&out));
    let out = stalled.join().unwrap();
    assert!(
        !out.status.success() && text(&out).contains("/etc/passwd is not a regular file"),
        "{}",
        describe(&out)
    );
    let out = huge.join().unwrap();
    assert!(
        !out.status.success() && text(&out).contains("/etc/passwd"),
        "{}",
        describe(&out)
    );
    // The daemon never read the file: its peak memory did not grow by the file's size.
    let rss_after = peak_rss_kib(daemon.pid());
    assert!(
        rss_after < rss_before + 64 * 1024,
        "kleened's peak RSS went from {rss_before} KiB to {rss_after} KiB"
    );
    // Still usable once the container's file is a file again; removing them works.
    std::fs::write(
        dataset_root(&daemon, "huge").join("etc/passwd"),
        "root:x:0:0::/:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n",
    )
    .unwrap();
    daemon.klee_ok(&["exec", "-u", "nobody", "huge", "/usr/bin/id", "-u"]);
    daemon.klee_ok(&["rmc", "-f", "fifo", "huge"]);
    assert_eq!(host_view(&daemon), before);
}

/// The mount options a container sees for its mount at `destination`.
#[cfg(target_os = "linux")]
fn options_inside(daemon: &Daemon, mount: &str, destination: &str) -> String {
    daemon.klee_ok(&[
        "run",
        "--rm",
        "-m",
        mount,
        "probe",
        "/bin/sh",
        "-c",
        &format!("grep ' {destination} ' /proc/self/mountinfo"),
    ])
}

#[cfg(target_os = "linux")]
#[test]
fn host_path_mounts_are_nosuid_and_nodev_unless_asked() {
    require!(host_tests());
    let daemon = Daemon::with_probe();
    let dir = tempfile::tempdir().unwrap();
    // A setuid-root copy of a shell and a device node for a disk, as a host user or another
    // container could leave them in a shared directory.
    let busybox = dir.path().join("sh");
    std::fs::copy("/bin/busybox", &busybox)
        .or_else(|_| std::fs::copy("/bin/sh", &busybox))
        .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&busybox, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let source = dir.path().display().to_string();
    let default = options_inside(&daemon, &format!("{source}:/shared"), "/shared");
    assert!(
        default.contains("nosuid") && default.contains("nodev"),
        "{default}"
    );
    let lifted = options_inside(&daemon, &format!("{source}:/shared:suid,dev,ro"), "/shared");
    assert!(
        !lifted.contains("nosuid") && !lifted.contains("nodev") && lifted.contains(" ro"),
        "{lifted}"
    );
    // A user of the container cannot become root through the setuid file.
    let out = daemon.klee(&[
        "run",
        "--rm",
        "-u",
        "nobody",
        "-m",
        &format!("{source}:/shared"),
        "probe",
        "/shared/sh",
        "-c",
        "id -u",
    ]);
    assert!(
        !text(&out).contains("\n0\n") && !text(&out).starts_with("0\n"),
        "{}",
        describe(&out)
    );
    // Volumes too.
    let volume = options_inside(&daemon, "v:/v", "/v");
    assert!(
        volume.contains("nosuid") && volume.contains("nodev"),
        "{volume}"
    );
    // What the runtime sets up is no destination.
    for destination in [
        "/proc",
        "/proc/sys",
        "/sys/kernel",
        "/dev",
        "/dev/pts",
        "/",
        "/x/../proc",
    ] {
        let out = daemon.klee(&["create", "-m", &format!("{source}:{destination}"), "probe"]);
        assert!(
            !out.status.success() && text(&out).contains("which the runtime sets up"),
            "{destination}: {}",
            describe(&out)
        );
    }
}

#[cfg(target_os = "linux")]
#[test]
fn a_container_cannot_fill_the_pool_past_its_size() {
    require!(host_tests());
    let daemon = Daemon::with_probe();
    let out = daemon.klee(&[
        "run",
        "--name",
        "filler",
        "--storage-opt",
        "size=16m",
        "probe",
        "/bin/sh",
        "-c",
        "dd if=/dev/zero of=/fill bs=1M count=64; sync; ls -l /fill",
    ]);
    let output = text(&out);
    assert!(
        output.contains("Disk quota exceeded") || output.contains("No space left"),
        "{}",
        describe(&out)
    );
    let inspect = daemon.klee_json(&["--json", "isc", "filler"]);
    assert_eq!(inspect["container"]["storage_size"], 16 << 20);
    let dataset = inspect["container"]["dataset"].as_str().unwrap().to_owned();
    let quota = zfs()
        .get(&zfs::DatasetName::new(dataset).unwrap(), "quota")
        .unwrap();
    assert_eq!(quota.as_deref(), Some("16M"));
    // The database still takes writes (the container is renamed and removed), and the root
    // keeps its reservation.
    daemon.klee_ok(&["container", "rename", "filler", "filled"]);
    daemon.klee_ok(&["rmc", "filled"]);
    let reservation = zfs()
        .get(
            &zfs::DatasetName::new(daemon.root.name.clone()).unwrap(),
            "refreservation",
        )
        .unwrap();
    assert_eq!(reservation.as_deref(), Some("64M"));
    // Sizes that are not sizes are refused by name, and nothing is made.
    let out = daemon.klee(&["create", "--storage-opt", "size=lots", "probe"]);
    assert!(
        !out.status.success() && text(&out).contains("storage_size"),
        "{}",
        describe(&out)
    );
}

#[test]
fn datasets_of_any_kleene_root_are_no_image_source() {
    require!(host_tests());
    let daemon = Daemon::with_probe();
    let other = Daemon::start();
    daemon.klee_ok(&["create", "--name", "cc", "probe"]);
    let own = format!("{}/container/{}", daemon.root.name, id_of(&daemon, "cc"));
    for (source, says) in [
        (daemon.root.name.clone(), "inside this daemon's root"),
        (own, "inside this daemon's root"),
        (other.root.name.clone(), "belongs to the kleene root"),
        (
            format!("{}/volumes", other.root.name),
            "belongs to the kleene root",
        ),
    ] {
        for method in ["zfs-copy", "zfs-clone"] {
            let out = daemon.klee(&["image", "create", method, &source, "-t", "stolen"]);
            assert!(
                !out.status.success() && text(&out).contains(says),
                "{method} {source}: {}",
                describe(&out)
            );
        }
    }
    let out = daemon.klee(&["--json", "lsi"]);
    assert!(!text(&out).contains("stolen"), "{}", describe(&out));
}

/// A container's command and names a client sends come back in tables and messages: klee shows
/// them with every terminal control escaped, so they cannot retitle the terminal, clear it or
/// forge rows.
#[test]
fn terminal_controls_from_containers_and_names_reach_no_terminal() {
    require!(host_tests());
    let daemon = Daemon::with_probe();
    let forged = "\u{1b}]0;owned\u{7}\u{1b}[2J\u{1b}[1A\rforged row\u{202e}";
    daemon.klee_ok(&["create", "--name", "plain", "probe", "/bin/echo", forged]);
    let out = daemon.klee(&["lsc", "-a"]);
    ok(&out);
    let shown = text(&out);
    assert!(shown.contains("plain"), "{shown:?}");
    for raw in ['\u{1b}', '\u{7}', '\r', '\u{202e}'] {
        assert!(!shown.contains(raw), "{raw:?} in {shown:?}");
    }
    assert!(shown.contains("\\u{1b}]0;owned"), "{shown:?}");
    // A daemon message that names what the client sent.
    let out = daemon.klee(&["network", "create", "--subnet", "10.77.0.0/24", forged]);
    assert!(!out.status.success(), "{}", describe(&out));
    let shown = text(&out);
    assert!(
        !shown.contains('\u{1b}') && shown.contains("\\u{1b}[2J"),
        "{shown:?}"
    );
    daemon.klee_ok(&["rmc", "plain"]);
}

/// The user of an exec is looked up by the helper before it takes the container's confinement:
/// a passwd linked into the kernel's files (the kernel log, which a read consumes) is refused
/// unread.
#[cfg(target_os = "linux")]
#[test]
fn a_passwd_linked_into_the_kernels_files_is_never_read() {
    require!(host_tests());
    let daemon = Daemon::with_probe();
    daemon.run_detached(
        "kmsg",
        &[
            "probe",
            "/bin/sh",
            "-c",
            "rm /etc/passwd && ln -s /proc/kmsg /etc/passwd && touch /ready && exec sleep 600",
        ],
    );
    let ready = dataset_root(&daemon, "kmsg").join("ready");
    assert!(
        eventually(Duration::from_secs(10), || ready.exists()),
        "the link was not planted"
    );
    let out = daemon.klee(&["exec", "kmsg", "/usr/bin/id"]);
    assert!(
        !out.status.success() && text(&out).contains("on a kernel file system"),
        "{}",
        describe(&out)
    );
    daemon.klee_ok(&["rmc", "-f", "kmsg"]);
}

/// A terminal for an exec comes from the container's own devpts (`/dev/pts/ptmx`, opened
/// without following links, its other end from the master): links the container's root planted
/// at `/dev/ptmx` (to one of its files, or to a descriptor of the helper) are never followed by
/// the helper, which runs with the daemon's privileges there.
#[cfg(target_os = "linux")]
#[test]
fn a_terminal_comes_from_the_containers_devpts_whatever_dev_links_say() {
    require!(host_tests());
    let daemon = Daemon::with_base();
    daemon.klee_ok(&["run", "-d", "--name", "term", "base", "sleep", "600"]);
    for target in ["/etc/passwd", "/proc/self/fd/0"] {
        daemon.klee_ok(&[
            "exec",
            "term",
            "/bin/sh",
            "-c",
            &format!("rm -f /dev/ptmx && ln -s {target} /dev/ptmx"),
        ]);
        let out = daemon.klee(&["exec", "-t", "term", "/bin/sh", "-c", "tty"]);
        ok(&out);
        assert!(
            text(&out).contains("/dev/pts/"),
            "{target}: {}",
            describe(&out)
        );
    }
    let out = daemon.klee(&["exec", "term", "/bin/sh", "-c", "head -c 5 /etc/passwd"]);
    assert_eq!(text(&out), "root:", "{}", describe(&out));
    daemon.klee_ok(&["rm", "-f", "term"]);
}
