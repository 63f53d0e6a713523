//! The engine driven through its fakes (engine/fake.rs): image and container creation, their
//! undoing when a step fails, removal, prune, execs, stop, start-up and crash recovery, all
//! without root. What the store says is checked against what the fake host holds.

use std::sync::Arc;

use kleene_api::{ContainerConfig, ExecConfig, ImageCreateConfig, RestartPolicy};

use super::fake::{self, FakeHost};
use super::{ClientEvent, Engine, EngineError};
use crate::engine::exec::Client;
use crate::server::reply::{status, Operation};

/// A client that keeps the output and says nothing (or ends the input at once).
#[derive(Debug, Default)]
struct Collect {
    output: Vec<u8>,
    end_input: bool,
}

impl Client for Collect {
    async fn send(&mut self, chunk: &[u8]) -> Result<(), ()> {
        self.output.extend_from_slice(chunk);
        Ok(())
    }
    async fn next(&mut self) -> Option<ClientEvent> {
        if std::mem::take(&mut self.end_input) {
            return Some(ClientEvent::EndOfInput);
        }
        std::future::pending().await
    }
    async fn flush(&mut self) {}
}

fn image_config(value: serde_json::Value) -> ImageCreateConfig {
    let mut config = serde_json::json!({
        "method": "zfs-clone", "tag": "", "dns": false, "localtime": false, "update": false,
        "zfs_dataset": "", "url": "", "autotag": false,
    });
    for (k, v) in value.as_object().unwrap() {
        config[k] = v.clone();
    }
    serde_json::from_value(config).unwrap()
}

async fn create_image(engine: &Arc<Engine>, config: ImageCreateConfig) -> Result<String, String> {
    create_image_saying(engine, config).await.0
}

/// Creates an image; answers the result and what the creation said on the way.
async fn create_image_saying(
    engine: &Arc<Engine>,
    config: ImageCreateConfig,
) -> (Result<String, String>, String) {
    let (mut progress, task) = engine.start_image_creation(config);
    let mut said = String::new();
    while let Some(text) = progress.recv().await {
        said.push_str(&text);
    }
    (
        task.await
            .unwrap()
            .map(|image| image.id)
            .map_err(|e| e.to_string()),
        said,
    )
}

/// An image `base:latest` cloned from the user's dataset `zroot/data`.
async fn base_image(engine: &Arc<Engine>) -> String {
    create_image(
        engine,
        image_config(serde_json::json!({"tag": "base", "zfs_dataset": "zroot/data"})),
    )
    .await
    .expect("image")
}

async fn create_container(
    engine: &Engine,
    name: &str,
    cmd: &[&str],
    tweak: impl FnOnce(&mut ContainerConfig),
) -> Result<String, EngineError> {
    let mut config = ContainerConfig {
        name: Some(name.to_owned()),
        image: Some("base".to_owned()),
        cmd: Some(cmd.iter().map(|s| (*s).to_owned()).collect()),
        network_driver: Some(kleene_api::NetworkDriver::Host),
        ..ContainerConfig::default()
    };
    tweak(&mut config);
    engine.create_container(config).await.map(|r| r.id)
}

/// Starts the container's own command, detached.
async fn start(engine: &Arc<Engine>, container: &str) {
    let exec = engine
        .create_exec(ExecConfig {
            container_id: container.to_owned(),
            cmd: vec![],
            env: vec![],
            user: String::new(),
            tty: false,
        })
        .await
        .unwrap();
    let running = engine.start_exec(&exec.id, true, None).await.unwrap();
    engine.detach(running);
}

async fn intents(engine: &Engine) -> Vec<(i64, String, String)> {
    engine.store.read(|db| db.list_intents()).await.unwrap()
}

/// The store and the host agree: every image and container row has its dataset, every dataset
/// under image/ and container/ has its row, and no intent is left.
async fn assert_consistent(engine: &Engine, host: &FakeHost) {
    fake::settle(engine).await;
    let images = engine.list_images().await.unwrap();
    let containers = engine.store.read(|db| db.list_containers()).await.unwrap();
    for image in &images {
        assert!(
            host.exists(&image.dataset),
            "image {} has no dataset",
            image.id
        );
        assert!(
            host.exists(&format!("{}@image", image.dataset)),
            "image {} has no snapshot",
            image.id
        );
    }
    for c in &containers {
        assert!(
            host.exists(&c.container.dataset),
            "container {} has no dataset",
            c.container.id
        );
    }
    let mut datasets: Vec<String> = host
        .below("zroot/kleene/image")
        .into_iter()
        .chain(host.below("zroot/kleene/container"))
        .filter(|n| !n.contains('@') && n.matches('/').count() == 3)
        .collect();
    datasets.sort();
    let mut rows: Vec<String> = images
        .iter()
        .map(|i| i.dataset.clone())
        .chain(containers.iter().map(|c| c.container.dataset.clone()))
        .collect();
    rows.sort();
    assert_eq!(datasets, rows, "datasets against rows");
    assert_eq!(intents(engine).await, vec![], "intents left");
}

#[tokio::test]
async fn an_image_and_a_container_are_made_and_removed_without_leftovers() {
    let (engine, host, _runtime) = fake::engine();
    let image = base_image(&engine).await;
    let dataset = format!("zroot/kleene/image/{image}");
    assert!(host.exists(&format!("{dataset}@image")));
    assert!(
        host.exists(&format!("zroot/data@{image}")),
        "the clone's source snapshot"
    );
    let container = create_container(&engine, "web", &["true"], |_| {})
        .await
        .unwrap();
    let clone = format!("zroot/kleene/container/{container}");
    assert!(host.exists(&clone));
    assert!(host
        .lines()
        .contains(&format!("zfs clone {dataset}@image {clone}")));
    assert_consistent(&engine, &host).await;

    // The image is in use: refused, and nothing changed.
    let err = engine.remove_image("base".into()).await.unwrap_err();
    assert!(err.to_string().contains("used for containers"), "{err}");
    assert!(host.exists(&dataset));

    // The removal returns before the clone is destroyed; removing the image right after does
    // not meet it.
    engine.remove_container("web".into()).await.unwrap();
    engine.remove_image("base".into()).await.unwrap();
    assert!(!host.exists(&clone));
    assert!(!host.exists(&dataset));
    assert!(
        !host.exists(&format!("zroot/data@{image}")),
        "the source snapshot goes with it"
    );
    assert!(host.exists("zroot/data"), "the user's dataset stays");
    assert_consistent(&engine, &host).await;
}

#[tokio::test]
async fn an_archive_and_a_copied_dataset_become_images() {
    let (engine, host, _runtime) = fake::engine();
    // The first block of a tar archive: `ustar` at offset 257 is what marks one.
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("base.tar");
    let mut block = vec![0u8; 512];
    block[257..262].copy_from_slice(b"ustar");
    std::fs::write(&archive, &block).unwrap();
    let url = format!("file://{}", archive.display());
    let fetched = create_image(
        &engine,
        image_config(serde_json::json!({"method": "fetch", "url": url, "tag": "fetched"})),
    )
    .await
    .unwrap();
    let mountpoint = host
        .mountpoint(&format!("zroot/kleene/image/{fetched}"))
        .unwrap();
    assert!(
        host.lines().iter().any(|l| l.starts_with("tar ")
            && l.contains(&archive.display().to_string())
            && l.contains(&mountpoint.display().to_string())),
        "the archive is unpacked into the image's dataset: {:?}",
        host.lines()
    );

    let copied = create_image(
        &engine,
        image_config(
            serde_json::json!({"method": "zfs-copy", "zfs_dataset": "zroot/data", "tag": "copy"}),
        ),
    )
    .await
    .unwrap();
    let dataset = format!("zroot/kleene/image/{copied}");
    assert_eq!(
        host.below(&dataset),
        [dataset.clone(), format!("{dataset}@image")]
    );
    assert_eq!(
        host.below("zroot/data"),
        ["zroot/data"],
        "no snapshot of the source is left"
    );
    assert_consistent(&engine, &host).await;

    // Not an archive: refused, nothing made.
    std::fs::write(&archive, b"hello").unwrap();
    let err = create_image(
        &engine,
        image_config(serde_json::json!({"method": "fetch", "url": url, "tag": "bad"})),
    )
    .await
    .unwrap_err();
    assert!(err.contains("is not a tar archive"), "{err}");
    assert_eq!(engine.list_images().await.unwrap().len(), 2);
    assert_consistent(&engine, &host).await;
}

#[tokio::test]
async fn a_failed_image_creation_undoes_every_step() {
    let (engine, host, _runtime) = fake::engine();
    // The last step, the image's snapshot, fails: its dataset and the source snapshot go.
    host.fail_next(
        "zfs snapshot zroot/kleene/image/",
        "cannot create snapshot: out of space\n",
    );
    let err = create_image(
        &engine,
        image_config(serde_json::json!({"tag": "base", "zfs_dataset": "zroot/data"})),
    )
    .await
    .unwrap_err();
    assert!(err.contains("out of space"), "{err}");
    assert_eq!(host.below("zroot/kleene/image"), ["zroot/kleene/image"]);
    assert_eq!(host.below("zroot/data"), ["zroot/data"]);
    assert!(engine.list_images().await.unwrap().is_empty());
    assert_consistent(&engine, &host).await;

    // A source that does not exist, or belongs to a container: refused before anything is made.
    for source in ["zroot/missing", "zroot/kleene/container/x"] {
        let err = create_image(
            &engine,
            image_config(serde_json::json!({"tag": "base", "zfs_dataset": source})),
        )
        .await
        .unwrap_err();
        assert!(err.contains(source), "{err}");
    }
    assert_consistent(&engine, &host).await;
}

#[tokio::test]
async fn a_failed_container_creation_leaves_nothing() {
    let (engine, host, runtime) = fake::engine();
    base_image(&engine).await;
    host.fail_next("zfs clone", "cannot create 'x': out of space\n");
    let err = create_container(&engine, "web", &["true"], |_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::Host { .. }), "{err:?}");
    assert_eq!(
        status(Operation::ContainerCreate, &err),
        404,
        "the API answers 404"
    );
    assert!(err.to_string().contains("out of space"), "{err}");
    assert_eq!(
        host.below("zroot/kleene/container"),
        ["zroot/kleene/container"]
    );

    // Refusals before the clone: unknown image, bad name, a name taken, mounts.
    create_container(&engine, "web", &["true"], |_| {})
        .await
        .unwrap();
    let before = host.lines().len();
    for (name, tweak, words) in [
        ("a", None, "does not match"),
        ("web", None, "already"),
        ("other", Some("nope"), "no such image 'nope'"),
    ] {
        let err = create_container(&engine, name, &["true"], |c| {
            if let Some(image) = tweak {
                c.image = Some(image.into());
            }
        })
        .await
        .unwrap_err();
        assert!(err.to_string().contains(words), "{name}: {err}");
    }
    assert_eq!(host.lines().len(), before, "nothing ran on the host");
    assert_eq!(engine.list_containers(true).await.unwrap().len(), 1);
    assert!(runtime.started().is_empty());
    assert_consistent(&engine, &host).await;
}

#[tokio::test]
async fn a_dataset_zfs_will_not_destroy_yet_is_destroyed_later() {
    let (engine, host, _runtime) = fake::engine();
    base_image(&engine).await;
    let id = create_container(&engine, "web", &["true"], |_| {})
        .await
        .unwrap();
    host.fail_next("zfs destroy", "cannot destroy 'x': dataset is busy\n");
    engine.remove_container("web".into()).await.unwrap();
    assert!(engine.find_container("web").await.unwrap().is_none());
    fake::settle(&engine).await;
    assert!(!host.exists(&format!("zroot/kleene/container/{id}")));
    let destroys = host
        .lines()
        .iter()
        .filter(|l| l.starts_with("zfs destroy"))
        .count();
    assert_eq!(destroys, 2, "busy once, then destroyed: {:?}", host.lines());
    assert_consistent(&engine, &host).await;
}

#[tokio::test]
async fn the_reaper_never_destroys_what_the_store_owns() {
    let (engine, host, _runtime) = fake::engine();
    let image = base_image(&engine).await;
    let id = create_container(&engine, "web", &["true"], |_| {})
        .await
        .unwrap();
    for owned in [
        format!("zroot/kleene/container/{id}"),
        format!("zroot/kleene/image/{image}"),
    ] {
        engine.reap(zfs::DatasetName::new(owned.clone()).unwrap());
        fake::settle(&engine).await;
        assert!(host.exists(&owned), "{owned}");
    }
    assert_consistent(&engine, &host).await;
}

#[tokio::test]
async fn datasets_that_stay_busy_never_hold_up_the_others() {
    let (engine, host, _runtime) = fake::engine();
    base_image(&engine).await;
    let mut stuck = vec![];
    for n in 0..10 {
        let id = create_container(&engine, &format!("stuck{n}"), &["true"], |_| {})
            .await
            .unwrap();
        let dataset = format!("zroot/kleene/container/{id}");
        for _ in 0..40 {
            host.fail_next(
                &format!("destroy -r {dataset}"),
                "cannot destroy 'x': dataset is busy\n",
            );
        }
        engine.remove_container(id).await.unwrap();
        stuck.push(dataset);
    }
    let mut others = vec![];
    for n in 0..3 {
        let id = create_container(&engine, &format!("web{n}"), &["true"], |_| {})
            .await
            .unwrap();
        engine.remove_container(id.clone()).await.unwrap();
        others.push(format!("zroot/kleene/container/{id}"));
    }
    // Ten busy datasets, each failing again and again, in front of three that zfs destroys at
    // once: the three go within seconds (a back-off shared by the queue took over a minute), and
    // leave the queue.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while others.iter().any(|d| host.exists(d)) || engine.reaper.queued().len() > stuck.len() {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            engine.reaper.queued()
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(stuck.iter().all(|d| host.exists(d)));
    assert_eq!(engine.reaper.queued().len(), 10);
}

#[tokio::test]
async fn concurrent_removals_of_one_container_remove_it_once() {
    let (engine, host, _runtime) = fake::engine();
    base_image(&engine).await;
    create_container(&engine, "web", &["true"], |_| {})
        .await
        .unwrap();
    let tries: Vec<_> = (0..5)
        .map(|_| {
            let engine = Arc::clone(&engine);
            tokio::spawn(async move { engine.remove_container("web".into()).await })
        })
        .collect();
    let mut removed = 0;
    for task in tries {
        match task.await.unwrap() {
            Ok(_) => removed += 1,
            Err(err) => assert!(matches!(err, EngineError::NotFound(_)), "{err:?}"),
        }
    }
    assert_eq!(removed, 1);
    fake::settle(&engine).await;
    let destroys = host
        .lines()
        .iter()
        .filter(|l| l.starts_with("zfs destroy"))
        .count();
    assert_eq!(destroys, 1, "{:?}", host.lines());
    assert_consistent(&engine, &host).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attached_exec_gives_its_output_and_exit_code_and_the_container_stops_with_it() {
    let (engine, host, runtime) = fake::engine();
    base_image(&engine).await;
    let id = create_container(
        &engine,
        "job",
        &["sh", "-c", "read line; echo got $line; exit 3"],
        |c| {
            c.env = Some(vec!["GREETING=hi".into()]);
        },
    )
    .await
    .unwrap();
    let exec = engine
        .create_exec(ExecConfig {
            container_id: "job".into(),
            cmd: vec![],
            env: vec![],
            user: String::new(),
            tty: false,
        })
        .await
        .unwrap();
    let running = engine.start_exec(&exec.id, true, None).await.unwrap();
    let mut client = Collect {
        end_input: true,
        ..Collect::default()
    };
    let message = engine.attach(running, &mut client).await;
    assert_eq!(String::from_utf8_lossy(&client.output), "got\n");
    assert_eq!(
        message,
        format!(
            "executable {} and its container exited with exit-code 3",
            exec.id
        )
    );
    let spec = &runtime.started()[0];
    assert_eq!(spec.container_id, id);
    assert_eq!(
        spec.rootfs,
        host.mountpoint(&format!("zroot/kleene/container/{id}"))
            .unwrap()
    );
    assert!(spec.env.contains(&"GREETING=hi".to_owned()));
    assert!(
        runtime.cleanups().contains(&id),
        "a container that stopped is cleaned up"
    );
    // The instance is gone once it ended.
    let err = engine.start_exec(&exec.id, true, None).await.unwrap_err();
    assert!(err.contains("could not find execution instance"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execs_join_a_running_container_and_stop_ends_it() {
    let (engine, _host, runtime) = fake::engine();
    base_image(&engine).await;
    let id = create_container(&engine, "svc", &["sleep", "30"], |_| {})
        .await
        .unwrap();
    start(&engine, "svc").await;
    assert!(
        engine
            .inspect_container("svc".into())
            .await
            .unwrap()
            .container
            .running
    );
    let listed = engine.list_containers(false).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].jid.is_some(), "a running container has a jid");

    // A running container is neither removed nor started again.
    let err = engine.remove_container("svc".into()).await.unwrap_err();
    assert!(matches!(err, EngineError::Conflict(_)), "{err:?}");
    assert_eq!(status(Operation::ContainerRemove, &err), 409);

    let exec = engine
        .create_exec(ExecConfig {
            container_id: id.clone(),
            cmd: vec!["echo".into(), "inside".into()],
            env: vec![],
            user: String::new(),
            tty: false,
        })
        .await
        .unwrap();
    let running = engine.start_exec(&exec.id, false, None).await.unwrap();
    assert!(!running.first);
    let mut client = Collect::default();
    let message = engine.attach(running, &mut client).await;
    assert_eq!(String::from_utf8_lossy(&client.output), "inside\n");
    assert_eq!(message, format!("{} has exited with exit-code 0", exec.id));
    assert_eq!(runtime.started().len(), 2);

    engine.stop_container("svc".into()).await.unwrap();
    assert!(
        !engine
            .inspect_container("svc".into())
            .await
            .unwrap()
            .container
            .running
    );
    let err = engine.stop_container("svc".into()).await.unwrap_err();
    assert!(err.to_string().contains("not running"), "{err}");
    assert_eq!(status(Operation::ContainerStop, &err), 404);

    // An exec that must not start its container is refused while it is stopped.
    let exec = engine
        .create_exec(ExecConfig {
            container_id: id,
            cmd: vec![],
            env: vec![],
            user: String::new(),
            tty: false,
        })
        .await
        .unwrap();
    let err = engine.start_exec(&exec.id, false, None).await.unwrap_err();
    assert!(err.contains("'start_container' is false"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_exec_ends_one_process_or_the_whole_container() {
    let (engine, _host, _runtime) = fake::engine();
    base_image(&engine).await;
    let id = create_container(&engine, "svc", &["sleep", "30"], |_| {})
        .await
        .unwrap();
    let new_exec = |cmd: Vec<String>| {
        let engine = Arc::clone(&engine);
        let id = id.clone();
        async move {
            engine
                .create_exec(ExecConfig {
                    container_id: id,
                    cmd,
                    env: vec![],
                    user: String::new(),
                    tty: false,
                })
                .await
                .unwrap()
                .id
        }
    };
    let first = new_exec(vec![]).await;
    let running = engine.start_exec(&first, true, None).await.unwrap();
    engine.detach(running);
    let second = new_exec(vec!["sleep".into(), "30".into()]).await;
    let running = engine.start_exec(&second, false, None).await.unwrap();
    engine.detach(running);

    engine
        .stop_exec(second.clone(), false, false)
        .await
        .unwrap();
    assert!(
        engine
            .inspect_container("svc".into())
            .await
            .unwrap()
            .container
            .running
    );
    let err = engine.stop_exec(second, false, false).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("could not find execution instance"),
        "{err}"
    );

    engine.stop_exec(first, false, true).await.unwrap();
    assert!(
        !engine
            .inspect_container("svc".into())
            .await
            .unwrap()
            .container
            .running
    );

    // An instance never started is simply forgotten.
    let idle = new_exec(vec![]).await;
    engine.stop_exec(idle.clone(), false, false).await.unwrap();
    assert!(engine.start_exec(&idle, true, None).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_start_leaves_the_container_stopped_and_usable() {
    let (engine, _host, runtime) = fake::engine();
    base_image(&engine).await;
    create_container(&engine, "svc", &["sleep", "30"], |_| {})
        .await
        .unwrap();
    runtime.fail_next_start("cannot make the namespaces");
    let exec = engine
        .create_exec(ExecConfig {
            container_id: "svc".into(),
            cmd: vec![],
            env: vec![],
            user: String::new(),
            tty: false,
        })
        .await
        .unwrap();
    let err = engine.start_exec(&exec.id, true, None).await.unwrap_err();
    assert!(err.contains("cannot make the namespaces"), "{err}");
    assert!(
        !engine
            .inspect_container("svc".into())
            .await
            .unwrap()
            .container
            .running
    );
    engine.remove_container("svc".into()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_removes_only_stopped_containers_not_kept() {
    let (engine, host, _runtime) = fake::engine();
    base_image(&engine).await;
    let running = create_container(&engine, "running", &["sleep", "30"], |_| {})
        .await
        .unwrap();
    let kept = create_container(&engine, "kept", &["true"], |c| c.persist = Some(true))
        .await
        .unwrap();
    let plain = create_container(&engine, "plain", &["true"], |_| {})
        .await
        .unwrap();
    start(&engine, "running").await;
    let removed = engine.prune_containers().await.unwrap();
    assert_eq!(removed, std::slice::from_ref(&plain));
    fake::settle(&engine).await;
    assert!(host.exists(&format!("zroot/kleene/container/{running}")));
    assert!(host.exists(&format!("zroot/kleene/container/{kept}")));
    assert!(!host.exists(&format!("zroot/kleene/container/{plain}")));
    assert_consistent(&engine, &host).await;
    engine.stop_container("running".into()).await.unwrap();

    // Images: an unused untagged image goes with a plain prune, a used one never.
    let untagged = create_image(
        &engine,
        image_config(serde_json::json!({"method": "zfs-copy", "zfs_dataset": "zroot/data"})),
    )
    .await
    .unwrap();
    assert_eq!(engine.prune_images(false).await.unwrap(), [untagged]);
    assert_eq!(
        engine.prune_images(true).await.unwrap(),
        Vec::<String>::new()
    );
    assert_consistent(&engine, &host).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_stops_what_an_earlier_daemon_left_running_and_starts_on_startup_containers() {
    let (engine, host, runtime) = fake::engine();
    base_image(&engine).await;
    let left = create_container(&engine, "left", &["sleep", "30"], |_| {})
        .await
        .unwrap();
    let auto = create_container(&engine, "auto", &["sleep", "30"], |c| {
        c.restart_policy = Some(RestartPolicy::OnStartup);
    })
    .await
    .unwrap();
    // A process of `left` a daemon that died started: the new daemon cannot read its output.
    let mut orphan = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    runtime.adopt(&left, &orphan);

    let (again, _, _) = fake::engine_over(engine.store.clone(), host, runtime.clone());
    again.startup().await.unwrap();
    assert!(
        orphan.wait().unwrap().code().is_none(),
        "killed by a signal"
    );
    let running: Vec<String> = again
        .list_containers(false)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.container.id)
        .collect();
    assert_eq!(running, std::slice::from_ref(&auto));
    again.stop_container(auto).await.unwrap();
}

#[tokio::test]
async fn startup_finishes_or_undoes_what_a_crash_left() {
    let (engine, host, runtime) = fake::engine();
    base_image(&engine).await;
    let image_root = host.mountpoint(fake::ROOT).unwrap();

    // Killed during an image fetch: a dataset with no snapshot and no row, and the download.
    host.create("zroot/kleene/image/aaaaaaaaaaaa");
    std::fs::write(image_root.join(".fetch-aaaaaaaaaaaa"), b"partial").unwrap();
    // Killed during a container creation, after the clone.
    let base_dataset = engine.list_images().await.unwrap()[0].dataset.clone();
    let fake_clone = |id: &str| {
        let out = kleene_runner::Runner::run(
            &*host,
            &kleene_runner::CommandSpec::new("zfs").args([
                "clone".to_owned(),
                format!("{base_dataset}@image"),
                format!("zroot/kleene/container/{id}"),
            ]),
        )
        .unwrap();
        assert!(out.succeeded(), "{}", out.stderr_text());
    };
    fake_clone("bbbbbbbbbbbb");
    // Removed, its destroy still queued when the daemon died: no row, no intent.
    fake_clone("cccccccccccc");
    // Killed during a removal (in prune): the dataset went, the row stayed.
    let gone = create_container(&engine, "gone", &["true"], |_| {})
        .await
        .unwrap();
    let _ = kleene_runner::Runner::run(
        &*host,
        &kleene_runner::CommandSpec::new("zfs").args([
            "destroy",
            "-r",
            &format!("zroot/kleene/container/{gone}"),
        ]),
    )
    .unwrap();
    // Killed during a removal, before the destroy: both stay, and the intent says to remove.
    let doomed = create_container(&engine, "doomed", &["true"], |_| {})
        .await
        .unwrap();
    // A container that is fine.
    let kept = create_container(&engine, "kept", &["true"], |_| {})
        .await
        .unwrap();
    let record = |kind: &'static str, object: String| {
        let store = engine.store.clone();
        async move {
            store
                .write(move |db| db.add_intent(kind, &object))
                .await
                .unwrap()
        }
    };
    record("image", "aaaaaaaaaaaa".into()).await;
    record("container-create", "bbbbbbbbbbbb".into()).await;
    record("container-remove", doomed.clone()).await;

    let (again, host, _) = fake::engine_over(engine.store.clone(), host, runtime);
    again.startup().await.unwrap();
    assert!(!host.exists("zroot/kleene/image/aaaaaaaaaaaa"));
    assert!(!image_root.join(".fetch-aaaaaaaaaaaa").exists());
    fake::settle(&again).await;
    assert!(!host.exists("zroot/kleene/container/bbbbbbbbbbbb"));
    assert!(!host.exists("zroot/kleene/container/cccccccccccc"));
    for id in [&gone, &doomed] {
        assert!(again.find_container(id).await.unwrap().is_none(), "{id}");
    }
    assert!(again.find_container(&kept).await.unwrap().is_some());
    assert_consistent(&again, &host).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creations_with_one_tag_leave_it_on_one_image_and_say_so() {
    let (engine, host, _runtime) = fake::engine();
    let tries: Vec<_> = (0..5)
        .map(|_| {
            let engine = Arc::clone(&engine);
            tokio::spawn(async move {
                create_image_saying(
                    &engine,
                    image_config(serde_json::json!({"method": "zfs-copy", "zfs_dataset": "zroot/data", "tag": "same"})),
                )
                .await
            })
        })
        .collect();
    let mut created = vec![];
    let mut told = 0;
    for task in tries {
        let (result, said) = task.await.unwrap();
        // zfs-copy snapshots the source under the image's ID: the five do not collide.
        created.push(result.unwrap());
        told += usize::from(said.contains("the tag same:latest moved here from image"));
    }
    assert_eq!(
        told, 4,
        "every creation but the first says whose tag it took"
    );
    let images = engine.list_images().await.unwrap();
    assert_eq!(images.len(), 5);
    let tagged: Vec<_> = images.iter().filter(|i| i.name == "same").collect();
    assert_eq!(tagged.len(), 1, "{images:?}");
    assert_consistent(&engine, &host).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_racing_a_removal_never_bring_the_container_back() {
    let (engine, host, _runtime) = fake::engine();
    base_image(&engine).await;
    let id = create_container(&engine, "web", &["true"], |_| {})
        .await
        .unwrap();
    let mut tasks = vec![];
    for n in 0..5 {
        let engine = Arc::clone(&engine);
        let id = id.clone();
        tasks.push(tokio::spawn(async move {
            let config = ContainerConfig {
                name: Some(format!("web{n}")),
                ..ContainerConfig::default()
            };
            engine.update_container(id, config).await.map(|_| ())
        }));
    }
    let remover = {
        let engine = Arc::clone(&engine);
        let id = id.clone();
        tokio::spawn(async move { engine.remove_container(id).await.map(|_| ()) })
    };
    remover.await.unwrap().unwrap();
    for task in tasks {
        if let Err(err) = task.await.unwrap() {
            assert!(matches!(err, EngineError::NotFound(_)), "{err:?}");
        }
    }
    assert!(engine.find_container(&id).await.unwrap().is_none());
    assert_consistent(&engine, &host).await;
}

fn volume_mount(source: &str, destination: &str, read_only: bool) -> kleene_api::MountPointConfig {
    kleene_api::MountPointConfig {
        kind: kleene_api::MountPointType::Volume,
        source: source.into(),
        destination: destination.into(),
        read_only,
        setuid: false,
        devices: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volumes_are_made_on_first_use_filled_once_and_outlive_containers() {
    let (engine, host, runtime) = fake::engine();
    // The image has /srv/conf/app.conf, and /conf-link -> /srv/conf.
    let data = host.mountpoint("zroot/data").unwrap();
    std::fs::create_dir_all(data.join("srv/conf")).unwrap();
    std::fs::write(data.join("srv/conf/app.conf"), "x=1\n").unwrap();
    std::os::unix::fs::symlink("/srv/conf", data.join("conf-link")).unwrap();
    base_image(&engine).await;

    // A new volume gets the image's files at its destination, through a link inside the root.
    let id = create_container(&engine, "web", &["sleep", "30"], |c| {
        c.mounts = Some(vec![volume_mount("conf", "/conf-link", false)]);
    })
    .await
    .unwrap();
    let volume = host.mountpoint("zroot/kleene/volumes/conf").unwrap();
    assert_eq!(
        std::fs::read_to_string(volume.join("app.conf")).unwrap(),
        "x=1\n"
    );
    // An existing volume is never written over.
    std::fs::write(volume.join("app.conf"), "mine\n").unwrap();
    let other = create_container(&engine, "web2", &["true"], |c| {
        c.mounts = Some(vec![volume_mount("conf", "/srv/conf", true)]);
    })
    .await
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(volume.join("app.conf")).unwrap(),
        "mine\n"
    );
    let inspect = engine.inspect_volume("conf".into()).await.unwrap();
    let users: Vec<_> = inspect
        .mountpoints
        .iter()
        .map(|m| (m.container_id.clone(), m.destination.clone(), m.read_only))
        .collect();
    assert_eq!(
        users,
        [
            (id.clone(), "/conf-link".to_owned(), false),
            (other.clone(), "/srv/conf".to_owned(), true)
        ]
    );
    engine.remove_container(other).await.unwrap();

    // Started: the runtime is asked to mount the volume's dataset.
    start(&engine, "web").await;
    let spec = runtime.started().pop().unwrap();
    assert_eq!(
        spec.mounts,
        [crate::platform::Mount {
            source: volume.clone(),
            destination: "/conf-link".into(),
            read_only: false,
            setuid: false,
            devices: false,
        }]
    );
    // In use by a running container: refused, and kept.
    let err = engine.remove_volume("conf".into()).await.unwrap_err();
    assert_eq!(status(Operation::VolumeRemove, &err), 409, "{err}");
    assert!(err.to_string().contains(&id), "{err}");
    assert!(host.exists("zroot/kleene/volumes/conf"));
    assert_eq!(engine.prune_volumes().await.unwrap(), Vec::<String>::new());
    engine.stop_container("web".into()).await.unwrap();

    // The container goes, the volume and its data stay; then nothing uses it and prune takes it.
    engine.remove_container("web".into()).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(volume.join("app.conf")).unwrap(),
        "mine\n"
    );
    assert!(engine
        .inspect_volume("conf".into())
        .await
        .unwrap()
        .mountpoints
        .is_empty());
    assert_eq!(engine.prune_volumes().await.unwrap(), ["conf"]);
    assert!(!host.exists("zroot/kleene/volumes/conf"));
    assert_consistent(&engine, &host).await;
}

#[tokio::test]
async fn a_link_out_of_the_image_never_copies_host_files_into_a_volume() {
    let (engine, host, _runtime) = fake::engine();
    let secret = tempfile::tempdir().unwrap();
    std::fs::write(secret.path().join("shadow"), "host secret\n").unwrap();
    let data = host.mountpoint("zroot/data").unwrap();
    std::os::unix::fs::symlink(secret.path(), data.join("data")).unwrap();
    std::os::unix::fs::symlink("../../../../../../../..", data.join("up")).unwrap();
    base_image(&engine).await;
    for (name, destination) in [("v1", "/data"), ("v2", "/up/etc")] {
        create_container(&engine, name, &["true"], |c| {
            c.mounts = Some(vec![volume_mount(name, destination, false)]);
        })
        .await
        .unwrap();
        let volume = host
            .mountpoint(&format!("zroot/kleene/volumes/{name}"))
            .unwrap();
        assert_eq!(
            std::fs::read_dir(&volume).unwrap().count(),
            0,
            "{destination}: nothing of the host's"
        );
    }
    assert_eq!(std::fs::read_dir(secret.path()).unwrap().count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_whose_mounts_cannot_be_made_leaves_nothing() {
    let (engine, host, _runtime) = fake::engine();
    base_image(&engine).await;
    host.fail_next("zfs create zroot/kleene/volumes/", "out of space\n");
    let err = create_container(&engine, "web", &["true"], |c| {
        c.mounts = Some(vec![volume_mount("data", "/data", false)]);
    })
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains("could not create volume data"),
        "{err}"
    );
    assert_eq!(
        host.below("zroot/kleene/container"),
        ["zroot/kleene/container"]
    );
    assert_eq!(host.below("zroot/kleene/volumes"), ["zroot/kleene/volumes"]);
    assert!(engine.list_volumes().await.unwrap().is_empty());
    assert_eq!(intents(&engine).await, vec![]);

    // Refused before anything is made.
    for (mount, words) in [
        (
            volume_mount("../x", "/data", false),
            "invalid volume name '../x'",
        ),
        (
            volume_mount(&"v".repeat(300), "/data", false),
            "at most 255 bytes",
        ),
        (
            volume_mount("data", "data", false),
            "is not an absolute path",
        ),
        (
            kleene_api::MountPointConfig {
                kind: kleene_api::MountPointType::Nullfs,
                source: "relative/dir".into(),
                destination: "/mnt".into(),
                read_only: false,
                setuid: false,
                devices: false,
            },
            "mount source 'relative/dir' is not an absolute path",
        ),
        (
            kleene_api::MountPointConfig {
                kind: kleene_api::MountPointType::Nullfs,
                source: "/nonexistent/kleene-test".into(),
                destination: "/mnt".into(),
                read_only: false,
                setuid: false,
                devices: false,
            },
            "mount source '/nonexistent/kleene-test' cannot be used",
        ),
    ] {
        let before = host.lines().len();
        let err = create_container(&engine, "web", &["true"], |c| c.mounts = Some(vec![mount]))
            .await
            .unwrap_err();
        assert!(err.to_string().contains(words), "{err}");
        assert_eq!(status(Operation::ContainerCreate, &err), 404);
        assert_eq!(host.lines().len(), before, "nothing ran: {err}");
    }
    assert_consistent(&engine, &host).await;
}

#[tokio::test]
async fn volume_names_and_sizes_are_checked_and_creation_is_idempotent() {
    let (engine, host, _runtime) = fake::engine();
    let made = engine
        .create_volume(kleene_api::VolumeConfig {
            name: "db".into(),
            size: Some("10G".into()),
        })
        .await
        .unwrap();
    assert_eq!(made.id, "db");
    assert!(host
        .lines()
        .contains(&"zfs create -o quota=10G zroot/kleene/volumes/db".to_owned()));
    let again = engine
        .create_volume(kleene_api::VolumeConfig {
            name: "db".into(),
            size: None,
        })
        .await
        .unwrap();
    assert_eq!(again.id, "db");
    assert_eq!(engine.list_volumes().await.unwrap().len(), 1);
    for (name, size) in [("../x", None), ("a/b", None), ("ok", Some("10G; rm -rf /"))] {
        let err = engine
            .create_volume(kleene_api::VolumeConfig {
                name: name.into(),
                size: size.map(str::to_owned),
            })
            .await
            .unwrap_err();
        assert_eq!(status(Operation::VolumeCreate, &err), 400, "{err}");
    }
    let err = engine.remove_volume("nope".into()).await.unwrap_err();
    assert_eq!(status(Operation::VolumeRemove, &err), 404);
    assert_eq!(err.to_string(), "No such volume");
    engine.remove_volume("db".into()).await.unwrap();
    assert_eq!(host.below("zroot/kleene/volumes"), ["zroot/kleene/volumes"]);
}
