//! The daemon's lifetime: pidfile, store, listeners, serving until a signal, and an orderly exit.

use std::path::{Path, PathBuf};

use anyhow::Context;
use tokio::sync::watch;

use crate::config::Config;
use crate::engine::Engine;
use crate::server;
use crate::store::Store;

/// Runs the daemon until SIGTERM or SIGINT. Returns an error (and leaves nothing behind) when it
/// cannot start.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let pidfile = Pidfile::create(&config.pidfile)?;
    let store_path = config.metadata_path.clone();
    let store = tokio::task::spawn_blocking(move || Store::open(&store_path)).await??;
    let engine = Engine::new(store);
    let listeners = server::listen::bind_all(&config.listeners).await?;

    let (stop, stopped) = watch::channel(false);
    let serving = tokio::spawn(server::listen::serve_all(
        listeners,
        server::routes(engine),
        stopped,
        config.shutdown_timeout,
    ));
    tracing::info!(pid = std::process::id(), "kleened is ready");

    let signal = wait_for_signal().await?;
    tracing::info!(signal, "shutting down");
    stop.send_replace(true);
    serving.await.context("listeners failed")?;
    drop(pidfile);
    tracing::info!("stopped");
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<&'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}

/// The pidfile, removed when dropped. A pidfile naming a live process means another daemon runs.
#[derive(Debug)]
struct Pidfile(PathBuf);

impl Pidfile {
    fn create(path: &Path) -> anyhow::Result<Pidfile> {
        if let Ok(text) = std::fs::read_to_string(path) {
            if let Ok(pid) = text.trim().parse::<u32>() {
                if pid != std::process::id() && Path::new(&format!("/proc/{pid}")).exists() {
                    anyhow::bail!(
                        "kleened seems to run already: {} names live process {pid}",
                        path.display()
                    );
                }
            }
        }
        std::fs::write(path, format!("{}\n", std::process::id()))
            .with_context(|| format!("cannot write pidfile {} (key 'pidfile')", path.display()))?;
        Ok(Pidfile(path.to_owned()))
    }
}

impl Drop for Pidfile {
    fn drop(&mut self) {
        if let Err(err) = std::fs::remove_file(&self.0) {
            tracing::warn!(path = %self.0.display(), error = %err, "could not remove pidfile");
        }
    }
}
