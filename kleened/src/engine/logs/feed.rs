//! Flood buffering: a process's output on its way into its container's log, written at once while
//! it stays within a budget, held and written once per window while it floods.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::file::ContainerLog;
use super::record::now_micros;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::logs::tests::{logs, text};

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
}
