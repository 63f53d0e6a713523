//! The HTTP side of the daemon: warp routes for the Kleene API, decoding of requests, and the
//! listeners that serve them (unix sockets, TCP, TLS).
//!
//! Each resource has its module of handlers; a handler only decodes, calls one engine function and
//! encodes. Every engine failure becomes an answer in [`reply`].

mod containers;
mod doctor;
mod exec;
mod images;
mod info;
pub mod listen;
mod networks;
pub mod openapi;
pub mod reply;
mod request;
mod volumes;
mod ws;

use std::convert::Infallible;
use std::sync::Arc;

use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::engine::Engine;

pub use request::{json_body, BODY_LIMIT};

/// The full API as one filter.
pub fn routes(engine: Arc<Engine>) -> warp::filters::BoxedFilter<(Response,)> {
    images::routes(engine.clone())
        .or(info::routes(engine.clone()))
        .unify()
        .or(doctor::routes(engine.clone()))
        .unify()
        .or(containers::routes(engine.clone()))
        .unify()
        .or(networks::routes(engine.clone()))
        .unify()
        .or(volumes::routes(engine.clone()))
        .unify()
        .or(exec::routes(engine))
        .unify()
        .recover(recover)
        .unify()
        .with(warp::log::custom(|info| {
            tracing::debug!(
                method = %info.method(),
                path = info.path(),
                status = info.status().as_u16(),
                elapsed_ms = info.elapsed().as_secs_f64() * 1000.0,
                "request"
            );
        }))
        .map(warp::Reply::into_response)
        .boxed()
}

/// Passes the engine to a handler.
fn with_engine(
    engine: Arc<Engine>,
) -> impl Filter<Extract = (Arc<Engine>,), Error = Infallible> + Clone {
    warp::any().map(move || engine.clone())
}

/// Answers what no route took. Routes answer their own errors, so what arrives here is a request
/// refused while decoding it, a path the API does not have (or has with another method), or a
/// request warp refused before a handler ran. Every answer is JSON with a `message`.
pub(crate) async fn recover(rejection: Rejection) -> Result<Response, Infallible> {
    use http::StatusCode;
    // A decoding refusal comes first: the other routes' rejections (not found, another method)
    // are combined with it and say nothing about this request.
    match rejection.find::<request::Refused>() {
        Some(request::Refused::Invalid(errors)) => return Ok(reply::invalid(errors.clone())),
        Some(request::Refused::TooLarge) => {
            return Ok(reply::message(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body is larger than {BODY_LIMIT} bytes"),
            ))
        }
        Some(request::Refused::Unreadable(reason)) => {
            return Ok(reply::message(
                StatusCode::BAD_REQUEST,
                format!("could not read the request body: {reason}"),
            ))
        }
        None => {}
    }
    // A websocket route reached without an upgrade: its headers are missing or wrong.
    let header = rejection
        .find::<warp::reject::MissingHeader>()
        .map(|h| h.name())
        .or_else(|| {
            rejection
                .find::<warp::reject::InvalidHeader>()
                .map(|h| h.name())
        });
    let websocket_header =
        |name: &str| ["connection", "upgrade"].contains(&name) || name.starts_with("sec-websocket");
    if rejection
        .find::<warp::ws::MissingConnectionUpgrade>()
        .is_some()
        || header.is_some_and(websocket_header)
    {
        return Ok(reply::message(
            StatusCode::BAD_REQUEST,
            "this endpoint is a websocket: send a GET with the websocket upgrade headers",
        ));
    }
    if let Some(name) = header {
        return Ok(reply::message(
            StatusCode::BAD_REQUEST,
            format!("missing or invalid header '{name}'"),
        ));
    }
    if rejection.is_not_found() || rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        return Ok(reply::route_not_found());
    }
    tracing::warn!(?rejection, "request refused");
    Ok(reply::message(StatusCode::BAD_REQUEST, "bad request"))
}

#[cfg(test)]
mod tests;
