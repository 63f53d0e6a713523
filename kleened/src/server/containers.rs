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

use super::reply::{self, Operation};
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
        .and(with_engine(engine.clone()))
        .then(update);
    let logs = warp::path!("containers" / String / "logs")
        .and(warp::get())
        .and(query())
        .and(with_engine(engine))
        .then(logs);
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
        .or(logs)
        .unify()
        .boxed()
}

/// A log stream as an HTTP body.
struct LogBody(tokio::sync::mpsc::Receiver<Vec<u8>>);

impl futures_util::Stream for LogBody {
    type Item = Result<bytes::Bytes, std::convert::Infallible>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| Ok(bytes::Bytes::from(c))))
    }
}

/// A container's output (additive): what its processes printed, kept by the daemon across
/// restarts until the container is removed. The body streams the output as written
/// (`application/octet-stream`); with `follow` it goes on with new output, across restarts of the
/// container, and ends when the container is removed. Plain HTTP, not a websocket: the stream goes
/// one way, and `curl` reads it.
#[utoipa::path(
    get, path = "/containers/{container_id}/logs", operation_id = "Container.Logs", tag = "Container",
    params(
        ("container_id" = String, Path, description = "container ID, ID prefix or name"),
        ("follow" = Option<bool>, Query, description = "go on with new output until the container is removed"),
        ("tail" = Option<String>, Query, description = "only the last N lines (`all`: everything)"),
        ("since" = Option<String>, Query, description = "only output since this time: RFC 3339, seconds since the epoch, or a duration back from now (`10m`)"),
        ("timestamps" = Option<bool>, Query, description = "begin each line with the time it was written"),
    ),
    responses(
        (status = 200, description = "the output", content_type = "application/octet-stream", body = String),
        (status = 404, description = "no such container", body = ErrorResponse),
        (status = 422, description = "an invalid parameter", body = ValidationErrors),
    )
)]
pub(super) async fn logs(
    container_id: String,
    params: HashMap<String, String>,
    engine: Arc<Engine>,
) -> Response {
    use crate::engine::logs::{parse_since, LogQuery};
    use warp::Reply;
    let (follow, timestamps) = match (
        bool_param(&params, "follow"),
        bool_param(&params, "timestamps"),
    ) {
        (Ok(f), Ok(t)) => (f.unwrap_or(false), t.unwrap_or(false)),
        (Err(errors), _) | (_, Err(errors)) => return reply::invalid(errors),
    };
    let tail = match params.get("tail").map(String::as_str) {
        None | Some("all") => None,
        Some(n) => match n.parse::<usize>() {
            Ok(n) => Some(n),
            Err(_) => {
                return reply::invalid(ValidationErrors::single(
                    "/tail",
                    format!("'{n}' is not a number of lines (or all)"),
                ))
            }
        },
    };
    let since = match params.get("since").map(|s| parse_since(s)) {
        None => None,
        Some(Ok(micros)) => Some(micros),
        Some(Err(reason)) => return reply::invalid(ValidationErrors::single("/since", reason)),
    };
    let query = LogQuery {
        tail,
        since,
        timestamps,
    };
    match engine.container_logs(container_id, query, follow).await {
        Ok(rx) => {
            let mut response = warp::reply::stream(LogBody(rx)).into_response();
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/octet-stream"),
            );
            response
        }
        Err(err) => reply::engine(Operation::ContainerInspect, err),
    }
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
        Ok(all) => reply::respond(
            Operation::List,
            StatusCode::OK,
            engine.list_containers(all.unwrap_or(false)).await,
        ),
        Err(errors) => reply::invalid(errors),
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
    reply::respond(
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
        (status = 404, description = "invalid configuration, no such image, an ambiguous image identifier, the name is taken, or a host port is already published", body = ErrorResponse),
        (status = 422, description = "the body does not fit the schema", body = ValidationErrors),
        (status = 500, description = "internal error", body = ErrorResponse),
    )
)]
pub(super) async fn create(config: ContainerConfig, engine: Arc<Engine>) -> Response {
    reply::respond(
        Operation::ContainerCreate,
        StatusCode::CREATED,
        engine.create_container(config).await,
    )
}

/// Remove a stopped container and its dataset.
///
/// Answers once the dataset is destroyed; a dataset ZFS keeps busy for more than 5 s is destroyed
/// later, and a `Warning` header names it.
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
    reply::removed(
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
    reply::respond(
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
    reply::respond(
        Operation::ContainerUpdate,
        StatusCode::CREATED,
        engine.update_container(container_id, config).await,
    )
}

/// Remove every stopped container that is not marked persist.
///
/// Oldest first; answers once their datasets are destroyed (a `Warning` header names any left
/// busy, which are destroyed later).
#[utoipa::path(
    post, path = "/containers/prune", operation_id = "Container.Prune", tag = "Container",
    responses(
        (status = 200, description = "IDs of the removed containers", body = [String]),
        (status = 500, description = "internal error", body = ErrorResponse),
    )
)]
pub(super) async fn prune(engine: Arc<Engine>) -> Response {
    reply::removed(
        Operation::List,
        StatusCode::OK,
        engine.prune_containers().await,
    )
}
