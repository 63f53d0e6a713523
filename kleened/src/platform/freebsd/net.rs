//! Host networking on FreeBSD: bridge networks as if_bridge(4) interfaces, loopback networks as
//! cloned `lo` interfaces, `custom` networks on an existing interface; the packet filter as pf
//! rules rendered into the user's pf.conf template ([`pf::pfconf`]) and applied with pfctl(8)
//! ([`pf::Pfctl`]: checked with `pfctl -n -f` before `pfctl -f` loads it); IP forwarding through
//! sysctl(3) (the `sysctl` crate).
//!
//! Every command line comes from a pure function below, pinned by the goldens of
//! `kleened/tests/freebsd_commands.rs` (`network-*.txt`), and runs through the runner. The
//! interfaces the daemon makes carry its identity as their ifconfig(8) `description`, which is how
//! they are told from anyone else's: an interface of a wanted name that is not marked is refused
//! and never destroyed (Kleene destroys any interface of that name).
//!
//! The command lines and parsers are in [`super::ifconfig`], which the jail runtime uses as well
//! for the epairs of vnet containers and the aliases of ipnet containers ([`super::wiring`]).

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use kleene_api::NetworkType;
use kleene_runner::{CommandSpec, Output, Runner};

use super::ifconfig::{
    add_inet, add_inet6, clone_named, cloner, destroy, list_interfaces, mark_up,
    parse_default_interface, parse_interface_list, parse_status, remove_member, routes, status,
    status_all, InterfaceStatus,
};
use crate::platform::network::{NetworkError, NetworkHost, NetworkSetup};

/// The sysctl(3) variable that makes the host forward IPv4 packets.
pub const FORWARDING: &str = "net.inet.ip.forwarding";
/// The same for IPv6.
pub const FORWARDING6: &str = "net.inet6.ip6.forwarding";

/// Kernel settings, read and written through sysctl(3). A seam, so tests record instead of
/// changing the host.
pub trait KernelSettings: Send + Sync + fmt::Debug {
    /// The setting's value as text.
    fn get(&self, name: &str) -> Result<String, String>;
    /// Sets it.
    fn set(&self, name: &str, value: &str) -> Result<(), String>;
}

/// sysctl(3) through the `sysctl` crate (FreeBSD only; elsewhere every call fails).
#[derive(Debug, Default)]
pub struct Sysctl;

#[cfg(target_os = "freebsd")]
impl KernelSettings for Sysctl {
    fn get(&self, name: &str) -> Result<String, String> {
        use sysctl::Sysctl as _;
        sysctl::Ctl::new(name)
            .and_then(|ctl| ctl.value_string())
            .map_err(|e| e.to_string())
    }

    fn set(&self, name: &str, value: &str) -> Result<(), String> {
        use sysctl::Sysctl as _;
        sysctl::Ctl::new(name)
            .and_then(|ctl| ctl.set_value_string(value))
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

#[cfg(not(target_os = "freebsd"))]
impl KernelSettings for Sysctl {
    fn get(&self, name: &str) -> Result<String, String> {
        Err(format!(
            "{name}: FreeBSD's sysctl(3) settings exist only on FreeBSD"
        ))
    }

    fn set(&self, name: &str, _value: &str) -> Result<(), String> {
        Err(format!(
            "{name}: FreeBSD's sysctl(3) settings exist only on FreeBSD"
        ))
    }
}

/// Turns a kernel setting to `1` unless it is already.
fn switch_on(settings: &dyn KernelSettings, name: &str) -> Result<(), NetworkError> {
    let current = settings
        .get(name)
        .map_err(|e| NetworkError::Host(format!("cannot read {name}: {e}")))?;
    if current.trim() == "1" {
        return Ok(());
    }
    settings
        .set(name, "1")
        .map_err(|e| NetworkError::Host(format!("cannot set {name} to 1: {e}")))?;
    tracing::info!(setting = name, "turned on");
    Ok(())
}

/// Host networking on FreeBSD.
#[derive(Debug)]
pub struct PfNetwork {
    runner: Arc<dyn Runner>,
    pfctl: pf::Pfctl,
    /// The ruleset pf loads (`pf_config_path`).
    pf_conf: PathBuf,
    /// The user's template it is rendered from (`pf_config_template_path`), read at every apply.
    template: PathBuf,
    /// The description the daemon's interfaces carry.
    marker: String,
    settings: Box<dyn KernelSettings>,
}

fn host_error(what: &str, spec: &CommandSpec, err: impl fmt::Display) -> NetworkError {
    NetworkError::Host(format!("{what}: {spec}: {err}"))
}

impl PfNetwork {
    /// Host networking whose rules are written to `pf_conf` from `template` and whose interfaces
    /// carry `marker` as their description.
    pub fn new(
        runner: Arc<dyn Runner>,
        pf_conf: PathBuf,
        template: PathBuf,
        marker: &str,
    ) -> PfNetwork {
        PfNetwork {
            pfctl: pf::Pfctl::new(Arc::clone(&runner)),
            runner,
            pf_conf,
            template,
            marker: marker.to_owned(),
            settings: Box::new(Sysctl),
        }
    }

    /// The same, reading and writing kernel settings through `settings` (tests).
    pub fn with_settings(mut self, settings: Box<dyn KernelSettings>) -> PfNetwork {
        self.settings = settings;
        self
    }

    fn output(&self, what: &str, spec: &CommandSpec) -> Result<Output, NetworkError> {
        tracing::debug!(command = %spec, "network command");
        self.runner.run(spec).map_err(|e| host_error(what, spec, e))
    }

    /// Runs a command that must succeed; answers its standard output.
    fn run(&self, what: &str, spec: &CommandSpec) -> Result<String, NetworkError> {
        let output = self.output(what, spec)?;
        if !output.succeeded() {
            return Err(host_error(what, spec, output.stderr_text().trim()));
        }
        Ok(output.stdout_text())
    }

    fn names(&self) -> Result<Vec<String>, NetworkError> {
        Ok(parse_interface_list(
            &self.run("cannot list interfaces", &list_interfaces())?,
        ))
    }

    /// One interface's status, `None` when it does not exist.
    fn status_of(&self, name: &str) -> Result<Option<InterfaceStatus>, NetworkError> {
        let spec = status(name);
        let output = self.output(&format!("cannot read interface {name}"), &spec)?;
        if !output.succeeded() {
            // ifconfig exits 1 for an interface that does not exist; anything else is a failure.
            if !self.names()?.iter().any(|n| n == name) {
                return Ok(None);
            }
            return Err(host_error(
                &format!("cannot read interface {name}"),
                &spec,
                output.stderr_text().trim(),
            ));
        }
        Ok(parse_status(&output.stdout_text())
            .into_iter()
            .find(|i| i.name == name))
    }

    fn is_ours(&self, status: &InterfaceStatus) -> bool {
        status.description.as_deref() == Some(self.marker.as_str())
    }

    /// Destroys an interface of the daemon, members of a bridge taken off first.
    fn take_down(&self, status: &InterfaceStatus) -> Result<(), NetworkError> {
        for member in &status.members {
            // A member that went meanwhile is no reason to keep the bridge.
            let _ = self.output(
                "cannot remove a bridge member",
                &remove_member(&status.name, member),
            );
        }
        self.run(
            &format!("cannot remove interface {}", status.name),
            &destroy(&status.name),
        )
        .map(drop)
    }
}

/// pfctl's refusal as the network seam says it.
fn pf_failure(err: pf::PfctlError) -> NetworkError {
    match err {
        pf::PfctlError::Rejected { problems } => NetworkError::Refused {
            checker: format!("{} -n -f", pf::pfctl::PFCTL),
            message: problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        },
        other => NetworkError::Host(other.to_string()),
    }
}

impl NetworkHost for PfNetwork {
    fn prepare(&self) -> Result<(), NetworkError> {
        switch_on(self.settings.as_ref(), FORWARDING)?;
        match self.pfctl.enable().map_err(pf_failure)? {
            pf::PfEnabled::Now => tracing::info!("pf enabled"),
            pf::PfEnabled::Already => tracing::debug!("pf was enabled already"),
        }
        Ok(())
    }

    fn host_gateway(&self) -> Result<Option<String>, NetworkError> {
        let json = self.run("cannot read the routing table", &routes())?;
        parse_default_interface(&json).map_err(NetworkError::Host)
    }

    fn interface_exists(&self, name: &str) -> Result<bool, NetworkError> {
        Ok(self.names()?.iter().any(|n| n == name))
    }

    fn own_interfaces(&self) -> Result<Vec<String>, NetworkError> {
        Ok(
            parse_status(&self.run("cannot list interfaces", &status_all())?)
                .into_iter()
                .filter(|i| self.is_ours(i))
                .map(|i| i.name)
                .collect(),
        )
    }

    fn addresses(&self, interface: &str) -> Result<Vec<IpAddr>, NetworkError> {
        Ok(self
            .status_of(interface)?
            .map(|s| s.addresses)
            .unwrap_or_default())
    }

    fn create(&self, network: &NetworkSetup) -> Result<(), NetworkError> {
        let name = &network.interface;
        let Some(cloner) = cloner(network.kind) else {
            return if self.interface_exists(name)? {
                Ok(())
            } else {
                Err(NetworkError::Invalid(format!(
                    "interface '{name}' of the custom network does not exist"
                )))
            };
        };
        match self.status_of(name)? {
            // The daemon's own, from an earlier run: made again, with this network's addresses.
            Some(old) if self.is_ours(&old) => self.take_down(&old)?,
            Some(_) => {
                return Err(NetworkError::Invalid(format!(
                    "interface '{name}' exists and is not kleened's: choose another name"
                )))
            }
            None => {}
        }
        if network.gateway6.is_some() {
            switch_on(self.settings.as_ref(), FORWARDING6)?;
        }
        self.run(
            &format!("cannot make interface {name}"),
            &clone_named(cloner, name),
        )?;
        let mut steps = vec![mark_up(name, &self.marker)];
        steps.extend(network.gateway.map(|gateway| add_inet(name, gateway)));
        steps.extend(network.gateway6.map(|gateway| add_inet6(name, gateway)));
        for spec in &steps {
            if let Err(err) = self.run(&format!("cannot set up interface {name}"), spec) {
                let _ = self.output("cannot remove a half-made interface", &destroy(name));
                return Err(err);
            }
        }
        Ok(())
    }

    fn remove(&self, network: &NetworkSetup) -> Result<(), NetworkError> {
        if network.kind == NetworkType::Custom {
            return Ok(());
        }
        match self.status_of(&network.interface)? {
            None => Ok(()),
            Some(status) if self.is_ours(&status) => self.take_down(&status),
            Some(_) => {
                tracing::warn!(interface = %network.interface, "not removing an interface that is not kleened's");
                Ok(())
            }
        }
    }

    fn apply_firewall(&self, policy: &pf::Policy) -> Result<(), NetworkError> {
        let template = std::fs::read_to_string(&self.template).map_err(|e| {
            NetworkError::Host(format!(
                "cannot read the pf.conf template {} (key 'pf_config_template_path'): {e}",
                self.template.display()
            ))
        })?;
        let rules = pf::pfconf::render(policy);
        self.pfctl
            .apply(&template, &rules, &self.pf_conf)
            .map_err(pf_failure)
    }

    fn clear_firewall(&self) -> Result<(), NetworkError> {
        self.apply_firewall(&pf::Policy::default())
    }

    fn policy_names_members(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::freebsd::testdata::{BRIDGE_STATUS, MARKER};
    use kleene_runner::RecordingRunner;
    use std::collections::HashMap;
    use std::sync::Mutex;

    /// Kernel settings in memory, with what was written.
    #[derive(Debug, Default)]
    struct Settings {
        values: Mutex<HashMap<String, String>>,
        written: Mutex<Vec<String>>,
    }

    impl KernelSettings for Arc<Settings> {
        fn get(&self, name: &str) -> Result<String, String> {
            self.values
                .lock()
                .unwrap()
                .get(name)
                .cloned()
                .ok_or_else(|| format!("unknown oid '{name}'"))
        }
        fn set(&self, name: &str, value: &str) -> Result<(), String> {
            self.written.lock().unwrap().push(format!("{name}={value}"));
            self.values
                .lock()
                .unwrap()
                .insert(name.to_owned(), value.to_owned());
            Ok(())
        }
    }

    fn network(dir: &std::path::Path) -> (Arc<RecordingRunner>, Arc<Settings>, PfNetwork) {
        let runner = Arc::new(RecordingRunner::new());
        let settings = Arc::new(Settings::default());
        for name in [FORWARDING, FORWARDING6] {
            settings
                .values
                .lock()
                .unwrap()
                .insert(name.into(), "0".into());
        }
        let template = dir.join("pf.conf.kleene");
        std::fs::write(
            &template,
            "# mine\n<%= kleene_macros %>\n<%= kleene_translation %>\n<%= kleene_filtering %>\n",
        )
        .unwrap();
        let host = PfNetwork::new(runner.clone(), dir.join("pf.conf"), template, MARKER)
            .with_settings(Box::new(Arc::clone(&settings)));
        (runner, settings, host)
    }

    #[test]
    fn prepare_turns_forwarding_on_once_and_enables_pf() {
        let dir = tempfile::tempdir().unwrap();
        let (runner, settings, host) = network(dir.path());
        runner.push_err(1, "pfctl: pf already enabled\n");
        host.prepare().unwrap();
        host.prepare().unwrap();
        assert_eq!(
            *settings.written.lock().unwrap(),
            ["net.inet.ip.forwarding=1"]
        );
        assert_eq!(runner.lines(), ["/sbin/pfctl -e", "/sbin/pfctl -e"]);
    }

    #[test]
    fn a_bridge_is_made_marked_with_its_gateways_and_made_again_when_it_is_ours() {
        let dir = tempfile::tempdir().unwrap();
        let (runner, settings, host) = network(dir.path());
        let setup = NetworkSetup {
            kind: NetworkType::Bridge,
            interface: "kleene0".into(),
            gateway: Some("10.13.37.1/24".parse().unwrap()),
            gateway6: Some("fd00:13:37::1/64".parse().unwrap()),
        };
        // Not there yet.
        runner.push_err(1, "ifconfig: interface kleene0 does not exist\n");
        runner.push_ok("em0 lo0\n");
        runner.push_ok("kleene0\n");
        host.create(&setup).unwrap();
        assert_eq!(
            runner.lines(),
            [
                "/sbin/ifconfig kleene0",
                "/sbin/ifconfig -l",
                "/sbin/ifconfig bridge create name kleene0",
                "/sbin/ifconfig kleene0 description kleened:zroot/kleene up",
                "/sbin/ifconfig kleene0 inet 10.13.37.1/24 alias",
                "/sbin/ifconfig kleene0 inet6 fd00:13:37::1/64 alias -ifdisabled",
            ]
        );
        assert_eq!(
            *settings.written.lock().unwrap(),
            ["net.inet6.ip6.forwarding=1"]
        );

        // Left by an earlier run: its members go, it is destroyed and made again.
        runner.clear_calls();
        runner.push_ok(BRIDGE_STATUS);
        host.create(&setup).unwrap();
        assert_eq!(
            runner.lines()[..5],
            [
                "/sbin/ifconfig kleene0",
                "/sbin/ifconfig kleene0 deletem epair1a",
                "/sbin/ifconfig kleene0 deletem epair0a",
                "/sbin/ifconfig kleene0 destroy",
                "/sbin/ifconfig bridge create name kleene0",
            ]
        );
    }

    #[test]
    fn an_interface_that_is_not_the_daemons_is_refused_and_never_destroyed() {
        let dir = tempfile::tempdir().unwrap();
        let (runner, _settings, host) = network(dir.path());
        let foreign = BRIDGE_STATUS.replace(MARKER, "uplink to the lab");
        runner.push_ok(&foreign);
        let setup = NetworkSetup {
            kind: NetworkType::Bridge,
            interface: "kleene0".into(),
            gateway: None,
            gateway6: None,
        };
        let err = host.create(&setup).unwrap_err();
        assert!(matches!(err, NetworkError::Invalid(_)), "{err}");
        assert_eq!(
            err.to_string(),
            "interface 'kleene0' exists and is not kleened's: choose another name"
        );
        // Removing the network leaves it alone too.
        runner.push_ok(&foreign);
        host.remove(&setup).unwrap();
        assert_eq!(runner.lines(), ["/sbin/ifconfig kleene0"; 2]);

        // Without any description it is not ours either.
        let (runner, _settings, host) = network(dir.path());
        runner.push_ok(&BRIDGE_STATUS.replace("\tdescription: kleened:zroot/kleene\n", ""));
        assert!(host.create(&setup).is_err());
        assert_eq!(runner.lines(), ["/sbin/ifconfig kleene0"]);
    }

    #[test]
    fn a_failed_step_removes_the_half_made_interface() {
        let dir = tempfile::tempdir().unwrap();
        let (runner, _settings, host) = network(dir.path());
        let setup = NetworkSetup {
            kind: NetworkType::Loopback,
            interface: "kleene1".into(),
            gateway: None,
            gateway6: None,
        };
        runner.push_err(1, "");
        runner.push_ok("em0 lo0\n");
        runner.push_ok("kleene1\n");
        runner.push_err(1, "ifconfig: SIOCSIFDESCR: Operation not permitted\n");
        let err = host.create(&setup).unwrap_err();
        assert!(err.to_string().contains("Operation not permitted"), "{err}");
        assert_eq!(
            runner.lines()[2..],
            [
                "/sbin/ifconfig lo create name kleene1",
                "/sbin/ifconfig kleene1 description kleened:zroot/kleene up",
                "/sbin/ifconfig kleene1 destroy",
            ]
        );
    }

    #[test]
    fn custom_networks_need_their_interface_and_keep_it() {
        let dir = tempfile::tempdir().unwrap();
        let (runner, _settings, host) = network(dir.path());
        let setup = NetworkSetup {
            kind: NetworkType::Custom,
            interface: "em1".into(),
            gateway: None,
            gateway6: None,
        };
        runner.push_ok("em0 lo0\n");
        assert!(matches!(host.create(&setup), Err(NetworkError::Invalid(_))));
        runner.push_ok("em0 em1 lo0\n");
        host.create(&setup).unwrap();
        host.remove(&setup).unwrap();
        assert_eq!(runner.lines(), ["/sbin/ifconfig -l"; 2]);
    }

    #[test]
    fn own_interfaces_are_those_with_the_mark() {
        let dir = tempfile::tempdir().unwrap();
        let (runner, _settings, host) = network(dir.path());
        runner.push_ok(&format!(
            "em0: flags=8863<UP> metric 0 mtu 1500\n{BRIDGE_STATUS}\
             epair4a: flags=8863<UP> metric 0 mtu 1500\n\tdescription: kleened:zroot/kleene\n\
             kleene9: flags=8863<UP> metric 0 mtu 1500\n\tdescription: kleened:zroot/other\n"
        ));
        assert_eq!(host.own_interfaces().unwrap(), ["kleene0", "epair4a"]);
        assert_eq!(runner.lines(), ["/sbin/ifconfig -a"]);
    }

    #[test]
    fn an_apply_whose_check_fails_leaves_pf_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (runner, _settings, host) = network(dir.path());
        let pf_conf = dir.path().join("pf.conf");
        std::fs::write(&pf_conf, "# in force\npass all\n").unwrap();
        let checked = dir.path().join(".pf.conf.kleened-new");
        runner.push_err(
            1,
            &format!("{}:2: macro 'kleenet_x' not defined\n", checked.display()),
        );
        let err = host.apply_firewall(&pf::Policy::default()).unwrap_err();
        match &err {
            NetworkError::Refused { checker, message } => {
                assert_eq!(checker, "/sbin/pfctl -n -f");
                assert!(
                    message.starts_with("line 2: macro 'kleenet_x' not defined (in `"),
                    "{message}"
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        // Only the check ran; the file in force is untouched, so pf keeps its rules.
        assert_eq!(
            runner.lines(),
            [format!("/sbin/pfctl -n -f {}", checked.display())]
        );
        assert_eq!(
            std::fs::read_to_string(&pf_conf).unwrap(),
            "# in force\npass all\n"
        );

        // A check that passes is loaded; clearing loads the rules of no networks.
        runner.clear_calls();
        host.clear_firewall().unwrap();
        assert_eq!(
            runner.lines(),
            [
                format!("/sbin/pfctl -n -f {}", checked.display()),
                format!("/sbin/pfctl -f {}", pf_conf.display())
            ]
        );
        let loaded = std::fs::read_to_string(&pf_conf).unwrap();
        assert!(
            loaded.starts_with("# mine\nkleenet_network_interfaces=\"{lo0}\""),
            "{loaded}"
        );
    }

    #[test]
    fn a_missing_template_is_a_host_error_naming_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let (runner, _settings, host) = network(dir.path());
        std::fs::remove_file(dir.path().join("pf.conf.kleene")).unwrap();
        let err = host.apply_firewall(&pf::Policy::default()).unwrap_err();
        assert!(err.to_string().contains("pf_config_template_path"), "{err}");
        assert!(runner.lines().is_empty());
    }
}
