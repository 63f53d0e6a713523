//! The host beyond ZFS: the commands the daemon runs on FreeBSD and on Linux to unpack archives, read
//! the host's release and update a FreeBSD userland.
//!
//! Every command line is built by a pure function here (pinned by golden tests below) and executed
//! through the [`Runner`] seam. (The runtimes start their long-lived processes themselves: the
//! Linux helper and jexec(8) keep pipes or a terminal open while the container runs.)

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kleene_runner::{CommandSpec, Output, Runner, LONG_TIMEOUT};

use crate::config::TargetOs;

/// A host command that failed.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("could not run {program}: {reason}")]
    Run { program: String, reason: String },
    #[error("'{command}' failed with exit code {code}: {stderr}")]
    Failed {
        command: String,
        code: String,
        stderr: String,
    },
    #[error("{0}")]
    Unexpected(String),
}

/// The release and machine type of a FreeBSD host, from uname(1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// Operating system name, e.g. `FreeBSD`.
    pub system: String,
    /// Release, e.g. `14.1-RELEASE-p3`.
    pub version: String,
    /// Machine hardware name, e.g. `amd64`.
    pub machine: String,
}

/// Runs the host commands of one platform.
#[derive(Debug, Clone)]
pub struct Host {
    runner: Arc<dyn Runner>,
    os: TargetOs,
}

impl Host {
    /// Host commands for `os`, run through `runner`.
    pub fn new(runner: Arc<dyn Runner>, os: TargetOs) -> Host {
        Host { runner, os }
    }

    /// The runner host commands go through.
    pub fn runner(&self) -> Arc<dyn Runner> {
        Arc::clone(&self.runner)
    }

    /// The platform the commands are for.
    pub fn os(&self) -> TargetOs {
        self.os
    }

    fn run(&self, spec: &CommandSpec) -> Result<Output, HostError> {
        let output = self.runner.run(spec).map_err(|e| HostError::Run {
            program: spec.program.clone(),
            reason: e.to_string(),
        })?;
        if output.succeeded() {
            Ok(output)
        } else {
            Err(HostError::Failed {
                command: spec.to_string(),
                code: output
                    .code
                    .map_or_else(|| "none (killed by a signal)".to_owned(), |c| c.to_string()),
                stderr: last_lines(&output.stderr_text(), 5),
            })
        }
    }

    /// Unpacks the tar archive `archive` (plain or compressed) into the directory `dest`, keeping
    /// permissions and numeric owners. Returns the number of entries unpacked.
    pub fn extract_archive(&self, archive: &Path, dest: &Path) -> Result<usize, HostError> {
        let output = self.run(&tar_extract(self.os, archive, dest))?;
        // GNU tar lists entries on stdout, bsdtar on stderr ("x path").
        let listed = if output.stdout.is_empty() {
            output.stderr_text()
        } else {
            output.stdout_text()
        };
        Ok(listed
            .lines()
            .filter(|line| !line.trim().is_empty())
            .count())
    }

    /// Copies everything the directory `source` holds (dot files too) into the directory `dest`,
    /// keeping modes, owners, times, and links as links.
    pub fn copy_contents(&self, source: &Path, dest: &Path) -> Result<(), HostError> {
        self.run(&copy_contents(self.os, source, dest)).map(drop)
    }

    /// The host's release, from `uname -s -r -m`.
    pub fn release(&self) -> Result<Release, HostError> {
        let output = self.run(&uname(self.os))?;
        parse_uname(&output.stdout_text())
    }

    /// Updates the FreeBSD userland under `basedir` with freebsd-update(8), for the release that
    /// userland is (not the host's), fetching and installing in one run: a separate `install`
    /// fails when there is nothing to install.
    pub fn freebsd_update(&self, basedir: &Path) -> Result<String, HostError> {
        let version = self.run(&userland_version(basedir))?.stdout_text();
        let release = version.trim();
        if release.is_empty() || release.contains(char::is_whitespace) {
            return Err(HostError::Unexpected(format!(
                "unexpected userland version '{release}' from {}",
                basedir.join("bin/freebsd-version").display()
            )));
        }
        Ok(self.run(&freebsd_update(basedir, release))?.stdout_text())
    }
}

fn last_lines(text: &str, count: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(count)..].join("\n")
}

fn tar_program(os: TargetOs) -> &'static str {
    match os {
        TargetOs::FreeBsd => "/usr/bin/tar",
        TargetOs::Linux => "tar",
    }
}

/// `tar -x -p -v --numeric-owner -f ARCHIVE -C DEST`: tar(1) on FreeBSD (bsdtar) and GNU tar both
/// detect the compression themselves when reading a file. Unpacking a base system takes as long as
/// its size and the disk make it, so it has the runner's long deadline.
pub fn tar_extract(os: TargetOs, archive: &Path, dest: &Path) -> CommandSpec {
    CommandSpec::new(tar_program(os))
        .args([
            "-x".to_owned(),
            "-p".to_owned(),
            "-v".to_owned(),
            "--numeric-owner".to_owned(),
            "-f".to_owned(),
            path_arg(archive),
            "-C".to_owned(),
            path_arg(dest),
        ])
        .timeout(LONG_TIMEOUT)
}

/// cp(1) `-a` (archive: recursive, links copied as links, modes, owners, times and flags kept) of
/// what `source` holds into `dest`: FreeBSD's cp copies a directory's contents when its name ends
/// in `/`, GNU cp when it ends in `/.`. Copying a volume's first contents from an image can be
/// long, so it has the runner's long deadline.
pub fn copy_contents(os: TargetOs, source: &Path, dest: &Path) -> CommandSpec {
    let (program, contents) = match os {
        TargetOs::FreeBsd => ("/bin/cp", format!("{}/", path_arg(source))),
        TargetOs::Linux => ("cp", format!("{}/.", path_arg(source))),
    };
    CommandSpec::new(program)
        .args(["-a".to_owned(), contents, path_arg(dest)])
        .timeout(LONG_TIMEOUT)
}

/// `uname -s -r -m`.
pub fn uname(os: TargetOs) -> CommandSpec {
    let program = match os {
        TargetOs::FreeBsd => "/usr/bin/uname",
        TargetOs::Linux => "uname",
    };
    CommandSpec::new(program).args(["-s", "-r", "-m"].map(str::to_owned))
}

/// `/bin/sh BASEDIR/bin/freebsd-version -u`: the release of the userland under `basedir`
/// (freebsd-version(1) is a script carrying its userland's version).
pub fn userland_version(basedir: &Path) -> CommandSpec {
    CommandSpec::new("/bin/sh").args([
        path_arg(&in_root(basedir, "/bin/freebsd-version")),
        "-u".to_owned(),
    ])
}

/// `/usr/sbin/freebsd-update -b BASEDIR --currently-running RELEASE --not-running-from-cron fetch
/// install`. `PAGER=cat` keeps it from waiting for a pager, as nobody reads one. It downloads and
/// applies patches, so it has the runner's long deadline.
pub fn freebsd_update(basedir: &Path, release: &str) -> CommandSpec {
    CommandSpec::new("/usr/sbin/freebsd-update")
        .args([
            "-b".to_owned(),
            path_arg(basedir),
            "--currently-running".to_owned(),
            release.to_owned(),
            "--not-running-from-cron".to_owned(),
            "fetch".to_owned(),
            "install".to_owned(),
        ])
        .env("PAGER", "cat")
        .timeout(LONG_TIMEOUT)
}

fn path_arg(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

fn parse_uname(text: &str) -> Result<Release, HostError> {
    let fields: Vec<&str> = text.split_whitespace().collect();
    match fields.as_slice() {
        [system, version, machine] => Ok(Release {
            system: (*system).to_owned(),
            version: (*version).to_owned(),
            machine: (*machine).to_owned(),
        }),
        _ => Err(HostError::Unexpected(format!(
            "unexpected uname output: '{}'",
            text.trim()
        ))),
    }
}

/// The URL of the FreeBSD base system for a release, as published on the FreeBSD download mirrors:
/// releases (and their patch levels) under `releases/`, `-STABLE` under `snapshots/`. Other
/// versions (CURRENT, BETA, RC...) have no fixed location.
pub fn freebsd_base_url(release: &Release) -> Result<String, String> {
    const MIRROR: &str = "https://download.freebsd.org";
    let version = release.version.as_str();
    let base = match version.find("-RELEASE") {
        Some(end) => Some(("releases", &version[..end + "-RELEASE".len()])),
        None if version.ends_with("-STABLE") => Some(("snapshots", version)),
        None => None,
    };
    match base {
        Some((tree, name)) => Ok(format!(
            "{MIRROR}/{tree}/{}/{name}/base.txz",
            release.machine
        )),
        None => Err(format!(
            "could not deduce url from FreeBSD version {version}"
        )),
    }
}

/// Where a FreeBSD host keeps a file, given the image's root directory.
pub fn in_root(root: &Path, absolute: &str) -> PathBuf {
    root.join(absolute.trim_start_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kleene_runner::RecordingRunner;

    fn line(spec: &CommandSpec) -> String {
        spec.to_string()
    }

    // cp(1) on FreeBSD: -a is -RpP; "If the source_file ends in a /, the contents of the
    // directory are copied rather than the directory itself." GNU cp: -a, and `dir/.` for contents.
    #[test]
    fn golden_copy_contents() {
        let from = Path::new("/zroot/kleene/container/abc/etc");
        let to = Path::new("/zroot/kleene/volumes/conf");
        assert_eq!(
            line(&copy_contents(TargetOs::FreeBsd, from, to)),
            "/bin/cp -a /zroot/kleene/container/abc/etc/ /zroot/kleene/volumes/conf"
        );
        assert_eq!(
            line(&copy_contents(TargetOs::Linux, from, to)),
            "cp -a /zroot/kleene/container/abc/etc/. /zroot/kleene/volumes/conf"
        );
    }

    // tar(1) (FreeBSD bsdtar): -x extract, -p preserve permissions, -v list entries,
    // --numeric-owner, -f file, -C directory. GNU tar(1) accepts the same options.
    #[test]
    fn golden_tar_extract() {
        let spec = tar_extract(
            TargetOs::FreeBsd,
            Path::new("/zroot/kleene/.fetch-abc"),
            Path::new("/zroot/kleene/image/abc"),
        );
        assert_eq!(
            line(&spec),
            "/usr/bin/tar -x -p -v --numeric-owner -f /zroot/kleene/.fetch-abc -C /zroot/kleene/image/abc"
        );
        let spec = tar_extract(TargetOs::Linux, Path::new("/a.tar"), Path::new("/b"));
        assert_eq!(line(&spec), "tar -x -p -v --numeric-owner -f /a.tar -C /b");
    }

    #[test]
    fn commands_that_move_whole_images_have_the_long_deadline() {
        let tar = tar_extract(TargetOs::Linux, Path::new("/a.tar"), Path::new("/b"));
        assert_eq!(tar.timeout, LONG_TIMEOUT);
        let update = freebsd_update(Path::new("/zroot/kleene/image/x"), "14.1-RELEASE");
        assert_eq!(update.timeout, LONG_TIMEOUT);
        for quick in [
            uname(TargetOs::FreeBsd),
            userland_version(Path::new("/zroot/kleene/image/x")),
        ] {
            assert_eq!(quick.timeout, kleene_runner::DEFAULT_TIMEOUT, "{quick}");
        }
    }

    #[test]
    fn a_killed_extraction_says_which_command_and_after_how_long() {
        let runner = Arc::new(RecordingRunner::new());
        runner.push(kleene_runner::Reply::TimedOut);
        let host = Host::new(runner.clone(), TargetOs::Linux);
        let err = host
            .extract_archive(Path::new("/a.tar"), Path::new("/b"))
            .unwrap_err();
        assert!(
            err.to_string()
                .ends_with("`tar -x -p -v --numeric-owner -f /a.tar -C /b` did not finish in 3600 s and was killed"),
            "{err}"
        );
    }

    fn release(version: &str, machine: &str) -> Release {
        Release {
            system: "FreeBSD".into(),
            version: version.into(),
            machine: machine.into(),
        }
    }

    #[test]
    fn base_urls_follow_the_mirror_layout() {
        assert_eq!(
            freebsd_base_url(&release("14.1-RELEASE", "amd64")).unwrap(),
            "https://download.freebsd.org/releases/amd64/14.1-RELEASE/base.txz"
        );
        assert_eq!(
            freebsd_base_url(&release("13.3-RELEASE-p7", "amd64")).unwrap(),
            "https://download.freebsd.org/releases/amd64/13.3-RELEASE/base.txz"
        );
        assert_eq!(
            freebsd_base_url(&release("14.2-STABLE", "arm64")).unwrap(),
            "https://download.freebsd.org/snapshots/arm64/14.2-STABLE/base.txz"
        );
        assert_eq!(
            freebsd_base_url(&release("15.0-CURRENT", "amd64")).unwrap_err(),
            "could not deduce url from FreeBSD version 15.0-CURRENT"
        );
    }

    #[test]
    fn uname_output_is_parsed_and_failures_are_reported() {
        let runner = Arc::new(RecordingRunner::new());
        runner.push_ok("FreeBSD 14.1-RELEASE amd64\n");
        runner.push_err(1, "uname: boom\n");
        let host = Host::new(runner.clone(), TargetOs::FreeBsd);
        assert_eq!(host.release().unwrap(), release("14.1-RELEASE", "amd64"));
        let err = host.release().unwrap_err();
        assert!(
            err.to_string().contains("exit code 1: uname: boom"),
            "{err}"
        );
    }

    #[test]
    fn extraction_counts_listed_entries_from_either_tar() {
        let runner = Arc::new(RecordingRunner::new());
        runner.push_ok("./\n./bin/\n./bin/sh\n");
        let host = Host::new(runner.clone(), TargetOs::Linux);
        assert_eq!(
            host.extract_archive(Path::new("/a.tar"), Path::new("/b"))
                .unwrap(),
            3
        );
    }
}
