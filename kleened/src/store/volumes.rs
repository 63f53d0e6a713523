//! Volume and mount rows.

use kleene_api::{MountPoint, MountPointType, Volume};
use rusqlite::{params, OptionalExtension, Row};

use super::{Db, StoreError};

fn volume_from_row(row: &Row<'_>) -> rusqlite::Result<Volume> {
    Ok(Volume {
        name: row.get(0)?,
        dataset: row.get(1)?,
        mountpoint: row.get(2)?,
        created: row.get(3)?,
    })
}

pub(super) fn mount_from_row(row: &Row<'_>) -> rusqlite::Result<MountPoint> {
    let kind: String = row.get(1)?;
    Ok(MountPoint {
        container_id: row.get(0)?,
        kind: match kind.as_str() {
            "volume" => MountPointType::Volume,
            "nullfs" => MountPointType::Nullfs,
            other => {
                return Err(rusqlite::Error::InvalidColumnType(
                    1,
                    format!("mount type '{other}'"),
                    rusqlite::types::Type::Text,
                ))
            }
        },
        source: row.get(2)?,
        destination: row.get(3)?,
        read_only: row.get(4)?,
        setuid: row.get(5)?,
        devices: row.get(6)?,
    })
}

pub(super) const MOUNT_COLUMNS: &str =
    "container_id, type, source, destination, read_only, setuid, devices";

impl Db<'_> {
    /// Every volume, newest first.
    pub fn list_volumes(&self) -> Result<Vec<Volume>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT name, dataset, mountpoint, created FROM volumes ORDER BY created DESC, name",
        )?;
        let rows = stmt.query_map([], volume_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The volume with exactly this name.
    pub fn find_volume(&self, name: &str) -> Result<Option<Volume>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT name, dataset, mountpoint, created FROM volumes WHERE name = ?1",
            )?
            .query_row([name], volume_from_row)
            .optional()?)
    }

    /// Stores a new volume.
    pub fn insert_volume(&self, volume: &Volume) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO volumes (name, dataset, mountpoint, created) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute([
                &volume.name,
                &volume.dataset,
                &volume.mountpoint,
                &volume.created,
            ])?;
        Ok(())
    }

    /// Removes a volume's row. Returns false when there was none.
    pub fn delete_volume(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .prepare_cached("DELETE FROM volumes WHERE name = ?1")?
            .execute([name])?
            == 1)
    }

    /// Records a mount of a container, after those it already has.
    pub fn insert_mount(&self, mount: &MountPoint) -> Result<(), StoreError> {
        let kind = match mount.kind {
            MountPointType::Volume => "volume",
            MountPointType::Nullfs => "nullfs",
        };
        self.conn
            .prepare_cached(&format!(
                "INSERT INTO mounts ({MOUNT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
            ))?
            .execute(params![
                mount.container_id,
                kind,
                mount.source,
                mount.destination,
                mount.read_only,
                mount.setuid,
                mount.devices
            ])?;
        Ok(())
    }

    /// Forgets every mount of this volume (of containers that keep existing). Answers how many.
    pub fn delete_mounts_of_volume(&self, name: &str) -> Result<usize, StoreError> {
        Ok(self
            .conn
            .prepare_cached("DELETE FROM mounts WHERE type = 'volume' AND source = ?1")?
            .execute([name])?)
    }

    /// The volume mounts whose source is this volume, in the order they were made.
    pub fn mounts_of_volume(&self, name: &str) -> Result<Vec<MountPoint>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {MOUNT_COLUMNS} FROM mounts WHERE type = 'volume' AND source = ?1 ORDER BY seq"
        ))?;
        let rows = stmt.query_map([name], mount_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use crate::store::testdata::{container, image, volume};
    use crate::store::Store;
    use kleene_api::{MountPoint, MountPointType};

    #[tokio::test]
    async fn volumes_list_newest_first_and_resolve_by_exact_name_only() {
        let store = Store::open_in_memory().unwrap();
        store
            .write(|db| {
                db.insert_volume(&volume("old", "2024-01-01T00:00:00Z"))?;
                db.insert_volume(&volume("new", "2024-05-01T00:00:00Z"))
            })
            .await
            .unwrap();
        let (list, exact, prefix) = store
            .read(|db| {
                Ok((
                    db.list_volumes()?,
                    db.find_volume("old")?,
                    db.find_volume("ol")?,
                ))
            })
            .await
            .unwrap();
        assert_eq!(
            list.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(),
            ["new", "old"]
        );
        assert_eq!(exact, Some(volume("old", "2024-01-01T00:00:00Z")));
        assert_eq!(prefix, None);
    }

    #[tokio::test]
    async fn mounts_of_a_volume_keep_their_order() {
        let store = Store::open_in_memory().unwrap();
        let mount = |dest: &str| MountPoint {
            kind: MountPointType::Volume,
            container_id: "c1c1c1".into(),
            destination: dest.into(),
            source: "data".into(),
            read_only: false,
            setuid: false,
            devices: false,
        };
        let (m1, m2) = (mount("/b"), mount("/a"));
        let (w1, w2) = (m1.clone(), m2.clone());
        let found = store
            .write(move |db| {
                db.insert_image(&image("i1i1i1", "base", "latest", "2024-01-01T00:00:00Z"))?;
                db.insert_container(&container("c1c1c1", None, "i1i1i1", "2024-01-01T00:00:00Z"))?;
                db.insert_volume(&volume("data", "2024-01-01T00:00:00Z"))?;
                db.insert_mount(&w1)?;
                db.insert_mount(&w2)?;
                db.mounts_of_volume("data")
            })
            .await
            .unwrap();
        assert_eq!(found, vec![m1, m2]);
    }
}
