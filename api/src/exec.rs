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
}
