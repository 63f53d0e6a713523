//! Exec instances: a process to run in a container, started over the `/exec/start` websocket.

use serde::{Deserialize, Serialize};

/// The body of `POST /exec/create`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExecConfig {
    /// The container: ID, ID prefix or name.
    pub container_id: String,
    /// Command; `[]` uses the container's.
    #[serde(default)]
    pub cmd: Vec<String>,
    /// Environment `NAME=value`, over the container's.
    #[serde(default)]
    pub env: Vec<String>,
    /// User; `""` uses the container's.
    #[serde(default)]
    pub user: String,
    /// Give the process a pseudo-terminal.
    #[serde(default, deserialize_with = "crate::de::lenient_bool")]
    pub tty: bool,
}

/// The configuration frame of the `/exec/start` websocket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExecStartConfig {
    /// The exec instance to start.
    pub exec_id: String,
    /// Stream output to this socket and its frames to the process's input.
    #[serde(deserialize_with = "crate::de::lenient_bool")]
    pub attach: bool,
    /// Start the container if it is not running.
    #[serde(deserialize_with = "crate::de::lenient_bool")]
    pub start_container: bool,
    /// The size of a `tty` process's terminal; 24 rows × 80 columns when absent. (kleened
    /// addition.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tty_size: Option<TtySize>,
    /// How the client's frames are read. `false` (the Kleened API): every frame is input. `true`
    /// (kleened addition): binary frames are input and text frames are [`ExecControl`] messages,
    /// which end the input or change the terminal's size.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub control: bool,
}

/// A terminal's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TtySize {
    /// Rows.
    pub rows: u16,
    /// Columns.
    pub cols: u16,
}

impl Default for TtySize {
    fn default() -> Self {
        TtySize { rows: 24, cols: 80 }
    }
}

/// A control message of a client that started with `control: true`, sent as a text frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ExecControl {
    /// The input ended: the process reads end-of-file (a terminal gets its end-of-file character).
    Eof,
    /// The client's terminal changed size: so does the process's (which gets SIGWINCH).
    Resize(TtySize),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kleened_additions_are_optional_and_omitted_when_unused() {
        let plain: ExecStartConfig =
            serde_json::from_str(r#"{"exec_id":"e","attach":true,"start_container":"true"}"#)
                .unwrap();
        assert_eq!(plain.tty_size, None);
        assert!(!plain.control);
        assert_eq!(
            serde_json::to_string(&plain).unwrap(),
            r#"{"exec_id":"e","attach":true,"start_container":true}"#
        );
        assert_eq!(
            serde_json::to_string(&ExecControl::Resize(TtySize {
                rows: 40,
                cols: 100
            }))
            .unwrap(),
            r#"{"resize":{"rows":40,"cols":100}}"#
        );
        assert_eq!(
            serde_json::to_string(&ExecControl::Eof).unwrap(),
            r#""eof""#
        );
    }
}
