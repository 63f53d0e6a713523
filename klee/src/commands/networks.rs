//! `klee network ...`

use kleene_api::{Network, NetworkType};

use super::{segment, Output};
use crate::connection::{ClientError, Connection};
use crate::output::table;

pub async fn list(conn: &Connection, out: Output) -> Result<(), ClientError> {
    super::list(conn, "/networks/list", out, |networks: Vec<Network>| {
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
                    n.interface,
                    n.subnet,
                    n.subnet6,
                ]
            })
            .collect();
        table(
            &["ID", "NAME", "TYPE", "INTERFACE", "SUBNET", "SUBNET6"],
            rows,
        )
    })
    .await
}

pub async fn inspect(conn: &Connection, identifier: &str) -> Result<(), ClientError> {
    super::inspect(conn, &format!("/networks/{}/inspect", segment(identifier))).await
}
