//! `klee volume ...`

use kleene_api::Volume;
use time::OffsetDateTime;

use super::{segment, Output};
use crate::connection::{ClientError, Connection};
use crate::output::{since, table};

pub async fn list(conn: &Connection, out: Output) -> Result<(), ClientError> {
    super::list(conn, "/volumes/list", out, |volumes: Vec<Volume>| {
        let now = OffsetDateTime::now_utc();
        let rows = volumes
            .into_iter()
            .map(|v| vec![v.name, v.mountpoint, since(&v.created, now)])
            .collect();
        table(&["VOLUME NAME", "MOUNTPOINT", "CREATED"], rows)
    })
    .await
}

pub async fn inspect(conn: &Connection, name: &str) -> Result<(), ClientError> {
    super::inspect(conn, &format!("/volumes/{}/inspect", segment(name))).await
}
