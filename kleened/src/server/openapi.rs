//! The OpenAPI document of the API, assembled from the handlers' annotations and the `kleene-api`
//! types. `kleened openapi` prints it; `api/openapi.json` is the committed copy, kept equal to it by a
//! test.

use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

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
    modifiers(&BodyRefusals)
)]
struct ApiDoc;

/// Adds to every operation with a JSON request body the answers `request::json_body` gives for
/// any of them: 413 for a body over the limit, and 422 for one that is missing or does not fit
/// (where the handler's annotation does not say it already). Websocket operations, whose "body" is
/// their first frame, are left alone.
struct BodyRefusals;

impl Modify for BodyRefusals {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let answer = |description: String, schema: &str| {
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
        };
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
                        "the body is missing or does not fit the schema".into(),
                        "ValidationErrors",
                    )
                });
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
