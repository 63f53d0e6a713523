//! The client side of the websocket endpoints: send the configuration frame, wait for `starting`,
//! hand every frame to the caller, and read the final status from the Close frame's JSON reason.
//! A session the caller cancels (Ctrl-C) is closed from this side, which tells the daemon to stop.

use futures_util::{SinkExt, StreamExt};
use kleene_api::{MsgType, WebSocketMessage};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use crate::connection::{ClientError, Connection};

/// One frame of output.
#[derive(Debug)]
pub enum Frame {
    /// The `starting` message; its `data` (an image build's ID, or `""`).
    Started(String),
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
    /// Whether the caller cancelled the session, which klee then closed.
    pub cancelled: bool,
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

/// Runs a session on `path` with `config` as the first frame, calling `on_frame` with `starting`
/// and each frame after it (and with any text before it: a refusal's detail).
pub async fn run<C: serde::Serialize>(
    conn: &Connection,
    path: &str,
    config: &C,
    on_frame: impl FnMut(Frame),
) -> Result<Ending, ClientError> {
    run_until(conn, path, config, on_frame, std::future::pending()).await
}

/// [`run`], until `cancel` completes: then the session is closed from this side (1001, going
/// away), which the daemon takes as the client leaving, and the ending says it was cancelled.
pub async fn run_until<C: serde::Serialize>(
    conn: &Connection,
    path: &str,
    config: &C,
    mut on_frame: impl FnMut(Frame),
    cancel: impl std::future::Future<Output = ()>,
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
        cancelled: false,
    };
    tokio::pin!(cancel);
    loop {
        let message = tokio::select! {
            message = socket.next() => match message {
                Some(message) => message,
                None => break,
            },
            () = &mut cancel => {
                ending.cancelled = true;
                let going = CloseFrame {
                    code: CloseCode::Away,
                    reason: "".into(),
                };
                // Whether the daemon hears it or sees the connection drop, it stops the same way.
                let _ = socket.close(Some(going)).await;
                break;
            }
        };
        match message {
            Ok(Message::Text(text)) if !ending.started => {
                match serde_json::from_str::<WebSocketMessage>(text.as_str()) {
                    Ok(m) if m.msg_type == MsgType::Starting => {
                        ending.started = true;
                        on_frame(Frame::Started(m.data));
                    }
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
