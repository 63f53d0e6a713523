//! Harness for the end-to-end tests: the real `kleened` and `klee` binaries (built by
//! `cargo build --workspace --bins` before the tests run), a daemon per test on its own temporary
//! socket, certificates made per test, and the published Python client.
//!
//! Nothing here fakes the daemon: tests talk to it over real sockets, as users do.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub mod netns;
pub mod probe;
mod skip;

pub use skip::{skip_host_tests, skipped};

/// The directory holding the workspace's binaries (`target/debug`).
fn bin_dir() -> PathBuf {
    // Test executables live in target/<profile>/deps.
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(Path::parent)
        .expect("test executable is in target/<profile>/deps")
        .to_owned()
}

/// Path of a workspace binary; fails loudly when it was not built.
pub fn bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.is_file(),
        "{} is missing: build the binaries first with `cargo build --workspace --bins`",
        path.display()
    );
    path
}

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the workspace")
        .to_owned()
}

/// The zfs pool host tests work in (`KLEENE_TEST_POOL`, default `kleene-test`).
pub fn test_pool() -> String {
    std::env::var("KLEENE_TEST_POOL").unwrap_or_else(|_| "kleene-test".to_owned())
}

/// A ZFS client for tests, patient with zfs-fuse's "dataset is busy" (common right after unmounts).
pub fn zfs() -> zfs::Zfs {
    zfs::Zfs::new(std::sync::Arc::new(kleene_runner::SystemRunner::new())).with_retry(
        zfs::RetryPolicy {
            attempts: 9,
            initial_delay: Duration::from_millis(25),
        },
    )
}

/// Names of every dataset and snapshot under `root` (empty when it does not exist).
pub fn zfs_tree(root: &str) -> Vec<String> {
    let out = Command::new("zfs")
        .args(["list", "-H", "-o", "name", "-t", "all", "-r", root])
        .output();
    match out {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect(),
        _ => vec![],
    }
}

/// The datasets under `root` once they are `expected`: removed containers' datasets are destroyed
/// in the background. Waits at most 30 s, then answers what is there.
pub fn settled_tree(root: &str, expected: &[String]) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let tree = zfs_tree(root);
        if tree == expected || Instant::now() >= deadline {
            return tree;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A uniquely named dataset `<pool>/kleene-e2e-<random>`, destroyed with everything under it when
/// dropped.
#[derive(Debug)]
pub struct TestRoot {
    /// The dataset's name.
    pub name: String,
}

impl TestRoot {
    /// Creates the dataset; fails loudly when the pool is not there.
    pub fn create() -> TestRoot {
        let pool = test_pool();
        let client = zfs();
        assert!(
            client.pool_exists(&pool).unwrap_or(false),
            "the zfs pool '{pool}' is missing: run `scripts/zfs-pool.sh up` as root (or set \
             KLEENE_SKIP_HOST_TESTS=1 to opt out of host tests)"
        );
        let suffix = &uuid::Uuid::new_v4().simple().to_string()[..10];
        let name = format!("{pool}/kleene-e2e-{suffix}");
        let dataset = zfs::DatasetName::new(name.clone()).expect("valid test dataset name");
        client
            .create(&dataset, &[])
            .expect("create the test root dataset");
        TestRoot { name }
    }
}

impl Drop for TestRoot {
    fn drop(&mut self) {
        let Ok(dataset) = zfs::DatasetName::new(self.name.clone()) else {
            return;
        };
        // Images cloned from a dataset outside the root (the base dataset of the FreeBSD tests)
        // leave their origin snapshot there when the root goes; find them while the clones exist.
        let outside = origins_outside(&self.name);
        let flags = zfs::DestroyFlags {
            recursive: true,
            recursive_dependents: true,
            force: true,
        };
        // zfs-fuse may still be busy with the last unmounts of a daemon that just stopped (its
        // own retries span about 13 s): try again a little later before giving up.
        let mut attempt = 0;
        while let Err(err) = zfs().destroy(&dataset, flags) {
            if zfs_tree(&self.name).is_empty() {
                break;
            }
            attempt += 1;
            if attempt == 4 {
                eprintln!("could not destroy test dataset {}: {err}", self.name);
                return;
            }
            std::thread::sleep(Duration::from_secs(2));
        }
        for origin in outside {
            let Ok(snapshot) = zfs::SnapshotName::new(origin.clone()) else {
                continue;
            };
            // Without -R: a snapshot that still has clones elsewhere stays.
            if let Err(err) = zfs().destroy_snapshot(&snapshot, zfs::DestroyFlags::default()) {
                eprintln!("could not destroy origin snapshot {origin}: {err}");
            }
        }
    }
}

/// Origin snapshots, outside `root`, of the filesystems under `root`.
fn origins_outside(root: &str) -> Vec<String> {
    let out = Command::new("zfs")
        .args(["list", "-H", "-o", "origin", "-t", "filesystem", "-r", root])
        .output();
    let Ok(out) = out else { return vec![] };
    let inside = [format!("{root}/"), format!("{root}@")];
    let mut origins: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|o| *o != "-" && o.contains('@'))
        .filter(|o| !inside.iter().any(|prefix| o.starts_with(prefix.as_str())))
        .map(str::to_owned)
        .collect();
    origins.sort();
    origins.dedup();
    origins
}

/// A running `kleened` with its own directory for config, socket, pidfile, and its own root dataset
/// (which holds the database).
#[derive(Debug)]
pub struct Daemon {
    dir: TempDir,
    child: Option<Child>,
    /// `http:///...sock` address of its unix socket.
    pub host: String,
    /// Its `kleene_root`.
    pub root: TestRoot,
    /// Where its container cgroups are: the `cgroup_hierarchy` it was configured with.
    hierarchy: CgroupHierarchy,
    /// The network namespace it runs in (`/run/netns/<name>`), if not the host's.
    netns: Option<String>,
}

/// A cgroup hierarchy a daemon tracks containers in (configuration key `cgroup_hierarchy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CgroupHierarchy {
    /// cgroup v2 where mounted, else v1 `pids` (the daemon's default).
    #[default]
    Auto,
    /// The v1 `pids` hierarchy.
    V1,
}

/// Extra listener entries and settings for a daemon's configuration.
#[derive(Debug, Default, Clone)]
pub struct DaemonOptions {
    /// YAML list items appended to `api_listening_sockets` (each starting with `  - address:`).
    pub extra_listeners: String,
    /// The cgroup hierarchy to track containers in.
    pub cgroup_hierarchy: CgroupHierarchy,
    /// Run the daemon in this network namespace (`/run/netns/<name>`, see [`netns::NetHost`]).
    pub netns: Option<String>,
}

impl Daemon {
    /// Starts a daemon listening on a unix socket in a new temporary directory.
    pub fn start() -> Daemon {
        Daemon::start_with(DaemonOptions::default())
    }

    /// Starts a daemon with extra listeners; waits until every listener accepts connections.
    pub fn start_with(options: DaemonOptions) -> Daemon {
        let dir = tempfile::Builder::new()
            .prefix("kleene-e2e-")
            .tempdir()
            .expect("temporary directory");
        let socket = dir.path().join("kleened.sock");
        let root = TestRoot::create();
        let cgroup_parent = root
            .name
            .rsplit('/')
            .next()
            .unwrap_or("kleene-e2e")
            .to_owned();
        let config = format!(
            "kleene_root: {}\n\
             cgroup_parent: {cgroup_parent}\n\
             api_listening_sockets:\n  - address: http://{}\n{}\
             enable_logging: true\n\
             log_file: {}\n\
             log_level: debug\n\
             pidfile: {}\n\
             container_log_dir: {}\n{}",
            root.name,
            socket.display(),
            options.extra_listeners,
            dir.path().join("kleened.log").display(),
            dir.path().join("kleened.pid").display(),
            dir.path().join("container-logs").display(),
            platform_config(&dir.path().display().to_string()),
        ) + match options.cgroup_hierarchy {
            CgroupHierarchy::Auto => "",
            CgroupHierarchy::V1 => "cgroup_hierarchy: v1\n",
        };
        std::fs::write(dir.path().join("config.yaml"), config).expect("write config");
        let mut daemon = Daemon {
            host: format!("http://{}", socket.display()),
            dir,
            child: None,
            root,
            hierarchy: options.cgroup_hierarchy,
            netns: options.netns,
        };
        daemon.spawn();
        daemon
    }

    fn spawn(&mut self) {
        let log_offset = self.log().len();
        let mut command = match &self.netns {
            None => Command::new(bin("kleened")),
            Some(ns) => {
                // nsenter enters only the network namespace and then becomes kleened.
                let mut command = Command::new("nsenter");
                command
                    .arg(format!("--net=/run/netns/{ns}"))
                    .arg(bin("kleened"));
                command
            }
        };
        let child = command
            .arg("--config")
            .arg(self.config_path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start kleened");
        self.child = Some(child);
        self.wait_ready(log_offset);
    }

    /// Its configuration file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.yaml")
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The daemon's PID.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).expect("the daemon runs")
    }

    /// The directory of the daemon's container cgroups (named after its root dataset).
    pub fn cgroup_parent(&self) -> Option<PathBuf> {
        let name = self.root.name.rsplit('/').next()?.to_owned();
        let mount = match self.hierarchy {
            CgroupHierarchy::Auto => cgroup_mount(),
            CgroupHierarchy::V1 => cgroup_v1_pids_mount(),
        };
        mount.map(|mount| mount.join(name))
    }

    /// Its metadata database (in the root dataset's mountpoint).
    pub fn metadata_path(&self) -> PathBuf {
        let root = zfs::DatasetName::new(self.root.name.clone()).expect("valid root");
        zfs()
            .mountpoint(&root)
            .expect("zfs answers")
            .expect("the root is mounted")
            .join("metadata.sqlite")
    }

    /// Its unix socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("kleened.sock")
    }

    /// Waits for "kleened is ready" in the log written after `log_offset`.
    fn wait_ready(&mut self, log_offset: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "kleened exited during start-up with {status}; its log:\n{}",
                    self.log()
                );
            }
            // The pidfile is written first and the log says "ready" once every listener is bound.
            if self
                .log()
                .get(log_offset..)
                .is_some_and(|new| new.contains("kleened is ready"))
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "kleened did not get ready in 20 s; its log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("kleened.log")).unwrap_or_default()
    }

    /// Kills the daemon with SIGKILL, as a crash would: nothing is cleaned up.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the daemon again on the same directory and root (after [`Daemon::kill`]).
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "the daemon still runs");
        self.spawn();
    }

    /// Stops the daemon with SIGTERM and restarts it on the same directory.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Sends SIGTERM and waits for a clean exit: status 0, socket file and pidfile removed.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(20);
        let exit = loop {
            if let Some(exit) = child.try_wait().expect("wait for kleened") {
                break exit;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "kleened did not stop within 20 s of SIGTERM; its log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(
            exit.success(),
            "kleened exited with {exit} after SIGTERM; its log:\n{}",
            self.log()
        );
        assert!(
            !self.socket().exists(),
            "socket file left behind after shutdown"
        );
        assert!(
            !self.dir.path().join("kleened.pid").exists(),
            "pidfile left behind after shutdown"
        );
    }

    /// Runs our `klee` against this daemon's unix socket.
    pub fn klee(&self, args: &[&str]) -> Output {
        klee(&self.host, args)
    }
}

impl Drop for Daemon {
    /// Even when a test fails: a graceful stop (the daemon stops its containers), SIGKILL if that
    /// takes too long, then whatever container processes and cgroups are left are removed, so the
    /// root dataset can be destroyed.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(parent) = self.cgroup_parent() {
            remove_cgroup_tree(&parent);
        }
        #[cfg(target_os = "freebsd")]
        {
            // Jails of this daemon's containers, then their devfs and nullfs mounts, so the
            // root dataset can be destroyed.
            let mountpoint = root_mountpoint(&self.root.name);
            for jail in freebsd::jails_under(&mountpoint).unwrap_or_default() {
                if let Some(name) = jail.split_whitespace().next() {
                    let _ = Command::new("/usr/sbin/jail").args(["-r", name]).status();
                }
            }
            let mut mounts = freebsd::mounts_under(&mountpoint).unwrap_or_default();
            // Deepest first: a mount inside another must go before it.
            mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
            for mount in mounts {
                if let Some((_, point)) = mount.split_once(' ') {
                    let _ = Command::new("/sbin/umount").args(["-f", point]).status();
                }
            }
        }
    }
}

/// Runs our `klee` with `--host host` and `args`.
pub fn klee(host: &str, args: &[&str]) -> Output {
    Command::new(bin("klee"))
        .arg("--host")
        .arg(host)
        .args(args)
        .env_remove("KLEE_HOST")
        .output()
        .expect("run klee")
}

/// Text of a command's stdout and stderr, for assertion messages.
pub fn describe(output: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The published Python client (PyPI `kleene-cli` 0.1.0rc4), installed by the test command into a
/// venv. `None` only when the run opted out with `KLEENE_SKIP_PYTHON_CLIENT=1`, which is announced.
pub fn python_klee() -> Option<PathBuf> {
    if std::env::var("KLEENE_SKIP_PYTHON_CLIENT").as_deref() == Ok("1") {
        skipped("KLEENE_SKIP_PYTHON_CLIENT=1");
        return None;
    }
    let path = std::env::var_os("KLEENE_PYTHON_KLEE")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".cache/pyklee/bin/klee"));
    assert!(
        path.is_file(),
        "the Python klee is not installed at {}: run the test command (scripts/test), which installs \
         kleene-cli==0.1.0rc4 there, or set KLEENE_PYTHON_KLEE; set KLEENE_SKIP_PYTHON_CLIENT=1 to skip",
        path.display()
    );
    Some(path)
}

/// Certificates for a TLS listener, written as PEM files into a directory.
#[derive(Debug)]
pub struct Certs {
    /// CA that signs the server and the good client certificate.
    pub ca: PathBuf,
    /// Server certificate for 127.0.0.1 and localhost.
    pub server_cert: PathBuf,
    /// Server key.
    pub server_key: PathBuf,
    /// Client certificate signed by `ca`.
    pub client_cert: PathBuf,
    /// Client key.
    pub client_key: PathBuf,
    /// Client certificate signed by another CA.
    pub rogue_cert: PathBuf,
    /// Its key.
    pub rogue_key: PathBuf,
}

impl Certs {
    /// Makes a CA, a server certificate and two client certificates (one from another CA) in `dir`.
    pub fn generate(dir: &Path) -> Certs {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
            IsCa, KeyPair,
        };

        let ca = |name: &str| {
            let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.distinguished_name.push(DnType::CommonName, name);
            CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key"))
                .expect("CA certificate")
        };
        let leaf = |issuer: &CertifiedIssuer<'_, KeyPair>,
                    names: Vec<String>,
                    usage: ExtendedKeyUsagePurpose| {
            let mut params = CertificateParams::new(names).expect("leaf params");
            params.extended_key_usages = vec![usage];
            let key = KeyPair::generate().expect("leaf key");
            let cert = params.signed_by(&key, issuer).expect("leaf certificate");
            (cert.pem(), key.serialize_pem())
        };
        let good_ca = ca("kleene test CA");
        let rogue_ca = ca("another CA");
        let (server_cert, server_key) = leaf(
            &good_ca,
            vec!["127.0.0.1".into(), "localhost".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let (client_cert, client_key) = leaf(
            &good_ca,
            vec!["klee".into()],
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        let (rogue_cert, rogue_key) = leaf(
            &rogue_ca,
            vec!["klee".into()],
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).expect("write PEM");
            path
        };
        Certs {
            ca: write("ca.pem", &good_ca.pem()),
            server_cert: write("server-cert.pem", &server_cert),
            server_key: write("server-key.pem", &server_key),
            client_cert: write("client-cert.pem", &client_cert),
            client_key: write("client-key.pem", &client_key),
            rogue_cert: write("rogue-cert.pem", &rogue_cert),
            rogue_key: write("rogue-key.pem", &rogue_key),
        }
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Writes rows straight into a stopped daemon's database, so tests can look at listings with content
/// before the endpoints that create objects exist.
pub fn seed_store(
    metadata: &Path,
    seed: impl FnOnce(&kleened::store::Db<'_>) -> Result<(), kleened::store::StoreError>
        + Send
        + 'static,
) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let store = kleened::store::Store::open(metadata).expect("open store");
        store.write(seed).await.expect("seed store");
    });
}

/// A sample of every kind of object, as the daemon would have stored them.
pub fn sample_objects(db: &kleened::store::Db<'_>) -> Result<(), kleened::store::StoreError> {
    use kleene_api::*;
    db.insert_image(&Image {
        id: "1a2b3c4d5e6f".into(),
        name: "base".into(),
        tag: "latest".into(),
        cmd: vec!["/bin/sh".into(), "/etc/rc".into()],
        env: vec![],
        user: "root".into(),
        instructions: vec![],
        created: "2026-01-02T03:04:05.123456Z".into(),
        dataset: "kleene-test/image/1a2b3c4d5e6f".into(),
    })?;
    db.insert_container(&Container {
        id: "abcdef012345".into(),
        name: Some("web".into()),
        image_id: "1a2b3c4d5e6f".into(),
        cmd: vec!["/bin/echo".into(), "hello".into()],
        user: "root".into(),
        env: vec!["A=1".into()],
        network_driver: NetworkDriver::Host,
        public_ports: vec![],
        jail_param: vec!["mount.devfs=true".into()],
        restart_policy: RestartPolicy::No,
        restart: Some(RestartPolicy::No),
        restart_max_retries: None,
        restart_count: 0,
        persist: false,
        created: "2026-01-02T03:05:00.000000Z".into(),
        dataset: "kleene-test/container/abcdef012345".into(),
        running: false,
        memory: None,
        pids_limit: None,
        cpus: None,
        last_exit: None,
        storage_size: None,
    })?;
    db.insert_network(&Network {
        id: "0f0f0f0f0f0f".into(),
        name: "default".into(),
        kind: NetworkType::Loopback,
        subnet: "10.13.37.0/24".into(),
        subnet6: "".into(),
        interface: "kleene0".into(),
        gateway: "".into(),
        gateway6: "".into(),
        nat: "".into(),
        icc: true,
        internal: false,
    })?;
    db.insert_volume(&Volume {
        name: "data".into(),
        dataset: "kleene-test/volumes/data".into(),
        mountpoint: "/kleene-test/volumes/data".into(),
        created: "2026-01-02T03:06:00.000000Z".into(),
    })
}

/// Configuration keys a daemon needs on this OS besides those the tests set: on FreeBSD the pf
/// paths (required there), pointed into the daemon's directory `dir`; nothing on Linux.
pub fn platform_config(dir: &str) -> String {
    if cfg!(target_os = "freebsd") {
        format!("pf_config_path: {dir}/pf.conf\npf_config_template_path: {dir}/pf.conf.kleene\n")
    } else {
        String::new()
    }
}

/// The base archive the image tests use: `KLEENE_TEST_BASE_ARCHIVE`, or the one the test command
/// builds into `.cache/`: on Linux a BusyBox root (`scripts/base-image.sh busybox`), on FreeBSD a
/// small part of the base dataset's userland (`scripts/base-image.sh freebsd-mini`).
pub fn base_archive() -> PathBuf {
    let (default, kind) = if cfg!(target_os = "freebsd") {
        (".cache/base-freebsd.tar", "freebsd-mini")
    } else {
        (".cache/base-busybox.tar", "busybox")
    };
    let path = std::env::var_os("KLEENE_TEST_BASE_ARCHIVE")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(default));
    assert!(
        path.is_file(),
        "the base archive {} is missing: run the test command (scripts/test), or build it with \
         `scripts/base-image.sh {kind} {}`",
        path.display(),
        path.display()
    );
    path
}

/// The dataset holding a whole extracted userland that base images are cloned from:
/// `KLEENE_TEST_BASE_DATASET`, on FreeBSD by default `<pool>/basejail` (made by
/// `scripts/base-image.sh freebsd-dataset`). `None` on Linux unless set: there the base image is
/// fetched from the BusyBox archive.
pub fn base_dataset() -> Option<String> {
    match std::env::var("KLEENE_TEST_BASE_DATASET") {
        Ok(name) if !name.is_empty() => Some(name),
        _ if cfg!(target_os = "freebsd") => Some(format!("{}/basejail", test_pool())),
        _ => None,
    }
}

/// The mountpoint of a test dataset (`/<name>` when zfs does not say).
pub fn root_mountpoint(name: &str) -> String {
    zfs::DatasetName::new(name.to_owned())
        .ok()
        .and_then(|dataset| zfs().mountpoint(&dataset).ok().flatten())
        .map(|path| path.display().to_string())
        .unwrap_or_else(|| format!("/{name}"))
}

/// A tiny HTTP/1.1 server on 127.0.0.1 serving the files of a directory (GET only), for
/// `image create fetch http://...` tests. Stops when dropped.
#[derive(Debug)]
pub struct FileServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FileServer {
    /// Serves `dir`.
    pub fn serve(dir: &Path) -> FileServer {
        use std::io::{BufRead, BufReader, Write};
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the file server");
        let port = listener.local_addr().expect("local address").port();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let (dir, stopping) = (dir.to_owned(), stop.clone());
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
                let mut request_line = String::new();
                let _ = reader.read_line(&mut request_line);
                let mut header = String::new();
                while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
                    header.clear();
                }
                let path = request_line
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("/")
                    .trim_start_matches('/');
                let file = (!path.contains(".."))
                    .then(|| dir.join(path))
                    .filter(|p| p.is_file());
                match file.and_then(|p| std::fs::File::open(p).ok()) {
                    Some(mut file) => {
                        let length = file.metadata().map(|m| m.len()).unwrap_or(0);
                        let _ = write!(stream, "HTTP/1.1 200 OK\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n");
                        let _ = std::io::copy(&mut file, &mut stream);
                    }
                    None => {
                        let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found");
                    }
                }
            }
        });
        FileServer {
            port,
            stop,
            thread: Some(thread),
        }
    }

    /// The URL of `name` on this server.
    pub fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Runs the Python klee against `daemon`.
pub fn python(klee: &Path, daemon: &Daemon, args: &[&str]) -> Output {
    Command::new(klee)
        .arg("--host")
        .arg(&daemon.host)
        .args(args)
        .env("COLUMNS", "200")
        .output()
        .expect("run the Python klee")
}

/// Kills every process in the cgroup tree at `root` and removes its cgroups, deepest first.
fn remove_cgroup_tree(root: &Path) {
    let mut dirs = vec![];
    let mut pending = vec![root.to_owned()];
    while let Some(dir) = pending.pop() {
        if let Ok(entries) = std::fs::read_dir(&dir) {
            pending.extend(
                entries
                    .filter_map(Result::ok)
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path()),
            );
        }
        dirs.push(dir);
    }
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    let deadline = Instant::now() + Duration::from_secs(5);
    for dir in &dirs {
        if std::fs::write(dir.join("cgroup.kill"), "1").is_err() {
            let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
            for pid in procs.lines() {
                let _ = Command::new("kill").args(["-KILL", pid.trim()]).status();
            }
        }
        while dir.exists() && std::fs::remove_dir(dir).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Where the v1 `pids` hierarchy is mounted, if it is.
pub fn cgroup_v1_pids_mount() -> Option<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let point = left.split_whitespace().nth(4)?;
        let mut fields = right.split_whitespace();
        (fields.next() == Some("cgroup") && fields.nth(1)?.split(',').any(|o| o == "pids"))
            .then(|| PathBuf::from(point))
    })
}

/// Where cgroup v2 is mounted (or the v1 `pids` hierarchy), as the daemon finds it.
pub fn cgroup_mount() -> Option<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mut pids = None;
    for line in mountinfo.lines() {
        let (left, right) = line.split_once(" - ")?;
        let point = left.split_whitespace().nth(4)?;
        let mut fields = right.split_whitespace();
        match (fields.next(), fields.nth(1)) {
            (Some("cgroup2"), _) => return Some(PathBuf::from(point)),
            (Some("cgroup"), Some(options)) if options.split(',').any(|o| o == "pids") => {
                pids = Some(PathBuf::from(point))
            }
            _ => {}
        }
    }
    pids
}

/// Creates a base image `base:latest` and answers its ID: a `zfs-clone` of the base dataset where
/// there is one (FreeBSD: unpacking a whole userland per test would take far too long), else a
/// `fetch` of the BusyBox archive.
pub fn base_image(daemon: &Daemon) -> String {
    let out = match base_dataset() {
        Some(dataset) => {
            let name = zfs::DatasetName::new(dataset.clone()).expect("valid base dataset name");
            assert!(
                zfs().exists(&name).unwrap_or(false),
                "the base dataset {dataset} is missing: run the test command (scripts/test), which \
                 makes it, or `scripts/base-image.sh freebsd-dataset {dataset}`; \
                 KLEENE_TEST_BASE_DATASET names another"
            );
            daemon.klee(&[
                "image",
                "create",
                "zfs-clone",
                &dataset,
                "-t",
                "base",
                "--no-dns",
                "--no-localtime",
            ])
        }
        None => {
            let url = format!("file://{}", base_archive().display());
            daemon.klee(&[
                "image",
                "create",
                "fetch",
                &url,
                "-t",
                "base",
                "--no-dns",
                "--no-localtime",
            ])
        }
    };
    assert!(
        out.status.success(),
        "creating the base image: {}",
        describe(&out)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    text.rsplit("image created: ")
        .next()
        .unwrap_or("")
        .trim()
        .to_owned()
}

/// Host mounts below `path` that are not ZFS datasets (leftovers of container starts), each as
/// `<fstype> <mountpoint>`.
#[cfg(not(target_os = "freebsd"))]
pub fn stray_mounts(path: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let point = left.split_whitespace().nth(4)?;
            let fstype = right.split_whitespace().next()?;
            (point.starts_with(path) && !matches!(fstype, "fuse.zfs" | "zfs"))
                .then(|| format!("{fstype} {point}"))
        })
        .collect()
}

/// Host mounts below `path` that are not ZFS datasets (a jail's devfs, nullfs mounts), each as
/// `<fstype> <mountpoint>`, from mount(8) `-p` (fstab format: device, mountpoint, type, ...).
#[cfg(target_os = "freebsd")]
pub fn stray_mounts(path: &str) -> Vec<String> {
    freebsd::mounts_under(path).unwrap_or_else(|err| panic!("{err}"))
}

/// Jails whose root is at or below `path`, each as `<name> <path>` from jls(8) (FreeBSD).
#[cfg(target_os = "freebsd")]
pub fn jails_under(path: &str) -> Vec<String> {
    freebsd::jails_under(path).unwrap_or_else(|err| panic!("{err}"))
}

/// The host's view of jails and mounts, without panics (also used while dropping a daemon).
#[cfg(target_os = "freebsd")]
mod freebsd {
    use std::process::Command;

    fn run(program: &str, args: &[&str]) -> Result<String, String> {
        let out = Command::new(program)
            .args(args)
            .output()
            .map_err(|e| format!("cannot run {program}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "{program} {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub(crate) fn mounts_under(path: &str) -> Result<Vec<String>, String> {
        Ok(run("/sbin/mount", &["-p"])?
            .lines()
            .filter_map(|line| {
                let mut fields = line.split_whitespace();
                let (_, point, fstype) = (fields.next()?, fields.next()?, fields.next()?);
                (point.starts_with(path) && fstype != "zfs").then(|| format!("{fstype} {point}"))
            })
            .collect())
    }

    pub(crate) fn jails_under(path: &str) -> Result<Vec<String>, String> {
        let below = format!("{}/", path.trim_end_matches('/'));
        Ok(run("/usr/sbin/jls", &["name", "path"])?
            .lines()
            .filter(|line| {
                line.split_once(' ')
                    .is_some_and(|(_, root)| root == path || root.starts_with(&below))
            })
            .map(str::to_owned)
            .collect())
    }
}

/// The peak resident set size of a process in KiB: `VmHWM` from `/proc/<pid>/status`.
#[cfg(not(target_os = "freebsd"))]
pub fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in status");
    line.split_whitespace()
        .nth(1)
        .and_then(|kib| kib.parse().ok())
        .expect("VmHWM in kB")
}

/// The peak resident set size of a process in KiB: the "maximum RSS" that procstat(1) `-r`
/// prints from the process's resource usage, e.g. `21344 KB` or `9.5 MB`.
#[cfg(target_os = "freebsd")]
pub fn peak_rss_kib(pid: u32) -> u64 {
    let out = Command::new("/usr/bin/procstat")
        .args(["-r", &pid.to_string()])
        .output()
        .expect("run procstat");
    assert!(
        out.status.success(),
        "procstat -r failed: {}",
        describe(&out)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let value = text
        .lines()
        .find_map(|line| {
            line.split_once("maximum RSS")
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| panic!("no maximum RSS in procstat -r:\n{text}"));
    parse_size_kib(&value).unwrap_or_else(|| panic!("cannot read maximum RSS '{value}'"))
}

/// `12345 KB`, `9.5 MB`, `512 B`, `1.2G` (humanize_number(3) with the suffix `B`) in KiB.
pub fn parse_size_kib(text: &str) -> Option<u64> {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let split = compact
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(compact.len());
    let (number, unit) = compact.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor = match unit.trim_end_matches('B') {
        "" if unit == "B" => 1.0 / 1024.0,
        "" | "K" => 1.0,
        "M" => 1024.0,
        "G" => 1024.0 * 1024.0,
        _ => return None,
    };
    Some((number * factor).ceil() as u64)
}

/// Processes whose command line mentions `needle`, from ps(1) (FreeBSD mounts no /proc).
#[cfg(target_os = "freebsd")]
pub fn processes_with(needle: &str) -> Vec<String> {
    let out = Command::new("/bin/ps")
        .args(["-ax", "-ww", "-o", "pid=", "-o", "args="])
        .output()
        .expect("run ps");
    assert!(out.status.success(), "ps failed: {}", describe(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|line| line.contains(needle))
        .map(str::to_owned)
        .collect()
}

/// Processes whose command line mentions `needle`.
#[cfg(not(target_os = "freebsd"))]
pub fn processes_with(needle: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .chars()
                .all(|c| c.is_ascii_digit())
        })
        .filter_map(|e| {
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            text.contains(needle)
                .then(|| format!("{} {text}", e.file_name().to_string_lossy()))
        })
        .collect()
}

/// The host PID of the process whose command line is exactly `cmdline` (NUL-separated), waiting
/// up to 20 s for it to appear.
pub fn host_pid_of(cmdline: &str) -> u32 {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == cmdline.as_bytes())
            {
                return pid;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no process {cmdline:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::parse_size_kib;

    #[test]
    fn procstat_sizes_read_as_kib() {
        assert_eq!(parse_size_kib("21344 KB"), Some(21344));
        assert_eq!(parse_size_kib("9.5 MB"), Some(9728));
        assert_eq!(parse_size_kib("21M"), Some(21504));
        assert_eq!(parse_size_kib("1.0 GB"), Some(1048576));
        assert_eq!(parse_size_kib("2048 B"), Some(2));
        assert_eq!(parse_size_kib("12 parsecs"), None);
    }
}
