//! Listeners: binding the configured addresses (unix sockets, TCP over IPv4 and IPv6, each optionally
//! with TLS) and serving the API on all of them until shutdown.
//!
//! Every address is bound before any is served, so a bad address stops the daemon before it takes
//! requests. On shutdown each listener stops accepting, lets open requests finish within the grace
//! period, and removes its socket file.
//!
//! What one client can hold is bounded ([`ConnectionLimits`]): a listener serves at most
//! `max_connections` connections at once (websocket sessions included: the place under the cap
//! belongs to the stream, which a session keeps) and answers one more with 503 and closes it; a
//! request's headers must arrive within the header timeout (hyper's own timer, plus one here for
//! the first request, whose first bytes hyper-util reads before hyper's timer runs); and its body
//! within the body timeout, or it is answered 408. The bounds apply to reading requests only: an
//! answer that streams for an hour is not cut.

mod deadline;
mod limits;
mod tls;

use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use kleene_api::ApiLocation;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;
use warp::filters::BoxedFilter;
use warp::reply::Response;

use crate::config::{ConnectionLimits, ListenerConfig};
use deadline::{body_timed_out, Deadline};
#[cfg(test)]
use limits::REFUSAL_TIMEOUT;
use limits::{refuse, Held, MAX_REFUSALS};
use tls::{handshake, tls_acceptor};

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
    limits: ConnectionLimits,
}

impl std::fmt::Debug for BoundListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundListener")
            .field("name", &self.name)
            .field("socket", &self.socket)
            .field("tls", &self.tls.is_some())
            .field("limits", &self.limits)
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
    Ok(BoundListener {
        name,
        socket,
        tls,
        limits: config.limits,
    })
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
    let limits = listener.limits;
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS));
    // Whether the last connection was refused, so that reaching the cap is logged once, not
    // once per connection.
    let mut at_cap = false;
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
        let tls = listener.tls.clone();
        let name = listener.name.clone();
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            if !at_cap {
                tracing::warn!(
                    address = %name,
                    max = limits.max_connections,
                    "as many connections as allowed: refusing new ones"
                );
                at_cap = true;
            }
            // Past MAX_REFUSALS answers in flight, `io` is simply dropped: closed unanswered.
            if let Ok(refusal) = Arc::clone(&refusals).try_acquire_owned() {
                tokio::spawn(async move {
                    if let Some(stream) = handshake(io, tls, &name).await {
                        refuse(stream, limits.max_connections).await;
                    }
                    drop(refusal);
                });
            }
            continue;
        };
        if at_cap {
            tracing::info!(address = %name, "below the connection cap again");
            at_cap = false;
        }
        let api = api.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            // The place under the cap goes with the stream (and, for a websocket, with the
            // session that takes the stream over), and comes back when it is dropped.
            let io = Held {
                stream: io,
                _slot: slot,
            };
            if let Some(stream) = handshake(io, tls, &name).await {
                serve_connection(stream, api, watcher, limits).await;
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
pub(super) trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
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

/// Serves HTTP on one connection. A connection whose first request does not arrive within the
/// header timeout is closed; hyper's header timer covers every request after it (and the idle time
/// between them), and [`Deadline`] bounds each request's body.
async fn serve_connection(
    stream: Box<dyn Stream>,
    api: BoxedFilter<(Response,)>,
    watcher: hyper_util::server::graceful::Watcher,
    limits: ConnectionLimits,
) {
    let api = TowerToHyperService::new(warp::service(api));
    let requested = Arc::new(AtomicBool::new(false));
    let service = hyper::service::service_fn({
        let requested = Arc::clone(&requested);
        move |request: http::Request<Incoming>| {
            requested.store(true, Ordering::Relaxed);
            let expired = Arc::new(AtomicBool::new(false));
            let request =
                request.map(|body| Deadline::new(body, limits.body_timeout, Arc::clone(&expired)));
            let answer = hyper::service::Service::call(&api, request);
            async move {
                let response = answer.await?;
                if expired.load(Ordering::Relaxed) {
                    return Ok(body_timed_out(limits.body_timeout));
                }
                Ok::<_, std::convert::Infallible>(response)
            }
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    let connection = watcher.watch(connection.into_owned());
    tokio::pin!(connection);
    let result = tokio::select! {
        result = &mut connection => result,
        () = tokio::time::sleep(limits.header_timeout) => {
            if !requested.load(Ordering::Relaxed) {
                tracing::debug!("no request within the header timeout; closing the connection");
                return;
            }
            connection.await
        }
    };
    if let Err(err) = result {
        tracing::debug!(error = %err, "connection closed with an error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    use kleene_api::ApiAddress;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::UnixStream;
    use warp::{Filter, Reply};

    /// A server on a unix socket of its own with these limits: `POST /echo` reads a JSON body,
    /// waits `answer_after`, and answers 200 with the body.
    struct Server {
        dir: tempfile::TempDir,
        stop: watch::Sender<bool>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Server {
        async fn start(limits: ConnectionLimits, answer_after: Duration) -> Server {
            let dir = tempfile::tempdir().expect("temporary directory");
            let address = format!("http://{}", dir.path().join("api.sock").display());
            let config = ListenerConfig {
                address: ApiAddress::parse(&address).expect("address"),
                tls: None,
                limits,
            };
            let listeners = bind_all(&[config]).await.expect("bind");
            let api = warp::path("echo")
                .and(warp::post())
                .and(super::super::request::json_body::<serde_json::Value>())
                .then(move |body: serde_json::Value| async move {
                    tokio::time::sleep(answer_after).await;
                    warp::reply::json(&body).into_response()
                })
                .recover(super::super::recover)
                .unify()
                .boxed();
            let (stop, stopped) = watch::channel(false);
            let task = tokio::spawn(serve_all(listeners, api, stopped, Duration::from_secs(1)));
            Server { dir, stop, task }
        }

        async fn connect(&self) -> UnixStream {
            UnixStream::connect(self.dir.path().join("api.sock"))
                .await
                .expect("connect")
        }

        async fn stop(self) {
            self.stop.send_replace(true);
            let _ = self.task.await;
        }
    }

    fn limits(max_connections: usize, header: u64, body: u64) -> ConnectionLimits {
        ConnectionLimits {
            max_connections,
            header_timeout: Duration::from_secs(header),
            body_timeout: Duration::from_secs(body),
        }
    }

    /// Everything the server sends until it closes, and how long that took; `None` when it has
    /// not closed within `patience`.
    async fn until_closed(stream: &mut UnixStream, patience: Duration) -> Option<String> {
        let mut answer = Vec::new();
        match tokio::time::timeout(patience, stream.read_to_end(&mut answer)).await {
            Ok(_) => Some(String::from_utf8_lossy(&answer).into_owned()),
            Err(_) => None,
        }
    }

    fn echo_request(body: &str) -> String {
        format!(
            "POST /echo HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
    }

    #[tokio::test]
    async fn a_client_that_sends_nothing_is_dropped_after_the_header_timeout() {
        let server = Server::start(limits(8, 1, 5), Duration::ZERO).await;
        let mut stream = server.connect().await;
        let started = Instant::now();
        let answer = until_closed(&mut stream, Duration::from_secs(5)).await;
        let took = started.elapsed();
        assert_eq!(answer.as_deref(), Some(""), "closed without an answer");
        assert!(took >= Duration::from_millis(900), "{took:?}");
        server.stop().await;
    }

    #[tokio::test]
    async fn a_partial_header_is_dropped_after_the_header_timeout() {
        let server = Server::start(limits(8, 1, 5), Duration::ZERO).await;
        let mut stream = server.connect().await;
        stream
            .write_all(b"POST /echo HTTP/1.1\r\nhost: te")
            .await
            .unwrap();
        let started = Instant::now();
        let answer = until_closed(&mut stream, Duration::from_secs(5)).await;
        assert!(answer.is_some(), "still open after 5 s");
        assert!(started.elapsed() < Duration::from_secs(3));
        server.stop().await;
    }

    #[tokio::test]
    async fn a_trickled_body_is_answered_408_after_the_body_timeout() {
        let server = Server::start(limits(8, 5, 1), Duration::ZERO).await;
        let mut stream = server.connect().await;
        let request = echo_request(r#"{"a": "bcdefghijklmnopqrstuvwxyz"}"#);
        let (head, body) = request.split_at(request.find("\r\n\r\n").unwrap() + 4);
        stream.write_all(head.as_bytes()).await.unwrap();
        let started = Instant::now();
        let mut body = body.bytes();
        let answer = loop {
            // One byte every 300 ms, as long as the server listens.
            if let Some(byte) = body.next() {
                if stream.write_all(&[byte]).await.is_err() {
                    break until_closed(&mut stream, Duration::from_secs(1)).await;
                }
            }
            if let Some(answer) = until_closed(&mut stream, Duration::from_millis(300)).await {
                break Some(answer);
            }
            assert!(started.elapsed() < Duration::from_secs(5), "no answer");
        };
        let answer = answer.expect("an answer");
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(
            answer.contains(r#"{"message":"the request body did not arrive within 1 s"}"#),
            "{answer}"
        );
        let took = started.elapsed();
        assert!(took < Duration::from_secs(3), "{took:?}");
        server.stop().await;
    }

    #[tokio::test]
    async fn the_bounds_apply_to_the_request_not_to_a_long_answer() {
        // The answer takes three times the header and body timeouts.
        let server = Server::start(limits(8, 1, 1), Duration::from_secs(3)).await;
        let mut stream = server.connect().await;
        stream
            .write_all(echo_request(r#"{"slow": true}"#).as_bytes())
            .await
            .unwrap();
        let answer = until_closed(&mut stream, Duration::from_secs(10))
            .await
            .expect("answered");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with(r#"{"slow":true}"#), "{answer}");
        server.stop().await;
    }

    #[tokio::test]
    async fn connections_over_the_cap_are_answered_503_and_closed() {
        let server = Server::start(limits(3, 30, 30), Duration::ZERO).await;
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(server.connect().await);
        }
        // Let the server accept those three before the next ones.
        tokio::time::sleep(Duration::from_millis(100)).await;
        for _ in 0..2 {
            let mut extra = server.connect().await;
            extra
                .write_all(echo_request("{}").as_bytes())
                .await
                .unwrap();
            let answer = until_closed(&mut extra, Duration::from_secs(5))
                .await
                .expect("answered and closed");
            assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
            let body = &answer[answer.find("\r\n\r\n").unwrap() + 4..];
            let body: serde_json::Value = serde_json::from_str(body).expect("JSON");
            assert_eq!(
                body["message"],
                "too many connections: this listener serves at most 3 at a time; try again later"
            );
        }
        // One that sends no request is closed unanswered, within the refusal's time.
        let mut silent = server.connect().await;
        let started = Instant::now();
        let answer = until_closed(&mut silent, REFUSAL_TIMEOUT + Duration::from_secs(2)).await;
        assert_eq!(answer.as_deref(), Some(""));
        assert!(started.elapsed() >= REFUSAL_TIMEOUT - Duration::from_millis(100));
        // A place comes back when a connection closes.
        drop(held.pop());
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut next = server.connect().await;
        next.write_all(echo_request(r#"{"n": 1}"#).as_bytes())
            .await
            .unwrap();
        let answer = until_closed(&mut next, Duration::from_secs(5))
            .await
            .expect("answered");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        server.stop().await;
    }
}
