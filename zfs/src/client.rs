//! [`Zfs`]: the client the daemon uses. It builds argv with [`crate::command`], runs it
//! through a [`Runner`], retries "busy", and parses output with [`crate::parse`].
//!
//! Methods block (they run commands and may sleep between retries); async callers run them
//! in `spawn_blocking`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use kleene_runner::{CommandSpec, Output, Runner, LONG_TIMEOUT};
use tracing::debug;

use crate::command::{
    self, DatasetType, Depth, DestroyFlags, Invocation, ListQuery, Property, Tool,
};
use crate::error::{classify, ZfsError};
use crate::name::{DatasetName, NameError, SnapshotName};
use crate::parse;
use crate::retry::RetryPolicy;

/// Where the zfs(8) and zpool(8) programs are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZfsPrograms {
    /// The zfs program.
    pub zfs: String,
    /// The zpool program.
    pub zpool: String,
}

impl ZfsPrograms {
    /// FreeBSD's base system paths, `/sbin/zfs` and `/sbin/zpool`, used by absolute path so
    /// the daemon does not depend on its `PATH`.
    pub fn freebsd() -> Self {
        ZfsPrograms {
            zfs: "/sbin/zfs".into(),
            zpool: "/sbin/zpool".into(),
        }
    }

    /// `zfs` and `zpool` looked up in `PATH`: Linux distributions install OpenZFS and zfs-fuse
    /// in different places (`/sbin`, `/usr/sbin`).
    pub fn from_path() -> Self {
        ZfsPrograms {
            zfs: "zfs".into(),
            zpool: "zpool".into(),
        }
    }

    /// The programs for the platform this was built for.
    pub fn host_default() -> Self {
        if cfg!(target_os = "freebsd") {
            ZfsPrograms::freebsd()
        } else {
            ZfsPrograms::from_path()
        }
    }

    /// The runnable command for an invocation.
    pub fn command(&self, invocation: &Invocation) -> CommandSpec {
        let program = match invocation.tool {
            Tool::Zfs => &self.zfs,
            Tool::Zpool => &self.zpool,
        };
        CommandSpec::new(program.clone()).args(invocation.args.iter().cloned())
    }
}

impl Default for ZfsPrograms {
    fn default() -> Self {
        ZfsPrograms::host_default()
    }
}

/// Anything zfs names: a dataset or a snapshot. Lets property access take either, while
/// still only accepting validated names.
pub trait ZfsName {
    /// The name as zfs prints it.
    fn zfs_name(&self) -> &str;
}

impl ZfsName for DatasetName {
    fn zfs_name(&self) -> &str {
        self.as_str()
    }
}

impl ZfsName for SnapshotName {
    fn zfs_name(&self) -> &str {
        self.as_str()
    }
}

/// A snapshot and the datasets cloned from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotClones {
    /// The snapshot.
    pub snapshot: SnapshotName,
    /// Datasets whose `origin` is this snapshot.
    pub clones: Vec<DatasetName>,
}

/// How full and how well a pool is, from `zpool list -H -o health,size,free,capacity`. Sizes
/// are human-readable as zpool prints them (zfs-fuse has no `-p`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolUsage {
    /// Health, e.g. `ONLINE`, `DEGRADED`, `FAULTED`.
    pub health: String,
    /// Total size, e.g. `3.97G`.
    pub size: String,
    /// Free space, e.g. `3.73G`.
    pub free: String,
    /// How much of the pool is allocated, in percent (`6%`); `None` when zpool printed no
    /// number.
    pub capacity_percent: Option<u8>,
}

/// One imported pool, from `zpool list`. Sizes are human-readable as zpool prints them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolInfo {
    /// Pool name.
    pub name: String,
    /// Total size, e.g. `3.97G`.
    pub size: String,
    /// Health, e.g. `ONLINE`.
    pub health: String,
}

// Whether `zfs list -o clones` works here; learned on first use because zfs-fuse predates the
// property and there is no cheaper way to ask.
const CLONES_UNKNOWN: u8 = 0;
const CLONES_SUPPORTED: u8 = 1;
const CLONES_UNSUPPORTED: u8 = 2;

/// A typed client for zfs(8) and zpool(8).
#[derive(Debug)]
pub struct Zfs {
    runner: Arc<dyn Runner>,
    programs: ZfsPrograms,
    retry: RetryPolicy,
    clones_column: AtomicU8,
}

fn check_pool_name(pool: &str) -> Result<(), NameError> {
    DatasetName::new(pool)?;
    if pool.contains('/') {
        return Err(NameError {
            name: pool.to_owned(),
            reason: "a pool name cannot contain '/'",
        });
    }
    Ok(())
}

impl Zfs {
    /// A client running commands through `runner`, with the host's default program paths and
    /// the default busy retry policy.
    pub fn new(runner: Arc<dyn Runner>) -> Self {
        Zfs {
            runner,
            programs: ZfsPrograms::host_default(),
            retry: RetryPolicy::default(),
            clones_column: AtomicU8::new(CLONES_UNKNOWN),
        }
    }

    /// Uses these program paths instead.
    #[must_use]
    pub fn with_programs(mut self, programs: ZfsPrograms) -> Self {
        self.programs = programs;
        self
    }

    /// Uses this busy retry policy instead.
    #[must_use]
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The program paths in use.
    pub fn programs(&self) -> &ZfsPrograms {
        &self.programs
    }

    /// The busy retry policy in use.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    /// Runs one invocation, retrying "busy", and returns its output on success.
    fn exec(&self, invocation: &Invocation) -> Result<Output, ZfsError> {
        let spec = self.programs.command(invocation);
        self.retry.run(|| {
            let output = self.runner.run(&spec)?;
            if output.succeeded() {
                Ok(output)
            } else {
                Err(classify(&spec.argv(), output.code, &output.stderr_text()))
            }
        })
    }

    /// Runs a `zfs list` query and returns its rows, each with one field per column.
    pub fn list(&self, query: &ListQuery) -> Result<Vec<Vec<String>>, ZfsError> {
        let invocation = command::list(query);
        let output = self.exec(&invocation)?;
        parse::table(&output.stdout_text(), query.columns.len()).map_err(|source| ZfsError::Parse {
            argv: self.programs.command(&invocation).argv(),
            source,
        })
    }

    /// Creates a filesystem with the given `-o property=value` settings.
    pub fn create(&self, name: &DatasetName, properties: &[Property<'_>]) -> Result<(), ZfsError> {
        self.exec(&command::create(name, properties)).map(drop)
    }

    /// Takes a snapshot.
    pub fn snapshot(&self, snapshot: &SnapshotName) -> Result<(), ZfsError> {
        self.exec(&command::snapshot(snapshot)).map(drop)
    }

    /// Creates `target` as a clone of `snapshot`.
    pub fn clone_snapshot(
        &self,
        snapshot: &SnapshotName,
        target: &DatasetName,
        properties: &[Property<'_>],
    ) -> Result<(), ZfsError> {
        self.exec(&command::clone(snapshot, target, properties))
            .map(drop)
    }

    /// Destroys a filesystem or volume. Refusals come back as [`ZfsError::HasChildren`]
    /// (needs `recursive`) or [`ZfsError::HasDependents`] (needs `recursive_dependents`).
    pub fn destroy(&self, name: &DatasetName, flags: DestroyFlags) -> Result<(), ZfsError> {
        self.exec(&command::destroy(name, flags)).map(drop)
    }

    /// Destroys a snapshot; one with clones is refused with [`ZfsError::HasDependents`]
    /// unless `recursive_dependents` is set.
    pub fn destroy_snapshot(
        &self,
        snapshot: &SnapshotName,
        flags: DestroyFlags,
    ) -> Result<(), ZfsError> {
        self.exec(&command::destroy_snapshot(snapshot, flags))
            .map(drop)
    }

    /// What `zfs destroy -n -v` says would be destroyed. OpenZFS only: zfs-fuse answers
    /// [`ZfsError::UnsupportedOption`]; use [`Zfs::dependents`] where both must work.
    pub fn destroy_dry_run(
        &self,
        name: &DatasetName,
        flags: DestroyFlags,
    ) -> Result<Vec<String>, ZfsError> {
        let output = self.exec(&command::destroy_dry_run(name, flags))?;
        Ok(parse::destroy_dry_run(&output.stdout_text()))
    }

    /// Renames a dataset, keeping mounted file systems (it and its descendants) mounted.
    ///
    /// zfs-fuse refuses to rename a mounted dataset ("dataset is busy"), so every mounted
    /// file system in the tree is unmounted first (deepest first) and mounted again under
    /// the new name afterwards. The same sequence is used everywhere, so FreeBSD runs the
    /// exact command lines the tests pin. If the rename fails, the old mounts are restored.
    pub fn rename(&self, from: &DatasetName, to: &DatasetName) -> Result<(), ZfsError> {
        let mounted = self.mounted_filesystems(from)?;
        for dataset in mounted.iter().rev() {
            match self.exec(&command::unmount(dataset, false)) {
                Ok(_) | Err(ZfsError::NotMounted { .. }) => {}
                Err(err) => {
                    self.remount(&mounted);
                    return Err(err);
                }
            }
        }
        if let Err(err) = self.exec(&command::rename(from, to)) {
            self.remount(&mounted);
            return Err(err);
        }
        for dataset in &mounted {
            // `from` and its descendants share the prefix, so swap it for the new one.
            let suffix = &dataset.as_str()[from.as_str().len()..];
            let renamed = DatasetName::new(format!("{to}{suffix}"))?;
            match self.exec(&command::mount(&renamed)) {
                Ok(_) | Err(ZfsError::AlreadyMounted { .. }) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }

    /// Best effort after a failed rename: put back the mounts we took away. The rename's own
    /// error is what the caller needs, so failures here are only logged.
    fn remount(&self, datasets: &[DatasetName]) {
        for dataset in datasets {
            match self.exec(&command::mount(dataset)) {
                Ok(_) | Err(ZfsError::AlreadyMounted { .. }) => {}
                Err(err) => debug!(%dataset, error = %err, "could not remount after failed rename"),
            }
        }
    }

    /// Mounted file systems at and below `root`, parents before children.
    fn mounted_filesystems(&self, root: &DatasetName) -> Result<Vec<DatasetName>, ZfsError> {
        let rows = self.list(
            &ListQuery::new(["name", "mounted"])
                .types(&[DatasetType::Filesystem])
                .depth(Depth::Recursive)
                .root(root.as_str()),
        )?;
        rows.iter()
            .filter(|row| row[1] == "yes")
            .map(|row| DatasetName::new(row[0].as_str()).map_err(ZfsError::from))
            .collect()
    }

    /// Promotes a clone so it no longer depends on its origin snapshot.
    pub fn promote(&self, clone: &DatasetName) -> Result<(), ZfsError> {
        self.exec(&command::promote(clone)).map(drop)
    }

    /// Mounts a file system.
    pub fn mount(&self, name: &DatasetName) -> Result<(), ZfsError> {
        self.exec(&command::mount(name)).map(drop)
    }

    /// Unmounts a file system (`force`: even if busy).
    pub fn unmount(&self, name: &DatasetName, force: bool) -> Result<(), ZfsError> {
        self.exec(&command::unmount(name, force)).map(drop)
    }

    /// Whether the dataset exists.
    pub fn exists(&self, name: &DatasetName) -> Result<bool, ZfsError> {
        self.present(&ListQuery::new(["name"]).root(name.as_str()))
    }

    /// Whether the snapshot exists.
    pub fn snapshot_exists(&self, snapshot: &SnapshotName) -> Result<bool, ZfsError> {
        self.present(
            &ListQuery::new(["name"])
                .types(&[DatasetType::Snapshot])
                .root(snapshot.as_str()),
        )
    }

    fn present(&self, query: &ListQuery) -> Result<bool, ZfsError> {
        match self.list(query) {
            Ok(rows) => Ok(!rows.is_empty()),
            // A missing pool is as absent as a missing dataset.
            Err(err) if err.is_not_found() => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Where the file system is mounted (or would be): `None` for `none`, `legacy`, or a
    /// volume. Read with `zfs list -o mountpoint`, as Kleened does.
    pub fn mountpoint(&self, name: &DatasetName) -> Result<Option<PathBuf>, ZfsError> {
        let rows = self.list(&ListQuery::new(["mountpoint"]).root(name.as_str()))?;
        Ok(rows.first().and_then(|row| parse::mountpoint(&row[0])))
    }

    /// Where the file system is mounted now, in one command: `None` when it is not mounted (or has
    /// no mountpoint).
    pub fn mounted_at(&self, name: &DatasetName) -> Result<Option<PathBuf>, ZfsError> {
        let rows = self.list(&ListQuery::new(["mounted", "mountpoint"]).root(name.as_str()))?;
        Ok(rows
            .first()
            .filter(|row| row.len() == 2 && row[0] == "yes")
            .and_then(|row| parse::mountpoint(&row[1])))
    }

    /// Whether the file system is currently mounted.
    pub fn is_mounted(&self, name: &DatasetName) -> Result<bool, ZfsError> {
        Ok(self.get(name, "mounted")?.as_deref() == Some("yes"))
    }

    /// A property's value; `None` when zfs prints `-` (not applicable or unset user property).
    pub fn get<N: ZfsName + ?Sized>(
        &self,
        name: &N,
        property: &str,
    ) -> Result<Option<String>, ZfsError> {
        let output = self.exec(&command::get(name.zfs_name(), property))?;
        Ok(parse::value(&output.stdout_text()))
    }

    /// Sets a property.
    pub fn set(&self, name: &DatasetName, property: &str, value: &str) -> Result<(), ZfsError> {
        self.exec(&command::set(name.as_str(), property, value))
            .map(drop)
    }

    fn names(
        &self,
        query: &ListQuery,
        exclude: &DatasetName,
    ) -> Result<Vec<DatasetName>, ZfsError> {
        self.list(query)?
            .into_iter()
            .filter(|row| row[0] != exclude.as_str())
            .map(|row| DatasetName::new(row[0].as_str()).map_err(ZfsError::from))
            .collect()
    }

    /// The direct child file systems and volumes of `name`.
    pub fn children(&self, name: &DatasetName) -> Result<Vec<DatasetName>, ZfsError> {
        self.names(
            &ListQuery::new(["name"])
                .depth(Depth::Levels(1))
                .root(name.as_str()),
            name,
        )
    }

    /// All file systems and volumes below `name`, parents before children.
    pub fn descendants(&self, name: &DatasetName) -> Result<Vec<DatasetName>, ZfsError> {
        self.names(
            &ListQuery::new(["name"])
                .depth(Depth::Recursive)
                .root(name.as_str()),
            name,
        )
    }

    /// The snapshots of `name` itself (not of its descendants), oldest first.
    pub fn snapshots(&self, name: &DatasetName) -> Result<Vec<SnapshotName>, ZfsError> {
        self.list(
            &ListQuery::new(["name"])
                .types(&[DatasetType::Snapshot])
                .depth(Depth::Levels(1))
                .root(name.as_str()),
        )?
        .into_iter()
        .map(|row| SnapshotName::new(row[0].as_str()).map_err(ZfsError::from))
        .collect()
    }

    /// Every snapshot at or below `root` with the datasets cloned from it.
    ///
    /// Uses `zfs list -H -t snapshot -o name,clones -r <root>` (Kleened's query). zfs-fuse has
    /// no `clones` property; there the map is rebuilt from the `origin` of every file system
    /// and volume in the pool, and the client remembers not to try `clones` again.
    pub fn snapshots_with_clones(
        &self,
        root: &DatasetName,
    ) -> Result<Vec<SnapshotClones>, ZfsError> {
        if self.clones_column.load(Ordering::Relaxed) != CLONES_UNSUPPORTED {
            let query = ListQuery::new(["name", "clones"])
                .types(&[DatasetType::Snapshot])
                .depth(Depth::Recursive)
                .root(root.as_str());
            match self.list(&query) {
                Ok(rows) => {
                    self.clones_column
                        .store(CLONES_SUPPORTED, Ordering::Relaxed);
                    return rows
                        .iter()
                        .map(|row| {
                            Ok(SnapshotClones {
                                snapshot: SnapshotName::new(row[0].as_str())?,
                                clones: parse::clones(&row[1])
                                    .into_iter()
                                    .map(DatasetName::new)
                                    .collect::<Result<_, _>>()?,
                            })
                        })
                        .collect();
                }
                Err(ZfsError::UnknownProperty { property }) if property == "clones" => {
                    debug!("zfs has no 'clones' property; deriving clones from 'origin'");
                    self.clones_column
                        .store(CLONES_UNSUPPORTED, Ordering::Relaxed);
                }
                Err(err) => return Err(err),
            }
        }
        self.snapshots_with_clones_from_origins(root)
    }

    fn snapshots_with_clones_from_origins(
        &self,
        root: &DatasetName,
    ) -> Result<Vec<SnapshotClones>, ZfsError> {
        let snapshots = self.list(
            &ListQuery::new(["name"])
                .types(&[DatasetType::Snapshot])
                .depth(Depth::Recursive)
                .root(root.as_str()),
        )?;
        // Clones can live anywhere in the pool, not only under `root`.
        let origins = self.list(
            &ListQuery::new(["name", "origin"])
                .types(&[DatasetType::Filesystem, DatasetType::Volume])
                .depth(Depth::Recursive)
                .root(root.pool()),
        )?;
        let mut by_origin: HashMap<String, Vec<DatasetName>> = HashMap::new();
        for row in &origins {
            if let Some(origin) = parse::value(&row[1]) {
                by_origin
                    .entry(origin)
                    .or_default()
                    .push(DatasetName::new(row[0].as_str())?);
            }
        }
        snapshots
            .iter()
            .map(|row| {
                Ok(SnapshotClones {
                    snapshot: SnapshotName::new(row[0].as_str())?,
                    clones: by_origin.remove(row[0].as_str()).unwrap_or_default(),
                })
            })
            .collect()
    }

    /// The datasets that keep `name` from being destroyed with `-r` alone: clones of any
    /// snapshot at or below `name` that live outside it, and, transitively, clones of those.
    /// Works on zfs-fuse too, which has neither `clones` nor `destroy -n`.
    pub fn dependents(&self, name: &DatasetName) -> Result<Vec<DatasetName>, ZfsError> {
        let pool = DatasetName::new(name.pool())?;
        let map = self.snapshots_with_clones(&pool)?;
        let mut found: Vec<DatasetName> = Vec::new();
        let mut seen: HashSet<DatasetName> = HashSet::new();
        let mut queue: VecDeque<DatasetName> = VecDeque::from([name.clone()]);
        while let Some(tree) = queue.pop_front() {
            for entry in map.iter().filter(|e| e.snapshot.dataset().is_within(&tree)) {
                for clone in &entry.clones {
                    if !clone.is_within(name) && seen.insert(clone.clone()) {
                        found.push(clone.clone());
                        queue.push_back(clone.clone());
                    }
                }
            }
        }
        Ok(found)
    }

    /// Copies `snapshot` into the new dataset `target` with `zfs send | zfs receive`, piped
    /// directly between the two processes (no shell). The copy takes as long as the data it
    /// moves, so the pipeline's deadline is the runner's long one ([`LONG_TIMEOUT`]) rather than
    /// the default every other zfs command has.
    pub fn send_receive(
        &self,
        snapshot: &SnapshotName,
        target: &DatasetName,
    ) -> Result<(), ZfsError> {
        let producer = self
            .programs
            .command(&command::send(snapshot))
            .timeout(LONG_TIMEOUT);
        let consumer = self
            .programs
            .command(&command::receive(target, false))
            .timeout(LONG_TIMEOUT);
        self.retry.run(|| {
            let output = self.runner.run_pipe(&producer, &consumer)?;
            if output.succeeded() {
                return Ok(());
            }
            let mut argv = producer.argv();
            argv.push("|".to_owned());
            argv.extend(consumer.argv());
            // The sender's complaint ("snapshot does not exist") is the cause; the receiver's
            // ("failed to read from stream") is only its consequence, so it comes second.
            let stderr = [output.producer.stderr_text(), output.consumer.stderr_text()]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join("\n");
            let code = if output.producer.succeeded() {
                output.consumer.code
            } else {
                output.producer.code
            };
            Err(classify(&argv, code, &stderr))
        })
    }

    /// Whether the pool is imported.
    pub fn pool_exists(&self, pool: &str) -> Result<bool, ZfsError> {
        check_pool_name(pool)?;
        match self.exec(&command::zpool_list(Some(pool), &["name"])) {
            Ok(output) => Ok(!parse::single_column(&output.stdout_text()).is_empty()),
            Err(ZfsError::PoolNotFound { .. }) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Every imported pool.
    pub fn pools(&self) -> Result<Vec<PoolInfo>, ZfsError> {
        let invocation = command::zpool_list(None, &["name", "size", "health"]);
        let output = self.exec(&invocation)?;
        let rows = parse::table(&output.stdout_text(), 3).map_err(|source| ZfsError::Parse {
            argv: self.programs.command(&invocation).argv(),
            source,
        })?;
        Ok(rows
            .into_iter()
            .map(|mut row| PoolInfo {
                health: row.pop().unwrap_or_default(),
                size: row.pop().unwrap_or_default(),
                name: row.pop().unwrap_or_default(),
            })
            .collect())
    }

    /// The health, size, free space and capacity of one pool.
    pub fn pool_usage(&self, pool: &str) -> Result<PoolUsage, ZfsError> {
        check_pool_name(pool)?;
        let invocation = command::zpool_list(Some(pool), &["health", "size", "free", "capacity"]);
        let output = self.exec(&invocation)?;
        let rows = parse::table(&output.stdout_text(), 4).map_err(|source| ZfsError::Parse {
            argv: self.programs.command(&invocation).argv(),
            source,
        })?;
        let row = rows
            .into_iter()
            .next()
            .ok_or_else(|| ZfsError::PoolNotFound {
                pool: pool.to_owned(),
            })?;
        let [health, size, free, capacity]: [String; 4] =
            row.try_into().unwrap_or_else(|_| Default::default());
        Ok(PoolUsage {
            capacity_percent: capacity.trim().trim_end_matches('%').parse().ok(),
            health,
            size,
            free,
        })
    }

    /// Creates a pool on `vdevs` (devices or files), its root mounted at `mountpoint`.
    pub fn pool_create(
        &self,
        pool: &str,
        mountpoint: Option<&Path>,
        vdevs: &[&Path],
    ) -> Result<(), ZfsError> {
        check_pool_name(pool)?;
        self.exec(&command::zpool_create(pool, mountpoint, vdevs))
            .map(drop)
    }

    /// Destroys a pool and everything in it (`force`: unmount busy file systems).
    pub fn pool_destroy(&self, pool: &str, force: bool) -> Result<(), ZfsError> {
        check_pool_name(pool)?;
        self.exec(&command::zpool_destroy(pool, force)).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kleene_runner::{Recorded, RecordingRunner, Reply, DEFAULT_TIMEOUT};

    fn zfs(runner: &Arc<RecordingRunner>) -> Zfs {
        Zfs::new(runner.clone())
            .with_programs(ZfsPrograms::freebsd())
            .with_retry(RetryPolicy::none())
    }

    #[test]
    fn pool_usage_reads_health_sizes_and_capacity() {
        let runner = Arc::new(RecordingRunner::new());
        runner.push_ok("DEGRADED\t3.97G\t3.73G\t6%\n");
        runner.push_err(1, "cannot open 'nopool': no such pool\n");
        let zfs = zfs(&runner);
        let usage = zfs.pool_usage("zroot").expect("parsed");
        assert_eq!(
            usage,
            PoolUsage {
                health: "DEGRADED".into(),
                size: "3.97G".into(),
                free: "3.73G".into(),
                capacity_percent: Some(6),
            }
        );
        assert!(zfs.pool_usage("nopool").unwrap_err().is_not_found());
        assert_eq!(
            runner.lines()[0],
            "/sbin/zpool list -H -o health,size,free,capacity zroot"
        );
    }

    #[test]
    fn send_receive_has_the_long_deadline_and_other_commands_the_default() {
        let runner = Arc::new(RecordingRunner::new());
        let zfs = zfs(&runner);
        let snapshot = SnapshotName::new("p/a@s").expect("valid");
        zfs.send_receive(&snapshot, &DatasetName::new("p/b").expect("valid"))
            .expect("fake send");
        zfs.snapshot(&snapshot).expect("fake snapshot");
        let calls = runner.calls();
        let Recorded::Pipe(producer, consumer) = &calls[0] else {
            panic!("a pipeline first: {calls:?}");
        };
        assert_eq!(
            (producer.timeout, consumer.timeout),
            (LONG_TIMEOUT, LONG_TIMEOUT)
        );
        let Recorded::Run(snapshot) = &calls[1] else {
            panic!("a command second: {calls:?}");
        };
        assert_eq!(snapshot.timeout, DEFAULT_TIMEOUT);
    }

    #[test]
    fn a_killed_command_is_an_error_naming_it_and_is_not_retried() {
        let runner = Arc::new(RecordingRunner::new());
        runner.push(Reply::TimedOut);
        let zfs = Zfs::new(runner.clone()).with_programs(ZfsPrograms::freebsd());
        let err = zfs
            .destroy(
                &DatasetName::new("p/a").expect("valid"),
                DestroyFlags::recursive(),
            )
            .expect_err("scripted timeout");
        assert!(
            matches!(err, ZfsError::Run(ref run) if run.is_timeout()),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "`/sbin/zfs destroy -r p/a` did not finish in 300 s and was killed"
        );
        assert_eq!(runner.calls().len(), 1, "a timeout is not busy: no retry");
    }
}
