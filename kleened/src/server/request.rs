//! Decoding of requests: query parameters and JSON bodies, with the API's 422 answers.

use std::collections::HashMap;
use std::convert::Infallible;

use kleene_api::ValidationErrors;
use serde::de::DeserializeOwned;
use warp::{Filter, Rejection};

/// The largest request body accepted, in bytes.
pub const BODY_LIMIT: u64 = 1024 * 1024;

/// A request refused while decoding it; `recover` answers it with 422.
#[derive(Debug)]
pub(super) struct Refused(pub ValidationErrors);

impl warp::reject::Reject for Refused {}

/// The query string as name/value pairs (percent-decoded). Duplicate names keep the last value.
pub(super) fn query(
) -> impl Filter<Extract = (HashMap<String, String>,), Error = Infallible> + Clone {
    warp::query::<Vec<(String, String)>>()
        .or(warp::any().map(Vec::new))
        .unify()
        .map(|pairs: Vec<(String, String)>| pairs.into_iter().collect())
}

/// Reads an optional boolean query parameter; anything but `true`/`false` is a 422.
pub(super) fn bool_param(
    params: &HashMap<String, String>,
    name: &str,
) -> Result<Option<bool>, ValidationErrors> {
    match params.get(name).map(String::as_str) {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(other) => Err(ValidationErrors::single(
            format!("/{name}"),
            format!("'{other}' is not a boolean (true or false)"),
        )),
    }
}

/// A JSON request body of type `T`, at most [`BODY_LIMIT`] bytes. A body that is not JSON, or does
/// not fit `T`, is answered with 422 naming the field at fault.
pub fn json_body<T: DeserializeOwned + Send>(
) -> impl Filter<Extract = (T,), Error = Rejection> + Clone {
    warp::body::content_length_limit(BODY_LIMIT)
        .and(warp::body::bytes())
        .and_then(|bytes: bytes::Bytes| async move {
            decode_json::<T>(&bytes).map_err(|errors| warp::reject::custom(Refused(errors)))
        })
}

/// Decodes `bytes` as `T`, locating the first error as a JSON pointer.
pub(super) fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ValidationErrors> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let pointer = pointer_of(err.path());
        ValidationErrors::single(pointer, err.into_inner().to_string())
    })?;
    deserializer
        .end()
        .map_err(|err| ValidationErrors::single("", err.to_string()))?;
    Ok(value)
}

fn pointer_of(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut pointer = String::new();
    for segment in path.iter() {
        pointer.push('/');
        match segment {
            Segment::Seq { index } => pointer.push_str(&index.to_string()),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                pointer.push_str(&key.replace('~', "~0").replace('/', "~1"))
            }
            Segment::Unknown => pointer.push('?'),
        }
    }
    pointer
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;
    use warp::Reply;

    #[derive(Debug, serde::Deserialize)]
    struct Body {
        #[allow(dead_code)]
        name: String,
        #[allow(dead_code)]
        cmd: Vec<String>,
    }

    fn route(
    ) -> impl Filter<Extract = (warp::reply::Response,), Error = std::convert::Infallible> + Clone
    {
        warp::post()
            .and(json_body::<Body>())
            .map(|_body: Body| warp::reply().into_response())
            .recover(crate::server::recover)
            .unify()
    }

    async fn post(body: &[u8]) -> (StatusCode, serde_json::Value) {
        let res = warp::test::request()
            .method("POST")
            .body(body)
            .reply(&route())
            .await;
        (
            res.status(),
            serde_json::from_slice(res.body()).unwrap_or(serde_json::Value::Null),
        )
    }

    #[tokio::test]
    async fn a_valid_body_is_decoded() {
        assert_eq!(
            post(br#"{"name":"x","cmd":["ls"],"unknown":1}"#).await.0,
            StatusCode::OK
        );
    }

    #[tokio::test]
    async fn a_field_of_the_wrong_type_is_named_by_a_pointer() {
        let (status, body) = post(br#"{"name":"x","cmd":["ls", 3]}"#).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["errors"][0]["source"]["pointer"], "/cmd/1");
        assert_eq!(body["errors"][0]["title"], "Invalid value");
    }

    #[tokio::test]
    async fn missing_fields_and_malformed_json_are_422() {
        let (status, body) = post(br#"{"name":"x"}"#).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            body["errors"][0]["detail"]
                .as_str()
                .unwrap()
                .contains("cmd"),
            "{body}"
        );
        let (status, _) = post(b"{not json").await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let (status, body) = post(br#"{"name":"x","cmd":[]} trailing"#).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    }

    #[tokio::test]
    async fn bodies_over_the_limit_are_refused_unread() {
        let big = vec![b' '; BODY_LIMIT as usize + 1];
        let (status, body) = post(&big).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(
            body["message"].as_str().unwrap().contains("larger than"),
            "{body}"
        );
    }
}
