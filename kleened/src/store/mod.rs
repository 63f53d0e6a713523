//! The metadata store: images, containers, networks, endpoints, volumes and mounts in SQLite.
//!
//! One connection, guarded by a mutex and only ever used from tokio's blocking pool, so no SQLite call
//! runs on an async worker thread. Reads go through [`Store::read`]; every change goes through
//! [`Store::write`], which runs its closure in one transaction, so a multi-row change lands whole or not
//! at all. The typed queries live on [`Db`], split by object kind in the submodules.

mod containers;
mod images;
mod migrations;
mod networks;
mod volumes;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

/// A store failure. These are internal errors from the API's point of view.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
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

impl Db<'_> {
    /// Looks up one row by `identifier` in the API's order of preference: the exact ID, then the
    /// name, then a prefix of the ID (the first in ID order). `select` is the `SELECT ... FROM ...`
    /// part; `id` and `name` are its column expressions. An empty identifier matches nothing.
    fn find_by_id_name_or_prefix<T>(
        &self,
        select: &str,
        (id, name): (&str, &str),
        identifier: &str,
        from_row: fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Option<T>, StoreError> {
        use rusqlite::OptionalExtension;
        if identifier.is_empty() {
            return Ok(None);
        }
        let prefix = like_prefix(identifier);
        for (condition, value) in [
            (format!("{id} = ?1"), identifier),
            (format!("{name} = ?1"), identifier),
            (format!("{id} LIKE ?1 ESCAPE '\\'"), prefix.as_str()),
        ] {
            let found = self
                .conn
                .prepare_cached(&format!("{select} WHERE {condition} ORDER BY {id} LIMIT 1"))?
                .query_row([value], from_row)
                .optional()?;
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }
}

/// Escapes `%`, `_` and `\` so a user-supplied prefix is matched literally by `LIKE ... ESCAPE '\'`.
fn like_prefix(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for ch in prefix.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(ch);
    }
    pattern.push('%');
    pattern
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
            persist: false,
            created: created.into(),
            dataset: format!("zroot/kleene/container/{id}"),
            running: false,
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
