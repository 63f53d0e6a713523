//! Volume routes.

use std::sync::Arc;

use http::StatusCode;
use kleene_api::{ErrorResponse, Volume, VolumeInspect};
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::Filter;

use super::error::{self, Operation};
use super::with_engine;
use crate::engine::Engine;

pub(super) fn routes(engine: Arc<Engine>) -> BoxedFilter<(Response,)> {
    let list = warp::path!("volumes" / "list")
        .and(warp::get())
        .and(with_engine(engine.clone()))
        .then(list);
    let inspect = warp::path!("volumes" / String / "inspect")
        .and(warp::get())
        .and(with_engine(engine))
        .then(inspect);
    list.or(inspect).unify().boxed()
}

/// List volumes, newest first.
#[utoipa::path(
    get, path = "/volumes/list", operation_id = "Volume.List", tag = "Volume",
    responses((status = 200, description = "the volumes", body = [Volume]))
)]
pub(super) async fn list(engine: Arc<Engine>) -> Response {
    error::respond(Operation::List, StatusCode::OK, engine.list_volumes().await)
}

/// Inspect a volume.
#[utoipa::path(
    get, path = "/volumes/{volume_name}/inspect", operation_id = "Volume.Inspect", tag = "Volume",
    params(("volume_name" = String, Path, description = "volume name")),
    responses(
        (status = 200, description = "the volume and its mounts", body = VolumeInspect),
        (status = 404, description = "no such volume", body = ErrorResponse),
    )
)]
pub(super) async fn inspect(volume_name: String, engine: Arc<Engine>) -> Response {
    error::respond(
        Operation::Lookup,
        StatusCode::OK,
        engine.inspect_volume(volume_name).await,
    )
}
