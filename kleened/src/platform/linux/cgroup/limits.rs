//! Resource limits as cgroup files: which controller enforces which limit, where each controller
//! lives on this host ([`LimitHomes`]: v2 when offered, else its v1 hierarchy), and the files and
//! values a limit becomes.

use std::path::{Path, PathBuf};

use super::{write, CgroupError};
use crate::platform::runtime::Limits;

/// A resource controller the daemon limits containers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Controller {
    /// Memory (`memory.max`; v1 `memory.limit_in_bytes`).
    Memory,
    /// Processes and threads (`pids.max`).
    Pids,
    /// CPU bandwidth (`cpu.max`; v1 `cpu.cfs_quota_us`).
    Cpu,
}

impl Controller {
    /// Every controller, in the order limits are written.
    pub const ALL: [Controller; 3] = [Controller::Memory, Controller::Pids, Controller::Cpu];

    /// The controller's kernel name.
    pub fn name(self) -> &'static str {
        match self {
            Controller::Memory => "memory",
            Controller::Pids => "pids",
            Controller::Cpu => "cpu",
        }
    }

    /// What the limit is called in the API, for messages.
    pub(super) fn limit(self) -> &'static str {
        match self {
            Controller::Memory => "memory limit",
            Controller::Pids => "pids limit",
            Controller::Cpu => "cpus limit",
        }
    }
}

/// Where a controller's limits of a container are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitHome {
    /// In the container's own cgroup of the unified hierarchy.
    V2,
    /// In the cgroup named after the container in this directory of the controller's v1
    /// hierarchy (the daemon's parent there).
    V1(PathBuf),
}

/// Where each controller's limits are written; `None` where no hierarchy has the controller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LimitHomes {
    /// The memory controller.
    pub memory: Option<LimitHome>,
    /// The pids controller.
    pub pids: Option<LimitHome>,
    /// The cpu controller.
    pub cpu: Option<LimitHome>,
}

impl LimitHomes {
    /// The home of `controller`.
    pub fn of(&self, controller: Controller) -> Option<&LimitHome> {
        match controller {
            Controller::Memory => self.memory.as_ref(),
            Controller::Pids => self.pids.as_ref(),
            Controller::Cpu => self.cpu.as_ref(),
        }
    }

    pub(super) fn set(&mut self, controller: Controller, home: Option<LimitHome>) {
        match controller {
            Controller::Memory => self.memory = home,
            Controller::Pids => self.pids = home,
            Controller::Cpu => self.cpu = home,
        }
    }

    /// The v1 parent directories, each once.
    pub fn v1_parents(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = Controller::ALL
            .iter()
            .filter_map(|c| match self.of(*c) {
                Some(LimitHome::V1(dir)) => Some(dir.clone()),
                _ => None,
            })
            .collect();
        dirs.sort();
        dirs.dedup();
        dirs
    }
}

/// One file write that sets a limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitFile {
    /// The file, in the container's cgroup of the controller's hierarchy.
    pub name: &'static str,
    /// What is written.
    pub value: String,
    /// Written only where the kernel has the file (swap accounting may be off).
    pub optional: bool,
}

/// The period of the CPU bandwidth limit, in microseconds (the kernel's default).
pub const CPU_PERIOD_US: u64 = 100_000;

/// The files that set `controller`'s limit from `limits` in a cgroup of `v2` or a v1 hierarchy,
/// in the order they are written (pure). A limit of `None` writes "no limit", so an update can
/// lift one. Swap counts against the memory limit: a container never swaps to exceed it.
pub fn limit_files(controller: Controller, v2: bool, limits: &Limits) -> Vec<LimitFile> {
    let file = |name, value: String, optional| LimitFile {
        name,
        value,
        optional,
    };
    match (controller, v2) {
        (Controller::Memory, true) => vec![
            file(
                "memory.max",
                limits.memory.map_or("max".into(), |b| b.to_string()),
                false,
            ),
            file(
                "memory.swap.max",
                if limits.memory.is_some() { "0" } else { "max" }.into(),
                true,
            ),
        ],
        (Controller::Memory, false) => {
            let value = limits.memory.map_or("-1".into(), |b| b.to_string());
            vec![
                file("memory.limit_in_bytes", value.clone(), false),
                file("memory.memsw.limit_in_bytes", value, true),
            ]
        }
        (Controller::Pids, _) => vec![file(
            "pids.max",
            limits.pids.map_or("max".into(), |n| n.to_string()),
            false,
        )],
        (Controller::Cpu, true) => vec![file(
            "cpu.max",
            match limits.cpu_percent {
                Some(percent) => format!("{} {CPU_PERIOD_US}", cpu_quota_us(percent)),
                None => format!("max {CPU_PERIOD_US}"),
            },
            false,
        )],
        (Controller::Cpu, false) => vec![
            file("cpu.cfs_period_us", CPU_PERIOD_US.to_string(), false),
            file(
                "cpu.cfs_quota_us",
                limits
                    .cpu_percent
                    .map_or("-1".into(), |p| cpu_quota_us(p).to_string()),
                false,
            ),
        ],
    }
}

/// The CPU time per [`CPU_PERIOD_US`] of `percent` of one CPU.
fn cpu_quota_us(percent: u32) -> u64 {
    u64::from(percent) * CPU_PERIOD_US / 100
}

/// Whether `controller`'s limit is set in `limits`.
pub(super) fn asked(controller: Controller, limits: &Limits) -> bool {
    match controller {
        Controller::Memory => limits.memory.is_some(),
        Controller::Pids => limits.pids.is_some(),
        Controller::Cpu => limits.cpu_percent.is_some(),
    }
}

/// The number after `key ` in a flat-keyed cgroup file (`memory.events`, `memory.oom_control`).
pub fn keyed_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (name, value) = line.split_once(' ')?;
        (name == key).then(|| value.trim().parse().ok()).flatten()
    })
}

/// Writes `controller`'s limit files into the cgroup `dir`. In v1, `memory.memsw.limit_in_bytes`
/// may never be below `memory.limit_in_bytes`, so a raise that the kernel refuses in one order
/// is written in the other.
pub(super) fn write_limits(
    dir: &Path,
    controller: Controller,
    v2: bool,
    limits: &Limits,
) -> Result<(), CgroupError> {
    let files = limit_files(controller, v2, limits);
    let write_all = |files: &[LimitFile]| -> Result<(), CgroupError> {
        for file in files {
            let path = dir.join(file.name);
            if file.optional && !path.exists() {
                continue;
            }
            write(&path, &file.value)?;
        }
        Ok(())
    };
    match write_all(&files) {
        Err(CgroupError::Write { source, .. })
            if controller == Controller::Memory
                && !v2
                && source.raw_os_error() == Some(nix::libc::EINVAL) =>
        {
            let reversed: Vec<LimitFile> = files.into_iter().rev().collect();
            write_all(&reversed)
        }
        other => other,
    }
}
