//! A stopped daemon's database written directly, so tests can look at listings with content
//! before the endpoints that create objects exist: a sample of every kind of object.

use std::path::Path;

use crate::daemon::Daemon;
use crate::netns::NetHost;

/// A daemon whose database holds [`sample_objects`], in a network namespace of the test's own
/// (the sample network's interface is made when the daemon starts). Keep the [`NetHost`] while
/// the daemon runs.
pub fn daemon_with_samples() -> (NetHost, Daemon) {
    let net = NetHost::create();
    let mut daemon = Daemon::start_in(&net);
    daemon.stop();
    seed_store(&daemon.metadata_path(), sample_objects);
    daemon.restart();
    (net, daemon)
}

/// Writes rows straight into a stopped daemon's database (`metadata`, see
/// [`crate::daemon::Daemon::metadata_path`]).
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
