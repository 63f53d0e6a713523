//! Where objects live in ZFS: every dataset the daemon makes is under `kleene_root`.

use std::path::PathBuf;

use zfs::{DatasetName, NameError, Zfs};

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
    pub fn prepare(&self, zfs: &Zfs) -> Result<PathBuf, String> {
        let root = self.root.as_str();
        let exists = zfs.exists(&self.root).map_err(|e| e.to_string())?;
        if !exists {
            return Err(format!(
                "the dataset '{root}' of 'kleene_root' does not exist: create it (zfs create {root}) or fix the configuration"
            ));
        }
        let mountpoint = zfs
            .mountpoint(&self.root)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("the dataset '{root}' of 'kleene_root' has no mountpoint"))?;
        let mark = zfs.get(&self.root, ROOT_MARK).map_err(|e| e.to_string())?;
        if mark.as_deref() != Some(root) {
            zfs.set(&self.root, ROOT_MARK, root)
                .map_err(|e| format!("cannot mark {root} as a kleene root: {e}"))?;
        }
        for parent in [&self.images, &self.containers, &self.volumes] {
            if !zfs.exists(parent).map_err(|e| e.to_string())? {
                zfs.create(parent, &[]).map_err(|e| e.to_string())?;
            }
            if let Some(path) = zfs.mountpoint(parent).map_err(|e| e.to_string())? {
                close_to_others(&path)?;
            }
        }
        Ok(mountpoint)
    }

    /// Gives the root dataset the `refreservation` `reservation` (`None`: none): space that
    /// containers and volumes filling the pool cannot take from the metadata database and the
    /// daemon's files. Blocks (runs zfs).
    pub fn reserve(&self, zfs: &Zfs, reservation: Option<u64>) -> Result<(), String> {
        let wanted = reservation.map_or_else(|| "none".to_owned(), |bytes| bytes.to_string());
        zfs.set(&self.root, "refreservation", &wanted).map_err(|e| {
            format!(
                "cannot reserve {wanted} bytes for {} (kleene_root_reservation): {e}",
                self.root.as_str()
            )
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
pub fn close_to_others(path: &std::path::Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("cannot make {} private (mode 0700): {e}", path.display()))
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
