//! [`ZfsError`] and the one place zfs(8)/zpool(8) stderr is turned into it.
//!
//! The tools report everything with exit code 1 and an English sentence, so the sentence is
//! the only signal. [`classify`] matches the phrases both OpenZFS and zfs-fuse print (they
//! share the libzfs wording, e.g. `cannot open 'p/a': dataset does not exist`) and keeps the
//! argv and stderr of anything it does not recognise in [`ZfsError::Other`].

use kleene_runner::RunError;

use crate::name::NameError;
use crate::parse::ParseError;

/// A zfs or zpool operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ZfsError {
    /// The dataset or snapshot does not exist.
    #[error("dataset '{dataset}' does not exist")]
    NotFound {
        /// The missing dataset or snapshot.
        dataset: String,
    },
    /// A dataset could not be created because its parent does not exist.
    #[error("parent of dataset '{dataset}' does not exist")]
    ParentNotFound {
        /// The dataset that could not be created.
        dataset: String,
    },
    /// The pool does not exist (or is not imported).
    #[error("pool '{pool}' does not exist")]
    PoolNotFound {
        /// The missing pool.
        pool: String,
    },
    /// A dataset or snapshot with that name already exists.
    #[error("dataset '{dataset}' already exists")]
    AlreadyExists {
        /// The existing dataset.
        dataset: String,
    },
    /// The dataset is in use (mounted and busy, or still settling after a clone). Operations
    /// are retried on this before it is returned; see [`crate::RetryPolicy`].
    #[error("dataset '{dataset}' is busy")]
    Busy {
        /// The busy dataset (or mount point, as some tools name it).
        dataset: String,
    },
    /// Destroying the dataset or snapshot would need destroying clones of it (`-R`).
    #[error("dataset '{dataset}' has dependent clones: {}", dependents.join(", "))]
    HasDependents {
        /// The dataset that was not destroyed.
        dataset: String,
        /// The clones (and their descendants) that depend on it, as zfs listed them.
        dependents: Vec<String>,
    },
    /// Destroying the dataset would need destroying its children or snapshots (`-r`).
    #[error("dataset '{dataset}' has children: {}", children.join(", "))]
    HasChildren {
        /// The dataset that was not destroyed.
        dataset: String,
        /// Its snapshots and descendant datasets, as zfs listed them.
        children: Vec<String>,
    },
    /// The dataset is not mounted (answer to `zfs unmount`).
    #[error("dataset '{dataset}' is not mounted")]
    NotMounted {
        /// The dataset.
        dataset: String,
    },
    /// The dataset is already mounted (answer to `zfs mount`).
    #[error("dataset '{dataset}' is already mounted")]
    AlreadyMounted {
        /// The dataset.
        dataset: String,
    },
    /// This zfs does not know the property (zfs-fuse lacks e.g. `clones`).
    #[error("property '{property}' is not supported by this zfs")]
    UnknownProperty {
        /// The property name.
        property: String,
    },
    /// This zfs does not know the option (zfs-fuse lacks e.g. `-p`, `destroy -n`).
    #[error("option '-{option}' is not supported by this zfs")]
    UnsupportedOption {
        /// The option letter.
        option: String,
    },
    /// Any other failure, with everything needed to understand it.
    #[error("`{}` failed ({}): {stderr}", argv.join(" "), describe_exit(*code))]
    Other {
        /// The full command line.
        argv: Vec<String>,
        /// Its trimmed standard error.
        stderr: String,
        /// Its exit code, `None` if it was killed by a signal.
        code: Option<i32>,
    },
    /// The command succeeded but printed something we cannot read.
    #[error("unexpected output from `{}`", argv.join(" "))]
    Parse {
        /// The full command line.
        argv: Vec<String>,
        /// What was wrong.
        #[source]
        source: ParseError,
    },
    /// zfs printed a name that is not a valid dataset name.
    #[error(transparent)]
    Name(#[from] NameError),
    /// The command could not be run at all.
    #[error(transparent)]
    Run(#[from] RunError),
}

fn describe_exit(code: Option<i32>) -> String {
    match code {
        Some(code) => format!("exit code {code}"),
        None => "killed by a signal".to_owned(),
    }
}

impl ZfsError {
    /// Whether retrying the same command later may succeed.
    pub fn is_busy(&self) -> bool {
        matches!(self, ZfsError::Busy { .. })
    }

    /// Whether the error says the object does not exist (dataset, snapshot or pool).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            ZfsError::NotFound { .. } | ZfsError::PoolNotFound { .. }
        )
    }
}

/// The text between the first pair of single quotes after `from`, if any.
fn quoted_after(line: &str, from: usize) -> Option<String> {
    let rest = line.get(from..)?;
    let start = rest.find('\'')? + 1;
    let len = rest[start..].find('\'')?;
    Some(rest[start..start + len].to_owned())
}

/// The first quoted name on the line (`cannot destroy 'p/a': …` → `p/a`), or the empty string.
fn object(line: &str) -> String {
    quoted_after(line, 0).unwrap_or_default()
}

/// The dataset names zfs lists after "use '-r'/'-R' to destroy the following datasets:".
fn listed_datasets(lines: &[&str], after: usize) -> Vec<String> {
    lines
        .iter()
        .skip(after + 1)
        .skip_while(|l| !l.contains("to destroy the following datasets"))
        .skip(1)
        .map(|l| l.trim())
        .take_while(|l| !l.is_empty() && !l.contains(' '))
        .map(str::to_owned)
        .collect()
}

/// Turns a failed command's stderr into a [`ZfsError`].
///
/// `argv` and `code` are only kept for [`ZfsError::Other`]; recognised failures name the
/// object instead, which is what callers branch on and what users need to read.
pub fn classify(argv: &[String], code: Option<i32>, stderr: &str) -> ZfsError {
    let lines: Vec<&str> = stderr.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if line.contains("has dependent clones") {
            return ZfsError::HasDependents {
                dataset: object(line),
                dependents: listed_datasets(&lines, i),
            };
        }
        if line.contains("has children") {
            return ZfsError::HasChildren {
                dataset: object(line),
                children: listed_datasets(&lines, i),
            };
        }
        if line.contains("is busy") {
            return ZfsError::Busy {
                dataset: object(line),
            };
        }
        if line.contains("dataset does not exist") {
            return ZfsError::NotFound {
                dataset: object(line),
            };
        }
        // zfs-fuse's send of a missing snapshot of an existing dataset names it unquoted:
        // "WARNING: could not send p/a@nope: does not exist".
        if let Some((_, rest)) = line.split_once("could not send ") {
            if let Some(dataset) = rest.strip_suffix(": does not exist") {
                return ZfsError::NotFound {
                    dataset: dataset.to_owned(),
                };
            }
        }
        if line.contains("parent does not exist") {
            return ZfsError::ParentNotFound {
                dataset: object(line),
            };
        }
        if line.contains("no such pool") {
            return ZfsError::PoolNotFound { pool: object(line) };
        }
        // "dataset already exists" from create/snapshot/clone/rename; receive says
        // "destination 'p/x' exists".
        if line.contains("already exists")
            || (line.contains("destination '") && line.ends_with("' exists"))
        {
            return ZfsError::AlreadyExists {
                dataset: object(line),
            };
        }
        if line.contains("not currently mounted") {
            return ZfsError::NotMounted {
                dataset: object(line),
            };
        }
        if line.contains("already mounted") {
            return ZfsError::AlreadyMounted {
                dataset: object(line),
            };
        }
        if let Some(at) = line.find("invalid property '") {
            return ZfsError::UnknownProperty {
                property: quoted_after(line, at).unwrap_or_default(),
            };
        }
        if let Some(at) = line.find("invalid option '") {
            return ZfsError::UnsupportedOption {
                option: quoted_after(line, at).unwrap_or_default(),
            };
        }
    }
    ZfsError::Other {
        argv: argv.to_vec(),
        stderr: stderr.trim().to_owned(),
        code,
    }
}

#[cfg(test)]
mod tests {
    //! Every stderr below was captured from zfs-fuse 0.7.0 (Debian 12) unless marked OpenZFS.
    use super::*;

    fn argv() -> Vec<String> {
        ["zfs", "x"].map(String::from).to_vec()
    }

    fn classify1(stderr: &str) -> ZfsError {
        classify(&argv(), Some(1), stderr)
    }

    #[test]
    fn missing_dataset_is_not_found() {
        let err = classify1("cannot open 'kleene-test/probe/nope': dataset does not exist\n");
        assert!(
            matches!(err, ZfsError::NotFound { ref dataset } if dataset == "kleene-test/probe/nope")
        );
        assert_eq!(
            err.to_string(),
            "dataset 'kleene-test/probe/nope' does not exist"
        );
        assert!(err.is_not_found());
    }

    #[test]
    fn missing_snapshot_on_clone_is_not_found() {
        let err = classify1("cannot open 'kleene-test/probe/a@nope': dataset does not exist\n");
        assert!(
            matches!(err, ZfsError::NotFound { ref dataset } if dataset == "kleene-test/probe/a@nope")
        );
    }

    #[test]
    fn missing_parent_on_create() {
        let err = classify1("cannot create 'kleene-test/probe/nope/deep': parent does not exist\n");
        assert!(
            matches!(err, ZfsError::ParentNotFound { ref dataset } if dataset == "kleene-test/probe/nope/deep")
        );
    }

    #[test]
    fn existing_dataset_snapshot_and_rename_target() {
        for (stderr, name) in [
            (
                "cannot create 'kleene-test/probe': dataset already exists\n",
                "kleene-test/probe",
            ),
            (
                "cannot create snapshot 'kleene-test/probe/a@s1': dataset already exists\n",
                "kleene-test/probe/a@s1",
            ),
            // zfs-fuse names the source of a rename, OpenZFS the target ("cannot rename to").
            (
                "cannot rename 'kleene-test/probe/c1r': dataset already exists\n",
                "kleene-test/probe/c1r",
            ),
            (
                "cannot rename to 'zroot/b': dataset already exists\n",
                "zroot/b",
            ),
        ] {
            let err = classify1(stderr);
            assert!(
                matches!(err, ZfsError::AlreadyExists { ref dataset } if dataset == name),
                "{stderr}"
            );
        }
    }

    #[test]
    fn receive_into_existing_dataset_is_already_exists() {
        let err = classify1(
            "cannot receive new filesystem stream: destination 'kleene-test/probe/copy' exists\n\
             must specify -F to overwrite it\n",
        );
        assert!(
            matches!(err, ZfsError::AlreadyExists { ref dataset } if dataset == "kleene-test/probe/copy")
        );
    }

    #[test]
    fn busy_destroy_and_rename() {
        for stderr in [
            "cannot destroy 'kleene-test/probe/bc1': dataset is busy\n",
            "cannot rename 'kleene-test/probe/bc1': dataset is busy\n",
        ] {
            let err = classify1(stderr);
            assert!(
                matches!(err, ZfsError::Busy { ref dataset } if dataset == "kleene-test/probe/bc1")
            );
            assert!(err.is_busy());
        }
        // OpenZFS on FreeBSD names the mount point.
        let err = classify1("cannot unmount '/zroot/a': pool or dataset is busy\n");
        assert!(matches!(err, ZfsError::Busy { ref dataset } if dataset == "/zroot/a"));
    }

    #[test]
    fn destroy_with_clones_lists_dependents() {
        let err = classify1(
            "cannot destroy 'kleene-test/probe/a': filesystem has dependent clones\n\
             use '-R' to destroy the following datasets:\n\
             kleene-test/probe/c1\n",
        );
        match err {
            ZfsError::HasDependents {
                ref dataset,
                ref dependents,
            } => {
                assert_eq!(dataset, "kleene-test/probe/a");
                assert_eq!(dependents, &["kleene-test/probe/c1"]);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            err.to_string(),
            "dataset 'kleene-test/probe/a' has dependent clones: kleene-test/probe/c1"
        );
    }

    #[test]
    fn destroy_snapshot_with_clones_lists_dependents() {
        let err = classify1(
            "cannot destroy 'kleene-test/probe/a@s1': snapshot has dependent clones\n\
             use '-R' to destroy the following datasets:\n\
             kleene-test/probe/c1\n\
             kleene-test/probe/c2\n",
        );
        assert!(
            matches!(err, ZfsError::HasDependents { ref dataset, ref dependents }
            if dataset == "kleene-test/probe/a@s1" && dependents.len() == 2)
        );
    }

    #[test]
    fn destroy_without_recursion_lists_children() {
        let err = classify1(
            "cannot destroy 'kleene-test/probe/a': filesystem has children\n\
             use '-r' to destroy the following datasets:\n\
             kleene-test/probe/a@s1\n",
        );
        assert!(
            matches!(err, ZfsError::HasChildren { ref dataset, ref children }
            if dataset == "kleene-test/probe/a" && children == &["kleene-test/probe/a@s1"])
        );
    }

    #[test]
    fn mount_state_errors() {
        let err = classify1("cannot unmount 'kleene-test/probe/c1': not currently mounted\n");
        assert!(
            matches!(err, ZfsError::NotMounted { ref dataset } if dataset == "kleene-test/probe/c1")
        );
        let err = classify1("cannot mount 'kleene-test/probe/c1r': filesystem already mounted\n");
        assert!(
            matches!(err, ZfsError::AlreadyMounted { ref dataset } if dataset == "kleene-test/probe/c1r")
        );
    }

    #[test]
    fn missing_pool() {
        let err = classify1("cannot open 'nopool': no such pool\n");
        assert!(matches!(err, ZfsError::PoolNotFound { ref pool } if pool == "nopool"));
        assert_eq!(err.to_string(), "pool 'nopool' does not exist");
    }

    #[test]
    fn zfs_fuse_lacks_clones_property_and_dry_run() {
        let err = classify(
            &argv(),
            Some(2),
            "bad property list: invalid property 'clones'\nusage:\n\tlist [-rH][-d max] ...\n",
        );
        assert!(matches!(err, ZfsError::UnknownProperty { ref property } if property == "clones"));
        let err = classify(
            &argv(),
            Some(2),
            "invalid option 'n'\nusage:\n\tdestroy [-rRf] <filesystem|volume>\n",
        );
        assert!(matches!(err, ZfsError::UnsupportedOption { ref option } if option == "n"));
        assert_eq!(err.to_string(), "option '-n' is not supported by this zfs");
        let err = classify1("cannot create 'kleene-test/probe/b': invalid property 'bogus'\n");
        assert!(matches!(err, ZfsError::UnknownProperty { ref property } if property == "bogus"));
    }

    #[test]
    fn send_of_missing_snapshot_reports_the_sender_error_first() {
        // A failed send | receive: the client passes both sides' stderr, sender first.
        let err = classify1(
            "cannot open 'kleene-test/probe/nope': dataset does not exist\n\
             cannot receive: failed to read from stream\n",
        );
        assert!(
            matches!(err, ZfsError::NotFound { ref dataset } if dataset == "kleene-test/probe/nope")
        );
    }

    #[test]
    fn send_of_missing_snapshot_of_existing_dataset_is_not_found() {
        let err = classify1(
            "WARNING: could not send kleene-test/kleene-test-c3bae1e13e7e/src@nope: does not exist\n\
             cannot receive: failed to read from stream\n",
        );
        assert!(matches!(err, ZfsError::NotFound { ref dataset }
            if dataset == "kleene-test/kleene-test-c3bae1e13e7e/src@nope"));
    }

    #[test]
    fn unknown_failure_keeps_argv_stderr_and_code() {
        let err = classify(&argv(), Some(1), "  cannot frobnicate: out of widgets \n");
        match &err {
            ZfsError::Other { argv, stderr, code } => {
                assert_eq!(argv, &["zfs", "x"]);
                assert_eq!(stderr, "cannot frobnicate: out of widgets");
                assert_eq!(*code, Some(1));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            err.to_string(),
            "`zfs x` failed (exit code 1): cannot frobnicate: out of widgets"
        );
        let err = classify(&argv(), None, "");
        assert_eq!(err.to_string(), "`zfs x` failed (killed by a signal): ");
    }
}
