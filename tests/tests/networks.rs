//! Networks end to end on Linux: the real daemon in a stand-in host network namespace with an
//! "upstream" namespace as the outside world (see `kleene_tests::netns`), bridge networks, vnet
//! containers, NAT, isolation, published ports (TCP, UDP, ranges), IPv6, the API's refusals, the
//! Python client, a restart, concurrent connects, and nothing left behind.

#![cfg(target_os = "linux")]
// Test code: a failed setup step should panic where it happens.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Output;

use kleene_tests::netns::{request, Answer, NetHost, HOST_IP, UPLINK, UPSTREAM_IP};
use kleene_tests::probe::{probe_image, PROBE};
use kleene_tests::{describe, python, python_klee, skip_host_tests, Daemon, DaemonOptions};
use serde_json::json;

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The stand-in host and a daemon in it, with the probe image.
fn setup() -> (NetHost, Daemon) {
    let host = NetHost::create();
    let daemon = Daemon::start_with(DaemonOptions {
        netns: Some(host.name.clone()),
        ..Default::default()
    });
    probe_image(&daemon);
    (host, daemon)
}

fn api(daemon: &Daemon, method: &str, path: &str, body: Option<serde_json::Value>) -> Answer {
    request(&daemon.socket(), method, path, body.as_ref())
}

/// Creates a network through the API; answers its ID.
fn network(daemon: &Daemon, config: serde_json::Value) -> String {
    let answer = api(daemon, "POST", "/networks/create", Some(config));
    assert_eq!(answer.status, 201, "{}", answer.body);
    answer.json()["id"].as_str().unwrap().to_owned()
}

/// Creates a vnet container of the probe image on `network` (addresses `<auto>`); answers its ID.
fn vnet(
    daemon: &Daemon,
    name: &str,
    network: &str,
    cmd: &[&str],
    ports: serde_json::Value,
) -> String {
    let answer = api(
        daemon,
        "POST",
        "/containers/create",
        Some(json!({
            "name": name, "image": "probe", "cmd": cmd, "network_driver": "vnet",
            "public_ports": ports,
        })),
    );
    assert_eq!(answer.status, 201, "{}", answer.body);
    let id = answer.json()["id"].as_str().unwrap().to_owned();
    let answer = api(
        daemon,
        "POST",
        "/networks/connect",
        Some(
            json!({"container": name, "network": network, "ip_address": "<auto>", "ip_address6": "<auto>"}),
        ),
    );
    assert_eq!(answer.status, 204, "{}", answer.body);
    id
}

fn start(daemon: &Daemon, name: &str) {
    let out = daemon.klee(&["start", "-d", name]);
    assert!(out.status.success(), "{}", describe(&out));
}

/// The container's IPv4 (or IPv6) address, from inspect.
fn address(daemon: &Daemon, name: &str, v6: bool) -> String {
    let out = daemon.klee(&["isc", name]);
    let inspect: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    inspect["container_endpoints"][0][if v6 { "ip_address6" } else { "ip_address" }]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A web server answering `page` on port `port` inside a running container.
fn serve(daemon: &Daemon, name: &str, port: u16, page: &str) {
    let out = daemon.klee(&[
        "exec",
        name,
        "/bin/sh",
        "-c",
        &format!("mkdir -p /www{port} && echo {page} > /www{port}/index.html && httpd -p {port} -h /www{port}"),
    ]);
    assert!(out.status.success(), "{}", describe(&out));
}

/// `wget` from a container; answers what it printed, or nothing when it failed.
fn fetch_from(daemon: &Daemon, name: &str, url: &str) -> String {
    let out = daemon.klee(&["exec", name, "timeout", "3", "wget", "-q", "-O", "-", url]);
    if out.status.success() {
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    } else {
        String::new()
    }
}

/// An HTTP GET with Python from the stand-in host (`upstream: false`) or the upstream namespace.
fn fetch_outside(host: &NetHost, upstream: bool, url: &str) -> String {
    let script = format!(
        "import urllib.request; print(urllib.request.urlopen('{url}', timeout=3).read().decode().strip())"
    );
    let out = if upstream {
        host.exec_upstream("python3", &["-c", &script])
    } else {
        host.exec("python3", &["-c", &script])
    };
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn vnet_containers_on_a_bridge_talk_with_icc_and_not_without() {
    if skip_host_tests() {
        return;
    }
    let (_host, daemon) = setup();
    for (net, icc) in [("open", true), ("closed", false)] {
        let subnet = if icc { "10.20.0.0/24" } else { "10.21.0.0/24" };
        network(
            &daemon,
            json!({"name": net, "type": "bridge", "subnet": subnet, "gateway": "<auto>", "icc": icc}),
        );
        let (a, b) = (format!("{net}-a"), format!("{net}-b"));
        vnet(&daemon, &a, net, &["sleep", "600"], json!([]));
        vnet(&daemon, &b, net, &["sleep", "600"], json!([]));
        start(&daemon, &a);
        start(&daemon, &b);
        serve(&daemon, &b, 80, "hello");
        let target = address(&daemon, &b, false);
        let out = daemon.klee(&["exec", &a, PROBE, "ping", &target]);
        let page = fetch_from(&daemon, &a, &format!("http://{target}/"));
        if icc {
            assert!(
                text(&out).contains("reply from"),
                "{net}: {}",
                describe(&out)
            );
            assert_eq!(page, "hello", "{net}");
        } else {
            assert!(!out.status.success(), "{net}: {}", describe(&out));
            assert_eq!(page, "", "{net}: icc is off, yet the page came");
        }
    }
    // Containers of different networks are kept apart.
    let target = address(&daemon, "closed-b", false);
    assert_eq!(
        fetch_from(&daemon, "open-a", &format!("http://{target}/")),
        ""
    );
}

#[test]
fn nat_reaches_upstream_as_the_host_and_internal_networks_stay_in() {
    if skip_host_tests() {
        return;
    }
    let (host, daemon) = setup();
    let server = host.spawn_upstream(
        "python3",
        &[
            "-u",
            "-m",
            "http.server",
            "9000",
            "--bind",
            UPSTREAM_IP,
            "--directory",
            "/etc",
        ],
    );
    std::thread::sleep(std::time::Duration::from_millis(500));
    network(
        &daemon,
        json!({"name": "out", "type": "bridge", "subnet": "10.22.0.0/24", "gateway": "<auto>"}),
    );
    network(
        &daemon,
        json!({"name": "in", "type": "bridge", "subnet": "10.23.0.0/24", "gateway": "<auto>", "internal": true}),
    );
    let inspect = api(&daemon, "GET", "/networks/out/inspect", None);
    assert_eq!(
        inspect.json()["network"]["nat"],
        UPLINK,
        "<host-gateway> is the stand-in host's default route"
    );
    vnet(&daemon, "outside", "out", &["sleep", "600"], json!([]));
    vnet(&daemon, "inside", "in", &["sleep", "600"], json!([]));
    start(&daemon, "outside");
    start(&daemon, "inside");
    let url = format!("http://{UPSTREAM_IP}:9000/hostname");
    assert!(!fetch_from(&daemon, "outside", &url).is_empty(), "NAT");
    assert_eq!(fetch_from(&daemon, "inside", &url), "", "internal");
    let log = server.finish();
    let clients: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("GET /hostname"))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(clients, vec![HOST_IP], "the upstream saw: {log}");
}

#[test]
fn published_ports_answer_on_the_host_and_from_upstream() {
    if skip_host_tests() {
        return;
    }
    let (host, daemon) = setup();
    network(
        &daemon,
        json!({"name": "pub", "type": "bridge", "subnet": "10.24.0.0/24", "gateway": "<auto>"}),
    );
    vnet(
        &daemon,
        "web",
        "pub",
        &["sleep", "600"],
        json!([
            {"interfaces": [], "host_port": "18080", "container_port": "80"},
            {"interfaces": [], "host_port": "19000:19001", "container_port": "8000:*"},
            {"interfaces": [], "host_port": "15353", "container_port": "5353", "protocol": "udp"},
        ]),
    );
    start(&daemon, "web");
    serve(&daemon, "web", 80, "published");
    serve(&daemon, "web", 8000, "range-8000");
    serve(&daemon, "web", 8001, "range-8001");
    let out = daemon.klee(&["exec", "-d", "web", PROBE, "udp-echo", "5353"]);
    assert!(out.status.success(), "{}", describe(&out));
    let inspect = api(&daemon, "GET", "/containers/web/inspect", None).json();
    assert_eq!(
        inspect["container"]["public_ports"][0]["interfaces"],
        json!([UPLINK]),
        "[] means the host's gateway interface"
    );
    assert_eq!(
        inspect["container"]["public_ports"][0]["ip_address"],
        inspect["container_endpoints"][0]["ip_address"]
    );
    assert_eq!(
        fetch_outside(&host, false, "http://127.0.0.1:18080/"),
        "published",
        "from the host"
    );
    let upstream = format!("http://{HOST_IP}");
    assert_eq!(
        fetch_outside(&host, true, &format!("{upstream}:18080/")),
        "published"
    );
    assert_eq!(
        fetch_outside(&host, true, &format!("{upstream}:19000/")),
        "range-8000"
    );
    assert_eq!(
        fetch_outside(&host, true, &format!("{upstream}:19001/")),
        "range-8001"
    );
    let udp = format!(
        "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3); \
         s.sendto(b'ping-udp', ('{HOST_IP}', 15353)); print(s.recvfrom(100)[0].decode())"
    );
    let out = host.exec_upstream("python3", &["-c", &udp]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "ping-udp",
        "{}",
        describe(&out)
    );
    // Gone with the container.
    let out = daemon.klee(&["rmc", "-f", "web"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(!host.ruleset().contains("18080"), "{}", host.ruleset());
}

#[test]
fn ipv6_between_two_containers() {
    if skip_host_tests() {
        return;
    }
    let (_host, daemon) = setup();
    network(
        &daemon,
        json!({"name": "six", "type": "bridge", "subnet6": "fd00:25::/64", "gateway6": "<auto>"}),
    );
    vnet(&daemon, "six-a", "six", &["sleep", "600"], json!([]));
    vnet(&daemon, "six-b", "six", &["sleep", "600"], json!([]));
    start(&daemon, "six-a");
    start(&daemon, "six-b");
    assert_eq!(
        address(&daemon, "six-a", true),
        "fd00:25::2",
        "after the gateway ::1"
    );
    serve(&daemon, "six-b", 80, "over-ipv6");
    let target = address(&daemon, "six-b", true);
    assert_eq!(
        fetch_from(&daemon, "six-a", &format!("http://[{target}]/")),
        "over-ipv6"
    );
}

#[test]
fn connect_refusals_have_their_status_and_message_and_leave_nothing() {
    if skip_host_tests() {
        return;
    }
    let (host, daemon) = setup();
    network(
        &daemon,
        json!({"name": "lo-net", "type": "loopback", "subnet": "10.26.0.0/30"}),
    );
    network(
        &daemon,
        json!({"name": "br", "type": "bridge", "subnet": "10.27.0.0/24", "gateway": "<auto>"}),
    );
    network(&daemon, json!({"name": "bare", "type": "bridge"}));
    for (name, driver) in [("h", "host"), ("d", "disabled"), ("v", "vnet")] {
        let answer = api(
            &daemon,
            "POST",
            "/containers/create",
            Some(
                json!({"name": format!("{name}-c"), "image": "probe", "network_driver": driver, "cmd": ["sleep", "600"]}),
            ),
        );
        assert_eq!(answer.status, 201, "{}", answer.body);
    }
    let connect = |container: &str, network: &str, ip: &str, ip6: &str| {
        api(
            &daemon,
            "POST",
            "/networks/connect",
            Some(
                json!({"container": container, "network": network, "ip_address": ip, "ip_address6": ip6}),
            ),
        )
    };
    let cases = [
        ("nope", "br", "", "", 404, "container not found"),
        ("v-c", "nope", "", "", 404, "network not found"),
        (
            "h-c",
            "br",
            "",
            "",
            409,
            "containers with the 'host' network-driver cannot connect to networks.",
        ),
        (
            "d-c",
            "br",
            "",
            "",
            409,
            "containers with the 'disabled' network-driver cannot connect to networks.",
        ),
        (
            "v-c",
            "lo-net",
            "",
            "",
            409,
            "containers using the 'vnet' network-driver can't connect to loopback networks",
        ),
        (
            "v-c",
            "bare",
            "10.56.78.2",
            "",
            409,
            "cannot set ip address because there is no IPv4 subnet defined for this network",
        ),
        (
            "v-c",
            "bare",
            "",
            "fdef:1234:5678::10",
            409,
            "cannot set ip address because there is no IPv6 subnet defined for this network",
        ),
        (
            "v-c",
            "br",
            "10.27.0.x",
            "",
            409,
            "could not parse inet address 10.27.0.x: einval",
        ),
        (
            "v-c",
            "br",
            "10.99.0.5",
            "",
            409,
            "address 10.99.0.5 is not in the subnet 10.27.0.0/24 of network br",
        ),
        (
            "v-c",
            "br",
            "10.27.0.1",
            "",
            409,
            "address 10.27.0.1 is already used in network br",
        ),
    ];
    let links = host.links();
    for (container, net, ip, ip6, status, message) in cases {
        let answer = connect(container, net, ip, ip6);
        assert_eq!(
            (
                answer.status,
                answer.json()["message"].as_str().unwrap_or("")
            ),
            (status, message),
            "{container} → {net} ({ip} {ip6}): {}",
            answer.body
        );
    }
    let answer = api(&daemon, "GET", "/networks/br/inspect", None);
    assert_eq!(
        answer.json()["network_endpoints"],
        json!([]),
        "no endpoint was made"
    );
    assert_eq!(host.links(), links, "no interface was made");
    // Once connected, twice is refused; running vnet containers cannot be connected.
    assert_eq!(connect("v-c", "br", "<auto>", "").status, 204);
    let twice = connect("v-c", "br", "<auto>", "");
    assert_eq!(
        twice.json()["message"],
        "container already connected to the network"
    );
    start(&daemon, "v-c");
    let running = connect("v-c", "bare", "", "");
    assert_eq!(
        (running.status, running.json()["message"].as_str().unwrap()),
        (409, "cannot connect a running vnet container to a network")
    );
    // Disconnect refusals are all 409.
    let disconnect = |net: &str, container: &str| {
        api(
            &daemon,
            "POST",
            &format!("/networks/{net}/disconnect/{container}"),
            None,
        )
    };
    for (net, container, message) in [
        ("br", "nope", "container not found"),
        ("nope", "v-c", "network not found"),
        ("bare", "v-c", "endpoint configuration not found"),
    ] {
        let answer = disconnect(net, container);
        assert_eq!(
            (answer.status, answer.json()["message"].as_str().unwrap()),
            (409, message)
        );
    }
    // A running container loses its interface at once.
    let veths = |host: &NetHost| {
        host.links()
            .into_iter()
            .filter(|l| l.starts_with("kv"))
            .count()
    };
    assert_eq!(veths(&host), 1);
    assert_eq!(disconnect("br", "v-c").status, 204);
    assert_eq!(veths(&host), 0);
    // Network create refusals.
    for (config, message) in [
        (
            json!({"name": "br", "type": "bridge"}),
            "network name is already taken",
        ),
        (
            json!({"name": "x", "type": "bridge", "subnet": "172.18.0.0-16"}),
            "invalid subnet: could not parse cidr block: \"172.18.0.0-16\"",
        ),
        (
            json!({"name": "x", "type": "bridge", "subnet6": "10.1.2.0/24"}),
            "invalid subnet6: wrong IP protocol",
        ),
        (
            json!({"name": "x", "type": "bridge", "gateway6": "127.0.0.1"}),
            "invalid gateway6: wrong IP protocol",
        ),
        (
            json!({"name": "x", "type": "bridge", "gateway": "beef:beef::1"}),
            "invalid gateway: wrong IP protocol",
        ),
        (
            json!({"name": "x", "type": "bridge", "interface": UPLINK}),
            "interface 'kt-up0' exists and is not kleened's: choose another name",
        ),
        (
            json!({"name": "x", "type": "custom", "interface": "kt-missing"}),
            "interface 'kt-missing' of the custom network does not exist",
        ),
    ] {
        let answer = api(&daemon, "POST", "/networks/create", Some(config.clone()));
        assert_eq!(
            (
                answer.status,
                answer.json()["message"].as_str().unwrap_or("")
            ),
            (409, message),
            "{config}"
        );
    }
    assert!(
        host.links().contains(&UPLINK.to_owned()),
        "the foreign interface is untouched"
    );
    let answer = api(&daemon, "DELETE", "/networks/nope", None);
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (404, r#"{"message":"network not found."}"#)
    );
    let answer = api(&daemon, "GET", "/networks/nope/inspect", None);
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (404, r#"{"message":"network not found"}"#)
    );
    let answer = api(&daemon, "GET", "/no/such/route", None);
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (404, r#"{"message":"not found"}"#)
    );
}

#[test]
fn a_slash_30_holds_three_aliases_or_two_bridge_containers() {
    if skip_host_tests() {
        return;
    }
    let (_host, daemon) = setup();
    network(
        &daemon,
        json!({"name": "tiny", "type": "bridge", "subnet": "10.28.0.0/30", "gateway": "<auto>"}),
    );
    for name in ["t1", "t2"] {
        let answer = api(
            &daemon,
            "POST",
            "/containers/create",
            Some(json!({"name": name, "image": "probe", "network_driver": "vnet"})),
        );
        assert_eq!(answer.status, 201);
    }
    let connect = |name: &str| {
        api(
            &daemon,
            "POST",
            "/networks/connect",
            Some(json!({"container": name, "network": "tiny", "ip_address": "<auto>"})),
        )
    };
    assert_eq!(connect("t1").status, 204);
    assert_eq!(
        address(&daemon, "t1", false),
        "10.28.0.2",
        ".1 is the gateway"
    );
    let full = connect("t2");
    assert_eq!(
        (full.status, full.json()["message"].as_str().unwrap()),
        (409, "no more inet IP's left in the network"),
        ".3 is the broadcast address of the bridge"
    );
}

#[test]
fn twenty_concurrent_connects_get_twenty_addresses() {
    if skip_host_tests() {
        return;
    }
    let (_host, daemon) = setup();
    network(
        &daemon,
        json!({"name": "busy", "type": "bridge", "subnet": "10.29.0.0/24", "gateway": "<auto>"}),
    );
    for i in 0..20 {
        let answer = api(
            &daemon,
            "POST",
            "/containers/create",
            Some(json!({"name": format!("busy{i}"), "image": "probe", "network_driver": "vnet"})),
        );
        assert_eq!(answer.status, 201, "{}", answer.body);
    }
    let socket = daemon.socket();
    let threads: Vec<_> = (0..20)
        .map(|i| {
            let socket = socket.clone();
            std::thread::spawn(move || {
                request(
                    &socket,
                    "POST",
                    "/networks/connect",
                    Some(&json!({"container": format!("busy{i}"), "network": "busy", "ip_address": "<auto>"})),
                )
            })
        })
        .collect();
    for thread in threads {
        let answer = thread.join().unwrap();
        assert_eq!(answer.status, 204, "{}", answer.body);
    }
    let endpoints =
        api(&daemon, "GET", "/networks/busy/inspect", None).json()["network_endpoints"].clone();
    let mut addresses: Vec<&str> = endpoints
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["ip_address"].as_str().unwrap())
        .collect();
    addresses.sort();
    addresses.dedup();
    assert_eq!(addresses.len(), 20, "{addresses:?}");
}

#[test]
fn a_restarted_daemon_brings_back_its_bridges_and_rules_and_a_stopped_one_leaves_nothing() {
    if skip_host_tests() {
        return;
    }
    let (host, mut daemon) = setup();
    let id = network(
        &daemon,
        json!({"name": "keep", "type": "bridge", "subnet": "10.30.0.0/24", "gateway": "<auto>", "interface": "kt-keep"}),
    );
    vnet(&daemon, "k1", "keep", &["sleep", "600"], json!([]));
    start(&daemon, "k1");
    assert!(host.links().contains(&"kt-keep".to_owned()));
    daemon.stop();
    assert_eq!(
        host.links(),
        vec!["lo".to_owned(), UPLINK.to_owned()],
        "interfaces left at stop"
    );
    assert!(
        !host.ruleset().contains("table inet kleene"),
        "rules left at stop:\n{}",
        host.ruleset()
    );
    daemon.restart();
    assert!(
        host.links().contains(&"kt-keep".to_owned()),
        "{:?}",
        host.links()
    );
    assert!(
        host.ruleset().contains(&"10.30.0.0/24".to_string()),
        "{}",
        host.ruleset()
    );
    start(&daemon, "k1");
    let out = daemon.klee(&[
        "exec", "k1", "ip", "-4", "-o", "address", "show", "dev", "eth0",
    ]);
    assert!(text(&out).contains("10.30.0.2/24"), "{}", describe(&out));
    // Removing the network takes the running container off it and removes the bridge.
    let answer = api(&daemon, "DELETE", "/networks/keep", None);
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["id"], id);
    assert_eq!(host.links(), vec!["lo".to_owned(), UPLINK.to_owned()]);
    let out = daemon.klee(&["exec", "k1", "ip", "-o", "link"]);
    assert!(!text(&out).contains("eth0"), "{}", describe(&out));
    daemon.stop();
    assert_eq!(host.links(), vec!["lo".to_owned(), UPLINK.to_owned()]);
    assert!(!host.ruleset().contains("kleene"), "{}", host.ruleset());
}

#[test]
fn python_klee_manages_networks_unchanged() {
    if skip_host_tests() {
        return;
    }
    let Some(klee) = python_klee() else { return };
    let (_host, daemon) = setup();
    let py = |args: &[&str]| {
        let out = python(&klee, &daemon, args);
        assert!(
            out.status.success() && !text(&out).contains("Traceback"),
            "{args:?}: {}",
            describe(&out)
        );
        text(&out)
    };
    py(&[
        "network",
        "create",
        "-t",
        "bridge",
        "--subnet",
        "10.31.0.0/24",
        "pynet",
    ]);
    py(&[
        "network",
        "create",
        "-t",
        "bridge",
        "--subnet",
        "10.32.0.0/24",
        "spare",
    ]);
    assert!(py(&["network", "ls"]).contains("pynet"));
    let out = py(&[
        "run",
        "-d",
        "-l",
        "vnet",
        "-n",
        "pynet",
        "--ip",
        "10.31.0.50",
        "--name",
        "pyc",
        "probe",
        "sleep",
        "600",
    ]);
    assert!(!out.contains("rror"), "{out}");
    let inspect = py(&["network", "inspect", "pynet"]);
    assert!(inspect.contains("10.31.0.50"), "{inspect}");
    let out = daemon.klee(&[
        "exec", "pyc", "ip", "-4", "-o", "address", "show", "dev", "eth0",
    ]);
    assert!(text(&out).contains("10.31.0.50/24"), "{}", describe(&out));
    py(&["container", "stop", "pyc"]);
    py(&["network", "disconnect", "pynet", "pyc"]);
    py(&["network", "connect", "--ip", "10.31.0.60", "pynet", "pyc"]);
    assert!(py(&["network", "inspect", "pynet"]).contains("10.31.0.60"));
    let pruned = py(&["network", "prune", "-f"]);
    assert!(!pruned.contains("rror"), "{pruned}");
    let listed = py(&["network", "ls"]);
    assert!(
        listed.contains("pynet") && !listed.contains("spare"),
        "{listed}"
    );
    py(&["network", "rm", "pynet"]);
    assert!(!py(&["network", "ls"]).contains("pynet"));
}

#[test]
fn klee_creates_networks_runs_containers_on_them_and_publishes_ports() {
    if skip_host_tests() {
        return;
    }
    let (host, daemon) = setup();
    let klee = |args: &[&str]| {
        let out = daemon.klee(args);
        assert!(out.status.success(), "{args:?}: {}", describe(&out));
        text(&out)
    };
    klee(&[
        "network",
        "create",
        "-t",
        "bridge",
        "--subnet",
        "10.33.0.0/24",
        "--subnet6",
        "fd00:33::/64",
        "front",
    ]);
    assert!(klee(&["lsn"]).contains("front"));
    // No -l with -n: the daemon's default driver, vnet on Linux.
    klee(&[
        "run", "-d", "--name", "site", "-n", "front", "-p", "18081:80", "probe", "httpd", "-f",
        "-p", "80", "-h", "/etc",
    ]);
    let inspect: serde_json::Value = serde_json::from_str(&klee(&["isc", "site"])).unwrap();
    assert_eq!(inspect["container"]["network_driver"], "vnet");
    assert_eq!(inspect["container_endpoints"][0]["ip_address"], "10.33.0.2");
    assert_eq!(
        inspect["container_endpoints"][0]["ip_address6"],
        "fd00:33::2"
    );
    assert_eq!(
        fetch_outside(&host, true, &format!("http://{HOST_IP}:18081/hostname")),
        "base",
        "the image's /etc/hostname, served by the container"
    );
    klee(&[
        "run",
        "--rm",
        "-n",
        "front",
        "--ip",
        "10.33.0.77",
        "probe",
        "true",
    ]);
    // A container that cannot join its network is not left behind.
    let out = daemon.klee(&[
        "run",
        "--name",
        "lost",
        "-n",
        "front",
        "--ip",
        "10.34.0.1",
        "probe",
        "true",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("not in the subnet"),
        "{}",
        describe(&out)
    );
    assert!(!klee(&["lsc", "-a"]).contains("lost"));
    klee(&["network", "disconnect", "front", "site"]);
    let out = daemon.klee(&["network", "connect", "front", "site"]);
    assert!(
        text(&out).contains("cannot connect a running vnet container to a network"),
        "{}",
        describe(&out)
    );
    klee(&["stop", "site"]);
    klee(&["network", "connect", "--ip", "10.33.0.9", "front", "site"]);
    let inspect: serde_json::Value = serde_json::from_str(&klee(&["isc", "site"])).unwrap();
    assert_eq!(inspect["container_endpoints"][0]["ip_address"], "10.33.0.9");
    klee(&["rmn", "front"]);
    assert!(!klee(&["lsn"]).contains("front"));
    assert!(
        !host.links().iter().any(|l| l.starts_with("kleene")),
        "{:?}",
        host.links()
    );
}
