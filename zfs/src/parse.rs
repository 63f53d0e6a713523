//! Parsers for the scripted (`-H`) output of zfs(8) and zpool(8).
//!
//! `-H` output is one line per dataset and one tab between columns, with no header. Values
//! are never empty: a property that does not apply prints `-`. Sizes stay human-readable
//! (`1.5G`) because zfs-fuse has no `-p`; nothing here needs them as numbers.

use std::path::PathBuf;

/// A `-H` line that does not have the expected number of columns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected} tab-separated columns, got {found} in line '{line}'")]
pub struct ParseError {
    /// Columns asked for with `-o`.
    pub expected: usize,
    /// Columns found.
    pub found: usize,
    /// The offending line.
    pub line: String,
}

/// Splits `-H` output into rows of exactly `columns` fields. Blank lines are skipped.
pub fn table(stdout: &str, columns: usize) -> Result<Vec<Vec<String>>, ParseError> {
    stdout
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let fields: Vec<String> = line.split('\t').map(str::to_owned).collect();
            if fields.len() == columns {
                Ok(fields)
            } else {
                Err(ParseError {
                    expected: columns,
                    found: fields.len(),
                    line: line.to_owned(),
                })
            }
        })
        .collect()
}

/// The one-column case: each non-blank line, trimmed.
pub fn single_column(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A property value, with zfs's "does not apply" marker `-` turned into `None`.
pub fn value(raw: &str) -> Option<String> {
    let raw = raw.trim();
    if raw.is_empty() || raw == "-" {
        None
    } else {
        Some(raw.to_owned())
    }
}

/// The `mountpoint` property as a path. `none` and `legacy` mean zfs does not manage a mount
/// point, and `-` (snapshots, volumes) means there is none: all are `None`.
pub fn mountpoint(raw: &str) -> Option<PathBuf> {
    match value(raw)?.as_str() {
        "none" | "legacy" => None,
        path if path.starts_with('/') => Some(PathBuf::from(path)),
        // Anything else is not a path we could use; treat it as no mount point.
        _ => None,
    }
}

/// The `clones` property: comma-separated dataset names, `-` or empty when there are none.
pub fn clones(raw: &str) -> Vec<String> {
    match value(raw) {
        None => Vec::new(),
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect(),
    }
}

/// The output of `zfs destroy -n -v`: the datasets that would be destroyed, from the
/// `would destroy <name>` lines (OpenZFS; other lines such as `would reclaim` are ignored).
pub fn destroy_dry_run(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|line| line.trim().strip_prefix("would destroy "))
        .map(|name| name.trim().to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_splits_tabs_and_keeps_dash() {
        let out = "p/a\t-\np/b\tp/a@s1\n\n";
        assert_eq!(
            table(out, 2).expect("two columns"),
            [vec!["p/a", "-"], vec!["p/b", "p/a@s1"]]
        );
    }

    #[test]
    fn table_rejects_wrong_column_count() {
        let err = table("p/a\t-\textra\n", 2).expect_err("three columns");
        assert_eq!(err.found, 3);
        assert_eq!(
            err.to_string(),
            "expected 2 tab-separated columns, got 3 in line 'p/a\t-\textra'"
        );
    }

    #[test]
    fn table_of_empty_output_is_empty() {
        assert!(table("", 3).expect("empty").is_empty());
    }

    #[test]
    fn mountpoint_values() {
        assert_eq!(
            mountpoint("/kleene-test/a\n"),
            Some(PathBuf::from("/kleene-test/a"))
        );
        assert_eq!(mountpoint("none"), None);
        assert_eq!(mountpoint("legacy"), None);
        assert_eq!(mountpoint("-"), None);
    }

    #[test]
    fn clones_values() {
        assert!(clones("-").is_empty());
        assert!(clones("").is_empty());
        assert_eq!(clones("p/c1,p/c2"), ["p/c1", "p/c2"]);
    }

    #[test]
    fn dry_run_lists_would_destroy_lines() {
        let out = "would destroy zroot/k/image/a@image\nwould destroy zroot/k/image/a\nwould reclaim 12K\n";
        assert_eq!(
            destroy_dry_run(out),
            ["zroot/k/image/a@image", "zroot/k/image/a"]
        );
    }

    #[test]
    fn value_maps_dash_to_none() {
        assert_eq!(value("-"), None);
        assert_eq!(value("on\n"), Some("on".to_owned()));
    }
}
