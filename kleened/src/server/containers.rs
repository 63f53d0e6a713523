//! Container routes.

use std::collections::HashMap;
use std::sync::Arc;

use http::StatusCode;
use kleene_api::{ContainerInspect, ContainerSummary, ErrorResponse, ValidationErrors};
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::Filter;

use super::request::{bool_param, query};
use super::{error, with_engine};
use crate::engine::Engine;

pub(super) fn routes(engine: Arc<Engine>) -> BoxedFilter<(Response,)> {
    let list = warp::path!("containers" / "list")
        .and(warp::get())
        .and(query())
        .and(with_engine(engine.clone()))
        .then(list);
    let inspect = warp::path!("containers" / String / "inspect")
        .and(warp::get())
        .and(with_engine(engine))
        .then(inspect);
    list.or(inspect).unify().boxed()
}

/// List containers, newest first.
#[utoipa::path(
    get, path = "/containers/list", operation_id = "Container.List", tag = "Container",
    params(("all" = Option<bool>, Query, description = "list every container, not only those running")),
    responses(
        (status = 200, description = "the containers", body = [ContainerSummary]),
        (status = 422, description = "invalid query", body = ValidationErrors),
    )
)]
pub(super) async fn list(params: HashMap<String, String>, engine: Arc<Engine>) -> Response {
    match bool_param(&params, "all") {
        Ok(all) => error::respond(
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
        (status = 404, description = "no such container", body = ErrorResponse),
    )
)]
pub(super) async fn inspect(container_id: String, engine: Arc<Engine>) -> Response {
    error::respond(StatusCode::OK, engine.inspect_container(container_id).await)
}
