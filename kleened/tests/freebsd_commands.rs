//! Every command line kleened issues on a FreeBSD host, pinned by a golden file.
//!
//! Each case builds its command lines with the same functions the daemon uses (the jail runtime,
//! host initialisation, host commands, and the zfs client driven through a recording runner with
//! the FreeBSD program paths) and compares them with `tests/goldens/freebsd/<case>.txt`. A golden
//! file starts with comment lines naming the man pages and the options or parameters it was checked
//! against, then holds one command per line, quoted as sh(1) would need it, so an argument with
//! spaces or quotes is unambiguous.
//!
//! `KLEENE_UPDATE_GOLDENS=1 cargo test -p kleened --test freebsd_commands` rewrites the files; the
//! diff is then reviewed against the man pages before it is committed.
//!
//! A second test reads the daemon's sources and fails when a program path appears there that no
//! golden covers, so a new FreeBSD command cannot be added without its golden.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)] // Each crate uses part of it.
#[path = "../../tests/src/golden.rs"]
mod golden;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kleene_api::{NetworkDriver, NetworkType};
use kleene_runner::{CommandSpec, Recorded, RecordingRunner};
use kleened::config::TargetOs;
use kleened::init;
use kleened::layout::Layout;
use kleened::platform::freebsd::net::{KernelSettings, PfNetwork};
use kleened::platform::freebsd::{host as freebsd_host, ifconfig, jail, mounts, rctl, wiring};
use kleened::platform::host;
use kleened::platform::{ContainerEndpoint, Limits, NetworkHost, NetworkSetup, ProcessSpec};
use zfs::{DatasetName, DestroyFlags, SnapshotName, Zfs, ZfsPrograms};

/// A container ID as the daemon makes them (12 hex digits, never all decimal).
const ID: &str = "c0ffee000001";
const MOUNTPOINT: &str = "/zroot/kleene/container/c0ffee000001";
/// The jid `jail -i -c` printed for the container's jail.
const JID: u32 = 7;

struct Case {
    /// File name under `tests/goldens/freebsd/`, without `.txt`.
    name: &'static str,
    /// What the lines were checked against: man page, section, and the options used.
    checked: &'static [&'static str],
    /// The command lines, in the order the daemon runs them.
    lines: Vec<String>,
}

/// `arg` quoted for sh(1) when it needs it.
fn quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@%+".contains(&b));
    if plain {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

fn render(spec: &CommandSpec) -> String {
    let mut words: Vec<String> = spec
        .env
        .iter()
        .map(|(name, value)| format!("{name}={}", quote(value)))
        .collect();
    words.push(quote(&spec.program));
    words.extend(spec.args.iter().map(|a| quote(a)));
    words.join(" ")
}

fn render_argv(argv: &[String]) -> String {
    argv.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ")
}

fn render_recorded(calls: Vec<Recorded>) -> Vec<String> {
    calls
        .iter()
        .map(|call| match call {
            Recorded::Run(spec) => render(spec),
            Recorded::Pipe(producer, consumer) => {
                format!("{} | {}", render(producer), render(consumer))
            }
        })
        .collect()
}

fn process(network: NetworkDriver, user: &str, params: &[&str], cmd: &[&str]) -> ProcessSpec {
    ProcessSpec {
        container_id: ID.into(),
        rootfs: MOUNTPOINT.into(),
        cmd: cmd.iter().map(|c| (*c).to_owned()).collect(),
        env: vec!["GREETING=hello world".into()],
        user: user.into(),
        tty: false,
        tty_size: (24, 80),
        network,
        jail_params: params.iter().map(|p| (*p).to_owned()).collect(),
        endpoints: vec![],
        mounts: vec![],
        limits: Limits::default(),
    }
}

fn dataset(name: &str) -> DatasetName {
    DatasetName::new(name).unwrap()
}

fn snapshot(name: &str) -> SnapshotName {
    SnapshotName::new(name).unwrap()
}

/// The zfs client as the daemon builds it on FreeBSD, recording instead of running.
fn recording_zfs() -> (Arc<RecordingRunner>, Zfs) {
    let runner = Arc::new(RecordingRunner::new());
    let zfs = Zfs::new(runner.clone())
        .with_programs(ZfsPrograms::freebsd())
        .with_retry(zfs::RetryPolicy::none());
    (runner, zfs)
}

/// The zfs lines of one client operation.
fn zfs_lines(replies: &[&str], operation: impl FnOnce(&Zfs)) -> Vec<String> {
    let (runner, zfs) = recording_zfs();
    for reply in replies {
        runner.push_ok(reply);
    }
    operation(&zfs);
    render_recorded(runner.calls())
}

const JAIL_PARAMS_CHECKED: &str = "jail(8) PARAMETERS: path, name (never all digits: a number \
    names a jid), host.hostname, ip4/ip6 (\"inherit\", \"disable\"), vnet, persist, mount.devfs \
    (mounts devfs at path/dev, which must be a directory in the image); a value is taken verbatim \
    from its argument, with no quote removal";

const JAIL_CONFINEMENT_CHECKED: &str = "jail(8) devfs_ruleset (\"A simple devfs ruleset for jails \
    is available as ruleset #4\"; mount.devfs applies devfs_ruleset, or ruleset 4 when it is \
    unset), enforce_statfs (2: statfs(2) only on the jail's own mount point; its default comes \
    from the security.jail.enforce_statfs sysctl), children.max (0: no child jails); allow.* \
    booleans given as allow.noX. Named: set_hostname (on by default: kern_jail.c \
    JAIL_DEFAULT_ALLOW), sysvipc, raw_sockets, chflags, mount, mlock, quotas, socket_af, \
    read_msgbuf, all in kern_jail.c's static pr_flag_allow table of every 13.x/14.x kernel; not \
    named: reserved_ports, unprivileged_proc_debug, suser (kept on, as in JAIL_DEFAULT_ALLOW), \
    newer or module-made allow.* (an unknown parameter fails jail -c), securelevel (the user's)";

const JAIL_PSEUDO_CHECKED: &str = "jail(8) pseudo-parameters exec.clean, exec.jail_user: they \
    apply to commands jail(8) runs in the jail, here only a user's exec.start (command.c: \
    username = exec.jail_user for in-jail commands, clean = exec.clean), and kleened reads them \
    for the exec.stop it runs itself before jail -R; exec.stop (kleene-api.md §5.2 step 4 lists \
    it) is left off: a jail made on the command line never runs it (state.c gives a removed \
    jail a record without parameters, command.c skips commands that are not set)";

const JAIL_CREATE_CHECKED: &str = "jail(8) -i: \"Output (only) the jail identifier of the newly \
    created jail(s). This implies the -q option.\" (command.c prints it right after jail_set, \
    after a user's exec.prestart output and before exec.start's; when the output is not only the \
    number, kleened asks jls -j <name> jid); the jid then addresses this run's jail";

const JEXEC_CHECK_CHECKED: &str = "jexec(8) check run with env(1) -i and no utility (prints the \
    empty environment: nothing, exit status 0): jexec exits 1 with its own message when -U names \
    no user of the jail's pwd.db (jexec.c: errx \"%s: no such user\") or -l cannot chdir to the \
    home (err \"chdir: %s\"); that message becomes the start error";

const MOUNT_TABLE_CHECKED: &str = "mount(8) with no special or node lists the mounted file \
    systems; -t nullfs,devfs: \"More than one type may be specified in a comma separated list\" \
    (mount.c skips the others with checkvfsname); --libxo json (mount.c with libxo, 2021; the \
    reference runs mount --libxo json too, kleene-api.md \u{a7}5.2-5.3): {\"mount\": \
    {\"mounted\": [{\"special\", \"node\", \"fstype\", \"opts\"}]}} in mount order \
    (getmntinfo(3)), node being the kernel's f_mntonname; libxo escapes only quote, backslash and \
    line ends in strings (xo_escape_json), so other control characters are escaped before the \
    JSON is read; node is printed with %hs, decoded in the locale libxo sets from the environment \
    (xo_no_setlocale(3): \"The first of this list of variables is used\": LC_CTYPE, LANG, \
    LC_ALL), hence LC_CTYPE=C.UTF-8. Not -p: its fstab(5) lines separate fields with tabs or \
    spaces that a path may hold, and it implies -v (getmntinfo with MNT_WAIT)";

/// The mark the daemon's interfaces carry (`kleened:<kleene_root>`).
const MARKER: &str = "kleened:zroot/kleene";

/// Kernel settings that are already as the daemon wants them (forwarding on).
#[derive(Debug)]
struct SettingsOn;

impl KernelSettings for SettingsOn {
    fn get(&self, _name: &str) -> Result<String, String> {
        Ok("1".into())
    }
    fn set(&self, _name: &str, _value: &str) -> Result<(), String> {
        Ok(())
    }
}

/// The command lines of one operation of the FreeBSD network host, answered with `replies`.
fn network_lines(
    replies: &[Result<&str, &str>],
    operation: impl FnOnce(&PfNetwork),
) -> Vec<String> {
    let runner = Arc::new(RecordingRunner::new());
    for reply in replies {
        match reply {
            Ok(stdout) => runner.push_ok(stdout),
            Err(stderr) => runner.push_err(1, stderr),
        };
    }
    let host = PfNetwork::new(
        runner.clone(),
        "/etc/pf.conf".into(),
        "/usr/local/etc/kleened/pf.conf.kleene".into(),
        MARKER,
    )
    .with_settings(Box::new(SettingsOn));
    operation(&host);
    render_recorded(runner.calls())
}

fn endpoint(id: &str, interface: &str, address: &str, gateway: Option<&str>) -> ContainerEndpoint {
    ContainerEndpoint {
        endpoint_id: id.into(),
        interface: interface.into(),
        isolated: false,
        address: Some(address.parse().unwrap()),
        gateway: gateway.map(|g| g.parse().unwrap()),
        address6: None,
        gateway6: None,
        mac: pf::MacAddress::of_endpoint(None, id),
        neighbours: vec![],
        host_interface: None,
    }
}

/// A vnet container on two bridge networks: IPv4 and IPv6 on kleene0, IPv4 on kleene2.
fn vnet_endpoints() -> Vec<ContainerEndpoint> {
    let mut first = endpoint(
        "e1e1e1e1e1e1",
        "kleene0",
        "10.13.37.2/24",
        Some("10.13.37.1"),
    );
    first.address6 = Some("fd00:13:37::2/64".parse().unwrap());
    first.gateway6 = Some("fd00:13:37::1".parse().unwrap());
    let second = endpoint(
        "e2e2e2e2e2e2",
        "kleene2",
        "10.13.38.2/24",
        Some("10.13.38.1"),
    );
    vec![first, second]
}

/// An ipnet container on a loopback network (IPv4 and IPv6) and a custom one (IPv4).
fn ipnet_endpoints() -> Vec<ContainerEndpoint> {
    let mut first = endpoint("e1e1e1e1e1e1", "kleene1", "10.23.45.2/24", None);
    first.address6 = Some("fd00:23:45::2/64".parse().unwrap());
    let second = endpoint("e2e2e2e2e2e2", "em1", "192.168.10.20/24", None);
    vec![first, second]
}

/// A vnet container's start, as the runtime runs it: per endpoint an epair, its `a` end on the
/// bridge; the jail; the `b` ends moved in and configured from inside; then the first process.
fn vnet_start_lines(spec: &ProcessSpec) -> Vec<String> {
    let mut lines = vec![];
    let mut inner = vec![];
    for (unit, endpoint) in spec.endpoints.iter().enumerate() {
        let (a_end, b_end) = ifconfig::epair_ends(&format!("epair{unit}a")).unwrap();
        lines.push(render(&ifconfig::create_epair()));
        for step in wiring::vnet_host_side(&endpoint.interface, &a_end, Some(MARKER)) {
            lines.push(render(&step));
        }
        inner.push((endpoint.clone(), b_end));
    }
    lines.push(render(&jail::jail_create(spec, "root")));
    for (_, b_end) in &inner {
        lines.push(render(&ifconfig::move_to_jail(b_end, JID)));
    }
    lines.extend(wiring::vnet_inside(JID, &inner).iter().map(render));
    lines.push(render(&jail::jexec_check(JID, "root", true)));
    lines.push(render_argv(&jail::jexec(spec, JID, "root", true)));
    lines
}

/// A container's first process: jail -i -c, jexec's check, then jexec; the same lines start
/// every container. `login`: whether the user's home directory exists in the image.
fn start_lines(spec: &ProcessSpec, login: bool) -> Vec<String> {
    let user = if spec.user.is_empty() {
        "root"
    } else {
        &spec.user
    };
    vec![
        render(&jail::jail_create(spec, user)),
        render(&jail::jexec_check(JID, user, login)),
        render_argv(&jail::jexec(spec, JID, user, login)),
    ]
}

fn catalogue() -> Vec<Case> {
    let layout = Layout::new("zroot/kleene").unwrap();
    vec![
        // The jail runtime (kleened/src/platform/freebsd/).
        Case {
            name: "start-host-network",
            checked: &[
                "jail(8) SYNOPSIS: jail -c [param=value ...]: no command, so nothing runs; \
                 persist keeps the jail without processes until jail -m ... nopersist",
                JAIL_CREATE_CHECKED,
                JAIL_PARAMS_CHECKED,
                JAIL_CONFINEMENT_CHECKED,
                JAIL_PSEUDO_CHECKED,
                JEXEC_CHECK_CHECKED,
                "jexec(8): the first process, so its exit status is the process's; jail(8) \
                 with command= exits 0 or 1 only (usr.sbin/jail/command.c); the jail by its \
                 jid (jail(8): the jid \"can be used to identify the jail for later \
                 modification, or for such commands as jls(8) or jexec(8)\")",
            ],
            lines: start_lines(
                &process(NetworkDriver::Host, "", &[], &["/bin/sh", "/etc/rc"]),
                true,
            ),
        },
        Case {
            name: "start-disabled-network-own-params",
            checked: &[
                "jail(8) -c; ip4=disable, ip6=disable; a parameter of the user that sets the \
                 same parameter as a default (mount.nodevfs, exec.jail_user=, allow.sysvipc, \
                 allow.raw_sockets=true) replaces the default (kleene-api.md §5.2 step 4)",
                "jail(8): a boolean parameter may be given as name / noname (mount.nodevfs) or \
                 with the values true and false; a later value of the same parameter wins, so \
                 the final persist beats a user's nopersist",
                "jail(8) allow.raw_sockets (ping(8) in the jail), allow.sysvipc (System V IPC, \
                 shared with the host), allow.reserved_ports (binding ports below 1024; \
                 allow.noreserved_ports turns it off)",
                "jexec(8) -U www: the user from the jail's password database (pwd.db); www's \
                 home (/nonexistent) does not exist, so no -l (it would fail to chdir there)",
            ],
            lines: start_lines(
                &process(
                    NetworkDriver::Disabled,
                    "www",
                    &[
                        "mount.nodevfs",
                        "exec.jail_user=www",
                        "allow.raw_sockets=true",
                        "allow.sysvipc",
                        "allow.noreserved_ports",
                        "nopersist",
                    ],
                    &["/usr/local/bin/httpd", "-f"],
                ),
                false,
            ),
        },
        Case {
            name: "start-vnet-network",
            checked: &[
                "ifconfig(8) create: \"If the interface is given without a unit number, try to \
                 create a new device with an arbitrary unit number. If creation of an arbitrary \
                 device is successful, the new device name is printed to standard output\"; \
                 epair(4): the pair is named epair<n>a and epair<n>b, so the printed epair<n>a \
                 names both ends",
                "if_bridge(4) / ifconfig(8) addm interface: add it as a member of the bridge; \
                 description value; up. The a end carries the daemon's mark, so one left by a \
                 crash is found by the next start",
                "jail(8) vnet (no value means new): the jail gets its own virtual network stack, \
                 and vnet jails take no ip4.addr/ip6.addr (kern_jail.c: \"vnet jails cannot have \
                 IP address restrictions\")",
                "ifconfig(8) vnet jail: \"Move the interface to the jail(8), specified by name or \
                 JID. If the jail has a virtual network stack, the interface will disappear from \
                 the current environment and become visible to the jail.\" Done after jail -c as \
                 its own command instead of the vnet.interface parameter (kleene-api.md \u{a7}5.2 \
                 step 3), and the addresses and routes as jexec commands instead of exec.start \
                 strings, so a failure names its step and the runtime removes the jail and \
                 destroys the epairs",
                "jexec(8) jail command: without -l/-U the command runs with the caller's \
                 credentials (root) in the jail's root; /sbin/ifconfig and /sbin/route are the \
                 image's own (a FreeBSD userland)",
                "ifconfig(8) inside the jail: lo0 inet 127.0.0.1/8 up (a new vnet's lo0 has no \
                 address; rc.d/netif does not run in a container); address/prefix on the b end \
                 (\"up ... happens automatically when setting the first address on an \
                 interface\"); inet6 with -ifdisabled (clears the ifdisabled flag, \
                 which rc.conf(5)'s ipv6_activate_all_interfaces=NO may have set on a new \
                 interface)",
                "route(8) add -inet default gateway / add -inet6 default gateway: one default \
                 route per family, through the first endpoint with a gateway of that family (a \
                 second one would fail with \"route already in table\")",
            ],
            lines: {
                let mut spec = process(
                    NetworkDriver::Vnet,
                    "",
                    &[],
                    &["/bin/sh", "-c", "echo 'it''s up'"],
                );
                spec.endpoints = vnet_endpoints();
                vnet_start_lines(&spec)
            },
        },
        Case {
            name: "start-ipnet-network",
            checked: &[
                "ifconfig(8) inet address/32 alias, inet6 address/128 alias: \"Establish an \
                 additional network address for this interface\"; \"If the address is on the \
                 same subnet as the first network address for this interface, a non-conflicting \
                 netmask must be given\", so the whole-address mask (kleene-api.md \u{a7}5.2 step 2)",
                "jail(8) ip4.addr/ip6.addr: \"A list of IPv4 addresses assigned to the jail\", \
                 comma-separated; the first is the jail's primary address (kern_jail.c sorts all \
                 but ip[0]); one parameter per family with every endpoint's address (libjail \
                 jailparam_import splits the value at commas), instead of one per network; a \
                 family without addresses is left out, and a new non-vnet jail then has none of \
                 that family (kern_jail.c: PR_IP4_USER/PR_IP6_USER set with an empty list)",
            ],
            lines: {
                let mut spec = process(NetworkDriver::Ipnet, "", &[], &["/bin/sh", "/etc/rc"]);
                spec.endpoints = ipnet_endpoints();
                let mut lines: Vec<String> = spec
                    .endpoints
                    .iter()
                    .flat_map(|e| {
                        jail::endpoint_addresses(e.address, e.address6)
                            .into_iter()
                            .map(|a| render(&ifconfig::add_alias(&e.interface, a)))
                            .collect::<Vec<_>>()
                    })
                    .collect();
                lines.extend(start_lines(&spec, true));
                lines
            },
        },
        Case {
            name: "start-ipnet-no-address",
            checked: &[
                "jail(8) ip4.addr/ip6.addr not given: an ipnet container connected to no network \
                 (or to networks without subnets) has no address at all, as a new non-vnet jail \
                 without them gets none (kern_jail.c: PR_IP4_USER/PR_IP6_USER with empty lists)",
            ],
            lines: start_lines(
                &process(NetworkDriver::Ipnet, "", &[], &["/bin/sh", "/etc/rc"]),
                true,
            ),
        },
        Case {
            name: "ipnet-connect-disconnect",
            checked: &[
                "ifconfig(8) alias / -alias (\"Remove the network address specified\")",
                "jail(8) -m jid=N ip4.addr=... ip6.addr=...: the full list of the running jail's \
                 addresses of each family that changed, existing ones first so the primary \
                 address stays; IPv6 goes to ip6.addr (the reference writes ip4.addr for both, \
                 kleene-api.md \u{a7}5.4.2). kern_jail.c refuses changing ip4/ip6 themselves after \
                 creation but not the address lists of a jail created with restrictions",
                "an empty ip4.addr= takes the family's last address away: libjail \
                 jailparam_import reads an empty value of an array parameter as no elements",
                "order: on connect the alias, then the jail; on disconnect the jail, then the \
                 alias, so the jail never holds an address no interface has",
            ],
            lines: {
                let first: std::net::IpAddr = "10.23.45.2".parse().unwrap();
                let second: std::net::IpAddr = "10.23.45.3".parse().unwrap();
                let second6: std::net::IpAddr = "fd00:23:45::3".parse().unwrap();
                vec![
                    render(&ifconfig::add_alias("kleene1", second)),
                    render(&ifconfig::add_alias("kleene1", second6)),
                    render(&jail::jail_modify(
                        JID,
                        &jail::address_lists(&[first, second, second6], true, true),
                    )),
                    render(&jail::jail_modify(
                        JID,
                        &jail::address_lists(&[first], true, true),
                    )),
                    render(&ifconfig::remove_alias("kleene1", second6)),
                    render(&ifconfig::remove_alias("kleene1", second)),
                    render(&jail::jail_modify(JID, &jail::address_lists(&[], true, false))),
                    render(&ifconfig::remove_alias("kleene1", first)),
                ]
            },
        },
        Case {
            name: "stop-networks",
            checked: &[
                "after jail -R: if_bridge(4) / ifconfig(8) deletem interface (its failure for a \
                 member that is gone is ignored), then destroy of the epair's a end; \
                 sys/net/if_epair.c epair_clone_destroy destroys the other end too, switching \
                 to its vnet (\"the other of the two interfaces may reside in a different \
                 vnet\"), so the b end goes even while a dying jail still holds it",
                "ifconfig(8) inet/inet6 address -alias for an ipnet container's addresses",
                "ifconfig(8) -l: every interface's name, on one line (ifconfig_netlink.c \
                 prints them separated by spaces): a destroy that failed is fine when the \
                 interface is gone",
            ],
            lines: vec![
                render(&jail::jail_remove(JID)),
                render(&ifconfig::remove_member("kleene2", "epair1a")),
                render(&ifconfig::destroy("epair1a")),
                render(&ifconfig::remove_member("kleene0", "epair0a")),
                render(&ifconfig::destroy("epair0a")),
                render(&ifconfig::remove_alias("kleene1", "10.23.45.2".parse().unwrap())),
                render(&ifconfig::remove_alias("kleene1", "fd00:23:45::2".parse().unwrap())),
                render(&ifconfig::list_interfaces()),
                render(&mounts::mount_table()),
            ],
        },
        // Host networking (kleened/src/platform/freebsd/net.rs, ifconfig.rs).
        Case {
            name: "network-interfaces",
            checked: &[
                "ifconfig(8) interface: its status (exit 1 when it does not exist, then -l \
                 tells); ifconfig.c prints \"<name>: flags=...\" then indented lines, among them \
                 \"description: <text>\" and inet/inet6 addresses; if_bridge(4) members as \
                 \"member: <name> flags=...\"",
                "ifconfig(8) <cloner> create name <name>: bridge (if_bridge(4)) or lo (lo(4)) \
                 cloned under the network's name; \"the new device name is printed ... unless \
                 the interface is renamed ... in the same ifconfig invocation\"",
                "ifconfig(8) description value: the daemon's mark (an interface without it is \
                 never destroyed: a network asking for its name is refused); up",
                "ifconfig(8) inet address/prefix alias for an <auto> gateway, inet6 \
                 address/prefix alias -ifdisabled (\"-ifdisabled: Clear a flag ifdisabled\")",
                "remove: deletem each member (if_bridge(4)), then destroy; a loopback: destroy",
                "ifconfig(8) -a: every interface's status, for the marked ones",
            ],
            lines: [
                network_lines(
                    &[
                        Err("ifconfig: interface kleene0 does not exist\n"),
                        Ok("em0 lo0\n"),
                    ],
                    |host| {
                        host.create(&NetworkSetup {
                            kind: NetworkType::Bridge,
                            interface: "kleene0".into(),
                            gateway: Some("10.13.37.1/24".parse().unwrap()),
                            gateway6: Some("fd00:13:37::1/64".parse().unwrap()),
                        })
                        .unwrap();
                    },
                ),
                network_lines(&[Err(""), Ok("em0 lo0\n")], |host| {
                    host.create(&NetworkSetup {
                        kind: NetworkType::Loopback,
                        interface: "kleene1".into(),
                        gateway: None,
                        gateway6: None,
                    })
                    .unwrap();
                }),
                network_lines(
                    &[Ok(concat!(
                        "kleene0: flags=8843<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST> mtu 1500\n",
                        "\tdescription: kleened:zroot/kleene\n",
                        "\tmember: epair0a flags=143<LEARNING,DISCOVER,AUTOEDGE,AUTOPTP>\n",
                    ))],
                    |host| {
                        host.remove(&NetworkSetup {
                            kind: NetworkType::Bridge,
                            interface: "kleene0".into(),
                            gateway: None,
                            gateway6: None,
                        })
                        .unwrap();
                    },
                ),
                network_lines(&[Ok("")], |host| {
                    host.own_interfaces().unwrap();
                }),
                network_lines(&[Ok("em0 lo0\n")], |host| {
                    assert!(!host.interface_exists("kleene3").unwrap());
                }),
            ]
            .concat(),
        },
        Case {
            name: "network-host-gateway",
            checked: &[
                "netstat(1) -r (routing tables) -n (numeric) with --libxo json: the table whose \
                 address-family is Internet, the rt-entry with destination default, its \
                 interface-name (kleene-api.md \u{a7}5.4.5)",
            ],
            lines: network_lines(&[Ok("{}")], |host| {
                host.host_gateway().unwrap();
            }),
        },
        Case {
            name: "pf",
            checked: &[
                "pfctl(8) -n: \"Do not actually load rules, just parse them\"; -f file: load \
                 the rules in file, in one transaction; the ruleset is the user's template with \
                 kleened's macros, translation and filtering at its placeholders (pf.conf(5) \
                 STATEMENT ORDER), written next to pf_config_path, checked, then renamed over \
                 it and loaded (pf/src/pfctl.rs); a refused check loads nothing",
                "pfctl(8) -e: enable pf; \"pf already enabled\" (exit 1) is success",
                "sysctl(3) net.inet.ip.forwarding (and net.inet6.ip6.forwarding for a network \
                 with an IPv6 gateway) set to 1 when it is not, through the sysctl crate: no \
                 command line",
            ],
            lines: vec![
                render(&pf::pfctl::check(Path::new("/etc/.pf.conf.kleened-new"))),
                render(&pf::pfctl::load(Path::new("/etc/pf.conf"))),
                render(&pf::pfctl::enable()),
            ],
        },
        Case {
            name: "jexec",
            checked: &[
                "jexec(8) SYNOPSIS: jexec [-l] [-u username | -U username] jail [command ...]; \
                 jail is a jid here (libjail jail_getid: a number is a jid)",
                "jexec(8) -l: a clean environment, as a login (login class environment, then \
                 chdir to the home directory); -U: the user name from the jail's password \
                 database; jexec execs the command, so its exit status is the command's",
                "jexec(8) without -l: the process starts in the jail's root directory; used when \
                 the user's home directory does not exist in the jail (-l would fail to chdir)",
                "jexec.c -l: the environment is emptied and only the caller's TERM kept; the \
                 daemon has none, so a process on a terminal gets TERM=xterm through env(1), \
                 with or without -l; the container's variables come after it and win",
                "env(1): env [-i] [name=value ...] utility [argument ...]; -i: start from an \
                 empty environment; exit status 127 when the utility is not found, 126 when it \
                 cannot be run",
                JEXEC_CHECK_CHECKED,
            ],
            lines: {
                let mut tty = process(NetworkDriver::Host, "", &[], &["/bin/sh"]);
                tty.tty = true;
                let mut tty_nobody = process(NetworkDriver::Host, "nobody", &[], &["/bin/sh"]);
                tty_nobody.tty = true;
                vec![
                    render_argv(&jail::jexec(
                        &process(NetworkDriver::Host, "", &[], &["/bin/echo", "two words"]),
                        JID,
                        "root",
                        true,
                    )),
                    render(&jail::jexec_check(JID, "operator", true)),
                    render_argv(&jail::jexec(
                        &process(NetworkDriver::Host, "operator", &[], &["/usr/bin/id", "-u"]),
                        JID,
                        "operator",
                        true,
                    )),
                    render(&jail::jexec_check(JID, "nobody", false)),
                    render_argv(&jail::jexec(
                        &process(NetworkDriver::Host, "nobody", &[], &["/usr/bin/id", "-u"]),
                        JID,
                        "nobody",
                        false,
                    )),
                    render_argv(&jail::jexec(&tty, JID, "root", true)),
                    render_argv(&jail::jexec(&tty_nobody, JID, "nobody", false)),
                ]
            },
        },
        Case {
            name: "first-process-ended",
            checked: &[
                "jail(8) -m jid=... nopersist: -m \"Modify an existing jail. One of the jid or \
                 name parameters must exist and refer to an existing jail.\"; persist: \"allow \
                 a jail to exist without any processes\"; without it the jail is removed when \
                 its last process exits, as jail(8) itself does after a command= (jail.c \
                 clear_persist, which also addresses the jail by jid)",
                "by jid: the jail of the run whose first process ended, never a newer jail of \
                 the same name made by a quick stop and start",
            ],
            lines: vec![render(&jail::jail_release(JID))],
        },
        Case {
            name: "stop",
            checked: &[
                "jail(8) exec.stop: \"Command(s) to run in the jail environment before a jail is \
                 removed\"; never run for a jail made on the command line (state.c: jail -r/-R \
                 of it starts a record without parameters; command.c skips unset commands), so \
                 kleened runs the container's effective exec.stop (default /bin/sh \
                 /etc/rc.shutdown) itself, as exec.jail_user (default the first process's user), \
                 with -l for exec.clean (default true); a command with shell special characters \
                 runs as /bin/sh -c, others are split at white space (command.c)",
                "timeout(1) -k 2 N: SIGTERM after N seconds (the container's stop.timeout, \
                 default 10 as in jail(8)), SIGKILL 2 s later, to the command and its \
                 descendants; exit status 124 when the time ran out; a failed exec.stop is \
                 logged and the jail removed all the same",
                "jail(8) -R: \"removes an existing jail without using the configuration file. \
                 No removal-related parameters for this jail will be used\" (jail -r reads \
                 /etc/jail.conf when it exists, jail.c: docf = !Rflag && stat(cfname) == 0, and \
                 a syntax error there fails it); -r and -R take a jid; still SIGTERM to the \
                 jail's processes, up to 10 s (command.c DEFAULT_STOP_TIMEOUT), then \
                 jail_remove(2) kills what is left",
                MOUNT_TABLE_CHECKED,
                "umount(8) node: the devfs at path/dev, which removing a jail made on the \
                 command line leaves mounted (reference kleene-api.md §5.3)",
            ],
            lines: vec![
                render(&jail::exec_stop(
                    JID,
                    &jail::stop_plan("root", &[]),
                    jail::DEFAULT_EXEC_STOP,
                    jail::DEFAULT_STOP_TIMEOUT_SECS,
                )),
                render(&jail::jail_remove(JID)),
                render(&mounts::mount_table()),
                render(&mounts::unmount(&format!("{MOUNTPOINT}/dev"))),
            ],
        },
        Case {
            name: "stop-own-exec-stop",
            checked: &[
                "jail(8) exec.stop=..., exec.jail_user=www, exec.noclean (jexec without -l), \
                 stop.timeout=30; a command with ';' runs through /bin/sh -c, as jail(8) runs it \
                 (command.c)",
                "exec.nostop or an empty exec.stop: nothing is run before jail -R",
            ],
            lines: {
                let own: Vec<String> = [
                    "exec.stop=/usr/local/etc/rc.d/nginx stop; sync",
                    "exec.jail_user=www",
                    "exec.noclean",
                    "stop.timeout=30",
                ]
                .map(str::to_owned)
                .to_vec();
                let plan = jail::stop_plan("root", &own);
                plan.commands
                    .iter()
                    .map(|command| render(&jail::exec_stop(JID, &plan, command, plan.timeout_secs)))
                    .chain([render(&jail::jail_remove(JID))])
                    .collect()
            },
        },
        Case {
            name: "jail-modify",
            checked: &[
                "jail(8) -m: modify an existing jail, identified by the jid or name parameter; \
                 the jid of the container's current run (jls -j <name> jid after a daemon \
                 restart)",
                "the Kleene reference's update of a running container (kleene-api.md §2.1.4)",
            ],
            lines: vec![render(&jail::jail_modify(
                JID,
                &["host.hostname=web".into(), "allow.raw_sockets=1".into()],
            ))],
        },
        Case {
            name: "rctl-limits",
            checked: &[
                "rctl(8) -a rule ...: adds each rule; rule syntax \
                 subject:subject-id:resource:action=amount, subject jail with the jail's name \
                 (the container ID, as jail -c name= sets it); resources memoryuse (resident \
                 set size, bytes), maxproc (number of processes) and pcpu (%CPU, in percents of \
                 a single CPU core); action deny. Rules are kept by name and may be added before \
                 the jail exists; the daemon adds them after jail -c and before the first \
                 process's jexec. Needs kern.racct.enable=1 (loader tunable)",
                "rctl(8) -r filter ...: removes the rules matching the filter; the filter \
                 jail:<name> matches every rule of that jail (run when the container's run \
                 ends, and before new rules replace old ones on update)",
            ],
            lines: vec![
                render(
                    &rctl::rctl_add(
                        ID,
                        &Limits {
                            memory: Some(64 << 20),
                            pids: Some(100),
                            cpu_percent: Some(150),
                        },
                    )
                    .unwrap(),
                ),
                render(
                    &rctl::rctl_add(
                        ID,
                        &Limits {
                            memory: None,
                            pids: Some(20),
                            cpu_percent: None,
                        },
                    )
                    .unwrap(),
                ),
                render(&rctl::rctl_remove(ID)),
            ],
        },
        Case {
            name: "jls",
            checked: &[
                "jls(8) -j jail: only the given jail, by name or jid (exit status 1 when it does \
                 not exist or is dying); parameter jid: prints its jid, which says whether the \
                 container runs and addresses its jail when this daemon did not make it",
                "jls(8) parameter list: prints the named parameters of each jail, one jail per \
                 line; no jails: no output, exit status 0",
            ],
            lines: vec![render(&jail::jls_jid(ID)), render(&jail::jls_all())],
        },
        // `kleened doctor` (kleened/src/doctor/freebsd.rs): only looks; its fixes are the
        // daemon's own commands (pfctl -e, the forwarding sysctl) pinned above and below.
        Case {
            name: "doctor",
            checked: &[
                "pfctl(8) -s modifier: show; info: filter information (the first line is \
                 `Status: Enabled ...` or `Status: Disabled ...`), rules: the loaded filter rules",
                "sysctl(8) -n name: the value only; net.inet.ip.forwarding and \
                 net.inet6.ip6.forwarding are 0 or 1 (inet(4), inet6(4))",
                "kldstat(8) -q: quiet, the exit status tells; -m modname: the module (the list \
                 kleened init loads)",
                "mount(8) --libxo json -t nullfs,devfs: as in the mounts golden; a mount under \
                 the root of a container whose jail is gone is offered for umount(8) node, the \
                 jail runtime's own cleanup line",
            ],
            lines: {
                let runner = RecordingRunner::new();
                runner.push_ok("Status: Enabled for 0 days 00:00:01\n");
                runner.push_ok("pass all flags S/SA keep state\n");
                runner.push_ok("1\n");
                runner.push_ok("0\n");
                for _ in freebsd_host::MODULES {
                    runner.push_ok("");
                }
                runner.push_ok(r#"{"mount": {"mounted": []}}"#);
                let facts = kleened::doctor::freebsd::gather(
                    &runner,
                    Some(Path::new("/zroot/kleene/container")),
                );
                assert_eq!(facts.pf_enabled, Ok(true));
                render_recorded(runner.calls())
            },
        },
        // Host initialisation (kleened/src/init.rs, kleened/src/platform/freebsd/host.rs).
        Case {
            name: "init-kernel-modules",
            checked: &[
                "kldstat(8) -q: quiet, the exit status tells; -m modname: the module (zfs.ko \
                 registers zfs, pf.ko pf, pflog.ko pflog, if_bridge.ko if_bridge, if_epair.ko \
                 if_epair)",
                "kldload(8) -n: not an error when the module is loaded already; file: found \
                 along kern.module_path",
            ],
            lines: freebsd_host::MODULES
                .iter()
                .flat_map(|m| [render(&freebsd_host::kldstat(m)), render(&freebsd_host::kldload(m))])
                .collect(),
        },
        Case {
            name: "init-boot-settings",
            checked: &[
                "sysrc(8) -n: the value only (exit status 1 when unset); -f file: operate on \
                 that file; name=value. sysrc cannot handle names with dots (kern.racct.enable), \
                 so kleened reads and appends to loader.conf itself for that one",
                "loader.conf(5) *_load=\"YES\", rc.conf(5) *_enable=\"YES\"",
                "sysctl(8) -n name: the value only; rctl(8) limits need the kern.racct.enable \
                 tunable set to 1 at boot",
            ],
            lines: init::RC_VARIABLES
                .iter()
                .flat_map(|(file, name)| {
                    [
                        render(&freebsd_host::sysrc_get(file, name)),
                        render(&freebsd_host::sysrc_set(file, name, "YES")),
                    ]
                })
                .chain([render(&freebsd_host::sysctl_get("kern.racct.enable"))])
                .collect(),
        },
        // Host commands for images (kleened/src/platform/host.rs).
        Case {
            name: "image-host-commands",
            checked: &[
                "tar(1) (bsdtar) -x -p (keep permissions) -v --numeric-owner -f file -C directory",
                "uname(1) -s -r -m",
                "freebsd-version(1) -u: the installed userland's version (the script carries it)",
                "freebsd-update(8) -b basedir, --currently-running release (else the host's \
                 uname -r is used), --not-running-from-cron, commands fetch install in one run \
                 (install alone fails when nothing was fetched in the same run); PAGER=cat keeps \
                 it from waiting for a pager",
            ],
            lines: vec![
                render(&host::tar_extract(
                    TargetOs::FreeBsd,
                    Path::new("/zroot/kleene/.fetch-0123456789ab"),
                    Path::new("/zroot/kleene/image/0123456789ab"),
                )),
                render(&host::uname(TargetOs::FreeBsd)),
                render(&host::userland_version(Path::new(
                    "/zroot/kleene/image/0123456789ab",
                ))),
                render(&host::freebsd_update(
                    Path::new("/zroot/kleene/image/0123456789ab"),
                    "14.1-RELEASE-p3",
                )),
            ],
        },
        // A container's mounts (volumes and host paths), at start and at stop.
        Case {
            name: "mounts",
            checked: &[
                "mount_nullfs(8) [-o options] target mount-point: target is the host directory or \
                 file (a volume's mountpoint or the host path), mount-point the destination \
                 resolved inside the container's root by kleened (links never leave the root; \
                 missing directories, or an empty file for a file, are made); mount_nullfs.c \
                 takes the realpath(3) of both and refuses two of different types (\"must be \
                 same type as ... (file or directory)\"; a file source needs that newer \
                 mount_nullfs, an older one's checkpath wants directories); run in the \
                 container's order before jail -c, each path one argument",
                "mount_nullfs(8) -o: \"Options are specified with a -o flag followed by a comma \
                 separated string of options. See the mount(8) man page\"; mount_nullfs.c passes \
                 each to nmount(2), and ro is mount(8)'s read-only option (MNT_RDONLY), as the \
                 reference runs it (kleene-api.md \u{a7}5.2 step 1)",
                "mount(8) nosuid: \"Do not allow set-user-identifier or set-group-identifier bits \
                 to take effect\" (MNT_NOSUID, which vfs_mount.c takes from nmount's nosuid \
                 option): on every mount unless it lets setuid files work (the mount's suid \
                 option); one -o with the comma list ro,nosuid. No nodev: FreeBSD has device \
                 nodes only on devfs",
                MOUNT_TABLE_CHECKED,
                "umount(8) node: \"the path to the mount point\"; umount.c finds the latest file \
                 system mounted at that node in the mount table and unmounts it by its fsid \
                 (unmount(2) MNT_BYFSID), so a node whose path holds spaces works as one \
                 argument. Every nullfs and devfs strictly under the container's root, deepest \
                 first, of two as deep the later mounted first; no -f (\"all other files return \
                 errors if further accesses are attempted\"): after jail -R no process of the \
                 container is left, so a busy mount is a host process's, and the failure is \
                 reported (cleanup runs again at the next start and at removal) \
                 instead of cutting it off",
            ],
            lines: {
                let mut lines = vec![
                    render(&mounts::mount_table()),
                    render(&mounts::mount_nullfs(
                        "/zroot/kleene/volumes/data",
                        &format!("{MOUNTPOINT}/var/db/data"),
                        false,
                        false,
                    )),
                    render(&mounts::mount_nullfs(
                        "/usr/local/www/my site",
                        &format!("{MOUNTPOINT}/usr/local/www/data"),
                        true,
                        false,
                    )),
                    render(&mounts::mount_nullfs(
                        "/usr/local/etc/nginx.conf",
                        &format!("{MOUNTPOINT}/usr/local/etc/nginx/nginx.conf"),
                        true,
                        true,
                    )),
                    render(&mounts::mount_table()),
                ];
                // What the table lists at stop, in mount order.
                let listed = [
                    ("devfs", "/dev".to_owned()),
                    ("nullfs", format!("{MOUNTPOINT}/var/db/data")),
                    ("nullfs", format!("{MOUNTPOINT}/usr/local/www/data")),
                    ("nullfs", format!("{MOUNTPOINT}/usr/local/etc/nginx/nginx.conf")),
                    ("nullfs", format!("{MOUNTPOINT}/var/db/data/my cache")),
                    ("devfs", format!("{MOUNTPOINT}/dev")),
                    ("nullfs", "/zroot/kleene/container/c0ffee000002/data".to_owned()),
                ]
                .map(|(fstype, node)| {
                    format!(r#"{{"special": "x", "node": "{node}", "fstype": "{fstype}"}}"#)
                });
                let table = format!(r#"{{"mount": {{"mounted": [{}]}}}}"#, listed.join(", "));
                let mounted = mounts::parse_mount_table(&table).unwrap();
                lines.extend(
                    mounts::unmount_order(&mounted, MOUNTPOINT)
                        .iter()
                        .map(|node| render(&mounts::unmount(node))),
                );
                lines
            },
        },
        // A new volume filled with what the image has at its destination (engine/containers.rs).
        Case {
            name: "volume-fill",
            checked: &[
                "cp(1) -a: archive mode, the same as -RpP (recursive, links copied as links, \
                 modes, owners, times and flags kept); a source_file ending in / copies the \
                 directory's contents rather than the directory itself",
            ],
            lines: vec![render(&host::copy_contents(
                TargetOs::FreeBsd,
                Path::new("/zroot/kleene/container/0123456789ab/usr/local/etc"),
                Path::new("/zroot/kleene/volumes/conf"),
            ))],
        },
        // ZFS, through the client the daemon uses (zfs/src/client.rs).
        Case {
            name: "zfs-datasets",
            checked: &[
                "zfs-create(8) zfs create filesystem",
                "zfs-list(8) -H (scripted), -o property, -t type, -r",
                "zfs-get(8) -H -o value property filesystem",
                "zfs-mount(8) zfs mount filesystem",
            ],
            lines: [
                zfs_lines(&[""], |zfs| zfs.create(&layout.containers, &[]).unwrap()),
                zfs_lines(&["zroot/kleene\n"], |zfs| {
                    assert!(zfs.exists(&layout.root).unwrap());
                }),
                zfs_lines(&["/zroot/kleene\n"], |zfs| {
                    zfs.mountpoint(&layout.root).unwrap();
                }),
                zfs_lines(&["yes\t/zroot/kleene\n"], |zfs| {
                    zfs.mounted_at(&layout.root).unwrap();
                }),
                zfs_lines(&[""], |zfs| zfs.mount(&layout.root).unwrap()),
            ]
            .concat(),
        },
        Case {
            name: "zfs-images-and-containers",
            checked: &[
                "zfs-snapshot(8) zfs snapshot filesystem@snapname",
                "zfs-clone(8) zfs clone snapshot filesystem",
                "zfs-destroy(8) -r (descendants), -f (force unmount), filesystem|snapshot",
                "zfs-send(8) zfs send snapshot; zfs-receive(8) zfs receive filesystem",
                "zfs-get(8) -H -o value origin (not numeric, so no -p needed)",
            ],
            lines: [
                zfs_lines(&[""], |zfs| {
                    zfs.snapshot(&snapshot("zroot/kleene/image/0123456789ab@image"))
                        .unwrap();
                }),
                zfs_lines(&[""], |zfs| {
                    zfs.clone_snapshot(
                        &snapshot("zroot/kleene/image/0123456789ab@image"),
                        &dataset(&format!("zroot/kleene/container/{ID}")),
                        &[],
                    )
                    .unwrap();
                }),
                zfs_lines(&["zroot/kleene/image/0123456789ab@image\n"], |zfs| {
                    zfs.get(&dataset(&format!("zroot/kleene/container/{ID}")), "origin")
                        .unwrap();
                }),
                zfs_lines(&[""], |zfs| {
                    zfs.destroy(
                        &dataset(&format!("zroot/kleene/container/{ID}")),
                        DestroyFlags::recursive_force(),
                    )
                    .unwrap();
                }),
                zfs_lines(&[""], |zfs| {
                    zfs.destroy(
                        &dataset("zroot/kleene/image/0123456789ab"),
                        DestroyFlags::recursive(),
                    )
                    .unwrap();
                }),
                zfs_lines(&[""], |zfs| {
                    zfs.destroy_snapshot(
                        &snapshot("zroot/kleene_basejail@0123456789ab"),
                        DestroyFlags::default(),
                    )
                    .unwrap();
                }),
                zfs_lines(&[""], |zfs| {
                    zfs.send_receive(
                        &snapshot("zroot/kleene_basejail@0123456789ab"),
                        &dataset("zroot/kleene/image/0123456789ab"),
                    )
                    .unwrap();
                }),
                zfs_lines(&[""], |zfs| {
                    zfs.snapshot_exists(&snapshot("zroot/kleene/image/0123456789ab@image"))
                        .unwrap();
                }),
                zfs_lines(&["", ""], |zfs| {
                    zfs.snapshots_with_clones(&dataset("zroot/kleene/image/0123456789ab"))
                        .unwrap();
                }),
                zfs_lines(&["", ""], |zfs| {
                    zfs.dependents(&dataset("zroot/kleene/image/0123456789ab"))
                        .unwrap();
                }),
            ]
            .concat(),
        },
    ]
}

fn goldens_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/goldens/freebsd")
}

fn golden_text(case: &Case) -> String {
    let mut text = String::new();
    for line in case.checked {
        text.push_str("# checked against: ");
        text.push_str(line);
        text.push('\n');
    }
    for line in &case.lines {
        text.push_str(line);
        text.push('\n');
    }
    text
}

#[test]
fn every_freebsd_command_line_matches_its_golden_file() {
    let dir = goldens_dir();
    let cases = catalogue();
    let mut failures = vec![];
    for case in &cases {
        assert!(!case.lines.is_empty(), "case {} has no lines", case.name);
        assert!(
            case.checked
                .iter()
                .any(|c| c.contains("(8)") || c.contains("(1)")),
            "case {} names no man page",
            case.name
        );
        let path = dir.join(format!("{}.txt", case.name));
        if let Err(failure) = golden::compare(&path, &golden_text(case)) {
            failures.push(failure);
        }
    }
    // No golden file without a case: a removed command takes its golden with it.
    let names: Vec<&str> = cases.iter().map(|c| c.name).collect();
    for name in golden::orphans(&dir, "txt", &names) {
        failures.push(format!("{name}: no case builds this golden file"));
    }
    assert!(
        failures.is_empty(),
        "FreeBSD command lines changed (KLEENE_UPDATE_GOLDENS=1 rewrites the files; review the \
         diff against the man pages):\n\n{}",
        failures.join("\n\n")
    );
}

/// Program paths in the daemon's non-test sources, e.g. `"/usr/sbin/jail"`.
fn program_literals(file: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap();
    let code = text.split("#[cfg(test)]").next().unwrap_or_default();
    let mut found = vec![];
    for prefix in [
        "\"/sbin/",
        "\"/bin/",
        "\"/usr/sbin/",
        "\"/usr/bin/",
        "\"/usr/local/",
    ] {
        for (at, _) in code.match_indices(prefix) {
            let rest = &code[at + 1..];
            let end = rest.find('"').unwrap_or(rest.len());
            let literal = &rest[..end];
            // A program path: no spaces, lists or escapes, and not a file under an etc directory.
            let path_like = literal
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/_.-".contains(&b));
            if path_like && !literal.contains("/etc/") {
                found.push(literal.to_owned());
            }
        }
    }
    found
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Program paths that appear in the sources but are not run on the host by the daemon.
const NOT_HOST_COMMANDS: &[(&str, &str)] = &[(
    "/sbin/zpool",
    "zpool(8) is run by the test harness to make its pool, never by the daemon",
)];

#[test]
fn every_program_the_daemon_names_is_covered_by_a_golden() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = vec![];
    for dir in ["kleened/src", "zfs/src", "runner/src", "pf/src"] {
        sources(&root.join(dir), &mut files);
    }
    let goldens: String = catalogue()
        .iter()
        .flat_map(|c| c.lines.clone())
        .collect::<Vec<_>>()
        .join("\n");
    let mut missing = vec![];
    for file in &files {
        for program in program_literals(file) {
            let covered = goldens
                .split(|c: char| c.is_whitespace() || c == '=')
                // A program inside an image is named under the image's root.
                .any(|word| word == program || word.ends_with(&program));
            let excused = NOT_HOST_COMMANDS.iter().any(|(p, _)| *p == program);
            if !covered && !excused {
                missing.push(format!("{program} (in {})", file.display()));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "programs named in the sources with no FreeBSD golden: {missing:?}"
    );
}
