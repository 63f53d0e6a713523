//! The Linux runtime: containers as namespaced process trees rooted in their ZFS dataset, tracked by a
//! cgroup each. The namespace work happens in a helper process ([`helper`]); this module prepares it
//! (user lookup, environment, terminal or pipes, cgroup) and ends containers through their cgroup.

pub mod cgroup;
pub mod helper;

use std::path::PathBuf;
use std::time::Duration;

use kleene_api::NetworkDriver;
use nix::sys::signal::Signal;

use super::passwd;
use super::runtime::{ProcessIo, ProcessSpec, Runtime, RuntimeError, Spawned};
use cgroup::Cgroups;
use helper::{Mode, Spec, HELPER_ARG, SPEC_ENV};

/// How long to wait for a container's processes to go after SIGKILL.
const KILL_TIMEOUT: Duration = Duration::from_secs(5);

/// Containers as Linux namespaces.
#[derive(Debug)]
pub struct NamespaceRuntime {
    /// The program started as the helper (the daemon's own binary).
    helper: PathBuf,
    cgroups: Cgroups,
}

impl NamespaceRuntime {
    /// A runtime whose containers' cgroups are under `cgroup_parent`, run by `helper`.
    pub fn new(helper: PathBuf, cgroup_parent: &str) -> Result<NamespaceRuntime, RuntimeError> {
        let cgroups = Cgroups::open(cgroup_parent).map_err(RuntimeError::Host)?;
        tracing::info!(version = ?cgroups.version(), parent = %cgroups.path("").display(), "container cgroups");
        Ok(NamespaceRuntime { helper, cgroups })
    }

    fn spawn(&self, spec: &ProcessSpec, mode: Mode) -> Result<Spawned, RuntimeError> {
        if spec.cmd.is_empty() {
            return Err(RuntimeError::Invalid(
                "no command given and the image has none".into(),
            ));
        }
        let passwd = passwd::read_container_file(&spec.rootfs, "etc/passwd");
        let group = passwd::read_container_file(&spec.rootfs, "etc/group");
        let user = passwd::resolve(&spec.user, passwd.as_deref(), group.as_deref())
            .map_err(RuntimeError::Invalid)?;
        let env = process_env(&spec.env, &user, spec.tty);
        let helper_spec = Spec {
            mode,
            cgroup_procs: self.cgroups.procs_file(&spec.container_id),
            argv: spec.cmd.clone(),
            env,
            uid: user.uid,
            gid: user.gid,
            groups: user.groups,
            cwd: user.home,
            tty: spec.tty,
        };
        let text =
            serde_json::to_string(&helper_spec).map_err(|e| RuntimeError::Host(e.to_string()))?;
        let mut command = tokio::process::Command::new(&self.helper);
        command
            .arg(HELPER_ARG)
            .env(SPEC_ENV, text)
            .kill_on_drop(false);
        // The helper gets pipes; for a terminal it opens one inside the container and relays.
        let io = ProcessIo::pipes_for(&mut command)
            .map_err(|e| RuntimeError::Host(format!("pipes: {e}")))?;
        let child = command.spawn().map_err(|e| {
            RuntimeError::Host(format!("cannot start {}: {e}", self.helper.display()))
        })?;
        // `command` still holds the child's ends of the pipes or terminal; drop them so the daemon
        // sees end-of-file when the process is done.
        drop(command);
        Ok(Spawned { child, io })
    }

    /// The host PID of the container's PID 1: the process of its cgroup that is PID 1 in its own
    /// PID namespace.
    fn init_pid(&self, container_id: &str) -> Option<i32> {
        self.cgroups.pids(container_id).into_iter().find(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|status| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix("NSpid:"))
                    .and_then(|ids| ids.split_whitespace().last())
                    == Some("1")
            })
        })
    }
}

/// The environment of a container process: a login-like base for the user, then `env` (already
/// merged image < container < exec) over it.
fn process_env(env: &[String], user: &passwd::User, tty: bool) -> Vec<String> {
    let mut merged: Vec<String> = vec![
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        format!("HOME={}", user.home),
        format!("USER={}", user.name),
        format!("LOGNAME={}", user.name),
        "SHELL=/bin/sh".into(),
    ];
    if tty {
        merged.push("TERM=xterm".into());
    }
    for entry in env {
        let name = entry.split_once('=').map_or(entry.as_str(), |(n, _)| n);
        merged.retain(|e| e.split_once('=').map_or(e.as_str(), |(n, _)| n) != name);
        merged.push(entry.clone());
    }
    merged
}

/// The hostname a container gets: `host.hostname=` from its jail parameters, else its ID. The
/// parameters without a Linux meaning are named in the log.
fn hostname(container_id: &str, jail_params: &[String]) -> String {
    let mut hostname = container_id.to_owned();
    for param in jail_params {
        match param.split_once('=') {
            Some(("host.hostname", value)) => hostname = value.trim_matches('"').to_owned(),
            _ => {
                tracing::info!(container = container_id, parameter = %param, "jail parameter has no meaning on Linux; ignored")
            }
        }
    }
    hostname
}

impl Runtime for NamespaceRuntime {
    fn start(&self, spec: &ProcessSpec) -> Result<Spawned, RuntimeError> {
        let new_network = match spec.network {
            NetworkDriver::Host => false,
            NetworkDriver::Disabled | NetworkDriver::Vnet => true,
            NetworkDriver::Ipnet => {
                return Err(RuntimeError::Invalid(
                    "the 'ipnet' network driver is not available on Linux; use 'vnet', 'host' or 'disabled'".into(),
                ))
            }
        };
        self.cgroups
            .create(&spec.container_id)
            .map_err(RuntimeError::Host)?;
        let mode = Mode::Init {
            rootfs: spec.rootfs.clone(),
            hostname: hostname(&spec.container_id, &spec.jail_params),
            new_network,
        };
        let mut spawned = self.spawn(spec, mode).inspect_err(|_| {
            let _ = self.cgroups.remove(&spec.container_id);
        })?;
        // The helper puts the container's PID 1 into the cgroup right after forking it; wait for
        // that, so the container counts as running once start returns.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while self.cgroups.pids(&spec.container_id).is_empty()
            && matches!(spawned.child.try_wait(), Ok(None))
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(spawned)
    }

    fn exec(&self, spec: &ProcessSpec) -> Result<Spawned, RuntimeError> {
        let init_pid = self
            .init_pid(&spec.container_id)
            .ok_or_else(|| RuntimeError::Invalid("container not running".into()))?;
        self.spawn(spec, Mode::Exec { init_pid })
    }

    fn is_running(&self, container_id: &str) -> Result<bool, RuntimeError> {
        Ok(!self.cgroups.pids(container_id).is_empty())
    }

    fn running(&self) -> Result<Vec<String>, RuntimeError> {
        Ok(self.cgroups.populated())
    }

    fn stop(&self, container_id: &str, grace: Duration) -> Result<(), RuntimeError> {
        self.cgroups.signal_all(container_id, Signal::SIGTERM);
        if !self.cgroups.wait_empty(container_id, grace) {
            tracing::info!(
                container = container_id,
                "processes still running after {grace:?}; killing them"
            );
            self.cgroups.signal_all(container_id, Signal::SIGKILL);
            if !self.cgroups.wait_empty(container_id, KILL_TIMEOUT) {
                return Err(RuntimeError::Host(format!(
                    "processes of container {container_id} are still there after SIGKILL"
                )));
            }
        }
        self.cleanup(container_id)
    }

    fn cleanup(&self, container_id: &str) -> Result<(), RuntimeError> {
        // The container's mounts lived in its own mount namespace and went with its last process;
        // what is left on the host is its cgroup.
        if !self
            .cgroups
            .wait_empty(container_id, Duration::from_millis(500))
        {
            return Err(RuntimeError::Host(format!(
                "container {container_id} still has processes"
            )));
        }
        self.cgroups
            .remove(container_id)
            .map_err(RuntimeError::Host)
    }

    fn update(&self, container_id: &str, jail_params: &[String]) -> Result<(), RuntimeError> {
        // Of the jail parameters only `host.hostname` has a Linux meaning; like `jail -m`, only
        // the parameters given are changed.
        if !jail_params.iter().any(|p| {
            p.split_once('=')
                .is_some_and(|(name, _)| name == "host.hostname")
        }) {
            return Ok(());
        }
        let hostname = hostname(container_id, jail_params);
        let init_pid = self
            .init_pid(container_id)
            .ok_or_else(|| RuntimeError::Invalid("container not running".into()))?;
        let spec = Spec {
            mode: Mode::SetHostname { init_pid, hostname },
            cgroup_procs: self.cgroups.procs_file(container_id),
            argv: vec![],
            env: vec![],
            uid: 0,
            gid: 0,
            groups: vec![],
            cwd: "/".into(),
            tty: false,
        };
        let text = serde_json::to_string(&spec).map_err(|e| RuntimeError::Host(e.to_string()))?;
        let output = std::process::Command::new(&self.helper)
            .arg(HELPER_ARG)
            .env(SPEC_ENV, text)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| {
                RuntimeError::Host(format!("cannot start {}: {e}", self.helper.display()))
            })?;
        if output.status.success() {
            Ok(())
        } else {
            Err(RuntimeError::Invalid(
                String::from_utf8_lossy(&output.stderr)
                    .trim_end()
                    .to_owned(),
            ))
        }
    }

    fn close(&self) {
        for id in self.cgroups.all() {
            if self.cgroups.pids(&id).is_empty() {
                let _ = self.cgroups.remove(&id);
            }
        }
        self.cgroups.remove_parent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_is_login_like_with_the_given_variables_on_top() {
        let user = passwd::User {
            uid: 0,
            gid: 0,
            groups: vec![],
            name: "root".into(),
            home: "/root".into(),
        };
        let env = process_env(&["PATH=/opt/bin".into(), "A=1".into()], &user, true);
        assert!(env.contains(&"PATH=/opt/bin".to_owned()));
        assert!(!env.iter().any(|e| e.starts_with("PATH=/usr")));
        assert!(env.contains(&"HOME=/root".to_owned()));
        assert!(env.contains(&"TERM=xterm".to_owned()));
        assert_eq!(env.last().map(String::as_str), Some("A=1"));
    }

    #[test]
    fn host_hostname_sets_the_hostname() {
        assert_eq!(hostname("abc", &["mount.devfs=true".into()]), "abc");
        assert_eq!(hostname("abc", &["host.hostname=web".into()]), "web");
    }
}
