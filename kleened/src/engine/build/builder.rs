//! Building an image from a Dockerfile (reference §7.2): the steps run in a build container whose
//! ID is the new image's; `RUN` and `COPY` each end in a snapshot of its dataset; at the end the
//! dataset becomes the image's.
//!
//! Beyond the reference:
//! - **A build cache.** Each `RUN` and `COPY` has a key: the key of the step before it (the first
//!   one the parent image and snapshot), its text after substitution, the user, the working
//!   directory (and the directories `WORKDIR` made since), the environment, and for `COPY` a
//!   digest of the files copied. A step whose key a kept image recorded is not run: its snapshot
//!   is reused (`--> Using cache @<id>`). The build container is made only at the first step that
//!   runs, as a clone of the last snapshot reused, so a rebuild with nothing changed runs no
//!   container at all. Entries go with their image; `nocache` turns lookups off.
//! - **No shell on the host.** Variables are substituted by [`super::substitute`].
//! - **`WORKDIR` directories are made by the daemon** in the dataset (walking inside the
//!   container's root, [`crate::platform::inroot`]) instead of by `mkdir -p` in a started container.
//! - **`COPY`** runs one `sh -c 'mkdir -p ... && cp -R ...'` in the container, the context mounted
//!   read-only at `/kleene_temporary_context_store`, so links in the container are followed as the
//!   container sees them; sources are globbed in the context and must stay inside it. The mount
//!   point is removed from the finished image.
//! - `RUN` has no terminal: its output reaches the client as the process wrote it.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use kleene_api::{ContainerConfig, ExecConfig, Image, ImageBuildConfig};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use zfs::{DatasetName, SnapshotName};

use super::cache::digest;
use super::dockerfile::{self, Command, Instruction, Line};
use super::state::{Build, Failure, Origin, CONTEXT_MOUNT};
use super::substitute::{substitute, Vars};
use crate::engine::exec::{Client, ClientEvent};
use crate::engine::images::parse_nametag;
use crate::engine::progress::Progress;
use crate::engine::recovery::Intent;
use crate::engine::{ids, Engine, EngineError};
use crate::platform::inroot;

/// A build whose Dockerfile was read and parsed, ready to run.
#[derive(Debug)]
pub struct PreparedBuild {
    /// The new image's ID (and its build container's).
    pub id: String,
    lines: Vec<Line>,
    config: ImageBuildConfig,
    context: PathBuf,
}

/// How a build ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildOutcome {
    /// The image with this ID was made.
    Created(String),
    /// It failed; the closing frame's `data` (a snapshot of the kept `:failed` image, or `""`).
    Failed(String),
}

/// The output of a `RUN` (or `COPY`) process, sent on as build output.
struct BuildClient<'a> {
    progress: &'a Progress,
    quiet: bool,
    cancel: &'a CancellationToken,
}

impl Client for BuildClient<'_> {
    async fn send(&mut self, chunk: &[u8]) -> Result<(), ()> {
        if !self.quiet {
            self.progress
                .say(String::from_utf8_lossy(chunk).into_owned())
                .await;
        }
        Ok(())
    }
    async fn next(&mut self) -> Option<ClientEvent> {
        // The build has no input; a client that went away ends the process.
        self.cancel.cancelled().await;
        Some(ClientEvent::Cancel)
    }
    async fn flush(&mut self) {}
}

/// The working directory after `WORKDIR path`.
fn join_workdir(current: &str, path: &str) -> String {
    let joined = if path.starts_with('/') {
        PathBuf::from(path)
    } else {
        Path::new(current).join(path)
    };
    // Lexically normal: `.` dropped, `..` applied (never above `/`).
    let mut parts: Vec<String> = vec![];
    for component in joined.components() {
        match component {
            Component::Normal(name) => parts.push(name.to_string_lossy().into_owned()),
            Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    format!("/{}", parts.join("/"))
}

impl Engine {
    /// Reads and parses a build's Dockerfile; the error is the text the client is sent before
    /// `failed to process Dockerfile`.
    pub fn prepare_build(&self, config: ImageBuildConfig) -> Result<PreparedBuild, String> {
        let context = PathBuf::from(&config.context);
        if !context.is_absolute() {
            return Err(format!(
                "the build context '{}' is not an absolute path",
                config.context
            ));
        }
        if !context.is_dir() {
            return Err(format!(
                "the build context '{}' is not a directory on the daemon's host",
                config.context
            ));
        }
        parse_nametag(&config.tag)?;
        let path = context.join(&config.dockerfile);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            format!(
                "Could not open Docker file {}: {} ({e})",
                path.display(),
                crate::engine::errno_atom(&e)
            )
        })?;
        let lines = dockerfile::parse(&text).map_err(|e| e.to_string())?;
        Ok(PreparedBuild {
            id: ids::new_id(),
            lines,
            config,
            context,
        })
    }

    /// Runs a prepared build. Its output arrives on the receiver; `cancel` (the client went away)
    /// stops it and removes what it made.
    pub fn start_build(
        self: &Arc<Self>,
        prepared: PreparedBuild,
        cancel: CancellationToken,
    ) -> (mpsc::Receiver<String>, JoinHandle<BuildOutcome>) {
        let (progress, rx) = Progress::channel();
        let engine = Arc::clone(self);
        let task = self.tasks.spawn(async move {
            let cancel = cancel.child_token();
            let stop = engine.cancel.clone();
            // The daemon stopping ends a build as the client leaving does.
            let watcher = {
                let cancel = cancel.clone();
                tokio::spawn(async move {
                    stop.cancelled().await;
                    cancel.cancel();
                })
            };
            let outcome = engine.build(prepared, progress, cancel).await;
            watcher.abort();
            outcome
        });
        (rx, task)
    }

    async fn build(
        &self,
        prepared: PreparedBuild,
        progress: Progress,
        cancel: CancellationToken,
    ) -> BuildOutcome {
        let PreparedBuild {
            id,
            lines,
            config,
            context,
        } = prepared;
        let intent = match self.intend(Intent::Build, &id).await {
            Ok(intent) => intent,
            Err(err) => {
                progress.say(format!("error: {err}")).await;
                return BuildOutcome::Failed(String::new());
            }
        };
        let mut build = Build {
            engine: self,
            id: id.clone(),
            config,
            context,
            progress,
            cancel,
            args: Vars::new(),
            env: Vars::new(),
            user: String::new(),
            workdir: "/".to_owned(),
            cmd: vec![],
            instructions: vec![],
            origin: None,
            made: false,
            pending_dirs: vec![],
            key: String::new(),
            cached: true,
            context_mounted: false,
            new_steps: vec![],
            last_snapshot: None,
        };
        let total = lines.len();
        let mut failure = None;
        for (index, line) in lines.iter().enumerate() {
            if build.cancel.is_cancelled() {
                failure = Some(Failure("the build was cancelled".to_owned()));
                break;
            }
            if !build.config.quiet {
                build
                    .progress
                    .say(format!("Step {}/{total} : {}", index + 1, line.text))
                    .await;
            }
            match build.step(line).await {
                Ok(snapshot) => build.instructions.push([line.text.clone(), snapshot]),
                Err(failed) => {
                    build.instructions.push([line.text.clone(), String::new()]);
                    failure = Some(failed);
                    break;
                }
            }
        }
        let outcome = match failure {
            None => match build.finish(false).await {
                Ok(()) => BuildOutcome::Created(id.clone()),
                Err(Failure(message)) => {
                    build.progress.say(message).await;
                    build.discard().await;
                    BuildOutcome::Failed(String::new())
                }
            },
            Some(Failure(message)) => {
                build.progress.say(message).await;
                let keep = !build.config.cleanup
                    && !build.cancel.is_cancelled()
                    && (build.made || build.origin.is_some());
                if keep {
                    match build.finish(true).await {
                        Ok(()) => BuildOutcome::Failed(
                            build
                                .last_snapshot
                                .clone()
                                .unwrap_or_else(|| "no snapshots available".to_owned()),
                        ),
                        Err(Failure(message)) => {
                            build.progress.say(message).await;
                            build.discard().await;
                            BuildOutcome::Failed(String::new())
                        }
                    }
                } else {
                    build.discard().await;
                    BuildOutcome::Failed(String::new())
                }
            }
        };
        self.done(intent).await;
        match &outcome {
            BuildOutcome::Created(id) => tracing::info!(image = %id, "image built"),
            BuildOutcome::Failed(_) => tracing::info!(image = %id, "image build failed"),
        }
        outcome
    }
}

impl Build<'_> {
    /// The variables a substitution sees: the declared `ARG`s, overlaid by the environment.
    pub(super) fn vars(&self) -> Vars {
        let mut vars = self.args.clone();
        vars.overlay(&self.env);
        vars
    }

    pub(super) fn substitute(&self, expression: &str, line: &Line) -> Result<String, Failure> {
        substitute(expression, &self.vars()).map_err(|err| {
            tracing::info!(image = %self.id, error = %err, "substitution refused");
            Failure(format!("failed environment substition of: {}", line.text))
        })
    }

    /// Runs one instruction; answers its snapshot (`@<id>`) or `""`.
    async fn step(&mut self, line: &Line) -> Result<String, Failure> {
        match &line.instruction {
            Instruction::From { image } => {
                self.from(image, line).await?;
                Ok(String::new())
            }
            Instruction::Arg(arg) => {
                let value = self
                    .config
                    .buildargs
                    .get(&arg.name)
                    .cloned()
                    .unwrap_or_else(|| arg.value().to_owned());
                self.args.set(arg.name.clone(), value);
                Ok(String::new())
            }
            Instruction::Env(env) => {
                let assignment = self.substitute(&env.expression(), line)?;
                if !self.env.set_assignment(&assignment) {
                    return Err(Failure(format!(
                        "failed environment substition of: {}",
                        line.text
                    )));
                }
                Ok(String::new())
            }
            Instruction::User(user) => {
                self.user = self.substitute(user, line)?;
                Ok(String::new())
            }
            Instruction::Workdir(path) => {
                self.workdir = join_workdir(&self.workdir, path);
                if self.made {
                    self.make_dirs(std::slice::from_ref(&self.workdir)).await?;
                } else {
                    self.pending_dirs.push(self.workdir.clone());
                }
                Ok(String::new())
            }
            Instruction::Cmd(command) => {
                self.cmd = command.argv_in(&self.workdir);
                Ok(String::new())
            }
            Instruction::Run(command) => self.run(command).await,
            Instruction::Copy { sources, dest } => self.copy(sources, dest, line).await,
        }
    }

    async fn from(&mut self, image: &str, line: &Line) -> Result<(), Failure> {
        let reference = match &self.config.container_config.image {
            Some(image) => {
                self.progress
                    .say(format!("Using user-supplied parent image: '{image}'"))
                    .await;
                image.clone()
            }
            None => self.substitute(image, line)?,
        };
        let (name, snapshot) = match reference.split_once('@') {
            Some((name, snap)) => (name.to_owned(), Some(snap.to_owned())),
            None => (reference.clone(), None),
        };
        let lookup = name.clone();
        let parent = self
            .engine
            .store
            .read(move |db| db.find_image(&lookup))
            .await
            .map_err(EngineError::from)?
            .ok_or_else(|| Failure(format!("error: could not find image {name}")))?;
        let snapshot = match snapshot {
            None => "image".to_owned(),
            Some(snap) => {
                self.engine
                    .find_snapshot(&parent.dataset, &snap)
                    .await
                    .map_err(|_| Failure(format!("error: invalid snapshot @{snap}")))?;
                snap
            }
        };
        self.env = parent
            .env
            .iter()
            .chain(self.config.container_config.env.iter().flatten())
            .filter_map(|e| e.split_once('='))
            .collect();
        self.user = self
            .config
            .container_config
            .user
            .clone()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| parent.user.clone());
        self.cmd = parent.cmd.clone();
        self.key = digest(&[b"FROM", parent.id.as_bytes(), snapshot.as_bytes()]);
        self.origin = Some(Origin {
            image_id: parent.id.clone(),
            snapshot,
        });
        Ok(())
    }

    /// Makes the build container (a clone of the origin) if it does not exist yet, with the
    /// `WORKDIR` directories made since.
    pub(super) async fn materialize(&mut self) -> Result<(), Failure> {
        if self.made {
            return Ok(());
        }
        let origin = self
            .origin
            .clone()
            .ok_or_else(|| Failure("error: no FROM before this instruction".to_owned()))?;
        let mut config: ContainerConfig = self.config.container_config.clone();
        config.name = Some(format!("builder_{}", self.id));
        config.image = Some(format!("{}@{}", origin.image_id, origin.snapshot));
        config.cmd = Some(self.cmd.clone());
        // The configuration's environment is in `env` already, with the `ENV`s; execs get it.
        config.env = Some(vec![]);
        if config.network_driver.is_none() {
            config.network_driver = Some(kleene_api::NetworkDriver::Host);
        }
        self.engine
            .create_container_as(config, Some(self.id.clone()))
            .await?;
        self.made = true;
        for endpoint in self.config.networks.clone() {
            let mut endpoint = endpoint;
            endpoint.container = self.id.clone();
            self.engine.connect(endpoint).await?;
        }
        let dirs = std::mem::take(&mut self.pending_dirs);
        self.make_dirs(&dirs).await?;
        Ok(())
    }

    /// The build container's dataset and where it is mounted.
    pub(super) async fn dataset(&self) -> Result<(DatasetName, PathBuf), Failure> {
        let container = self
            .engine
            .find_container(&self.id)
            .await?
            .ok_or_else(|| Failure("error: the build container is gone".to_owned()))?;
        let root = self.engine.container_rootfs(&container).await?;
        let dataset =
            DatasetName::new(container.dataset).map_err(|e| Failure(format!("error: {e}")))?;
        Ok((dataset, root))
    }

    /// Makes directories in the container's dataset, walking inside its root.
    pub(super) async fn make_dirs(&self, dirs: &[String]) -> Result<(), Failure> {
        if dirs.is_empty() {
            return Ok(());
        }
        let (_, root) = self.dataset().await?;
        let dirs = dirs.to_vec();
        tokio::task::spawn_blocking(move || {
            for dir in &dirs {
                inroot::open(&root, dir, inroot::Create::Directories).map_err(|e| {
                    Failure(format!(
                        "The command '/bin/mkdir -p {dir}' returned a non-zero code: 1 ({e})"
                    ))
                })?;
            }
            Ok(())
        })
        .await
        .map_err(|e| Failure(format!("error: {e}")))?
    }

    /// Runs `argv` in the build container (starting it) as `user`; answers the exit code.
    pub(super) async fn exec(
        &self,
        argv: Vec<String>,
        user: &str,
        env: Vec<String>,
    ) -> Result<i32, Failure> {
        let exec = self
            .engine
            .create_exec(ExecConfig {
                container_id: self.id.clone(),
                cmd: argv,
                env,
                user: user.to_owned(),
                tty: false,
            })
            .await?;
        let running = self
            .engine
            .start_exec(&exec.id, true, None)
            .await
            .map_err(|e| Failure(format!("error: {e}")))?;
        let mut client = BuildClient {
            progress: &self.progress,
            quiet: self.config.quiet,
            cancel: &self.cancel,
        };
        let (code, _) = self.engine.attach_for_code(running, &mut client).await;
        // A process that left others behind (a daemon started by RUN) ends with the step.
        if self.engine.is_running(&self.id).await? {
            self.engine.stop_running(&self.id).await?;
        }
        Ok(code)
    }

    /// Snapshots the build container after a step; answers `@<id>`.
    pub(super) async fn snapshot(&mut self, key: String) -> Result<String, Failure> {
        let (dataset, _) = self.dataset().await?;
        let name = ids::new_id();
        let snapshot = dataset
            .snapshot(&name)
            .map_err(|e| Failure(format!("error: {e}")))?;
        let take: SnapshotName = snapshot.clone();
        self.engine
            .zfs(move |zfs| zfs.snapshot(&take))
            .await
            .map_err(EngineError::host("could not snapshot the build container"))?;
        self.progress
            .say(format!("--> Snapshot created: @{name}"))
            .await;
        self.new_steps.push((key.clone(), name.clone()));
        self.key = key;
        self.cached = false;
        self.last_snapshot = Some(format!("@{name}"));
        Ok(format!("@{name}"))
    }

    async fn run(&mut self, command: &Command) -> Result<String, Failure> {
        let argv = command.argv_in(&self.workdir);
        let key = self.step_key("RUN", &[&argv.join("\0")]);
        if let Some(snapshot) = self.try_cache(&key).await? {
            return Ok(snapshot);
        }
        self.materialize().await?;
        let env = self.vars().to_env();
        let user = self.user.clone();
        let code = self.exec(argv.clone(), &user, env).await?;
        if self.cancel.is_cancelled() {
            return Err(Failure("the build was cancelled".to_owned()));
        }
        if code != 0 {
            return Err(Failure(format!(
                "The command '{}' returned a non-zero code: {code}",
                argv.join(" ")
            )));
        }
        self.snapshot(key).await
    }

    /// Keeps the build container as the image: `failed` tags it `<name>:failed`.
    async fn finish(&mut self, failed: bool) -> Result<(), Failure> {
        self.materialize().await?;
        let engine = self.engine;
        if engine.is_running(&self.id).await? {
            engine.stop_running(&self.id).await?;
        }
        let (dataset, root) = self.dataset().await?;
        if self.context_mounted {
            let id = self.id.clone();
            engine
                .store
                .write(move |db| db.delete_mounts_of_container(&id))
                .await
                .map_err(EngineError::from)?;
            // The mount point made in the image goes with the mount (when it is empty).
            let _ = std::fs::remove_dir(root.join(CONTEXT_MOUNT.trim_start_matches('/')));
        }
        let target = engine
            .layout
            .image(&self.id)
            .map_err(|e| Failure(format!("error: {e}")))?;
        let (from, to) = (dataset.clone(), target.clone());
        let image_snapshot = target
            .snapshot("image")
            .map_err(|e| Failure(format!("error: {e}")))?;
        engine
            .zfs(move |zfs| {
                zfs.rename(&from, &to)?;
                zfs.snapshot(&image_snapshot)
            })
            .await
            .map_err(EngineError::host(
                "could not make the build container an image",
            ))?;
        let (mut name, mut tag) = parse_nametag(&self.config.tag).unwrap_or_default();
        if failed {
            if name.is_empty() {
                name = self.id.clone();
            }
            tag = "failed".to_owned();
        }
        let image = Image {
            id: self.id.clone(),
            name,
            tag,
            cmd: self.cmd.clone(),
            env: self.env.to_env(),
            user: self.user.clone(),
            instructions: self.instructions.clone(),
            created: ids::now(),
            dataset: target.as_str().to_owned(),
        };
        let id = self.id.clone();
        let steps = std::mem::take(&mut self.new_steps);
        let keep_cache = !failed || !steps.is_empty();
        engine
            .store
            .write(move |db| {
                db.delete_container(&id)?;
                db.insert_image(&image)?;
                if keep_cache {
                    for (key, snapshot) in &steps {
                        db.cache_step(key, &id, snapshot)?;
                    }
                }
                Ok(())
            })
            .await
            .map_err(EngineError::from)?;
        Ok(())
    }

    /// Removes what the build made: its container (and its dataset), and an image of its ID.
    async fn discard(&mut self) {
        let engine = self.engine;
        if self.made {
            if let Ok(true) = engine.is_running(&self.id).await {
                let _ = engine.stop_running(&self.id).await;
            }
            if let Err(err) = engine.remove_container(self.id.clone()).await {
                tracing::error!(image = %self.id, error = %err, "could not remove the build container");
            }
        }
        let id = self.id.clone();
        if let Ok(Some(_)) = engine.store.read(move |db| db.image_by_id(&id)).await {
            let _ = engine.remove_image(self.id.clone()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workdirs_join_and_normalise() {
        assert_eq!(join_workdir("/", "/a"), "/a");
        assert_eq!(join_workdir("/a", "b"), "/a/b");
        assert_eq!(join_workdir("/a/b", "c"), "/a/b/c");
        assert_eq!(join_workdir("/a/b", "../c/./d"), "/a/c/d");
        assert_eq!(join_workdir("/", "../../.."), "/");
        assert_eq!(join_workdir("/home/", "/home/"), "/home");
    }
}
