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

mod feed;
mod file;
mod query;
mod record;

pub use feed::{LogFeed, FLUSH_WINDOW, FLUSH_WINDOW_MAX};
pub use file::ContainerLog;
pub use query::{parse_since, select, timestamp, Formatter, LogQuery};
pub use record::Record;

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};

pub use crate::config::LogConfig;
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
            Arc::new(ContainerLog::new(
                self.config.dir.join(id),
                self.config.max_size,
                self.config.max_files,
            ))
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
            log.close();
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

    use super::record::{now_micros, parse};

    pub(super) fn logs(max_size: u64, max_files: usize) -> (tempfile::TempDir, Logs) {
        let dir = tempfile::tempdir().unwrap();
        let logs = Logs::new(LogConfig {
            dir: dir.path().join("logs"),
            max_size,
            max_files,
        });
        (dir, logs)
    }

    pub(super) fn text(records: &[Record]) -> String {
        records
            .iter()
            .map(|r| String::from_utf8_lossy(&r.data).into_owned())
            .collect()
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
