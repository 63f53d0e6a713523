//! Network routes.

use std::sync::Arc;

use http::StatusCode;
use kleene_api::{ErrorResponse, Network, NetworkInspect};
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::Filter;

use super::{error, with_engine};
use crate::engine::Engine;

pub(super) fn routes(engine: Arc<Engine>) -> BoxedFilter<(Response,)> {
    let list = warp::path!("networks" / "list")
        .and(warp::get())
        .and(with_engine(engine.clone()))
        .then(list);
    let inspect = warp::path!("networks" / String / "inspect")
        .and(warp::get())
        .and(with_engine(engine))
        .then(inspect);
    list.or(inspect).unify().boxed()
}

/// List networks, by name.
#[utoipa::path(
    get, path = "/networks/list", operation_id = "Network.List", tag = "Network",
    responses((status = 200, description = "the networks", body = [Network]))
)]
pub(super) async fn list(engine: Arc<Engine>) -> Response {
    error::respond(StatusCode::OK, engine.list_networks().await)
}

/// Inspect a network.
#[utoipa::path(
    get, path = "/networks/{network_id}/inspect", operation_id = "Network.Inspect", tag = "Network",
    params(("network_id" = String, Path, description = "network ID, ID prefix or name")),
    responses(
        (status = 200, description = "the network and its endpoints", body = NetworkInspect),
        (status = 404, description = "no such network", body = ErrorResponse),
    )
)]
pub(super) async fn inspect(network_id: String, engine: Arc<Engine>) -> Response {
    error::respond(StatusCode::OK, engine.inspect_network(network_id).await)
}
