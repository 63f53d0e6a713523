//! Network and endpoint rows.

use kleene_api::{EndPoint, Network};
use rusqlite::{params, Row};

use super::{enum_from_text, enum_to_text, Db, Lookup, StoreError};

const COLUMNS: &str =
    "id, name, type, subnet, subnet6, interface, gateway, gateway6, nat, icc, internal";
const ENDPOINT_COLUMNS: &str = "id, network_id, container_id, epair, ip_address, ip_address6";

const LOOKUP: Lookup<Network> = Lookup::new("network", "networks", COLUMNS, "id", network_from_row);

fn network_from_row(row: &Row<'_>) -> rusqlite::Result<Network> {
    Ok(Network {
        id: row.get(0)?,
        name: row.get(1)?,
        kind: enum_from_text("network type", &row.get::<_, String>(2)?)?,
        subnet: row.get(3)?,
        subnet6: row.get(4)?,
        interface: row.get(5)?,
        gateway: row.get(6)?,
        gateway6: row.get(7)?,
        nat: row.get(8)?,
        icc: row.get(9)?,
        internal: row.get(10)?,
    })
}

fn endpoint_from_row(row: &Row<'_>) -> rusqlite::Result<EndPoint> {
    Ok(EndPoint {
        id: row.get(0)?,
        network_id: row.get(1)?,
        container_id: row.get(2)?,
        epair: row.get(3)?,
        ip_address: row.get(4)?,
        ip_address6: row.get(5)?,
    })
}

impl Db<'_> {
    /// Every network, by name.
    pub fn list_networks(&self) -> Result<Vec<Network>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM networks ORDER BY name"))?;
        let rows = stmt.query_map([], network_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Finds a network by its full ID, by name, or by a prefix of its ID, in that order of
    /// preference. A prefix of several IDs is [`StoreError::Ambiguous`]. An empty identifier
    /// matches nothing.
    pub fn find_network(&self, identifier: &str) -> Result<Option<Network>, StoreError> {
        self.find_by_id_name_or_prefix(&LOOKUP, "name", identifier)
    }

    /// Stores a new network.
    pub fn insert_network(&self, n: &Network) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(&format!(
                "INSERT INTO networks ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
            ))?
            .execute(params![
                n.id,
                n.name,
                enum_to_text(&n.kind),
                n.subnet,
                n.subnet6,
                n.interface,
                n.gateway,
                n.gateway6,
                n.nat,
                n.icc,
                n.internal,
            ])?;
        Ok(())
    }

    /// Removes a network's row with its endpoints. Returns false when there was none.
    pub fn delete_network(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .prepare_cached("DELETE FROM networks WHERE id = ?1")?
            .execute([id])?
            == 1)
    }

    /// Records the connection of a container to a network.
    pub fn insert_endpoint(&self, e: &EndPoint) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(&format!(
                "INSERT INTO endpoints ({ENDPOINT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
            ))?
            .execute(params![
                e.id,
                e.network_id,
                e.container_id,
                e.epair,
                e.ip_address,
                e.ip_address6
            ])?;
        Ok(())
    }

    /// The endpoints of a network, by ID.
    pub fn endpoints_of_network(&self, network_id: &str) -> Result<Vec<EndPoint>, StoreError> {
        self.endpoints_where("network_id", network_id)
    }

    /// The endpoints of a container, by ID.
    pub fn endpoints_of_container(&self, container_id: &str) -> Result<Vec<EndPoint>, StoreError> {
        self.endpoints_where("container_id", container_id)
    }

    /// Every endpoint, in the order they were made.
    pub fn list_endpoints(&self) -> Result<Vec<EndPoint>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM endpoints ORDER BY rowid"
        ))?;
        let rows = stmt.query_map([], endpoint_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The endpoint connecting a container to a network, if there is one.
    pub fn find_endpoint(
        &self,
        container_id: &str,
        network_id: &str,
    ) -> Result<Option<EndPoint>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM endpoints WHERE container_id = ?1 AND network_id = ?2"
        ))?;
        let mut rows = stmt.query_map([container_id, network_id], endpoint_from_row)?;
        Ok(rows.next().transpose()?)
    }

    /// Removes an endpoint. Returns false when there was none.
    pub fn delete_endpoint(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .prepare_cached("DELETE FROM endpoints WHERE id = ?1")?
            .execute([id])?
            == 1)
    }

    /// Records the host-side interface of a running vnet endpoint (`None` once it stopped).
    pub fn set_endpoint_epair(&self, id: &str, epair: Option<&str>) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("UPDATE endpoints SET epair = ?2 WHERE id = ?1")?
            .execute(params![id, epair])?;
        Ok(())
    }

    fn endpoints_where(
        &self,
        column: &'static str,
        value: &str,
    ) -> Result<Vec<EndPoint>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM endpoints WHERE {column} = ?1 ORDER BY rowid"
        ))?;
        let rows = stmt.query_map([value], endpoint_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use crate::store::testdata::network;
    use crate::store::Store;

    #[tokio::test]
    async fn networks_list_by_name_and_resolve_by_id_name_or_prefix() {
        let store = Store::open_in_memory().unwrap();
        let (list, by_name, by_prefix, missing) = store
            .write(|db| {
                db.insert_network(&network("ffff01", "zeta"))?;
                db.insert_network(&network("aaaa01", "alpha"))?;
                Ok((
                    db.list_networks()?,
                    db.find_network("zeta")?,
                    db.find_network("aaa")?,
                    db.find_network("x")?,
                ))
            })
            .await
            .unwrap();
        assert_eq!(
            list.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(),
            ["alpha", "zeta"]
        );
        assert_eq!(list[0], network("aaaa01", "alpha"));
        assert_eq!(by_name.unwrap().id, "ffff01");
        assert_eq!(by_prefix.unwrap().id, "aaaa01");
        assert!(missing.is_none());
    }

    #[tokio::test]
    async fn a_prefix_of_several_network_ids_is_ambiguous() {
        let store = Store::open_in_memory().unwrap();
        let (err, exact) = store
            .write(|db| {
                db.insert_network(&network("ffff01", "zeta"))?;
                let mut other = network("ffff02", "eta");
                other.interface = "kleene1".into();
                db.insert_network(&other)?;
                Ok((
                    db.find_network("ff").unwrap_err(),
                    db.find_network("ffff02")?,
                ))
            })
            .await
            .unwrap();
        assert_eq!(
            err.to_string(),
            "network identifier 'ff' is ambiguous: it matches 2 networks (ffff01, ffff02); \
             give more of the ID"
        );
        assert_eq!(exact.unwrap().name, "eta");
    }

    #[tokio::test]
    async fn network_names_are_unique() {
        let store = Store::open_in_memory().unwrap();
        let result = store
            .write(|db| {
                db.insert_network(&network("ffff01", "same"))?;
                db.insert_network(&network("ffff02", "same"))
            })
            .await;
        assert!(result.is_err());
    }
}
