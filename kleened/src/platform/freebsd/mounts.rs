//! A container's mounts on the host: each destination resolved inside the container's root
//! ([`mount_node`]) and mounted with mount_nullfs(8) ([`mount_nullfs`]), the `/dev` its jail's devfs
//! needs ([`check_devfs_node`]), and the kernel's mount table (`mount --libxo json`), read whatever
//! its paths hold, which says what is to be unmounted under a root, the deepest first
//! ([`unmount_order`]). The command lines are pinned by the goldens of
//! `kleened/tests/freebsd_commands.rs`.

use std::path::Path;

use kleene_runner::CommandSpec;

use super::JailRuntime;
use crate::platform::inroot;
use crate::platform::runtime::{Mount, ProcessSpec, RuntimeError};

const MOUNT: &str = "/sbin/mount";
const MOUNT_NULLFS: &str = "/sbin/mount_nullfs";
const UMOUNT: &str = "/sbin/umount";

/// mount_nullfs(8): the host directory or file `source` at `node`, a path under a container's
/// root, with `-o` options passed to nmount(2): `ro` (`MNT_RDONLY`) when read-only, and `nosuid`
/// (`MNT_NOSUID`, mount(8)) unless the mount lets setuid files work, so a container cannot leave
/// a setuid-root file for a user of the host. (FreeBSD has device nodes only on devfs, so there
/// is no `nodev` to add.) mount_nullfs resolves both paths with realpath(3) and refuses a source
/// and node of different types.
pub fn mount_nullfs(source: &str, node: &str, read_only: bool, setuid: bool) -> CommandSpec {
    let options: Vec<&str> = [(read_only, "ro"), (!setuid, "nosuid")]
        .into_iter()
        .filter_map(|(on, option)| on.then_some(option))
        .collect();
    let spec = CommandSpec::new(MOUNT_NULLFS);
    let spec = if options.is_empty() {
        spec
    } else {
        spec.args(["-o", &options.join(",")])
    };
    spec.args([source, node])
}

/// mount(8) `--libxo json -t nullfs,devfs`: the nullfs and devfs file systems mounted now, in the
/// order they were mounted. JSON strings hold any path unambiguously, where `mount -p` separates
/// its fields with white space that a path may contain. libxo reads the paths in the encoding of
/// its `LC_CTYPE`, which is set to UTF-8 so that their bytes pass unchanged.
pub fn mount_table() -> CommandSpec {
    CommandSpec::new(MOUNT).env("LC_CTYPE", "C.UTF-8").args([
        "--libxo",
        "json",
        "-t",
        "nullfs,devfs",
    ])
}

/// umount(8) of a path: the latest file system mounted there (umount finds it in the mount
/// table by its node, then unmounts it by its file system ID).
pub fn unmount(path: &str) -> CommandSpec {
    CommandSpec::new(UMOUNT).arg(path)
}

/// A file system in mount(8)'s table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mounted {
    /// Its type: `nullfs`, `devfs`.
    pub fstype: String,
    /// Where it is mounted (the kernel's `f_mntonname`, a path free of links).
    pub node: String,
}

/// The file systems [`mount_table`] printed, in the order they were mounted (mount(8):
/// `{"mount": {"mounted": [{"special", "node", "fstype", "opts"}, ...]}}`). Empty output lists
/// nothing. libxo escapes only `"`, `\` and line ends in a string; any other control character
/// a path holds (a tab) is escaped here before the JSON is read.
pub fn parse_mount_table(text: &str) -> Result<Vec<Mounted>, String> {
    if text.trim().is_empty() {
        return Ok(vec![]);
    }
    let value: serde_json::Value = serde_json::from_str(&escape_controls(text))
        .map_err(|e| format!("cannot read the JSON of {MOUNT}: {e}"))?;
    let Some(table) = value.get("mount") else {
        return Err(format!("{MOUNT} printed no \"mount\" object"));
    };
    let items = match table.get("mounted") {
        // libxo leaves out a list that has no instance.
        None => return Ok(vec![]),
        Some(serde_json::Value::Array(items)) => items,
        Some(other) => return Err(format!("{MOUNT} printed \"mounted\": {other}")),
    };
    items
        .iter()
        .map(|item| {
            let field = |name: &str| {
                item.get(name)
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| format!("{MOUNT} printed a file system without {name}: {item}"))
            };
            Ok(Mounted {
                fstype: field("fstype")?,
                node: field("node")?,
            })
        })
        .collect()
}

/// `text` with every control character inside a JSON string written as `\u00XX`.
fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains(|c: char| c < ' ' && !"\n\r".contains(c)) {
        return text.into();
    }
    let mut out = String::with_capacity(text.len() + 16);
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        if in_string && c < ' ' {
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
            continue;
        }
        out.push(c);
        if escaped {
            escaped = false;
        } else if in_string && c == '\\' {
            escaped = true;
        } else if c == '"' {
            in_string = !in_string;
        }
    }
    out.into()
}

/// What of `table` is mounted under `root` (strictly below it), in the order to unmount it: the
/// deepest first, and of two as deep the later mounted first (mounted over the other), so that
/// nothing is unmounted while something is mounted on it.
pub fn unmount_order(table: &[Mounted], root: &str) -> Vec<String> {
    let prefix = format!("{}/", root.trim_end_matches('/'));
    let depth = |node: &str| node.split('/').filter(|c| !c.is_empty()).count();
    let mut under: Vec<&str> = table
        .iter()
        .rev()
        .map(|m| m.node.as_str())
        .filter(|node| node.starts_with(&prefix))
        .collect();
    // Stable: of two as deep, the later mounted stays first.
    under.sort_by_key(|node| std::cmp::Reverse(depth(node)));
    under.into_iter().map(str::to_owned).collect()
}

/// Where `mount` goes on the host: its destination resolved inside the container's `root` as the
/// container would see it, by a walk that never follows a link out of the root ([`inroot`]),
/// making what is missing (directories for a directory, an empty file for a file). What is
/// already there must be of the source's type.
pub fn mount_node(root: &Path, mount: &Mount) -> Result<String, RuntimeError> {
    let refuse = |why: &dyn std::fmt::Display| {
        RuntimeError::Invalid(format!(
            "cannot mount {}: {why} (source {})",
            mount.destination,
            mount.source.display()
        ))
    };
    let meta = std::fs::metadata(&mount.source).map_err(|e| refuse(&e))?;
    let create = if meta.is_dir() {
        inroot::Create::Directories
    } else if meta.is_file() {
        inroot::Create::File
    } else {
        return Err(refuse(&"it is neither a directory nor a regular file"));
    };
    let target = inroot::open(root, &mount.destination, create).map_err(|e| refuse(&e))?;
    // Where the walk led, as the container sees it: never over what the jail's own set-up
    // mounts (its devfs at /dev, which would hide or be hidden by the mount).
    let seen = target.path.strip_prefix(root).unwrap_or(&target.path);
    if let Some(place) = crate::platform::runtime::reserved_destination(seen)
        .or_else(|| seen.starts_with("dev").then_some("/dev"))
    {
        return Err(refuse(&format!(
            "it leads to {place} or inside it, which the jail's set-up mounts"
        )));
    }
    if target.is_dir != meta.is_dir() {
        let kind = |dir: bool| if dir { "directory" } else { "file" };
        return Err(refuse(&format!(
            "the container has a {} there and the source is a {}",
            kind(target.is_dir),
            kind(meta.is_dir())
        )));
    }
    target
        .path
        .into_os_string()
        .into_string()
        .map_err(|path| refuse(&format!("{} is not UTF-8", Path::new(&path).display())))
}

/// The container's `/dev`, where jail(8) mounts its devfs, must be a real directory of the root:
/// made when missing, refused (naming it) when the image has a link or anything else there.
/// jail(8) refuses a path with links as well; this says so before anything is made.
pub fn check_devfs_node(root: &Path) -> Result<(), RuntimeError> {
    let dev = root.join("dev");
    match std::fs::symlink_metadata(&dev) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(meta) => Err(RuntimeError::Invalid(format!(
            "/dev in the container is {}: it must be a directory (or missing)",
            if meta.file_type().is_symlink() {
                "a symbolic link"
            } else {
                "not a directory"
            }
        ))),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir(&dev)
            .map_err(RuntimeError::io(format!("cannot make {}", dev.display()))),
        Err(err) => Err(RuntimeError::io(dev.display().to_string())(err)),
    }
}

impl JailRuntime {
    /// Mounts the container's mounts, in order, each resolved inside its root just before it is
    /// mounted (so a later destination inside an earlier mount is walked through that mount).
    /// Answers the nodes mounted; when one fails, those already mounted are unmounted again.
    pub(super) fn mount_all(&self, spec: &ProcessSpec) -> Result<Vec<String>, RuntimeError> {
        let mut made = vec![];
        for mount in &spec.mounts {
            match self.mount_one(&spec.rootfs, mount) {
                Ok(node) => made.push(node),
                Err(err) => {
                    self.unmount_made(&spec.container_id, &made);
                    return Err(err);
                }
            }
        }
        Ok(made)
    }

    /// Mounts one mount under `root`; answers its node.
    pub(super) fn mount_one(&self, root: &Path, mount: &Mount) -> Result<String, RuntimeError> {
        let node = mount_node(root, mount)?;
        let source = mount.source.to_str().ok_or_else(|| {
            RuntimeError::Invalid(format!(
                "cannot mount {}: the source {} is not UTF-8",
                mount.destination,
                mount.source.display()
            ))
        })?;
        let spec = mount_nullfs(source, &node, mount.read_only, mount.setuid);
        tracing::debug!(command = %spec, "mount");
        self.run_ok(&spec, |code, stderr| {
            RuntimeError::Host(format!(
                "cannot mount {}: '{spec}' exited with {code}: {stderr}",
                mount.destination
            ))
        })?;
        Ok(node)
    }

    /// Unmounts what a start mounted (`made`, in the order mounted), the last first, logging
    /// what fails: the start fails anyway, and [`Runtime::cleanup`] finds what is left in the
    /// mount table.
    pub(super) fn unmount_made(&self, container_id: &str, made: &[String]) {
        for node in made.iter().rev() {
            let unmounted = self.run_ok(&unmount(node), |code, stderr| {
                RuntimeError::Host(format!("exit code {code}: {stderr}"))
            });
            if let Err(err) = unmounted {
                tracing::warn!(container = container_id, node = %node, %err, "mount not undone");
            }
        }
    }

    /// The nullfs and devfs file systems mounted now, from the kernel's mount table.
    pub(super) fn mounted(&self) -> Result<Vec<Mounted>, RuntimeError> {
        let spec = mount_table();
        let output = self.run_ok(&spec, |code, stderr| {
            RuntimeError::Host(format!("'{spec}' exited with {code}: {stderr}"))
        })?;
        parse_mount_table(&output.stdout_text()).map_err(RuntimeError::Host)
    }

    /// Unmounts every nullfs and devfs file system under `root`, the deepest first, as the mount
    /// table lists them now: what this daemon mounted, and what an earlier one that crashed left.
    pub(super) fn unmount_under(&self, root: &Path) -> Result<(), RuntimeError> {
        // The kernel names mount points by their real paths (mount_nullfs takes the realpath(3)
        // of its node).
        let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_owned());
        let root = root.to_string_lossy();
        let mut failed = vec![];
        for node in unmount_order(&self.mounted()?, &root) {
            tracing::debug!(node = %node, "unmount");
            let output = self.run(&unmount(&node))?;
            if !output.succeeded() {
                failed.push((node, output.stderr_text().trim_end().to_owned()));
            }
        }
        if failed.is_empty() {
            return Ok(());
        }
        // jail(8) unmounts the devfs itself when a jail's creation fails, and a stop at the
        // same time may have unmounted the rest: gone is gone.
        let left = unmount_order(&self.mounted()?, &root);
        match failed.into_iter().find(|(node, _)| left.contains(node)) {
            Some((node, stderr)) => Err(RuntimeError::Host(format!(
                "cannot unmount {node}: {stderr}"
            ))),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::freebsd::testdata::{image, mount, sources};
    use crate::platform::freebsd::tests::{recording, remember, table, ROOT};
    use crate::platform::freebsd::wiring::tests::{networked, vnet_endpoints};
    use kleene_runner::Recorded;

    use std::time::Duration;

    use kleene_api::NetworkDriver;

    use crate::platform::runtime::Runtime;

    #[test]
    fn the_mount_table_is_read_whatever_its_paths_hold() {
        // As libxo prints it: `"` and `\` escaped, a tab raw, UTF-8 as is.
        let text = concat!(
            r#"{"mount": {"mounted": ["#,
            r#"{"special":"devfs","node":"/dev","fstype":"devfs","opts":["local","multilabel"]}, "#,
            r#"{"special":"/srv/a b","node":"/j/c/my site","fstype":"nullfs","opts":["local"]}, "#,
            r#"{"special":"/srv/q","node":"/j/c/say \"hi\" \\ tab"#,
            "\t",
            r#"here","fstype":"nullfs","opts":["local","read-only"]}, "#,
            r#"{"special":"/srv/u","node":"/j/c/café","fstype":"nullfs","opts":["local"]}"#,
            "]}}\n"
        );
        let mounted = parse_mount_table(text).unwrap();
        let nodes: Vec<&str> = mounted.iter().map(|m| m.node.as_str()).collect();
        assert_eq!(
            nodes,
            [
                "/dev",
                "/j/c/my site",
                "/j/c/say \"hi\" \\ tab\there",
                "/j/c/café"
            ]
        );
        assert_eq!(mounted[0].fstype, "devfs");
        assert_eq!(mounted[1].fstype, "nullfs");
        // Nothing mounted: libxo may leave the list out; no output at all lists nothing.
        assert!(parse_mount_table("{\"mount\": {}}\n").unwrap().is_empty());
        assert!(parse_mount_table("").unwrap().is_empty());
        for bad in [
            "devfs /dev devfs rw 0 0",
            "{\"other\": {}}",
            "{\"mount\": {\"mounted\": [{\"fstype\": \"nullfs\"}]}}",
        ] {
            assert!(parse_mount_table(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn what_is_under_a_root_is_unmounted_deepest_first() {
        let at = |fstype: &str, node: &str| Mounted {
            fstype: fstype.into(),
            node: node.into(),
        };
        let table = [
            at("devfs", "/dev"),
            at("nullfs", "/r/c1/var/db"),
            at("nullfs", "/r/c1/my site"),
            at("nullfs", "/r/c1/var/db/cache"),
            at("devfs", "/r/c1/dev"),
            at("nullfs", "/r/c1"),
            at("nullfs", "/r/c10/data"),
            at("nullfs", "/r/c2/data"),
            // Mounted over the first one at the same node: it goes first.
            at("nullfs", "/r/c1/var/db"),
        ];
        assert_eq!(
            unmount_order(&table, "/r/c1/"),
            [
                "/r/c1/var/db/cache",
                "/r/c1/var/db",
                "/r/c1/var/db",
                // As deep: the later mounted (by jail -c) first.
                "/r/c1/dev",
                "/r/c1/my site"
            ]
        );
        assert!(unmount_order(&table, "/r/c3").is_empty());
    }

    #[test]
    fn the_devfs_node_must_be_a_directory_of_the_root() {
        let root = image();
        check_devfs_node(root.path()).unwrap();
        assert!(root.path().join("dev").is_dir());
        check_devfs_node(root.path()).unwrap();
        for planted in ["/", "/proc/self/cwd", "../../etc"] {
            let root = image();
            std::os::unix::fs::symlink(planted, root.path().join("dev")).unwrap();
            let err = check_devfs_node(root.path()).unwrap_err().to_string();
            assert!(
                err.contains("/dev in the container is a symbolic link"),
                "{err}"
            );
        }
        let root = image();
        std::fs::write(root.path().join("dev"), "").unwrap();
        let err = check_devfs_node(root.path()).unwrap_err().to_string();
        assert!(err.contains("is not a directory"), "{err}");
    }

    #[test]
    fn a_mount_that_leads_to_what_the_jail_mounts_is_refused() {
        let root = image();
        let (_sources, data, _conf) = sources();
        std::fs::create_dir(root.path().join("dev")).unwrap();
        // Directly, and through a link the image planted that stays inside the root.
        std::os::unix::fs::symlink("/dev", root.path().join("devices")).unwrap();
        for destination in [
            "/dev",
            "/dev/shm",
            "/devices/x",
            "/proc",
            "/usr/../sys/kernel",
        ] {
            let err = mount_node(root.path(), &mount(&data, destination, false))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("which the jail's set-up mounts"),
                "{destination}: {err}"
            );
        }
        mount_node(root.path(), &mount(&data, "/var/db/data", false)).unwrap();
    }

    #[tokio::test]
    async fn a_start_mounts_in_order_before_the_jail_and_its_first_process() {
        let root = image();
        let (_sources, data, conf) = sources();
        let (runner, runtime, mut spec) = networked(root.path(), NetworkDriver::Host);
        spec.mounts = vec![
            mount(&data, "/var/db/data", false),
            mount(&conf, "/usr/local/etc/site.conf", true),
        ];
        // Nothing left mounted; both mounts succeed; jail -i -c prints jid 7.
        runner.push_ok("");
        runner.push_ok("");
        runner.push_ok("");
        runner.push_ok("7\n");
        let mut spawned = runtime.start(&spec).unwrap();
        spawned.child.wait().await.unwrap();
        let r = root.path().display();
        let lines = runner.lines();
        assert_eq!(
            lines[..3],
            [
                "/sbin/mount --libxo json -t nullfs,devfs".to_owned(),
                format!(
                    "/sbin/mount_nullfs -o nosuid {} {r}/var/db/data",
                    data.display()
                ),
                format!(
                    "/sbin/mount_nullfs -o ro,nosuid {} {r}/usr/local/etc/site.conf",
                    conf.display()
                ),
            ]
        );
        assert!(
            lines[3].starts_with(&format!("/usr/sbin/jail -i -c path={r} ")),
            "{lines:?}"
        );
        assert_eq!(lines[4..], ["/usr/sbin/jexec -l -U root 7 /usr/bin/env -i"]);
        // The destinations were made in the image: a directory, and an empty file.
        assert!(root.path().join("var/db/data").is_dir());
        let made = root.path().join("usr/local/etc/site.conf");
        assert!(made.is_file());
        assert_eq!(std::fs::read(&made).unwrap().len(), 0);
    }

    #[test]
    fn a_mount_that_fails_unmounts_those_made_and_starts_nothing() {
        let root = image();
        let (_sources, data, conf) = sources();
        let (runner, runtime, mut spec) = networked(root.path(), NetworkDriver::Vnet);
        spec.endpoints = vnet_endpoints();
        spec.mounts = vec![
            mount(&data, "/var/db/data", false),
            mount(&conf, "/usr/local/etc/site.conf", true),
        ];
        runner.push_ok("");
        runner.push_ok("");
        runner.push_err(
            71,
            "mount_nullfs: /r/usr/local/etc/site.conf: Operation not supported\n",
        );
        let err = runtime.start(&spec).unwrap_err();
        assert!(matches!(err, RuntimeError::Host(_)), "{err}");
        assert!(
            err.to_string().starts_with(
                "cannot mount /usr/local/etc/site.conf: '/sbin/mount_nullfs -o ro,nosuid "
            ) && err.to_string().ends_with("Operation not supported"),
            "{err}"
        );
        let r = root.path().display();
        let lines = runner.lines();
        assert_eq!(lines.len(), 4, "{lines:?}");
        assert_eq!(lines[3], format!("/sbin/umount {r}/var/db/data"));
        // No epair, no jail, no run.
        assert!(runtime.jails().runs.is_empty());
        assert!(runtime.jails().links.is_empty());

        // What the image has there is of the other type: refused before mount_nullfs runs.
        for (source, destination, there) in [
            (&data, "/etc/passwd", "a file"),
            (&conf, "/etc", "a directory"),
        ] {
            let (runner, runtime, mut spec) = networked(root.path(), NetworkDriver::Host);
            spec.mounts = vec![
                mount(&data, "/var/db/data", false),
                mount(source, destination, false),
            ];
            let err = runtime.start(&spec).unwrap_err();
            assert!(matches!(err, RuntimeError::Invalid(_)), "{err}");
            assert!(
                err.to_string().contains(&format!(
                    "mount {destination}: the container has {there} there"
                )),
                "{err}"
            );
            assert_eq!(
                runner.lines()[1..],
                [
                    format!(
                        "/sbin/mount_nullfs -o nosuid {} {r}/var/db/data",
                        data.display()
                    ),
                    format!("/sbin/umount {r}/var/db/data"),
                ]
            );
        }
    }

    #[test]
    fn stop_and_cleanup_unmount_what_the_table_lists_under_the_root_deepest_first() {
        let container = format!("{ROOT}/c0ffee000001");
        let listed = table(&[
            ("devfs", "/dev"),
            ("nullfs", &format!("{container}/var/db/data")),
            ("nullfs", &format!("{container}/srv/my site")),
            ("nullfs", &format!("{container}/var/db/data/cache")),
            ("devfs", &format!("{container}/dev")),
            ("nullfs", &format!("{ROOT}/c0ffee000002/data")),
            ("nullfs", &format!("{ROOT}/c0ffee0000010/data")),
        ]);
        let unmounts = [
            format!("/sbin/umount {container}/var/db/data/cache"),
            format!("/sbin/umount {container}/var/db/data"),
            format!("/sbin/umount {container}/srv/my site"),
            format!("/sbin/umount {container}/dev"),
        ];
        let (runner, runtime) = recording();
        remember(&runtime, 7, &["exec.nostop"]);
        runner.push_ok("");
        runner.push_ok(&listed);
        runtime.stop("c0ffee000001", Duration::ZERO).unwrap();
        let lines = runner.lines();
        assert_eq!(
            lines[..2],
            [
                "/usr/sbin/jail -R 7",
                "/sbin/mount --libxo json -t nullfs,devfs"
            ]
        );
        assert_eq!(lines[2..], unmounts);
        // The path with a space is one argument.
        let Recorded::Run(spaced) = &runner.calls()[4] else {
            panic!("not a command")
        };
        assert_eq!(spaced.args, [format!("{container}/srv/my site")]);

        // A daemon restarted after a crash knows nothing of the run: the table tells.
        let (runner, runtime) = recording();
        runner.push_ok(&listed);
        runtime.cleanup("c0ffee000001").unwrap();
        assert_eq!(runner.lines()[1..], unmounts);

        // A mount that will not go fails the cleanup; one gone meanwhile does not.
        let (runner, runtime) = recording();
        runner.push_ok(&listed);
        runner.push_ok("");
        runner.push_err(
            1,
            &format!("umount: unmount of {container}/var/db/data failed: Device busy\n"),
        );
        runner.push_err(1, "");
        runner.push_ok("");
        runner.push_ok(&table(&[("nullfs", &format!("{container}/var/db/data"))]));
        let err = runtime.cleanup("c0ffee000001").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "cannot unmount {container}/var/db/data: umount: unmount of \
                 {container}/var/db/data failed: Device busy"
            )
        );
        let (runner, runtime) = recording();
        runner.push_ok(&listed);
        runner.push_err(1, "umount: /x: not a file system root directory\n");
        runner.push_ok(&table(&[("devfs", "/dev")]));
        runtime.cleanup("c0ffee000001").unwrap();
        assert_eq!(
            runner.lines().last().unwrap(),
            "/sbin/mount --libxo json -t nullfs,devfs"
        );
    }

    #[tokio::test]
    async fn mount_destinations_behind_links_stay_inside_the_root() {
        let root = image();
        let (sources, data, _conf) = sources();
        // A host directory the image names by an absolute link: never touched.
        let host = sources.path().join("host");
        std::fs::create_dir(&host).unwrap();
        std::os::unix::fs::symlink("/", root.path().join("top")).unwrap();
        std::os::unix::fs::symlink("../../..", root.path().join("up")).unwrap();
        std::os::unix::fs::symlink(&host, root.path().join("away")).unwrap();
        let (runner, runtime, mut spec) = networked(root.path(), NetworkDriver::Host);
        spec.mounts = vec![
            mount(&data, "/top/vol", false),
            mount(&data, "/up/x", true),
            mount(&data, "/../../etc/../y", false),
            mount(&data, "/away/z", false),
        ];
        runner.push_ok("");
        for _ in 0..4 {
            runner.push_ok("");
        }
        runner.push_ok("7\n");
        let mut spawned = runtime.start(&spec).unwrap();
        spawned.child.wait().await.unwrap();
        let nodes: Vec<String> = runner.calls()[1..5]
            .iter()
            .map(|call| match call {
                Recorded::Run(spec) => {
                    assert_eq!(spec.program, "/sbin/mount_nullfs");
                    spec.args.last().unwrap().clone()
                }
                Recorded::Pipe(..) => panic!("a pipeline"),
            })
            .collect();
        let inside = |p: &std::path::Path| p.display().to_string();
        assert_eq!(
            nodes,
            [
                inside(&root.path().join("vol")),
                inside(&root.path().join("x")),
                inside(&root.path().join("y")),
                inside(&root.path().join(host.strip_prefix("/").unwrap()).join("z")),
            ]
        );
        assert!(root.path().join("vol").is_dir() && root.path().join("x").is_dir());
        assert_eq!(
            std::fs::read_dir(&host).unwrap().count(),
            0,
            "nothing made on the host"
        );
    }
}
