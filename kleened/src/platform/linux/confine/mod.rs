//! Confining a container's process before it runs the container's code: what the process may do
//! (capabilities), which system calls it may make ([`seccomp`]), and that no process of
//! the container may look into it while it still runs the daemon's binary (not dumpable, so
//! `/proc/<pid>/exe`, `environ` and ptrace are closed to the container until the exec).
//!
//! In two stages: [`enter`] before the command's credentials are set, [`finish`] after.

use caps::{CapSet, Capability, CapsHashSet};
use serde::{Deserialize, Serialize};

pub mod params;
pub mod seccomp;

use params::{mask, LinuxParams};

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

/// What the process that starts the command keeps beyond the container's capabilities until the
/// command's credentials are set (setgroups, setgid, setuid, and reducing the bounding set need
/// them; signals to a command of another user need `CAP_KILL`).
const CREDENTIALS: [Capability; 4] = [
    Capability::CAP_SETUID,
    Capability::CAP_SETGID,
    Capability::CAP_SETPCAP,
    Capability::CAP_KILL,
];

/// Reduces the calling process's bounding set to `keep` (needs `CAP_SETPCAP`).
fn reduce_bounding(keep: &CapsHashSet) -> Result<(), String> {
    for capability in caps::all() {
        if !keep.contains(&capability)
            && caps::has_cap(None, CapSet::Bounding, capability).unwrap_or(true)
        {
            caps::drop(None, CapSet::Bounding, capability)
                .map_err(caps_error("cannot reduce the bounding set"))?;
        }
    }
    Ok(())
}

/// Reduces the calling process's bounding, permitted and effective sets to `keep` and empties the
/// inheritable and ambient ones.
fn reduce(keep: &CapsHashSet) -> Result<(), String> {
    reduce_bounding(keep)?;
    caps::clear(None, CapSet::Ambient).map_err(caps_error("cannot clear the ambient set"))?;
    caps::clear(None, CapSet::Inheritable)
        .map_err(caps_error("cannot clear the inheritable set"))?;
    // Effective first: it must stay within the permitted set.
    let effective: CapsHashSet = caps::read(None, CapSet::Effective)
        .map_err(caps_error("cannot read the effective set"))?
        .intersection(keep)
        .copied()
        .collect();
    caps::set(None, CapSet::Effective, &effective)
        .map_err(caps_error("cannot reduce the effective set"))?;
    let permitted: CapsHashSet = caps::read(None, CapSet::Permitted)
        .map_err(caps_error("cannot read the permitted set"))?
        .intersection(keep)
        .copied()
        .collect();
    caps::set(None, CapSet::Permitted, &permitted)
        .map_err(caps_error("cannot reduce the permitted set"))
}

/// The first stage, in the process that will start the command (the container's PID 1, or the
/// exec's child before it sets the command's user): not dumpable; the system-call filter
/// installed while `CAP_SYS_ADMIN` is still held (see [`seccomp::install`]); every capability
/// dropped but the container's and those needed to set the command's credentials. What this
/// process starts inherits all of it.
pub fn enter(confinement: &Confinement) -> Result<(), String> {
    nix::sys::prctl::set_dumpable(false).map_err(|e| format!("PR_SET_DUMPABLE: {e}"))?;
    if confinement.seccomp {
        for program in seccomp::programs()? {
            seccomp::install(&program)?;
        }
    }
    let keep: CapsHashSet = confinement
        .capabilities
        .iter()
        .chain(&CREDENTIALS)
        .copied()
        .collect();
    reduce(&keep)
}

/// Between the command's group and user changes: the bounding set reduced to the container's
/// capabilities (this needs `CAP_SETPCAP`, which a change to another user than root clears).
pub fn bound(confinement: &Confinement) -> Result<(), String> {
    reduce_bounding(&confinement.capabilities.iter().copied().collect())
}

/// The second stage, in the command's process once its user is set, just before the exec: only
/// the container's capabilities are left (none for a user other than root, whose change of user
/// cleared them). Checks the result in `/proc/self/status`: a capability this build does not know
/// of (a newer kernel's) fails the start instead of being kept.
pub fn finish(confinement: &Confinement) -> Result<(), String> {
    let keep: CapsHashSet = confinement.capabilities.iter().copied().collect();
    reduce(&keep)?;
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("cannot check the capabilities (/proc/self/status): {e}"))?;
    let wanted = mask(&confinement.capabilities);
    let bounding = status_mask(&status, "CapBnd");
    if bounding != Some(wanted) {
        return Err(format!(
            "the bounding set is {} instead of {wanted:016x} after confinement",
            bounding.map_or("unreadable".to_owned(), |m| format!("{m:016x}"))
        ));
    }
    for field in ["CapPrm", "CapEff", "CapInh", "CapAmb"] {
        match status_mask(&status, field) {
            Some(found) if found & !wanted == 0 => {}
            found => {
                return Err(format!(
                    "{field} is {} after confinement, beyond {wanted:016x}",
                    found.map_or("unreadable".to_owned(), |m| format!("{m:016x}"))
                ))
            }
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
        let confinement = Confinement::from(&super::params::parse(&[]).unwrap());
        let text = serde_json::to_string(&confinement).unwrap();
        assert_eq!(
            serde_json::from_str::<Confinement>(&text).unwrap(),
            confinement
        );
    }
}
