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
    jsonrpc::{RpcBatch, RpcCall},
};
use memchr::memmem::Finder;
use metrics::{Counter, Histogram};
use std::sync::{LazyLock, OnceLock};

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

/// Every `method` label: the known methods, then `other` and `batch`.
const LABELS: [&str; KNOWN.len() + ENGINE.len() + 2] = {
    let mut labels = [""; KNOWN.len() + ENGINE.len() + 2];
    let mut i = 0;
    while i < KNOWN.len() {
        labels[i] = KNOWN[i];
        i += 1;
    }
    while i < KNOWN.len() + ENGINE.len() {
        labels[i] = ENGINE[i - KNOWN.len()];
        i += 1;
    }
    labels[i] = "other";
    labels[i + 1] = "batch";
    labels
};
const OTHER: usize = LABELS.len() - 2;
const BATCH: usize = LABELS.len() - 1;

/// Every `outcome` label.
const OUTCOMES: [&str; 8] = [
    "ok",
    "rpc_error",
    "http_error",
    "timeout",
    "unreachable",
    "tls",
    "too_large",
    "bad_response",
];

fn method_index(method: &str) -> usize {
    LABELS[..OTHER]
        .iter()
        .position(|m| *m == method)
        .unwrap_or(OTHER)
}

/// The `method` label of `method`: itself if it is in the closed set, else `other`.
pub fn method_label(method: &str) -> &'static str {
    LABELS[method_index(method)]
}

/// The `outcome` label of a response.
pub fn outcome_label(response: &Response<RpcBody>) -> &'static str {
    if let Some(error) = forward::forward_error(response) {
        return error.label();
    }
    if response.status() != StatusCode::OK {
        return "http_error";
    }
    // Error answers are small; only small answers are worth a look, and a look is enough: a
    // JSON-RPC answer is an error if its `"error"` member comes before any `"result"` one.
    let small = response
        .body()
        .size_hint()
        .exact()
        .is_some_and(|n| n < 16 * 1024);
    if small {
        // Searchers built once: building one costs more than searching a small answer.
        static ERROR: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"error\""));
        static RESULT: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"result\""));
        let bytes = body::peek(response.body());
        // `"result"` comes first in nearly every answer: then only the few bytes before it (and
        // an `"error"` ending inside it) need a look, not the whole payload.
        let before_result = match RESULT.find(&bytes) {
            Some(r) => &bytes[..bytes.len().min(r + b"\"error\"".len() - 1)],
            None => &bytes[..],
        };
        if ERROR.find(before_result).is_some() {
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
            handles: Arc::default(),
        }
    }
}

/// Service that measures calls. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct Measure<S> {
    inner: S,
    upstream: Arc<str>,
    handles: Arc<Handles>,
}

/// Metric handles by label index, each made on first use: building a labelled key costs an
/// allocation and a hash per call; the labels are closed sets, so a table needs neither a lock
/// nor a hash.
#[derive(Debug)]
struct Handles {
    counters: [[OnceLock<Counter>; OUTCOMES.len()]; LABELS.len()],
    histograms: [OnceLock<Histogram>; LABELS.len()],
}

impl Default for Handles {
    fn default() -> Self {
        Self {
            counters: std::array::from_fn(|_| std::array::from_fn(|_| OnceLock::new())),
            histograms: std::array::from_fn(|_| OnceLock::new()),
        }
    }
}

impl Handles {
    fn record(&self, upstream: &str, method: usize, outcome: &'static str, seconds: f64) {
        let label = LABELS[method];
        match OUTCOMES.iter().position(|o| *o == outcome) {
            Some(index) => self.counters[method][index].get_or_init(|| {
                metrics::counter!(REQUESTS, "upstream" => upstream.to_owned(), "method" => label, "outcome" => outcome)
            }).increment(1),
            None => metrics::counter!(REQUESTS, "upstream" => upstream.to_owned(), "method" => label, "outcome" => outcome).increment(1),
        }
        self.histograms[method]
            .get_or_init(|| metrics::histogram!(DURATION, "upstream" => upstream.to_owned(), "method" => label))
            .record(seconds);
    }
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
            (Some(call), _) => Some(method_index(call.method())),
            (None, Some(_)) => Some(BATCH),
            (None, None) => None,
        };
        ResponseFuture {
            future: self.inner.call(req),
            labels: method.map(|method| (self.upstream.clone(), self.handles.clone(), method)),
            started: Instant::now(),
        }
    }
}

pin_project! {
    /// Response future of [`Measure`].
    pub struct ResponseFuture<F> {
        #[pin]
        future: F,
        labels: Option<(Arc<str>, Arc<Handles>, usize)>,
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
        if let (Some((upstream, handles, method)), Ok(response)) = (this.labels.take(), &result) {
            handles.record(
                &upstream,
                method,
                outcome_label(response),
                this.started.elapsed().as_secs_f64(),
            );
        }
        Poll::Ready(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_an_error_if_its_error_member_comes_first() {
        let answer = |text: &'static str| Response::new(RpcBody::new(bytes::Bytes::from(text)));
        assert_eq!(
            outcome_label(&answer(r#"{"jsonrpc":"2.0","id":1,"result":"0x1"}"#)),
            "ok"
        );
        assert_eq!(
            outcome_label(&answer(
                r#"{"jsonrpc":"2.0","id":1,"error":{"code":-38001,"message":"Unknown payload"}}"#
            )),
            "rpc_error"
        );
        assert_eq!(
            outcome_label(&answer(
                r#"{"jsonrpc":"2.0","id":1,"result":{"note":"error"}}"#
            )),
            "ok"
        );
        assert_eq!(
            outcome_label(&answer(r#"{"error":{"code":-32000},"result":null}"#)),
            "rpc_error"
        );
        assert_eq!(
            outcome_label(&answer(r#"{"x":"error"result":1}"#)),
            "rpc_error"
        );
        let mut failed = answer("");
        *failed.status_mut() = StatusCode::BAD_GATEWAY;
        assert_eq!(outcome_label(&failed), "http_error");
    }

    #[test]
    fn method_labels_are_a_closed_set() {
        assert_eq!(method_label("engine_getPayloadV4"), "engine_getPayloadV4");
        assert_eq!(method_label("eth_chainId"), "eth_chainId");
        assert_eq!(method_label("engine_getPayloadV9"), "other");
        assert_eq!(method_label("x".repeat(10_000).as_str()), "other");
        assert_eq!(method_label("debug_traceTransaction"), "other");
    }
}
