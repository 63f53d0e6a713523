//! Image routes.

use std::sync::Arc;

use http::StatusCode;
use kleene_api::{ErrorResponse, Image};
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::Filter;

use super::{error, with_engine};
use crate::engine::Engine;

pub(super) fn routes(engine: Arc<Engine>) -> BoxedFilter<(Response,)> {
    let list = warp::path!("images" / "list")
        .and(warp::get())
        .and(with_engine(engine.clone()))
        .then(list);
    let inspect = warp::path!("images" / String / "inspect")
        .and(warp::get())
        .and(with_engine(engine))
        .then(inspect);
    list.or(inspect).unify().boxed()
}

/// List images, newest first.
#[utoipa::path(
    get, path = "/images/list", operation_id = "Image.List", tag = "Image",
    responses((status = 200, description = "the images", body = [Image]))
)]
pub(super) async fn list(engine: Arc<Engine>) -> Response {
    error::respond(StatusCode::OK, engine.list_images().await)
}

/// Inspect an image.
#[utoipa::path(
    get, path = "/images/{image_id}/inspect", operation_id = "Image.Inspect", tag = "Image",
    params(("image_id" = String, Path, description = "image ID, ID prefix or name[:tag]")),
    responses(
        (status = 200, description = "the image", body = Image),
        (status = 404, description = "no such image", body = ErrorResponse),
    )
)]
pub(super) async fn inspect(image_id: String, engine: Arc<Engine>) -> Response {
    error::respond(StatusCode::OK, engine.inspect_image(image_id).await)
}
