//! The websocket protocol shared by the streaming endpoints: the configuration frame, the
//! `starting` message, raw text frames, and a Close frame whose reason is a JSON message.

use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use kleene_api::websocket::{CLOSE_PROTOCOL_ERROR, MAX_CLOSE_REASON};
use kleene_api::{MsgType, WebSocketMessage};
use serde::de::DeserializeOwned;
use warp::ws::{Message, WebSocket};

/// How long a client may take to send its configuration frame.
const CONFIG_TIMEOUT: Duration = Duration::from_secs(60);

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

/// Reads the configuration frame (text or binary JSON) and decodes it as `T`.
pub async fn read_config<T: DeserializeOwned>(rx: &mut Receiver) -> Result<T, Refusal> {
    let refusal = |summary, detail: String| Refusal { summary, detail };
    let frame = tokio::time::timeout(CONFIG_TIMEOUT, async {
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
    .map_err(|_| refusal("invalid json", "no configuration frame received".into()))?
    .ok_or_else(|| {
        refusal(
            "invalid json",
            "the connection closed before the configuration frame".into(),
        )
    })?;
    let value: serde_json::Value = serde_json::from_slice(&frame)
        .map_err(|e| refusal("invalid json", format!("invalid json: {e}")))?;
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
