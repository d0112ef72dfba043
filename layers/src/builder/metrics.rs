//! Metrics of the builder concern.

use bytes::Bytes;

use super::{BuilderError, ExecutionMode, HealthState};

pub(crate) const QUEUE_DEPTH: &str = "switchyard_builder_queue_depth";
pub(crate) const QUEUE_DROPPED: &str = "switchyard_builder_queue_dropped_total";
pub(crate) const LANE_CALLS: &str = "switchyard_builder_lane_calls_total";
pub(crate) const SYNCED: &str = "switchyard_builder_synced";
pub(crate) const HEALTH_STATE: &str = "switchyard_builder_health_state";
pub(crate) const HEAD_LAG: &str = "switchyard_builder_head_lag_blocks";
pub(crate) const CIRCUIT_OPEN: &str = "switchyard_builder_circuit_open";
pub(crate) const EXECUTION_MODE: &str = "switchyard_execution_mode";

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
}

pub(super) fn queue_depth(builder: &str, lane: &'static str, depth: usize) {
    metrics::gauge!(QUEUE_DEPTH, "builder" => builder.to_owned(), "lane" => lane).set(depth as f64);
}

pub(super) fn dropped(builder: &str, lane: &'static str) {
    metrics::counter!(QUEUE_DROPPED, "builder" => builder.to_owned(), "lane" => lane).increment(1);
}

pub(super) fn lane_call(
    builder: &str,
    lane: &'static str,
    method: &str,
    result: &Result<Bytes, BuilderError>,
) {
    let kind = match crate::engine::EngineMethod::parse(method) {
        Some(crate::engine::EngineMethod::NewPayload(_)) => "new_payload",
        Some(crate::engine::EngineMethod::ForkchoiceUpdated(_)) => "forkchoice",
        Some(crate::engine::EngineMethod::GetPayload(_)) => "get_payload",
        None if method.starts_with("eth_sendRawTransaction") => "transaction",
        None if method.starts_with("miner_") => "miner_setting",
        None => "other",
    };
    let outcome = match result {
        Ok(_) => "ok",
        Err(e) => e.label(),
    };
    metrics::counter!(LANE_CALLS, "builder" => builder.to_owned(), "lane" => lane, "kind" => kind, "outcome" => outcome)
        .increment(1);
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
