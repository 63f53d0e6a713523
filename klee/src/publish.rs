//! The `-p/--publish` syntax of `run` and `create`, turned into the API's `PublishedPortConfig`.
//!
//! The forms are the Python client's: `HOST_PORT[:CONTAINER_PORT][/PROTOCOL]` and
//! `INTERFACE:HOST_PORT:CONTAINER_PORT[/PROTOCOL]`, the container port defaulting to the host port
//! and the protocol to `tcp`. Because `:` separates the parts, a port range is written `N-M` here
//! and sent as the API's `N:M`; the Python client has no way to write one.
//!
//! Unlike the Python client, which sends the parts unchecked, every part is checked here, so a bad
//! specification is a usage error that names it before anything reaches the daemon.

use kleene_api::{PortProtocol, PublishedPortConfig};

/// Why a `--publish` specification was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// Too many `:` or `/`.
    #[error("expected HOST_PORT[:CONTAINER_PORT][/PROTOCOL] or INTERFACE:HOST_PORT:CONTAINER_PORT[/PROTOCOL]")]
    Shape,
    /// The part after `/`.
    #[error("unknown protocol '{0}' (tcp or udp)")]
    Protocol(String),
    /// `:80:80`.
    #[error("the interface is empty")]
    EmptyInterface,
    /// Not a number or a range `N-M` of numbers from 0 to 65535.
    #[error("invalid {which} port '{text}': a number from 0 to 65535, or a range N-M")]
    Port {
        /// `host` or `container`.
        which: &'static str,
        /// The port as written.
        text: String,
    },
    /// `90-80`.
    #[error("invalid {which} port range '{text}': the first port is above the last")]
    Reversed {
        /// `host` or `container`.
        which: &'static str,
        /// The range as written.
        text: String,
    },
    /// `8000-8010:9000-9001`.
    #[error("the container port range {container} is not as long as the host port range {host}")]
    Length {
        /// The host range as written.
        host: String,
        /// The container range as written.
        container: String,
    },
}

/// A port or an inclusive range of ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ports {
    first: u16,
    last: u16,
}

impl Ports {
    fn parse(text: &str, which: &'static str) -> Result<Ports, PublishError> {
        let number = |part: &str| {
            // `u16::from_str` takes a leading `+`; a port is digits only.
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            part.parse::<u16>().ok()
        };
        let invalid = || PublishError::Port {
            which,
            text: text.to_owned(),
        };
        let (first, last) = match text.split_once('-') {
            None => {
                let port = number(text).ok_or_else(invalid)?;
                (port, port)
            }
            Some((first, last)) => (
                number(first).ok_or_else(invalid)?,
                number(last).ok_or_else(invalid)?,
            ),
        };
        if first > last {
            return Err(PublishError::Reversed {
                which,
                text: text.to_owned(),
            });
        }
        Ok(Ports { first, last })
    }

    fn is_range(self) -> bool {
        self.first != self.last
    }

    /// `N`, or `N:M` as the API writes ranges.
    fn wire(self) -> String {
        if self.is_range() {
            format!("{}:{}", self.first, self.last)
        } else {
            self.first.to_string()
        }
    }
}

/// Parses one `--publish` value.
pub fn parse(spec: &str) -> Result<PublishedPortConfig, PublishError> {
    let (ports, protocol) = match spec.split('/').collect::<Vec<_>>()[..] {
        [ports] => (ports, PortProtocol::Tcp),
        [ports, "tcp"] => (ports, PortProtocol::Tcp),
        [ports, "udp"] => (ports, PortProtocol::Udp),
        [_, other] => return Err(PublishError::Protocol(other.to_owned())),
        _ => return Err(PublishError::Shape),
    };
    let (interfaces, host, container) = match ports.split(':').collect::<Vec<_>>()[..] {
        [host] => (vec![], host, host),
        [host, container] => (vec![], host, container),
        ["", _, _] => return Err(PublishError::EmptyInterface),
        [interface, host, container] => (vec![interface.to_owned()], host, container),
        _ => return Err(PublishError::Shape),
    };
    let host_ports = Ports::parse(host, "host")?;
    let container_ports = Ports::parse(container, "container")?;
    // A single container port takes every host port; a container range maps port by port and must
    // be as long as the host range (the daemon checks this too, in its own notation).
    if container_ports.is_range()
        && container_ports.last - container_ports.first != host_ports.last - host_ports.first
    {
        return Err(PublishError::Length {
            host: host.to_owned(),
            container: container.to_owned(),
        });
    }
    Ok(PublishedPortConfig {
        interfaces,
        host_port: host_ports.wire(),
        container_port: container_ports.wire(),
        protocol,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(interfaces: &[&str], host: &str, container: &str, tcp: bool) -> PublishedPortConfig {
        PublishedPortConfig {
            interfaces: interfaces.iter().map(|i| i.to_string()).collect(),
            host_port: host.into(),
            container_port: container.into(),
            protocol: if tcp {
                PortProtocol::Tcp
            } else {
                PortProtocol::Udp
            },
        }
    }

    #[test]
    fn a_host_port_alone_is_also_the_container_port_over_tcp() {
        assert_eq!(parse("8080"), Ok(port(&[], "8080", "8080", true)));
    }

    #[test]
    fn host_and_container_ports_with_and_without_protocol() {
        assert_eq!(parse("8080:80"), Ok(port(&[], "8080", "80", true)));
        assert_eq!(parse("8080:80/tcp"), Ok(port(&[], "8080", "80", true)));
        assert_eq!(parse("53/udp"), Ok(port(&[], "53", "53", false)));
        assert_eq!(parse("5353:53/udp"), Ok(port(&[], "5353", "53", false)));
    }

    #[test]
    fn an_interface_comes_first_with_both_ports() {
        assert_eq!(parse("em0:8080:80"), Ok(port(&["em0"], "8080", "80", true)));
        assert_eq!(
            parse("em0:53:53/udp"),
            Ok(port(&["em0"], "53", "53", false))
        );
    }

    #[test]
    fn ranges_are_written_with_a_dash_and_sent_with_a_colon() {
        assert_eq!(
            parse("8000-8010"),
            Ok(port(&[], "8000:8010", "8000:8010", true))
        );
        assert_eq!(
            parse("8000-8010:9000-9010/udp"),
            Ok(port(&[], "8000:8010", "9000:9010", false))
        );
        // Every host port of the range to one container port.
        assert_eq!(
            parse("lo0:8000-8010:80"),
            Ok(port(&["lo0"], "8000:8010", "80", true))
        );
        assert_eq!(parse("80-80"), Ok(port(&[], "80", "80", true)));
    }

    #[test]
    fn bad_specifications_are_refused_with_what_is_wrong() {
        let cases = [
            ("1:2:3:4", "expected HOST_PORT"),
            ("80/tcp/udp", "expected HOST_PORT"),
            ("80/sctp", "unknown protocol 'sctp'"),
            ("80/TCP", "unknown protocol 'TCP'"),
            ("80/", "unknown protocol ''"),
            (":80:80", "the interface is empty"),
            ("", "invalid host port ''"),
            ("http", "invalid host port 'http'"),
            ("80:", "invalid container port ''"),
            (":80", "invalid host port ''"),
            ("65536", "invalid host port '65536'"),
            ("+80", "invalid host port '+80'"),
            ("-80", "invalid host port '-80'"),
            ("80-", "invalid host port '80-'"),
            ("1-2-3", "invalid host port '1-2-3'"),
            ("8080:x", "invalid container port 'x'"),
            ("90-80", "host port range '90-80': the first port is above the last"),
            ("80:90-85", "container port range '90-85'"),
            (
                "8000-8010:9000-9001",
                "the container port range 9000-9001 is not as long as the host port range 8000-8010",
            ),
            (
                "80:9000-9001",
                "the container port range 9000-9001 is not as long as the host port range 80",
            ),
        ];
        for (spec, expected) in cases {
            let err = parse(spec).expect_err(spec).to_string();
            assert!(err.contains(expected), "{spec}: {err}");
        }
    }
}
