//! Where objects live in ZFS: every dataset the daemon makes is under `kleene_root`.

use std::path::PathBuf;

use zfs::{DatasetName, NameError, Zfs, ZfsError};

/// Why the datasets under `kleene_root` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// The root dataset does not exist.
    #[error(
        "the dataset '{0}' of 'kleene_root' does not exist: create it (zfs create {0}) or fix the \
         configuration"
    )]
    NoRoot(String),
    /// The root dataset is not mounted.
    #[error("the dataset '{0}' of 'kleene_root' has no mountpoint")]
    NotMounted(String),
    /// The root cannot be marked as a kleene root.
    #[error("cannot mark {root} as a kleene root: {source}")]
    Mark {
        /// The root.
        root: String,
        /// What zfs said.
        #[source]
        source: ZfsError,
    },
    /// The root's reservation cannot be set.
    #[error("cannot reserve {wanted} bytes for {root} (kleene_root_reservation): {source}")]
    Reserve {
        /// The reservation asked for, or `none`.
        wanted: String,
        /// The root.
        root: String,
        /// What zfs said.
        #[source]
        source: ZfsError,
    },
    /// A dataset's directory cannot be made private.
    #[error("cannot make {} private (mode 0700): {source}", path.display())]
    Private {
        /// The directory.
        path: PathBuf,
        /// What the kernel said.
        #[source]
        source: std::io::Error,
    },
    /// zfs failed.
    #[error(transparent)]
    Zfs(#[from] ZfsError),
}

/// The datasets of the daemon: `<root>/image/<id>`, `<root>/container/<id>`, `<root>/volumes/<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The root dataset (`kleene_root`).
    pub root: DatasetName,
    /// Parent of image datasets.
    pub images: DatasetName,
    /// Parent of container datasets.
    pub containers: DatasetName,
    /// Parent of volume datasets.
    pub volumes: DatasetName,
}

impl Layout {
    /// The layout under `root`.
    pub fn new(root: &str) -> Result<Layout, NameError> {
        let root = DatasetName::new(root)?;
        Ok(Layout {
            images: root.child("image")?,
            containers: root.child("container")?,
            volumes: root.child("volumes")?,
            root,
        })
    }

    /// The dataset of image `id` (IDs are generated, so always valid components).
    pub fn image(&self, id: &str) -> Result<DatasetName, NameError> {
        self.images.child(id)
    }

    /// Checks that the root dataset exists and is mounted, and creates the image, container and
    /// volume parents under it, each with its mountpoint closed to everyone but root (mode 0700):
    /// a container's root may hold setuid files, device nodes or secrets, and no user of the host
    /// may reach them through the host's view of the dataset. Answers the root's mountpoint.
    ///
    /// The root is marked as a kleene root (the user property [`ROOT_MARK`], which its
    /// descendants inherit), so that no daemon copies or clones a dataset of any kleene root as
    /// an image. Blocks (runs zfs).
    pub fn prepare(&self, zfs: &Zfs) -> Result<PathBuf, LayoutError> {
        let root = self.root.as_str();
        if !zfs.exists(&self.root)? {
            return Err(LayoutError::NoRoot(root.to_owned()));
        }
        let mountpoint = zfs
            .mountpoint(&self.root)?
            .ok_or_else(|| LayoutError::NotMounted(root.to_owned()))?;
        let mark = zfs.get(&self.root, ROOT_MARK)?;
        if mark.as_deref() != Some(root) {
            zfs.set(&self.root, ROOT_MARK, root)
                .map_err(|source| LayoutError::Mark {
                    root: root.to_owned(),
                    source,
                })?;
        }
        for parent in [&self.images, &self.containers, &self.volumes] {
            if !zfs.exists(parent)? {
                zfs.create(parent, &[])?;
            }
            if let Some(path) = zfs.mountpoint(parent)? {
                close_to_others(&path)?;
            }
        }
        Ok(mountpoint)
    }

    /// Gives the root dataset the `refreservation` `reservation` (`None`: none): space that
    /// containers and volumes filling the pool cannot take from the metadata database and the
    /// daemon's files. Blocks (runs zfs).
    pub fn reserve(&self, zfs: &Zfs, reservation: Option<u64>) -> Result<(), LayoutError> {
        let wanted = reservation.map_or_else(|| "none".to_owned(), |bytes| bytes.to_string());
        zfs.set(&self.root, "refreservation", &wanted)
            .map_err(|source| LayoutError::Reserve {
                wanted,
                root: self.root.as_str().to_owned(),
                source,
            })
    }

    /// The object ID of a dataset directly under `parent`, if it is one.
    pub fn id_under<'a>(parent: &DatasetName, dataset: &'a str) -> Option<&'a str> {
        dataset
            .strip_prefix(parent.as_str())
            .and_then(|rest| rest.strip_prefix('/'))
            .filter(|id| !id.contains('/') && !id.contains('@'))
    }
}

/// The user property marking a kleene root and, by inheritance, every dataset below it; its
/// value is the root's name.
pub const ROOT_MARK: &str = "kleene:root";

/// Mode 0700 on a directory, so that only root can reach what is below it.
pub fn close_to_others(path: &std::path::Path) -> Result<(), LayoutError> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).map_err(|source| {
        LayoutError::Private {
            path: path.to_owned(),
            source,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datasets_are_under_the_root() {
        let layout = Layout::new("zroot/kleene").unwrap();
        assert_eq!(
            layout.image("abc").unwrap().as_str(),
            "zroot/kleene/image/abc"
        );
        assert_eq!(layout.containers.as_str(), "zroot/kleene/container");
        assert_eq!(
            Layout::id_under(&layout.containers, "zroot/kleene/container/c1"),
            Some("c1")
        );
        assert_eq!(
            Layout::id_under(&layout.containers, "zroot/kleene/container/c1/x"),
            None
        );
        assert_eq!(
            Layout::id_under(&layout.containers, "zroot/kleene/image/c1"),
            None
        );
    }

    #[test]
    fn closed_directories_are_mode_0700() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        close_to_others(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        assert!(close_to_others(&dir.path().join("missing")).is_err());
    }
}
