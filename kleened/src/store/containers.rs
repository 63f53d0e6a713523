//! Container rows.

use kleene_api::{Container, ContainerSummary, LastExit, MountPoint};
use rusqlite::{params, Row};

use super::volumes::{mount_from_row, MOUNT_COLUMNS};
use super::{enum_from_text, enum_to_text, from_json, to_json, Db, Lookup, StoreError};

const COLUMNS: &str =
    "c.id, c.name, c.image_id, c.cmd, c.user, c.env, c.network_driver, c.public_ports, \
                       c.jail_param, c.restart_policy, c.persist, c.created, c.dataset, \
                       c.memory, c.pids_limit, c.cpus, c.last_exit, c.restart_max_retries, \
                       c.restart_count, c.storage_size";

/// How many columns [`COLUMNS`] names (queries add theirs after them).
const COLUMN_COUNT: usize = 20;

const LOOKUP: Lookup<Container> = Lookup::new(
    "container",
    "containers c",
    COLUMNS,
    "c.id",
    container_from_row,
);

fn container_from_row(row: &Row<'_>) -> rusqlite::Result<Container> {
    Ok(Container {
        id: row.get(0)?,
        name: row.get(1)?,
        image_id: row.get(2)?,
        cmd: from_json("container cmd", &row.get::<_, String>(3)?)?,
        user: row.get(4)?,
        env: from_json("container env", &row.get::<_, String>(5)?)?,
        network_driver: enum_from_text("network driver", &row.get::<_, String>(6)?)?,
        public_ports: from_json("container public ports", &row.get::<_, String>(7)?)?,
        jail_param: from_json("container jail parameters", &row.get::<_, String>(8)?)?,
        restart_policy: enum_from_text("restart policy", &row.get::<_, String>(9)?)?,
        restart: Some(enum_from_text("restart policy", &row.get::<_, String>(9)?)?),
        persist: row.get(10)?,
        created: row.get(11)?,
        dataset: row.get(12)?,
        // Whether a container runs is a fact of the host, never of the database; the engine sets it.
        running: false,
        memory: row
            .get::<_, Option<i64>>(13)?
            .and_then(|b| u64::try_from(b).ok()),
        pids_limit: row
            .get::<_, Option<i64>>(14)?
            .and_then(|n| u64::try_from(n).ok()),
        cpus: row
            .get::<_, Option<String>>(15)?
            .map(|text| from_json("container cpus", &text))
            .transpose()?,
        last_exit: row
            .get::<_, Option<String>>(16)?
            .map(|text| from_json("container last exit", &text))
            .transpose()?,
        restart_max_retries: row.get(17)?,
        restart_count: row
            .get::<_, i64>(18)
            .map(|n| u64::try_from(n).unwrap_or(0))?,
        storage_size: row
            .get::<_, Option<i64>>(19)?
            .and_then(|b| u64::try_from(b).ok()),
    })
}

/// A count or size as SQLite's signed integers hold it (the engine refuses larger ones).
fn signed(value: Option<u64>) -> Option<i64> {
    value.and_then(|v| i64::try_from(v).ok())
}

impl Db<'_> {
    /// Whether a container or an image owns `dataset` (one indexed lookup in each table).
    pub fn owns_dataset(&self, dataset: &str) -> Result<bool, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM containers WHERE dataset = ?1) \
             OR EXISTS (SELECT 1 FROM images WHERE dataset = ?1)",
        )?;
        Ok(stmt.query_row([dataset], |row| row.get(0))?)
    }

    /// Every container whose image still exists, newest first, with its image's name and tag.
    pub fn list_containers(&self) -> Result<Vec<ContainerSummary>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {COLUMNS}, i.name, i.tag FROM containers c JOIN images i ON i.id = c.image_id \
             ORDER BY c.created DESC, c.id"
        ))?;
        let rows = stmt.query_map([], |row| {
            Ok(ContainerSummary {
                container: container_from_row(row)?,
                image_name: row.get(COLUMN_COUNT)?,
                image_tag: row.get(COLUMN_COUNT + 1)?,
                jid: None,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Finds a container by its full ID, by name, or by a prefix of its ID, in that order of
    /// preference. A prefix of several IDs (or a name several containers hold, in a database
    /// written before names were unique) is [`StoreError::Ambiguous`]. An empty identifier matches
    /// nothing.
    pub fn find_container(&self, identifier: &str) -> Result<Option<Container>, StoreError> {
        self.find_by_id_name_or_prefix(&LOOKUP, "c.name", identifier)
    }

    /// The ID of a container other than `except` that a container named `name` would be confused
    /// with: one holding the name, or one whose ID is the name (the exact ID wins every lookup, so
    /// the name could never be used).
    pub fn container_name_clash(
        &self,
        name: &str,
        except: &str,
    ) -> Result<Option<String>, StoreError> {
        use rusqlite::OptionalExtension;
        Ok(self
            .conn
            .prepare_cached(
                "SELECT id FROM containers WHERE (name = ?1 OR id = ?1) AND id != ?2 ORDER BY id LIMIT 1",
            )?
            .query_row([name, except], |row| row.get(0))
            .optional()?)
    }

    /// Stores a new container.
    pub fn insert_container(&self, c: &Container) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO containers (id, name, image_id, cmd, user, env, network_driver, public_ports, \
                 jail_param, restart_policy, persist, created, dataset, memory, pids_limit, \
                 cpus, last_exit, restart_max_retries, restart_count, storage_size) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, \
                 ?18, ?19, ?20)",
            )?
            .execute(params![
                c.id,
                c.name,
                c.image_id,
                to_json(&c.cmd),
                c.user,
                to_json(&c.env),
                enum_to_text(&c.network_driver),
                to_json(&c.public_ports),
                to_json(&c.jail_param),
                enum_to_text(&c.restart_policy),
                c.persist,
                c.created,
                c.dataset,
                signed(c.memory),
                signed(c.pids_limit),
                c.cpus.as_ref().map(to_json),
                c.last_exit.as_ref().map(to_json),
                c.restart_max_retries,
                i64::try_from(c.restart_count).unwrap_or(i64::MAX),
                signed(c.storage_size),
            ])?;
        Ok(())
    }

    /// Saves the changeable fields of a container (name, cmd, user, env, jail parameters, restart
    /// policy, persist, resource limits).
    pub fn update_container(&self, c: &Container) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "UPDATE containers SET name = ?2, cmd = ?3, user = ?4, env = ?5, jail_param = ?6, \
                 restart_policy = ?7, persist = ?8, memory = ?9, pids_limit = ?10, \
                 cpus = ?11, restart_max_retries = ?12 WHERE id = ?1",
            )?
            .execute(params![
                c.id,
                c.name,
                to_json(&c.cmd),
                c.user,
                to_json(&c.env),
                to_json(&c.jail_param),
                enum_to_text(&c.restart_policy),
                c.persist,
                signed(c.memory),
                signed(c.pids_limit),
                c.cpus.as_ref().map(to_json),
                c.restart_max_retries,
            ])?;
        Ok(())
    }

    /// Whether the daemon keeps the container running by its restart policy: set when a client
    /// starts it, cleared by `stop` and when its policy lets it stay down. Also resets its
    /// restart count when a client starts it.
    pub fn set_keep_running(
        &self,
        id: &str,
        keep: bool,
        reset_count: bool,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "UPDATE containers SET keep_running = ?2, \
                 restart_count = CASE WHEN ?3 THEN 0 ELSE restart_count END WHERE id = ?1",
            )?
            .execute(params![id, keep, reset_count])?;
        Ok(())
    }

    /// Counts one restart of the container by its policy; answers the new count (`None`: no
    /// such container).
    pub fn count_restart(&self, id: &str) -> Result<Option<u64>, StoreError> {
        self.conn
            .prepare_cached(
                "UPDATE containers SET restart_count = restart_count + 1 WHERE id = ?1 \
                 RETURNING restart_count",
            )?
            .query_row(params![id], |row| row.get::<_, i64>(0))
            .map(|n| Some(u64::try_from(n).unwrap_or(0)))
            .or_else(|err| match err {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                err => Err(err.into()),
            })
    }

    /// The containers the daemon keeps running (see [`Db::set_keep_running`]).
    pub fn kept_running(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id FROM containers WHERE keep_running")?;
        let ids = stmt.query_map([], |row| row.get(0))?;
        Ok(ids.collect::<Result<_, _>>()?)
    }

    /// Whether the daemon keeps the container running (see [`Db::set_keep_running`]).
    pub fn keeps_running(&self, id: &str) -> Result<bool, StoreError> {
        self.conn
            .prepare_cached("SELECT keep_running FROM containers WHERE id = ?1")?
            .query_row(params![id], |row| row.get::<_, bool>(0))
            .or_else(|err| match err {
                rusqlite::Error::QueryReturnedNoRows => Ok(false),
                err => Err(err.into()),
            })
    }

    /// Saves how a container's first process ended.
    pub fn set_last_exit(&self, id: &str, exit: &LastExit) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("UPDATE containers SET last_exit = ?2 WHERE id = ?1")?
            .execute(params![id, to_json(exit)])?;
        Ok(())
    }

    /// Saves the addresses a container's published ports forward to.
    pub fn set_public_ports(
        &self,
        id: &str,
        ports: &[kleene_api::PublishedPort],
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("UPDATE containers SET public_ports = ?2 WHERE id = ?1")?
            .execute(params![id, to_json(&ports)])?;
        Ok(())
    }

    /// Removes a container's row with its endpoints and mounts. Returns false when there was none.
    pub fn delete_container(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .prepare_cached("DELETE FROM containers WHERE id = ?1")?
            .execute([id])?
            == 1)
    }

    /// Forgets a container's mounts; answers how many.
    pub fn delete_mounts_of_container(&self, container_id: &str) -> Result<usize, StoreError> {
        Ok(self
            .conn
            .prepare_cached("DELETE FROM mounts WHERE container_id = ?1")?
            .execute([container_id])?)
    }

    /// A container's mounts, in the order they were made.
    pub fn mounts_of_container(&self, container_id: &str) -> Result<Vec<MountPoint>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {MOUNT_COLUMNS} FROM mounts WHERE container_id = ?1 ORDER BY seq"
        ))?;
        let rows = stmt.query_map([container_id], mount_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use crate::store::testdata::{container, image, network, volume};
    use crate::store::{Store, StoreError};
    use kleene_api::{EndPoint, MountPoint, MountPointType};

    #[tokio::test]
    async fn containers_list_newest_first_with_image_name_and_tag() {
        let store = Store::open_in_memory().unwrap();
        store
            .write(|db| {
                db.insert_image(&image("i1i1i1", "base", "v2", "2024-01-01T00:00:00Z"))?;
                db.insert_container(&container(
                    "c1c1c1",
                    Some("first"),
                    "i1i1i1",
                    "2024-01-01T00:00:00Z",
                ))?;
                db.insert_container(&container("c2c2c2", None, "i1i1i1", "2024-03-01T00:00:00Z"))
            })
            .await
            .unwrap();
        let list = store.read(|db| db.list_containers()).await.unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(
            list[0].container,
            container("c2c2c2", None, "i1i1i1", "2024-03-01T00:00:00Z")
        );
        assert_eq!(
            (list[1].image_name.as_str(), list[1].image_tag.as_str()),
            ("base", "v2")
        );
        assert_eq!(list[1].container.name.as_deref(), Some("first"));
    }

    #[tokio::test]
    async fn an_exact_id_wins_over_a_name_which_wins_over_a_prefix() {
        let store = Store::open_in_memory().unwrap();
        let found = store
            .write(|db| {
                db.insert_image(&image("i1i1i1", "base", "latest", "2024-01-01T00:00:00Z"))?;
                db.insert_container(&container(
                    "1337aa",
                    Some("x"),
                    "i1i1i1",
                    "2024-01-01T00:00:00Z",
                ))?;
                db.insert_container(&container(
                    "1337",
                    Some("y"),
                    "i1i1i1",
                    "2024-01-01T00:00:00Z",
                ))?;
                db.insert_container(&container(
                    "abcdef",
                    Some("1337"),
                    "i1i1i1",
                    "2024-01-01T00:00:00Z",
                ))?;
                Ok((
                    db.find_container("1337")?,
                    db.find_container("1337a")?,
                    db.find_container("y")?,
                    db.find_container("ab")?,
                ))
            })
            .await
            .unwrap();
        assert_eq!(
            found.0.unwrap().id,
            "1337",
            "the exact ID, not the container named 1337"
        );
        assert_eq!(found.1.unwrap().id, "1337aa", "a unique prefix");
        assert_eq!(found.2.unwrap().id, "1337");
        assert_eq!(found.3.unwrap().id, "abcdef");
    }

    #[tokio::test]
    async fn a_prefix_of_several_ids_is_ambiguous_and_names_them() {
        let store = Store::open_in_memory().unwrap();
        let err = store
            .write(|db| {
                db.insert_image(&image("i1i1i1", "base", "latest", "2024-01-01T00:00:00Z"))?;
                for id in ["6c0000", "6a0000", "6b0000", "7a0000"] {
                    db.insert_container(&container(id, None, "i1i1i1", "2024-01-01T00:00:00Z"))?;
                }
                db.find_container("6")
            })
            .await
            .unwrap_err();
        match &err {
            StoreError::Ambiguous {
                kind,
                identifier,
                candidates,
            } => {
                assert_eq!((*kind, identifier.as_str()), ("container", "6"));
                assert_eq!(candidates, &["6a0000", "6b0000", "6c0000"]);
            }
            other => panic!("not an ambiguity: {other:?}"),
        }
        assert_eq!(
            err.to_string(),
            "container identifier '6' is ambiguous: it matches 3 containers \
             (6a0000, 6b0000, 6c0000); give more of the ID"
        );
    }

    #[tokio::test]
    async fn an_ambiguity_names_ten_candidates_and_counts_the_rest() {
        let store = Store::open_in_memory().unwrap();
        let err = store
            .write(|db| {
                db.insert_image(&image("i1i1i1", "base", "latest", "2024-01-01T00:00:00Z"))?;
                for n in 0..13 {
                    let id = format!("a{n:05}");
                    db.insert_container(&container(&id, None, "i1i1i1", "2024-01-01T00:00:00Z"))?;
                }
                db.find_container("a")
            })
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("it matches 13 containers (a00000, "),
            "{text}"
        );
        assert!(text.contains("a00009 and 3 more)"), "{text}");
        assert!(!text.contains("a00010"), "{text}");
    }

    #[tokio::test]
    async fn a_name_held_twice_in_an_older_database_is_ambiguous_too() {
        let store = Store::open_in_memory().unwrap();
        let err = store
            .write(|db| {
                db.insert_image(&image("i1i1i1", "base", "latest", "2024-01-01T00:00:00Z"))?;
                for id in ["c1c1c1", "c2c2c2"] {
                    db.insert_container(&container(
                        id,
                        Some("web"),
                        "i1i1i1",
                        "2024-01-01T00:00:00Z",
                    ))?;
                }
                db.find_container("web")
            })
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::Ambiguous { ref candidates, .. } if candidates.len() == 2)
        );
    }

    #[tokio::test]
    async fn prefixes_are_matched_exactly_and_empty_identifiers_match_nothing() {
        let store = Store::open_in_memory().unwrap();
        let found = store
            .write(|db| {
                db.insert_image(&image("i1i1i1", "base", "latest", "2024-01-01T00:00:00Z"))?;
                db.insert_container(&container("abc_12", None, "i1i1i1", "2024-01-01T00:00:00Z"))?;
                Ok([
                    db.find_container("")?,
                    db.find_container("ABC")?,
                    db.find_container("%")?,
                    db.find_container("abc%")?,
                    db.find_container("ab_")?,
                    db.find_container("abc_")?,
                ])
            })
            .await
            .unwrap();
        let ids: Vec<_> = found
            .iter()
            .map(|c| c.as_ref().map(|c| c.id.as_str()))
            .collect();
        assert_eq!(ids, [None, None, None, None, None, Some("abc_12")]);
    }

    #[tokio::test]
    async fn a_name_clashes_with_another_containers_name_or_id() {
        let store = Store::open_in_memory().unwrap();
        let clashes = store
            .write(|db| {
                db.insert_image(&image("i1i1i1", "base", "latest", "2024-01-01T00:00:00Z"))?;
                db.insert_container(&container(
                    "c1c1c1",
                    Some("web"),
                    "i1i1i1",
                    "2024-01-01T00:00:00Z",
                ))?;
                db.insert_container(&container("c2c2c2", None, "i1i1i1", "2024-01-01T00:00:00Z"))?;
                Ok([
                    db.container_name_clash("web", "")?,
                    db.container_name_clash("web", "c1c1c1")?,
                    db.container_name_clash("c1c1c1", "c2c2c2")?,
                    db.container_name_clash("c1c1", "c2c2c2")?,
                    db.container_name_clash("db", "")?,
                ])
            })
            .await
            .unwrap();
        assert_eq!(
            clashes,
            [
                Some("c1c1c1".to_owned()),
                None,
                Some("c1c1c1".to_owned()),
                None,
                None
            ]
        );
    }

    #[tokio::test]
    async fn removing_a_container_removes_its_endpoints_and_mounts_in_one_go() {
        let store = Store::open_in_memory().unwrap();
        let (mounts, endpoints) = store
            .write(|db| {
                db.insert_image(&image("i1i1i1", "base", "latest", "2024-01-01T00:00:00Z"))?;
                db.insert_container(&container("c1c1c1", None, "i1i1i1", "2024-01-01T00:00:00Z"))?;
                db.insert_network(&network("n1n1n1", "net"))?;
                db.insert_volume(&volume("data", "2024-01-01T00:00:00Z"))?;
                db.insert_endpoint(&EndPoint {
                    id: "e1e1e1".into(),
                    network_id: "n1n1n1".into(),
                    container_id: "c1c1c1".into(),
                    epair: None,
                    ip_address: "10.13.37.2".into(),
                    ip_address6: "".into(),
                })?;
                db.insert_mount(&MountPoint {
                    kind: MountPointType::Volume,
                    container_id: "c1c1c1".into(),
                    destination: "/data".into(),
                    source: "data".into(),
                    read_only: true,
                    setuid: false,
                    devices: false,
                })?;
                assert!(db.delete_container("c1c1c1")?);
                Ok((
                    db.mounts_of_container("c1c1c1")?,
                    db.endpoints_of_network("n1n1n1")?,
                ))
            })
            .await
            .unwrap();
        assert!(mounts.is_empty());
        assert!(endpoints.is_empty());
    }

    #[tokio::test]
    async fn limits_and_the_last_exit_are_kept() {
        let store = Store::open_in_memory().unwrap();
        let mut limited = container("c1c1c1", None, "i1i1i1", "2024-01-01T00:00:00Z");
        limited.memory = Some(32 << 20);
        limited.pids_limit = Some(50);
        limited.cpus = Some(serde_json::Number::from_f64(0.5).unwrap());
        let exit = kleene_api::LastExit {
            exit_code: 137,
            reason: kleene_api::ExitReason::OomKilled,
            oom_kills: 1,
            finished_at: "2024-01-02T00:00:00.000000Z".into(),
        };
        let record = limited.clone();
        let (found, lifted) = store
            .write(move |db| {
                db.insert_image(&image("i1i1i1", "base", "latest", "2024-01-01T00:00:00Z"))?;
                db.insert_container(&record)?;
                db.set_last_exit("c1c1c1", &exit)?;
                let found = db.find_container("c1c1c1")?;
                let mut lifted = record.clone();
                lifted.memory = None;
                lifted.cpus = None;
                db.update_container(&lifted)?;
                Ok((found, db.find_container("c1c1c1")?))
            })
            .await
            .unwrap();
        let found = found.unwrap();
        assert_eq!(found.memory, Some(32 << 20));
        assert_eq!(found.pids_limit, Some(50));
        assert_eq!(found.cpus.map(|c| c.to_string()).as_deref(), Some("0.5"));
        let last = found.last_exit.expect("recorded");
        assert_eq!(
            (last.exit_code, last.reason),
            (137, kleene_api::ExitReason::OomKilled)
        );
        let lifted = lifted.unwrap();
        assert_eq!(
            (lifted.memory, lifted.pids_limit, lifted.cpus),
            (None, Some(50), None)
        );
        assert!(lifted.last_exit.is_some(), "an update keeps the last exit");
    }

    #[tokio::test]
    async fn a_failed_write_leaves_nothing_behind() {
        let store = Store::open_in_memory().unwrap();
        let result = store
            .write(|db| {
                db.insert_image(&image("i1i1i1", "base", "latest", "2024-01-01T00:00:00Z"))?;
                // The image does not exist: the foreign key fails and the whole transaction rolls back.
                db.insert_container(&container(
                    "c1c1c1",
                    None,
                    "nonexistent",
                    "2024-01-01T00:00:00Z",
                ))
            })
            .await;
        assert!(result.is_err());
        assert!(store.read(|db| db.list_images()).await.unwrap().is_empty());
    }
}
