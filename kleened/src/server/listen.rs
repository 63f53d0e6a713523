//! Listeners: binding the configured addresses (unix sockets, TCP over IPv4 and IPv6, each optionally
//! with TLS) and serving the API on all of them until shutdown.
//!
//! Every address is bound before any is served, so a bad address stops the daemon before it takes
//! requests. On shutdown each listener stops accepting, lets open requests finish within the grace
//! period, and removes its socket file.

use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use kleene_api::ApiLocation;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use warp::filters::BoxedFilter;
use warp::reply::Response;

use crate::config::{ListenerConfig, TlsSettings};

/// How long a client may take to complete the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a listener could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("cannot listen on {address}: {reason}")]
    Bind { address: String, reason: String },
    #[error("cannot listen on {address}: {path}: {reason}")]
    Tls {
        address: String,
        path: PathBuf,
        reason: String,
    },
}

/// A bound socket, not yet serving.
pub struct BoundListener {
    name: String,
    socket: Socket,
    tls: Option<TlsAcceptor>,
}

impl std::fmt::Debug for BoundListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundListener")
            .field("name", &self.name)
            .field("socket", &self.socket)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

#[derive(Debug)]
enum Socket {
    Unix {
        listener: UnixListener,
        path: PathBuf,
    },
    Tcp(TcpListener),
}

impl BoundListener {
    /// The address as configured, for logs.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The local TCP address (useful when the configured port was 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match &self.socket {
            Socket::Tcp(listener) => listener.local_addr().ok(),
            Socket::Unix { .. } => None,
        }
    }
}

impl Drop for BoundListener {
    fn drop(&mut self) {
        if let Socket::Unix { path, .. } = &self.socket {
            if let Err(err) = std::fs::remove_file(path) {
                if err.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(path = %path.display(), error = %err, "could not remove socket file");
                }
            }
        }
    }
}

/// Binds every configured listener. On failure nothing stays bound and no socket file is left.
pub async fn bind_all(configs: &[ListenerConfig]) -> Result<Vec<BoundListener>, ListenError> {
    let mut bound = Vec::with_capacity(configs.len());
    for config in configs {
        // An early return drops what was bound so far, which removes its socket files.
        bound.push(bind(config).await?);
    }
    Ok(bound)
}

async fn bind(config: &ListenerConfig) -> Result<BoundListener, ListenError> {
    let name = config.to_string();
    if config.admits_anyone() {
        tracing::warn!(
            listener = %name,
            "this TCP listener does not require client certificates (tlsverify): anyone who can \
             reach it can run containers and so is root on this host"
        );
    }
    let fail = |reason: String| ListenError::Bind {
        address: name.clone(),
        reason,
    };
    let tls = match &config.tls {
        Some(settings) => Some(tls_acceptor(&name, settings)?),
        None => None,
    };
    let socket = match &config.address.location {
        ApiLocation::Unix(path) => {
            remove_stale_socket(path).map_err(fail)?;
            let listener = UnixListener::bind(path).map_err(|e| fail(e.to_string()))?;
            let socket = Socket::Unix {
                listener,
                path: path.clone(),
            };
            // Only root and the socket's group may talk to the daemon.
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
                .map_err(|e| fail(format!("cannot set the mode of {}: {e}", path.display())))?;
            socket
        }
        ApiLocation::Tcp { .. } => {
            let addr = config
                .address
                .socket_addr()
                .ok_or_else(|| fail("the host is not an IP address".into()))?;
            Socket::Tcp(
                TcpListener::bind(addr)
                    .await
                    .map_err(|e| fail(e.to_string()))?,
            )
        }
    };
    Ok(BoundListener { name, socket, tls })
}

/// Deletes a socket or regular file left at `path` by an earlier run. A socket that still accepts
/// connections belongs to a running daemon and is left alone.
fn remove_stale_socket(path: &Path) -> Result<(), String> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return match path.parent() {
            Some(dir) if !dir.is_dir() => {
                Err(format!("directory {} does not exist", dir.display()))
            }
            _ => Ok(()),
        };
    };
    if meta.is_dir() {
        return Err(format!("{} is a directory", path.display()));
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(format!(
            "another process is listening on {}",
            path.display()
        ));
    }
    std::fs::remove_file(path).map_err(|e| format!("cannot remove stale {}: {e}", path.display()))
}

fn tls_acceptor(name: &str, settings: &TlsSettings) -> Result<TlsAcceptor, ListenError> {
    let fail = |path: &Path, reason: String| ListenError::Tls {
        address: name.to_owned(),
        path: path.to_owned(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(&settings.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| fail(&settings.cert, format!("cannot read certificates: {e}")))?;
    if certs.is_empty() {
        return Err(fail(&settings.cert, "no certificate in the file".into()));
    }
    let key_path = settings.key.as_ref().unwrap_or(&settings.cert);
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|e| fail(key_path, format!("cannot read the private key: {e}")))?;
    if let Some(dh) = &settings.dh_params {
        tracing::info!(path = %dh.display(), "tlsdh is ignored: only elliptic-curve key exchange is offered");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| fail(&settings.cert, e.to_string()))?;
    let builder = match (&settings.ca_cert, settings.verify_client) {
        (Some(ca_path), true) => {
            let mut roots = rustls::RootCertStore::empty();
            let cas = CertificateDer::pem_file_iter(ca_path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| fail(ca_path, format!("cannot read CA certificates: {e}")))?;
            let (added, _ignored) = roots.add_parsable_certificates(cas);
            if added == 0 {
                return Err(fail(ca_path, "no usable CA certificate in the file".into()));
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| fail(ca_path, e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| fail(key_path, format!("certificate and key do not fit: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serves `api` on every listener until `shutdown` turns true, then drains each within `grace`.
pub async fn serve_all(
    listeners: Vec<BoundListener>,
    api: BoxedFilter<(Response,)>,
    shutdown: watch::Receiver<bool>,
    grace: Duration,
) {
    let tasks: Vec<_> = listeners
        .into_iter()
        .map(|listener| tokio::spawn(serve(listener, api.clone(), shutdown.clone(), grace)))
        .collect();
    for task in tasks {
        if let Err(err) = task.await {
            tracing::error!(error = %err, "listener task failed");
        }
    }
}

async fn serve(
    listener: BoundListener,
    api: BoxedFilter<(Response,)>,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) {
    tracing::info!(address = listener.name(), "listening");
    let graceful = GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            accepted = accept(&listener.socket) => accepted,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        let io = match accepted {
            Ok(io) => io,
            Err(err) => {
                // Running out of descriptors is the usual cause; pause instead of spinning.
                tracing::warn!(address = listener.name(), error = %err, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let api = api.clone();
        let watcher = graceful.watcher();
        let tls = listener.tls.clone();
        let name = listener.name.clone();
        tokio::spawn(async move {
            match tls {
                None => serve_connection(io, api, watcher).await,
                Some(acceptor) => {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(io)).await {
                        Ok(Ok(stream)) => serve_connection(stream, api, watcher).await,
                        Ok(Err(err)) => {
                            tracing::info!(address = %name, error = %err, "TLS handshake refused")
                        }
                        Err(_) => tracing::info!(address = %name, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
    tracing::info!(address = listener.name(), "stopped accepting");
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still running after {grace:?}; closing them");
    }
}

/// A connected stream of either kind.
trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

async fn accept(socket: &Socket) -> io::Result<Box<dyn Stream>> {
    Ok(match socket {
        Socket::Unix { listener, .. } => Box::new(listener.accept().await?.0),
        Socket::Tcp(listener) => {
            let (stream, _) = listener.accept().await?;
            // Small request/response exchanges: do not wait to coalesce packets.
            let _ = stream.set_nodelay(true);
            Box::new(stream)
        }
    })
}

async fn serve_connection<S>(
    stream: S,
    api: BoxedFilter<(Response,)>,
    watcher: hyper_util::server::graceful::Watcher,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let service = TowerToHyperService::new(warp::service(api));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30));
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    if let Err(err) = watcher.watch(connection.into_owned()).await {
        tracing::debug!(error = %err, "connection closed with an error");
    }
}
