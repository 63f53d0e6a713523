//! ARCHITECTURE.md cannot drift from the tree: every Rust source file of the workspace is named in
//! it. A file is named by its path in backticks inside the section whose heading names a folder
//! that holds it (`## \`kleened/src/\`` names `engine/exec/pump.rs` as `` `engine/exec/pump.rs` ``),
//! or anywhere by its whole path from the workspace root.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The workspace root (this crate's parent).
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate is inside the workspace")
        .to_owned()
}

/// Every `.rs` file under `dir`, as paths relative to the workspace root.
fn sources(root: &Path, dir: &Path, found: &mut Vec<String>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            if !name.starts_with('.') && name != "target" && name != "goldens" {
                sources(root, &path, found);
            }
        } else if name.ends_with(".rs") {
            let relative = path.strip_prefix(root).expect("under the root");
            found.push(relative.to_string_lossy().into_owned());
        }
    }
}

/// The words in backticks of `text`.
fn quoted(text: &str) -> impl Iterator<Item = &str> {
    text.split('`').skip(1).step_by(2)
}

/// The document's sections: the folder its heading names in backticks (ending in `/`), if any,
/// and the words in backticks of its body.
fn sections(doc: &str) -> Vec<(Option<String>, BTreeSet<String>)> {
    let mut sections = vec![(None, BTreeSet::new())];
    for line in doc.lines() {
        if line.starts_with('#') {
            let folder = quoted(line).find(|w| w.ends_with('/')).map(str::to_owned);
            sections.push((folder, BTreeSet::new()));
        } else if let Some((_, words)) = sections.last_mut() {
            words.extend(quoted(line).map(str::to_owned));
        }
    }
    sections
}

/// Whether `file` (relative to the workspace root) is named in `sections`.
fn named(file: &str, sections: &[(Option<String>, BTreeSet<String>)]) -> bool {
    sections.iter().any(|(folder, words)| {
        words.contains(file)
            || folder
                .as_deref()
                .and_then(|folder| file.strip_prefix(folder))
                .is_some_and(|relative| words.contains(relative))
    })
}

#[test]
fn every_source_file_is_named_in_the_architecture_document() {
    let root = workspace();
    let doc = std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let sections = sections(&doc);
    let mut files = vec![];
    for entry in std::fs::read_dir(&root).expect("the workspace") {
        let path = entry.expect("an entry").path();
        if path.join("Cargo.toml").is_file() {
            sources(&root, &path, &mut files);
        }
    }
    files.sort();
    assert!(
        files.len() > 100,
        "the walk found only {} source files: {files:?}",
        files.len()
    );
    let missing: Vec<&String> = files.iter().filter(|f| !named(f, &sections)).collect();
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md does not name these source files (in backticks, in the section of \
         their folder or by their whole path): {missing:#?}"
    );
}

#[test]
fn a_file_counts_only_in_the_section_of_its_folder() {
    let doc =
        "# Top\n\n## `kleened/src/`\n\n| `engine/mod.rs` | x |\n\n## `klee/src/`\n\n`cli/mod.rs`\n\
               \nand `zfs/src/lib.rs` by its whole path\n";
    let sections = sections(doc);
    assert!(named("kleened/src/engine/mod.rs", &sections));
    assert!(named("klee/src/cli/mod.rs", &sections));
    assert!(named("zfs/src/lib.rs", &sections));
    assert!(
        !named("kleened/src/cli/mod.rs", &sections),
        "named under klee only"
    );
    assert!(
        !named("klee/src/engine/mod.rs", &sections),
        "named under kleened only"
    );
}
