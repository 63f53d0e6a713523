//! A running `kleened` of the test's own: its directory (configuration, socket, pidfile, log,
//! container logs), its root dataset, optionally its own network namespace; started, killed,
//! restarted and stopped as a test needs, and cleaned up when dropped even after a failure.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::bin;
use crate::host::{cgroup_mount, cgroup_v1_pids_mount, remove_cgroup_tree};
use crate::pool::{zfs, TestRoot};
use crate::wait::eventually;

/// A running `kleened` with its own directory for config, socket, pidfile, and its own root dataset
/// (which holds the database).
#[derive(Debug)]
pub struct Daemon {
    dir: TempDir,
    child: Option<Child>,
    /// `http:///...sock` address of its unix socket.
    pub host: String,
    /// Its `kleene_root`.
    pub root: TestRoot,
    /// Where its container cgroups are: the `cgroup_hierarchy` it was configured with.
    hierarchy: CgroupHierarchy,
    /// The network namespace it runs in (`/run/netns/<name>`), if not the host's.
    netns: Option<String>,
}

/// A cgroup hierarchy a daemon tracks containers in (configuration key `cgroup_hierarchy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CgroupHierarchy {
    /// cgroup v2 where mounted, else v1 `pids` (the daemon's default).
    #[default]
    Auto,
    /// The v1 `pids` hierarchy.
    V1,
}

/// Extra listener entries and settings for a daemon's configuration.
#[derive(Debug, Default, Clone)]
pub struct DaemonOptions {
    /// YAML list items appended to `api_listening_sockets` (each starting with `  - address:`).
    pub extra_listeners: String,
    /// The cgroup hierarchy to track containers in.
    pub cgroup_hierarchy: CgroupHierarchy,
    /// Run the daemon in this network namespace (`/run/netns/<name>`, see
    /// [`crate::netns::NetHost`]).
    pub netns: Option<String>,
}

impl Daemon {
    /// Starts a daemon listening on a unix socket in a new temporary directory.
    pub fn start() -> Daemon {
        Daemon::start_with(DaemonOptions::default())
    }

    /// Starts a daemon with extra listeners; waits until every listener accepts connections.
    pub fn start_with(options: DaemonOptions) -> Daemon {
        let dir = tempfile::Builder::new()
            .prefix("kleene-e2e-")
            .tempdir()
            .expect("temporary directory");
        let socket = dir.path().join("kleened.sock");
        let root = TestRoot::create();
        let config = config(dir.path(), &root, &options);
        std::fs::write(dir.path().join("config.yaml"), config).expect("write config");
        let mut daemon = Daemon {
            host: format!("http://{}", socket.display()),
            dir,
            child: None,
            root,
            hierarchy: options.cgroup_hierarchy,
            netns: options.netns,
        };
        daemon.spawn();
        daemon
    }

    fn spawn(&mut self) {
        let log_offset = self.log().len();
        let mut command = match &self.netns {
            None => Command::new(bin("kleened")),
            Some(ns) => {
                // nsenter enters only the network namespace and then becomes kleened.
                let mut command = Command::new("nsenter");
                command
                    .arg(format!("--net=/run/netns/{ns}"))
                    .arg(bin("kleened"));
                command
            }
        };
        let child = command
            .arg("--config")
            .arg(self.config_path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start kleened");
        self.child = Some(child);
        self.wait_ready(log_offset);
    }

    /// Its configuration file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.yaml")
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The daemon's PID.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).expect("the daemon runs")
    }

    /// The directory of the daemon's container cgroups (named after its root dataset).
    pub fn cgroup_parent(&self) -> Option<PathBuf> {
        let name = self.root.name.rsplit('/').next()?.to_owned();
        let mount = match self.hierarchy {
            CgroupHierarchy::Auto => cgroup_mount(),
            CgroupHierarchy::V1 => cgroup_v1_pids_mount(),
        };
        mount.map(|mount| mount.join(name))
    }

    /// Its metadata database (in the root dataset's mountpoint).
    pub fn metadata_path(&self) -> PathBuf {
        let root = zfs::DatasetName::new(self.root.name.clone()).expect("valid root");
        zfs()
            .mountpoint(&root)
            .expect("zfs answers")
            .expect("the root is mounted")
            .join("metadata.sqlite")
    }

    /// Its unix socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("kleened.sock")
    }

    /// Waits for "kleened is ready" in the log written after `log_offset`.
    fn wait_ready(&mut self, log_offset: usize) {
        let ready = eventually(Duration::from_secs(20), || {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "kleened exited during start-up with {status}; its log:\n{}",
                    self.log()
                );
            }
            // The pidfile is written first and the log says "ready" once every listener is bound.
            self.log()
                .get(log_offset..)
                .is_some_and(|new| new.contains("kleened is ready"))
        });
        assert!(
            ready,
            "kleened did not get ready in 20 s; its log:\n{}",
            self.log()
        );
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("kleened.log")).unwrap_or_default()
    }

    /// Kills the daemon with SIGKILL, as a crash would: nothing is cleaned up.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the daemon again on the same directory and root (after [`Daemon::kill`]).
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "the daemon still runs");
        self.spawn();
    }

    /// Stops the daemon with SIGTERM and restarts it on the same directory.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Sends SIGTERM and waits for a clean exit: status 0, socket file and pidfile removed.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        let exit = eventually(Duration::from_secs(20), || {
            child.try_wait().expect("wait for kleened")
        });
        let Some(exit) = exit else {
            let _ = child.kill();
            panic!(
                "kleened did not stop within 20 s of SIGTERM; its log:\n{}",
                self.log()
            );
        };
        assert!(
            exit.success(),
            "kleened exited with {exit} after SIGTERM; its log:\n{}",
            self.log()
        );
        assert!(
            !self.socket().exists(),
            "socket file left behind after shutdown"
        );
        assert!(
            !self.dir.path().join("kleened.pid").exists(),
            "pidfile left behind after shutdown"
        );
    }
}

impl Drop for Daemon {
    /// Even when a test fails: a graceful stop (the daemon stops its containers), SIGKILL if that
    /// takes too long, then whatever container processes and cgroups are left are removed, so the
    /// root dataset can be destroyed.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _exited = eventually(Duration::from_secs(20), || child.try_wait().ok().flatten());
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(parent) = self.cgroup_parent() {
            remove_cgroup_tree(&parent);
        }
        #[cfg(target_os = "freebsd")]
        remove_jails_and_mounts(&crate::pool::root_mountpoint(&self.root.name));
    }
}

/// Jails of a daemon's containers below `mountpoint`, then their devfs and nullfs mounts, so the
/// root dataset can be destroyed.
#[cfg(target_os = "freebsd")]
fn remove_jails_and_mounts(mountpoint: &str) {
    use crate::host::freebsd;
    for jail in freebsd::jails_under(mountpoint).unwrap_or_default() {
        if let Some(name) = jail.split_whitespace().next() {
            let _ = Command::new("/usr/sbin/jail").args(["-r", name]).status();
        }
    }
    let mut mounts = freebsd::mounts_under(mountpoint).unwrap_or_default();
    // Deepest first: a mount inside another must go before it.
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for mount in mounts {
        if let Some((_, point)) = mount.split_once(' ') {
            let _ = Command::new("/sbin/umount").args(["-f", point]).status();
        }
    }
}

/// The configuration of a daemon in `dir` with the root dataset `root`.
fn config(dir: &Path, root: &TestRoot, options: &DaemonOptions) -> String {
    let cgroup_parent = root
        .name
        .rsplit('/')
        .next()
        .unwrap_or("kleene-e2e")
        .to_owned();
    format!(
        "kleene_root: {}\n\
         cgroup_parent: {cgroup_parent}\n\
         api_listening_sockets:\n  - address: http://{}\n{}\
         enable_logging: true\n\
         log_file: {}\n\
         log_level: debug\n\
         pidfile: {}\n\
         container_log_dir: {}\n{}",
        root.name,
        dir.join("kleened.sock").display(),
        options.extra_listeners,
        dir.join("kleened.log").display(),
        dir.join("kleened.pid").display(),
        dir.join("container-logs").display(),
        platform_config(&dir.display().to_string()),
    ) + match options.cgroup_hierarchy {
        CgroupHierarchy::Auto => "",
        CgroupHierarchy::V1 => "cgroup_hierarchy: v1\n",
    }
}

/// Configuration keys a daemon needs on this OS besides those the tests set: on FreeBSD the pf
/// paths (required there), pointed into the daemon's directory `dir`; nothing on Linux.
pub fn platform_config(dir: &str) -> String {
    if cfg!(target_os = "freebsd") {
        format!("pf_config_path: {dir}/pf.conf\npf_config_template_path: {dir}/pf.conf.kleene\n")
    } else {
        String::new()
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago (for a daemon's listener, or one nobody
/// listens on).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}
