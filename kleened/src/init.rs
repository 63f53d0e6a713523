//! `kleened init [--dry-run]`: prepares a FreeBSD host for kleened. Loads the kernel modules
//! containers need (zfs, pf, pflog, if_bridge, if_epair) and makes them and the services load at
//! boot (loader.conf, rc.conf through sysrc), asks for resource accounting (racct, for rctl), and
//! creates the root dataset with its image, container and volume parents, and installs the pf.conf
//! template kleened renders its firewall rules into.
//!
//! Every step looks first and changes only what is missing, so running it again changes nothing.
//! With `--dry-run` the looks still run (they change nothing) and each change is printed instead of
//! run. Every command line is built by a pure function, here or in [`crate::platform::freebsd::host`],
//! pinned by a golden test (`kleened/tests/freebsd_commands.rs`).

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::sync::Arc;

use kleene_runner::{CommandSpec, Runner};
use zfs::Zfs;

use crate::layout::Layout;
use crate::platform::freebsd::host::{kldload, kldstat, sysctl_get, sysrc_get, sysrc_set, MODULES};

/// `(file, variable)` pairs that must be `YES`.
pub const RC_VARIABLES: [(&str, &str); 8] = [
    ("/boot/loader.conf", "zfs_load"),
    ("/boot/loader.conf", "pf_load"),
    ("/boot/loader.conf", "pflog_load"),
    ("/boot/loader.conf", "if_bridge_load"),
    ("/boot/loader.conf", "if_epair_load"),
    ("/etc/rc.conf", "zfs_enable"),
    ("/etc/rc.conf", "pf_enable"),
    ("/etc/rc.conf", "pflog_enable"),
];

/// The pf.conf template kleened ships (`example/pf.conf.kleene`); the placeholders it must have
/// are [`pf::pfconf::PLACEHOLDERS`].
pub const PF_TEMPLATE: &str = include_str!("../../example/pf.conf.kleene");

/// Installs the shipped pf.conf template at `path` when nothing is there; an existing file is
/// kept, and must have the placeholders.
fn pf_template(path: &Path, dry_run: bool, say: &mut dyn FnMut(String)) -> bool {
    let shown = path.display();
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let missing = pf::pfconf::missing_placeholders(&text);
            if missing.is_empty() {
                say(format!("pf template {shown}: exists"));
                true
            } else {
                say(format!(
                    "pf template {shown}: lacks {}; kleened cannot put its rules into it",
                    missing.join(", ")
                ));
                false
            }
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            say(format!("pf template {shown}: missing"));
            if dry_run {
                say(format!("  would install the shipped template at {shown}"));
                return true;
            }
            say(format!("  installing the shipped template at {shown}"));
            let written = path
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| {
                    std::fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(0o644)
                        .open(path)
                })
                .and_then(|mut file| {
                    // A template cut short would be worse than none: remove what this made.
                    file.write_all(PF_TEMPLATE.as_bytes()).inspect_err(|_| {
                        let _ = std::fs::remove_file(path);
                    })
                });
            if let Err(err) = written {
                say(format!("  failed: {err}"));
                return false;
            }
            true
        }
        Err(err) => {
            say(format!("pf template {shown}: {err}"));
            false
        }
    }
}

/// The loader tunable that turns on resource accounting, which rctl(8) limits need.
const RACCT: &str = "kern.racct.enable";

/// The value `file` (loader.conf(5) syntax) gives `name`: the last assignment wins, as in the
/// loader. sysrc(8) cannot read or write names with dots, so kleened reads the file itself.
fn loader_value(text: &str, name: &str) -> Option<String> {
    text.lines().rev().find_map(|line| {
        let line = line.split('#').next().unwrap_or_default().trim();
        let (key, value) = line.split_once('=')?;
        (key.trim() == name).then(|| value.trim().trim_matches('"').to_owned())
    })
}

/// Makes loader.conf turn racct on at boot (appending one line when no assignment says 1) and
/// says whether it is on now.
fn racct(
    runner: &dyn Runner,
    loader_conf: &Path,
    dry_run: bool,
    say: &mut dyn FnMut(String),
) -> bool {
    let shown = loader_conf.display();
    let text = match std::fs::read_to_string(loader_conf) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(err) => {
            say(format!("{shown} {RACCT}: {err}"));
            return false;
        }
    };
    let configured = loader_value(&text, RACCT);
    say(format!(
        "{shown} {RACCT}: {}",
        configured.as_deref().unwrap_or("unset")
    ));
    let mut ok = true;
    if configured.as_deref() != Some("1") {
        let line = format!("{RACCT}=\"1\"\n");
        if dry_run {
            say(format!("  would add to {shown}: {}", line.trim_end()));
        } else {
            say(format!("  adding to {shown}: {}", line.trim_end()));
            let separator = if text.is_empty() || text.ends_with('\n') {
                ""
            } else {
                "\n"
            };
            let appended = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(loader_conf)
                .and_then(|mut file| file.write_all(format!("{separator}{line}").as_bytes()));
            if let Err(err) = appended {
                say(format!("  failed: {err}"));
                ok = false;
            }
        }
    }
    let running = runner
        .run(&sysctl_get(RACCT))
        .ok()
        .filter(|o| o.succeeded())
        .map(|o| o.stdout_text().trim().to_owned());
    if running.as_deref() != Some("1") {
        say(
            "  resource accounting is off until the next boot; resource limits (rctl) need it"
                .to_owned(),
        );
    }
    ok
}

/// Host files init reads and changes.
#[derive(Debug, Clone)]
pub struct Files {
    /// loader.conf(5), for the racct tunable.
    pub loader_conf: std::path::PathBuf,
    /// Where the configuration wants the pf.conf template.
    pub pf_template: Option<std::path::PathBuf>,
}

/// Runs the initialisation, printing what it looks at and does; answers whether every step worked.
pub fn run(
    runner: Arc<dyn Runner>,
    zfs: &Zfs,
    layout: &Layout,
    files: &Files,
    dry_run: bool,
    out: &mut dyn std::io::Write,
) -> bool {
    let mut ok = true;
    let mut say = |text: String| {
        let _ = writeln!(out, "{text}");
    };
    let change = |spec: CommandSpec, say: &mut dyn FnMut(String)| -> bool {
        if dry_run {
            say(format!("  would run: {spec}"));
            return true;
        }
        say(format!("  running: {spec}"));
        match runner.run(&spec) {
            Ok(output) if output.succeeded() => true,
            Ok(output) => {
                say(format!("  failed: {}", output.stderr_text()));
                false
            }
            Err(err) => {
                say(format!("  failed: {err}"));
                false
            }
        }
    };
    for module in MODULES {
        let loaded = runner.run(&kldstat(module)).is_ok_and(|o| o.succeeded());
        say(format!(
            "kernel module {module}: {}",
            if loaded { "loaded" } else { "not loaded" }
        ));
        if !loaded {
            ok &= change(kldload(module), &mut say);
        }
    }
    for (file, name) in RC_VARIABLES {
        let value = runner
            .run(&sysrc_get(file, name))
            .ok()
            .filter(|o| o.succeeded())
            .map(|o| o.stdout_text().trim().to_owned());
        say(format!(
            "{file} {name}: {}",
            value.as_deref().unwrap_or("unset")
        ));
        if value.as_deref() != Some("YES") {
            ok &= change(sysrc_set(file, name, "YES"), &mut say);
        }
    }
    ok &= racct(runner.as_ref(), &files.loader_conf, dry_run, &mut say);
    for dataset in [
        &layout.root,
        &layout.images,
        &layout.containers,
        &layout.volumes,
    ] {
        match zfs.exists(dataset) {
            Ok(true) => say(format!("dataset {}: exists", dataset.as_str())),
            Ok(false) => {
                say(format!("dataset {}: missing", dataset.as_str()));
                let spec = zfs.programs().command(&zfs::command::create(dataset, &[]));
                if dry_run {
                    say(format!("  would run: {spec}"));
                } else {
                    say(format!("  running: {spec}"));
                    if let Err(err) = zfs.create(dataset, &[]) {
                        say(format!("  failed: {err}"));
                        ok = false;
                    }
                }
            }
            Err(err) => {
                say(format!("dataset {}: {err}", dataset.as_str()));
                ok = false;
            }
        }
    }
    match &files.pf_template {
        Some(path) => ok &= pf_template(path, dry_run, &mut say),
        None => say("pf template: pf_config_template_path is not configured".to_owned()),
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use kleene_runner::RecordingRunner;

    struct Host {
        runner: Arc<RecordingRunner>,
        zfs: Zfs,
        layout: Layout,
        files: Files,
        _dir: tempfile::TempDir,
    }

    fn host() -> Host {
        let runner = Arc::new(RecordingRunner::new());
        let zfs = Zfs::new(runner.clone())
            .with_programs(zfs::ZfsPrograms::freebsd())
            .with_retry(zfs::RetryPolicy::none());
        let dir = tempfile::tempdir().unwrap();
        let files = Files {
            loader_conf: dir.path().join("boot/loader.conf"),
            pf_template: Some(dir.path().join("etc/kleened/pf.conf.kleene")),
        };
        std::fs::create_dir_all(dir.path().join("boot")).unwrap();
        std::fs::write(&files.loader_conf, "zfs_load=\"YES\"").unwrap();
        Host {
            runner,
            zfs,
            layout: Layout::new("zroot/kleene").unwrap(),
            files,
            _dir: dir,
        }
    }

    impl Host {
        fn init(&self, dry_run: bool) -> (bool, String) {
            let mut out = Vec::new();
            let ok = run(
                self.runner.clone(),
                &self.zfs,
                &self.layout,
                &self.files,
                dry_run,
                &mut out,
            );
            (ok, String::from_utf8(out).unwrap())
        }

        fn template(&self) -> &Path {
            self.files.pf_template.as_deref().unwrap()
        }
    }

    /// A host where nothing is set up: modules missing, variables unset, racct off, no datasets.
    fn nothing_set_up(runner: &RecordingRunner, changes_too: bool) {
        for _ in MODULES {
            runner.push_err(1, "");
            if changes_too {
                runner.push_ok("");
            }
        }
        for _ in RC_VARIABLES {
            runner.push_err(1, "sysrc: unknown variable\n");
            if changes_too {
                runner.push_ok("");
            }
        }
        runner.push_ok("0\n");
        for _ in 0..4 {
            runner.push_err(1, "cannot open 'zroot/kleene': dataset does not exist\n");
            if changes_too {
                runner.push_ok("");
            }
        }
    }

    #[test]
    fn dry_run_only_looks_and_prints_the_changes() {
        let host = host();
        nothing_set_up(&host.runner, false);
        let (ok, text) = host.init(true);
        assert!(ok, "{text}");
        for expected in [
            "  would run: /sbin/kldload -n if_epair".to_owned(),
            "  would run: /usr/sbin/sysrc -f /etc/rc.conf pf_enable=YES".to_owned(),
            format!(
                "  would add to {}: kern.racct.enable=\"1\"",
                host.files.loader_conf.display()
            ),
            "  resource accounting is off until the next boot; resource limits (rctl) need it"
                .to_owned(),
            "  would run: /sbin/zfs create zroot/kleene/volumes".to_owned(),
            format!(
                "  would install the shipped template at {}",
                host.template().display()
            ),
        ] {
            assert!(text.contains(&expected), "{expected:?} in\n{text}");
        }
        assert!(!host.template().exists());
        assert_eq!(
            std::fs::read_to_string(&host.files.loader_conf).unwrap(),
            "zfs_load=\"YES\""
        );
        // Only the looks ran: kldstat, sysrc -n, sysctl -n and zfs list.
        assert!(
            host.runner.lines().iter().all(|l| l.contains("kldstat")
                || l.contains("sysrc -n")
                || l.contains("sysctl -n")
                || l.contains(" list ")),
            "{:?}",
            host.runner.lines()
        );
    }

    #[test]
    fn init_changes_what_is_missing_and_nothing_else() {
        let host = host();
        nothing_set_up(&host.runner, true);
        let (ok, text) = host.init(false);
        assert!(ok, "{text}");
        let lines = host.runner.lines();
        assert!(lines.contains(&"/sbin/kldload -n zfs".to_owned()));
        assert!(lines.contains(&"/usr/sbin/sysrc -f /etc/rc.conf pflog_enable=YES".to_owned()));
        assert!(lines.contains(&"/sbin/zfs create zroot/kleene".to_owned()));
        assert_eq!(
            std::fs::read_to_string(&host.files.loader_conf).unwrap(),
            "zfs_load=\"YES\"\nkern.racct.enable=\"1\"\n"
        );
        assert_eq!(
            std::fs::read_to_string(host.template()).unwrap(),
            PF_TEMPLATE
        );
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(host.template())
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o644
        );

        // Everything in place (and the template edited by its user): only looks.
        let edited = format!("pass in quick on lo0\n{PF_TEMPLATE}");
        std::fs::write(host.template(), &edited).unwrap();
        host.runner.clear_calls();
        for _ in MODULES {
            host.runner.push_ok("");
        }
        for _ in RC_VARIABLES {
            host.runner.push_ok("YES\n");
        }
        host.runner.push_ok("1\n");
        for _ in 0..4 {
            host.runner.push_ok("zroot/kleene\n");
        }
        let (ok, text) = host.init(false);
        assert!(ok, "{text}");
        assert!(!text.contains("rctl"), "{text}");
        assert!(host
            .runner
            .lines()
            .iter()
            .all(|l| !l.contains("kldload") && !l.contains("=YES") && !l.contains("create")));
        assert_eq!(std::fs::read_to_string(host.template()).unwrap(), edited);
        assert_eq!(
            std::fs::read_to_string(&host.files.loader_conf).unwrap(),
            "zfs_load=\"YES\"\nkern.racct.enable=\"1\"\n",
            "the line is added once"
        );
    }

    #[test]
    fn loader_conf_values_follow_the_loader() {
        let text = "# kern.racct.enable=1\nkern.racct.enable=\"0\"\n  kern.racct.enable = \"1\" # on\nother=1\n";
        assert_eq!(loader_value(text, RACCT).as_deref(), Some("1"));
        assert_eq!(
            loader_value("kern.racct.enable=0\n", RACCT).as_deref(),
            Some("0")
        );
        assert_eq!(loader_value("kern.racct.enabled=1\n", RACCT), None);
    }

    #[test]
    fn the_shipped_pf_template_has_every_placeholder_in_order() {
        let at: Vec<usize> = pf::pfconf::PLACEHOLDERS
            .iter()
            .map(|p| PF_TEMPLATE.find(p).unwrap())
            .collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{at:?}");
    }

    #[test]
    fn a_template_without_the_placeholders_fails_init_and_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let template = dir.path().join("pf.conf.kleene");
        std::fs::write(&template, "pass all\n<%= kleene_macros %>\n").unwrap();
        let mut said = vec![];
        assert!(!pf_template(&template, false, &mut |s| said.push(s)));
        assert_eq!(
            said,
            [format!(
                "pf template {}: lacks <%= kleene_translation %>, <%= kleene_filtering %>; \
                 kleened cannot put its rules into it",
                template.display()
            )]
        );
        assert_eq!(
            std::fs::read_to_string(&template).unwrap(),
            "pass all\n<%= kleene_macros %>\n"
        );
    }
}
