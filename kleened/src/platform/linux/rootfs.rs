//! A container's file system view: its dataset as the root, a fresh `/proc` with the kernel's
//! host-wide knobs read-only and its leaky files masked, a read-only `/sys`, and a small `/dev`.
//!
//! [`plan`] lists the steps as data (pure, pinned by a golden file in the tests below); [`apply`]
//! carries them out in the container's new mount namespace, before `pivot_root` makes the dataset
//! the root. Every mount is made in that namespace and goes with its last process.
//!
//! What a container sees and may change:
//! - its root: the dataset, without device nodes (`nodev`: a node shipped in an image, or made on
//!   the host side, opens nothing); the mount flags the host gave the dataset are kept;
//! - `/proc` of its own PID namespace; `/proc/sys`, `sysrq-trigger`, `irq`, `bus`, `fs` read-only;
//!   `kcore`, `keys`, `timer_list`, `sched_debug` and the like replaced by an empty file or directory;
//! - `/sys` read-only, with `firmware` and `devices/virtual/powercap` hidden;
//! - `/dev` with null, zero, full, random, urandom, tty, its own devpts (and ptmx) and shm.

use std::path::{Path, PathBuf};

use std::os::fd::AsRawFd;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::statvfs::{statvfs, FsFlags};

use crate::platform::inroot;
use crate::platform::Mount;

/// Devices bound from the host's `/dev` into the container's.
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// Files and directories of `/proc` and `/sys` that say too much about the host: an empty file or
/// directory is mounted over them (where they exist).
const MASKED: [&str; 12] = [
    "proc/acpi",
    "proc/asound",
    "proc/interrupts",
    "proc/kcore",
    "proc/keys",
    "proc/latency_stats",
    "proc/sched_debug",
    "proc/scsi",
    "proc/timer_list",
    "proc/timer_stats",
    "sys/devices/virtual/powercap",
    "sys/firmware",
];

/// Parts of `/proc` that change the host's kernel: read-only (where they exist).
const READ_ONLY: [&str; 5] = [
    "proc/bus",
    "proc/fs",
    "proc/irq",
    "proc/sys",
    "proc/sysrq-trigger",
];

/// One step of setting up the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// mount(2).
    Mount {
        source: Option<PathBuf>,
        target: PathBuf,
        fstype: Option<&'static str>,
        flags: MsFlags,
        data: Option<&'static str>,
    },
    /// Remount a bind mount with `flags` added to those it has.
    Restrict { target: PathBuf, flags: MsFlags },
    /// Bind the path on itself and make that read-only (skipped when the path is missing).
    ReadOnly(PathBuf),
    /// Mount an empty file (the host's `/dev/null`) or a read-only empty tmpfs over the path
    /// (skipped when the path is missing).
    Mask(PathBuf),
    /// Create a directory (and its parents).
    Mkdir(PathBuf),
    /// Create an empty file, as a mountpoint.
    Touch(PathBuf),
    /// Create a symbolic link at `link` pointing to `target`.
    Symlink { target: &'static str, link: PathBuf },
    /// Write a file (a kernel setting of the container's own namespace).
    Write { path: PathBuf, text: &'static str },
    /// Mount sysfs read-only where the image has a `/sys` directory.
    Sysfs(PathBuf),
    /// Bind a host directory or file at `destination` as the container sees it, resolved inside
    /// `root` (made there when missing), without device nodes, read-only if asked.
    Bind {
        root: PathBuf,
        source: PathBuf,
        destination: String,
        read_only: bool,
    },
}

/// What the root's set-up depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootOptions {
    /// The container's dataset on the host.
    pub rootfs: PathBuf,
    /// Whether the container has its own network namespace.
    pub own_network: bool,
    /// Host paths mounted into it, in order.
    pub mounts: Vec<Mount>,
}

/// The steps that make `options.rootfs` ready to become the container's root.
pub fn plan(options: &RootOptions) -> Vec<Step> {
    let root = &options.rootfs;
    let at = |p: &str| root.join(p);
    let plain = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let mount = |source: Option<&str>,
                 target: PathBuf,
                 fstype: Option<&'static str>,
                 flags: MsFlags,
                 data: Option<&'static str>| Step::Mount {
        source: source.map(PathBuf::from),
        target,
        fstype,
        flags,
        data,
    };
    let mut steps = vec![
        // Nothing mounted from here on is seen by the host.
        mount(
            None,
            "/".into(),
            None,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None,
        ),
        Step::Mount {
            source: Some(root.clone()),
            target: root.clone(),
            fstype: None,
            flags: MsFlags::MS_BIND | MsFlags::MS_REC,
            data: None,
        },
        Step::Restrict {
            target: root.clone(),
            flags: MsFlags::MS_NODEV,
        },
        Step::Mkdir(at("proc")),
        mount(Some("proc"), at("proc"), Some("proc"), plain, None),
        Step::Mkdir(at("dev")),
        mount(
            Some("tmpfs"),
            at("dev"),
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            Some("mode=755,size=65536k"),
        ),
    ];
    for device in DEVICES {
        steps.push(Step::Touch(at("dev").join(device)));
        steps.push(Step::Mount {
            source: Some(Path::new("/dev").join(device)),
            target: at("dev").join(device),
            fstype: None,
            flags: MsFlags::MS_BIND,
            data: None,
        });
    }
    steps.extend([
        Step::Mkdir(at("dev/pts")),
        mount(
            Some("devpts"),
            at("dev/pts"),
            Some("devpts"),
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            Some("newinstance,ptmxmode=0666,mode=0620"),
        ),
        Step::Mkdir(at("dev/shm")),
        mount(
            Some("shm"),
            at("dev/shm"),
            Some("tmpfs"),
            plain,
            Some("mode=1777,size=65536k"),
        ),
    ]);
    for (link, target) in [
        ("dev/ptmx", "pts/ptmx"),
        ("dev/fd", "/proc/self/fd"),
        ("dev/stdin", "/proc/self/fd/0"),
        ("dev/stdout", "/proc/self/fd/1"),
        ("dev/stderr", "/proc/self/fd/2"),
    ] {
        steps.push(Step::Symlink {
            target,
            link: at(link),
        });
    }
    steps.push(Step::Sysfs(at("sys")));
    if options.own_network {
        // ICMP echo sockets for every group, as Docker does, so ping works without CAP_NET_RAW.
        // The file belongs to the container's own network namespace.
        steps.push(Step::Write {
            path: at("proc/sys/net/ipv4/ping_group_range"),
            text: "0 2147483647",
        });
    }
    // The container's mounts go over what the image has, then the masks over them: no mount
    // uncovers a masked file.
    steps.extend(options.mounts.iter().map(|m| Step::Bind {
        root: root.clone(),
        source: m.source.clone(),
        destination: m.destination.clone(),
        read_only: m.read_only,
    }));
    steps.extend(MASKED.iter().map(|p| Step::Mask(at(p))));
    steps.extend(READ_ONLY.iter().map(|p| Step::ReadOnly(at(p))));
    steps
}

/// The mount flags a mount has now, as flags for a remount of it.
fn current_flags(path: &Path) -> Result<MsFlags, String> {
    let stat = statvfs(path).map_err(|e| format!("statvfs {}: {e}", path.display()))?;
    let flags = stat.flags();
    let mut ms = MsFlags::empty();
    for (fs, m) in [
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if flags.contains(fs) {
            ms |= m;
        }
    }
    Ok(ms)
}

fn restrict(target: &Path, flags: MsFlags) -> Result<(), String> {
    let flags = current_flags(target)? | flags | MsFlags::MS_BIND | MsFlags::MS_REMOUNT;
    mount(None::<&str>, target, None::<&str>, flags, None::<&str>)
        .map_err(|e| format!("remount {} ({flags:?}): {e}", target.display()))
}

fn apply_step(step: &Step) -> Result<(), String> {
    match step {
        Step::Mount {
            source,
            target,
            fstype,
            flags,
            data,
        } => mount(source.as_deref(), target, *fstype, *flags, *data)
            .map_err(|e| format!("mount {}: {e}", target.display())),
        Step::Restrict { target, flags } => restrict(target, *flags),
        Step::ReadOnly(path) => {
            if std::fs::symlink_metadata(path).is_err() {
                return Ok(());
            }
            mount(
                Some(path.as_path()),
                path,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(|e| format!("bind {}: {e}", path.display()))?;
            restrict(path, MsFlags::MS_RDONLY)
        }
        Step::Mask(path) => match std::fs::symlink_metadata(path) {
            Err(_) => Ok(()),
            Ok(meta) if meta.is_dir() => mount(
                Some("tmpfs"),
                path,
                Some("tmpfs"),
                MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                Some("mode=0555,size=4k"),
            )
            .map_err(|e| format!("mask {}: {e}", path.display())),
            Ok(_) => mount(
                Some("/dev/null"),
                path,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| format!("mask {}: {e}", path.display())),
        },
        Step::Mkdir(path) => {
            std::fs::create_dir_all(path).map_err(|e| format!("mkdir {}: {e}", path.display()))
        }
        Step::Touch(path) => std::fs::File::create(path)
            .map(drop)
            .map_err(|e| format!("create {}: {e}", path.display())),
        Step::Symlink { target, link } => {
            // An image may ship its own /dev entries; the container's /dev is fresh anyway.
            let _ = std::fs::remove_file(link);
            std::os::unix::fs::symlink(target, link)
                .map_err(|e| format!("symlink {}: {e}", link.display()))
        }
        Step::Write { path, text } => {
            std::fs::write(path, text).map_err(|e| format!("write {}: {e}", path.display()))
        }
        Step::Bind {
            root,
            source,
            destination,
            read_only,
        } => bind(root, source, destination, *read_only),
        Step::Sysfs(path) => {
            if !path.is_dir() {
                return Ok(());
            }
            mount(
                Some("sysfs"),
                path,
                Some("sysfs"),
                MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                None::<&str>,
            )
            .map_err(|e| format!("mount {}: {e}", path.display()))
        }
    }
}

/// Binds `source` at `destination` inside `root`. The destination is opened by a walk that never
/// leaves the root ([`inroot`]), and the mount is made on that descriptor
/// (`/proc/self/fd/N`), so no link in the image, nor one swapped in meanwhile, can place it on
/// the host's files.
fn bind(root: &Path, source: &Path, destination: &str, read_only: bool) -> Result<(), String> {
    let what =
        |e: &dyn std::fmt::Display| format!("mount {} at {destination}: {e}", source.display());
    let meta = std::fs::metadata(source).map_err(|e| what(&e))?;
    let create = if meta.is_dir() {
        inroot::Create::Directories
    } else {
        inroot::Create::File
    };
    let target = inroot::open(root, destination, create).map_err(|e| what(&e))?;
    if target.is_dir != meta.is_dir() {
        return Err(what(&format!(
            "the container has a {} there",
            if target.is_dir { "directory" } else { "file" }
        )));
    }
    let on = |fd: &std::os::fd::OwnedFd| PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
    mount(
        Some(source),
        &on(&target.fd),
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| what(&e))?;
    // The descriptor names what lies under the new mount: the mount itself is found again.
    let mounted = inroot::open(root, destination, inroot::Create::Nothing).map_err(|e| what(&e))?;
    let mut flags = MsFlags::MS_NODEV;
    if read_only {
        flags |= MsFlags::MS_RDONLY;
    }
    restrict(&on(&mounted.fd), flags)
}

/// Carries out the plan and makes the dataset the root of the calling process's (new) mount
/// namespace.
pub fn apply(options: &RootOptions) -> Result<(), String> {
    for step in plan(options) {
        apply_step(&step)?;
    }
    let old_root = options.rootfs.join(".kleene-oldroot");
    std::fs::create_dir_all(&old_root).map_err(|e| format!("mkdir {}: {e}", old_root.display()))?;
    nix::unistd::pivot_root(&options.rootfs, &old_root).map_err(|e| format!("pivot_root: {e}"))?;
    nix::unistd::chdir("/").map_err(|e| format!("chdir /: {e}"))?;
    umount2("/.kleene-oldroot", MntFlags::MNT_DETACH)
        .map_err(|e| format!("detach the old root: {e}"))?;
    std::fs::remove_dir("/.kleene-oldroot").map_err(|e| format!("remove /.kleene-oldroot: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One line per step, for the golden comparison.
    fn render(steps: &[Step]) -> String {
        steps
            .iter()
            .map(|step| match step {
                Step::Mount {
                    source,
                    target,
                    fstype,
                    flags,
                    data,
                } => format!(
                    "mount {} {} type={} flags={flags:?} data={}",
                    source
                        .as_ref()
                        .map_or("-".to_owned(), |s| s.display().to_string()),
                    target.display(),
                    fstype.unwrap_or("-"),
                    data.unwrap_or("-")
                ),
                Step::Restrict { target, flags } => {
                    format!("restrict {} add={flags:?}", target.display())
                }
                Step::ReadOnly(path) => format!("read-only {}", path.display()),
                Step::Mask(path) => format!("mask {}", path.display()),
                Step::Mkdir(path) => format!("mkdir {}", path.display()),
                Step::Touch(path) => format!("touch {}", path.display()),
                Step::Symlink { target, link } => format!("symlink {} -> {target}", link.display()),
                Step::Write { path, text } => format!("write {} {text:?}", path.display()),
                Step::Sysfs(path) => format!("sysfs read-only {}", path.display()),
                Step::Bind {
                    root,
                    source,
                    destination,
                    read_only,
                } => format!(
                    "bind {} at {destination} in {} {}",
                    source.display(),
                    root.display(),
                    if *read_only { "ro" } else { "rw" }
                ),
            })
            .map(|line| line + "\n")
            .collect()
    }

    #[test]
    fn the_root_plan_matches_its_golden_file() {
        let steps = plan(&RootOptions {
            rootfs: "/pool/kleene/container/c0ffee000001".into(),
            own_network: true,
            mounts: vec![
                Mount {
                    source: "/pool/kleene/volumes/data".into(),
                    destination: "/var/lib/data".into(),
                    read_only: false,
                },
                Mount {
                    source: "/srv/site".into(),
                    destination: "/usr/share/www".into(),
                    read_only: true,
                },
            ],
        });
        let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/goldens/linux/rootfs.txt");
        let text = render(&steps);
        if std::env::var("KLEENE_UPDATE_GOLDENS").as_deref() == Ok("1") {
            std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
            std::fs::write(&golden, &text).unwrap();
        }
        let expected = std::fs::read_to_string(&golden).unwrap_or_default();
        assert_eq!(
            text,
            expected,
            "the plan differs from {}; KLEENE_UPDATE_GOLDENS=1 rewrites it",
            golden.display()
        );
    }

    #[test]
    fn the_host_network_keeps_the_hosts_ping_setting() {
        let steps = plan(&RootOptions {
            rootfs: "/r".into(),
            own_network: false,
            mounts: vec![Mount {
                source: "/v".into(),
                destination: "/proc/kcore".into(),
                read_only: false,
            }],
        });
        assert!(!steps.iter().any(|s| matches!(s, Step::Write { .. })));
        // Masks and read-only parts come after everything they sit on is mounted.
        let last_mount = steps
            .iter()
            .rposition(|s| matches!(s, Step::Mount { .. } | Step::Sysfs(_)));
        let first_mask = steps.iter().position(|s| matches!(s, Step::Mask(_)));
        assert!(last_mount < first_mask);
        // The container's mounts come before the masks too: none uncovers a masked file.
        let last_bind = steps.iter().rposition(|s| matches!(s, Step::Bind { .. }));
        assert!(last_bind.is_some() && last_bind < first_mask);
    }
}
