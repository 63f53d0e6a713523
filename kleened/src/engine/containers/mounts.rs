//! A container's mounts at creation: each checked before anything is made, volumes made on
//! first use and filled once with what the image has at the destination.

use std::path::PathBuf;

use kleene_api::{MountPoint, MountPointConfig, MountPointType};
use zfs::DatasetName;

use crate::engine::{names, Engine, EngineError};
use crate::platform::inroot;

/// Refuses a mount that cannot work, before anything is made: a destination that is not an
/// absolute path, a volume name that is not one, a host path that is relative, missing, or
/// neither a directory nor a file.
pub(super) fn check_mount(mount: &MountPointConfig) -> Result<(), EngineError> {
    let refuse = |m: String| Err(EngineError::Invalid(m));
    let destination = &mount.destination;
    if !destination.starts_with('/') || destination.contains('\0') {
        return refuse(format!(
            "mount destination '{destination}' is not an absolute path"
        ));
    }
    // As written; the runtime checks again where it leads through the container's links.
    let mut lexical = PathBuf::new();
    for component in std::path::Path::new(destination).components() {
        match component {
            std::path::Component::Normal(name) => lexical.push(name),
            std::path::Component::ParentDir => {
                lexical.pop();
            }
            _ => {}
        }
    }
    if let Some(place) = crate::platform::runtime::reserved_destination(&lexical) {
        return refuse(format!(
            "mount destination '{destination}' is {place} or inside it, which the runtime sets up"
        ));
    }
    match mount.kind {
        MountPointType::Volume => {
            if !names::valid_volume_name(&mount.source) {
                return refuse(names::invalid_volume_name(&mount.source));
            }
        }
        MountPointType::Nullfs => {
            let source = std::path::Path::new(&mount.source);
            if !source.is_absolute() {
                return refuse(format!(
                    "mount source '{}' is not an absolute path",
                    mount.source
                ));
            }
            // The reference's words (its errno as an Erlang atom, `:enoent`), then the source.
            match std::fs::metadata(source) {
                Ok(meta) if meta.is_dir() || meta.is_file() => {}
                Ok(_) => {
                    return refuse(format!(
                        "could not determine source type, must be either directory or regular \
                         file: '{}'",
                        mount.source
                    ))
                }
                Err(err) => {
                    return refuse(format!(
                        "error ocurred while determining source type: {} ('{}': {err})",
                        crate::engine::errno_atom(&err),
                        mount.source
                    ));
                }
            }
        }
    }
    Ok(())
}

impl Engine {
    /// Makes the volumes a new container mounts that do not exist yet, and fills each new one with
    /// what the image has at its destination (an existing volume keeps its data as it is).
    /// Answers the mount records; `made` gets the volumes made.
    pub(super) async fn prepare_mounts(
        &self,
        id: &str,
        dataset: &DatasetName,
        mounts: &[MountPointConfig],
        made: &mut Vec<String>,
    ) -> Result<Vec<MountPoint>, EngineError> {
        let mut records = Vec::with_capacity(mounts.len());
        for mount in mounts {
            if mount.kind == MountPointType::Volume {
                let (volume, new) = self.volume(&mount.source, None).await?;
                if new {
                    made.push(volume.name.clone());
                    let root = self.dataset_root(dataset, id).await?;
                    self.fill_volume(&root, &mount.destination, &volume).await?;
                }
            }
            records.push(MountPoint {
                kind: mount.kind,
                container_id: id.to_owned(),
                destination: mount.destination.clone(),
                source: mount.source.clone(),
                read_only: mount.read_only,
                setuid: mount.setuid,
                devices: mount.devices,
            });
        }
        Ok(records)
    }

    /// Copies what the image holds at `destination` (a directory, resolved inside `root`) into a
    /// new, empty volume. Nothing there, or not a directory: nothing to copy.
    pub(super) async fn fill_volume(
        &self,
        root: &std::path::Path,
        destination: &str,
        volume: &kleene_api::Volume,
    ) -> Result<(), EngineError> {
        let (root, destination) = (root.to_owned(), destination.to_owned());
        let host = self.host.clone();
        let target = PathBuf::from(&volume.mountpoint);
        let name = volume.name.clone();
        tokio::task::spawn_blocking(move || {
            let source = match inroot::open(&root, &destination, inroot::Create::Nothing) {
                Ok(opened) if opened.is_dir => opened.path,
                Ok(_) => return Ok(()),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(err) => {
                    return Err(EngineError::Invalid(format!(
                        "cannot read the image's {destination}: {err}"
                    )))
                }
            };
            let empty = std::fs::read_dir(&source)
                .map(|mut entries| entries.next().is_none())
                .unwrap_or(true);
            if empty {
                return Ok(());
            }
            host.copy_contents(&source, &target)
                .map_err(EngineError::host(format!(
                    "could not copy the image's {destination} into volume {name}"
                )))
        })
        .await?
    }
}
