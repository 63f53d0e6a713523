//! The websocket protocol shared by the streaming endpoints: the configuration frame, the
//! `starting` message, raw text frames, and a Close frame whose reason is a JSON message.

use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use kleene_api::websocket::{CLOSE_PROTOCOL_ERROR, MAX_CLOSE_REASON};
use kleene_api::{MsgType, WebSocketMessage};
use serde::de::DeserializeOwned;
use warp::ws::{Message, WebSocket};

/// How long a client may take to send its configuration frame once the websocket is open. Clients
/// (klee, the Python client) send it right after the handshake; a connection that says nothing
/// would otherwise hold its place under the listener's cap for ever. It bounds the first frame
/// only: the session that follows lasts as long as its process or image creation.
const CONFIG_TIMEOUT: Duration = Duration::from_secs(30);

/// The sending half of a session.
pub type Sender = SplitSink<WebSocket, Message>;
/// The receiving half of a session.
pub type Receiver = SplitStream<WebSocket>;

/// Why a configuration frame was refused: a text frame with the detail, then close 1002 with the
/// summary.
#[derive(Debug)]
pub struct Refusal {
    /// `invalid json` or `invalid parameters`.
    pub summary: &'static str,
    /// What exactly is wrong.
    pub detail: String,
}

/// Reads the configuration frame (text or binary JSON) and decodes it as `T`. A client that sends
/// none within [`CONFIG_TIMEOUT`] is refused as `timed out`.
pub async fn read_config<T: DeserializeOwned>(rx: &mut Receiver) -> Result<T, Refusal> {
    read_config_within(rx, CONFIG_TIMEOUT).await
}

async fn read_config_within<T: DeserializeOwned>(
    rx: &mut Receiver,
    limit: Duration,
) -> Result<T, Refusal> {
    let refusal = |summary, detail: String| Refusal { summary, detail };
    let frame = tokio::time::timeout(limit, async {
        while let Some(message) = rx.next().await {
            match message {
                Ok(m) if m.is_text() || m.is_binary() => return Some(m.into_bytes()),
                Ok(m) if m.is_close() => return None,
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
        None
    })
    .await
    .map_err(|_| {
        refusal(
            "timed out",
            format!(
                "no configuration frame arrived within {} s",
                limit.as_secs_f64()
            ),
        )
    })?
    .ok_or_else(|| {
        refusal(
            "invalid json",
            "the connection closed before the configuration frame".into(),
        )
    })?;
    let value: serde_json::Value =
        serde_json::from_slice(&frame).map_err(|e| refusal("invalid json", e.to_string()))?;
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let detail = e.into_inner().to_string();
        let detail = if path == "." {
            detail
        } else {
            format!("{path}: {detail}")
        };
        refusal("invalid parameters", detail)
    })
}

/// Sends the refusal and closes with 1002.
pub async fn refuse(tx: &mut Sender, refusal: Refusal) {
    let _ = tx.send(Message::text(refusal.detail)).await;
    close(
        tx,
        CLOSE_PROTOCOL_ERROR,
        &WebSocketMessage::new(MsgType::Error, refusal.summary, ""),
    )
    .await;
}

/// Sends a protocol message as a text frame.
pub async fn send_message(tx: &mut Sender, message: &WebSocketMessage) -> bool {
    tx.send(Message::text(message.to_json())).await.is_ok()
}

/// Closes with `code` and `message` as the reason (shortened to fit).
pub async fn close(tx: &mut Sender, code: u16, message: &WebSocketMessage) {
    let reason = message.to_close_reason();
    debug_assert!(reason.len() <= MAX_CLOSE_REASON);
    let _ = tx.send(Message::close_with(code, reason)).await;
    let _ = tx.close().await;
}

/// Reads and drops client frames until the client goes away, so pings are answered while the
/// server streams. Frames after the configuration mean nothing to these endpoints.
pub async fn drain(mut rx: Receiver) {
    while let Some(Ok(_)) = rx.next().await {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use kleene_api::ExecStartConfig;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use warp::Filter;

    /// An endpoint that reads its configuration frame within `limit` and refuses it as
    /// `/images/create` does (the detail as a text frame, then close 1002 with the summary).
    fn endpoint(
        limit: Duration,
    ) -> impl Filter<Extract = (impl warp::Reply,), Error = warp::Rejection> + Clone {
        warp::ws().map(move |upgrade: warp::ws::Ws| {
            upgrade.on_upgrade(move |socket| async move {
                let (mut tx, mut rx) = socket.split();
                match read_config_within::<ExecStartConfig>(&mut rx, limit).await {
                    Ok(_) => {
                        let done = WebSocketMessage::new(MsgType::Closing, "read", "");
                        close(&mut tx, 1000, &done).await;
                    }
                    Err(refusal) => refuse(&mut tx, refusal).await,
                }
            })
        })
    }

    /// A websocket client by hand (warp's test client hides close frames): serves [`endpoint`]
    /// on a port of its own and answers the connection once its handshake is done.
    async fn connect(limit: Duration) -> tokio::net::TcpStream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(warp::serve(endpoint(limit)).incoming(listener).run());
        let mut stream = tokio::net::TcpStream::connect(address)
            .await
            .expect("connect");
        stream
            .write_all(
                b"GET / HTTP/1.1\r\nhost: test\r\nupgrade: websocket\r\nconnection: upgrade\r\n\
                  sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n",
            )
            .await
            .expect("handshake");
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            head.push(stream.read_u8().await.expect("handshake answer"));
        }
        assert!(
            head.starts_with(b"HTTP/1.1 101"),
            "{}",
            String::from_utf8_lossy(&head)
        );
        stream
    }

    /// The next frame: its opcode and payload (server frames are not masked; payloads here are
    /// short).
    async fn frame(stream: &mut tokio::net::TcpStream) -> (u8, Vec<u8>) {
        let first = stream.read_u8().await.expect("frame");
        let len = usize::from(stream.read_u8().await.expect("length") & 0x7f);
        let len = if len == 126 {
            usize::from(stream.read_u16().await.expect("length"))
        } else {
            len
        };
        let mut payload = vec![0; len];
        stream.read_exact(&mut payload).await.expect("payload");
        (first & 0x0f, payload)
    }

    /// The close frame's code and its reason's message.
    fn closing(payload: &[u8]) -> (u16, String) {
        let code = u16::from_be_bytes([payload[0], payload[1]]);
        let reason: WebSocketMessage =
            serde_json::from_slice(&payload[2..]).expect("a JSON reason");
        (code, reason.message)
    }

    #[tokio::test]
    async fn a_client_that_says_nothing_is_closed_with_a_reason_saying_so() {
        let started = std::time::Instant::now();
        let mut stream = connect(Duration::from_millis(300)).await;
        let (opcode, detail) = frame(&mut stream).await;
        assert_eq!(opcode, 1, "a text frame first");
        assert_eq!(detail, b"no configuration frame arrived within 0.3 s");
        let (opcode, payload) = frame(&mut stream).await;
        assert_eq!(opcode, 8, "then the close frame");
        assert_eq!(
            closing(&payload),
            (CLOSE_PROTOCOL_ERROR, "timed out".to_owned())
        );
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_secs(5),
            "closed after {took:?}"
        );
    }

    #[tokio::test]
    async fn a_configuration_frame_in_time_is_read() {
        let mut stream = connect(Duration::from_secs(5)).await;
        let config = br#"{"exec_id": "x", "attach": true, "start_container": false}"#;
        // A client's frame is masked; a zero mask leaves the payload as it is.
        let mut frame_bytes = vec![0x81, 0x80 | u8::try_from(config.len()).expect("short")];
        frame_bytes.extend_from_slice(&[0, 0, 0, 0]);
        frame_bytes.extend_from_slice(config);
        stream
            .write_all(&frame_bytes)
            .await
            .expect("send the frame");
        let (opcode, payload) = frame(&mut stream).await;
        assert_eq!(opcode, 8);
        assert_eq!(closing(&payload), (1000, "read".to_owned()));
    }
}
