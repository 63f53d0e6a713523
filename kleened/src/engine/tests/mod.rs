//! The engine driven through its fakes (engine/fake.rs): image and container creation, their
//! undoing when a step fails, removal, prune, execs, stop, start-up and crash recovery, all
//! without root. What the store says is checked against what the fake host holds.

use std::sync::Arc;

use kleene_api::{ContainerConfig, ExecConfig, ImageCreateConfig, RestartPolicy};

use super::fake::{self, FakeHost};
use super::{ClientEvent, Engine, EngineError};
use crate::engine::exec::Client;

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

mod containers;
mod exec;
mod images;
mod recovery;
mod volumes;
