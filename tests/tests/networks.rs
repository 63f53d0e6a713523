//! Networks end to end on Linux: the real daemon in a stand-in host network namespace with an
//! "upstream" namespace as the outside world (see `kleene_tests::netns`), bridge networks, vnet
//! containers, NAT, isolation, published ports (TCP, UDP, ranges), IPv6, the API's refusals, the
//! Python client, a restart, concurrent connects, and nothing left behind.

#![cfg(target_os = "linux")]
// Test code: a failed setup step should panic where it happens.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kleene_tests::clients::{
    describe, ok, ok_for, python, python_klee, python_ok_for, stdout, text,
};
use kleene_tests::daemon::Daemon;
use kleene_tests::netns::{request, Answer, Background, NetHost, HOST_IP, UPLINK, UPSTREAM_IP};
use kleene_tests::pool::zfs_tree;
use kleene_tests::probe::{probe_image, PROBE};
use kleene_tests::require;
use kleene_tests::skip::host_tests;
use serde_json::json;

/// The stand-in host and a daemon in it, with the probe image.
fn setup() -> (NetHost, Daemon) {
    let host = NetHost::create();
    let daemon = Daemon::start_in(&host);
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

/// Creates a bridge network with a subnet and a gateway (`<auto>`); answers its ID.
fn bridge(daemon: &Daemon, name: &str, subnet: &str) -> String {
    network(
        daemon,
        json!({"name": name, "type": "bridge", "subnet": subnet, "gateway": "<auto>"}),
    )
}

/// Creates a vnet container of the probe image on `network` (addresses `<auto>`); answers its ID.
fn vnet(
    daemon: &Daemon,
    name: &str,
    network: &str,
    cmd: &[&str],
    ports: serde_json::Value,
) -> String {
    vnet_with(
        daemon,
        name,
        network,
        json!({"cmd": cmd, "public_ports": ports}),
    )
}

/// [`vnet`] with more of the container's configuration (`cmd`, `public_ports`, `jail_param`...).
fn vnet_with(daemon: &Daemon, name: &str, network: &str, more: serde_json::Value) -> String {
    let mut config = json!({"name": name, "image": "probe", "network_driver": "vnet"});
    for (key, value) in more.as_object().unwrap() {
        config[key] = value.clone();
    }
    let answer = api(daemon, "POST", "/containers/create", Some(config));
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
    daemon.klee_ok(&["start", "-d", name]);
}

/// The container's IPv4 (or IPv6) address, from inspect.
fn address(daemon: &Daemon, name: &str, v6: bool) -> String {
    daemon.klee_json(&["isc", name])["container_endpoints"][0]
        [if v6 { "ip_address6" } else { "ip_address" }]
    .as_str()
    .unwrap()
    .to_owned()
}

/// A web server answering `page` on port `port` inside a running container.
fn serve(daemon: &Daemon, name: &str, port: u16, page: &str) {
    daemon.klee_ok(&[
        "exec",
        name,
        "/bin/sh",
        "-c",
        &format!("mkdir -p /www{port} && echo {page} > /www{port}/index.html && httpd -p {port} -h /www{port}"),
    ]);
}

/// `wget` from a container; answers what it printed, or nothing when it failed.
fn fetch_from(daemon: &Daemon, name: &str, url: &str) -> String {
    let out = daemon.klee(&["exec", name, "timeout", "3", "wget", "-q", "-O", "-", url]);
    if out.status.success() {
        stdout(&out).trim().to_owned()
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
    stdout(&out).trim().to_owned()
}

#[test]
fn vnet_containers_on_a_bridge_talk_with_icc_and_not_without() {
    require!(host_tests());
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
    require!(host_tests());
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
    bridge(&daemon, "out", "10.22.0.0/24");
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
    require!(host_tests());
    let (host, daemon) = setup();
    bridge(&daemon, "pub", "10.24.0.0/24");
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
    daemon.klee_ok(&["exec", "-d", "web", PROBE, "udp-echo", "5353"]);
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
    assert_eq!(stdout(&out).trim(), "ping-udp", "{}", describe(&out));
    // Gone with the container.
    daemon.klee_ok(&["rmc", "-f", "web"]);
    assert!(!host.ruleset().contains("18080"), "{}", host.ruleset());
}

#[test]
fn ipv6_between_two_containers() {
    require!(host_tests());
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
    require!(host_tests());
    let (host, daemon) = setup();
    network(
        &daemon,
        json!({"name": "lo-net", "type": "loopback", "subnet": "10.26.0.0/30"}),
    );
    bridge(&daemon, "br", "10.27.0.0/24");
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
    require!(host_tests());
    let (_host, daemon) = setup();
    bridge(&daemon, "tiny", "10.28.0.0/30");
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
    require!(host_tests());
    let (_host, daemon) = setup();
    bridge(&daemon, "busy", "10.29.0.0/24");
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
    require!(host_tests());
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
    require!(host_tests());
    let klee = require!(python_klee());
    let (_host, daemon) = setup();
    let py = |args: &[&str]| {
        let out = python(&klee, &daemon, args);
        python_ok_for(format_args!("{args:?}"), &out);
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
    require!(host_tests());
    let (host, daemon) = setup();
    let klee = |args: &[&str]| {
        let out = daemon.klee(args);
        ok_for(format_args!("{args:?}"), &out);
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
    // A vnet container with published ports (ipnet ones are wired the same way on Linux).
    klee(&[
        "run", "-d", "--name", "site", "-n", "front", "-l", "vnet", "-p", "18081:80", "probe",
        "httpd", "-f", "-p", "80", "-h", "/etc",
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

// Attacks from containers that craft their own frames (`allow.raw_sockets`), and from API
// clients: each is refused, and a control shows the attack itself would have got through.

/// A network's bridge (from inspect) and its gateway: the bridge's IPv4 address on the host.
fn bridge_of(host: &NetHost, daemon: &Daemon, network: &str) -> (String, String) {
    let inspect = api(daemon, "GET", &format!("/networks/{network}/inspect"), None).json();
    let bridge = inspect["network"]["interface"].as_str().unwrap().to_owned();
    let out = host.exec("ip", &["-4", "-json", "address", "show", "dev", &bridge]);
    let addresses: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let gateway = addresses[0]["addr_info"][0]["local"]
        .as_str()
        .unwrap_or_else(|| panic!("{bridge} has no IPv4 address: {addresses}"))
        .to_owned();
    (bridge, gateway)
}

/// A UDP service of the stand-in host on each `address:port`, printing `port text source` for
/// every datagram.
fn listen_udp(host: &NetHost, at: &[&str]) -> Background {
    let script = "import select, socket, sys\n\
        socks = []\n\
        for spec in sys.argv[1:]:\n\
        \x20   address, port = spec.rsplit(':', 1)\n\
        \x20   s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
        \x20   s.bind((address, int(port)))\n\
        \x20   socks.append(s)\n\
        while True:\n\
        \x20   for s in select.select(socks, [], [])[0]:\n\
        \x20       data, peer = s.recvfrom(2048)\n\
        \x20       print(s.getsockname()[1], data.decode(errors='replace'), peer[0], flush=True)\n";
    let mut args = vec!["-u", "-c", script];
    args.extend(at);
    let listener = host.spawn("python3", &args);
    std::thread::sleep(std::time::Duration::from_millis(500));
    listener
}

/// Sends one forged Ethernet/IPv4/UDP frame from a container's eth0 (the probe's `frame`).
#[allow(clippy::too_many_arguments)]
fn frame(
    daemon: &Daemon,
    container: &str,
    to_mac: &str,
    from_mac: &str,
    from: &str,
    to: &str,
    port: u16,
    payload: &str,
) {
    let port = port.to_string();
    let out = daemon.klee(&[
        "exec", container, PROBE, "frame", "eth0", to_mac, from_mac, from, to, &port, payload,
    ]);
    assert!(
        out.status.success() && text(&out).contains("sent"),
        "{}",
        describe(&out)
    );
}

/// What a listener received, once the frames had time to arrive.
fn received(listener: Background) -> String {
    std::thread::sleep(std::time::Duration::from_millis(700));
    listener.finish()
}

#[test]
fn raw_sockets_do_not_reach_the_hosts_loopback_services() {
    require!(host_tests());
    let (host, daemon) = setup();
    bridge(&daemon, "raw", "10.30.0.0/24");
    vnet_with(
        &daemon,
        "attacker",
        "raw",
        json!({"cmd": ["sleep", "600"], "jail_param": ["allow.raw_sockets"]}),
    );
    start(&daemon, "attacker");
    let (bridge, gateway) = bridge_of(&host, &daemon, "raw");
    let gateway_mac = host.mac_of(&bridge);
    let me = address(&daemon, "attacker", false);
    let send = |to: &str, port, text| {
        frame(
            &daemon,
            "attacker",
            &gateway_mac,
            "self",
            &me,
            to,
            port,
            text,
        );
    };
    // The host's service bound to 127.0.0.1 only, and one on every address.
    let listener = listen_udp(&host, &["127.0.0.1:17001", "0.0.0.0:17002"]);
    send("127.0.0.1", 17001, "to-loopback");
    send("127.0.0.2", 17001, "to-loopback-2");
    send(&gateway, 17002, "to-gateway");
    let got = received(listener);
    assert!(got.contains("17002 to-gateway"), "the frames arrive: {got}");
    assert!(!got.contains("to-loopback"), "{got}");
    // The attack is real: without the daemon's loopback chain the same frame gets through.
    let listener = listen_udp(&host, &["127.0.0.1:17001"]);
    ok(&host.exec("nft", &["flush", "chain", "inet", "kleene", "loopback"]));
    send("127.0.0.1", 17001, "unguarded");
    let got = received(listener);
    assert!(got.contains("17001 unguarded"), "{got}");
}

#[test]
fn internal_networks_reach_no_host_address_even_with_forged_sources() {
    require!(host_tests());
    let (host, daemon) = setup();
    bridge(&daemon, "ext", "10.31.0.0/24");
    network(
        &daemon,
        json!({"name": "int", "type": "bridge", "subnet": "10.32.0.0/24", "gateway": "<auto>", "internal": true}),
    );
    let raw = json!({"cmd": ["sleep", "600"], "jail_param": ["allow.raw_sockets"]});
    vnet_with(&daemon, "outsider", "ext", raw.clone());
    vnet_with(&daemon, "insider", "int", raw);
    start(&daemon, "outsider");
    start(&daemon, "insider");
    let (int_bridge, int_gateway) = bridge_of(&host, &daemon, "int");
    let (ext_bridge, ext_gateway) = bridge_of(&host, &daemon, "ext");
    let (int_mac, ext_mac) = (host.mac_of(&int_bridge), host.mac_of(&ext_bridge));
    let insider = address(&daemon, "insider", false);
    let outsider = address(&daemon, "outsider", false);
    let listener = listen_udp(&host, &["0.0.0.0:17003"]);
    let from_inside = |from: &str, to: &str, text: &str| {
        frame(&daemon, "insider", &int_mac, "self", from, to, 17003, text);
    };
    // Every host address, as itself and as an address of another network or of the host.
    from_inside(&insider, &int_gateway, "own-gateway");
    from_inside(&insider, &ext_gateway, "other-gateway");
    from_inside(&insider, HOST_IP, "host-address");
    from_inside("10.31.0.77", &ext_gateway, "forged-other-network");
    from_inside(&int_gateway, HOST_IP, "forged-gateway");
    from_inside(&insider, UPSTREAM_IP, "upstream");
    frame(
        &daemon, "outsider", &ext_mac, "self", &outsider, HOST_IP, 17003, "control",
    );
    let got = received(listener);
    assert!(got.contains("17003 control"), "the frames arrive: {got}");
    for refused in [
        "own-gateway",
        "other-gateway",
        "host-address",
        "forged-",
        "upstream",
    ] {
        assert!(!got.contains(refused), "{refused}: {got}");
    }
    // The host may still reach the internal network's containers.
    serve(&daemon, "insider", 80, "inside");
    assert_eq!(
        fetch_outside(&host, false, &format!("http://{insider}/")),
        "inside"
    );
}

#[test]
fn icc_false_neighbours_cannot_be_impersonated() {
    require!(host_tests());
    let (host, daemon) = setup();
    network(
        &daemon,
        json!({"name": "iso", "type": "bridge", "subnet": "10.33.0.0/24", "gateway": "<auto>", "icc": false}),
    );
    vnet(&daemon, "victim", "iso", &["sleep", "600"], json!([]));
    vnet_with(
        &daemon,
        "spoofer",
        "iso",
        json!({"cmd": ["sleep", "600"], "jail_param": ["allow.raw_sockets"]}),
    );
    start(&daemon, "victim");
    start(&daemon, "spoofer");
    serve(&daemon, "victim", 80, "the-victim");
    let (bridge, gateway) = bridge_of(&host, &daemon, "iso");
    let gateway_mac = host.mac_of(&bridge);
    let victim = address(&daemon, "victim", false);
    let spoofer = address(&daemon, "spoofer", false);
    let out = daemon.klee(&["exec", "victim", "cat", "/sys/class/net/eth0/address"]);
    let victim_mac = stdout(&out).trim().to_owned();
    let pinned = host.neighbour(&victim, &bridge).unwrap_or_else(|| {
        let all = host.exec("ip", &["neigh", "show"]);
        panic!("no entry for {victim} on {bridge}: {}", describe(&all))
    });
    assert_eq!(pinned.0, victim_mac);
    assert!(pinned.1.contains(&"PERMANENT".to_owned()), "{pinned:?}");

    let listener = listen_udp(&host, &["0.0.0.0:17004"]);
    for from_mac in ["self", victim_mac.as_str()] {
        daemon.klee_ok(&[
            "exec",
            "spoofer",
            PROBE,
            "arp-reply",
            "eth0",
            from_mac,
            &victim,
        ]);
    }
    let send = |from_mac: &str, from: &str, text: &str| {
        frame(
            &daemon,
            "spoofer",
            &gateway_mac,
            from_mac,
            from,
            &gateway,
            17004,
            text,
        );
    };
    send(&victim_mac, &victim, "as-the-victim");
    send("self", &victim, "with-the-victims-address");
    send("02:42:0a:21:00:63", &spoofer, "with-another-mac");
    send("self", &spoofer, "control");
    let got = received(listener);
    assert!(got.contains("17004 control"), "the frames arrive: {got}");
    for refused in [
        "as-the-victim",
        "with-the-victims-address",
        "with-another-mac",
    ] {
        assert!(!got.contains(refused), "{refused}: {got}");
    }
    // The host still sends the victim's traffic to the victim.
    assert_eq!(
        host.neighbour(&victim, &bridge).map(|n| n.0),
        Some(victim_mac)
    );
    assert_eq!(
        fetch_outside(&host, false, &format!("http://{victim}/")),
        "the-victim"
    );
    // Gone with the container.
    daemon.klee_ok(&["rmc", "-f", "victim"]);
    assert_eq!(host.neighbour(&victim, &bridge), None);
}

#[test]
fn a_published_port_answers_only_where_it_is_published_and_only_once() {
    require!(host_tests());
    let (host, daemon) = setup();
    bridge(&daemon, "front", "10.34.0.0/24");
    bridge(&daemon, "back", "10.35.0.0/24");
    let published = json!([{"interfaces": [], "host_port": "18081", "container_port": "80"}]);
    vnet(&daemon, "web", "front", &["sleep", "600"], published);
    vnet(&daemon, "peer", "back", &["sleep", "600"], json!([]));
    start(&daemon, "web");
    start(&daemon, "peer");
    serve(&daemon, "web", 80, "published");
    let upstream = format!("http://{HOST_IP}:18081/");
    assert_eq!(fetch_outside(&host, true, &upstream), "published");
    let web = address(&daemon, "web", false);
    let (_, back_gateway) = bridge_of(&host, &daemon, "back");
    // Published on the uplink: not the container's own port from elsewhere, not the port on
    // another interface's address, not the uplink's address from another network's bridge.
    for url in [
        format!("http://{web}/"),
        format!("http://{back_gateway}:18081/"),
        upstream.clone(),
    ] {
        assert_eq!(fetch_from(&daemon, "peer", &url), "", "{url}");
    }

    // A host port is published once: a second container asking for it is refused, naming the
    // holder, and nothing of it is made.
    let tree = zfs_tree(&daemon.root.name);
    let rules = host.ruleset();
    for (host_port, protocol) in [("18081", "tcp"), ("18070:18090", "tcp")] {
        let answer = api(
            &daemon,
            "POST",
            "/containers/create",
            Some(json!({
                "name": "copycat", "image": "probe", "network_driver": "vnet",
                "public_ports": [{"interfaces": [], "host_port": host_port, "container_port": "80", "protocol": protocol}],
            })),
        );
        // As every refusal of a create (Kleened's status table).
        assert_eq!(answer.status, 404, "{host_port}: {}", answer.body);
        assert!(
            answer
                .body
                .contains("host port 18081/tcp is already published by container web"),
            "{}",
            answer.body
        );
    }
    let answer = api(
        &daemon,
        "POST",
        "/containers/create",
        Some(json!({
            "name": "twice", "image": "probe", "network_driver": "vnet",
            "public_ports": [
                {"interfaces": [], "host_port": "18082", "container_port": "80"},
                {"interfaces": [], "host_port": "18082", "container_port": "81"},
            ],
        })),
    );
    assert_eq!(answer.status, 404, "{}", answer.body);
    assert!(
        answer
            .body
            .contains("host port 18082/tcp is published twice"),
        "{}",
        answer.body
    );
    let out = daemon.klee(&["lsc", "-a"]);
    assert!(
        !text(&out).contains("copycat") && !text(&out).contains("twice"),
        "{}",
        describe(&out)
    );
    assert_eq!(zfs_tree(&daemon.root.name), tree);
    assert_eq!(host.ruleset(), rules);
    // The same port for the other protocol is another port.
    vnet(
        &daemon,
        "dns",
        "front",
        &["sleep", "600"],
        json!([{"interfaces": [], "host_port": "18081", "container_port": "53", "protocol": "udp"}]),
    );
}

#[test]
fn network_names_are_validated_and_a_refused_one_makes_nothing() {
    require!(host_tests());
    let (host, daemon) = setup();
    let links = host.links();
    for name in ["../web", "a b", "web\u{1b}[2J", "-web", ".web", "wéb"] {
        let answer = api(
            &daemon,
            "POST",
            "/networks/create",
            Some(json!({"name": name, "type": "bridge", "subnet": "10.36.0.0/24"})),
        );
        // As every refusal of a network's configuration (Kleened's status table).
        assert_eq!(answer.status, 409, "{name:?}: {}", answer.body);
        assert!(
            answer.body.contains("invalid network name"),
            "{name:?}: {}",
            answer.body
        );
    }
    assert_eq!(host.links(), links);
    let listed = api(&daemon, "GET", "/networks/list", None).json();
    assert_eq!(listed, json!([]), "{listed}");
    // The names klee users give are fine.
    network(
        &daemon,
        json!({"name": "my-net.v2_a", "type": "bridge", "subnet": "10.36.0.0/24"}),
    );
}

/// The IPv6 addresses and routes of a link of the stand-in host, as `ip -6` prints them.
fn ipv6_of(host: &NetHost, link: &str) -> String {
    let addresses = host.exec("ip", &["-6", "address", "show", "dev", link]);
    let routes = host.exec("ip", &["-6", "route", "show", "dev", link]);
    format!("{}{}", text(&addresses), text(&routes))
}

#[test]
fn a_container_is_no_router_for_the_host_or_its_neighbours() {
    require!(host_tests());
    let (host, daemon) = setup();
    bridge(&daemon, "ra", "10.37.0.0/24");
    vnet(&daemon, "neighbour", "ra", &["sleep", "600"], json!([]));
    vnet_with(
        &daemon,
        "router",
        "ra",
        json!({"cmd": ["sleep", "600"], "jail_param": ["allow.raw_sockets"]}),
    );
    start(&daemon, "neighbour");
    start(&daemon, "router");
    let (bridge, _) = bridge_of(&host, &daemon, "ra");
    let advertise = || {
        let out = daemon.klee(&[
            "exec",
            "router",
            PROBE,
            "router-advert",
            "eth0",
            "2001:db8:bad::",
        ]);
        assert!(
            out.status.success() && text(&out).contains("sent"),
            "{}",
            describe(&out)
        );
    };
    let neighbour_took_it = || {
        let out = daemon.klee(&["exec", "neighbour", "ip", "-6", "address", "show"]);
        text(&out).contains("2001:db8:bad")
    };
    // A router advertisement with a default route and a prefix, again and again.
    for _ in 0..3 {
        advertise();
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let seen = ipv6_of(&host, &bridge);
    assert!(
        !seen.contains("2001:db8:bad") && !seen.contains("default via"),
        "{seen}"
    );
    assert!(!neighbour_took_it(), "the neighbour took the prefix");
    // The attack is real: without the bridge table the neighbour takes the prefix; the host,
    // which ignores advertisements on the daemon's bridges, still does not.
    ok(&host.exec("nft", &["flush", "table", "bridge", "kleene"]));
    let took = (0..20).any(|_| {
        advertise();
        std::thread::sleep(std::time::Duration::from_millis(300));
        neighbour_took_it()
    });
    assert!(took, "the advertisement never reached the neighbour");
    let seen = ipv6_of(&host, &bridge);
    assert!(
        !seen.contains("2001:db8:bad") && !seen.contains("default via"),
        "{seen}"
    );
}

/// `ipnet` on Linux, as the published client uses it: `run -n NET` without a driver (the client
/// sends `ipnet`) works on loopback networks (the client's default type) and on bridge networks;
/// the container has an address of the network, its network's other containers reach it and so
/// does the host; a running ipnet container is connected to one more network at once, and
/// disconnected; a missing network is `network not found`; nothing is left on the host.
#[test]
fn python_klee_runs_ipnet_containers_on_loopback_and_bridge_networks() {
    require!(host_tests());
    let klee = require!(python_klee());
    let (host, daemon) = setup();
    let links = host.links();
    let py = |args: &[&str]| {
        let out = python(&klee, &daemon, args);
        python_ok_for(format_args!("{args:?}"), &out);
        text(&out)
    };
    py(&["network", "create", "--subnet", "10.41.0.0/24", "lonet"]);
    py(&[
        "network",
        "create",
        "-t",
        "bridge",
        "--subnet",
        "10.42.0.0/24",
        "brnet",
    ]);
    let listed = py(&["network", "ls"]);
    assert!(listed.contains("loopback"), "{listed}");
    for name in ["lo-a", "lo-b"] {
        py(&[
            "run", "-d", "-n", "lonet", "--name", name, "probe", "sleep", "600",
        ]);
    }
    let driver = daemon.klee_json(&["isc", "lo-a"])["container"]["network_driver"].clone();
    assert_eq!(driver, "ipnet");
    let (a, b) = (
        address(&daemon, "lo-a", false),
        address(&daemon, "lo-b", false),
    );
    assert!(
        a.starts_with("10.41.0.") && b.starts_with("10.41.0.") && a != b,
        "{a} {b}"
    );
    let own = daemon.klee(&["exec", "lo-a", "ip", "-4", "-o", "address", "show"]);
    assert!(
        text(&own).contains(&format!("{a}/24")),
        "{}",
        describe(&own)
    );
    serve(&daemon, "lo-b", 8081, "from-b");
    assert_eq!(
        fetch_from(&daemon, "lo-a", &format!("http://{b}:8081/")),
        "from-b"
    );
    assert_eq!(
        fetch_outside(&host, false, &format!("http://{b}:8081/")),
        "from-b",
        "the host reaches an ipnet container of a loopback network"
    );

    py(&[
        "run", "-d", "-n", "brnet", "--name", "br-a", "probe", "sleep", "600",
    ]);
    let c = address(&daemon, "br-a", false);
    assert!(c.starts_with("10.42.0."), "{c}");
    serve(&daemon, "br-a", 8082, "from-br");
    assert_eq!(
        fetch_outside(&host, false, &format!("http://{c}:8082/")),
        "from-br"
    );
    // A running ipnet container joins another network at once, and leaves it.
    assert_eq!(
        fetch_from(&daemon, "lo-a", &format!("http://{c}:8082/")),
        ""
    );
    py(&["network", "connect", "brnet", "lo-a"]);
    assert_eq!(
        fetch_from(&daemon, "lo-a", &format!("http://{c}:8082/")),
        "from-br"
    );
    let both = daemon.klee(&["exec", "lo-a", "ip", "-4", "-o", "address", "show"]);
    assert_eq!(
        text(&both).matches(" inet ").count(),
        3,
        "lo, eth0 and eth1: {}",
        describe(&both)
    );
    py(&["network", "disconnect", "brnet", "lo-a"]);
    assert_eq!(
        fetch_from(&daemon, "lo-a", &format!("http://{c}:8082/")),
        ""
    );

    // Our klee asks the daemon for its default driver: ipnet, as the published client's.
    daemon.klee_ok(&["create", "-n", "lonet", "--name", "ours", "probe", "true"]);
    let driver = daemon.klee_json(&["isc", "ours"])["container"]["network_driver"].clone();
    assert_eq!(driver, "ipnet");
    let missing = python(
        &klee,
        &daemon,
        &["run", "-n", "nonet", "--name", "nn", "probe", "true"],
    );
    assert!(
        text(&missing).contains("network not found"),
        "{}",
        describe(&missing)
    );
    py(&["container", "stop", "lo-a", "lo-b", "br-a"]);
    py(&["container", "rm", "lo-a", "lo-b", "br-a", "nn", "ours"]);
    py(&["network", "rm", "lonet", "brnet"]);
    assert_eq!(host.links(), links, "no interface is left");
}

/// A disconnect that races a start never leaves the container wired to the network without its
/// endpoint (a bridge port the packet filter has no rule for, holding an address the network
/// gives out again): connect and disconnect wait for the container's start.
#[test]
fn a_disconnect_racing_a_start_leaves_no_port_behind() {
    require!(host_tests());
    let (host, daemon) = setup();
    network(
        &daemon,
        json!({"name": "racenet", "type": "loopback", "subnet": "10.78.0.0/24"}),
    );
    let interface = api(&daemon, "GET", "/networks/racenet/inspect", None).json()["network"]
        ["interface"]
        .as_str()
        .unwrap()
        .to_owned();
    daemon.klee_ok(&[
        "create", "--name", "victim", "-n", "racenet", "probe", "sleep", "300",
    ]);
    let ports = || {
        let out = host.exec("ip", &["-o", "link", "show", "master", &interface]);
        stdout(&out).lines().count()
    };
    let endpoints = || {
        api(&daemon, "GET", "/networks/racenet/inspect", None).json()["network_endpoints"]
            .as_array()
            .map_or(0, Vec::len)
    };
    for round in 0..10u64 {
        let start = std::process::Command::new(kleene_tests::bin("klee"))
            .args(["--host", &daemon.host, "start", "-d", "victim"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis((round % 5) * 15));
        let _ = daemon.klee(&["network", "disconnect", "racenet", "victim"]);
        let mut start = start;
        let _ = start.wait();
        let (ports, endpoints) = (ports(), endpoints());
        assert!(
            endpoints > 0 || ports == 0,
            "round {round}: {ports} port(s) on {interface} and no endpoint"
        );
        let _ = daemon.klee(&["stop", "victim"]);
        if endpoints == 0 {
            daemon.klee_ok(&["network", "connect", "racenet", "victim"]);
        }
    }
    daemon.klee_ok(&["rm", "-f", "victim"]);
    assert_eq!(ports(), 0);
}

/// The defences of bridge networks hold for ipnet containers of loopback networks (bridges on
/// Linux) too: icc off keeps them apart, NAT takes them upstream as the host (as jails on a
/// cloned `lo` with pf's NAT), an internal one stays in, and the bridge table holds each of their
/// ports to its container's addresses.
#[test]
fn loopback_networks_keep_their_ipnet_containers_as_bridges_do() {
    require!(host_tests());
    let (host, daemon) = setup();
    let server = host.spawn_upstream(
        "python3",
        &[
            "-u",
            "-m",
            "http.server",
            "9001",
            "--bind",
            UPSTREAM_IP,
            "--directory",
            "/etc",
        ],
    );
    std::thread::sleep(std::time::Duration::from_millis(500));
    let ipnet = |name: &str, network: &str, more: serde_json::Value| {
        let mut config = json!({"name": name, "image": "probe", "network_driver": "ipnet", "cmd": ["sleep", "600"]});
        for (key, value) in more.as_object().unwrap() {
            config[key] = value.clone();
        }
        let answer = api(&daemon, "POST", "/containers/create", Some(config));
        assert_eq!(answer.status, 201, "{}", answer.body);
        let answer = api(
            &daemon,
            "POST",
            "/networks/connect",
            Some(json!({"container": name, "network": network, "ip_address": "<auto>"})),
        );
        assert_eq!(answer.status, 204, "{}", answer.body);
        start(&daemon, name);
    };
    network(
        &daemon,
        json!({"name": "lo-closed", "type": "loopback", "subnet": "10.81.0.0/24", "icc": false, "nat": "<host-gateway>"}),
    );
    network(
        &daemon,
        json!({"name": "lo-in", "type": "loopback", "subnet": "10.82.0.0/24", "internal": true}),
    );
    ipnet("lc-a", "lo-closed", json!({}));
    ipnet("lc-b", "lo-closed", json!({}));
    ipnet("li-a", "lo-in", json!({}));
    serve(&daemon, "lc-b", 80, "hello");
    let b = address(&daemon, "lc-b", false);
    assert_eq!(
        fetch_outside(&host, false, &format!("http://{b}/")),
        "hello",
        "the host reaches it"
    );
    assert_eq!(
        fetch_from(&daemon, "lc-a", &format!("http://{b}/")),
        "",
        "icc is off, yet the page came"
    );
    let url = format!("http://{UPSTREAM_IP}:9001/hostname");
    assert!(!fetch_from(&daemon, "lc-a", &url).is_empty(), "NAT");
    assert_eq!(fetch_from(&daemon, "li-a", &url), "", "internal");
    assert_eq!(
        fetch_from(&daemon, "li-a", &format!("http://{b}/")),
        "",
        "another network"
    );
    let log = server.finish();
    let clients: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("GET /hostname"))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(clients, vec![HOST_IP], "the upstream saw: {log}");
    // The bridge table holds every port of the loopback network to its container's addresses.
    let rules = host.exec("nft", &["list", "table", "bridge", "kleene"]);
    let member_jumps = stdout(&rules).matches("jump member_").count();
    assert!(member_jumps >= 2, "{}", describe(&rules));
}
