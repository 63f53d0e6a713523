//! Container logs: everything a container's processes print (its first process, detached execs
//! and attached ones) is kept on the daemon's host, per container, in `<log dir>/<id>/log` and at
//! most `max_files - 1` rotated files beside it (`log.1` the newest), each at most `max_size`
//! bytes. The logs survive daemon restarts and go with the container.
//!
//! A file is a sequence of records, each a header line `<sequence> <microseconds since the epoch>
//! <length>` and that many bytes of output, exactly as the process wrote them (so nothing is lost
//! or re-encoded, and a line cut across two reads stays whole when read back). Sequence numbers
//! grow across rotations and restarts: a follower asks for the records after the last it saw.
//!
//! Writing is a `write(2)` of one record per output chunk into the page cache, from the task that
//! pumps the process's output; readers never block writers. A process that floods its output
//! goes through a [`LogFeed`]: past a small budget per [`FLUSH_WINDOW`], its chunks wait in
//! memory and are written at the end of the window, and of what waits only the newest
//! [`LogFeed`] bound is kept: older output would be rotated out of the files anyway, so writing it
//! would only cost the stream its speed. A window that overflowed makes the next one twice as
//! long, up to [`FLUSH_WINDOW_MAX`]. Followers see a flood's output once per window, and a daemon
//! that crashes loses at most one window of it.

use std::collections::HashMap;
use std::collections::VecDeque;
use std::io::IoSlice;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

pub use crate::config::LogConfig;

/// One record read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its place in the container's log.
    pub sequence: u64,
    /// When it was written, in microseconds since the epoch.
    pub micros: u64,
    /// The output.
    pub data: Vec<u8>,
}

#[derive(Debug)]
struct Writer {
    file: std::fs::File,
    size: u64,
    next: u64,
}

/// One container's log.
#[derive(Debug)]
pub struct ContainerLog {
    dir: PathBuf,
    max_size: u64,
    max_files: usize,
    writer: Mutex<Option<Writer>>,
    /// The sequence the next record gets; `u64::MAX` once the container is removed.
    changed: watch::Sender<u64>,
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The records of one file.
fn parse(bytes: &[u8]) -> Vec<Record> {
    let mut records = vec![];
    let mut rest = bytes;
    while let Some(end) = rest.iter().position(|b| *b == b'\n') {
        let header = String::from_utf8_lossy(&rest[..end]);
        let mut fields = header.split(' ').map(str::parse::<u64>);
        let (Some(Ok(sequence)), Some(Ok(micros)), Some(Ok(length))) =
            (fields.next(), fields.next(), fields.next())
        else {
            break;
        };
        let start = end + 1;
        let Some(stop) = usize::try_from(length)
            .ok()
            .and_then(|l| start.checked_add(l))
            .filter(|stop| *stop <= rest.len())
        else {
            // A record cut by a crash: what was written before it stays readable.
            break;
        };
        records.push(Record {
            sequence,
            micros,
            data: rest[start..stop].to_vec(),
        });
        rest = &rest[stop..];
    }
    records
}

/// Writes `header` then `data` (one record) without joining them first.
fn write_both(file: &mut std::fs::File, header: &[u8], data: &[u8]) -> io::Result<()> {
    let written = file.write_vectored(&[IoSlice::new(header), IoSlice::new(data)])?;
    if written < header.len() {
        file.write_all(&header[written..])?;
        file.write_all(data)
    } else {
        file.write_all(&data[written - header.len()..])
    }
}

/// How long a flooding process's output waits in memory before it is written.
pub const FLUSH_WINDOW: Duration = Duration::from_millis(250);

/// The longest window: each window of a flood that overflowed what the files keep is twice as
/// long as the last, up to this, so a flood that goes on is written twice a second.
pub const FLUSH_WINDOW_MAX: Duration = Duration::from_millis(2000);

/// What a process may write straight to its log in one [`FLUSH_WINDOW`]: a service's ordinary
/// output (up to 4 MB/s) is on disk at once.
const DIRECT_BUDGET: usize = 1024 * 1024;

/// The most a [`LogFeed`] holds in memory when the log would keep more: then it writes what it
/// holds rather than drop any of it.
const HELD_MAX: usize = 8 * 1024 * 1024;

/// One process's output on its way into its container's log (see the module's documentation).
/// The pump hands over its read buffer and gets one back, so a flood's chunks wait without
/// being copied.
#[derive(Debug)]
pub struct LogFeed<'a> {
    log: &'a ContainerLog,
    /// Chunks waiting: the time each arrived, its buffer and where in it the output is.
    held: VecDeque<(u64, Vec<u8>, std::ops::Range<usize>)>,
    held_bytes: usize,
    /// The length of the pump's buffers.
    frame: usize,
    /// Buffers whose output was written or dropped, for the pump's next reads.
    spare: Vec<Vec<u8>>,
    window: Instant,
    /// The length of the current window.
    span: Duration,
    /// Whether output was dropped in the current window.
    overflowed: bool,
    window_bytes: usize,
    /// Output dropped because newer output of the same flood would have rotated it out.
    dropped: u64,
}

impl<'a> LogFeed<'a> {
    /// A feed into `log`.
    pub fn new(log: &'a ContainerLog) -> LogFeed<'a> {
        LogFeed {
            log,
            held: VecDeque::new(),
            held_bytes: 0,
            frame: 0,
            spare: vec![],
            window: Instant::now(),
            span: FLUSH_WINDOW,
            overflowed: false,
            window_bytes: 0,
            dropped: 0,
        }
    }

    /// How much output the feed holds at most: what the files would keep of a flood, within
    /// [`HELD_MAX`].
    fn bound(&self) -> usize {
        usize::try_from(self.log.retained())
            .unwrap_or(usize::MAX)
            .min(HELD_MAX)
    }

    /// Whether the files keep more than the feed may hold, so that it may drop nothing.
    fn lossless(&self) -> bool {
        self.log.retained() > HELD_MAX as u64
    }

    /// Takes the first `len` bytes of `buf` as output and answers a buffer of the same length
    /// for the next read.
    pub fn keep(&mut self, buf: Vec<u8>, len: usize) -> Vec<u8> {
        if len == 0 || !self.log.keeps() {
            return buf;
        }
        let now = Instant::now();
        if now.duration_since(self.window) >= self.span {
            self.span = if std::mem::take(&mut self.overflowed) {
                (self.span * 2).min(FLUSH_WINDOW_MAX)
            } else {
                // The flood, if any, is over: its buffers go back to the allocator.
                self.spare.clear();
                FLUSH_WINDOW
            };
            self.flush();
            self.window = now;
            self.window_bytes = 0;
        }
        if self.held.is_empty() && self.window_bytes + len <= DIRECT_BUDGET {
            self.window_bytes += len;
            self.log.write(&buf[..len]);
            return buf;
        }
        self.frame = buf.len();
        let next = match self.held.back_mut() {
            // A chunk that fits after the newest held one joins it (one copy, no allocation).
            Some((_, last, used)) if len < self.frame / 2 && used.end + len <= last.len() => {
                last[used.end..used.end + len].copy_from_slice(&buf[..len]);
                used.end += len;
                buf
            }
            _ if len < self.frame / 2 => {
                let mut held = self.spare.pop().unwrap_or_else(|| vec![0; self.frame]);
                held[..len].copy_from_slice(&buf[..len]);
                self.held.push_back((now_micros(), held, 0..len));
                buf
            }
            _ => {
                // Most of the buffer is output: keep it and read into another.
                let next = self.spare.pop().unwrap_or_else(|| vec![0; self.frame]);
                self.held.push_back((now_micros(), buf, 0..len));
                next
            }
        };
        self.held_bytes += len;
        let bound = self.bound();
        if self.held_bytes > bound {
            if self.lossless() {
                self.flush();
            } else {
                // The oldest output goes, to the byte.
                while self.held_bytes > bound {
                    let excess = self.held_bytes - bound;
                    let Some((_, _, used)) = self.held.front_mut() else {
                        break;
                    };
                    let gone = excess.min(used.len());
                    used.start += gone;
                    self.held_bytes -= gone;
                    self.dropped += gone as u64;
                    self.overflowed = true;
                    if used.start == used.end {
                        if let Some((_, old, _)) = self.held.pop_front() {
                            self.recycle(old);
                        }
                    }
                }
            }
        }
        next
    }

    /// Keeps the pump's buffers for its next reads and held chunks, as many as a flood holds.
    fn recycle(&mut self, old: Vec<u8>) {
        if old.len() == self.frame && self.spare.len() <= self.bound() / self.frame.max(1) + 1 {
            self.spare.push(old);
        }
    }

    /// When the held output must be written, if any is held.
    pub fn deadline(&self) -> Option<Instant> {
        (!self.held.is_empty()).then(|| self.window + self.span)
    }

    /// Writes what is held.
    pub fn flush(&mut self) {
        if self.held.is_empty() {
            return;
        }
        let chunks: Vec<(u64, &[u8])> = self
            .held
            .iter()
            .map(|(micros, buf, used)| (*micros, &buf[used.clone()]))
            .collect();
        self.log.write_records(&chunks);
        self.held_bytes = 0;
        while let Some((_, old, _)) = self.held.pop_front() {
            self.recycle(old);
        }
        if self.dropped > 0 {
            tracing::debug!(dir = %self.log.dir.display(), bytes = self.dropped, "output of a flood not written: it would have been rotated out");
            self.dropped = 0;
        }
    }
}

impl Drop for LogFeed<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

impl ContainerLog {
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
    fn keeps(&self) -> bool {
        self.max_files > 0 && *self.changed.borrow() != u64::MAX
    }

    /// The output the files are sure to hold after a rotation: the full files beside the
    /// current one (the current one alone when there is no other).
    fn retained(&self) -> u64 {
        self.max_size
            .saturating_mul(u64::try_from(self.max_files.saturating_sub(1).max(1)).unwrap_or(1))
    }

    /// Appends records, each chunk of output with the time it arrived.
    fn write_records(&self, chunks: &[(u64, &[u8])]) {
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

/// The logs of every container.
#[derive(Debug)]
pub struct Logs {
    config: LogConfig,
    open: Mutex<HashMap<String, Arc<ContainerLog>>>,
}

impl Logs {
    /// Logs kept as `config` says.
    pub fn new(config: LogConfig) -> Logs {
        Logs {
            config,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// The directory holding every container's log.
    pub fn dir(&self) -> &Path {
        &self.config.dir
    }

    /// The log of container `id` (made on first write).
    pub fn of(&self, id: &str) -> Arc<ContainerLog> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(open.entry(id.to_owned()).or_insert_with(|| {
            let log = ContainerLog {
                dir: self.config.dir.join(id),
                max_size: self.config.max_size,
                max_files: self.config.max_files,
                writer: Mutex::new(None),
                changed: watch::channel(0).0,
            };
            let next = log.read_all().last().map_or(0, |r| r.sequence + 1);
            log.changed.send_replace(next);
            Arc::new(log)
        }))
    }

    /// Removes a container's log: followers end, the files go.
    pub fn remove(&self, id: &str) {
        let log = self
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        if let Some(log) = log {
            *log.lock() = None;
            log.changed.send_replace(u64::MAX);
        }
        let dir = self.config.dir.join(id);
        if let Err(err) = std::fs::remove_dir_all(&dir) {
            if err.kind() != io::ErrorKind::NotFound {
                tracing::warn!(dir = %dir.display(), error = %err, "cannot remove the container's log");
            }
        }
    }

    /// The containers that have a log directory.
    pub fn containers(&self) -> Vec<String> {
        std::fs::read_dir(&self.config.dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter(|e| e.path().is_dir())
                    .filter_map(|e| e.file_name().to_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// What a reader asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogQuery {
    /// Only the last lines.
    pub tail: Option<usize>,
    /// Only what was written at or after this many microseconds since the epoch.
    pub since: Option<u64>,
    /// Each line begins with the time it was written (RFC 3339, microseconds, UTC) and a space.
    pub timestamps: bool,
}

/// Formats records as output, each line after the time of the record it starts in when
/// timestamps are asked for; an unfinished line is carried over to the next record.
#[derive(Debug, Default)]
pub struct Formatter {
    timestamps: bool,
    at_line_start: bool,
}

impl Formatter {
    /// A formatter for `query`.
    pub fn new(query: &LogQuery) -> Formatter {
        Formatter {
            timestamps: query.timestamps,
            at_line_start: true,
        }
    }

    /// The bytes of `record` as the reader gets them.
    pub fn format(&mut self, record: &Record) -> Vec<u8> {
        if !self.timestamps {
            return record.data.clone();
        }
        let stamp = timestamp(record.micros);
        let mut out = Vec::with_capacity(record.data.len() + 32);
        for piece in record.data.split_inclusive(|b| *b == b'\n') {
            if self.at_line_start {
                out.extend_from_slice(stamp.as_bytes());
                out.push(b' ');
            }
            out.extend_from_slice(piece);
            self.at_line_start = piece.ends_with(b"\n");
        }
        out
    }
}

/// RFC 3339 with microseconds, UTC.
pub fn timestamp(micros: u64) -> String {
    let nanos = i128::from(micros) * 1000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
            ))
            .ok()
        })
        .unwrap_or_default()
}

/// The records a query selects: since a time, then the last `tail` lines (a line belongs where
/// it ends; the first record kept is cut to start at a line).
pub fn select(records: Vec<Record>, query: &LogQuery) -> Vec<Record> {
    let mut records: Vec<Record> = records
        .into_iter()
        .filter(|r| query.since.is_none_or(|since| r.micros >= since))
        .collect();
    let Some(tail) = query.tail else {
        return records;
    };
    if tail == 0 {
        return vec![];
    }
    let mut seen = 0;
    let mut last_byte = true;
    for index in (0..records.len()).rev() {
        for pos in (0..records[index].data.len()).rev() {
            let newline = records[index].data[pos] == b'\n';
            if std::mem::take(&mut last_byte) && newline {
                // It ends the last line.
                continue;
            }
            if newline {
                seen += 1;
                if seen == tail {
                    records.drain(..index);
                    records[0].data.drain(..=pos);
                    if records[0].data.is_empty() {
                        records.remove(0);
                    }
                    return records;
                }
            }
        }
    }
    records
}

/// Parses `since`: RFC 3339, or a number of seconds since the epoch, or a duration back from now
/// (`30s`, `10m`, `2h`, `1d`). Answers microseconds since the epoch.
pub fn parse_since(text: &str) -> Result<u64, String> {
    let invalid = || {
        format!("invalid since '{text}': give an RFC 3339 time, seconds since the epoch, or a duration such as 10m")
    };
    if let Ok(seconds) = text.parse::<f64>() {
        if seconds >= 0.0 {
            return Ok((seconds * 1_000_000.0) as u64);
        }
        return Err(invalid());
    }
    if let Some(unit) = text.chars().last() {
        let factor = match unit {
            's' => Some(1),
            'm' => Some(60),
            'h' => Some(3600),
            'd' => Some(86_400),
            _ => None,
        };
        if let Some(factor) = factor {
            if let Ok(count) = text[..text.len() - 1].parse::<u64>() {
                let back = count.saturating_mul(factor).saturating_mul(1_000_000);
                return Ok(now_micros().saturating_sub(back));
            }
        }
    }
    let parsed = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|_| invalid())?;
    u64::try_from(parsed.unix_timestamp_nanos() / 1000).map_err(|_| invalid())
}

impl super::Engine {
    /// The output of a container as `query` selects it, in chunks; with `follow`, then what it
    /// writes next, until the container is removed (or the receiver is dropped).
    pub async fn container_logs(
        &self,
        identifier: String,
        query: LogQuery,
        follow: bool,
    ) -> Result<tokio::sync::mpsc::Receiver<Vec<u8>>, super::EngineError> {
        let container = self
            .find_container(&identifier)
            .await?
            .ok_or_else(|| super::EngineError::NotFound("no such container".into()))?;
        let log = self.logs.of(&container.id);
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        self.tasks.spawn(async move {
            let mut formatter = Formatter::new(&query);
            let reader = Arc::clone(&log);
            let Ok(records) = tokio::task::spawn_blocking(move || reader.read_all()).await else {
                return;
            };
            let mut last = records.last().map(|r| r.sequence);
            for record in select(records, &query) {
                if tx.send(formatter.format(&record)).await.is_err() {
                    return;
                }
            }
            if !follow {
                return;
            }
            loop {
                tokio::select! {
                    more = log.wait_after(last) => if !more { return },
                    () = tx.closed() => return,
                }
                let reader = Arc::clone(&log);
                let Ok(records) = tokio::task::spawn_blocking(move || reader.read_all()).await
                else {
                    return;
                };
                let seen = last;
                for record in records
                    .into_iter()
                    .filter(|r| seen.is_none_or(|l| r.sequence > l))
                {
                    last = Some(record.sequence);
                    if tx.send(formatter.format(&record)).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logs(max_size: u64, max_files: usize) -> (tempfile::TempDir, Logs) {
        let dir = tempfile::tempdir().unwrap();
        let logs = Logs::new(LogConfig {
            dir: dir.path().join("logs"),
            max_size,
            max_files,
        });
        (dir, logs)
    }

    fn text(records: &[Record]) -> String {
        records
            .iter()
            .map(|r| String::from_utf8_lossy(&r.data).into_owned())
            .collect()
    }

    /// Feeds `chunks` through a feed with buffers of `frame` bytes, as the pump does.
    fn feed_all(feed: &mut LogFeed<'_>, frame: usize, chunks: &[Vec<u8>]) {
        let mut buf = vec![0u8; frame];
        for chunk in chunks {
            buf[..chunk.len()].copy_from_slice(chunk);
            buf = feed.keep(buf, chunk.len());
            assert_eq!(buf.len(), frame, "the pump gets a buffer of its size back");
        }
    }

    /// Numbered lines, `count` chunks of `size` bytes.
    fn numbered(count: usize, size: usize) -> Vec<Vec<u8>> {
        let mut all = vec![];
        let mut n = 0u64;
        while all.len() < count * size {
            all.extend_from_slice(format!("{n:07}\n").as_bytes());
            n += 1;
        }
        all.chunks(size).take(count).map(<[u8]>::to_vec).collect()
    }

    #[test]
    fn a_feed_writes_ordinary_output_at_once() {
        let (_dir, logs) = logs(1 << 20, 2);
        let log = logs.of("c1");
        let mut feed = LogFeed::new(&log);
        feed_all(&mut feed, 4096, &[b"hello\n".to_vec(), b"world\n".to_vec()]);
        assert_eq!(feed.deadline(), None, "nothing waits");
        assert_eq!(text(&log.read_all()), "hello\nworld\n");
    }

    #[test]
    fn a_flood_is_written_once_per_window_with_its_newest_output_whole() {
        // The files keep at least 256 KiB (one full file beside the current one).
        let (_dir, logs) = logs(256 * 1024, 2);
        let log = logs.of("c1");
        let mut feed = LogFeed::new(&log);
        // 4 MiB in 32 KiB chunks, far past the direct budget of a window.
        let chunks = numbered(128, 32 * 1024);
        feed_all(&mut feed, 32 * 1024, &chunks);
        let deadline = feed
            .deadline()
            .expect("a flood waits for the end of its window");
        assert!(deadline > Instant::now() && deadline <= Instant::now() + FLUSH_WINDOW);
        assert!(
            feed.held_bytes <= 256 * 1024,
            "{} bytes held",
            feed.held_bytes
        );
        assert!(
            feed.dropped > 0,
            "output the files would not keep is not written"
        );
        let before = log.read_all().len();
        feed.flush();
        assert_eq!(feed.deadline(), None);
        let records = log.read_all();
        assert!(
            records.len() > before,
            "the held output is written at the flush"
        );
        // The newest 256 KiB arrive whole and in order, and end the log.
        let all: Vec<u8> = chunks.concat();
        let kept: Vec<u8> = records.iter().flat_map(|r| r.data.clone()).collect();
        let newest = &all[all.len() - 256 * 1024..];
        assert!(kept.ends_with(newest), "the newest output is whole");
        let sequences: Vec<u64> = records.iter().map(|r| r.sequence).collect();
        assert!(sequences.windows(2).all(|w| w[1] == w[0] + 1));
    }

    #[test]
    fn a_flood_that_goes_on_gets_longer_windows_and_a_pause_resets_them() {
        let (_dir, logs) = logs(64 * 1024, 2);
        let log = logs.of("c1");
        let mut feed = LogFeed::new(&log);
        let flood = numbered(64, 32 * 1024);
        let mut spans = vec![];
        for _ in 0..5 {
            feed_all(&mut feed, 32 * 1024, &flood);
            // The window ends; the pump's timer wrote what was held.
            feed.flush();
            feed.window -= FLUSH_WINDOW_MAX;
            feed_all(&mut feed, 32 * 1024, &flood[..1]);
            spans.push(feed.span.as_millis());
            assert!(!feed.spare.is_empty(), "a flood keeps its buffers");
        }
        assert_eq!(spans, [500, 1000, 2000, 2000, 2000]);
        // A window in which nothing overflows: the next is short again.
        feed.flush();
        feed.window -= FLUSH_WINDOW_MAX;
        feed_all(&mut feed, 32 * 1024, &flood[..1]);
        feed.window -= FLUSH_WINDOW_MAX;
        feed_all(&mut feed, 32 * 1024, &flood[..1]);
        assert_eq!(feed.span, FLUSH_WINDOW);
        assert!(feed.spare.is_empty(), "after the flood its buffers go");
    }

    #[test]
    fn a_log_that_keeps_more_than_a_feed_holds_loses_nothing() {
        // Three files of 16 MiB keep 32 MiB whole: more than the feed may hold in memory.
        let (_dir, logs) = logs(16 << 20, 3);
        let log = logs.of("c1");
        let chunks = numbered(96, 128 * 1024);
        {
            let mut feed = LogFeed::new(&log);
            feed_all(&mut feed, 128 * 1024, &chunks);
            assert!(feed.held_bytes <= HELD_MAX);
            assert_eq!(feed.dropped, 0);
            // Dropping the feed writes what it holds.
        }
        let kept: Vec<u8> = log.read_all().iter().flat_map(|r| r.data.clone()).collect();
        assert!(kept == chunks.concat(), "all 12 MiB are kept in order");
    }

    #[test]
    fn small_chunks_of_a_flood_are_joined_and_the_newest_kept_to_the_byte() {
        let (_dir, logs) = logs(64 * 1024, 2);
        let log = logs.of("c1");
        let mut feed = LogFeed::new(&log);
        let chunks = numbered(2048, 1024);
        feed_all(&mut feed, 128 * 1024, &chunks);
        // Held output stays within what the files keep.
        assert_eq!(
            feed.held_bytes,
            64 * 1024,
            "exactly what the files keep whole"
        );
        assert!(feed.held.len() <= 2, "joined into the pump-sized buffers");
        drop(feed);
        let kept: Vec<u8> = log.read_all().iter().flat_map(|r| r.data.clone()).collect();
        assert!(kept.ends_with(&chunks.concat()[2048 * 1024 - 64 * 1024..]));
    }

    #[test]
    fn output_is_kept_exactly_and_continues_after_a_restart() {
        let (dir, logs) = logs(1 << 20, 2);
        let log = logs.of("c1");
        log.write(b"one\ntw");
        log.write(b"o\nthree");
        assert_eq!(text(&log.read_all()), "one\ntwo\nthree");
        // Another daemon, the same directory.
        let again = Logs::new(LogConfig {
            dir: dir.path().join("logs"),
            max_size: 1 << 20,
            max_files: 2,
        });
        let log = again.of("c1");
        log.write(b"\nfour\n");
        let records = log.read_all();
        assert_eq!(text(&records), "one\ntwo\nthree\nfour\n");
        let sequences: Vec<u64> = records.iter().map(|r| r.sequence).collect();
        assert_eq!(sequences, [0, 1, 2]);
        again.remove("c1");
        assert!(!dir.path().join("logs/c1").exists());
        assert!(log.removed());
    }

    #[test]
    fn no_files_keeps_no_logs() {
        let (dir, logs) = logs(1 << 20, 0);
        let log = logs.of("quiet");
        log.write(b"not kept\n");
        assert!(log.read_all().is_empty());
        assert!(!dir.path().join("logs").join("quiet").exists());
    }

    #[test]
    fn rotation_keeps_the_files_bounded() {
        let (dir, logs) = logs(4096, 3);
        let log = logs.of("busy");
        let line = vec![b'x'; 1000];
        for _ in 0..100 {
            log.write(&line);
        }
        let total: u64 = std::fs::read_dir(dir.path().join("logs/busy"))
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum();
        assert!(total <= 3 * 4096, "{total}");
        let files = std::fs::read_dir(dir.path().join("logs/busy"))
            .unwrap()
            .count();
        assert_eq!(files, 3);
        // The newest records are the ones kept, in order.
        let records = log.read_all();
        let sequences: Vec<u64> = records.iter().map(|r| r.sequence).collect();
        assert_eq!(sequences.last(), Some(&99));
        assert!(sequences.windows(2).all(|w| w[1] == w[0] + 1));
    }

    #[test]
    fn tail_counts_lines_and_timestamps_start_each_line() {
        let records = vec![
            Record {
                sequence: 0,
                micros: 1_000_000,
                data: b"a\nb\nc".to_vec(),
            },
            Record {
                sequence: 1,
                micros: 2_000_000,
                data: b"d\ne\n".to_vec(),
            },
        ];
        let query = |tail| LogQuery {
            tail: Some(tail),
            ..LogQuery::default()
        };
        assert_eq!(text(&select(records.clone(), &query(2))), "cd\ne\n");
        assert_eq!(text(&select(records.clone(), &query(1))), "e\n");
        assert_eq!(text(&select(records.clone(), &query(3))), "b\ncd\ne\n");
        assert_eq!(text(&select(records.clone(), &query(4))), "a\nb\ncd\ne\n");
        assert_eq!(text(&select(records.clone(), &query(10))), "a\nb\ncd\ne\n");
        assert_eq!(select(records.clone(), &query(0)), vec![]);
        let since = LogQuery {
            since: Some(1_500_000),
            ..LogQuery::default()
        };
        assert_eq!(text(&select(records.clone(), &since)), "d\ne\n");

        let mut format = Formatter::new(&LogQuery {
            timestamps: true,
            ..LogQuery::default()
        });
        let out: Vec<u8> = records.iter().flat_map(|r| format.format(r)).collect();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "1970-01-01T00:00:01.000000Z a\n1970-01-01T00:00:01.000000Z b\n\
             1970-01-01T00:00:01.000000Z cd\n1970-01-01T00:00:02.000000Z e\n"
        );
    }

    #[test]
    fn since_reads_times_and_durations() {
        assert_eq!(parse_since("1.5").unwrap(), 1_500_000);
        assert_eq!(parse_since("1970-01-01T00:00:02Z").unwrap(), 2_000_000);
        let ten_minutes = parse_since("10m").unwrap();
        let now = now_micros();
        assert!(now - ten_minutes >= 600_000_000 && now - ten_minutes < 601_000_000);
        assert!(parse_since("yesterday").is_err());
        assert!(parse_since("-5").is_err());
    }

    #[test]
    fn a_record_cut_by_a_crash_leaves_the_rest_readable() {
        let mut bytes = b"0 1 3\nabc".to_vec();
        bytes.extend_from_slice(b"1 2 10\nshort");
        let records = parse(&bytes);
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].data, b"abc");
    }
}
