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
//!
//! Resource limits (memory, processes, CPU time) need controllers, and hosts differ in which
//! hierarchy has them: a hybrid host may mount cgroup v2 without the `memory` or `pids`
//! controllers and have them as v1 hierarchies. Each controller is found on its own
//! ([`LimitHomes`]): in v2 when the hierarchy offers it to the daemon's cgroup (it is then enabled
//! for the containers' parent and its files are in the container's own cgroup), else in its v1
//! hierarchy, where each container gets a cgroup of the same name under a parent of the same
//! name. Every container gets a cgroup in each v1 hierarchy found, limited or not, so that new
//! limits can be written while it runs; all of them are removed with the container's. A limit
//! asked for that no hierarchy can enforce fails the start: never silently ignored.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

mod hierarchy;
mod limits;

use hierarchy::enable_v2;
pub use hierarchy::{events_populated, find_mounts, find_v1_mount, own_path};
use limits::{asked, write_limits};
pub use limits::{
    keyed_value, limit_files, Controller, LimitFile, LimitHome, LimitHomes, CPU_PERIOD_US,
};

use crate::platform::runtime::Limits;

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
    /// A limit this host cannot enforce, or not on this container until its next start.
    #[error("{0}")]
    Unsupported(String),
}

/// The parent cgroup of a daemon's containers.
#[derive(Debug, Clone)]
pub struct Cgroups {
    parent: PathBuf,
    version: Version,
    /// Where each controller's limits are written.
    homes: LimitHomes,
    /// The hierarchy the configuration asked for (`None`: whichever has the controller), to
    /// explain a limit that cannot be enforced.
    wanted: Option<Version>,
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

/// The host PIDs anywhere in the cgroup subtree at `root` (none when it does not exist).
pub fn pids_under(root: &Path) -> Result<Vec<i32>, CgroupError> {
    let mut pids = vec![];
    for dir in subtree(root)? {
        pids.extend(procs_of(&dir)?);
    }
    Ok(pids)
}

impl Cgroups {
    /// Finds the hierarchy to use (`wanted`, or v2 where mounted and else v1 `pids`) and creates
    /// the parent `name` below this process's cgroup; finds where each controller's limits go.
    pub fn open(name: &str, wanted: Option<Version>) -> Result<Cgroups, CgroupError> {
        let mountinfo = read(Path::new("/proc/self/mountinfo"))?;
        let own = read(Path::new("/proc/self/cgroup"))?;
        Cgroups::open_with(&mountinfo, &own, name, wanted)
    }

    /// [`Cgroups::open`] from the text of `/proc/self/mountinfo` and `/proc/self/cgroup` (tests
    /// point the mounts at temporary directories).
    pub fn open_with(
        mountinfo: &str,
        own: &str,
        name: &str,
        wanted: Option<Version>,
    ) -> Result<Cgroups, CgroupError> {
        let (v2, pids) = find_mounts(mountinfo);
        let v2 = v2.map(|mount| {
            (
                mount.join(own_path(own, None).trim_start_matches('/')),
                Version::V2,
            )
        });
        let v1 = pids.map(|mount| {
            (
                mount.join(own_path(own, Some("pids")).trim_start_matches('/')),
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
        let mut homes = LimitHomes::default();
        for controller in Controller::ALL {
            let kernel_name = controller.name();
            // v2 only when containers are tracked there (their cgroup is the one limited).
            let in_v2 = version == Version::V2 && enable_v2(&base, &parent, kernel_name);
            let home = if in_v2 {
                Some(LimitHome::V2)
            } else if wanted == Some(Version::V2) {
                None
            } else {
                find_v1_mount(mountinfo, kernel_name).and_then(|mount| {
                    let dir = mount
                        .join(own_path(own, Some(kernel_name)).trim_start_matches('/'))
                        .join(name);
                    match std::fs::create_dir_all(&dir) {
                        Ok(()) => Some(LimitHome::V1(dir)),
                        Err(err) => {
                            tracing::warn!(controller = kernel_name, dir = %dir.display(), error = %err, "cgroup v1 hierarchy not usable");
                            None
                        }
                    }
                })
            };
            homes.set(controller, home);
        }
        Ok(Cgroups {
            parent,
            version,
            homes,
            wanted,
        })
    }

    /// Where each controller's limits are written.
    pub fn homes(&self) -> &LimitHomes {
        &self.homes
    }

    /// Refuses limits this host cannot enforce, naming the first one and why; checked before
    /// anything is made for a start.
    pub fn check_limits(&self, limits: &Limits) -> Result<(), CgroupError> {
        for controller in Controller::ALL {
            if asked(controller, limits) && self.homes.of(controller).is_none() {
                let name = controller.name();
                let why = match self.wanted {
                    Some(Version::V2) => format!(
                        "cgroup_hierarchy is v2 and the cgroup v2 hierarchy does not offer the \
                         '{name}' controller to the daemon's cgroup"
                    ),
                    Some(Version::V1Pids) => format!(
                        "cgroup_hierarchy is v1 and no cgroup v1 '{name}' hierarchy is mounted"
                    ),
                    None => format!(
                        "the cgroup v2 hierarchy does not offer the '{name}' controller to the \
                         daemon's cgroup and no cgroup v1 '{name}' hierarchy is mounted"
                    ),
                };
                return Err(CgroupError::Unsupported(format!(
                    "this host cannot enforce a {}: {why}",
                    controller.limit()
                )));
            }
        }
        Ok(())
    }

    /// The container's cgroup directory in `controller`'s hierarchy.
    fn limit_dir(&self, home: &LimitHome, id: &str) -> PathBuf {
        match home {
            LimitHome::V2 => self.path(id),
            LimitHome::V1(dir) => dir.join(id),
        }
    }

    /// Creates the container's cgroups in the v1 hierarchies and writes its limits, before any
    /// of its processes exists. A cgroup a limit needs that cannot be made or written is an
    /// error; one for a controller without a limit is left out (its limit can then only be set
    /// at the next start). A cgroup left from before is replaced, so its counters start at 0.
    pub fn create_limited(&self, id: &str, limits: &Limits) -> Result<(), CgroupError> {
        for controller in Controller::ALL {
            let Some(home) = self.homes.of(controller) else {
                continue;
            };
            let dir = self.limit_dir(home, id);
            let made = match home {
                LimitHome::V2 => Ok(()),
                LimitHome::V1(_) => {
                    // The tracking cgroup may be this one (v1 pids): never remove that.
                    if dir != self.path(id) {
                        let _ = remove_tree(&dir);
                    }
                    std::fs::create_dir_all(&dir).map_err(|source| CgroupError::Write {
                        path: dir.clone(),
                        source,
                    })
                }
            };
            let written = made.and_then(|()| {
                if asked(controller, limits) {
                    write_limits(&dir, controller, matches!(home, LimitHome::V2), limits)
                } else {
                    Ok(())
                }
            });
            match written {
                Ok(()) => {}
                Err(err) if asked(controller, limits) => return Err(err),
                Err(err) => {
                    tracing::warn!(container = id, controller = controller.name(), error = %err, "no cgroup for this controller; its limit can only be set at the next start");
                    if matches!(home, LimitHome::V1(_)) && dir != self.path(id) {
                        let _ = remove_tree(&dir);
                    }
                }
            }
        }
        Ok(())
    }

    /// Writes new limits into a running container's cgroups. False when the container has no
    /// cgroup (not running). A limit for a controller without a cgroup of the container is an
    /// error, and nothing is written then.
    pub fn set_limits(&self, id: &str, limits: &Limits) -> Result<bool, CgroupError> {
        if !self.path(id).is_dir() {
            return Ok(false);
        }
        self.check_limits(limits)?;
        let mut writes = vec![];
        for controller in Controller::ALL {
            let Some(home) = self.homes.of(controller) else {
                continue;
            };
            let dir = self.limit_dir(home, id);
            if !dir.is_dir() {
                if asked(controller, limits) {
                    return Err(CgroupError::Unsupported(format!(
                        "the container started without a '{}' cgroup; its {} applies at its \
                         next start",
                        controller.name(),
                        controller.limit()
                    )));
                }
                continue;
            }
            writes.push((dir, controller, matches!(home, LimitHome::V2)));
        }
        for (dir, controller, v2) in writes {
            write_limits(&dir, controller, v2, limits)?;
        }
        Ok(true)
    }

    /// The `cgroup.procs` files a process of the container joins, the tracking cgroup's first:
    /// also those of its cgroups in v1 hierarchies that exist.
    pub fn procs_files(&self, id: &str) -> Vec<PathBuf> {
        let mut files = vec![self.procs_file(id)];
        for parent in self.homes.v1_parents() {
            let file = parent.join(id).join("cgroup.procs");
            if !files.contains(&file) && parent.join(id).is_dir() {
                files.push(file);
            }
        }
        files
    }

    /// How many processes of the container the out-of-memory killer ended since its memory
    /// cgroup was made: `oom_kill` of `memory.events` (v2) or of `memory.oom_control` (v1;
    /// kernels before 4.13 lack it, and then a hit limit, `memory.failcnt`, counts as one).
    /// `None` without a memory cgroup.
    pub fn oom_kills(&self, id: &str) -> Option<u64> {
        match self.homes.memory.as_ref()? {
            LimitHome::V2 => {
                let text = std::fs::read_to_string(self.path(id).join("memory.events")).ok()?;
                keyed_value(&text, "oom_kill")
            }
            LimitHome::V1(dir) => {
                let dir = dir.join(id);
                let text = std::fs::read_to_string(dir.join("memory.oom_control")).ok()?;
                keyed_value(&text, "oom_kill").or_else(|| {
                    let failed: u64 = std::fs::read_to_string(dir.join("memory.failcnt"))
                        .ok()?
                        .trim()
                        .parse()
                        .ok()?;
                    Some(u64::from(failed > 0))
                })
            }
        }
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

    /// Removes the container's (empty) cgroup and any cgroup below it, and its cgroups in the
    /// v1 hierarchies of its limits.
    pub fn remove(&self, id: &str) -> Result<(), CgroupError> {
        remove_tree(&self.path(id))?;
        for parent in self.homes.v1_parents() {
            remove_tree(&parent.join(id))?;
        }
        Ok(())
    }

    /// IDs of containers with a cgroup in a v1 hierarchy of the limits but none to track them
    /// (left by a daemon that died between the two).
    pub fn stray_limit_cgroups(&self) -> Vec<String> {
        let tracked: Vec<String> = self.all().unwrap_or_default();
        let mut stray = vec![];
        for parent in self.homes.v1_parents() {
            let Ok(entries) = std::fs::read_dir(&parent) else {
                continue;
            };
            for entry in entries.filter_map(Result::ok) {
                if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                if let Ok(id) = entry.file_name().into_string() {
                    if !tracked.contains(&id) && !stray.contains(&id) {
                        stray.push(id);
                    }
                }
            }
        }
        stray
    }

    /// Removes the parents (the tracking one and those in v1 hierarchies) if no container cgroup
    /// is left in them.
    pub fn remove_parent(&self) {
        let _ = std::fs::remove_dir(&self.parent);
        for parent in self.homes.v1_parents() {
            let _ = std::fs::remove_dir(parent);
        }
    }
}

/// Removes the cgroup at `root` and every cgroup below it, deepest first; what is gone already is
/// fine. The kernel may still be releasing a cgroup whose last process just exited (EBUSY): that
/// is retried for a moment.
pub fn remove_tree(root: &Path) -> Result<(), CgroupError> {
    for dir in subtree(root)?.into_iter().rev() {
        let deadline = Instant::now() + Duration::from_millis(500);
        loop {
            match std::fs::remove_dir(&dir) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(e)
                    if e.raw_os_error() == Some(nix::libc::EBUSY) && Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(source) => return Err(CgroupError::Write { path: dir, source }),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
            homes: LimitHomes::default(),
            wanted: None,
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
