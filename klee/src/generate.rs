//! What is generated from the command line's own definition (`cli.rs`) instead of written by hand,
//! so it cannot drift from it: shell completion scripts (`klee completion SHELL`) and the man pages
//! (`klee __man DIR`; the committed copies in `man/` are checked by a test here).

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;

/// Writes the completion script for `shell` to `out`.
pub fn completion(shell: Shell, out: &mut dyn Write) {
    clap_complete::generate(shell, &mut Cli::command(), "klee", out);
}

/// One man page: its file name (`klee-container-run.1`) and its roff text.
#[derive(Debug)]
pub struct ManPage {
    pub file_name: String,
    pub text: Vec<u8>,
}

/// A page for klee and for every visible command at every level, as `man klee-image-create`
/// finds it. The pages carry no date, so they change only when the command line does.
pub fn man_pages() -> io::Result<Vec<ManPage>> {
    fn add(command: clap::Command, source: &str, pages: &mut Vec<ManPage>) -> io::Result<()> {
        for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
            add(sub.clone(), source, pages)?;
        }
        // clap_mangen leaves aliases out; say them, with the full command line of each.
        let aliases: Vec<String> = command.get_visible_aliases().map(str::to_owned).collect();
        let command = if aliases.is_empty() {
            command
        } else {
            let parent = command
                .get_bin_name()
                .and_then(|name| name.rsplit_once(' '))
                .map_or("klee", |(parent, _)| parent)
                .to_owned();
            let lines: Vec<String> = aliases.iter().map(|a| format!("{parent} {a}")).collect();
            command.after_long_help(format!("Also called: {}", lines.join(", ")))
        };
        let man = clap_mangen::Man::new(command)
            .source(source)
            .manual("klee manual");
        let mut text = Vec::new();
        man.render(&mut text)?;
        pages.push(ManPage {
            file_name: man.get_filename(),
            text,
        });
        Ok(())
    }
    // Built once from the top, every command knows its full name (`klee-image-create`), and
    // `help` is no command of its own but `--help` on each.
    let mut command = Cli::command().disable_help_subcommand(true);
    command.build();
    let source = format!("klee {}", env!("CARGO_PKG_VERSION"));
    let mut pages = Vec::new();
    add(command, &source, &mut pages)?;
    pages.sort_by(|a, b| a.file_name.cmp(&b.file_name));
    Ok(pages)
}

/// Writes every man page into `dir`; answers the paths written.
pub fn write_man_pages(dir: &Path) -> io::Result<Vec<PathBuf>> {
    man_pages()?
        .into_iter()
        .map(|page| {
            let path = dir.join(&page.file_name);
            std::fs::write(&path, &page.text)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
            Ok(path)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `man/` at the top of the repository.
    fn committed() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../man")
    }

    /// Golden files: `KLEENE_UPDATE_GOLDENS=1 cargo test -p klee man_pages` (or
    /// `cargo run -p klee -- __man man`) rewrites them.
    #[test]
    fn the_committed_man_pages_match_the_command_line() {
        let update = std::env::var("KLEENE_UPDATE_GOLDENS").as_deref() == Ok("1");
        let dir = committed();
        let pages = man_pages().unwrap();
        let names: Vec<&str> = pages.iter().map(|p| p.file_name.as_str()).collect();
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            write_man_pages(&dir).unwrap();
        }
        let regenerate = "regenerate them with `KLEENE_UPDATE_GOLDENS=1 cargo test -p klee \
                          man_pages` and commit man/";
        for page in &pages {
            let path = dir.join(&page.file_name);
            let on_disk = std::fs::read(&path)
                .unwrap_or_else(|e| panic!("{}: {e}; {regenerate}", path.display()));
            assert!(
                on_disk == page.text,
                "{} differs from the command line; {regenerate}",
                path.display()
            );
        }
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.ends_with(".1") && !names.contains(&name.as_str()) {
                if update {
                    std::fs::remove_file(&path).unwrap();
                } else {
                    panic!(
                        "{} is no page of a command any more; {regenerate}",
                        path.display()
                    );
                }
            }
        }
    }

    #[test]
    fn every_visible_command_has_a_man_page_and_hidden_ones_none() {
        let pages = man_pages().unwrap();
        let names: Vec<&str> = pages.iter().map(|p| p.file_name.as_str()).collect();
        for name in [
            "klee.1",
            "klee-container.1",
            "klee-container-run.1",
            "klee-image-create.1",
            "klee-network-connect.1",
            "klee-volume-create.1",
            "klee-volume-prune.1",
            "klee-rmv.1",
            "klee-completion.1",
            "klee-version.1",
            "klee-info.1",
        ] {
            assert!(names.contains(&name), "{name} missing from {names:?}");
        }
        assert!(!names
            .iter()
            .any(|n| n.contains("__man") || n.contains("help")));
        let top = String::from_utf8(
            pages
                .iter()
                .find(|p| p.file_name == "klee.1")
                .unwrap()
                .text
                .clone(),
        )
        .unwrap();
        assert!(top.contains("KLEE_HOST"), "the environment is documented");
        assert!(top.contains("Exit status"), "so are the exit codes");
        let ls = pages
            .iter()
            .find(|p| p.file_name == "klee-container-ls.1")
            .unwrap();
        let ls = String::from_utf8(ls.text.clone()).unwrap();
        assert!(
            ls.contains("Also called: klee container list, klee container ps"),
            "{ls}"
        );
    }

    #[test]
    fn completion_scripts_name_the_commands() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let mut script = Vec::new();
            completion(shell, &mut script);
            let script = String::from_utf8(script).unwrap();
            for word in [
                "container",
                "network",
                "volume",
                "completion",
                "rename",
                "ps",
                "rmv",
                "mount",
            ] {
                assert!(script.contains(word), "{shell}: no {word}");
            }
        }
    }
}
