//! `GET /info`: what the daemon says about itself (an addition to the Kleened API 0.1.1).

use std::sync::Arc;

use http::StatusCode;
use kleene_api::Info;
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::Filter;

use super::{reply, with_engine};
use crate::engine::Engine;

pub(super) fn routes(engine: Arc<Engine>) -> BoxedFilter<(Response,)> {
    warp::path!("info")
        .and(warp::get())
        .and(with_engine(engine))
        .then(info)
        .boxed()
}

/// The daemon's version, its API version, the host's OS and runtime, the network driver a
/// container connected to a network gets by default, the space of `kleene_root`, how many images,
/// containers (running ones too), networks and volumes it has, and its uptime.
#[utoipa::path(
    get, path = "/info", operation_id = "System.Info", tag = "System",
    responses((status = 200, description = "the daemon and its host", body = Info))
)]
pub(super) async fn info(engine: Arc<Engine>) -> Response {
    reply::json(StatusCode::OK, &engine.info().await)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use http::StatusCode;

    use crate::platform::{ProcessSpec, Runtime, RuntimeError, Spawned};
    use crate::store::testdata::{container, image, network};
    use crate::store::Store;

    /// A runtime in which exactly the containers it was made with run (or which cannot tell).
    #[derive(Debug)]
    struct Running(Option<Vec<String>>);

    impl Runtime for Running {
        fn start(&self, _: &ProcessSpec) -> Result<Spawned, RuntimeError> {
            Err(RuntimeError::Host("not in this test".into()))
        }
        fn exec(&self, _: &ProcessSpec) -> Result<Spawned, RuntimeError> {
            Err(RuntimeError::Host("not in this test".into()))
        }
        fn is_running(&self, id: &str) -> Result<bool, RuntimeError> {
            Ok(self.running()?.iter().any(|running| running == id))
        }
        fn running(&self) -> Result<Vec<String>, RuntimeError> {
            self.0
                .clone()
                .ok_or_else(|| RuntimeError::Host("cannot read cgroup.events".into()))
        }
        fn stop(&self, _: &str, _: std::time::Duration) -> Result<(), RuntimeError> {
            Ok(())
        }
        fn cleanup(&self, _: &str) -> Result<(), RuntimeError> {
            Ok(())
        }
        fn update(
            &self,
            _: &str,
            _: kleene_api::NetworkDriver,
            _: &[String],
        ) -> Result<(), RuntimeError> {
            Ok(())
        }
    }

    /// `GET /info` of a daemon with two containers (one running by `runtime`), one image and one
    /// network, whose host answers uname and zfs as `replies` say.
    async fn info(
        runtime: Running,
        replies: &[Result<&str, &str>],
    ) -> (serde_json::Value, Vec<String>) {
        let store = Store::open_in_memory().unwrap();
        store
            .write(|db| {
                db.insert_image(&image(
                    "i1i1i1aaaaaa",
                    "base",
                    "latest",
                    "2024-01-01T00:00:00Z",
                ))?;
                for id in ["c1c1c1aaaaaa", "c2c2c2aaaaaa"] {
                    db.insert_container(&container(
                        id,
                        None,
                        "i1i1i1aaaaaa",
                        "2024-01-02T00:00:00Z",
                    ))?;
                }
                db.insert_network(&network("n1n1n1aaaaaa", "default"))
            })
            .await
            .unwrap();
        let (engine, runner) = crate::engine::test_engine_with(store, Some(Arc::new(runtime)));
        for reply in replies {
            match reply {
                Ok(stdout) => runner.push_ok(stdout),
                Err(stderr) => runner.push_err(1, stderr),
            };
        }
        let res = warp::test::request()
            .path("/info")
            .reply(&super::super::routes(engine))
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        (serde_json::from_slice(res.body()).unwrap(), runner.lines())
    }

    #[tokio::test]
    async fn info_counts_objects_and_reads_the_roots_space_from_zfs() {
        let (info, commands) = info(
            Running(Some(vec!["c2c2c2aaaaaa".into(), "not-ours".into()])),
            &[Ok("Linux 6.1.0-18-amd64 x86_64\n"), Ok("1.52G\t3.10G\n")],
        )
        .await;
        assert_eq!(
            commands,
            [
                "uname -s -r -m",
                "zfs list -H -o used,available zroot/kleene"
            ]
        );
        assert_eq!(info["os"], "linux");
        assert_eq!(info["runtime"], "namespaces");
        assert_eq!(info["os_version"], "6.1.0-18-amd64");
        assert_eq!(info["machine"], "x86_64");
        assert_eq!(info["kleene_root"], "zroot/kleene");
        assert_eq!(info["kleene_root_used"], "1.52G");
        assert_eq!(info["kleene_root_available"], "3.10G");
        assert_eq!(info["images"], 1);
        assert_eq!(info["containers"], 2);
        assert_eq!(info["containers_running"], 1);
        assert_eq!(info["networks"], 1);
        assert_eq!(info["volumes"], 0);
        assert!(info["uptime_seconds"].as_u64().is_some(), "{info}");
    }

    #[tokio::test]
    async fn figures_the_daemon_cannot_read_are_null_and_the_rest_is_answered() {
        let (info, _) = info(
            Running(None),
            &[
                Err("uname: cannot"),
                Err("cannot open 'zroot/kleene': dataset does not exist"),
            ],
        )
        .await;
        for key in [
            "os_version",
            "machine",
            "kleene_root_used",
            "kleene_root_available",
            "containers_running",
        ] {
            assert!(info[key].is_null(), "{key}: {info}");
        }
        assert_eq!(info["containers"], 2, "{info}");
        assert_eq!(info["default_network_driver"], "ipnet");
        assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    }
}
