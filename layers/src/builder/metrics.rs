//! Metrics of the builder concern.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use metrics::{Counter, Gauge};

use super::{BuilderError, ExecutionMode, HealthState};

pub(crate) const QUEUE_DEPTH: &str = "switchyard_builder_queue_depth";
pub(crate) const QUEUE_DROPPED: &str = "switchyard_builder_queue_dropped_total";
pub(crate) const LANE_CALLS: &str = "switchyard_builder_lane_calls_total";
pub(crate) const SYNCED: &str = "switchyard_builder_synced";
pub(crate) const HEALTH_STATE: &str = "switchyard_builder_health_state";
pub(crate) const HEAD_LAG: &str = "switchyard_builder_head_lag_blocks";
pub(crate) const CIRCUIT_OPEN: &str = "switchyard_builder_circuit_open";
pub(crate) const EXECUTION_MODE: &str = "switchyard_execution_mode";
pub(crate) const TX_HELD: &str = "switchyard_builder_transactions_held_total";
pub(crate) const TX_HELD_DROPPED: &str = "switchyard_builder_transactions_held_dropped_total";

/// Registers the descriptions of this concern's metrics with the installed recorder.
pub fn describe() {
    metrics::describe_gauge!(
        QUEUE_DEPTH,
        "Calls waiting in a builder's lane (lane: engine or transactions)"
    );
    metrics::describe_counter!(
        QUEUE_DROPPED,
        "Calls dropped because a builder's lane was full"
    );
    metrics::describe_counter!(
        LANE_CALLS,
        "Calls a lane made to a builder, by kind (new_payload, forkchoice, forkchoice_attributes, transaction) and outcome"
    );
    metrics::describe_gauge!(
        SYNCED,
        "1 if the builder is synced (gets forkchoice updates with attributes), else 0"
    );
    metrics::describe_gauge!(
        HEALTH_STATE,
        "1 for the builder's current health state (synced, syncing, behind, unreachable, failing)"
    );
    metrics::describe_gauge!(
        HEAD_LAG,
        "How many blocks the builder's head is behind op-geth's, at the last poll"
    );
    metrics::describe_gauge!(
        CIRCUIT_OPEN,
        "1 while the builder's circuit breaker is open (the builder runs dry)"
    );
    metrics::describe_counter!(
        TX_HELD,
        "Mirrored transactions held for a builder that was not synced, to be sent in order once it is"
    );
    metrics::describe_counter!(
        TX_HELD_DROPPED,
        "Mirrored transactions dropped because a builder's backlog (while not synced) was full"
    );
    metrics::describe_gauge!(
        EXECUTION_MODE,
        "1 for the current execution mode (enabled, dry-run, disabled)"
    );
}

/// Registers a builder's series at zero, so dashboards see zero rather than nothing.
pub(super) fn register(builder: &str) {
    for lane in ["engine", "transactions"] {
        metrics::counter!(QUEUE_DROPPED, "builder" => builder.to_owned(), "lane" => lane)
            .increment(0);
        metrics::gauge!(QUEUE_DEPTH, "builder" => builder.to_owned(), "lane" => lane).set(0.0);
    }
    metrics::gauge!(CIRCUIT_OPEN, "builder" => builder.to_owned()).set(0.0);
    metrics::gauge!(HEAD_LAG, "builder" => builder.to_owned()).set(0.0);
    metrics::counter!(TX_HELD, "builder" => builder.to_owned()).increment(0);
    metrics::counter!(TX_HELD_DROPPED, "builder" => builder.to_owned()).increment(0);
}

pub(super) fn transaction_held(builder: &str) {
    metrics::counter!(TX_HELD, "builder" => builder.to_owned()).increment(1);
}

pub(super) fn transaction_held_dropped(builder: &str) {
    metrics::counter!(TX_HELD_DROPPED, "builder" => builder.to_owned()).increment(1);
}

/// The `kind` label of a lane call.
const KINDS: [&str; 6] = [
    "new_payload",
    "forkchoice",
    "get_payload",
    "transaction",
    "miner_setting",
    "other",
];

fn kind_index(method: &str) -> usize {
    match crate::engine::EngineMethod::parse(method) {
        Some(crate::engine::EngineMethod::NewPayload(_)) => 0,
        Some(crate::engine::EngineMethod::ForkchoiceUpdated(_)) => 1,
        Some(crate::engine::EngineMethod::GetPayload(_)) => 2,
        None if method.starts_with("eth_sendRawTransaction") => 3,
        None if method.starts_with("miner_") => 4,
        None => 5,
    }
}

/// One lane's series, each labelled once, on first use: every relayed call updates the depth
/// and counts its outcome, and a labelled key costs an allocation and a registry lookup.
#[derive(Debug)]
pub(super) struct LaneMetrics {
    builder: Arc<str>,
    lane: &'static str,
    depth: OnceLock<Gauge>,
    dropped: OnceLock<Counter>,
    /// Successful calls by kind; failures are rare enough to be labelled as they come.
    ok: [OnceLock<Counter>; KINDS.len()],
}

impl LaneMetrics {
    pub(super) fn new(builder: Arc<str>, lane: &'static str) -> Self {
        Self {
            builder,
            lane,
            depth: OnceLock::new(),
            dropped: OnceLock::new(),
            ok: Default::default(),
        }
    }

    pub(super) fn depth(&self, depth: usize) {
        self.depth
            .get_or_init(|| metrics::gauge!(QUEUE_DEPTH, "builder" => self.builder.to_string(), "lane" => self.lane))
            .set(depth as f64);
    }

    pub(super) fn dropped(&self) {
        self.dropped
            .get_or_init(|| metrics::counter!(QUEUE_DROPPED, "builder" => self.builder.to_string(), "lane" => self.lane))
            .increment(1);
    }

    pub(super) fn call(&self, method: &str, result: &Result<Bytes, BuilderError>) {
        let kind = kind_index(method);
        let counter = |outcome: &'static str| metrics::counter!(LANE_CALLS, "builder" => self.builder.to_string(), "lane" => self.lane, "kind" => KINDS[kind], "outcome" => outcome);
        match result {
            Ok(_) => self.ok[kind].get_or_init(|| counter("ok")).increment(1),
            Err(error) => counter(error.label()).increment(1),
        }
    }
}

pub(super) fn synced(builder: &str, state: HealthState) {
    metrics::gauge!(SYNCED, "builder" => builder.to_owned()).set(if state == HealthState::Synced {
        1.0
    } else {
        0.0
    });
    for label in [
        "synced",
        "syncing",
        "behind",
        "unreachable",
        "tls",
        "failing",
    ] {
        let value = if state.label() == label { 1.0 } else { 0.0 };
        metrics::gauge!(HEALTH_STATE, "builder" => builder.to_owned(), "state" => label).set(value);
    }
}

pub(super) fn head_lag(builder: &str, lag: u64) {
    metrics::gauge!(HEAD_LAG, "builder" => builder.to_owned()).set(lag as f64);
}

pub(crate) fn circuit(builder: &str, open: bool) {
    metrics::gauge!(CIRCUIT_OPEN, "builder" => builder.to_owned()).set(if open {
        1.0
    } else {
        0.0
    });
}

pub(super) fn mode(mode: ExecutionMode) {
    for each in ExecutionMode::ALL {
        metrics::gauge!(EXECUTION_MODE, "mode" => each.as_str()).set(if each == mode {
            1.0
        } else {
            0.0
        });
    }
}
