//! Storage and store checks: the root dataset and its image, container and volume parents exist
//! and are mounted; the pool is healthy and not full; the metadata database can be read, and what
//! operations it records as interrupted.

use kleene_api::FindingStatus;

use super::{Action, Facts, Judged};

/// Capacity (percent allocated) from which the pool is reported: ZFS slows down past about 80 %
/// and fails writes when full.
pub const CAPACITY_WARNING: u8 = 80;
/// Capacity from which a full pool is a problem.
pub const CAPACITY_PROBLEM: u8 = 95;

/// The findings on the root, its parents, the pool and the store.
pub fn judge(facts: &Facts) -> Vec<Judged> {
    let mut judged = vec![];
    let root = facts.layout.root.as_str();
    if let Err(err) = &facts.datasets {
        judged.push(Judged::manual(
            "zfs.root",
            FindingStatus::Problem,
            format!("cannot list the datasets of kleene_root {root}: {err}"),
            format!("see why `zfs list -r {root}` fails"),
        ));
        judged.push(pool_finding(facts));
        judged.extend(store_findings(facts));
        return judged;
    }
    match facts.dataset(&facts.layout.root) {
        None => {
            judged.push(Judged::manual(
                "zfs.root",
                FindingStatus::Problem,
                format!("the dataset {root} of kleene_root does not exist"),
                format!("zfs create {root} (or fix kleene_root in the configuration)"),
            ));
        }
        Some(state) if !state.mounted => judged.push(Judged::automatic(
            "zfs.root",
            FindingStatus::Problem,
            format!("the dataset {root} of kleene_root is not mounted"),
            format!("zfs mount {root}"),
            Action::Mount(root.to_owned()),
        )),
        Some(state) => judged.push(Judged::ok(
            "zfs.root",
            format!(
                "{root} is mounted at {}",
                state
                    .mountpoint
                    .as_deref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "?".into())
            ),
        )),
    }
    if facts.dataset(&facts.layout.root).is_some() {
        for parent in [
            &facts.layout.images,
            &facts.layout.containers,
            &facts.layout.volumes,
        ] {
            judged.push(parent_finding(facts, parent));
        }
    }
    judged.push(pool_finding(facts));
    judged.extend(store_findings(facts));
    judged
}

fn parent_finding(facts: &Facts, parent: &zfs::DatasetName) -> Judged {
    let name = parent.as_str();
    match facts.dataset(parent) {
        // The daemon makes the parents at its start; a stopped daemon without them is one that
        // has not started on this root yet.
        None if !facts.daemon_running => Judged::automatic(
            "zfs.layout",
            FindingStatus::Warning,
            format!("{name} does not exist; kleened makes it when it starts"),
            format!("zfs create {name}"),
            Action::PrepareLayout,
        ),
        None => Judged::automatic(
            "zfs.layout",
            FindingStatus::Problem,
            format!("{name} does not exist"),
            format!("zfs create {name}"),
            Action::PrepareLayout,
        ),
        Some(state) if !state.mounted => Judged::automatic(
            "zfs.layout",
            FindingStatus::Problem,
            format!("{name} is not mounted"),
            format!("zfs mount {name}"),
            Action::Mount(name.to_owned()),
        ),
        Some(state) => Judged::ok(
            "zfs.layout",
            match &state.mountpoint {
                Some(path) => format!("{name} is mounted at {}", path.display()),
                None => format!("{name} is mounted"),
            },
        ),
    }
}

fn pool_finding(facts: &Facts) -> Judged {
    let pool = facts.layout.root.pool();
    let usage = match &facts.pool {
        Ok(usage) => usage,
        Err(err) => {
            return Judged::manual(
                "zfs.pool",
                FindingStatus::Problem,
                format!("cannot read the state of pool {pool}: {err}"),
                format!("zpool status {pool}"),
            )
        }
    };
    if usage.health != "ONLINE" {
        return Judged::manual(
            "zfs.pool",
            FindingStatus::Problem,
            format!("pool {pool} is {}", usage.health),
            format!("zpool status -x {pool} says why and what to replace"),
        );
    }
    let full = |status, note: &str| {
        Judged::manual(
            "zfs.pool",
            status,
            format!(
                "pool {pool} is {}% full ({} free of {}){note}",
                usage.capacity_percent.unwrap_or(100),
                usage.free,
                usage.size
            ),
            "free space (klee image prune -a, klee container prune, klee volume prune) or add \
             some to the pool (zpool add)",
        )
    };
    match usage.capacity_percent {
        Some(percent) if percent >= CAPACITY_PROBLEM => full(
            FindingStatus::Problem,
            ": images, containers and writes in them will fail",
        ),
        Some(percent) if percent >= CAPACITY_WARNING => {
            full(FindingStatus::Warning, ": ZFS slows down when nearly full")
        }
        Some(percent) => Judged::ok(
            "zfs.pool",
            format!(
                "pool {pool} is ONLINE, {percent}% full ({} free of {})",
                usage.free, usage.size
            ),
        ),
        None => Judged::ok(
            "zfs.pool",
            format!(
                "pool {pool} is ONLINE, {} free of {}",
                usage.free, usage.size
            ),
        ),
    }
}

fn store_findings(facts: &Facts) -> Vec<Judged> {
    let path = facts
        .store_path
        .as_deref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "the metadata database".into());
    let store = match &facts.store {
        Err(err) => {
            return vec![Judged::manual(
                "store.database",
                FindingStatus::Problem,
                format!("cannot read {path}: {err}; leftovers are not judged without it"),
                "check metadata_path in the configuration and the file's permissions",
            )]
        }
        Ok(None) => {
            return vec![Judged::manual(
                "store.database",
                FindingStatus::Warning,
                format!(
                    "there is no metadata database at {path} (kleened has not run on this root, \
                     or metadata_path is wrong): leftovers are not judged without it"
                ),
                "start kleened once, or fix metadata_path",
            )]
        }
        Ok(Some(store)) => store,
    };
    let mut judged = vec![Judged::ok(
        "store.database",
        format!(
            "{path}: {} images, {} containers, {} networks, {} volumes",
            store.images.len(),
            store.containers.len(),
            store.networks.len(),
            store.volumes.len()
        ),
    )];
    if !facts.daemon_running {
        for (kind, object) in &store.intents {
            judged.push(Judged::manual(
                "store.intents",
                FindingStatus::Warning,
                format!(
                    "an operation was interrupted ({kind} {object}); kleened finishes or undoes \
                     it at its next start, so what it made is not judged a leftover"
                ),
                "start kleened",
            ));
        }
    }
    judged
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_all_ok, flagged, linux};
    use super::*;

    fn facts() -> Facts {
        linux()
    }

    fn set(facts: &mut Facts, name: &str, change: impl FnOnce(&mut super::super::DatasetState)) {
        let datasets = facts.datasets.as_mut().unwrap();
        change(datasets.iter_mut().find(|d| d.name == name).unwrap());
    }

    #[test]
    fn a_healthy_root_pool_and_store_are_ok() {
        assert_all_ok(&judge(&facts()));
    }

    #[test]
    fn a_missing_root_is_a_problem_fixed_by_hand() {
        let mut facts = facts();
        facts.datasets = Ok(vec![]);
        let judged = judge(&facts);
        let root = flagged(&judged, "zfs.root");
        assert_eq!(root.len(), 1);
        assert_eq!(root[0].action, None);
        assert_eq!(
            root[0].finding.fix.as_deref(),
            Some("zfs create zroot/kleene (or fix kleene_root in the configuration)")
        );
        assert!(flagged(&judged, "zfs.layout").is_empty(), "{judged:#?}");
    }

    #[test]
    fn unmounted_datasets_are_mounted() {
        let mut facts = facts();
        set(&mut facts, "zroot/kleene", |d| d.mounted = false);
        set(&mut facts, "zroot/kleene/container", |d| d.mounted = false);
        let judged = judge(&facts);
        assert_eq!(
            flagged(&judged, "zfs.root")[0].action,
            Some(Action::Mount("zroot/kleene".into()))
        );
        let layout: Vec<_> = flagged(&judged, "zfs.layout")
            .iter()
            .map(|j| (j.finding.fix.clone().unwrap(), j.action.clone().unwrap()))
            .collect();
        assert_eq!(
            layout,
            [(
                "zfs mount zroot/kleene/container".to_owned(),
                Action::Mount("zroot/kleene/container".into())
            )]
        );
    }

    #[test]
    fn a_missing_parent_is_a_problem_only_while_the_daemon_runs() {
        let mut facts = facts();
        facts
            .datasets
            .as_mut()
            .unwrap()
            .retain(|d| !d.name.starts_with("zroot/kleene/volumes"));
        let stopped = judge(&facts);
        let found = flagged(&stopped, "zfs.layout");
        assert_eq!(found[0].finding.status, FindingStatus::Warning);
        assert_eq!(found[0].action, Some(Action::PrepareLayout));
        facts.daemon_running = true;
        let running = judge(&facts);
        assert_eq!(
            flagged(&running, "zfs.layout")[0].finding.status,
            FindingStatus::Problem
        );
    }

    #[test]
    fn an_unhealthy_or_full_pool_is_reported() {
        let mut facts = facts();
        facts.pool.as_mut().unwrap().health = "DEGRADED".into();
        let judged = judge(&facts);
        assert_eq!(
            flagged(&judged, "zfs.pool")[0].finding.detail,
            "pool zroot is DEGRADED"
        );
        for (percent, status) in [
            (79, None),
            (80, Some(FindingStatus::Warning)),
            (96, Some(FindingStatus::Problem)),
        ] {
            let mut facts = linux();
            facts.pool.as_mut().unwrap().capacity_percent = Some(percent);
            let judged = judge(&facts);
            assert_eq!(
                flagged(&judged, "zfs.pool")
                    .first()
                    .map(|j| j.finding.status),
                status,
                "{percent}%"
            );
        }
    }

    #[test]
    fn without_a_database_nothing_is_judged_and_interrupted_operations_are_named() {
        let mut facts = facts();
        facts.store = Ok(None);
        let judged = judge(&facts);
        assert_eq!(
            flagged(&judged, "store.database")[0].finding.status,
            FindingStatus::Warning
        );
        let mut facts = linux();
        if let Ok(Some(store)) = &mut facts.store {
            store.intents = vec![("container-create".into(), "c9".into())];
        }
        let judged = judge(&facts);
        assert!(flagged(&judged, "store.intents")[0]
            .finding
            .detail
            .contains("container-create c9"));
        facts.daemon_running = true;
        assert!(flagged(&judge(&facts), "store.intents").is_empty());
    }
}
