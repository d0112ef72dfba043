//! Capped, time-limited body collection shared by the layers that read bodies.
//!
//! # Behaviour
//!
//! [`CollectCapped`] reads an [`http_body::Body`] into one [`Bytes`]:
//!
//! - a body whose declared length (`Content-Length`) is over the cap fails at once, before any
//!   byte is read; a body that streams past the cap fails as soon as it does, so an oversized
//!   upload costs at most `limit` bytes of memory;
//! - an optional deadline bounds the whole read, which cuts off clients that drip a body slowly;
//! - a body that arrives in one frame (the common case on keep-alive HTTP/1.1) is returned as
//!   that frame, without a copy.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use switchyard_layers::body::{BodyError, CollectCapped};
//!
//! let ok = CollectCapped::new(Full::new(Bytes::from_static(b"{}")), 16, None).await;
//! assert_eq!(ok.ok(), Some(Bytes::from_static(b"{}")));
//!
//! let big = CollectCapped::new(Full::new(Bytes::from(vec![0u8; 17])), 16, None).await;
//! assert!(matches!(big, Err(BodyError::TooLarge { limit: 16 })));
//! # }
//! ```

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
    time::Duration,
};

use bytes::{Bytes, BytesMut};
use http_body::Body;
use http_body_util::Full;
use pin_project_lite::pin_project;
use tokio::time::Sleep;

/// The body type every layer below the parse step works with: the whole message, in memory.
pub type RpcBody = Full<Bytes>;

/// Takes a buffered response apart: its head, and its body's bytes (no copy).
pub fn into_bytes(response: http::Response<RpcBody>) -> (http::response::Parts, Bytes) {
    use http_body_util::BodyExt;
    let (parts, body) = response.into_parts();
    // A `Full` body is one frame, available at once.
    let bytes = futures_util::FutureExt::now_or_never(body.collect())
        .and_then(Result::ok)
        .map(http_body_util::Collected::to_bytes)
        .unwrap_or_default();
    (parts, bytes)
}

/// The bytes of a buffered body, without consuming it (a cheap clone of its one frame).
pub fn peek(body: &RpcBody) -> Bytes {
    use http_body_util::BodyExt;
    futures_util::FutureExt::now_or_never(body.clone().collect())
        .and_then(Result::ok)
        .map(http_body_util::Collected::to_bytes)
        .unwrap_or_default()
}

/// A boxed error, as bodies and services report them.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a body could not be collected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    /// The body is larger than the cap.
    #[error("body exceeds {limit} bytes")]
    TooLarge {
        /// The cap, in bytes.
        limit: usize,
    },
    /// The body did not arrive in time.
    #[error("body not received within {0:?}")]
    TimedOut(Duration),
    /// The body stream failed (connection closed or reset mid-body).
    #[error("body read failed: {0}")]
    Read(#[source] BoxError),
}

pin_project! {
    /// Future that collects a body into [`Bytes`], under a byte cap and an optional deadline.
    ///
    /// See the [module docs](self).
    #[must_use = "futures do nothing unless polled"]
    pub struct CollectCapped<B> {
        #[pin]
        body: B,
        #[pin]
        deadline: Option<Sleep>,
        timeout: Duration,
        timed: bool,
        limit: usize,
        first: Option<Bytes>,
        rest: Option<BytesMut>,
        len: usize,
    }
}

impl<B> std::fmt::Debug for CollectCapped<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CollectCapped")
            .field("limit", &self.limit)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl<B> CollectCapped<B> {
    /// Collects `body`, failing past `limit` bytes or after `timeout`, if given.
    pub fn new(body: B, limit: usize, timeout: Option<Duration>) -> Self {
        Self {
            body,
            // Armed at the first wait only: a body already complete costs no timer.
            deadline: None,
            timeout: timeout.unwrap_or_default(),
            timed: timeout.is_some(),
            limit,
            first: None,
            rest: None,
            len: 0,
        }
    }
}

impl<B> Future for CollectCapped<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Output = Result<Bytes, BodyError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if this.len == &0 && this.first.is_none() {
            let hint = this.body.size_hint().lower();
            if usize::try_from(hint).map_or(true, |hint| hint > *this.limit) {
                return Poll::Ready(Err(BodyError::TooLarge { limit: *this.limit }));
            }
        }
        loop {
            let frame = match this.body.as_mut().poll_frame(cx) {
                Poll::Ready(frame) => frame,
                Poll::Pending => {
                    if *this.timed && this.deadline.is_none() {
                        this.deadline.set(Some(tokio::time::sleep(*this.timeout)));
                    }
                    if let Some(deadline) = this.deadline.as_mut().as_pin_mut() {
                        ready!(deadline.poll(cx));
                        return Poll::Ready(Err(BodyError::TimedOut(*this.timeout)));
                    }
                    return Poll::Pending;
                }
            };
            let data = match frame {
                None => {
                    let bytes = match (this.first.take(), this.rest.take()) {
                        (_, Some(rest)) => rest.freeze(),
                        (Some(first), None) => first,
                        (None, None) => Bytes::new(),
                    };
                    return Poll::Ready(Ok(bytes));
                }
                Some(Err(e)) => return Poll::Ready(Err(BodyError::Read(e.into()))),
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => data,
                    // Trailers carry nothing a JSON-RPC message needs.
                    Err(_) => continue,
                },
            };
            *this.len += data.len();
            if *this.len > *this.limit {
                return Poll::Ready(Err(BodyError::TooLarge { limit: *this.limit }));
            }
            match (this.first.take(), this.rest.as_mut()) {
                (None, None) => *this.first = Some(data),
                (Some(first), None) => {
                    // The hint is what is still to come: room for it and what we have, once.
                    let capacity = usize::try_from(this.body.size_hint().lower())
                        .unwrap_or(0)
                        .saturating_add(*this.len)
                        .min(*this.limit);
                    let mut rest = BytesMut::with_capacity(capacity);
                    rest.extend_from_slice(&first);
                    rest.extend_from_slice(&data);
                    *this.rest = Some(rest);
                }
                (_, Some(rest)) => rest.extend_from_slice(&data),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};
    use std::convert::Infallible;

    fn chunks(parts: Vec<&'static [u8]>) -> impl Body<Data = Bytes, Error = Infallible> {
        StreamBody::new(futures_util::stream::iter(parts.into_iter().map(|p| {
            Ok::<_, Infallible>(http_body::Frame::data(Bytes::from_static(p)))
        })))
    }

    #[tokio::test]
    async fn joins_frames_in_order() {
        let got = CollectCapped::new(chunks(vec![b"ab", b"", b"cd"]), 4, None).await;
        assert_eq!(got.ok(), Some(Bytes::from_static(b"abcd")));
    }

    #[tokio::test]
    async fn rejects_a_streamed_body_one_byte_past_the_cap() {
        let got = CollectCapped::new(chunks(vec![b"ab", b"cde"]), 4, None).await;
        assert!(matches!(got, Err(BodyError::TooLarge { limit: 4 })));
    }

    #[tokio::test]
    async fn rejects_a_declared_length_over_the_cap_before_reading() {
        let body = Full::new(Bytes::from_static(b"12345")).map_err(|never| match never {});
        let got = CollectCapped::new(body, 4, None).await;
        assert!(matches!(got, Err(BodyError::TooLarge { .. })));
    }

    #[tokio::test(start_paused = true)]
    async fn cuts_off_a_body_that_never_finishes() {
        let body = StreamBody::new(futures_util::stream::pending::<
            Result<http_body::Frame<Bytes>, Infallible>,
        >());
        let got = CollectCapped::new(body, 4, Some(Duration::from_secs(5))).await;
        assert!(matches!(got, Err(BodyError::TimedOut(d)) if d == Duration::from_secs(5)));
    }
}
