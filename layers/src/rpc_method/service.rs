use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tower::Service;

use super::{ResponseFuture, RpcMethodLayer};
use crate::body::{BoxError, CollectCapped, RpcBody};

/// Service that parses the JSON-RPC envelope once and passes the parsed call down.
/// See the [module docs](super).
#[derive(Clone, Debug)]
pub struct RpcMethod<S> {
    inner: S,
    layer: RpcMethodLayer,
}

impl<S> RpcMethod<S> {
    /// Parses requests for `inner` as configured by `layer`.
    pub fn new(inner: S, layer: RpcMethodLayer) -> Self {
        Self { inner, layer }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Consumes `self`, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B> Service<Request<B>> for RpcMethod<S>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
    S: Service<Request<RpcBody>, Response = Response<RpcBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response<RpcBody>;
    type Error = S::Error;
    type Future = ResponseFuture<B, S>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // The ready service goes into the future; the clone waits for the next poll_ready.
        // https://docs.rs/tower/latest/tower/trait.Service.html#be-careful-when-cloning-inner-services
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let config = self.layer.config.clone();
        let (parts, body) = req.into_parts();
        let collect = CollectCapped::new(body, config.limit, config.body_timeout);
        ResponseFuture::new(collect, parts, inner, config)
    }
}
