//! Network namespaces for the network tests: a stand-in "host" namespace the daemon runs in (its
//! bridges, veth pairs, nftables table and forwarding setting all live there, never in the real
//! host's network), and an "upstream" namespace joined to it by a veth pair, standing in for the
//! outside world: it is the stand-in host's default route, so it is the `<host-gateway>` the
//! daemon finds and NATs to. No packet ever leaves the machine.
//!
//! Also a small HTTP/1.1 client over the daemon's unix socket, for checks of status codes and
//! bodies.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output};

use crate::clients::{ok_for, text};
use crate::daemon::{Daemon, DaemonOptions};

/// Address of the stand-in host on the upstream link.
pub const HOST_IP: &str = "10.99.0.1";
/// Address of the upstream namespace.
pub const UPSTREAM_IP: &str = "10.99.0.2";
/// The stand-in host's end of the upstream link (its default route, so its host gateway).
pub const UPLINK: &str = "kt-up0";

fn run(program: &str, args: &[&str]) -> Output {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    ok_for(format_args!("{program} {}", args.join(" ")), &out);
    out
}

/// The two namespaces; removed (with everything in them) when dropped.
#[derive(Debug)]
pub struct NetHost {
    /// The stand-in host's namespace (`/run/netns/<name>`).
    pub name: String,
    /// The upstream namespace.
    pub upstream: String,
}

impl NetHost {
    /// Makes both namespaces, the link between them and the stand-in host's default route.
    pub fn create() -> NetHost {
        let id = &uuid::Uuid::new_v4().simple().to_string()[..8];
        let host = NetHost {
            name: format!("kt-h{id}"),
            upstream: format!("kt-u{id}"),
        };
        run("ip", &["netns", "add", &host.name]);
        run("ip", &["netns", "add", &host.upstream]);
        run(
            "ip",
            &[
                "link",
                "add",
                UPLINK,
                "netns",
                &host.name,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                &host.upstream,
            ],
        );
        for (ns, interface, address) in [
            (&host.name, UPLINK, HOST_IP),
            (&host.upstream, "eth0", UPSTREAM_IP),
        ] {
            run(
                "ip",
                &[
                    "-n",
                    ns,
                    "address",
                    "add",
                    &format!("{address}/24"),
                    "dev",
                    interface,
                ],
            );
            run("ip", &["-n", ns, "link", "set", interface, "up"]);
            run("ip", &["-n", ns, "link", "set", "lo", "up"]);
        }
        run(
            "ip",
            &[
                "-n",
                &host.name,
                "route",
                "add",
                "default",
                "via",
                UPSTREAM_IP,
            ],
        );
        host
    }

    /// `nsenter --net=<namespace file>`: what runs a program in the stand-in host's network
    /// (and nothing else: mounts, cgroups and the rest stay the real host's).
    pub fn enter_args(&self) -> Vec<String> {
        vec![format!("--net=/run/netns/{}", self.name)]
    }

    /// Runs a command in the stand-in host's network.
    pub fn exec(&self, program: &str, args: &[&str]) -> Output {
        Command::new("nsenter")
            .args(self.enter_args())
            .arg(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run nsenter: {e}"))
    }

    /// Runs a command in the upstream namespace.
    pub fn exec_upstream(&self, program: &str, args: &[&str]) -> Output {
        Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.upstream))
            .arg(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run nsenter: {e}"))
    }

    /// Starts a program in the upstream namespace (a server), killed when the guard drops.
    pub fn spawn_upstream(&self, program: &str, args: &[&str]) -> Background {
        spawn_in(&self.upstream, program, args)
    }

    /// Starts a program in the stand-in host's network (a host service), killed when the guard
    /// drops.
    pub fn spawn(&self, program: &str, args: &[&str]) -> Background {
        spawn_in(&self.name, program, args)
    }

    /// The MAC address of one of the stand-in host's links (a network's bridge).
    pub fn mac_of(&self, link: &str) -> String {
        let out = run(
            "ip",
            &["-n", &self.name, "-json", "link", "show", "dev", link],
        );
        let links: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("ip -json link show");
        links[0]["address"]
            .as_str()
            .unwrap_or_else(|| panic!("no address for {link}: {links}"))
            .to_owned()
    }

    /// The stand-in host's neighbour entry for `address` on `link`: its MAC address and states.
    pub fn neighbour(&self, address: &str, link: &str) -> Option<(String, Vec<String>)> {
        let out = run(
            "ip",
            &[
                "-n", &self.name, "-json", "neigh", "show", "to", address, "dev", link,
            ],
        );
        let entries: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("ip -json neigh show");
        let entry = entries.get(0)?;
        let states = entry["state"]
            .as_array()
            .map(|s| {
                s.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        Some((entry["lladdr"].as_str()?.to_owned(), states))
    }

    /// The stand-in host's links, as `ip -br link` names.
    pub fn links(&self) -> Vec<String> {
        let out = run("ip", &["-n", &self.name, "-o", "link", "show"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|name| name.split('@').next().unwrap_or(name).to_owned())
            .collect()
    }

    /// The stand-in host's nftables ruleset.
    pub fn ruleset(&self) -> String {
        ok_for("nft list ruleset", &self.exec("nft", &["list", "ruleset"]))
    }
}

impl Daemon {
    /// [`Daemon::start`], the daemon running in the stand-in host's network.
    pub fn start_in(host: &NetHost) -> Daemon {
        Daemon::start_with(DaemonOptions {
            netns: Some(host.name.clone()),
            ..Default::default()
        })
    }
}

impl Drop for NetHost {
    fn drop(&mut self) {
        for ns in [&self.name, &self.upstream] {
            // Processes still in the namespace (a forgotten server) would keep it: kill them.
            if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-KILL", pid]).status();
                }
            }
            let _ = Command::new("ip").args(["netns", "delete", ns]).status();
        }
    }
}

/// Starts `program` in the network namespace `namespace`, its output collected.
fn spawn_in(namespace: &str, program: &str, args: &[&str]) -> Background {
    let child = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{namespace}"))
        .arg(program)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program} in {namespace}: {e}"));
    Background { child: Some(child) }
}

/// A program running in the background, killed when dropped.
#[derive(Debug)]
pub struct Background {
    child: Option<std::process::Child>,
}

impl Background {
    /// Stops it and answers what it printed.
    pub fn finish(mut self) -> String {
        let Some(mut child) = self.child.take() else {
            return String::new();
        };
        let _ = child.kill();
        let out = child
            .wait_with_output()
            .expect("wait for the background program");
        text(&out)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// An HTTP answer: status and body.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The body, as text.
    pub body: String,
}

impl Answer {
    /// The body as JSON (`null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// One HTTP/1.1 request over the daemon's unix socket (`Connection: close`).
pub fn request(
    socket: &Path,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> Answer {
    let mut stream = std::os::unix::net::UnixStream::connect(socket)
        .unwrap_or_else(|e| panic!("connect {}: {e}", socket.display()));
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: kleened\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("send the request");
    stream.write_all(body.as_bytes()).expect("send the body");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("read the answer");
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text}"));
    let chunked = head
        .lines()
        .any(|l| l.eq_ignore_ascii_case("transfer-encoding: chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    Answer { status, body }
}

/// The body of a chunked answer.
fn dechunk(mut text: &str) -> String {
    let mut body = String::new();
    while let Some((size, rest)) = text.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        body.push_str(&rest[..size]);
        text = rest[size..].trim_start_matches("\r\n");
    }
    body
}
