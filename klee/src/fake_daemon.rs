//! A stand-in for kleened in unit tests: an HTTP server on a unix socket in a temporary directory
//! that answers scripted requests and records every request it gets, so a command's sequence of
//! calls and their bodies can be checked without a daemon.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::UnixListener;

use crate::connection::{Connection, TlsOptions};

/// One request as the fake daemon saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `METHOD /path?query`.
    pub line: String,
    /// The JSON body, or `Null` when there was none.
    pub body: serde_json::Value,
}

/// The running fake; it stops when dropped.
pub struct FakeDaemon {
    _dir: tempfile::TempDir,
    socket: std::path::PathBuf,
    requests: Arc<Mutex<Vec<Recorded>>>,
    server: tokio::task::JoinHandle<()>,
}

impl FakeDaemon {
    /// Serves `answers`: for each `METHOD /path` its status and JSON body (`""` for none).
    /// Anything else is answered as kleened answers an unknown route: 404 `{"message": ...}`.
    pub fn start(answers: &[(&str, u16, &str)]) -> FakeDaemon {
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
                let service = service_fn(move |request: Request<Incoming>| {
                    let answers = answers.clone();
                    let recorded = recorded.clone();
                    async move {
                        let line = format!(
                            "{} {}",
                            request.method(),
                            request.uri().path_and_query().map_or("", |p| p.as_str())
                        );
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
                        .await;
                });
            }
        });
        FakeDaemon {
            _dir: dir,
            socket,
            requests,
            server,
        }
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

impl Drop for FakeDaemon {
    fn drop(&mut self) {
        self.server.abort();
    }
}
