//! Command line and environment → a typed [`Config`].
//!
//! Flag and environment names follow rollup-boost's where it has them (`--l2-url` / `L2_URL`, ...),
//! so an operator can swap the binaries without rewriting a deployment, and each means what it
//! meant there, unit included. Durations take units (`500ms`, `2s`, `1m`) everywhere; a bare
//! number is read in the unit rollup-boost reads that flag in: seconds for
//! `--health-check-interval` and `--max-unsafe-interval`, milliseconds for the rest.
//! [`PEER_FLAGS`] says, per flag, the rollup-boost name it answers to and its unit.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

mod peer;

use clap::{Args, Parser, Subcommand, ValueEnum};
use http::Uri;
use switchyard_layers::{
    JwtSecret, JwtSecretError,
    builder::ExecutionMode,
    payload_select::{DEFAULT_DEADLINE, SelectionPolicy},
    rpc_method::DEFAULT_BODY_LIMIT,
    tls::TlsOptions,
};

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

/// switchyard's command line.
#[derive(Debug, Parser)]
#[command(
    name = "switchyard",
    version,
    about = "OP Stack block-builder sidecar: a transparent Engine API proxy in front of op-geth that lets external builders produce blocks"
)]
pub struct Cli {
    /// What to run; without one, the sidecar.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The sidecar's settings.
    #[command(flatten)]
    pub run: RunArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the configuration reference (every flag with its environment variable) as Markdown.
    Flags,
    /// Run a simulated op-geth, builders, switchyard and op-node in one process (like `geth --dev`).
    Devnet(crate::devnet::DevnetArgs),
}

/// Log output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The sidecar's flags.
#[derive(Clone, Debug, Args)]
pub struct RunArgs {
    /// op-geth's authenticated Engine API URL.
    #[arg(long, env = "L2_URL", default_value = "http://127.0.0.1:8551")]
    pub l2_url: String,
    /// File with op-geth's JWT secret (hex).
    #[arg(long, env = "L2_JWT_PATH", conflicts_with = "l2_jwt_token")]
    pub l2_jwt_path: Option<PathBuf>,
    /// op-geth's JWT secret as hex (prefer --l2-jwt-path: arguments are visible to other users).
    #[arg(long, env = "L2_JWT_TOKEN", hide_env_values = true)]
    pub l2_jwt_token: Option<String>,
    /// Timeout of one call to op-geth.
    #[arg(long, env = "L2_TIMEOUT", default_value = "2s", value_parser = parse_duration)]
    pub l2_timeout: Duration,
    /// Trust only this CA (PEM) for an https:// --l2-url, instead of the system's roots.
    #[arg(long, env = "L2_CA_FILE")]
    pub l2_ca_file: Option<PathBuf>,
    /// Client certificate chain (PEM) for mutual TLS with op-geth.
    #[arg(long, env = "L2_CLIENT_CERT", requires = "l2_client_key")]
    pub l2_client_cert: Option<PathBuf>,
    /// Client key (PEM) for mutual TLS with op-geth.
    #[arg(long, env = "L2_CLIENT_KEY", requires = "l2_client_cert")]
    pub l2_client_key: Option<PathBuf>,
    /// File with the JWT secret op-node signs with; defaults to op-geth's, since op-node is
    /// normally configured with op-geth's secret.
    #[arg(long, env = "RPC_JWT_PATH", conflicts_with = "rpc_jwt_token")]
    pub rpc_jwt_path: Option<PathBuf>,
    /// The JWT secret op-node signs with, as hex.
    #[arg(long, env = "RPC_JWT_TOKEN", hide_env_values = true)]
    pub rpc_jwt_token: Option<String>,
    /// A builder's authenticated Engine API URL; repeat for several builders.
    #[arg(long = "builder-url", env = "BUILDER_URL", value_delimiter = ',')]
    pub builder_urls: Vec<String>,
    /// File with a builder's JWT secret, one per --builder-url, in the same order.
    #[arg(
        long = "builder-jwt-path",
        env = "BUILDER_JWT_PATH",
        value_delimiter = ','
    )]
    pub builder_jwt_paths: Vec<PathBuf>,
    /// A builder's JWT secret as hex, one per --builder-url, in the same order.
    #[arg(
        long = "builder-jwt-token",
        env = "BUILDER_JWT_TOKEN",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub builder_jwt_tokens: Vec<String>,
    /// A builder's name for logs and metrics, one per --builder-url (default `builder`,
    /// `builder-2`, ...).
    #[arg(long = "builder-name", env = "BUILDER_NAME", value_delimiter = ',')]
    pub builder_names: Vec<String>,
    /// Trust only this CA (PEM) for https:// builders: one for all, or one per --builder-url.
    #[arg(
        long = "builder-ca-file",
        env = "BUILDER_CA_FILE",
        value_delimiter = ','
    )]
    pub builder_ca_files: Vec<PathBuf>,
    /// Client certificate chain (PEM) for mutual TLS with builders: one for all, or one per
    /// --builder-url.
    #[arg(
        long = "builder-client-cert",
        env = "BUILDER_CLIENT_CERT",
        value_delimiter = ','
    )]
    pub builder_client_certs: Vec<PathBuf>,
    /// Client key (PEM) for mutual TLS with builders, paired with --builder-client-cert.
    #[arg(
        long = "builder-client-key",
        env = "BUILDER_CLIENT_KEY",
        value_delimiter = ','
    )]
    pub builder_client_keys: Vec<PathBuf>,
    /// Timeout of one call to a builder.
    #[arg(long, env = "BUILDER_TIMEOUT", default_value = "1s", value_parser = parse_duration)]
    pub builder_timeout: Duration,
    /// Overall deadline of one getPayload: past it, the best payload already validated wins, else
    /// op-geth's.
    #[arg(long, env = "PAYLOAD_DEADLINE", default_value = "500ms", value_parser = parse_duration)]
    pub payload_deadline: Duration,
    /// How a valid builder payload is chosen: most-gas (builder over op-geth, most gas among
    /// builders), highest-value (most block value among builders), or gas-used (as most-gas, but
    /// op-geth's block wins when the builder's uses under 10% of its gas).
    #[arg(long, env = "SELECTION_POLICY", default_value = "most-gas", value_parser = parse_policy)]
    pub selection_policy: SelectionPolicy,
    /// enabled: builder payloads can win; dry-run: everything runs and is recorded but op-geth's
    /// payload is returned; disabled: nothing engine-related goes to builders.
    #[arg(long, env = "EXECUTION_MODE", default_value = "enabled", value_parser = parse_mode)]
    pub execution_mode: ExecutionMode,
    /// Largest builder getPayload answer accepted, in bytes of JSON (default: --max-request-size,
    /// since op-node must be able to send the block back).
    #[arg(long, env = "MAX_BUILDER_PAYLOAD_SIZE", value_parser = parse_size)]
    pub max_builder_payload_size: Option<usize>,
    /// How often each builder's head is compared with op-geth's (a bare number is seconds, as in
    /// rollup-boost).
    #[arg(long, env = "HEALTH_CHECK_INTERVAL", default_value = "2s", value_parser = parse_seconds)]
    pub health_check_interval: Duration,
    /// How many blocks a builder's head may trail op-geth's and still get forkchoice updates
    /// with attributes.
    #[arg(long, env = "BUILDER_MAX_LAG", default_value_t = 1)]
    pub builder_max_lag: u64,
    /// Invalid payloads in a row after which a builder runs dry for the cool-down (0: never).
    #[arg(long, env = "CIRCUIT_BREAKER_THRESHOLD", default_value_t = 3)]
    pub circuit_breaker_threshold: u32,
    /// How many blocks a tripped builder runs dry before it can win again.
    #[arg(long, env = "CIRCUIT_BREAKER_COOLDOWN_BLOCKS", default_value_t = 30)]
    pub circuit_breaker_cooldown_blocks: u32,
    /// Engine calls (boost sync, forkchoice) that may wait for each builder; more are dropped
    /// and counted.
    #[arg(long, env = "BOOST_SYNC_QUEUE", default_value_t = 64)]
    pub boost_sync_queue: usize,
    /// Mirrored transactions that may wait for each builder.
    #[arg(long, env = "TX_MIRROR_QUEUE", default_value_t = 4096)]
    pub tx_mirror_queue: usize,
    /// Address of the admin JSON-RPC endpoint (execution mode, builder status).
    #[arg(long = "debug-host", env = "DEBUG_HOST", default_value = "127.0.0.1")]
    pub admin_host: std::net::IpAddr,
    /// Port of the admin endpoint (0 picks a free one).
    #[arg(
        long = "debug-server-port",
        env = "DEBUG_SERVER_PORT",
        default_value_t = 5555
    )]
    pub admin_port: u16,
    /// File with the admin endpoint's own JWT secret; without it (or --admin-jwt-token) the
    /// admin endpoint is off.
    #[arg(long, env = "ADMIN_JWT_PATH", conflicts_with = "admin_jwt_token")]
    pub admin_jwt_path: Option<PathBuf>,
    /// The admin endpoint's JWT secret as hex.
    #[arg(long, env = "ADMIN_JWT_TOKEN", hide_env_values = true)]
    pub admin_jwt_token: Option<String>,
    /// Serve Prometheus metrics (and the health endpoints) on --metrics-host:--metrics-port;
    /// `--metrics false` turns them off.
    #[arg(long, env = "METRICS", default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub metrics: bool,
    /// Address of the metrics endpoint.
    #[arg(long, env = "METRICS_HOST", default_value = "127.0.0.1")]
    pub metrics_host: std::net::IpAddr,
    /// Port of the metrics endpoint (0 picks a free one).
    #[arg(long, env = "METRICS_PORT", default_value_t = 9090)]
    pub metrics_port: u16,
    /// op-geth's head older than this makes /healthz answer 503 (a bare number is seconds, as in
    /// rollup-boost).
    #[arg(long, env = "MAX_UNSAFE_INTERVAL", default_value = "10s", value_parser = parse_seconds)]
    pub max_unsafe_interval: Duration,
    /// Address to serve op-node on.
    #[arg(long, env = "RPC_HOST", default_value = "127.0.0.1")]
    pub rpc_host: std::net::IpAddr,
    /// Port to serve op-node on (0 picks a free one).
    #[arg(long, env = "RPC_PORT", default_value_t = 8081)]
    pub rpc_port: u16,
    /// Largest request body accepted, in bytes (suffixes KiB, MiB).
    #[arg(long, env = "MAX_REQUEST_SIZE", default_value = "32MiB", value_parser = parse_size)]
    pub max_request_size: usize,
    /// Most client connections served at once; more wait to be accepted.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 512)]
    pub max_connections: usize,
    /// Time a client has to send a request's headers.
    #[arg(long, env = "HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,
    /// Time a client has to send a request's body.
    #[arg(long, env = "BODY_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub body_read_timeout: Duration,
    /// On SIGINT/SIGTERM, how long in-flight requests may take to finish.
    #[arg(long, env = "SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,
    /// Threads that serve requests. One is right for a sidecar: its work per request is
    /// microseconds, and handing requests between threads costs more than it buys on a sequencer
    /// host; the CPU-heavy checks of builder payloads run on separate blocking threads anyway.
    #[arg(long, env = "WORKER_THREADS", default_value_t = 1)]
    pub worker_threads: usize,
    /// Log level: error, warn, info, debug or trace (RUST_LOG overrides it).
    #[arg(long, env = "LOG_LEVEL", default_value = "info")]
    pub log_level: tracing::Level,
    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// rollup-boost's flags that switchyard has no name of its own for.
    #[command(flatten)]
    pub peer: PeerArgs,
    /// Print the configuration as read (JSON, secrets left out) and exit.
    #[arg(long)]
    pub print_config: bool,
}

/// A `Duration` from `500ms`, `2s`, `1m`; a bare number is milliseconds.
///
/// # Errors
///
/// If the text is neither.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    parse_duration_bare(text, Duration::from_millis)
}

/// A `Duration` from `500ms`, `2s`, `1m`; a bare number is seconds (rollup-boost's unit for
/// `--health-check-interval` and `--max-unsafe-interval`).
///
/// # Errors
///
/// If the text is neither.
pub fn parse_seconds(text: &str) -> Result<Duration, String> {
    parse_duration_bare(text, Duration::from_secs)
}

fn parse_duration_bare(text: &str, bare: fn(u64) -> Duration) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(number) = text.parse::<u64>() {
        return Ok(bare(number));
    }
    humantime::parse_duration(text).map_err(|e| format!("{e} (write e.g. 500ms or 2s)"))
}

pub(crate) fn parse_policy(text: &str) -> Result<SelectionPolicy, String> {
    text.parse()
        .map_err(|e: switchyard_layers::payload_select::UnknownPolicy| e.to_string())
}

fn parse_mode(text: &str) -> Result<ExecutionMode, String> {
    text.parse()
        .map_err(|e: switchyard_layers::builder::UnknownMode| e.to_string())
}

/// A byte count from `1048576`, `512KiB`, `32MiB`.
///
/// # Errors
///
/// If the text is not a number with an optional KiB/MiB/GiB suffix.
pub fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, ""),
    };
    let scale = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" | "KB" => 1 << 10,
        "MiB" | "M" | "MB" => 1 << 20,
        "GiB" | "G" | "GB" => 1 << 30,
        other => return Err(format!("unknown unit {other:?} (use KiB, MiB or GiB)")),
    };
    digits
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| format!("not a size: {text:?}"))
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
            },
            admin,
            metrics: args
                .metrics
                .then(|| SocketAddr::new(args.metrics_host, args.metrics_port)),
            max_unsafe_interval: args.max_unsafe_interval,
            decision_sink: None,
            payload_check: None,
        })
    }
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
            "max_unsafe_interval_ms": ms(self.max_unsafe_interval),
            "metrics_addr": self.metrics.map(|a| a.to_string()),
            "admin_addr": self.admin.as_ref().map(|a| a.addr.to_string()),
            "max_request_size": self.limits.max_request_size,
            "max_connections": self.limits.max_connections,
            "header_read_timeout_ms": ms(self.limits.header_read_timeout),
            "body_read_timeout_ms": ms(self.limits.body_read_timeout),
            "shutdown_timeout_ms": ms(self.limits.shutdown_timeout),
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

/// The configuration reference as a Markdown table, generated from the parser: every flag, its
/// environment variable, its default and its help.
pub fn flags_markdown() -> String {
    use clap::CommandFactory;
    let command = Cli::command();
    let mut out = String::from(
        "| Flag | Environment | Default | Unit | rollup-boost | Meaning |\n|---|---|---|---|---|---|\n",
    );
    for arg in command.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if matches!(long, "help" | "version") {
            continue;
        }
        let env = arg
            .get_env()
            .map(|e| format!("`{}`", e.to_string_lossy()))
            .unwrap_or_default();
        let default = arg
            .get_default_values()
            .iter()
            .map(|v| format!("`{}`", v.to_string_lossy()))
            .collect::<Vec<_>>()
            .join(", ");
        let help = arg
            .get_help()
            .map(|h| h.to_string().replace('|', "\\|"))
            .unwrap_or_default();
        let (unit, peer) = match peer_flag(long) {
            Some(row) if row.rollup_boost.is_empty() => (row.unit, String::new()),
            Some(row) => (row.unit, format!("`{}`", row.rollup_boost)),
            None => ("", String::new()),
        };
        out.push_str(&format!(
            "| `--{long}` | {env} | {default} | {unit} | {peer} | {help} |\n"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
