//! `klee container ...`

use kleene_api::ContainerSummary;
use time::OffsetDateTime;

use super::{segment, Output};
use crate::connection::{ClientError, Connection};
use crate::output::{since, table, truncate};

pub async fn list(conn: &Connection, all: bool, out: Output) -> Result<(), ClientError> {
    super::list(
        conn,
        &format!("/containers/list?all={all}"),
        out,
        |containers: Vec<ContainerSummary>| {
            let now = OffsetDateTime::now_utc();
            let rows = containers
                .into_iter()
                .map(|s| {
                    let image = if s.image_name.is_empty() {
                        s.container.image_id.clone()
                    } else {
                        format!("{}:{}", s.image_name, s.image_tag)
                    };
                    let status = if s.container.running {
                        "running"
                    } else {
                        "stopped"
                    };
                    vec![
                        s.container.id,
                        s.container.name.unwrap_or_default(),
                        image,
                        truncate(&s.container.cmd.join(" "), 32),
                        since(&s.container.created, now),
                        status.to_owned(),
                        s.jid.map(|j| j.to_string()).unwrap_or_default(),
                    ]
                })
                .collect();
            table(
                &[
                    "CONTAINER ID",
                    "NAME",
                    "IMAGE",
                    "COMMAND",
                    "CREATED",
                    "STATUS",
                    "JID",
                ],
                rows,
            )
        },
    )
    .await
}

pub async fn inspect(conn: &Connection, identifier: &str) -> Result<(), ClientError> {
    super::inspect(
        conn,
        &format!("/containers/{}/inspect", segment(identifier)),
    )
    .await
}
