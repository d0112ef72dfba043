//! rollup-boost's flags that switchyard has no name of its own for, its `.env` file, and the map
//! from each switchyard flag to the rollup-boost flag it answers to.
//!
//! An operator swaps the binary under a command line, `.env` file or manifest written for
//! rollup-boost v0.7. Every flag there must either mean what it meant, unit included, or stop
//! switchyard with a line saying why: a flag accepted and silently read another way is the one
//! outcome that is not allowed.

use std::path::PathBuf;

use clap::Args;
use switchyard_layers::payload_select::SelectionPolicy;

use super::ConfigError;

/// rollup-boost's flags beyond those switchyard shares by name.
#[derive(Clone, Debug, Args)]
pub struct PeerArgs {
    /// rollup-boost's name for --selection-policy (its one value, gas-used, means the same here).
    #[arg(
        long,
        env = "BLOCK_SELECTION_POLICY",
        conflicts_with = "selection_policy",
        value_parser = super::parse_policy
    )]
    pub block_selection_policy: Option<SelectionPolicy>,
    /// No engine traffic at all to a builder (forkchoice updates, boost sync, getPayload) while
    /// its health is not synced, as rollup-boost's flag: it must catch up by its own consensus
    /// client. Without it, boost sync keeps an unsynced builder following the chain.
    #[arg(long, env = "IGNORE_UNHEALTHY_BUILDERS", default_value_t = false, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub ignore_unhealthy_builders: bool,
    /// Append log lines to this file too (reopened on SIGHUP, for logrotate).
    #[arg(long, env = "LOG_FILE")]
    pub log_file: Option<PathBuf>,
    /// Export OpenTelemetry traces over OTLP: a trace per call, a span per upstream exchange,
    /// the checks and the validation of each builder payload (service name: OTEL_SERVICE_NAME,
    /// default switchyard).
    #[arg(long, env = "TRACING", default_value_t = false, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub tracing: bool,
    /// The OTLP collector, with --tracing: its gRPC endpoint (port 4317), or with
    /// --otlp-protocol http/protobuf its HTTP one (port 4318; `/v1/traces` is added to a URL
    /// with no path).
    #[arg(long, env = "OTLP_ENDPOINT", default_value = "http://localhost:4317")]
    pub otlp_endpoint: String,
    /// OTLP transport, with --tracing: grpc (rollup-boost's) or http/protobuf.
    #[arg(
        long,
        env = "OTEL_EXPORTER_OTLP_PROTOCOL",
        default_value = "grpc",
        value_parser = ["grpc", "http/protobuf"]
    )]
    pub otlp_protocol: String,
    /// Finished spans that may wait for export, with --tracing; more are dropped and counted
    /// (switchyard_otlp_spans_total{outcome="dropped"}), never waited for.
    #[arg(long, env = "OTEL_BSP_MAX_QUEUE_SIZE", default_value_t = 2048)]
    pub otlp_queue: usize,
    /// Have op-geth compute the state root of builder blocks: op-geth rebuilds each builder block
    /// from its transactions, and that block is returned (for builders that leave the root zero).
    #[arg(long, env = "EXTERNAL_STATE_ROOT", default_value_t = false, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub external_state_root: bool,
    /// Take flashblocks from each builder's WebSocket, publish them to subscribers and serve
    /// getPayload from them.
    #[arg(long, env = "FLASHBLOCKS", default_value_t = false, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub flashblocks: bool,
    /// Each builder's flashblocks WebSocket (ws:// or wss://), one per --builder-url in the
    /// same order, with --flashblocks.
    #[arg(
        long = "flashblocks-builder-url",
        env = "FLASHBLOCKS_BUILDER_URL",
        default_value = "ws://127.0.0.1:1111",
        value_delimiter = ','
    )]
    pub flashblocks_builder_urls: Vec<String>,
    /// Address of the flashblocks WebSocket server, with --flashblocks.
    #[arg(long, env = "FLASHBLOCKS_HOST", default_value = "127.0.0.1")]
    pub flashblocks_host: String,
    /// Port of the flashblocks WebSocket server, with --flashblocks.
    #[arg(long, env = "FLASHBLOCKS_PORT", default_value_t = 1112)]
    pub flashblocks_port: u16,
    /// Subscribers of the flashblocks WebSocket server at once; more are refused (503).
    #[arg(long, env = "FLASHBLOCKS_MAX_SUBSCRIBERS", default_value_t = 4096)]
    pub flashblocks_max_subscribers: usize,
    /// Flashblocks a subscriber may fall behind before it is disconnected.
    #[arg(long, env = "FLASHBLOCKS_SUBSCRIBER_QUEUE", default_value_t = 512)]
    pub flashblocks_subscriber_queue: usize,
    /// The builder (by --builder-name) whose flashblocks are published when it is asked to build
    /// the block; default: the first one asked, in configuration order.
    #[arg(long, env = "FLASHBLOCKS_PUBLISH_BUILDER")]
    pub flashblocks_publish_builder: Option<String>,
    /// First reconnect wait of the builder's flashblocks WebSocket, with --flashblocks.
    #[arg(
        long,
        env = "FLASHBLOCK_BUILDER_WS_INITIAL_RECONNECT_MS",
        default_value = "10",
        value_parser = super::parse_duration
    )]
    pub flashblock_builder_ws_initial_reconnect_ms: std::time::Duration,
    /// Longest reconnect wait of the builder's flashblocks WebSocket, with --flashblocks.
    #[arg(
        long,
        env = "FLASHBLOCK_BUILDER_WS_MAX_RECONNECT_MS",
        default_value = "5000",
        value_parser = super::parse_duration
    )]
    pub flashblock_builder_ws_max_reconnect_ms: std::time::Duration,
    /// Connect timeout of the builder's flashblocks WebSocket, with --flashblocks.
    #[arg(
        long,
        env = "FLASHBLOCK_BUILDER_WS_CONNECT_TIMEOUT_MS",
        default_value = "5000",
        value_parser = super::parse_duration
    )]
    pub flashblock_builder_ws_connect_timeout_ms: std::time::Duration,
    /// Ping interval on the builder's flashblocks WebSocket, with --flashblocks.
    #[arg(
        long,
        env = "FLASHBLOCK_BUILDER_WS_PING_INTERVAL_MS",
        default_value = "500",
        value_parser = super::parse_duration
    )]
    pub flashblock_builder_ws_ping_interval_ms: std::time::Duration,
    /// How long a ping may go unanswered before the flashblocks WebSocket is reopened.
    #[arg(
        long,
        env = "FLASHBLOCK_BUILDER_WS_PONG_TIMEOUT_MS",
        default_value = "1500",
        value_parser = super::parse_duration
    )]
    pub flashblock_builder_ws_pong_timeout_ms: std::time::Duration,
    /// rollup-boost's signed flashblocks over p2p: not in switchyard (turning it on stops
    /// start-up).
    #[arg(long, env = "FLASHBLOCKS_P2P", default_value_t = false, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set, conflicts_with = "flashblocks")]
    pub flashblocks_p2p: bool,
    /// With --flashblocks-p2p (not in switchyard).
    #[arg(long, env = "FLASHBLOCKS_AUTHORIZER_SK", hide_env_values = true)]
    pub flashblocks_authorizer_sk: Option<String>,
    /// With --flashblocks-p2p (not in switchyard).
    #[arg(long, env = "FLASHBLOCKS_BUILDER_VK")]
    pub flashblocks_builder_vk: Option<String>,
}

impl PeerArgs {
    /// Stops start-up on a rollup-boost feature that is turned on but that switchyard does not
    /// do yet: running without it would be running differently from what the operator asked.
    pub(super) fn refuse_what_is_missing(&self) -> Result<(), ConfigError> {
        let missing = [(
            self.flashblocks_p2p,
            "--flashblocks-p2p",
            "signed flashblocks over p2p",
        )];
        for (on, flag, what) in missing {
            if on {
                return Err(ConfigError::new(
                    flag,
                    format!(
                        "rollup-boost's {what} is not in this switchyard yet; running without it \
                         would differ silently, so switchyard stops instead"
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// How a flag corresponds to rollup-boost's.
#[derive(Clone, Copy, Debug)]
pub struct PeerFlag {
    /// switchyard's long name, without `--`.
    pub flag: &'static str,
    /// The rollup-boost v0.7 flag it answers to (`""`: switchyard's own).
    pub rollup_boost: &'static str,
    /// What a bare value is read as (`""`: not a quantity).
    pub unit: &'static str,
}

const fn row(flag: &'static str, rollup_boost: &'static str, unit: &'static str) -> PeerFlag {
    PeerFlag {
        flag,
        rollup_boost,
        unit,
    }
}

const MS: &str = "ms (or 500ms, 2s)";
const SECONDS: &str = "s (or 500ms, 2s)";
const URL: &str = "URL; no scheme: http://";

/// Each flag that has a rollup-boost counterpart or a unit.
pub const PEER_FLAGS: &[PeerFlag] = &[
    row("l2-url", "--l2-url", URL),
    row("l2-jwt-path", "--l2-jwt-path", ""),
    row("l2-jwt-token", "--l2-jwt-token", ""),
    row("l2-timeout", "--l2-timeout", MS),
    row("builder-url", "--builder-url", URL),
    row("builder-jwt-path", "--builder-jwt-path", ""),
    row("builder-jwt-token", "--builder-jwt-token", ""),
    row("builder-timeout", "--builder-timeout", MS),
    row("payload-deadline", "", MS),
    row("selection-policy", "--block-selection-policy", ""),
    row("execution-mode", "--execution-mode", ""),
    row("max-builder-payload-size", "", "bytes (or KiB, MiB)"),
    row("health-check-interval", "--health-check-interval", SECONDS),
    row("debug-host", "--debug-host", ""),
    row("debug-server-port", "--debug-server-port", ""),
    row("metrics", "--metrics", ""),
    row("metrics-host", "--metrics-host", ""),
    row("metrics-port", "--metrics-port", ""),
    row("max-unsafe-interval", "--max-unsafe-interval", SECONDS),
    row("rpc-host", "--rpc-host", ""),
    row("rpc-port", "--rpc-port", ""),
    row("max-request-size", "", "bytes (or KiB, MiB)"),
    row("header-read-timeout", "", MS),
    row("body-read-timeout", "", MS),
    row("shutdown-timeout", "", MS),
    row("log-level", "--log-level", ""),
    row("log-format", "--log-format", ""),
    row("block-selection-policy", "--block-selection-policy", ""),
    row(
        "ignore-unhealthy-builders",
        "--ignore-unhealthy-builders",
        "",
    ),
    row("log-file", "--log-file", ""),
    row("tracing", "--tracing", ""),
    row("otlp-endpoint", "--otlp-endpoint", URL),
    row("otlp-protocol", "", ""),
    row("otlp-queue", "", "spans"),
    row("external-state-root", "--external-state-root", ""),
    row("flashblocks", "--flashblocks", ""),
    row(
        "flashblocks-builder-url",
        "--flashblocks-builder-url",
        "ws:// or wss:// URL",
    ),
    row("flashblocks-host", "--flashblocks-host", ""),
    row("flashblocks-port", "--flashblocks-port", ""),
    row(
        "flashblock-builder-ws-initial-reconnect-ms",
        "--flashblock-builder-ws-initial-reconnect-ms",
        MS,
    ),
    row(
        "flashblock-builder-ws-max-reconnect-ms",
        "--flashblock-builder-ws-max-reconnect-ms",
        MS,
    ),
    row(
        "flashblock-builder-ws-connect-timeout-ms",
        "--flashblock-builder-ws-connect-timeout-ms",
        MS,
    ),
    row(
        "flashblock-builder-ws-ping-interval-ms",
        "--flashblock-builder-ws-ping-interval-ms",
        MS,
    ),
    row(
        "flashblock-builder-ws-pong-timeout-ms",
        "--flashblock-builder-ws-pong-timeout-ms",
        MS,
    ),
    row("flashblocks-p2p", "--flashblocks-p2p", ""),
    row(
        "flashblocks-authorizer-sk",
        "--flashblocks-authorizer-sk",
        "",
    ),
    row("flashblocks-builder-vk", "--flashblocks-builder-vk", ""),
];

/// The row for a flag, if it has one.
pub fn peer_flag(flag: &str) -> Option<&'static PeerFlag> {
    PEER_FLAGS.iter().find(|row| row.flag == flag)
}

/// Reads `.env` from the working directory (or the nearest directory above it that has one), as
/// rollup-boost does with dotenvy; variables already in the environment win.
///
/// # Errors
///
/// A `.env` that exists but cannot be read or parsed: rollup-boost ignores it, and the operator's
/// settings would then silently not apply.
pub fn load_dotenv() -> Result<Option<PathBuf>, String> {
    match dotenvy::dotenv() {
        Ok(path) => Ok(Some(path)),
        Err(error) if error.not_found() => Ok(None),
        Err(error) => Err(format!(".env: {error}")),
    }
}
