//! Users of a container, looked up in the container's own `/etc/passwd` and `/etc/group`.

use std::path::Path;

/// A resolved user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups, as initgroups(3) sets them: the primary group, then the groups that
    /// list the user.
    pub groups: Vec<u32>,
    /// Name (for `USER`), or the numeric uid.
    pub name: String,
    /// Home directory (the working directory and `HOME`).
    pub home: String,
}

/// Resolves `user` (a name, `uid` or `uid:gid`; `""` is root) against the passwd and group files'
/// text (either may be missing).
pub fn resolve(user: &str, passwd: Option<&str>, group: Option<&str>) -> Result<User, String> {
    let user = if user.is_empty() { "root" } else { user };
    let entries = records(passwd, 7);
    let (spec_user, spec_group) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let numeric = spec_user.parse::<u32>().ok();
    let entry = entries
        .iter()
        .find(|f| f[0] == spec_user || numeric.is_some_and(|n| f[2].parse() == Ok(n)));
    let mut resolved = match (entry, numeric) {
        (Some(f), _) => User {
            uid: f[2]
                .parse()
                .map_err(|_| format!("malformed passwd entry for '{}'", f[0]))?,
            gid: f[3]
                .parse()
                .map_err(|_| format!("malformed passwd entry for '{}'", f[0]))?,
            groups: vec![],
            name: f[0].to_owned(),
            home: if f[5].is_empty() {
                "/".to_owned()
            } else {
                f[5].to_owned()
            },
        },
        (None, Some(uid)) => User {
            uid,
            gid: uid,
            groups: vec![],
            name: uid.to_string(),
            home: "/".to_owned(),
        },
        (None, None) if spec_user == "root" => User {
            uid: 0,
            gid: 0,
            groups: vec![],
            name: "root".to_owned(),
            home: "/root".to_owned(),
        },
        (None, None) => {
            return Err(format!(
                "unable to find user {spec_user}: no matching entries in passwd file"
            ))
        }
    };
    let groups = records(group, 4);
    if let Some(wanted) = spec_group {
        resolved.gid = match wanted.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => groups
                .iter()
                .find(|f| f[0] == wanted)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| {
                    format!("unable to find group {wanted}: no matching entries in group file")
                })?,
        };
    }
    // As initgroups(3): the primary group first, then every group that lists the user, once each.
    let mut seen = std::collections::HashSet::new();
    resolved.groups = std::iter::once(resolved.gid)
        .chain(
            groups
                .iter()
                .filter(|f| f[3].split(',').any(|member| member == resolved.name))
                .filter_map(|f| f[2].parse().ok()),
        )
        .filter(|gid| seen.insert(*gid))
        .collect();
    Ok(resolved)
}

/// The `:`-separated records of a passwd or group file that have at least `fields` fields.
fn records(text: Option<&str>, fields: usize) -> Vec<Vec<&str>> {
    text.unwrap_or("")
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= fields)
        .collect()
}

/// The largest passwd or group file read (4 MiB: tens of thousands of users).
pub const MAX_FILE: u64 = 4 << 20;

/// Reads the file `path` (absolute, as the container sees it) of the container whose root is
/// `root`, as untrusted input: links are resolved inside the root (never a magic link of
/// `/proc`), the open never waits (a FIFO there is not a writer away from blocking the reader),
/// and only a regular file of at most [`MAX_FILE`] bytes is read. A missing file is `None`;
/// anything else there is an error naming what it is.
pub fn read_container_file(root: &Path, path: &str) -> Result<Option<String>, String> {
    use std::io::Read;
    let file = match open_for_reading(root, path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(format!("the container's {path}: {err}")),
    };
    let meta = file
        .metadata()
        .map_err(|e| format!("the container's {path}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("the container's {path} is not a regular file"));
    }
    if meta.len() > MAX_FILE {
        return Err(format!(
            "the container's {path} is larger than {} MiB ({} bytes)",
            MAX_FILE >> 20,
            meta.len()
        ));
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("the container's {path}: {e}"))?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(format!(
            "the container's {path} is larger than {} MiB",
            MAX_FILE >> 20
        ));
    }
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

/// Kernel file systems (`statfs` types) whose files are no container's configuration: procfs,
/// sysfs, debugfs, tracefs, securityfs, cgroup v1 and v2, bpffs, pstore, efivarfs, configfs and
/// devpts. The reader runs with the daemon's privileges: a link from `/etc/passwd` to
/// `/proc/kmsg` must not make it read the host's kernel log.
#[cfg(target_os = "linux")]
const KERNEL_FILE_SYSTEMS: [u32; 12] = [
    0x9fa0,
    0x6265_6572,
    0x6462_6720,
    0x7472_6163,
    0x7363_6673,
    0x0027_e0eb,
    0x6367_7270,
    0xcafe_4a11,
    0x6165_676c,
    0xde5e_81e4,
    0x6265_6570,
    0x1cd1,
];

/// Opens `path` inside `root` for reading, without waiting: the kernel's in-root resolution on
/// Linux (`openat2`), the descriptor walk of [`super::inroot`] elsewhere. On Linux the file is
/// first located without opening it (`O_PATH`), refused when it is on a kernel file system or
/// is no regular file, and then opened again by the same walk, which must reach the same file.
#[cfg(target_os = "linux")]
fn open_for_reading(root: &Path, path: &str) -> std::io::Result<std::fs::File> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    let root = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let open = |flags: OFlags| {
        rustix::fs::openat2(
            &root,
            path.trim_start_matches('/'),
            flags | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )
    };
    let refuse = |what: &str| std::io::Error::other(what.to_owned());
    let located = open(OFlags::PATH)?;
    let kind = rustix::fs::fstatfs(&located)?.f_type;
    if KERNEL_FILE_SYSTEMS
        .iter()
        .any(|magic| i64::from(*magic) == kind as i64)
    {
        return Err(refuse("on a kernel file system"));
    }
    let before = rustix::fs::fstat(&located)?;
    if rustix::fs::FileType::from_raw_mode(before.st_mode) != rustix::fs::FileType::RegularFile {
        // Read as it is by the caller, which names what it is; nothing is opened for reading.
        return Ok(std::fs::File::from(located));
    }
    let fd = open(OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY)?;
    let after = rustix::fs::fstat(&fd)?;
    if (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino) {
        return Err(refuse("replaced while it was opened"));
    }
    Ok(std::fs::File::from(fd))
}

#[cfg(not(target_os = "linux"))]
fn open_for_reading(root: &Path, path: &str) -> std::io::Result<std::fs::File> {
    let opened = super::inroot::open(root, path, super::inroot::Create::Nothing)?;
    Ok(std::fs::File::from(opened.fd))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With the host's `/` as the root, `/proc` and `/sys` are the kernel's: a container's
    /// `/etc/passwd` linked there is refused, never opened for reading.
    #[cfg(target_os = "linux")]
    #[test]
    fn files_of_kernel_file_systems_are_refused() {
        for path in ["/proc/self/status", "/sys/kernel/uevent_seqnum"] {
            let err = read_container_file(Path::new("/"), path).unwrap_err();
            assert!(err.contains("on a kernel file system"), "{path}: {err}");
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("etc/passwd"), "root:x:0:0::/:/bin/sh\n").unwrap();
        assert!(read_container_file(dir.path(), "/etc/passwd")
            .unwrap()
            .is_some_and(|text| text.starts_with("root:")));
    }

    const PASSWD: &str =
        "root:x:0:0:root:/root:/bin/sh\nwww:x:80:80:web:/var/www:/bin/false\nbroken:x\n";
    const GROUP: &str = "root:x:0:\nwww:x:80:\nwheel:x:10:www,root\nstaff:x:50:\n";

    #[test]
    fn names_and_numbers_resolve_through_the_files() {
        let www = resolve("www", Some(PASSWD), Some(GROUP)).unwrap();
        assert_eq!(
            (www.uid, www.gid, www.groups.clone(), www.home.as_str()),
            (80, 80, vec![80, 10], "/var/www")
        );
        let root = resolve("", Some(PASSWD), Some(GROUP)).unwrap();
        assert_eq!(
            (root.uid, root.name.as_str(), root.home.as_str()),
            (0, "root", "/root")
        );
        let by_number = resolve("80", Some(PASSWD), None).unwrap();
        assert_eq!(by_number.name, "www");
        let with_group = resolve("www:staff", Some(PASSWD), Some(GROUP)).unwrap();
        assert_eq!((with_group.gid, with_group.groups), (50, vec![50, 10]));
        let unknown_number = resolve("1234:99", Some(PASSWD), None).unwrap();
        assert_eq!((unknown_number.uid, unknown_number.gid), (1234, 99));
    }

    #[test]
    fn unknown_names_are_errors_that_name_them() {
        assert_eq!(
            resolve("nobody2", Some(PASSWD), None).unwrap_err(),
            "unable to find user nobody2: no matching entries in passwd file"
        );
        assert!(resolve("www:nogroup", Some(PASSWD), Some(GROUP))
            .unwrap_err()
            .contains("group nogroup"));
        // Without a passwd file, root still works.
        assert_eq!(resolve("root", None, None).unwrap().uid, 0);
    }

    #[test]
    fn container_files_are_read_inside_the_root_and_only_when_regular_and_small() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/passwd"), PASSWD).unwrap();
        assert_eq!(
            read_container_file(&root, "/etc/passwd")
                .unwrap()
                .as_deref(),
            Some(PASSWD)
        );
        assert_eq!(read_container_file(&root, "/etc/group").unwrap(), None);
        // A link to the host's file means that path inside the root.
        std::fs::write(dir.path().join("secret"), "host\n").unwrap();
        std::fs::remove_file(root.join("etc/passwd")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), root.join("etc/passwd")).unwrap();
        assert_eq!(read_container_file(&root, "/etc/passwd").unwrap(), None);
        std::fs::remove_file(root.join("etc/passwd")).unwrap();
        std::os::unix::fs::symlink("../../../../../../../etc/hostname", root.join("etc/passwd"))
            .unwrap();
        assert_eq!(read_container_file(&root, "/etc/passwd").unwrap(), None);
        // A FIFO is refused at once, never waited on.
        std::fs::remove_file(root.join("etc/passwd")).unwrap();
        nix::unistd::mkfifo(&root.join("etc/passwd"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        let err = read_container_file(&root, "/etc/passwd").unwrap_err();
        assert_eq!(err, "the container's /etc/passwd is not a regular file");
        // A directory, and a file past the bound (sparse: nothing is read).
        std::fs::remove_file(root.join("etc/passwd")).unwrap();
        std::fs::create_dir(root.join("etc/passwd")).unwrap();
        assert!(read_container_file(&root, "/etc/passwd").is_err());
        let big = std::fs::File::create(root.join("etc/group")).unwrap();
        big.set_len(1 << 30).unwrap();
        let err = read_container_file(&root, "/etc/group").unwrap_err();
        assert!(
            err.starts_with("the container's /etc/group is larger than 4 MiB"),
            "{err}"
        );
    }
}
