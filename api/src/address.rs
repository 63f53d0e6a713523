//! Parsing of API addresses such as `http:///var/run/kleened.sock` or `https://[::1]:8085`.
//!
//! Both sides use the same notation: the daemon's `api_listening_sockets` entries and the client's
//! `--host`. An empty authority (three slashes) means a unix-domain socket at the absolute path that
//! follows; otherwise the authority is `host[:port]`, with the scheme's default port when none is
//! written. General URL parsers cannot be used here: for `http` they read `http:///var/run/x` as the
//! host `var`, which is not what the Kleene notation means.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// Plain HTTP or HTTP over TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiScheme {
    /// `http://`
    Http,
    /// `https://`
    Https,
}

impl ApiScheme {
    /// The port used when the address names none (80 or 443).
    pub fn default_port(self) -> u16 {
        match self {
            ApiScheme::Http => 80,
            ApiScheme::Https => 443,
        }
    }
}

/// Where the API lives: a unix-domain socket or a TCP host and port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ApiLocation {
    /// A unix-domain socket at an absolute path.
    Unix(PathBuf),
    /// A TCP endpoint; `host` is a name or an IP literal (without brackets).
    Tcp { host: String, port: u16 },
}

/// A parsed API address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiAddress {
    /// Whether TLS is used.
    pub scheme: ApiScheme,
    /// Socket path or TCP endpoint.
    pub location: ApiLocation,
}

/// Why an address could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseAddressError {
    /// The address as given.
    pub address: String,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for ParseAddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid address '{}': {}", self.address, self.reason)
    }
}

impl std::error::Error for ParseAddressError {}

impl ApiAddress {
    /// Parses `http[s]:///abs/path` or `http[s]://host[:port][/]`.
    pub fn parse(address: &str) -> Result<Self, ParseAddressError> {
        let fail = |reason: &str| ParseAddressError {
            address: address.to_owned(),
            reason: reason.to_owned(),
        };
        let (scheme, rest) = if let Some(rest) = address.strip_prefix("http://") {
            (ApiScheme::Http, rest)
        } else if let Some(rest) = address.strip_prefix("https://") {
            (ApiScheme::Https, rest)
        } else {
            return Err(fail("the scheme must be 'http://' or 'https://'"));
        };
        if rest.contains(['?', '#']) {
            return Err(fail("a query or fragment is not allowed"));
        }
        if let Some(path) = rest.strip_prefix('/') {
            if path.is_empty() {
                return Err(fail("the unix socket path is empty"));
            }
            return Ok(ApiAddress {
                scheme,
                location: ApiLocation::Unix(PathBuf::from(format!("/{path}"))),
            });
        }
        // A trailing "/" is tolerated (`http://[::1]:8080/`); any other path is not.
        let authority = match rest.split_once('/') {
            Some((authority, "")) => authority,
            Some(_) => return Err(fail("a TCP address cannot have a path")),
            None => rest,
        };
        if authority.contains('@') {
            return Err(fail("user information is not allowed"));
        }
        if authority.is_empty() {
            return Err(fail("the host is empty"));
        }
        let (host, port) =
            split_host_port(authority).ok_or_else(|| fail("malformed host or port"))?;
        let port = match port {
            Some(port) => port
                .parse::<u16>()
                .map_err(|_| fail("the port must be a number from 0 to 65535"))?,
            None => scheme.default_port(),
        };
        Ok(ApiAddress {
            scheme,
            location: ApiLocation::Tcp {
                host: host.to_owned(),
                port,
            },
        })
    }

    /// The socket address for a TCP location whose host is an IP literal.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        match &self.location {
            ApiLocation::Tcp { host, port } => host
                .parse::<IpAddr>()
                .ok()
                .map(|ip| SocketAddr::new(ip, *port)),
            ApiLocation::Unix(_) => None,
        }
    }
}

impl fmt::Display for ApiAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            ApiScheme::Http => "http",
            ApiScheme::Https => "https",
        };
        match &self.location {
            ApiLocation::Unix(path) => write!(f, "{scheme}://{}", path.display()),
            ApiLocation::Tcp { host, port } if host.contains(':') => {
                write!(f, "{scheme}://[{host}]:{port}")
            }
            ApiLocation::Tcp { host, port } => write!(f, "{scheme}://{host}:{port}"),
        }
    }
}

/// Splits `host:port`, `[v6]:port`, `[v6]` or `host` into host (brackets removed) and port text.
fn split_host_port(authority: &str) -> Option<(&str, Option<&str>)> {
    if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            _ => Some((host, Some(after.strip_prefix(':')?))),
        };
    }
    match authority.split_once(':') {
        // A bare IPv6 literal without brackets is ambiguous with a port: refuse it.
        Some((_, port)) if port.contains(':') => None,
        Some((host, port)) if !host.is_empty() => Some((host, Some(port))),
        Some(_) => None,
        None => Some((authority, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(host: &str, port: u16) -> ApiLocation {
        ApiLocation::Tcp {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn three_slashes_mean_a_unix_socket() {
        let a = ApiAddress::parse("http:///var/run/kleened.sock").unwrap();
        assert_eq!(a.scheme, ApiScheme::Http);
        assert_eq!(
            a.location,
            ApiLocation::Unix("/var/run/kleened.sock".into())
        );
        let a = ApiAddress::parse("https:///tmp/x.tlssock").unwrap();
        assert_eq!(a.scheme, ApiScheme::Https);
    }

    #[test]
    fn tcp_addresses_with_and_without_port() {
        assert_eq!(
            ApiAddress::parse("http://127.0.0.1:8085").unwrap().location,
            tcp("127.0.0.1", 8085)
        );
        assert_eq!(
            ApiAddress::parse("http://[::1]:8080/").unwrap().location,
            tcp("::1", 8080)
        );
        assert_eq!(
            ApiAddress::parse("https://127.0.0.1").unwrap().location,
            tcp("127.0.0.1", 443)
        );
        assert_eq!(
            ApiAddress::parse("http://[::1]").unwrap().location,
            tcp("::1", 80)
        );
        assert_eq!(
            ApiAddress::parse("http://localhost:1").unwrap().location,
            tcp("localhost", 1)
        );
    }

    #[test]
    fn socket_addr_only_for_ip_literals() {
        let a = ApiAddress::parse("http://[::1]:8080").unwrap();
        assert_eq!(a.socket_addr(), Some("[::1]:8080".parse().unwrap()));
        assert_eq!(
            ApiAddress::parse("http://localhost:1")
                .unwrap()
                .socket_addr(),
            None
        );
    }

    #[test]
    fn rejected_shapes() {
        for bad in [
            "unix:///var/run/kleened.sock",
            "tcp://127.0.0.1:80",
            "http://127.0.0.1:80?x=1",
            "http://127.0.0.1:80#f",
            "http://user@127.0.0.1:80",
            "http://127.0.0.1:80/api",
            "http://127.0.0.1:99999",
            "http://127.0.0.1:port",
            "http://::1:80",
            "http://",
            "http:///",
        ] {
            assert!(ApiAddress::parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "http:///var/run/kleened.sock",
            "https://127.0.0.1:8085",
            "http://[::1]:8080",
        ] {
            assert_eq!(ApiAddress::parse(text).unwrap().to_string(), text);
        }
    }
}
