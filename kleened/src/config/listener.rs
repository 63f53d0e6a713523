//! Listeners in the configuration: addresses, TLS settings and connection limits, each checked
//! and resolved.

use std::fmt;
use std::path::PathBuf;

use kleene_api::{ApiAddress, ApiLocation, ApiScheme};
use serde::Deserialize;

use super::{describe_yaml, invalid, ConfigError};

/// One entry of `api_listening_sockets` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawListener {
    address: Option<String>,
    tlscert: Option<PathBuf>,
    tlskey: Option<PathBuf>,
    tlsdh: Option<PathBuf>,
    tlscacert: Option<PathBuf>,
    tlsverify: Option<serde_norway::Value>,
}

/// Severity threshold of the daemon's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// Server certificate chain (PEM); may also hold the key.
    pub cert: PathBuf,
    /// Private key (PEM); `None` when it is in `cert`.
    pub key: Option<PathBuf>,
    /// CA bundle that client certificates must be signed by.
    pub ca_cert: Option<PathBuf>,
    /// Require and verify a client certificate.
    pub verify_client: bool,
    /// Diffie-Hellman parameters. Accepted for compatibility; the TLS stack only offers
    /// elliptic-curve key exchange, so the file is not used.
    pub dh_params: Option<PathBuf>,
}

/// What one client may hold of a listener: connections and the time to send a request. They
/// bound reading requests only; answers (image creation's progress, an exec session's output)
/// take as long as they take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections a listener serves at once (`max_connections`), websocket sessions included;
    /// one more is answered 503 and closed.
    pub max_connections: usize,
    /// How long a client may take to send a request's line and headers, from connecting or from
    /// the end of its previous request (`request_header_timeout_secs`); then the connection is
    /// closed.
    pub header_timeout: std::time::Duration,
    /// How long a client may take to send a request's body once its headers arrived
    /// (`request_body_timeout_secs`); then it is answered 408 and the connection closed.
    pub body_timeout: std::time::Duration,
}

impl ConnectionLimits {
    /// Connections per listener by default: far more than the clients of one host open (klee
    /// holds one per command, an attached `klee run` one per session), and few enough that a
    /// runaway client cannot take every descriptor of a daemon under the usual limit of 1024.
    pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
    /// Seconds for a request's headers by default (hyper's own default): they are a few hundred
    /// bytes, sent at once by every client.
    pub const DEFAULT_HEADER_TIMEOUT_SECS: u64 = 30;
    /// Seconds for a request's body by default: bodies are JSON of at most 1 MiB, so this asks
    /// for 17 KiB/s at worst.
    pub const DEFAULT_BODY_TIMEOUT_SECS: u64 = 60;
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            header_timeout: std::time::Duration::from_secs(Self::DEFAULT_HEADER_TIMEOUT_SECS),
            body_timeout: std::time::Duration::from_secs(Self::DEFAULT_BODY_TIMEOUT_SECS),
        }
    }
}

/// One place the API is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerConfig {
    /// The address as parsed.
    pub address: ApiAddress,
    /// Present for `https://` addresses.
    pub tls: Option<TlsSettings>,
    /// What one client may hold of it; the top-level keys, the same for every listener.
    pub limits: ConnectionLimits,
}

impl ListenerConfig {
    /// A TCP listener that admits clients without a certificate of the configured CA: anyone who
    /// can reach it controls the daemon, and so the host, as root.
    pub fn admits_anyone(&self) -> bool {
        matches!(self.address.location, ApiLocation::Tcp { .. })
            && !self.tls.as_ref().is_some_and(|tls| tls.verify_client)
    }
}

impl fmt::Display for ListenerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.address.fmt(f)
    }
}

/// The resolved configuration.
/// The connection limits from their keys; each must be at least 1, as a bound of 0 would refuse
/// everything rather than mean "no bound".
pub(super) fn resolve_limits(
    max_connections: Option<u64>,
    header_secs: Option<u64>,
    body_secs: Option<u64>,
) -> Result<ConnectionLimits, ConfigError> {
    let positive = |key: &str, value: Option<u64>, default: u64| match value {
        Some(0) => Err(invalid(key, "must be at least 1")),
        Some(value) => Ok(value),
        None => Ok(default),
    };
    let max_connections = positive(
        "max_connections",
        max_connections,
        ConnectionLimits::DEFAULT_MAX_CONNECTIONS as u64,
    )?;
    let header = positive(
        "request_header_timeout_secs",
        header_secs,
        ConnectionLimits::DEFAULT_HEADER_TIMEOUT_SECS,
    )?;
    let body = positive(
        "request_body_timeout_secs",
        body_secs,
        ConnectionLimits::DEFAULT_BODY_TIMEOUT_SECS,
    )?;
    Ok(ConnectionLimits {
        max_connections: usize::try_from(max_connections).unwrap_or(usize::MAX),
        header_timeout: std::time::Duration::from_secs(header),
        body_timeout: std::time::Duration::from_secs(body),
    })
}

pub(super) fn resolve_listener(
    index: usize,
    raw: RawListener,
    limits: ConnectionLimits,
) -> Result<ListenerConfig, ConfigError> {
    let key = |field: &str| format!("api_listening_sockets[{index}].{field}");
    let text = raw.address.ok_or_else(|| ConfigError::Missing {
        key: key("address"),
    })?;
    let address = ApiAddress::parse(&text).map_err(|e| invalid(key("address"), e.reason))?;
    match &address.location {
        ApiLocation::Tcp { host, .. } if address.socket_addr().is_none() => {
            return Err(invalid(
                key("address"),
                format!("'{host}' is not an IPv4 or IPv6 address (host names are not accepted)"),
            ));
        }
        ApiLocation::Unix(path) if path.is_dir() => {
            return Err(invalid(
                key("address"),
                format!("{} is a directory", path.display()),
            ));
        }
        ApiLocation::Unix(path) => {
            if let Ok(meta) = std::fs::symlink_metadata(path) {
                use std::os::unix::fs::FileTypeExt;
                let kind = meta.file_type();
                if !(kind.is_file() || kind.is_socket()) {
                    return Err(invalid(
                        key("address"),
                        format!(
                            "{} exists and is neither a socket nor a regular file",
                            path.display()
                        ),
                    ));
                }
            }
        }
        ApiLocation::Tcp { .. } => {}
    }
    let existing = |field: &str, path: Option<PathBuf>| -> Result<Option<PathBuf>, ConfigError> {
        match path {
            Some(p) if !p.is_file() => Err(invalid(
                key(field),
                format!("file '{}' does not exist", p.display()),
            )),
            other => Ok(other),
        }
    };
    let cert = existing("tlscert", raw.tlscert)?;
    let tls_key = existing("tlskey", raw.tlskey)?;
    let dh_params = existing("tlsdh", raw.tlsdh)?;
    let ca_cert = existing("tlscacert", raw.tlscacert)?;
    let verify_client = match raw.tlsverify {
        None | Some(serde_norway::Value::Bool(false)) => false,
        Some(serde_norway::Value::Bool(true)) => true,
        Some(other) => {
            return Err(invalid(
                key("tlsverify"),
                format!("expected true or false, found {}", describe_yaml(&other)),
            ))
        }
    };
    let tls = match address.scheme {
        ApiScheme::Http => {
            if cert.is_some() || tls_key.is_some() || ca_cert.is_some() || verify_client {
                return Err(invalid(
                    key("address"),
                    "TLS options are given but the address is not https://",
                ));
            }
            None
        }
        ApiScheme::Https => {
            let cert = cert.ok_or_else(|| ConfigError::Missing {
                key: key("tlscert"),
            })?;
            if verify_client && ca_cert.is_none() {
                return Err(ConfigError::Missing {
                    key: key("tlscacert"),
                });
            }
            Some(TlsSettings {
                cert,
                key: tls_key,
                ca_cert,
                verify_client,
                dh_params,
            })
        }
    };
    Ok(ListenerConfig {
        address,
        tls,
        limits,
    })
}
