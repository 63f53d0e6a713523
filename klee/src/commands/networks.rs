//! `klee network ...`

use crate::output::printable;
use http::Method;
use kleene_api::{EndPointConfig, IdResponse, Network, NetworkConfig, NetworkType};

use super::{body, confirm, each, segment, Failure, Output};
use crate::cli::{ConnectArgs, NetworkCreateArgs, NetworkTypeArg};
use crate::connection::{ClientError, Connection};
use crate::output::table;

/// The API's "allocate an address" (and "first address of the subnet" for gateways).
const AUTO: &str = "<auto>";

/// The body of `network create`, with the Python client's defaults: `<auto>` gateways on bridge
/// networks, none on the others, and NAT to the host's gateway interface.
fn network_config(args: &NetworkCreateArgs) -> Result<NetworkConfig, ClientError> {
    let bridge = args.kind == NetworkTypeArg::Bridge;
    let gateway = |given: &Option<String>, option: &str| match given {
        None if bridge => Ok(AUTO.to_owned()),
        Some(gw) if bridge => Ok(if gw == "auto" {
            AUTO.to_owned()
        } else {
            gw.clone()
        }),
        // The Python client drops a gateway of another network type without a word; the daemon
        // would store it and never use it. Say so instead.
        Some(gw) if !gw.is_empty() => Err(ClientError::Usage(format!(
            "{option} is for bridge networks only"
        ))),
        _ => Ok(String::new()),
    };
    Ok(NetworkConfig {
        name: args.name.clone(),
        kind: match args.kind {
            NetworkTypeArg::Bridge => NetworkType::Bridge,
            NetworkTypeArg::Loopback => NetworkType::Loopback,
            NetworkTypeArg::Custom => NetworkType::Custom,
        },
        interface: args.interface.clone(),
        subnet: args.subnet.clone(),
        subnet6: args.subnet6.clone(),
        gateway: gateway(&args.gateway, "--gw")?,
        gateway6: gateway(&args.gateway6, "--gw6")?,
        nat: match (&args.nat, args.no_nat) {
            (_, true) => String::new(),
            (Some(interface), false) => interface.clone(),
            (None, false) => "<host-gateway>".to_owned(),
        },
        icc: args.icc || !args.no_icc,
        internal: args.internal,
    })
}

/// The body of `network connect` (also of `run`/`create -n`, and `build -n`'s one network): an
/// address not given is `<auto>`, which the daemon allocates when the network has a subnet of
/// that family and skips otherwise, as the Python client sends it.
pub(super) fn endpoint_config(
    network: &str,
    container: &str,
    ip: Option<&str>,
    ip6: Option<&str>,
) -> EndPointConfig {
    EndPointConfig {
        container: container.to_owned(),
        network: network.to_owned(),
        ip_address: ip.unwrap_or(AUTO).to_owned(),
        ip_address6: ip6.unwrap_or(AUTO).to_owned(),
    }
}

pub async fn create(conn: &Connection, args: &NetworkCreateArgs) -> Result<(), ClientError> {
    let config = network_config(args)?;
    let created: IdResponse = conn
        .call(Method::POST, "/networks/create", body(&config)?)
        .await?;
    println!("{}", printable(&created.id));
    Ok(())
}

fn render(networks: Vec<Network>) -> String {
    let rows = networks
        .into_iter()
        .map(|n| {
            let kind = match n.kind {
                NetworkType::Bridge => "bridge",
                NetworkType::Loopback => "loopback",
                NetworkType::Custom => "custom",
            };
            vec![
                n.id,
                n.name,
                kind.to_owned(),
                n.subnet,
                n.subnet6,
                n.interface,
            ]
        })
        .collect();
    table(
        &["ID", "NAME", "TYPE", "SUBNET", "SUBNET6", "INTERFACE"],
        rows,
    )
}

pub async fn list(conn: &Connection, out: Output) -> Result<(), ClientError> {
    super::list(conn, "/networks/list", out, render).await
}

pub async fn inspect(conn: &Connection, identifier: &str) -> Result<(), ClientError> {
    super::inspect(conn, &format!("/networks/{}/inspect", segment(identifier))).await
}

/// Removes networks in order, printing each ID; the first failure ends the command, as in the
/// Python client, but with a non-zero exit and the names not tried.
pub async fn remove(conn: &Connection, networks: &[String]) -> Result<(), ClientError> {
    each(networks, Failure::Stop, |network| async move {
        let path = format!("/networks/{}", segment(&network));
        conn.call::<IdResponse>(Method::DELETE, &path, None).await
    })
    .await
}

pub async fn prune(conn: &Connection, force: bool) -> Result<(), ClientError> {
    if !force && !confirm("This removes every network no container is connected to.")? {
        return Ok(());
    }
    let removed: Vec<String> = conn.call(Method::POST, "/networks/prune", None).await?;
    for id in removed {
        println!("{}", printable(&id));
    }
    Ok(())
}

/// Connects a container to a network (`204`, nothing to print).
pub(super) async fn connect_endpoint(
    conn: &Connection,
    endpoint: &EndPointConfig,
) -> Result<(), ClientError> {
    conn.call_empty(Method::POST, "/networks/connect", body(endpoint)?)
        .await
}

pub async fn connect(conn: &Connection, args: &ConnectArgs) -> Result<(), ClientError> {
    let endpoint = endpoint_config(
        &args.network,
        &args.container,
        args.ip.as_deref(),
        args.ip6.as_deref(),
    );
    connect_endpoint(conn, &endpoint).await
}

pub async fn disconnect(
    conn: &Connection,
    network: &str,
    container: &str,
) -> Result<(), ClientError> {
    let path = format!(
        "/networks/{}/disconnect/{}",
        segment(network),
        segment(container)
    );
    conn.call_empty(Method::POST, &path, None).await
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command, NetworkCommand};

    fn create_args(argv: &[&str]) -> NetworkCreateArgs {
        let cli = Cli::try_parse_from(["klee", "network", "create"].iter().chain(argv)).unwrap();
        let Command::Network(NetworkCommand::Create(args)) = cli.command else {
            panic!("not network create")
        };
        args
    }

    fn json(config: &NetworkConfig) -> serde_json::Value {
        serde_json::to_value(config).unwrap()
    }

    #[test]
    fn create_defaults_are_the_python_clients() {
        let config = network_config(&create_args(&["net"])).unwrap();
        assert_eq!(
            json(&config),
            serde_json::json!({
                "name": "net", "type": "loopback", "interface": "", "subnet": "", "subnet6": "",
                "gateway": "", "gateway6": "", "nat": "<host-gateway>", "icc": true,
                "internal": false,
            })
        );
    }

    #[test]
    fn bridge_networks_get_auto_gateways_unless_told_otherwise() {
        let config = network_config(&create_args(&[
            "-t",
            "bridge",
            "--subnet",
            "10.13.0.0/24",
            "--subnet6",
            "fd00:13::/64",
            "net",
        ]))
        .unwrap();
        assert_eq!(config.kind, NetworkType::Bridge);
        assert_eq!(
            (config.subnet.as_str(), config.subnet6.as_str()),
            ("10.13.0.0/24", "fd00:13::/64")
        );
        assert_eq!(
            (config.gateway.as_str(), config.gateway6.as_str()),
            ("<auto>", "<auto>")
        );
        let config = network_config(&create_args(&[
            "--type",
            "bridge",
            "--gw",
            "10.13.0.254",
            "--gw6",
            "",
            "net",
        ]))
        .unwrap();
        assert_eq!(
            (config.gateway.as_str(), config.gateway6.as_str()),
            ("10.13.0.254", "")
        );
        let config =
            network_config(&create_args(&["-t", "bridge", "--gw", "auto", "net"])).unwrap();
        assert_eq!(config.gateway, "<auto>");
    }

    #[test]
    fn a_gateway_on_another_network_type_is_a_usage_error() {
        let err = network_config(&create_args(&["--gw", "10.0.0.1", "net"])).unwrap_err();
        assert!(matches!(err, ClientError::Usage(_)), "{err}");
        assert_eq!(err.to_string(), "--gw is for bridge networks only");
        assert_eq!(err.exit_code(), 2);
        // An explicit "no gateway" is what the other types get anyway.
        let config = network_config(&create_args(&["-t", "custom", "--gw6", "", "net"])).unwrap();
        assert_eq!(config.gateway6, "");
    }

    #[test]
    fn nat_icc_internal_and_interface() {
        let config = network_config(&create_args(&[
            "--nat",
            "em1",
            "--no-icc",
            "--internal",
            "-i",
            "kleene7",
            "-t",
            "custom",
            "net",
        ]))
        .unwrap();
        assert_eq!(config.nat, "em1");
        assert!(!config.icc && config.internal);
        assert_eq!(config.interface, "kleene7");
        assert_eq!(config.kind, NetworkType::Custom);
        let config = network_config(&create_args(&["--nat-if", "em2", "net"])).unwrap();
        assert_eq!(config.nat, "em2");
        let config = network_config(&create_args(&["--no-nat", "net"])).unwrap();
        assert_eq!(config.nat, "");
        // The last of --icc and --no-icc wins.
        let config = network_config(&create_args(&["--no-icc", "--icc", "net"])).unwrap();
        assert!(config.icc);
        let config = network_config(&create_args(&["--icc", "--no-icc", "net"])).unwrap();
        assert!(!config.icc);
    }

    #[test]
    fn nat_and_no_nat_conflict_and_types_are_checked() {
        let parse = |argv: &[&str]| {
            Cli::try_parse_from(["klee", "network", "create"].iter().chain(argv)).map(|_| ())
        };
        assert!(parse(&["--nat", "em0", "--no-nat", "net"]).is_err());
        assert!(parse(&["-t", "vlan", "net"]).is_err());
        assert!(parse(&["-t", "bridge"]).is_err(), "the name is required");
    }

    #[test]
    fn connect_sends_auto_for_addresses_not_given() {
        let endpoint = endpoint_config("net", "web", None, Some("fd00::5"));
        assert_eq!(
            serde_json::to_value(&endpoint).unwrap(),
            serde_json::json!({
                "container": "web", "network": "net", "ip_address": "<auto>",
                "ip_address6": "fd00::5",
            })
        );
    }

    #[test]
    fn the_table_shows_subnets_and_interface() {
        let network = Network {
            id: "a1b2c3".into(),
            name: "net".into(),
            kind: NetworkType::Bridge,
            subnet: "10.13.0.0/24".into(),
            subnet6: "fd00:13::/64".into(),
            interface: "kleene0".into(),
            gateway: "<auto>".into(),
            gateway6: String::new(),
            nat: "eth0".into(),
            icc: true,
            internal: false,
        };
        let text = render(vec![network]);
        let lines: Vec<_> = text.lines().collect();
        let header: Vec<_> = lines[0].split_whitespace().collect();
        assert_eq!(
            header,
            ["ID", "NAME", "TYPE", "SUBNET", "SUBNET6", "INTERFACE"]
        );
        let row: Vec<_> = lines[1].split_whitespace().collect();
        assert_eq!(
            row,
            [
                "a1b2c3",
                "net",
                "bridge",
                "10.13.0.0/24",
                "fd00:13::/64",
                "kleene0"
            ]
        );
    }
}

#[cfg(test)]
mod requests {
    use super::*;
    use crate::fake_daemon::FakeDaemon;

    #[tokio::test]
    async fn rm_stops_at_the_first_failure_and_fails() {
        let daemon = FakeDaemon::start(&[("DELETE /networks/a", 200, r#"{"id":"a1"}"#)]);
        let names = ["a", "b", "c"].map(String::from);
        let err = remove(&daemon.connection(), &names).await.unwrap_err();
        assert!(matches!(err, ClientError::Reported), "{err:?}");
        assert_eq!(err.exit_code(), 1);
        assert_eq!(daemon.lines(), ["DELETE /networks/a", "DELETE /networks/b"]);
    }

    #[tokio::test]
    async fn connect_and_disconnect_take_an_empty_204() {
        let daemon = FakeDaemon::start(&[
            ("POST /networks/connect", 204, ""),
            ("POST /networks/net/disconnect/web", 204, ""),
        ]);
        let conn = daemon.connection();
        let args = ConnectArgs {
            ip: Some("10.13.0.7".into()),
            ip6: None,
            network: "net".into(),
            container: "web".into(),
        };
        connect(&conn, &args).await.unwrap();
        disconnect(&conn, "net", "web").await.unwrap();
        assert_eq!(
            daemon.body("POST /networks/connect"),
            serde_json::json!({"container": "web", "network": "net",
                               "ip_address": "10.13.0.7", "ip_address6": "<auto>"})
        );
        assert_eq!(
            daemon.body("POST /networks/net/disconnect/web"),
            serde_json::Value::Null
        );
    }

    #[tokio::test]
    async fn a_refused_disconnect_is_the_daemons_message() {
        let daemon = FakeDaemon::start(&[(
            "POST /networks/net/disconnect/web",
            409,
            r#"{"message":"endpoint configuration not found"}"#,
        )]);
        let err = disconnect(&daemon.connection(), "net", "web")
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "endpoint configuration not found");
        assert_eq!(err.exit_code(), 1);
    }

    #[tokio::test]
    async fn create_prints_the_id_and_prune_takes_the_list() {
        let daemon = FakeDaemon::start(&[
            ("POST /networks/create", 201, r#"{"id":"n1"}"#),
            ("POST /networks/prune", 200, r#"["n1","n2"]"#),
        ]);
        let conn = daemon.connection();
        let args = NetworkCreateArgs {
            kind: NetworkTypeArg::Bridge,
            interface: String::new(),
            subnet: "10.13.0.0/24".into(),
            subnet6: String::new(),
            gateway: None,
            gateway6: None,
            nat: None,
            no_nat: false,
            icc: false,
            no_icc: false,
            internal: false,
            name: "net".into(),
        };
        create(&conn, &args).await.unwrap();
        prune(&conn, true).await.unwrap();
        assert_eq!(
            daemon.lines(),
            ["POST /networks/create", "POST /networks/prune"]
        );
        assert_eq!(daemon.body("POST /networks/create")["gateway"], "<auto>");
    }
}
