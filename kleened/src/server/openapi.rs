//! The OpenAPI document of the API, assembled from the handlers' annotations and the `kleene-api`
//! types. `kleened openapi` prints it; `api/openapi.json` is the committed copy, kept equal to it by a
//! test.

use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::reply::{failure_statuses, Operation};
use super::{containers, doctor, exec, images, info, networks, volumes, BODY_LIMIT};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Kleened API",
        version = "0.1.1",
        description = "REST and websocket API of kleened, the Kleene container daemon."
    ),
    paths(
        containers::list,
        containers::inspect,
        containers::create,
        containers::remove,
        containers::stop,
        containers::update,
        containers::logs,
        containers::prune,
        exec::create,
        exec::stop,
        exec::start,
        images::list,
        images::inspect,
        images::remove,
        images::tag,
        images::prune,
        images::create,
        images::build,
        info::info,
        doctor::check,
        doctor::fix,
        networks::list,
        networks::inspect,
        networks::create,
        networks::remove,
        networks::prune,
        networks::connect,
        networks::disconnect,
        volumes::list,
        volumes::inspect,
        volumes::create,
        volumes::remove,
        volumes::prune,
    ),
    modifiers(&BodyRefusals, &EngineFailures)
)]
struct ApiDoc;

/// A JSON answer described as `description`, its body of the schema named `schema`.
fn answer(description: impl Into<String>, schema: &str) -> RefOr<utoipa::openapi::Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name(schema)))
                    .build(),
            )
            .build(),
    )
}

/// Adds to every operation with a JSON request body the answers `request::json_body` gives for
/// any of them: 413 for a body over the limit, and 422 for one that is missing or does not fit
/// (where the handler's annotation does not say it already). Websocket operations, whose "body" is
/// their first frame, are left alone.
struct BodyRefusals;

impl Modify for BodyRefusals {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for operation in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                let responses = &mut operation.responses.responses;
                if operation.request_body.is_none() || responses.contains_key("101") {
                    continue;
                }
                responses.entry("413".into()).or_insert_with(|| {
                    answer(
                        format!("the request body is larger than {BODY_LIMIT} bytes"),
                        "ErrorResponse",
                    )
                });
                responses.entry("422".into()).or_insert_with(|| {
                    answer(
                        "the body is missing or does not fit the schema",
                        "ValidationErrors",
                    )
                });
            }
        }
    }
}

/// The endpoints whose failures come from the engine, with the [`Operation`] their handler
/// answers them as (`server::reply::status`).
const ENGINE_FAILURES: &[(&str, &str, Operation)] = &[
    ("get", "/containers/list", Operation::List),
    (
        "get",
        "/containers/{container_id}/inspect",
        Operation::ContainerInspect,
    ),
    (
        "get",
        "/containers/{container_id}/logs",
        Operation::ContainerInspect,
    ),
    ("post", "/containers/create", Operation::ContainerCreate),
    (
        "delete",
        "/containers/{container_id}",
        Operation::ContainerRemove,
    ),
    (
        "post",
        "/containers/{container_id}/stop",
        Operation::ContainerStop,
    ),
    (
        "post",
        "/containers/{container_id}/update",
        Operation::ContainerUpdate,
    ),
    ("post", "/containers/prune", Operation::List),
    ("post", "/exec/create", Operation::ExecCreate),
    ("post", "/exec/{exec_id}/stop", Operation::ExecStop),
    ("get", "/images/list", Operation::List),
    ("get", "/images/{image_id}/inspect", Operation::ImageLookup),
    ("delete", "/images/{image_id}", Operation::ImageRemove),
    ("post", "/images/{image_id}/tag", Operation::ImageLookup),
    ("post", "/images/prune", Operation::List),
    ("get", "/networks/list", Operation::List),
    ("get", "/networks/{network_id}/inspect", Operation::Lookup),
    ("post", "/networks/create", Operation::NetworkChange),
    ("delete", "/networks/{network_id}", Operation::Lookup),
    ("post", "/networks/prune", Operation::List),
    ("post", "/networks/connect", Operation::NetworkChange),
    (
        "post",
        "/networks/{network_id}/disconnect/{container_id}",
        Operation::NetworkDisconnect,
    ),
    ("get", "/volumes/list", Operation::List),
    ("get", "/volumes/{volume_name}/inspect", Operation::Lookup),
    ("post", "/volumes/create", Operation::VolumeCreate),
    ("delete", "/volumes/{volume_name}", Operation::VolumeRemove),
    ("post", "/volumes/prune", Operation::List),
];

/// The operation object of `method` on `path`, if the document has it.
fn operation_mut<'a>(
    openapi: &'a mut utoipa::openapi::OpenApi,
    method: &str,
    path: &str,
) -> Option<&'a mut utoipa::openapi::path::Operation> {
    let item = openapi.paths.paths.get_mut(path)?;
    match method {
        "get" => item.get.as_mut(),
        "post" => item.post.as_mut(),
        "put" => item.put.as_mut(),
        "delete" => item.delete.as_mut(),
        _ => None,
    }
}

/// Adds to every endpoint of [`ENGINE_FAILURES`] each status the one mapping from failures to
/// statuses can answer it with, where its annotation does not describe that status already: the
/// document cannot leave out a status the daemon gives.
struct EngineFailures;

impl Modify for EngineFailures {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for &(method, path, kind) in ENGINE_FAILURES {
            let Some(operation) = operation_mut(openapi, method, path) else {
                continue;
            };
            for status in failure_statuses(kind) {
                let description = match status.as_u16() {
                    404 => "no such object, or the request is refused",
                    409 => "the request conflicts with the object's state, or the host refused it",
                    400 => "the request is refused",
                    _ => "internal error",
                };
                operation
                    .responses
                    .responses
                    .entry(status.as_str().to_owned())
                    .or_insert_with(|| answer(description, "ErrorResponse"));
            }
        }
    }
}

/// The document as pretty-printed JSON, ending in a newline.
pub fn document() -> String {
    let mut text = ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_committed_openapi_document_matches_the_code() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../api/openapi.json");
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == super::document(),
            "api/openapi.json differs from the API the code serves; regenerate it with \
             `cargo run -p kleened -- openapi > api/openapi.json` and commit it"
        );
    }

    #[test]
    fn the_documented_failures_are_those_the_status_mapping_gives() {
        use super::{failure_statuses, ENGINE_FAILURES};
        let doc: serde_json::Value = serde_json::from_str(&super::document()).unwrap();
        let mut listed = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let statuses: Vec<&str> = operation["responses"]
                    .as_object()
                    .unwrap()
                    .keys()
                    .map(String::as_str)
                    .collect();
                let entry = ENGINE_FAILURES
                    .iter()
                    .find(|(m, p, _)| m == method && p == path);
                let Some(&(_, _, kind)) = entry else {
                    assert!(
                        statuses
                            .iter()
                            .all(|s| s.starts_with('1') || s.starts_with('2')),
                        "{method} {path} documents failures {statuses:?} but is not in \
                         ENGINE_FAILURES"
                    );
                    continue;
                };
                listed += 1;
                let mapped: Vec<String> = failure_statuses(kind)
                    .iter()
                    .map(|s| s.as_str().to_owned())
                    .collect();
                for status in &mapped {
                    assert!(
                        statuses.contains(&status.as_str()),
                        "{method} {path} ({kind:?}) can answer {status} but does not document it"
                    );
                }
                for status in statuses {
                    // 413 and 422 come from decoding the request, before the engine.
                    let request = status == "413" || status == "422";
                    let success = status.starts_with('2');
                    assert!(
                        success || request || mapped.iter().any(|m| m == status),
                        "{method} {path} documents {status}, which the status mapping for \
                         {kind:?} never gives (it gives {mapped:?})"
                    );
                }
            }
        }
        assert_eq!(listed, ENGINE_FAILURES.len(), "an entry names no endpoint");
    }

    #[test]
    fn every_schema_reference_resolves() {
        let doc: serde_json::Value = serde_json::from_str(&super::document()).unwrap();
        let text = doc.to_string();
        for reference in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = &reference[..reference.find('"').unwrap()];
            assert!(
                doc["components"]["schemas"].get(name).is_some(),
                "schema {name} is referenced but missing"
            );
        }
    }
}
