//! Execs: attached and detached processes, joining a running container, stopping one or all.

use super::*;

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
    assert!(matches!(err, EngineError::NotFound(_)), "{err:?}");
    assert!(
        err.to_string()
            .contains("could not find execution instance"),
        "{err}"
    );
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
    assert!(matches!(err, EngineError::Conflict(_)), "{err:?}");

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
    assert!(matches!(err, EngineError::Conflict(_)), "{err:?}");
    assert!(
        err.to_string().contains("'start_container' is false"),
        "{err}"
    );
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
