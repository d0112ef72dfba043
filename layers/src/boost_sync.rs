//! Boost sync: op-node's new blocks and forkchoice updates reach every builder in milliseconds.
//!
//! # Behaviour
//!
//! [`BoostSync`] relays `engine_newPayloadV*` and `engine_forkchoiceUpdatedV*` *without*
//! attributes to every builder (synced or not: this is how a lagging builder catches up),
//! byte for byte, through each builder's ordered engine lane. The relay is queued when the call
//! arrives, so it travels concurrently with op-geth's call, not after it; op-node gets op-geth's
//! answer and never waits on a builder. A full lane drops the message and counts it
//! (`switchyard_builder_queue_dropped_total`); a builder's failures are counted and feed its
//! health. Nothing is relayed while the [mode](crate::builder::ExecutionMode) is `disabled`.
//!
//! # Example
//!
//! ```
//! use switchyard_layers::{BoostSyncLayer, builder::ModeSwitch};
//! use tower::ServiceBuilder;
//!
//! let stack = ServiceBuilder::new()
//!     .layer(BoostSyncLayer::new(Vec::new(), ModeSwitch::default()))
//!     .service_fn(|req: http::Request<switchyard_layers::body::RpcBody>| async move {
//!         Ok::<_, std::convert::Infallible>(http::Response::new(req.into_body()))
//!     });
//! # let _ = stack;
//! ```

use std::{
    sync::Arc,
    task::{Context, Poll},
};

use http::Request;
use tower::{Layer, Service};

use crate::{
    builder::{Builder, ExecutionMode, ModeSwitch, Reply},
    engine::{self, EngineMethod},
    jsonrpc::RpcCall,
};

/// Layer that relays op-node's chain updates to builders. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct BoostSyncLayer {
    builders: Arc<[Arc<Builder>]>,
    mode: ModeSwitch,
}

impl BoostSyncLayer {
    /// Relays to `builders`, obeying `mode`.
    pub fn new(builders: Vec<Arc<Builder>>, mode: ModeSwitch) -> Self {
        Self {
            builders: builders.into(),
            mode,
        }
    }
}

impl<S> Layer<S> for BoostSyncLayer {
    type Service = BoostSync<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BoostSync {
            inner,
            layer: self.clone(),
        }
    }
}

/// Service that relays `newPayload` and forkchoice updates without attributes to builders.
/// See the [module docs](self).
#[derive(Clone, Debug)]
pub struct BoostSync<S> {
    inner: S,
    layer: BoostSyncLayer,
}

impl<S> BoostSync<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

/// Whether `call` is a chain update builders should follow.
fn is_chain_update(call: &RpcCall) -> bool {
    match EngineMethod::parse(call.method()) {
        Some(EngineMethod::NewPayload(_)) => true,
        // A scan, not a decode: this runs on every forkchoice update, ahead of op-geth's call.
        Some(EngineMethod::ForkchoiceUpdated(_)) => call
            .params()
            .and_then(engine::has_attributes)
            .is_some_and(|has| !has),
        _ => false,
    }
}

impl<S, B> Service<Request<B>> for BoostSync<S>
where
    S: Service<Request<B>>,
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
            && self.layer.mode.get() != ExecutionMode::Disabled
            && is_chain_update(call)
        {
            for builder in self.layer.builders.iter() {
                // A full lane is counted by the lane itself; op-node's call goes on regardless.
                let _ = builder.send_engine(call, Reply::None);
            }
        }
        self.inner.call(req)
    }
}
