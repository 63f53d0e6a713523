//! Lenient decoding for values some clients send in another type than the schema says.
//!
//! The published Python client sends some booleans as the strings `"true"`/`"false"` (for example
//! `start_container` and build's `quiet`), so boolean fields accept both forms.

use serde::{Deserialize, Deserializer};

/// `true`, for `#[serde(default = ...)]`.
pub fn yes() -> bool {
    true
}

/// A boolean given as `true`/`false` or as the strings `"true"`/`"false"`.
pub fn lenient_bool<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum BoolOrString {
        Bool(bool),
        String(String),
    }
    match BoolOrString::deserialize(deserializer)? {
        BoolOrString::Bool(value) => Ok(value),
        BoolOrString::String(text) => match text.as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            other => Err(serde::de::Error::custom(format!(
                "invalid boolean: '{other}'"
            ))),
        },
    }
}

#[cfg(test)]
mod tests {
    use crate::{ImageCreateConfig, ImageCreateMethod};

    #[test]
    fn booleans_may_be_strings_and_defaults_fill_the_rest() {
        let config: ImageCreateConfig = serde_json::from_str(
            r#"{"method":"zfs-copy","zfs_dataset":"tank/base","dns":"false"}"#,
        )
        .unwrap();
        assert_eq!(config.method, ImageCreateMethod::ZfsCopy);
        assert!(!config.dns);
        assert!(config.localtime);
        assert!(!config.update);
        assert_eq!(config.tag, "");
        let err = serde_json::from_str::<ImageCreateConfig>(r#"{"method":"fetch","dns":"maybe"}"#)
            .unwrap_err();
        assert!(err.to_string().contains("invalid boolean"), "{err}");
        let err =
            serde_json::from_str::<ImageCreateConfig>(r#"{"method":"download"}"#).unwrap_err();
        assert!(err.to_string().contains("unknown variant"), "{err}");
    }
}
