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

/// A size given as a string (`"32m"`, checked by the daemon) or as a JSON integer of bytes (taken
/// as its decimal string); `null` or absent is `None`.
pub fn lenient_size<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum SizeOrString {
        Bytes(u64),
        Negative(i64),
        String(String),
    }
    Ok(
        match Option::<SizeOrString>::deserialize(deserializer).map_err(|_| {
            serde::de::Error::custom(
                "invalid size: expected a string such as \"32m\" or a number of bytes",
            )
        })? {
            None => None,
            Some(SizeOrString::Bytes(bytes)) => Some(bytes.to_string()),
            // Refused by the daemon with the field's name, as any other bad size.
            Some(SizeOrString::Negative(value)) => Some(value.to_string()),
            Some(SizeOrString::String(text)) => Some(text),
        },
    )
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

    #[test]
    fn memory_sizes_may_be_strings_or_numbers_of_bytes() {
        use crate::ContainerConfig;
        let parse = |json: &str| serde_json::from_str::<ContainerConfig>(json).map(|c| c.memory);
        assert_eq!(
            parse(r#"{"memory":"32m"}"#).unwrap().as_deref(),
            Some("32m")
        );
        assert_eq!(
            parse(r#"{"memory":33554432}"#).unwrap().as_deref(),
            Some("33554432")
        );
        assert_eq!(parse(r#"{"memory":-1}"#).unwrap().as_deref(), Some("-1"));
        assert_eq!(parse(r#"{"memory":null}"#).unwrap(), None);
        assert_eq!(parse("{}").unwrap(), None);
        let err = parse(r#"{"memory":[1]}"#).unwrap_err();
        assert!(err.to_string().contains("invalid size"), "{err}");
    }
}
