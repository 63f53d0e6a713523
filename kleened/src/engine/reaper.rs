//! Container datasets destroyed before a removal answers, or in the background when ZFS keeps one
//! busy. A removal destroys its container's dataset before it answers, so a script that checks the
//! host right after sees nothing left ([`Engine::destroy_or_reap`]); zfs-fuse first answers "busy"
//! right after a container ran, so a busy dataset is tried again (with a sync(2)) for up to
//! [`REMOVE_DEADLINE`], then handed to the reaper, and the answer says so ([`Removed`]).
//!
//! The queue is in memory. A dataset still queued when the daemon dies is a container dataset the
//! store does not know, which the next start-up queues again ([`super::recovery`]): a crash never
//! leaks one. The reaper never destroys a dataset that a container or image in the store owns, nor
//! one under a container that runs. Image removal and prune first destroy the queued clones of the
//! image, so a removed container never keeps its image. Each dataset has its own back-off (50 ms
//! doubling to 30 s), so one that zfs-fuse keeps busy never holds up the others.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use zfs::{DatasetName, DestroyFlags};

use super::Engine;
use crate::layout::Layout;

const MAX_BACKOFF: Duration = Duration::from_secs(30);
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// How long a removal tries to destroy a busy dataset before the reaper takes it over.
pub(super) const REMOVE_DEADLINE: Duration = Duration::from_secs(5);

/// What a removal answers: its result, and the datasets ZFS kept busy past [`REMOVE_DEADLINE`],
/// which the reaper destroys later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed<T> {
    pub answer: T,
    pub in_background: Vec<String>,
}

impl<T> Removed<T> {
    /// The warning a client shows for each dataset left to the reaper.
    pub fn warnings(&self) -> impl Iterator<Item = String> + '_ {
        self.in_background
            .iter()
            .map(|dataset| format!("dataset {dataset} is busy: it is destroyed in the background"))
    }
}

/// A dataset waiting to be destroyed. Each has its own back-off, so one that stays busy never
/// holds up the others.
#[derive(Debug)]
struct Entry {
    dataset: DatasetName,
    /// Not tried again before this.
    due: Instant,
    /// The wait after its next failure.
    backoff: Duration,
}

#[derive(Debug, Default)]
pub(super) struct Reaper {
    queue: std::sync::Mutex<VecDeque<Entry>>,
    bell: tokio::sync::Notify,
    busy: tokio::sync::Mutex<()>,
    started: std::sync::atomic::AtomicBool,
    /// How long a removal tries a busy dataset: [`REMOVE_DEADLINE`] unless a test shortens it.
    remove_deadline: std::sync::OnceLock<Duration>,
}

/// What the reaper does next.
enum Next {
    Idle,
    Wait(Instant),
    Destroy(DatasetName),
}

impl Reaper {
    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<Entry>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn queued(&self) -> Vec<String> {
        self.queue()
            .iter()
            .map(|e| e.dataset.as_str().to_owned())
            .collect()
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.queue().len()
    }

    #[cfg(test)]
    pub(super) fn shorten_remove_deadline(&self, deadline: Duration) {
        let _ = self.remove_deadline.set(deadline);
    }

    /// The first dataset that is due, else when the next one is.
    fn next(&self) -> Next {
        let queue = self.queue();
        let now = Instant::now();
        if let Some(entry) = queue.iter().find(|e| e.due <= now) {
            return Next::Destroy(entry.dataset.clone());
        }
        queue
            .iter()
            .map(|e| e.due)
            .min()
            .map_or(Next::Idle, Next::Wait)
    }

    /// Removes a destroyed dataset, or sends one that failed to the back, due after its back-off.
    fn settle(&self, dataset: &DatasetName, done: bool) {
        let mut queue = self.queue();
        let Some(index) = queue.iter().position(|e| &e.dataset == dataset) else {
            return;
        };
        let Some(mut entry) = queue.remove(index) else {
            return;
        };
        if !done {
            entry.due = Instant::now() + entry.backoff;
            entry.backoff = (entry.backoff * 2).min(MAX_BACKOFF);
            queue.push_back(entry);
        }
    }
}

impl Engine {
    pub(super) fn reap(&self, dataset: DatasetName) {
        {
            let mut queue = self.reaper.queue();
            if !queue.iter().any(|e| e.dataset == dataset) {
                queue.push_back(Entry {
                    dataset,
                    due: Instant::now(),
                    backoff: FIRST_BACKOFF,
                });
            }
        }
        self.reaper.bell.notify_one();
    }

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
        loop {
            let dataset = match self.reaper.next() {
                Next::Destroy(dataset) => dataset,
                Next::Idle => {
                    tokio::select! {
                        () = self.reaper.bell.notified() => continue,
                        () = self.cancel.cancelled() => return,
                    }
                }
                Next::Wait(until) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(until) => continue,
                        () = self.reaper.bell.notified() => continue,
                        () = self.cancel.cancelled() => return,
                    }
                }
            };
            let done = {
                let _busy = self.reaper.busy.lock().await;
                self.destroy_reaped(&dataset).await
            };
            self.reaper.settle(&dataset, done);
        }
    }

    async fn destroy_reaped(&self, dataset: &DatasetName) -> bool {
        let name = dataset.as_str().to_owned();
        let owned = self.store.read(move |db| db.owns_dataset(&name)).await;
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

    /// Destroys a removed object's dataset now, trying a busy one again until [`REMOVE_DEADLINE`];
    /// answers whether it is gone. One still busy then is handed to the reaper.
    pub(super) async fn destroy_or_reap(&self, dataset: DatasetName) -> bool {
        let deadline = Instant::now()
            + *self
                .reaper
                .remove_deadline
                .get()
                .unwrap_or(&REMOVE_DEADLINE);
        let mut backoff = FIRST_BACKOFF;
        loop {
            let done = {
                let _busy = self.reaper.busy.lock().await;
                self.destroy_reaped(&dataset).await
            };
            if done {
                return true;
            }
            if Instant::now() + backoff > deadline {
                tracing::warn!(
                    dataset = dataset.as_str(),
                    "still busy: the reaper destroys it later"
                );
                self.reap(dataset);
                return false;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Destroys now every queued dataset (before an image is removed or images are pruned: a
    /// queued clone still holds its image), waiting for one being destroyed meanwhile. What cannot
    /// be destroyed stays queued.
    pub(super) async fn reap_now(&self) {
        let _busy = self.reaper.busy.lock().await;
        let queued: Vec<DatasetName> = self
            .reaper
            .queue()
            .iter()
            .map(|e| e.dataset.clone())
            .collect();
        for dataset in queued {
            if self.destroy_reaped(&dataset).await {
                self.reaper.settle(&dataset, true);
            }
        }
    }
}
