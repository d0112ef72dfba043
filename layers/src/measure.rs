//! Count every call and time it: per method, per upstream, per outcome.
//!
//! # Behaviour
//!
//! [`Measure`] records, for each request that carries an [`RpcCall`]:
//!
//! - `switchyard_rpc_requests_total{upstream, method, outcome}` and
//! - `switchyard_rpc_request_duration_seconds{upstream, method}` (a histogram),
//!
//! where `upstream` is the scope it was built with: `inbound` for what op-node asked of switchyard,
//! `l2` or a builder's name for what switchyard asked of an upstream. Labels come from closed sets,
//! so no caller can grow the metric's cardinality: `method` is one of the Engine and `eth_`
//! methods switchyard knows (see [`method_label`]), or `other`; `outcome` is `ok`, `rpc_error`,
//! `http_error`, `timeout`, `unreachable`, `too_large` or `bad_response`. Batches forwarded whole
//! are counted once, as `batch`.
//!
//! # Example
//!
//! ```
//! use switchyard_layers::{Forward, MeasureLayer};
//! use tower::Layer;
//!
//! let l2 = MeasureLayer::upstream("l2").layer(Forward::new("l2", "http://127.0.0.1:8551".parse().unwrap()));
//! # let _ = l2;
//! ```

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use http::{Request, Response, StatusCode};
use http_body::Body;
use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower::{Layer, Service};

use crate::{
    body::{self, RpcBody},
    forward,
    jsonrpc::{RpcBatch, RpcCall, RpcResponse},
};

pub(crate) const REQUESTS: &str = "switchyard_rpc_requests_total";
pub(crate) const DURATION: &str = "switchyard_rpc_request_duration_seconds";

/// Registers the descriptions of this concern's metrics with the installed recorder.
pub fn describe() {
    metrics::describe_counter!(
        REQUESTS,
        "JSON-RPC calls by upstream (inbound = from op-node; l2; a builder's name), method and outcome"
    );
    metrics::describe_histogram!(
        DURATION,
        metrics::Unit::Seconds,
        "Latency of JSON-RPC calls by upstream and method"
    );
}

/// The `eth_`/`net_`/`web3_`/`miner_` methods with a label of their own; everything else not
/// an Engine method is `other`.
const KNOWN: [&str; 16] = [
    "eth_chainId",
    "eth_blockNumber",
    "eth_getBlockByNumber",
    "eth_getBlockByHash",
    "eth_getProof",
    "eth_getStorageAt",
    "eth_getTransactionReceipt",
    "eth_getBlockReceipts",
    "eth_call",
    "eth_syncing",
    "eth_sendRawTransaction",
    "eth_sendRawTransactionConditional",
    "net_version",
    "web3_clientVersion",
    "engine_exchangeCapabilities",
    "engine_getClientVersionV1",
];

const ENGINE: [&str; 11] = [
    "engine_forkchoiceUpdatedV1",
    "engine_forkchoiceUpdatedV2",
    "engine_forkchoiceUpdatedV3",
    "engine_getPayloadV2",
    "engine_getPayloadV3",
    "engine_getPayloadV4",
    "engine_getPayloadV5",
    "engine_newPayloadV2",
    "engine_newPayloadV3",
    "engine_newPayloadV4",
    "engine_signalSuperchainV1",
];

/// The `method` label of `method`: itself if it is in the closed set, else `other`.
pub fn method_label(method: &str) -> &'static str {
    KNOWN
        .iter()
        .chain(ENGINE.iter())
        .find(|m| **m == method)
        .copied()
        .unwrap_or("other")
}

/// The `outcome` label of a response.
pub fn outcome_label(response: &Response<RpcBody>) -> &'static str {
    if let Some(error) = forward::forward_error(response) {
        return error.label();
    }
    if response.status() != StatusCode::OK {
        return "http_error";
    }
    // Error answers are small; only small answers are worth a look.
    let small = response
        .body()
        .size_hint()
        .exact()
        .is_some_and(|n| n < 16 * 1024);
    if small {
        let bytes = body::peek(response.body());
        if RpcResponse::from_slice(&bytes).is_ok_and(|answer| answer.error.is_some()) {
            return "rpc_error";
        }
    }
    "ok"
}

/// Layer that measures calls. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct MeasureLayer {
    upstream: Arc<str>,
}

impl MeasureLayer {
    /// Measures what op-node asks of switchyard (`upstream="inbound"`).
    pub fn inbound() -> Self {
        Self {
            upstream: Arc::from("inbound"),
        }
    }

    /// Measures calls to the upstream `name`.
    pub fn upstream(name: impl Into<Arc<str>>) -> Self {
        Self {
            upstream: name.into(),
        }
    }
}

impl<S> Layer<S> for MeasureLayer {
    type Service = Measure<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Measure {
            inner,
            upstream: self.upstream.clone(),
        }
    }
}

/// Service that measures calls. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct Measure<S> {
    inner: S,
    upstream: Arc<str>,
}

impl<S> Service<Request<RpcBody>> for Measure<S>
where
    S: Service<Request<RpcBody>, Response = Response<RpcBody>>,
{
    type Response = Response<RpcBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<RpcBody>) -> Self::Future {
        let method = match (
            req.extensions().get::<RpcCall>(),
            req.extensions().get::<RpcBatch>(),
        ) {
            (Some(call), _) => Some(method_label(call.method())),
            (None, Some(_)) => Some("batch"),
            (None, None) => None,
        };
        ResponseFuture {
            future: self.inner.call(req),
            labels: method.map(|method| (self.upstream.clone(), method)),
            started: Instant::now(),
        }
    }
}

pin_project! {
    /// Response future of [`Measure`].
    pub struct ResponseFuture<F> {
        #[pin]
        future: F,
        labels: Option<(Arc<str>, &'static str)>,
        started: Instant,
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("labels", &self.labels)
            .finish_non_exhaustive()
    }
}

impl<F, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<RpcBody>, E>>,
{
    type Output = Result<Response<RpcBody>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.future.poll(cx));
        if let (Some((upstream, method)), Ok(response)) = (this.labels.take(), &result) {
            let outcome = outcome_label(response);
            metrics::counter!(REQUESTS, "upstream" => upstream.to_string(), "method" => method, "outcome" => outcome)
                .increment(1);
            metrics::histogram!(DURATION, "upstream" => upstream.to_string(), "method" => method)
                .record(this.started.elapsed().as_secs_f64());
        }
        Poll::Ready(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_labels_are_a_closed_set() {
        assert_eq!(method_label("engine_getPayloadV4"), "engine_getPayloadV4");
        assert_eq!(method_label("eth_chainId"), "eth_chainId");
        assert_eq!(method_label("engine_getPayloadV9"), "other");
        assert_eq!(method_label("x".repeat(10_000).as_str()), "other");
        assert_eq!(method_label("debug_traceTransaction"), "other");
    }
}
