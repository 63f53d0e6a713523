//! pfctl(8): the command lines kleened runs ([`check`], [`load`], [`enable`]), its stderr turned
//! into [`PfctlError`] ([`classify`]), and [`Pfctl`], which applies a ruleset transactionally.
//!
//! What this relies on, from FreeBSD's `sbin/pfctl/pfctl.8`, `pfctl.c` and `parse.y` (read, not
//! run: there is no pfctl on the Linux hosts; the `vagrant/` VM runs the real one):
//! - `-f file` loads the rules in `file`; with `-n` they are only parsed ("Do not actually load
//!   rules, just parse them"), so `pfctl -n -f` is the check and `pfctl -f` the load. A load
//!   replaces the main ruleset in one kernel transaction that is rolled back on any error, so a
//!   failed load leaves the previous ruleset in force.
//! - `-e` enables pf; when it is already enabled pfctl prints `pfctl: pf already enabled` and
//!   exits 1 (`pfctl_enable`: `errx(1, "pf already enabled")` on `EEXIST`). On success it prints
//!   `pf enabled` on stderr and exits 0.
//! - Parse errors are printed one per line as `<file>:<line>: <message>` (`yyerror` in
//!   `parse.y`, e.g. `/etc/pf.conf:12: syntax error`, `...: macro 'x' not defined`), then, without
//!   `-n`, `pfctl: Syntax error in config file: pf rules not loaded`; the exit code is 1.
//! - Without `-n` pfctl opens `/dev/pf` first and fails with `pfctl: /dev/pf: <strerror>` when
//!   the pf module is not loaded.

use std::fmt;
use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use kleene_runner::{CommandSpec, RunError, Runner};
use tracing::{debug, warn};

use crate::pfconf::{fill_template, PfRules, TemplateError};

/// pfctl(8) in FreeBSD's base system, run by absolute path so the daemon does not depend on its
/// `PATH`.
pub const PFCTL: &str = "/sbin/pfctl";

fn path_arg(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// `pfctl -n -f <path>`: parse the ruleset in `path` without loading it.
pub fn check(path: &Path) -> CommandSpec {
    CommandSpec::new(PFCTL).args(["-n".to_owned(), "-f".to_owned(), path_arg(path)])
}

/// `pfctl -f <path>`: load the ruleset in `path`, replacing the main ruleset atomically.
pub fn load(path: &Path) -> CommandSpec {
    CommandSpec::new(PFCTL).args(["-f".to_owned(), path_arg(path)])
}

/// `pfctl -e`: enable pf.
pub fn enable() -> CommandSpec {
    CommandSpec::new(PFCTL).arg("-e")
}

/// One problem pfctl found in a ruleset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleProblem {
    /// The line of the file pfctl names, when it names one.
    pub line: Option<u32>,
    /// pfctl's message, e.g. `syntax error` or `macro 'x' not defined`.
    pub message: String,
    /// The text of that line in the ruleset, when known (filled in by [`Pfctl::apply`], which
    /// has the rendered file).
    pub rule: Option<String>,
}

impl fmt::Display for RuleProblem {
    /// `line 12: syntax error (in `pass ...`)`, or just the message.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        f.write_str(&self.message)?;
        if let Some(rule) = &self.rule {
            write!(f, " (in `{rule}`)")?;
        }
        Ok(())
    }
}

/// Whether pf was enabled by this call or already on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PfEnabled {
    /// `pfctl -e` enabled it.
    Now,
    /// It was enabled already (`pf already enabled`), which is not an error.
    Already,
}

/// A pfctl operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PfctlError {
    /// pfctl refused the ruleset (a parse error, an undefined macro, ...). A refused ruleset
    /// is never loaded: the previous one stays in force.
    #[error("pf refused the ruleset: {}", join(problems))]
    Rejected {
        /// What pfctl reported, in its order.
        problems: Vec<RuleProblem>,
    },
    /// pf itself is not there: `/dev/pf` cannot be opened (the `pf` module is not loaded).
    #[error("pf is not available (is the pf kernel module loaded?): {stderr}")]
    Unavailable {
        /// pfctl's trimmed stderr.
        stderr: String,
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
    /// The ruleset file could not be written, renamed or removed.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// What was being done (`write`, `rename into place`, ...).
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The underlying OS error.
        #[source]
        source: io::Error,
    },
    /// The template cannot take the rules.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// pfctl could not be run at all.
    #[error(transparent)]
    Run(#[from] RunError),
}

fn join(problems: &[RuleProblem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

fn describe_exit(code: Option<i32>) -> String {
    match code {
        Some(code) => format!("exit code {code}"),
        None => "killed by a signal".to_owned(),
    }
}

/// `<file>:<line>: <message>` as pfctl's parser prints it, split at the first `:<digits>: `
/// (the file name may itself contain colons, the message often does).
fn parse_problem(line: &str) -> Option<RuleProblem> {
    for (at, _) in line.match_indices(':').filter(|(at, _)| *at > 0) {
        let rest = &line[at + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            continue;
        }
        let Some(message) = rest[digits..].strip_prefix(": ") else {
            continue;
        };
        let Ok(number) = rest[..digits].parse::<u32>() else {
            continue;
        };
        return Some(RuleProblem {
            line: Some(number),
            message: message.trim().to_owned(),
            rule: None,
        });
    }
    None
}

/// pfctl's summary line after parse errors when loading.
const NOT_LOADED: &str = "Syntax error in config file: pf rules not loaded";

/// Whether `pfctl -e`'s stderr says pf was already enabled.
pub fn is_already_enabled(stderr: &str) -> bool {
    stderr
        .lines()
        .any(|l| l.trim_end().ends_with("pf already enabled"))
}

/// Turns a failed pfctl's stderr into a [`PfctlError`].
///
/// `argv` and `code` are only kept for [`PfctlError::Other`].
pub fn classify(argv: &[String], code: Option<i32>, stderr: &str) -> PfctlError {
    let problems: Vec<RuleProblem> = stderr.lines().filter_map(parse_problem).collect();
    if !problems.is_empty() {
        return PfctlError::Rejected { problems };
    }
    let trimmed = stderr.trim();
    if trimmed.lines().any(|l| l.contains(NOT_LOADED)) {
        return PfctlError::Rejected {
            problems: vec![RuleProblem {
                line: None,
                message: NOT_LOADED.to_owned(),
                rule: None,
            }],
        };
    }
    if trimmed.lines().any(|l| l.starts_with("pfctl: /dev/pf:")) {
        return PfctlError::Unavailable {
            stderr: trimmed.to_owned(),
        };
    }
    PfctlError::Other {
        argv: argv.to_vec(),
        stderr: trimmed.to_owned(),
        code,
    }
}

/// Runs pfctl(8) through a [`Runner`]. Methods block; async callers use `spawn_blocking`.
#[derive(Debug)]
pub struct Pfctl {
    runner: Arc<dyn Runner>,
    // Applies share one temporary file next to the ruleset, so they take turns.
    apply_lock: Mutex<()>,
}

impl Pfctl {
    /// A client running its commands through `runner`.
    pub fn new(runner: Arc<dyn Runner>) -> Self {
        Pfctl {
            runner,
            apply_lock: Mutex::new(()),
        }
    }

    fn run(&self, spec: &CommandSpec) -> Result<(), PfctlError> {
        let output = self.runner.run(spec)?;
        if output.succeeded() {
            Ok(())
        } else {
            Err(classify(&spec.argv(), output.code, &output.stderr_text()))
        }
    }

    /// Renders `rules` into `template` and makes it pf's ruleset, all or nothing:
    /// 1. the filled template is written to a temporary file next to `path` (same directory,
    ///    so the rename below is atomic);
    /// 2. `pfctl -n -f` checks it; if pfctl refuses it, the temporary file is removed and the
    ///    error returned with the text of each offending line: `path` is not touched and
    ///    nothing is loaded, so the previous ruleset stays in force;
    /// 3. it is renamed over `path` and loaded with `pfctl -f`; if the load still fails (the
    ///    kernel rolls its transaction back, keeping the previous ruleset), the previous
    ///    content of `path` is put back so the file keeps matching what pf enforces.
    pub fn apply(&self, template: &str, rules: &PfRules, path: &Path) -> Result<(), PfctlError> {
        let text = fill_template(template, rules)?;
        let _turn = self
            .apply_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let temporary = temporary_path(path)?;
        let previous = read_previous(path)?;
        let mode = previous.as_ref().map_or(0o644, |(_, mode)| *mode);

        write_file(&temporary, text.as_bytes(), mode)?;
        if let Err(err) = self.run(&check(&temporary)) {
            remove_quietly(&temporary);
            return Err(with_rules(err, &text));
        }
        if let Err(source) = fs::rename(&temporary, path) {
            remove_quietly(&temporary);
            return Err(PfctlError::Io {
                action: "rename the checked ruleset into place at",
                path: path.to_owned(),
                source,
            });
        }
        debug!(path = %path.display(), "pf ruleset checked and written; loading it");
        if let Err(err) = self.run(&load(path)) {
            restore(path, &temporary, previous);
            return Err(with_rules(err, &text));
        }
        Ok(())
    }

    /// `pfctl -e`; pf being enabled already is success ([`PfEnabled::Already`]).
    pub fn enable(&self) -> Result<PfEnabled, PfctlError> {
        let spec = enable();
        let output = self.runner.run(&spec)?;
        let stderr = output.stderr_text();
        if output.succeeded() {
            Ok(PfEnabled::Now)
        } else if is_already_enabled(&stderr) {
            Ok(PfEnabled::Already)
        } else {
            Err(classify(&spec.argv(), output.code, &stderr))
        }
    }
}

/// Puts the previous ruleset file back after a failed load (or removes the new one if there was
/// none). The load's error is what the caller gets; a failure here is logged.
fn restore(path: &Path, temporary: &Path, previous: Option<(Vec<u8>, u32)>) {
    let restored = match previous {
        Some((content, mode)) => write_file(temporary, &content, mode).and_then(|()| {
            fs::rename(temporary, path).map_err(|source| PfctlError::Io {
                action: "rename the previous ruleset back to",
                path: path.to_owned(),
                source,
            })
        }),
        None => fs::remove_file(path).map_err(|source| PfctlError::Io {
            action: "remove",
            path: path.to_owned(),
            source,
        }),
    };
    if let Err(err) = restored {
        remove_quietly(temporary);
        warn!(path = %path.display(), error = %err,
                "pf refused to load the ruleset and the previous file could not be restored");
    }
}

/// Adds the text of each named line of `text` to a refusal.
fn with_rules(err: PfctlError, text: &str) -> PfctlError {
    match err {
        PfctlError::Rejected { mut problems } => {
            let lines: Vec<&str> = text.lines().collect();
            for problem in &mut problems {
                problem.rule = problem
                    .line
                    .and_then(|n| lines.get((n as usize).checked_sub(1)?))
                    .map(|l| l.trim().to_owned())
                    .filter(|l| !l.is_empty());
            }
            PfctlError::Rejected { problems }
        }
        other => other,
    }
}

/// `<dir>/.<name>.kleened-new`: in the same directory as the ruleset, so renaming it over the
/// ruleset is atomic.
fn temporary_path(path: &Path) -> Result<PathBuf, PfctlError> {
    let Some(name) = path.file_name() else {
        return Err(PfctlError::Io {
            action: "write a ruleset to",
            path: path.to_owned(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "not a file path"),
        });
    };
    let mut temporary = std::ffi::OsString::from(".");
    temporary.push(name);
    temporary.push(".kleened-new");
    Ok(path.with_file_name(temporary))
}

/// The current ruleset file's content and permission bits, if there is one.
fn read_previous(path: &Path) -> Result<Option<(Vec<u8>, u32)>, PfctlError> {
    let io_error = |source| PfctlError::Io {
        action: "read",
        path: path.to_owned(),
        source,
    };
    match fs::read(path) {
        Ok(content) => {
            let mode = fs::metadata(path).map_err(io_error)?.permissions().mode() & 0o7777;
            Ok(Some((content, mode)))
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(io_error(err)),
    }
}

/// Writes `content` to a fresh `path` with permission bits `mode`, synced to disk.
fn write_file(path: &Path, content: &[u8], mode: u32) -> Result<(), PfctlError> {
    // A file left by an interrupted apply is ours and stale.
    remove_quietly(path);
    let written = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .and_then(|mut file| {
            file.write_all(content)?;
            file.set_permissions(fs::Permissions::from_mode(mode))?;
            file.sync_all()
        });
    written.map_err(|source| {
        remove_quietly(path);
        PfctlError::Io {
            action: "write",
            path: path.to_owned(),
            source,
        }
    })
}

fn remove_quietly(path: &Path) {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => debug!(path = %path.display(), error = %err, "could not remove"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use kleene_runner::{RecordingRunner, Reply};

    const TEMPLATE: &str =
        "# mine\n<%= kleene_macros %>\n<%= kleene_translation %>\n<%= kleene_filtering %>\n";

    fn rules() -> PfRules {
        PfRules {
            macros: vec!["kleenet_network_interfaces=\"{lo0}\"".into()],
            translation: vec![],
            filtering: vec!["pass quick on lo0 from any to any".into()],
        }
    }

    const NEW: &str =
        "# mine\nkleenet_network_interfaces=\"{lo0}\"\n\npass quick on lo0 from any to any\n";
    const OLD: &str = "# the ruleset in force\npass all\n";

    fn setup() -> (tempfile::TempDir, PathBuf, Arc<RecordingRunner>, Pfctl) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pf.conf");
        fs::write(&path, OLD).unwrap();
        let runner = Arc::new(RecordingRunner::new());
        let pfctl = Pfctl::new(runner.clone());
        (dir, path, runner, pfctl)
    }

    fn temporary(path: &Path) -> PathBuf {
        path.with_file_name(".pf.conf.kleened-new")
    }

    #[test]
    fn command_lines() {
        let path = Path::new("/etc/pf.conf");
        assert_eq!(check(path).to_string(), "/sbin/pfctl -n -f /etc/pf.conf");
        assert_eq!(load(path).to_string(), "/sbin/pfctl -f /etc/pf.conf");
        assert_eq!(enable().to_string(), "/sbin/pfctl -e");
    }

    #[test]
    fn a_checked_ruleset_is_written_then_loaded() {
        let (_dir, path, runner, pfctl) = setup();
        pfctl.apply(TEMPLATE, &rules(), &path).unwrap();
        assert_eq!(
            runner.lines(),
            [
                format!("/sbin/pfctl -n -f {}", temporary(&path).display()),
                format!("/sbin/pfctl -f {}", path.display()),
            ]
        );
        assert_eq!(fs::read_to_string(&path).unwrap(), NEW);
        assert!(!temporary(&path).exists());
    }

    #[test]
    fn a_refused_ruleset_leaves_the_old_file_and_is_never_loaded() {
        let (_dir, path, runner, pfctl) = setup();
        let named = temporary(&path);
        runner.push_err(
            1,
            &format!(
                "{0}:4: syntax error\n{0}:2: macro 'nope' not defined\n",
                named.display()
            ),
        );
        let err = pfctl.apply(TEMPLATE, &rules(), &path).unwrap_err();
        match &err {
            PfctlError::Rejected { problems } => assert_eq!(
                problems,
                &[
                    RuleProblem {
                        line: Some(4),
                        message: "syntax error".into(),
                        rule: Some("pass quick on lo0 from any to any".into()),
                    },
                    RuleProblem {
                        line: Some(2),
                        message: "macro 'nope' not defined".into(),
                        rule: Some("kleenet_network_interfaces=\"{lo0}\"".into()),
                    },
                ]
            ),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            err.to_string(),
            "pf refused the ruleset: line 4: syntax error (in `pass quick on lo0 from any to \
             any`); line 2: macro 'nope' not defined (in `kleenet_network_interfaces=\"{lo0}\"`)"
        );
        assert_eq!(runner.lines().len(), 1, "{:?}", runner.lines());
        assert!(runner.lines()[0].starts_with("/sbin/pfctl -n -f "));
        assert_eq!(fs::read_to_string(&path).unwrap(), OLD);
        assert!(!named.exists());
    }

    #[test]
    fn a_failed_load_puts_the_previous_file_back() {
        let (_dir, path, runner, pfctl) = setup();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        runner.push_ok("");
        runner.push_err(1, "pfctl: DIOCADDRULE: Device busy\n");
        let err = pfctl.apply(TEMPLATE, &rules(), &path).unwrap_err();
        assert!(
            matches!(&err, PfctlError::Other { stderr, code: Some(1), .. }
                if stderr == "pfctl: DIOCADDRULE: Device busy"),
            "{err:?}"
        );
        assert_eq!(fs::read_to_string(&path).unwrap(), OLD);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(!temporary(&path).exists());
    }

    #[test]
    fn a_failed_first_load_removes_the_new_file() {
        let (_dir, path, runner, pfctl) = setup();
        fs::remove_file(&path).unwrap();
        runner.push_ok("");
        runner.push_err(1, "pfctl: /dev/pf: No such file or directory\n");
        let err = pfctl.apply(TEMPLATE, &rules(), &path).unwrap_err();
        assert!(matches!(err, PfctlError::Unavailable { .. }), "{err:?}");
        assert!(!path.exists());
    }

    #[test]
    fn the_new_file_keeps_the_old_permissions_or_gets_0644() {
        let (_dir, path, _runner, pfctl) = setup();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        pfctl.apply(TEMPLATE, &rules(), &path).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o640
        );
        fs::remove_file(&path).unwrap();
        pfctl.apply(TEMPLATE, &rules(), &path).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o644
        );
    }

    #[test]
    fn a_template_without_placeholders_runs_nothing() {
        let (_dir, path, runner, pfctl) = setup();
        let err = pfctl.apply("pass all\n", &rules(), &path).unwrap_err();
        assert!(matches!(err, PfctlError::Template(_)));
        assert!(runner.lines().is_empty());
        assert_eq!(fs::read_to_string(&path).unwrap(), OLD);
    }

    #[test]
    fn pfctl_that_cannot_start_leaves_the_old_file() {
        let (_dir, path, runner, pfctl) = setup();
        runner.push(Reply::SpawnError("no such file".into()));
        let err = pfctl.apply(TEMPLATE, &rules(), &path).unwrap_err();
        assert!(matches!(err, PfctlError::Run(_)));
        assert_eq!(fs::read_to_string(&path).unwrap(), OLD);
        assert!(!temporary(&path).exists());
    }

    #[test]
    fn a_stale_temporary_file_is_replaced() {
        let (_dir, path, _runner, pfctl) = setup();
        fs::write(temporary(&path), "stale").unwrap();
        pfctl.apply(TEMPLATE, &rules(), &path).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), NEW);
    }

    #[test]
    fn already_enabled_is_success() {
        let runner = Arc::new(RecordingRunner::new());
        let pfctl = Pfctl::new(runner.clone());
        runner.push_err(1, "pfctl: pf already enabled\n");
        assert_eq!(pfctl.enable().unwrap(), PfEnabled::Already);
        runner.push(Reply::Output(kleene_runner::Output {
            code: Some(0),
            stdout: vec![],
            stderr: b"pf enabled\n".to_vec(),
        }));
        assert_eq!(pfctl.enable().unwrap(), PfEnabled::Now);
        runner.push_err(1, "pfctl: /dev/pf: No such file or directory\n");
        assert!(matches!(
            pfctl.enable().unwrap_err(),
            PfctlError::Unavailable { .. }
        ));
        assert_eq!(runner.lines(), ["/sbin/pfctl -e"; 3]);
    }

    fn argv() -> Vec<String> {
        ["/sbin/pfctl", "-f", "/etc/pf.conf"]
            .map(String::from)
            .to_vec()
    }

    #[test]
    fn load_errors_name_the_line_and_drop_the_summary() {
        let err = classify(
            &argv(),
            Some(1),
            "/etc/pf.conf:12: syntax error\n\
             pfctl: Syntax error in config file: pf rules not loaded\n",
        );
        match err {
            PfctlError::Rejected { problems } => assert_eq!(
                problems,
                [RuleProblem {
                    line: Some(12),
                    message: "syntax error".into(),
                    rule: None
                }]
            ),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_file_name_with_colons_and_a_message_with_colons() {
        let problem =
            parse_problem("/tmp/a:b/pf.conf:7: cannot load \"/x\": Invalid argument").unwrap();
        assert_eq!(problem.line, Some(7));
        assert_eq!(problem.message, "cannot load \"/x\": Invalid argument");
        assert_eq!(parse_problem("pfctl: pf already enabled"), None);
        assert_eq!(parse_problem(":3: x"), None);
    }

    #[test]
    fn the_summary_alone_is_still_a_refusal() {
        let err = classify(
            &argv(),
            Some(1),
            "pfctl: Syntax error in config file: pf rules not loaded\n",
        );
        assert!(matches!(err, PfctlError::Rejected { ref problems } if problems[0].line.is_none()));
    }

    #[test]
    fn anything_else_keeps_argv_stderr_and_code() {
        let err = classify(&argv(), Some(1), " pfctl: DIOCXCOMMIT: Device busy \n");
        assert_eq!(
            err.to_string(),
            "`/sbin/pfctl -f /etc/pf.conf` failed (exit code 1): pfctl: DIOCXCOMMIT: Device busy"
        );
        assert!(is_already_enabled("pfctl: pf already enabled"));
        assert!(!is_already_enabled("pfctl: pf not enabled"));
    }
}
