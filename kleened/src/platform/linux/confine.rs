//! Confining a container's process before it runs the container's code: what the process may do
//! (capabilities), which system calls it may make ([`super::seccomp`]), and that no process of
//! the container may look into it while it still runs the daemon's binary (not dumpable, so
//! `/proc/<pid>/exe`, `environ` and ptrace are closed to the container until the exec).

use caps::{CapSet, Capability, CapsHashSet};
use serde::{Deserialize, Serialize};

use super::params::{mask, LinuxParams};
use super::seccomp;

/// How a container's processes are confined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confinement {
    /// The capabilities its root has (the bounding set of every process).
    pub capabilities: Vec<Capability>,
    /// Whether the system-call filter is installed.
    pub seccomp: bool,
}

impl From<&LinuxParams> for Confinement {
    fn from(params: &LinuxParams) -> Confinement {
        Confinement {
            capabilities: params.capabilities.clone(),
            seccomp: params.seccomp,
        }
    }
}

fn caps_error(what: &str) -> impl Fn(caps::errors::CapsError) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// A capability set line of `/proc/self/status` (`CapBnd:\t00000000a00405fb`).
fn status_mask(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
}

/// Confines the calling process (and what it will start): not dumpable, the bounding set reduced
/// to the container's capabilities, the system-call filter installed (while `CAP_SYS_ADMIN` is
/// still held, see [`seccomp::install`]), then the permitted and effective sets reduced and the
/// inheritable and ambient ones emptied. Checks the result in `/proc/self/status`: a capability
/// this build does not know of (a newer kernel's) fails the start instead of being kept.
pub fn apply(confinement: &Confinement) -> Result<(), String> {
    nix::sys::prctl::set_dumpable(false).map_err(|e| format!("PR_SET_DUMPABLE: {e}"))?;
    let keep: CapsHashSet = confinement.capabilities.iter().copied().collect();
    for capability in caps::all() {
        if !keep.contains(&capability)
            && caps::has_cap(None, CapSet::Bounding, capability).unwrap_or(true)
        {
            caps::drop(None, CapSet::Bounding, capability)
                .map_err(caps_error("cannot reduce the bounding set"))?;
        }
    }
    if confinement.seccomp {
        for program in seccomp::programs()? {
            seccomp::install(&program)?;
        }
    }
    caps::clear(None, CapSet::Ambient).map_err(caps_error("cannot clear the ambient set"))?;
    caps::clear(None, CapSet::Inheritable)
        .map_err(caps_error("cannot clear the inheritable set"))?;
    caps::set(None, CapSet::Effective, &keep)
        .map_err(caps_error("cannot reduce the effective set"))?;
    caps::set(None, CapSet::Permitted, &keep)
        .map_err(caps_error("cannot reduce the permitted set"))?;
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("cannot check the capabilities (/proc/self/status): {e}"))?;
    let wanted = mask(&confinement.capabilities);
    for field in ["CapBnd", "CapPrm", "CapEff"] {
        let found = status_mask(&status, field);
        if found != Some(wanted) {
            return Err(format!(
                "{field} is {} instead of {wanted:016x} after confinement",
                found.map_or("unreadable".to_owned(), |m| format!("{m:016x}"))
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_lines_of_proc_status_are_read() {
        let status = "Name:\tsh\nCapInh:\t0000000000000000\nCapBnd:\t00000000a00405fb\n";
        assert_eq!(status_mask(status, "CapBnd"), Some(0xa004_05fb));
        assert_eq!(status_mask(status, "CapInh"), Some(0));
        assert_eq!(status_mask(status, "CapEff"), None);
    }

    #[test]
    fn the_confinement_travels_as_json() {
        let confinement = Confinement::from(&super::super::params::parse(&[]).unwrap());
        let text = serde_json::to_string(&confinement).unwrap();
        assert_eq!(
            serde_json::from_str::<Confinement>(&text).unwrap(),
            confinement
        );
    }
}
