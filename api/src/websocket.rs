//! Frames of the websocket endpoints (`/images/create`, later `/exec/start` and `/images/build`).
//!
//! The server first sends a `starting` message, then raw text frames (output, progress), and ends with
//! a Close frame whose reason is a JSON [`WebSocketMessage`]. Clients read the final status only from
//! that reason, so it is always JSON and always fits the 123 bytes a close reason may have.

use serde::{Deserialize, Serialize};

/// Kind of a protocol message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum MsgType {
    /// The operation has started.
    Starting,
    /// The operation ended (normally).
    Closing,
    /// The operation failed or was refused.
    Error,
}

/// A protocol message. Its fields are declared in alphabetical order because the reference server
/// serialises them that way and clients compare the text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebSocketMessage {
    /// Operation-specific data, such as an image ID.
    pub data: String,
    /// Human-readable text.
    pub message: String,
    /// Kind of message.
    pub msg_type: MsgType,
}

/// The largest close reason the websocket protocol allows, in bytes.
pub const MAX_CLOSE_REASON: usize = 123;

/// Close code: normal end.
pub const CLOSE_NORMAL: u16 = 1000;
/// Close code: started in detached mode.
pub const CLOSE_GOING_AWAY: u16 = 1001;
/// Close code: the configuration frame was invalid.
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;
/// Close code: the operation failed.
pub const CLOSE_INTERNAL_ERROR: u16 = 1011;

impl WebSocketMessage {
    /// A message of `kind`.
    pub fn new(kind: MsgType, message: impl Into<String>, data: impl Into<String>) -> Self {
        WebSocketMessage {
            data: data.into(),
            message: message.into(),
            msg_type: kind,
        }
    }

    /// The JSON text of the message.
    pub fn to_json(&self) -> String {
        // A struct of strings always serialises.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The JSON text, shortened to fit a close reason: `message`, then `data`, are cut (marked with
    /// `…`) until the whole fits in [`MAX_CLOSE_REASON`] bytes.
    pub fn to_close_reason(&self) -> String {
        let mut message = self.clone();
        loop {
            let text = message.to_json();
            if text.len() <= MAX_CLOSE_REASON {
                return text;
            }
            let excess = text.len() - MAX_CLOSE_REASON;
            let field = if message.message.chars().count() > 1 {
                &mut message.message
            } else {
                &mut message.data
            };
            shorten(field, excess);
        }
    }
}

/// Removes at least `excess` bytes (JSON-escaped) from the end of `text`, plus room for a `…`.
fn shorten(text: &mut String, excess: usize) {
    let marker = '…';
    if text.ends_with(marker) {
        text.pop();
    }
    let mut removed = 0;
    while removed < excess + marker.len_utf8() {
        match text.pop() {
            // Escaped characters take more room in JSON than in the string; count generously.
            Some(c) => removed += serde_json::to_string(&c).map(|s| s.len() - 2).unwrap_or(6),
            None => break,
        }
    }
    text.push(marker);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_serialise_with_keys_in_alphabetical_order() {
        let message = WebSocketMessage::new(MsgType::Starting, "", "");
        assert_eq!(
            message.to_json(),
            r#"{"data":"","message":"","msg_type":"starting"}"#
        );
    }

    #[test]
    fn long_close_reasons_are_cut_to_fit() {
        let long = "image creation failed: ".to_owned() + &"x\"é".repeat(80);
        let reason = WebSocketMessage::new(MsgType::Error, long, "").to_close_reason();
        assert!(reason.len() <= MAX_CLOSE_REASON, "{} bytes", reason.len());
        let back: WebSocketMessage = serde_json::from_str(&reason).unwrap();
        assert!(back.message.starts_with("image creation failed: x"));
        assert!(back.message.ends_with('…'));

        let short = WebSocketMessage::new(MsgType::Closing, "image created", "0123456789ab");
        assert_eq!(short.to_close_reason(), short.to_json());
    }
}
