//! What outlives a request: the reaper's destroys, and start-up after a crash or an earlier daemon.

use super::*;

#[tokio::test]
async fn a_removal_answers_once_its_dataset_is_gone_and_names_one_zfs_keeps_busy() {
    let (engine, host, _runtime) = fake::engine();
    base_image(&engine).await;
    let destroys = |host: &fake::FakeHost| {
        host.lines()
            .iter()
            .filter(|l| l.starts_with("zfs destroy"))
            .count()
    };

    // Busy once (as zfs-fuse is right after a container ran): tried again before the answer.
    let id = create_container(&engine, "web", &["true"], |_| {})
        .await
        .unwrap();
    host.fail_next("zfs destroy", "cannot destroy 'x': dataset is busy\n");
    let removed = engine.remove_container("web".into()).await.unwrap();
    assert_eq!(removed.answer.id, id);
    assert!(removed.in_background.is_empty(), "{removed:?}");
    assert!(engine.find_container("web").await.unwrap().is_none());
    assert!(!host.exists(&format!("zroot/kleene/container/{id}")));
    assert_eq!(
        destroys(&host),
        2,
        "busy once, then destroyed: {:?}",
        host.lines()
    );

    // Busy past the deadline: the answer names it, and the reaper destroys it later.
    let id = create_container(&engine, "db", &["true"], |_| {})
        .await
        .unwrap();
    let dataset = format!("zroot/kleene/container/{id}");
    for _ in 0..12 {
        host.fail_next(
            &format!("destroy -r {dataset}"),
            "cannot destroy 'x': dataset is busy\n",
        );
    }
    let removed = engine.remove_container("db".into()).await.unwrap();
    assert_eq!(removed.in_background, std::slice::from_ref(&dataset));
    assert_eq!(
        removed.warnings().collect::<Vec<_>>(),
        [format!(
            "dataset {dataset} is busy: it is destroyed in the background"
        )]
    );
    assert!(engine.find_container("db").await.unwrap().is_none());
    assert!(
        host.exists(&dataset),
        "still busy when the removal answered"
    );
    fake::settle(&engine).await;
    assert!(!host.exists(&dataset));
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
    // Killed during an image removal, after the destroy: the row stayed without its dataset (the
    // intent is there too, and a row alone goes as well: the second image has none).
    let mut half_removed = vec![];
    for tag in ["half1", "half2"] {
        let id = create_image(
            &engine,
            image_config(serde_json::json!({"tag": tag, "zfs_dataset": "zroot/data"})),
        )
        .await
        .unwrap();
        let _ = kleene_runner::Runner::run(
            &*host,
            &kleene_runner::CommandSpec::new("zfs").args([
                "destroy",
                "-r",
                &format!("zroot/kleene/image/{id}"),
            ]),
        )
        .unwrap();
        half_removed.push(id);
    }
    // Killed during an image removal, before the destroy: both stay, and the intent says to remove.
    let doomed_image = create_image(
        &engine,
        image_config(serde_json::json!({"tag": "doomed", "zfs_dataset": "zroot/data"})),
    )
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
    record("image-remove", half_removed[0].clone()).await;
    record("image-remove", doomed_image.clone()).await;

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
    let images: Vec<String> = again
        .list_images()
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    for id in half_removed.iter().chain([&doomed_image]) {
        assert!(!images.contains(id), "image {id} is still listed");
    }
    assert!(!host.exists(&format!("zroot/kleene/image/{doomed_image}")));
    assert_eq!(images.len(), 1, "only the base image stays: {images:?}");
    assert_consistent(&again, &host).await;
}
