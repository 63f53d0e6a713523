//! Fakes that let the engine's tests run without root: a host whose `zfs` keeps datasets in
//! memory (with directories for their mountpoints), and a runtime that runs a container's
//! processes as ordinary host processes. Both record what they were asked, and both can be told
//! to fail a command, so undo paths are driven as well as the good ones.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use kleene_runner::{CommandSpec, Output, PipeOutput, RunError, Runner};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::config::TargetOs;
use crate::platform::{Host, ProcessIo, ProcessSpec, Runtime, RuntimeError, Spawned};
use crate::store::Store;

use super::{Engine, EngineParts};
use crate::layout::Layout;

/// The root every fake engine uses.
pub const ROOT: &str = "zroot/kleene";

#[derive(Debug, Clone)]
struct Dataset {
    /// The directory standing for its mountpoint (`None` for snapshots).
    mountpoint: Option<PathBuf>,
    mounted: bool,
    /// The snapshot a clone was made from.
    origin: Option<String>,
    /// When it was made, in the order of the host's datasets (snapshots are ordered by it).
    created: u64,
}

/// The next dataset's [`Dataset::created`].
fn next_created() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

#[derive(Debug, Default)]
struct HostState {
    datasets: BTreeMap<String, Dataset>,
    lines: Vec<String>,
    /// One-shot failures: the next command whose line contains the pattern prints the message.
    failures: Vec<(String, String)>,
}

/// A host whose `zfs` works on datasets kept in memory, a clone starting with its origin's files;
/// `cp` runs for real; every other command is recorded and succeeds with no output. Mountpoints
/// are directories under a temporary directory.
#[derive(Debug)]
pub struct FakeHost {
    state: Mutex<HostState>,
    dir: tempfile::TempDir,
}

fn failure(stderr: impl Into<String>) -> Output {
    Output::failure(1, stderr.into().into_bytes())
}

fn missing(name: &str) -> Output {
    failure(format!("cannot open '{name}': dataset does not exist\n"))
}

fn depth(name: &str) -> usize {
    name.matches('/').count() + usize::from(name.contains('@'))
}

impl FakeHost {
    /// A host with the pool `zroot` and the daemon's datasets below [`ROOT`].
    pub fn new() -> Arc<FakeHost> {
        let host = Arc::new(FakeHost {
            state: Mutex::new(HostState::default()),
            dir: tempfile::tempdir().expect("temporary directory"),
        });
        for name in [
            "zroot",
            ROOT,
            "zroot/kleene/image",
            "zroot/kleene/container",
            "zroot/kleene/volumes",
            "zroot/data",
        ] {
            let out = host.zfs(&["create".into(), name.into()]);
            assert!(out.succeeded(), "{}", out.stderr_text());
        }
        host.state().lines.clear();
        host
    }

    fn state(&self) -> MutexGuard<'_, HostState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every command so far, as `program args…` lines.
    pub fn lines(&self) -> Vec<String> {
        self.state().lines.clone()
    }

    /// Makes the next command whose line contains `pattern` fail, printing `stderr`.
    pub fn fail_next(&self, pattern: &str, stderr: &str) {
        self.state()
            .failures
            .push((pattern.to_owned(), stderr.to_owned()));
    }

    /// Whether a dataset or snapshot exists.
    pub fn exists(&self, name: &str) -> bool {
        self.state().datasets.contains_key(name)
    }

    /// The datasets and snapshots at or below `name`, sorted.
    pub fn below(&self, name: &str) -> Vec<String> {
        self.state()
            .datasets
            .keys()
            .filter(|n| {
                n.as_str() == name
                    || n.starts_with(&format!("{name}/"))
                    || n.starts_with(&format!("{name}@"))
            })
            .cloned()
            .collect()
    }

    /// Where the dataset `name` is mounted.
    pub fn mountpoint(&self, name: &str) -> Option<PathBuf> {
        self.state()
            .datasets
            .get(name)
            .and_then(|d| d.mountpoint.clone())
    }

    /// Makes a dataset, as a user would before `zfs-copy` or `zfs-clone`.
    pub fn create(&self, name: &str) {
        let out = self.zfs(&["create".into(), name.into()]);
        assert!(out.succeeded(), "{}", out.stderr_text());
    }

    fn record(&self, line: String) -> Option<Output> {
        let mut state = self.state();
        state.lines.push(line.clone());
        let position = state
            .failures
            .iter()
            .position(|(pattern, _)| line.contains(pattern.as_str()))?;
        let (_, stderr) = state.failures.remove(position);
        Some(failure(stderr))
    }

    /// Runs `zfs args…` on the datasets in memory.
    fn zfs(&self, args: &[String]) -> Output {
        let mut state = self.state();
        let datasets = &mut state.datasets;
        let (verb, rest) = match args.split_first() {
            Some((verb, rest)) => (verb.as_str(), rest),
            None => return failure("missing command\n"),
        };
        // `-o property=value` pairs, then the operands.
        let mut properties = HashMap::new();
        let mut flags = String::new();
        let mut operands = vec![];
        let mut iter = rest.iter();
        while let Some(arg) = iter.next() {
            match arg.as_str() {
                "-o" | "-t" | "-d" => {
                    let value = iter.next().cloned().unwrap_or_default();
                    if let Some((k, v)) = value.split_once('=') {
                        properties.insert(k.to_owned(), v.to_owned());
                    } else {
                        properties.insert(arg.clone(), value);
                    }
                }
                flag if flag.starts_with('-') => flags.push_str(&flag[1..]),
                operand => operands.push(operand.to_owned()),
            }
        }
        match verb {
            "list" => list(datasets, &properties, &flags, operands.first()),
            "get" => {
                let [property, name] = operands.as_slice() else {
                    return failure("usage: get -H -o value property name\n");
                };
                match datasets.get(name) {
                    None => missing(name),
                    Some(d) => {
                        Output::success(format!("{}\n", column(datasets, name, d, property)))
                    }
                }
            }
            "create" => {
                let [name] = operands.as_slice() else {
                    return failure("usage: create name\n");
                };
                if datasets.contains_key(name) {
                    return failure(format!("cannot create '{name}': dataset already exists\n"));
                }
                let mountpoint = match name.rsplit_once('/') {
                    None => self.dir.path().join(name),
                    Some((parent, base)) => match datasets.get(parent) {
                        None => {
                            return failure(format!(
                                "cannot create '{name}': parent does not exist\n"
                            ))
                        }
                        Some(p) => p.mountpoint.clone().unwrap_or_default().join(base),
                    },
                };
                let mountpoint = properties
                    .get("mountpoint")
                    .map(PathBuf::from)
                    .unwrap_or(mountpoint);
                std::fs::create_dir_all(&mountpoint).expect("mountpoint directory");
                datasets.insert(
                    name.clone(),
                    Dataset {
                        mountpoint: Some(mountpoint),
                        mounted: true,
                        origin: None,
                        created: next_created(),
                    },
                );
                Output::success("")
            }
            "snapshot" => {
                let [name] = operands.as_slice() else {
                    return failure("usage: snapshot dataset@name\n");
                };
                let Some((dataset, _)) = name.split_once('@') else {
                    return failure(format!("cannot create snapshot '{name}': no '@'\n"));
                };
                if !datasets.contains_key(dataset) {
                    return missing(dataset);
                }
                if datasets.contains_key(name) {
                    return failure(format!(
                        "cannot create snapshot '{name}': dataset already exists\n"
                    ));
                }
                datasets.insert(
                    name.clone(),
                    Dataset {
                        mountpoint: None,
                        mounted: false,
                        origin: None,
                        created: next_created(),
                    },
                );
                Output::success("")
            }
            "clone" => {
                let [snapshot, target] = operands.as_slice() else {
                    return failure("usage: clone snapshot target\n");
                };
                if !datasets.contains_key(snapshot) || !snapshot.contains('@') {
                    return missing(snapshot);
                }
                if datasets.contains_key(target) {
                    return failure(format!(
                        "cannot create '{target}': dataset already exists\n"
                    ));
                }
                let Some(parent) = target.rsplit_once('/').and_then(|(p, _)| datasets.get(p))
                else {
                    return failure(format!("cannot create '{target}': parent does not exist\n"));
                };
                let base = target.rsplit_once('/').map_or("", |(_, b)| b);
                let mountpoint = parent.mountpoint.clone().unwrap_or_default().join(base);
                std::fs::create_dir_all(&mountpoint).expect("mountpoint directory");
                // A clone starts with what its origin holds (now, not at the snapshot: enough
                // for tests that do not change a dataset after snapshotting it).
                let origin = snapshot.split_once('@').map_or("", |(d, _)| d);
                if let Some(from) = datasets.get(origin).and_then(|d| d.mountpoint.clone()) {
                    copy_tree(&from, &mountpoint).expect("copy the origin's files");
                }
                datasets.insert(
                    target.clone(),
                    Dataset {
                        mountpoint: Some(mountpoint),
                        mounted: true,
                        origin: Some(snapshot.clone()),
                        created: next_created(),
                    },
                );
                Output::success("")
            }
            "destroy" => {
                let [name] = operands.as_slice() else {
                    return failure("usage: destroy [-rRf] name\n");
                };
                destroy(datasets, name, flags.contains('r'), flags.contains('R'))
            }
            "promote" => {
                let [name] = operands.as_slice() else {
                    return failure("usage: promote clone\n");
                };
                promote(datasets, name)
            }
            "mount" | "unmount" => {
                let [name] = operands.as_slice() else {
                    return failure("usage: mount name\n");
                };
                match datasets.get_mut(name) {
                    None => missing(name),
                    Some(d) => {
                        d.mounted = verb == "mount";
                        Output::success("")
                    }
                }
            }
            "set" => {
                let (Some(assignment), Some(name)) = (rest.first(), rest.get(1)) else {
                    return failure("usage: set property=value name\n");
                };
                match datasets.get_mut(name) {
                    None => missing(name),
                    Some(d) => {
                        if let Some(path) = assignment.strip_prefix("mountpoint=") {
                            d.mountpoint = Some(PathBuf::from(path));
                        }
                        Output::success("")
                    }
                }
            }
            other => failure(format!("the fake zfs does not know '{other}'\n")),
        }
    }

    /// `zfs send snapshot | zfs receive target`: the target is a copy with the snapshot.
    fn send_receive(&self, snapshot: &str, target: &str) -> PipeOutput {
        let mut state = self.state();
        let datasets = &mut state.datasets;
        let ok = |o: Output| PipeOutput {
            producer: Output::success(""),
            consumer: o,
        };
        if !datasets.contains_key(snapshot) {
            return PipeOutput {
                producer: missing(snapshot),
                consumer: failure("cannot receive: failed to read from stream\n"),
            };
        }
        if datasets.contains_key(target) {
            return ok(failure(format!(
                "cannot receive new filesystem stream: destination '{target}' exists\n"
            )));
        }
        let Some(parent) = target.rsplit_once('/').and_then(|(p, _)| datasets.get(p)) else {
            return ok(missing(target));
        };
        let base = target.rsplit_once('/').map_or("", |(_, b)| b);
        let mountpoint = parent.mountpoint.clone().unwrap_or_default().join(base);
        std::fs::create_dir_all(&mountpoint).expect("mountpoint directory");
        let snap = snapshot.split_once('@').map_or("", |(_, s)| s);
        datasets.insert(
            target.to_owned(),
            Dataset {
                mountpoint: Some(mountpoint),
                mounted: true,
                origin: None,
                created: next_created(),
            },
        );
        datasets.insert(
            format!("{target}@{snap}"),
            Dataset {
                mountpoint: None,
                mounted: false,
                origin: None,
                created: next_created(),
            },
        );
        ok(Output::success(""))
    }
}

/// `zfs promote clone`: the origin's snapshots up to the clone's origin snapshot move to the
/// clone (their clones follow them), the clone takes the origin's origin, and the origin becomes
/// a clone of the clone's snapshot.
fn promote(datasets: &mut BTreeMap<String, Dataset>, name: &str) -> Output {
    let Some(origin) = datasets.get(name).map(|d| d.origin.clone()) else {
        return missing(name);
    };
    let Some(origin) = origin else {
        return failure(format!(
            "cannot promote '{name}': not a cloned filesystem\n"
        ));
    };
    let Some((parent, _)) = origin.split_once('@') else {
        return failure(format!("cannot promote '{name}': bad origin\n"));
    };
    let parent = parent.to_owned();
    let upto = datasets.get(&origin).map_or(0, |d| d.created);
    let moving: Vec<String> = datasets
        .iter()
        .filter(|(n, d)| n.split_once('@').is_some_and(|(of, _)| of == parent) && d.created <= upto)
        .map(|(n, _)| n.clone())
        .collect();
    for old in moving {
        let snap = old.split_once('@').map_or("", |(_, s)| s);
        let new = format!("{name}@{snap}");
        if let Some(d) = datasets.remove(&old) {
            datasets.insert(new.clone(), d);
        }
        for d in datasets.values_mut() {
            if d.origin.as_deref() == Some(old.as_str()) {
                d.origin = Some(new.clone());
            }
        }
    }
    let parent_origin = datasets.get(&parent).and_then(|d| d.origin.clone());
    let snap = origin.split_once('@').map_or("", |(_, s)| s);
    if let Some(d) = datasets.get_mut(&parent) {
        d.origin = Some(format!("{name}@{snap}"));
    }
    if let Some(d) = datasets.get_mut(name) {
        d.origin = parent_origin;
    }
    Output::success("")
}

/// Copies what `from` holds into `to`, links as links.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path())?, &target)?;
        } else if kind.is_dir() {
            std::fs::create_dir_all(&target)?;
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

fn is_snapshot(name: &str) -> bool {
    name.contains('@')
}

fn column(datasets: &BTreeMap<String, Dataset>, name: &str, d: &Dataset, property: &str) -> String {
    let snapshot = is_snapshot(name);
    match property {
        "name" => name.to_owned(),
        "mounted" if !snapshot => if d.mounted { "yes" } else { "no" }.to_owned(),
        "mountpoint" if !snapshot => d
            .mountpoint
            .as_ref()
            .map_or("none".to_owned(), |p| p.display().to_string()),
        "origin" => d.origin.clone().unwrap_or_else(|| "-".to_owned()),
        "clones" if snapshot => {
            let clones: Vec<&str> = datasets
                .iter()
                .filter(|(_, c)| c.origin.as_deref() == Some(name))
                .map(|(n, _)| n.as_str())
                .collect();
            if clones.is_empty() {
                "-".to_owned()
            } else {
                clones.join(",")
            }
        }
        "type" => if snapshot { "snapshot" } else { "filesystem" }.to_owned(),
        "used" | "available" | "avail" | "referenced" => "1M".to_owned(),
        _ => "-".to_owned(),
    }
}

fn list(
    datasets: &BTreeMap<String, Dataset>,
    properties: &HashMap<String, String>,
    flags: &str,
    root: Option<&String>,
) -> Output {
    let columns: Vec<&str> = properties
        .get("-o")
        .map(|c| c.split(',').collect())
        .unwrap_or_else(|| vec!["name"]);
    let types = properties.get("-t").cloned();
    let levels: Option<usize> = if flags.contains('r') {
        Some(usize::MAX)
    } else {
        properties.get("-d").and_then(|d| d.parse().ok())
    };
    if let Some(root) = root {
        if !datasets.contains_key(root) {
            return missing(root);
        }
    }
    let wanted = |name: &str| {
        let snapshot = is_snapshot(name);
        match types.as_deref() {
            Some("all") => true,
            Some(types) => types
                .split(',')
                .any(|t| (t == "snapshot") == snapshot && matches!(t, "snapshot" | "filesystem")),
            // A snapshot named as the root is listed; otherwise zfs lists file systems.
            None => !snapshot || root.is_some_and(|r| r == name),
        }
    };
    let mut out = String::new();
    for (name, d) in datasets {
        let included = match root {
            None => true,
            Some(root) if root == name => true,
            Some(root) => {
                let below =
                    name.starts_with(&format!("{root}/")) || name.starts_with(&format!("{root}@"));
                below && levels.is_some_and(|l| depth(name) - depth(root) <= l)
            }
        };
        if included && wanted(name) {
            let row: Vec<String> = columns
                .iter()
                .map(|c| column(datasets, name, d, c))
                .collect();
            out.push_str(&row.join("\t"));
            out.push('\n');
        }
    }
    Output::success(out)
}

fn destroy(
    datasets: &mut BTreeMap<String, Dataset>,
    name: &str,
    recursive: bool,
    dependents: bool,
) -> Output {
    if !datasets.contains_key(name) {
        return missing(name);
    }
    let doomed: Vec<String> = datasets
        .keys()
        .filter(|n| {
            n.as_str() == name
                || (!is_snapshot(name)
                    && (n.starts_with(&format!("{name}/")) || n.starts_with(&format!("{name}@"))))
        })
        .cloned()
        .collect();
    let children: Vec<&String> = doomed.iter().filter(|n| n.as_str() != name).collect();
    if !recursive && !children.is_empty() {
        let list: Vec<&str> = children.iter().map(|s| s.as_str()).collect();
        return failure(format!(
            "cannot destroy '{name}': filesystem has children\nuse '-r' to destroy the following datasets:\n{}\n",
            list.join("\n")
        ));
    }
    let clones: Vec<String> = datasets
        .iter()
        .filter(|(n, d)| {
            !doomed.contains(n) && d.origin.as_ref().is_some_and(|o| doomed.contains(o))
        })
        .map(|(n, _)| n.clone())
        .collect();
    if !clones.is_empty() && !dependents {
        let snapshot = datasets
            .iter()
            .find(|(n, _)| clones.contains(n))
            .and_then(|(_, d)| d.origin.clone())
            .unwrap_or_default();
        return failure(format!(
            "cannot destroy '{snapshot}': snapshot has dependent clones\nuse '-R' to destroy the following datasets:\n{}\n",
            clones.join("\n")
        ));
    }
    if dependents {
        for clone in clones {
            destroy(datasets, &clone, true, true);
        }
    }
    for name in doomed {
        if let Some(Dataset {
            mountpoint: Some(path),
            ..
        }) = datasets.remove(&name)
        {
            let _ = std::fs::remove_dir_all(path);
        }
    }
    Output::success("")
}

fn program_name(spec: &CommandSpec) -> &str {
    Path::new(&spec.program)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
}

impl Runner for FakeHost {
    fn run(&self, spec: &CommandSpec) -> Result<Output, RunError> {
        if let Some(failed) = self.record(spec.to_string()) {
            return Ok(failed);
        }
        Ok(match program_name(spec) {
            "zfs" => self.zfs(&spec.args),
            // Copies run for real: they work in the fake's directories.
            "cp" => {
                let out = std::process::Command::new("cp")
                    .args(&spec.args)
                    .output()
                    .expect("cp");
                Output {
                    code: out.status.code(),
                    stdout: out.stdout,
                    stderr: out.stderr,
                }
            }
            _ => Output::success(""),
        })
    }

    fn run_pipe(
        &self,
        producer: &CommandSpec,
        consumer: &CommandSpec,
    ) -> Result<PipeOutput, RunError> {
        if let Some(failed) = self.record(format!("{producer} | {consumer}")) {
            return Ok(PipeOutput {
                producer: Output::success(""),
                consumer: failed,
            });
        }
        match (producer.args.as_slice(), consumer.args.as_slice()) {
            ([send, snapshot], [receive, target]) if send == "send" && receive == "receive" => {
                Ok(self.send_receive(snapshot, target))
            }
            _ => Ok(PipeOutput {
                producer: failure("the fake host does not know this pipeline\n"),
                consumer: failure(""),
            }),
        }
    }
}

/// A runtime that runs a container's processes as plain host processes (in the container's
/// dataset directory, as the test's user): enough for the engine's bookkeeping of starts, execs,
/// stops and exits.
#[derive(Debug, Default)]
pub struct FakeRuntime {
    processes: Mutex<HashMap<String, Vec<u32>>>,
    started: Mutex<Vec<ProcessSpec>>,
    /// The next start fails with this host error.
    fail_start: Mutex<Option<String>>,
    cleanups: Mutex<Vec<String>>,
}

/// Whether the child `pid` (every process here is the test's own child) has not exited yet.
/// WNOWAIT leaves an exited one for its owner (tokio) to reap; one reaped already is gone.
fn alive(pid: u32) -> bool {
    use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    matches!(
        waitid(Id::Pid(Pid::from_raw(pid)), flags),
        Ok(WaitStatus::StillAlive)
    )
}

impl FakeRuntime {
    /// A runtime with nothing running.
    pub fn new() -> Arc<FakeRuntime> {
        Arc::new(FakeRuntime::default())
    }

    /// Every process spec started or executed, in order.
    pub fn started(&self) -> Vec<ProcessSpec> {
        self.started.lock().unwrap().clone()
    }

    /// Containers cleaned up, in order.
    pub fn cleanups(&self) -> Vec<String> {
        self.cleanups.lock().unwrap().clone()
    }

    /// Makes the next start fail.
    pub fn fail_next_start(&self, reason: &str) {
        *self.fail_start.lock().unwrap() = Some(reason.to_owned());
    }

    /// Starts a process of `container` directly (a container left running by an earlier daemon).
    pub fn adopt(&self, container: &str, child: &std::process::Child) {
        self.processes
            .lock()
            .unwrap()
            .entry(container.to_owned())
            .or_default()
            .push(child.id());
    }

    fn spawn(&self, spec: &ProcessSpec) -> Result<Spawned, RuntimeError> {
        if spec.tty {
            return Err(RuntimeError::Invalid(
                "the fake runtime has no terminals".into(),
            ));
        }
        let (program, args) = spec
            .cmd
            .split_first()
            .ok_or_else(|| RuntimeError::Invalid("no command".into()))?;
        let mut command = tokio::process::Command::new(program);
        command
            .args(args)
            .env_clear()
            .envs(spec.env.iter().filter_map(|e| e.split_once('=')))
            .current_dir(&spec.rootfs)
            .kill_on_drop(true);
        let io =
            ProcessIo::pipes_for(&mut command).map_err(|e| RuntimeError::Host(e.to_string()))?;
        let child = command
            .spawn()
            .map_err(|e| RuntimeError::Invalid(format!("cannot run {program}: {e}")))?;
        let pid = child.id().expect("a started child has a PID");
        self.processes
            .lock()
            .unwrap()
            .entry(spec.container_id.clone())
            .or_default()
            .push(pid);
        self.started.lock().unwrap().push(spec.clone());
        Ok(Spawned {
            child,
            io,
            interfaces: vec![],
        })
    }

    fn pids(&self, container: &str) -> Vec<u32> {
        let mut processes = self.processes.lock().unwrap();
        let pids = processes.entry(container.to_owned()).or_default();
        pids.retain(|pid| alive(*pid));
        pids.clone()
    }
}

impl Runtime for FakeRuntime {
    fn start(&self, spec: &ProcessSpec) -> Result<Spawned, RuntimeError> {
        if let Some(reason) = self.fail_start.lock().unwrap().take() {
            return Err(RuntimeError::Host(reason));
        }
        if !self.pids(&spec.container_id).is_empty() {
            return Err(RuntimeError::Invalid("already running".into()));
        }
        self.spawn(spec)
    }

    fn exec(&self, spec: &ProcessSpec) -> Result<Spawned, RuntimeError> {
        if self.pids(&spec.container_id).is_empty() {
            return Err(RuntimeError::Invalid("container not running".into()));
        }
        self.spawn(spec)
    }

    fn is_running(&self, container_id: &str) -> Result<bool, RuntimeError> {
        Ok(!self.pids(container_id).is_empty())
    }

    fn jid(&self, container_id: &str) -> Option<i64> {
        self.pids(container_id).first().map(|&pid| i64::from(pid))
    }

    fn running(&self) -> Result<Vec<String>, RuntimeError> {
        let ids: Vec<String> = self.processes.lock().unwrap().keys().cloned().collect();
        Ok(ids
            .into_iter()
            .filter(|id| !self.pids(id).is_empty())
            .collect())
    }

    fn stop(&self, container_id: &str, grace: Duration) -> Result<(), RuntimeError> {
        let mut signal = Signal::SIGTERM;
        let deadline = Instant::now() + grace;
        loop {
            let pids = self.pids(container_id);
            if pids.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                signal = Signal::SIGKILL;
            }
            for pid in pids {
                if let Ok(pid) = i32::try_from(pid) {
                    let _ = kill(Pid::from_raw(pid), signal);
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn cleanup(&self, container_id: &str) -> Result<(), RuntimeError> {
        self.cleanups.lock().unwrap().push(container_id.to_owned());
        Ok(())
    }

    fn update(
        &self,
        _container_id: &str,
        _network: kleene_api::NetworkDriver,
        _jail_params: &[String],
    ) -> Result<(), RuntimeError> {
        Ok(())
    }
}

/// An engine over a fake host and a fake runtime, with an empty store.
pub fn engine() -> (Arc<Engine>, Arc<FakeHost>, Arc<FakeRuntime>) {
    engine_over(
        Store::open_in_memory().expect("store"),
        FakeHost::new(),
        FakeRuntime::new(),
    )
}

/// An engine over `store`, `host` and `runtime` (a daemon started again over the same state).
pub fn engine_over(
    store: Store,
    host: Arc<FakeHost>,
    runtime: Arc<FakeRuntime>,
) -> (Arc<Engine>, Arc<FakeHost>, Arc<FakeRuntime>) {
    let runner: Arc<dyn Runner> = host.clone();
    let engine = Engine::new(EngineParts {
        store,
        zfs: zfs::Zfs::new(runner.clone()).with_retry(zfs::RetryPolicy::none()),
        layout: Layout::new(ROOT).expect("valid root"),
        host: Host::new(runner, TargetOs::Linux),
        runtime: Some(runtime.clone()),
        network: None,
        containers_mountpoint: host.mountpoint("zroot/kleene/container"),
        root_mountpoint: host.mountpoint(ROOT),
        logs: crate::engine::logs::LogConfig {
            dir: host.dir.path().join("logs"),
            max_size: crate::engine::logs::LogConfig::DEFAULT_MAX_SIZE,
            max_files: crate::engine::logs::LogConfig::DEFAULT_MAX_FILES,
        },
        storage: Default::default(),
    })
    .expect("engine");
    // A removal hands a busy dataset to the reaper sooner than the daemon's 5 s.
    engine
        .reaper
        .shorten_remove_deadline(Duration::from_millis(200));
    engine.start_reaper();
    (engine, host, runtime)
}

/// Waits (at most 10 s) until the reaper destroyed every dataset it was given.
pub async fn settle(engine: &Engine) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while engine.reaper.len() > 0 {
        assert!(Instant::now() < deadline, "the reaper did not finish");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
