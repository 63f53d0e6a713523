//! Leftovers on every platform: datasets under `image/`, `container/` and `volumes/` that no row
//! owns, and interfaces marked as the daemon's that no network (or container's endpoint) has.
//! Linux adds its mounts and cgroups in [`super::linux`].
//!
//! What an intent names is never a leftover (its operation runs, or the next start finishes it),
//! nor a container dataset with processes in it, nor one the daemon's reaper is destroying. A
//! volume's dataset without a row holds data: it is named, with the command, and never removed
//! by `--fix`.

use std::collections::HashSet;

use kleene_api::FindingStatus;

use super::{Action, Facts, Judged};
use crate::layout::Layout;

/// The findings on datasets and interfaces. Nothing is judged without the store
/// (its own finding says why).
pub fn judge(facts: &Facts) -> Vec<Judged> {
    let Some(store) = facts.store() else {
        return vec![];
    };
    let mut judged = vec![];
    let claimed = store.claimed();
    let layout = &facts.layout;
    if let Ok(datasets) = &facts.datasets {
        let owned: HashSet<&str> = store
            .images
            .iter()
            .chain(&store.containers)
            .chain(&store.volumes)
            .map(|(_, dataset)| dataset.as_str())
            .collect();
        let mut found = false;
        for dataset in datasets {
            let name = dataset.name.as_str();
            if owned.contains(name) {
                continue;
            }
            if let Some(id) = Layout::id_under(&layout.images, name) {
                if claimed.contains(id) {
                    continue;
                }
                found = true;
                judged.push(Judged::automatic(
                    "leftover.dataset",
                    FindingStatus::Problem,
                    format!("{name} is the dataset of no image"),
                    facts.destroy_command(name, false),
                    Action::DestroyImageDataset(name.to_owned()),
                ));
            } else if let Some(id) = Layout::id_under(&layout.containers, name) {
                if claimed.contains(id) {
                    continue;
                }
                found = true;
                judged.push(container_dataset(facts, name, id));
            } else if let Some(volume) = Layout::id_under(&layout.volumes, name) {
                if claimed.contains(volume) {
                    continue;
                }
                found = true;
                judged.push(Judged::manual(
                    "leftover.dataset",
                    FindingStatus::Warning,
                    format!(
                        "{name} is the dataset of no volume; it may hold data, so --fix leaves it"
                    ),
                    facts.destroy_command(name, false),
                ));
            }
        }
        if !found {
            judged.push(Judged::ok(
                "leftover.dataset",
                "every dataset under image/, container/ and volumes/ belongs to an object",
            ));
        }
    }
    judged.extend(interfaces(facts));
    judged
}

fn container_dataset(facts: &Facts, name: &str, id: &str) -> Judged {
    if facts.reaping.iter().any(|d| d == name) {
        return Judged::manual(
            "leftover.dataset",
            FindingStatus::Warning,
            format!("{name} belongs to a removed container; kleened is destroying it"),
            "wait: kleened tries again, waiting longer each time",
        );
    }
    match &facts.running {
        Ok(running) if running.contains(id) => Judged::manual(
            "leftover.dataset",
            FindingStatus::Problem,
            format!("{name} is the dataset of no container, yet processes run in it ({id})"),
            format!(
                "end the processes of {id} (Linux: its cgroup; FreeBSD: jail -R {id}), then {}",
                facts.destroy_command(name, true)
            ),
        ),
        Ok(_) => Judged::automatic(
            "leftover.dataset",
            FindingStatus::Problem,
            format!("{name} is the dataset of no container"),
            facts.destroy_command(name, true),
            Action::DestroyContainerDataset(name.to_owned()),
        ),
        Err(err) => Judged::manual(
            "leftover.dataset",
            FindingStatus::Problem,
            format!(
                "{name} is the dataset of no container; whether processes run in it is unknown \
                 ({err}), so --fix leaves it"
            ),
            facts.destroy_command(name, true),
        ),
    }
}

/// Whether `interface` is the host end of `endpoint_id`'s veth (Linux: `kv`, nine characters of
/// the endpoint's ID, then a word per start; see `platform::linux::net::host_end`).
fn host_end_of(interface: &str, endpoint_id: &str) -> bool {
    let id = &endpoint_id[..endpoint_id.len().min(9)];
    interface
        .strip_prefix("kv")
        .is_some_and(|rest| !id.is_empty() && rest.starts_with(id))
}

fn interfaces(facts: &Facts) -> Vec<Judged> {
    let Some(store) = facts.store() else {
        return vec![];
    };
    let marked = match &facts.interfaces {
        Ok(marked) => marked,
        Err(err) => {
            return vec![Judged::manual(
                "leftover.interface",
                FindingStatus::Warning,
                format!("cannot list the daemon's interfaces: {err}"),
                "see why the interface listing fails",
            )]
        }
    };
    let mut judged = vec![];
    for name in marked {
        let network = store.networks.iter().any(|n| &n.interface == name);
        let endpoint = store
            .endpoints
            .iter()
            .any(|e| e.epair.as_deref() == Some(name.as_str()) || host_end_of(name, &e.id));
        if network || endpoint {
            continue;
        }
        let command = match facts.host {
            super::HostFacts::Linux(_) => format!("ip link delete dev {name}"),
            super::HostFacts::FreeBsd(_) => format!("ifconfig {name} destroy"),
        };
        judged.push(Judged::automatic(
            "leftover.interface",
            FindingStatus::Problem,
            format!("interface {name} is marked as kleened's but no network or container has it"),
            command,
            Action::RemoveInterface(name.clone()),
        ));
    }
    if judged.is_empty() {
        judged.push(Judged::ok(
            "leftover.interface",
            format!(
                "{} interface(s) marked as kleened's, each a network's or a container's",
                marked.len()
            ),
        ));
    }
    judged
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_all_ok, flagged, linux, mounted, store};
    use super::*;
    use kleene_api::{EndPoint, NetworkType};

    fn facts() -> Facts {
        linux()
    }

    fn add(facts: &mut Facts, name: &str) {
        facts.datasets.as_mut().unwrap().push(mounted(name));
    }

    #[test]
    fn datasets_without_rows_are_leftovers_by_kind() {
        let mut facts = facts();
        for name in [
            "zroot/kleene/image/i2",
            "zroot/kleene/container/c2",
            "zroot/kleene/container/c3",
            "zroot/kleene/volumes/old",
            "zroot/kleene/container/c1/inside",
            "zroot/kleene/other",
        ] {
            add(&mut facts, name);
        }
        facts.running = Ok(["c3".to_owned()].into());
        let judged = judge(&facts);
        let found: Vec<_> = flagged(&judged, "leftover.dataset")
            .iter()
            .map(|j| {
                (
                    j.finding.status,
                    j.finding.fix.clone().unwrap(),
                    j.action.clone(),
                )
            })
            .collect();
        assert_eq!(
            found,
            [
                (
                    FindingStatus::Problem,
                    "zfs destroy -r zroot/kleene/image/i2".to_owned(),
                    Some(Action::DestroyImageDataset("zroot/kleene/image/i2".into()))
                ),
                (
                    FindingStatus::Problem,
                    "zfs destroy -r -f zroot/kleene/container/c2".to_owned(),
                    Some(Action::DestroyContainerDataset(
                        "zroot/kleene/container/c2".into()
                    ))
                ),
                (
                    FindingStatus::Problem,
                    "end the processes of c3 (Linux: its cgroup; FreeBSD: jail -R c3), then zfs destroy -r -f zroot/kleene/container/c3".to_owned(),
                    None
                ),
                (
                    FindingStatus::Warning,
                    "zfs destroy -r zroot/kleene/volumes/old".to_owned(),
                    None
                ),
            ]
        );
    }

    #[test]
    fn claimed_reaped_and_unknown_are_never_destroyed() {
        let mut facts = facts();
        add(&mut facts, "zroot/kleene/container/c2");
        add(&mut facts, "zroot/kleene/container/c3");
        add(&mut facts, "zroot/kleene/image/i9");
        store(&mut facts).intents = vec![
            ("container-create".into(), "c2".into()),
            ("build".into(), "i9".into()),
        ];
        facts.reaping = vec!["zroot/kleene/container/c3".into()];
        let judged = judge(&facts);
        let found = flagged(&judged, "leftover.dataset");
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].finding.status, FindingStatus::Warning);
        assert_eq!(found[0].action, None);

        let mut facts = linux();
        add(&mut facts, "zroot/kleene/container/c4");
        facts.running = Err("cannot read cgroup.events".into());
        let judged = judge(&facts);
        assert_eq!(flagged(&judged, "leftover.dataset")[0].action, None);
    }

    #[test]
    fn marked_interfaces_of_no_network_or_endpoint_are_leftovers() {
        let mut facts = facts();
        let mut network = crate::store::testdata::network("n1", "web");
        network.kind = NetworkType::Bridge;
        network.interface = "kleene0".into();
        store(&mut facts).networks = vec![network];
        store(&mut facts).endpoints = vec![EndPoint {
            id: "e1e1e1e1e1e1".into(),
            network_id: "n1".into(),
            container_id: "c1".into(),
            epair: None,
            ip_address: "10.0.0.2".into(),
            ip_address6: String::new(),
        }];
        facts.interfaces = Ok(vec![
            "kleene0".into(),
            "kve1e1e1e1e0a1b".into(),
            "kleene7".into(),
            "kvffffffffa0a1b".into(),
        ]);
        let judged = judge(&facts);
        let found: Vec<_> = flagged(&judged, "leftover.interface")
            .iter()
            .map(|j| (j.finding.fix.clone().unwrap(), j.action.clone().unwrap()))
            .collect();
        assert_eq!(
            found,
            [
                (
                    "ip link delete dev kleene7".to_owned(),
                    Action::RemoveInterface("kleene7".into())
                ),
                (
                    "ip link delete dev kvffffffffa0a1b".to_owned(),
                    Action::RemoveInterface("kvffffffffa0a1b".into())
                ),
            ]
        );
    }

    #[test]
    fn a_clean_store_has_no_leftovers_and_no_store_judges_nothing() {
        assert_all_ok(&judge(&facts()));
        let mut facts = facts();
        facts.store = Ok(None);
        add(&mut facts, "zroot/kleene/image/i2");
        assert!(judge(&facts).is_empty());
    }
}
