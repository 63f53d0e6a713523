//! rctl(8) rules for a container's resource limits, kept by its jail's name. Pinned by the goldens
//! of `kleened/tests/freebsd_commands.rs`.

use kleene_runner::CommandSpec;

use crate::platform::runtime::Limits;

pub(super) const RCTL: &str = "/usr/bin/rctl";

/// rctl(8): the rules that enforce a container's limits on its jail (subject `jail`, by the jail's
/// name, which is the container ID): `memoryuse` (resident memory, bytes), `maxproc` (processes)
/// and `pcpu` (percent of one CPU), each with the `deny` action; `None` without limits. Rules
/// are kept by name, so they are added before the first process and outlive the jail until
/// [`rctl_remove`].
pub fn rctl_add(container_id: &str, limits: &Limits) -> Option<CommandSpec> {
    let mut rules = vec![];
    if let Some(bytes) = limits.memory {
        rules.push(format!("jail:{container_id}:memoryuse:deny={bytes}"));
    }
    if let Some(count) = limits.pids {
        rules.push(format!("jail:{container_id}:maxproc:deny={count}"));
    }
    if let Some(percent) = limits.cpu_percent {
        rules.push(format!("jail:{container_id}:pcpu:deny={percent}"));
    }
    (!rules.is_empty()).then(|| CommandSpec::new(RCTL).arg("-a").args(rules))
}

/// rctl(8): removes every rule of the container's jail (the filter `jail:<name>`).
pub fn rctl_remove(container_id: &str) -> CommandSpec {
    CommandSpec::new(RCTL).args(["-r".to_owned(), format!("jail:{container_id}")])
}
