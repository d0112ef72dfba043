//! OpenTelemetry traces from the real binary (`--tracing`), received by an OTLP collector of our
//! own over real gRPC (HTTP/2) and real HTTP/protobuf, and checked as a tree.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::{
    collector::trace::v1::ExportTraceServiceRequest,
    common::v1::any_value::Value,
    trace::v1::{Span, span::SpanKind},
};
use prost::Message;
use switchyard_sim::{Fork, SequencerConfig, secret_hex};
use tokio::{net::TcpListener, sync::Notify};

use crate::{
    binary::{Daemon, op_geth_and_builder},
    harness::{get, spec},
};

/// The gRPC method OTLP exporters call.
const GRPC_EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// How the collector answers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Collector {
    Grpc,
    Http,
    /// Takes the request and never answers: an export that hangs.
    Hanging,
}

/// One received span, with its service.
#[derive(Clone, Debug)]
struct Received {
    service: String,
    span: Span,
}

/// An OTLP collector on 127.0.0.1:0.
struct Receiver {
    addr: SocketAddr,
    spans: Arc<Mutex<Vec<Received>>>,
    arrived: Arc<Notify>,
}

impl Receiver {
    async fn start(kind: Collector) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let spans = Arc::new(Mutex::new(Vec::new()));
        let arrived = Arc::new(Notify::new());
        let (store, notify) = (spans.clone(), arrived.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (store, notify) = (store.clone(), notify.clone());
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let (store, notify) = (store.clone(), notify.clone());
                    async move {
                        Ok::<_, std::convert::Infallible>(collect(kind, req, &store, &notify).await)
                    }
                });
                tokio::spawn(async move {
                    let io = TokioIo::new(stream);
                    let _ = if kind == Collector::Grpc {
                        hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                            .serve_connection(io, service)
                            .await
                    } else {
                        hyper::server::conn::http1::Builder::new()
                            .serve_connection(io, service)
                            .await
                    };
                });
            }
        });
        Self {
            addr,
            spans,
            arrived,
        }
    }

    fn spans(&self) -> Vec<Received> {
        self.spans.lock().expect("spans").clone()
    }

    /// Waits for spans until `done` holds of them (the export sends a batch a second).
    async fn until(&self, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let wait = async {
            loop {
                let notified = self.arrived.notified();
                let spans = self.spans();
                if done(&spans) {
                    return spans;
                }
                notified.await;
            }
        };
        match tokio::time::timeout(Duration::from_secs(30), wait).await {
            Ok(spans) => spans,
            Err(_) => panic!("spans never arrived: {:#?}", names(&self.spans())),
        }
    }
}

type Body = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;

async fn collect(
    kind: Collector,
    req: Request<Incoming>,
    store: &Mutex<Vec<Received>>,
    notify: &Notify,
) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    if kind == Collector::Hanging {
        std::future::pending::<()>().await;
    }
    let message = match kind {
        Collector::Grpc => {
            assert_eq!(path, GRPC_EXPORT);
            // gRPC's frame: a compression flag and a 4-byte length before the message.
            assert!(body.len() >= 5 && body[0] == 0, "uncompressed gRPC frame");
            body.slice(5..)
        }
        _ => {
            assert_eq!(path, "/v1/traces");
            body
        }
    };
    let request = ExportTraceServiceRequest::decode(message).expect("an OTLP export request");
    let mut received = Vec::new();
    for resource_spans in request.resource_spans {
        let service = resource_spans
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| kv.value.as_ref())
            .and_then(|v| match &v.value {
                Some(Value::StringValue(s)) => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                received.push(Received {
                    service: service.clone(),
                    span,
                });
            }
        }
    }
    store.lock().expect("spans").extend(received);
    notify.notify_waiters();
    match kind {
        Collector::Grpc => {
            // An empty ExportTraceServiceResponse, framed, then grpc-status in the trailers.
            let mut trailers = http::HeaderMap::new();
            trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
            let frames = futures_util::stream::iter([
                Ok(Frame::data(Bytes::from_static(&[0, 0, 0, 0, 0]))),
                Ok(Frame::trailers(trailers)),
            ]);
            Response::builder()
                .header("content-type", "application/grpc")
                .body(BodyExt::boxed(StreamBody::new(frames)))
                .expect("response")
        }
        _ => Response::builder()
            .header("content-type", "application/x-protobuf")
            .body(BodyExt::boxed(Full::new(Bytes::new())))
            .expect("response"),
    }
}

fn names(spans: &[Received]) -> Vec<String> {
    spans.iter().map(|r| r.span.name.clone()).collect()
}

fn attribute<'a>(span: &'a Span, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn text<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
    match attribute(span, key) {
        Some(Value::StringValue(s)) => Some(s),
        _ => None,
    }
}

fn children<'a>(spans: &'a [Received], parent: &Span) -> Vec<&'a Span> {
    spans
        .iter()
        .map(|r| &r.span)
        .filter(|s| s.parent_span_id == parent.span_id && s.trace_id == parent.trace_id)
        .collect()
}

fn child<'a>(spans: &'a [Received], parent: &Span, name: &str) -> &'a Span {
    let found = children(spans, parent);
    found
        .iter()
        .find(|s| s.name == name)
        .copied()
        .unwrap_or_else(|| {
            panic!(
                "{:?} has no child {name:?}; its children: {:?}",
                parent.name,
                found.iter().map(|s| &s.name).collect::<Vec<_>>()
            )
        })
}

/// The getPayload roots whose block the builder won.
fn builder_get_payloads(spans: &[Received]) -> Vec<&Span> {
    spans
        .iter()
        .map(|r| &r.span)
        .filter(|s| {
            s.name == "engine_getPayloadV4"
                && s.parent_span_id.is_empty()
                && text(s, "switchyard.source") == Some("builder")
        })
        .collect()
}

/// Starts op-geth, a builder and the real binary exporting to `collector`, with `extra` flags.
async fn traced_daemon(
    collector: &Receiver,
    protocol: &str,
    extra: &[&str],
) -> (Daemon, switchyard_sim::EngineSim, switchyard_sim::EngineSim) {
    let spec = spec(Fork::Isthmus);
    let (l2, builder) = op_geth_and_builder(&spec).await;
    let l2_token = secret_hex(&l2.secret());
    let builder_token = secret_hex(&builder.secret());
    let endpoint = format!("http://{}", collector.addr);
    let mut args: Vec<String> = [
        "--l2-url",
        &l2.url(),
        "--l2-jwt-token",
        &l2_token,
        "--builder-url",
        &builder.url(),
        "--builder-jwt-token",
        &builder_token,
        "--rpc-host",
        "127.0.0.1",
        "--rpc-port",
        "0",
        "--metrics",
        "--metrics-host",
        "127.0.0.1",
        "--metrics-port",
        "0",
        "--log-format",
        "json",
        "--tracing",
        "--otlp-endpoint",
        &endpoint,
        "--otlp-protocol",
        protocol,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    let (daemon, lines) = Daemon::spawn_with(&args, |command| {
        command.env("OTEL_SERVICE_NAME", "sequencer-7");
    });
    std::thread::spawn(move || for _ in lines {});
    (daemon, l2, builder)
}

/// An op-node stand-in sequencing through the daemon.
async fn op_node(daemon: &Daemon, l2: &switchyard_sim::EngineSim) -> switchyard_sim::Sequencer {
    switchyard_sim::Sequencer::connect(
        &format!("http://{}", daemon.addr),
        l2.secret(),
        SequencerConfig::new(spec(Fork::Isthmus)),
    )
    .await
    .expect("op-node")
}

/// Drives blocks through the daemon until one is the builder's.
async fn blocks_until_builder_wins(
    daemon: &Daemon,
    l2: &switchyard_sim::EngineSim,
    collector: &Receiver,
) {
    let mut sequencer = op_node(daemon, l2).await;
    for _ in 0..20 {
        sequencer.step().await.expect("block");
        if !builder_get_payloads(&collector.spans()).is_empty() {
            return;
        }
        // The builder may still be unsynced for the first blocks: the spans of one block come in
        // the next batch, so give the export its batch before the next block.
        let _ = tokio::time::timeout(Duration::from_secs(2), collector.arrived.notified()).await;
    }
}

fn check_tree(spans: &[Received]) {
    assert!(
        spans.iter().all(|r| r.service == "sequencer-7"),
        "OTEL_SERVICE_NAME"
    );
    let get_payload = *builder_get_payloads(spans)
        .first()
        .expect("a getPayload the builder won");
    assert_eq!(get_payload.kind, SpanKind::Server as i32);
    assert_eq!(text(get_payload, "rpc.method"), Some("engine_getPayloadV4"));
    assert_eq!(text(get_payload, "switchyard.builder"), Some("builder"));
    assert_eq!(
        text(get_payload, "switchyard.outcomes"),
        Some("builder=won")
    );
    assert!(matches!(
        attribute(get_payload, "switchyard.external_root"),
        Some(Value::BoolValue(false))
    ));
    assert!(
        matches!(attribute(get_payload, "switchyard.block_number"), Some(Value::IntValue(n)) if *n > 0)
    );
    let payload_id = text(get_payload, "switchyard.payload_id").expect("payload id");

    // Linked to the forkchoice update that started its job, a trace of its own.
    let fcu = spans
        .iter()
        .map(|r| &r.span)
        .find(|s| {
            s.parent_span_id.is_empty()
                && text(s, "switchyard.payload_id") == Some(payload_id)
                && s.name == "engine_forkchoiceUpdatedV3"
        })
        .expect("the forkchoice update of the same payload id");
    assert_ne!(fcu.trace_id, get_payload.trace_id);
    assert!(
        get_payload
            .links
            .iter()
            .any(|l| l.trace_id == fcu.trace_id && l.span_id == fcu.span_id),
        "getPayload links to its forkchoice update"
    );
    // The forkchoice update: op-geth's answer and the builder's copy, queued in its lane.
    let l2_fcu = child(spans, fcu, "l2 engine_forkchoiceUpdatedV3");
    assert_eq!(l2_fcu.kind, SpanKind::Client as i32);
    let queued = child(spans, fcu, "builder engine_forkchoiceUpdatedV3 (queued)");
    assert_eq!(text(queued, "outcome"), Some("ok"));
    let sent = child(spans, queued, "builder engine_forkchoiceUpdatedV3");
    assert_eq!(sent.kind, SpanKind::Client as i32);

    // The getPayload: op-geth's payload, and the builder's path: its payload, the checks, the
    // validation by op-geth.
    child(spans, get_payload, "l2 engine_getPayloadV4");
    let candidate = child(spans, get_payload, "builder payload");
    assert_eq!(text(candidate, "outcome"), Some("valid"));
    child(spans, candidate, "builder engine_getPayloadV4");
    let checks = child(spans, candidate, "checks");
    assert_eq!(text(checks, "failed"), None);
    let validate = child(spans, candidate, "validate");
    child(spans, validate, "l2 engine_newPayloadV4");
    // Every span of the call in one trace, each ending after it started.
    for span in spans.iter().map(|r| &r.span) {
        assert!(
            span.end_time_unix_nano >= span.start_time_unix_nano,
            "{}",
            span.name
        );
    }
}

/// rollup-boost's transport: OTLP over gRPC.
#[tokio::test]
async fn traces_reach_an_otlp_grpc_collector_as_a_tree_per_call() {
    a_block_traced_as_a_tree(Collector::Grpc, "grpc").await;
}

/// OTLP over HTTP with protobuf bodies, posted to `/v1/traces`.
#[tokio::test]
async fn traces_reach_an_otlp_http_collector_as_a_tree_per_call() {
    a_block_traced_as_a_tree(Collector::Http, "http/protobuf").await;
}

/// Blocks through a traced daemon until the builder wins one; that block's traces, as a tree.
async fn a_block_traced_as_a_tree(kind: Collector, protocol: &str) {
    let collector = Receiver::start(kind).await;
    let (daemon, l2, _builder) = traced_daemon(&collector, protocol, &[]).await;
    blocks_until_builder_wins(&daemon, &l2, &collector).await;
    let spans = collector
        .until(|spans| {
            builder_get_payloads(spans).first().is_some_and(|gp| {
                children(spans, gp)
                    .iter()
                    .any(|c| c.name == "builder payload")
                    && spans.iter().any(|r| r.span.name == "validate")
            })
        })
        .await;
    check_tree(&spans);
}

/// A collector that takes spans and never answers: op-node's calls go on, answered as ever, and
/// the spans that find the queue full are dropped and counted.
#[tokio::test]
async fn a_hanging_collector_costs_dropped_spans_never_op_nodes_calls() {
    let collector = Receiver::start(Collector::Hanging).await;
    let (daemon, l2, _builder) =
        traced_daemon(&collector, "http/protobuf", &["--otlp-queue", "8"]).await;
    let mut sequencer = op_node(&daemon, &l2).await;
    // Each block is a dozen spans or more: eight fit in the queue, the export hangs on the first
    // batch.
    for _ in 0..10 {
        sequencer.step().await.expect("every block answered");
    }
    let metrics = daemon.metrics.clone().expect("metrics address");
    let (status, body) = get(&format!("http://{metrics}/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    let text = String::from_utf8_lossy(&body);
    let dropped: f64 = text
        .lines()
        .find(|l| l.starts_with("switchyard_otlp_spans_total{outcome=\"dropped\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no dropped spans counted:\n{text}"));
    assert!(dropped > 0.0, "{text}");
    assert_eq!(collector.spans().len(), 0, "the collector never answered");
}

/// No collector at all: every export fails at once, is counted as failed and logged once, and
/// op-node's calls are answered as ever.
#[tokio::test]
async fn an_unreachable_collector_costs_failed_exports_never_op_nodes_calls() {
    // A port that was just free: nothing listens there.
    let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = closed.local_addr().expect("addr");
    drop(closed);
    let collector = Receiver {
        addr,
        spans: Arc::default(),
        arrived: Arc::default(),
    };
    let (daemon, l2, _builder) = traced_daemon(&collector, "http/protobuf", &[]).await;
    let mut sequencer = op_node(&daemon, &l2).await;
    for _ in 0..3 {
        sequencer.step().await.expect("every block answered");
    }
    let metrics = daemon.metrics.clone().expect("metrics address");
    let failed = crate::flashblocks::counter_reaches(
        &format!("http://{metrics}/metrics"),
        "switchyard_otlp_spans_total",
        &[("outcome", "failed")],
        1.0,
    )
    .await;
    assert!(failed >= 1.0);
}
