//! The metadata store: images, containers, networks, endpoints, volumes and mounts in SQLite.
//!
//! One connection, guarded by a mutex and only ever used from tokio's blocking pool, so no SQLite call
//! runs on an async worker thread. Reads go through [`Store::read`]; every change goes through
//! [`Store::write`], which runs its closure in one transaction, so a multi-row change lands whole or not
//! at all. The typed queries live on [`Db`], split by object kind in the submodules.

mod build_cache;
mod containers;
mod images;
mod intents;
mod migrations;
mod networks;
mod volumes;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

/// A store failure. These are internal errors from the API's point of view, except
/// [`StoreError::Ambiguous`], which is the request's fault.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An identifier that is no object's exact ID matches several objects: a prefix of several IDs,
    /// or a name several containers hold (databases written before names were unique). Nothing is
    /// picked for the caller.
    #[error("{}", ambiguity(kind, identifier, candidates))]
    Ambiguous {
        /// `container`, `image` or `network`.
        kind: &'static str,
        /// The identifier as given.
        identifier: String,
        /// The IDs it matches, in ID order.
        candidates: Vec<String>,
    },
    #[error("could not open metadata database {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("could not prepare metadata database {path}: {reason}")]
    Prepare { path: PathBuf, reason: String },
    #[error("metadata database error: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("metadata database holds a malformed {what}: {reason}")]
    Corrupt { what: &'static str, reason: String },
    #[error("metadata database task failed: {0}")]
    Task(String),
}

/// How many candidates an ambiguity names before it only counts the rest.
const CANDIDATES_NAMED: usize = 10;

fn ambiguity(kind: &str, identifier: &str, candidates: &[String]) -> String {
    let mut named = candidates
        .iter()
        .take(CANDIDATES_NAMED)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if candidates.len() > CANDIDATES_NAMED {
        named.push_str(&format!(
            " and {} more",
            candidates.len() - CANDIDATES_NAMED
        ));
    }
    format!(
        "{kind} identifier '{identifier}' is ambiguous: it matches {} {kind}s ({named}); \
         give more of the ID",
        candidates.len()
    )
}

/// Handle to the metadata database; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
}

/// Typed queries over one connection or transaction.
#[derive(Debug)]
pub struct Db<'a> {
    conn: &'a Connection,
}

impl Store {
    /// Opens (creating if needed, mode 0600) the database at `path` and brings its schema up to date.
    /// The parent directory must exist.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let prepare = |reason: String| StoreError::Prepare {
            path: path.to_owned(),
            reason,
        };
        if !path.exists() {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| prepare(e.to_string()))?;
        }
        let mut conn = Connection::open(path).map_err(|source| StoreError::Open {
            path: path.to_owned(),
            source,
        })?;
        conn.pragma_update(None, "foreign_keys", true)
            .and_then(|()| conn.pragma_update(None, "journal_mode", "WAL"))
            .and_then(|()| conn.pragma_update(None, "synchronous", "NORMAL"))
            .map_err(|e| prepare(e.to_string()))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(|e| prepare(e.to_string()))?;
        migrations::apply(&mut conn).map_err(|e| prepare(e.to_string()))?;
        Ok(Store {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Opens a private in-memory database (for tests).
    pub fn open_in_memory() -> Result<Store, StoreError> {
        let mut conn = Connection::open_in_memory()?;
        conn.pragma_update(None, "foreign_keys", true)?;
        migrations::apply(&mut conn)?;
        Ok(Store {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs read-only queries on the blocking pool.
    pub async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Db<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let conn = conn
                .lock()
                .map_err(|_| StoreError::Task("connection lock poisoned".into()))?;
            f(&Db { conn: &conn })
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// Runs `f` in one transaction on the blocking pool: committed if it returns `Ok`, rolled back
    /// otherwise.
    pub async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Db<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        self.write_with(f).await
    }

    /// [`Store::write`] for a change that also does something outside the store (loading a
    /// packet-filter ruleset) and fails with its own error: the store change is kept only if the
    /// whole closure succeeds. Other writers wait meanwhile, so such changes are serialised.
    pub async fn write_with<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&Db<'_>) -> Result<T, E> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut conn = conn
                .lock()
                .map_err(|_| StoreError::Task("connection lock poisoned".into()))?;
            let tx = conn.transaction().map_err(StoreError::from)?;
            let value = f(&Db { conn: &tx })?;
            tx.commit().map_err(StoreError::from)?;
            Ok(value)
        })
        .await
        .map_err(|e| E::from(StoreError::Task(e.to_string())))?
    }
}

/// Encodes a list column.
fn to_json<T: serde::Serialize>(value: &T) -> String {
    // Serialising plain strings and lists of them cannot fail.
    serde_json::to_string(value).unwrap_or_else(|_| "[]".to_owned())
}

/// Decodes a list column, reporting which kind of value was malformed.
fn from_json<T: serde::de::DeserializeOwned>(
    what: &'static str,
    text: &str,
) -> rusqlite::Result<T> {
    serde_json::from_str(text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            Box::new(CorruptValue(what, e)),
        )
    })
}

#[derive(Debug)]
struct CorruptValue(&'static str, serde_json::Error);

impl std::fmt::Display for CorruptValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed {}: {}", self.0, self.1)
    }
}

impl std::error::Error for CorruptValue {}

/// How rows of one kind of object are looked up by identifier.
pub(super) struct Lookup<T> {
    /// What the rows are, for messages: `container`, `network`.
    kind: &'static str,
    /// The `FROM` part: a table, with an alias if the columns use one.
    table: &'static str,
    /// The columns `from_row` reads.
    columns: &'static str,
    /// The column expression of the ID.
    id: &'static str,
    /// Reads one row of `columns`.
    from_row: fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
}

impl<T> Lookup<T> {
    pub(super) const fn new(
        kind: &'static str,
        table: &'static str,
        columns: &'static str,
        id: &'static str,
        from_row: fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Self {
        Lookup {
            kind,
            table,
            columns,
            id,
            from_row,
        }
    }
}

impl Db<'_> {
    /// Looks up one row by `identifier` in the API's order of preference: the exact ID, then the
    /// name (the column expression `name`), then a prefix of the ID. A name or prefix that matches
    /// several rows is [`StoreError::Ambiguous`]: nothing is picked. An empty identifier matches
    /// nothing.
    fn find_by_id_name_or_prefix<T>(
        &self,
        lookup: &Lookup<T>,
        name: &str,
        identifier: &str,
    ) -> Result<Option<T>, StoreError> {
        if identifier.is_empty() {
            return Ok(None);
        }
        self.find_by(
            lookup,
            &[
                (&format!("{} = ?1", lookup.id), &[identifier]),
                (&format!("{name} = ?1"), &[identifier]),
            ],
            identifier,
        )
    }

    /// Tries each `(condition, values)` in turn, then a prefix of the ID: the first that matches
    /// anything decides; one match is the answer, several are [`StoreError::Ambiguous`].
    fn find_by<T>(
        &self,
        lookup: &Lookup<T>,
        conditions: &[(&str, &[&str])],
        identifier: &str,
    ) -> Result<Option<T>, StoreError> {
        // Compared as text, not with LIKE: that would be case-insensitive and read `%` and `_`.
        let by_prefix = format!("substr({id}, 1, length(?1)) = ?1", id = lookup.id);
        let prefix_values = [identifier];
        let steps = conditions
            .iter()
            .copied()
            .chain(std::iter::once((by_prefix.as_str(), &prefix_values[..])));
        for (condition, values) in steps {
            let ids = self.ids_where(lookup, condition, values)?;
            match ids.as_slice() {
                [] => continue,
                [id] => return self.row_by_id(lookup, id),
                _ => {
                    return Err(StoreError::Ambiguous {
                        kind: lookup.kind,
                        identifier: identifier.to_owned(),
                        candidates: ids,
                    })
                }
            }
        }
        Ok(None)
    }

    /// IDs of the rows meeting `condition`, in ID order.
    fn ids_where<T>(
        &self,
        lookup: &Lookup<T>,
        condition: &str,
        values: &[&str],
    ) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {id} FROM {table} WHERE {condition} ORDER BY {id}",
            id = lookup.id,
            table = lookup.table,
        ))?;
        let rows = stmt.query_map(rusqlite::params_from_iter(values), |row| row.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn row_by_id<T>(&self, lookup: &Lookup<T>, id: &str) -> Result<Option<T>, StoreError> {
        use rusqlite::OptionalExtension;
        Ok(self
            .conn
            .prepare_cached(&format!(
                "SELECT {columns} FROM {table} WHERE {id} = ?1",
                columns = lookup.columns,
                table = lookup.table,
                id = lookup.id,
            ))?
            .query_row([id], lookup.from_row)
            .optional()?)
    }
}

/// Encodes a unit enum as its wire name (`"host"`, `"on-startup"`).
fn enum_to_text<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(text)) => text,
        _ => String::new(),
    }
}

/// Decodes a unit enum from its wire name.
fn enum_from_text<T: serde::de::DeserializeOwned>(
    what: &'static str,
    text: &str,
) -> rusqlite::Result<T> {
    from_json(
        what,
        &serde_json::Value::String(text.to_owned()).to_string(),
    )
}

#[cfg(test)]
pub(crate) mod testdata {
    //! Objects for store and route tests.
    use kleene_api::*;

    pub fn image(id: &str, name: &str, tag: &str, created: &str) -> Image {
        Image {
            id: id.into(),
            name: name.into(),
            tag: tag.into(),
            cmd: vec!["/bin/sh".into(), "/etc/rc".into()],
            env: vec!["A=1".into()],
            user: "root".into(),
            instructions: vec![["RUN true".into(), "abc".into()]],
            created: created.into(),
            dataset: format!("zroot/kleene/image/{id}"),
        }
    }

    pub fn container(id: &str, name: Option<&str>, image_id: &str, created: &str) -> Container {
        Container {
            id: id.into(),
            name: name.map(Into::into),
            image_id: image_id.into(),
            cmd: vec!["/bin/ls".into()],
            user: "root".into(),
            env: vec![],
            network_driver: NetworkDriver::Host,
            public_ports: vec![PublishedPort {
                interfaces: vec!["em0".into()],
                host_port: "8080".into(),
                container_port: "80".into(),
                protocol: PortProtocol::Tcp,
                ip_address: "".into(),
                ip_address6: "".into(),
            }],
            jail_param: vec!["mount.devfs=true".into()],
            restart_policy: RestartPolicy::No,
            restart: Some(RestartPolicy::No),
            restart_max_retries: None,
            restart_count: 0,
            persist: false,
            created: created.into(),
            dataset: format!("zroot/kleene/container/{id}"),
            running: false,
            memory: None,
            pids_limit: None,
            cpus: None,
            last_exit: None,
            storage_size: None,
        }
    }

    pub fn network(id: &str, name: &str) -> Network {
        Network {
            id: id.into(),
            name: name.into(),
            kind: NetworkType::Bridge,
            subnet: "10.13.37.0/24".into(),
            subnet6: "".into(),
            interface: "kleene0".into(),
            gateway: "<auto>".into(),
            gateway6: "".into(),
            nat: "em0".into(),
            icc: true,
            internal: false,
        }
    }

    pub fn volume(name: &str, created: &str) -> Volume {
        Volume {
            name: name.into(),
            dataset: format!("zroot/kleene/volumes/{name}"),
            mountpoint: format!("/zroot/kleene/volumes/{name}"),
            created: created.into(),
        }
    }
}
