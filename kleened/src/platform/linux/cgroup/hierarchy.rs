//! Where the cgroup hierarchies are: the v2 and v1 mounts in `/proc/self/mountinfo`, the daemon's
//! own cgroup in each, enabling a v2 controller for the containers' parent, and what
//! `cgroup.events` says.

use std::path::{Path, PathBuf};

/// Where the v1 hierarchy with `controller` is mounted, from `/proc/self/mountinfo` text.
pub fn find_v1_mount(mountinfo: &str, controller: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let point = left.split_whitespace().nth(4)?;
        let mut fields = right.split_whitespace();
        let (fstype, _source, options) = (fields.next()?, fields.next()?, fields.next()?);
        (fstype == "cgroup" && options.split(',').any(|o| o == controller))
            .then(|| PathBuf::from(point))
    })
}

/// Whether `controller` is listed in the cgroup file `path` (`cgroup.controllers`).
fn lists(path: &Path, controller: &str) -> bool {
    std::fs::read_to_string(path).is_ok_and(|text| text.split_whitespace().any(|c| c == controller))
}

/// Makes `controller` available to the cgroups in the v2 directory `parent`, whose parent is the
/// daemon's own cgroup `own`: enabled in `own`'s `cgroup.subtree_control` when `parent` does not
/// have it yet (possible when `own` has it and holds no process, or is the root), then in
/// `parent`'s. False when the hierarchy does not offer it.
pub(super) fn enable_v2(own: &Path, parent: &Path, controller: &str) -> bool {
    let enable =
        |dir: &Path| std::fs::write(dir.join("cgroup.subtree_control"), format!("+{controller}"));
    if !lists(&parent.join("cgroup.controllers"), controller) {
        if !lists(&own.join("cgroup.controllers"), controller) || enable(own).is_err() {
            return false;
        }
        tracing::info!(controller, cgroup = %own.display(), "enabled the cgroup v2 controller for the daemon's cgroups");
        if !lists(&parent.join("cgroup.controllers"), controller) {
            return false;
        }
    }
    match enable(parent) {
        Ok(()) => true,
        Err(err) => {
            tracing::info!(controller, parent = %parent.display(), error = %err, "cgroup v2 controller not usable");
            false
        }
    }
}

/// Where cgroup hierarchies are mounted, from `/proc/self/mountinfo` text: the cgroup2 mount, and
/// the v1 hierarchy with the `pids` controller.
pub fn find_mounts(mountinfo: &str) -> (Option<PathBuf>, Option<PathBuf>) {
    let (mut v2, mut pids) = (None, None);
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mountpoint = left.split_whitespace().nth(4);
        let mut fields = right.split_whitespace();
        let (fstype, _source, options) =
            (fields.next(), fields.next(), fields.next().unwrap_or(""));
        match (fstype, mountpoint) {
            (Some("cgroup2"), Some(point)) if v2.is_none() => v2 = Some(PathBuf::from(point)),
            (Some("cgroup"), Some(point)) if options.split(',').any(|o| o == "pids") => {
                pids = Some(PathBuf::from(point))
            }
            _ => {}
        }
    }
    (v2, pids)
}

/// This process's cgroup path in a hierarchy, from `/proc/self/cgroup` text: the `0::` line for v2,
/// the line naming `controller` for v1.
pub fn own_path(proc_cgroup: &str, controller: Option<&str>) -> String {
    proc_cgroup
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            let matches = match controller {
                None => controllers.is_empty(),
                Some(wanted) => controllers.split(',').any(|c| c == wanted),
            };
            matches.then(|| path.to_owned())
        })
        .next()
        .unwrap_or_else(|| "/".to_owned())
}

/// Whether `cgroup.events` text says the subtree has processes.
pub fn events_populated(events: &str) -> Option<bool> {
    events.lines().find_map(|line| match line.split_once(' ') {
        Some(("populated", value)) => Some(value.trim() == "1"),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn mounts_are_found_in_a_hybrid_layout() {
        let (v2, pids) = find_mounts(MOUNTINFO);
        assert_eq!(v2, Some(PathBuf::from("/sys/fs/cgroup/unified")));
        assert_eq!(pids, Some(PathBuf::from("/sys/fs/cgroup/pids")));
        let (v2, pids) = find_mounts("30 1 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n");
        assert_eq!(v2, Some(PathBuf::from("/sys/fs/cgroup")));
        assert_eq!(pids, None);
    }

    #[test]
    fn own_paths_per_hierarchy() {
        let text = "8:pids:/\n4:memory:/process_api/cd9d\n0::/system.slice/kleened.service\n";
        assert_eq!(own_path(text, None), "/system.slice/kleened.service");
        assert_eq!(own_path(text, Some("pids")), "/");
        assert_eq!(own_path(text, Some("memory")), "/process_api/cd9d");
        assert_eq!(own_path("", None), "/");
    }

    #[test]
    fn populated_is_read_from_cgroup_events() {
        assert_eq!(events_populated("populated 1\nfrozen 0\n"), Some(true));
        assert_eq!(events_populated("populated 0\nfrozen 0\n"), Some(false));
        assert_eq!(events_populated("frozen 0\n"), None);
    }
}
