//! The sequencer's `miner_*` settings are mirrored to the builders, so their blocks obey them.
//!
//! # Behaviour
//!
//! [`MinerMirror`] passes each of [`MIRRORED`] (`miner_setMaxDASize`, which op-batcher uses to
//! throttle blocks when its DA backlog grows, and `miner_setGasLimit`, `miner_setExtra`,
//! `miner_setGasPrice`) to the inner service (op-geth, whose answer the caller gets) and, once
//! op-geth has accepted it (HTTP 200 with a `result`), sends the same call to every builder, in
//! every [mode](crate::builder::ExecutionMode): a builder never holds a DA limit or gas limit
//! that the sequencer refused. Unlike
//! transactions, settings are state: each builder keeps the latest call of each method and gets
//! them all again when it is back from an outage or missed one (see
//! [`Builder::send_setting`](crate::builder::Builder::send_setting)), so a builder that was down
//! when the batcher lowered the DA limit does not go on building blocks past it.
//!
//! # Example
//!
//! ```
//! use switchyard_layers::MinerMirrorLayer;
//!
//! let layer = MinerMirrorLayer::new(Vec::new());
//! # let _ = layer;
//! ```

use crate::{
    builder::Builder,
    jsonrpc::RpcCall,
    relay::{Relay, RelayLayer, RelayRule},
};

/// The settings mirrored.
pub const MIRRORED: [&str; 4] = [
    "miner_setMaxDASize",
    "miner_setGasLimit",
    "miner_setExtra",
    "miner_setGasPrice",
];

/// Layer that mirrors `miner_*` settings to builders. See the [module docs](self).
pub type MinerMirrorLayer = RelayLayer<MinerSettings>;

/// Service that mirrors `miner_*` settings to builders. See the [module docs](self).
pub type MinerMirror<S> = Relay<S, MinerSettings>;

/// The [rule](RelayRule) of [`MinerMirror`]: settings, to every builder, kept for replay.
#[derive(Clone, Copy, Debug, Default)]
pub struct MinerSettings;

impl RelayRule for MinerSettings {
    fn wants(&self, call: &RpcCall) -> bool {
        MIRRORED.contains(&call.method())
    }

    fn send(&self, builder: &Builder, call: &RpcCall) {
        builder.send_setting(call);
    }

    fn only_if_accepted(&self) -> bool {
        true
    }
}

impl MinerMirrorLayer {
    /// Mirrors to `builders`.
    pub fn new(builders: Vec<std::sync::Arc<Builder>>) -> Self {
        Self::with_rule(builders, MinerSettings)
    }
}
