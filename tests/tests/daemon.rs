//! The daemon and our klee, end to end: real binaries over real sockets.

// Test code: a failed setup step should panic where it happens.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::{Duration, Instant};

use kleene_tests::bin;
use kleene_tests::clients::{describe, klee, ok_for, python, python_klee, stderr, stdout, Certs};
use kleene_tests::daemon::{free_port, platform_config, Daemon, DaemonOptions};
use kleene_tests::host::peak_rss_kib;
use kleene_tests::pool::{zfs_tree, TestRoot};
use kleene_tests::require;
use kleene_tests::skip::host_tests;
use kleene_tests::store::daemon_with_samples;

#[test]
fn klee_lists_every_kind_of_object_over_the_unix_socket() {
    require!(host_tests());
    let daemon = Daemon::start();
    for (args, header) in [
        (&["lsi"][..], "ID"),
        (&["image", "ls"][..], "TAG"),
        (&["lsc", "-a"][..], "CONTAINER ID"),
        (&["container", "ls", "-a"][..], "STATUS"),
        (&["lsn"][..], "INTERFACE"),
        (&["network", "ls"][..], "SUBNET"),
        (&["lsv"][..], "VOLUME NAME"),
        (&["volume", "ls"][..], "MOUNTPOINT"),
    ] {
        let out = daemon.klee(args);
        ok_for(format_args!("klee {args:?}"), &out);
        assert!(
            stdout(&out).starts_with(header) || stdout(&out).contains(header),
            "klee {args:?}: {}",
            describe(&out)
        );
    }
    assert_eq!(daemon.klee_ok(&["--json", "lsi"]).trim(), "[]");
}

#[test]
fn the_unix_socket_is_mode_0660() {
    require!(host_tests());
    let daemon = Daemon::start();
    let mode = std::fs::metadata(daemon.socket())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o660);
}

#[test]
fn stored_objects_are_listed_and_survive_a_restart() {
    require!(host_tests());
    let (_net, mut daemon) = daemon_with_samples();

    let table = daemon.klee_ok(&["lsi"]);
    assert!(
        table.contains("1a2b3c4d5e6f") && table.contains("base") && table.contains("latest"),
        "{table}"
    );

    let out = daemon.klee(&["lsc"]);
    assert!(
        !stdout(&out).contains("abcdef012345"),
        "a stopped container is listed only with -a"
    );
    let out = daemon.klee(&["lsc", "-a"]);
    let table = stdout(&out);
    assert!(
        table.contains("abcdef012345")
            && table.contains("base:latest")
            && table.contains("stopped"),
        "{table}"
    );

    let inspect = daemon.klee_json(&["isc", "web"]);
    assert_eq!(inspect["container"]["id"], "abcdef012345");
    assert_eq!(inspect["container_endpoints"], serde_json::json!([]));

    daemon.restart();
    let networks = daemon.klee_json(&["--json", "lsn"]);
    assert_eq!(networks[0]["name"], "default");
    daemon.klee_ok(&["isv", "data"]);
}

#[test]
fn unknown_objects_print_the_daemon_message_and_exit_1() {
    require!(host_tests());
    let daemon = Daemon::start();
    for (args, message) in [
        (["isi", "nope"], "image not found"),
        (["isc", "nope"], "container not found"),
        (["isn", "nope"], "network not found"),
        (["isv", "nope"], "No such volume"),
    ] {
        let out = daemon.klee(&args);
        assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
        assert_eq!(stderr(&out).trim(), format!("klee: {message}"));
    }
}

#[test]
fn an_ambiguous_prefix_and_a_taken_name_are_refused_and_change_nothing() {
    require!(host_tests());
    let daemon = Daemon::with_base();
    // Containers until two IDs share their first character: at most 17 (16 hex digits).
    let mut ids: Vec<String> = vec![];
    let prefix = loop {
        let id = daemon.klee_ok(&["create", "base"]).trim().to_owned();
        let first = id[..1].to_owned();
        let shared = ids.iter().any(|other| other.starts_with(&first));
        ids.push(id);
        if shared {
            break first;
        }
    };
    let mut candidates: Vec<&String> = ids.iter().filter(|id| id.starts_with(&prefix)).collect();
    candidates.sort();
    let expected = format!(
        "container identifier '{prefix}' is ambiguous: it matches 2 containers ({}, {}); give \
         more of the ID",
        candidates[0], candidates[1]
    );

    let out = daemon.klee(&["rmc", &prefix]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(stderr(&out).contains(&expected), "{}", describe(&out));
    let out = daemon.klee(&["isc", &prefix]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(stderr(&out).contains(&expected), "{}", describe(&out));
    // The published client prints the refusal: 409 is one of its statuses for container rm.
    if let Some(python_klee) = python_klee() {
        let out = python(&python_klee, &daemon, &["container", "rm", &prefix]);
        let printed = stdout(&out) + &stderr(&out);
        assert!(
            printed.contains("is ambiguous") && !printed.contains("Traceback"),
            "{}",
            describe(&out)
        );
    }
    // Nothing was removed: every container is listed and has its dataset.
    let listed = daemon.klee_list(&["--json", "lsc", "-a"]);
    assert_eq!(listed.len(), ids.len(), "{listed:?}");
    let datasets = zfs_tree(&daemon.root.name);
    for id in &ids {
        assert!(
            datasets
                .iter()
                .any(|d| d.ends_with(&format!("/container/{id}"))),
            "{id}: {datasets:?}"
        );
    }
    // A unique prefix still works: the shortest one of the first candidate that no other ID has.
    let unique = (2..=candidates[0].len())
        .map(|n| &candidates[0][..n])
        .find(|p| ids.iter().filter(|id| id.starts_with(p)).count() == 1)
        .unwrap();
    daemon.klee_ok(&["isc", unique]);

    // A name is one container's only.
    let web = daemon
        .klee_ok(&["create", "--name", "web", "base"])
        .trim()
        .to_owned();
    let taken = format!("container name 'web' is already in use by container {web}");
    let out = daemon.klee(&["create", "--name", "web", "base"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(stderr(&out).contains(&taken), "{}", describe(&out));
    let out = daemon.klee(&["rename", &ids[0], "web"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(stderr(&out).contains(&taken), "{}", describe(&out));
    let long = "n".repeat(256);
    let out = daemon.klee(&["create", "--name", &long, "base"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        stderr(&out).contains("container name is longer than 255 bytes"),
        "{}",
        describe(&out)
    );
    let listed = daemon.klee_list(&["--json", "lsc", "-a"]);
    assert_eq!(
        listed.len(),
        ids.len() + 1,
        "refused creates leave no container: {listed:?}"
    );
    let clones = zfs_tree(&daemon.root.name)
        .iter()
        .filter(|d| d.contains("/container/"))
        .count();
    assert_eq!(clones, ids.len() + 1, "refused creates leave no dataset");
}

#[test]
fn an_absent_daemon_gives_one_clear_line_and_exit_2() {
    require!(host_tests());
    let dir = tempfile::tempdir().unwrap();
    let host = format!("http://{}/kleened.sock", dir.path().display());
    let out = klee(&host, &["lsi"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let text = stderr(&out);
    assert!(text.contains(&host), "names the host tried: {text}");
    assert!(
        text.contains("is kleened running"),
        "says what to check: {text}"
    );

    let port = free_port();
    let out = klee(&format!("http://127.0.0.1:{port}"), &["lsc"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
}

#[test]
fn a_stale_socket_file_is_replaced_and_a_live_one_is_refused() {
    require!(host_tests());
    let mut daemon = Daemon::start();
    // A second daemon on the same socket must not take it over.
    let second = Command::new(bin("kleened"))
        .arg("--config")
        .arg(daemon.config_path())
        .output()
        .unwrap();
    assert!(!second.status.success(), "{}", describe(&second));
    assert!(
        stderr(&second).contains("kleened seems to run already"),
        "{}",
        describe(&second)
    );
    assert!(
        daemon.socket().exists(),
        "the running daemon keeps its socket"
    );

    daemon.stop();
    // What a crash leaves behind: a socket file nobody listens on, and a pidfile of a dead process.
    let stale = std::os::unix::net::UnixListener::bind(daemon.socket()).unwrap();
    drop(stale);
    std::fs::write(daemon.dir().join("kleened.pid"), "999999999\n").unwrap();
    daemon.restart();
    daemon.klee_ok(&["lsi"]);
}

fn kleened_with_config(text: &str) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let root = TestRoot::create();
    let text = text
        .replace("$DIR", &dir.path().display().to_string())
        .replace("$ROOT", &root.name);
    std::fs::write(dir.path().join("config.yaml"), text).unwrap();
    let out = Command::new(bin("kleened"))
        .arg("--config")
        .arg(dir.path().join("config.yaml"))
        .output()
        .unwrap();
    assert!(
        !dir.path().join("kleened.sock").exists(),
        "a failed start leaves no socket"
    );
    assert!(
        !dir.path().join("kleened.pid").exists(),
        "a failed start leaves no pidfile"
    );
    out
}

const GOOD: &str = "kleene_root: $ROOT
cgroup_parent: kleene-e2e-config
api_listening_sockets:
  - address: http://$DIR/kleened.sock
enable_logging: false
log_level: info
pidfile: $DIR/kleened.pid
";

/// A good configuration for this OS: `GOOD` plus what the OS requires (the pf paths on FreeBSD).
fn good() -> String {
    format!("{GOOD}{}", platform_config("$DIR"))
}

#[test]
fn bad_configurations_stop_the_daemon_with_a_message_naming_the_problem() {
    require!(host_tests());
    for (config, expected) in [
        (good().replace("log_level: info\n", ""), "'log_level' key not set in configuration file"),
        (good().replace("kleene_root: $ROOT\n", ""), "'kleene_root' key not set"),
        (
            good().replace("kleene_root: $ROOT", "kleene_root: $ROOT/missing"),
            "/missing' of 'kleene_root' does not exist: create it",
        ),
        (
            good().replace("http://$DIR/kleened.sock", "http://$DIR"),
            "invalid value for 'api_listening_sockets[0].address'",
        ),
        (
            good().replace(
                "  - address: http://$DIR/kleened.sock\n",
                "  - address: http://$DIR/kleened.sock\n  - address: https://127.0.0.1:1\n    tlscert: $DIR/nope.pem\n",
            ),
            "invalid value for 'api_listening_sockets[1].tlscert': file '",
        ),
        (good().replace("log_level: info", "log_level: chatty"), "invalid value for 'log_level'"),
        (format!("{}colour: blue\n", good()), "unknown field `colour`"),
        (good().replace("http://$DIR/kleened.sock", "http://$DIR/missing-dir/kleened.sock"), "does not exist"),
    ] {
        let out = kleened_with_config(&config);
        assert!(!out.status.success(), "{config}\n{}", describe(&out));
        assert!(stderr(&out).contains(expected), "expected {expected:?} in:\n{}", describe(&out));
    }
    let out = Command::new(bin("kleened"))
        .args(["--config", "/nonexistent/config.yaml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("could not read configuration file /nonexistent/config.yaml"),
        "{}",
        describe(&out)
    );
}

#[test]
fn a_malformed_tls_certificate_stops_the_daemon() {
    require!(host_tests());
    let out = kleened_with_config(&good().replace(
        "  - address: http://$DIR/kleened.sock\n",
        "  - address: http://$DIR/kleened.sock\n  - address: https://127.0.0.1:1\n    tlscert: $DIR/config.yaml\n",
    ));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no certificate in the file"),
        "{}",
        describe(&out)
    );
}

#[test]
fn tcp_listeners_on_ipv4_and_ipv6_serve_the_same_api() {
    require!(host_tests());
    let (v4, v6) = (free_port(), free_port());
    let daemon = Daemon::start_with(DaemonOptions {
        extra_listeners: format!(
            "  - address: http://127.0.0.1:{v4}\n  - address: \"http://[::1]:{v6}/\"\n"
        ),
        ..Default::default()
    });
    for host in [
        format!("http://127.0.0.1:{v4}"),
        format!("http://[::1]:{v6}"),
        daemon.host.clone(),
    ] {
        ok_for(&host, &klee(&host, &["lsc", "-a"]));
    }
    // Anyone who reaches a plain TCP listener is root on the host: the daemon says so at start,
    // once per such listener, and not for the unix socket.
    let log = daemon.log();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("is root on this host"))
        .collect();
    assert_eq!(warnings.len(), 2, "{log}");
    assert!(warnings[0].contains(&format!("127.0.0.1:{v4}")), "{log}");
}

#[test]
fn tls_with_client_certificates_admits_only_clients_of_the_ca() {
    require!(host_tests());
    let certs_dir = tempfile::tempdir().unwrap();
    let certs = Certs::generate(certs_dir.path());
    let port = free_port();
    let daemon = Daemon::start_with(DaemonOptions {
        extra_listeners: format!(
            "  - address: https://127.0.0.1:{port}\n    tlscert: {}\n    tlskey: {}\n    tlscacert: {}\n    tlsverify: true\n",
            certs.server_cert.display(),
            certs.server_key.display(),
            certs.ca.display()
        ),
        ..Default::default()
    });
    let host = format!("https://127.0.0.1:{port}");
    let p = |path: &std::path::Path| path.display().to_string();

    let verified = [
        "--tlsverify".to_owned(),
        "--tlscacert".to_owned(),
        p(&certs.ca),
        "--tlscert".to_owned(),
        p(&certs.client_cert),
        "--tlskey".to_owned(),
        p(&certs.client_key),
    ];
    let mut args: Vec<&str> = verified.iter().map(String::as_str).collect();
    args.push("lsi");
    ok_for("a client of the CA", &klee(&host, &args));

    let out = klee(&host, &["--tlscacert", &p(&certs.ca), "lsi"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "no client certificate: {}",
        describe(&out)
    );

    let out = klee(
        &host,
        &[
            "--tlscacert",
            &p(&certs.ca),
            "--tlscert",
            &p(&certs.rogue_cert),
            "--tlskey",
            &p(&certs.rogue_key),
            "lsi",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "a certificate of another CA: {}",
        describe(&out)
    );

    let out = klee(
        &host,
        &[
            "--tlsverify",
            "--tlscert",
            &p(&certs.client_cert),
            "--tlskey",
            &p(&certs.client_key),
            "lsi",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "the server's CA is not a system CA: {}",
        describe(&out)
    );
    assert!(
        stderr(&out).contains("TLS handshake failed"),
        "{}",
        describe(&out)
    );

    let out = klee(&format!("http://127.0.0.1:{port}"), &["lsi"]);
    assert!(
        !out.status.success(),
        "plain HTTP to a TLS listener: {}",
        describe(&out)
    );

    // The unix socket of the same daemon still answers without TLS.
    daemon.klee_ok(&["lsi"]);
}

/// A daemon whose configuration has these top-level keys as well.
fn daemon_with_keys(keys: &str) -> Daemon {
    let mut daemon = Daemon::start();
    daemon.stop();
    let mut config = std::fs::read_to_string(daemon.config_path()).unwrap();
    config.push_str(keys);
    std::fs::write(daemon.config_path(), config).unwrap();
    daemon.start_again();
    daemon
}

/// A raw connection to the daemon's unix socket, for clients that misbehave.
fn raw(daemon: &Daemon) -> UnixStream {
    UnixStream::connect(daemon.socket()).unwrap()
}

/// Everything the daemon sends until it closes the connection, and how long that took from
/// `since`; `None` if it is still open after `patience`.
fn until_closed(
    stream: &mut UnixStream,
    since: Instant,
    patience: Duration,
) -> Option<(String, Duration)> {
    stream.set_read_timeout(Some(patience)).unwrap();
    let mut answer = Vec::new();
    match stream.read_to_end(&mut answer) {
        Ok(_) => Some((
            String::from_utf8_lossy(&answer).into_owned(),
            since.elapsed(),
        )),
        // A reset also ends the connection. It comes after the answer when the daemon closed
        // with bytes of ours still unread (a trickled body's next byte): what was read before it
        // is kept in `answer`.
        Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => Some((
            String::from_utf8_lossy(&answer).into_owned(),
            since.elapsed(),
        )),
        Err(_) => None,
    }
}

/// An HTTP/1.1 connection kept alive over many requests.
struct Http {
    writer: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Http {
    fn open(daemon: &Daemon) -> Http {
        let writer = raw(daemon);
        let reader = BufReader::new(writer.try_clone().unwrap());
        Http { writer, reader }
    }

    /// Sends `POST path` with a JSON body; answers the status and the body.
    fn post(&mut self, path: &str, body: &str) -> (u16, String) {
        write!(
            self.writer,
            "POST {path} HTTP/1.1\r\nhost: kleened\r\ncontent-type: application/json\r\n\
             content-length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut status_line = String::new();
        self.reader.read_line(&mut status_line).unwrap();
        let status: u16 = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("status line {status_line:?}"));
        let mut length = 0;
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap();
                }
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }
}

#[test]
fn a_silent_client_a_partial_header_and_a_trickled_body_are_bounded() {
    require!(host_tests());
    let daemon = daemon_with_keys("request_header_timeout_secs: 2\nrequest_body_timeout_secs: 3\n");
    // Says nothing at all.
    let mut silent = raw(&daemon);
    let silent_since = Instant::now();
    // Half a request line and header.
    let mut partial = raw(&daemon);
    partial
        .write_all(b"GET /containers/list HTTP/1.1\r\nhost: kl")
        .unwrap();
    let partial_since = Instant::now();
    // Headers in time, then the body one byte a second.
    let body = r#"{"name": "slow", "image": "base", "cmd": ["/bin/true"]}"#;
    let mut trickle = raw(&daemon);
    write!(
        trickle,
        "POST /containers/create HTTP/1.1\r\nhost: kleened\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    let trickle_since = Instant::now();
    let trickler = std::thread::spawn(move || {
        for byte in body.bytes() {
            if trickle.write_all(&[byte]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        trickle
    });

    let (answer, took) = until_closed(&mut silent, silent_since, Duration::from_secs(10))
        .expect("a silent connection is closed");
    assert_eq!(answer, "", "closed without an answer");
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(5),
        "{took:?}"
    );
    let (_, took) = until_closed(&mut partial, partial_since, Duration::from_secs(10))
        .expect("a partial header is dropped");
    assert!(took < Duration::from_secs(5), "{took:?}");

    let mut trickle = trickler.join().unwrap();
    let (answer, took) = until_closed(&mut trickle, trickle_since, Duration::from_secs(10))
        .expect("a trickled body is answered and closed");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.ends_with(r#"{"message":"the request body did not arrive within 3 s"}"#),
        "{answer}"
    );
    assert!(took < Duration::from_secs(6), "{took:?}");
    // Ordinary clients are not affected.
    daemon.klee_ok(&["lsc", "-a"]);
}

#[test]
fn connections_past_the_cap_are_answered_503_and_a_freed_place_serves_again() {
    require!(host_tests());
    let daemon = daemon_with_keys("max_connections: 256\n");
    let mut held: Vec<UnixStream> = (0..256).map(|_| raw(&daemon)).collect();
    // The daemon accepts them in order; let it take all 256 before the next ones come.
    std::thread::sleep(Duration::from_millis(500));
    let refused: Vec<UnixStream> = (0..44).map(|_| raw(&daemon)).collect();
    for mut stream in refused {
        stream
            .write_all(b"GET /containers/list?all=true HTTP/1.1\r\nhost: kleened\r\n\r\n")
            .unwrap();
        let (answer, _) = until_closed(&mut stream, Instant::now(), Duration::from_secs(10))
            .expect("answered and closed");
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        let body = &answer[answer.find("\r\n\r\n").expect("a head") + 4..];
        let body: serde_json::Value = serde_json::from_str(body).expect("a JSON body");
        assert_eq!(
            body["message"],
            "too many connections: this listener serves at most 256 at a time; try again later"
        );
    }
    let out = daemon.klee(&["lsc", "-a"]);
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(
        describe(&out).contains("too many connections"),
        "klee prints the refusal: {}",
        describe(&out)
    );
    assert!(
        daemon.log().contains("refusing new ones"),
        "the cap is logged"
    );
    held.pop();
    std::thread::sleep(Duration::from_millis(200));
    daemon.klee_ok(&["lsc", "-a"]);
    drop(held);
}

/// Opens a websocket on `path` over the daemon's unix socket and sends nothing. Answers the text
/// frames and the close frame's code and reason (its JSON `message`), and how long until the
/// close.
fn silent_websocket(daemon: &Daemon, path: &str) -> (Vec<String>, u16, String, Duration) {
    let mut stream = raw(daemon);
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: kleened\r\nupgrade: websocket\r\nconnection: upgrade\r\n\
         sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n"
    )
    .unwrap();
    let since = Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0];
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    let mut texts = Vec::new();
    loop {
        let mut start = [0; 2];
        stream
            .read_exact(&mut start)
            .expect("a frame before the close");
        let mut len = usize::from(start[1] & 0x7f);
        if len == 126 {
            let mut ext = [0; 2];
            stream.read_exact(&mut ext).unwrap();
            len = usize::from(u16::from_be_bytes(ext));
        }
        let mut payload = vec![0; len];
        stream.read_exact(&mut payload).unwrap();
        match start[0] & 0x0f {
            1 => texts.push(String::from_utf8_lossy(&payload).into_owned()),
            8 => {
                let code = u16::from_be_bytes([payload[0], payload[1]]);
                let reason: serde_json::Value = serde_json::from_slice(&payload[2..]).unwrap();
                let message = reason["message"].as_str().unwrap_or_default().to_owned();
                return (texts, code, message, since.elapsed());
            }
            _ => {}
        }
    }
}

#[test]
fn websockets_that_send_no_configuration_are_closed_saying_why() {
    require!(host_tests());
    let daemon = Daemon::start();
    let (exec, images) = std::thread::scope(|scope| {
        let exec = scope.spawn(|| silent_websocket(&daemon, "/exec/start"));
        let images = scope.spawn(|| silent_websocket(&daemon, "/images/create"));
        (exec.join().unwrap(), images.join().unwrap())
    });
    let (texts, code, message, took) = exec;
    assert_eq!(
        (code, message.as_str()),
        (
            1002,
            "timed out: no configuration frame arrived within 30 s"
        ),
        "{texts:?}"
    );
    assert!(
        took >= Duration::from_secs(29) && took < Duration::from_secs(35),
        "{took:?}"
    );
    let (texts, code, message, took) = images;
    assert_eq!(texts, ["no configuration frame arrived within 30 s"]);
    assert_eq!((code, message.as_str()), (1002, "timed out"));
    assert!(took < Duration::from_secs(35), "{took:?}");
}

#[test]
fn unstarted_execs_are_capped_per_container_and_do_not_grow_the_daemon() {
    require!(host_tests());
    let daemon = Daemon::with_base();
    daemon.klee_ok(&["create", "--name", "waiting", "base", "/bin/true"]);
    let mut http = Http::open(&daemon);
    let create = r#"{"container_id": "waiting", "cmd": [], "env": [], "user": "", "tty": false}"#;
    // A few requests first, so that what the daemon allocates once is in the first figure.
    for _ in 0..64 {
        let (status, body) = http.post("/exec/create", create);
        assert_eq!(status, 201, "{body}");
    }
    let before = peak_rss_kib(daemon.pid());
    for _ in 0..20_000 {
        let (status, body) = http.post("/exec/create", create);
        assert_eq!(status, 404, "{body}");
        assert!(
            body.contains("execution instances that were never started, as many as it may"),
            "{body}"
        );
    }
    let after = peak_rss_kib(daemon.pid());
    eprintln!("daemon peak RSS: {before} KiB before 20 000 refused creates, {after} KiB after");
    assert!(
        after < before + 4 * 1024,
        "20 000 creates grew the daemon from {before} KiB to {after} KiB"
    );
    daemon.klee_ok(&["rmc", "waiting"]);
}
