//! Validated dataset and snapshot names.
//!
//! Names are checked once, at the boundary, so the rest of the crate can put them into an
//! argv without further thought. The rules are a conservative subset of zfs(8)'s: besides
//! catching typos early, they guarantee a name can never be mistaken for an option (no
//! leading `-`) or a path (no leading `/`), and never contains a tab or newline that would
//! break the `-H` output parsers.

use std::fmt;
use std::str::FromStr;

/// zfs(8) rejects names of 256 bytes or more (`ZFS_MAX_DATASET_NAME_LEN`).
const MAX_NAME_LEN: usize = 255;

/// Why a string is not a valid dataset or snapshot name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid zfs name '{name}': {reason}")]
pub struct NameError {
    /// The rejected name.
    pub name: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

fn invalid(name: &str, reason: &'static str) -> NameError {
    NameError {
        name: name.to_owned(),
        reason,
    }
}

/// Checks one path component (a pool name, a child name or a snapshot name).
fn check_component(full: &str, component: &str) -> Result<(), NameError> {
    if component.is_empty() {
        return Err(invalid(full, "empty component"));
    }
    if component == "." || component == ".." {
        return Err(invalid(full, "'.' and '..' are not allowed as components"));
    }
    if !component
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
    {
        return Err(invalid(
            full,
            "only ASCII letters, digits and '_', '-', '.', ':' are allowed",
        ));
    }
    Ok(())
}

fn check_dataset(name: &str) -> Result<(), NameError> {
    if name.len() > MAX_NAME_LEN {
        return Err(invalid(name, "longer than 255 bytes"));
    }
    if name.contains('@') {
        return Err(invalid(name, "a dataset name cannot contain '@'"));
    }
    // A pool name must start with a letter; this also rules out a leading '-' or '/'.
    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Err(invalid(name, "must start with a letter (the pool name)"));
    }
    name.split('/').try_for_each(|c| check_component(name, c))
}

/// A filesystem or volume name such as `zroot/kleene/image/0123456789ab`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DatasetName(String);

impl DatasetName {
    /// Validates `name` as a dataset name.
    pub fn new(name: impl Into<String>) -> Result<Self, NameError> {
        let name = name.into();
        check_dataset(&name)?;
        Ok(DatasetName(name))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The pool this dataset lives in (its first component).
    pub fn pool(&self) -> &str {
        self.0.split('/').next().unwrap_or(&self.0)
    }

    /// The parent dataset, or `None` for a pool's root dataset.
    pub fn parent(&self) -> Option<DatasetName> {
        self.0
            .rsplit_once('/')
            .map(|(parent, _)| DatasetName(parent.to_owned()))
    }

    /// The last component, e.g. `0123456789ab` for `zroot/kleene/image/0123456789ab`.
    pub fn basename(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// The child dataset `self/component`.
    pub fn child(&self, component: &str) -> Result<DatasetName, NameError> {
        DatasetName::new(format!("{}/{}", self.0, component))
    }

    /// The snapshot `self@snap`.
    pub fn snapshot(&self, snap: &str) -> Result<SnapshotName, NameError> {
        SnapshotName::new(format!("{}@{}", self.0, snap))
    }

    /// Whether `self` is `other` or lies below it.
    pub fn is_within(&self, other: &DatasetName) -> bool {
        self.0 == other.0
            || (self.0.starts_with(&other.0) && self.0.as_bytes().get(other.0.len()) == Some(&b'/'))
    }
}

impl fmt::Display for DatasetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for DatasetName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DatasetName::new(s)
    }
}

impl AsRef<str> for DatasetName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A snapshot name such as `zroot/kleene/image/0123456789ab@image`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SnapshotName {
    full: String,
    /// Byte offset of the '@'.
    at: usize,
}

impl SnapshotName {
    /// Validates `name` as `<dataset>@<snapshot>`.
    pub fn new(name: impl Into<String>) -> Result<Self, NameError> {
        let full = name.into();
        if full.len() > MAX_NAME_LEN {
            return Err(invalid(&full, "longer than 255 bytes"));
        }
        let Some(at) = full.find('@') else {
            return Err(invalid(&full, "a snapshot name needs '@'"));
        };
        check_dataset(&full[..at]).map_err(|e| invalid(&full, e.reason))?;
        let snap = &full[at + 1..];
        if snap.contains('/') || snap.contains('@') {
            return Err(invalid(
                &full,
                "the snapshot part cannot contain '/' or '@'",
            ));
        }
        check_component(&full, snap)?;
        Ok(SnapshotName { full, at })
    }

    /// The full name as text.
    pub fn as_str(&self) -> &str {
        &self.full
    }

    /// The dataset the snapshot belongs to.
    pub fn dataset(&self) -> DatasetName {
        DatasetName(self.full[..self.at].to_owned())
    }

    /// The part after '@'.
    pub fn snap(&self) -> &str {
        &self.full[self.at + 1..]
    }
}

impl fmt::Display for SnapshotName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

impl FromStr for SnapshotName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SnapshotName::new(s)
    }
}

impl AsRef<str> for SnapshotName {
    fn as_ref(&self) -> &str {
        &self.full
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_kleene_layout_names() {
        for name in [
            "zroot",
            "zroot/kleene",
            "zroot/kleene/image/0123456789ab",
            "kleene-test/kleene-test-1a2b/vol_1.x:y",
        ] {
            assert_eq!(DatasetName::new(name).expect(name).as_str(), name);
        }
    }

    #[test]
    fn rejects_names_that_could_be_options_paths_or_break_parsing() {
        for name in [
            "",
            "-f",
            "/zroot",
            "zroot/",
            "zroot//a",
            "zroot/a b",
            "zroot/a\tb",
            "zroot/a\nb",
            "zroot/..",
            "zroot/a@s",
            "1pool",
            "zroot/a%b",
            "zroot/a#b",
        ] {
            assert!(DatasetName::new(name).is_err(), "{name:?} must be rejected");
        }
        assert!(DatasetName::new(format!("p/{}", "a".repeat(260))).is_err());
    }

    #[test]
    fn dataset_relations() {
        let ds = DatasetName::new("zroot/kleene/image/abc").expect("valid");
        assert_eq!(ds.pool(), "zroot");
        assert_eq!(ds.basename(), "abc");
        assert_eq!(
            ds.parent().expect("has parent").as_str(),
            "zroot/kleene/image"
        );
        assert_eq!(DatasetName::new("zroot").expect("valid").parent(), None);
        assert_eq!(
            ds.child("x").expect("valid").as_str(),
            "zroot/kleene/image/abc/x"
        );
        assert!(ds.child("a/../b").is_err());
        let root = DatasetName::new("zroot/kleene").expect("valid");
        assert!(ds.is_within(&root));
        assert!(root.is_within(&root));
        assert!(!DatasetName::new("zroot/kleene2")
            .expect("valid")
            .is_within(&root));
    }

    #[test]
    fn snapshot_names() {
        let snap = SnapshotName::new("zroot/kleene/image/abc@image").expect("valid");
        assert_eq!(snap.dataset().as_str(), "zroot/kleene/image/abc");
        assert_eq!(snap.snap(), "image");
        assert_eq!(snap.to_string(), "zroot/kleene/image/abc@image");
        for bad in [
            "zroot/a",
            "zroot/a@",
            "zroot/a@b@c",
            "@b",
            "zroot/a@b/c",
            "-x@y",
        ] {
            assert!(SnapshotName::new(bad).is_err(), "{bad:?} must be rejected");
        }
        let ds = DatasetName::new("p/a").expect("valid");
        assert_eq!(ds.snapshot("s1").expect("valid").as_str(), "p/a@s1");
    }

    #[test]
    fn error_message_names_the_object() {
        let err = DatasetName::new("/zroot").expect_err("invalid");
        assert_eq!(
            err.to_string(),
            "invalid zfs name '/zroot': must start with a letter (the pool name)"
        );
    }
}
