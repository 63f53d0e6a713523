//! `GET /info`: what the daemon says about itself (an addition to the Kleened API 0.1.1).

use std::sync::Arc;

use http::StatusCode;
use kleene_api::Info;
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::Filter;

use super::{error, with_engine};
use crate::engine::Engine;

pub(super) fn routes(engine: Arc<Engine>) -> BoxedFilter<(Response,)> {
    warp::path!("info")
        .and(warp::get())
        .and(with_engine(engine))
        .then(info)
        .boxed()
}

/// The daemon's version, its API version, the host's OS and runtime, and the network driver a
/// container connected to a network gets by default.
#[utoipa::path(
    get, path = "/info", operation_id = "System.Info", tag = "System",
    responses((status = 200, description = "the daemon and its host", body = Info))
)]
pub(super) async fn info(engine: Arc<Engine>) -> Response {
    error::json(StatusCode::OK, &engine.info())
}
