//! Golden files: a rendered text (command lines, rules, a mount plan) compared with the file that
//! pins it. `KLEENE_UPDATE_GOLDENS=1` rewrites the files instead; the diff is then reviewed
//! against the man pages the files name.
//!
//! One file for every crate with golden tests: the harness crate has it as a module, the other
//! crates' test files include it with `#[path]`.

use std::path::Path;

/// Whether this run rewrites the golden files (`KLEENE_UPDATE_GOLDENS=1`).
pub fn updating() -> bool {
    std::env::var("KLEENE_UPDATE_GOLDENS").as_deref() == Ok("1")
}

/// Compares `rendered` with the golden file at `path`, after writing it there when
/// [`updating`]; the error shows both, for the caller's list of failures.
pub fn compare(path: &Path, rendered: &str) -> Result<(), String> {
    if updating() {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        std::fs::write(path, rendered).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    match std::fs::read_to_string(path) {
        Ok(have) if have == rendered => Ok(()),
        Ok(have) => Err(format!(
            "{}: differs\n--- golden\n{have}+++ rendered now\n{rendered}",
            path.display()
        )),
        Err(err) => Err(format!(
            "{}: {err} (KLEENE_UPDATE_GOLDENS=1 writes it)",
            path.display()
        )),
    }
}

/// The files in `dir` ending in `.<ext>` whose stem is none of `names`: goldens no case makes
/// any more, which go with the case that made them.
pub fn orphans(dir: &Path, ext: &str, names: &[&str]) -> Vec<String> {
    let suffix = format!(".{ext}");
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut found: Vec<String> = entries
        .map(|entry| entry.expect("a directory entry").file_name())
        .map(|name| name.to_string_lossy().into_owned())
        .filter(|name| {
            name.strip_suffix(&suffix)
                .is_some_and(|stem| !names.contains(&stem))
        })
        .collect();
    found.sort();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_golden_matches_differs_or_is_missing_and_orphans_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        assert!(compare(&path, "x\n")
            .unwrap_err()
            .contains("KLEENE_UPDATE_GOLDENS=1"));
        std::fs::write(&path, "x\n").unwrap();
        compare(&path, "x\n").unwrap();
        let err = compare(&path, "y\n").unwrap_err();
        assert!(
            err.contains("--- golden\nx\n+++ rendered now\ny\n"),
            "{err}"
        );
        std::fs::write(dir.path().join("b.txt"), "").unwrap();
        std::fs::write(dir.path().join("c.conf"), "").unwrap();
        assert_eq!(orphans(dir.path(), "txt", &["a"]), ["b.txt"]);
    }
}
