//! The one place where failures become HTTP answers.

use http::StatusCode;
use kleene_api::{ErrorResponse, ValidationErrors};
use warp::reply::Response;
use warp::Reply;

use crate::engine::EngineError;

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

/// A 422 answer for a value that failed validation.
pub fn invalid(errors: ValidationErrors) -> Response {
    json(StatusCode::UNPROCESSABLE_ENTITY, &errors)
}

/// The answer to a path the API does not have (or has with another method).
pub fn route_not_found() -> Response {
    message(StatusCode::NOT_FOUND, "not found")
}

/// Maps an engine failure to its status and body. Internal failures are logged here, once.
pub fn engine(err: EngineError) -> Response {
    match err {
        EngineError::NotFound(text) => message(StatusCode::NOT_FOUND, text),
        EngineError::Conflict(text) => message(StatusCode::CONFLICT, text),
        err @ (EngineError::Store(_) | EngineError::Zfs(_) | EngineError::Internal(_)) => {
            tracing::error!(error = %err, "request failed");
            message(StatusCode::INTERNAL_SERVER_ERROR, err.to_string())
        }
    }
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
