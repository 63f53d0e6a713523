//! Container datasets destroyed in the background. A removed container is gone for the API as
//! soon as its processes, mounts and records are: destroying its dataset (which zfs-fuse first
//! answers "busy" right after the container ran, and which takes tens of milliseconds on it) no
//! longer holds up `klee rm` or `run --rm`.
//!
//! The queue is in memory. A dataset still queued when the daemon dies is a container dataset the
//! store does not know, which the next start-up queues again ([`super::recovery`]): a crash never
//! leaks one. The reaper never destroys a dataset that a container or image in the store owns, nor
//! one under a container that runs. Image removal and prune first destroy the queued clones of the
//! image, so a removed container never keeps its image.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use zfs::{DatasetName, DestroyFlags};

use super::layout::Layout;
use super::Engine;

/// Waits between tries of a dataset zfs would not destroy yet: doubling, up to this.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
const FIRST_BACKOFF: Duration = Duration::from_millis(50);

/// The datasets waiting to be destroyed, and a bell for the reaper.
#[derive(Debug, Default)]
pub(super) struct Reaper {
    queue: std::sync::Mutex<VecDeque<DatasetName>>,
    bell: tokio::sync::Notify,
    /// Held while one dataset is being destroyed, so image removal can wait for it.
    busy: tokio::sync::Mutex<()>,
    started: std::sync::atomic::AtomicBool,
}

impl Reaper {
    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<DatasetName>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The datasets waiting, by name.
    pub(super) fn queued(&self) -> Vec<String> {
        self.queue().iter().map(|d| d.as_str().to_owned()).collect()
    }

    /// How many datasets wait.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.queue().len()
    }
}

impl Engine {
    /// Queues a removed container's dataset for destruction.
    pub(super) fn reap(&self, dataset: DatasetName) {
        {
            let mut queue = self.reaper.queue();
            if !queue.contains(&dataset) {
                queue.push_back(dataset);
            }
        }
        self.reaper.bell.notify_one();
    }

    /// Starts the reaper (at start-up, after recovery queued what an earlier daemon left); once.
    pub(super) fn start_reaper(self: &Arc<Self>) {
        if self
            .reaper
            .started
            .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            return;
        }
        let engine = Arc::clone(self);
        self.tasks.spawn(async move { engine.reap_forever().await });
    }

    async fn reap_forever(&self) {
        let mut backoff = FIRST_BACKOFF;
        loop {
            let next = self.reaper.queue().front().cloned();
            let Some(dataset) = next else {
                tokio::select! {
                    () = self.reaper.bell.notified() => continue,
                    () = self.cancel.cancelled() => return,
                }
            };
            let done = {
                let _busy = self.reaper.busy.lock().await;
                self.destroy_reaped(&dataset).await
            };
            if done {
                self.reaper.queue().retain(|d| d != &dataset);
                backoff = FIRST_BACKOFF;
            } else {
                // Tried again later, after the others.
                {
                    let mut queue = self.reaper.queue();
                    queue.retain(|d| d != &dataset);
                    queue.push_back(dataset);
                }
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = self.cancel.cancelled() => return,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }

    /// Destroys one queued dataset if nothing in the store owns it and no container runs in it;
    /// true when it is gone (or must never be destroyed: then it leaves the queue too).
    async fn destroy_reaped(&self, dataset: &DatasetName) -> bool {
        let name = dataset.as_str().to_owned();
        let owned = self
            .store
            .read(move |db| {
                Ok(db
                    .list_containers()?
                    .iter()
                    .any(|c| c.container.dataset == name)
                    || db.list_images()?.iter().any(|i| i.dataset == name))
            })
            .await;
        match owned {
            Ok(false) => {}
            Ok(true) => {
                tracing::warn!(
                    dataset = dataset.as_str(),
                    "not destroyed: an object in the store owns it"
                );
                return true;
            }
            Err(err) => {
                tracing::warn!(dataset = dataset.as_str(), error = %err, "cannot read the store; the dataset waits");
                return false;
            }
        }
        if let Some(id) = Layout::id_under(&self.layout.containers, dataset.as_str()) {
            match self.is_running(id).await {
                Ok(false) => {}
                Ok(true) => {
                    tracing::warn!(
                        dataset = dataset.as_str(),
                        "not destroyed: processes run in it"
                    );
                    return true;
                }
                Err(err) => {
                    tracing::warn!(dataset = dataset.as_str(), error = %err, "the dataset waits");
                    return false;
                }
            }
        }
        let target = dataset.clone();
        let result = self
            .zfs(move |zfs| {
                // No forced unmount: the container's processes are gone, so what keeps a file
                // system busy is the host's (left alone) or data not yet written out. zfs-fuse
                // answers "busy" until a dataset's dirty data is synced, and a forced unmount
                // then leaves the dataset busy for good; so a busy dataset gets a sync(2) and one
                // more try.
                let flags = DestroyFlags {
                    recursive: true,
                    ..DestroyFlags::default()
                };
                let destroyed = match zfs.destroy(&target, flags) {
                    Err(err) if err.is_busy() => {
                        nix::unistd::sync();
                        zfs.destroy(&target, flags)
                    }
                    other => other,
                };
                match destroyed {
                    Err(err) if err.is_not_found() => Ok(()),
                    other => other,
                }
            })
            .await;
        match result {
            Ok(()) => {
                tracing::debug!(dataset = dataset.as_str(), "destroyed");
                true
            }
            Err(err) => {
                tracing::warn!(dataset = dataset.as_str(), error = %err, "could not destroy it yet; trying again");
                false
            }
        }
    }

    /// Destroys now every queued dataset (before an image is removed or images are pruned: a
    /// queued clone still holds its image), waiting for one being destroyed meanwhile. What cannot
    /// be destroyed stays queued.
    pub(super) async fn reap_now(&self) {
        let _busy = self.reaper.busy.lock().await;
        let queued: Vec<DatasetName> = self.reaper.queue().iter().cloned().collect();
        for dataset in queued {
            if self.destroy_reaped(&dataset).await {
                self.reaper.queue().retain(|d| d != &dataset);
            }
        }
    }
}
