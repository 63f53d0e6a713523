//! Decoding of requests: query parameters and JSON bodies, with the API's 422 answers and the body
//! size limit.

use std::collections::HashMap;
use std::convert::Infallible;

use bytes::{Buf, BytesMut};
use futures_util::{Stream, StreamExt};
use kleene_api::ValidationErrors;
use serde::de::DeserializeOwned;
use warp::{Filter, Rejection};

/// The largest request body accepted, in bytes.
pub const BODY_LIMIT: u64 = 1024 * 1024;

/// A request refused while decoding it; `recover` answers it.
#[derive(Debug)]
pub(super) enum Refused {
    /// The body or a parameter does not fit the schema: 422.
    Invalid(ValidationErrors),
    /// The body is larger than [`BODY_LIMIT`]: 413.
    TooLarge,
    /// The body could not be read (the client went away, or sent a broken chunked encoding): 400.
    Unreadable(String),
}

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

/// A JSON request body of type `T`, at most [`BODY_LIMIT`] bytes. A body that is missing, not
/// JSON, or does not fit `T` is answered with 422 naming the field at fault; a larger one with 413.
///
/// The limit holds whether or not the client sent a `content-length`: a declared length over the
/// limit is refused before anything is read, and a chunked body is read only up to the limit. A
/// request without a body (no `content-length`, no chunks) is an empty body, refused as missing.
pub fn json_body<T: DeserializeOwned + Send>(
) -> impl Filter<Extract = (T,), Error = Rejection> + Clone {
    warp::header::optional::<u64>("content-length")
        .and_then(|length: Option<u64>| async move {
            match length {
                Some(length) if length > BODY_LIMIT => Err(warp::reject::custom(Refused::TooLarge)),
                _ => Ok(()),
            }
        })
        .untuple_one()
        .and(warp::body::stream())
        .and_then(|body| async move {
            let bytes = read_limited(body, BODY_LIMIT)
                .await
                .map_err(warp::reject::custom)?;
            decode_body::<T>(&bytes)
                .map_err(|errors| warp::reject::custom(Refused::Invalid(errors)))
        })
}

/// Reads a body stream, refusing it as soon as it grows past `limit` bytes.
async fn read_limited<S, B>(body: S, limit: u64) -> Result<BytesMut, Refused>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let mut body = std::pin::pin!(body);
    let mut bytes = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|e| Refused::Unreadable(e.to_string()))?;
        if (bytes.len() + chunk.remaining()) as u64 > limit {
            return Err(Refused::TooLarge);
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            let len = part.len();
            bytes.extend_from_slice(part);
            chunk.advance(len);
        }
    }
    Ok(bytes)
}

/// Decodes a request body as `T`; an empty (or all-blank) body is missing, said so plainly rather
/// than as the decoder's "EOF".
fn decode_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ValidationErrors> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        let schema = std::any::type_name::<T>()
            .rsplit("::")
            .next()
            .unwrap_or("object");
        return Err(ValidationErrors::single(
            "",
            format!("the request has no body; a JSON {schema} is expected"),
        ));
    }
    decode_json(bytes)
}

/// Decodes `bytes` as `T`, locating the first error as a JSON pointer.
pub(super) fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ValidationErrors> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        // Text that is not JSON is the body's fault as a whole, wherever the parser stopped.
        let pointer = if err.inner().is_syntax() || err.inner().is_eof() {
            String::new()
        } else {
            pointer_of(err.path())
        };
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
        answer(warp::test::request().method("POST").body(body)).await
    }

    async fn answer(request: warp::test::RequestBuilder) -> (StatusCode, serde_json::Value) {
        let res = request.reply(&route()).await;
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
        // The message clients print (the Python client reads only `message`).
        let message = body["message"].as_str().unwrap();
        assert!(
            message.starts_with("invalid value at /cmd/1: invalid type: integer `3`"),
            "{body}"
        );
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
        assert!(body["message"].as_str().unwrap().contains("cmd"), "{body}");
        let (status, body) = post(b"{not json").await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .starts_with("invalid request body: key must be a string"),
            "{body}"
        );
        let (status, body) = post(br#"{"name":"x","cmd":[]} trailing"#).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(body["message"].is_string(), "{body}");
    }

    #[tokio::test]
    async fn a_post_without_a_body_is_refused_as_missing() {
        let expected = "invalid request body: the request has no body; a JSON Body is expected";
        // No content-length at all, as curl -X POST sends it.
        let (status, body) = answer(warp::test::request().method("POST")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["message"], expected);
        for empty in [&b""[..], b"  \n"] {
            let (status, body) = post(empty).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
            assert_eq!(body["message"], expected);
        }
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_is_refused_before_reading() {
        // The declared length alone decides: the (short) body is never read.
        let request = warp::test::request()
            .method("POST")
            .body(br#"{"name":"x","cmd":[]}"#)
            .header("content-length", (BODY_LIMIT + 1).to_string());
        let (status, body) = answer(request).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(
            body["message"],
            format!("request body is larger than {BODY_LIMIT} bytes")
        );
    }

    #[tokio::test]
    async fn a_body_without_a_length_is_read_only_up_to_the_limit() {
        let chunk = || Ok::<_, warp::Error>(bytes::Bytes::from(vec![b' '; 64 * 1024]));
        // 16 chunks of 64 KiB are exactly the limit; one byte more is refused.
        let exact = futures_util::stream::iter((0..16).map(|_| chunk()));
        assert_eq!(
            read_limited(exact, BODY_LIMIT).await.unwrap().len(),
            1 << 20
        );
        let endless = futures_util::stream::iter(std::iter::repeat_with(chunk));
        let over = futures_util::stream::iter(std::iter::once(Ok::<_, warp::Error>(
            bytes::Bytes::from_static(b"x"),
        )))
        .chain(endless);
        assert!(matches!(
            read_limited(over, BODY_LIMIT).await,
            Err(Refused::TooLarge)
        ));
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
