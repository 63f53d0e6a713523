//! One cgroup per container, to know every process of a container (forks included) and to end them
//! all. cgroup v2 is used where it is mounted (no controller is needed just to track processes, and
//! `cgroup.kill` ends them at once); otherwise the v1 `pids` hierarchy.
//!
//! The containers' cgroups live in a parent named in the configuration, below the daemon's own
//! cgroup, so several daemons (tests) never share one.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Which cgroup interface is in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V2,
    V1Pids,
}

/// The parent cgroup of a daemon's containers.
#[derive(Debug, Clone)]
pub struct Cgroups {
    parent: PathBuf,
    version: Version,
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

impl Cgroups {
    /// Finds the hierarchy to use and creates the parent `name` below this process's cgroup.
    pub fn open(name: &str) -> Result<Cgroups, String> {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| format!("/proc/self/mountinfo: {e}"))?;
        let own = std::fs::read_to_string("/proc/self/cgroup")
            .map_err(|e| format!("/proc/self/cgroup: {e}"))?;
        let (v2, pids) = find_mounts(&mountinfo);
        let (base, version) = match (v2, pids) {
            (Some(mount), _) => (
                mount.join(own_path(&own, None).trim_start_matches('/')),
                Version::V2,
            ),
            (None, Some(mount)) => (
                mount.join(own_path(&own, Some("pids")).trim_start_matches('/')),
                Version::V1Pids,
            ),
            (None, None) => {
                return Err("no cgroup v2 mount and no cgroup v1 'pids' hierarchy found".to_owned())
            }
        };
        let parent = base.join(name);
        std::fs::create_dir_all(&parent)
            .map_err(|e| format!("cannot create cgroup {}: {e}", parent.display()))?;
        Ok(Cgroups { parent, version })
    }

    /// The interface in use.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The cgroup directory of a container.
    pub fn path(&self, id: &str) -> PathBuf {
        self.parent.join(id)
    }

    /// The file a process's PID is written to, to move it into the container's cgroup.
    pub fn procs_file(&self, id: &str) -> PathBuf {
        self.path(id).join("cgroup.procs")
    }

    /// Creates the container's cgroup (an empty one left from before is reused).
    pub fn create(&self, id: &str) -> Result<(), String> {
        let path = self.path(id);
        match std::fs::create_dir(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(format!("cannot create cgroup {}: {e}", path.display())),
        }
    }

    /// The host PIDs in the container's cgroup (none when it does not exist).
    pub fn pids(&self, id: &str) -> Vec<i32> {
        read_pids(&self.procs_file(id))
    }

    /// IDs of containers whose cgroup has processes.
    pub fn populated(&self) -> Vec<String> {
        self.all()
            .into_iter()
            .filter(|id| !self.pids(id).is_empty())
            .collect()
    }

    /// IDs of every container cgroup, populated or not.
    pub fn all(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.parent) else {
            return vec![];
        };
        entries
            .filter_map(Result::ok)
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect()
    }

    /// Sends `signal` to every process of the container.
    pub fn signal_all(&self, id: &str, signal: Signal) {
        if signal == Signal::SIGKILL
            && self.version == Version::V2
            && std::fs::write(self.path(id).join("cgroup.kill"), "1").is_ok()
        {
            return;
        }
        for pid in self.pids(id) {
            let _ = kill(Pid::from_raw(pid), signal);
        }
    }

    /// Waits until the container's cgroup is empty; false on timeout.
    pub fn wait_empty(&self, id: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.pids(id).is_empty() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Removes the container's (empty) cgroup.
    pub fn remove(&self, id: &str) -> Result<(), String> {
        let path = self.path(id);
        match std::fs::remove_dir(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!("cannot remove cgroup {}: {e}", path.display())),
        }
    }

    /// Removes the parent if no container cgroup is left in it.
    pub fn remove_parent(&self) {
        let _ = std::fs::remove_dir(&self.parent);
    }
}

fn read_pids(path: &Path) -> Vec<i32> {
    std::fs::read_to_string(path)
        .map(|text| text.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
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
}
