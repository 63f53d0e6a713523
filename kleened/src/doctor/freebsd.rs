//! FreeBSD checks: pf enabled and a ruleset loaded while the daemon runs with networks, the
//! forwarding sysctls a network needs, the kernel modules `kleened init` loads, and nullfs or
//! devfs mounts left under the roots of containers whose jail is gone.
//!
//! Every command line comes from a pure function here, in [`crate::platform::freebsd::host`] or in
//! [`crate::platform::freebsd::mounts`], pinned by
//! `kleened/tests/goldens/freebsd/doctor.txt`; [`gather`] runs them through the runner.

use std::path::{Path, PathBuf};

use kleene_api::FindingStatus;
use kleene_runner::{CommandSpec, Runner};

use super::{Action, Facts, Judged};
use crate::platform::freebsd::host::{kldstat, sysctl_get, MODULES};
use crate::platform::freebsd::mounts::{mount_table, parse_mount_table, unmount_order};

const PFCTL: &str = "/sbin/pfctl";

/// IPv4 forwarding, which the daemon turns on at start.
pub const FORWARDING: &str = "net.inet.ip.forwarding";
/// IPv6 forwarding, for networks with an IPv6 gateway.
pub const FORWARDING6: &str = "net.inet6.ip6.forwarding";

/// pfctl(8) `-s info`: pf's status (`Status: Enabled ...`) and counters.
pub fn pf_info() -> CommandSpec {
    CommandSpec::new(PFCTL).args(["-s", "info"])
}

/// pfctl(8) `-s rules`: the loaded filter rules, one per line.
pub fn pf_rules() -> CommandSpec {
    CommandSpec::new(PFCTL).args(["-s", "rules"])
}

/// What the judge looks at on FreeBSD.
#[derive(Debug, Clone)]
pub struct FreeBsdFacts {
    /// Whether pf is enabled, from `pfctl -s info`.
    pub pf_enabled: Result<bool, String>,
    /// How many filter rules are loaded.
    pub pf_rules: Result<usize, String>,
    /// `net.inet.ip.forwarding`.
    pub forwarding: Result<bool, String>,
    /// `net.inet6.ip6.forwarding`.
    pub forwarding6: Result<bool, String>,
    /// Each module of [`MODULES`] with whether it is loaded.
    pub modules: Vec<(String, bool)>,
    /// The containers' parent mountpoint, when known.
    pub containers: Option<PathBuf>,
    /// The nullfs and devfs mounts under it, in the order to unmount them.
    pub mounts: Result<Vec<String>, String>,
}

impl FreeBsdFacts {
    /// A host as the daemon needs it (for tests).
    #[cfg(test)]
    pub fn healthy() -> FreeBsdFacts {
        FreeBsdFacts {
            pf_enabled: Ok(true),
            pf_rules: Ok(3),
            forwarding: Ok(true),
            forwarding6: Ok(true),
            modules: MODULES.iter().map(|m| (m.to_string(), true)).collect(),
            containers: Some("/zroot/kleene/container".into()),
            mounts: Ok(vec![]),
        }
    }
}

/// Whether `pfctl -s info` says pf is enabled.
pub fn parse_enabled(info: &str) -> Option<bool> {
    info.lines().find_map(|line| {
        let status = line.trim().strip_prefix("Status:")?;
        let word = status.split_whitespace().next()?;
        Some(word == "Enabled")
    })
}

/// Runs the checks' commands; changes nothing. Blocks.
pub fn gather(runner: &dyn Runner, containers: Option<&Path>) -> FreeBsdFacts {
    let run = |spec: &CommandSpec| -> Result<String, String> {
        let out = runner.run(spec).map_err(|e| format!("{spec}: {e}"))?;
        if out.code == Some(0) {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "{spec}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    };
    let sysctl = |name: &str| run(&sysctl_get(name)).map(|v| v.trim() == "1");
    FreeBsdFacts {
        pf_enabled: run(&pf_info()).and_then(|info| {
            parse_enabled(&info).ok_or_else(|| "pfctl -s info printed no Status line".into())
        }),
        pf_rules: run(&pf_rules()).map(|r| r.lines().filter(|l| !l.trim().is_empty()).count()),
        forwarding: sysctl(FORWARDING),
        forwarding6: sysctl(FORWARDING6),
        modules: MODULES
            .iter()
            .map(|m| {
                let loaded = runner.run(&kldstat(m)).is_ok_and(|o| o.code == Some(0));
                (m.to_string(), loaded)
            })
            .collect(),
        containers: containers.map(Path::to_path_buf),
        mounts: match containers {
            Some(containers) => run(&mount_table()).and_then(|text| {
                parse_mount_table(&text)
                    .map(|table| unmount_order(&table, &containers.to_string_lossy()))
            }),
            None => Ok(vec![]),
        },
    }
}

/// The container whose root `node` is under, if it is under `containers`.
fn container_of<'a>(containers: &Path, node: &'a str) -> Option<&'a str> {
    let rest = node.strip_prefix(containers.to_str()?)?.strip_prefix('/')?;
    rest.split('/').next().filter(|id| !id.is_empty())
}

fn mounts(facts: &Facts, host: &FreeBsdFacts) -> Vec<Judged> {
    let nodes = match &host.mounts {
        Ok(nodes) => nodes,
        Err(err) => {
            return vec![Judged::manual(
                "leftover.mount",
                FindingStatus::Warning,
                format!("cannot list the mounts: {err}"),
                "mount -t nullfs,devfs",
            )]
        }
    };
    let Some(containers) = &host.containers else {
        return vec![];
    };
    let mut judged = vec![];
    for node in nodes {
        let Some(id) = container_of(containers, node) else {
            continue;
        };
        judged.push(match &facts.running {
            Ok(running) if running.contains(id) => continue,
            Ok(_) => Judged::automatic(
                "leftover.mount",
                FindingStatus::Problem,
                format!("{node} is mounted under the root of container {id}, whose jail is gone"),
                format!("umount {node}"),
                Action::Unmount(PathBuf::from(node)),
            ),
            Err(err) => Judged::manual(
                "leftover.mount",
                FindingStatus::Problem,
                format!(
                    "{node} is mounted under the root of container {id}; whether its jail runs \
                     is unknown ({err}), so --fix leaves it"
                ),
                format!("umount {node}"),
            ),
        });
    }
    if judged.is_empty() {
        judged.push(Judged::ok(
            "leftover.mount",
            "every mount under a container's root belongs to a running jail",
        ));
    }
    judged
}

/// The FreeBSD findings.
pub fn judge(facts: &Facts, host: &FreeBsdFacts) -> Vec<Judged> {
    let mut judged = vec![];
    for (module, loaded) in &host.modules {
        judged.push(if *loaded {
            Judged::ok("freebsd.modules", format!("{module} is loaded"))
        } else {
            Judged::manual(
                "freebsd.modules",
                FindingStatus::Problem,
                format!("kernel module {module} is not loaded"),
                format!("kldload -n {module} (kleened init also loads it at boot)"),
            )
        });
    }
    judged.push(match &host.pf_enabled {
        Ok(true) => Judged::ok("freebsd.pf", "pf is enabled"),
        Ok(false) => Judged::automatic(
            "freebsd.pf",
            FindingStatus::Problem,
            "pf is disabled: no NAT, no published ports, no isolation",
            "pfctl -e",
            Action::PrepareNetworking,
        ),
        Err(err) => Judged::manual(
            "freebsd.pf",
            FindingStatus::Problem,
            format!("cannot read pf's status: {err}"),
            "kldload -n pf && pfctl -e",
        ),
    });
    judged.extend(mounts(facts, host));
    let Some(store) = facts.store() else {
        return judged;
    };
    if facts.daemon_running && store.filters() {
        judged.push(match &host.pf_rules {
            Ok(0) => Judged::manual(
                "freebsd.pf-rules",
                FindingStatus::Problem,
                "no pf rules are loaded, yet kleened has networks",
                "restart kleened (it loads its pf.conf at start), or pfctl -f <pf_config_path>",
            ),
            Ok(n) => Judged::ok("freebsd.pf-rules", format!("{n} pf rules are loaded")),
            Err(err) => Judged::manual(
                "freebsd.pf-rules",
                FindingStatus::Problem,
                format!("cannot list pf's rules: {err}"),
                "pfctl -s rules",
            ),
        });
    }
    let checks = [
        (
            "freebsd.ip-forwarding",
            FORWARDING,
            &host.forwarding,
            store.needs_forwarding(),
            (
                "no network with NAT and no published ports",
                "networks with NAT and published ports",
            ),
            true,
        ),
        (
            "freebsd.ip6-forwarding",
            FORWARDING6,
            &host.forwarding6,
            store.needs_forwarding6(),
            (
                "no network with an IPv6 gateway",
                "networks with an IPv6 gateway",
            ),
            false,
        ),
    ];
    for (check, name, value, needed, why, automatic) in checks {
        judged.push(match (needed, value) {
            (false, _) => Judged::ok(check, format!("{name} is not needed ({})", why.0)),
            (true, Ok(true)) => Judged::ok(check, format!("{name} is 1, as {} need", why.1)),
            (true, Ok(false)) if automatic => Judged::automatic(
                check,
                FindingStatus::Problem,
                format!(
                    "{name} is 0: {} do not work (their containers cannot reach out or be reached)",
                    why.1
                ),
                format!("sysctl {name}=1"),
                Action::PrepareNetworking,
            ),
            (true, Ok(false)) => Judged::manual(
                check,
                FindingStatus::Problem,
                format!(
                    "{name} is 0: {} do not work (their containers cannot reach out or be reached)",
                    why.1
                ),
                format!("sysctl {name}=1"),
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

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_all_ok, flagged, healthy, nat_network, store};
    use super::super::HostFacts;
    use super::*;

    fn facts(host: FreeBsdFacts) -> Facts {
        healthy(HostFacts::FreeBsd(host))
    }

    fn run(facts: &Facts) -> Vec<Judged> {
        match &facts.host {
            HostFacts::FreeBsd(host) => judge(facts, host),
            HostFacts::Linux(_) => unreachable!(),
        }
    }

    #[test]
    fn pf_status_is_read_from_pfctl_info() {
        let info = "Status: Enabled for 0 days 01:02:03           Debug: Urgent\n\nState Table\n";
        assert_eq!(parse_enabled(info), Some(true));
        assert_eq!(parse_enabled("Status: Disabled for 0 days\n"), Some(false));
        assert_eq!(parse_enabled("nothing"), None);
    }

    #[test]
    fn a_healthy_host_is_ok_and_each_lack_has_its_command() {
        assert_all_ok(&run(&facts(FreeBsdFacts::healthy())));
        let mut host = FreeBsdFacts::healthy();
        host.pf_enabled = Ok(false);
        host.pf_rules = Ok(0);
        host.forwarding = Ok(false);
        host.modules[4].1 = false;
        let mut facts = facts(host);
        store(&mut facts).networks = vec![nat_network()];
        facts.daemon_running = true;
        let judged = run(&facts);
        let fixes: Vec<(&str, Option<&str>, bool)> = judged
            .iter()
            .filter(|j| j.finding.status != FindingStatus::Ok)
            .map(|j| {
                (
                    j.finding.check.as_str(),
                    j.finding.fix.as_deref(),
                    j.action.is_some(),
                )
            })
            .collect();
        assert_eq!(
            fixes,
            [
                (
                    "freebsd.modules",
                    Some("kldload -n if_epair (kleened init also loads it at boot)"),
                    false
                ),
                ("freebsd.pf", Some("pfctl -e"), true),
                (
                    "freebsd.pf-rules",
                    Some("restart kleened (it loads its pf.conf at start), or pfctl -f <pf_config_path>"),
                    false
                ),
                (
                    "freebsd.ip-forwarding",
                    Some("sysctl net.inet.ip.forwarding=1"),
                    true
                ),
            ]
        );
        assert!(flagged(&judged, "freebsd.ip6-forwarding").is_empty());
    }

    #[test]
    fn gather_reads_pf_sysctls_and_modules() {
        let runner = kleene_runner::RecordingRunner::new();
        runner.push_ok("Status: Disabled for 0 days 00:00:01\n");
        runner.push_ok("");
        runner.push_ok("0\n");
        runner.push_ok("1\n");
        for _ in MODULES {
            runner.push_ok("");
        }
        runner.push_ok(
            r#"{"mount": {"mounted": [
              {"special": "devfs", "node": "/zroot/kleene/container/c1/dev", "fstype": "devfs", "opts": []},
              {"special": "/data", "node": "/zroot/kleene/container/c2/data", "fstype": "nullfs", "opts": []},
              {"special": "devfs", "node": "/dev", "fstype": "devfs", "opts": []}
            ]}}"#,
        );
        let host = gather(&runner, Some(Path::new("/zroot/kleene/container")));
        assert_eq!(host.pf_enabled, Ok(false));
        assert_eq!(host.pf_rules, Ok(0));
        assert_eq!(host.forwarding, Ok(false));
        assert_eq!(host.forwarding6, Ok(true));
        assert!(host.modules.iter().all(|(_, loaded)| *loaded));
        assert_eq!(
            host.mounts,
            Ok(vec![
                "/zroot/kleene/container/c2/data".to_owned(),
                "/zroot/kleene/container/c1/dev".to_owned(),
            ])
        );
        // c1 runs: its devfs is its jail's; c2's nullfs is left over.
        let mut facts = facts(host);
        facts.running = Ok(["c1".to_owned()].into());
        let judged = run(&facts);
        let found = flagged(&judged, "leftover.mount");
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].action,
            Some(Action::Unmount("/zroot/kleene/container/c2/data".into()))
        );
        assert_eq!(
            found[0].finding.fix.as_deref(),
            Some("umount /zroot/kleene/container/c2/data")
        );
    }
}
