//! The OpenAPI document of the API, assembled from the handlers' annotations and the `kleene-api`
//! types. `kleened openapi` prints it; `api/openapi.json` is the committed copy, kept equal to it by a
//! test.

use utoipa::OpenApi;

use super::{containers, exec, images, info, networks, volumes};

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
        info::info,
        networks::list,
        networks::inspect,
        networks::create,
        networks::remove,
        networks::prune,
        networks::connect,
        networks::disconnect,
        volumes::list,
        volumes::inspect,
    )
)]
struct ApiDoc;

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
