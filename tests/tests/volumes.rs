//! Volumes and mounts end to end on this host's runtime, with our klee and the published Python
//! klee: data that outlives containers and a daemon restart, read-only mounts, host directories
//! and files, a new volume filled from the image (an existing one left alone), a volume in use
//! kept, and hostile input — links in the image that point out of it, bad sources and names —
//! refused or contained, leaving nothing behind.

// Test code: a failed setup step should panic where it happens.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use kleene_tests::base::base_archive;
use kleene_tests::clients::{describe, ok_for, python, python_klee, text};
use kleene_tests::daemon::Daemon;
use kleene_tests::host::stray_mounts;
use kleene_tests::pool::zfs_tree;
use kleene_tests::require;
use kleene_tests::skip::host_tests;
use kleene_tests::wait::eventually;

/// `klee args`, asserted to succeed; answers what it printed, stdout then stderr.
fn klee_text(daemon: &Daemon, args: &[&str]) -> String {
    let out = daemon.klee(args);
    ok_for(format_args!("klee {args:?}"), &out);
    text(&out)
}

fn volumes(daemon: &Daemon) -> Vec<String> {
    daemon
        .klee_list(&["--json", "volume", "ls"])
        .iter()
        .map(|v| v["name"].as_str().unwrap().to_owned())
        .collect()
}

fn container_count(daemon: &Daemon) -> usize {
    daemon.klee_list(&["--json", "lsc", "-a"]).len()
}

/// The host path of a volume's dataset.
fn volume_path(daemon: &Daemon, name: &str) -> String {
    daemon.klee_json(&["volume", "inspect", name])["volume"]["mountpoint"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn data_in_a_volume_outlives_its_containers_and_the_daemon_and_read_only_means_read_only() {
    require!(host_tests());
    let mut daemon = Daemon::with_base();
    daemon.klee_ok(&[
        "run",
        "--rm",
        "-m",
        "data:/data",
        "base",
        "/bin/sh",
        "-c",
        "echo x > /data/f",
    ]);
    assert_eq!(volumes(&daemon), ["data"]);
    let out = daemon.klee(&[
        "run",
        "--rm",
        "-m",
        "data:/data:ro",
        "base",
        "/bin/sh",
        "-c",
        "cat /data/f; echo y > /data/g",
    ]);
    let said = text(&out);
    assert!(
        !out.status.success(),
        "writing to a read-only mount: {said}"
    );
    assert!(said.contains("x\n"), "{said}");
    assert!(said.contains("Read-only file system"), "{said}");
    assert!(!Path::new(&volume_path(&daemon, "data")).join("g").exists());

    daemon.restart();
    let out = klee_text(
        &daemon,
        &[
            "run",
            "--rm",
            "-m",
            "data:/srv",
            "base",
            "/bin/cat",
            "/srv/f",
        ],
    );
    assert!(out.contains("x\n"), "{out}");
    assert_eq!(container_count(&daemon), 0);
    assert_eq!(
        stray_mounts(&format!("/{}", daemon.root.name)),
        Vec::<String>::new()
    );
}

#[test]
fn host_directories_and_files_are_mounted_as_asked() {
    require!(host_tests());
    let daemon = Daemon::with_base();
    let host = tempfile::tempdir().unwrap();
    let dir = host.path().join("shared");
    std::fs::create_dir(&dir).unwrap();
    let file = host.path().join("settings.conf");
    std::fs::write(&file, "mode=test\n").unwrap();
    let (dir_s, file_s) = (dir.display().to_string(), file.display().to_string());

    // A directory, read-write, at a destination the image does not have; a file, read-only.
    let out = daemon.klee(&[
        "run",
        "--rm",
        "-m",
        &format!("{dir_s}:/mnt/shared"),
        "-m",
        &format!("{file_s}:/etc/app.conf:ro"),
        "base",
        "/bin/sh",
        "-c",
        "echo from-container > /mnt/shared/out; cat /etc/app.conf; echo no > /etc/app.conf",
    ]);
    let said = text(&out);
    assert!(said.contains("mode=test"), "{said}");
    assert!(said.contains("Read-only file system"), "{said}");
    assert_eq!(
        std::fs::read_to_string(dir.join("out")).unwrap(),
        "from-container\n"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "mode=test\n");
    // Host mounts make no volume.
    assert_eq!(volumes(&daemon), Vec::<String>::new());
}

#[test]
fn a_new_volume_gets_the_images_files_and_an_existing_one_keeps_its_own() {
    require!(host_tests());
    let daemon = Daemon::with_base();
    let out = klee_text(
        &daemon,
        &[
            "run",
            "--rm",
            "-m",
            "etc:/etc",
            "base",
            "/bin/cat",
            "/etc/passwd",
        ],
    );
    assert!(out.contains("root:"), "the image's /etc/passwd: {out}");
    let etc = volume_path(&daemon, "etc");
    assert!(Path::new(&etc).join("passwd").is_file());
    assert!(Path::new(&etc).join("group").is_file());

    daemon.klee_ok(&["volume", "create", "mine"]);
    let mine = volume_path(&daemon, "mine");
    std::fs::write(Path::new(&mine).join("note"), "kept\n").unwrap();
    let out = klee_text(
        &daemon,
        &["run", "--rm", "-m", "mine:/etc", "base", "/bin/ls", "/etc"],
    );
    assert_eq!(
        out.trim(),
        "note",
        "an existing volume is not filled: {out}"
    );
    assert_eq!(
        std::fs::read_dir(&mine).unwrap().count(),
        1,
        "nothing copied into a volume that existed"
    );
}

#[test]
fn a_volume_in_use_by_a_running_container_is_kept() {
    require!(host_tests());
    let daemon = Daemon::with_base();
    daemon.run_detached(
        "holder",
        &[
            "-m",
            "busy:/data",
            "base",
            "/bin/sh",
            "-c",
            "echo kept > /data/f; sleep 60",
        ],
    );
    // Wait for the write (the read below says whether it came).
    let path = volume_path(&daemon, "busy");
    let _written = eventually(Duration::from_secs(10), || {
        Path::new(&path).join("f").exists()
    });
    let out = daemon.klee(&["volume", "rm", "busy"]);
    let said = text(&out);
    assert!(said.contains("in use by running container"), "{said}");
    assert_eq!(
        std::fs::read_to_string(Path::new(&path).join("f")).unwrap(),
        "kept\n"
    );
    daemon.klee_ok(&["volume", "prune", "-f"]);
    assert_eq!(volumes(&daemon), ["busy"]);

    daemon.klee_ok(&["stop", "holder"]);
    daemon.klee_ok(&["volume", "rm", "busy"]);
    assert_eq!(volumes(&daemon), Vec::<String>::new());
    // The container stays, without its mount.
    let inspect = daemon.klee_json(&["isc", "holder"]);
    assert_eq!(inspect["container_mountpoints"], serde_json::json!([]));
    daemon.klee_ok(&["rm", "holder"]);
}

/// An image whose root has links pointing out of it: `/escape` climbs with `..`, `/abs` names a
/// host directory, `/etc-link` names `/etc`.
fn hostile_image(daemon: &Daemon, host_dir: &Path) {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let status = Command::new("tar")
        .arg("-xf")
        .arg(base_archive())
        .arg("-C")
        .arg(&root)
        .status()
        .unwrap();
    assert!(status.success());
    let climb = format!("../../../../../../../../../..{}", host_dir.display());
    std::os::unix::fs::symlink(&climb, root.join("escape")).unwrap();
    std::os::unix::fs::symlink(host_dir, root.join("abs")).unwrap();
    std::os::unix::fs::symlink("/etc", root.join("etc-link")).unwrap();
    let archive = work.path().join("hostile.tar");
    let status = Command::new("tar")
        .arg("-cf")
        .arg(&archive)
        .arg("-C")
        .arg(&root)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
    daemon.klee_ok(&[
        "image",
        "create",
        "fetch",
        &format!("file://{}", archive.display()),
        "-t",
        "hostile",
        "--no-dns",
        "--no-localtime",
    ]);
}

#[test]
fn links_in_an_image_never_take_a_mount_out_of_the_container() {
    require!(host_tests());
    let daemon = Daemon::start();
    let host = tempfile::tempdir().unwrap();
    let target = host.path().join("target");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("secret"), "host\n").unwrap();
    hostile_image(&daemon, &target);
    let shared = host.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::write(shared.join("from-host"), "shared\n").unwrap();
    let shared_s = shared.display().to_string();

    for destination in ["/escape", "/abs", "/escape/deeper", "/abs/sub"] {
        let out = daemon.klee(&[
            "run",
            "--rm",
            "-m",
            &format!("vol:{destination}"),
            "-m",
            &format!("{shared_s}:{destination}-host"),
            "hostile",
            "/bin/sh",
            "-c",
            &format!("echo pwned > {destination}/pwned; ls {destination}-host"),
        ]);
        ok_for(destination, &out);
        let said = text(&out);
        // The host mount is seen inside the container, where the container's links lead.
        assert!(said.contains("from-host"), "{destination}: {said}");
    }
    // The volume got the writes; the host directory the links name is untouched.
    assert_eq!(
        std::fs::read_dir(&target)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect::<Vec<_>>(),
        ["secret"]
    );
    assert_eq!(
        std::fs::read_to_string(target.join("secret")).unwrap(),
        "host\n"
    );
    assert!(Path::new(&volume_path(&daemon, "vol"))
        .join("pwned")
        .is_file());
    assert_eq!(
        stray_mounts(&host.path().display().to_string()),
        Vec::<String>::new(),
        "no mount on the host's directories"
    );

    // A new volume at a link to /etc gets the image's /etc, never the host's.
    daemon.klee_ok(&[
        "run",
        "--rm",
        "-m",
        "etcvol:/etc-link",
        "hostile",
        "/bin/true",
    ]);
    let etc = volume_path(&daemon, "etcvol");
    let passwd = std::fs::read_to_string(Path::new(&etc).join("passwd")).unwrap();
    let host_passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    assert_ne!(passwd, host_passwd, "the image's passwd, not the host's");
    assert!(
        !Path::new(&etc).join("shadow").exists(),
        "nothing of the host's /etc"
    );
}

#[test]
fn bad_mounts_and_names_are_refused_and_leave_nothing() {
    require!(host_tests());
    let daemon = Daemon::with_base();
    let before = zfs_tree(&daemon.root.name);
    let long = "v".repeat(300);
    // Our klee refuses some forms itself; the Python client sends everything, so the daemon's
    // own refusals are seen through it.
    let py = python_klee();
    for (mount, words) in [
        ("../x:/data", "invalid volume name '../x'"),
        (&*format!("{long}:/data"), "at most 255 bytes"),
        (
            "/nonexistent/kleene-test-dir:/data",
            "error ocurred while determining source type: :enoent",
        ),
        ("data:relative", "is not an absolute path"),
    ] {
        let out = daemon.klee(&["create", "-m", mount, "base", "/bin/true"]);
        assert!(!out.status.success(), "{mount}: {}", describe(&out));
        if let Some(py) = &py {
            let out = python(
                py,
                &daemon,
                &["container", "create", "-m", mount, "base", "/bin/true"],
            );
            let said = text(&out);
            // The client wraps long lines.
            let flat = said.split_whitespace().collect::<Vec<_>>().join(" ");
            assert!(flat.contains(words), "{mount}: {said}");
            assert!(!said.contains("Traceback"), "{mount}: {said}");
        }
    }
    for name in ["../x", "a/b", long.as_str(), ".hidden"] {
        let out = daemon.klee(&["volume", "create", name]);
        assert!(!out.status.success(), "{name}: {}", describe(&out));
        assert!(
            text(&out).contains("invalid volume name"),
            "{}",
            describe(&out)
        );
    }
    assert_eq!(container_count(&daemon), 0);
    assert_eq!(volumes(&daemon), Vec::<String>::new());
    assert_eq!(zfs_tree(&daemon.root.name), before, "no dataset made");
}

#[test]
fn the_python_client_manages_volumes_and_mounts_them() {
    require!(host_tests());
    let py = require!(python_klee());
    let daemon = Daemon::with_base();
    let run = |args: &[&str]| {
        let out = python(&py, &daemon, args);
        let said = text(&out);
        assert!(!said.contains("Traceback"), "{args:?}: {said}");
        (out.status.success(), said)
    };
    let (done, said) = run(&["volume", "create", "pyvol"]);
    assert!(done && said.contains("pyvol"), "{said}");
    let (_, said) = run(&["volume", "ls"]);
    assert!(said.contains("pyvol"), "{said}");
    let (done, said) = run(&[
        "run",
        "-m",
        "pyvol:/data",
        "base",
        "/bin/sh",
        "-c",
        "echo py > /data/f",
    ]);
    assert!(done, "{said}");
    let (_, said) = run(&["volume", "inspect", "pyvol"]);
    assert!(said.contains("/data"), "{said}");
    assert_eq!(
        std::fs::read_to_string(Path::new(&volume_path(&daemon, "pyvol")).join("f")).unwrap(),
        "py\n"
    );
    run(&["container", "prune", "-f"]);
    run(&["volume", "create", "unused"]);
    let (_, said) = run(&["volume", "prune", "-f"]);
    assert!(said.contains("pyvol") && said.contains("unused"), "{said}");
    let (_, said) = run(&["volume", "ls"]);
    assert!(!said.contains("pyvol"), "{said}");
    run(&["volume", "create", "gone"]);
    let (_, said) = run(&["volume", "rm", "gone"]);
    assert!(said.contains("gone"), "{said}");
    assert_eq!(volumes(&daemon), Vec::<String>::new());
}
