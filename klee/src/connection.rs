//! The connection to kleened: a unix socket or TCP, optionally with TLS, speaking HTTP/1.1.
//!
//! Each request opens its own connection, as the Python client does; a command makes only a few, and
//! nothing has to be kept alive between them.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use kleene_api::{ApiAddress, ApiLocation, ApiScheme, ErrorResponse};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::TlsConnector;

/// How long to wait for the daemon to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A failure talking to the daemon. [`ClientError::exit_code`] says how klee exits on it.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The daemon could not be reached at all.
    #[error("cannot connect to kleened at {host}: {reason}\nis kleened running, and is --host (or KLEE_HOST) right?")]
    Unreachable { host: String, reason: String },
    /// The daemon answered with an error.
    #[error("{message}")]
    Api { status: StatusCode, message: String },
    /// The daemon's answer could not be understood.
    #[error("unexpected answer from kleened at {host}: {reason}")]
    Protocol { host: String, reason: String },
    /// The connection settings or arguments are wrong (a certificate file, an address).
    #[error("{0}")]
    Settings(String),
    /// The command line asks for something that cannot be done, found after clap parsed it.
    #[error("{0}")]
    Usage(String),
    /// A streamed operation ended in failure; the text is the daemon's status.
    #[error("{0}")]
    Failed(String),
    /// A failure that was already printed (for example one of several removals).
    #[error("")]
    Reported,
    /// The user stopped the command (Ctrl-C); the text says what became of the operation.
    #[error("{0}")]
    Interrupted(String),
}

impl ClientError {
    /// 2 when the daemon is not there or the command line is wrong (as clap's own usage errors),
    /// 130 (as a shell reports a process stopped by SIGINT) when the user interrupted it, 1 for
    /// everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::Unreachable { .. } | ClientError::Usage(_) => 2,
            ClientError::Interrupted(_) => 130,
            _ => 1,
        }
    }
}

/// TLS options, as given on the command line or in the environment.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// Verify the daemon's certificate (against `ca_cert`, or the system's roots without it).
    pub verify: bool,
    /// CA bundle the daemon's certificate must be signed by; implies verification.
    pub ca_cert: Option<PathBuf>,
    /// Client certificate (PEM).
    pub cert: Option<PathBuf>,
    /// Client key (PEM).
    pub key: Option<PathBuf>,
}

/// Where and how to reach the daemon.
#[derive(Debug, Clone)]
pub struct Connection {
    address: ApiAddress,
    tls: Option<TlsTarget>,
}

#[derive(Clone)]
struct TlsTarget {
    connector: TlsConnector,
    server_name: ServerName<'static>,
}

impl std::fmt::Debug for TlsTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsTarget")
            .field("server_name", &self.server_name)
            .finish()
    }
}

/// A websocket to the daemon.
pub type WebSocket = tokio_tungstenite::WebSocketStream<Box<dyn Stream>>;

/// A connected byte stream of any transport.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

impl Connection {
    /// Prepares a connection to `host` (`http:///path.sock`, `https://IP:PORT`, ...).
    pub fn new(host: &str, tls: &TlsOptions) -> Result<Connection, ClientError> {
        let address =
            ApiAddress::parse(host).map_err(|e| ClientError::Settings(format!("--host: {e}")))?;
        let tls = match address.scheme {
            ApiScheme::Http => None,
            ApiScheme::Https => Some(TlsTarget {
                connector: TlsConnector::from(Arc::new(client_tls_config(tls)?)),
                server_name: server_name(&address.location)?,
            }),
        };
        Ok(Connection { address, tls })
    }

    /// The daemon's address as given.
    pub fn host(&self) -> String {
        self.address.to_string()
    }

    async fn connect(&self) -> Result<Box<dyn Stream>, ClientError> {
        let unreachable = |reason: String| ClientError::Unreachable {
            host: self.host(),
            reason,
        };
        let connecting = async {
            let stream: Box<dyn Stream> = match &self.address.location {
                ApiLocation::Unix(path) => Box::new(UnixStream::connect(path).await?),
                ApiLocation::Tcp { host, port } => {
                    let stream = TcpStream::connect((host.as_str(), *port)).await?;
                    stream.set_nodelay(true)?;
                    Box::new(stream)
                }
            };
            Ok::<_, io::Error>(stream)
        };
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
            .await
            .map_err(|_| unreachable(format!("no answer within {}s", CONNECT_TIMEOUT.as_secs())))?
            .map_err(|e| unreachable(e.to_string()))?;
        match &self.tls {
            None => Ok(stream),
            Some(tls) => {
                let stream = tls
                    .connector
                    .connect(tls.server_name.clone(), stream)
                    .await
                    .map_err(|e| unreachable(format!("TLS handshake failed: {e}")))?;
                Ok(Box::new(stream))
            }
        }
    }

    /// Opens a websocket on `path` (`/images/create`, ...) over the same transport as requests.
    pub async fn websocket(&self, path: &str) -> Result<WebSocket, ClientError> {
        let stream = self.connect().await?;
        let scheme = if self.tls.is_some() { "wss" } else { "ws" };
        let url = format!("{scheme}://{}{path}", self.authority());
        let (socket, _response) =
            tokio_tungstenite::client_async(url, stream)
                .await
                .map_err(|e| match e {
                    // kleened is there but answered HTTP, not a websocket: say so, not "is it
                    // running?".
                    tokio_tungstenite::tungstenite::Error::Http(response) => {
                        let status = response.status();
                        let told = response
                            .body()
                            .as_deref()
                            .and_then(|body| serde_json::from_slice::<ErrorResponse>(body).ok());
                        let message = match told {
                            _ if status == StatusCode::NOT_FOUND => format!(
                                "kleened at {} does not serve {path}: is it older than this klee?",
                                self.host()
                            ),
                            Some(error) => error.message,
                            None => format!("kleened refused the websocket on {path}: {status}"),
                        };
                        ClientError::Api { status, message }
                    }
                    e => ClientError::Unreachable {
                        host: self.host(),
                        reason: format!("websocket handshake on {path} failed: {e}"),
                    },
                })?;
        Ok(socket)
    }

    /// The `Host` header: `localhost` over a unix socket, as other clients send.
    fn authority(&self) -> String {
        match &self.address.location {
            ApiLocation::Unix(_) => "localhost".to_owned(),
            ApiLocation::Tcp { host, port } if host.contains(':') => format!("[{host}]:{port}"),
            ApiLocation::Tcp { host, port } => format!("{host}:{port}"),
        }
    }

    /// Sends one request; answers the status and body, whatever the status.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let stream = self.connect().await?;
        let protocol = |reason: String| ClientError::Protocol {
            host: self.host(),
            reason,
        };
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| protocol(e.to_string()))?;
        let driver = tokio::spawn(connection);
        let authority = self.authority();
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, authority)
            .header(
                http::header::USER_AGENT,
                concat!("klee/", env!("CARGO_PKG_VERSION")),
            );
        if body.is_some() {
            request = request.header(http::header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| ClientError::Settings(format!("cannot build request for {path}: {e}")))?;
        let response = sender.send_request(request).await.map_err(|e| {
            // A TLS listener that refuses our certificate closes the connection here.
            ClientError::Unreachable {
                host: self.host(),
                reason: format!("connection closed by kleened: {e}"),
            }
        })?;
        let status = response.status();
        for warning in response.headers().get_all(http::header::WARNING) {
            if let Some(text) = warning.to_str().ok().and_then(warning_text) {
                eprintln!("warning: {}", crate::output::printable(text));
            }
        }
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| protocol(e.to_string()))?
            .to_bytes();
        driver.abort();
        Ok((status, bytes))
    }

    /// Sends a GET request and copies a successful answer's body to `out` as it arrives (a
    /// followed log streams for as long as the daemon sends); an error answer becomes
    /// [`ClientError::Api`] with the daemon's message.
    pub async fn stream_to(&self, path: &str, out: &mut impl io::Write) -> Result<(), ClientError> {
        let stream = self.connect().await?;
        let protocol = |reason: String| ClientError::Protocol {
            host: self.host(),
            reason,
        };
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| protocol(e.to_string()))?;
        let driver = tokio::spawn(connection);
        let request = Request::builder()
            .method(Method::GET)
            .uri(path)
            .header(http::header::HOST, self.authority())
            .header(
                http::header::USER_AGENT,
                concat!("klee/", env!("CARGO_PKG_VERSION")),
            )
            .body(Full::new(Bytes::new()))
            .map_err(|e| ClientError::Settings(format!("cannot build request for {path}: {e}")))?;
        let response =
            sender
                .send_request(request)
                .await
                .map_err(|e| ClientError::Unreachable {
                    host: self.host(),
                    reason: format!("connection closed by kleened: {e}"),
                })?;
        let status = response.status();
        let mut body = response.into_body();
        if !status.is_success() {
            let bytes = body
                .collect()
                .await
                .map_err(|e| protocol(e.to_string()))?
                .to_bytes();
            driver.abort();
            return Err(api_error(status, &bytes));
        }
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| protocol(e.to_string()))?;
            if let Ok(data) = frame.into_data() {
                let written = match out.write_all(&data) {
                    Ok(()) => out.flush(),
                    Err(err) => Err(err),
                };
                match written {
                    Ok(()) => {}
                    // Whoever reads klee's output is gone (`klee logs x | head`): done.
                    Err(err) if err.kind() == io::ErrorKind::BrokenPipe => break,
                    Err(err) => return Err(ClientError::Failed(format!("cannot write: {err}"))),
                }
            }
        }
        driver.abort();
        Ok(())
    }

    /// Sends a request and decodes a successful answer as `T`; an error answer becomes
    /// [`ClientError::Api`] with the daemon's message.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, ClientError> {
        let (status, bytes) = self.request(method, path, body).await?;
        if !status.is_success() {
            return Err(api_error(status, &bytes));
        }
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Protocol {
            host: self.host(),
            reason: format!("{path}: {e}"),
        })
    }

    /// Sends a request whose successful answer has no body (`204 No Content`); an error answer
    /// becomes [`ClientError::Api`] with the daemon's message.
    pub async fn call_empty(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(), ClientError> {
        let (status, bytes) = self.request(method, path, body).await?;
        if !status.is_success() {
            return Err(api_error(status, &bytes));
        }
        Ok(())
    }
}

/// The daemon's error message from an error answer, whatever its shape.
/// The text of a `Warning` header kleened sends (`199 kleened "text"`).
fn warning_text(value: &str) -> Option<&str> {
    value.strip_prefix("199 kleened \"")?.strip_suffix('"')
}

fn api_error(status: StatusCode, bytes: &[u8]) -> ClientError {
    let message = match serde_json::from_slice::<ErrorResponse>(bytes) {
        Ok(body) => body.message,
        Err(_) => match serde_json::from_slice::<kleene_api::ValidationErrors>(bytes) {
            Ok(body) => body
                .errors
                .iter()
                .map(|e| format!("invalid value at {}: {}", e.source.pointer, e.detail))
                .collect::<Vec<_>>()
                .join("\n"),
            Err(_) => format!(
                "kleened answered {status}: {}",
                String::from_utf8_lossy(bytes).trim()
            ),
        },
    };
    ClientError::Api { status, message }
}

fn server_name(location: &ApiLocation) -> Result<ServerName<'static>, ClientError> {
    let host = match location {
        ApiLocation::Unix(_) => "localhost",
        ApiLocation::Tcp { host, .. } => host.as_str(),
    };
    ServerName::try_from(host.to_owned())
        .map_err(|e| ClientError::Settings(format!("--host: '{host}': {e}")))
}

fn read_certs(path: &PathBuf, option: &str) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| ClientError::Settings(format!("{option} {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(ClientError::Settings(format!(
            "{option} {}: no certificate in the file",
            path.display()
        )));
    }
    Ok(certs)
}

fn client_tls_config(options: &TlsOptions) -> Result<rustls::ClientConfig, ClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Settings(e.to_string()))?;
    let builder = if let Some(ca) = &options.ca_cert {
        let mut roots = rustls::RootCertStore::empty();
        roots.add_parsable_certificates(read_certs(ca, "--tlscacert")?);
        builder.with_root_certificates(roots)
    } else if options.verify {
        let mut roots = rustls::RootCertStore::empty();
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        builder.with_root_certificates(roots)
    } else {
        // Like the Python client and Docker without --tlsverify: encrypted, but the daemon's
        // certificate is not checked.
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(unverified::AcceptAnyServer(provider)))
    };
    let config = match (&options.cert, &options.key) {
        (Some(cert), Some(key)) => {
            let chain = read_certs(cert, "--tlscert")?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| ClientError::Settings(format!("--tlskey {}: {e}", key.display())))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| ClientError::Settings(format!("--tlscert/--tlskey: {e}")))?
        }
        (Some(_), None) => {
            return Err(ClientError::Settings(
                "when '--tlscert' is set you must also provide '--tlskey'".into(),
            ))
        }
        (None, Some(_)) => {
            return Err(ClientError::Settings(
                "when '--tlskey' is set you must also provide '--tlscert'".into(),
            ))
        }
        (None, None) => builder.with_no_client_auth(),
    };
    Ok(config)
}

mod unverified {
    //! A server-certificate verifier that accepts any certificate but still checks that the server
    //! holds its key (the handshake signatures).
    use std::sync::Arc;

    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::CryptoProvider;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{DigitallySignedStruct, SignatureScheme};

    #[derive(Debug)]
    pub struct AcceptAnyServer(pub Arc<CryptoProvider>);

    impl ServerCertVerifier for AcceptAnyServer {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp_response: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_become_the_daemon_message() {
        let err = api_error(StatusCode::NOT_FOUND, br#"{"message":"image not found"}"#);
        assert_eq!(err.to_string(), "image not found");
        assert_eq!(err.exit_code(), 1);
        let err = api_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            br#"{"errors":[{"title":"Invalid value","source":{"pointer":"/all"},"detail":"bad"}]}"#,
        );
        assert_eq!(err.to_string(), "invalid value at /all: bad");
        let err = api_error(StatusCode::NOT_FOUND, b"not found");
        assert_eq!(err.to_string(), "kleened answered 404 Not Found: not found");
    }

    #[test]
    fn kleeneds_warnings_are_read_from_their_header() {
        assert_eq!(
            warning_text(r#"199 kleened "dataset a/b is busy: it is destroyed in the background""#),
            Some("dataset a/b is busy: it is destroyed in the background")
        );
        assert_eq!(warning_text(r#"199 proxy "other""#), None);
        assert_eq!(warning_text("199 kleened unquoted"), None);
    }

    #[test]
    fn an_unreachable_daemon_exits_2_and_names_the_host() {
        let err = ClientError::Unreachable {
            host: "http:///var/run/kleened.sock".into(),
            reason: "No such file or directory (os error 2)".into(),
        };
        assert_eq!(err.exit_code(), 2);
        assert!(err
            .to_string()
            .starts_with("cannot connect to kleened at http:///var/run/kleened.sock"));
    }

    #[test]
    fn a_client_certificate_needs_its_key() {
        let options = TlsOptions {
            cert: Some("/tmp/cert.pem".into()),
            ..TlsOptions::default()
        };
        let err = Connection::new("https://127.0.0.1:8085", &options).unwrap_err();
        assert!(err.to_string().contains("--tlskey"), "{err}");
    }

    #[test]
    fn bad_hosts_are_settings_errors() {
        let err =
            Connection::new("unix:///var/run/kleened.sock", &TlsOptions::default()).unwrap_err();
        assert!(matches!(err, ClientError::Settings(_)), "{err}");
        assert!(err.to_string().starts_with("--host"), "{err}");
    }
}
