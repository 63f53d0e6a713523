//! A build's state: what the build container is or will be, the variables, the cache chain, and
//! how a failed step is told. The steps ([`super::builder`]), the cache ([`super::cache`]) and
//! COPY ([`super::copy`]) all work on it.

use std::path::PathBuf;

use kleene_api::ImageBuildConfig;
use tokio_util::sync::CancellationToken;

use super::substitute::Vars;
use crate::engine::progress::Progress;
use crate::engine::{Engine, EngineError};

/// Where a `COPY`'s context is mounted in the build container.
pub(super) const CONTEXT_MOUNT: &str = "/kleene_temporary_context_store";

/// A failed step: what the client is told (already said when `said`).
pub(super) struct Failure(pub(super) String);

impl From<EngineError> for Failure {
    fn from(err: EngineError) -> Self {
        Failure(format!("error: {err}"))
    }
}

/// Where the build container comes from: a snapshot of an image (the parent, or a cached step's).
#[derive(Debug, Clone)]
pub(super) struct Origin {
    pub(super) image_id: String,
    pub(super) snapshot: String,
}

pub(super) struct Build<'a> {
    pub(super) engine: &'a Engine,
    pub(super) id: String,
    pub(super) config: ImageBuildConfig,
    pub(super) context: PathBuf,
    pub(super) progress: Progress,
    pub(super) cancel: CancellationToken,
    /// Declared `ARG`s (with the client's values).
    pub(super) args: Vars,
    /// The build container's environment: the parent's, the configuration's, then `ENV`s.
    pub(super) env: Vars,
    pub(super) user: String,
    pub(super) workdir: String,
    pub(super) cmd: Vec<String>,
    pub(super) instructions: Vec<[String; 2]>,
    /// What the build container is (or will be) cloned from, while it does not exist yet.
    pub(super) origin: Option<Origin>,
    pub(super) made: bool,
    /// `WORKDIR` directories to make once the container's dataset exists.
    pub(super) pending_dirs: Vec<String>,
    /// The key of the last step (the cache's chain).
    pub(super) key: String,
    /// Whether lookups may still hit (false after the first step that ran).
    pub(super) cached: bool,
    pub(super) context_mounted: bool,
    /// Steps run in this build, for the cache once the image is kept: (key, snapshot).
    pub(super) new_steps: Vec<(String, String)>,
    pub(super) last_snapshot: Option<String>,
}
