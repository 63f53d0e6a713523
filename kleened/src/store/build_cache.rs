//! The build cache: for a build step's key (its parent state and everything it depends on, see
//! `engine/build/run.rs`), the image whose snapshot holds the step's result. Rows go with their
//! image (`ON DELETE CASCADE`).

use rusqlite::{params, OptionalExtension};

use super::{Db, StoreError};

impl Db<'_> {
    /// The image ID and snapshot name cached for `key`.
    pub fn cached_step(&self, key: &str) -> Result<Option<(String, String)>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT image_id, snapshot FROM build_cache WHERE key = ?1")?
            .query_row([key], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()?)
    }

    /// Records that `snapshot` of image `image_id` holds the result of the step `key` (an older
    /// entry for the key is replaced).
    pub fn cache_step(&self, key: &str, image_id: &str, snapshot: &str) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO build_cache (key, image_id, snapshot) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![key, image_id, snapshot])?;
        Ok(())
    }

    /// Cached steps of image `from` whose snapshots (named in `snapshots`) now belong to image
    /// `to` (handed over when `from` is removed) name `to`.
    pub fn move_cached_steps(
        &self,
        from: &str,
        to: &str,
        snapshots: &[String],
    ) -> Result<(), StoreError> {
        let mut statement = self.conn.prepare_cached(
            "UPDATE build_cache SET image_id = ?2 WHERE image_id = ?1 AND snapshot = ?3",
        )?;
        for snapshot in snapshots {
            statement.execute(params![from, to, snapshot])?;
        }
        Ok(())
    }

    /// Forgets a cached step whose snapshot is gone.
    pub fn forget_step(&self, key: &str) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("DELETE FROM build_cache WHERE key = ?1")?
            .execute([key])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::store::testdata::image;
    use crate::store::Store;

    #[tokio::test]
    async fn cached_steps_go_with_their_image() {
        let store = Store::open_in_memory().unwrap();
        let found = store
            .write(|db| {
                db.insert_image(&image("i1i1i1", "app", "1", "2026-01-01T00:00:00Z"))?;
                db.cache_step("k1", "i1i1i1", "s1")?;
                db.cache_step("k1", "i1i1i1", "s2")?;
                let found = db.cached_step("k1")?;
                db.delete_image("i1i1i1")?;
                Ok((found, db.cached_step("k1")?))
            })
            .await
            .unwrap();
        assert_eq!(found.0, Some(("i1i1i1".into(), "s2".into())));
        assert_eq!(found.1, None);
    }

    #[tokio::test]
    async fn cached_steps_handed_over_name_their_new_image() {
        let store = Store::open_in_memory().unwrap();
        let found = store
            .write(|db| {
                db.insert_image(&image("i1i1i1", "app", "1", "2026-01-01T00:00:00Z"))?;
                db.insert_image(&image("i2i2i2", "app", "2", "2026-01-02T00:00:00Z"))?;
                db.cache_step("k1", "i1i1i1", "s1")?;
                db.cache_step("k2", "i1i1i1", "s2")?;
                db.move_cached_steps("i1i1i1", "i2i2i2", &["s1".to_owned()])?;
                db.delete_image("i1i1i1")?;
                Ok((db.cached_step("k1")?, db.cached_step("k2")?))
            })
            .await
            .unwrap();
        assert_eq!(found.0, Some(("i2i2i2".into(), "s1".into())));
        assert_eq!(found.1, None);
    }
}
