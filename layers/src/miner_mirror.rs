//! The sequencer's `miner_*` settings are mirrored to the builders, so their blocks obey them.
//!
//! # Behaviour
//!
//! [`MinerMirror`] passes each of [`MIRRORED`] (`miner_setMaxDASize`, which op-batcher uses to
//! throttle blocks when its DA backlog grows, and `miner_setGasLimit`, `miner_setExtra`,
//! `miner_setGasPrice`) to the inner service (op-geth, whose answer the caller gets) and sends
//! the same call to every builder, in every [mode](crate::builder::ExecutionMode). Unlike
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

use std::{
    sync::Arc,
    task::{Context, Poll},
};

use http::Request;
use tower::{Layer, Service};

use crate::{builder::Builder, jsonrpc::RpcCall};

/// The settings mirrored.
pub const MIRRORED: [&str; 4] = [
    "miner_setMaxDASize",
    "miner_setGasLimit",
    "miner_setExtra",
    "miner_setGasPrice",
];

/// Layer that mirrors `miner_*` settings to builders. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct MinerMirrorLayer {
    builders: Arc<[Arc<Builder>]>,
}

impl MinerMirrorLayer {
    /// Mirrors to `builders`.
    pub fn new(builders: Vec<Arc<Builder>>) -> Self {
        Self {
            builders: builders.into(),
        }
    }
}

impl<S> Layer<S> for MinerMirrorLayer {
    type Service = MinerMirror<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MinerMirror {
            inner,
            builders: self.builders.clone(),
        }
    }
}

/// Service that mirrors `miner_*` settings to builders. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct MinerMirror<S> {
    inner: S,
    builders: Arc<[Arc<Builder>]>,
}

impl<S, B> Service<Request<B>> for MinerMirror<S>
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
            for builder in self.builders.iter() {
                builder.send_setting(call);
            }
        }
        self.inner.call(req)
    }
}
