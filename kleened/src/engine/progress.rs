//! Progress of a long operation, streamed to whoever started it (a websocket).

use tokio::sync::mpsc;

/// Sends progress text to a listener. Sending never fails: when the listener went away the operation
/// goes on, and its text is dropped.
#[derive(Debug, Clone)]
pub struct Progress {
    tx: mpsc::Sender<String>,
}

impl Progress {
    /// A progress sender and the receiver that reads it. The channel is bounded, so a slow reader
    /// slows the operation instead of growing the daemon's memory.
    pub fn channel() -> (Progress, mpsc::Receiver<String>) {
        let (tx, rx) = mpsc::channel(64);
        (Progress { tx }, rx)
    }

    /// Reports `text` as it is (add a newline to end a line).
    pub async fn say(&self, text: impl Into<String>) {
        let _ = self.tx.send(text.into()).await;
    }
}
