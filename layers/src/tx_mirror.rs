//! Transactions sent to op-geth are mirrored to the builders, so their blocks can include them.
//!
//! # Behaviour
//!
//! [`TxMirror`] passes `eth_sendRawTransaction` and `eth_sendRawTransactionConditional` to the
//! inner service (op-geth, whose answer op-node or the RPC client gets) and queues the same call
//! on each synced builder's transaction lane: bounded, ordered, counted when full, separate from
//! the engine lane so a burst of transactions never delays boost sync. Transactions are mirrored
//! in every [mode](crate::builder::ExecutionMode): they are not Engine API traffic.
//!
//! # Example
//!
//! ```
//! use switchyard_layers::TxMirrorLayer;
//!
//! let layer = TxMirrorLayer::new(Vec::new());
//! # let _ = layer;
//! ```

use std::{
    sync::Arc,
    task::{Context, Poll},
};

use http::Request;
use tower::{Layer, Service};

use crate::{builder::Builder, jsonrpc::RpcCall};

/// The methods mirrored.
pub const MIRRORED: [&str; 2] = [
    "eth_sendRawTransaction",
    "eth_sendRawTransactionConditional",
];

/// Layer that mirrors transactions to builders. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct TxMirrorLayer {
    builders: Arc<[Arc<Builder>]>,
}

impl TxMirrorLayer {
    /// Mirrors to `builders`.
    pub fn new(builders: Vec<Arc<Builder>>) -> Self {
        Self {
            builders: builders.into(),
        }
    }
}

impl<S> Layer<S> for TxMirrorLayer {
    type Service = TxMirror<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TxMirror {
            inner,
            builders: self.builders.clone(),
        }
    }
}

/// Service that mirrors transactions to builders. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct TxMirror<S> {
    inner: S,
    builders: Arc<[Arc<Builder>]>,
}

impl<S, B> Service<Request<B>> for TxMirror<S>
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
            && MIRRORED.contains(&call.method())
        {
            for builder in self.builders.iter().filter(|b| b.health().is_synced()) {
                let _ = builder.send_transaction(call);
            }
        }
        self.inner.call(req)
    }
}
