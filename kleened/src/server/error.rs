//! The one place where failures become HTTP answers.
//!
//! Every error answer is JSON with a `message` (the published Python client needs the key, and
//! prints it). The status is the reference's for the operation: the Python client crashes on any
//! status its generated code does not list for an endpoint, so operations whose reference answers
//! have no 409 answer their conflicts with 404 ([`respond_404`]).

use http::StatusCode;
use kleene_api::{ErrorResponse, ValidationErrors};
use warp::reply::Response;
use warp::Reply;

use crate::engine::EngineError;
use crate::store::StoreError;

/// A JSON answer with a status.
pub fn json<T: serde::Serialize>(status: StatusCode, body: &T) -> Response {
    warp::reply::with_status(warp::reply::json(body), status).into_response()
}

/// The `{"message": ...}` body every error answer carries.
pub fn message(status: StatusCode, message: impl Into<String>) -> Response {
    json(
        status,
        &ErrorResponse {
            message: message.into(),
        },
    )
}

/// A 422 answer for a value that failed validation: `{"message": ..., "errors": [...]}`.
pub fn invalid(errors: ValidationErrors) -> Response {
    json(StatusCode::UNPROCESSABLE_ENTITY, &errors)
}

/// The answer to a path the API does not have (or has with another method).
pub fn route_not_found() -> Response {
    message(StatusCode::NOT_FOUND, "not found")
}

/// Maps an engine failure to its status and body. Internal failures are logged here, once.
pub fn engine(err: EngineError) -> Response {
    let status = match &err {
        EngineError::NotFound(_) => StatusCode::NOT_FOUND,
        // An identifier that names several objects: the request's fault, and nothing was done.
        EngineError::Conflict(_) | EngineError::Store(StoreError::Ambiguous { .. }) => {
            StatusCode::CONFLICT
        }
        EngineError::Store(_) | EngineError::Zfs(_) | EngineError::Internal(_) => {
            tracing::error!(error = %err, "request failed");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    };
    message(status, err.to_string())
}

/// Answers `result` with `status` and its JSON, or with the mapped error.
pub fn respond<T: serde::Serialize>(
    status: StatusCode,
    result: Result<T, EngineError>,
) -> Response {
    match result {
        Ok(value) => json(status, &value),
        Err(err) => engine(err),
    }
}

/// [`respond`] for operations whose reference answers have no 409 (inspect, stop, image removal
/// and tagging): a conflict, such as an ambiguous identifier, is answered 404 with its message.
pub fn respond_404<T: serde::Serialize>(
    status: StatusCode,
    result: Result<T, EngineError>,
) -> Response {
    let mut response = respond(status, result);
    if response.status() == StatusCode::CONFLICT {
        *response.status_mut() = StatusCode::NOT_FOUND;
    }
    response
}
