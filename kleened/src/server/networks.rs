//! Network routes.

use std::sync::Arc;

use http::StatusCode;
use kleene_api::{
    EndPointConfig, ErrorResponse, IdResponse, Network, NetworkConfig, NetworkInspect,
    ValidationErrors,
};
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Reply};

use super::reply::{self, Operation};
use super::request::json_body;
use super::with_engine;
use crate::engine::Engine;

pub(super) fn routes(engine: Arc<Engine>) -> BoxedFilter<(Response,)> {
    let list = warp::path!("networks" / "list")
        .and(warp::get())
        .and(with_engine(engine.clone()))
        .then(list);
    let inspect = warp::path!("networks" / String / "inspect")
        .and(warp::get())
        .and(with_engine(engine.clone()))
        .then(inspect);
    let create = warp::path!("networks" / "create")
        .and(warp::post())
        .and(json_body::<NetworkConfig>())
        .and(with_engine(engine.clone()))
        .then(create);
    let remove = warp::path!("networks" / String)
        .and(warp::delete())
        .and(with_engine(engine.clone()))
        .then(remove);
    let prune = warp::path!("networks" / "prune")
        .and(warp::post())
        .and(with_engine(engine.clone()))
        .then(prune);
    let connect = warp::path!("networks" / "connect")
        .and(warp::post())
        .and(json_body::<EndPointConfig>())
        .and(with_engine(engine.clone()))
        .then(connect);
    let disconnect = warp::path!("networks" / String / "disconnect" / String)
        .and(warp::post())
        .and(with_engine(engine))
        .then(disconnect);
    list.or(inspect)
        .unify()
        .or(create)
        .unify()
        .or(remove)
        .unify()
        .or(prune)
        .unify()
        .or(connect)
        .unify()
        .or(disconnect)
        .unify()
        .boxed()
}

/// Create a network: its record, its host interface (a bridge, a loopback interface, or the
/// existing interface of a custom network) and the packet filter's rules for it.
#[utoipa::path(
    post, path = "/networks/create", operation_id = "Network.Create", tag = "Network",
    request_body = NetworkConfig,
    responses(
        (status = 201, description = "the network's ID", body = IdResponse),
        (status = 409, description = "the configuration is invalid or conflicts with another network", body = ErrorResponse),
        (status = 422, description = "the body does not fit the schema", body = ValidationErrors),
        (status = 500, description = "the host failed, or its packet filter refused the rules", body = ErrorResponse),
    )
)]
pub(super) async fn create(config: NetworkConfig, engine: Arc<Engine>) -> Response {
    reply::respond(
        Operation::NetworkChange,
        StatusCode::CREATED,
        engine.create_network(config).await,
    )
}

/// Remove a network; connected containers are disconnected first, running ones too.
#[utoipa::path(
    delete, path = "/networks/{network_id}", operation_id = "Network.Remove", tag = "Network",
    params(("network_id" = String, Path, description = "network ID, ID prefix or name")),
    responses(
        (status = 200, description = "the network's ID", body = IdResponse),
        (status = 404, description = "no such network", body = ErrorResponse),
    )
)]
pub(super) async fn remove(network_id: String, engine: Arc<Engine>) -> Response {
    reply::respond(
        Operation::Lookup,
        StatusCode::OK,
        engine.remove_network(network_id).await,
    )
}

/// Remove every network no container is connected to.
#[utoipa::path(
    post, path = "/networks/prune", operation_id = "Network.Prune", tag = "Network",
    responses((status = 200, description = "the IDs of the removed networks", body = [String]))
)]
pub(super) async fn prune(engine: Arc<Engine>) -> Response {
    reply::respond(
        Operation::List,
        StatusCode::OK,
        engine.prune_networks().await,
    )
}

/// Connect a container to a network, with addresses given or allocated (`<auto>`).
#[utoipa::path(
    post, path = "/networks/connect", operation_id = "Network.Connect", tag = "Network",
    request_body = EndPointConfig,
    responses(
        (status = 204, description = "connected"),
        (status = 404, description = "no such container or network", body = ErrorResponse),
        (status = 409, description = "the connection is not possible", body = ErrorResponse),
        (status = 422, description = "the body does not fit the schema", body = ValidationErrors),
    )
)]
pub(super) async fn connect(config: EndPointConfig, engine: Arc<Engine>) -> Response {
    match engine.connect(config).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(err) => reply::engine(Operation::NetworkChange, err),
    }
}

/// Disconnect a container from a network (a running one loses its interface at once).
#[utoipa::path(
    post, path = "/networks/{network_id}/disconnect/{container_id}", operation_id = "Network.Disconnect", tag = "Network",
    params(
        ("network_id" = String, Path, description = "network ID, ID prefix or name"),
        ("container_id" = String, Path, description = "container ID, ID prefix or name"),
    ),
    responses(
        (status = 204, description = "disconnected"),
        (status = 409, description = "no such container, network or connection", body = ErrorResponse),
    )
)]
pub(super) async fn disconnect(
    network_id: String,
    container_id: String,
    engine: Arc<Engine>,
) -> Response {
    match engine.disconnect(network_id, container_id).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(err) => reply::engine(Operation::NetworkDisconnect, err),
    }
}

/// List networks, by name.
#[utoipa::path(
    get, path = "/networks/list", operation_id = "Network.List", tag = "Network",
    responses((status = 200, description = "the networks", body = [Network]))
)]
pub(super) async fn list(engine: Arc<Engine>) -> Response {
    reply::respond(
        Operation::List,
        StatusCode::OK,
        engine.list_networks().await,
    )
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
    reply::respond(
        Operation::Lookup,
        StatusCode::OK,
        engine.inspect_network(network_id).await,
    )
}
