//! OpenTelemetry traces (`--tracing`): the layers' `tracing` spans (see
//! [`switchyard_layers::trace`]) become OpenTelemetry spans and leave over OTLP, gRPC or
//! HTTP/protobuf.
//!
//! Exporting never holds up op-node's calls: a finished span is handed to a bounded queue
//! (`--otlp-queue`), and one that finds it full is dropped and counted
//! (`switchyard_otlp_spans_total{outcome="dropped"}`), never waited for. A thread of its own
//! (with its own small runtime: encoding a batch of 512 spans takes the better part of a
//! millisecond, which on the event loop doubled a block cycle's p99) takes the queue every 200 ms,
//! or when it is half full, never woken per span (a wake-up per span cost more CPU than the export
//! itself), and sends it
//! in batches, one export at a time, each under a timeout. The SDK's own batch processor also
//! exports from a thread, but wakes it per span and counts its drops only in a log line at
//! shutdown; this one counts each drop where Prometheus sees it.

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::{
    Resource,
    error::{OTelSdkError, OTelSdkResult},
    trace::{SdkTracerProvider, SpanData, SpanExporter as _, SpanProcessor},
};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;
use tracing::Level;
use tracing_subscriber::{
    Layer,
    filter::{FilterExt, Targets, filter_fn},
    registry::LookupSpan,
};

use crate::config::{OtlpProtocol, TracingSettings};

/// Spans by what became of them: `exported`, `failed` (the collector refused them or did not
/// answer in time) or `dropped` (the queue was full).
pub const SPANS: &str = "switchyard_otlp_spans_total";

/// Spans sent in one export at most (the SDK's default).
const BATCH: usize = 512;

/// How often the export thread takes what is queued.
const DRAIN_EVERY: Duration = Duration::from_millis(200);

/// One export's limit (the SDK's default): a collector that hangs costs a batch, not the queue.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long exiting waits for the queued spans to be sent.
const FLUSH_WAIT: Duration = Duration::from_secs(2);

/// The export pipeline: made before the runtime (the subscriber is set up first), started in it.
#[derive(Debug)]
pub struct Tracing {
    provider: SdkTracerProvider,
    waiting: Option<(Arc<SpanQueue>, TracingSettings)>,
}

/// The running export thread; [`Exporting::flush`] sends what is queued when the daemon exits.
#[derive(Debug)]
pub struct Exporting {
    stop: oneshot::Sender<()>,
    done: oneshot::Receiver<()>,
}

impl Tracing {
    /// The queue and the tracer for `settings`; nothing is sent until [`Tracing::start`].
    pub fn new(settings: &TracingSettings) -> Self {
        let queue = Arc::new(SpanQueue {
            spans: Mutex::new(Vec::new()),
            capacity: settings.queue.max(1),
            half_full: tokio::sync::Notify::new(),
        });
        let provider = SdkTracerProvider::builder()
            .with_span_processor(QueueProcessor {
                queue: queue.clone(),
            })
            .with_resource(resource(settings))
            .build();
        Self {
            provider,
            waiting: Some((queue, settings.clone())),
        }
    }

    /// The `tracing` layer that turns the daemon's and the layers' spans into OpenTelemetry
    /// spans: spans at debug and above, and warnings and errors as span events.
    pub fn layer<S>(&self) -> impl Layer<S> + use<S>
    where
        S: tracing::Subscriber + for<'span> LookupSpan<'span>,
    {
        let targets = Targets::new()
            .with_target("switchyard", Level::DEBUG)
            .with_target("switchyard_layers", Level::DEBUG);
        let spans_and_warnings = filter_fn(|meta| meta.is_span() || *meta.level() <= Level::WARN);
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer("switchyard"))
            // Busy/idle time per span costs two clock reads per poll; the span's own times say
            // what an operator looks for.
            .with_tracked_inactivity(false)
            // Spans start when they end or get a child, not on entry: a call's span is named
            // after its method, which is read after the span is entered. No OpenTelemetry code
            // here reads the active context.
            .with_context_activation(false)
            .with_threads(false)
            .with_location(false)
            .with_target(false)
            .with_filter(targets.and(spans_and_warnings))
    }

    /// Starts the export thread, and the exporter in it.
    ///
    /// # Errors
    ///
    /// If the thread, its runtime or the exporter cannot be made (or this was started already).
    pub fn start(&mut self) -> anyhow::Result<Exporting> {
        let (queue, settings) = self
            .waiting
            .take()
            .ok_or_else(|| anyhow::anyhow!("the OTLP export was started already"))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (stop, stopped) = oneshot::channel();
        let (finished, done) = oneshot::channel();
        let (started, start_result) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("switchyard-otlp".into())
            .spawn(move || {
                runtime.block_on(async move {
                    // The clients are made here: their connections belong to this runtime.
                    match exporter(&settings) {
                        Ok(exporter) => {
                            let _ = started.send(Ok(()));
                            export(exporter, &queue, stopped).await;
                        }
                        Err(error) => {
                            let _ = started.send(Err(error));
                        }
                    }
                });
                let _ = finished.send(());
            })?;
        start_result
            .recv()
            .map_err(|_| anyhow::anyhow!("the OTLP export thread ended at start"))??;
        Ok(Exporting { stop, done })
    }
}

/// The OTLP exporter for `settings`, its resource set.
fn exporter(settings: &TracingSettings) -> anyhow::Result<opentelemetry_otlp::SpanExporter> {
    let endpoint = settings.endpoint.to_string();
    let mut exporter = match settings.protocol {
        OtlpProtocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .with_timeout(EXPORT_TIMEOUT)
            .build()?,
        OtlpProtocol::HttpProtobuf => {
            let connector = switchyard_layers::tls::connector(
                &settings.endpoint,
                &switchyard_layers::tls::TlsOptions::default(),
                hyper_util::client::legacy::connect::HttpConnector::new(),
            )?;
            opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_endpoint(endpoint)
                .with_timeout(EXPORT_TIMEOUT)
                .with_http_client(opentelemetry_http::hyper::HyperClient::new(
                    connector,
                    EXPORT_TIMEOUT,
                    None,
                ))
                .build()?
        }
    };
    exporter.set_resource(&resource(settings));
    tracing::info!(
        target: "switchyard::telemetry",
        endpoint = %settings.endpoint,
        protocol = settings.protocol.as_str(),
        service = settings.service_name,
        "exporting traces"
    );
    Ok(exporter)
}

impl Exporting {
    /// Sends the spans still queued (waiting at most two seconds), then stops.
    pub async fn flush(self) {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(FLUSH_WAIT, self.done).await;
    }
}

fn resource(settings: &TracingSettings) -> Resource {
    Resource::builder_empty()
        .with_service_name(settings.service_name.clone())
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build()
}

/// Finished spans waiting for the export thread, at most `capacity`.
#[derive(Debug)]
struct SpanQueue {
    spans: Mutex<Vec<SpanData>>,
    capacity: usize,
    // Woken when the queue is half full: a burst is sent before it has to drop.
    half_full: tokio::sync::Notify,
}

impl SpanQueue {
    fn take(&self) -> Vec<SpanData> {
        std::mem::take(&mut *self.spans.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Queues each finished span, or drops it if the queue is full.
#[derive(Debug)]
struct QueueProcessor {
    queue: Arc<SpanQueue>,
}

impl SpanProcessor for QueueProcessor {
    fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &opentelemetry::Context) {}

    fn on_end(&self, span: SpanData) {
        let mut spans = self.queue.spans.lock().unwrap_or_else(|p| p.into_inner());
        if spans.len() < self.queue.capacity {
            spans.push(span);
            if spans.len() == self.queue.capacity.div_ceil(2) {
                self.queue.half_full.notify_one();
            }
        } else {
            drop(spans);
            metrics::counter!(SPANS, "outcome" => "dropped").increment(1);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// Takes the queue every [`DRAIN_EVERY`] (or when it is half full) and sends it, until told to
/// stop; then what is left.
async fn export(
    exporter: opentelemetry_otlp::SpanExporter,
    queue: &SpanQueue,
    mut stop: oneshot::Receiver<()>,
) {
    let mut failing = false;
    let mut ticks = tokio::time::interval(DRAIN_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            _ = ticks.tick() => false,
            () = queue.half_full.notified() => false,
            _ = &mut stop => true,
        };
        let mut spans = queue.take();
        while !spans.is_empty() {
            let rest = spans.split_off(spans.len().min(BATCH));
            send(&exporter, spans, &mut failing).await;
            spans = rest;
        }
        if stopping {
            return;
        }
    }
}

/// One export, counted; a failure is logged when it starts and when it ends, not per batch.
async fn send(
    exporter: &opentelemetry_otlp::SpanExporter,
    batch: Vec<SpanData>,
    failing: &mut bool,
) {
    let spans = batch.len() as u64;
    let result = tokio::time::timeout(EXPORT_TIMEOUT, exporter.export(batch))
        .await
        .unwrap_or(Err(OTelSdkError::Timeout(EXPORT_TIMEOUT)));
    match result {
        Ok(()) => {
            metrics::counter!(SPANS, "outcome" => "exported").increment(spans);
            if std::mem::take(failing) {
                tracing::info!(target: "switchyard::telemetry", "trace export recovered");
            }
        }
        Err(error) => {
            metrics::counter!(SPANS, "outcome" => "failed").increment(spans);
            if !std::mem::replace(failing, true) {
                tracing::warn!(target: "switchyard::telemetry", %error, "trace export failing; spans are counted as failed until it recovers");
            }
        }
    }
}
