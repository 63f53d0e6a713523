//! COPY: sources globbed inside the context, destinations relative to the working directory, and
//! the step that copies them in the build container.

use std::path::{Component, Path};

use kleene_api::{MountPoint, MountPointType};

use super::cache::content_digest;
use super::dockerfile::Line;
use super::state::{Build, Failure, CONTEXT_MOUNT};
/// A `COPY` destination: absolute, or relative to the working directory; a trailing `/` kept.
pub(super) fn copy_destination(workdir: &str, dest: &str) -> String {
    let joined = if dest.starts_with('/') {
        dest.to_owned()
    } else if workdir.ends_with('/') {
        format!("{workdir}{dest}")
    } else {
        format!("{workdir}/{dest}")
    };
    if joined.ends_with("/.") {
        format!("{}/", joined.trim_end_matches("/."))
    } else {
        joined
    }
}

/// The sources of a `COPY`, globbed in the context, as paths relative to it. A source that
/// leaves the context (absolute, `..`, or through a link) is refused; patterns that match
/// nothing vanish, as in the reference.
pub(super) fn expand_sources(context: &Path, sources: &[String]) -> Result<Vec<String>, String> {
    let root = context
        .canonicalize()
        .map_err(|e| format!("cannot read the build context: {e}"))?;
    let mut found = vec![];
    for source in sources {
        let path = Path::new(source);
        if path.is_absolute() || path.components().any(|c| c == Component::ParentDir) {
            return Err(format!(
                "COPY source '{source}' is outside the build context"
            ));
        }
        let pattern = root.join(source);
        let pattern = pattern.to_string_lossy();
        let matches =
            glob::glob(&pattern).map_err(|e| format!("invalid COPY source '{source}': {e}"))?;
        for matched in matches {
            let matched = matched.map_err(|e| format!("cannot read the build context: {e}"))?;
            let real = matched
                .canonicalize()
                .map_err(|e| format!("cannot read {}: {e}", matched.display()))?;
            if !real.starts_with(&root) {
                return Err(format!(
                    "COPY source '{}' leads outside the build context",
                    matched.display()
                ));
            }
            let relative = matched
                .strip_prefix(&root)
                .map_err(|_| format!("COPY source '{source}' is outside the build context"))?;
            let mut relative = relative.to_string_lossy().into_owned();
            if relative.is_empty() {
                relative.push('.');
            }
            if source.ends_with('/') && !relative.ends_with('/') {
                relative.push('/');
            }
            found.push(relative);
        }
    }
    Ok(found)
}

impl Build<'_> {
    pub(super) async fn copy(
        &mut self,
        sources: &[String],
        dest: &str,
        line: &Line,
    ) -> Result<String, Failure> {
        let mut substituted = vec![];
        for source in sources {
            substituted.push(self.substitute(source, line)?);
        }
        let dest = copy_destination(&self.workdir, &self.substitute(dest, line)?);
        let context = self.context.clone();
        let (found, contents) = tokio::task::spawn_blocking(move || {
            let found = expand_sources(&context, &substituted)?;
            let contents = content_digest(&context, &found)?;
            Ok::<_, String>((found, contents))
        })
        .await
        .map_err(|e| Failure(format!("error: {e}")))?
        .map_err(|e| Failure(format!("error: {e}")))?;
        let key = self.step_key("COPY", &[&found.join("\0"), &dest, &contents]);
        if let Some(snapshot) = self.try_cache(&key).await? {
            return Ok(snapshot);
        }
        self.materialize().await?;
        if !self.context_mounted {
            let mount = MountPoint {
                kind: MountPointType::Nullfs,
                container_id: self.id.clone(),
                destination: CONTEXT_MOUNT.to_owned(),
                source: self.context.display().to_string(),
                read_only: true,
                setuid: false,
                devices: false,
            };
            self.engine
                .store
                .write(move |db| db.insert_mount(&mount))
                .await
                .map_err(|e| {
                    Failure(format!(
                        "could not create context mountpoint in container: {e}"
                    ))
                })?;
            self.context_mounted = true;
        }
        let dir = if dest.ends_with('/') {
            dest.clone()
        } else {
            Path::new(&dest)
                .parent()
                .map_or_else(|| "/".to_owned(), |p| p.display().to_string())
        };
        let mut argv: Vec<String> = vec![
            "/bin/sh".into(),
            "-c".into(),
            "dir=$1; shift; /bin/mkdir -p \"$dir\" && /bin/cp -R \"$@\"".into(),
            "sh".into(),
            dir,
        ];
        argv.extend(found.iter().map(|s| format!("{CONTEXT_MOUNT}/{s}")));
        argv.push(dest.clone());
        let code = self.exec(argv, "root", vec![]).await?;
        if self.cancel.is_cancelled() {
            return Err(Failure("the build was cancelled".to_owned()));
        }
        if code != 0 {
            let shown: Vec<String> = found
                .iter()
                .map(|s| format!("{CONTEXT_MOUNT}/{s}"))
                .collect();
            return Err(Failure(format!(
                "The command '/bin/cp -R {} {dest}' returned a non-zero code: {code}",
                shown.join(" ")
            )));
        }
        self.snapshot(key).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn copy_destinations_keep_their_trailing_slash() {
        assert_eq!(copy_destination("/", "/root/"), "/root/");
        assert_eq!(copy_destination("/etc", "."), "/etc/");
        assert_eq!(copy_destination("/home", "test.txt"), "/home/test.txt");
        assert_eq!(copy_destination("/a", "b/"), "/a/b/");
    }

    #[test]
    pub(super) fn sources_are_globbed_inside_the_context_only() {
        let dir = tempfile::tempdir().unwrap();
        let context = dir.path().join("ctx");
        std::fs::create_dir_all(context.join("sub")).unwrap();
        std::fs::write(context.join("test.txt"), "lol\n").unwrap();
        std::fs::write(context.join("test2.txt"), "lel\n").unwrap();
        std::fs::write(dir.path().join("outside.txt"), "secret\n").unwrap();
        std::os::unix::fs::symlink(dir.path(), context.join("up")).unwrap();
        let found = expand_sources(&context, &["*.txt".into(), "missing*".into()]).unwrap();
        assert_eq!(found, ["test.txt", "test2.txt"]);
        assert_eq!(
            expand_sources(&context, &["sub/".into()]).unwrap(),
            ["sub/"]
        );
        for bad in ["../outside.txt", "/etc/passwd", "up/outside.txt"] {
            assert!(
                expand_sources(&context, &[bad.into()]).is_err(),
                "{bad} must be refused"
            );
        }
        // The digest follows the contents.
        let before = content_digest(&context, &found).unwrap();
        std::fs::write(context.join("test.txt"), "changed\n").unwrap();
        assert_ne!(before, content_digest(&context, &found).unwrap());
    }
}
