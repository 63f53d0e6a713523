//! Containers: creation undone when a step fails, removal, failed starts, prune, updates racing
//! removals.

use super::*;

#[tokio::test]
async fn a_failed_container_creation_leaves_nothing() {
    let (engine, host, runtime) = fake::engine();
    base_image(&engine).await;
    host.fail_next("zfs clone", "cannot create 'x': out of space\n");
    let err = create_container(&engine, "web", &["true"], |_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::Host { .. }), "{err:?}");
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
    assert!(matches!(err, EngineError::Host { .. }), "{err:?}");
    assert!(
        err.to_string().contains("cannot make the namespaces"),
        "{err}"
    );
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
    assert_eq!(removed.answer, std::slice::from_ref(&plain));
    assert!(removed.in_background.is_empty());
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
