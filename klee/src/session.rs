//! The client side of the websocket endpoints: send the configuration frame, wait for `starting`,
//! hand every frame to the caller, and read the final status from the Close frame's JSON reason.

use futures_util::{SinkExt, StreamExt};
use kleene_api::{MsgType, WebSocketMessage};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

use crate::connection::{ClientError, Connection};

/// One frame of output.
#[derive(Debug)]
pub enum Frame {
    /// A text frame.
    Text(String),
    /// A binary frame.
    Binary(Vec<u8>),
}

/// How a session ended.
#[derive(Debug)]
pub struct Ending {
    /// Whether the server sent `starting`.
    pub started: bool,
    /// The close code, if the server closed properly.
    pub code: Option<u16>,
    /// The close reason, when it was a protocol message.
    pub message: Option<WebSocketMessage>,
}

impl Ending {
    /// True for a close whose reason is a `closing` message.
    pub fn succeeded(&self) -> bool {
        self.message
            .as_ref()
            .is_some_and(|m| m.msg_type == MsgType::Closing)
    }

    /// The reason's text, or a description of how the connection ended without one.
    pub fn describe(&self) -> String {
        match (&self.message, self.code) {
            (Some(message), _) => message.message.clone(),
            (None, Some(code)) => {
                format!("kleened closed the connection with code {code} and no status")
            }
            (None, None) => "the connection to kleened was lost".to_owned(),
        }
    }
}

/// Runs a session on `path` with `config` as the first frame, calling `on_frame` for each frame after
/// `starting`.
pub async fn run<C: serde::Serialize>(
    conn: &Connection,
    path: &str,
    config: &C,
    mut on_frame: impl FnMut(Frame),
) -> Result<Ending, ClientError> {
    let mut socket = conn.websocket(path).await?;
    let config = serde_json::to_string(config)
        .map_err(|e| ClientError::Settings(format!("cannot encode the configuration: {e}")))?;
    socket
        .send(Message::text(config))
        .await
        .map_err(|e| ClientError::Unreachable {
            host: conn.host(),
            reason: format!("could not send the configuration: {e}"),
        })?;
    let mut ending = Ending {
        started: false,
        code: None,
        message: None,
    };
    while let Some(message) = socket.next().await {
        match message {
            Ok(Message::Text(text)) if !ending.started => {
                match serde_json::from_str::<WebSocketMessage>(text.as_str()) {
                    Ok(m) if m.msg_type == MsgType::Starting => ending.started = true,
                    // Text before `starting` is a refusal's detail; show it.
                    _ => on_frame(Frame::Text(text.as_str().to_owned())),
                }
            }
            Ok(Message::Text(text)) => on_frame(Frame::Text(text.as_str().to_owned())),
            Ok(Message::Binary(bytes)) => on_frame(Frame::Binary(bytes.to_vec())),
            Ok(Message::Close(frame)) => {
                if let Some(frame) = frame {
                    ending.code = Some(u16::from(frame.code));
                    ending.message = serde_json::from_str(frame.reason.as_str()).ok();
                } else {
                    ending.code = Some(u16::from(CloseCode::Status));
                }
                break;
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    Ok(ending)
}
