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
//! With [`BoostSyncLayer::skip_unsynced`] (rollup-boost's `--ignore-unhealthy-builders`), a
//! builder whose health is not synced gets nothing either: it must catch up by its own means
//! (its consensus client), and gets the chain again once the head check sees it synced. Since
//! forkchoice updates with attributes already skip an unsynced builder, such a builder then
//! gets no engine traffic at all.
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

use std::sync::Arc;

use crate::{
    builder::{Builder, ExecutionMode, ModeSwitch, Reply},
    engine::{self, EngineMethod},
    jsonrpc::RpcCall,
    relay::{Relay, RelayLayer, RelayRule},
};

/// Layer that relays op-node's chain updates to builders. See the [module docs](self).
pub type BoostSyncLayer = RelayLayer<ChainUpdates>;

/// Service that relays `newPayload` and forkchoice updates without attributes to builders.
/// See the [module docs](self).
pub type BoostSync<S> = Relay<S, ChainUpdates>;

/// The [rule](RelayRule) of [`BoostSync`]: chain updates, to every builder's engine lane,
/// unless the mode is `disabled`.
#[derive(Clone, Debug)]
pub struct ChainUpdates {
    mode: ModeSwitch,
    skip_unsynced: bool,
}

impl BoostSyncLayer {
    /// Relays to `builders`, obeying `mode`.
    pub fn new(builders: Vec<Arc<Builder>>, mode: ModeSwitch) -> Self {
        Self::with_rule(
            builders,
            ChainUpdates {
                mode,
                skip_unsynced: false,
            },
        )
    }

    /// Relays nothing to a builder whose health is not synced. See the [module docs](self).
    pub fn skip_unsynced(self, skip: bool) -> Self {
        self.map_rule(|rule| ChainUpdates {
            skip_unsynced: skip,
            ..rule
        })
    }
}

impl RelayRule for ChainUpdates {
    fn wants(&self, call: &RpcCall) -> bool {
        self.mode.get() != ExecutionMode::Disabled && is_chain_update(call)
    }

    fn send(&self, builder: &Builder, call: &RpcCall) {
        if self.skip_unsynced && !builder.health().is_synced() {
            tracing::debug!(target: "switchyard::boost_sync", builder = %builder.name(), method = call.method(), "not relayed: the builder is not synced");
            return;
        }
        // A full lane is counted by the lane itself; op-node's call goes on regardless.
        let _ = builder.send_engine(call, Reply::None);
    }
}

/// Whether `call` is a chain update builders should follow.
fn is_chain_update(call: &RpcCall) -> bool {
    match EngineMethod::parse(call.method()) {
        Some(EngineMethod::NewPayload(_)) => true,
        // A scan, not a decode: this runs on every forkchoice update, ahead of op-geth's call.
        Some(EngineMethod::ForkchoiceUpdated(_)) => {
            engine::call_has_attributes(call).is_some_and(|has| !has)
        }
        _ => false,
    }
}
