//! Metrics of the payload-selection concern.

use super::Decision;

pub(crate) const DECISIONS: &str = "switchyard_payload_decisions_total";
pub(crate) const LOST: &str = "switchyard_payload_candidates_lost_total";
pub(crate) const STAGE: &str = "switchyard_payload_stage_seconds";
pub(crate) const TOTAL: &str = "switchyard_payload_total_seconds";
pub(crate) const HEADROOM: &str = "switchyard_payload_deadline_headroom_seconds";

/// Registers the descriptions of this concern's metrics with the installed recorder.
pub fn describe() {
    metrics::describe_counter!(
        DECISIONS,
        "getPayload answers by source (local, builder, none), builder and mode"
    );
    metrics::describe_counter!(
        LOST,
        "Builder payloads that were not returned, by builder and reason (unsynced, timeout, block_hash, invalid, deadline, policy, dry_run, ...)"
    );
    metrics::describe_histogram!(
        STAGE,
        metrics::Unit::Seconds,
        "Latency of each stage of a builder's path (fcu_wait, get_payload, checks, new_payload), by builder"
    );
    metrics::describe_histogram!(
        TOTAL,
        metrics::Unit::Seconds,
        "Time from getPayload to the answer, by source"
    );
    metrics::describe_histogram!(
        HEADROOM,
        metrics::Unit::Seconds,
        "Time left before the payload deadline when answering"
    );
}

pub(super) fn record(decision: &Decision) {
    let builder = decision.winner().unwrap_or("none").to_owned();
    metrics::counter!(
        DECISIONS,
        "source" => decision.source.label(),
        "builder" => builder,
        "mode" => decision.mode.as_str()
    )
    .increment(1);
    for outcome in &decision.builders {
        if let Some(reason) = outcome.lost {
            metrics::counter!(LOST, "builder" => outcome.builder.to_string(), "reason" => reason)
                .increment(1);
        }
        let stages = [
            ("fcu_wait", outcome.stages.fcu_wait),
            ("get_payload", outcome.stages.get_payload),
            ("checks", outcome.stages.checks),
            ("new_payload", outcome.stages.new_payload),
        ];
        for (stage, took) in stages {
            if let Some(took) = took {
                metrics::histogram!(STAGE, "builder" => outcome.builder.to_string(), "stage" => stage)
                    .record(took.as_secs_f64());
            }
        }
    }
    metrics::histogram!(TOTAL, "source" => decision.source.label())
        .record(decision.total.as_secs_f64());
    metrics::histogram!(HEADROOM).record(decision.headroom.as_secs_f64());
}
