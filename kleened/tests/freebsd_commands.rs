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

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kleene_api::NetworkDriver;
use kleene_runner::{CommandSpec, Recorded, RecordingRunner};
use kleened::config::TargetOs;
use kleened::engine::Layout;
use kleened::init;
use kleened::platform::host;
use kleened::platform::jail;
use kleened::platform::ProcessSpec;
use zfs::{DatasetName, DestroyFlags, SnapshotName, Zfs, ZfsPrograms};

/// A container ID as the daemon makes them (12 hex digits, never all decimal).
const ID: &str = "c0ffee000001";
const MOUNTPOINT: &str = "/zroot/kleene/container/c0ffee000001";

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
        network,
        jail_params: params.iter().map(|p| (*p).to_owned()).collect(),
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

const JAIL_PARAMS_CHECKED: &str = "jail(8) PARAMETERS: path, name, host.hostname, ip4/ip6 \
    (\"inherit\", \"disable\"), vnet, mount.devfs; pseudo-parameters exec.stop, exec.clean, \
    exec.jail_user, command (\"command=... the rest of the line\")";

fn catalogue() -> Vec<Case> {
    let layout = Layout::new("zroot/kleene").unwrap();
    vec![
        // The jail runtime (kleened/src/platform/jail.rs).
        Case {
            name: "jail-create-host-network",
            checked: &[
                "jail(8) SYNOPSIS: jail -c [param=value ...] [command=command ...]",
                JAIL_PARAMS_CHECKED,
                "the Kleene reference's start line for the host driver (kleene-api.md §5.2)",
            ],
            lines: vec![render_argv(&jail::jail_create(&process(
                NetworkDriver::Host,
                "",
                &[],
                &["/bin/sh", "/etc/rc"],
            )))],
        },
        Case {
            name: "jail-create-disabled-network-own-params",
            checked: &[
                "jail(8) -c; ip4=disable, ip6=disable; a parameter of the user with a default's \
                 prefix (mount.nodevfs, exec.jail_user=) replaces the default (kleene-api.md §5.2 step 4)",
                "jail(8): boolean parameters may be given as name / noname (mount.nodevfs)",
                "jail(8) allow.raw_sockets",
            ],
            lines: vec![render_argv(&jail::jail_create(&process(
                NetworkDriver::Disabled,
                "www",
                &[
                    "mount.nodevfs",
                    "exec.jail_user=www",
                    "allow.raw_sockets=true",
                ],
                &["/usr/local/bin/httpd", "-f"],
            )))],
        },
        Case {
            name: "jail-create-vnet-network",
            checked: &[
                "jail(8) vnet: the jail gets its own virtual network stack; its interfaces \
                 (vnet.interface) come with the networks it is connected to",
            ],
            lines: vec![render_argv(&jail::jail_create(&process(
                NetworkDriver::Vnet,
                "",
                &[],
                &["/bin/sh", "-c", "echo 'it''s up'"],
            )))],
        },
        Case {
            name: "jexec",
            checked: &[
                "jexec(8) SYNOPSIS: jexec [-l] [-u username | -U username] jail [command ...]",
                "jexec(8) -l: a clean environment, as a login; -U: the user name from the jail's \
                 password database",
                "env(1): env [name=value ...] utility [argument ...]",
            ],
            lines: vec![
                render_argv(&jail::jexec(&process(
                    NetworkDriver::Host,
                    "",
                    &[],
                    &["/bin/echo", "two words"],
                ))),
                render_argv(&jail::jexec(&process(
                    NetworkDriver::Host,
                    "www",
                    &[],
                    &["/usr/bin/id", "-u"],
                ))),
            ],
        },
        Case {
            name: "jail-remove",
            checked: &[
                "jail(8) -r: remove the jail; runs exec.stop, then sends SIGTERM and after \
                 stop.timeout SIGKILL to the processes left",
            ],
            lines: vec![render(&jail::jail_remove(ID))],
        },
        Case {
            name: "jail-modify",
            checked: &[
                "jail(8) -m: modify an existing jail, identified by the jid or name parameter",
                "the Kleene reference's update of a running container (kleene-api.md §2.1.4)",
            ],
            lines: vec![render(&jail::jail_modify(
                ID,
                &["host.hostname=web".into(), "allow.raw_sockets=1".into()],
            ))],
        },
        Case {
            name: "jls",
            checked: &[
                "jls(8) -j jail: only the given jail (exit status 1 when it does not exist)",
                "jls(8) parameter list: prints the named parameters of each jail, one jail per line",
            ],
            lines: vec![render(&jail::jls_one(ID)), render(&jail::jls_all())],
        },
        Case {
            name: "teardown-devfs",
            checked: &[
                "mount(8) -p: print the mounted file systems in fstab(5) format; -t devfs: only \
                 devfs mounts",
                "umount(8) node",
                "the Kleene reference's teardown (kleene-api.md §5.3)",
            ],
            lines: vec![
                render(&jail::devfs_mounts()),
                render(&jail::unmount(&format!("{MOUNTPOINT}/dev"))),
            ],
        },
        // Host initialisation (kleened/src/init.rs).
        Case {
            name: "init-kernel-modules",
            checked: &[
                "kldstat(8) -q: quiet, the exit status tells; -m modname: the module",
                "kldload(8) file",
            ],
            lines: init::MODULES
                .iter()
                .flat_map(|m| [render(&init::kldstat(m)), render(&init::kldload(m))])
                .collect(),
        },
        Case {
            name: "init-boot-settings",
            checked: &[
                "sysrc(8) -n: the value only; -f file: operate on that file; name[=value]",
                "loader.conf(5) *_load=\"YES\", rc.conf(5) *_enable=\"YES\"",
                "rctl(8): resource limits need kern.racct.enable=1 in loader.conf(5)",
            ],
            lines: init::RC_VARIABLES
                .iter()
                .flat_map(|(file, name)| {
                    [
                        render(&init::sysrc_get(file, name)),
                        render(&init::sysrc_set(file, name, "YES")),
                    ]
                })
                .chain([
                    render(&init::sysrc_get("/boot/loader.conf", "kern.racct.enable")),
                    render(&init::sysrc_set(
                        "/boot/loader.conf",
                        "kern.racct.enable",
                        "1",
                    )),
                ])
                .collect(),
        },
        // Host commands for images (kleened/src/platform/host.rs).
        Case {
            name: "image-host-commands",
            checked: &[
                "tar(1) (bsdtar) -x -p (keep permissions) -v --numeric-owner -f file -C directory",
                "uname(1) -s -r -m",
                "freebsd-update(8) -b basedir, --not-running-from-cron, commands fetch and install; \
                 PAGER=cat keeps it from waiting for a pager",
            ],
            lines: vec![
                render(&host::tar_extract(
                    TargetOs::FreeBsd,
                    Path::new("/zroot/kleene/.fetch-0123456789ab"),
                    Path::new("/zroot/kleene/image/0123456789ab"),
                )),
                render(&host::uname(TargetOs::FreeBsd)),
                render(&host::freebsd_update(
                    Path::new("/zroot/kleene/image/0123456789ab"),
                    "fetch",
                )),
                render(&host::freebsd_update(
                    Path::new("/zroot/kleene/image/0123456789ab"),
                    "install",
                )),
            ],
        },
        // ZFS, through the client the daemon uses (zfs/src/client.rs).
        Case {
            name: "zfs-datasets",
            checked: &[
                "zfs-create(8) zfs create filesystem",
                "zfs-list(8) -H (scripted), -o property, -t type, -d depth, -r",
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
                "zfs-get(8) origin",
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
    let update = std::env::var("KLEENE_UPDATE_GOLDENS").as_deref() == Ok("1");
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
        let want = golden_text(case);
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &want).unwrap();
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(have) if have == want => {}
            Ok(have) => failures.push(format!(
                "{}: differs\n--- golden\n{have}+++ built now\n{want}",
                path.display()
            )),
            Err(err) => failures.push(format!("{}: {err}", path.display())),
        }
    }
    // No golden file without a case: a removed command takes its golden with it.
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let stem = name.trim_end_matches(".txt");
        if !cases.iter().any(|c| c.name == stem) {
            failures.push(format!("{name}: no case builds this golden file"));
        }
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
const NOT_HOST_COMMANDS: &[(&str, &str)] = &[
    (
        "/sbin/zpool",
        "zpool(8) is run by the test harness to make its pool, never by the daemon",
    ),
    (
    "/bin/sh",
    "the default command of a Linux base image and the shell of container processes, run inside \
     containers, not on the host",
    ),
];

#[test]
fn every_program_the_daemon_names_is_covered_by_a_golden() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = vec![];
    for dir in ["kleened/src", "zfs/src", "runner/src"] {
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
                .any(|word| word == program);
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
