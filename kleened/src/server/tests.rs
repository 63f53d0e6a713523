//! In-process API tests: the routes over an engine with an in-memory store and a recording
//! command runner, as clients see them.

use super::*;
use crate::store::testdata::{container, image, network, volume};
use crate::store::Store;
use http::StatusCode;
use kleene_api::{EndPoint, MountPoint, MountPointType};

async fn api() -> warp::filters::BoxedFilter<(Response,)> {
    let store = Store::open_in_memory().unwrap();
    store
        .write(|db| {
            db.insert_image(&image(
                "i1i1i1aaaaaa",
                "base",
                "latest",
                "2024-01-01T00:00:00.000000Z",
            ))?;
            db.insert_container(&container(
                "c1c1c1aaaaaa",
                Some("web"),
                "i1i1i1aaaaaa",
                "2024-01-02T00:00:00Z",
            ))?;
            db.insert_network(&network("n1n1n1aaaaaa", "default"))?;
            db.insert_volume(&volume("data", "2024-01-03T00:00:00Z"))?;
            db.insert_endpoint(&EndPoint {
                id: "e1e1e1aaaaaa".into(),
                network_id: "n1n1n1aaaaaa".into(),
                container_id: "c1c1c1aaaaaa".into(),
                epair: None,
                ip_address: "10.13.37.2".into(),
                ip_address6: "".into(),
            })?;
            db.insert_mount(&MountPoint {
                kind: MountPointType::Volume,
                container_id: "c1c1c1aaaaaa".into(),
                destination: "/data".into(),
                source: "data".into(),
                read_only: false,
                setuid: false,
                devices: false,
            })
        })
        .await
        .unwrap();
    routes(crate::engine::test_engine(store).0)
}

async fn get(path: &str) -> (StatusCode, String, Option<String>) {
    let res = warp::test::request()
        .method("GET")
        .path(path)
        .reply(&api().await)
        .await;
    let content_type = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    (
        res.status(),
        String::from_utf8(res.body().to_vec()).unwrap(),
        content_type,
    )
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap()
}

#[tokio::test]
async fn lists_answer_json_arrays() {
    for (path, first_key, first_value) in [
        ("/images/list", "id", "i1i1i1aaaaaa"),
        ("/containers/list?all=true", "id", "c1c1c1aaaaaa"),
        ("/networks/list", "name", "default"),
        ("/volumes/list", "name", "data"),
    ] {
        let (status, body, content_type) = get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(content_type.as_deref(), Some("application/json"), "{path}");
        let body = json(&body);
        assert_eq!(body[0][first_key], first_value, "{path}: {body}");
    }
}

#[tokio::test]
async fn container_list_has_the_summary_fields() {
    let (_, body, _) = get("/containers/list?all=true").await;
    let item = &json(&body)[0];
    assert_eq!(item["image_name"], "base");
    assert_eq!(item["image_tag"], "latest");
    assert_eq!(item["jid"], serde_json::Value::Null);
    assert_eq!(item["running"], false);
    assert_eq!(item["network_driver"], "host");
    assert_eq!(item["restart_policy"], "no");
    assert_eq!(item["public_ports"][0]["protocol"], "tcp");
}

#[tokio::test]
async fn container_list_without_all_shows_only_running_containers() {
    for path in ["/containers/list", "/containers/list?all=false"] {
        let (status, body, _) = get(path).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "[]"), "{path}");
    }
}

#[tokio::test]
async fn a_query_value_of_the_wrong_type_answers_422_with_a_pointer() {
    let (status, body, _) = get("/containers/list?all=yes").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let body = json(&body);
    assert_eq!(body["errors"][0]["title"], "Invalid value");
    assert_eq!(body["errors"][0]["source"]["pointer"], "/all");
    assert_eq!(
        body["message"],
        "invalid value at /all: 'yes' is not a boolean (true or false)"
    );
    assert!(
        body["errors"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("yes"),
        "{body}"
    );
}

#[tokio::test]
async fn inspect_finds_objects_by_id_prefix_and_name() {
    let (status, body, _) = get("/images/base:latest/inspect").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json(&body)["id"], "i1i1i1aaaaaa");

    let (status, body, _) = get("/containers/web/inspect").await;
    assert_eq!(status, StatusCode::OK);
    let body = json(&body);
    assert_eq!(body["container"]["id"], "c1c1c1aaaaaa");
    assert_eq!(body["container_endpoints"][0]["ip_address"], "10.13.37.2");
    assert_eq!(body["container_mountpoints"][0]["type"], "volume");

    let (status, body, _) = get("/networks/n1n1/inspect").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        json(&body)["network_endpoints"][0]["container_id"],
        "c1c1c1aaaaaa"
    );

    let (status, body, _) = get("/volumes/data/inspect").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json(&body)["mountpoints"][0]["destination"], "/data");
}

#[tokio::test]
async fn inspect_of_unknown_objects_answers_the_reference_404_bodies() {
    for (path, message) in [
        ("/images/nope/inspect", "image not found"),
        ("/containers/nope/inspect", "container not found"),
        ("/networks/nope/inspect", "network not found"),
        ("/volumes/dat/inspect", "No such volume"),
    ] {
        let (status, body, _) = get(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(
            json(&body),
            serde_json::json!({ "message": message }),
            "{path}"
        );
    }
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_a_json_not_found() {
    for (method, path) in [
        ("GET", "/nope"),
        ("GET", "/images"),
        ("POST", "/images/list"),
        ("GET", "/v1/images/list"),
    ] {
        let res = warp::test::request()
            .method(method)
            .path(path)
            .reply(&api().await)
            .await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{method} {path}");
        assert_eq!(
            res.body().as_ref(),
            br#"{"message":"not found"}"#,
            "{method} {path}"
        );
    }
}

/// Sends `method path` with a JSON `body` (none when empty) and answers the status and the
/// decoded body.
async fn call(
    api: &warp::filters::BoxedFilter<(Response,)>,
    method: &str,
    path: &str,
    body: &str,
) -> (StatusCode, serde_json::Value) {
    let mut request = warp::test::request().method(method).path(path);
    if !body.is_empty() {
        request = request.body(body);
    }
    let res = request.reply(api).await;
    let value = serde_json::from_slice(res.body()).unwrap_or_else(|_| {
        panic!(
            "{method} {path}: the answer is not JSON: {:?}",
            String::from_utf8_lossy(res.body())
        )
    });
    (res.status(), value)
}

#[tokio::test]
async fn a_post_without_a_body_answers_422_with_a_message() {
    let api = api().await;
    for path in ["/containers/create", "/containers/web/update"] {
        let (status, body) = call(&api, "POST", path, "").await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}");
        assert_eq!(
            body["message"],
            "invalid request body: the request has no body; a JSON ContainerConfig is expected",
            "{path}"
        );
        assert_eq!(body["errors"][0]["source"]["pointer"], "", "{path}");
    }
    let (status, body) = call(&api, "POST", "/containers/create", "{\"image\": \"ba").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("invalid request body: EOF"),
        "{body}"
    );
}

#[tokio::test]
async fn a_body_over_the_limit_answers_413_with_a_message() {
    let res = warp::test::request()
        .method("POST")
        .path("/containers/create")
        .body("{}")
        .header("content-length", (50u64 << 20).to_string())
        .reply(&api().await)
        .await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        json(std::str::from_utf8(res.body()).unwrap())["message"],
        format!("request body is larger than {BODY_LIMIT} bytes")
    );
}

#[tokio::test]
async fn a_websocket_endpoint_without_an_upgrade_answers_400_json() {
    let api = api().await;
    for path in ["/exec/start", "/images/create"] {
        let (status, body) = call(&api, "GET", path, "").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        assert!(
            body["message"].as_str().unwrap().contains("websocket"),
            "{path}: {body}"
        );
    }
}

/// Two containers, two images and two networks whose IDs share a prefix (`abc`, `fff`, `ddd`).
async fn ambiguous_api() -> (
    warp::filters::BoxedFilter<(Response,)>,
    Arc<kleene_runner::RecordingRunner>,
) {
    let store = Store::open_in_memory().unwrap();
    store
        .write(|db| {
            for (id, name) in [("fff111aaaaaa", "base"), ("fff222aaaaaa", "")] {
                let tag = if name.is_empty() { "" } else { "latest" };
                db.insert_image(&image(id, name, tag, "2024-01-01T00:00:00.000000Z"))?;
            }
            for (id, name) in [("abc111aaaaaa", "one"), ("abc222aaaaaa", "two")] {
                db.insert_container(&container(
                    id,
                    Some(name),
                    "fff111aaaaaa",
                    "2024-01-02T00:00:00Z",
                ))?;
            }
            db.insert_network(&network("ddd111aaaaaa", "front"))?;
            let mut back = network("ddd222aaaaaa", "back");
            back.interface = "kleene1".into();
            back.subnet = "10.13.38.0/24".into();
            db.insert_network(&back)
        })
        .await
        .unwrap();
    let (engine, runner) = crate::engine::test_engine(store);
    (routes(engine), runner)
}

#[tokio::test]
async fn an_ambiguous_prefix_is_refused_naming_the_candidates() {
    let (api, runner) = ambiguous_api().await;
    let containers = "container identifier 'abc' is ambiguous: it matches 2 containers \
                      (abc111aaaaaa, abc222aaaaaa); give more of the ID";
    let images = "image identifier 'fff' is ambiguous: it matches 2 images \
                  (fff111aaaaaa, fff222aaaaaa); give more of the ID";
    // 409 where the reference answers 409; 404 where its clients know no other refusal.
    for (method, path, body, status, message) in [
        (
            "DELETE",
            "/containers/abc",
            "",
            StatusCode::CONFLICT,
            containers,
        ),
        (
            "POST",
            "/containers/abc/update",
            r#"{"persist": true}"#,
            StatusCode::CONFLICT,
            containers,
        ),
        (
            "GET",
            "/containers/abc/inspect",
            "",
            StatusCode::NOT_FOUND,
            containers,
        ),
        (
            "POST",
            "/containers/abc/stop",
            "",
            StatusCode::NOT_FOUND,
            containers,
        ),
        (
            "GET",
            "/images/fff/inspect",
            "",
            StatusCode::NOT_FOUND,
            images,
        ),
        ("DELETE", "/images/fff", "", StatusCode::NOT_FOUND, images),
        (
            "POST",
            "/images/fff/tag?nametag=new:one",
            "",
            StatusCode::NOT_FOUND,
            images,
        ),
        (
            "POST",
            "/containers/create",
            r#"{"image": "fff", "network_driver": "host"}"#,
            StatusCode::NOT_FOUND,
            images,
        ),
    ] {
        let (got, answer) = call(&api, method, path, body).await;
        assert_eq!(got, status, "{method} {path}: {answer}");
        assert_eq!(answer["message"], message, "{method} {path}");
    }
    assert!(
        runner.lines().is_empty(),
        "nothing may run on the host: {:?}",
        runner.lines()
    );
    let (_, list) = call(&api, "GET", "/containers/list?all=true", "").await;
    assert_eq!(list.as_array().unwrap().len(), 2, "nothing was removed");
    let (_, images) = call(&api, "GET", "/images/list", "").await;
    assert_eq!(images[0]["id"], "fff111aaaaaa");
    assert_eq!(images[0]["name"], "base", "nothing was retagged: {images}");
}

#[tokio::test]
async fn a_unique_prefix_an_exact_id_and_a_name_still_resolve() {
    let (api, _) = ambiguous_api().await;
    for (path, id) in [
        ("/containers/abc1/inspect", "abc111aaaaaa"),
        ("/containers/two/inspect", "abc222aaaaaa"),
        ("/networks/ddd2/inspect", "ddd222aaaaaa"),
        ("/networks/front/inspect", "ddd111aaaaaa"),
    ] {
        let (status, body) = call(&api, "GET", path, "").await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        let found = body
            .get("container")
            .or_else(|| body.get("network"))
            .unwrap();
        assert_eq!(found["id"], id, "{path}");
    }
    let (status, body) = call(&api, "GET", "/images/fff2/inspect", "").await;
    assert_eq!(
        (status, &body["id"]),
        (StatusCode::OK, &"fff222aaaaaa".into())
    );
}

#[tokio::test]
async fn an_empty_identifier_matches_nothing() {
    let (api, _) = ambiguous_api().await;
    // `:` is an empty name and tag, which untagged images have: still no match.
    let (status, body) = call(&api, "GET", "/images/:/inspect", "").await;
    assert_eq!(
        (status, &body["message"]),
        (StatusCode::NOT_FOUND, &"image not found".into())
    );
    let (status, body) = call(
        &api,
        "POST",
        "/exec/create",
        r#"{"container_id": "", "cmd": []}"#,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["message"], "container not found");
    let (status, body) = call(
        &api,
        "POST",
        "/networks/connect",
        r#"{"container": "", "network": "front"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["message"], "container not found");
}

#[tokio::test]
async fn a_name_another_container_holds_is_refused() {
    let (api, runner) = ambiguous_api().await;
    let taken = "container name 'two' is already in use by container abc222aaaaaa";
    let (status, body) = call(
        &api,
        "POST",
        "/containers/create",
        r#"{"image": "base", "name": "/two", "network_driver": "host"}"#,
    )
    .await;
    // Create answers every refusal with 404, as the reference does.
    assert_eq!(
        (status, &body["message"]),
        (StatusCode::NOT_FOUND, &taken.into())
    );
    assert!(runner.lines().is_empty(), "no clone: {:?}", runner.lines());

    let (status, body) = call(&api, "POST", "/containers/one/update", r#"{"name": "two"}"#).await;
    assert_eq!(
        (status, &body["message"]),
        (StatusCode::CONFLICT, &taken.into())
    );
    // An ID is no name either: the exact ID would always win the lookup.
    let (status, body) = call(
        &api,
        "POST",
        "/containers/one/update",
        r#"{"name": "abc222aaaaaa"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    // Keeping one's own name, or taking a free one, is fine.
    for name in ["one", "three"] {
        let (status, body) = call(
            &api,
            "POST",
            "/containers/abc1/update",
            &format!(r#"{{"name": "{name}"}}"#),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{name}: {body}");
    }
    let (_, list) = call(&api, "GET", "/containers/list?all=true", "").await;
    let mut names: Vec<_> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["three", "two"]);

    let (status, body) = call(
        &api,
        "POST",
        "/containers/create",
        r#"{"image": "base", "name": "four", "network_driver": "host"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn names_longer_than_255_bytes_are_refused() {
    let (api, _) = ambiguous_api().await;
    let long = "n".repeat(256);
    let (status, body) = call(
        &api,
        "POST",
        "/containers/create",
        &format!(r#"{{"image": "base", "name": "{long}", "network_driver": "host"}}"#),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["message"], "container name is longer than 255 bytes");
    let (status, body) = call(
        &api,
        "POST",
        "/containers/one/update",
        &format!(r#"{{"name": "/{long}"}}"#),
    )
    .await;
    // Update has a 409 for what the container cannot take; create answers every refusal 404.
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["message"], "container name is longer than 255 bytes");
    let (status, body) = call(
        &api,
        "POST",
        "/containers/one/update",
        &format!(r#"{{"name": "{}"}}"#, "n".repeat(255)),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}
