//! Images: made by fetch, archive and copy, undone when a step fails, tags under concurrency.

use super::*;

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

    // A source that does not exist (in the reference's words), or belongs to a container:
    // refused before anything is made.
    for (source, said) in [
        ("zroot/missing", "invalid dataset"),
        ("zroot/kleene/container/x", "zroot/kleene/container/x"),
    ] {
        let err = create_image(
            &engine,
            image_config(serde_json::json!({"tag": "base", "zfs_dataset": source})),
        )
        .await
        .unwrap_err();
        assert!(err.contains(said), "{err}");
    }
    assert_consistent(&engine, &host).await;
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
