//! Images: listing, creation of base images (`/images/create`), tagging, removal and pruning.
//!
//! An image is a dataset `<root>/image/<id>` with an `@image` snapshot. Creation makes the dataset,
//! fills it, snapshots it and only then records the image, so a failure at any step leaves neither a
//! dataset nor a row: whatever was made is destroyed before the error is reported.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kleene_api::{IdResponse, Image, ImageCreateConfig, ImageCreateMethod};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use zfs::{DatasetName, DestroyFlags, SnapshotName};

use super::fetch::{self, Source};
use super::progress::Progress;
use super::recovery::{Intent, Recorded};
use super::{ids, Engine, EngineError};
use crate::config::TargetOs;
use crate::layout::Layout;
use crate::platform;

/// What a failed creation has to undo.
#[derive(Debug, Default)]
struct Made {
    /// The image dataset exists.
    dataset: bool,
    /// A snapshot of the source dataset taken for the copy or clone.
    source_snapshot: Option<SnapshotName>,
    /// A downloaded archive.
    download: Option<PathBuf>,
    /// The intents recorded for the creation, cleared when it is done or undone.
    intents: Vec<Recorded>,
}

/// Splits and checks `name[:tag]`; `""` means untagged and the tag defaults to `latest`.
pub fn parse_nametag(text: &str) -> Result<(String, String), String> {
    if text.is_empty() {
        return Ok((String::new(), String::new()));
    }
    let (name, tag) = match text.split_once(':') {
        Some((name, tag)) => (name, tag),
        None => (text, "latest"),
    };
    let valid = |part: &str, extra: &str| {
        !part.is_empty()
            && part.len() <= 128
            && part
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric())
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
    };
    if !valid(name, "_.-/") || !valid(tag, "_.-") {
        return Err(format!(
            "invalid name '{text}': use name[:tag], each starting with a letter or digit and made of letters, digits and _ . - (and / in the name)"
        ));
    }
    Ok((name.to_owned(), tag.to_owned()))
}

/// The command of base images: FreeBSD boots its rc scripts, Linux images start a shell.
fn default_cmd(os: TargetOs) -> Vec<String> {
    match os {
        TargetOs::FreeBsd => vec!["/bin/sh".into(), "/etc/rc".into()],
        TargetOs::Linux => vec!["/bin/sh".into()],
    }
}

impl Engine {
    /// Every image, newest first.
    pub async fn list_images(&self) -> Result<Vec<Image>, EngineError> {
        Ok(self.store.read(|db| db.list_images()).await?)
    }

    /// One image, by ID, ID prefix or `name[:tag]`.
    pub async fn inspect_image(&self, identifier: String) -> Result<Image, EngineError> {
        self.store
            .read(move |db| db.find_image(&identifier))
            .await?
            .ok_or_else(|| EngineError::NotFound("image not found".into()))
    }

    /// Gives an image the name and tag `nametag`, taking them from any image that had them.
    pub async fn tag_image(
        &self,
        identifier: String,
        nametag: String,
    ) -> Result<IdResponse, EngineError> {
        let (name, tag) = parse_nametag(&nametag).map_err(EngineError::Invalid)?;
        self.store
            .write(move |db| {
                let Some(image) = db.find_image(&identifier)? else {
                    return Ok(None);
                };
                db.tag_image(&image.id, &name, &tag)?;
                Ok(Some(IdResponse { id: image.id }))
            })
            .await?
            .ok_or_else(|| EngineError::NotFound("image not found".into()))
    }

    /// Removes an image and its dataset, unless containers or other images are clones of it.
    /// Answers the identifier as given.
    pub async fn remove_image(&self, identifier: String) -> Result<IdResponse, EngineError> {
        // Removed containers' datasets still queued are clones that would keep the image.
        self.reap_now().await;
        let lookup = identifier.clone();
        let image = self
            .store
            .read(move |db| db.find_image(&lookup))
            .await?
            .ok_or_else(|| {
                EngineError::NotFound(format!("Error: No such image: {identifier}\n"))
            })?;
        let ImageUsers {
            containers, images, ..
        } = self.image_users(&image).await?;
        if !containers.is_empty() {
            return Err(EngineError::Conflict(format!(
                "could not remove image {} since it is used for containers:\n{}",
                image.id,
                containers.join("\n")
            )));
        }
        if !images.is_empty() {
            return Err(EngineError::Conflict(format!(
                "could not remove image {} since it is used for images:\n{}",
                image.id,
                images.join("\n")
            )));
        }
        // A crash between the dataset going and the row going is finished at the next start.
        let intent = self.intend(Intent::ImageRemove, &image.id).await?;
        let removed = self.remove_image_now(&image).await;
        self.done(intent).await;
        removed?;
        tracing::info!(image = %image.id, "image removed");
        Ok(IdResponse { id: identifier })
    }

    /// Hands over the snapshots images reuse, destroys the image's dataset, then its row.
    pub(super) async fn remove_image_now(&self, image: &Image) -> Result<(), EngineError> {
        self.hand_over_snapshots(image).await?;
        self.destroy_image_dataset(image).await?;
        let id = image.id.clone();
        self.store.write(move |db| db.delete_image(&id)).await?;
        Ok(())
    }

    /// Who holds an image: containers cloned from any of its snapshots (or recorded against it),
    /// images built `FROM` it (clones of its `@image`), and images that reuse one of its build
    /// steps through the cache (clones of its other snapshots), which do not hold it: a removal
    /// hands them the snapshots they need ([`Engine::hand_over_snapshots`]).
    async fn image_users(&self, image: &Image) -> Result<ImageUsers, EngineError> {
        let dataset = image_dataset(image)?;
        let of = dataset.clone();
        let snapshots = self
            .zfs(move |zfs| {
                if zfs.exists(&of)? {
                    zfs.snapshots_with_clones(&of)
                } else {
                    Ok(vec![])
                }
            })
            .await?;
        let mut users = ImageUsers::default();
        for entry in snapshots.iter().filter(|e| e.snapshot.dataset() == dataset) {
            for clone in &entry.clones {
                if let Some(id) = Layout::id_under(&self.layout.containers, clone.as_str()) {
                    users.containers.push(id.to_owned());
                } else if let Some(id) = Layout::id_under(&self.layout.images, clone.as_str()) {
                    if entry.snapshot.snap() == IMAGE_SNAPSHOT {
                        users.images.push(id.to_owned());
                    } else {
                        users.reusing.push((id.to_owned(), clone.clone()));
                    }
                }
            }
        }
        let id = image.id.clone();
        let recorded = self
            .store
            .read(move |db| {
                Ok(db
                    .list_containers()?
                    .into_iter()
                    .filter(|c| c.container.image_id == id)
                    .map(|c| c.container.id)
                    .collect::<Vec<_>>())
            })
            .await?;
        users.containers.extend(recorded);
        users.containers.sort();
        users.containers.dedup();
        users.images.sort();
        users.images.dedup();
        Ok(users)
    }

    /// Hands the build-step snapshots of `image` that other images reuse through the build cache
    /// over to them (`zfs promote`), with their cache entries, so that the image can go: the cache
    /// never keeps a user from removing an image the reference would remove.
    async fn hand_over_snapshots(&self, image: &Image) -> Result<(), EngineError> {
        // Each promotion takes at least one snapshot away; an image has one per build step.
        for _ in 0..=MAX_HAND_OVERS {
            let users = self.image_users(image).await?;
            let Some((heir_id, promoted)) = users.reusing.into_iter().next() else {
                return Ok(());
            };
            let moved = self
                .zfs(move |zfs| {
                    zfs.promote(&promoted)?;
                    zfs.snapshots(&promoted)
                })
                .await
                .map_err(EngineError::host(format!(
                    "could not hand the build steps image {heir_id} reuses over from image {}",
                    image.id
                )))?;
            let moved: Vec<String> = moved.iter().map(|s| s.snap().to_owned()).collect();
            let (from, to) = (image.id.clone(), heir_id.clone());
            self.store
                .write(move |db| db.move_cached_steps(&from, &to, &moved))
                .await?;
            tracing::info!(image = %image.id, heir = %heir_id, "build steps handed over");
        }
        Err(EngineError::Internal(format!(
            "image {} still has images reusing its build steps after {MAX_HAND_OVERS} hand-overs",
            image.id
        )))
    }

    /// Destroys an image's dataset, and the snapshot of the source it was cloned from when image
    /// creation took that snapshot (it is named after the image).
    async fn destroy_image_dataset(&self, image: &Image) -> Result<(), EngineError> {
        let dataset = image_dataset(image)?;
        let id = image.id.clone();
        self.zfs(move |zfs| {
            if !zfs.exists(&dataset)? {
                return Ok(());
            }
            let origin = zfs.get(&dataset, "origin")?;
            zfs.destroy(
                &dataset,
                DestroyFlags {
                    recursive: true,
                    ..DestroyFlags::default()
                },
            )?;
            if let Some(origin) = origin.and_then(|o| SnapshotName::new(o).ok()) {
                if origin.snap() == id {
                    zfs.destroy_snapshot(&origin, DestroyFlags::default())?;
                }
            }
            Ok(())
        })
        .await
        .map_err(EngineError::host(format!(
            "could not remove the dataset of image {}",
            image.id
        )))
    }

    /// Removes images no container or image is cloned from: untagged ones, or all with `all`. Repeats
    /// until a pass removes nothing, so chains of unused images go too. Answers the removed IDs.
    pub async fn prune_images(&self, all: bool) -> Result<Vec<String>, EngineError> {
        self.reap_now().await;
        let mut removed = Vec::new();
        let mut failed = HashSet::new();
        loop {
            let images = self.list_images().await?;
            let used = self.used_images().await?;
            let candidates: Vec<Image> = images
                .into_iter()
                .filter(|i| !used.contains(&i.id) && !failed.contains(&i.id))
                .filter(|i| all || (i.name.is_empty() && i.tag.is_empty()))
                .collect();
            if candidates.is_empty() {
                return Ok(removed);
            }
            for image in candidates {
                match self.remove_image(image.id.clone()).await {
                    Ok(_) => removed.push(image.id),
                    Err(err) => {
                        tracing::warn!(image = %image.id, error = %err, "prune could not remove image");
                        failed.insert(image.id);
                    }
                }
            }
        }
    }

    /// IDs of images that hold others: clones of their `@image` (images built from them), clones
    /// of any of their snapshots that are not images (containers), or containers recorded against
    /// them. Images that only reuse a build step of theirs do not hold them.
    async fn used_images(&self) -> Result<HashSet<String>, EngineError> {
        let layout = self.layout.clone();
        let snapshots = self
            .zfs(move |zfs| zfs.snapshots_with_clones(&layout.images))
            .await?;
        let mut used: HashSet<String> = snapshots
            .iter()
            .filter(|s| {
                s.clones.iter().any(|clone| {
                    s.snapshot.snap() == IMAGE_SNAPSHOT
                        || Layout::id_under(&self.layout.images, clone.as_str()).is_none()
                })
            })
            .filter_map(|s| {
                Layout::id_under(&self.layout.images, s.snapshot.dataset().as_str())
                    .map(str::to_owned)
            })
            .collect();
        let containers = self.store.read(|db| db.list_containers()).await?;
        used.extend(containers.into_iter().map(|c| c.container.image_id));
        Ok(used)
    }

    /// Starts creating an image as `config` says. Progress text arrives on the receiver; the task
    /// answers the new image or the reason it failed (having removed whatever it made).
    pub fn start_image_creation(
        self: &Arc<Self>,
        config: ImageCreateConfig,
    ) -> (
        mpsc::Receiver<String>,
        JoinHandle<Result<Image, EngineError>>,
    ) {
        let (progress, rx) = Progress::channel();
        let engine = Arc::clone(self);
        let task = self
            .tasks
            .spawn(async move { engine.create_image(config, progress).await });
        (rx, task)
    }

    async fn create_image(
        &self,
        config: ImageCreateConfig,
        progress: Progress,
    ) -> Result<Image, EngineError> {
        let id = ids::new_id();
        let dataset = self
            .layout
            .image(&id)
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        let mut made = Made::default();
        // A crash from here on is undone at the next start (engine/recovery.rs).
        made.intents.push(self.intend(Intent::Image, &id).await?);
        let result = self
            .build_image(&config, &id, &dataset, &progress, &mut made)
            .await;
        if let Some(download) = &made.download {
            if let Err(err) = tokio::fs::remove_file(download).await {
                tracing::warn!(path = %download.display(), error = %err, "could not remove downloaded archive");
            }
        }
        let intents = std::mem::take(&mut made.intents);
        let outcome = match result {
            Ok(image) => {
                tracing::info!(image = %image.id, method = config.method.as_str(), "image created");
                Ok(image)
            }
            Err(reason) => {
                tracing::info!(method = config.method.as_str(), %reason, "image creation failed");
                if !self.undo_creation(&dataset, made).await {
                    // Left for the next start, which tries again.
                    return Err(reason);
                }
                Err(reason)
            }
        };
        for intent in intents {
            self.done(intent).await;
        }
        outcome
    }

    /// Removes what a failed creation made; false when something could not be removed.
    async fn undo_creation(&self, dataset: &DatasetName, made: Made) -> bool {
        let dataset = dataset.clone();
        let result = self
            .zfs(move |zfs| {
                if made.dataset && zfs.exists(&dataset)? {
                    zfs.destroy(
                        &dataset,
                        DestroyFlags {
                            recursive: true,
                            ..DestroyFlags::default()
                        },
                    )?;
                }
                if let Some(snapshot) = &made.source_snapshot {
                    if zfs.snapshot_exists(snapshot)? {
                        zfs.destroy_snapshot(snapshot, DestroyFlags::default())?;
                    }
                }
                Ok(())
            })
            .await;
        if let Err(err) = result {
            tracing::error!(error = %err, "could not remove what a failed image creation made");
            return false;
        }
        true
    }

    fn check_cancelled(&self) -> Result<(), EngineError> {
        if self.cancel.is_cancelled() {
            Err(EngineError::Conflict(
                "the daemon is shutting down".to_owned(),
            ))
        } else {
            Ok(())
        }
    }

    async fn build_image(
        &self,
        config: &ImageCreateConfig,
        id: &str,
        dataset: &DatasetName,
        progress: &Progress,
        made: &mut Made,
    ) -> Result<Image, EngineError> {
        let (mut name, mut tag) = parse_nametag(&config.tag).map_err(EngineError::Invalid)?;
        if config.update && self.os() != TargetOs::FreeBsd {
            return Err(EngineError::Invalid(
                "'update' runs freebsd-update(8), which exists only on FreeBSD".to_owned(),
            ));
        }
        match config.method {
            ImageCreateMethod::Fetch => {
                self.fill_from_url(&config.url, id, dataset, progress, made)
                    .await?;
            }
            ImageCreateMethod::FetchAuto => {
                if self.os() != TargetOs::FreeBsd {
                    return Err(EngineError::Invalid(
                        "'fetch-auto' downloads a FreeBSD base system and works only on FreeBSD; \
                         here use 'fetch' with an http(s):// or file:// URL of a tar archive, \
                         'zfs-copy' or 'zfs-clone'"
                            .to_owned(),
                    ));
                }
                let host = self.host.clone();
                let release = tokio::task::spawn_blocking(move || host.release())
                    .await?
                    .map_err(EngineError::host("cannot tell the host's release"))?;
                let url = platform::freebsd_base_url(&release).map_err(EngineError::Invalid)?;
                if config.autotag {
                    (name, tag) = (format!("FreeBSD-{}", release.version), "latest".to_owned());
                }
                self.fill_from_url(&url, id, dataset, progress, made)
                    .await?;
                progress
                    .say(format!(
                        "Created image from the automatically detected version: FreeBSD-{} {}.\n",
                        release.version, release.machine
                    ))
                    .await;
            }
            ImageCreateMethod::ZfsCopy | ImageCreateMethod::ZfsClone => {
                self.fill_from_dataset(config, id, dataset, progress, made)
                    .await?;
            }
        }
        self.check_cancelled()?;
        let mountpoint = self.image_mountpoint(dataset).await?;
        if config.dns {
            copy_host_file("/etc/resolv.conf", &mountpoint).map_err(EngineError::Internal)?;
        }
        if config.localtime {
            if Path::new("/etc/localtime").exists() {
                copy_host_file("/etc/localtime", &mountpoint).map_err(EngineError::Internal)?;
            } else {
                progress
                    .say("/etc/localtime not found on host, skipping...\n")
                    .await;
            }
        }
        if config.update {
            progress
                .say("updating the image with freebsd-update, this can take a while...\n")
                .await;
            let host = self.host.clone();
            let basedir = mountpoint.clone();
            let log = tokio::task::spawn_blocking(move || host.freebsd_update(&basedir))
                .await?
                .map_err(EngineError::host(
                    "could not update the image with freebsd-update",
                ))?;
            progress.say(log).await;
        }
        self.check_cancelled()?;
        let snapshot = dataset
            .snapshot("image")
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        self.zfs(move |zfs| zfs.snapshot(&snapshot))
            .await
            .map_err(EngineError::host("could not create snapshot"))?;
        let image = Image {
            id: id.to_owned(),
            name,
            tag,
            cmd: default_cmd(self.os()),
            env: vec![],
            user: "root".to_owned(),
            instructions: vec![],
            created: ids::now(),
            dataset: dataset.as_str().to_owned(),
        };
        let record = image.clone();
        // The name:tag moves here in the transaction that records the image: whoever held it
        // is untagged at the same instant, and told about below.
        let previous = self
            .store
            .write(move |db| {
                let previous = db.holder_of(&record.name, &record.tag)?;
                db.insert_image(&record)?;
                Ok(previous)
            })
            .await?;
        if let Some(previous) = previous {
            progress
                .say(format!(
                    "the tag {}:{} moved here from image {previous}, which is now untagged\n",
                    image.name, image.tag
                ))
                .await;
        }
        Ok(image)
    }

    async fn image_mountpoint(&self, dataset: &DatasetName) -> Result<PathBuf, EngineError> {
        let dataset = dataset.clone();
        self.zfs(move |zfs| match zfs.mounted_at(&dataset)? {
            Some(path) => Ok(Some(path)),
            None => {
                zfs.mount(&dataset)?;
                zfs.mountpoint(&dataset)
            }
        })
        .await?
        .ok_or_else(|| EngineError::Internal("the image dataset has no mountpoint".to_owned()))
    }

    /// `fetch`: download (or take the local file), check it is a tar archive, unpack it into a new
    /// dataset.
    async fn fill_from_url(
        &self,
        url: &str,
        id: &str,
        dataset: &DatasetName,
        progress: &Progress,
        made: &mut Made,
    ) -> Result<(), EngineError> {
        // What the user asked for cannot be had: a bad URL, a download that fails, a file that
        // is no archive.
        let refused = EngineError::Invalid;
        let archive = match Source::parse(url).map_err(refused)? {
            Source::File(path) => {
                if !path.is_file() {
                    return Err(EngineError::Invalid(format!(
                        "could not fetch file from url {url}: {} is not a file on the daemon's host",
                        path.display()
                    )));
                }
                path
            }
            Source::Http(url) => {
                let root = self.layout.root.clone();
                let root_mount = self
                    .zfs(move |zfs| zfs.mountpoint(&root))
                    .await?
                    .ok_or_else(|| {
                        EngineError::Internal("the root dataset has no mountpoint".to_owned())
                    })?;
                let dest = root_mount.join(format!(".fetch-{id}"));
                made.download = Some(dest.clone());
                progress.say(format!("fetching {url}\n")).await;
                fetch::download(&self.http, &url, &dest, progress, &self.cancel)
                    .await
                    .map_err(refused)?;
                progress.say("Succesfully fetched base system.\n").await;
                dest
            }
        };
        fetch::check_archive(&archive, url).map_err(refused)?;
        self.check_cancelled()?;
        progress
            .say("Unpacking contents and creating image...\n")
            .await;
        let target = dataset.clone();
        self.zfs(move |zfs| zfs.create(&target, &[]))
            .await
            .map_err(EngineError::host(format!(
                "error creating dataset {}",
                dataset.as_str()
            )))?;
        made.dataset = true;
        let mountpoint = self.image_mountpoint(dataset).await?;
        let host = self.host.clone();
        let entries =
            tokio::task::spawn_blocking(move || host.extract_archive(&archive, &mountpoint))
                .await?
                .map_err(EngineError::host("could not extract tar archive"))?;
        progress
            .say(format!("Extracted {entries} files, creating image...\n"))
            .await;
        Ok(())
    }

    /// `zfs-copy` and `zfs-clone`: snapshot the source and copy (send | receive) or clone it.
    async fn fill_from_dataset(
        &self,
        config: &ImageCreateConfig,
        id: &str,
        dataset: &DatasetName,
        progress: &Progress,
        made: &mut Made,
    ) -> Result<(), EngineError> {
        // The reference's words, which its client shows; why is in the daemon's log.
        let source = DatasetName::new(config.zfs_dataset.clone()).map_err(|e| {
            tracing::info!(dataset = %config.zfs_dataset, error = %e, "invalid dataset");
            EngineError::Invalid("invalid dataset".to_owned())
        })?;
        // The daemon's own datasets (its database among them) and those of any other kleene
        // root are never a source: they hold other users' containers, volumes and secrets.
        if source.is_within(&self.layout.root) {
            return Err(EngineError::Invalid(format!(
                "'{}' is inside this daemon's root '{}': images are made from datasets outside \
                 any kleene root",
                source.as_str(),
                self.layout.root.as_str()
            )));
        }
        let check = source.clone();
        let owner = self
            .zfs(move |zfs| {
                if !zfs.exists(&check)? {
                    return Ok(None);
                }
                zfs.get(&check, crate::layout::ROOT_MARK).map(Some)
            })
            .await?;
        match owner {
            None => {
                // The reference's words again; which dataset is in the log.
                tracing::info!(
                    dataset = source.as_str(),
                    "invalid dataset: it does not exist"
                );
                return Err(EngineError::NotFound("invalid dataset".to_owned()));
            }
            Some(Some(root)) => {
                return Err(EngineError::Invalid(format!(
                    "'{}' belongs to the kleene root '{root}': images are made from datasets \
                     outside any kleene root",
                    source.as_str()
                )))
            }
            Some(None) => {}
        }
        let snapshot = source
            .snapshot(id)
            .map_err(|e| EngineError::Invalid(e.to_string()))?;
        // A crash leaves this snapshot of the user's dataset: the next start removes it.
        made.intents
            .push(self.intend(Intent::Snapshot, snapshot.as_str()).await?);
        let take = snapshot.clone();
        self.zfs(move |zfs| zfs.snapshot(&take))
            .await
            .map_err(EngineError::host(format!(
                "could not snapshot {}",
                source.as_str()
            )))?;
        made.source_snapshot = Some(snapshot.clone());
        let target = dataset.clone();
        if config.method == ImageCreateMethod::ZfsCopy {
            progress
                .say("copying dataset into the new image, this can take a while...\n")
                .await;
            made.dataset = true;
            let copied = snapshot.clone();
            self.zfs(move |zfs| {
                zfs.send_receive(&copied, &target)?;
                // The copy arrives with the source's snapshot; the image keeps only `@image`.
                if let Ok(received) = target.snapshot(copied.snap()) {
                    zfs.destroy_snapshot(&received, DestroyFlags::default())?;
                }
                zfs.destroy_snapshot(&copied, DestroyFlags::default())
            })
            .await
            .map_err(EngineError::host("error copying image dataset"))?;
            made.source_snapshot = None;
        } else {
            progress.say("cloning dataset...\n").await;
            made.dataset = true;
            let origin = snapshot.clone();
            self.zfs(move |zfs| zfs.clone_snapshot(&origin, &target, &[]))
                .await
                .map_err(EngineError::host("error cloning image dataset"))?;
        }
        Ok(())
    }
}

/// The snapshot every image has, which its containers and the images built from it are clones of.
const IMAGE_SNAPSHOT: &str = "image";

/// The most build-step hand-overs one image removal makes.
const MAX_HAND_OVERS: usize = 256;

/// What holds an image, from [`Engine::image_users`].
#[derive(Debug, Default)]
struct ImageUsers {
    /// Containers cloned from it or recorded against it.
    containers: Vec<String>,
    /// Images built from it.
    images: Vec<String>,
    /// Images that reuse one of its build steps: their IDs and datasets.
    reusing: Vec<(String, DatasetName)>,
}

fn image_dataset(image: &Image) -> Result<DatasetName, EngineError> {
    DatasetName::new(image.dataset.clone()).map_err(|e| {
        EngineError::Internal(format!("image {} has an invalid dataset: {e}", image.id))
    })
}

/// Copies a host file (`/etc/resolv.conf`) to the same place under `root`. A symlink at the
/// destination, or an `etc` that is not a directory, would lead the copy out of the image: refused.
fn copy_host_file(host_path: &str, root: &Path) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let fail =
        |reason: String| format!("could not copy host '{host_path}' into the image: {reason}");
    let dest = platform::in_root(root, host_path);
    let mut dir = root.to_path_buf();
    if let Some(parent) = Path::new(host_path.trim_start_matches('/')).parent() {
        for component in parent.components() {
            dir.push(component);
            match std::fs::symlink_metadata(&dir) {
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => return Err(fail(format!("{} is not a directory", dir.display()))),
                Err(_) => std::fs::create_dir(&dir).map_err(|e| fail(e.to_string()))?,
            }
        }
    }
    // Whatever the image has there (a link, a FIFO that would block the write, a device node) is
    // replaced by a new regular file; a directory is refused.
    match std::fs::symlink_metadata(&dest) {
        Ok(meta) if meta.is_dir() => {
            return Err(fail(format!("{} is a directory", dest.display())));
        }
        Ok(_) => std::fs::remove_file(&dest).map_err(|e| fail(e.to_string()))?,
        Err(_) => {}
    }
    let mut source = std::fs::File::open(host_path).map_err(|e| fail(e.to_string()))?;
    let mut target = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&dest)
        .map_err(|e| fail(format!("{}: {e}", dest.display())))?;
    std::io::copy(&mut source, &mut target).map_err(|e| fail(e.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nametags() {
        assert_eq!(parse_nametag(""), Ok((String::new(), String::new())));
        assert_eq!(parse_nametag("base"), Ok(("base".into(), "latest".into())));
        assert_eq!(parse_nametag("base:v2"), Ok(("base".into(), "v2".into())));
        assert_eq!(
            parse_nametag("FreeBSD-14.1-RELEASE:latest"),
            Ok(("FreeBSD-14.1-RELEASE".into(), "latest".into()))
        );
        for bad in ["base:", ":v1", "ba se", "-x", "a:b:c", "x/../y:t;"] {
            assert!(parse_nametag(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn host_files_are_copied_into_the_image_and_never_through_a_symlink() {
        let root = tempfile::tempdir().unwrap();
        let host = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(host.path(), "nameserver 127.0.0.1\n").unwrap();
        let host_path = host.path().to_str().unwrap();
        copy_host_file(host_path, root.path()).unwrap();
        let dest = platform::in_root(root.path(), host_path);
        assert_eq!(
            std::fs::read_to_string(&dest).unwrap(),
            "nameserver 127.0.0.1\n"
        );

        // A symlink in the image pointing outside is replaced, not followed.
        let outside = tempfile::NamedTempFile::new().unwrap();
        std::fs::remove_file(&dest).unwrap();
        std::os::unix::fs::symlink(outside.path(), &dest).unwrap();
        copy_host_file(host_path, root.path()).unwrap();
        assert_eq!(std::fs::read_to_string(outside.path()).unwrap(), "");
        assert!(!std::fs::symlink_metadata(&dest)
            .unwrap()
            .file_type()
            .is_symlink());

        // A FIFO there would block the write for good: it is replaced too.
        std::fs::remove_file(&dest).unwrap();
        nix::unistd::mkfifo(&dest, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        copy_host_file(host_path, root.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(&dest).unwrap(),
            "nameserver 127.0.0.1\n"
        );

        // A directory is refused with its name.
        std::fs::remove_file(&dest).unwrap();
        std::fs::create_dir(&dest).unwrap();
        let err = copy_host_file(host_path, root.path()).unwrap_err();
        assert!(err.contains("is a directory"), "{err}");
    }
}
