//! Transactions sent to op-geth are mirrored to the builders, so their blocks can include them.
//!
//! # Behaviour
//!
//! [`TxMirror`] passes `eth_sendRawTransaction` and `eth_sendRawTransactionConditional` to the
//! inner service (op-geth, whose answer op-node or the RPC client gets) and queues the same call
//! on each synced builder's transaction lane: bounded, ordered, counted when full, separate from
//! the engine lane so a burst of transactions never delays boost sync. For a builder that is not
//! synced (down, behind) they are held, bounded, and sent in order once it is (see
//! [`Builder::mirror_transaction`]): a builder back from an outage gets every transaction it
//! missed, with no nonce gap. Transactions are mirrored in every
//! [mode](crate::builder::ExecutionMode): they are not Engine API traffic.
//!
//! # Example
//!
//! ```
//! use switchyard_layers::TxMirrorLayer;
//!
//! let layer = TxMirrorLayer::new(Vec::new());
//! # let _ = layer;
//! ```

use crate::{
    builder::Builder,
    jsonrpc::RpcCall,
    relay::{Relay, RelayLayer, RelayRule},
};

/// The methods mirrored.
pub const MIRRORED: [&str; 2] = [
    "eth_sendRawTransaction",
    "eth_sendRawTransactionConditional",
];

/// Layer that mirrors transactions to builders. See the [module docs](self).
pub type TxMirrorLayer = RelayLayer<Transactions>;

/// Service that mirrors transactions to builders. See the [module docs](self).
pub type TxMirror<S> = Relay<S, Transactions>;

/// The [rule](RelayRule) of [`TxMirror`]: transactions, to each builder's transaction lane, held
/// while it is not synced.
#[derive(Clone, Copy, Debug, Default)]
pub struct Transactions;

impl RelayRule for Transactions {
    fn wants(&self, call: &RpcCall) -> bool {
        MIRRORED.contains(&call.method())
    }

    fn send(&self, builder: &Builder, call: &RpcCall) {
        builder.mirror_transaction(call);
    }
}

impl TxMirrorLayer {
    /// Mirrors to `builders`.
    pub fn new(builders: Vec<std::sync::Arc<Builder>>) -> Self {
        Self::with_rule(builders, Transactions)
    }
}
