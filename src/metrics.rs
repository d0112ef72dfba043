//! The Prometheus exporter, and the one place every metric is described.
//!
//! Every metric is named `switchyard_<concern>_<what>` and carries labels from closed sets only.
//! The catalogue (README, "Metrics") lists them all; `describe()` registers their help texts.

use std::{sync::Mutex, time::Duration};

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets, in seconds: loopback calls take well under a millisecond, a builder's
/// payload path up to the deadline (default 500 ms), op-geth's timeout a few seconds.
const LATENCY_BUCKETS: [f64; 16] = [
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5,
    5.0, 10.0,
];

const BUILD_INFO: &str = "switchyard_build_info";
const LOG_LINES_DROPPED: &str = "switchyard_log_lines_dropped_total";

/// Installs the process-wide Prometheus recorder (once) and returns its handle.
///
/// # Errors
///
/// If the exporter cannot be built.
pub fn install() -> Result<PrometheusHandle, BuildError> {
    // A lock, not a OnceLock: two runs in one process (tests, devnet) may start together, and
    // only one may install the global recorder.
    static HANDLE: Mutex<Option<PrometheusHandle>> = Mutex::new(None);
    let mut installed = HANDLE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(handle) = installed.as_ref() {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_BUCKETS)?
        .install_recorder()?;
    describe();
    ::metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    *installed = Some(handle.clone());
    Ok(handle)
}

/// Registers the description of every metric, concern by concern.
pub fn describe() {
    ::metrics::describe_gauge!(
        BUILD_INFO,
        "Always 1; the version label says which switchyard runs"
    );
    switchyard_layers::auth::describe();
    switchyard_layers::rpc_method::describe();
    switchyard_layers::measure::describe();
    switchyard_layers::builder::describe();
    switchyard_layers::payload_select::describe();
    switchyard_layers::panic::describe();
    switchyard_layers::flashblocks::describe();
    crate::health::describe();
    ::metrics::describe_counter!(
        LOG_LINES_DROPPED,
        "Log lines dropped because the log consumer fell behind (see src/log_writer.rs)"
    );
}

/// A log line was dropped: the writer thread's queue was full.
pub fn log_line_dropped() {
    ::metrics::counter!(LOG_LINES_DROPPED).increment(1);
}

/// Keeps the exporter's histograms drained; runs until dropped.
///
/// Each drain sorts every sample recorded since the last into buckets: at thousands of calls a
/// second, milliseconds of work, done on a blocking thread rather than the one serving op-node.
/// Every second: until drained, each sample is held in memory (at 40,000 calls a second, two
/// histograms each, five seconds of them were a tenth of the daemon's resident memory).
pub async fn upkeep(handle: PrometheusHandle) {
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    loop {
        ticks.tick().await;
        let handle = handle.clone();
        let _ = tokio::task::spawn_blocking(move || handle.run_upkeep()).await;
    }
}
