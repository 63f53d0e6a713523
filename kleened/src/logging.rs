//! Logging: `tracing` events to stderr and, when `enable_logging` is set, to the log file too.
//!
//! Level policy: `error` for failures the daemon handles by giving up on something, `warn` for
//! failures it works around, `info` for lifecycle events (listening, shutdown), `debug` for each
//! request and each external command with its argv.

use std::io::IsTerminal;
use std::path::Path;

use tracing_appender::non_blocking::WorkerGuard;

/// Log lines waiting for the writer thread before a logging call waits for it.
const LOG_QUEUE_LINES: usize = 1024;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer};

use crate::config::Config;

/// Keeps the file writer flushing; drop it last.
#[derive(Debug)]
pub struct LogGuard {
    _file_writer: Option<WorkerGuard>,
}

/// Installs the global subscriber for `config`.
pub fn init(config: &Config) -> anyhow::Result<LogGuard> {
    let filter = || EnvFilter::new(config.log_level.as_directive());
    let stderr = fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .with_filter(filter());
    let (file, guard) = if config.enable_logging {
        // The writer thread's queue is allocated whole up front: 128k lines by default, about
        // 4 MiB of resident memory. A short queue that makes a burst wait (not lossy: no line is
        // dropped) keeps the daemon small.
        let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
            .buffered_lines_limit(LOG_QUEUE_LINES)
            .lossy(false)
            .finish(open_log_file(&config.log_file)?);
        let layer = fmt::layer()
            .with_ansi(false)
            .with_writer(writer)
            .with_filter(filter());
        (Some(layer), Some(guard))
    } else {
        (None, None)
    };
    tracing_subscriber::registry()
        .with(stderr)
        .with(file)
        .try_init()?;
    Ok(LogGuard {
        _file_writer: guard,
    })
}

fn open_log_file(path: &Path) -> anyhow::Result<std::fs::File> {
    use anyhow::Context;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open log file {} (key 'log_file')", path.display()))
}
