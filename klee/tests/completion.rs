//! `klee completion bash` as bash itself uses it: the script is sourced in a non-interactive bash,
//! the words of a half-typed command line are set as bash's completion would set them, the
//! function the script registered for `klee` is called, and its answer (COMPREPLY) is checked.
//! bash is needed: without it the test fails rather than passes unseen.

use std::process::Command;

/// The candidates bash's completion offers for `words`, the last one being the word under the
/// cursor.
fn complete(words: &[&str]) -> Vec<String> {
    let klee = env!("CARGO_BIN_EXE_klee");
    let script = Command::new(klee)
        .args(["completion", "bash"])
        .output()
        .expect("klee runs");
    assert!(
        script.status.success(),
        "klee completion bash failed: {script:?}"
    );
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("klee.bash");
    std::fs::write(&path, &script.stdout).expect("script written");

    // The function is found as bash knows it (`complete -p klee`), not by its name in the script.
    let driver = r#"
        source "$1"; shift
        function=$(complete -p klee | sed -n 's/.*-F \([^ ]*\) .*/\1/p')
        [ -n "$function" ] || { echo "no completion registered for klee" >&2; exit 3; }
        COMP_WORDS=("$@")
        COMP_CWORD=$(($# - 1))
        COMP_LINE="$*"
        COMP_POINT=${#COMP_LINE}
        previous=""
        [ "$COMP_CWORD" -gt 0 ] && previous=${COMP_WORDS[COMP_CWORD-1]}
        "$function" klee "${COMP_WORDS[COMP_CWORD]}" "$previous"
        printf '%s\n' "${COMPREPLY[@]}"
    "#;
    let out = Command::new("bash")
        .args(["--noprofile", "--norc", "-c", driver, "bash"])
        .arg(&path)
        .args(words)
        .output()
        .expect("bash is needed for this test (apt-get install bash)");
    assert!(
        out.status.success(),
        "bash failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut candidates: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    candidates.sort();
    candidates
}

#[test]
fn bash_completes_con_to_container() {
    assert_eq!(complete(&["klee", "con"]), ["container"]);
}

#[test]
fn bash_completes_subcommands_aliases_and_options() {
    assert_eq!(
        complete(&["klee", "container", "r"]),
        ["rename", "restart", "rm", "run"]
    );
    assert_eq!(complete(&["klee", "p"]), ["ps"]);
    assert_eq!(complete(&["klee", "completion", "f"]), ["fish"]);
    assert!(complete(&["klee", "network", "create", "--sub"]).contains(&"--subnet6".to_owned()));
    let volume: Vec<String> = complete(&["klee", "volume", ""])
        .into_iter()
        .filter(|word| !word.starts_with('-'))
        .collect();
    assert_eq!(
        volume,
        ["create", "help", "inspect", "list", "ls", "prune", "rm"]
    );
    assert!(complete(&["klee", "run", "--mo"]).contains(&"--mount".to_owned()));
    assert!(complete(&["klee", "volume", "create", "--"]).contains(&"--size".to_owned()));
}

#[test]
fn bash_completes_build_and_its_options() {
    assert_eq!(complete(&["klee", "b"]), ["build"]);
    assert_eq!(complete(&["klee", "image", "b"]), ["build"]);
    assert_eq!(complete(&["klee", "build", "--build"]), ["--build-arg"]);
    assert_eq!(
        complete(&["klee", "image", "build", "--no-"]),
        ["--no-cache", "--no-rm"]
    );
    assert!(complete(&["klee", "build", "--j"]).contains(&"--jailparam".to_owned()));
}
