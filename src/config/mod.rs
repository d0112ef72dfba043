//! Command line and environment → a typed [`Config`].
//!
//! Flag and environment names follow rollup-boost's where it has them (`--l2-url` / `L2_URL`, ...),
//! so an operator can swap the binaries without rewriting a deployment, and each means what it
//! meant there, unit included. Durations take units (`500ms`, `2s`, `1m`) everywhere; a bare
//! number is read in the unit rollup-boost reads that flag in: seconds for
//! `--health-check-interval` and `--max-unsafe-interval`, milliseconds for the rest.
//! [`PEER_FLAGS`] says, per flag, the rollup-boost name it answers to and its unit.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

mod cli;
mod peer;

use http::Uri;
use switchyard_layers::{
    JwtSecret, JwtSecretError,
    builder::ExecutionMode,
    payload_select::{DEFAULT_DEADLINE, SelectionPolicy},
    rpc_method::DEFAULT_BODY_LIMIT,
    tls::TlsOptions,
};

pub(crate) use cli::parse_policy;
pub use cli::{LogFormat, RunArgs, flags_markdown, parse_duration, parse_seconds, parse_size};
pub use peer::{PEER_FLAGS, PeerArgs, PeerFlag, load_dotenv, peer_flag};

/// A configuration error: which flag, and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{flag}: {message}")]
pub struct ConfigError {
    /// The flag (`--l2-jwt-path`).
    pub flag: &'static str,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    fn new(flag: &'static str, message: impl std::fmt::Display) -> Self {
        Self {
            flag,
            message: message.to_string(),
        }
    }
}

/// One upstream execution client.
#[derive(Clone, Debug)]
pub struct Upstream {
    /// Name in logs and metrics (`l2`, a builder's name).
    pub name: String,
    /// Its authenticated Engine API URL.
    pub url: Uri,
    /// Its JWT secret.
    pub secret: JwtSecret,
    /// Timeout of one call.
    pub timeout: Duration,
    /// TLS settings, for an `https://` URL.
    pub tls: TlsOptions,
}

/// Limits of the server op-node talks to.
#[derive(Clone, Debug)]
pub struct ServerLimits {
    /// Largest request body, in bytes.
    pub max_request_size: usize,
    /// Most connections at once.
    pub max_connections: usize,
    /// Time to send request headers.
    pub header_read_timeout: Duration,
    /// Time to send a request body.
    pub body_read_timeout: Duration,
    /// Time in-flight requests get on shutdown.
    pub shutdown_timeout: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            max_request_size: DEFAULT_BODY_LIMIT,
            max_connections: 512,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

/// How builders are used.
#[derive(Clone, Debug)]
pub struct BuilderPolicy {
    /// Overall deadline of one getPayload.
    pub payload_deadline: Duration,
    /// Which valid payload wins.
    pub selection: SelectionPolicy,
    /// The execution mode at start.
    pub mode: ExecutionMode,
    /// Largest builder payload, in bytes of JSON.
    pub max_payload_size: usize,
    /// Head-comparison interval.
    pub health_interval: Duration,
    /// Blocks a builder may trail and still be synced.
    pub max_lag: u64,
    /// Invalid payloads in a row that trip the breaker (0: off).
    pub breaker_threshold: u32,
    /// Blocks a tripped builder runs dry.
    pub breaker_cooldown: u32,
    /// Engine lane capacity per builder.
    pub engine_queue: usize,
    /// Transaction lane capacity per builder.
    pub transaction_queue: usize,
    /// No boost sync to a builder that is not synced (rollup-boost's
    /// `--ignore-unhealthy-builders`).
    pub ignore_unhealthy: bool,
    /// op-geth rebuilds each builder block, computing its state root (rollup-boost's
    /// `--external-state-root`).
    pub external_state_root: bool,
}

impl Default for BuilderPolicy {
    fn default() -> Self {
        Self {
            payload_deadline: DEFAULT_DEADLINE,
            selection: SelectionPolicy::default(),
            mode: ExecutionMode::Enabled,
            max_payload_size: DEFAULT_BODY_LIMIT,
            health_interval: Duration::from_secs(2),
            max_lag: 1,
            breaker_threshold: 3,
            breaker_cooldown: 30,
            engine_queue: 64,
            transaction_queue: 4096,
            ignore_unhealthy: false,
            external_state_root: false,
        }
    }
}

/// The admin endpoint.
#[derive(Clone, Debug)]
pub struct Admin {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its own JWT secret.
    pub secret: JwtSecret,
}

/// Everything switchyard needs to run.
#[derive(Clone)]
pub struct Config {
    /// Where op-node connects.
    pub rpc_addr: SocketAddr,
    /// The secret op-node's tokens are checked against.
    pub rpc_secret: JwtSecret,
    /// op-geth.
    pub l2: Upstream,
    /// The builders, in the order given.
    pub builders: Vec<Upstream>,
    /// Server limits.
    pub limits: ServerLimits,
    /// How builders are used.
    pub builder_policy: BuilderPolicy,
    /// The admin endpoint, if enabled.
    pub admin: Option<Admin>,
    /// The metrics and health endpoint, if enabled.
    pub metrics: Option<SocketAddr>,
    /// op-geth's head older than this is stale (503).
    pub max_unsafe_interval: Duration,
    /// Told of every getPayload decision (besides the log and the metrics).
    pub decision_sink: Option<switchyard_layers::payload_select::DecisionSink>,
    /// A check of the embedder's own on every builder payload, after the built-in ones.
    pub payload_check: Option<switchyard_layers::payload_select::PayloadCheck>,
    /// Flashblocks, when turned on.
    pub flashblocks: Option<FlashblocksSettings>,
    /// OpenTelemetry export, when turned on (`--tracing`). Read by the binary, which owns the
    /// process's `tracing` subscriber; [`run`](crate::run) does not look at it.
    pub tracing: Option<TracingSettings>,
}

/// OpenTelemetry export settings (`--tracing`).
#[derive(Clone, Debug)]
pub struct TracingSettings {
    /// The collector: gRPC's endpoint, or the full URL spans are posted to over HTTP.
    pub endpoint: Uri,
    /// The transport.
    pub protocol: OtlpProtocol,
    /// `service.name` of the spans (`OTEL_SERVICE_NAME`, default `switchyard`).
    pub service_name: String,
    /// Finished spans that may wait for export; more are dropped and counted.
    pub queue: usize,
}

/// How spans reach the collector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// OTLP over gRPC (rollup-boost's transport).
    Grpc,
    /// OTLP over HTTP, protobuf bodies.
    HttpProtobuf,
}

impl OtlpProtocol {
    /// The name `OTEL_EXPORTER_OTLP_PROTOCOL` gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Grpc => "grpc",
            Self::HttpProtobuf => "http/protobuf",
        }
    }
}

/// Flashblocks settings (`--flashblocks`).
#[derive(Clone, Debug)]
pub struct FlashblocksSettings {
    /// Each builder's stream, in builder order.
    pub builder_urls: Vec<Uri>,
    /// Where subscribers connect.
    pub listen: SocketAddr,
    /// First reconnect wait.
    pub initial_backoff: Duration,
    /// Longest reconnect wait.
    pub max_backoff: Duration,
    /// Dial and handshake timeout.
    pub connect_timeout: Duration,
    /// Ping interval.
    pub ping_interval: Duration,
    /// Silence after which a stream is dialled again.
    pub pong_timeout: Duration,
    /// Subscribers at once.
    pub max_subscribers: usize,
    /// Flashblocks a subscriber may fall behind.
    pub subscriber_queue: usize,
    /// The builder (by index) whose flashblocks are published whenever it is asked to build.
    pub publish_builder: Option<usize>,
}

impl FlashblocksSettings {
    /// Streams at `builder_urls` (one per builder, in order), published on `127.0.0.1:0`, with
    /// rollup-boost's reconnect and ping timings and switchyard's subscriber limits.
    pub fn new(builder_urls: Vec<Uri>) -> Self {
        Self {
            builder_urls,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(5_000),
            connect_timeout: Duration::from_millis(5_000),
            ping_interval: Duration::from_millis(500),
            pong_timeout: Duration::from_millis(1_500),
            max_subscribers: 4_096,
            subscriber_queue: 512,
            publish_builder: None,
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("rpc_addr", &self.rpc_addr)
            .field("l2", &self.l2)
            .field("builders", &self.builders)
            .field("limits", &self.limits)
            .field("builder_policy", &self.builder_policy)
            .field("admin", &self.admin)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// A configuration with defaults: op-geth at `l2_url` with `l2_secret` (also op-node's), no
    /// builder, serving on `127.0.0.1:0`.
    pub fn new(l2_url: Uri, l2_secret: JwtSecret) -> Self {
        Self {
            rpc_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            rpc_secret: l2_secret.clone(),
            l2: Upstream {
                name: "l2".into(),
                url: l2_url,
                secret: l2_secret,
                timeout: Duration::from_secs(2),
                tls: TlsOptions::default(),
            },
            builders: Vec::new(),
            limits: ServerLimits::default(),
            builder_policy: BuilderPolicy::default(),
            admin: None,
            metrics: None,
            max_unsafe_interval: Duration::from_secs(10),
            decision_sink: None,
            payload_check: None,
            flashblocks: None,
            tracing: None,
        }
    }

    /// Validates the command line.
    ///
    /// # Errors
    ///
    /// The first bad flag, named.
    pub fn from_args(args: &RunArgs) -> Result<Self, ConfigError> {
        args.peer.refuse_what_is_missing()?;
        let l2_url = parse_url("--l2-url", &args.l2_url)?;
        let l2_secret = secret(
            "--l2-jwt-path",
            "--l2-jwt-token",
            args.l2_jwt_path.as_ref(),
            args.l2_jwt_token.as_deref(),
        )?
        .ok_or_else(|| {
            ConfigError::new(
                "--l2-jwt-path",
                "op-geth's JWT secret is required (or --l2-jwt-token)",
            )
        })?;
        let rpc_secret = secret(
            "--rpc-jwt-path",
            "--rpc-jwt-token",
            args.rpc_jwt_path.as_ref(),
            args.rpc_jwt_token.as_deref(),
        )?
        .unwrap_or_else(|| l2_secret.clone());

        let count = args.builder_urls.len();
        if !args.builder_jwt_paths.is_empty() && !args.builder_jwt_tokens.is_empty() {
            return Err(ConfigError::new(
                "--builder-jwt-path",
                "give builder secrets as paths or as tokens, not both",
            ));
        }
        let secrets = args
            .builder_jwt_paths
            .len()
            .max(args.builder_jwt_tokens.len());
        if secrets != count {
            return Err(ConfigError::new(
                "--builder-jwt-path",
                format!(
                    "{count} --builder-url but {secrets} builder JWT secrets: give one per builder, in order"
                ),
            ));
        }
        if !args.builder_names.is_empty() && args.builder_names.len() != count {
            return Err(ConfigError::new(
                "--builder-name",
                format!(
                    "{count} --builder-url but {} names",
                    args.builder_names.len()
                ),
            ));
        }
        let l2_tls = TlsOptions {
            ca_file: args.l2_ca_file.clone(),
            client_identity: args.l2_client_cert.clone().zip(args.l2_client_key.clone()),
        };
        let builder_tls = builder_tls(args, count)?;
        let mut builders = Vec::with_capacity(count);
        for (i, url) in args.builder_urls.iter().enumerate() {
            let secret = match (
                args.builder_jwt_paths.get(i),
                args.builder_jwt_tokens.get(i),
            ) {
                (Some(path), _) => JwtSecret::from_file(path)
                    .map_err(|e| ConfigError::new("--builder-jwt-path", e))?,
                (None, Some(token)) => JwtSecret::from_hex(token)
                    .map_err(|e| ConfigError::new("--builder-jwt-token", redact(e)))?,
                (None, None) => unreachable!("counts checked above"),
            };
            let name = args
                .builder_names
                .get(i)
                .cloned()
                .unwrap_or_else(|| match i {
                    0 => "builder".to_owned(),
                    _ => format!("builder-{}", i + 1),
                });
            if !is_label(&name) || name == "l2" {
                return Err(ConfigError::new(
                    "--builder-name",
                    format!("{name:?}: use letters, digits, '-' or '_', and not \"l2\""),
                ));
            }
            if builders.iter().any(|b: &Upstream| b.name == name) {
                return Err(ConfigError::new(
                    "--builder-name",
                    format!("{name:?} is used twice"),
                ));
            }
            builders.push(Upstream {
                name,
                url: parse_url("--builder-url", url)?,
                secret,
                timeout: args.builder_timeout,
                tls: pick(&builder_tls, i),
            });
        }

        // TLS files are read now, so that a bad one stops switchyard at start-up, named.
        let tls_check = std::iter::once((&l2_url, &l2_tls, "--l2-ca-file")).chain(
            builders
                .iter()
                .map(|b: &Upstream| (&b.url, &b.tls, "--builder-ca-file")),
        );
        for (url, tls, flag) in tls_check {
            if url.scheme_str() == Some("https") {
                switchyard_layers::tls::client_config(tls)
                    .map_err(|e| ConfigError::new(flag, e))?;
            }
        }
        if args.max_connections == 0 {
            return Err(ConfigError::new("--max-connections", "must be at least 1"));
        }
        if args.payload_deadline.is_zero() {
            return Err(ConfigError::new(
                "--payload-deadline",
                "must be more than zero",
            ));
        }
        if args.health_check_interval.is_zero() {
            return Err(ConfigError::new(
                "--health-check-interval",
                "must be more than zero",
            ));
        }
        if args.boost_sync_queue == 0 || args.tx_mirror_queue == 0 {
            return Err(ConfigError::new(
                "--boost-sync-queue",
                "queues need room for at least one call",
            ));
        }
        let flashblocks = flashblocks(args, &builders)?;
        let admin = secret(
            "--admin-jwt-path",
            "--admin-jwt-token",
            args.admin_jwt_path.as_ref(),
            args.admin_jwt_token.as_deref(),
        )?
        .map(|secret| Admin {
            addr: SocketAddr::new(args.admin_host, args.admin_port),
            secret,
        });
        Ok(Self {
            rpc_addr: SocketAddr::new(args.rpc_host, args.rpc_port),
            rpc_secret,
            l2: Upstream {
                name: "l2".into(),
                url: l2_url,
                secret: l2_secret,
                timeout: args.l2_timeout,
                tls: l2_tls,
            },
            builders,
            limits: ServerLimits {
                max_request_size: args.max_request_size,
                max_connections: args.max_connections,
                header_read_timeout: args.header_read_timeout,
                body_read_timeout: args.body_read_timeout,
                shutdown_timeout: args.shutdown_timeout,
            },
            builder_policy: BuilderPolicy {
                payload_deadline: args.payload_deadline,
                selection: args
                    .peer
                    .block_selection_policy
                    .unwrap_or(args.selection_policy),
                mode: args.execution_mode,
                max_payload_size: args
                    .max_builder_payload_size
                    .unwrap_or(args.max_request_size),
                health_interval: args.health_check_interval,
                max_lag: args.builder_max_lag,
                breaker_threshold: args.circuit_breaker_threshold,
                breaker_cooldown: args.circuit_breaker_cooldown_blocks,
                engine_queue: args.boost_sync_queue,
                transaction_queue: args.tx_mirror_queue,
                ignore_unhealthy: args.peer.ignore_unhealthy_builders,
                external_state_root: args.peer.external_state_root,
            },
            admin,
            metrics: args
                .metrics
                .then(|| SocketAddr::new(args.metrics_host, args.metrics_port)),
            max_unsafe_interval: args.max_unsafe_interval,
            decision_sink: None,
            payload_check: None,
            flashblocks,
            tracing: tracing_settings(args)?,
        })
    }
}

/// `--tracing` and its flags.
fn tracing_settings(args: &RunArgs) -> Result<Option<TracingSettings>, ConfigError> {
    let peer = &args.peer;
    if !peer.tracing {
        return Ok(None);
    }
    let protocol = match peer.otlp_protocol.as_str() {
        "grpc" => OtlpProtocol::Grpc,
        _ => OtlpProtocol::HttpProtobuf,
    };
    let mut endpoint = parse_url("--otlp-endpoint", &peer.otlp_endpoint)?;
    match protocol {
        OtlpProtocol::Grpc if endpoint.scheme_str() == Some("https") => {
            return Err(ConfigError::new(
                "--otlp-endpoint",
                "OTLP over gRPC is plain HTTP/2 here: for TLS, use --otlp-protocol \
                 http/protobuf with an https:// endpoint",
            ));
        }
        OtlpProtocol::HttpProtobuf if endpoint.path() == "/" => {
            // The collector's traces path, as OTEL_EXPORTER_OTLP_ENDPOINT is read.
            endpoint = parse_url(
                "--otlp-endpoint",
                &format!("{}/v1/traces", peer.otlp_endpoint.trim_end_matches('/')),
            )?;
        }
        _ => {}
    }
    if peer.otlp_queue == 0 {
        return Err(ConfigError::new(
            "--otlp-queue",
            "must be at least 1: spans wait here for export",
        ));
    }
    Ok(Some(TracingSettings {
        endpoint,
        protocol,
        service_name: std::env::var("OTEL_SERVICE_NAME")
            .ok()
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| "switchyard".into()),
        queue: peer.otlp_queue,
    }))
}

/// `--flashblocks` and its flags: one stream URL per builder, an address to publish on.
fn flashblocks(
    args: &RunArgs,
    builders: &[Upstream],
) -> Result<Option<FlashblocksSettings>, ConfigError> {
    let names: Vec<&str> = builders.iter().map(|b| b.name.as_str()).collect();
    let builders = builders.len();
    let peer = &args.peer;
    if !peer.flashblocks {
        return Ok(None);
    }
    let flag = "--flashblocks-builder-url";
    if builders == 0 {
        return Err(ConfigError::new(
            "--flashblocks",
            "flashblocks come from builders: give --builder-url too",
        ));
    }
    if peer.flashblocks_builder_urls.len() != builders {
        return Err(ConfigError::new(
            flag,
            format!(
                "{builders} --builder-url but {} flashblocks URLs: give one per builder, in order",
                peer.flashblocks_builder_urls.len()
            ),
        ));
    }
    let builder_urls = peer
        .flashblocks_builder_urls
        .iter()
        .map(|url| {
            let uri: Uri = url
                .parse()
                .map_err(|e| ConfigError::new(flag, format!("{url:?}: {e}")))?;
            match uri.scheme_str() {
                Some("ws" | "wss") if uri.host().is_some() => Ok(uri),
                _ => Err(ConfigError::new(
                    flag,
                    format!("{url:?}: a ws:// or wss:// URL with a host"),
                )),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let host: std::net::IpAddr = peer.flashblocks_host.parse().map_err(|e| {
        ConfigError::new(
            "--flashblocks-host",
            format!("{:?}: {e}", peer.flashblocks_host),
        )
    })?;
    if peer.flashblocks_max_subscribers == 0 || peer.flashblocks_subscriber_queue == 0 {
        return Err(ConfigError::new(
            "--flashblocks-subscriber-queue",
            "subscribers need room: at least 1",
        ));
    }
    let publish_builder = match &peer.flashblocks_publish_builder {
        None => None,
        Some(name) => Some(names.iter().position(|n| n == name).ok_or_else(|| {
            ConfigError::new(
                "--flashblocks-publish-builder",
                format!("{name:?} is not a --builder-name"),
            )
        })?),
    };
    Ok(Some(FlashblocksSettings {
        builder_urls,
        listen: SocketAddr::new(host, peer.flashblocks_port),
        initial_backoff: peer.flashblock_builder_ws_initial_reconnect_ms,
        max_backoff: peer.flashblock_builder_ws_max_reconnect_ms,
        connect_timeout: peer.flashblock_builder_ws_connect_timeout_ms,
        ping_interval: peer.flashblock_builder_ws_ping_interval_ms,
        pong_timeout: peer.flashblock_builder_ws_pong_timeout_ms,
        max_subscribers: peer.flashblocks_max_subscribers,
        subscriber_queue: peer.flashblocks_subscriber_queue,
        publish_builder,
    }))
}

impl Config {
    /// The configuration as read, as JSON: every setting that shapes behaviour, durations in
    /// milliseconds, no secret.
    pub fn describe(&self) -> serde_json::Value {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let upstream = |u: &Upstream| {
            serde_json::json!({
                "name": u.name,
                "url": u.url.to_string(),
                "timeout_ms": ms(u.timeout),
            })
        };
        let policy = &self.builder_policy;
        serde_json::json!({
            "rpc_addr": self.rpc_addr.to_string(),
            "l2": upstream(&self.l2),
            "builders": self.builders.iter().map(upstream).collect::<Vec<_>>(),
            "payload_deadline_ms": ms(policy.payload_deadline),
            "selection_policy": policy.selection.as_str(),
            "execution_mode": policy.mode.as_str(),
            "max_builder_payload_size": policy.max_payload_size,
            "health_check_interval_ms": ms(policy.health_interval),
            "builder_max_lag": policy.max_lag,
            "circuit_breaker_threshold": policy.breaker_threshold,
            "circuit_breaker_cooldown_blocks": policy.breaker_cooldown,
            "boost_sync_queue": policy.engine_queue,
            "tx_mirror_queue": policy.transaction_queue,
            "ignore_unhealthy_builders": policy.ignore_unhealthy,
            "external_state_root": policy.external_state_root,
            "max_unsafe_interval_ms": ms(self.max_unsafe_interval),
            "metrics_addr": self.metrics.map(|a| a.to_string()),
            "admin_addr": self.admin.as_ref().map(|a| a.addr.to_string()),
            "max_request_size": self.limits.max_request_size,
            "max_connections": self.limits.max_connections,
            "header_read_timeout_ms": ms(self.limits.header_read_timeout),
            "body_read_timeout_ms": ms(self.limits.body_read_timeout),
            "shutdown_timeout_ms": ms(self.limits.shutdown_timeout),
            "flashblocks": self.flashblocks.as_ref().map(|f| serde_json::json!({
                "builder_urls": f.builder_urls.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "listen": f.listen.to_string(),
                "initial_reconnect_ms": ms(f.initial_backoff),
                "max_reconnect_ms": ms(f.max_backoff),
                "connect_timeout_ms": ms(f.connect_timeout),
                "ping_interval_ms": ms(f.ping_interval),
                "pong_timeout_ms": ms(f.pong_timeout),
                "max_subscribers": f.max_subscribers,
                "subscriber_queue": f.subscriber_queue,
                "publish_builder": f.publish_builder.and_then(|i| self.builders.get(i)).map(|b| b.name.clone()),
            })),
            "tracing": self.tracing.as_ref().map(|t| serde_json::json!({
                "otlp_endpoint": t.endpoint.to_string(),
                "otlp_protocol": t.protocol.as_str(),
                "service_name": t.service_name,
                "otlp_queue": t.queue,
            })),
        })
    }
}

fn secret(
    path_flag: &'static str,
    token_flag: &'static str,
    path: Option<&PathBuf>,
    token: Option<&str>,
) -> Result<Option<JwtSecret>, ConfigError> {
    match (path, token) {
        (Some(path), _) => JwtSecret::from_file(path)
            .map(Some)
            .map_err(|e| ConfigError::new(path_flag, e)),
        (None, Some(token)) => JwtSecret::from_hex(token)
            .map(Some)
            .map_err(|e| ConfigError::new(token_flag, redact(e))),
        (None, None) => Ok(None),
    }
}

/// Secret errors never include the secret; this keeps it that way if one ever did.
fn redact(error: JwtSecretError) -> String {
    error.to_string()
}

/// TLS options per builder: each flag given once (for all) or once per builder.
fn builder_tls(args: &RunArgs, count: usize) -> Result<Vec<TlsOptions>, ConfigError> {
    let spread = |flag: &'static str,
                  values: &[PathBuf]|
     -> Result<Vec<Option<PathBuf>>, ConfigError> {
        match values.len() {
            0 => Ok(vec![None; count]),
            1 => Ok(vec![Some(values[0].clone()); count]),
            n if n == count => Ok(values.iter().cloned().map(Some).collect()),
            n => Err(ConfigError::new(
                flag,
                format!("{n} values for {count} builders: give one for all, or one per builder"),
            )),
        }
    };
    let cas = spread("--builder-ca-file", &args.builder_ca_files)?;
    let certs = spread("--builder-client-cert", &args.builder_client_certs)?;
    let keys = spread("--builder-client-key", &args.builder_client_keys)?;
    if args.builder_client_certs.len() != args.builder_client_keys.len() {
        return Err(ConfigError::new(
            "--builder-client-key",
            "give one key per --builder-client-cert",
        ));
    }
    Ok(cas
        .into_iter()
        .zip(certs.into_iter().zip(keys))
        .map(|(ca_file, (cert, key))| TlsOptions {
            ca_file,
            client_identity: cert.zip(key),
        })
        .collect())
}

fn pick(options: &[TlsOptions], i: usize) -> TlsOptions {
    options.get(i).cloned().unwrap_or_default()
}

fn parse_url(flag: &'static str, text: &str) -> Result<Uri, ConfigError> {
    // rollup-boost's own defaults (`127.0.0.1:8551`) carry no scheme; it speaks plain HTTP to them.
    let with_scheme;
    let text = if text.contains("://") {
        text
    } else {
        with_scheme = format!("http://{text}");
        &with_scheme
    };
    let uri: Uri = text
        .parse()
        .map_err(|e| ConfigError::new(flag, format!("{text:?} is not a URL: {e}")))?;
    match uri.scheme_str() {
        Some("http" | "https") => Ok(uri),
        _ => Err(ConfigError::new(
            flag,
            format!("{text:?}: expected http://host:port or https://host:port"),
        )),
    }
}

fn is_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::Parser;

    fn args(extra: &[&str]) -> Result<RunArgs, clap::Error> {
        let mut argv = vec![
            "switchyard",
            "--l2-jwt-token",
            "0x0101010101010101010101010101010101010101010101010101010101010101",
        ];
        argv.extend_from_slice(extra);
        Cli::try_parse_from(argv).map(|cli| cli.run)
    }

    #[test]
    fn durations_take_units_and_bare_numbers_are_milliseconds() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1000"), Ok(Duration::from_secs(1)));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn health_intervals_read_a_bare_number_as_seconds_as_rollup_boost_does() {
        let config = Config::from_args(
            &args(&[
                "--max-unsafe-interval",
                "10",
                "--health-check-interval",
                "60",
            ])
            .expect("args"),
        )
        .expect("config");
        assert_eq!(config.max_unsafe_interval, Duration::from_secs(10));
        assert_eq!(
            config.builder_policy.health_interval,
            Duration::from_secs(60)
        );
        let with_units = Config::from_args(
            &args(&[
                "--max-unsafe-interval",
                "1500ms",
                "--health-check-interval",
                "2s",
            ])
            .expect("args"),
        )
        .expect("config");
        assert_eq!(with_units.max_unsafe_interval, Duration::from_millis(1500));
        assert_eq!(
            with_units.builder_policy.health_interval,
            Duration::from_secs(2)
        );
        // The timeouts stay milliseconds, as rollup-boost reads them.
        let timeouts =
            Config::from_args(&args(&["--l2-timeout", "1000"]).expect("args")).expect("config");
        assert_eq!(timeouts.l2.timeout, Duration::from_secs(1));
    }

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(parse_size("32MiB"), Ok(32 << 20));
        assert_eq!(parse_size("512 KiB"), Ok(512 << 10));
        assert_eq!(parse_size("100"), Ok(100));
        assert!(parse_size("12 parsecs").is_err());
    }

    #[test]
    fn op_node_secret_defaults_to_the_l2_secret() {
        let config = Config::from_args(&args(&[]).expect("args")).expect("config");
        let token = config.l2.secret.token_now().expect("token");
        assert_eq!(
            config
                .rpc_secret
                .validate(&token, switchyard_sim::unix_now() as u64),
            Ok(())
        );
        assert!(config.builders.is_empty());
    }

    #[test]
    fn flashblocks_take_one_stream_per_builder_and_a_publisher_by_name() {
        let a = "0x0202020202020202020202020202020202020202020202020202020202020202";
        let two = [
            "--builder-url",
            "http://10.0.0.1:8551,http://10.0.0.2:8551",
            "--builder-jwt-token",
            a,
            "--builder-jwt-token",
            a,
            "--builder-name",
            "alpha,beta",
            "--flashblocks",
        ];
        let with = |extra: &[&str]| {
            let all: Vec<&str> = two.iter().chain(extra).copied().collect();
            Config::from_args(&args(&all).expect("args"))
        };
        let config = with(&[
            "--flashblocks-builder-url",
            "ws://10.0.0.1:1111,wss://10.0.0.2:1111",
            "--flashblocks-publish-builder",
            "beta",
        ])
        .expect("config");
        let flashblocks = config.flashblocks.expect("on");
        assert_eq!(flashblocks.builder_urls[1], "wss://10.0.0.2:1111/");
        assert_eq!(flashblocks.publish_builder, Some(1));
        assert_eq!(flashblocks.listen.to_string(), "127.0.0.1:1112");

        let refused = |extra: &[&str]| with(extra).map(|_| ()).map_err(|e| e.flag);
        assert_eq!(
            refused(&["--flashblocks-builder-url", "ws://10.0.0.1:1111"]),
            Err("--flashblocks-builder-url"),
            "one stream for two builders"
        );
        assert_eq!(
            refused(&["--flashblocks-builder-url", "ws://a:1,http://b:2",]),
            Err("--flashblocks-builder-url"),
            "not a WebSocket"
        );
        assert_eq!(
            refused(&[
                "--flashblocks-builder-url",
                "ws://a:1,ws://b:2",
                "--flashblocks-publish-builder",
                "gamma",
            ]),
            Err("--flashblocks-publish-builder")
        );
    }

    #[test]
    fn builders_pair_with_their_secrets_and_names_in_order() {
        let a = "0x0202020202020202020202020202020202020202020202020202020202020202";
        let b = "0x0303030303030303030303030303030303030303030303030303030303030303";
        let config = Config::from_args(
            &args(&[
                "--builder-url",
                "http://10.0.0.1:8551",
                "--builder-jwt-token",
                a,
                "--builder-url",
                "http://10.0.0.2:8551",
                "--builder-jwt-token",
                b,
            ])
            .expect("args"),
        )
        .expect("config");
        let names: Vec<_> = config.builders.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["builder", "builder-2"]);
        assert_eq!(config.builders[1].url, "http://10.0.0.2:8551");
    }

    #[test]
    fn readme_documents_every_flag_as_the_parser_does() {
        let readme = include_str!("../../README.md");
        let table = readme
            .split("<!-- flags:begin -->\n")
            .nth(1)
            .and_then(|rest| rest.split("<!-- flags:end -->").next())
            .unwrap_or_default();
        assert_eq!(
            table,
            flags_markdown(),
            "regenerate the README table with `switchyard flags`"
        );
    }

    #[test]
    fn ci_runs_exactly_the_readme_test_command() {
        let readme = include_str!("../../README.md");
        let command = readme
            .split("# Run the whole test suite:\n")
            .nth(1)
            .and_then(|rest| rest.lines().next())
            .unwrap_or_default();
        assert!(command.starts_with("cargo test"), "{command}");
        let ci = include_str!("../../.ci/run");
        assert!(
            ci.lines().any(|line| line == command),
            ".ci/run must run `{command}`"
        );
    }

    #[test]
    fn bad_config_names_the_flag() {
        let missing = Config::from_args(&Cli::try_parse_from(["switchyard"]).expect("args").run)
            .expect_err("no secret");
        assert_eq!(missing.flag, "--l2-jwt-path");
        let unpaired = Config::from_args(&args(&["--builder-url", "http://b:1"]).expect("args"))
            .expect_err("unpaired");
        assert_eq!(unpaired.flag, "--builder-jwt-path");
        let bad_url = Config::from_args(&args(&["--l2-url", "ws://op-geth:8551"]).expect("args"))
            .expect_err("url");
        assert_eq!(bad_url.flag, "--l2-url");
        let short = Cli::try_parse_from(["switchyard", "--l2-jwt-token", "0x12"]).expect("args");
        let err = Config::from_args(&short.run).expect_err("short secret");
        assert_eq!(err.flag, "--l2-jwt-token");
        assert!(!err.to_string().contains("0x12"), "{err}");
        assert!(args(&["--l2-timeout", "soon"]).is_err());
    }
}
