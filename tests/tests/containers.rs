//! Containers and exec end to end on this host's runtime (namespaces on Linux, jails on FreeBSD):
//! `klee run`/`exec`/`stop`/`rm` with our klee and the published Python klee, terminals, exit codes,
//! bounded streaming, restart policies, bad input, and no leftovers (datasets, mounts, cgroups or
//! jails, processes). Where a check can only hold on one runtime it is written per OS, or skipped
//! with a printed line saying what was not checked.

// Test code: a failed setup step should panic where it happens.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use kleene_tests::bin;
use kleene_tests::clients::{describe, ok, python, python_klee, python_ok, stdout, text};
use kleene_tests::daemon::Daemon;
use kleene_tests::host::{peak_rss_kib, processes_with, stray_mounts};
use kleene_tests::pool::{settled_tree, zfs_tree};
use kleene_tests::require;
use kleene_tests::skip::host_tests;
use kleene_tests::wait::eventually;

fn containers(daemon: &Daemon) -> Vec<serde_json::Value> {
    daemon.klee_list(&["--json", "lsc", "-a"])
}

fn inspect(daemon: &Daemon, name: &str) -> serde_json::Value {
    daemon.klee_json(&["isc", name])
}

fn running(daemon: &Daemon, name: &str) -> bool {
    inspect(daemon, name)["container"]["running"]
        .as_bool()
        .unwrap()
}

/// Nothing of the daemon's containers is left on the host but their datasets.
fn assert_no_runtime_leftovers(daemon: &Daemon) {
    let mountpoint = format!("/{}", daemon.root.name);
    assert_eq!(
        stray_mounts(&mountpoint),
        Vec::<String>::new(),
        "mounts left on the host"
    );
    #[cfg(target_os = "freebsd")]
    assert_eq!(
        kleene_tests::host::jails_under(&mountpoint),
        Vec::<String>::new(),
        "jails left on the host"
    );
    #[cfg(not(target_os = "freebsd"))]
    let cgroups: Vec<String> = daemon
        .cgroup_parent()
        .and_then(|p| std::fs::read_dir(p).ok())
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    #[cfg(not(target_os = "freebsd"))]
    assert_eq!(cgroups, Vec::<String>::new(), "container cgroups left");
}

#[test]
fn klee_run_streams_output_and_exits_with_the_process_code() {
    require!(host_tests());
    let daemon = Daemon::with_base();
    let said = daemon.klee_ok(&["run", "--rm", "base", "/bin/echo", "hello from a container"]);
    assert_eq!(said, "hello from a container\n");

    let out = daemon.klee(&[
        "run",
        "--name",
        "seven",
        "base",
        "/bin/sh",
        "-c",
        "echo out; echo err >&2; exit 7",
    ]);
    assert_eq!(out.status.code(), Some(7), "{}", describe(&out));
    assert_eq!(stdout(&out), "out\nerr\n", "stdout and stderr both stream");
    assert!(!running(&daemon, "seven"));

    // Isolation: own hostname (the container ID), PID 1 is the container's init, a fresh /proc and /dev.
    #[cfg(not(target_os = "freebsd"))]
    let isolation = "hostname; echo $GREETING $HOME $USER; cat /proc/1/cmdline | tr '\\0' ' '; echo; ls /dev; cat /etc/hostname";
    // In a jail: own hostname, the kernel says the process is jailed, the host's processes (the
    // daemon) are invisible, and the jail's devfs (ruleset 4) holds the basic devices.
    #[cfg(target_os = "freebsd")]
    let isolation = "hostname; echo $GREETING $HOME $USER; sysctl -n security.jail.jailed; ps -ax -o comm= | grep -c kleened; ls /dev";
    let text = daemon.klee_ok(&[
        "run",
        "--rm",
        "-e",
        "GREETING=hi",
        "base",
        "/bin/sh",
        "-c",
        isolation,
    ]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0].len(),
        12,
        "hostname is the container ID: {lines:?}"
    );
    assert_eq!(lines[1], "hi /root root");
    #[cfg(not(target_os = "freebsd"))]
    let devices = {
        assert!(
            lines[2].contains("__runtime-helper"),
            "PID 1 is the container's init: {lines:?}"
        );
        [
            "null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "shm",
        ]
    };
    #[cfg(target_os = "freebsd")]
    let devices = {
        assert_eq!(lines[2], "1", "the process runs in a jail: {lines:?}");
        assert_eq!(
            lines[3], "0",
            "the host's processes are not visible in the jail: {lines:?}"
        );
        [
            "null", "zero", "random", "urandom", "ptmx", "pts", "fd", "stdin",
        ]
    };
    for device in devices {
        assert!(
            lines.contains(&device),
            "/dev/{device} is missing: {lines:?}"
        );
    }

    let out = daemon.klee(&[
        "run",
        "--rm",
        "-J",
        "host.hostname=web.local",
        "-J",
        "exec.noclean",
        "base",
        "hostname",
    ]);
    assert_eq!(stdout(&out), "web.local\n", "{}", describe(&out));
    assert!(
        daemon.log().contains("exec.noclean"),
        "{}",
        if cfg!(target_os = "freebsd") {
            "jail parameters are in the logged jail(8) command line"
        } else {
            "ignored jail parameters are logged"
        }
    );

    daemon.klee_ok(&["rmc", "seven"]);
    assert!(containers(&daemon).is_empty());
    assert_no_runtime_leftovers(&daemon);
}

#[test]
fn exec_joins_a_running_container_and_stop_ends_every_process() {
    require!(host_tests());
    let daemon = Daemon::with_base();
    daemon.run_detached(
        "web",
        &[
            "base",
            "/bin/sh",
            "-c",
            // Written once, whole (a restart runs this again while an exec may read the file).
            "sleep 301 & sleep 301 & [ -e /tmp/state ] || { echo ready > /tmp/new; mv /tmp/new /tmp/state; }; wait",
        ],
    );
    assert!(running(&daemon, "web"));
    // The first process writes the file a moment after the start.
    assert!(
        eventually(Duration::from_secs(20), || {
            stdout(&daemon.klee(&["exec", "web", "cat", "/tmp/state"])) == "ready\n"
        }),
        "the first process never wrote its file"
    );
    let out = daemon.klee(&["lsc"]);
    assert!(
        stdout(&out).contains("web") && stdout(&out).contains("running"),
        "{}",
        describe(&out)
    );

    // The processes the exec can see, named: from /proc on Linux, from ps(1) in a jail (no procfs).
    let count_sleeps = if cfg!(target_os = "freebsd") {
        "ps -ax -o comm= | grep -c '^sleep$'"
    } else {
        "cat /proc/[0-9]*/comm | grep -c '^sleep$'"
    };
    let out = daemon.klee(&[
        "exec",
        "web",
        "/bin/sh",
        "-c",
        &format!("cat /tmp/state; hostname; {count_sleeps}; exit 4"),
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", describe(&out));
    let lines: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
    assert_eq!(lines[0], "ready", "exec sees the container's files");
    let id = containers(&daemon)[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(lines[1], id, "exec shares the container's hostname");
    assert_eq!(lines[2], "2", "exec sees the container's processes");

    let out = daemon.klee(&["exec", "-u", "nobody", "web", "/bin/sh", "-c", "id -u"]);
    assert_eq!(stdout(&out), "65534\n", "{}", describe(&out));
    let out = daemon.klee(&["exec", "-e", "X=1", "web", "/bin/sh", "-c", "echo $X"]);
    assert_eq!(stdout(&out), "1\n", "{}", describe(&out));

    let out = daemon.klee(&["rmc", "web"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        text(&out).contains("you cannot remove a running container"),
        "{}",
        describe(&out)
    );

    daemon.klee_ok(&["stop", "web"]);
    assert!(!running(&daemon, "web"));
    assert!(
        processes_with("sleep 301").is_empty(),
        "every process of the container ended"
    );
    let out = daemon.klee(&["stop", "web"]);
    assert!(
        text(&out).contains("container not running"),
        "{}",
        describe(&out)
    );

    // Started again, the container keeps its filesystem.
    daemon.klee_ok(&["start", "-d", "web"]);
    let out = daemon.klee(&["exec", "web", "cat", "/tmp/state"]);
    assert_eq!(stdout(&out), "ready\n", "{}", describe(&out));
    daemon.klee_ok(&["rmc", "-f", "web"]);
    assert!(containers(&daemon).is_empty());
    assert_no_runtime_leftovers(&daemon);
}

#[test]
fn bad_input_gets_clear_errors_and_leaves_nothing() {
    require!(host_tests());
    let daemon = Daemon::with_base();
    let datasets = zfs_tree(&daemon.root.name);

    let out = daemon.klee(&["run", "nosuchimage", "/bin/true"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        text(&out).contains("no such image 'nosuchimage'"),
        "{}",
        describe(&out)
    );
    let out = daemon.klee(&["exec", "nosuchcontainer", "/bin/true"]);
    assert!(
        text(&out).contains("container not found"),
        "{}",
        describe(&out)
    );
    let out = daemon.klee(&["run", "--name", "x", "base", "/bin/true"]);
    assert!(
        text(&out).contains("does not match"),
        "a one-letter name is refused: {}",
        describe(&out)
    );
    assert_eq!(
        zfs_tree(&daemon.root.name),
        datasets,
        "refused creations leave no dataset"
    );
    assert!(containers(&daemon).is_empty());

    // The message comes from the runtime: kleened's helper on Linux, env(1) in a jail.
    let not_found = if cfg!(target_os = "freebsd") {
        "/no/such/program: No such file or directory"
    } else {
        "cannot run '/no/such/program'"
    };
    let out = daemon.klee(&["run", "--rm", "base", "/no/such/program"]);
    assert_eq!(out.status.code(), Some(127), "{}", describe(&out));
    assert!(text(&out).contains(not_found), "{}", describe(&out));
    let out = daemon.klee(&["run", "--rm", "-u", "nosuchuser", "base", "/bin/true"]);
    // Both runtimes look the user up in the container's passwd before anything starts.
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        text(&out).contains("unable to find user nosuchuser"),
        "{}",
        describe(&out)
    );

    daemon.klee_ok(&["create", "--name", "idle", "base", "/bin/true"]);
    let out = daemon.klee(&["exec", "idle", "/bin/true"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        text(&out).contains("cannot start container when 'start_container' is false."),
        "{}",
        describe(&out)
    );
    daemon.klee_ok(&["rmc", "idle"]);
    assert!(
        containers(&daemon).is_empty(),
        "--rm and rm leave no container"
    );
    assert_eq!(
        settled_tree(&daemon.root.name, &datasets),
        datasets,
        "no dataset left"
    );
    assert_no_runtime_leftovers(&daemon);
}

#[test]
fn python_klee_runs_execs_stops_and_removes_containers() {
    require!(host_tests());
    let py = require!(python_klee());
    let daemon = Daemon::with_base();
    let out = python(&py, &daemon, &["run", "base:latest", "/bin/echo", "hello"]);
    python_ok(&out);
    assert!(stdout(&out).contains("hello\n"), "{}", describe(&out));
    assert!(
        stdout(&out).contains("exited with exit-code 0"),
        "{}",
        describe(&out)
    );

    python_ok(&python(
        &py,
        &daemon,
        &[
            "run",
            "-d",
            "--name",
            "py",
            "base:latest",
            "/bin/sleep",
            "60",
        ],
    ));
    assert!(running(&daemon, "py"));
    let out = python(
        &py,
        &daemon,
        &["exec", "py", "/bin/sh", "-c", "echo from-exec"],
    );
    assert!(stdout(&out).contains("from-exec"), "{}", describe(&out));
    assert!(!text(&out).contains("Traceback"), "{}", describe(&out));
    let out = python(&py, &daemon, &["container", "ls", "-a"]);
    assert!(
        stdout(&out).contains("running") && !text(&out).contains("Traceback"),
        "{}",
        describe(&out)
    );
    python_ok(&python(&py, &daemon, &["stop", "py"]));
    assert!(!running(&daemon, "py"));
    ok(&python(&py, &daemon, &["container", "rm", "py"]));
    let out = python(&py, &daemon, &["container", "rm", "py"]);
    assert!(
        !out.status.success() && !text(&out).contains("Traceback"),
        "{}",
        describe(&out)
    );
    python_ok(&python(&py, &daemon, &["container", "prune", "-f"]));
    assert!(containers(&daemon).is_empty());
    assert_no_runtime_leftovers(&daemon);
}

/// What a real terminal showed (Python's pty module): the forked child runs the Python lines
/// `child` on it, while the parent talks to it with the Python lines `dialogue`, writing with
/// `os.write(fd, ...)` and waiting with `read_until(marker)`.
fn on_a_terminal(child: &str, dialogue: &str) -> String {
    let child: String = child.lines().map(|line| format!("    {line}\n")).collect();
    let script = format!(
        r#"
import fcntl, os, pty, struct, sys, termios, time
pid, fd = pty.fork()
if pid == 0:
{child}out = b""
def read_until(marker, limit=20):
    global out
    end = time.time() + limit
    while marker not in out and time.time() < end:
        try:
            out += os.read(fd, 4096)
        except OSError:
            break
{dialogue}
sys.stdout.write(out.decode(errors="replace"))
"#
    );
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    stdout(&out)
}

#[test]
fn an_interactive_terminal_echoes_typed_lines_and_is_restored() {
    require!(host_tests());
    let daemon = Daemon::with_base();
    // A real terminal for klee: `klee run -it ... ; stty -a` on one.
    let output = on_a_terminal(
        &format!(
            r#"os.execvp("sh", ["sh", "-c", "{klee} --host {host} run --rm -it base /bin/sh; echo klee-exit=$?; stty -a"])"#,
            klee = bin("klee").display(),
            host = daemon.host
        ),
        r##"read_until(b"# ")
os.write(fd, b"echo typed-$((40+2))\r")
read_until(b"typed-42\r\n")
os.write(fd, b"exit 3\r")
read_until(b"icanon")"##,
    );
    assert!(
        output.contains("echo typed-$((40+2))"),
        "the typed line is echoed: {output}"
    );
    assert!(
        output.contains("typed-42\r\n"),
        "the shell ran it: {output}"
    );
    assert!(
        output.contains("klee-exit=3"),
        "klee exits with the shell's code: {output}"
    );
    assert!(
        output.contains(" icanon") && output.contains(" echo "),
        "the terminal is restored: {output}"
    );
}

#[test]
fn a_gigabyte_of_output_streams_without_growing_the_daemon() {
    require!(host_tests());
    let daemon = Daemon::with_base();
    // The peak RSS: VmHWM on Linux, procstat's "maximum RSS" on FreeBSD.
    let peak = peak_rss_kib;
    let before = peak(daemon.pid());
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{} --host {} run --rm base /bin/sh -c 'head -c 1073741824 /dev/zero' | wc -c",
            bin("klee").display(),
            daemon.host
        ))
        .output()
        .unwrap();
    assert_eq!(stdout(&out).trim(), "1073741824", "{}", describe(&out));
    let after = peak(daemon.pid());
    assert!(
        after < before + 32 * 1024,
        "the daemon's peak RSS grew from {before} kB to {after} kB"
    );
}

#[test]
fn on_startup_containers_start_with_the_daemon_and_all_stop_with_it() {
    require!(host_tests());
    let mut daemon = Daemon::with_base();
    daemon.klee_ok(&[
        "create",
        "--name",
        "always",
        "--restart",
        "on-startup",
        "base",
        "/bin/sleep",
        "302",
    ]);
    daemon.run_detached("once", &["base", "/bin/sleep", "303"]);
    assert!(!running(&daemon, "always") && running(&daemon, "once"));

    // Stopping the daemon stops its containers (stop() also checks the cgroups are gone).
    daemon.restart();
    assert!(
        processes_with("sleep 303").is_empty(),
        "the daemon's stop ended its containers"
    );
    assert!(
        running(&daemon, "always"),
        "on-startup containers run after the daemon starts"
    );
    assert!(!running(&daemon, "once"));
    daemon.klee_ok(&["rmc", "-f", "always", "once"]);
    assert_no_runtime_leftovers(&daemon);
}

/// The exec API as the reference daemon's tests drive it: detached start, a second exec stopped with
/// `force_stop`, the container stopped through its first exec, and refusals before any frame.
#[test]
fn exec_instances_follow_the_websocket_protocol() {
    require!(host_tests());
    let py = require!(python_klee());
    let daemon = Daemon::with_base();
    let script = r#"
import asyncio, json, sys
import httpx, websockets
sock = sys.argv[1]
c = httpx.Client(transport=httpx.HTTPTransport(uds=sock), base_url="http://localhost", timeout=30)
async def start(eid, attach, start_container):
    ws = await websockets.unix_connect(sock, uri="ws://localhost/exec/start")
    await ws.send(json.dumps({"exec_id": eid, "attach": attach, "start_container": start_container}))
    return ws
async def closed(ws):
    frames = []
    try:
        while True:
            frames.append(await ws.recv())
    except websockets.exceptions.ConnectionClosed:
        return frames, ws.close_code, json.loads(ws.close_reason)
async def main():
    cid = c.post("/containers/create", json={"image": "base", "cmd": ["/bin/sleep", "60"], "network_driver": "host"}).json()["id"]
    root = c.post("/exec/create", json={"container_id": cid}).json()["id"]
    print("detached", json.dumps(await closed(await start(root, False, True))))
    second = c.post("/exec/create", json={"container_id": cid, "cmd": ["/bin/sleep", "99"]}).json()["id"]
    ws = await start(second, True, "true")
    print("starting", await ws.recv())
    r = c.post(f"/exec/{second}/stop", params={"force_stop": "true", "stop_container": "false"})
    print("stop-second", r.status_code, r.json()["id"] == second)
    print("second-closed", json.dumps(await closed(ws)))
    print("running", c.get(f"/containers/{cid}/inspect").json()["container"]["running"])
    r = c.post(f"/exec/{root}/stop", params={"force_stop": "false", "stop_container": "true"})
    print("stop-root", r.status_code, r.json()["id"] == root)
    print("running", c.get(f"/containers/{cid}/inspect").json()["container"]["running"])
    r = c.post(f"/exec/{root}/stop", params={"force_stop": "false", "stop_container": "true"})
    print("stop-again", r.status_code, r.json()["message"])
    r = c.post(f"/exec/{root}/stop", params={"force_stop": "false"})
    print("stop-missing-param", r.status_code)
    ws = await websockets.unix_connect(sock, uri="ws://localhost/exec/start")
    await ws.send(json.dumps({"exec_id": "x", "attach": "mustbeboolean", "start_container": True}))
    print("bad-config", json.dumps(await closed(ws)))
    print("wrong-id", json.dumps(await closed(await start("wrongid", True, True))))
    print("removed", c.delete(f"/containers/{cid}").status_code)
asyncio.run(main())
"#;
    let python = py.parent().unwrap().join("python");
    let out = std::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(daemon.socket())
        .output()
        .unwrap();
    let lines: Vec<String> = ok(&out).lines().map(str::to_owned).collect();
    let line = |prefix: &str| {
        lines
            .iter()
            .find(|l| l.starts_with(prefix))
            .cloned()
            .unwrap_or_default()
    };
    assert!(
        line("detached ").contains(r#"[], 1001, {"data": "", "message": "succesfully started execution instance in detached mode", "msg_type": "closing"}"#),
        "{lines:#?}"
    );
    assert_eq!(
        line("starting "),
        r#"starting {"data":"","message":"","msg_type":"starting"}"#
    );
    assert_eq!(line("stop-second "), "stop-second 200 True");
    assert!(
        line("second-closed ").contains(r#"has exited with exit-code 137""#),
        "{lines:#?}"
    );
    assert!(line("second-closed ").contains(", 1000, "), "{lines:#?}");
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("running "))
            .cloned()
            .collect::<Vec<_>>(),
        ["running True", "running False"]
    );
    assert_eq!(line("stop-root "), "stop-root 200 True");
    assert!(
        line("stop-again ")
            .starts_with("stop-again 404 could not find execution instance matching"),
        "{lines:#?}"
    );
    assert_eq!(line("stop-missing-param "), "stop-missing-param 422");
    assert!(line("bad-config ").contains("[], 1002, "), "{lines:#?}");
    assert!(
        line("bad-config ").contains("invalid parameters"),
        "{lines:#?}"
    );
    assert!(line("wrong-id ").contains(r#"[], 1011, {"data": "", "message": "could not find execution instance matching 'wrongid'""#), "{lines:#?}");
    assert_eq!(line("removed "), "removed 200");
    assert_no_runtime_leftovers(&daemon);
}

#[test]
fn update_applies_jail_parameters_to_a_running_container_or_changes_nothing() {
    require!(host_tests());
    let daemon = Daemon::with_base();
    daemon.run_detached("upd", &["base", "/bin/sh", "-c", "sleep 302"]);

    daemon.klee_ok(&["container", "update", "-J", "host.hostname=renamed", "upd"]);
    let out = daemon.klee(&["exec", "upd", "hostname"]);
    assert_eq!(
        stdout(&out),
        "renamed\n",
        "the running container has the new hostname"
    );
    assert_eq!(
        inspect(&daemon, "upd")["container"]["jail_param"],
        serde_json::json!(["host.hostname=renamed"]),
    );

    // A hostname no kernel accepts: 409, and neither the container nor its record change.
    let long = format!("host.hostname={}", "x".repeat(300));
    let out = daemon.klee(&["container", "update", "-J", &long, "upd"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        text(&out).contains("an error ocurred while updating the container"),
        "{}",
        describe(&out)
    );
    let out = daemon.klee(&["exec", "upd", "hostname"]);
    assert_eq!(stdout(&out), "renamed\n");
    assert_eq!(
        inspect(&daemon, "upd")["container"]["jail_param"],
        serde_json::json!(["host.hostname=renamed"]),
    );

    daemon.klee_ok(&["rmc", "-f", "upd"]);
    assert_no_runtime_leftovers(&daemon);
}

#[test]
fn a_terminal_gets_the_clients_size_and_follows_it() {
    require!(host_tests());
    let daemon = Daemon::with_base();
    // klee on a 40×100 terminal; then the terminal shrinks to 30×90.
    let output = on_a_terminal(
        &format!(
            r#"fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
os.execvp("{klee}", ["klee", "--host", "{host}", "run", "--rm", "-it", "base", "/bin/sh"])"#,
            klee = bin("klee").display(),
            host = daemon.host
        ),
        r##"read_until(b"# ")
os.write(fd, b"stty size\r")
read_until(b"40 100")
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 90, 0, 0))
time.sleep(0.5)
os.write(fd, b"stty size; exit\r")
read_until(b"30 90")"##,
    );
    assert!(output.contains("\n40 100"), "the starting size: {output}");
    assert!(
        output.contains("\n30 90"),
        "the size after the resize: {output}"
    );
}

#[test]
fn the_end_of_input_reaches_the_process() {
    require!(host_tests());
    let daemon = Daemon::with_base();
    let mut child = std::process::Command::new(bin("klee"))
        .args(["--host", &daemon.host, "run", "-i", "--rm", "base", "cat"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"hello\n").unwrap();
    }
    assert!(
        eventually(Duration::from_secs(20), || child
            .try_wait()
            .unwrap()
            .is_some()),
        "cat never saw the end of its input"
    );
    let out = child.wait_with_output().unwrap();
    assert_eq!(ok(&out), "hello\n");
    assert_eq!(containers(&daemon).len(), 0, "--rm removed it");
}

#[test]
fn a_prompt_without_a_newline_reaches_the_client_before_any_input() {
    require!(host_tests());
    let daemon = Daemon::with_base();
    let mut child = std::process::Command::new(bin("klee"))
        .args([
            "--host",
            &daemon.host,
            "run",
            "-i",
            "--rm",
            "base",
            "/bin/sh",
            "-c",
            "printf 'name? '; read name; echo \"hello $name\"",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The prompt must arrive while the process waits for input: output is never held back for
    // a newline or a fuller frame.
    let mut stdout = child.stdout.take().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        use std::io::Read as _;
        let mut seen = vec![];
        let mut byte = [0u8; 1];
        while let Ok(1) = stdout.read(&mut byte) {
            seen.push(byte[0]);
            if seen.ends_with(b"name? ") {
                let _ = sender.send(());
            }
        }
        seen
    });
    receiver
        .recv_timeout(Duration::from_secs(20))
        .expect("the prompt never arrived while the process waited for input");
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"kleene\n").unwrap();
    }
    let status = child.wait().unwrap();
    let seen = reader.join().unwrap();
    assert!(status.success());
    assert_eq!(String::from_utf8_lossy(&seen), "name? hello kleene\n");
}

#[test]
fn large_output_arrives_byte_for_byte() {
    require!(host_tests());
    let daemon = Daemon::with_base();
    // Many small writes, coalesced into large frames, must come out in order and complete.
    let said = daemon.klee_ok(&["run", "--rm", "base", "/usr/bin/seq", "1", "200000"]);
    let expected: String = (1..=200_000).map(|i| format!("{i}\n")).collect();
    assert!(said == expected, "the output differs from seq's");
    if let Some(klee) = python_klee() {
        let said = ok(&python(
            &klee,
            &daemon,
            &["run", "base", "/usr/bin/seq", "1", "200000"],
        ));
        assert!(
            said.contains(&expected),
            "the Python client's output lacks seq's"
        );
    }
}

/// `container prune` and `volume prune` remove, and list, what they remove in creation order, as
/// the reference does (listings are newest first); the published client prints them so.
#[test]
fn prunes_list_what_they_removed_in_creation_order() {
    require!(host_tests());
    let py = require!(python_klee());
    let daemon = Daemon::with_base();
    let mut ids = vec![];
    for name in ["first", "second", "third"] {
        ids.push(daemon.klee_ok(&["create", "--name", name, "base", "/bin/true"]));
    }
    let ids: Vec<String> = ids.iter().map(|out| out.trim().to_owned()).collect();
    let said = python_ok(&python(&py, &daemon, &["container", "prune", "-f"]));
    let printed: Vec<usize> = ids
        .iter()
        .map(|id| {
            said.find(id.as_str())
                .unwrap_or_else(|| panic!("{id} in {said}"))
        })
        .collect();
    assert!(printed.windows(2).all(|w| w[0] < w[1]), "{ids:?}: {said}");
    for name in ["v-first", "v-second", "v-third"] {
        python_ok(&python(&py, &daemon, &["volume", "create", name]));
    }
    let said = python_ok(&python(&py, &daemon, &["volume", "prune", "-f"]));
    let printed: Vec<usize> = ["v-first", "v-second", "v-third"]
        .iter()
        .map(|name| {
            said.find(name)
                .unwrap_or_else(|| panic!("{name} in {said}"))
        })
        .collect();
    assert!(printed.windows(2).all(|w| w[0] < w[1]), "{said}");
}

/// Right after `container rm`, `container prune`, `image rm` and `image prune` return through the
/// published client, `zfs list` shows no dataset of what they removed (the reference's own tests
/// compare `zfs list` before and after), although zfs-fuse keeps a dataset busy right after its
/// container ran.
#[test]
fn removal_is_done_when_it_returns() {
    require!(host_tests());
    let py = require!(python_klee());
    let daemon = Daemon::with_base();
    let root = daemon.root.name.clone();
    let before = zfs_tree(&root);
    let mut ids = vec![];
    for name in ["one", "two", "three"] {
        ok(&daemon.klee(&[
            "run",
            "--name",
            name,
            "base",
            "/bin/sh",
            "-c",
            "echo x > /file",
        ]));
        ids.push(
            inspect(&daemon, name)["container"]["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let leftovers = |tree: &[String], id: &str| -> Vec<String> {
        tree.iter().filter(|d| d.contains(id)).cloned().collect()
    };
    python_ok(&python(&py, &daemon, &["container", "rm", "one"]));
    assert_eq!(leftovers(&zfs_tree(&root), &ids[0]), Vec::<String>::new());
    python_ok(&python(&py, &daemon, &["container", "prune", "-f"]));
    assert_eq!(zfs_tree(&root), before, "right after the prune returned");

    let ctx = tempfile::tempdir().unwrap();
    let dir = ctx.path().to_str().unwrap();
    let build = |content: &str| {
        std::fs::write(
            ctx.path().join("Dockerfile"),
            format!("FROM base\nRUN echo {content} > /built\n"),
        )
        .unwrap();
        ok(&daemon.klee(&["build", "-t", "app:1", dir]));
        daemon.klee_json(&["isi", "app:1"])["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let first = build("first");
    python_ok(&python(&py, &daemon, &["image", "rm", "app:1"]));
    assert_eq!(leftovers(&zfs_tree(&root), &first), Vec::<String>::new());
    assert_eq!(zfs_tree(&root), before, "right after the image rm returned");
    // Built again under the same tag, the older image is untagged: a plain prune removes it.
    let older = build("older");
    let newer = build("newer");
    python_ok(&python(&py, &daemon, &["image", "prune", "-f"]));
    let tree = zfs_tree(&root);
    assert_eq!(leftovers(&tree, &older), Vec::<String>::new());
    assert!(!leftovers(&tree, &newer).is_empty(), "{tree:?}");
}

/// An attached session whose client dies (killed, its connection dropped) leaves the container's
/// process running, as the reference does: only an explicit stop ends it. Our klee asks for that
/// stop itself when it is interrupted (SIGINT or SIGTERM), and reports the process's end.
#[test]
fn an_attached_process_outlives_its_client_and_only_a_stop_ends_it() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    require!(host_tests());
    let py = require!(python_klee());
    let daemon = Daemon::with_base();
    let script = "echo started; sleep 2; echo survived > /survived; exec sleep 600";
    let attached = |client: Command| {
        let mut client = client;
        let mut child = client
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // The client may say something of its own first (the Python client: the container's ID).
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut seen = vec![];
        for line in lines.map_while(Result::ok).take(10) {
            if line.trim() == "started" {
                return child;
            }
            seen.push(line);
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("no 'started' from the process: {seen:?}");
    };
    let mut python_client = Command::new(&py);
    python_client
        .args(["--host", &daemon.host, "run", "--name", "py-alive", "base"])
        .args(["/bin/sh", "-c", script]);
    let mut ours = Command::new(bin("klee"));
    ours.args([
        "--host",
        &daemon.host,
        "run",
        "--name",
        "klee-alive",
        "base",
    ])
    .args(["/bin/sh", "-c", script]);
    for (name, client) in [("py-alive", python_client), ("klee-alive", ours)] {
        let mut child = attached(client);
        child.kill().unwrap();
        child.wait().unwrap();
        let survived = eventually(Duration::from_secs(20), || {
            let out = daemon.klee(&["exec", name, "cat", "/survived"]);
            if out.status.success() {
                Ok(())
            } else {
                Err(describe(&out))
            }
        });
        assert_eq!(
            survived,
            Ok(()),
            "{name}: the process went on after its client was killed"
        );
        assert!(running(&daemon, name), "{name}");
        // An exec into the running container is another matter: the reference ends it (SIGTERM)
        // when its client goes.
        let mut exec = Command::new(&py);
        exec.args(["--host", &daemon.host, "exec", name]).args([
            "/bin/sh",
            "-c",
            "echo started; exec sleep 700",
        ]);
        let mut child = attached(exec);
        child.kill().unwrap();
        child.wait().unwrap();
        let ended = eventually(Duration::from_secs(20), || {
            let listed = stdout(&daemon.klee(&["exec", name, "ps"]));
            if listed.contains("sleep 700") {
                Err(listed)
            } else {
                Ok(())
            }
        });
        assert_eq!(
            ended,
            Ok(()),
            "{name}: the exec ran on after its client was killed"
        );
        assert!(running(&daemon, name), "{name}");
        python_ok(&python(&py, &daemon, &["container", "stop", name]));
        assert!(!running(&daemon, name), "{name}");
    }

    // Interrupted, our klee stops the process itself and exits with its code.
    let mut ours = Command::new(bin("klee"));
    ours.args([
        "--host",
        &daemon.host,
        "run",
        "--name",
        "klee-stopped",
        "base",
    ])
    .args(["/bin/sh", "-c", "echo started; exec sleep 600"]);
    let mut child = attached(ours);
    ok(&Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .output()
        .unwrap());
    let status = eventually(Duration::from_secs(20), || {
        child.try_wait().unwrap().ok_or("klee still runs")
    })
    .unwrap();
    assert_eq!(
        status.code(),
        Some(143),
        "SIGTERM ended the process: {status:?}"
    );
    assert!(!running(&daemon, "klee-stopped"));
    assert_no_runtime_leftovers(&daemon);
}

/// Jail parameters as the reference treats them, through the published client: on a running
/// container `-J vnet` is refused in the kernel's words and `host.hostname` applies at once;
/// `exec.jail_user` runs the process that starts the container as that user (execs keep theirs);
/// a user's process has its primary group among its groups, as initgroups(3) sets them; and
/// `mount.nodevfs` leaves the container with its dataset's own (empty) `/dev`.
#[test]
fn jail_parameters_mean_what_they_mean_in_the_reference() {
    require!(host_tests());
    let py = require!(python_klee());
    let daemon = Daemon::with_base();
    let py_run = |args: &[&str]| python_ok(&python(&py, &daemon, &[&["run"], args].concat()));
    let has_line = |said: &str, line: &str| said.lines().any(|l| l.trim() == line);

    py_run(&["-d", "--name", "upd", "base", "/bin/sleep", "600"]);
    let said = text(&python(
        &py,
        &daemon,
        &["container", "update", "-J", "vnet", "upd"],
    ));
    assert!(
        said.contains(
            "an error ocurred while updating the container: vnet cannot be changed after creation"
        ),
        "{said}"
    );
    let params = inspect(&daemon, "upd")["container"]["jail_param"].clone();
    assert!(!params.to_string().contains("vnet"), "not saved: {params}");
    python_ok(&python(
        &py,
        &daemon,
        &[
            "container",
            "update",
            "-J",
            "host.hostname=testing.local",
            "upd",
        ],
    ));
    let said = python_ok(&python(&py, &daemon, &["exec", "upd", "/bin/hostname"]));
    assert!(has_line(&said, "testing.local"), "{said}");
    python_ok(&python(&py, &daemon, &["container", "stop", "upd"]));

    let said = py_run(&[
        "-J",
        "exec.jail_user=nobody",
        "--user",
        "root",
        "base",
        "/bin/sh",
        "-c",
        "id -un",
    ]);
    assert!(has_line(&said, "nobody"), "{said}");
    py_run(&[
        "-d",
        "--name",
        "ju",
        "-J",
        "exec.jail_user=nobody",
        "base",
        "/bin/sleep",
        "600",
    ]);
    let said = python_ok(&python(
        &py,
        &daemon,
        &["exec", "ju", "/bin/sh", "-c", "id -un"],
    ));
    assert!(
        has_line(&said, "root"),
        "an exec keeps its own user: {said}"
    );
    python_ok(&python(&py, &daemon, &["container", "stop", "ju"]));

    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM base\nRUN echo staff:x:50:nobody >> /etc/group\n",
    )
    .unwrap();
    ok(&daemon.klee(&["build", "-t", "grp:1", ctx.path().to_str().unwrap()]));
    let said = py_run(&[
        "-u",
        "nobody",
        "grp:1",
        "/bin/sh",
        "-c",
        "grep Groups /proc/self/status",
    ]);
    let mut groups: Vec<&str> = said
        .lines()
        .find_map(|l| l.trim().strip_prefix("Groups:"))
        .unwrap_or_else(|| panic!("{said}"))
        .split_whitespace()
        .collect();
    groups.sort_unstable();
    assert_eq!(groups, ["50", "65534"], "the primary group too: {said}");

    let list_dev = ["/bin/sh", "-c", "echo \"dev:$(ls -A /dev | tr '\\n' ' ')\""];
    let said = py_run(&[&["base"], &list_dev[..]].concat());
    assert!(said.contains("dev:") && said.contains("null"), "{said}");
    let said = py_run(&[&["-J", "mount.nodevfs", "base"], &list_dev[..]].concat());
    assert!(has_line(&said, "dev:"), "{said}");
    let out = daemon.klee(&[
        "run",
        "--rm",
        "-t",
        "-J",
        "mount.nodevfs",
        "base",
        "/bin/true",
    ]);
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(text(&out).contains("mount.nodevfs"), "{}", describe(&out));
    assert_no_runtime_leftovers(&daemon);
}
