//! The sidecar's flags: each with its environment variable, default and value parser, and the
//! Markdown reference generated from them.

use std::{path::PathBuf, time::Duration};

use clap::{Args, ValueEnum};
use switchyard_layers::{builder::ExecutionMode, payload_select::SelectionPolicy};

use super::{PeerArgs, peer_flag};

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
    /// Mirrored transactions that may wait for each builder (in its lane, and again as many held
    /// while it is not synced).
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

/// The configuration reference as a Markdown table, generated from the parser: every flag, its
/// environment variable, its default and its help.
pub fn flags_markdown() -> String {
    let command = RunArgs::augment_args(clap::Command::new("switchyard"));
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
