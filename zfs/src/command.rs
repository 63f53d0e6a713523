//! Pure argv builders: one function per zfs(8)/zpool(8) operation.
//!
//! Nothing here runs anything. Each function returns an [`Invocation`] (which tool, which
//! arguments); the client prefixes the configured program path and hands it to the runner.
//! Keeping construction pure lets the golden tests pin every command line exactly.
//!
//! Portability rules, because the same lines must work on OpenZFS (FreeBSD 13/14, Linux) and
//! on zfs-fuse 0.7 (pool version 23, a 2010-era CLI):
//! - never `-p` (parsable numbers): zfs-fuse answers "invalid option 'p'";
//! - one flag per argument (`-r -f`, not `-rf`), which every getopt accepts and reads clearly;
//! - no `zfs rename -f`, `zfs send -v` or other flags zfs-fuse lacks; the dry-run destroy
//!   (`-n -v`) is OpenZFS-only and the client does not depend on it.

use std::path::Path;

use crate::name::{DatasetName, SnapshotName};

/// Which of the two tools an invocation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// zfs(8): datasets, snapshots, properties.
    Zfs,
    /// zpool(8): pools.
    Zpool,
}

/// A tool and its arguments, without the program path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// The tool to run.
    pub tool: Tool,
    /// Arguments after the program.
    pub args: Vec<String>,
}

impl Invocation {
    fn zfs<I: IntoIterator<Item = S>, S: Into<String>>(args: I) -> Self {
        Invocation {
            tool: Tool::Zfs,
            args: args.into_iter().map(Into::into).collect(),
        }
    }

    fn zpool<I: IntoIterator<Item = S>, S: Into<String>>(args: I) -> Self {
        Invocation {
            tool: Tool::Zpool,
            args: args.into_iter().map(Into::into).collect(),
        }
    }
}

/// A `property=value` pair given to `create` or `clone` with `-o`.
pub type Property<'a> = (&'a str, &'a str);

fn push_properties(args: &mut Vec<String>, properties: &[Property<'_>]) {
    for (name, value) in properties {
        args.push("-o".to_owned());
        args.push(format!("{name}={value}"));
    }
}

/// Flags for `zfs destroy`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DestroyFlags {
    /// `-r`: also destroy children (descendant datasets and snapshots).
    pub recursive: bool,
    /// `-R`: also destroy all dependents, including clones outside the hierarchy.
    pub recursive_dependents: bool,
    /// `-f`: force-unmount mounted file systems first.
    pub force: bool,
}

impl DestroyFlags {
    /// `-r`.
    pub fn recursive() -> Self {
        DestroyFlags {
            recursive: true,
            ..DestroyFlags::default()
        }
    }

    /// `-r -f`, what Kleened uses for containers.
    pub fn recursive_force() -> Self {
        DestroyFlags {
            recursive: true,
            force: true,
            ..DestroyFlags::default()
        }
    }

    /// `-f`, what Kleened uses for volumes and snapshots.
    pub fn force() -> Self {
        DestroyFlags {
            force: true,
            ..DestroyFlags::default()
        }
    }
}

/// The kinds of dataset `zfs list -t` can select.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatasetType {
    /// `filesystem`
    Filesystem,
    /// `volume`
    Volume,
    /// `snapshot`
    Snapshot,
    /// `all`
    All,
}

impl DatasetType {
    /// The word zfs(8) uses.
    pub fn as_str(self) -> &'static str {
        match self {
            DatasetType::Filesystem => "filesystem",
            DatasetType::Volume => "volume",
            DatasetType::Snapshot => "snapshot",
            DatasetType::All => "all",
        }
    }
}

/// How far below the named root `zfs list` descends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Depth {
    /// Only the named dataset (no flag).
    #[default]
    Exact,
    /// `-d N`: N levels below the root (for snapshots, `-d 1` means the root's own snapshots).
    Levels(u32),
    /// `-r`: everything below.
    Recursive,
}

/// A `zfs list -H` query: always scripted mode (`-H`: no header, tab-separated columns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// `-t` types; empty means zfs's default (filesystems and volumes).
    pub types: Vec<DatasetType>,
    /// `-o` columns, in output order.
    pub columns: Vec<String>,
    /// Recursion.
    pub depth: Depth,
    /// The dataset to list from; `None` lists every pool.
    pub root: Option<String>,
}

impl ListQuery {
    /// A query for `columns` of every dataset, with default types and no recursion.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(columns: I) -> Self {
        ListQuery {
            types: Vec::new(),
            columns: columns.into_iter().map(Into::into).collect(),
            depth: Depth::Exact,
            root: None,
        }
    }

    /// Restricts the query to `types`.
    #[must_use]
    pub fn types(mut self, types: &[DatasetType]) -> Self {
        self.types = types.to_vec();
        self
    }

    /// Sets the recursion.
    #[must_use]
    pub fn depth(mut self, depth: Depth) -> Self {
        self.depth = depth;
        self
    }

    /// Lists from `root` (a dataset or snapshot name).
    #[must_use]
    pub fn root(mut self, root: impl Into<String>) -> Self {
        self.root = Some(root.into());
        self
    }
}

/// zfs-create(8): `zfs create [-o property=value]… filesystem`.
pub fn create(name: &DatasetName, properties: &[Property<'_>]) -> Invocation {
    let mut args = vec!["create".to_owned()];
    push_properties(&mut args, properties);
    args.push(name.to_string());
    Invocation::zfs(args)
}

/// zfs-snapshot(8): `zfs snapshot dataset@snapname`.
pub fn snapshot(snapshot: &SnapshotName) -> Invocation {
    Invocation::zfs(["snapshot", snapshot.as_str()])
}

/// zfs-clone(8): `zfs clone [-o property=value]… snapshot filesystem`.
pub fn clone(
    snapshot: &SnapshotName,
    target: &DatasetName,
    properties: &[Property<'_>],
) -> Invocation {
    let mut args = vec!["clone".to_owned()];
    push_properties(&mut args, properties);
    args.push(snapshot.to_string());
    args.push(target.to_string());
    Invocation::zfs(args)
}

fn destroy_args(target: &str, flags: DestroyFlags, dry_run: bool) -> Invocation {
    let mut args = vec!["destroy"];
    if flags.recursive {
        args.push("-r");
    }
    if flags.recursive_dependents {
        args.push("-R");
    }
    if flags.force {
        args.push("-f");
    }
    if dry_run {
        // -v makes the dry run say what it would destroy; without it -n prints nothing.
        args.extend(["-n", "-v"]);
    }
    args.push(target);
    Invocation::zfs(args)
}

/// zfs-destroy(8): `zfs destroy [-rRf] filesystem|volume`.
pub fn destroy(name: &DatasetName, flags: DestroyFlags) -> Invocation {
    destroy_args(name.as_str(), flags, false)
}

/// zfs-destroy(8): `zfs destroy [-rRf] filesystem|volume@snap`.
pub fn destroy_snapshot(snapshot: &SnapshotName, flags: DestroyFlags) -> Invocation {
    destroy_args(snapshot.as_str(), flags, false)
}

/// zfs-destroy(8): `zfs destroy [-rRf] -n -v filesystem|volume`, a dry run printing
/// `would destroy <name>` per dataset. OpenZFS only: zfs-fuse answers "invalid option 'n'".
pub fn destroy_dry_run(name: &DatasetName, flags: DestroyFlags) -> Invocation {
    destroy_args(name.as_str(), flags, true)
}

/// zfs-rename(8): `zfs rename filesystem filesystem`.
pub fn rename(from: &DatasetName, to: &DatasetName) -> Invocation {
    Invocation::zfs(["rename", from.as_str(), to.as_str()])
}

/// zfs-promote(8): `zfs promote clone-filesystem`.
pub fn promote(clone: &DatasetName) -> Invocation {
    Invocation::zfs(["promote", clone.as_str()])
}

/// zfs-list(8): `zfs list -H [-t type[,type]…] -o property[,property]… [-r|-d depth] [root]`.
pub fn list(query: &ListQuery) -> Invocation {
    let mut args = vec!["list".to_owned(), "-H".to_owned()];
    if !query.types.is_empty() {
        args.push("-t".to_owned());
        let types: Vec<&str> = query.types.iter().map(|t| t.as_str()).collect();
        args.push(types.join(","));
    }
    args.push("-o".to_owned());
    args.push(query.columns.join(","));
    match query.depth {
        Depth::Exact => {}
        Depth::Levels(n) => {
            args.push("-d".to_owned());
            args.push(n.to_string());
        }
        Depth::Recursive => args.push("-r".to_owned()),
    }
    if let Some(root) = &query.root {
        args.push(root.clone());
    }
    Invocation::zfs(args)
}

/// zfs-get(8): `zfs get -H -o value property dataset`: one property's value, nothing else.
pub fn get(name: &str, property: &str) -> Invocation {
    Invocation::zfs(["get", "-H", "-o", "value", property, name])
}

/// zfs-set(8): `zfs set property=value dataset`.
pub fn set(name: &str, property: &str, value: &str) -> Invocation {
    Invocation::zfs([
        "set".to_owned(),
        format!("{property}={value}"),
        name.to_owned(),
    ])
}

/// zfs-mount(8): `zfs mount filesystem`.
pub fn mount(name: &DatasetName) -> Invocation {
    Invocation::zfs(["mount", name.as_str()])
}

/// zfs-unmount(8): `zfs unmount [-f] filesystem`.
pub fn unmount(name: &DatasetName, force: bool) -> Invocation {
    let mut args = vec!["unmount"];
    if force {
        args.push("-f");
    }
    args.push(name.as_str());
    Invocation::zfs(args)
}

/// zfs-send(8): `zfs send snapshot`, the producer side of a copy.
pub fn send(snapshot: &SnapshotName) -> Invocation {
    Invocation::zfs(["send", snapshot.as_str()])
}

/// zfs-receive(8): `zfs receive [-F] filesystem`, the consumer side of a copy.
pub fn receive(target: &DatasetName, force: bool) -> Invocation {
    let mut args = vec!["receive"];
    if force {
        args.push("-F");
    }
    args.push(target.as_str());
    Invocation::zfs(args)
}

/// zpool-list(8): `zpool list -H -o property[,property]… [pool]`.
pub fn zpool_list(pool: Option<&str>, columns: &[&str]) -> Invocation {
    let mut args = vec!["list".to_owned(), "-H".to_owned(), "-o".to_owned()];
    args.push(columns.join(","));
    if let Some(pool) = pool {
        args.push(pool.to_owned());
    }
    Invocation::zpool(args)
}

/// zpool-create(8): `zpool create [-m mountpoint] pool vdev…`.
pub fn zpool_create(pool: &str, mountpoint: Option<&Path>, vdevs: &[&Path]) -> Invocation {
    let mut args = vec!["create".to_owned()];
    if let Some(mountpoint) = mountpoint {
        args.push("-m".to_owned());
        args.push(mountpoint.display().to_string());
    }
    args.push(pool.to_owned());
    args.extend(vdevs.iter().map(|v| v.display().to_string()));
    Invocation::zpool(args)
}

/// zpool-destroy(8): `zpool destroy [-f] pool`.
pub fn zpool_destroy(pool: &str, force: bool) -> Invocation {
    let mut args = vec!["destroy"];
    if force {
        args.push("-f");
    }
    args.push(pool);
    Invocation::zpool(args)
}
