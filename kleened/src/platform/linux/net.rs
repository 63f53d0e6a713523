//! Host networking on Linux: bridge and loopback networks as Linux bridges, `custom` networks on an
//! existing interface; vnet and ipnet containers on a veth pair whose host end is a port of the
//! bridge; the packet filter as nftables tables ([`pf::nft`]).
//!
//! A loopback network is a bridge because its ipnet containers need an interface on it: a Linux
//! container cannot share the host's network stack and stay confined, as an ipnet jail does
//! (FreeBSD restricts a jail to its addresses aliased on the network's cloned `lo`). So on Linux an
//! ipnet container has its own namespace with the address the reference gives it, reached from
//! the host and its network's other containers as on FreeBSD; what differs is that it has its
//! own loopback interface and routes, and that it sees only its networks' interfaces.
//!
//! A container's end of its veth gets the MAC address of its endpoint ([`pf::MacAddress`], from
//! its IPv4 address), and the host a permanent neighbour entry for its addresses on the bridge
//! while it runs: ARP or neighbour advertisements from a container cannot move the host's
//! traffic for a neighbour to itself, and a container replaced by one with the same address has
//! the same MAC address, so the host never holds a stale entry. The packet filter's `bridge`
//! table keeps each port to its own MAC and addresses; it names a port by the pattern of
//! [`host_end_pattern`], known when the endpoint is made, so its rules are in force before the
//! container's first packet.
//!
//! Everything is done with ip(8) and nft(8) through the runner: the command lines come from the
//! pure functions below (pinned by `kleened/tests/goldens/linux/network.txt`), and the few kernel
//! settings are written to `/proc/sys`. The interfaces the daemon makes carry its identity as their
//! alias (`ip link set ... alias`), which is how they are told from anyone else's.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use kleene_api::NetworkType;
use kleene_runner::{CommandSpec, Runner};

use crate::platform::network::{ContainerEndpoint, NetworkError, NetworkHost, NetworkSetup};

const IP: &str = "ip";
const NFT: &str = "nft";
const NSENTER: &str = "nsenter";

/// ip(8) reading its commands from standard input, one per line (`ip -batch -`): one process for
/// several changes.
pub fn ip_batch(lines: &[String]) -> CommandSpec {
    CommandSpec::new(IP)
        .args(["-batch", "-"])
        .stdin(lines.iter().map(|l| format!("{l}\n")).collect::<String>())
}

/// The `ip -batch` lines that make a network's bridge (a bridge or loopback network), marked with
/// `marker` as its alias, up, with the gateway addresses of the network. A bridge gets a MAC
/// address of its own, from its name: left to the kernel it would take the lowest of its ports'
/// and change as containers come and go, and each change flushes the host's neighbour entries for
/// the containers, the permanent ones too.
pub fn create_lines(network: &NetworkSetup, marker: &str) -> Vec<String> {
    let name = &network.interface;
    let address = pf::MacAddress::of_endpoint(None, name);
    let mut lines = vec![
        format!("link add name {name} address {address} type bridge"),
        format!("link set dev {name} alias {marker}"),
        format!("link set dev {name} up"),
    ];
    if let Some(gateway) = network.gateway {
        lines.push(format!("address add {gateway} dev {name}"));
    }
    if let Some(gateway) = network.gateway6 {
        // No duplicate address detection: the address is usable at once.
        lines.push(format!("address add {gateway} dev {name} nodad"));
    }
    lines
}

/// ip(8): remove an interface.
pub fn delete_link(name: &str) -> CommandSpec {
    CommandSpec::new(IP).args(["link", "delete", "dev", name])
}

/// ip(8): every link, as JSON.
pub fn list_links() -> CommandSpec {
    CommandSpec::new(IP).args(["-json", "link", "show"])
}

/// ip(8): the addresses of an interface, as JSON.
pub fn list_addresses(name: &str) -> CommandSpec {
    CommandSpec::new(IP).args(["-json", "address", "show", "dev", name])
}

/// ip(8): the default IPv4 routes, as JSON.
pub fn default_routes() -> CommandSpec {
    CommandSpec::new(IP).args(["-json", "-4", "route", "show", "default"])
}

/// nft(8): check a script without loading it (`-c`), read from standard input.
pub fn nft_check(script: &str) -> CommandSpec {
    CommandSpec::new(NFT).args(["-c", "-f", "-"]).stdin(script)
}

/// nft(8): run a script (one transaction), read from standard input.
pub fn nft_load(script: &str) -> CommandSpec {
    CommandSpec::new(NFT).args(["-f", "-"]).stdin(script)
}

/// The host end of a container's veth for one start: `kv`, the endpoint's ID and a word that
/// differs from start to start (at most 15 characters). The kernel removes a veth with the
/// network namespace of its other end, some time after the container's last process; a name of
/// its own per start means a quick restart never meets the one still going.
pub fn host_end(endpoint_id: &str, start: &str) -> String {
    let id = &endpoint_id[..endpoint_id.len().min(9)];
    let start = &start[..start.len().min(4)];
    format!("kv{id}{start}")
}

/// The name of the host end of an endpoint's veth at every start, as an nft(8) interface
/// pattern: [`host_end`]'s name without the word of the start, then `*`.
pub fn host_end_pattern(endpoint_id: &str) -> String {
    let id = &endpoint_id[..endpoint_id.len().min(9)];
    format!("kv{id}*")
}

/// ip(8) `neigh replace ... nud permanent`: the host's neighbour entry for a container's address
/// on the bridge, which no frame changes.
pub fn pin_neighbour(address: std::net::IpAddr, mac: pf::MacAddress, bridge: &str) -> String {
    format!("neigh replace {address} lladdr {mac} dev {bridge} nud permanent")
}

/// ip(8): a neighbour entry removed.
pub fn delete_neighbour(address: std::net::IpAddr, bridge: &str) -> CommandSpec {
    CommandSpec::new(IP).args([
        "neigh".to_owned(),
        "del".into(),
        address.to_string(),
        "dev".into(),
        bridge.to_owned(),
    ])
}

/// ip(8): the neighbour entry of an address on a device, as JSON (`[]` when there is none).
pub fn show_neighbour(address: std::net::IpAddr, bridge: &str) -> CommandSpec {
    CommandSpec::new(IP).args([
        "-json".to_owned(),
        "neigh".into(),
        "show".into(),
        "to".into(),
        address.to_string(),
        "dev".into(),
        bridge.to_owned(),
    ])
}

/// The container's end of its `index`th veth: `eth<index>`.
pub fn inner_end(index: usize) -> String {
    format!("eth{index}")
}

/// The commands that wire a vnet container whose PID 1 has host PID `pid` (in its own, new
/// network namespace) to its networks: per endpoint a veth pair with one end, with the
/// endpoint's MAC address, moved into the container's namespace, the other a port of the bridge
/// (isolated when icc is off), and the host's permanent neighbour entries for the container's
/// addresses; then, inside, the addresses, the links up and the default routes (the first
/// endpoint's gateway of each family).
pub fn wiring(
    pid: i32,
    endpoints: &[ContainerEndpoint],
    start: &str,
    marker: &str,
) -> Vec<CommandSpec> {
    let mut lines = WiringLines::default();
    for (index, endpoint) in endpoints.iter().enumerate() {
        lines.add(pid, endpoint, start, marker, &inner_end(index));
    }
    lines.commands(pid)
}

/// The commands that wire a running container (PID 1 at host PID `pid`) to one more network, as
/// [`wiring`] does at its start: its interface is `inner` (the first free name), and it gets the
/// default routes it has none of (`route4`, `route6` say it has them).
pub fn wiring_one(
    pid: i32,
    endpoint: &ContainerEndpoint,
    start: &str,
    marker: &str,
    inner: &str,
    (route4, route6): (bool, bool),
) -> Vec<CommandSpec> {
    let mut lines = WiringLines {
        route4,
        route6,
        ..WiringLines::default()
    };
    lines.add(pid, endpoint, start, marker, inner);
    lines.commands(pid)
}

/// The `ip -batch` lines of a wiring: on the host, and inside the container's namespace; whether
/// the default routes are given yet.
#[derive(Debug, Default)]
struct WiringLines {
    host: Vec<String>,
    inside: Vec<String>,
    route4: bool,
    route6: bool,
}

impl WiringLines {
    fn add(
        &mut self,
        pid: i32,
        endpoint: &ContainerEndpoint,
        start: &str,
        marker: &str,
        inner: &str,
    ) {
        let outer = host_end(&endpoint.endpoint_id, start);
        self.host.push(format!(
            "link add name {outer} type veth peer name {inner} address {} netns {pid}",
            endpoint.mac
        ));
        self.host.push(format!(
            "link set dev {outer} master {} alias {marker} up",
            endpoint.interface
        ));
        if endpoint.isolated {
            self.host.push(format!(
                "link set dev {outer} type bridge_slave isolated on"
            ));
        }
        for address in &endpoint.neighbours {
            self.host
                .push(pin_neighbour(*address, endpoint.mac, &endpoint.interface));
        }
        if let Some(address) = endpoint.address {
            self.inside
                .push(format!("address add {address} dev {inner}"));
        }
        if let Some(address) = endpoint.address6 {
            self.inside
                .push(format!("address add {address} dev {inner} nodad"));
        }
        self.inside.push(format!("link set dev {inner} up"));
        if let (Some(gateway), false) = (endpoint.gateway, self.route4) {
            self.inside
                .push(format!("route add default via {gateway} dev {inner}"));
            self.route4 = true;
        }
        if let (Some(gateway), false) = (endpoint.gateway6, self.route6) {
            self.inside
                .push(format!("route add ::/0 via {gateway} dev {inner}"));
            self.route6 = true;
        }
    }

    fn commands(self, pid: i32) -> Vec<CommandSpec> {
        let inside_batch = ip_batch(&self.inside);
        vec![
            ip_batch(&self.host),
            in_namespace(pid)
                .arg(IP)
                .args(["-batch", "-"])
                .stdin(inside_batch.stdin.unwrap_or_default()),
        ]
    }
}

/// nsenter(1) into the network namespace of host PID `pid`, to run what follows there.
fn in_namespace(pid: i32) -> CommandSpec {
    CommandSpec::new(NSENTER).args(["-t".to_owned(), pid.to_string(), "-n".to_owned()])
}

/// `ip -o link show` inside the network namespace of host PID `pid`: its interfaces' names.
pub fn inner_links(pid: i32) -> CommandSpec {
    in_namespace(pid).arg(IP).args(["-o", "link", "show"])
}

/// `ip -4`/`-6 route show default` inside the network namespace of host PID `pid`.
pub fn inner_default_route(pid: i32, family: &str) -> CommandSpec {
    in_namespace(pid)
        .arg(IP)
        .args([family, "route", "show", "default"])
}

/// Host networking on Linux.
#[derive(Debug)]
pub struct LinuxNetwork {
    runner: Arc<dyn Runner>,
    /// The daemon's nftables table (`inet <table>`).
    table: String,
    /// The alias the daemon's interfaces carry.
    marker: String,
}

fn host_error(what: &str, spec: &CommandSpec, err: impl std::fmt::Display) -> NetworkError {
    NetworkError::Host(format!("{what}: {spec}: {err}"))
}

impl LinuxNetwork {
    /// Host networking whose rules live in `inet <table>` and whose interfaces carry `marker`.
    pub fn new(runner: Arc<dyn Runner>, table: &str, marker: &str) -> LinuxNetwork {
        LinuxNetwork {
            runner,
            table: table.to_owned(),
            // An alias is one word for ip(8)'s batch mode.
            marker: marker.replace(char::is_whitespace, "_"),
        }
    }

    /// Runs a command that must succeed; answers its standard output.
    fn run(&self, what: &str, spec: &CommandSpec) -> Result<String, NetworkError> {
        tracing::debug!(command = %spec, "network command");
        let output = self
            .runner
            .run(spec)
            .map_err(|e| host_error(what, spec, e))?;
        if output.code != Some(0) {
            return Err(host_error(
                what,
                spec,
                String::from_utf8_lossy(&output.stderr).trim(),
            ));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// `ip -json link show`, parsed: (name, alias) of every link.
    fn links(&self) -> Result<Vec<(String, Option<String>)>, NetworkError> {
        let text = self.run("cannot list interfaces", &list_links())?;
        let links: Vec<serde_json::Value> = serde_json::from_str(&text)
            .map_err(|e| NetworkError::Host(format!("cannot read ip -json link: {e}")))?;
        Ok(links
            .iter()
            .filter_map(|link| {
                let name = link["ifname"].as_str()?.to_owned();
                Some((name, link["ifalias"].as_str().map(str::to_owned)))
            })
            .collect())
    }

    /// Wires a vnet container whose PID 1 has host PID `pid` to its endpoints; answers the host
    /// ends of the veth pairs, by endpoint ID. A failure removes what was made.
    pub fn wire(
        &self,
        pid: i32,
        endpoints: &[ContainerEndpoint],
    ) -> Result<Vec<(String, String)>, NetworkError> {
        let start = format!("{:04x}", std::process::id() ^ pid as u32 ^ rand_word());
        let commands = wiring(pid, endpoints, &start, &self.marker);
        for spec in &commands {
            if let Err(err) = self.run("cannot wire the container to its networks", spec) {
                for endpoint in endpoints {
                    let _ = self
                        .runner
                        .run(&delete_link(&host_end(&endpoint.endpoint_id, &start)));
                    if let Err(undo) = self.forget_neighbours(endpoint) {
                        tracing::warn!(endpoint = %endpoint.endpoint_id, error = %undo, "could not remove the neighbour entries of a wiring that failed");
                    }
                }
                return Err(err);
            }
        }
        Ok(endpoints
            .iter()
            .map(|e| (e.endpoint_id.clone(), host_end(&e.endpoint_id, &start)))
            .collect())
    }

    /// Wires a running container (PID 1 at host PID `pid`) to one more network: its interface
    /// takes the first free `ethN` name and the default routes it has none of. Answers the host
    /// end's name; on failure nothing is left.
    pub fn wire_one(&self, pid: i32, endpoint: &ContainerEndpoint) -> Result<String, NetworkError> {
        let what = "cannot read the container's interfaces";
        let links = self.run(what, &inner_links(pid))?;
        let names: Vec<String> = links
            .lines()
            .filter_map(|line| line.split(": ").nth(1))
            .map(|name| name.split('@').next().unwrap_or(name).to_owned())
            .collect();
        let inner = (0..)
            .map(inner_end)
            .find(|name| !names.contains(name))
            .unwrap_or_else(|| inner_end(names.len()));
        let mut routed = [false, false];
        for (slot, family) in routed.iter_mut().zip(["-4", "-6"]) {
            let routes = self.run(what, &inner_default_route(pid, family))?;
            *slot = !routes.trim().is_empty();
        }
        let start = format!("{:04x}", std::process::id() ^ pid as u32 ^ rand_word());
        let commands = wiring_one(
            pid,
            endpoint,
            &start,
            &self.marker,
            &inner,
            (routed[0], routed[1]),
        );
        let outer = host_end(&endpoint.endpoint_id, &start);
        for spec in &commands {
            if let Err(err) = self.run("cannot wire the container to the network", spec) {
                let _ = self.runner.run(&delete_link(&outer));
                if let Err(undo) = self.forget_neighbours(endpoint) {
                    tracing::warn!(endpoint = %endpoint.endpoint_id, error = %undo, "could not remove the neighbour entries of a wiring that failed");
                }
                return Err(err);
            }
        }
        Ok(outer)
    }

    /// Removes the host's neighbour entries for an endpoint's container (disconnect, stop). One
    /// that is gone already (or whose bridge is) is fine.
    pub fn forget_neighbours(&self, endpoint: &ContainerEndpoint) -> Result<(), NetworkError> {
        for address in &endpoint.neighbours {
            let removed = self.run(
                "cannot remove the container's neighbour entry",
                &delete_neighbour(*address, &endpoint.interface),
            );
            if let Err(err) = removed {
                // `ip neigh del` fails alike for an entry that is not there and a real failure.
                match self.run(
                    "cannot read the neighbour entry",
                    &show_neighbour(*address, &endpoint.interface),
                ) {
                    Ok(text) if text.trim() == "[]" => {}
                    Err(_) if !self.interface_exists(&endpoint.interface)? => {}
                    _ => return Err(err),
                }
            }
        }
        Ok(())
    }

    /// Removes the host end of a running container's veth (disconnect); the container's end goes
    /// with it. One that is already gone is fine.
    pub fn unwire(&self, name: &str) -> Result<(), NetworkError> {
        match self.run(
            "cannot remove the container's interface",
            &delete_link(name),
        ) {
            Ok(_) => Ok(()),
            // The kernel removes it with the container's network namespace, asynchronously.
            Err(_) if !self.interface_exists(name)? => Ok(()),
            Err(err) => Err(err),
        }
    }
}

/// 16 bits that differ from call to call (the clock's nanoseconds).
fn rand_word() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
        & 0xffff
}

/// Writes a kernel setting.
fn sysctl(path: &str, value: &str) -> Result<(), NetworkError> {
    std::fs::write(Path::new("/proc/sys").join(path), value)
        .map_err(|e| NetworkError::Host(format!("cannot set {path} to {value}: {e}")))
}

impl NetworkHost for LinuxNetwork {
    fn prepare(&self) -> Result<(), NetworkError> {
        sysctl("net/ipv4/ip_forward", "1")
    }

    fn host_gateway(&self) -> Result<Option<String>, NetworkError> {
        let text = self.run("cannot read the default route", &default_routes())?;
        let routes: Vec<serde_json::Value> = serde_json::from_str(&text)
            .map_err(|e| NetworkError::Host(format!("cannot read ip -json route: {e}")))?;
        Ok(routes
            .iter()
            .find_map(|r| r["dev"].as_str().map(str::to_owned)))
    }

    fn interface_exists(&self, name: &str) -> Result<bool, NetworkError> {
        Ok(self.links()?.iter().any(|(link, _)| link == name))
    }

    fn own_interfaces(&self) -> Result<Vec<String>, NetworkError> {
        Ok(self
            .links()?
            .into_iter()
            .filter(|(_, alias)| alias.as_deref() == Some(self.marker.as_str()))
            .map(|(name, _)| name)
            .collect())
    }

    fn addresses(&self, interface: &str) -> Result<Vec<IpAddr>, NetworkError> {
        if !self.interface_exists(interface)? {
            return Ok(vec![]);
        }
        let text = self.run(
            &format!("cannot read the addresses of {interface}"),
            &list_addresses(interface),
        )?;
        let links: Vec<serde_json::Value> = serde_json::from_str(&text)
            .map_err(|e| NetworkError::Host(format!("cannot read ip -json address: {e}")))?;
        Ok(links
            .iter()
            .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
            .filter_map(|a| a["local"].as_str().and_then(|ip| ip.parse().ok()))
            .collect())
    }

    fn create(&self, network: &NetworkSetup) -> Result<(), NetworkError> {
        let name = &network.interface;
        if network.kind == NetworkType::Custom {
            return if self.interface_exists(name)? {
                Ok(())
            } else {
                Err(NetworkError::Invalid(format!(
                    "interface '{name}' of the custom network does not exist"
                )))
            };
        }
        match self.links()?.into_iter().find(|(link, _)| link == name) {
            Some((_, alias)) if alias.as_deref() == Some(self.marker.as_str()) => {
                self.run("cannot remove the old interface", &delete_link(name))?;
            }
            Some(_) => {
                return Err(NetworkError::Invalid(format!(
                    "interface '{name}' exists and is not kleened's: choose another name"
                )))
            }
            None => {}
        }
        if network.gateway6.is_some() {
            sysctl("net/ipv6/conf/all/forwarding", "1")?;
        }
        let what = format!("cannot make interface {name}");
        // A loopback network is a bridge too: its ipnet containers have a veth pair on it, as
        // vnet containers on a bridge network (a Linux container cannot share the host's stack
        // and stay confined), and until then it carries its addresses as FreeBSD's cloned `lo`.
        let result = self
            .run(&what, &ip_batch(&create_lines(network, &self.marker)))
            .and_then(|_| {
                // Connections of the host to 127.0.0.1 may be sent to a container (published
                // ports): the bridge must route loopback sources.
                sysctl(&format!("net/ipv4/conf/{name}/route_localnet"), "1")
            })
            .and_then(|_| {
                // Only the daemon routes for its networks: a router advertisement arriving on
                // one (the packet filter drops those of containers) changes nothing of the host.
                let accept_ra = format!("net/ipv6/conf/{name}/accept_ra");
                if Path::new("/proc/sys").join(&accept_ra).exists() {
                    sysctl(&accept_ra, "0")
                } else {
                    Ok(())
                }
            });
        if result.is_err() {
            let _ = self.runner.run(&delete_link(name));
        }
        result
    }

    fn remove(&self, network: &NetworkSetup) -> Result<(), NetworkError> {
        if network.kind == NetworkType::Custom || !self.interface_exists(&network.interface)? {
            return Ok(());
        }
        self.run(
            &format!("cannot remove interface {}", network.interface),
            &delete_link(&network.interface),
        )
        .map(drop)
    }

    fn apply_firewall(&self, policy: &pf::Policy) -> Result<(), NetworkError> {
        let script = pf::nft::render(policy, &self.table);
        let check = nft_check(&script);
        tracing::debug!(command = %check, "checking the packet filter rules");
        let output = self
            .runner
            .run(&check)
            .map_err(|e| host_error("cannot check the packet filter rules", &check, e))?;
        if output.code != Some(0) {
            return Err(NetworkError::Refused {
                checker: check.to_string(),
                message: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            });
        }
        self.run("cannot load the packet filter rules", &nft_load(&script))
            .map(drop)
    }

    fn clear_firewall(&self) -> Result<(), NetworkError> {
        self.run(
            "cannot remove the packet filter rules",
            &nft_load(&pf::nft::render_removal(&self.table)),
        )
        .map(drop)
    }

    fn bridged(&self) -> Vec<NetworkType> {
        vec![NetworkType::Bridge, NetworkType::Loopback]
    }

    fn member_interface(&self, endpoint_id: &str, _recorded: Option<&str>) -> Option<String> {
        Some(host_end_pattern(endpoint_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kleene_runner::RecordingRunner;

    fn render(spec: &CommandSpec) -> String {
        let mut line = spec.to_string();
        if let Some(stdin) = &spec.stdin {
            for l in String::from_utf8_lossy(stdin).lines() {
                line.push_str(&format!("\n    < {l}"));
            }
        }
        line
    }

    #[test]
    fn the_command_lines_match_their_golden_file() {
        let bridge = NetworkSetup {
            kind: NetworkType::Bridge,
            interface: "kleene0".into(),
            gateway: Some("10.13.37.1/24".parse().unwrap()),
            gateway6: Some("fd00:13:37::1/64".parse().unwrap()),
        };
        let loopback = NetworkSetup {
            kind: NetworkType::Loopback,
            interface: "kleene1".into(),
            gateway: None,
            gateway6: None,
        };
        let endpoints = [
            ContainerEndpoint {
                endpoint_id: "e1e1e1e1e1e1".into(),
                interface: "kleene0".into(),
                isolated: false,
                address: Some("10.13.37.2/24".parse().unwrap()),
                gateway: Some("10.13.37.1".parse().unwrap()),
                address6: Some("fd00:13:37::2/64".parse().unwrap()),
                gateway6: Some("fd00:13:37::1".parse().unwrap()),
                mac: pf::MacAddress::of_endpoint(
                    Some("10.13.37.2".parse().unwrap()),
                    "e1e1e1e1e1e1",
                ),
                neighbours: vec![
                    "10.13.37.2".parse().unwrap(),
                    "fd00:13:37::2".parse().unwrap(),
                ],
                host_interface: None,
            },
            ContainerEndpoint {
                endpoint_id: "e2e2e2e2e2e2".into(),
                interface: "kleene2".into(),
                isolated: true,
                address: Some("10.13.38.2/24".parse().unwrap()),
                gateway: Some("10.13.38.1".parse().unwrap()),
                address6: None,
                gateway6: None,
                mac: pf::MacAddress::of_endpoint(
                    Some("10.13.38.2".parse().unwrap()),
                    "e2e2e2e2e2e2",
                ),
                neighbours: vec!["10.13.38.2".parse().unwrap()],
                host_interface: None,
            },
        ];
        let mut lines = vec![
            "# ip(8) -batch: one command per line of standard input (ip-link(8), ip-address(8), ip-route(8))".to_owned(),
            "# bridge network with <auto> gateways, then a loopback network (a bridge too)".to_owned(),
        ];
        lines.push(render(&ip_batch(&create_lines(
            &bridge,
            "kleened:zroot/kleene",
        ))));
        lines.push(render(&ip_batch(&create_lines(
            &loopback,
            "kleened:zroot/kleene",
        ))));
        lines.push("# remove, list, addresses, default route".to_owned());
        lines.push(render(&delete_link("kleene0")));
        lines.push(render(&list_links()));
        lines.push(render(&list_addresses("kleene0")));
        lines.push(render(&default_routes()));
        lines.push("# a vnet container (PID 4242) on two networks, the second with icc off; nsenter(1) -n runs ip inside its namespace".to_owned());
        for spec in wiring(4242, &endpoints, "0a1b", "kleened:zroot/kleene") {
            lines.push(render(&spec));
        }
        lines.push("# a running ipnet container (PID 4343) connected to one more network: its interfaces and default routes read inside, then its eth1 wired, with an IPv6 route only (it had an IPv4 one)".to_owned());
        lines.push(render(&inner_links(4343)));
        lines.push(render(&inner_default_route(4343, "-4")));
        lines.push(render(&inner_default_route(4343, "-6")));
        for spec in wiring_one(
            4343,
            &endpoints[0],
            "0c2d",
            "kleened:zroot/kleene",
            "eth1",
            (true, false),
        ) {
            lines.push(render(&spec));
        }
        lines.push("# at disconnect and stop: the host's neighbour entries go; one that is not there is looked for".to_owned());
        lines.push(render(&delete_neighbour(
            "10.13.37.2".parse().unwrap(),
            "kleene0",
        )));
        lines.push(render(&show_neighbour(
            "10.13.37.2".parse().unwrap(),
            "kleene0",
        )));
        lines
            .push("# nft(8): check (-c), then load; the script comes on standard input".to_owned());
        lines.push(nft_check("...").to_string());
        lines.push(nft_load("...").to_string());
        let text = lines.join("\n") + "\n";
        let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/goldens/linux/network.txt");
        if std::env::var("KLEENE_UPDATE_GOLDENS").as_deref() == Ok("1") {
            std::fs::write(&golden, &text).unwrap();
        }
        assert_eq!(
            text,
            std::fs::read_to_string(&golden).unwrap_or_default(),
            "{} differs; KLEENE_UPDATE_GOLDENS=1 rewrites it",
            golden.display()
        );
    }

    #[test]
    fn host_ends_fit_the_interface_name_limit() {
        assert_eq!(host_end("abcdef012345", "0a1b"), "kvabcdef0120a1b");
        assert_eq!(host_end("abcdef012345", "0a1b").len(), 15);
    }

    #[test]
    fn the_pattern_names_every_start_of_the_endpoint_and_no_other() {
        let pattern = host_end_pattern("abcdef012345");
        assert_eq!(pattern, "kvabcdef012*");
        let prefix = pattern.trim_end_matches('*');
        for start in ["0a1b", "ffff", "0000"] {
            assert!(host_end("abcdef012345", start).starts_with(prefix));
        }
        assert!(!host_end("abcdef013345", "0a1b").starts_with(prefix));
        let network = LinuxNetwork::new(Arc::new(RecordingRunner::new()), "k", "m");
        assert_eq!(
            network.member_interface("abcdef012345", Some("kvabcdef0120a1b")),
            Some(pattern)
        );
    }

    #[test]
    fn a_neighbour_entry_that_is_gone_is_fine_and_one_that_stays_is_not() {
        let endpoint = ContainerEndpoint {
            endpoint_id: "e1e1e1e1e1e1".into(),
            interface: "kleene0".into(),
            isolated: false,
            address: None,
            gateway: None,
            address6: None,
            gateway6: None,
            mac: pf::MacAddress::of_endpoint(None, "e1"),
            neighbours: vec!["10.13.37.2".parse().unwrap()],
            host_interface: None,
        };
        let runner = Arc::new(RecordingRunner::new());
        runner.push_err(2, "RTNETLINK answers: No such file or directory\n");
        runner.push_ok("[]\n");
        let network = LinuxNetwork::new(runner.clone(), "kleene", "kleened:x");
        network.forget_neighbours(&endpoint).unwrap();
        runner.push_err(2, "RTNETLINK answers: Operation not permitted\n");
        runner.push_ok(
            r#"[{"dst":"10.13.37.2","lladdr":"02:42:0a:0d:25:02","state":["PERMANENT"]}]"#,
        );
        let err = network.forget_neighbours(&endpoint).unwrap_err();
        assert!(err.to_string().contains("Operation not permitted"), "{err}");
    }

    #[test]
    fn a_rule_set_the_checker_refuses_is_never_loaded() {
        let runner = Arc::new(RecordingRunner::new());
        runner.push_err(1, "Error: syntax error, unexpected junk\n");
        let network = LinuxNetwork::new(runner.clone(), "kleene", "kleened:x");
        let err = network.apply_firewall(&pf::Policy::default()).unwrap_err();
        assert!(
            matches!(&err, NetworkError::Refused { message, .. } if message.contains("unexpected junk")),
            "{err}"
        );
        let lines = runner.lines();
        assert_eq!(lines.len(), 1, "only the check ran: {lines:?}");
        assert!(lines[0].starts_with("nft -c -f -"), "{lines:?}");
    }

    #[test]
    fn an_interface_that_is_not_the_daemons_is_never_replaced() {
        let runner = Arc::new(RecordingRunner::new());
        runner.push_ok(r#"[{"ifname":"lo"},{"ifname":"kleene0","ifalias":"someone else"}]"#);
        let network = LinuxNetwork::new(runner.clone(), "kleene", "kleened:x");
        let setup = NetworkSetup {
            kind: NetworkType::Bridge,
            interface: "kleene0".into(),
            gateway: None,
            gateway6: None,
        };
        let err = network.create(&setup).unwrap_err();
        assert!(err.to_string().contains("is not kleened's"), "{err}");
        assert_eq!(runner.lines().len(), 1, "{:?}", runner.lines());
    }
}
