//! A container's file system view: its dataset as the root, a fresh `/proc` with the kernel's
//! host-wide knobs read-only and its leaky files masked, a read-only `/sys`, and a small `/dev`.
//!
//! The dataset is untrusted: the image, an earlier run of the same container or a volume may have
//! put a link, a FIFO or a file where the set-up works. So nothing here follows a path through the
//! container's files, and nothing is skipped that cannot be done:
//! - every file system is mounted with the new mount API (`fsopen`, `fsmount`, `move_mount`) onto
//!   a descriptor of its mountpoint, opened with `openat2` beneath the root without following any
//!   link (`RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV`);
//!   `proc`, `sys` and `dev` must be directories of the dataset (made when missing): a link or
//!   anything else there fails the start with the path named;
//! - what goes inside `/proc`, `/sys` and `/dev` (masks, read-only parts, devices, links) is
//!   reached from the descriptor the new mount returned, so it lands in that mount and nowhere
//!   else; a mask or read-only step that cannot be applied fails the start (only an entry this
//!   kernel's fresh `proc` or `sys` does not have is passed over);
//! - bind mounts are cloned (`open_tree`), given their attributes (`nodev`, `nosuid`, read-only,
//!   through every mount they hold: [`super::mount_attr`]) while detached, and attached onto the
//!   descriptor of their destination, resolved inside the root ([`inroot`]); no destination may
//!   lead to `/`, `/proc`, `/sys`, `/dev` or `/dev/pts`, which the set-up owns;
//! - the root is entered with `pivot_root(".", ".")` from a descriptor of it, so no directory is
//!   made in it for the old root.
//!
//! [`plan`] lists the steps as data (pure, pinned by a golden file in the tests below); [`apply`]
//! carries them out in the container's new mount namespace, then pivots into the dataset. Every
//! mount is made in that namespace and goes with its last process.
//!
//! What a container sees and may change:
//! - its root: the dataset, without device nodes (`nodev`: a node shipped in an image, or made on
//!   the host side, opens nothing); the mount flags the host gave the dataset are kept;
//! - `/proc` of its own PID namespace; `/proc/sys`, `sysrq-trigger`, `irq`, `bus`, `fs` read-only;
//!   `kcore`, `keys`, `timer_list`, `sched_debug` and the like replaced by an empty file or directory;
//! - `/sys` read-only, with `firmware` and `devices/virtual/powercap` hidden;
//! - `/dev` with null, zero, full, random, urandom, tty, its own devpts (and ptmx) and shm.

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags, CWD};
use rustix::io::Errno;
use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags as Attr, MoveMountFlags, OpenTreeFlags,
};

use super::mount_attr;
use crate::platform::inroot;
use crate::platform::runtime::reserved_destination;
use crate::platform::Mount;

/// Devices bound from the host's `/dev` into the container's.
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// Files and directories of `/proc` and `/sys` that say too much about the host: an empty file or
/// directory is mounted over them (where this kernel has them).
const MASKED: [At; 12] = [
    At::proc("acpi"),
    At::proc("asound"),
    At::proc("interrupts"),
    At::proc("kcore"),
    At::proc("keys"),
    At::proc("latency_stats"),
    At::proc("sched_debug"),
    At::proc("scsi"),
    At::proc("timer_list"),
    At::proc("timer_stats"),
    At::sys("devices/virtual/powercap"),
    At::sys("firmware"),
];

/// Parts of `/proc` that change the host's kernel: read-only (where this kernel has them).
const READ_ONLY: [At; 5] = [
    At::proc("bus"),
    At::proc("fs"),
    At::proc("irq"),
    At::proc("sys"),
    At::proc("sysrq-trigger"),
];

/// A directory the set-up holds a descriptor of while it works: the root, or a file system it
/// mounted there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Anchor {
    /// The container's root (the dataset).
    Root,
    /// Its `/proc`.
    Proc,
    /// Its `/dev`.
    Dev,
    /// Its `/sys`.
    Sys,
}

impl Anchor {
    /// The anchor as the container sees it.
    fn path(self) -> &'static str {
        match self {
            Anchor::Root => "",
            Anchor::Proc => "/proc",
            Anchor::Dev => "/dev",
            Anchor::Sys => "/sys",
        }
    }
}

/// A path below an anchor, relative to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct At {
    /// The directory the path starts from.
    pub anchor: Anchor,
    /// The path, relative, without links.
    pub path: &'static str,
}

impl At {
    const fn root(path: &'static str) -> At {
        At {
            anchor: Anchor::Root,
            path,
        }
    }
    const fn proc(path: &'static str) -> At {
        At {
            anchor: Anchor::Proc,
            path,
        }
    }
    const fn dev(path: &'static str) -> At {
        At {
            anchor: Anchor::Dev,
            path,
        }
    }
    const fn sys(path: &'static str) -> At {
        At {
            anchor: Anchor::Sys,
            path,
        }
    }
}

impl std::fmt::Display for At {
    /// As the container sees it: `/proc/kcore`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.anchor.path(), self.path)
    }
}

/// One step of setting up the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Make every mount of the host private to this namespace (nothing mounted from here on is
    /// seen by the host), then bind the dataset on itself with `attrs` added: the mount everything
    /// else goes on, held as [`Anchor::Root`].
    Root { attrs: Attr },
    /// Mount a new file system of `fstype`, configured with `options` (`key` or `key=value`),
    /// with the mount attributes `attrs`, on the directory `on` (made when missing; anything but a
    /// directory there fails the start). With `anchor`, the new mount is held as that anchor.
    FileSystem {
        fstype: &'static str,
        options: &'static [&'static str],
        attrs: Attr,
        on: At,
        anchor: Option<Anchor>,
    },
    /// Make an empty file `/dev/<name>` in the container's fresh `/dev` and bind the host's
    /// device of that name on it.
    Device { name: &'static str },
    /// Make a symbolic link `link` pointing to `target`.
    Symlink { link: At, target: &'static str },
    /// Write a kernel setting of the container's own namespace.
    Write { at: At, text: &'static str },
    /// Bind a host directory or file at `destination` as the container sees it, resolved inside
    /// the root (made there when missing), through every mount it holds without device nodes
    /// unless `devices`, without setuid unless `setuid`, read-only if asked.
    Bind {
        source: PathBuf,
        destination: String,
        read_only: bool,
        setuid: bool,
        devices: bool,
    },
    /// Mount an empty file (the host's `/dev/null`) or a read-only empty tmpfs over the path.
    Mask(At),
    /// Bind the path (and what is mounted below it) on itself, read-only.
    ReadOnly(At),
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
    /// Whether it gets the small `/dev` (`mount.devfs`); without, its dataset's own `/dev`
    /// directory is left as it is (on the `nodev` root), as a jail without devfs.
    pub devfs: bool,
}

/// The steps of the small `/dev`: a tmpfs with the host's harmless devices bound in, its own
/// devpts, shm and the usual links.
fn dev_steps() -> Vec<Step> {
    let plain = Attr::MOUNT_ATTR_NOSUID | Attr::MOUNT_ATTR_NODEV | Attr::MOUNT_ATTR_NOEXEC;
    let mut steps = vec![Step::FileSystem {
        fstype: "tmpfs",
        options: &["mode=755", "size=65536k"],
        attrs: Attr::MOUNT_ATTR_NOSUID | Attr::MOUNT_ATTR_NOEXEC,
        on: At::root("dev"),
        anchor: Some(Anchor::Dev),
    }];
    steps.extend(DEVICES.iter().map(|name| Step::Device { name }));
    steps.extend([
        Step::FileSystem {
            fstype: "devpts",
            options: &["newinstance", "ptmxmode=0666", "mode=0620"],
            attrs: Attr::MOUNT_ATTR_NOSUID | Attr::MOUNT_ATTR_NOEXEC,
            on: At::dev("pts"),
            anchor: None,
        },
        Step::FileSystem {
            fstype: "tmpfs",
            options: &["mode=1777", "size=65536k"],
            attrs: plain,
            on: At::dev("shm"),
            anchor: None,
        },
    ]);
    for (link, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        steps.push(Step::Symlink {
            link: At::dev(link),
            target,
        });
    }
    steps
}

/// The steps that make `options.rootfs` ready to become the container's root.
pub fn plan(options: &RootOptions) -> Vec<Step> {
    let plain = Attr::MOUNT_ATTR_NOSUID | Attr::MOUNT_ATTR_NODEV | Attr::MOUNT_ATTR_NOEXEC;
    let mut steps = vec![Step::Root {
        attrs: Attr::MOUNT_ATTR_NODEV,
    }];
    if options.devfs {
        steps.extend(dev_steps());
    }
    // The container's mounts go on the root and its fresh /dev, before /proc and /sys exist:
    // their destinations cannot be walked into either.
    steps.extend(options.mounts.iter().map(|m| Step::Bind {
        source: m.source.clone(),
        destination: m.destination.clone(),
        read_only: m.read_only,
        setuid: m.setuid,
        devices: m.devices,
    }));
    steps.push(Step::FileSystem {
        fstype: "proc",
        options: &[],
        attrs: plain,
        on: At::root("proc"),
        anchor: Some(Anchor::Proc),
    });
    if options.own_network {
        // ICMP echo sockets for every group, as Docker does, so ping works without CAP_NET_RAW.
        // The file belongs to the container's own network namespace.
        steps.push(Step::Write {
            at: At::proc("sys/net/ipv4/ping_group_range"),
            text: "0 2147483647",
        });
    }
    steps.push(Step::FileSystem {
        fstype: "sysfs",
        options: &[],
        attrs: Attr::MOUNT_ATTR_RDONLY | plain,
        on: At::root("sys"),
        anchor: Some(Anchor::Sys),
    });
    steps.extend(MASKED.iter().map(|at| Step::Mask(*at)));
    steps.extend(READ_ONLY.iter().map(|at| Step::ReadOnly(*at)));
    steps
}

/// Why the root could not be set up; the container does not start.
#[derive(Debug, thiserror::Error)]
pub enum RootError {
    /// A mountpoint the set-up owns is a link or not a directory in the dataset.
    #[error("{path} in the container is {what}: it must be a directory (or missing)")]
    NotADirectory {
        /// The path, as the container sees it.
        path: String,
        /// What is there instead.
        what: &'static str,
    },
    /// A system call of a step failed.
    #[error("cannot {action} {path}: {errno}")]
    System {
        /// What the step did.
        action: &'static str,
        /// The path, as the container sees it (or the host path for the root).
        path: String,
        /// The kernel's answer.
        errno: Errno,
    },
    /// A container's mount was refused or failed.
    #[error("cannot mount {destination}: {reason} (source {})", host.display())]
    Mount {
        /// The host path.
        host: PathBuf,
        /// The destination as given.
        destination: String,
        /// Why.
        reason: String,
    },
}

fn system(action: &'static str, path: impl ToString) -> impl FnOnce(Errno) -> RootError {
    let path = path.to_string();
    move |errno| RootError::System {
        action,
        path,
        errno,
    }
}

/// How everything inside the container's file systems is resolved: beneath the directory it
/// starts from, never through a link of any kind, never into another mount.
fn strict() -> ResolveFlags {
    ResolveFlags::BENEATH
        | ResolveFlags::NO_SYMLINKS
        | ResolveFlags::NO_MAGICLINKS
        | ResolveFlags::NO_XDEV
}

/// Opens `path` below `dir` as a location (`O_PATH`), strictly: a link as the last component too
/// is `ELOOP` (without `O_NOFOLLOW`, which would open the link itself).
fn locate(dir: BorrowedFd<'_>, path: &str, directory: bool) -> Result<OwnedFd, Errno> {
    let mut flags = OFlags::PATH | OFlags::CLOEXEC;
    if directory {
        flags |= OFlags::DIRECTORY;
    }
    rustix::fs::openat2(dir, path, flags, Mode::empty(), strict())
}

/// The directory `at` as a mountpoint: made when missing; a link, or anything but a directory,
/// refused.
fn mountpoint(dir: BorrowedFd<'_>, at: At) -> Result<OwnedFd, RootError> {
    let refuse = |what| RootError::NotADirectory {
        path: at.to_string(),
        what,
    };
    match locate(dir, at.path, true) {
        Ok(fd) => return Ok(fd),
        Err(Errno::NOENT) => {}
        Err(Errno::LOOP) => return Err(refuse("a symbolic link")),
        Err(Errno::NOTDIR) => return Err(refuse("not a directory")),
        Err(err) => return Err(system("open", at)(err)),
    }
    match rustix::fs::mkdirat(dir, at.path, Mode::from_raw_mode(0o755)) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(err) => return Err(system("make the directory", at)(err)),
    }
    locate(dir, at.path, true).map_err(|err| match err {
        Errno::LOOP => refuse("a symbolic link"),
        Errno::NOTDIR => refuse("not a directory"),
        err => system("open", at)(err),
    })
}

/// Attaches the mount `tree` (detached, or a new file system's) onto the location `target`.
fn attach(tree: &OwnedFd, target: BorrowedFd<'_>) -> Result<(), Errno> {
    rustix::mount::move_mount(
        tree,
        "",
        target,
        "",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )
}

/// A detached copy of the host's mount at `path` (not recursive): a device to bind.
fn host_tree(path: &str) -> Result<OwnedFd, Errno> {
    rustix::mount::open_tree(
        CWD,
        path,
        OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
    )
}

/// A new file system, configured and made into a detached mount with `attrs`.
fn new_file_system(
    fstype: &str,
    options: &[&str],
    attrs: Attr,
) -> Result<OwnedFd, (&'static str, Errno)> {
    let context = rustix::mount::fsopen(fstype, FsOpenFlags::FSOPEN_CLOEXEC)
        .map_err(|e| ("open a file system context for", e))?;
    for option in options {
        match option.split_once('=') {
            Some((key, value)) => rustix::mount::fsconfig_set_string(&context, key, value),
            None => rustix::mount::fsconfig_set_flag(&context, *option),
        }
        .map_err(|e| ("configure the file system of", e))?;
    }
    rustix::mount::fsconfig_create(&context).map_err(|e| ("create the file system of", e))?;
    rustix::mount::fsmount(&context, FsMountFlags::FSMOUNT_CLOEXEC, attrs)
        .map_err(|e| ("mount the file system of", e))
}

/// The descriptors the set-up holds while it works.
struct Anchors(HashMap<Anchor, OwnedFd>);

impl Anchors {
    fn get(&self, anchor: Anchor) -> Result<BorrowedFd<'_>, RootError> {
        self.0
            .get(&anchor)
            .map(AsFd::as_fd)
            .ok_or_else(|| RootError::System {
                action: "find",
                path: anchor.path().to_owned(),
                errno: Errno::BADF,
            })
    }
}

fn apply_step(step: &Step, rootfs: &Path, anchors: &mut Anchors) -> Result<(), RootError> {
    match step {
        Step::Root { attrs } => {
            nix::mount::mount(
                None::<&str>,
                "/",
                None::<&str>,
                nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
                None::<&str>,
            )
            .map_err(|e| {
                system("make private", "the host's mounts")(Errno::from_raw_os_error(e as i32))
            })?;
            let shown = rootfs.display();
            // The dataset's mountpoint is the daemon's own path, not the container's.
            let tree = rustix::mount::open_tree(
                CWD,
                rootfs,
                OpenTreeFlags::OPEN_TREE_CLONE
                    | OpenTreeFlags::AT_RECURSIVE
                    | OpenTreeFlags::OPEN_TREE_CLOEXEC,
            )
            .map_err(system("bind", &shown))?;
            mount_attr::add(&tree, *attrs).map_err(|e| {
                system("restrict", &shown)(Errno::from_io_error(&e).unwrap_or(Errno::IO))
            })?;
            rustix::mount::move_mount(
                &tree,
                "",
                CWD,
                rootfs,
                MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
            )
            .map_err(system("bind", &shown))?;
            anchors.0.insert(Anchor::Root, tree);
            Ok(())
        }
        Step::FileSystem {
            fstype,
            options,
            attrs,
            on,
            anchor,
        } => {
            let target = mountpoint(anchors.get(on.anchor)?, *on)?;
            let mounted = new_file_system(fstype, options, *attrs)
                .map_err(|(action, errno)| system(action, on)(errno))?;
            attach(&mounted, target.as_fd()).map_err(system("mount", on))?;
            if let Some(anchor) = anchor {
                anchors.0.insert(*anchor, mounted);
            }
            Ok(())
        }
        Step::Device { name } => {
            let dev = anchors.get(Anchor::Dev)?;
            let at = At::dev(name);
            // The container's /dev is a tmpfs just made: the name is free.
            drop(
                rustix::fs::openat2(
                    dev,
                    *name,
                    OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::WRONLY
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o666),
                    strict(),
                )
                .map_err(system("make", at))?,
            );
            let target = locate(dev, name, false).map_err(system("open", at))?;
            let device = host_tree(&format!("/dev/{name}"))
                .map_err(system("bind the host's device at", at))?;
            attach(&device, target.as_fd()).map_err(system("bind the host's device at", at))
        }
        Step::Symlink { link, target } => {
            rustix::fs::symlinkat(*target, anchors.get(link.anchor)?, link.path)
                .map_err(system("make the link", link))
        }
        Step::Write { at, text } => {
            let file = rustix::fs::openat2(
                anchors.get(at.anchor)?,
                at.path,
                OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
                strict(),
            )
            .map_err(system("open", at))?;
            rustix::io::write(&file, text.as_bytes())
                .map(drop)
                .map_err(system("write", at))
        }
        Step::Bind {
            source,
            destination,
            read_only,
            setuid,
            devices,
        } => bind(
            anchors.get(Anchor::Root)?,
            rootfs,
            source,
            destination,
            BindAttrs {
                read_only: *read_only,
                setuid: *setuid,
                devices: *devices,
            },
        ),
        Step::Mask(at) => {
            let base = anchors.get(at.anchor)?;
            let target = match locate(base, at.path, false) {
                // Not in this kernel's fresh file system: nothing to hide.
                Err(Errno::NOENT) => return Ok(()),
                other => other.map_err(system("mask", at))?,
            };
            let stat = rustix::fs::fstat(&target).map_err(system("mask", at))?;
            let cover = if rustix::fs::FileType::from_raw_mode(stat.st_mode)
                == rustix::fs::FileType::Directory
            {
                new_file_system(
                    "tmpfs",
                    &["mode=0555", "size=4k"],
                    Attr::MOUNT_ATTR_RDONLY
                        | Attr::MOUNT_ATTR_NOSUID
                        | Attr::MOUNT_ATTR_NODEV
                        | Attr::MOUNT_ATTR_NOEXEC,
                )
                .map_err(|(_, errno)| system("mask", at)(errno))?
            } else {
                host_tree("/dev/null").map_err(system("mask", at))?
            };
            attach(&cover, target.as_fd()).map_err(system("mask", at))
        }
        Step::ReadOnly(at) => {
            let base = anchors.get(at.anchor)?;
            let target = match locate(base, at.path, false) {
                Err(Errno::NOENT) => return Ok(()),
                other => other.map_err(system("make read-only", at))?,
            };
            let tree = rustix::mount::open_tree(
                &target,
                "",
                OpenTreeFlags::OPEN_TREE_CLONE
                    | OpenTreeFlags::AT_RECURSIVE
                    | OpenTreeFlags::AT_EMPTY_PATH
                    | OpenTreeFlags::OPEN_TREE_CLOEXEC,
            )
            .map_err(system("make read-only", at))?;
            mount_attr::add(&tree, Attr::MOUNT_ATTR_RDONLY).map_err(|e| {
                system("make read-only", at)(Errno::from_io_error(&e).unwrap_or(Errno::IO))
            })?;
            attach(&tree, target.as_fd()).map_err(system("make read-only", at))
        }
    }
}

/// The attributes a container's mount asks for.
#[derive(Debug, Clone, Copy)]
struct BindAttrs {
    read_only: bool,
    setuid: bool,
    devices: bool,
}

impl BindAttrs {
    fn flags(self) -> Attr {
        let mut flags = Attr::empty();
        if self.read_only {
            flags |= Attr::MOUNT_ATTR_RDONLY;
        }
        if !self.setuid {
            flags |= Attr::MOUNT_ATTR_NOSUID;
        }
        if !self.devices {
            flags |= Attr::MOUNT_ATTR_NODEV;
        }
        flags
    }
}

/// Binds `source` at `destination` inside the root `root` (whose host path is `rootfs`). The
/// destination is opened by a walk that never leaves the root ([`inroot`]); the source is cloned,
/// restricted while detached, and attached onto that descriptor, so no link in the image, nor one
/// swapped in meanwhile, can place it on the host's files or over the set-up's own mounts.
fn bind(
    root: BorrowedFd<'_>,
    rootfs: &Path,
    source: &Path,
    destination: &str,
    attrs: BindAttrs,
) -> Result<(), RootError> {
    let refuse = |reason: String| RootError::Mount {
        host: source.to_owned(),
        destination: destination.to_owned(),
        reason,
    };
    let meta = std::fs::metadata(source).map_err(|e| refuse(e.to_string()))?;
    let create = if meta.is_dir() {
        inroot::Create::Directories
    } else {
        inroot::Create::File
    };
    let target = inroot::open_beneath(root, rootfs, destination, create)
        .map_err(|e| refuse(e.to_string()))?;
    let relative = target.path.strip_prefix(rootfs).unwrap_or(Path::new(""));
    if let Some(place) = reserved_destination(relative) {
        return Err(refuse(format!(
            "it leads to {place} in the container, which kleened sets up"
        )));
    }
    if target.is_dir != meta.is_dir() {
        return Err(refuse(format!(
            "the container has a {} there",
            if target.is_dir { "directory" } else { "file" }
        )));
    }
    let tree = rustix::mount::open_tree(
        CWD,
        source,
        OpenTreeFlags::OPEN_TREE_CLONE
            | OpenTreeFlags::AT_RECURSIVE
            | OpenTreeFlags::OPEN_TREE_CLOEXEC,
    )
    .map_err(|e| refuse(e.to_string()))?;
    mount_attr::add(&tree, attrs.flags()).map_err(|e| refuse(e.to_string()))?;
    attach(&tree, target.fd.as_fd()).map_err(|e| refuse(e.to_string()))
}

/// Carries out the plan and makes the dataset the root of the calling process's (new) mount
/// namespace.
pub fn apply(options: &RootOptions) -> Result<(), RootError> {
    let mut anchors = Anchors(HashMap::new());
    for step in plan(options) {
        apply_step(&step, &options.rootfs, &mut anchors)?;
    }
    let root = anchors
        .0
        .remove(&Anchor::Root)
        .ok_or_else(|| RootError::System {
            action: "find",
            path: options.rootfs.display().to_string(),
            errno: Errno::BADF,
        })?;
    // The other descriptors name mounts inside the root; none may outlive the set-up.
    drop(anchors);
    let errno = |e: nix::errno::Errno| Errno::from_raw_os_error(e as i32);
    nix::unistd::fchdir(&root).map_err(|e| system("enter", options.rootfs.display())(errno(e)))?;
    drop(root);
    // The old root goes on top of the new one at ".", and is detached from there: nothing is made
    // in the container's root for it.
    nix::unistd::pivot_root(".", ".").map_err(|e| system("pivot into", "/")(errno(e)))?;
    nix::mount::umount2(".", nix::mount::MntFlags::MNT_DETACH)
        .map_err(|e| system("detach the host's root from", "/")(errno(e)))?;
    nix::unistd::chdir("/").map_err(|e| system("enter", "/")(errno(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One line per step, for the golden comparison.
    fn render(steps: &[Step]) -> String {
        steps
            .iter()
            .map(|step| match step {
                Step::Root { attrs } => format!("root: the dataset bound on itself, {attrs:?}"),
                Step::FileSystem {
                    fstype,
                    options,
                    attrs,
                    on,
                    anchor,
                } => format!(
                    "mount {fstype} ({}) {attrs:?} on {on}{}",
                    options.join(","),
                    anchor.map_or(String::new(), |a| format!(", held as {a:?}"))
                ),
                Step::Device { name } => format!("device /dev/{name} bound from the host"),
                Step::Symlink { link, target } => format!("symlink {link} -> {target}"),
                Step::Write { at, text } => format!("write {at} {text:?}"),
                Step::Bind {
                    source,
                    destination,
                    read_only,
                    setuid,
                    devices,
                } => format!(
                    "bind {} at {destination} {}{}{}",
                    source.display(),
                    if *read_only { "ro" } else { "rw" },
                    if *setuid { ",suid" } else { ",nosuid" },
                    if *devices { ",dev" } else { ",nodev" },
                ),
                Step::Mask(at) => format!("mask {at}"),
                Step::ReadOnly(at) => format!("read-only {at}"),
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
                    setuid: false,
                    devices: false,
                },
                Mount {
                    source: "/srv/site".into(),
                    destination: "/usr/share/www".into(),
                    read_only: true,
                    setuid: true,
                    devices: false,
                },
            ],
            devfs: true,
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
    fn without_devfs_nothing_is_made_in_the_containers_dev() {
        let steps = plan(&RootOptions {
            rootfs: "/r".into(),
            own_network: true,
            mounts: vec![],
            devfs: false,
        });
        let in_dev = |step: &Step| match step {
            Step::Device { .. } => true,
            Step::FileSystem { on, .. } | Step::Symlink { link: on, .. } => {
                on.to_string().starts_with("/dev")
            }
            _ => false,
        };
        assert!(!steps.iter().any(in_dev), "{}", render(&steps));
        assert!(steps
            .iter()
            .any(|s| matches!(s, Step::FileSystem { fstype: "proc", .. })));
    }

    #[test]
    fn the_host_network_keeps_the_hosts_ping_setting() {
        let steps = plan(&RootOptions {
            rootfs: "/r".into(),
            own_network: false,
            mounts: vec![Mount {
                source: "/v".into(),
                destination: "/data".into(),
                read_only: false,
                setuid: false,
                devices: false,
            }],
            devfs: true,
        });
        assert!(!steps.iter().any(|s| matches!(s, Step::Write { .. })));
        // The container's mounts come before /proc and /sys exist, the masks after both.
        let at = |f: &dyn Fn(&Step) -> bool| steps.iter().position(f).unwrap();
        let bind = at(&|s| matches!(s, Step::Bind { .. }));
        let proc = at(&|s| matches!(s, Step::FileSystem { fstype: "proc", .. }));
        let sys = at(&|s| {
            matches!(
                s,
                Step::FileSystem {
                    fstype: "sysfs",
                    ..
                }
            )
        });
        let first_mask = at(&|s| matches!(s, Step::Mask(_)));
        assert!(bind < proc && proc < sys && sys < first_mask);
    }

    #[test]
    fn paths_name_the_place_in_the_container() {
        assert_eq!(At::proc("kcore").to_string(), "/proc/kcore");
        assert_eq!(At::root("dev").to_string(), "/dev");
        assert_eq!(
            RootError::NotADirectory {
                path: At::root("proc").to_string(),
                what: "a symbolic link"
            }
            .to_string(),
            "/proc in the container is a symbolic link: it must be a directory (or missing)"
        );
    }
}
