//! One cgroup per container: how the daemon knows every process of a container (forks included),
//! whether it still runs, and how it ends them all. cgroup v2 is used where it is mounted (no
//! controller is needed to track processes; `cgroup.events` says whether a subtree has processes and
//! `cgroup.kill` ends them at once); otherwise the v1 `pids` hierarchy.
//!
//! A container's processes may sit anywhere in its cgroup's subtree (a process that made itself a
//! sub-cgroup has not left the container), so every question is asked of the whole subtree. Every
//! answer is either read from the kernel or an error: a cgroup that cannot be read is never taken for
//! an empty one, so callers can refuse to destroy what they cannot prove stopped.
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
    /// The unified hierarchy.
    V2,
    /// The v1 hierarchy with the `pids` controller.
    V1Pids,
}

/// A cgroup file or directory that could not be read, written or removed.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// No hierarchy this runtime can use is mounted.
    #[error("{0}")]
    NoHierarchy(String),
    /// A file could not be read (so the state of the container is unknown).
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file could not be written or a directory made or removed.
    #[error("cannot change {path}: {source}")]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
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

/// Whether `cgroup.events` text says the subtree has processes.
pub fn events_populated(events: &str) -> Option<bool> {
    events.lines().find_map(|line| match line.split_once(' ') {
        Some(("populated", value)) => Some(value.trim() == "1"),
        _ => None,
    })
}

fn read(path: &Path) -> Result<String, CgroupError> {
    std::fs::read_to_string(path).map_err(|source| CgroupError::Read {
        path: path.to_owned(),
        source,
    })
}

fn write(path: &Path, text: &str) -> Result<(), CgroupError> {
    std::fs::write(path, text).map_err(|source| CgroupError::Write {
        path: path.to_owned(),
        source,
    })
}

fn is_gone(err: &CgroupError) -> bool {
    matches!(err, CgroupError::Read { source, .. } | CgroupError::Write { source, .. }
        if matches!(source.raw_os_error(), Some(nix::libc::ENOENT) | Some(nix::libc::ENODEV)))
}

/// Every cgroup directory of the subtree at `root`, parents before their children. A directory
/// removed while it is walked is left out; one that cannot be listed is an error.
fn subtree(root: &Path) -> Result<Vec<PathBuf>, CgroupError> {
    let mut found = vec![];
    let mut pending = vec![root.to_owned()];
    while let Some(dir) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(CgroupError::Read { path: dir, source }),
        };
        for entry in entries {
            let entry = entry.map_err(|source| CgroupError::Read {
                path: dir.clone(),
                source,
            })?;
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                pending.push(entry.path());
            }
        }
        found.push(dir);
    }
    // `pending` is a stack, so sort: a parent's path is a prefix of its children's.
    found.sort();
    Ok(found)
}

/// The PIDs listed in one cgroup's `cgroup.procs` (none when the cgroup went away meanwhile).
fn procs_of(dir: &Path) -> Result<Vec<i32>, CgroupError> {
    match read(&dir.join("cgroup.procs")) {
        Ok(text) => Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect()),
        Err(err) if is_gone(&err) => Ok(vec![]),
        Err(err) => Err(err),
    }
}

impl Cgroups {
    /// Finds the hierarchy to use (`wanted`, or v2 where mounted and else v1 `pids`) and creates
    /// the parent `name` below this process's cgroup.
    pub fn open(name: &str, wanted: Option<Version>) -> Result<Cgroups, CgroupError> {
        let mountinfo = read(Path::new("/proc/self/mountinfo"))?;
        let own = read(Path::new("/proc/self/cgroup"))?;
        let (v2, pids) = find_mounts(&mountinfo);
        let v2 = v2.map(|mount| {
            (
                mount.join(own_path(&own, None).trim_start_matches('/')),
                Version::V2,
            )
        });
        let v1 = pids.map(|mount| {
            (
                mount.join(own_path(&own, Some("pids")).trim_start_matches('/')),
                Version::V1Pids,
            )
        });
        let (base, version) = match wanted {
            None => v2.or(v1),
            Some(Version::V2) => v2,
            Some(Version::V1Pids) => v1,
        }
        .ok_or_else(|| {
            CgroupError::NoHierarchy(match wanted {
                None => "no cgroup v2 mount and no cgroup v1 'pids' hierarchy found".to_owned(),
                Some(Version::V2) => "cgroup v2 is not mounted".to_owned(),
                Some(Version::V1Pids) => "no cgroup v1 'pids' hierarchy is mounted".to_owned(),
            })
        })?;
        let parent = base.join(name);
        std::fs::create_dir_all(&parent).map_err(|source| CgroupError::Write {
            path: parent.clone(),
            source,
        })?;
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

    /// Creates the container's cgroup (an empty one left from before is reused; a parent that
    /// went is made again).
    pub fn create(&self, id: &str) -> Result<(), CgroupError> {
        let path = self.path(id);
        std::fs::create_dir_all(&path).map_err(|source| CgroupError::Write { path, source })
    }

    /// Whether any process is in the container's cgroup or below it. A container without a cgroup
    /// has none.
    pub fn populated(&self, id: &str) -> Result<bool, CgroupError> {
        let path = self.path(id);
        match self.version {
            Version::V2 => match read(&path.join("cgroup.events")) {
                Ok(text) => events_populated(&text).ok_or_else(|| CgroupError::Read {
                    path: path.join("cgroup.events"),
                    source: std::io::Error::other("no 'populated' line"),
                }),
                Err(err) if is_gone(&err) => Ok(false),
                Err(err) => Err(err),
            },
            Version::V1Pids => Ok(!self.pids(id)?.is_empty()),
        }
    }

    /// The host PIDs in the container's cgroup subtree, the top cgroup's first.
    pub fn pids(&self, id: &str) -> Result<Vec<i32>, CgroupError> {
        let mut pids = vec![];
        for dir in subtree(&self.path(id))? {
            pids.extend(procs_of(&dir)?);
        }
        Ok(pids)
    }

    /// IDs of containers whose cgroup subtree has processes.
    pub fn running(&self) -> Result<Vec<String>, CgroupError> {
        let mut running = vec![];
        for id in self.all()? {
            if self.populated(&id)? {
                running.push(id);
            }
        }
        Ok(running)
    }

    /// IDs of every container cgroup, populated or not.
    pub fn all(&self) -> Result<Vec<String>, CgroupError> {
        let entries = match std::fs::read_dir(&self.parent) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(source) => {
                return Err(CgroupError::Read {
                    path: self.parent.clone(),
                    source,
                })
            }
        };
        Ok(entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .collect())
    }

    /// Sends `signal` to every process of the container's subtree.
    pub fn signal_all(&self, id: &str, signal: Signal) -> Result<(), CgroupError> {
        for pid in self.pids(id)? {
            // A process that exited meanwhile is fine.
            let _ = kill(Pid::from_raw(pid), signal);
        }
        Ok(())
    }

    /// Kills every process of the container's subtree, new forks included: v2 writes `cgroup.kill`
    /// (the kernel kills the subtree, forks racing with it too); v1 first stops all forks in the
    /// subtree (`pids.max` 0) and then sends SIGKILL until no process is left to send it to.
    pub fn kill_all(&self, id: &str) -> Result<(), CgroupError> {
        let path = self.path(id);
        match self.version {
            Version::V2 => match write(&path.join("cgroup.kill"), "1") {
                Ok(()) => Ok(()),
                Err(err) if is_gone(&err) => Ok(()),
                Err(err) => Err(err),
            },
            Version::V1Pids => {
                match write(&path.join("pids.max"), "0") {
                    Ok(()) => {}
                    Err(err) if is_gone(&err) => return Ok(()),
                    Err(err) => return Err(err),
                }
                self.signal_all(id, Signal::SIGKILL)
            }
        }
    }

    /// Waits until the container's subtree has no process; false on timeout.
    pub fn wait_empty(&self, id: &str, timeout: Duration) -> Result<bool, CgroupError> {
        let deadline = Instant::now() + timeout;
        loop {
            if !self.populated(id)? {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Removes the container's (empty) cgroup and any cgroup below it.
    pub fn remove(&self, id: &str) -> Result<(), CgroupError> {
        for dir in subtree(&self.path(id))?.into_iter().rev() {
            match std::fs::remove_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(CgroupError::Write { path: dir, source }),
            }
        }
        Ok(())
    }

    /// Removes the parent if no container cgroup is left in it.
    pub fn remove_parent(&self) {
        let _ = std::fs::remove_dir(&self.parent);
    }
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

    #[test]
    fn a_subtree_lists_parents_before_children() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("c1");
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::create_dir_all(root.join("z")).unwrap();
        std::fs::write(root.join("cgroup.procs"), "1\n").unwrap();
        let tree = subtree(&root).unwrap();
        assert_eq!(
            tree,
            vec![
                root.clone(),
                root.join("a"),
                root.join("a/b"),
                root.join("z")
            ]
        );
        assert!(subtree(&dir.path().join("missing")).unwrap().is_empty());
    }

    #[test]
    fn processes_in_sub_cgroups_count() {
        let dir = tempfile::tempdir().unwrap();
        let cgroups = Cgroups {
            parent: dir.path().to_owned(),
            version: Version::V1Pids,
        };
        std::fs::create_dir_all(dir.path().join("c1/hidden")).unwrap();
        std::fs::write(dir.path().join("c1/cgroup.procs"), "").unwrap();
        std::fs::write(dir.path().join("c1/hidden/cgroup.procs"), "4242\n").unwrap();
        assert_eq!(cgroups.pids("c1").unwrap(), vec![4242]);
        assert!(cgroups.populated("c1").unwrap());
        assert_eq!(cgroups.running().unwrap(), vec!["c1".to_owned()]);
        assert!(!cgroups.populated("c2").unwrap(), "no cgroup, no process");
    }
}
