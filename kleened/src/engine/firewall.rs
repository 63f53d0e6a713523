//! The packet-filter policy from the store: networks, their endpoints and the containers' published
//! ports become a [`pf::Policy`]. Pure; the engine builds it inside the store transaction that
//! changes what it depends on and loads it there, so a policy the host refuses undoes the change.

use kleene_api::{Container, EndPoint, Network, PortProtocol, PublishedPort};

use super::ipam;

/// The policy, and the published ports of each container with the addresses they now forward to
/// (a port forwards to the container's first IPv4 and first IPv6 address among its endpoints;
/// without one the stored value is kept), for the containers whose ports changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    /// The policy.
    pub policy: pf::Policy,
    /// Containers whose `public_ports` addresses changed, with the new ports.
    pub changed: Vec<(String, Vec<PublishedPort>)>,
}

/// Builds the policy. `networks` in name order, `endpoints` in the order they were made,
/// `containers` oldest first.
pub fn build(
    host_gateway: Option<&str>,
    networks: &[Network],
    endpoints: &[EndPoint],
    containers: &[Container],
) -> Built {
    let policy_networks = networks
        .iter()
        .map(|network| pf::NetworkPolicy {
            id: network.id.clone(),
            interface: network.interface.clone(),
            subnet: ipam::subnet4(&network.subnet).ok().flatten(),
            subnet6: ipam::subnet6(&network.subnet6).ok().flatten(),
            nat: (!network.nat.is_empty()).then(|| network.nat.clone()),
            icc: network.icc,
            internal: network.internal,
            members: endpoints
                .iter()
                .filter(|e| e.network_id == network.id)
                .filter_map(|e| e.epair.clone())
                .collect(),
        })
        .collect();
    let mut ports = vec![];
    let mut changed = vec![];
    for container in containers {
        if container.public_ports.is_empty() {
            continue;
        }
        let own: Vec<&EndPoint> = endpoints
            .iter()
            .filter(|e| e.container_id == container.id)
            .collect();
        let ip4 = own
            .iter()
            .map(|e| e.ip_address.as_str())
            .find(|ip| !ip.is_empty());
        let ip6 = own
            .iter()
            .map(|e| e.ip_address6.as_str())
            .find(|ip| !ip.is_empty());
        let mut updated = container.public_ports.clone();
        for port in &mut updated {
            if let Some(ip) = ip4 {
                port.ip_address = ip.to_owned();
            }
            if let Some(ip) = ip6 {
                port.ip_address6 = ip.to_owned();
            }
            let Ok(host_port) = pf::PortRange::parse(&port.host_port) else {
                continue;
            };
            let Ok(container_port) = pf::ContainerPort::parse(&port.container_port, host_port)
            else {
                continue;
            };
            let rule = pf::PublishedPort {
                interfaces: port.interfaces.clone(),
                host_port,
                container_port,
                protocol: match port.protocol {
                    PortProtocol::Tcp => pf::Protocol::Tcp,
                    PortProtocol::Udp => pf::Protocol::Udp,
                },
                ip_address: port.ip_address.parse().ok(),
                ip_address6: port.ip_address6.parse().ok(),
            };
            if rule.ip_address.is_some() || rule.ip_address6.is_some() {
                ports.push(rule);
            }
        }
        if updated != container.public_ports {
            changed.push((container.id.clone(), updated));
        }
    }
    Built {
        policy: pf::Policy {
            host_gateway: host_gateway.map(str::to_owned),
            networks: policy_networks,
            ports,
        },
        changed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testdata;

    #[test]
    fn ports_forward_to_the_first_address_and_members_are_running_endpoints() {
        let mut network = testdata::network("0f0f0f0f0f0f", "web");
        network.subnet = "10.13.37.0/24".into();
        network.nat = "eth0".into();
        let mut container = testdata::container("c1c1c1c1c1c1", Some("c"), "i1", "2026-01-01");
        container.public_ports = vec![PublishedPort {
            interfaces: vec!["eth0".into()],
            host_port: "8080".into(),
            container_port: "80".into(),
            protocol: PortProtocol::Tcp,
            ip_address: String::new(),
            ip_address6: String::new(),
        }];
        let endpoint = EndPoint {
            id: "e1".into(),
            network_id: network.id.clone(),
            container_id: container.id.clone(),
            epair: Some("epair3a".into()),
            ip_address: "10.13.37.2".into(),
            ip_address6: String::new(),
        };
        let built = build(Some("eth0"), &[network], &[endpoint], &[container]);
        assert_eq!(built.policy.networks[0].members, vec!["epair3a".to_owned()]);
        assert_eq!(built.policy.networks[0].nat.as_deref(), Some("eth0"));
        assert_eq!(built.policy.ports.len(), 1);
        assert_eq!(
            built.policy.ports[0].ip_address,
            Some("10.13.37.2".parse().unwrap())
        );
        assert_eq!(built.changed.len(), 1);
        assert_eq!(built.changed[0].1[0].ip_address, "10.13.37.2");
    }

    #[test]
    fn a_port_without_any_address_makes_no_rule() {
        let mut container = testdata::container("c1c1c1c1c1c1", Some("c"), "i1", "2026-01-01");
        container.public_ports = vec![PublishedPort {
            interfaces: vec![],
            host_port: "8080".into(),
            container_port: "80".into(),
            protocol: PortProtocol::Udp,
            ip_address: String::new(),
            ip_address6: String::new(),
        }];
        let built = build(None, &[], &[], &[container]);
        assert!(built.policy.ports.is_empty());
        assert!(built.changed.is_empty());
    }
}
