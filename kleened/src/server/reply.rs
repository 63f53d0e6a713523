//! The one place where failures become HTTP answers.
//!
//! Every error answer is JSON with a `message` (the published Python client needs the key, and
//! prints it). The status is the reference's for the operation and the cause ([`status`]): the
//! Python client crashes on any status its generated code does not list for an endpoint, so
//! operations whose reference answers have no 409 answer their conflicts with 404.

use http::StatusCode;
use kleene_api::{ErrorResponse, ValidationErrors};
use warp::reply::Response;
use warp::Reply;

use crate::engine::{EngineError, HostCause, Removed};
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

/// The operations whose failures the API answers with statuses of their own. The published
/// Python client knows only the statuses the reference lists per endpoint, and fails on any
/// other, so each operation answers its causes with one of those.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Lists and prunes: only the daemon's own failures.
    List,
    /// `POST /containers/create`.
    ContainerCreate,
    /// `GET /containers/{id}/inspect`.
    ContainerInspect,
    /// `DELETE /containers/{id}`.
    ContainerRemove,
    /// `POST /containers/{id}/stop`.
    ContainerStop,
    /// `POST /containers/{id}/update`.
    ContainerUpdate,
    /// `POST /exec/create`.
    ExecCreate,
    /// `POST /exec/{id}/stop`.
    ExecStop,
    /// `GET /images/{id}/inspect`, `POST /images/{id}/tag`.
    ImageLookup,
    /// `DELETE /images/{id}`.
    ImageRemove,
    /// `POST /networks/create` and `/networks/connect`.
    NetworkChange,
    /// `POST /networks/{id}/disconnect/{container}`.
    NetworkDisconnect,
    /// `GET /networks/{id}/inspect`, `DELETE /networks/{id}`, volume inspect.
    Lookup,
    /// `POST /volumes/create`.
    VolumeCreate,
    /// `DELETE /volumes/{name}`.
    VolumeRemove,
}

/// The status `operation` answers `err` with. Store and daemon failures are 500 everywhere
/// (and logged by [`engine`]); the rest follows the statuses the reference lists per endpoint:
///
/// | operation | not found | conflict, ambiguous, invalid | host (zfs, runtime, network) |
/// |---|---|---|---|
/// | container create, inspect, stop; exec create, stop; image inspect, tag, rm | 404 | 404 | 404 |
/// | container rm; network create, connect | 404 | 409 | 409 |
/// | container update | 404 | 409 | 409 (runtime), 500 |
/// | network disconnect | 409 | 409 | 409 |
/// | lists, prunes, network inspect and rm, volume inspect | 404 | 404 | 500 |
/// | volume create | 404 | 400 | 500 |
/// | volume rm | 404 | 404 | 500 |
///
/// Volume create answers invalid input with 400, which the published client does not list for it
/// (it fails there with a traceback); a 500 would be a lie about whose fault it is. Volume rm
/// answers a refusal (a running container mounts the volume) with 404, which the client prints.
pub fn status(operation: Operation, err: &EngineError) -> StatusCode {
    use Operation as O;
    enum Cause {
        NotFound,
        Refused,
        Host,
        Daemon,
    }
    let cause = match err {
        EngineError::NotFound(_) => Cause::NotFound,
        EngineError::Conflict(_)
        | EngineError::Invalid(_)
        | EngineError::Store(StoreError::Ambiguous { .. }) => Cause::Refused,
        EngineError::Host { .. } | EngineError::Zfs(_) => Cause::Host,
        EngineError::Store(_) | EngineError::Internal(_) => Cause::Daemon,
    };
    let runtime = matches!(
        err,
        EngineError::Host {
            cause: HostCause::Runtime(_),
            ..
        }
    );
    match (operation, cause) {
        (_, Cause::Daemon) => StatusCode::INTERNAL_SERVER_ERROR,
        (O::NetworkDisconnect, _) => StatusCode::CONFLICT,
        (_, Cause::NotFound) => StatusCode::NOT_FOUND,
        (
            O::ContainerCreate
            | O::ContainerInspect
            | O::ContainerStop
            | O::ExecCreate
            | O::ExecStop
            | O::ImageLookup
            | O::ImageRemove,
            _,
        ) => StatusCode::NOT_FOUND,
        (O::ContainerRemove | O::NetworkChange, _) => StatusCode::CONFLICT,
        (O::VolumeCreate, Cause::Refused) => StatusCode::BAD_REQUEST,
        (O::VolumeRemove, Cause::Refused) => StatusCode::NOT_FOUND,
        (O::ContainerUpdate, Cause::Refused) => StatusCode::CONFLICT,
        (O::ContainerUpdate, Cause::Host) if runtime => StatusCode::CONFLICT,
        (
            O::ContainerUpdate | O::List | O::Lookup | O::VolumeCreate | O::VolumeRemove,
            Cause::Host,
        ) => StatusCode::INTERNAL_SERVER_ERROR,
        (O::List | O::Lookup, Cause::Refused) => StatusCode::NOT_FOUND,
    }
}

/// Every status [`status`] answers some failure of `operation` with: one failure of each cause
/// goes through the mapping. The OpenAPI document lists these for the operation's endpoints.
pub fn failure_statuses(operation: Operation) -> Vec<StatusCode> {
    let host = |cause: HostCause| EngineError::Host {
        context: String::new(),
        cause,
    };
    let failures = [
        EngineError::NotFound(String::new()),
        EngineError::Conflict(String::new()),
        EngineError::Invalid(String::new()),
        EngineError::Store(StoreError::Ambiguous {
            kind: "container",
            identifier: String::new(),
            candidates: vec![],
        }),
        host(HostCause::Runtime(crate::platform::RuntimeError::Host(
            String::new(),
        ))),
        host(HostCause::Command(crate::platform::HostError::Unexpected(
            String::new(),
        ))),
        EngineError::Store(StoreError::Corrupt {
            what: "row",
            reason: String::new(),
        }),
        EngineError::Internal(String::new()),
    ];
    let mut statuses: Vec<StatusCode> = failures.iter().map(|e| status(operation, e)).collect();
    statuses.sort();
    statuses.dedup();
    statuses
}

/// Maps an engine failure of `operation` to its status and `{"message": ...}` body. Failures
/// answered 500 are logged here, once.
pub fn engine(operation: Operation, err: EngineError) -> Response {
    let status = status(operation, &err);
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::error!(error = %err, "request failed");
    }
    message(status, err.to_string())
}

/// Answers `result` with `status` and its JSON, or with the failure as `operation` answers it.
pub fn respond<T: serde::Serialize>(
    operation: Operation,
    status: StatusCode,
    result: Result<T, EngineError>,
) -> Response {
    match result {
        Ok(value) => json(status, &value),
        Err(err) => engine(operation, err),
    }
}

/// Answers a removal with `status` and its JSON; each dataset ZFS kept busy, which the daemon
/// destroys later, is named in a `Warning` header (`199 kleened "..."`), so the answer says that
/// something of it is still on the host.
pub fn removed<T: serde::Serialize>(
    operation: Operation,
    status: StatusCode,
    result: Result<Removed<T>, EngineError>,
) -> Response {
    match result {
        Ok(removed) => {
            let mut response = json(status, &removed.answer);
            for warning in removed.warnings() {
                let quoted = warning.replace(['\\', '"'], "");
                if let Ok(value) = http::HeaderValue::from_str(&format!("199 kleened \"{quoted}\""))
                {
                    response.headers_mut().append(http::header::WARNING, value);
                }
            }
            response
        }
        Err(err) => engine(operation, err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removal_names_each_dataset_left_busy_in_a_warning_header() {
        let answer = removed(
            Operation::List,
            StatusCode::OK,
            Ok(Removed {
                answer: vec!["a1", "b2"],
                in_background: vec!["zroot/kleene/container/b2".to_owned()],
            }),
        );
        let warnings: Vec<_> = answer
            .headers()
            .get_all(http::header::WARNING)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            warnings,
            [
                r#"199 kleened "dataset zroot/kleene/container/b2 is busy: it is destroyed in the background""#
            ]
        );
        let clean = removed(
            Operation::List,
            StatusCode::OK,
            Ok(Removed {
                answer: vec!["a1"],
                in_background: vec![],
            }),
        );
        assert!(clean.headers().get(http::header::WARNING).is_none());
    }

    /// The statuses the published client relies on for each operation and cause.
    #[test]
    fn each_operation_answers_its_causes_with_the_references_statuses() {
        let not_found = || EngineError::NotFound("no such object".into());
        let conflict = || EngineError::Conflict("in use".into());
        let invalid = || EngineError::Invalid("bad value".into());
        let runtime = || EngineError::Host {
            context: "could not start".into(),
            cause: HostCause::Runtime(crate::platform::RuntimeError::Host("no".into())),
        };
        let store = || {
            EngineError::Store(StoreError::Corrupt {
                what: "row",
                reason: "bad".into(),
            })
        };
        let cases = [
            (Operation::ContainerCreate, runtime(), 404),
            (Operation::ContainerCreate, invalid(), 404),
            (Operation::ContainerRemove, conflict(), 409),
            (Operation::ContainerStop, conflict(), 404),
            (Operation::ContainerUpdate, runtime(), 409),
            (Operation::ExecCreate, conflict(), 404),
            (Operation::NetworkDisconnect, not_found(), 409),
            (Operation::VolumeCreate, invalid(), 400),
            (Operation::VolumeRemove, conflict(), 404),
            (Operation::VolumeRemove, not_found(), 404),
            (Operation::Lookup, runtime(), 500),
            (Operation::ContainerCreate, store(), 500),
        ];
        for (operation, err, expected) in cases {
            assert_eq!(
                status(operation, &err).as_u16(),
                expected,
                "{operation:?} answers {err:?}"
            );
        }
    }

    #[test]
    fn failure_statuses_are_those_status_gives() {
        assert_eq!(
            failure_statuses(Operation::ExecCreate),
            [StatusCode::NOT_FOUND, StatusCode::INTERNAL_SERVER_ERROR]
        );
        assert_eq!(
            failure_statuses(Operation::VolumeCreate),
            [
                StatusCode::BAD_REQUEST,
                StatusCode::NOT_FOUND,
                StatusCode::INTERNAL_SERVER_ERROR
            ]
        );
    }
}
