//! Container routes.

use std::collections::HashMap;
use std::sync::Arc;

use http::StatusCode;
use kleene_api::{
    ContainerConfig, ContainerInspect, ContainerSummary, ErrorResponse, IdResponse,
    ValidationErrors,
};
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::Filter;

use super::error::{self, Operation};
use super::request::{bool_param, json_body, query};
use super::with_engine;
use crate::engine::Engine;

pub(super) fn routes(engine: Arc<Engine>) -> BoxedFilter<(Response,)> {
    let list = warp::path!("containers" / "list")
        .and(warp::get())
        .and(query())
        .and(with_engine(engine.clone()))
        .then(list);
    let inspect = warp::path!("containers" / String / "inspect")
        .and(warp::get())
        .and(with_engine(engine.clone()))
        .then(inspect);
    let create = warp::path!("containers" / "create")
        .and(warp::post())
        .and(json_body::<ContainerConfig>())
        .and(with_engine(engine.clone()))
        .then(create);
    let prune = warp::path!("containers" / "prune")
        .and(warp::post())
        .and(with_engine(engine.clone()))
        .then(prune);
    let remove = warp::path!("containers" / String)
        .and(warp::delete())
        .and(with_engine(engine.clone()))
        .then(remove);
    let stop = warp::path!("containers" / String / "stop")
        .and(warp::post())
        .and(with_engine(engine.clone()))
        .then(stop);
    let update = warp::path!("containers" / String / "update")
        .and(warp::post())
        .and(json_body::<ContainerConfig>())
        .and(with_engine(engine))
        .then(update);
    list.or(inspect)
        .unify()
        .or(create)
        .unify()
        .or(prune)
        .unify()
        .or(remove)
        .unify()
        .or(stop)
        .unify()
        .or(update)
        .unify()
        .boxed()
}

/// List containers, newest first.
#[utoipa::path(
    get, path = "/containers/list", operation_id = "Container.List", tag = "Container",
    params(("all" = Option<bool>, Query, description = "list every container, not only those running")),
    responses(
        (status = 200, description = "the containers", body = [ContainerSummary]),
        (status = 422, description = "invalid query", body = ValidationErrors),
        (status = 500, description = "internal error", body = ErrorResponse),
    )
)]
pub(super) async fn list(params: HashMap<String, String>, engine: Arc<Engine>) -> Response {
    match bool_param(&params, "all") {
        Ok(all) => error::respond(
            Operation::List,
            StatusCode::OK,
            engine.list_containers(all.unwrap_or(false)).await,
        ),
        Err(errors) => error::invalid(errors),
    }
}

/// Inspect a container.
#[utoipa::path(
    get, path = "/containers/{container_id}/inspect", operation_id = "Container.Inspect", tag = "Container",
    params(("container_id" = String, Path, description = "container ID, ID prefix or name")),
    responses(
        (status = 200, description = "the container, its endpoints and mounts", body = ContainerInspect),
        (status = 404, description = "no such container, or the identifier is ambiguous", body = ErrorResponse),
        (status = 500, description = "internal error", body = ErrorResponse),
    )
)]
pub(super) async fn inspect(container_id: String, engine: Arc<Engine>) -> Response {
    error::respond(
        Operation::ContainerInspect,
        StatusCode::OK,
        engine.inspect_container(container_id).await,
    )
}

/// Create a container: a ZFS clone of the image's snapshot. Every refusal answers 404.
///
/// As in the reference, whose clients know no other refusal: an invalid configuration, an unknown
/// or ambiguous image, a name another container holds.
#[utoipa::path(
    post, path = "/containers/create", operation_id = "Container.Create", tag = "Container",
    request_body = ContainerConfig,
    responses(
        (status = 201, description = "the container's ID", body = IdResponse),
        (status = 404, description = "invalid configuration, no such image, an ambiguous image identifier, or the name is taken", body = ErrorResponse),
        (status = 422, description = "the body does not fit the schema", body = ValidationErrors),
        (status = 500, description = "internal error", body = ErrorResponse),
    )
)]
pub(super) async fn create(config: ContainerConfig, engine: Arc<Engine>) -> Response {
    error::respond(
        Operation::ContainerCreate,
        StatusCode::CREATED,
        engine.create_container(config).await,
    )
}

/// Remove a stopped container and its dataset.
#[utoipa::path(
    delete, path = "/containers/{container_id}", operation_id = "Container.Remove", tag = "Container",
    params(("container_id" = String, Path, description = "container ID, ID prefix or name")),
    responses(
        (status = 200, description = "the container's ID", body = IdResponse),
        (status = 404, description = "no such container", body = ErrorResponse),
        (status = 409, description = "the container is running, or the identifier is ambiguous", body = ErrorResponse),
        (status = 500, description = "internal error", body = ErrorResponse),
    )
)]
pub(super) async fn remove(container_id: String, engine: Arc<Engine>) -> Response {
    error::respond(
        Operation::ContainerRemove,
        StatusCode::OK,
        engine.remove_container(container_id).await,
    )
}

/// Stop a container: SIGTERM to its processes, SIGKILL after a grace period.
#[utoipa::path(
    post, path = "/containers/{container_id}/stop", operation_id = "Container.Stop", tag = "Container",
    params(("container_id" = String, Path, description = "container ID, ID prefix or name")),
    responses(
        (status = 200, description = "the container's ID", body = IdResponse),
        (status = 404, description = "no such container, not running, or the identifier is ambiguous", body = ErrorResponse),
        (status = 500, description = "internal error", body = ErrorResponse),
    )
)]
pub(super) async fn stop(container_id: String, engine: Arc<Engine>) -> Response {
    error::respond(
        Operation::ContainerStop,
        StatusCode::OK,
        engine.stop_container(container_id).await,
    )
}

/// Change a container's name, command, user, environment, jail parameters, restart policy or
/// persistence; `null` keeps a value.
#[utoipa::path(
    post, path = "/containers/{container_id}/update", operation_id = "Container.Update", tag = "Container",
    params(("container_id" = String, Path, description = "container ID, ID prefix or name")),
    request_body = ContainerConfig,
    responses(
        (status = 201, description = "the container's ID", body = IdResponse),
        (status = 404, description = "no such container, or an invalid name", body = ErrorResponse),
        (status = 409, description = "the change cannot be applied, the name is taken, or the identifier is ambiguous", body = ErrorResponse),
        (status = 422, description = "the body does not fit the schema", body = ValidationErrors),
        (status = 500, description = "internal error", body = ErrorResponse),
    )
)]
pub(super) async fn update(
    container_id: String,
    config: ContainerConfig,
    engine: Arc<Engine>,
) -> Response {
    error::respond(
        Operation::ContainerUpdate,
        StatusCode::CREATED,
        engine.update_container(container_id, config).await,
    )
}

/// Remove every stopped container that is not marked persist.
#[utoipa::path(
    post, path = "/containers/prune", operation_id = "Container.Prune", tag = "Container",
    responses(
        (status = 200, description = "IDs of the removed containers", body = [String]),
        (status = 500, description = "internal error", body = ErrorResponse),
    )
)]
pub(super) async fn prune(engine: Arc<Engine>) -> Response {
    error::respond(
        Operation::List,
        StatusCode::OK,
        engine.prune_containers().await,
    )
}
