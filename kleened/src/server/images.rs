//! Image routes.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use http::StatusCode;
use kleene_api::websocket::{CLOSE_INTERNAL_ERROR, CLOSE_NORMAL};
use kleene_api::{
    ErrorResponse, IdResponse, Image, ImageBuildConfig, ImageCreateConfig, MsgType,
    ValidationErrors, WebSocketMessage,
};
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::ws::{Message, WebSocket};
use warp::{Filter, Reply};

use super::reply::{self, Operation};
use super::request::{bool_param, query};
use super::{with_engine, ws};
use crate::engine::build::builder::BuildOutcome;
use crate::engine::Engine;

pub(super) fn routes(engine: Arc<Engine>) -> BoxedFilter<(Response,)> {
    let list = warp::path!("images" / "list")
        .and(warp::get())
        .and(with_engine(engine.clone()))
        .then(list);
    let inspect = warp::path!("images" / String / "inspect")
        .and(warp::get())
        .and(with_engine(engine.clone()))
        .then(inspect);
    let remove = warp::path!("images" / String)
        .and(warp::delete())
        .and(with_engine(engine.clone()))
        .then(remove);
    let tag = warp::path!("images" / String / "tag")
        .and(warp::post())
        .and(query())
        .and(with_engine(engine.clone()))
        .then(tag);
    let prune = warp::path!("images" / "prune")
        .and(warp::post())
        .and(query())
        .and(with_engine(engine.clone()))
        .then(prune);
    let build = warp::path!("images" / "build")
        .and(warp::ws())
        .and(with_engine(engine.clone()))
        .map(|upgrade: warp::ws::Ws, engine: Arc<Engine>| {
            upgrade
                .on_upgrade(move |socket| build(socket, engine))
                .into_response()
        });
    let create = warp::path!("images" / "create")
        .and(warp::ws())
        .and(with_engine(engine))
        .map(|upgrade: warp::ws::Ws, engine: Arc<Engine>| {
            upgrade
                .on_upgrade(move |socket| create(socket, engine))
                .into_response()
        });
    list.or(inspect)
        .unify()
        .or(prune)
        .unify()
        .or(create)
        .unify()
        .or(build)
        .unify()
        .or(remove)
        .unify()
        .or(tag)
        .unify()
        .boxed()
}

/// List images, newest first.
#[utoipa::path(
    get, path = "/images/list", operation_id = "Image.List", tag = "Image",
    responses((status = 200, description = "the images", body = [Image]))
)]
pub(super) async fn list(engine: Arc<Engine>) -> Response {
    reply::respond(Operation::List, StatusCode::OK, engine.list_images().await)
}

/// Inspect an image.
#[utoipa::path(
    get, path = "/images/{image_id}/inspect", operation_id = "Image.Inspect", tag = "Image",
    params(("image_id" = String, Path, description = "image ID, ID prefix or name[:tag]")),
    responses(
        (status = 200, description = "the image", body = Image),
        (status = 404, description = "no such image, or the identifier is ambiguous", body = ErrorResponse),
        (status = 500, description = "internal error", body = ErrorResponse),
    )
)]
pub(super) async fn inspect(image_id: String, engine: Arc<Engine>) -> Response {
    reply::respond(
        Operation::ImageLookup,
        StatusCode::OK,
        engine.inspect_image(image_id).await,
    )
}

/// Remove an image and its dataset. Refused while containers or other images are clones of it.
#[utoipa::path(
    delete, path = "/images/{image_id}", operation_id = "Image.Remove", tag = "Image",
    params(("image_id" = String, Path, description = "image ID, ID prefix or name[:tag]")),
    responses(
        (status = 200, description = "the image was removed; the identifier as given", body = IdResponse),
        (status = 404, description = "no such image, it is in use, or the identifier is ambiguous", body = ErrorResponse),
        (status = 500, description = "internal error", body = ErrorResponse),
    )
)]
pub(super) async fn remove(image_id: String, engine: Arc<Engine>) -> Response {
    reply::respond(
        Operation::ImageRemove,
        StatusCode::OK,
        engine.remove_image(image_id).await,
    )
}

/// Set the name and tag of an image; another image holding them loses them.
#[utoipa::path(
    post, path = "/images/{image_id}/tag", operation_id = "Image.Tag", tag = "Image",
    params(
        ("image_id" = String, Path, description = "image ID, ID prefix or name[:tag]"),
        ("nametag" = String, Query, description = "new name[:tag]; the tag defaults to latest"),
    ),
    responses(
        (status = 200, description = "the image's ID", body = IdResponse),
        (status = 404, description = "no such image, an invalid name, or the identifier is ambiguous", body = ErrorResponse),
        (status = 422, description = "nametag is missing", body = ValidationErrors),
        (status = 500, description = "internal error", body = ErrorResponse),
    )
)]
pub(super) async fn tag(
    image_id: String,
    params: HashMap<String, String>,
    engine: Arc<Engine>,
) -> Response {
    let Some(nametag) = params.get("nametag").cloned() else {
        return reply::invalid(ValidationErrors::single(
            "/nametag",
            "missing required parameter 'nametag'",
        ));
    };
    reply::respond(
        Operation::ImageLookup,
        StatusCode::OK,
        engine.tag_image(image_id, nametag).await,
    )
}

/// Remove images no container or image is cloned from: untagged ones, or all with `all=true`.
#[utoipa::path(
    post, path = "/images/prune", operation_id = "Image.Prune", tag = "Image",
    params(("all" = bool, Query, description = "also remove tagged images")),
    responses(
        (status = 200, description = "IDs of the removed images", body = [String]),
        (status = 422, description = "all is missing or not a boolean", body = ValidationErrors),
    )
)]
pub(super) async fn prune(params: HashMap<String, String>, engine: Arc<Engine>) -> Response {
    match bool_param(&params, "all") {
        Ok(Some(all)) => reply::respond(
            Operation::List,
            StatusCode::OK,
            engine.prune_images(all).await,
        ),
        Ok(None) => reply::invalid(ValidationErrors::single(
            "/all",
            "missing required parameter 'all'",
        )),
        Err(errors) => reply::invalid(errors),
    }
}

/// Create a base image (websocket). The client sends an `ImageCreateConfig` frame; the server answers
/// a `starting` message, progress text, and closes with 1000 `image created` (data: the image ID), or
/// with a text frame of the reason and 1011 `image creation failed: <reason>`.
#[utoipa::path(
    get, path = "/images/create", operation_id = "Image.Create", tag = "Image",
    request_body(content = ImageCreateConfig, description = "sent as the first websocket frame"),
    responses((status = 101, description = "websocket; frames are WebSocketMessage and text", body = WebSocketMessage))
)]
pub(super) async fn create(socket: WebSocket, engine: Arc<Engine>) {
    let (mut tx, mut rx) = socket.split();
    let config: ImageCreateConfig = match ws::read_config(&mut rx).await {
        Ok(config) => config,
        Err(refusal) => return ws::refuse(&mut tx, refusal).await,
    };
    let (mut progress, task) = engine.start_image_creation(config);
    let reader = tokio::spawn(ws::drain(rx));
    let mut connected =
        ws::send_message(&mut tx, &WebSocketMessage::new(MsgType::Starting, "", "")).await;
    while let Some(text) = progress.recv().await {
        // A client that went away stops receiving; the creation itself goes on to the end.
        if connected {
            connected = tx.send(Message::text(text)).await.is_ok();
        }
    }
    let outcome = task.await.unwrap_or_else(|e| Err(e.into()));
    match outcome {
        Ok(image) => {
            let done = WebSocketMessage::new(MsgType::Closing, "image created", image.id);
            ws::close(&mut tx, CLOSE_NORMAL, &done).await;
        }
        Err(reason) => {
            // The reason without a line end, as the reference sends it.
            let _ = tx.send(Message::text(reason.to_string())).await;
            let failed = WebSocketMessage::new(
                MsgType::Error,
                format!("image creation failed: {reason}"),
                "",
            );
            ws::close(&mut tx, CLOSE_INTERNAL_ERROR, &failed).await;
        }
    }
    reader.abort();
}

/// Build an image from a Dockerfile (websocket). The client sends an `ImageBuildConfig` frame; a
/// Dockerfile that cannot be read or parsed is answered with a `starting` message without an ID,
/// the reason, and 1011 `failed to process Dockerfile`. Otherwise the `starting` message carries
/// the new image's ID, then come `Step k/n : <line>` frames, the processes' output and
/// `--> Snapshot created: @<id>` frames (or `--> Using cache @<id>` lines), and the close: 1000
/// `image created` (data: the ID), or 1011 `image build failed` (data: `""`, or with
/// `cleanup: false` the last snapshot of the image kept as `<name>:failed`, or
/// `no snapshots available`). As the reference's, status and error frames carry no line end: the
/// client ends the status lines (`Step`, `Snapshot created`, `Using user-supplied parent image`),
/// and prints the rest as it comes. A client that goes away ends the build, which removes what it
/// made.
#[utoipa::path(
    get, path = "/images/build", operation_id = "Image.Build", tag = "Image",
    request_body(content = ImageBuildConfig, description = "sent as the first websocket frame"),
    responses((status = 101, description = "websocket; frames are WebSocketMessage and text", body = WebSocketMessage))
)]
pub(super) async fn build(socket: WebSocket, engine: Arc<Engine>) {
    let (mut tx, mut rx) = socket.split();
    let config: ImageBuildConfig = match ws::read_config(&mut rx).await {
        Ok(config) => config,
        Err(refusal) => return ws::refuse(&mut tx, refusal).await,
    };
    let prepared = match engine.prepare_build(config) {
        Ok(prepared) => prepared,
        Err(reason) => {
            ws::send_message(&mut tx, &WebSocketMessage::new(MsgType::Starting, "", "")).await;
            let _ = tx.send(Message::text(reason)).await;
            let failed = WebSocketMessage::new(MsgType::Error, "failed to process Dockerfile", "");
            return ws::close(&mut tx, CLOSE_INTERNAL_ERROR, &failed).await;
        }
    };
    let id = prepared.id.clone();
    let cancel = tokio_util::sync::CancellationToken::new();
    let (mut progress, task) = engine.start_build(prepared, cancel.clone());
    // A client that goes away cancels the build.
    let reader = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            ws::drain(rx).await;
            cancel.cancel();
        })
    };
    let mut connected =
        ws::send_message(&mut tx, &WebSocketMessage::new(MsgType::Starting, "", &id)).await;
    while let Some(text) = progress.recv().await {
        if connected {
            connected = tx.send(Message::text(text)).await.is_ok();
            if !connected {
                cancel.cancel();
            }
        }
    }
    let outcome = task
        .await
        .unwrap_or_else(|_| BuildOutcome::Failed(String::new()));
    reader.abort();
    match outcome {
        BuildOutcome::Created(id) => {
            let done = WebSocketMessage::new(MsgType::Closing, "image created", id);
            ws::close(&mut tx, CLOSE_NORMAL, &done).await;
        }
        BuildOutcome::Failed(data) => {
            let failed = WebSocketMessage::new(MsgType::Error, "image build failed", data);
            ws::close(&mut tx, CLOSE_INTERNAL_ERROR, &failed).await;
        }
    }
}
