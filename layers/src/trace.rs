//! Spans: one per JSON-RPC call, one per upstream exchange, and the context that ties calls of
//! one block together.
//!
//! The layers make [`tracing`] spans at `DEBUG` (so a plain log at `info` pays nothing for
//! them), whatever the features:
//! - [`RpcSpan`], for tower-http's [`TraceLayer`](tower_http::trace::TraceLayer): the span of a
//!   caller's call (OpenTelemetry kind `server`), named by its method once
//!   [`RpcMethod`](crate::RpcMethod) has read it. The layers record what they decided on it
//!   (see its fields);
//! - [`Forward`](crate::Forward): a span per exchange with an upstream (kind `client`), named
//!   `"<upstream> <method>"`, marked as an error when the exchange failed;
//! - with `engine`: a builder's queued calls, a getPayload's candidates, their checks and
//!   their validation.
//!
//! With a `tracing-opentelemetry` layer in the subscriber these become OpenTelemetry spans. The
//! `otel` feature adds what `tracing` alone cannot say: [`TraceLink`] carries a span's context
//! past the call that made it, so that a getPayload's span links to its forkchoice update's and
//! a builder call sent later from a lane is still a child of the call that queued it. Without
//! `otel`, a [`TraceLink`] holds nothing and does nothing.
//!
//! ```
//! use std::convert::Infallible;
//!
//! use http::{Request, Response};
//! use switchyard_layers::{
//!     RpcMethodLayer,
//!     body::RpcBody,
//!     trace::{RecordStatus, RpcSpan},
//! };
//! use tower::ServiceBuilder;
//! use tower_http::trace::TraceLayer;
//!
//! let service = ServiceBuilder::new()
//!     .layer(
//!         TraceLayer::new_for_http()
//!             .make_span_with(RpcSpan)
//!             .on_response(RecordStatus),
//!     )
//!     .layer(RpcMethodLayer::new())
//!     .service_fn(|_: Request<RpcBody>| async {
//!         Ok::<_, Infallible>(Response::new(RpcBody::new(bytes::Bytes::new())))
//!     });
//! # let _ = service;
//! ```

use http::Request;
use tracing::{Span, field::Empty};

/// The target of every span the layers make: `switchyard_layers=debug` turns them all on.
pub const TARGET: &str = "switchyard_layers::trace";

/// Makes the span of one call (tower-http's [`MakeSpan`](tower_http::trace::MakeSpan)): JSON-RPC
/// is POSTed; other requests (health probes, polled every second) get none.
///
/// Fields, recorded as they become known: `rpc.method` (and the OpenTelemetry span name), and for
/// a getPayload `switchyard.payload_id`, `switchyard.source` (`builder`/`local`),
/// `switchyard.builder`, `switchyard.outcomes` (each builder's outcome or loss reason),
/// `switchyard.external_root`, `switchyard.preconfirmations` (`kept` or why they broke) and
/// `switchyard.block_number`; the HTTP status as `http.response.status_code`.
#[derive(Clone, Copy, Debug, Default)]
pub struct RpcSpan;

impl<B> tower_http::trace::MakeSpan<B> for RpcSpan {
    fn make_span(&mut self, request: &Request<B>) -> Span {
        if request.method() != http::Method::POST {
            return Span::none();
        }
        tracing::debug_span!(
            target: TARGET,
            "rpc",
            otel.name = "rpc",
            otel.kind = "server",
            rpc.system = "jsonrpc",
            rpc.method = Empty,
            http.response.status_code = Empty,
            switchyard.payload_id = Empty,
            switchyard.source = Empty,
            switchyard.builder = Empty,
            switchyard.outcomes = Empty,
            switchyard.external_root = Empty,
            switchyard.preconfirmations = Empty,
            switchyard.block_number = Empty,
        )
    }
}

/// Records the HTTP status on the call's span (tower-http's
/// [`OnResponse`](tower_http::trace::OnResponse)); logs nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct RecordStatus;

impl<B> tower_http::trace::OnResponse<B> for RecordStatus {
    fn on_response(self, response: &http::Response<B>, _latency: std::time::Duration, span: &Span) {
        if !span.is_disabled() {
            span.record(
                "http.response.status_code",
                i64::from(response.status().as_u16()),
            );
        }
    }
}

/// Names the current span after the call's method (what [`RpcMethod`](crate::RpcMethod) does
/// once it has parsed the body).
pub(crate) fn record_method(method: &str) {
    let span = Span::current();
    if !span.is_disabled() {
        span.record("rpc.method", method);
        span.record("otel.name", method);
    }
}

/// The context of a span, carried past the call that made it (see the [module docs](self)).
#[derive(Clone, Default)]
pub struct TraceLink {
    #[cfg(feature = "otel")]
    context: Option<opentelemetry::Context>,
}

impl std::fmt::Debug for TraceLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut debug = f.debug_struct("TraceLink");
        #[cfg(feature = "otel")]
        {
            use opentelemetry::trace::TraceContextExt;
            if let Some(context) = &self.context {
                let span = context.span();
                let span = span.span_context();
                debug
                    .field("trace_id", &span.trace_id())
                    .field("span_id", &span.span_id());
            }
        }
        debug.finish_non_exhaustive()
    }
}

impl TraceLink {
    /// The current span's context, if an OpenTelemetry layer records it.
    pub fn current() -> Self {
        #[cfg(feature = "otel")]
        {
            use opentelemetry::trace::TraceContextExt;
            use tracing_opentelemetry::OpenTelemetrySpanExt;
            let span = Span::current();
            if span.is_disabled() {
                return Self::default();
            }
            let context = span.context();
            let valid = context.span().span_context().is_valid();
            Self {
                context: valid.then_some(context),
            }
        }
        #[cfg(not(feature = "otel"))]
        Self::default()
    }

    /// Links `span` to the carried span: `span` follows from it (another call's, in another
    /// trace, such as the forkchoice update that started a getPayload's job).
    pub fn link(&self, span: &Span) {
        #[cfg(feature = "otel")]
        if let Some(context) = &self.context {
            use opentelemetry::trace::TraceContextExt;
            use tracing_opentelemetry::OpenTelemetrySpanExt;
            span.add_link(context.span().span_context().clone());
        }
        #[cfg(not(feature = "otel"))]
        let _ = span;
    }

    /// Makes the carried span the parent of `span`, a span just made with no parent of its own
    /// (`parent: None`) and not yet entered: work done after the caller's call has returned (a
    /// queued builder call) still shows in the caller's trace, without keeping its span open.
    pub fn adopt(&self, span: &Span) {
        #[cfg(feature = "otel")]
        if let Some(context) = &self.context {
            use tracing_opentelemetry::OpenTelemetrySpanExt;
            // Fails only without an OpenTelemetry layer or on a started span: nothing to adopt.
            let _ = span.set_parent(context.clone());
        }
        #[cfg(not(feature = "otel"))]
        let _ = span;
    }
}
