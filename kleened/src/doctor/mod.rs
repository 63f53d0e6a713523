//! `kleened doctor`: checks the host for what the daemon needs and for what it left behind, and
//! explains each finding with the command that fixes it; `--fix` does the fixes that are safe.
//!
//! The work is split the way the rest of the daemon is:
//! - [`gather`] reads the facts (ZFS, the store, the host's settings and objects) through the
//!   daemon's own clients (`Zfs`, `Store`, the platform's [`crate::platform::NetworkHost`] and
//!   runtime), changing nothing;
//! - the judges ([`storage`], [`leftovers`], [`linux`], [`freebsd`]) are pure functions from
//!   facts to findings, each with its fix: the exact command, and the [`Action`] `--fix` takes
//!   when the fix is safe to do unasked;
//! - [`gather::Clients::perform`] does an action through the code the daemon uses for it
//!   (`Layout::prepare`, the network host's `prepare` and `remove`, zfs destroy, the cgroup
//!   removal).
//!
//! It runs in two places with the same code: `kleened doctor` ([`cli`]) with its own clients,
//! and the daemon itself (`GET /doctor`, `POST /doctor/fix`, `klee doctor`) with the engine's.
//! `kleened doctor --fix` refuses while a daemon holds the root's lock: the daemon's own
//! `POST /doctor/fix` is the way to fix a running host.
//!
//! Nothing the store owns, nothing an intent claims, nothing a running container uses, and no
//! volume's data is ever removed.

pub mod cli;
pub mod freebsd;
pub mod gather;
pub mod leftovers;
pub mod linux;
pub mod storage;

use std::collections::HashSet;
use std::path::PathBuf;

pub use kleene_api::{DoctorReport, Finding, FindingStatus, FixOutcome};
use kleene_api::{EndPoint, Network, NetworkType};
use zfs::{DatasetName, PoolUsage};

use crate::config::{CgroupHierarchy, Config};
use crate::layout::Layout;

/// What the doctor must know of the configuration beyond the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The mark the daemon's interfaces carry (`kleened:<kleene_root>`).
    pub marker: String,
    /// Linux: the nftables table (`inet <name>`) of the daemon's rules.
    pub nft_table: String,
    /// Linux: the cgroup (below the daemon's own) of the containers' cgroups.
    pub cgroup_parent: String,
    /// Linux: the hierarchy asked for (`None`: v2 where mounted, else v1 `pids`).
    pub cgroup_hierarchy: Option<CgroupHierarchy>,
    /// FreeBSD: the rendered pf.conf the daemon loads.
    pub pf_conf: Option<PathBuf>,
    /// FreeBSD: the template it is rendered from.
    pub pf_template: Option<PathBuf>,
    /// The metadata database (`None`: `metadata.sqlite` in the root's mountpoint).
    pub metadata_path: Option<PathBuf>,
}

impl Settings {
    /// The settings of a configuration.
    pub fn from_config(config: &Config) -> Settings {
        Settings {
            marker: marker(&config.kleene_root),
            nft_table: config.nft_table.clone(),
            cgroup_parent: config.cgroup_parent.clone(),
            cgroup_hierarchy: config.cgroup_hierarchy,
            pf_conf: config.pf_config_path.clone(),
            pf_template: config.pf_config_template_path.clone(),
            metadata_path: config.metadata_path.clone(),
        }
    }

    /// The configuration's defaults for a root (engines made without a configuration, tests).
    pub fn defaults(root: &str) -> Settings {
        Settings {
            marker: marker(root),
            nft_table: "kleene".into(),
            cgroup_parent: format!("kleene-{}", root.replace(['/', ':'], "-")),
            cgroup_hierarchy: None,
            pf_conf: None,
            pf_template: None,
            metadata_path: None,
        }
    }
}

/// The mark the daemon puts on the interfaces it makes (`daemon.rs` gives it to the network host).
pub fn marker(root: &str) -> String {
    format!("kleened:{root}")
}

/// What `--fix` does for a finding, each through the code the daemon itself uses for it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// Host networking made ready as at daemon start (`NetworkHost::prepare`: IPv4 forwarding
    /// on; FreeBSD: pf enabled too).
    PrepareNetworking,
    /// Linux: a kernel setting under `/proc/sys` set to 1 (IPv6 forwarding).
    SwitchOn(String),
    /// The image, container and volume parents made and closed to others (`Layout::prepare`).
    PrepareLayout,
    /// A dataset mounted.
    Mount(String),
    /// A file system unmounted (deepest first).
    Unmount(PathBuf),
    /// An interface marked as the daemon's removed.
    RemoveInterface(String),
    /// The daemon's packet-filter rules removed (`NetworkHost::clear_firewall`), when they are
    /// loaded while it is stopped.
    ClearFirewall,
    /// Linux: an empty cgroup of the containers' parent removed, by container ID.
    RemoveCgroup(String),
    /// A container dataset destroyed (recursively, forced).
    DestroyContainerDataset(String),
    /// An image dataset destroyed (recursively).
    DestroyImageDataset(String),
}

impl Action {
    /// The order actions run in: host settings, the layout, then what holds other things
    /// (mounts, interfaces, cgroups) before the datasets they hold, clones (containers) before
    /// their origins (images).
    fn phase(&self) -> u8 {
        match self {
            Action::PrepareNetworking | Action::SwitchOn(_) => 0,
            Action::PrepareLayout => 1,
            Action::Mount(_) => 2,
            Action::Unmount(_) => 3,
            Action::RemoveInterface(_) | Action::ClearFirewall => 4,
            Action::RemoveCgroup(_) => 5,
            Action::DestroyContainerDataset(_) => 6,
            Action::DestroyImageDataset(_) => 7,
        }
    }
}

/// A finding with the action `--fix` takes for it, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judged {
    /// What is reported.
    pub finding: Finding,
    /// What `--fix` does.
    pub action: Option<Action>,
}

impl Judged {
    /// A finding that needs nothing.
    pub fn ok(check: &str, detail: impl Into<String>) -> Judged {
        Judged {
            finding: Finding {
                check: check.into(),
                status: FindingStatus::Ok,
                detail: detail.into(),
                fix: None,
                automatic: false,
            },
            action: None,
        }
    }

    /// A warning or problem fixed by hand with `fix`.
    pub fn manual(
        check: &str,
        status: FindingStatus,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Judged {
        Judged {
            finding: Finding {
                check: check.into(),
                status,
                detail: detail.into(),
                fix: Some(fix.into()),
                automatic: false,
            },
            action: None,
        }
    }

    /// A warning or problem that `--fix` fixes with `action`, which `fix` spells.
    pub fn automatic(
        check: &str,
        status: FindingStatus,
        detail: impl Into<String>,
        fix: impl Into<String>,
        action: Action,
    ) -> Judged {
        Judged {
            finding: Finding {
                check: check.into(),
                status,
                detail: detail.into(),
                fix: Some(fix.into()),
                automatic: true,
            },
            action: Some(action),
        }
    }
}

/// One dataset under the root, as `zfs list -r` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetState {
    /// Its name.
    pub name: String,
    /// Whether it is mounted.
    pub mounted: bool,
    /// Where it is (or would be) mounted.
    pub mountpoint: Option<PathBuf>,
}

/// What the store holds, as far as the doctor needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreFacts {
    /// (ID, dataset) of every image.
    pub images: Vec<(String, String)>,
    /// (ID, dataset) of every container.
    pub containers: Vec<(String, String)>,
    /// (name, dataset) of every volume.
    pub volumes: Vec<(String, String)>,
    /// Every network.
    pub networks: Vec<Network>,
    /// Every endpoint.
    pub endpoints: Vec<EndPoint>,
    /// Whether any container publishes ports.
    pub published_ports: bool,
    /// (kind, object) of every recorded intent: operations in flight, or interrupted by a crash.
    pub intents: Vec<(String, String)>,
}

impl StoreFacts {
    /// Reads them in one go.
    pub fn read(db: &crate::store::Db<'_>) -> Result<StoreFacts, crate::store::StoreError> {
        let containers = db.list_containers()?;
        Ok(StoreFacts {
            images: db
                .list_images()?
                .into_iter()
                .map(|i| (i.id, i.dataset))
                .collect(),
            published_ports: containers
                .iter()
                .any(|c| !c.container.public_ports.is_empty()),
            containers: containers
                .into_iter()
                .map(|c| (c.container.id, c.container.dataset))
                .collect(),
            volumes: db
                .list_volumes()?
                .into_iter()
                .map(|v| (v.name, v.dataset))
                .collect(),
            networks: db.list_networks()?,
            endpoints: db.list_endpoints()?,
            intents: db
                .list_intents()?
                .into_iter()
                .map(|(_, kind, object)| (kind, object))
                .collect(),
        })
    }

    /// Names the intents claim: a dataset of one of them is never a leftover (its operation
    /// runs, or the daemon finishes it at its next start). Every object of every kind counts, and
    /// the image ID of a snapshot intent (`<dataset>@<image id>`).
    pub fn claimed(&self) -> HashSet<String> {
        let mut claimed = HashSet::new();
        for (_, object) in &self.intents {
            claimed.insert(object.clone());
            if let Some((_, snap)) = object.split_once('@') {
                claimed.insert(snap.to_owned());
            }
        }
        claimed
    }

    /// Whether traffic is forwarded for any network: one with NAT, or published ports.
    pub fn needs_forwarding(&self) -> bool {
        self.published_ports || self.networks.iter().any(|n| !n.nat.is_empty())
    }

    /// Whether a bridge network has an IPv6 gateway of the daemon's (it turns IPv6 forwarding on
    /// for them).
    pub fn needs_forwarding6(&self) -> bool {
        self.networks.iter().any(|n| {
            n.kind == NetworkType::Bridge && !n.subnet6.is_empty() && n.gateway6 == "<auto>"
        })
    }

    /// Whether the daemon has anything to filter (else it loads no rules at all).
    pub fn filters(&self) -> bool {
        !self.networks.is_empty() || self.published_ports
    }
}

/// Everything the judges look at.
#[derive(Debug, Clone)]
pub struct Facts {
    /// Whether the daemon runs on the root.
    pub daemon_running: bool,
    /// The root and its parents.
    pub layout: Layout,
    /// The root and every dataset below it (empty when the root does not exist).
    pub datasets: Result<Vec<DatasetState>, String>,
    /// The root's pool.
    pub pool: Result<PoolUsage, String>,
    /// The metadata database: `Ok(None)` when there is none yet.
    pub store: Result<Option<StoreFacts>, String>,
    /// Where the database is.
    pub store_path: Option<PathBuf>,
    /// IDs of the containers that have processes.
    pub running: Result<HashSet<String>, String>,
    /// Container datasets the daemon is destroying (its reaper's queue).
    pub reaping: Vec<String>,
    /// Interfaces marked as the daemon's.
    pub interfaces: Result<Vec<String>, String>,
    /// What the host's platform adds.
    pub host: HostFacts,
}

/// The facts of one platform.
#[derive(Debug, Clone)]
pub enum HostFacts {
    /// Linux: cgroups, nftables, sysctls, mounts.
    Linux(linux::LinuxFacts),
    /// FreeBSD: pf, modules, sysctls.
    FreeBsd(freebsd::FreeBsdFacts),
}

impl Facts {
    /// The dataset named `name`, if it is there.
    pub fn dataset(&self, name: &DatasetName) -> Option<&DatasetState> {
        self.datasets
            .as_ref()
            .ok()?
            .iter()
            .find(|d| d.name == name.as_str())
    }

    /// The store's facts, if it could be read and exists.
    pub fn store(&self) -> Option<&StoreFacts> {
        self.store.as_ref().ok().and_then(Option::as_ref)
    }

    /// The command line that destroys a dataset.
    pub fn destroy_command(&self, dataset: &str, force: bool) -> String {
        let flags = if force { "-r -f" } else { "-r" };
        format!("zfs destroy {flags} {dataset}")
    }
}

/// Every finding, for the facts of one platform.
pub fn judge(facts: &Facts) -> Vec<Judged> {
    let mut judged = vec![];
    judged.extend(storage::judge(facts));
    judged.extend(leftovers::judge(facts));
    match &facts.host {
        HostFacts::Linux(host) => judged.extend(linux::judge(facts, host)),
        HostFacts::FreeBsd(host) => judged.extend(freebsd::judge(facts, host)),
    }
    judged
}

/// The actions of the findings, once each, in the order that works (see [`Action::phase`]):
/// (check, the command the finding names, action).
pub fn plan(judged: &[Judged]) -> Vec<(String, String, Action)> {
    let mut actions: Vec<(String, String, Action)> = vec![];
    for j in judged {
        if let Some(action) = &j.action {
            if !actions.iter().any(|(_, _, a)| a == action) {
                let command = j.finding.fix.clone().unwrap_or_default();
                actions.push((j.finding.check.clone(), command, action.clone()));
            }
        }
    }
    // Stable: unmounts keep the deepest-first order the judge gave them.
    actions.sort_by_key(|(_, _, action)| action.phase());
    actions
}

/// The report of judged findings and the fixes made before them.
pub fn report(daemon_running: bool, judged: Vec<Judged>, fixes: Vec<FixOutcome>) -> DoctorReport {
    DoctorReport::new(
        daemon_running,
        judged.into_iter().map(|j| j.finding).collect(),
        fixes,
    )
}

#[cfg(test)]
pub(crate) mod testing {
    //! Facts of a healthy host, for the judges' tests to spoil.

    use super::*;

    /// A dataset row, mounted at `/<name>`.
    pub fn mounted(name: &str) -> DatasetState {
        DatasetState {
            name: name.into(),
            mounted: true,
            mountpoint: Some(PathBuf::from(format!("/{name}"))),
        }
    }

    /// A stopped daemon's healthy host with one image, one container and one volume.
    pub fn healthy(host: HostFacts) -> Facts {
        Facts {
            daemon_running: false,
            layout: Layout::new("zroot/kleene").unwrap(),
            datasets: Ok(vec![
                mounted("zroot/kleene"),
                mounted("zroot/kleene/image"),
                mounted("zroot/kleene/image/i1"),
                mounted("zroot/kleene/container"),
                mounted("zroot/kleene/container/c1"),
                mounted("zroot/kleene/volumes"),
                mounted("zroot/kleene/volumes/data"),
            ]),
            pool: Ok(PoolUsage {
                health: "ONLINE".into(),
                size: "100G".into(),
                free: "90G".into(),
                capacity_percent: Some(10),
            }),
            store: Ok(Some(StoreFacts {
                images: vec![("i1".into(), "zroot/kleene/image/i1".into())],
                containers: vec![("c1".into(), "zroot/kleene/container/c1".into())],
                volumes: vec![("data".into(), "zroot/kleene/volumes/data".into())],
                ..StoreFacts::default()
            })),
            store_path: Some("/zroot/kleene/metadata.sqlite".into()),
            running: Ok(HashSet::new()),
            reaping: vec![],
            interfaces: Ok(vec![]),
            host,
        }
    }

    /// A healthy Linux host.
    pub fn linux() -> Facts {
        healthy(HostFacts::Linux(linux::LinuxFacts::healthy()))
    }

    /// A network with NAT.
    pub fn nat_network() -> Network {
        let mut network = crate::store::testdata::network("n1", "web");
        network.kind = NetworkType::Bridge;
        network.interface = "kleene0".into();
        network.nat = "<host-gateway>".into();
        network
    }

    /// The store of `facts`.
    pub fn store(facts: &mut Facts) -> &mut StoreFacts {
        match &mut facts.store {
            Ok(Some(store)) => store,
            _ => panic!("no store"),
        }
    }

    /// The findings of `check` that are not ok.
    pub fn flagged<'a>(judged: &'a [Judged], check: &str) -> Vec<&'a Judged> {
        judged
            .iter()
            .filter(|j| j.finding.check == check && j.finding.status != FindingStatus::Ok)
            .collect()
    }

    /// Panics unless every finding is ok.
    pub fn assert_all_ok(judged: &[Judged]) {
        let bad: Vec<&Finding> = judged
            .iter()
            .map(|j| &j.finding)
            .filter(|f| f.status != FindingStatus::Ok)
            .collect();
        assert!(bad.is_empty(), "{bad:#?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judged(check: &str, action: Action) -> Judged {
        Judged::automatic(check, FindingStatus::Problem, "x", "y", action)
    }

    #[test]
    fn the_plan_does_each_action_once_and_holders_before_what_they_hold() {
        let plan = plan(&[
            judged(
                "leftover.dataset",
                Action::DestroyImageDataset("p/r/image/i".into()),
            ),
            judged(
                "leftover.dataset",
                Action::DestroyContainerDataset("p/r/container/c".into()),
            ),
            judged(
                "leftover.mount",
                Action::Unmount("/p/r/container/c/dev".into()),
            ),
            judged("leftover.mount", Action::Unmount("/p/r/container/c".into())),
            judged("linux.ip-forward", Action::PrepareNetworking),
            judged("linux.ip-forward", Action::PrepareNetworking),
            Judged::manual("zfs.pool", FindingStatus::Problem, "full", "zpool add"),
        ]);
        let actions: Vec<&Action> = plan.iter().map(|(_, _, a)| a).collect();
        assert_eq!(
            actions,
            [
                &Action::PrepareNetworking,
                &Action::Unmount("/p/r/container/c/dev".into()),
                &Action::Unmount("/p/r/container/c".into()),
                &Action::DestroyContainerDataset("p/r/container/c".into()),
                &Action::DestroyImageDataset("p/r/image/i".into()),
            ]
        );
        assert_eq!(plan[0].0, "linux.ip-forward");
    }

    #[test]
    fn intents_claim_their_objects_and_snapshot_images() {
        let store = StoreFacts {
            intents: vec![
                ("container-create".into(), "c1".into()),
                ("snapshot".into(), "zroot/src@i9".into()),
            ],
            ..StoreFacts::default()
        };
        let claimed = store.claimed();
        for name in ["c1", "i9", "zroot/src@i9"] {
            assert!(claimed.contains(name), "{name}");
        }
    }

    #[test]
    fn nat_and_published_ports_need_forwarding() {
        let mut store = StoreFacts::default();
        assert!(!store.needs_forwarding());
        store.published_ports = true;
        assert!(store.needs_forwarding());
        let store = StoreFacts {
            networks: vec![testing::nat_network()],
            ..StoreFacts::default()
        };
        assert!(store.needs_forwarding() && store.filters());
    }
}
