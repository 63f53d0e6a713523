//! `klee image ...`

use kleene_api::Image;
use time::OffsetDateTime;

use super::{segment, Output};
use crate::connection::{ClientError, Connection};
use crate::output::{since, table};

pub async fn list(conn: &Connection, out: Output) -> Result<(), ClientError> {
    super::list(conn, "/images/list", out, |images: Vec<Image>| {
        let now = OffsetDateTime::now_utc();
        let rows = images
            .into_iter()
            .map(|i| vec![i.id, i.name, i.tag, since(&i.created, now)])
            .collect();
        table(&["ID", "NAME", "TAG", "CREATED"], rows)
    })
    .await
}

pub async fn inspect(conn: &Connection, identifier: &str) -> Result<(), ClientError> {
    super::inspect(conn, &format!("/images/{}/inspect", segment(identifier))).await
}
