//! switchyard: an OP Stack block-builder sidecar.
//!
//! It sits where op-node expects op-geth's authenticated Engine API, forwards every call to
//! op-geth unchanged, and (with builders configured) lets external block builders produce the
//! blocks, falling back to op-geth's own block whenever a builder's is late, invalid or not the
//! block op-node asked for. The reusable parts are tower layers in `switchyard-layers`; this
//! crate composes them ([`stack`]), serves them ([`server`]), offers an [`admin`] endpoint and
//! reads the command line ([`config`]).

#![forbid(unsafe_code)]

pub mod admin;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod devnet;
pub mod health;
pub mod log_file;
pub mod log_writer;
pub mod metrics;
pub mod server;
pub mod stack;
pub mod telemetry;

use std::{convert::Infallible, future::Future, sync::Arc};

pub use cli::Cli;
pub use config::Config;
use http::{HeaderValue, Request, Response, StatusCode, header};
use switchyard_layers::trace::{RecordStatus, RpcSpan};
use switchyard_layers::{HealthLayer, body::RpcBody, builder::poll_heads};
use tokio::{net::TcpListener, sync::watch};
use tower::{Layer as _, ServiceBuilder, service_fn};
use tower_http::{sensitive_headers::SetSensitiveRequestHeadersLayer, trace::TraceLayer};

/// The sockets switchyard serves on, bound before it starts.
#[derive(Debug)]
pub struct Listeners {
    /// Where op-node connects.
    pub rpc: TcpListener,
    /// The admin endpoint, if enabled.
    pub admin: Option<TcpListener>,
    /// The metrics and health endpoint, if enabled.
    pub metrics: Option<TcpListener>,
    /// The flashblocks WebSocket server, if enabled.
    pub flashblocks: Option<TcpListener>,
}

impl Listeners {
    /// Binds the addresses in `config`.
    ///
    /// # Errors
    ///
    /// If an address cannot be bound.
    pub async fn bind(config: &Config) -> std::io::Result<Self> {
        let rpc = TcpListener::bind(config.rpc_addr).await?;
        let admin = match &config.admin {
            Some(admin) => Some(TcpListener::bind(admin.addr).await?),
            None => None,
        };
        let metrics = match config.metrics {
            Some(addr) => Some(TcpListener::bind(addr).await?),
            None => None,
        };
        let flashblocks = match &config.flashblocks {
            Some(settings) => Some(TcpListener::bind(settings.listen).await?),
            None => None,
        };
        Ok(Self {
            rpc,
            admin,
            metrics,
            flashblocks,
        })
    }
}

/// Runs switchyard until `shutdown` resolves, then drains in-flight requests.
///
/// # Errors
///
/// If a listener's address cannot be read.
pub async fn run(
    listeners: Listeners,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let addr = listeners.rpc.local_addr()?;
    let admin_addr = listeners
        .admin
        .as_ref()
        .map(TcpListener::local_addr)
        .transpose()?;
    let metrics_addr = listeners
        .metrics
        .as_ref()
        .map(TcpListener::local_addr)
        .transpose()?;
    let flashblocks_addr = listeners
        .flashblocks
        .as_ref()
        .map(TcpListener::local_addr)
        .transpose()?;
    // Installed before anything registers a metric: series registered earlier would be lost.
    let exporter = match listeners.metrics {
        Some(_) => Some(metrics::install().map_err(std::io::Error::other)?),
        None => None,
    };
    let parts = stack::Parts::new(&config).map_err(std::io::Error::other)?;
    for builder in config
        .builders
        .iter()
        .filter(|b| switchyard_layers::tls::is_plain_remote(&b.url))
    {
        tracing::warn!(target: "switchyard", builder = %builder.name, url = %builder.url, "plain http to a remote builder: its JWT and every transaction travel unencrypted; use https://");
    }
    tracing::info!(
        target: "switchyard",
        %addr,
        admin = admin_addr.map(|a| a.to_string()),
        metrics = metrics_addr.map(|a| a.to_string()),
        flashblocks = flashblocks_addr.map(|a| a.to_string()),
        l2 = %config.l2.url,
        builders = config.builders.len(),
        mode = %parts.mode.get(),
        "listening"
    );
    let (stopped, stop) = watch::channel(false);
    let mut background = tokio::task::JoinSet::new();
    let monitor = Arc::new(health::L2Monitor::default());
    background.spawn(health::watch_l2(
        stack::l2_client(&config, &parts),
        monitor.clone(),
        config.builder_policy.health_interval,
        config.max_unsafe_interval,
    ));
    let probe = {
        let parts = parts.clone();
        move || health::report(&monitor, &parts)
    };
    // The health gauge follows the checks, whether or not anyone asks /healthz.
    background.spawn({
        let probe = probe.clone();
        let interval = config.builder_policy.health_interval;
        async move {
            let mut ticks = tokio::time::interval(interval);
            loop {
                ticks.tick().await;
                probe();
            }
        }
    });
    if let (Some(listener), Some(handle)) = (listeners.metrics, exporter) {
        background.spawn(metrics::upkeep(handle.clone()));
        let service = ServiceBuilder::new()
            .layer(HealthLayer::new(probe.clone()))
            .service(service_fn(move |req: Request<hyper::body::Incoming>| {
                let handle = handle.clone();
                async move {
                    // Rendering drains and formats every series: kept off op-node's thread.
                    let path = req.uri().path().to_owned();
                    let page = tokio::task::spawn_blocking(move || metrics_page(&handle, &path))
                        .await
                        .unwrap_or_else(|_| {
                            let mut response = Response::new(RpcBody::from("render failed\n"));
                            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                            response
                        });
                    Ok::<_, Infallible>(page)
                }
            }));
        let mut stop = stop.clone();
        let limits = config::ServerLimits::default();
        background.spawn(async move {
            server::serve(listener, service, &limits, async move {
                let _ = stop.changed().await;
            })
            .await;
        });
    }
    if !parts.builders.is_empty() {
        let policy = &config.builder_policy;
        background.spawn(poll_heads(
            stack::l2_client(&config, &parts),
            parts.builders.clone(),
            policy.health_interval,
            policy.max_lag,
        ));
    }
    if let (Some(flashblocks), Some(settings)) = (&parts.flashblocks, &config.flashblocks) {
        let tls = flashblocks_tls(&config)?;
        for (index, url) in settings.builder_urls.iter().enumerate() {
            let mut inbound = switchyard_layers::flashblocks::InboundConfig::new(url.clone());
            inbound.initial_backoff = settings.initial_backoff;
            inbound.max_backoff = settings.max_backoff;
            inbound.connect_timeout = settings.connect_timeout;
            inbound.ping_interval = settings.ping_interval;
            inbound.pong_timeout = settings.pong_timeout;
            inbound.max_frame = config.builder_policy.max_payload_size;
            inbound.tls = tls.get(index).cloned().flatten();
            flashblocks.spawn_stream(index, inbound);
        }
        if let Some(listener) = listeners.flashblocks {
            let publisher = flashblocks.publisher().clone();
            let mut stop = stop.clone();
            background.spawn(switchyard_layers::flashblocks::serve(
                listener,
                publisher,
                async move {
                    let _ = stop.changed().await;
                },
            ));
        }
    }
    if let (Some(listener), Some(admin)) = (listeners.admin, &config.admin) {
        let control = admin::Control {
            mode: parts.mode.clone(),
            builders: parts.builders.clone(),
            jobs: parts.jobs.clone(),
        };
        let service = admin::service(admin.secret.clone(), control);
        let mut stop = stop.clone();
        let limits = config::ServerLimits::default();
        background.spawn(async move {
            server::serve(listener, service, &limits, async move {
                let _ = stop.changed().await;
            })
            .await;
        });
    }
    let service = ServiceBuilder::new()
        // A bug that panics anywhere below costs that call a JSON-RPC error, never the
        // connection or the daemon.
        .layer(switchyard_layers::panic::catch_panic_layer())
        // Authorization values are secrets: marked so that no Debug print or trace shows them.
        .layer(SetSensitiveRequestHeadersLayer::new([
            http::header::AUTHORIZATION,
        ]))
        // Probes and op-conductor poll health on the RPC port too, without a JWT.
        .layer(HealthLayer::new(probe))
        .service(stack::stack(&config, &parts));
    // A span per JSON-RPC call (see `switchyard_layers::trace`), at debug level. Where no
    // subscriber takes debug at all (the filter is fixed for the daemon's life), the span is never
    // made, and tower-http's Trace would still read the clock twice and wrap every answer's body
    // for nothing: it is left out.
    if tracing::level_filters::LevelFilter::current() >= tracing::Level::DEBUG {
        let traced = TraceLayer::new_for_http()
            .make_span_with(RpcSpan)
            .on_request(())
            .on_response(RecordStatus)
            .on_body_chunk(())
            .on_eos(())
            .on_failure(())
            .layer(service);
        server::serve(listeners.rpc, traced, &config.limits, shutdown).await;
    } else {
        server::serve(listeners.rpc, service, &config.limits, shutdown).await;
    }
    let _ = stopped.send(true);
    background.abort_all();
    Ok(())
}

/// Each builder's TLS client configuration for a `wss://` flashblocks stream: its own CA and
/// client identity, as for its Engine API.
fn flashblocks_tls(config: &Config) -> std::io::Result<Vec<Option<Arc<rustls::ClientConfig>>>> {
    let Some(settings) = &config.flashblocks else {
        return Ok(Vec::new());
    };
    settings
        .builder_urls
        .iter()
        .zip(&config.builders)
        .map(|(url, builder)| {
            if url.scheme_str() != Some("wss") {
                return Ok(None);
            }
            switchyard_layers::tls::client_config(&builder.tls)
                .map(|c| Some(Arc::new(c)))
                .map_err(std::io::Error::other)
        })
        .collect()
}

fn metrics_page(
    handle: &metrics_exporter_prometheus::PrometheusHandle,
    path: &str,
) -> Response<RpcBody> {
    let (status, content_type, body) = match path {
        "/metrics" => (StatusCode::OK, "text/plain; version=0.0.4", handle.render()),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: try /metrics, /healthz, /readyz or /livez\n".to_owned(),
        ),
    };
    let mut response = Response::new(RpcBody::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
