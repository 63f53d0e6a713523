//! Users of a container, looked up in the container's own `/etc/passwd` and `/etc/group`.

use std::path::Path;

/// A resolved user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups.
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
    resolved.groups = groups
        .iter()
        .filter(|f| f[3].split(',').any(|member| member == resolved.name))
        .filter_map(|f| f[2].parse().ok())
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

/// Reads a file of the container, refusing to follow a symlink out of it.
pub fn read_container_file(rootfs: &Path, relative: &str) -> Option<String> {
    let mut path = rootfs.to_path_buf();
    for component in relative.split('/') {
        path.push(component);
        if std::fs::symlink_metadata(&path)
            .ok()?
            .file_type()
            .is_symlink()
        {
            return None;
        }
    }
    std::fs::read_to_string(path).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str =
        "root:x:0:0:root:/root:/bin/sh\nwww:x:80:80:web:/var/www:/bin/false\nbroken:x\n";
    const GROUP: &str = "root:x:0:\nwww:x:80:\nwheel:x:10:www,root\nstaff:x:50:\n";

    #[test]
    fn names_and_numbers_resolve_through_the_files() {
        let www = resolve("www", Some(PASSWD), Some(GROUP)).unwrap();
        assert_eq!(
            (www.uid, www.gid, www.groups.clone(), www.home.as_str()),
            (80, 80, vec![10], "/var/www")
        );
        let root = resolve("", Some(PASSWD), Some(GROUP)).unwrap();
        assert_eq!(
            (root.uid, root.name.as_str(), root.home.as_str()),
            (0, "root", "/root")
        );
        let by_number = resolve("80", Some(PASSWD), None).unwrap();
        assert_eq!(by_number.name, "www");
        let with_group = resolve("www:staff", Some(PASSWD), Some(GROUP)).unwrap();
        assert_eq!(with_group.gid, 50);
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
    fn container_files_are_not_read_through_symlinks() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("etc")).unwrap();
        std::fs::write(root.path().join("etc/passwd"), PASSWD).unwrap();
        assert_eq!(
            read_container_file(root.path(), "etc/passwd").as_deref(),
            Some(PASSWD)
        );
        std::fs::remove_file(root.path().join("etc/passwd")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.path().join("etc/passwd")).unwrap();
        assert_eq!(read_container_file(root.path(), "etc/passwd"), None);
    }
}
