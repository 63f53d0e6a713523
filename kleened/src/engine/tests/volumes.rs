//! Volumes and mounts: made on first use, filled once, hostile links, names and sizes.

use super::*;

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
    assert!(matches!(err, EngineError::Conflict(_)), "{err:?}");
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
            "error ocurred while determining source type: :enoent ('/nonexistent/kleene-test'",
        ),
    ] {
        let before = host.lines().len();
        let err = create_container(&engine, "web", &["true"], |c| c.mounts = Some(vec![mount]))
            .await
            .unwrap_err();
        assert!(err.to_string().contains(words), "{err}");
        assert!(matches!(err, EngineError::Invalid(_)), "{err:?}");
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
        assert!(matches!(err, EngineError::Invalid(_)), "{err:?}");
    }
    let err = engine.remove_volume("nope".into()).await.unwrap_err();
    assert!(matches!(err, EngineError::NotFound(_)), "{err:?}");
    assert_eq!(err.to_string(), "No such volume");
    engine.remove_volume("db".into()).await.unwrap();
    assert_eq!(host.below("zroot/kleene/volumes"), ["zroot/kleene/volumes"]);
}
