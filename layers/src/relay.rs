//! The mechanism behind [`BoostSync`](crate::BoostSync), [`TxMirror`](crate::TxMirror) and
//! [`MinerMirror`](crate::MinerMirror): a call op-geth answers, of which builders get a copy.
//!
//! # Behaviour
//!
//! [`Relay`] passes the request to the inner service unchanged and hands every call its
//! [`RelayRule`] wants to each builder, as the rule says (a queued lane call: never awaited);
//! the caller gets the inner service's answer. Copies are queued as soon as the inner service
//! has been polled once (for a forwarding service: once op-geth's request is queued for
//! writing, so it is written first), and travel concurrently with op-geth's call, not after it;
//! or, for a rule whose [`RelayRule::only_if_accepted`] says so, once the inner service has
//! answered, and only if it accepted the call (HTTP 200 with a JSON-RPC `result`). Calls without a parsed
//! [`RpcCall`] (batches, bodies that failed to parse) are passed on untouched.
//!
//! # Example
//!
//! A rule of one's own: every `eth_sendBundle` to every synced builder's transaction lane.
//!
//! ```
//! use switchyard_layers::{builder::Builder, jsonrpc::RpcCall, relay::{RelayLayer, RelayRule}};
//!
//! #[derive(Clone, Debug)]
//! struct Bundles;
//!
//! impl RelayRule for Bundles {
//!     fn wants(&self, call: &RpcCall) -> bool {
//!         call.method() == "eth_sendBundle"
//!     }
//!     fn send(&self, builder: &Builder, call: &RpcCall) {
//!         if builder.health().is_synced() {
//!             let _ = builder.send_transaction(call);
//!         }
//!     }
//! }
//!
//! let layer = RelayLayer::with_rule(Vec::new(), Bundles);
//! # let _ = layer;
//! ```

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::{body::RpcBody, builder::Builder, forward, jsonrpc::RpcCall};

/// Which calls builders get a copy of, and how each builder gets it.
pub trait RelayRule {
    /// Whether `call` is copied to the builders.
    fn wants(&self, call: &RpcCall) -> bool;
    /// Hands `call` to `builder`; must not wait on it.
    fn send(&self, builder: &Builder, call: &RpcCall);
    /// Whether copies wait for the inner service's answer and go only if it accepted the call.
    /// By default they are queued at once, to travel beside it.
    fn only_if_accepted(&self) -> bool {
        false
    }
}

/// Once the inner service has answered: whether it accepted the call.
fn verdict<E>(polled: &Poll<Result<Response<RpcBody>, E>>) -> Option<bool> {
    match polled {
        Poll::Pending => None,
        Poll::Ready(Ok(response)) => Some(forward::accepted(response)),
        Poll::Ready(Err(_)) => Some(false),
    }
}

/// Layer that copies the calls its rule wants to builders. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct RelayLayer<R> {
    builders: Arc<[Arc<Builder>]>,
    rule: R,
}

impl<R> RelayLayer<R> {
    /// Copies to `builders` what `rule` wants.
    pub fn with_rule(builders: Vec<Arc<Builder>>, rule: R) -> Self {
        Self {
            builders: builders.into(),
            rule,
        }
    }

    /// The same builders, with the rule changed by `change`.
    pub fn map_rule(self, change: impl FnOnce(R) -> R) -> Self {
        Self {
            builders: self.builders,
            rule: change(self.rule),
        }
    }
}

impl<S, R: Clone> Layer<S> for RelayLayer<R> {
    type Service = Relay<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        Relay {
            inner,
            layer: self.clone(),
        }
    }
}

/// Service that copies the calls its rule wants to builders. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct Relay<S, R> {
    inner: S,
    layer: RelayLayer<R>,
}

impl<S, R> Relay<S, R> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, B, R> Service<Request<B>> for Relay<S, R>
where
    S: Service<Request<B>, Response = Response<RpcBody>>,
    R: RelayRule + Clone,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let copy = req
            .extensions()
            .get::<RpcCall>()
            .filter(|call| !self.layer.builders.is_empty() && self.layer.rule.wants(call))
            .map(|call| (call.clone(), self.layer.clone()));
        ResponseFuture {
            future: self.inner.call(req),
            copy,
        }
    }
}

pin_project! {
    /// Response future of [`Relay`]: the inner service's answer; the builders' copies are
    /// queued on its first poll, after the inner service's.
    pub struct ResponseFuture<F, R> {
        #[pin]
        future: F,
        copy: Option<(RpcCall, RelayLayer<R>)>,
    }
}

impl<F, R> std::fmt::Debug for ResponseFuture<F, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("copies_queued", &self.copy.is_none())
            .finish_non_exhaustive()
    }
}

impl<F, E, R> Future for ResponseFuture<F, R>
where
    F: Future<Output = Result<Response<RpcBody>, E>>,
    R: RelayRule,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let polled = this.future.poll(cx);
        let send = match this.copy.as_ref() {
            None => None,
            Some((_, layer)) if !layer.rule.only_if_accepted() => Some(true),
            Some(_) => verdict(&polled),
        };
        let Some(send) = send else {
            return polled;
        };
        if let Some((call, layer)) = this.copy.take()
            && send
        {
            for builder in layer.builders.iter() {
                layer.rule.send(builder, &call);
            }
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use std::{
        convert::Infallible,
        sync::{Arc, Mutex},
    };

    use http::{Request, Response};
    use tower::{Layer, Service};

    use super::{RelayLayer, RelayRule};
    use crate::{
        JwtSecret,
        builder::{Builder, BuilderClient, LaneConfig},
        forward::Forward,
        jsonrpc::RpcCall,
    };

    type Log = Arc<Mutex<Vec<&'static str>>>;

    #[derive(Clone)]
    struct Record(Log);

    impl RelayRule for Record {
        fn wants(&self, _: &RpcCall) -> bool {
            true
        }
        fn send(&self, _: &Builder, _: &RpcCall) {
            self.0.lock().expect("log").push("copy queued");
        }
    }

    #[tokio::test]
    async fn the_inner_request_is_dispatched_before_the_copies() {
        let log = Log::default();
        let forward = Forward::new("builder", "http://127.0.0.1:9".parse().expect("uri"));
        let builder = Builder::new(
            BuilderClient::new("builder", forward, JwtSecret::from_bytes([1; 32])),
            LaneConfig::default(),
        );
        let inner_log = log.clone();
        let inner = tower::service_fn(move |_: Request<()>| {
            let log = inner_log.clone();
            // A forwarding service hands its request to the connection on its first poll.
            async move {
                log.lock().expect("log").push("inner polled");
                Ok::<_, Infallible>(Response::new(crate::body::RpcBody::default()))
            }
        });
        let mut relay = RelayLayer::with_rule(vec![builder], Record(log.clone())).layer(inner);
        let mut req = Request::new(());
        req.extensions_mut()
            .insert(RpcCall::new("engine_newPayloadV4", b"1", b"[]"));
        let future = relay.call(req);
        assert!(
            log.lock().expect("log").is_empty(),
            "nothing happens before the first poll"
        );
        future.await.expect("infallible");
        assert_eq!(*log.lock().expect("log"), ["inner polled", "copy queued"]);
    }
}
