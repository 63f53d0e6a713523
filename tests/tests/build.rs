//! Image builds end to end on this host's runtime, with the published Python klee and our klee:
//! a Dockerfile using ARG before FROM, ENV, WORKDIR, USER, COPY (file, directory, glob) and RUN;
//! containers from the image and from one of its snapshots; failing builds with and without
//! cleanup; the build cache (a rebuild with nothing changed runs nothing, a changed file rebuilds
//! from its COPY on); and substitutions that would run something on the host in the reference,
//! which must not here.

// Test code: a failed setup step should panic where it happens.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Output;

use kleene_tests::clients::{describe, ok, ok_for, python, python_klee, python_ok, text};
use kleene_tests::daemon::Daemon;
use kleene_tests::pool::{settled_tree, zfs_tree};
use kleene_tests::require;
use kleene_tests::skip::host_tests;

fn images(daemon: &Daemon) -> Vec<serde_json::Value> {
    daemon.klee_list(&["--json", "lsi"])
}

fn containers(daemon: &Daemon) -> Vec<serde_json::Value> {
    daemon.klee_list(&["--json", "lsc", "-a"])
}

/// A build context with `test.txt` (`lol`), `test2.txt` (`lel`), `dir/inner.txt` and the
/// Dockerfile given.
fn context(dockerfile: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("test.txt"), "lol\n").unwrap();
    std::fs::write(dir.path().join("test2.txt"), "lel\n").unwrap();
    std::fs::create_dir(dir.path().join("dir")).unwrap();
    std::fs::write(dir.path().join("dir/inner.txt"), "inner\n").unwrap();
    std::fs::write(dir.path().join("Dockerfile"), dockerfile).unwrap();
    dir
}

/// `klee build` with the Python client `py`; answers its output.
fn py_build(py: &Path, daemon: &Daemon, args: &[&str]) -> Output {
    let mut all = vec!["build"];
    all.extend(args);
    python(py, daemon, &all)
}

fn image_id_of(daemon: &Daemon, name: &str, tag: &str) -> Option<String> {
    images(daemon)
        .iter()
        .find(|i| i["name"] == name && i["tag"] == tag)
        .map(|i| i["id"].as_str().unwrap().to_owned())
}

const FULL: &str = "ARG BASE=base
FROM ${BASE:-nothing}
ARG GREETING=hello
ENV APP_HOME=/srv/app
ENV MODE=\"${GREETING} world\"
WORKDIR /srv
WORKDIR app
COPY test.txt .
COPY *.txt /etc/texts/
COPY dir /srv/dir
RUN echo \"$MODE\" > /srv/app/mode && pwd > /srv/app/pwd
USER nobody
RUN id -un
CMD cat /srv/app/mode
";
#[test]
fn a_dockerfile_builds_an_image_whose_containers_see_its_files_env_user_and_cmd() {
    require!(host_tests());
    let py = require!(python_klee());
    let daemon = Daemon::with_base();
    let ctx = context(FULL);
    let out = py_build(
        &py,
        &daemon,
        &[
            "-t",
            "app:1",
            "--build-arg",
            "GREETING=hi",
            &ctx.path().display().to_string(),
        ],
    );
    ok(&out);
    let said = text(&out);
    for expected in [
        "Step 1/14 : ARG BASE=base",
        "Step 2/14 : FROM ${BASE:-nothing}",
        "nobody\n",
        "--> Snapshot created: @",
        "image created",
    ] {
        assert!(said.contains(expected), "{expected}: {said}");
    }
    let id = image_id_of(&daemon, "app", "1").expect("the image");
    let out = daemon.klee(&["run", "--rm", "app:1"]);
    assert_eq!(text(&out), "hi world\n", "{}", describe(&out));
    let check = |cmd: &str| {
        let out = daemon.klee(&["run", "--rm", "-u", "root", "app:1", "/bin/sh", "-c", cmd]);
        ok_for(cmd, &out);
        text(&out)
    };
    assert_eq!(check("cat /srv/app/pwd"), "/srv/app\n");
    assert_eq!(
        check("cat /srv/app/test.txt /etc/texts/test2.txt /srv/dir/inner.txt"),
        "lol\nlel\ninner\n"
    );
    assert_eq!(check("ls /etc/texts"), "test.txt\ntest2.txt\n");
    assert_eq!(check("echo $APP_HOME $MODE"), "/srv/app hi world\n");
    assert_eq!(
        check("test -e /kleene_temporary_context_store && echo left || echo gone"),
        "gone\n"
    );
    let out = daemon.klee(&["run", "--rm", "app:1", "id", "-un"]);
    assert_eq!(
        text(&out),
        "nobody\n",
        "the image's user: {}",
        describe(&out)
    );

    // The instructions, with the snapshots of RUN and COPY; a container from one of them.
    let image = daemon.klee_json(&["isi", &id]);
    let instructions = image["instructions"].as_array().unwrap();
    assert_eq!(instructions.len(), 14);
    let snapshot_of = |text: &str| {
        instructions
            .iter()
            .find(|i| i[0] == text)
            .unwrap_or_else(|| panic!("{text}: {instructions:?}"))[1]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(snapshot_of("WORKDIR /srv"), "");
    let after_first_copy = snapshot_of("COPY test.txt .");
    assert!(after_first_copy.starts_with('@'), "{after_first_copy}");
    let out = daemon.klee(&[
        "run",
        "--rm",
        &format!("app:1{after_first_copy}"),
        "/bin/sh",
        "-c",
        "cat /srv/app/test.txt; ls /etc/texts 2>&1 || true",
    ]);
    let said = text(&out);
    assert!(said.starts_with("lol\n"), "{said}");
    assert!(said.contains("No such file"), "not yet copied then: {said}");
    assert!(containers(&daemon).is_empty(), "no build container left");
}

#[test]
fn a_failing_run_removes_everything_or_keeps_a_failed_image() {
    require!(host_tests());
    let py = require!(python_klee());
    let daemon = Daemon::with_base();
    let before = images(&daemon).len();
    let datasets = zfs_tree(&daemon.root.name);
    let ctx = context("FROM base\nCOPY test.txt /etc/\nRUN ls notexist\nRUN echo never\n");
    let path = ctx.path().display().to_string();
    let out = py_build(&py, &daemon, &["--rm", "-t", "broken:1", &path]);
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("The command '/bin/sh -c ls notexist' returned a non-zero code: 1"),
        "{said}"
    );
    assert_eq!(images(&daemon).len(), before);
    assert!(containers(&daemon).is_empty());
    assert_eq!(
        settled_tree(&daemon.root.name, &datasets),
        datasets,
        "a cleaned-up build leaves no dataset"
    );

    // Without --rm (the Python client's default): kept as broken:failed with the COPY snapshot.
    let out = py_build(&py, &daemon, &["-t", "broken:1", &path]);
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("Most recent snapshot is @"), "{said}");
    let id = image_id_of(&daemon, "broken", "failed").expect("the failed image");
    let snapshot = said
        .split("Most recent snapshot is ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let out = daemon.klee(&[
        "run",
        "--rm",
        &format!("{id}{snapshot}"),
        "cat",
        "/etc/test.txt",
    ]);
    assert_eq!(text(&out), "lol\n", "{}", describe(&out));
    assert!(containers(&daemon).is_empty());

    // A FROM that names nothing: nothing is made, nothing kept.
    let ctx = context("FROM nonexisting\nRUN true\n");
    let out = py_build(&py, &daemon, &[&ctx.path().display().to_string()]);
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("error: could not find image nonexisting"),
        "{said}"
    );
    // A Dockerfile that does not parse.
    let ctx = context("FROM base\n  \"this line lacks its backslash\"\n");
    let out = py_build(&py, &daemon, &[&ctx.path().display().to_string()]);
    assert!(
        text(&out).contains("invalid instruction"),
        "{}",
        describe(&out)
    );
    assert!(containers(&daemon).is_empty());
}

/// A Dockerfile whose steps take a moment each, to time against its cached rebuild.
const SLOW: &str = "FROM base
COPY test.txt /data/
RUN sleep 0.3 && echo one > /data/one
COPY dir /data/dir
RUN sleep 0.3 && cat /data/dir/inner.txt > /data/two
CMD cat /data/two
";

#[test]
fn a_rebuild_reuses_every_unchanged_step_and_a_changed_file_rebuilds_from_its_copy() {
    require!(host_tests());
    let py = require!(python_klee());
    let daemon = Daemon::with_base();
    let ctx = context(SLOW);
    let path = ctx.path().display().to_string();
    let started = std::time::Instant::now();
    let out = py_build(&py, &daemon, &["-t", "slow:1", &path]);
    let first = started.elapsed();
    ok(&out);
    assert!(!text(&out).contains("Using cache"), "{}", describe(&out));

    let started = std::time::Instant::now();
    let out = py_build(&py, &daemon, &["-t", "slow:2", &path]);
    let second = started.elapsed();
    ok(&out);
    let said = text(&out);
    assert_eq!(said.matches("--> Using cache @").count(), 4, "{said}");
    assert!(!said.contains("Snapshot created"), "{said}");
    println!("first build {first:?}, cached rebuild {second:?}");
    let out = daemon.klee(&["run", "--rm", "slow:2"]);
    assert_eq!(text(&out), "inner\n", "{}", describe(&out));

    // A changed file in the directory copied by the second COPY: the first two steps come from
    // the cache, the rest runs.
    std::fs::write(ctx.path().join("dir/inner.txt"), "changed\n").unwrap();
    let out = py_build(&py, &daemon, &["-t", "slow:3", &path]);
    ok(&out);
    let said = text(&out);
    assert_eq!(said.matches("--> Using cache @").count(), 2, "{said}");
    assert_eq!(said.matches("--> Snapshot created: @").count(), 2, "{said}");
    let out = daemon.klee(&["run", "--rm", "slow:3"]);
    assert_eq!(text(&out), "changed\n", "{}", describe(&out));
    // The older images still run as they were built.
    let out = daemon.klee(&["run", "--rm", "slow:1"]);
    assert_eq!(text(&out), "inner\n", "{}", describe(&out));
    // The cache never links images: removed in the order they were built (the reference has no
    // cache, so its users may), each goes, handing the steps the others reuse over to them, and
    // the rest still run.
    python_ok(&python(&py, &daemon, &["image", "rm", "slow:1"]));
    let out = daemon.klee(&["run", "--rm", "slow:2"]);
    assert_eq!(text(&out), "inner\n", "{}", describe(&out));
    let out = daemon.klee(&["run", "--rm", "slow:3"]);
    assert_eq!(text(&out), "changed\n", "{}", describe(&out));
    python_ok(&python(&py, &daemon, &["image", "rm", "slow:2"]));
    assert_eq!(image_id_of(&daemon, "slow", "1"), None);
    assert_eq!(image_id_of(&daemon, "slow", "2"), None);
    // What was handed over is still cached: every step of the next build is reused.
    let out = py_build(&py, &daemon, &["-t", "slow:4", &path]);
    ok(&out);
    let said = text(&out);
    assert_eq!(said.matches("--> Using cache @").count(), 4, "{said}");
    let out = daemon.klee(&["run", "--rm", "slow:4"]);
    assert_eq!(text(&out), "changed\n", "{}", describe(&out));
    daemon.klee_ok(&["image", "prune", "-a", "-f"]);
    assert!(containers(&daemon).is_empty());
    assert!(images(&daemon).is_empty(), "{:?}", images(&daemon));
}

#[test]
fn substitutions_never_run_anything_on_the_host() {
    require!(host_tests());
    let py = require!(python_klee());
    let daemon = Daemon::with_base();
    let marker =
        std::env::temp_dir().join(format!("kleene-pwned-{}", uuid::Uuid::new_v4().simple()));
    let m = marker.display().to_string();
    for line in [
        format!("ENV XX=$(touch {m})"),
        format!("ENV XX=`touch {m}`"),
        format!("USER $(touch {m})"),
        format!("COPY $(touch {m}) /tmp/"),
        format!("ENV XX=\"$(touch {m})\""),
        format!("ENV XX=${{Y:-$(touch {m})}}"),
        format!("ENV XX=a;touch {m}"),
    ] {
        let ctx = context(&format!("FROM base\n{line}\nRUN true\n"));
        let out = py_build(&py, &daemon, &[&ctx.path().display().to_string()]);
        let said = text(&out);
        assert!(!out.status.success(), "{line}: {said}");
        assert!(
            said.contains(&format!("failed environment substition of: {line}")),
            "{line}: {said}"
        );
        assert!(!Path::new(&marker).exists(), "{line} ran on the host");
    }
    let ctx = context(&format!("FROM $(touch {m})\n"));
    let out = py_build(&py, &daemon, &[&ctx.path().display().to_string()]);
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(!Path::new(&marker).exists(), "FROM ran on the host");
    assert!(containers(&daemon).is_empty());
}

/// The build's frames are the reference's: status lines (`Step`, `Snapshot created`) come without
/// a line end, which the published client adds, so its output is the build line by line with no
/// blank line between steps; an error line is the reference's words. Our klee prints the same
/// lines.
#[test]
fn a_build_prints_line_by_line_through_both_clients_as_the_reference_frames_it() {
    require!(host_tests());
    let py = require!(python_klee());
    let daemon = Daemon::with_base();
    let ctx = context("FROM base\nRUN echo lol\nCMD /bin/true\n");
    let dir = ctx.path().display().to_string();
    let expected = [
        "Started to build image with ID ",
        "Step 1/3 : FROM base",
        "Step 2/3 : RUN echo lol",
        "lol",
        "--> Snapshot created: @",
        "Step 3/3 : CMD /bin/true",
    ];
    let steps = |said: &str| -> Vec<String> {
        said.lines()
            .take_while(|line| !line.starts_with("image created"))
            .map(str::to_owned)
            .collect()
    };
    for (client, out) in [
        ("python", py_build(&py, &daemon, &["-t", "framed:py", &dir])),
        (
            "klee",
            daemon.klee(&["build", "--no-cache", "-t", "framed:klee", &dir]),
        ),
    ] {
        let said = ok_for(client, &out);
        let mut lines = steps(&said);
        // The published client begins its closing message on a line of its own.
        if client == "python" && lines.last().is_some_and(String::is_empty) {
            lines.pop();
        }
        assert_eq!(lines.len(), expected.len(), "{client}: {said}");
        for (line, start) in lines.iter().zip(expected) {
            assert!(
                line.starts_with(start),
                "{client}: {line:?} for {start:?} in {said}"
            );
        }
    }

    let ctx = context("FROM nonexisting\nRUN true\n");
    let dir = ctx.path().display().to_string();
    for (client, out) in [
        ("python", py_build(&py, &daemon, &[&dir])),
        ("klee", daemon.klee(&["build", &dir])),
    ] {
        assert!(!out.status.success(), "{client}: {}", describe(&out));
        let said = text(&out);
        assert!(
            said.contains("Step 1/2 : FROM nonexisting\nerror: could not find image nonexisting"),
            "{client}: {said}"
        );
        assert!(!said.contains("\n\n\n"), "{client}: {said}");
    }
}
