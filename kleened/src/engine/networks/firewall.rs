//! The packet-filter policy from the store: networks, their endpoints and the containers' published
//! ports become a [`pf::Policy`]. Pure; the engine builds it inside the store transaction that
//! changes what it depends on and loads it there, so a policy the host refuses undoes the change.
//!
//! The members of a bridge network are its endpoints whose container's host-side interface the
//! platform can name ([`crate::platform::NetworkHost::member_interface`]), each with the MAC
//! address the wiring gives it ([`endpoint_mac`]) and its addresses: the packet
//! filter lets nothing else come from that interface.

use kleene_api::{Container, EndPoint, Network, NetworkType, PortProtocol, PublishedPort};

use super::ipam;

/// The MAC address of an endpoint's container: the wiring sets it, the packet filter checks it.
pub fn endpoint_mac(endpoint: &EndPoint) -> pf::MacAddress {
    pf::MacAddress::of_endpoint(endpoint.ip_address.parse().ok(), &endpoint.id)
}

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
/// `containers` oldest first; `bridged` are the network types whose interface is a bridge on this
/// platform (bridge networks; on Linux loopback networks too); `member_interface` names an
/// endpoint's host-side interface for the rules, from its ID and the recorded interface of its
/// running container.
pub fn build(
    host_gateway: Option<&str>,
    networks: &[Network],
    endpoints: &[EndPoint],
    containers: &[Container],
    bridged: &[NetworkType],
    member_interface: &dyn Fn(&str, Option<&str>) -> Option<String>,
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
            bridge: bridged.contains(&network.kind),
            members: endpoints
                .iter()
                .filter(|e| e.network_id == network.id && bridged.contains(&network.kind))
                .filter_map(|e| {
                    Some(pf::Member {
                        interface: member_interface(&e.id, e.epair.as_deref())?,
                        mac: endpoint_mac(e),
                        ip_address: e.ip_address.parse().ok(),
                        ip_address6: e.ip_address6.parse().ok(),
                    })
                })
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

/// The first of `wanted` (a new container's published ports) whose host port another container
/// already publishes for the same protocol, or that `wanted` itself publishes twice: the port
/// (`8080/tcp`) and who holds it (a container's name, else its ID; `None` for `wanted` itself).
/// Interfaces do not matter: the host's own connections reach a published port on any of its
/// addresses, so a host port leads to one container only.
pub fn port_clash(
    wanted: &[PublishedPort],
    others: &[Container],
) -> Option<(String, Option<String>)> {
    let range = |p: &PublishedPort| pf::PortRange::parse(&p.host_port).ok();
    let clash = |a: &PublishedPort, b: &PublishedPort| {
        a.protocol == b.protocol && range(a).zip(range(b)).is_some_and(|(a, b)| a.overlaps(b))
    };
    let label = |p: &PublishedPort| {
        let protocol = match p.protocol {
            PortProtocol::Tcp => "tcp",
            PortProtocol::Udp => "udp",
        };
        format!("{}/{protocol}", p.host_port)
    };
    for (index, port) in wanted.iter().enumerate() {
        if wanted[..index].iter().any(|earlier| clash(earlier, port)) {
            return Some((label(port), None));
        }
        for other in others {
            if let Some(held) = other.public_ports.iter().find(|p| clash(p, port)) {
                let holder = other.name.clone().unwrap_or_else(|| other.id.clone());
                return Some((label(held), Some(holder)));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testdata;

    #[test]
    fn a_host_port_leads_to_one_container() {
        let port = |host: &str, protocol| PublishedPort {
            interfaces: vec!["eth0".into()],
            host_port: host.into(),
            container_port: "80".into(),
            protocol,
            ip_address: String::new(),
            ip_address6: String::new(),
        };
        let mut web = testdata::container("c1", Some("web"), "img", "2026-01-01T00:00:00Z");
        web.public_ports = vec![port("8080:8090", PortProtocol::Tcp)];
        let others = [web];
        assert_eq!(
            port_clash(&[port("8085", PortProtocol::Tcp)], &others),
            Some(("8080:8090/tcp".to_owned(), Some("web".to_owned())))
        );
        let mut elsewhere = port("8085", PortProtocol::Tcp);
        elsewhere.interfaces = vec!["eth1".into()];
        assert!(port_clash(&[elsewhere], &others).is_some(), "any interface");
        assert_eq!(
            port_clash(&[port("8085", PortProtocol::Udp)], &others),
            None
        );
        assert_eq!(
            port_clash(&[port("8091", PortProtocol::Tcp)], &others),
            None
        );
        assert_eq!(
            port_clash(
                &[
                    port("9000", PortProtocol::Tcp),
                    port("9000", PortProtocol::Tcp)
                ],
                &[]
            ),
            Some(("9000/tcp".to_owned(), None))
        );
    }

    /// Members named by their recorded interface, as on FreeBSD.
    fn recorded(_: &str, epair: Option<&str>) -> Option<String> {
        epair.map(str::to_owned)
    }

    #[test]
    fn members_are_named_by_the_platform_and_only_on_bridges() {
        let mut bridge = testdata::network("0f0f0f0f0f0f", "web");
        bridge.subnet = "10.13.37.0/24".into();
        let mut custom = testdata::network("1e1e1e1e1e1e", "lan");
        custom.kind = NetworkType::Custom;
        let endpoint = |id: &str, network: &str| EndPoint {
            id: id.into(),
            network_id: network.into(),
            container_id: "c1".into(),
            epair: None,
            ip_address: String::new(),
            ip_address6: "fd00::2".into(),
        };
        let pattern = |id: &str, _: Option<&str>| Some(format!("kv{id}*"));
        let built = build(
            None,
            &[bridge, custom],
            &[
                endpoint("e1", "0f0f0f0f0f0f"),
                endpoint("e2", "1e1e1e1e1e1e"),
            ],
            &[],
            &[NetworkType::Bridge],
            &pattern,
        );
        let members = &built.policy.networks[0].members;
        assert_eq!(members.len(), 1, "{members:?}");
        assert_eq!(members[0].interface, "kve1*");
        assert_eq!(members[0].mac, pf::MacAddress::of_endpoint(None, "e1"));
        assert_eq!(members[0].ip_address6, Some("fd00::2".parse().unwrap()));
        assert!(built.policy.networks[1].members.is_empty());
        assert!(!built.policy.networks[1].bridge);
    }

    #[test]
    fn loopback_networks_are_filtered_as_bridges_where_they_are_bridges() {
        let mut loopback = testdata::network("0f0f0f0f0f0f", "lo-net");
        loopback.kind = NetworkType::Loopback;
        loopback.subnet = "10.13.38.0/24".into();
        let endpoint = EndPoint {
            id: "e1".into(),
            network_id: loopback.id.clone(),
            container_id: "c1".into(),
            epair: Some("kve1".into()),
            ip_address: "10.13.38.2".into(),
            ip_address6: String::new(),
        };
        let on = |bridged: &[NetworkType]| {
            build(
                None,
                std::slice::from_ref(&loopback),
                std::slice::from_ref(&endpoint),
                &[],
                bridged,
                &recorded,
            )
            .policy
            .networks
            .remove(0)
        };
        let freebsd = on(&[NetworkType::Bridge]);
        assert!(!freebsd.bridge && freebsd.members.is_empty());
        let linux = on(&[NetworkType::Bridge, NetworkType::Loopback]);
        assert!(linux.bridge);
        assert_eq!(linux.members.len(), 1);
        assert_eq!(linux.members[0].interface, "kve1");
    }

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
        let built = build(
            Some("eth0"),
            &[network],
            &[endpoint],
            &[container],
            &[NetworkType::Bridge],
            &recorded,
        );
        assert_eq!(
            built.policy.networks[0].members,
            vec![pf::Member {
                interface: "epair3a".into(),
                mac: pf::MacAddress([0x02, 0x42, 10, 13, 37, 2]),
                ip_address: Some("10.13.37.2".parse().unwrap()),
                ip_address6: None,
            }]
        );
        assert!(built.policy.networks[0].bridge);
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
        let built = build(
            None,
            &[],
            &[],
            &[container],
            &[NetworkType::Bridge],
            &recorded,
        );
        assert!(built.policy.ports.is_empty());
        assert!(built.changed.is_empty());
    }
}
