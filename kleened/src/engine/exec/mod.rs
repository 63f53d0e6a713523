//! Exec instances: a process to run in a container, created by `POST /exec/create` and started once
//! over the `/exec/start` websocket. The first one started on a stopped container starts the
//! container around it. Instances live in memory only ([`registry`]) and disappear when their
//! process ends or they are stopped; one never started expires after
//! [`registry::UNSTARTED_TTL`], and a container has at most
//! [`registry::UNSTARTED_PER_CONTAINER`] of those, so creates that are never started cannot grow
//! the daemon without bound.
//!
//! The engine owns a started process's whole life: [`Engine::attach`] pumps its output to a
//! [`Client`] and the client's input, end of input and terminal sizes to it, ends it when the client
//! goes away, waits for it, and answers the closing message; a detached process is pumped the same
//! way with nobody listening. The server only turns websocket frames into [`ClientEvent`]s and
//! output into frames.

mod pump;
mod registry;

pub use pump::{Client, ClientEvent, ExitRecorder, RunningExec};
pub(crate) use registry::Execs;

use std::sync::Arc;
use std::time::{Duration, Instant};

use kleene_api::{ExecConfig, IdResponse, NetworkDriver};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::sync::watch;

use super::containers::merge_env;
use super::{ids, Engine, EngineError};
use crate::platform::ProcessSpec;
use pump::{pump, Nobody};
use registry::ExecInstance;
#[cfg(test)]
use registry::UNSTARTED_PER_CONTAINER;

/// How long exec stop waits for the process to end.
const STOP_WAIT: Duration = Duration::from_secs(5);

/// Whether a process that exited with `code` was ended by the out-of-memory killer: it died of
/// SIGKILL (137) and the container's count of such kills grew while it ran.
fn oom_killed(code: i32, before: Option<u64>, after: Option<u64>) -> bool {
    code == 128 + Signal::SIGKILL as i32 && after.unwrap_or(0) > before.unwrap_or(0)
}

/// The closing message of a process the out-of-memory killer ended. The reference's wording
/// with the reason would not fit the close frame's 123 bytes; the exit code stays last, where
/// clients read it.
fn oom_message(exec_id: &str, code: i32) -> String {
    format!("executable {exec_id} killed for exceeding its memory limit, exit-code {code}")
}

impl Engine {
    /// Creates an exec instance for a container.
    pub async fn create_exec(&self, config: ExecConfig) -> Result<IdResponse, EngineError> {
        let container = self
            .find_container(&config.container_id)
            .await?
            .ok_or_else(|| EngineError::NotFound("container not found".into()))?;
        let id = ids::new_id();
        let instance = ExecInstance {
            container_id: container.id.clone(),
            cmd: config.cmd,
            env: config.env,
            user: config.user,
            tty: config.tty,
            created: Instant::now(),
            started: None,
        };
        self.execs.insert(id.clone(), instance).map_err(|full| {
            EngineError::Conflict(format!(
                "container {} has {} execution instances that were never started, as many \
                     as it may: start or stop one, or wait for them to expire after {} minutes",
                container.id,
                full.limit,
                self.execs.ttl.as_secs() / 60
            ))
        })?;
        Ok(IdResponse { id })
    }

    /// Starts an exec instance: in the running container, or, with `start_container`, by starting the
    /// container around it. The error is the reason, for the client.
    pub async fn start_exec(
        &self,
        exec_id: &str,
        start_container: bool,
        tty_size: Option<kleene_api::TtySize>,
    ) -> Result<RunningExec, EngineError> {
        self.start_exec_as(exec_id, start_container, tty_size, false)
            .await
    }

    /// [`Engine::start_exec`]; `by_policy` says the daemon starts the container by its restart
    /// policy, which keeps its restart count (a client's start resets it and has the daemon
    /// keep the container running).
    pub(super) async fn start_exec_as(
        &self,
        exec_id: &str,
        start_container: bool,
        tty_size: Option<kleene_api::TtySize>,
        by_policy: bool,
    ) -> Result<RunningExec, EngineError> {
        let runtime = self.runtime()?.clone();
        let unknown = || {
            EngineError::NotFound(format!(
                "could not find execution instance matching '{exec_id}'"
            ))
        };
        let of_container = self
            .execs
            .with(|map| map.get(exec_id).map(|i| i.container_id.clone()))
            .ok_or_else(unknown)?;
        // One start at a time per container, so two execs cannot both create the same container
        // and one exec cannot be started twice; other containers start meanwhile.
        let _starts = self.starting.read().await;
        let _container = self.container_starts.lock(&of_container).await;
        let (container_id, cmd, env, user, tty) =
            self.execs.with(|map| match map.get(exec_id) {
                None => Err(unknown()),
                Some(instance) if instance.started.is_some() => Err(EngineError::Conflict(
                    "executable already started".to_owned(),
                )),
                Some(i) => Ok((
                    i.container_id.clone(),
                    i.cmd.clone(),
                    i.env.clone(),
                    i.user.clone(),
                    i.tty,
                )),
            })?;
        let container = self
            .find_container(&container_id)
            .await?
            .ok_or_else(|| EngineError::NotFound("container not found".to_owned()))?;
        let rootfs = self.container_rootfs(&container).await?;
        let running = self.is_running(&container.id).await?;
        if !running && !start_container {
            return Err(EngineError::Conflict(
                "cannot start container when 'start_container' is false.".to_owned(),
            ));
        }
        // A container starting is wired to its networks (vnet, and ipnet on FreeBSD).
        let endpoints = if running
            || matches!(
                container.network_driver,
                NetworkDriver::Host | NetworkDriver::Disabled
            ) {
            vec![]
        } else {
            self.wiring_of(&container.id).await?
        };
        let mounts = if running {
            vec![]
        } else {
            self.mounts_of(&container.id).await?
        };
        let spec = ProcessSpec {
            container_id: container.id.clone(),
            rootfs,
            cmd: if cmd.is_empty() {
                container.cmd.clone()
            } else {
                cmd
            },
            env: merge_env(&container.env, &env),
            user: match jail_user(&container.jail_param) {
                // `exec.jail_user` runs the process that starts the container, as in the
                // reference (where it is jail(8)'s user for `command`); execs keep theirs.
                Some(jail_user) if !running => jail_user.to_owned(),
                _ if user.is_empty() => container.user.clone(),
                _ => user,
            },
            tty,
            tty_size: {
                let size = tty_size.unwrap_or_default();
                (size.rows, size.cols)
            },
            network: container.network_driver,
            jail_params: container.jail_param.clone(),
            endpoints,
            mounts,
            limits: super::limits::of(&container),
        };
        let (spawned, oom_before) = tokio::task::spawn_blocking(move || {
            let spawned = if running {
                runtime.exec(&spec)
            } else {
                runtime.start(&spec)
            }?;
            // The out-of-memory kills counted so far, to tell whether this process was one.
            Ok::<_, crate::platform::RuntimeError>((spawned, runtime.oom_kills(&spec.container_id)))
        })
        .await?
        .map_err(|err| match err {
            // The runtime's words, as the client is told them.
            crate::platform::RuntimeError::Invalid(message) => EngineError::Invalid(message),
            err => EngineError::host("")(err),
        })?;
        // A child the runtime just started has a PID; 0 would mean "my process group" to kill(2).
        let pid = spawned
            .child
            .id()
            .ok_or_else(|| EngineError::Internal("the started process has no PID".to_owned()))?;
        let interfaces: Vec<(String, Option<String>)> = spawned
            .interfaces
            .iter()
            .map(|(endpoint, interface)| (endpoint.clone(), Some(interface.clone())))
            .collect();
        if let Err(err) = self.record_interfaces(&container.id, interfaces).await {
            tracing::warn!(container = %container.id, error = %err, "could not record the container's interfaces");
        }
        let (exited, watcher) = watch::channel(None);
        self.execs.with(|map| {
            if let Some(instance) = map.get_mut(exec_id) {
                instance.started = Some((pid, watcher));
            }
        });
        tracing::info!(exec = exec_id, container = %container.id, pid, first = !running, "exec started");
        if !running {
            if !by_policy {
                // A client's start: the daemon keeps it running by its policy from now on.
                self.restarts.forget(&container.id);
                let id = container.id.clone();
                if let Err(err) = self
                    .store
                    .write(move |db| db.set_keep_running(&id, true, true))
                    .await
                {
                    tracing::warn!(container = %container.id, error = %err, "cannot record the start for the restart policy");
                }
            }
            self.restarts
                .started(&container.id, std::time::Instant::now());
        }
        Ok(RunningExec {
            exec_id: exec_id.to_owned(),
            container_id: container.id,
            io: spawned.io,
            child: spawned.child,
            first: !running,
            tty,
            exited,
            oom_before,
        })
    }

    /// Ends an exec instance whose process exited with `code`: forgets it, tells the runtime when
    /// it was the container's first process, cleans up the container when that stopped too, and
    /// answers the closing message. `oom_before` is the container's count of out-of-memory kills
    /// when the process started: a process killed by SIGKILL while it grew was killed for
    /// exceeding the container's memory limit, which the message and (for the first process) the
    /// container's `last_exit` say.
    pub async fn finish_exec(
        &self,
        exec_id: &str,
        container_id: &str,
        first: bool,
        code: i32,
        oom_before: Option<u64>,
    ) -> String {
        self.execs.with(|map| map.remove(exec_id));
        // Read before the cleanup removes the container's cgroups.
        let oom_kills = self.oom_kills(container_id).await;
        let oom_killed = oom_killed(code, oom_before, oom_kills);
        if oom_killed {
            tracing::warn!(
                exec = exec_id,
                container = container_id,
                "killed for exceeding the container's memory limit"
            );
        }
        if first {
            let exit = kleene_api::LastExit {
                exit_code: code,
                reason: if oom_killed {
                    kleene_api::ExitReason::OomKilled
                } else {
                    kleene_api::ExitReason::Exited
                },
                oom_kills: oom_kills
                    .unwrap_or(0)
                    .saturating_sub(oom_before.unwrap_or(0)),
                finished_at: ids::now(),
            };
            let id = container_id.to_owned();
            if let Err(err) = self
                .store
                .write(move |db| db.set_last_exit(&id, &exit))
                .await
            {
                tracing::warn!(container = container_id, error = %err, "could not record how the container's process ended");
            }
        }
        if first {
            if let Ok(runtime) = self.runtime() {
                let runtime = Arc::clone(runtime);
                let id = container_id.to_owned();
                let _ = tokio::task::spawn_blocking(move || runtime.first_process_ended(&id)).await;
            }
        }
        let message = match self.is_running(container_id).await {
            Ok(false) => {
                self.cleanup_container(container_id).await;
                if first {
                    self.first_process_exited(container_id, code).await;
                }
                format!("executable {exec_id} and its container exited with exit-code {code}")
            }
            Ok(true) => format!("{exec_id} has exited with exit-code {code}"),
            Err(err) => {
                tracing::error!(container = container_id, error = %err, "after its process ended");
                format!("{exec_id} has exited with exit-code {code}")
            }
        };
        if oom_killed {
            oom_message(exec_id, code)
        } else {
            message
        }
    }

    /// The container's count of out-of-memory kills, if the runtime keeps one.
    async fn oom_kills(&self, container_id: &str) -> Option<u64> {
        let runtime = Arc::clone(self.runtime.as_ref()?);
        let id = container_id.to_owned();
        tokio::task::spawn_blocking(move || runtime.oom_kills(&id))
            .await
            .ok()
            .flatten()
    }

    /// Runs a started exec without a client: its output is read and dropped, and its end is
    /// handled as for an attached one.
    pub fn detach(self: &Arc<Self>, running: RunningExec) {
        let engine = Arc::clone(self);
        self.tasks.spawn(async move {
            let exec_id = running.exec_id.clone();
            let message = engine.attach(running, &mut Nobody).await;
            tracing::info!(exec = %exec_id, "{message}");
        });
    }

    /// Runs a started exec for an attached client until the process ended and its output is
    /// read; answers the closing message. A client that goes away leaves the process that started
    /// the container running, as a detached one (its output goes on to the container's log, and
    /// only a stop ends it); an exec gets SIGTERM and a terminal is hung up ([`pump::WhenGone`]).
    pub async fn attach(&self, running: RunningExec, client: &mut impl Client) -> String {
        self.attach_for_code(running, client).await.1
    }

    /// [`Engine::attach`], answering the exit code beside the closing message.
    pub(super) async fn attach_for_code(
        &self,
        running: RunningExec,
        client: &mut impl Client,
    ) -> (i32, String) {
        let tty = running.tty;
        let (io, mut child, recorder) = running.into_parts();
        let log = self.logs.of(&recorder.container_id);
        let when_gone = pump::WhenGone::of(recorder.first, tty);
        let status = match pump(io, &mut child, tty, client, &log, when_gone).await {
            pump::Pumped::Ended(status) => status,
            pump::Pumped::ClientGone(remains) => match self.me.upgrade() {
                // The client's connection (and its slot among the daemon's connections) goes
                // now; the process is followed as a detached one.
                Some(engine) => {
                    let exec_id = recorder.exec_id.clone();
                    self.tasks.spawn(async move {
                        let status = pump::follow_unattended(remains, &mut child, tty, &log).await;
                        let (_, message) = engine.finish_recorded(&recorder, status).await;
                        tracing::info!(exec = %recorder.exec_id, "{message}");
                    });
                    return (
                        -1,
                        format!("the client of {exec_id} went away; the process runs on"),
                    );
                }
                None => pump::follow_unattended(remains, &mut child, tty, &log).await,
            },
        };
        self.finish_recorded(&recorder, status).await
    }

    /// Records how a followed process ended and does what its end asks; answers its exit code
    /// and the closing message.
    async fn finish_recorded(
        &self,
        recorder: &ExitRecorder,
        status: std::io::Result<std::process::ExitStatus>,
    ) -> (i32, String) {
        let code = recorder.record(status);
        let message = self
            .finish_exec(
                &recorder.exec_id,
                &recorder.container_id,
                recorder.first,
                code,
                recorder.oom_before,
            )
            .await;
        (code, message)
    }

    /// Stops an exec instance: its process (SIGTERM, or SIGKILL with `force`), or with
    /// `stop_container` its whole container. The instance is gone afterwards.
    pub async fn stop_exec(
        &self,
        exec_id: String,
        force: bool,
        stop_container: bool,
    ) -> Result<IdResponse, EngineError> {
        let not_found = || {
            EngineError::NotFound(format!(
                "could not find execution instance matching '{exec_id}'"
            ))
        };
        let (container_id, started) = self
            .execs
            .with(|map| {
                map.get(&exec_id)
                    .map(|i| (i.container_id.clone(), i.started.clone()))
            })
            .ok_or_else(not_found)?;
        let Some((pid, mut exited)) = started else {
            if stop_container {
                return Err(EngineError::NotFound(
                    "execution instance have not been started".into(),
                ));
            }
            self.execs.with(|map| map.remove(&exec_id));
            return Ok(IdResponse { id: exec_id });
        };
        if stop_container {
            self.stop_running(&container_id).await?;
        } else {
            let signal = if force {
                Signal::SIGKILL
            } else {
                Signal::SIGTERM
            };
            let target = i32::try_from(pid).map_err(|_| not_found())?;
            kill(Pid::from_raw(target), signal)
                .map_err(|e| EngineError::NotFound(format!("error closing process: {e}")))?;
        }
        let ended = tokio::time::timeout(STOP_WAIT, exited.wait_for(Option::is_some)).await;
        if ended.is_err() {
            // The reference's answer; the instance stays, so that a forced stop can follow.
            return Err(EngineError::NotFound(
                "timed out while waiting for jail to stop".into(),
            ));
        }
        self.execs.with(|map| map.remove(&exec_id));
        Ok(IdResponse { id: exec_id })
    }
}

/// The user the last `exec.jail_user=USER` among a container's jail parameters names.
fn jail_user(params: &[String]) -> Option<&str> {
    params
        .iter()
        .rev()
        .find_map(|p| p.strip_prefix("exec.jail_user="))
        .map(|user| user.trim_matches('"'))
        .filter(|user| !user.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_exec_jail_user_names_the_starting_user() {
        let params = |list: &[&str]| list.iter().map(|p| (*p).to_owned()).collect::<Vec<_>>();
        assert_eq!(jail_user(&params(&[])), None);
        assert_eq!(jail_user(&params(&["exec.jail_user=www"])), Some("www"));
        assert_eq!(
            jail_user(&params(&[
                "exec.jail_user=www",
                "exec.clean",
                "exec.jail_user=\"ntpd\""
            ])),
            Some("ntpd")
        );
        assert_eq!(jail_user(&params(&["exec.jail_user="])), None);
    }

    use kleene_api::{ContainerConfig, ImageCreateConfig};

    use crate::engine::fake;
    #[tokio::test]
    async fn exec_create_past_the_cap_is_refused_naming_the_container() {
        let (engine, _host, _runtime) = fake::engine();
        let config: ImageCreateConfig = serde_json::from_value(serde_json::json!({
            "method": "zfs-clone", "tag": "base", "zfs_dataset": "zroot/data", "url": "",
            "dns": false, "localtime": false, "update": false, "autotag": false,
        }))
        .unwrap();
        let (mut progress, task) = engine.start_image_creation(config);
        while progress.recv().await.is_some() {}
        task.await.unwrap().expect("image");
        let mut containers = vec![];
        for name in ["one", "two"] {
            let created = engine
                .create_container(ContainerConfig {
                    name: Some(name.to_owned()),
                    image: Some("base".to_owned()),
                    network_driver: Some(kleene_api::NetworkDriver::Host),
                    ..ContainerConfig::default()
                })
                .await
                .expect("container");
            containers.push(created.id);
        }
        let create = |container: &str| {
            engine.create_exec(ExecConfig {
                container_id: container.to_owned(),
                cmd: vec![],
                env: vec![],
                user: String::new(),
                tty: false,
            })
        };
        for _ in 0..UNSTARTED_PER_CONTAINER {
            create("one").await.expect("under the cap");
        }
        let err = create("one").await.expect_err("past the cap");
        assert!(matches!(err, EngineError::Conflict(_)), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "container {} has 64 execution instances that were never started, as many as it \
                 may: start or stop one, or wait for them to expire after 60 minutes",
                containers[0]
            )
        );
        create("two")
            .await
            .expect("another container has its own room");
    }
}
