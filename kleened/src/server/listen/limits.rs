//! The connection cap of a listener: connections over it are answered 503 and closed, and a
//! connection under it holds its place for as long as its stream lives.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use kleene_api::ErrorResponse;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::OwnedSemaphorePermit;

use super::Stream;

/// Connections over the cap being answered 503 at once, per listener; past this many, further
/// ones are closed without an answer, so that a flood costs no more than this.
pub(super) const MAX_REFUSALS: usize = 64;

/// How long the 503 answer to a connection over the cap may take, from writing it to the client
/// closing.
pub(super) const REFUSAL_TIMEOUT: Duration = Duration::from_secs(5);

/// Answers a connection over the cap: once the request's headers are in (an HTTP client may
/// take an answer that comes before its request for a broken connection), 503 with a JSON
/// message; then the write side is closed and what the client sends is read and dropped until it
/// closes too, so that unread bytes cannot turn the close into a reset that destroys the answer
/// before the client reads it. All of it within [`REFUSAL_TIMEOUT`].
pub(super) async fn refuse(mut stream: Box<dyn Stream>, max: usize) {
    let body = serde_json::to_string(&ErrorResponse {
        message: format!(
            "too many connections: this listener serves at most {max} at a time; try again later"
        ),
    })
    .unwrap_or_default();
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let exchange = async {
        // The headers, or what fits of them in 16 KiB: the request itself is not looked at.
        let mut head = Vec::new();
        let mut sink = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
            let read = stream.read(&mut sink).await?;
            if read == 0 {
                return Ok(());
            }
            head.extend_from_slice(&sink[..read]);
        }
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await?;
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, io::Error>(())
    };
    if let Ok(Err(err)) = tokio::time::timeout(REFUSAL_TIMEOUT, exchange).await {
        tracing::debug!(error = %err, "refused connection ended with an error");
    }
}

/// A connection's stream holding its place under the listener's cap, given back when the stream
/// is dropped.
pub(super) struct Held<S> {
    pub(super) stream: S,
    pub(super) _slot: OwnedSemaphorePermit,
}

impl<S: AsyncRead + Unpin> AsyncRead for Held<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Held<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
