//! The host's view of what containers leave or use: mounts below a path, jails (FreeBSD),
//! processes by command line, cgroups and where their hierarchies are mounted, and the peak
//! memory of a process. Also the removal of a daemon's leftover cgroups.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

#[cfg(target_os = "freebsd")]
use crate::output::ok_for;
use crate::wait::eventually;

/// Where the v1 `pids` hierarchy is mounted, if it is.
pub fn cgroup_v1_pids_mount() -> Option<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let point = left.split_whitespace().nth(4)?;
        let mut fields = right.split_whitespace();
        (fields.next() == Some("cgroup") && fields.nth(1)?.split(',').any(|o| o == "pids"))
            .then(|| PathBuf::from(point))
    })
}

/// Where cgroup v2 is mounted (or the v1 `pids` hierarchy), as the daemon finds it.
pub fn cgroup_mount() -> Option<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mut pids = None;
    for line in mountinfo.lines() {
        let (left, right) = line.split_once(" - ")?;
        let point = left.split_whitespace().nth(4)?;
        let mut fields = right.split_whitespace();
        match (fields.next(), fields.nth(1)) {
            (Some("cgroup2"), _) => return Some(PathBuf::from(point)),
            (Some("cgroup"), Some(options)) if options.split(',').any(|o| o == "pids") => {
                pids = Some(PathBuf::from(point))
            }
            _ => {}
        }
    }
    pids
}

/// Kills every process in the cgroup tree at `root` and removes its cgroups, deepest first.
pub(crate) fn remove_cgroup_tree(root: &Path) {
    let mut dirs = vec![];
    let mut pending = vec![root.to_owned()];
    while let Some(dir) = pending.pop() {
        if let Ok(entries) = std::fs::read_dir(&dir) {
            pending.extend(
                entries
                    .filter_map(Result::ok)
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path()),
            );
        }
        dirs.push(dir);
    }
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    let deadline = Instant::now() + Duration::from_secs(5);
    for dir in &dirs {
        if std::fs::write(dir.join("cgroup.kill"), "1").is_err() {
            let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
            for pid in procs.lines() {
                let _ = Command::new("kill").args(["-KILL", pid.trim()]).status();
            }
        }
        let _removed = eventually(deadline.saturating_duration_since(Instant::now()), || {
            !dir.exists() || std::fs::remove_dir(dir).is_ok()
        });
    }
}

/// Host mounts below `path` that are not ZFS datasets (leftovers of container starts), each as
/// `<fstype> <mountpoint>`.
#[cfg(not(target_os = "freebsd"))]
pub fn stray_mounts(path: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let point = left.split_whitespace().nth(4)?;
            let fstype = right.split_whitespace().next()?;
            (point.starts_with(path) && !matches!(fstype, "fuse.zfs" | "zfs"))
                .then(|| format!("{fstype} {point}"))
        })
        .collect()
}

/// Host mounts below `path` that are not ZFS datasets (a jail's devfs, nullfs mounts), each as
/// `<fstype> <mountpoint>`, from mount(8) `-p` (fstab format: device, mountpoint, type, ...).
#[cfg(target_os = "freebsd")]
pub fn stray_mounts(path: &str) -> Vec<String> {
    freebsd::mounts_under(path).unwrap_or_else(|err| panic!("{err}"))
}

/// Jails whose root is at or below `path`, each as `<name> <path>` from jls(8) (FreeBSD).
#[cfg(target_os = "freebsd")]
pub fn jails_under(path: &str) -> Vec<String> {
    freebsd::jails_under(path).unwrap_or_else(|err| panic!("{err}"))
}

/// The host's view of jails and mounts, without panics (also used while dropping a daemon).
#[cfg(target_os = "freebsd")]
pub(crate) mod freebsd {
    use std::process::Command;

    fn run(program: &str, args: &[&str]) -> Result<String, String> {
        let out = Command::new(program)
            .args(args)
            .output()
            .map_err(|e| format!("cannot run {program}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "{program} {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub(crate) fn mounts_under(path: &str) -> Result<Vec<String>, String> {
        Ok(run("/sbin/mount", &["-p"])?
            .lines()
            .filter_map(|line| {
                let mut fields = line.split_whitespace();
                let (_, point, fstype) = (fields.next()?, fields.next()?, fields.next()?);
                (point.starts_with(path) && fstype != "zfs").then(|| format!("{fstype} {point}"))
            })
            .collect())
    }

    pub(crate) fn jails_under(path: &str) -> Result<Vec<String>, String> {
        let below = format!("{}/", path.trim_end_matches('/'));
        Ok(run("/usr/sbin/jls", &["name", "path"])?
            .lines()
            .filter(|line| {
                line.split_once(' ')
                    .is_some_and(|(_, root)| root == path || root.starts_with(&below))
            })
            .map(str::to_owned)
            .collect())
    }
}

/// The peak resident set size of a process in KiB: `VmHWM` from `/proc/<pid>/status`.
#[cfg(not(target_os = "freebsd"))]
pub fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in status");
    line.split_whitespace()
        .nth(1)
        .and_then(|kib| kib.parse().ok())
        .expect("VmHWM in kB")
}

/// The peak resident set size of a process in KiB: the "maximum RSS" that procstat(1) `-r`
/// prints from the process's resource usage, e.g. `21344 KB` or `9.5 MB`.
#[cfg(target_os = "freebsd")]
pub fn peak_rss_kib(pid: u32) -> u64 {
    let out = Command::new("/usr/bin/procstat")
        .args(["-r", &pid.to_string()])
        .output()
        .expect("run procstat");
    let text = ok_for("procstat -r", &out);
    let value = text
        .lines()
        .find_map(|line| {
            line.split_once("maximum RSS")
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| panic!("no maximum RSS in procstat -r:\n{text}"));
    parse_size_kib(&value).unwrap_or_else(|| panic!("cannot read maximum RSS '{value}'"))
}

/// `12345 KB`, `9.5 MB`, `512 B`, `1.2G` (humanize_number(3) with the suffix `B`) in KiB.
pub fn parse_size_kib(text: &str) -> Option<u64> {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let split = compact
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(compact.len());
    let (number, unit) = compact.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor = match unit.trim_end_matches('B') {
        "" if unit == "B" => 1.0 / 1024.0,
        "" | "K" => 1.0,
        "M" => 1024.0,
        "G" => 1024.0 * 1024.0,
        _ => return None,
    };
    Some((number * factor).ceil() as u64)
}

/// Processes whose command line mentions `needle`, from ps(1) (FreeBSD mounts no /proc).
#[cfg(target_os = "freebsd")]
pub fn processes_with(needle: &str) -> Vec<String> {
    let out = Command::new("/bin/ps")
        .args(["-ax", "-ww", "-o", "pid=", "-o", "args="])
        .output()
        .expect("run ps");
    ok_for("ps", &out)
        .lines()
        .map(str::trim)
        .filter(|line| line.contains(needle))
        .map(str::to_owned)
        .collect()
}

/// Processes whose command line mentions `needle`.
#[cfg(not(target_os = "freebsd"))]
pub fn processes_with(needle: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .chars()
                .all(|c| c.is_ascii_digit())
        })
        .filter_map(|e| {
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            text.contains(needle)
                .then(|| format!("{} {text}", e.file_name().to_string_lossy()))
        })
        .collect()
}

/// The host PID of the process whose command line is exactly `cmdline` (NUL-separated), waiting
/// up to 20 s for it to appear.
pub fn host_pid_of(cmdline: &str) -> u32 {
    eventually(Duration::from_secs(20), || {
        std::fs::read_dir("/proc")
            .expect("read /proc")
            .flatten()
            .filter_map(|entry| entry.file_name().to_string_lossy().parse::<u32>().ok())
            .find(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == cmdline.as_bytes())
            })
    })
    .unwrap_or_else(|| panic!("no process {cmdline:?}"))
}

#[cfg(test)]
mod tests {
    use super::parse_size_kib;

    #[test]
    fn procstat_sizes_read_as_kib() {
        assert_eq!(parse_size_kib("21344 KB"), Some(21344));
        assert_eq!(parse_size_kib("9.5 MB"), Some(9728));
        assert_eq!(parse_size_kib("21M"), Some(21504));
        assert_eq!(parse_size_kib("1.0 GB"), Some(1048576));
        assert_eq!(parse_size_kib("2048 B"), Some(2));
        assert_eq!(parse_size_kib("12 parsecs"), None);
    }
}
