//! Metrics of the payload-selection concern.

use std::sync::{Arc, OnceLock};

use metrics::{Counter, Histogram};

use super::{Decision, Source};
use crate::builder::ExecutionMode;

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

/// The stages of a builder's path, in [`Stages`](super::Stages) order.
const STAGES: [&str; 4] = ["fcu_wait", "get_payload", "checks", "new_payload"];

/// Metric handles of decisions, each made on first use (as `Measure` keeps its own): a
/// getPayload records up to seven series, and a labelled key costs an allocation and a registry
/// lookup per call, on the path op-node waits on. The labels are closed sets (the builders are
/// known when the layer is built), so the handles sit in tables.
#[derive(Debug)]
pub(super) struct Handles {
    builders: Vec<BuilderHandles>,
    /// `source="local"` and `source="none"` (builder `none`), by mode.
    decisions: [[OnceLock<Counter>; 3]; 2],
    /// By source: local, builder, none.
    totals: [OnceLock<Histogram>; 3],
    headroom: OnceLock<Histogram>,
}

#[derive(Debug)]
struct BuilderHandles {
    name: Arc<str>,
    /// `source="builder"` for this builder, by mode.
    decisions: [OnceLock<Counter>; 3],
    stages: [OnceLock<Histogram>; STAGES.len()],
}

fn mode_index(mode: ExecutionMode) -> usize {
    match mode {
        ExecutionMode::Enabled => 0,
        ExecutionMode::DryRun => 1,
        ExecutionMode::Disabled => 2,
    }
}

fn decisions_counter(source: &'static str, builder: &str, mode: ExecutionMode) -> Counter {
    metrics::counter!(
        DECISIONS,
        "source" => source,
        "builder" => builder.to_owned(),
        "mode" => mode.as_str()
    )
}

impl Handles {
    pub(super) fn new<'a>(builders: impl IntoIterator<Item = &'a Arc<str>>) -> Self {
        Self {
            builders: builders
                .into_iter()
                .map(|name| BuilderHandles {
                    name: name.clone(),
                    decisions: Default::default(),
                    stages: Default::default(),
                })
                .collect(),
            decisions: Default::default(),
            totals: Default::default(),
            headroom: OnceLock::new(),
        }
    }

    fn builder(&self, name: &str) -> Option<&BuilderHandles> {
        self.builders.iter().find(|b| &*b.name == name)
    }

    pub(super) fn record(&self, decision: &Decision) {
        let mode = decision.mode;
        let source = decision.source.label();
        let decisions = match &decision.source {
            Source::Builder(name) => self.builder(name).map(|b| &b.decisions[mode_index(mode)]),
            Source::Local => Some(&self.decisions[0][mode_index(mode)]),
            Source::None => Some(&self.decisions[1][mode_index(mode)]),
        };
        let winner = decision.winner().unwrap_or("none");
        match decisions {
            Some(handle) => handle
                .get_or_init(|| decisions_counter(source, winner, mode))
                .increment(1),
            None => decisions_counter(source, winner, mode).increment(1),
        }
        for outcome in &decision.builders {
            if let Some(reason) = outcome.lost {
                metrics::counter!(LOST, "builder" => outcome.builder.to_string(), "reason" => reason)
                    .increment(1);
            }
            let handles = self.builder(&outcome.builder);
            let stages = [
                outcome.stages.fcu_wait,
                outcome.stages.get_payload,
                outcome.stages.checks,
                outcome.stages.new_payload,
            ];
            for (i, took) in stages.into_iter().enumerate() {
                let Some(took) = took else { continue };
                let stage = || metrics::histogram!(STAGE, "builder" => outcome.builder.to_string(), "stage" => STAGES[i]);
                match handles {
                    Some(handles) => handles.stages[i]
                        .get_or_init(stage)
                        .record(took.as_secs_f64()),
                    None => stage().record(took.as_secs_f64()),
                }
            }
        }
        let total = match &decision.source {
            Source::Local => 0,
            Source::Builder(_) => 1,
            Source::None => 2,
        };
        self.totals[total]
            .get_or_init(|| metrics::histogram!(TOTAL, "source" => source))
            .record(decision.total.as_secs_f64());
        self.headroom
            .get_or_init(|| metrics::histogram!(HEADROOM))
            .record(decision.headroom.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use alloy_rpc_types_engine::PayloadId;
    use metrics_exporter_prometheus::PrometheusBuilder;

    use super::*;
    use crate::payload_select::{BuilderOutcome, Stages};

    fn decision(source: Source, mode: ExecutionMode, builders: Vec<BuilderOutcome>) -> Decision {
        Decision {
            payload_id: PayloadId::new([1; 8]),
            version: 4,
            block_number: Some(1),
            mode,
            source,
            local_lost: None,
            local_latency: None,
            builders,
            total: Duration::from_millis(3),
            headroom: Duration::from_millis(497),
            preconfirmations: None,
        }
    }

    fn outcome(builder: &str, lost: Option<&'static str>) -> BuilderOutcome {
        BuilderOutcome {
            flashblocks: None,
            external_root: false,
            builder: Arc::from(builder),
            lost,
            stages: Stages {
                fcu_wait: Some(Duration::from_micros(10)),
                get_payload: Some(Duration::from_micros(200)),
                checks: None,
                new_payload: Some(Duration::from_micros(300)),
            },
            gas_used: None,
            block_value: None,
        }
    }

    /// A line of the rendered page, as `name{labels} value`.
    fn has(page: &str, series: &str, value: &str) -> bool {
        page.lines().any(|line| line == format!("{series} {value}"))
    }

    #[test]
    fn cached_handles_record_what_the_macros_would() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let page = recorder.handle();
        let names = [Arc::<str>::from("alpha")];
        let handles = Handles::new(names.iter());
        metrics::with_local_recorder(&recorder, || {
            for _ in 0..2 {
                handles.record(&decision(
                    Source::Builder(Arc::from("alpha")),
                    ExecutionMode::Enabled,
                    vec![outcome("alpha", None)],
                ));
            }
            handles.record(&decision(
                Source::Local,
                ExecutionMode::DryRun,
                vec![outcome("alpha", Some("dry_run"))],
            ));
            // A builder the layer was not built with still counts (by the macros).
            handles.record(&decision(
                Source::Builder(Arc::from("beta")),
                ExecutionMode::Enabled,
                vec![outcome("beta", None)],
            ));
            handles.record(&decision(Source::None, ExecutionMode::Enabled, vec![]));
        });
        let page = page.render();
        for (series, value) in [
            (
                r#"switchyard_payload_decisions_total{source="builder",builder="alpha",mode="enabled"}"#,
                "2",
            ),
            (
                r#"switchyard_payload_decisions_total{source="local",builder="none",mode="dry-run"}"#,
                "1",
            ),
            (
                r#"switchyard_payload_decisions_total{source="builder",builder="beta",mode="enabled"}"#,
                "1",
            ),
            (
                r#"switchyard_payload_decisions_total{source="none",builder="none",mode="enabled"}"#,
                "1",
            ),
            (
                r#"switchyard_payload_candidates_lost_total{builder="alpha",reason="dry_run"}"#,
                "1",
            ),
            (
                r#"switchyard_payload_stage_seconds_count{builder="alpha",stage="get_payload"}"#,
                "3",
            ),
            (
                r#"switchyard_payload_stage_seconds_count{builder="beta",stage="new_payload"}"#,
                "1",
            ),
            (
                r#"switchyard_payload_total_seconds_count{source="builder"}"#,
                "3",
            ),
            (
                r#"switchyard_payload_total_seconds_count{source="local"}"#,
                "1",
            ),
            (
                r#"switchyard_payload_total_seconds_count{source="none"}"#,
                "1",
            ),
            ("switchyard_payload_deadline_headroom_seconds_count", "5"),
        ] {
            assert!(has(&page, series, value), "{series} {value} in\n{page}");
        }
        assert!(
            !page.contains(r#"stage="checks""#),
            "a stage not reached is not recorded"
        );
    }
}
