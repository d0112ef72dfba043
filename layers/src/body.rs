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
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::Sleep;

/// The body type every layer below the parse step works with: the whole message, in memory.
///
/// Usually one buffer. A message written around a large part it shares with another (the
/// validation call around a builder's payload, which is also in op-node's answer) is sent as
/// its parts, in order, so that the large part is never copied.
#[derive(Clone, Debug, Default)]
pub struct RpcBody {
    // The part sent next (none: the body is done), then the others in order. A one-buffer
    // body, every body but one, allocates nothing for its parts.
    next: Option<Bytes>,
    later: std::collections::VecDeque<Bytes>,
}

impl RpcBody {
    /// A body of one buffer.
    pub fn new(bytes: Bytes) -> Self {
        Self {
            next: (!bytes.is_empty()).then_some(bytes),
            later: std::collections::VecDeque::new(),
        }
    }

    /// A body made of `parts`, sent in order (empty parts are skipped).
    pub fn from_parts(parts: impl IntoIterator<Item = Bytes>) -> Self {
        let mut parts = parts.into_iter().filter(|part| !part.is_empty());
        Self {
            next: parts.next(),
            later: parts.collect(),
        }
    }

    /// The whole body in one buffer: its only part as it is, several parts joined (a copy).
    pub fn to_bytes(&self) -> Bytes {
        match &self.next {
            None => Bytes::new(),
            Some(only) if self.later.is_empty() => only.clone(),
            Some(first) => {
                let mut joined = BytesMut::with_capacity(self.len());
                joined.extend_from_slice(first);
                for part in &self.later {
                    joined.extend_from_slice(part);
                }
                joined.freeze()
            }
        }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.next.as_ref().map_or(0, Bytes::len) + self.later.iter().map(Bytes::len).sum::<usize>()
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.next.is_none()
    }
}

impl<T> From<T> for RpcBody
where
    Bytes: From<T>,
{
    fn from(value: T) -> Self {
        Self::new(Bytes::from(value))
    }
}

impl Body for RpcBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let part = this.next.take();
        this.next = this.later.pop_front();
        Poll::Ready(part.map(|part| Ok(Frame::data(part))))
    }

    fn is_end_stream(&self) -> bool {
        self.next.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len() as u64)
    }
}

/// Takes a buffered response apart: its head, and its body's bytes (no copy of a one-buffer
/// body).
pub fn into_bytes(response: http::Response<RpcBody>) -> (http::response::Parts, Bytes) {
    let (parts, body) = response.into_parts();
    (parts, body.to_bytes())
}

/// The bytes of a buffered body, without consuming it (a cheap clone of a one-buffer body).
pub fn peek(body: &RpcBody) -> Bytes {
    body.to_bytes()
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
        // Boxed: a timer is 112 bytes that every collecting future would carry (and each layer
        // above it move: 256 → 152 bytes); only a body that makes us wait pays for one.
        deadline: Option<Pin<Box<Sleep>>>,
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
                        *this.deadline = Some(Box::pin(tokio::time::sleep(*this.timeout)));
                    }
                    if let Some(deadline) = this.deadline.as_mut() {
                        ready!(deadline.as_mut().poll(cx));
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
    async fn a_body_of_parts_is_sent_in_order_with_its_exact_length() {
        let body = RpcBody::from_parts([
            Bytes::from_static(b"{\"a\":"),
            Bytes::new(),
            Bytes::from_static(b"[1,2]"),
            Bytes::from_static(b"}"),
        ]);
        assert_eq!(body.size_hint().exact(), Some(11));
        assert_eq!(body.to_bytes(), Bytes::from_static(b"{\"a\":[1,2]}"));
        let mut frames = Vec::new();
        let mut body = body;
        while let Some(frame) = body.frame().await {
            frames.push(frame.map(|f| f.into_data().ok()).ok().flatten());
        }
        assert_eq!(
            frames.len(),
            3,
            "the empty part is skipped, the others sent as they are"
        );
        assert!(body.is_end_stream());
        assert!(RpcBody::default().is_end_stream());
        assert_eq!(RpcBody::new(Bytes::new()).size_hint().exact(), Some(0));
    }

    #[tokio::test]
    async fn rejects_a_declared_length_over_the_cap_before_reading() {
        let body = RpcBody::from(Bytes::from_static(b"12345"));
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
