//! Volume routes.

use std::sync::Arc;

use http::StatusCode;
use kleene_api::{
    ErrorResponse, IdResponse, ValidationErrors, Volume, VolumeConfig, VolumeInspect,
};
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::Filter;

use super::reply::{self, Operation};
use super::request::json_body;
use super::with_engine;
use crate::engine::Engine;

pub(super) fn routes(engine: Arc<Engine>) -> BoxedFilter<(Response,)> {
    let list = warp::path!("volumes" / "list")
        .and(warp::get())
        .and(with_engine(engine.clone()))
        .then(list);
    let inspect = warp::path!("volumes" / String / "inspect")
        .and(warp::get())
        .and(with_engine(engine.clone()))
        .then(inspect);
    let create = warp::path!("volumes" / "create")
        .and(warp::post())
        .and(json_body::<VolumeConfig>())
        .and(with_engine(engine.clone()))
        .then(create);
    let remove = warp::path!("volumes" / String)
        .and(warp::delete())
        .and(with_engine(engine.clone()))
        .then(remove);
    let prune = warp::path!("volumes" / "prune")
        .and(warp::post())
        .and(with_engine(engine))
        .then(prune);
    list.or(inspect)
        .unify()
        .or(create)
        .unify()
        .or(remove)
        .unify()
        .or(prune)
        .unify()
        .boxed()
}

/// Create a volume, the dataset `<kleene_root>/volumes/<name>`; a volume of that name that exists
/// is answered as it is.
#[utoipa::path(
    post, path = "/volumes/create", operation_id = "Volume.Create", tag = "Volume",
    request_body = VolumeConfig,
    responses(
        (status = 201, description = "the volume's name", body = IdResponse),
        (status = 400, description = "an invalid name or size", body = ErrorResponse),
        (status = 422, description = "the body does not fit the schema", body = ValidationErrors),
        (status = 500, description = "the host failed", body = ErrorResponse),
    )
)]
pub(super) async fn create(config: VolumeConfig, engine: Arc<Engine>) -> Response {
    reply::respond(
        Operation::VolumeCreate,
        StatusCode::CREATED,
        engine.create_volume(config).await,
    )
}

/// Remove a volume and its data. Refused while a running container mounts it; stopped containers
/// that mount it lose the mount.
#[utoipa::path(
    delete, path = "/volumes/{volume_name}", operation_id = "Volume.Remove", tag = "Volume",
    params(("volume_name" = String, Path, description = "volume name")),
    responses(
        (status = 200, description = "the volume's name", body = IdResponse),
        (status = 404, description = "no such volume, or a running container mounts it", body = ErrorResponse),
        (status = 500, description = "the host failed", body = ErrorResponse),
    )
)]
pub(super) async fn remove(volume_name: String, engine: Arc<Engine>) -> Response {
    reply::respond(
        Operation::VolumeRemove,
        StatusCode::OK,
        engine.remove_volume(volume_name).await,
    )
}

/// Remove every volume no container mounts.
#[utoipa::path(
    post, path = "/volumes/prune", operation_id = "Volume.Prune", tag = "Volume",
    responses((status = 200, description = "the names of the removed volumes", body = [String]))
)]
pub(super) async fn prune(engine: Arc<Engine>) -> Response {
    reply::respond(
        Operation::List,
        StatusCode::OK,
        engine.prune_volumes().await,
    )
}

/// List volumes, newest first.
#[utoipa::path(
    get, path = "/volumes/list", operation_id = "Volume.List", tag = "Volume",
    responses((status = 200, description = "the volumes", body = [Volume]))
)]
pub(super) async fn list(engine: Arc<Engine>) -> Response {
    reply::respond(Operation::List, StatusCode::OK, engine.list_volumes().await)
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
    reply::respond(
        Operation::Lookup,
        StatusCode::OK,
        engine.inspect_volume(volume_name).await,
    )
}
