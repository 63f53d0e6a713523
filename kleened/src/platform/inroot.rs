//! Paths inside a container's root, resolved as the container would see them, never leading out.
//!
//! An image is untrusted: its `/data` may be a symbolic link to `/etc` or `../../..`. Following
//! such a link from the host (a mount destination, a directory to create, files to copy into a
//! volume) would act on the host's own files. [`open`] walks the path one component at a time
//! from a descriptor of the root: each component is opened without following a link
//! (`O_NOFOLLOW`); a link is read and its target walked instead, an absolute one from the root
//! again, and `..` never climbs above the root, so the result is what `chroot(root)` would find
//! (Linux's `openat2(RESOLVE_IN_ROOT)`, done by hand so that FreeBSD gets it too). Every step works
//! on descriptors, so a link swapped in meanwhile is not followed either.
//!
//! The walk answers the open descriptor and the path it took, free of links, under the root.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, readlinkat, OFlag};
use nix::sys::stat::{fstat, mkdirat, Mode, SFlag};

/// How many links one walk follows at most (as the kernel's `MAXSYMLINKS`).
const MAX_LINKS: usize = 40;

/// What the walk makes when the path, or part of it, does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    /// Nothing: a missing component is an error (`NotFound`).
    Nothing,
    /// Missing directories, the last one included (`mkdir -p`).
    Directories,
    /// Missing directories up to the last component, which becomes an empty file.
    File,
}

/// A path opened inside a root.
#[derive(Debug)]
pub struct Opened {
    /// The descriptor of what the path names (a directory or a file).
    pub fd: OwnedFd,
    /// The same as a host path under the root, with every link resolved.
    pub path: PathBuf,
    /// Whether it is a directory.
    pub is_dir: bool,
}

fn flags(directory: bool) -> OFlag {
    let base = OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    #[cfg(target_os = "linux")]
    let base = base | OFlag::O_PATH;
    // Elsewhere a real open: never one that waits (a FIFO's open waits for a writer) or takes a
    // terminal as the daemon's.
    #[cfg(not(target_os = "linux"))]
    let base = base | OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY;
    if directory {
        base | OFlag::O_DIRECTORY
    } else {
        base
    }
}

/// Opens `path` (absolute, as the container sees it) under `root` (a host directory), resolving
/// every link inside the root, and making what `create` says when it is missing.
pub fn open(root: &Path, path: &str, create: Create) -> io::Result<Opened> {
    let root_fd = openat(
        nix::fcntl::AT_FDCWD,
        root,
        flags(true) & !OFlag::O_NOFOLLOW,
        Mode::empty(),
    )?;
    open_beneath(root_fd.as_fd(), root, path, create)
}

/// [`open`] from a descriptor of the root already open (`root` is its host path, for
/// [`Opened::path`]): the walk starts at that directory whatever `root` names by now.
pub fn open_beneath(
    root_fd: BorrowedFd<'_>,
    root: &Path,
    path: &str,
    create: Create,
) -> io::Result<Opened> {
    if !path.starts_with('/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("'{path}' is not an absolute path"),
        ));
    }
    // The directories walked so far, the root first, each with its name.
    let mut stack: Vec<(OwnedFd, Vec<u8>)> = vec![];
    let mut pending: Vec<Vec<u8>> = components(Path::new(path));
    pending.reverse();
    let mut links = 0;
    while let Some(name) = pending.pop() {
        match name.as_slice() {
            b"." => continue,
            b".." => {
                stack.pop();
                continue;
            }
            _ => {}
        }
        let last = pending.is_empty();
        let dir = stack.last().map_or(root_fd, |(fd, _)| fd.as_fd());
        let as_dir = !(last && create == Create::File);
        let link_or_file = match openat(dir, OsStr::from_bytes(&name), flags(as_dir), Mode::empty())
        {
            // Linux opens a link itself with O_PATH | O_NOFOLLOW: it is walked as a link.
            Ok(fd) if !as_dir && kind(&fd)? == SFlag::S_IFLNK => true,
            Ok(fd) => {
                stack.push((fd, name));
                continue;
            }
            Err(Errno::ENOENT) => false,
            // A link (O_NOFOLLOW: ELOOP, or EMLINK on FreeBSD), or a file where a directory was
            // wanted.
            Err(Errno::ELOOP | Errno::ENOTDIR | Errno::EMLINK) => true,
            Err(err) => return Err(err.into()),
        };
        if link_or_file {
            match readlinkat(dir, OsStr::from_bytes(&name)) {
                Ok(target) => {
                    links += 1;
                    if links > MAX_LINKS {
                        return Err(Errno::ELOOP.into());
                    }
                    let target = PathBuf::from(target);
                    if target.is_absolute() {
                        stack.clear();
                    }
                    pending.extend(components(&target).into_iter().rev());
                    continue;
                }
                Err(_) if last && create != Create::File => {
                    // Not a link: a file where the path ends. Open it as one.
                    let fd = openat(dir, OsStr::from_bytes(&name), flags(false), Mode::empty())?;
                    stack.push((fd, name));
                    continue;
                }
                Err(_) => return Err(Errno::ENOTDIR.into()),
            }
        }
        // Missing.
        match (create, last) {
            (Create::Nothing, _) => return Err(Errno::ENOENT.into()),
            (Create::File, true) => {
                let fd = openat(
                    dir,
                    OsStr::from_bytes(&name),
                    OFlag::O_CREAT
                        | OFlag::O_EXCL
                        | OFlag::O_NOFOLLOW
                        | OFlag::O_WRONLY
                        | OFlag::O_CLOEXEC,
                    Mode::from_bits_truncate(0o644),
                )?;
                drop(fd);
            }
            _ => match mkdirat(
                dir,
                OsStr::from_bytes(&name),
                Mode::from_bits_truncate(0o755),
            ) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(err) => return Err(err.into()),
            },
        }
        // Made (or made meanwhile by someone else): walk it again, as anything else.
        pending.push(name);
    }
    let mut host = root.to_path_buf();
    for (_, name) in &stack {
        host.push(OsStr::from_bytes(name));
    }
    let (fd, is_dir) = match stack.pop() {
        Some((fd, _)) => {
            let is_dir = kind(&fd)? == SFlag::S_IFDIR;
            (fd, is_dir)
        }
        None => (root_fd.try_clone_to_owned()?, true),
    };
    Ok(Opened {
        fd,
        path: host,
        is_dir,
    })
}

/// The file type of an open descriptor.
fn kind(fd: &OwnedFd) -> io::Result<SFlag> {
    let stat = fstat(fd)?;
    Ok(SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT)
}

/// The names of `path`'s components: `/` dropped, `.` and `..` kept as such.
fn components(path: &Path) -> Vec<Vec<u8>> {
    path.components()
        .filter_map(|c| match c {
            Component::RootDir | Component::Prefix(_) => None,
            Component::CurDir => Some(b".".to_vec()),
            Component::ParentDir => Some(b"..".to_vec()),
            Component::Normal(name) => Some(name.as_bytes().to_vec()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// An image with hostile links, and a "host" directory beside it that must stay untouched.
    fn hostile() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let host = dir.path().join("host");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(&host).unwrap();
        std::fs::write(root.join("etc/motd"), "image\n").unwrap();
        std::fs::write(host.join("secret"), "host\n").unwrap();
        symlink(&host, root.join("abs")).unwrap();
        symlink("../../../../../..", root.join("up")).unwrap();
        symlink("/etc", root.join("data")).unwrap();
        symlink("loop", root.join("loop")).unwrap();
        symlink("/abs/secret", root.join("file-link")).unwrap();
        (dir, root, host)
    }

    #[test]
    fn links_resolve_inside_the_root() {
        let (_dir, root, host) = hostile();
        let opened = open(&root, "/data", Create::Nothing).unwrap();
        assert_eq!(opened.path, root.join("etc"));
        assert!(opened.is_dir);
        let opened = open(&root, "/data/motd", Create::Nothing).unwrap();
        assert_eq!(opened.path, root.join("etc/motd"));
        assert!(!opened.is_dir);
        // An absolute link to a host path means that path inside the root: missing there.
        assert_eq!(
            open(&root, "/abs/secret", Create::Nothing)
                .unwrap_err()
                .kind(),
            io::ErrorKind::NotFound
        );
        // `..` stops at the root.
        let opened = open(&root, "/up/etc/../etc/motd", Create::Nothing).unwrap();
        assert_eq!(opened.path, root.join("etc/motd"));
        let opened = open(&root, "/../../..", Create::Nothing).unwrap();
        assert_eq!(opened.path, root);
        assert_eq!(
            open(&root, "/loop/x", Create::Nothing)
                .unwrap_err()
                .raw_os_error(),
            Some(nix::libc::ELOOP)
        );
        assert!(open(&root, "relative", Create::Nothing).is_err());
        assert_eq!(std::fs::read_dir(&host).unwrap().count(), 1);
    }

    #[test]
    fn what_is_made_is_made_inside_the_root() {
        let (_dir, root, host) = hostile();
        let made = open(&root, "/abs/new/dir", Create::Directories).unwrap();
        // The link `abs` points at the host directory's path, which inside the root is that
        // path under the root.
        let inside = root.join(host.strip_prefix("/").unwrap());
        assert_eq!(made.path, inside.join("new/dir"));
        assert!(made.path.is_dir());
        let file = open(&root, "/up/data/new-file", Create::File).unwrap();
        assert_eq!(file.path, root.join("etc/new-file"));
        assert!(!file.is_dir);
        // A link as the last component of a file is followed inside the root, never to the host.
        let file = open(&root, "/file-link", Create::File).unwrap();
        assert_eq!(file.path, inside.join("secret"));
        assert!(!file.is_dir);
        assert_eq!(
            std::fs::read_to_string(host.join("secret")).unwrap(),
            "host\n"
        );
        assert_eq!(
            std::fs::read_dir(&host).unwrap().count(),
            1,
            "nothing made on the host"
        );
        // A file in the way of a directory.
        assert_eq!(
            open(&root, "/etc/motd/x", Create::Directories)
                .unwrap_err()
                .raw_os_error(),
            Some(nix::libc::ENOTDIR)
        );
    }
}
