//! How a container's jail is put on its networks. A `vnet` jail gets one epair(4) per endpoint:
//! the `a` end on the network's bridge ([`vnet_host_side`]), the `b` end moved into the jail and
//! configured from inside with the image's ifconfig(8) and route(8) ([`vnet_inside`]). An `ipnet`
//! jail shares the host's stack: its addresses are aliased on the networks' interfaces and given
//! to the jail as `ip4.addr`/`ip6.addr` ([`super::jail::address_params`], [`super::jail::address_lists`]). Pure functions,
//! pinned by the goldens of `kleened/tests/freebsd_commands.rs`.

use std::net::IpAddr;

use kleene_api::NetworkDriver;
use kleene_runner::CommandSpec;

use super::ifconfig::{self as net, IFCONFIG};
use super::jail::endpoint_addresses;
use super::jail::JEXEC;
use super::{ifconfig, JailRuntime};
use crate::platform::network::ContainerEndpoint;
use crate::platform::runtime::{ProcessSpec, RuntimeError};

/// route(8), run inside vnet jails from the container's image.
const ROUTE: &str = "/sbin/route";

/// The host side of a vnet endpoint whose epair's `a` end is `a_end`: made a member of the
/// network's bridge, marked as the daemon's (when it has a mark) and brought up.
pub fn vnet_host_side(bridge: &str, a_end: &str, marker: Option<&str>) -> Vec<CommandSpec> {
    let up = match marker {
        Some(marker) => net::mark_up(a_end, marker),
        None => CommandSpec::new(IFCONFIG).args([a_end, "up"]),
    };
    vec![net::add_member(bridge, a_end), up]
}

/// jexec(8) `<jid> <program> ...`: a program of the container's image, run in the jail with the
/// daemon's credentials (root), in the jail's root directory.
fn in_jail<I, S>(jid: u32, program: &str, args: I) -> CommandSpec
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    CommandSpec::new(JEXEC)
        .arg(jid.to_string())
        .arg(program)
        .args(args)
}

/// Inside a vnet jail: its own `lo0` up with 127.0.0.1 (a new vnet's loopback has no address,
/// and nothing like rc.d/netif runs in a container).
pub fn jail_loopback(jid: u32) -> CommandSpec {
    in_jail(jid, IFCONFIG, ["lo0", "inet", "127.0.0.1/8", "up"])
}

/// Inside a vnet jail: an address with its subnet's prefix length on `interface` (the first
/// address brings the interface up); IPv6 also clears `ifdisabled`.
pub fn jail_address(jid: u32, interface: &str, address: ipnet::IpNet) -> CommandSpec {
    match address {
        ipnet::IpNet::V4(address) => in_jail(
            jid,
            IFCONFIG,
            [interface.to_owned(), "inet".into(), address.to_string()],
        ),
        ipnet::IpNet::V6(address) => in_jail(
            jid,
            IFCONFIG,
            [
                interface.to_owned(),
                "inet6".into(),
                address.to_string(),
                "-ifdisabled".into(),
            ],
        ),
    }
}

/// Inside a vnet jail: the default route of the gateway's family.
pub fn jail_default_route(jid: u32, gateway: IpAddr) -> CommandSpec {
    let family = if gateway.is_ipv4() { "-inet" } else { "-inet6" };
    in_jail(
        jid,
        ROUTE,
        [
            "add".to_owned(),
            family.into(),
            "default".into(),
            gateway.to_string(),
        ],
    )
}

/// Everything configured inside a vnet jail `jid` whose endpoints' epairs have their `b` ends in
/// it: `lo0`, each endpoint's addresses on its `b` end, then the default route of each family
/// through the first endpoint that has a gateway of that family (a second default route would
/// fail: "route already in table").
pub fn vnet_inside(jid: u32, wired: &[(ContainerEndpoint, String)]) -> Vec<CommandSpec> {
    let mut commands = vec![jail_loopback(jid)];
    for (endpoint, b_end) in wired {
        if let Some(address) = endpoint.address {
            commands.push(jail_address(jid, b_end, address.into()));
        }
        if let Some(address) = endpoint.address6 {
            commands.push(jail_address(jid, b_end, address.into()));
        }
    }
    if let Some(gateway) = wired
        .iter()
        .filter(|(e, _)| e.address.is_some())
        .find_map(|(e, _)| e.gateway)
    {
        commands.push(jail_default_route(jid, IpAddr::V4(gateway)));
    }
    if let Some(gateway) = wired
        .iter()
        .filter(|(e, _)| e.address6.is_some())
        .find_map(|(e, _)| e.gateway6)
    {
        commands.push(jail_default_route(jid, IpAddr::V6(gateway)));
    }
    commands
}

/// Something a run made on the host for one of its endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Link {
    /// vnet: an epair whose `a` end (`host`) is a member of `bridge`; its `b` end is in the jail.
    Epair {
        /// The endpoint.
        endpoint_id: String,
        /// The network's bridge.
        bridge: String,
        /// The `a` end.
        host: String,
    },
    /// ipnet: an address aliased on the network's interface and given to the jail.
    Alias {
        /// The endpoint.
        endpoint_id: String,
        /// The network's interface.
        interface: String,
        /// The address.
        address: IpAddr,
    },
}

impl Link {
    pub(super) fn endpoint_id(&self) -> &str {
        match self {
            Link::Epair { endpoint_id, .. } | Link::Alias { endpoint_id, .. } => endpoint_id,
        }
    }
}

/// The addresses a container's jail has from its aliases, in the order they were given.
pub(super) fn aliased(links: &[Link]) -> Vec<IpAddr> {
    links
        .iter()
        .filter_map(|link| match link {
            Link::Alias { address, .. } => Some(*address),
            Link::Epair { .. } => None,
        })
        .collect()
}

impl JailRuntime {
    /// Runs a network command that must succeed; a failure names the step and says why.
    pub(super) fn wire(&self, what: &str, spec: &CommandSpec) -> Result<String, RuntimeError> {
        tracing::debug!(command = %spec, "network command");
        self.run_ok(spec, |code, stderr| {
            RuntimeError::Host(format!("{what}: '{spec}' exited with {code}: {stderr}"))
        })
        .map(|output| output.stdout_text())
    }

    /// Whether an interface exists on the host (`ifconfig -l`).
    pub(super) fn interface_exists(&self, name: &str) -> Result<bool, RuntimeError> {
        let names = self.wire("cannot list interfaces", &ifconfig::list_interfaces())?;
        Ok(ifconfig::parse_interface_list(&names)
            .iter()
            .any(|n| n == name))
    }

    /// Makes the host side of a starting container's endpoints: per vnet endpoint an epair on
    /// its bridge (answered with the `b` end to move into the jail), per ipnet address an alias.
    /// Everything made is in `links`, also when a step fails.
    pub(super) fn link_host_side(
        &self,
        spec: &ProcessSpec,
        links: &mut Vec<Link>,
    ) -> Result<Vec<(ContainerEndpoint, String)>, RuntimeError> {
        let mut inner = vec![];
        for endpoint in &spec.endpoints {
            match spec.network {
                NetworkDriver::Vnet => {
                    let printed = self.wire("cannot create an epair", &ifconfig::create_epair())?;
                    let (a_end, b_end) = ifconfig::epair_ends(&printed).ok_or_else(|| {
                        RuntimeError::Host(format!(
                            "'{IFCONFIG} epair create' printed no epair name: '{}'",
                            printed.trim()
                        ))
                    })?;
                    links.push(Link::Epair {
                        endpoint_id: endpoint.endpoint_id.clone(),
                        bridge: endpoint.interface.clone(),
                        host: a_end.clone(),
                    });
                    for step in vnet_host_side(&endpoint.interface, &a_end, self.marker.as_deref())
                    {
                        self.wire(
                            &format!("cannot connect {a_end} to bridge {}", endpoint.interface),
                            &step,
                        )?;
                    }
                    inner.push((endpoint.clone(), b_end));
                }
                NetworkDriver::Ipnet => {
                    for address in endpoint_addresses(endpoint.address, endpoint.address6) {
                        self.wire(
                            &format!("cannot add {address} to {}", endpoint.interface),
                            &ifconfig::add_alias(&endpoint.interface, address),
                        )?;
                        links.push(Link::Alias {
                            endpoint_id: endpoint.endpoint_id.clone(),
                            interface: endpoint.interface.clone(),
                            address,
                        });
                    }
                }
                NetworkDriver::Host | NetworkDriver::Disabled => {}
            }
        }
        Ok(inner)
    }

    /// Moves the `b` ends into the vnet jail `jid` and configures them from inside.
    pub(super) fn link_inside(
        &self,
        jid: u32,
        inner: &[(ContainerEndpoint, String)],
    ) -> Result<(), RuntimeError> {
        for (_, b_end) in inner {
            self.wire(
                &format!("cannot move {b_end} into the container"),
                &ifconfig::move_to_jail(b_end, jid),
            )?;
        }
        for step in vnet_inside(jid, inner) {
            self.wire("cannot configure the container's network", &step)?;
        }
        Ok(())
    }

    /// Removes what a link made; what is gone already is fine.
    pub(super) fn unlink(&self, link: &Link) -> Result<(), RuntimeError> {
        match link {
            Link::Epair { bridge, host, .. } => {
                // Destroying the epair also takes it off the bridge; deletem first, as a member
                // that is gone is no error.
                let _ = self.run(&ifconfig::remove_member(bridge, host));
                match self.wire(&format!("cannot remove {host}"), &ifconfig::destroy(host)) {
                    Err(_) if !self.interface_exists(host)? => Ok(()),
                    other => other.map(drop),
                }
            }
            Link::Alias {
                interface, address, ..
            } => {
                let removed = self.wire(
                    &format!("cannot remove {address} from {interface}"),
                    &ifconfig::remove_alias(interface, *address),
                );
                match removed {
                    Err(err) => {
                        let status = self.run(&ifconfig::status(interface))?;
                        let still = status.succeeded()
                            && ifconfig::parse_status(&status.stdout_text())
                                .iter()
                                .any(|i| &i.name == interface && i.addresses.contains(address));
                        if still {
                            Err(err)
                        } else {
                            Ok(())
                        }
                    }
                    Ok(_) => Ok(()),
                }
            }
        }
    }

    /// Removes what links made, in reverse order, logging what fails; answers the first failure.
    pub(super) fn unlink_all(
        &self,
        container_id: &str,
        links: &[Link],
    ) -> Result<(), RuntimeError> {
        let mut first = None;
        for link in links.iter().rev() {
            if let Err(err) = self.unlink(link) {
                tracing::warn!(container = container_id, %err, "network wiring not removed");
                first.get_or_insert(err);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::sync::Arc;

    use std::time::Duration;

    use kleene_api::NetworkDriver;
    use kleene_runner::RecordingRunner;

    use super::*;
    use crate::platform::freebsd::testdata::{image, spec};
    use crate::platform::freebsd::tests::{recording, ROOT};
    use crate::platform::runtime::Runtime;

    pub(crate) fn endpoint(
        id: &str,
        interface: &str,
        address: Option<&str>,
        gateway: Option<&str>,
    ) -> ContainerEndpoint {
        ContainerEndpoint {
            endpoint_id: id.into(),
            interface: interface.into(),
            isolated: false,
            address: address.map(|a| a.parse().unwrap()),
            gateway: gateway.map(|g| g.parse().unwrap()),
            address6: None,
            gateway6: None,
            mac: pf::MacAddress::of_endpoint(None, id),
            neighbours: vec![],
            host_interface: None,
        }
    }

    /// Two endpoints of a vnet container: both families on kleene0, IPv4 on kleene2.
    pub(crate) fn vnet_endpoints() -> Vec<ContainerEndpoint> {
        let mut first = endpoint(
            "e1e1e1e1e1e1",
            "kleene0",
            Some("10.13.37.2/24"),
            Some("10.13.37.1"),
        );
        first.address6 = Some("fd00:13:37::2/64".parse().unwrap());
        first.gateway6 = Some("fd00:13:37::1".parse().unwrap());
        let mut second = endpoint(
            "e2e2e2e2e2e2",
            "kleene2",
            Some("10.13.38.2/24"),
            Some("10.13.38.1"),
        );
        second.isolated = true;
        vec![first, second]
    }

    pub(crate) fn networked(
        root: &std::path::Path,
        network: NetworkDriver,
    ) -> (Arc<RecordingRunner>, JailRuntime, ProcessSpec) {
        let runner = Arc::new(RecordingRunner::new());
        let mut runtime = JailRuntime::new(runner.clone(), ROOT.into())
            .with_interface_marker("kleened:zroot/kleene");
        runtime.launcher = Some("/bin/true".into());
        let mut spec = spec(root);
        spec.network = network;
        (runner, runtime, spec)
    }

    const VNET_WIRING: [&str; 7] = [
        "/sbin/mount --libxo json -t nullfs,devfs",
        "/sbin/ifconfig epair create",
        "/sbin/ifconfig kleene0 addm epair0a",
        "/sbin/ifconfig epair0a description kleened:zroot/kleene up",
        "/sbin/ifconfig epair create",
        "/sbin/ifconfig kleene2 addm epair1a",
        "/sbin/ifconfig epair1a description kleened:zroot/kleene up",
    ];

    /// Replies up to and including `jail -i -c` printing jid 7 for a vnet start.
    pub(crate) fn script_vnet_start(runner: &RecordingRunner) {
        for reply in ["", "epair0a\n", "", "", "epair1a\n", "", "", "7\n"] {
            runner.push_ok(reply);
        }
    }

    #[tokio::test]
    async fn a_vnet_start_wires_the_epairs_and_reports_them() {
        let root = image();
        let (runner, runtime, mut spec) = networked(root.path(), NetworkDriver::Vnet);
        spec.endpoints = vnet_endpoints();
        script_vnet_start(&runner);
        let mut spawned = runtime.start(&spec).unwrap();
        spawned.child.wait().await.unwrap();
        assert_eq!(
            spawned.interfaces,
            [
                ("e1e1e1e1e1e1".to_owned(), "epair0a".to_owned()),
                ("e2e2e2e2e2e2".to_owned(), "epair1a".to_owned())
            ]
        );
        let lines = runner.lines();
        assert_eq!(lines[..7], VNET_WIRING);
        assert!(
            lines[7].starts_with(&format!(
                "/usr/sbin/jail -i -c path={} name=c0ffee000001 vnet ",
                root.path().display()
            )) && lines[7].ends_with(" persist"),
            "{lines:?}"
        );
        assert_eq!(
            lines[8..],
            [
                "/sbin/ifconfig epair0b vnet 7",
                "/sbin/ifconfig epair1b vnet 7",
                "/usr/sbin/jexec 7 /sbin/ifconfig lo0 inet 127.0.0.1/8 up",
                "/usr/sbin/jexec 7 /sbin/ifconfig epair0b inet 10.13.37.2/24",
                "/usr/sbin/jexec 7 /sbin/ifconfig epair0b inet6 fd00:13:37::2/64 -ifdisabled",
                "/usr/sbin/jexec 7 /sbin/ifconfig epair1b inet 10.13.38.2/24",
                "/usr/sbin/jexec 7 /sbin/route add -inet default 10.13.37.1",
                "/usr/sbin/jexec 7 /sbin/route add -inet6 default fd00:13:37::1",
                "/usr/sbin/jexec -l -U root 7 /usr/bin/env -i",
            ]
        );

        // Stop removes the jail, then its epairs (the `b` ends go with the `a` ends).
        runner.clear_calls();
        runtime.stop("c0ffee000001", Duration::ZERO).unwrap();
        assert_eq!(
            runner.lines(),
            [
                "/usr/bin/timeout -k 2 10 /usr/sbin/jexec -l -U root 7 /bin/sh /etc/rc.shutdown",
                "/usr/sbin/jail -R 7",
                "/sbin/ifconfig kleene2 deletem epair1a",
                "/sbin/ifconfig epair1a destroy",
                "/sbin/ifconfig kleene0 deletem epair0a",
                "/sbin/ifconfig epair0a destroy",
                "/sbin/mount --libxo json -t nullfs,devfs",
            ]
        );
        // The engine's disconnect of the recorded epair then finds it gone.
        runner.clear_calls();
        runner.push_ok("em0 lo0 kleene0 kleene2\n");
        let mut recorded = vnet_endpoints().remove(0);
        recorded.host_interface = Some("epair0a".into());
        runtime.disconnected("c0ffee000001", &recorded).unwrap();
        assert_eq!(runner.lines(), ["/sbin/ifconfig -l"]);
    }

    #[test]
    fn a_failed_vnet_step_destroys_what_was_made() {
        let root = image();
        // The second bridge refuses its member: no jail, both epairs destroyed.
        let (runner, runtime, mut spec) = networked(root.path(), NetworkDriver::Vnet);
        spec.endpoints = vnet_endpoints();
        for reply in ["", "epair0a\n", "", "", "epair1a\n"] {
            runner.push_ok(reply);
        }
        runner.push_err(1, "ifconfig: BRDGADD epair1a: Device busy\n");
        let err = runtime.start(&spec).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot connect epair1a to bridge kleene2: '/sbin/ifconfig kleene2 addm epair1a' \
             exited with 1: ifconfig: BRDGADD epair1a: Device busy"
        );
        assert_eq!(
            runner.lines()[5..],
            [
                "/sbin/ifconfig kleene2 addm epair1a",
                "/sbin/ifconfig kleene2 deletem epair1a",
                "/sbin/ifconfig epair1a destroy",
                "/sbin/ifconfig kleene0 deletem epair0a",
                "/sbin/ifconfig epair0a destroy",
            ]
        );

        // A step inside the jail fails: the jail goes, then the epairs.
        let (runner, runtime, mut spec) = networked(root.path(), NetworkDriver::Vnet);
        spec.endpoints = vnet_endpoints();
        script_vnet_start(&runner);
        for _ in 0..6 {
            runner.push_ok("");
        }
        runner.push_err(
            1,
            "route: writing to routing socket: Network is unreachable\n",
        );
        let err = runtime.start(&spec).unwrap_err();
        assert!(err.to_string().ends_with("Network is unreachable"), "{err}");
        let lines = runner.lines();
        assert_eq!(
            lines[lines.len() - 7..],
            [
                "/usr/sbin/jexec 7 /sbin/route add -inet default 10.13.37.1",
                "/usr/sbin/jail -R 7",
                "/sbin/ifconfig kleene2 deletem epair1a",
                "/sbin/ifconfig epair1a destroy",
                "/sbin/ifconfig kleene0 deletem epair0a",
                "/sbin/ifconfig epair0a destroy",
                "/sbin/mount --libxo json -t nullfs,devfs",
            ]
        );
        assert!(runtime.jails().runs.is_empty());
        assert!(runtime.jails().links.is_empty());

        // ifconfig prints no epair name: nothing to undo, and a clear error.
        let (runner, runtime, mut spec) = networked(root.path(), NetworkDriver::Vnet);
        spec.endpoints = vnet_endpoints();
        runner.push_ok("");
        runner.push_ok("");
        let err = runtime.start(&spec).unwrap_err();
        assert_eq!(
            err.to_string(),
            "'/sbin/ifconfig epair create' printed no epair name: ''"
        );
        assert_eq!(runner.lines().len(), 2, "{:?}", runner.lines());
    }

    #[tokio::test]
    async fn a_running_ipnet_container_is_connected_and_disconnected_live() {
        let root = image();
        let (runner, runtime, mut spec) = networked(root.path(), NetworkDriver::Ipnet);
        spec.endpoints = vec![endpoint(
            "e1e1e1e1e1e1",
            "kleene1",
            Some("10.0.0.2/24"),
            None,
        )];
        runner.push_ok("");
        runner.push_ok("");
        runner.push_ok("7\n");
        let mut spawned = runtime.start(&spec).unwrap();
        spawned.child.wait().await.unwrap();
        assert!(spawned.interfaces.is_empty());
        let lines = runner.lines();
        assert_eq!(lines[1], "/sbin/ifconfig kleene1 inet 10.0.0.2/32 alias");
        assert!(
            lines[2].contains(" name=c0ffee000001 ip4.addr=10.0.0.2 mount.devfs=true "),
            "{lines:?}"
        );

        // Connect: the aliases, then the jail's full lists (its primary address stays first).
        runner.clear_calls();
        let mut second = endpoint("e2e2e2e2e2e2", "kleene3", Some("10.1.0.5/16"), None);
        second.address6 = Some("fd00::5/64".parse().unwrap());
        runtime.connected("c0ffee000001", &second).unwrap();
        assert_eq!(
            runner.lines(),
            [
                "/sbin/ifconfig kleene3 inet 10.1.0.5/32 alias",
                "/sbin/ifconfig kleene3 inet6 fd00::5/128 alias",
                "/usr/sbin/jail -m jid=7 ip4.addr=10.0.0.2,10.1.0.5 ip6.addr=fd00::5",
            ]
        );

        // A connection the kernel refuses is undone.
        runner.clear_calls();
        runner.push_ok("");
        runner.push_err(1, "jail: ip4.addr: IPv4 addresses clash\n");
        let third = endpoint("e3e3e3e3e3e3", "kleene4", Some("10.2.0.9/24"), None);
        let err = runtime.connected("c0ffee000001", &third).unwrap_err();
        assert!(matches!(err, RuntimeError::Invalid(_)));
        assert!(err.to_string().ends_with("IPv4 addresses clash"), "{err}");
        assert_eq!(
            runner.lines(),
            [
                "/sbin/ifconfig kleene4 inet 10.2.0.9/32 alias",
                "/usr/sbin/jail -m jid=7 ip4.addr=10.0.0.2,10.1.0.5,10.2.0.9",
                "/sbin/ifconfig kleene4 inet 10.2.0.9 -alias",
            ]
        );

        // Disconnect: the jail gives the address up, then it leaves the interface.
        runner.clear_calls();
        runtime
            .disconnected("c0ffee000001", &spec.endpoints[0])
            .unwrap();
        assert_eq!(
            runner.lines(),
            [
                "/usr/sbin/jail -m jid=7 ip4.addr=10.1.0.5",
                "/sbin/ifconfig kleene1 inet 10.0.0.2 -alias",
            ]
        );
        runner.clear_calls();
        runtime.disconnected("c0ffee000001", &second).unwrap();
        assert_eq!(
            runner.lines(),
            [
                "/usr/sbin/jail -m jid=7 ip4.addr= ip6.addr=",
                "/sbin/ifconfig kleene3 inet6 fd00::5 -alias",
                "/sbin/ifconfig kleene3 inet 10.1.0.5 -alias",
            ]
        );
        assert!(runtime.jails().links.is_empty());
    }

    #[test]
    fn ipnet_aliases_go_at_cleanup_and_a_gone_one_is_fine() {
        let (runner, runtime) = recording();
        runtime.jails().links.insert(
            "c0ffee000001".into(),
            vec![Link::Alias {
                endpoint_id: "e1e1e1e1e1e1".into(),
                interface: "kleene1".into(),
                address: "10.0.0.2".parse().unwrap(),
            }],
        );
        runner.push_err(
            49,
            "ifconfig: ioctl (SIOCDIFADDR): Can't assign requested address\n",
        );
        runner.push_ok("kleene1: flags=8049<UP,LOOPBACK,RUNNING,MULTICAST> metric 0 mtu 16384\n\tinet 10.0.0.3 netmask 0xffffffff\n");
        runtime.cleanup("c0ffee000001").unwrap();
        assert_eq!(
            runner.lines(),
            [
                "/sbin/ifconfig kleene1 inet 10.0.0.2 -alias",
                "/sbin/ifconfig kleene1",
                "/sbin/mount --libxo json -t nullfs,devfs",
            ]
        );
    }

    #[test]
    fn connecting_a_container_another_daemon_started_is_refused() {
        let (runner, runtime) = recording();
        let other = endpoint("e1e1e1e1e1e1", "kleene1", Some("10.0.0.2/24"), None);
        let err = runtime.connected("c0ffee000001", &other).unwrap_err();
        assert!(matches!(err, RuntimeError::Invalid(_)), "{err}");
        assert!(runner.lines().is_empty());
    }
}
