//! Networks and endpoints: create, list, inspect, remove, prune, connect and disconnect, with the
//! Kleened API's checks and messages; the host side through [`NetworkHost`] and the runtime; the
//! packet filter applied after every change, inside the store transaction, so a ruleset the host
//! refuses leaves the store as it was.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use kleene_api::{
    Container, EndPoint, IdResponse, Network, NetworkConfig, NetworkInspect, NetworkType,
};

mod endpoints;
pub mod firewall;
pub mod ipam;

use super::names::{valid_interface, valid_network_name, NAME_MAX};
use super::{ids, Engine, EngineError};
use crate::platform::{ContainerEndpoint, NetworkError, NetworkHost, NetworkSetup};
use crate::store::{Db, StoreError};

/// What the host needs to make a network's interface; `bridged` are the network types whose
/// interface is a bridge on this platform ([`NetworkHost::bridged`]), which carries its `<auto>`
/// gateways.
pub(super) fn setup_of(network: &Network, bridged: &[NetworkType]) -> NetworkSetup {
    let subnet = ipam::subnet4(&network.subnet).ok().flatten();
    let subnet6 = ipam::subnet6(&network.subnet6).ok().flatten();
    let bridge = bridged.contains(&network.kind);
    let (gateway, gateway6) = gateways(network, bridged);
    NetworkSetup {
        kind: network.kind,
        interface: network.interface.clone(),
        // Only `<auto>` gateways are put on the bridge; explicit ones are somebody else's.
        gateway: (bridge && gateway == ipam::AUTO)
            .then(|| ipam::gateway4(gateway, subnet))
            .flatten()
            .zip(subnet)
            .and_then(|(gw, net)| ipnet::Ipv4Net::new(gw, net.prefix_len()).ok()),
        gateway6: (bridge && gateway6 == ipam::AUTO)
            .then(|| ipam::gateway6(gateway6, subnet6))
            .flatten()
            .zip(subnet6)
            .and_then(|(gw, net)| ipnet::Ipv6Net::new(gw, net.prefix_len()).ok()),
    }
}

/// A network's gateways as the host makes them. A loopback network that is a bridge here (Linux)
/// has `<auto>` ones: the first addresses of its subnets are the host's on the bridge, so the host
/// reaches its ipnet containers and they reach the host and, with NAT, the outside, as jails
/// whose addresses are aliases on the host's cloned `lo` do. The reference's client sends no
/// gateway for loopback networks.
fn gateways<'a>(network: &'a Network, bridged: &[NetworkType]) -> (&'a str, &'a str) {
    let host_side = |gateway: &'a str| {
        if network.kind == NetworkType::Loopback
            && bridged.contains(&NetworkType::Loopback)
            && gateway.is_empty()
        {
            ipam::AUTO
        } else {
            gateway
        }
    };
    (host_side(&network.gateway), host_side(&network.gateway6))
}

/// How a container is wired to a network at its start (vnet on bridges, and ipnet on Linux).
pub(super) fn container_endpoint(
    network: &Network,
    endpoint: &EndPoint,
    bridged: &[NetworkType],
) -> ContainerEndpoint {
    let subnet = ipam::subnet4(&network.subnet).ok().flatten();
    let subnet6 = ipam::subnet6(&network.subnet6).ok().flatten();
    let address = endpoint
        .ip_address
        .parse::<Ipv4Addr>()
        .ok()
        .zip(subnet)
        .and_then(|(ip, net)| ipnet::Ipv4Net::new(ip, net.prefix_len()).ok());
    let address6 = endpoint
        .ip_address6
        .parse::<Ipv6Addr>()
        .ok()
        .zip(subnet6)
        .and_then(|(ip, net)| ipnet::Ipv6Net::new(ip, net.prefix_len()).ok());
    // The host reaches the container on the bridge where the bridge carries the gateway.
    let setup = setup_of(network, bridged);
    let neighbours = address
        .filter(|_| setup.gateway.is_some())
        .map(|a| IpAddr::V4(a.addr()))
        .into_iter()
        .chain(
            address6
                .filter(|_| setup.gateway6.is_some())
                .map(|a| IpAddr::V6(a.addr())),
        )
        .collect();
    ContainerEndpoint {
        endpoint_id: endpoint.id.clone(),
        interface: network.interface.clone(),
        isolated: !network.icc,
        address,
        gateway: ipam::gateway4(gateways(network, bridged).0, subnet),
        address6,
        gateway6: ipam::gateway6(gateways(network, bridged).1, subnet6),
        mac: firewall::endpoint_mac(endpoint),
        neighbours,
        host_interface: endpoint.epair.clone(),
    }
}

/// Why a change that applies the packet filter failed: the store, or the host.
#[derive(Debug, thiserror::Error)]
enum ChangeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<ChangeError> for EngineError {
    fn from(err: ChangeError) -> EngineError {
        match err {
            ChangeError::Store(e) => EngineError::Store(e),
            ChangeError::Engine(e) => e,
        }
    }
}

/// A host networking failure as the engine's: a request the host cannot carry out is invalid,
/// the rest is the host's failure.
fn host_failure(err: NetworkError) -> EngineError {
    match err {
        NetworkError::Invalid(message) => EngineError::Invalid(message),
        other => EngineError::host("could not change the host's networking")(other),
    }
}

/// Builds the policy from the store as it is in this transaction, loads it, and saves the
/// published ports' new addresses. An error undoes the transaction.
fn apply_in(
    db: &Db<'_>,
    network: &Arc<dyn NetworkHost>,
    host_gateway: Option<&str>,
) -> Result<(), ChangeError> {
    let networks = db.list_networks()?;
    let endpoints = db.list_endpoints()?;
    let mut containers: Vec<Container> = db
        .list_containers()?
        .into_iter()
        .map(|s| s.container)
        .collect();
    containers.reverse();
    let built = firewall::build(
        host_gateway,
        &networks,
        &endpoints,
        &containers,
        &network.bridged(),
        &|id, recorded| network.member_interface(id, recorded),
    );
    // Nothing to filter: no table at all (the host stays as the daemon found it).
    let applied = if built.policy.networks.is_empty() && built.policy.ports.is_empty() {
        network.clear_firewall()
    } else {
        network.apply_firewall(&built.policy)
    };
    applied.map_err(host_failure)?;
    for (id, ports) in built.changed {
        db.set_public_ports(&id, &ports)?;
    }
    Ok(())
}

impl Engine {
    /// The network types whose interface is a bridge on this host ([`NetworkHost::bridged`]).
    pub(super) fn bridged(&self) -> Vec<NetworkType> {
        self.network
            .as_ref()
            .map_or_else(|| vec![NetworkType::Bridge], |host| host.bridged())
    }

    fn network_host(&self) -> Result<Arc<dyn NetworkHost>, EngineError> {
        self.network.clone().ok_or_else(|| {
            EngineError::Internal("this daemon has no networking for its platform".into())
        })
    }

    /// The interface of the host's default route, as found at start.
    pub(super) fn host_gateway(&self) -> Option<String> {
        self.host_gateway
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Runs blocking host networking work off the async threads.
    async fn on_host<T, F>(&self, f: F) -> Result<T, EngineError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn NetworkHost) -> Result<T, NetworkError> + Send + 'static,
    {
        let host = self.network_host()?;
        tokio::task::spawn_blocking(move || f(host.as_ref()))
            .await?
            .map_err(host_failure)
    }

    /// Applies a store change and the packet filter that follows from it, in one transaction:
    /// when the host refuses the rules, the change is undone and the old rules stay.
    pub(super) async fn change_with_firewall<T, F>(&self, change: F) -> Result<T, EngineError>
    where
        T: Send + 'static,
        F: FnOnce(&Db<'_>) -> Result<T, EngineError> + Send + 'static,
    {
        let host = self.network.clone();
        let gateway = self.host_gateway();
        Ok(self
            .store
            .write_with(move |db| -> Result<T, ChangeError> {
                let value = change(db)?;
                if let Some(host) = &host {
                    apply_in(db, host, gateway.as_deref())?;
                }
                Ok(value)
            })
            .await?)
    }

    /// Loads the packet filter for the store as it is.
    pub(super) async fn apply_firewall(&self) -> Result<(), EngineError> {
        self.change_with_firewall(|_| Ok(())).await
    }

    /// Every network, by name.
    pub async fn list_networks(&self) -> Result<Vec<Network>, EngineError> {
        Ok(self.store.read(|db| db.list_networks()).await?)
    }

    /// One network with its endpoints, by ID, ID prefix or name.
    pub async fn inspect_network(&self, identifier: String) -> Result<NetworkInspect, EngineError> {
        self.store
            .read(move |db| {
                let Some(network) = db.find_network(&identifier)? else {
                    return Ok(None);
                };
                Ok(Some(NetworkInspect {
                    network_endpoints: db.endpoints_of_network(&network.id)?,
                    network,
                }))
            })
            .await?
            .ok_or_else(|| EngineError::NotFound("network not found".into()))
    }

    /// Creates a network: its record, its host interface, and the packet filter with it.
    pub async fn create_network(&self, config: NetworkConfig) -> Result<IdResponse, EngineError> {
        let conflict = |m: String| EngineError::Conflict(m);
        if config.name.is_empty() || config.name.len() > NAME_MAX {
            return Err(conflict(
                "a network name is 1 to 255 characters long".into(),
            ));
        }
        if !valid_network_name(&config.name) {
            return Err(EngineError::Invalid(format!(
                "invalid network name '{}': use letters, digits, '_', '.' and '-', starting with a \
                 letter or digit, at most {} bytes",
                config.name,
                NAME_MAX
            )));
        }
        let subnet =
            ipam::subnet4(&config.subnet).map_err(|e| conflict(format!("invalid subnet: {e}")))?;
        let subnet6 = ipam::subnet6(&config.subnet6)
            .map_err(|e| conflict(format!("invalid subnet6: {e}")))?;
        ipam::check_gateway(&config.gateway, false)
            .map_err(|e| conflict(format!("invalid gateway: {e}")))?;
        ipam::check_gateway(&config.gateway6, true)
            .map_err(|e| conflict(format!("invalid gateway6: {e}")))?;
        if !config.interface.is_empty() && !valid_interface(&config.interface) {
            return Err(conflict(format!(
                "invalid interface name '{}': at most 15 letters, digits, '_', '.' or '-'",
                config.interface
            )));
        }
        if config.kind == NetworkType::Custom && config.interface.is_empty() {
            return Err(conflict(
                "a custom network needs the name of an existing interface".into(),
            ));
        }
        let nat = match config.nat.as_str() {
            "<host-gateway>" => self.host_gateway().unwrap_or_default(),
            "" => String::new(),
            other if valid_interface(other) => other.to_owned(),
            other => {
                return Err(conflict(format!(
                    "invalid nat interface '{other}': at most 15 letters, digits, '_', '.' or '-'"
                )))
            }
        };
        let name = config.name.clone();
        let wanted = config.interface.clone();
        let kind = config.kind;
        // The name and the interface are decided against the stored networks; the record is made
        // only once the interface exists, in the transaction that loads the packet filter.
        let taken: Vec<Network> = self.store.read(|db| db.list_networks()).await?;
        let lookup = name.clone();
        if self
            .store
            .read(move |db| db.find_network(&lookup))
            .await?
            .is_some()
        {
            return Err(conflict("network name is already taken".into()));
        }
        let interface = if wanted.is_empty() {
            let used: HashSet<String> = taken.iter().map(|n| n.interface.clone()).collect();
            let mut n = 0;
            loop {
                let candidate = format!("kleene{n}");
                if !used.contains(&candidate)
                    && !self
                        .on_host({
                            let candidate = candidate.clone();
                            move |host| host.interface_exists(&candidate)
                        })
                        .await?
                {
                    break candidate;
                }
                n += 1;
            }
        } else {
            if let Some(other) = taken.iter().find(|n| n.interface == wanted) {
                if kind != NetworkType::Custom || other.kind != NetworkType::Custom {
                    return Err(conflict(format!(
                        "interface '{wanted}' is already used by network '{}'",
                        other.name
                    )));
                }
            }
            wanted
        };
        let network = Network {
            id: ids::new_id(),
            name,
            kind,
            subnet: subnet.map(|s| s.to_string()).unwrap_or_default(),
            subnet6: subnet6.map(|s| s.to_string()).unwrap_or_default(),
            interface,
            gateway: config.gateway,
            gateway6: config.gateway6,
            nat,
            icc: config.icc,
            internal: config.internal,
        };
        let setup = setup_of(&network, &self.bridged());
        self.on_host({
            let setup = setup.clone();
            move |host| {
                host.prepare()?;
                host.create(&setup)
            }
        })
        .await?;
        let record = network.clone();
        let stored = self
            .change_with_firewall(move |db| {
                if db.find_network(&record.name)?.is_some() {
                    return Err(EngineError::Conflict(
                        "network name is already taken".into(),
                    ));
                }
                db.insert_network(&record)?;
                Ok(())
            })
            .await;
        if let Err(err) = stored {
            if let Err(undo) = self.on_host(move |host| host.remove(&setup)).await {
                tracing::error!(network = %network.id, error = %undo, "could not remove the interface of a network that failed");
            }
            return Err(err);
        }
        tracing::info!(network = %network.id, name = %network.name, interface = %network.interface, "network created");
        Ok(IdResponse { id: network.id })
    }

    /// Removes a network: its containers are disconnected first (running ones too), then its
    /// record goes, the packet filter follows, and its interface is removed.
    pub async fn remove_network(&self, identifier: String) -> Result<IdResponse, EngineError> {
        // No container starts meanwhile: one that read its endpoints before they went would be
        // wired to the network afterwards, with no rule of the packet filter for its interface.
        let _starting = self.starting.write().await;
        let lookup = identifier.clone();
        let network = self
            .store
            .read(move |db| db.find_network(&lookup))
            .await?
            .ok_or_else(|| EngineError::NotFound("network not found.".into()))?;
        let endpoints = {
            let id = network.id.clone();
            self.store
                .read(move |db| db.endpoints_of_network(&id))
                .await?
        };
        for endpoint in &endpoints {
            self.unwire_running(&network, endpoint).await?;
        }
        let id = network.id.clone();
        self.change_with_firewall(move |db| {
            db.delete_network(&id)?;
            Ok(())
        })
        .await?;
        let setup = setup_of(&network, &self.bridged());
        self.on_host(move |host| host.remove(&setup)).await?;
        tracing::info!(network = %network.id, "network removed");
        Ok(IdResponse { id: network.id })
    }

    /// Removes every network without endpoints; answers their IDs.
    pub async fn prune_networks(&self) -> Result<Vec<String>, EngineError> {
        let unused: Vec<Network> = self
            .store
            .read(|db| {
                let endpoints = db.list_endpoints()?;
                Ok(db
                    .list_networks()?
                    .into_iter()
                    .filter(|n| !endpoints.iter().any(|e| e.network_id == n.id))
                    .collect())
            })
            .await?;
        let mut removed = vec![];
        for network in unused {
            match self.remove_network(network.id.clone()).await {
                Ok(_) => removed.push(network.id),
                Err(err) => {
                    tracing::warn!(network = %network.id, error = %err, "prune could not remove network")
                }
            }
        }
        Ok(removed)
    }

    /// At daemon start: forwarding on, interfaces of networks no longer stored removed, every
    /// stored network's interface made again, no endpoint marked running, and the packet filter
    /// loaded. A failure is logged: containers without networks still run.
    pub(super) async fn networks_startup(&self) {
        let Some(host) = self.network.clone() else {
            return;
        };
        let networks = match self.store.read(|db| db.list_networks()).await {
            Ok(networks) => networks,
            Err(err) => {
                tracing::error!(error = %err, "cannot read the networks");
                return;
            }
        };
        let any = !networks.is_empty();
        let result = tokio::task::spawn_blocking({
            let host = Arc::clone(&host);
            move || -> Result<Option<String>, NetworkError> {
                // A daemon without networks leaves the host's forwarding as it found it.
                if any {
                    if let Err(err) = host.prepare() {
                        tracing::error!(error = %err, "cannot prepare the host for networks");
                    }
                }
                let gateway = host.host_gateway()?;
                for stale in host.own_interfaces()? {
                    if !networks.iter().any(|n| n.interface == stale) {
                        tracing::info!(interface = %stale, "removing an interface of a network that is gone");
                        host.remove(&NetworkSetup {
                            kind: NetworkType::Bridge,
                            interface: stale,
                            gateway: None,
                            gateway6: None,
                        })?;
                    }
                }
                for network in &networks {
                    if let Err(err) = host.create(&setup_of(network, &host.bridged())) {
                        tracing::error!(network = %network.id, interface = %network.interface, error = %err, "cannot make the network's interface");
                    }
                }
                Ok(gateway)
            }
        })
        .await;
        match result {
            Ok(Ok(gateway)) => {
                if gateway.is_none() {
                    tracing::warn!("no default route: networks with nat <host-gateway> get no NAT");
                }
                *self.host_gateway.lock().unwrap_or_else(|e| e.into_inner()) = gateway;
            }
            Ok(Err(err)) => tracing::error!(error = %err, "cannot prepare host networking"),
            Err(err) => tracing::error!(error = %err, "cannot prepare host networking"),
        }
        let cleared = self
            .store
            .write(|db| {
                for endpoint in db.list_endpoints()? {
                    if endpoint.epair.is_some() {
                        db.set_endpoint_epair(&endpoint.id, None)?;
                    }
                }
                Ok(())
            })
            .await;
        if let Err(err) = cleared {
            tracing::error!(error = %err, "cannot reset the endpoints");
        }
        // Without networks there is nothing to filter: rules a crash left behind go, and no
        // table is made.
        let loaded = if any {
            self.apply_firewall().await
        } else {
            self.on_host(|host| host.clear_firewall()).await
        };
        if let Err(err) = loaded {
            tracing::error!(error = %err, "cannot load the packet filter rules");
        }
    }

    /// At daemon stop (after the containers stopped): the networks' interfaces and the packet
    /// filter rules are removed; the next start makes them again from the store.
    pub(super) async fn networks_shutdown(&self) {
        let Some(host) = self.network.clone() else {
            return;
        };
        let networks = self
            .store
            .read(|db| db.list_networks())
            .await
            .unwrap_or_default();
        let result = tokio::task::spawn_blocking(move || {
            for network in &networks {
                if let Err(err) = host.remove(&setup_of(network, &host.bridged())) {
                    tracing::error!(network = %network.id, error = %err, "cannot remove the network's interface");
                }
            }
            // The host ends of the stopped containers' interfaces go with their namespaces, a
            // little later; wait for that (briefly), then remove what is left.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
            loop {
                match host.own_interfaces() {
                    Ok(left) if left.is_empty() => break,
                    Ok(left) if std::time::Instant::now() >= deadline => {
                        for interface in left {
                            let _ = host.remove(&NetworkSetup {
                                kind: NetworkType::Bridge,
                                interface,
                                gateway: None,
                                gateway6: None,
                            });
                        }
                        break;
                    }
                    Ok(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
                    Err(err) => {
                        tracing::error!(error = %err, "cannot list the daemon's interfaces");
                        break;
                    }
                }
            }
            host.clear_firewall()
        })
        .await;
        if let Ok(Err(err)) = result {
            tracing::error!(error = %err, "cannot remove the packet filter rules");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::endpoints::{address4, address6};
    use super::*;
    use crate::store::Store;

    /// A host that makes interfaces and refuses every ruleset after the first `accept` ones.
    #[derive(Debug, Default)]
    struct FussyHost {
        accept: std::sync::atomic::AtomicUsize,
        made: std::sync::Mutex<Vec<String>>,
    }

    impl NetworkHost for FussyHost {
        fn prepare(&self) -> Result<(), NetworkError> {
            Ok(())
        }
        fn host_gateway(&self) -> Result<Option<String>, NetworkError> {
            Ok(Some("eth0".into()))
        }
        fn interface_exists(&self, name: &str) -> Result<bool, NetworkError> {
            Ok(self.made.lock().unwrap().iter().any(|m| m == name))
        }
        fn own_interfaces(&self) -> Result<Vec<String>, NetworkError> {
            Ok(self.made.lock().unwrap().clone())
        }
        fn addresses(&self, _: &str) -> Result<Vec<IpAddr>, NetworkError> {
            Ok(vec![])
        }
        fn create(&self, network: &NetworkSetup) -> Result<(), NetworkError> {
            self.made.lock().unwrap().push(network.interface.clone());
            Ok(())
        }
        fn remove(&self, network: &NetworkSetup) -> Result<(), NetworkError> {
            self.made
                .lock()
                .unwrap()
                .retain(|m| *m != network.interface);
            Ok(())
        }
        fn apply_firewall(&self, _: &pf::Policy) -> Result<(), NetworkError> {
            use std::sync::atomic::Ordering;
            let left = self.accept.load(Ordering::SeqCst);
            if left == 0 {
                return Err(NetworkError::Refused {
                    checker: "nft -c -f -".into(),
                    message: "Error: syntax error in rule 3".into(),
                });
            }
            self.accept.store(left - 1, Ordering::SeqCst);
            Ok(())
        }
        fn clear_firewall(&self) -> Result<(), NetworkError> {
            Ok(())
        }
    }

    fn engine_with(host: Arc<FussyHost>) -> Arc<Engine> {
        let (engine, _) = crate::engine::test_engine_with(Store::open_in_memory().unwrap(), None);
        let mut engine = Arc::try_unwrap(engine).unwrap();
        engine.network = Some(host);
        Arc::new(engine)
    }

    fn config(name: &str) -> NetworkConfig {
        serde_json::from_value(serde_json::json!({
            "name": name, "type": "bridge", "subnet": "10.9.0.0/24", "gateway": "<auto>"
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn a_refused_ruleset_undoes_the_network_and_its_interface() {
        let host = Arc::new(FussyHost::default());
        host.accept.store(1, std::sync::atomic::Ordering::SeqCst);
        let engine = engine_with(host.clone());
        engine.create_network(config("first")).await.unwrap();
        let err = engine.create_network(config("second")).await.unwrap_err();
        assert!(err.to_string().contains("syntax error in rule 3"), "{err}");
        let names: Vec<String> = engine
            .list_networks()
            .await
            .unwrap()
            .into_iter()
            .map(|n| n.name)
            .collect();
        assert_eq!(
            names,
            vec!["first".to_owned()],
            "the refused network is not stored"
        );
        assert_eq!(
            host.made.lock().unwrap().clone(),
            vec!["kleene0".to_owned()],
            "its interface was removed again"
        );
    }

    #[tokio::test]
    async fn a_bad_network_name_is_refused_and_nothing_is_made() {
        let host = Arc::new(FussyHost::default());
        host.accept.store(1, std::sync::atomic::Ordering::SeqCst);
        let engine = engine_with(host.clone());
        let err = engine.create_network(config("../web")).await.unwrap_err();
        assert!(matches!(err, EngineError::Invalid(_)), "{err:?}");
        assert!(
            err.to_string().starts_with("invalid network name '../web'"),
            "{err}"
        );
        assert!(engine.list_networks().await.unwrap().is_empty());
        assert!(
            host.made.lock().unwrap().is_empty(),
            "no interface was made"
        );
    }

    #[test]
    fn explicit_addresses_must_be_in_the_subnet_and_free() {
        let mut network = crate::store::testdata::network("n1", "web");
        network.subnet = "10.0.0.0/24".into();
        let other = EndPoint {
            id: "e1".into(),
            network_id: "n1".into(),
            container_id: "c1".into(),
            epair: None,
            ip_address: "10.0.0.5".into(),
            ip_address6: String::new(),
        };
        let err = |wanted| {
            address4(&network, wanted, std::slice::from_ref(&other), &[], false)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err("10.0.1.5"),
            "address 10.0.1.5 is not in the subnet 10.0.0.0/24 of network web"
        );
        assert_eq!(
            err("10.0.0.5"),
            "address 10.0.0.5 is already used in network web"
        );
        assert_eq!(
            err("10.0.0.x"),
            "could not parse inet address 10.0.0.x: einval"
        );
        assert_eq!(
            address4(
                &network,
                "<auto>",
                std::slice::from_ref(&other),
                &["10.0.0.1".parse().unwrap()],
                false
            )
            .unwrap(),
            "10.0.0.2"
        );
        network.subnet.clear();
        assert_eq!(address4(&network, "<auto>", &[], &[], false).unwrap(), "");
        assert_eq!(
            address4(&network, "10.0.0.9", &[], &[], false)
                .unwrap_err()
                .to_string(),
            "cannot set ip address because there is no IPv4 subnet defined for this network"
        );
        assert_eq!(
            address6(&network, "fdef:1234:5678::10", &[], &[])
                .unwrap_err()
                .to_string(),
            "cannot set ip address because there is no IPv6 subnet defined for this network"
        );
    }
}
