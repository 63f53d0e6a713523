//! `kleened init [--dry-run]`: prepares a FreeBSD host for kleened. Loads the kernel modules
//! containers need (zfs, pf, pflog, if_bridge, if_epair) and makes them and the services load at
//! boot (loader.conf, rc.conf through sysrc), asks for resource accounting (racct, for rctl), and
//! creates the root dataset with its image, container and volume parents, and installs the pf.conf
//! template kleened renders its firewall rules into.
//!
//! Every step looks first and changes only what is missing, so running it again changes nothing.
//! With `--dry-run` the looks still run (they change nothing) and each change is printed instead of
//! run. Every command line is built by a pure function, pinned by a golden test below.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::sync::Arc;

use kleene_runner::{CommandSpec, Runner};
use zfs::Zfs;

use crate::engine::Layout;

/// Kernel modules kleened uses: ZFS, the pf firewall and its log device, bridges and epairs.
pub const MODULES: [&str; 5] = ["zfs", "pf", "pflog", "if_bridge", "if_epair"];

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

/// The pf.conf template kleened ships (`example/pf.conf.kleene`).
pub const PF_TEMPLATE: &str = include_str!("../../example/pf.conf.kleene");

/// What a pf.conf template must contain, in the order pf needs the rules.
pub const PF_PLACEHOLDERS: [&str; 3] = [
    "<%= kleene_macros %>",
    "<%= kleene_translation %>",
    "<%= kleene_filtering %>",
];

/// kldstat(8): `-q` quiet, `-m` a module; the exit status says whether it is loaded.
pub fn kldstat(module: &str) -> CommandSpec {
    CommandSpec::new("/sbin/kldstat").args(["-q", "-m", module].map(str::to_owned))
}

/// kldload(8): load a module.
pub fn kldload(module: &str) -> CommandSpec {
    CommandSpec::new("/sbin/kldload").arg(module)
}

/// sysrc(8): `-n` value only, `-f` the file.
pub fn sysrc_get(file: &str, name: &str) -> CommandSpec {
    CommandSpec::new("/usr/sbin/sysrc").args(["-n", "-f", file, name].map(str::to_owned))
}

/// sysrc(8): set `name=value` in the file.
pub fn sysrc_set(file: &str, name: &str, value: &str) -> CommandSpec {
    CommandSpec::new("/usr/sbin/sysrc").args([
        "-f".to_owned(),
        file.to_owned(),
        format!("{name}={value}"),
    ])
}

/// Installs the shipped pf.conf template at `path` when nothing is there; an existing file is
/// kept, and must have the placeholders.
fn pf_template(path: &Path, dry_run: bool, say: &mut dyn FnMut(String)) -> bool {
    let shown = path.display();
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let missing: Vec<&str> = PF_PLACEHOLDERS
                .into_iter()
                .filter(|p| !text.contains(p))
                .collect();
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
                .and_then(|mut file| file.write_all(PF_TEMPLATE.as_bytes()));
            if let Err(err) = written {
                say(format!("  failed: {err}"));
                let _ = std::fs::remove_file(path);
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

/// Runs the initialisation, printing what it looks at and does; answers whether every step worked.
/// `pf_template_path` is where the configuration wants the pf.conf template.
pub fn run(
    runner: Arc<dyn Runner>,
    zfs: &Zfs,
    layout: &Layout,
    pf_template_path: Option<&Path>,
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
    let racct = runner
        .run(&sysrc_get("/boot/loader.conf", "kern.racct.enable"))
        .ok()
        .filter(|o| o.succeeded())
        .map(|o| o.stdout_text().trim().to_owned());
    say(format!(
        "/boot/loader.conf kern.racct.enable: {}",
        racct.as_deref().unwrap_or("unset")
    ));
    if racct.as_deref() != Some("1") {
        if change(
            sysrc_set("/boot/loader.conf", "kern.racct.enable", "1"),
            &mut say,
        ) {
            say("  resource limits (rctl) need a reboot to take effect".to_owned());
        } else {
            ok = false;
        }
    }
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
    match pf_template_path {
        Some(path) => ok &= pf_template(path, dry_run, &mut say),
        None => say("pf template: pf_config_template_path is not configured".to_owned()),
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use kleene_runner::RecordingRunner;

    fn setup() -> (Arc<RecordingRunner>, Zfs, Layout) {
        let runner = Arc::new(RecordingRunner::new());
        let zfs = Zfs::new(runner.clone())
            .with_programs(zfs::ZfsPrograms::freebsd())
            .with_retry(zfs::RetryPolicy::none());
        (runner, zfs, Layout::new("zroot/kleene").unwrap())
    }

    /// A host where nothing is set up: modules missing, variables unset, no datasets.
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
        runner.push_err(1, "sysrc: unknown variable\n");
        if changes_too {
            runner.push_ok("");
        }
        for _ in 0..4 {
            runner.push_err(1, "cannot open 'zroot/kleene': dataset does not exist\n");
            if changes_too {
                runner.push_ok("");
            }
        }
    }

    #[test]
    fn dry_run_only_looks_and_prints_the_changes() {
        let (runner, zfs, layout) = setup();
        nothing_set_up(&runner, false);
        let dir = tempfile::tempdir().unwrap();
        let template = dir.path().join("etc/kleened/pf.conf.kleene");
        let mut out = Vec::new();
        assert!(run(
            runner.clone(),
            &zfs,
            &layout,
            Some(&template),
            true,
            &mut out
        ));
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains(&format!(
                "  would install the shipped template at {}",
                template.display()
            )),
            "{text}"
        );
        assert!(!template.exists());
        assert!(
            text.contains("  would run: /sbin/kldload if_epair"),
            "{text}"
        );
        assert!(
            text.contains("  would run: /usr/sbin/sysrc -f /boot/loader.conf kern.racct.enable=1"),
            "{text}"
        );
        assert!(
            text.contains("  would run: /sbin/zfs create zroot/kleene/volumes"),
            "{text}"
        );
        // Only the looks ran: kldstat, sysrc -n and zfs list.
        assert!(
            runner
                .lines()
                .iter()
                .all(|l| l.contains("kldstat") || l.contains("sysrc -n") || l.contains(" list ")),
            "{:?}",
            runner.lines()
        );
    }

    #[test]
    fn init_changes_what_is_missing_and_nothing_else() {
        let (runner, zfs, layout) = setup();
        nothing_set_up(&runner, true);
        let dir = tempfile::tempdir().unwrap();
        let template = dir.path().join("etc/kleened/pf.conf.kleene");
        let mut out = Vec::new();
        assert!(run(
            runner.clone(),
            &zfs,
            &layout,
            Some(&template),
            false,
            &mut out
        ));
        assert_eq!(std::fs::read_to_string(&template).unwrap(), PF_TEMPLATE);
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&template).unwrap().permissions().mode() & 0o777,
            0o644
        );
        let lines = runner.lines();
        assert!(lines.contains(&"/sbin/kldload zfs".to_owned()));
        assert!(lines.contains(&"/usr/sbin/sysrc -f /etc/rc.conf pflog_enable=YES".to_owned()));
        assert!(lines.contains(&"/sbin/zfs create zroot/kleene".to_owned()));

        // Everything in place: only looks.
        let (runner, zfs, layout) = setup();
        for _ in MODULES {
            runner.push_ok("");
        }
        for _ in RC_VARIABLES {
            runner.push_ok("YES\n");
        }
        runner.push_ok("1\n");
        for _ in 0..4 {
            runner.push_ok("zroot/kleene\n");
        }
        // The installed template is kept, even when the user has changed it.
        let edited = format!("pass in quick on lo0\n{PF_TEMPLATE}");
        std::fs::write(&template, &edited).unwrap();
        let mut out = Vec::new();
        assert!(run(
            runner.clone(),
            &zfs,
            &layout,
            Some(&template),
            false,
            &mut out
        ));
        assert!(runner
            .lines()
            .iter()
            .all(|l| !l.contains("kldload") && !l.contains("=YES") && !l.contains("create")));
        assert_eq!(std::fs::read_to_string(&template).unwrap(), edited);
    }

    #[test]
    fn the_shipped_pf_template_has_every_placeholder_in_order() {
        let at: Vec<usize> = PF_PLACEHOLDERS
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
