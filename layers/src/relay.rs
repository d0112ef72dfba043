//! The mechanism behind [`BoostSync`](crate::BoostSync), [`TxMirror`](crate::TxMirror) and
//! [`MinerMirror`](crate::MinerMirror): a call op-geth answers, of which builders get a copy.
//!
//! # Behaviour
//!
//! [`Relay`] hands every call its [`RelayRule`] wants to each builder, as the rule says (a
//! queued lane call: never awaited), then passes the request to the inner service unchanged;
//! the caller gets the inner service's answer. Copies are queued when the call arrives, so they
//! travel concurrently with op-geth's call, not after it. Calls without a parsed
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
    sync::Arc,
    task::{Context, Poll},
};

use http::Request;
use tower::{Layer, Service};

use crate::{builder::Builder, jsonrpc::RpcCall};

/// Which calls builders get a copy of, and how each builder gets it.
pub trait RelayRule {
    /// Whether `call` is copied to the builders.
    fn wants(&self, call: &RpcCall) -> bool;
    /// Hands `call` to `builder`; must not wait on it.
    fn send(&self, builder: &Builder, call: &RpcCall);
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
    S: Service<Request<B>>,
    R: RelayRule,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if let Some(call) = req.extensions().get::<RpcCall>()
            && !self.layer.builders.is_empty()
            && self.layer.rule.wants(call)
        {
            for builder in self.layer.builders.iter() {
                self.layer.rule.send(builder, call);
            }
        }
        self.inner.call(req)
    }
}
