//! Schema migrations, tracked with SQLite's `user_version`.
//!
//! Each entry moves the schema one version forward and runs in its own transaction. Entries are never
//! edited once released; a change to the schema is a new entry at the end.

use rusqlite::Connection;

const MIGRATIONS: &[&str] = &[
    // 1: the object model of the Kleened API.
    "
    CREATE TABLE images (
        id           TEXT PRIMARY KEY,
        name         TEXT NOT NULL,
        tag          TEXT NOT NULL,
        cmd          TEXT NOT NULL,
        env          TEXT NOT NULL,
        user         TEXT NOT NULL,
        instructions TEXT NOT NULL,
        created      TEXT NOT NULL,
        dataset      TEXT NOT NULL
    );
    CREATE INDEX images_name_tag ON images (name, tag);

    CREATE TABLE containers (
        id             TEXT PRIMARY KEY,
        name           TEXT,
        image_id       TEXT NOT NULL REFERENCES images (id),
        cmd            TEXT NOT NULL,
        user           TEXT NOT NULL,
        env            TEXT NOT NULL,
        network_driver TEXT NOT NULL,
        public_ports   TEXT NOT NULL,
        jail_param     TEXT NOT NULL,
        restart_policy TEXT NOT NULL,
        persist        INTEGER NOT NULL,
        created        TEXT NOT NULL,
        dataset        TEXT NOT NULL
    );
    CREATE INDEX containers_name ON containers (name);

    CREATE TABLE networks (
        id        TEXT PRIMARY KEY,
        name      TEXT NOT NULL UNIQUE,
        type      TEXT NOT NULL,
        subnet    TEXT NOT NULL,
        subnet6   TEXT NOT NULL,
        interface TEXT NOT NULL,
        gateway   TEXT NOT NULL,
        gateway6  TEXT NOT NULL,
        nat       TEXT NOT NULL,
        icc       INTEGER NOT NULL,
        internal  INTEGER NOT NULL
    );

    CREATE TABLE endpoints (
        id           TEXT PRIMARY KEY,
        network_id   TEXT NOT NULL REFERENCES networks (id) ON DELETE CASCADE,
        container_id TEXT NOT NULL REFERENCES containers (id) ON DELETE CASCADE,
        epair        TEXT,
        ip_address   TEXT NOT NULL,
        ip_address6  TEXT NOT NULL,
        UNIQUE (container_id, network_id)
    );

    CREATE TABLE volumes (
        name       TEXT PRIMARY KEY,
        dataset    TEXT NOT NULL,
        mountpoint TEXT NOT NULL,
        created    TEXT NOT NULL
    );

    CREATE TABLE mounts (
        seq          INTEGER PRIMARY KEY AUTOINCREMENT,
        container_id TEXT NOT NULL REFERENCES containers (id) ON DELETE CASCADE,
        type         TEXT NOT NULL,
        source       TEXT NOT NULL,
        destination  TEXT NOT NULL,
        read_only    INTEGER NOT NULL
    );
    CREATE INDEX mounts_container ON mounts (container_id);
    ",
    // 2: an address is used by one endpoint of a network at most.
    "
    CREATE UNIQUE INDEX endpoints_ip4 ON endpoints (network_id, ip_address) WHERE ip_address != '';
    CREATE UNIQUE INDEX endpoints_ip6 ON endpoints (network_id, ip_address6) WHERE ip_address6 != '';
    ",
    // 3: intents of operations that touch the host (crash recovery).
    "
    CREATE TABLE intents (
        id     INTEGER PRIMARY KEY AUTOINCREMENT,
        kind   TEXT NOT NULL,
        object TEXT NOT NULL
    );
    ",
    // 4: the build cache: a step's key, and the snapshot of a kept image that holds its result.
    "
    CREATE TABLE build_cache (
        key      TEXT PRIMARY KEY,
        image_id TEXT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
        snapshot TEXT NOT NULL
    );
    CREATE INDEX build_cache_image ON build_cache (image_id);
    ",
    // 5: containers' resource limits (NULL: unlimited; cpus as the API's decimal number) and how
    // their first process last ended (JSON). Rows of older databases read as unlimited, never
    // ended.
    "
    ALTER TABLE containers ADD COLUMN memory INTEGER;
    ALTER TABLE containers ADD COLUMN pids_limit INTEGER;
    ALTER TABLE containers ADD COLUMN cpus TEXT;
    ALTER TABLE containers ADD COLUMN last_exit TEXT;
    ",
    // 6: restart policies beyond on-startup: the bound of on-failure, the restarts counted since
    // a client last started the container, and whether the daemon keeps it running (set by a
    // client's start, cleared by stop).
    "
    ALTER TABLE containers ADD COLUMN restart_max_retries INTEGER;
    ALTER TABLE containers ADD COLUMN restart_count INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE containers ADD COLUMN keep_running INTEGER NOT NULL DEFAULT 0;
    ",
    // 7: the background reaper asks, for each dataset it destroys, whether a container or an
    // image owns it.
    "
    CREATE INDEX containers_dataset ON containers (dataset);
    CREATE INDEX images_dataset ON images (dataset);
    ",
    // 8: mounts that let setuid bits or device nodes work (older rows: neither, the new
    // default), and a container's storage size (its dataset's quota, in bytes; NULL: none).
    "
    ALTER TABLE mounts ADD COLUMN setuid INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE mounts ADD COLUMN devices INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE containers ADD COLUMN storage_size INTEGER;
    ",
];

/// The schema version this build of the daemon writes.
pub const CURRENT_VERSION: usize = MIGRATIONS.len();

/// Applies every migration the database has not seen. A database written by a newer daemon is refused
/// rather than misread.
pub fn apply(conn: &mut Connection) -> rusqlite::Result<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let version = usize::try_from(version).unwrap_or(usize::MAX);
    if version > CURRENT_VERSION {
        return Err(rusqlite::Error::InvalidParameterName(format!(
            "schema version {version} is newer than this daemon understands ({CURRENT_VERSION})"
        )));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (index + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrating_twice_is_a_no_op() {
        let mut conn = Connection::open_in_memory().unwrap();
        apply(&mut conn).unwrap();
        apply(&mut conn).unwrap();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, CURRENT_VERSION as i64);
    }

    #[test]
    fn a_database_of_version_4_keeps_its_containers_readable() {
        let mut conn = Connection::open_in_memory().unwrap();
        for (index, sql) in MIGRATIONS.iter().enumerate().take(4) {
            conn.execute_batch(sql).unwrap();
            conn.pragma_update(None, "user_version", (index + 1) as i64)
                .unwrap();
        }
        conn.execute_batch(
            "INSERT INTO images VALUES ('i1', 'base', 'latest', '[]', '[]', '', '[]', '', 'zroot/i1');
             INSERT INTO containers VALUES ('c1', 'web', 'i1', '[]', '', '[]', 'host', '[]', '[]',
                 'no', 0, '2024-01-01T00:00:00Z', 'zroot/c1');",
        )
        .unwrap();
        apply(&mut conn).unwrap();
        let row: (Option<i64>, Option<i64>, Option<String>, Option<String>) = conn
            .query_row(
                "SELECT memory, pids_limit, cpus, last_exit FROM containers WHERE id = 'c1'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        assert_eq!(row, (None, None, None, None));
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", CURRENT_VERSION as i64 + 1)
            .unwrap();
        let err = apply(&mut conn).unwrap_err();
        assert!(err.to_string().contains("newer"), "{err}");
    }
}
