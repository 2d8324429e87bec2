//! The request body as a handler may read it: at most the route's limit (reading past it
//! fails, and the extractors answer 413), and no slower than `BODY_DEADLINE` for the whole
//! body, so that a client trickling a body cannot hold a handler (and its connection
//! slot) open: the header timeout of `listen.rs` ends where the body starts.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::problem::ApiError;

/// How long a client has to send a whole request body (4 MiB in 30 s is ~140 KB/s).
pub const BODY_DEADLINE: Duration = Duration::from_secs(30);

/// `body`, cut off past `limit` bytes and after `BODY_DEADLINE`.
pub fn guarded(body: Body, limit: usize) -> Body {
    within(body, limit, BODY_DEADLINE)
}

fn within(body: Body, limit: usize, deadline: Duration) -> Body {
    Body::new(Deadline {
        inner: http_body_util::Limited::new(body, limit),
        sleep: Box::pin(tokio::time::sleep_until(Instant::now() + deadline)),
    })
}

/// The answer for a body that could not be read: 408 when it was not sent in time, 413
/// when it was over `limit`, 400 when the client broke it off.
pub fn refusal(e: &axum::Error, limit: usize) -> ApiError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<TooSlow>() {
            return ApiError::new(
                axum::http::StatusCode::REQUEST_TIMEOUT,
                "request-timeout",
                "Request body too slow",
                format!(
                    "the body was not sent within {} s; send it again",
                    BODY_DEADLINE.as_secs()
                ),
            );
        }
        if s.is::<http_body_util::LengthLimitError>() {
            return ApiError::too_large(limit);
        }
        source = s.source();
    }
    ApiError::bad_request("the request body could not be read")
}

/// The body was not sent in time.
#[derive(Debug, thiserror::Error)]
#[error("the request body was not sent in time")]
pub struct TooSlow;

struct Deadline<B> {
    inner: B,
    sleep: Pin<Box<Sleep>>,
}

impl<B> HttpBody for Deadline<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        match self.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(TooSlow)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn a_body_that_stops_coming_fails_at_the_deadline() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(1);
        tx.send(Ok(Frame::data(Bytes::from_static(b"abc"))))
            .await
            .unwrap();
        let body = within(
            Body::new(http_body_util::StreamBody::new(tokio_stream_from(rx))),
            1024,
            Duration::from_millis(100),
        );
        // The sender stays open and silent: only the deadline ends the read.
        let e = axum::body::to_bytes(body, usize::MAX).await.unwrap_err();
        assert_eq!(refusal(&e, 1024).status.as_u16(), 408, "{e}");
        drop(tx);
    }

    #[tokio::test]
    async fn a_body_over_the_limit_fails_and_one_within_it_is_read() {
        let over = guarded(Body::from(vec![0u8; 2048]), 1024);
        let e = axum::body::to_bytes(over, usize::MAX).await.unwrap_err();
        assert_eq!(refusal(&e, 1024).status.as_u16(), 413);
        let within = guarded(Body::from(vec![7u8; 1024]), 1024);
        assert_eq!(within.collect().await.unwrap().to_bytes().len(), 1024);
    }

    /// A stream of the channel's items.
    fn tokio_stream_from<T: Send + 'static>(
        mut rx: tokio::sync::mpsc::Receiver<T>,
    ) -> impl futures::Stream<Item = T> + Send {
        futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }
}
