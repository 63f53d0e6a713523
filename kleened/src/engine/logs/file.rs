//! One container's log files: the current file and its rotated predecessors, written one record
//! per chunk and read back whole.

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use tokio::sync::watch;

use super::record::{now_micros, parse, write_both, Record};

#[derive(Debug)]
struct Writer {
    file: std::fs::File,
    size: u64,
    next: u64,
}

/// One container's log.
#[derive(Debug)]
pub struct ContainerLog {
    pub(super) dir: PathBuf,
    max_size: u64,
    max_files: usize,
    writer: Mutex<Option<Writer>>,
    /// The sequence the next record gets; `u64::MAX` once the container is removed.
    changed: watch::Sender<u64>,
}
impl ContainerLog {
    /// The log in `dir`, kept in at most `max_files` files of at most `max_size` bytes; its next
    /// record follows the last one its files hold.
    pub(super) fn new(dir: PathBuf, max_size: u64, max_files: usize) -> ContainerLog {
        let log = ContainerLog {
            dir,
            max_size,
            max_files,
            writer: Mutex::new(None),
            changed: watch::channel(0).0,
        };
        let next = log.read_all().last().map_or(0, |r| r.sequence + 1);
        log.changed.send_replace(next);
        log
    }

    /// Ends the log of a removed container: the file is closed and followers end.
    pub(super) fn close(&self) {
        *self.lock() = None;
        self.changed.send_replace(u64::MAX);
    }

    fn lock(&self) -> MutexGuard<'_, Option<Writer>> {
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The files, oldest first.
    fn files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = (1..self.max_files.max(1))
            .rev()
            .map(|n| self.dir.join(format!("log.{n}")))
            .collect();
        files.push(self.dir.join("log"));
        files
    }

    fn open(&self) -> io::Result<Writer> {
        std::fs::create_dir_all(&self.dir)?;
        let path = self.dir.join("log");
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&path)?;
        let size = file.metadata()?.len();
        // Go on from the last record kept (the daemon may have restarted).
        let next = match self.read_all().last() {
            Some(last) => last.sequence + 1,
            None => 0,
        };
        file.flush()?;
        Ok(Writer { file, size, next })
    }

    /// Appends one chunk of output. A failure is logged once per chunk and the output goes on:
    /// losing a log must not stop a container.
    pub fn write(&self, data: &[u8]) {
        self.write_records(&[(now_micros(), data)]);
    }

    /// Whether anything is kept: false with no files configured or once the container is gone.
    pub(super) fn keeps(&self) -> bool {
        self.max_files > 0 && *self.changed.borrow() != u64::MAX
    }

    /// The output the files are sure to hold after a rotation: the full files beside the
    /// current one (the current one alone when there is no other).
    pub(super) fn retained(&self) -> u64 {
        self.max_size
            .saturating_mul(u64::try_from(self.max_files.saturating_sub(1).max(1)).unwrap_or(1))
    }

    /// Appends records, each chunk of output with the time it arrived.
    pub(super) fn write_records(&self, chunks: &[(u64, &[u8])]) {
        if !self.keeps() {
            return;
        }
        let mut guard = self.lock();
        if guard.is_none() {
            match self.open() {
                Ok(writer) => *guard = Some(writer),
                Err(err) => {
                    tracing::warn!(dir = %self.dir.display(), error = %err, "cannot open the container's log");
                    return;
                }
            }
        }
        let Some(writer) = guard.as_mut() else { return };
        let before = writer.next;
        for (micros, data) in chunks.iter().filter(|(_, data)| !data.is_empty()) {
            let header = format!("{} {} {}\n", writer.next, micros, data.len());
            let record = header.len() as u64 + data.len() as u64;
            if writer.size > 0 && writer.size + record > self.max_size {
                if let Err(err) = self.rotate(writer) {
                    tracing::warn!(dir = %self.dir.display(), error = %err, "cannot rotate the container's log");
                }
            }
            match write_both(&mut writer.file, header.as_bytes(), data) {
                Ok(()) => {
                    writer.size += record;
                    writer.next += 1;
                }
                Err(err) => {
                    tracing::warn!(dir = %self.dir.display(), error = %err, "cannot write the container's log");
                    break;
                }
            }
        }
        let next = writer.next;
        drop(guard);
        if next != before {
            self.changed.send_replace(next);
        }
    }

    fn rotate(&self, writer: &mut Writer) -> io::Result<()> {
        let files = self.files();
        // files: [log.(n-1), ..., log.1, log]; the oldest is dropped, each moves one older.
        if let Some(oldest) = files.first().filter(|_| files.len() > 1) {
            let _ = std::fs::remove_file(oldest);
        }
        for pair in files.windows(2) {
            if pair[1].exists() {
                std::fs::rename(&pair[1], &pair[0])?;
            }
        }
        if files.len() == 1 {
            std::fs::remove_file(&files[0])?;
        }
        writer.file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("log"))?;
        writer.size = 0;
        Ok(())
    }

    /// Every record kept, oldest first.
    pub fn read_all(&self) -> Vec<Record> {
        let mut records = vec![];
        for path in self.files() {
            let mut bytes = vec![];
            if std::fs::File::open(&path)
                .and_then(|mut f| f.read_to_end(&mut bytes))
                .is_ok()
            {
                records.extend(parse(&bytes));
            }
        }
        records
    }

    /// Waits until a record after `sequence` is there or the container is removed; false once it
    /// is removed.
    pub async fn wait_after(&self, sequence: Option<u64>) -> bool {
        let mut changes = self.changed.subscribe();
        let wanted = sequence.map_or(0, |s| s + 1);
        let result = changes
            .wait_for(|next| *next == u64::MAX || *next > wanted)
            .await
            .map(|next| *next != u64::MAX);
        result.unwrap_or(false)
    }

    /// Whether the container is gone.
    pub fn removed(&self) -> bool {
        *self.changed.borrow() == u64::MAX
    }
}
