//! Identifiers and timestamps of new objects.

use time::format_description::FormatItem;
use time::macros::format_description;
use time::OffsetDateTime;

/// A new object ID: the first 12 hex digits of a random UUID. An ID of only decimal digits is
/// drawn again, so that jail tools never mistake a container ID for a jail number.
pub fn new_id() -> String {
    loop {
        let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        if !id.bytes().all(|b| b.is_ascii_digit()) {
            return id;
        }
    }
}

const TIMESTAMP: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

/// The current time as stored in `created` fields: ISO-8601 UTC with microseconds, so that the
/// text sorts in time order.
pub fn now() -> String {
    OffsetDateTime::now_utc()
        .format(TIMESTAMP)
        .unwrap_or_else(|_| "1970-01-01T00:00:00.000000Z".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_12_hex_digits_and_never_all_digits() {
        for _ in 0..1000 {
            let id = new_id();
            assert_eq!(id.len(), 12);
            assert!(id
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
            assert!(!id.bytes().all(|b| b.is_ascii_digit()));
        }
    }

    #[test]
    fn timestamps_have_microseconds_and_a_z() {
        let t = now();
        assert_eq!(t.len(), "2023-09-14T21:21:57.990515Z".len(), "{t}");
        assert!(t.ends_with('Z'));
        assert!(
            time::OffsetDateTime::parse(&t, &time::format_description::well_known::Rfc3339).is_ok()
        );
    }
}
