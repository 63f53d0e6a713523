//! Image rows.

use kleene_api::Image;
use rusqlite::{params, OptionalExtension, Row};

use super::{from_json, to_json, Db, Lookup, StoreError};

const COLUMNS: &str = "id, name, tag, cmd, env, user, instructions, created, dataset";

const LOOKUP: Lookup<Image> = Lookup::new("image", "images", COLUMNS, "id", image_from_row);

fn image_from_row(row: &Row<'_>) -> rusqlite::Result<Image> {
    Ok(Image {
        id: row.get(0)?,
        name: row.get(1)?,
        tag: row.get(2)?,
        cmd: from_json("image cmd", &row.get::<_, String>(3)?)?,
        env: from_json("image env", &row.get::<_, String>(4)?)?,
        user: row.get(5)?,
        instructions: from_json("image instructions", &row.get::<_, String>(6)?)?,
        created: row.get(7)?,
        dataset: row.get(8)?,
    })
}

/// Splits `name[:tag]`; the tag defaults to `latest`.
pub fn split_name_tag(reference: &str) -> (&str, &str) {
    match reference.split_once(':') {
        Some((name, tag)) => (name, tag),
        None => (reference, "latest"),
    }
}

impl Db<'_> {
    /// Every image, newest first.
    pub fn list_images(&self) -> Result<Vec<Image>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM images ORDER BY created DESC, id"
        ))?;
        let rows = stmt.query_map([], image_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Finds an image by its full ID, by `name[:tag]`, or by a prefix of its ID, in that order of
    /// preference. A prefix of several IDs is [`StoreError::Ambiguous`]. An empty identifier
    /// matches nothing, and neither does an empty name or tag (`:`, `base:`): untagged images have
    /// both empty, and are found by ID only.
    pub fn find_image(&self, identifier: &str) -> Result<Option<Image>, StoreError> {
        if identifier.is_empty() {
            return Ok(None);
        }
        let (name, tag) = split_name_tag(identifier);
        let by_name: &[(&str, &[&str])] = if name.is_empty() || tag.is_empty() {
            &[]
        } else {
            &[("name = ?1 AND tag = ?2", &[name, tag])]
        };
        let by_id: (&str, &[&str]) = ("id = ?1", &[identifier]);
        let conditions: Vec<(&str, &[&str])> = std::iter::once(by_id)
            .chain(by_name.iter().copied())
            .collect();
        self.find_by(&LOOKUP, &conditions, identifier)
    }

    /// Stores a new image. A non-empty `name:tag` moves to it from any image that held it.
    pub fn insert_image(&self, image: &Image) -> Result<(), StoreError> {
        self.untag_others(&image.id, &image.name, &image.tag)?;
        self.conn
            .prepare_cached(&format!(
                "INSERT INTO images ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
            ))?
            .execute(params![
                image.id,
                image.name,
                image.tag,
                to_json(&image.cmd),
                to_json(&image.env),
                image.user,
                to_json(&image.instructions),
                image.created,
                image.dataset,
            ])?;
        Ok(())
    }

    /// Gives an image a new `name:tag`, taking it from any image that held it. Returns false when
    /// no image has this ID.
    pub fn tag_image(&self, id: &str, name: &str, tag: &str) -> Result<bool, StoreError> {
        self.untag_others(id, name, tag)?;
        let changed = self
            .conn
            .prepare_cached("UPDATE images SET name = ?2, tag = ?3 WHERE id = ?1")?
            .execute([id, name, tag])?;
        Ok(changed == 1)
    }

    /// The ID of the image named `name:tag`, if one is (an untagged name holds nothing).
    pub fn holder_of(&self, name: &str, tag: &str) -> Result<Option<String>, StoreError> {
        if name.is_empty() && tag.is_empty() {
            return Ok(None);
        }
        Ok(self
            .conn
            .prepare_cached("SELECT id FROM images WHERE name = ?1 AND tag = ?2")?
            .query_row([name, tag], |row| row.get(0))
            .optional()?)
    }

    fn untag_others(&self, id: &str, name: &str, tag: &str) -> Result<(), StoreError> {
        if !(name.is_empty() && tag.is_empty()) {
            self.conn
                .prepare_cached("UPDATE images SET name = '', tag = '' WHERE name = ?1 AND tag = ?2 AND id != ?3")?
                .execute([name, tag, id])?;
        }
        Ok(())
    }

    /// Removes an image's row. Returns false when there was none.
    pub fn delete_image(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .prepare_cached("DELETE FROM images WHERE id = ?1")?
            .execute([id])?
            == 1)
    }
}

#[cfg(test)]
mod tests {
    use crate::store::testdata::image;
    use crate::store::Store;

    #[tokio::test]
    async fn images_list_newest_first_and_resolve_by_id_name_or_prefix() {
        let store = Store::open_in_memory().unwrap();
        store
            .write(|db| {
                db.insert_image(&image(
                    "aaa111",
                    "base",
                    "latest",
                    "2024-01-01T00:00:00.000000Z",
                ))?;
                db.insert_image(&image("aab222", "web", "v1", "2024-02-01T00:00:00.000000Z"))?;
                db.insert_image(&image("bbb333", "", "", "2023-01-01T00:00:00.000000Z"))
            })
            .await
            .unwrap();
        let (list, by_name, by_tag, by_prefix, none, empty, untagged) = store
            .read(|db| {
                Ok((
                    db.list_images()?,
                    db.find_image("base")?,
                    db.find_image("web:v1")?,
                    db.find_image("bb")?,
                    db.find_image("web")?,
                    db.find_image("")?,
                    db.find_image(":")?,
                ))
            })
            .await
            .unwrap();
        let ambiguous = store.read(|db| db.find_image("aa")).await.unwrap_err();
        let ids: Vec<_> = list.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["aab222", "aaa111", "bbb333"]);
        assert_eq!(
            list[1],
            image("aaa111", "base", "latest", "2024-01-01T00:00:00.000000Z")
        );
        assert_eq!(by_name.unwrap().id, "aaa111");
        assert_eq!(by_tag.unwrap().id, "aab222");
        assert_eq!(by_prefix.unwrap().id, "bbb333");
        assert_eq!(
            ambiguous.to_string(),
            "image identifier 'aa' is ambiguous: it matches 2 images (aaa111, aab222); \
             give more of the ID"
        );
        assert!(none.is_none(), "web means web:latest");
        assert!(empty.is_none());
        assert!(untagged.is_none(), "an empty name and tag are no name");
    }

    #[tokio::test]
    async fn a_name_tag_moves_to_the_newest_holder() {
        let store = Store::open_in_memory().unwrap();
        let (old, new) = store
            .write(|db| {
                db.insert_image(&image("aaa111", "base", "latest", "2024-01-01T00:00:00Z"))?;
                db.insert_image(&image("bbb222", "base", "latest", "2024-01-02T00:00:00Z"))?;
                Ok((db.find_image("aaa111")?, db.find_image("base")?))
            })
            .await
            .unwrap();
        let old = old.unwrap();
        assert_eq!((old.name.as_str(), old.tag.as_str()), ("", ""));
        assert_eq!(new.unwrap().id, "bbb222");
    }

    #[tokio::test]
    async fn like_wildcards_in_an_identifier_match_literally() {
        let store = Store::open_in_memory().unwrap();
        let found = store
            .write(|db| {
                db.insert_image(&image("aaa111", "base", "latest", "2024-01-01T00:00:00Z"))?;
                db.find_image("%")
            })
            .await
            .unwrap();
        assert!(found.is_none());
    }
}
