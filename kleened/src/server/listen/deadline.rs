//! The body deadline: a request body must have arrived whole within the body timeout, or the
//! request is answered 408 and its connection closed.

use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::Sleep;
use warp::reply::Response;

use crate::server;

/// The answer to a request whose body did not arrive in time; the connection is closed after it,
/// since the rest of the body may still come.
pub(super) fn body_timed_out(limit: Duration) -> Response {
    let mut response = server::reply::message(
        StatusCode::REQUEST_TIMEOUT,
        format!(
            "the request body did not arrive within {} s",
            limit.as_secs()
        ),
    );
    response.headers_mut().insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("close"),
    );
    response
}

/// A request body that must have arrived whole by a deadline, counted from the request's headers.
/// Past it, the reader gets an error (and the request is answered 408 by
/// [`serve_connection`]'s service, told through `expired`). Once the body has ended the deadline
/// no longer matters, so a handler that reads its body and then answers for an hour is not cut.
pub(super) struct Deadline {
    inner: Incoming,
    /// Running while the body has not ended.
    timer: Option<Pin<Box<Sleep>>>,
    limit: Duration,
    /// Set when the deadline passed before the body ended.
    expired: Arc<AtomicBool>,
}

impl Deadline {
    pub(super) fn new(inner: Incoming, limit: Duration, expired: Arc<AtomicBool>) -> Deadline {
        Deadline {
            timer: (!inner.is_end_stream()).then(|| Box::pin(tokio::time::sleep(limit))),
            inner,
            limit,
            expired,
        }
    }
}

/// The error a late body reads as.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {} s", .0.as_secs())]
struct BodyTimedOut(Duration);

impl Body for Deadline {
    type Data = Bytes;
    type Error = Box<dyn StdError + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.expired.load(Ordering::Relaxed) {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if this.inner.is_end_stream() {
                    this.timer = None;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(other) => {
                this.timer = None;
                Poll::Ready(other.map(|result| result.map_err(Into::into)))
            }
            Poll::Pending => {
                let Some(timer) = this.timer.as_mut() else {
                    return Poll::Pending;
                };
                if timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.timer = None;
                this.expired.store(true, Ordering::Relaxed);
                Poll::Ready(Some(Err(Box::new(BodyTimedOut(this.limit)))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.expired.load(Ordering::Relaxed) || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
