//! Linux checks: IPv4 (and IPv6) forwarding when a network needs it, nftables usable and the
//! daemon's table loaded while it runs with networks (and gone while it is stopped), the cgroup
//! hierarchy containers are tracked in and the controllers resource limits need, and leftovers:
//! cgroups of the daemon's parent that no container has, mounts under container roots.
//!
//! The facts are read from `/proc` and `nft list tables` ([`gather`], Linux only); the judge is
//! pure.

use std::path::{Path, PathBuf};

use kleene_api::FindingStatus;

use super::{Action, Facts, Judged};

/// Where the containers' cgroups are and which controllers the limits can use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupFacts {
    /// The hierarchy containers are tracked in, as words (`cgroup v2`, `cgroup v1 pids`).
    pub hierarchy: String,
    /// The containers' parent cgroup in it.
    pub parent: PathBuf,
    /// `memory`, `pids` and `cpu`, each with where it is (`None`: nowhere usable).
    pub controllers: Vec<(String, Option<String>)>,
    /// Every container cgroup below the parent (and below the v1 parents of the limits), by
    /// name, with whether processes are in it (`Err`: cannot tell).
    pub children: Vec<(String, Result<bool, String>)>,
}

/// What the judge looks at on Linux.
#[derive(Debug, Clone)]
pub struct LinuxFacts {
    /// `net.ipv4.ip_forward`.
    pub ip_forward: Result<bool, String>,
    /// `net.ipv6.conf.all.forwarding`.
    pub ip6_forward: Result<bool, String>,
    /// The daemon's nftables table (`inet <name>`).
    pub nft_table: String,
    /// The nftables tables, as `nft list tables` prints them (`table inet kleene`).
    pub nft_tables: Result<Vec<String>, String>,
    /// The cgroups.
    pub cgroups: Result<CgroupFacts, String>,
    /// Mounts under a container's root that are not a dataset of the root, deepest first.
    pub stray_mounts: Vec<PathBuf>,
}

impl LinuxFacts {
    /// A host as the daemon needs it, with no containers (for tests).
    #[cfg(test)]
    pub fn healthy() -> LinuxFacts {
        LinuxFacts {
            ip_forward: Ok(true),
            ip6_forward: Ok(true),
            nft_table: "kleene".into(),
            nft_tables: Ok(vec![]),
            cgroups: Ok(CgroupFacts {
                hierarchy: "cgroup v2".into(),
                parent: "/sys/fs/cgroup/kleene".into(),
                controllers: ["memory", "pids", "cpu"]
                    .iter()
                    .map(|c| (c.to_string(), Some("cgroup v2".into())))
                    .collect(),
                children: vec![],
            }),
            stray_mounts: vec![],
        }
    }
}

/// The kernel settings the checks read, as `/proc/sys` paths.
pub const IP_FORWARD: &str = "net/ipv4/ip_forward";
/// IPv6 forwarding, turned on for networks with an IPv6 gateway.
pub const IP6_FORWARD: &str = "net/ipv6/conf/all/forwarding";

/// The Linux findings.
pub fn judge(facts: &Facts, host: &LinuxFacts) -> Vec<Judged> {
    let mut judged = vec![];
    judged.extend(forwarding(facts, host));
    judged.push(nftables(facts, host));
    judged.extend(cgroups(facts, host));
    judged.extend(mounts(host));
    judged
}

fn forwarding(facts: &Facts, host: &LinuxFacts) -> Vec<Judged> {
    let Some(store) = facts.store() else {
        return vec![];
    };
    let mut judged = vec![];
    let checks = [
        (
            "linux.ip-forward",
            IP_FORWARD,
            &host.ip_forward,
            store.needs_forwarding(),
            (
                "no network with NAT and no published ports",
                "networks with NAT and published ports",
            ),
            Action::PrepareNetworking,
        ),
        (
            "linux.ip6-forward",
            IP6_FORWARD,
            &host.ip6_forward,
            store.needs_forwarding6(),
            (
                "no bridge network with an IPv6 gateway",
                "bridge networks with an IPv6 gateway",
            ),
            Action::SwitchOn(IP6_FORWARD.into()),
        ),
    ];
    for (check, path, value, needed, why, action) in checks {
        let name = path.replace('/', ".");
        judged.push(match (needed, value) {
            (false, _) => Judged::ok(check, format!("{name} is not needed ({})", why.0)),
            (true, Ok(true)) => Judged::ok(check, format!("{name} is 1, as {} need", why.1)),
            (true, Ok(false)) => Judged::automatic(
                check,
                FindingStatus::Problem,
                format!(
                    "{name} is 0: {} do not work (their containers cannot reach out or be reached)",
                    why.1
                ),
                format!("sysctl -w {name}=1"),
                action,
            ),
            (true, Err(err)) => Judged::manual(
                check,
                FindingStatus::Problem,
                format!("cannot read {name}: {err}"),
                format!("sysctl {name}"),
            ),
        });
    }
    judged
}

fn nftables(facts: &Facts, host: &LinuxFacts) -> Judged {
    let check = "linux.nftables";
    let filters = facts.store().is_some_and(|s| s.filters());
    let table = format!("inet {}", host.nft_table);
    let tables = match &host.nft_tables {
        Ok(tables) => tables,
        Err(err) => {
            return Judged::manual(
                check,
                if filters {
                    FindingStatus::Problem
                } else {
                    FindingStatus::Warning
                },
                format!("nft(8) cannot list the tables ({err}): networks cannot be filtered"),
                "apt-get install nftables && modprobe nf_tables",
            )
        }
    };
    let loaded = tables.iter().any(|t| t.trim() == format!("table {table}"));
    match (facts.daemon_running, filters, loaded) {
        (true, true, false) => Judged::manual(
            check,
            FindingStatus::Problem,
            format!("the daemon's table {table} is not loaded: its networks are not filtered"),
            "restart kleened (it loads its rules at start)",
        ),
        (false, _, true) => Judged::automatic(
            check,
            FindingStatus::Problem,
            format!(
                "the table {table} is loaded but kleened is not running: rules left by a crash"
            ),
            format!("nft delete table {table}"),
            Action::ClearFirewall,
        ),
        (_, _, true) => Judged::ok(check, format!("table {table} is loaded")),
        (_, _, false) => Judged::ok(check, "nftables works; no rules are needed now"),
    }
}

fn cgroups(facts: &Facts, host: &LinuxFacts) -> Vec<Judged> {
    let cgroups = match &host.cgroups {
        Ok(cgroups) => cgroups,
        Err(err) => {
            return vec![Judged::manual(
                "linux.cgroups",
                FindingStatus::Problem,
                format!("no cgroup hierarchy to track containers in: {err}"),
                "mount -t cgroup2 none /sys/fs/cgroup (or set cgroup_hierarchy: v1 with a v1 \
                 pids hierarchy mounted)",
            )]
        }
    };
    let mut judged = vec![Judged::ok(
        "linux.cgroups",
        format!(
            "containers are tracked in {} under {}",
            cgroups.hierarchy,
            cgroups.parent.display()
        ),
    )];
    for (controller, home) in &cgroups.controllers {
        judged.push(match home {
            Some(home) => Judged::ok(
                "linux.limits",
                format!("the {controller} controller is available ({home})"),
            ),
            None => Judged::manual(
                "linux.limits",
                FindingStatus::Warning,
                format!(
                    "no cgroup hierarchy offers the {controller} controller: containers run, \
                     but limits that need it are refused"
                ),
                format!(
                    "enable it in cgroup v2 (echo +{controller} > cgroup.subtree_control of \
                     the daemon's cgroup's parent) or mount its v1 hierarchy (mkdir -p \
                     /sys/fs/cgroup/{controller} && mount -t cgroup -o {controller} cgroup \
                     /sys/fs/cgroup/{controller})"
                ),
            ),
        });
    }
    let Some(store) = facts.store() else {
        return judged;
    };
    let running = facts.running.as_ref().ok();
    let mut found = false;
    for (id, populated) in &cgroups.children {
        if store.containers.iter().any(|(c, _)| c == id) || store.claimed().contains(id) {
            continue;
        }
        found = true;
        let path = cgroups.parent.join(id);
        judged.push(match populated {
            Ok(false) if running.is_some_and(|r| !r.contains(id)) => Judged::automatic(
                "leftover.cgroup",
                FindingStatus::Problem,
                format!("cgroup {} belongs to no container", path.display()),
                format!("rmdir {}", path.display()),
                Action::RemoveCgroup(id.clone()),
            ),
            Ok(_) => Judged::manual(
                "leftover.cgroup",
                FindingStatus::Problem,
                format!(
                    "cgroup {} belongs to no container, yet processes run in it",
                    path.display()
                ),
                format!(
                    "kill its processes (cat {}/cgroup.procs), then rmdir it",
                    path.display()
                ),
            ),
            Err(err) => Judged::manual(
                "leftover.cgroup",
                FindingStatus::Problem,
                format!(
                    "cgroup {} belongs to no container; whether processes run in it is unknown \
                     ({err}), so --fix leaves it",
                    path.display()
                ),
                format!("rmdir {}", path.display()),
            ),
        });
    }
    if !found {
        judged.push(Judged::ok(
            "leftover.cgroup",
            "every container cgroup belongs to a container",
        ));
    }
    judged
}

fn mounts(host: &LinuxFacts) -> Vec<Judged> {
    if host.stray_mounts.is_empty() {
        return vec![Judged::ok(
            "leftover.mount",
            "no mounts under container roots on the host (the containers' own are in their \
             namespaces)",
        )];
    }
    host.stray_mounts
        .iter()
        .map(|path| {
            Judged::automatic(
                "leftover.mount",
                FindingStatus::Problem,
                format!(
                    "{} is mounted in the host's namespace under a container's root; kleened \
                     mounts only inside containers",
                    path.display()
                ),
                format!("umount -l {}", path.display()),
                Action::Unmount(path.clone()),
            )
        })
        .collect()
}

/// `\040`-style escapes of `/proc/self/mountinfo` decoded.
fn unescape(field: &str) -> String {
    let mut out = String::new();
    let mut rest = field;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let code = rest.get(at + 1..at + 4).unwrap_or("");
        match u8::from_str_radix(code, 8) {
            Ok(byte) if code.len() == 3 => {
                out.push(byte as char);
                rest = &rest[at + 4..];
            }
            _ => {
                out.push('\\');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Mounts in `mountinfo` (the text of `/proc/self/mountinfo`) below a container's root, i.e. at
/// least two levels under `containers` (the container parent's mountpoint), that are not datasets
/// of `root`: on Linux, a container's mounts live in its own mount namespace, so one on the host
/// is left over. Deepest first, the order they can be unmounted in.
pub fn stray_mounts(mountinfo: &str, containers: &Path, root: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let point = PathBuf::from(unescape(left.split_whitespace().nth(4)?));
            let source = unescape(right.split_whitespace().nth(1)?);
            let below = point.strip_prefix(containers).ok()?;
            let ours = source == root || source.starts_with(&format!("{root}/"));
            (below.components().count() >= 2 && !ours).then_some(point)
        })
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    found
}

/// The Linux facts, read from `/proc` and nft(8). Blocks.
#[cfg(target_os = "linux")]
pub fn gather(
    runner: &dyn kleene_runner::Runner,
    settings: &super::Settings,
    containers_mountpoint: Option<&Path>,
    root: &str,
) -> LinuxFacts {
    let sysctl = |path: &str| -> Result<bool, String> {
        std::fs::read_to_string(Path::new("/proc/sys").join(path))
            .map(|v| v.trim() == "1")
            .map_err(|e| e.to_string())
    };
    let nft_tables = runner
        .run(&kleene_runner::CommandSpec::new("nft").args(["list", "tables"]))
        .map_err(|e| e.to_string())
        .and_then(|out| {
            if out.code == Some(0) {
                Ok(String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .map(str::to_owned)
                    .collect())
            } else {
                Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
            }
        });
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    LinuxFacts {
        ip_forward: sysctl(IP_FORWARD),
        ip6_forward: sysctl(IP6_FORWARD),
        nft_table: settings.nft_table.clone(),
        nft_tables,
        cgroups: gather_cgroups(&mountinfo, settings),
        stray_mounts: containers_mountpoint
            .map(|c| stray_mounts(&mountinfo, c, root))
            .unwrap_or_default(),
    }
}

/// Where the daemon's cgroups are, found as `Cgroups::open` finds them but without making
/// anything.
#[cfg(target_os = "linux")]
fn gather_cgroups(mountinfo: &str, settings: &super::Settings) -> Result<CgroupFacts, String> {
    use crate::config::CgroupHierarchy;
    use crate::platform::linux::cgroup::{find_mounts, find_v1_mount, own_path, pids_under};
    let own = std::fs::read_to_string("/proc/self/cgroup").map_err(|e| e.to_string())?;
    let (v2, pids) = find_mounts(mountinfo);
    let v2 = v2.map(|m| m.join(own_path(&own, None).trim_start_matches('/')));
    let v1 = pids.map(|m| m.join(own_path(&own, Some("pids")).trim_start_matches('/')));
    let (base, hierarchy) = match settings.cgroup_hierarchy {
        None => v2
            .clone()
            .map(|b| (b, "cgroup v2"))
            .or(v1.map(|b| (b, "cgroup v1 pids"))),
        Some(CgroupHierarchy::V2) => v2.clone().map(|b| (b, "cgroup v2")),
        Some(CgroupHierarchy::V1Pids) => v1.map(|b| (b, "cgroup v1 pids")),
    }
    .ok_or("no cgroup v2 mount and no cgroup v1 'pids' hierarchy (for the configured cgroup_hierarchy)")?;
    let in_v2 = hierarchy == "cgroup v2";
    let offered = std::fs::read_to_string(base.join("cgroup.controllers")).unwrap_or_default();
    let mut controllers = vec![];
    let mut parents = vec![base.join(&settings.cgroup_parent)];
    for controller in ["memory", "pids", "cpu"] {
        let home = if in_v2 && offered.split_whitespace().any(|c| c == controller) {
            Some("cgroup v2".to_owned())
        } else if settings.cgroup_hierarchy == Some(CgroupHierarchy::V2) {
            None
        } else {
            find_v1_mount(mountinfo, controller).map(|mount| {
                let dir = mount.join(own_path(&own, Some(controller)).trim_start_matches('/'));
                parents.push(dir.join(&settings.cgroup_parent));
                format!("cgroup v1 at {}", mount.display())
            })
        };
        controllers.push((controller.to_owned(), home));
    }
    parents.dedup();
    let mut children: Vec<(String, Result<bool, String>)> = vec![];
    for parent in &parents {
        let Ok(entries) = std::fs::read_dir(parent) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let Ok(id) = entry.file_name().into_string() else {
                continue;
            };
            let populated = pids_under(&entry.path())
                .map(|pids| !pids.is_empty())
                .map_err(|e| e.to_string());
            match children.iter_mut().find(|(c, _)| *c == id) {
                Some((_, known)) => {
                    if let (Ok(false), Ok(true) | Err(_)) = (&known, &populated) {
                        *known = populated;
                    }
                }
                None => children.push((id, populated)),
            }
        }
    }
    Ok(CgroupFacts {
        hierarchy: hierarchy.to_owned(),
        parent: parents[0].clone(),
        controllers,
        children,
    })
}

/// Removes a leftover container cgroup, in the tracking hierarchy and the v1 ones of the limits,
/// with the daemon's own removal (empty cgroups only: the kernel refuses others).
#[cfg(target_os = "linux")]
pub fn remove_cgroup(settings: &super::Settings, id: &str) -> Result<(), String> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| e.to_string())?;
    let own = std::fs::read_to_string("/proc/self/cgroup").map_err(|e| e.to_string())?;
    let facts = gather_cgroups(&mountinfo, settings)?;
    let mut dirs = vec![facts.parent.join(id)];
    for controller in ["memory", "pids", "cpu"] {
        if let Some(mount) = crate::platform::linux::cgroup::find_v1_mount(&mountinfo, controller) {
            dirs.push(
                mount
                    .join(
                        crate::platform::linux::cgroup::own_path(&own, Some(controller))
                            .trim_start_matches('/'),
                    )
                    .join(&settings.cgroup_parent)
                    .join(id),
            );
        }
    }
    for dir in dirs {
        crate::platform::linux::cgroup::remove_tree(&dir).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Unmounts a leftover mount (lazily: a busy one goes once its last user does).
#[cfg(target_os = "linux")]
pub fn unmount(path: &Path) -> Result<(), String> {
    nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH)
        .map_err(|e| format!("cannot unmount {}: {e}", path.display()))
}

/// Sets a `/proc/sys` setting to 1.
#[cfg(target_os = "linux")]
pub fn switch_on(path: &str) -> Result<(), String> {
    std::fs::write(Path::new("/proc/sys").join(path), "1")
        .map_err(|e| format!("cannot set {} to 1: {e}", path.replace('/', ".")))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_all_ok, flagged, linux, nat_network, store};
    use super::super::HostFacts;
    use super::*;

    fn host(facts: &mut Facts) -> &mut LinuxFacts {
        match &mut facts.host {
            HostFacts::Linux(host) => host,
            HostFacts::FreeBsd(_) => unreachable!(),
        }
    }

    fn run(facts: &Facts) -> Vec<Judged> {
        match &facts.host {
            HostFacts::Linux(host) => judge(facts, host),
            HostFacts::FreeBsd(_) => unreachable!(),
        }
    }

    #[test]
    fn a_healthy_host_is_ok() {
        assert_all_ok(&run(&linux()));
    }

    #[test]
    fn forwarding_off_is_a_problem_only_when_a_network_needs_it() {
        let mut facts = linux();
        host(&mut facts).ip_forward = Ok(false);
        assert!(flagged(&run(&facts), "linux.ip-forward").is_empty());
        store(&mut facts).networks = vec![nat_network()];
        let judged = run(&facts);
        let found = flagged(&judged, "linux.ip-forward");
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].finding.fix.as_deref(),
            Some("sysctl -w net.ipv4.ip_forward=1")
        );
        assert_eq!(found[0].action, Some(Action::PrepareNetworking));
    }

    #[test]
    fn the_table_must_be_loaded_while_running_and_gone_while_stopped() {
        let mut facts = linux();
        store(&mut facts).networks = vec![nat_network()];
        facts.daemon_running = true;
        let judged = run(&facts);
        assert_eq!(flagged(&judged, "linux.nftables")[0].action, None);
        host(&mut facts).nft_tables = Ok(vec!["table inet kleene".into()]);
        assert!(flagged(&run(&facts), "linux.nftables").is_empty());
        facts.daemon_running = false;
        let judged = run(&facts);
        let found = flagged(&judged, "linux.nftables");
        assert_eq!(found[0].action, Some(Action::ClearFirewall));
        assert_eq!(
            found[0].finding.fix.as_deref(),
            Some("nft delete table inet kleene")
        );
    }

    #[test]
    fn missing_controllers_are_warnings_and_foreign_cgroups_leftovers() {
        let mut facts = linux();
        facts.running = Ok(["c7".to_owned()].into());
        if let Ok(cgroups) = &mut host(&mut facts).cgroups {
            cgroups.controllers[0].1 = None;
            cgroups.children = vec![
                ("c1".into(), Ok(false)),
                ("c2".into(), Ok(false)),
                ("c7".into(), Ok(true)),
                ("c8".into(), Err("cannot read".into())),
            ];
        }
        let judged = run(&facts);
        assert_eq!(
            flagged(&judged, "linux.limits")[0].finding.status,
            FindingStatus::Warning
        );
        let actions: Vec<Option<Action>> = flagged(&judged, "leftover.cgroup")
            .iter()
            .map(|j| j.action.clone())
            .collect();
        assert_eq!(
            actions,
            [Some(Action::RemoveCgroup("c2".into())), None, None]
        );
    }

    #[test]
    fn mounts_below_container_roots_that_are_not_datasets_are_strays() {
        let mountinfo = "\
44 27 0:41 / /p rw - fuse.zfs p rw
45 44 0:42 / /p/r/container/c1 rw - fuse.zfs p/r/container/c1 rw
46 45 0:43 / /p/r/container/c1/proc rw - proc proc rw
47 46 0:44 / /p/r/container/c1/proc/sys rw - proc proc rw
48 45 0:45 / /p/r/container/c1/data rw - fuse.zfs p/r/volumes/v rw
49 44 0:46 / /p/r/container/my\\040dir/x rw - tmpfs tmpfs rw
50 44 0:47 / /p/r/containers/c1/x rw - tmpfs tmpfs rw
";
        assert_eq!(
            stray_mounts(mountinfo, Path::new("/p/r/container"), "p/r"),
            [
                PathBuf::from("/p/r/container/c1/proc/sys"),
                PathBuf::from("/p/r/container/c1/proc"),
                PathBuf::from("/p/r/container/my dir/x"),
            ]
        );
        let mut facts = linux();
        host(&mut facts).stray_mounts = vec!["/p/r/container/c1/proc".into()];
        assert_eq!(
            flagged(&run(&facts), "leftover.mount")[0].action,
            Some(Action::Unmount("/p/r/container/c1/proc".into()))
        );
    }
}
