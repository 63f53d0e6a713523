//! A stand-in for kleened in unit tests: an HTTP server on a unix socket in a temporary directory
//! that answers scripted requests and records every request it gets, so a command's sequence of
//! calls and their bodies can be checked without a daemon. Websocket endpoints play a scripted
//! session: the configuration frame is recorded as the request's body, the frames the client
//! sends later as [`FakeDaemon::received`].

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::UnixListener;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::connection::{Connection, TlsOptions};

/// One request as the fake daemon saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `METHOD /path?query`.
    pub line: String,
    /// The JSON body, or `Null` when there was none.
    pub body: serde_json::Value,
}

/// One step of a scripted websocket session, after the client's configuration frame.
#[derive(Debug, Clone)]
pub enum WsStep {
    /// Send this text frame.
    Text(String),
    /// Close with this code and reason; the session ends.
    Close(u16, String),
    /// Wait for the client's next frame and record it in [`FakeDaemon::received`].
    Receive,
}

/// A text frame step.
pub fn text(frame: &str) -> WsStep {
    WsStep::Text(frame.to_owned())
}

/// A close step.
pub fn close(code: u16, reason: &str) -> WsStep {
    WsStep::Close(code, reason.to_owned())
}

/// `GET /info` of a Linux daemon, whose containers on a network default to `vnet`.
pub const INFO_VNET: (&str, u16, &str) = (
    "GET /info",
    200,
    r#"{"version":"0.1.0","api_version":"0.1.1","os":"linux","runtime":"namespaces",
        "default_network_driver":"vnet","kleene_root":"pool/kleene"}"#,
);

/// The running fake; it stops when dropped.
pub struct FakeDaemon {
    _dir: tempfile::TempDir,
    socket: std::path::PathBuf,
    requests: Arc<Mutex<Vec<Recorded>>>,
    received: Arc<Mutex<Vec<String>>>,
    server: tokio::task::JoinHandle<()>,
}

impl FakeDaemon {
    /// Serves `answers`: for each `METHOD /path` its status and JSON body (`""` for none).
    /// Anything else is answered as kleened answers an unknown route: 404 `{"message": ...}`.
    pub fn start(answers: &[(&str, u16, &str)]) -> FakeDaemon {
        FakeDaemon::start_with_sessions(answers, &[])
    }

    /// Serves `answers` as [`FakeDaemon::start`] does, and for each websocket `GET /path` of
    /// `sessions` plays its steps.
    pub fn start_with_sessions(
        answers: &[(&str, u16, &str)],
        sessions: &[(&str, Vec<WsStep>)],
    ) -> FakeDaemon {
        let sessions: Arc<Vec<(String, Vec<WsStep>)>> = Arc::new(
            sessions
                .iter()
                .map(|(line, steps)| (line.to_string(), steps.clone()))
                .collect(),
        );
        let received = Arc::new(Mutex::new(Vec::new()));
        let heard = received.clone();
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("kleened.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let answers: Arc<Vec<(String, u16, String)>> = Arc::new(
            answers
                .iter()
                .map(|(line, status, body)| (line.to_string(), *status, body.to_string()))
                .collect(),
        );
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = requests.clone();
        let server = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let answers = answers.clone();
                let recorded = recorded.clone();
                let sessions = sessions.clone();
                let heard = heard.clone();
                let service = service_fn(move |mut request: Request<Incoming>| {
                    let answers = answers.clone();
                    let recorded = recorded.clone();
                    let sessions = sessions.clone();
                    let heard = heard.clone();
                    async move {
                        let line = format!(
                            "{} {}",
                            request.method(),
                            request.uri().path_and_query().map_or("", |p| p.as_str())
                        );
                        let session = sessions.iter().find(|(scripted, _)| *scripted == line);
                        if let Some((_, steps)) = session {
                            let key = request.headers()["sec-websocket-key"].clone();
                            let upgrade = hyper::upgrade::on(&mut request);
                            let steps = steps.clone();
                            tokio::spawn(async move {
                                let upgraded = upgrade.await.unwrap();
                                let socket = WebSocketStream::from_raw_socket(
                                    TokioIo::new(upgraded),
                                    Role::Server,
                                    None,
                                )
                                .await;
                                play(socket, line, steps, recorded, heard).await;
                            });
                            let mut response = Response::new(Full::new(Bytes::new()));
                            *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
                            let headers = response.headers_mut();
                            headers.insert("connection", "upgrade".parse().unwrap());
                            headers.insert("upgrade", "websocket".parse().unwrap());
                            headers.insert(
                                "sec-websocket-accept",
                                derive_accept_key(key.as_bytes()).parse().unwrap(),
                            );
                            return Ok::<_, Infallible>(response);
                        }
                        let bytes = request.into_body().collect().await.unwrap().to_bytes();
                        let body = if bytes.is_empty() {
                            serde_json::Value::Null
                        } else {
                            serde_json::from_slice(&bytes).unwrap()
                        };
                        recorded.lock().unwrap().push(Recorded {
                            line: line.clone(),
                            body,
                        });
                        let (status, body) = answers
                            .iter()
                            .find(|(scripted, _, _)| *scripted == line)
                            .map(|(_, status, body)| (*status, body.clone()))
                            .unwrap_or((404, r#"{"message":"not found"}"#.to_owned()));
                        let mut response = Response::new(Full::new(Bytes::from(body)));
                        *response.status_mut() = StatusCode::from_u16(status).unwrap();
                        Ok::<_, Infallible>(response)
                    }
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades()
                        .await;
                });
            }
        });
        FakeDaemon {
            _dir: dir,
            socket,
            requests,
            received,
            server,
        }
    }

    /// What clients sent on websockets after their configuration frames, in order, as the
    /// `Receive` steps heard it: `text <frame>`, `binary <N> bytes`, `close <code>` or `gone`.
    pub fn received(&self) -> Vec<String> {
        self.received.lock().unwrap().clone()
    }

    /// A connection to the fake, as `--host http:///.../kleened.sock` gives.
    pub fn connection(&self) -> Connection {
        let host = format!("http://{}", self.socket.display());
        Connection::new(&host, &TlsOptions::default()).unwrap()
    }

    /// `METHOD /path` of every request so far, in order.
    pub fn lines(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.line.clone())
            .collect()
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// The body of the first request `line`.
    pub fn body(&self, line: &str) -> serde_json::Value {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .find(|r| r.line == line)
            .unwrap_or_else(|| panic!("no request {line}"))
            .body
            .clone()
    }
}

/// Plays a websocket session: records the configuration frame as the body of `line`, then
/// follows `steps`.
async fn play<S>(
    mut socket: WebSocketStream<S>,
    line: String,
    steps: Vec<WsStep>,
    recorded: Arc<Mutex<Vec<Recorded>>>,
    heard: Arc<Mutex<Vec<String>>>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let body = match socket.next().await {
        Some(Ok(Message::Text(config))) => serde_json::from_str(config.as_str()).unwrap(),
        other => panic!("{line}: no configuration frame but {other:?}"),
    };
    recorded.lock().unwrap().push(Recorded { line, body });
    for step in steps {
        match step {
            WsStep::Text(frame) => socket.send(Message::text(frame)).await.unwrap(),
            WsStep::Close(code, reason) => {
                let frame = CloseFrame {
                    code: code.into(),
                    reason: reason.into(),
                };
                let _ = socket.close(Some(frame)).await;
                // Until the client answers the close or goes.
                while let Some(Ok(_)) = socket.next().await {}
                return;
            }
            WsStep::Receive => {
                let frame = match socket.next().await {
                    Some(Ok(Message::Text(text))) => format!("text {text}"),
                    Some(Ok(Message::Binary(bytes))) => format!("binary {} bytes", bytes.len()),
                    Some(Ok(Message::Close(frame))) => {
                        format!("close {}", frame.map_or(1005, |f| u16::from(f.code)))
                    }
                    Some(Ok(other)) => format!("other {other:?}"),
                    Some(Err(_)) | None => "gone".to_owned(),
                };
                heard.lock().unwrap().push(frame);
            }
        }
    }
}

impl Drop for FakeDaemon {
    fn drop(&mut self) {
        self.server.abort();
    }
}
