//! The build cache: a key per step (the chain so far and everything the step's result depends
//! on, COPY's files by a digest of their contents), looked up among the steps kept images recorded.

use std::path::Path;

use super::state::{Build, Failure, Origin};
use crate::engine::EngineError;

/// SHA-256 over `parts`, each preceded by its length, in hex.
pub(super) fn digest(parts: &[&[u8]]) -> String {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    for part in parts {
        context.update(&(part.len() as u64).to_le_bytes());
        context.update(part);
    }
    context
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A digest of what `paths` (inside the context) hold: names, types, modes, contents, link
/// targets. Links are not followed.
pub(super) fn content_digest(context: &Path, paths: &[String]) -> Result<String, String> {
    use std::os::unix::fs::PermissionsExt;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for path in paths {
        for entry in walkdir::WalkDir::new(context.join(path))
            .follow_links(false)
            .sort_by_file_name()
        {
            let entry = entry.map_err(|e| format!("cannot read {path} in the context: {e}"))?;
            let meta = entry
                .path()
                .symlink_metadata()
                .map_err(|e| format!("cannot read {}: {e}", entry.path().display()))?;
            ctx.update(entry.path().to_string_lossy().as_bytes());
            ctx.update(&meta.permissions().mode().to_le_bytes());
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(entry.path()).unwrap_or_default();
                ctx.update(b"L");
                ctx.update(target.to_string_lossy().as_bytes());
            } else if meta.is_file() {
                // Read in pieces: a whole large file in memory would stay in the allocator's
                // arena of the thread that read it long after the build.
                let unreadable =
                    |e: std::io::Error| format!("cannot read {}: {e}", entry.path().display());
                let mut file = std::fs::File::open(entry.path()).map_err(unreadable)?;
                ctx.update(b"F");
                ctx.update(&meta.len().to_le_bytes());
                let mut buf = vec![0u8; 64 * 1024];
                let mut total = 0u64;
                loop {
                    let n = std::io::Read::read(&mut file, &mut buf).map_err(unreadable)?;
                    if n == 0 {
                        break;
                    }
                    total += n as u64;
                    ctx.update(&buf[..n]);
                }
                if total != meta.len() {
                    return Err(format!(
                        "{} changed while it was read",
                        entry.path().display()
                    ));
                }
            } else {
                ctx.update(b"D");
            }
        }
    }
    Ok(ctx
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

impl Build<'_> {
    /// The key of a step: the chain so far and everything the step's result depends on.
    pub(super) fn step_key(&self, kind: &str, parts: &[&str]) -> String {
        let env = self.vars().to_env().join("\0");
        let dirs = self.pending_dirs.join("\0");
        let mut all: Vec<&[u8]> = vec![
            self.key.as_bytes(),
            kind.as_bytes(),
            self.user.as_bytes(),
            self.workdir.as_bytes(),
            dirs.as_bytes(),
            env.as_bytes(),
        ];
        all.extend(parts.iter().map(|p| p.as_bytes()));
        digest(&all)
    }

    /// Takes a cached result for `key` if there is one: the container is then (later) cloned
    /// from its snapshot.
    pub(super) async fn try_cache(&mut self, key: &str) -> Result<Option<String>, Failure> {
        if !self.cached || self.config.nocache || self.made {
            return Ok(None);
        }
        let lookup = key.to_owned();
        let Some((image_id, snapshot)) = self
            .engine
            .store
            .read(move |db| db.cached_step(&lookup))
            .await
            .map_err(EngineError::from)?
        else {
            return Ok(None);
        };
        let lookup = image_id.clone();
        let image = self
            .engine
            .store
            .read(move |db| db.image_by_id(&lookup))
            .await
            .map_err(EngineError::from)?;
        let valid = match &image {
            Some(image) => self
                .engine
                .find_snapshot(&image.dataset, &snapshot)
                .await
                .is_ok(),
            None => false,
        };
        if !valid {
            let forget = key.to_owned();
            let _ = self
                .engine
                .store
                .write(move |db| db.forget_step(&forget))
                .await;
            return Ok(None);
        }
        self.progress
            .say(format!("--> Using cache @{snapshot}\n"))
            .await;
        self.origin = Some(Origin {
            image_id,
            snapshot: snapshot.clone(),
        });
        self.pending_dirs.clear();
        self.key = key.to_owned();
        self.last_snapshot = Some(format!("@{snapshot}"));
        Ok(Some(format!("@{snapshot}")))
    }
}
