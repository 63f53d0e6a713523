//! Containers on networks: connect (the address allocated inside the store transaction that
//! records the endpoint, the packet filter reloaded there; a running vnet container is refused),
//! disconnect, and what a starting container is wired with.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use kleene_api::{EndPoint, EndPointConfig, Network, NetworkDriver, NetworkType};

use super::{container_endpoint, ipam, ChangeError};
use crate::config::TargetOs;
use crate::engine::{ids, Engine, EngineError};
use crate::platform::ContainerEndpoint;
use crate::store::Db;

impl Engine {
    /// Takes the host side of an endpoint of a running container away (disconnect, network
    /// removal).
    pub(super) async fn unwire_running(
        &self,
        network: &Network,
        endpoint: &EndPoint,
    ) -> Result<(), EngineError> {
        if !self.is_running(&endpoint.container_id).await? {
            return Ok(());
        }
        let runtime = Arc::clone(self.runtime()?);
        let container_id = endpoint.container_id.clone();
        let wiring = container_endpoint(network, endpoint, &self.bridged());
        tokio::task::spawn_blocking(move || runtime.disconnected(&container_id, &wiring))
            .await?
            .map_err(EngineError::host(
                "could not take the container off the network",
            ))
    }

    /// Connects a container to a network, allocating its addresses.
    pub async fn connect(&self, config: EndPointConfig) -> Result<(), EngineError> {
        let conflict = |m: &str| EngineError::Conflict(m.to_owned());
        let found = self
            .find_container(&config.container)
            .await?
            .ok_or_else(|| EngineError::NotFound("container not found".into()))?;
        // Not while the container starts: the start wires the endpoints it read, and one made
        // meanwhile would be wired twice or not at all.
        let _starts = self.starting.read().await;
        let _start = self.container_starts.lock(&found.id).await;
        let container = self
            .find_container(&found.id)
            .await?
            .filter(|c| c.id == found.id)
            .ok_or_else(|| EngineError::NotFound("container not found".into()))?;
        let lookup = config.network.clone();
        let network = self
            .store
            .read(move |db| db.find_network(&lookup))
            .await?
            .ok_or_else(|| EngineError::NotFound("network not found".into()))?;
        match (container.network_driver, network.kind) {
            (NetworkDriver::Disabled, _) => {
                return Err(conflict(
                    "containers with the 'disabled' network-driver cannot connect to networks.",
                ))
            }
            (NetworkDriver::Host, _) => {
                return Err(conflict(
                    "containers with the 'host' network-driver cannot connect to networks.",
                ))
            }
            (NetworkDriver::Vnet, NetworkType::Loopback) => {
                return Err(conflict(
                    "containers using the 'vnet' network-driver can't connect to loopback networks",
                ))
            }
            (NetworkDriver::Vnet, NetworkType::Custom) => {
                return Err(conflict(
                    "containers using the 'vnet' network-driver can't connect to custom networks",
                ))
            }
            (NetworkDriver::Ipnet, NetworkType::Custom) if self.os() == TargetOs::Linux => {
                // Its veth pair needs a bridge the daemon made (see platform/linux/net.rs).
                return Err(conflict(
                    "containers using the 'ipnet' network-driver can't connect to custom networks on Linux",
                ));
            }
            _ => {}
        }
        let running = self.is_running(&container.id).await?;
        if running && container.network_driver == NetworkDriver::Vnet {
            return Err(conflict(
                "cannot connect a running vnet container to a network",
            ));
        }
        // Addresses on the network's interface are taken (the <auto> gateway among them).
        let on_interface: Vec<IpAddr> = {
            let interface = network.interface.clone();
            self.on_host(move |host| host.addresses(&interface)).await?
        };
        // A container on a bridge cannot use the broadcast address; an alias (FreeBSD's ipnet)
        // can. On Linux an ipnet container is on a bridge port too.
        let keep_broadcast =
            container.network_driver == NetworkDriver::Ipnet && self.os() == TargetOs::FreeBsd;
        let endpoint_id = ids::new_id();
        let record_network = network.clone();
        let container_id = container.id.clone();
        let endpoint = self
            .change_with_firewall(move |db| {
                if db
                    .find_endpoint(&container_id, &record_network.id)?
                    .is_some()
                {
                    return Err(EngineError::Conflict(
                        "container already connected to the network".into(),
                    ));
                }
                let others = db.endpoints_of_network(&record_network.id)?;
                let ip_address = address4(
                    &record_network,
                    &config.ip_address,
                    &others,
                    &on_interface,
                    keep_broadcast,
                )?;
                let ip_address6 =
                    address6(&record_network, &config.ip_address6, &others, &on_interface)?;
                let endpoint = EndPoint {
                    id: endpoint_id,
                    network_id: record_network.id.clone(),
                    container_id,
                    epair: None,
                    ip_address,
                    ip_address6,
                };
                db.insert_endpoint(&endpoint)?;
                Ok(endpoint)
            })
            .await?;
        if running {
            let runtime = Arc::clone(self.runtime()?);
            let id = container.id.clone();
            let wiring = container_endpoint(&network, &endpoint, &self.bridged());
            let wiring_again = wiring.clone();
            let live = tokio::task::spawn_blocking(move || runtime.connected(&id, &wiring)).await?;
            let live = match live {
                // The interface made for it (Linux: the veth's host end) is recorded; when that
                // fails, the interface goes again with the connection.
                Ok(Some(interface)) => {
                    let recorded = self
                        .record_interfaces(
                            &container.id,
                            vec![(endpoint.id.clone(), Some(interface.clone()))],
                        )
                        .await;
                    match recorded {
                        Ok(()) => Ok(()),
                        Err(err) => {
                            let runtime = Arc::clone(self.runtime()?);
                            let (id, mut made) = (container.id.clone(), wiring_again.clone());
                            made.host_interface = Some(interface);
                            let _ = tokio::task::spawn_blocking(move || {
                                runtime.disconnected(&id, &made)
                            })
                            .await;
                            Err(crate::platform::RuntimeError::Host(err.to_string()))
                        }
                    }
                }
                Ok(None) => Ok(()),
                Err(err) => Err(err),
            };
            if let Err(err) = live {
                let id = endpoint.id.clone();
                self.change_with_firewall(move |db| {
                    db.delete_endpoint(&id)?;
                    Ok(())
                })
                .await?;
                return Err(EngineError::host(
                    "could not wire the container to the network",
                )(err));
            }
        }
        tracing::info!(container = %container.id, network = %network.id, ip = %endpoint.ip_address, ip6 = %endpoint.ip_address6, "connected");
        Ok(())
    }

    /// Disconnects a container from a network (a running one loses the interface at once).
    pub async fn disconnect(&self, network: String, container: String) -> Result<(), EngineError> {
        let conflict = |m: &str| EngineError::Conflict(m.to_owned());
        let found = self
            .find_container(&container)
            .await?
            .ok_or_else(|| conflict("container not found"))?;
        // Not while the container starts: a start that read the endpoint before it went would
        // wire it afterwards, with no rule of the packet filter for its interface.
        let _starts = self.starting.read().await;
        let _start = self.container_starts.lock(&found.id).await;
        let container = self
            .find_container(&found.id)
            .await?
            .filter(|c| c.id == found.id)
            .ok_or_else(|| conflict("container not found"))?;
        let network = self
            .store
            .read(move |db| db.find_network(&network))
            .await?
            .ok_or_else(|| conflict("network not found"))?;
        let (container_id, network_id) = (container.id.clone(), network.id.clone());
        let endpoint = self
            .store
            .read(move |db| db.find_endpoint(&container_id, &network_id))
            .await?
            .ok_or_else(|| conflict("endpoint configuration not found"))?;
        self.unwire_running(&network, &endpoint).await?;
        let id = endpoint.id.clone();
        self.change_with_firewall(move |db| {
            db.delete_endpoint(&id)?;
            Ok(())
        })
        .await?;
        tracing::info!(container = %container.id, network = %network.id, "disconnected");
        Ok(())
    }

    /// The wiring of a container's endpoints for its start, in the order they were made.
    pub(in crate::engine) async fn wiring_of(
        &self,
        container_id: &str,
    ) -> Result<Vec<ContainerEndpoint>, EngineError> {
        let id = container_id.to_owned();
        let bridged = self.bridged();
        Ok(self
            .store
            .read(move |db| {
                let networks = db.list_networks()?;
                Ok(db
                    .endpoints_of_container(&id)?
                    .iter()
                    .filter_map(|e| {
                        networks
                            .iter()
                            .find(|n| n.id == e.network_id)
                            .map(|n| container_endpoint(n, e, &bridged))
                    })
                    .collect())
            })
            .await?)
    }

    /// Records the host-side interfaces of a started container's endpoints (`None`: stopped),
    /// and applies the packet filter again when it names them.
    pub(in crate::engine) async fn record_interfaces(
        &self,
        container_id: &str,
        interfaces: Vec<(String, Option<String>)>,
    ) -> Result<(), EngineError> {
        let _ = container_id;
        if interfaces.is_empty() {
            return Ok(());
        }
        let names_members = self
            .network
            .as_ref()
            .is_some_and(|host| host.policy_names_members());
        let update = move |db: &Db<'_>| -> Result<(), EngineError> {
            for (endpoint, interface) in &interfaces {
                db.set_endpoint_epair(endpoint, interface.as_deref())?;
            }
            Ok(())
        };
        if names_members {
            self.change_with_firewall(update).await
        } else {
            Ok(self
                .store
                .write_with(move |db| -> Result<(), ChangeError> { Ok(update(db)?) })
                .await?)
        }
    }
}

/// The IPv4 address of a new endpoint, per the request (`""`, `<auto>` or an address).
pub(super) fn address4(
    network: &Network,
    wanted: &str,
    others: &[EndPoint],
    on_interface: &[IpAddr],
    keep_broadcast: bool,
) -> Result<String, EngineError> {
    let conflict = |m: String| EngineError::Conflict(m);
    let subnet = ipam::subnet4(&network.subnet).ok().flatten();
    let taken: HashSet<Ipv4Addr> = others
        .iter()
        .filter_map(|e| e.ip_address.parse().ok())
        .chain(on_interface.iter().filter_map(|ip| match ip {
            IpAddr::V4(ip) => Some(*ip),
            IpAddr::V6(_) => None,
        }))
        .collect();
    match (wanted, subnet) {
        ("", _) | (ipam::AUTO, None) => Ok(String::new()),
        (ipam::AUTO, Some(subnet)) => ipam::next4(subnet, &taken, keep_broadcast)
            .map(|ip| ip.to_string())
            .ok_or_else(|| conflict("no more inet IP's left in the network".into())),
        (_, None) => Err(conflict(
            "cannot set ip address because there is no IPv4 subnet defined for this network".into(),
        )),
        (text, Some(subnet)) => {
            let ip: Ipv4Addr = text
                .parse()
                .map_err(|_| conflict(format!("could not parse inet address {text}: einval")))?;
            if !subnet.contains(&ip) {
                return Err(conflict(format!(
                    "address {ip} is not in the subnet {subnet} of network {}",
                    network.name
                )));
            }
            if taken.contains(&ip) {
                return Err(conflict(format!(
                    "address {ip} is already used in network {}",
                    network.name
                )));
            }
            Ok(ip.to_string())
        }
    }
}

/// The IPv6 address of a new endpoint, likewise.
pub(super) fn address6(
    network: &Network,
    wanted: &str,
    others: &[EndPoint],
    on_interface: &[IpAddr],
) -> Result<String, EngineError> {
    let conflict = |m: String| EngineError::Conflict(m);
    let subnet = ipam::subnet6(&network.subnet6).ok().flatten();
    let taken: HashSet<Ipv6Addr> = others
        .iter()
        .filter_map(|e| e.ip_address6.parse().ok())
        .chain(on_interface.iter().filter_map(|ip| match ip {
            IpAddr::V6(ip) => Some(*ip),
            IpAddr::V4(_) => None,
        }))
        .collect();
    match (wanted, subnet) {
        ("", _) | (ipam::AUTO, None) => Ok(String::new()),
        (ipam::AUTO, Some(subnet)) => ipam::next6(subnet, &taken)
            .map(|ip| ip.to_string())
            .ok_or_else(|| conflict("no more inet6 IP's left in the network".into())),
        (_, None) => Err(conflict(
            "cannot set ip address because there is no IPv6 subnet defined for this network".into(),
        )),
        (text, Some(subnet)) => {
            let ip: Ipv6Addr = text
                .parse()
                .map_err(|_| conflict(format!("could not parse inet6 address {text}: einval")))?;
            if !subnet.contains(&ip) {
                return Err(conflict(format!(
                    "address {ip} is not in the subnet {subnet} of network {}",
                    network.name
                )));
            }
            if taken.contains(&ip) {
                return Err(conflict(format!(
                    "address {ip} is already used in network {}",
                    network.name
                )));
            }
            Ok(ip.to_string())
        }
    }
}
