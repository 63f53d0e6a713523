//! Intents: what a multi-step operation is about to do on the host, recorded before it starts and
//! cleared when it is done (see `engine/recovery.rs`), and the exact-ID lookups recovery needs.

use kleene_api::{Container, Image};
use rusqlite::params;

use super::{Db, StoreError};

impl Db<'_> {
    /// Records an intent; answers its number.
    pub fn add_intent(&self, kind: &str, object: &str) -> Result<i64, StoreError> {
        self.conn
            .prepare_cached("INSERT INTO intents (kind, object) VALUES (?1, ?2)")?
            .execute(params![kind, object])?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Clears an intent.
    pub fn remove_intent(&self, id: i64) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("DELETE FROM intents WHERE id = ?1")?
            .execute([id])?;
        Ok(())
    }

    /// Every intent, oldest first: (number, kind, object).
    pub fn list_intents(&self) -> Result<Vec<(i64, String, String)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, kind, object FROM intents ORDER BY id")?;
        let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The image with exactly this ID.
    pub fn image_by_id(&self, id: &str) -> Result<Option<Image>, StoreError> {
        Ok(self.list_images()?.into_iter().find(|i| i.id == id))
    }

    /// The container with exactly this ID.
    pub fn container_by_id(&self, id: &str) -> Result<Option<Container>, StoreError> {
        Ok(self
            .list_containers()?
            .into_iter()
            .map(|s| s.container)
            .find(|c| c.id == id))
    }
}

#[cfg(test)]
mod tests {
    use crate::store::Store;

    #[tokio::test]
    async fn intents_are_listed_in_order_and_cleared() {
        let store = Store::open_in_memory().unwrap();
        let (a, b) = store
            .write(|db| {
                Ok((
                    db.add_intent("image", "i1")?,
                    db.add_intent("snapshot", "t/s@i1")?,
                ))
            })
            .await
            .unwrap();
        assert!(a < b);
        store.write(move |db| db.remove_intent(a)).await.unwrap();
        let left = store.read(|db| db.list_intents()).await.unwrap();
        assert_eq!(left, vec![(b, "snapshot".to_owned(), "t/s@i1".to_owned())]);
    }
}
