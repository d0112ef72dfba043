use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use serde::Deserialize;

use super::{Builder, BuilderClient, BuilderError, metrics};
use crate::engine::EngineMethod;

/// What is known of a builder's sync state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HealthState {
    /// At the tip: it gets forkchoice updates with attributes.
    Synced,
    /// It answered `SYNCING` (or `ACCEPTED`).
    Syncing,
    /// Its head is this many blocks behind op-geth's.
    Behind(u64),
    /// It could not be reached or did not answer in time.
    Unreachable,
    /// TLS failed: its certificate was refused, or it refused ours.
    Tls,
    /// It answered with errors or called op-node's blocks invalid.
    Failing,
}

impl HealthState {
    /// A short, fixed label for metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            Self::Synced => "synced",
            Self::Syncing => "syncing",
            Self::Behind(_) => "behind",
            Self::Unreachable => "unreachable",
            Self::Tls => "tls",
            Self::Failing => "failing",
        }
    }

    /// Why a builder in this state was not asked to build: `skipped_<state>`.
    pub fn skip_reason(self) -> &'static str {
        match self {
            Self::Synced => "skipped_synced",
            Self::Syncing => "skipped_syncing",
            Self::Behind(_) => "skipped_behind",
            Self::Unreachable => "skipped_unreachable",
            Self::Tls => "skipped_tls",
            Self::Failing => "skipped_failing",
        }
    }

    fn pack(self) -> u64 {
        match self {
            Self::Synced => 0,
            Self::Syncing => 1,
            Self::Behind(n) => 2 | (n.min(u64::MAX >> 8) << 8),
            Self::Unreachable => 3,
            Self::Failing => 4,
            Self::Tls => 5,
        }
    }

    fn unpack(bits: u64) -> Self {
        match bits & 0xff {
            0 => Self::Synced,
            1 => Self::Syncing,
            2 => Self::Behind(bits >> 8),
            3 => Self::Unreachable,
            5 => Self::Tls,
            _ => Self::Failing,
        }
    }
}

/// A builder's health, updated from its answers and from [`poll_heads`].
/// See the [module docs](super).
#[derive(Clone, Debug)]
pub struct BuilderHealth {
    name: Arc<str>,
    // Starts synced: a builder that is not finds out on its first forkchoice update, while a
    // pessimistic start would cost every fresh start its first blocks.
    state: Arc<AtomicU64>,
    payload_failures: Arc<AtomicU64>,
    // When the last payload outcome was recorded: a node that stopped sequencing gets none.
    last_payload: Arc<std::sync::Mutex<Option<tokio::time::Instant>>>,
    // Set whenever it is found unreachable; taken when it is next seen synced.
    outage: Arc<AtomicBool>,
}

/// Payload failures in a row after which a synced builder counts as degraded for health.
pub const DEGRADED_AFTER: u64 = 3;

/// Head checks with no getPayload after which a run of payload failures is forgotten: the node
/// no longer sequences (a follower in an op-conductor cluster), and its health must then say what
/// it can see, op-geth and the builder's sync, not how the builder did when the node last led.
pub(super) const FORGET_FAILURES_AFTER: u32 = 5;

/// A payload status as the builder spelled it: read without allocating, since every relayed
/// answer is read for it. Not alloy's `PayloadStatus` (which payload selection reads): its
/// flattened status buffers the whole object first.
#[derive(Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum StatusKind {
    Valid,
    Syncing,
    Accepted,
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct Status {
    status: StatusKind,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Updated {
    payload_status: Status,
}

impl BuilderHealth {
    pub(super) fn new(name: Arc<str>) -> Self {
        metrics::synced(&name, HealthState::Synced);
        Self {
            name,
            state: Arc::new(AtomicU64::new(HealthState::Synced.pack())),
            payload_failures: Arc::new(AtomicU64::new(0)),
            last_payload: Arc::default(),
            outage: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Records whether the builder's payload for a block made it through (won, or lost only to
    /// the policy); a failure is one it caused (late, unreachable, invalid, ...).
    pub fn record_payload(&self, delivered: bool) {
        *self.last_payload.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(tokio::time::Instant::now());
        if delivered {
            self.payload_failures.store(0, Ordering::Relaxed);
        } else {
            self.payload_failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Whether the builder is synced but its recent payloads keep failing
    /// ([`DEGRADED_AFTER`] in a row).
    pub fn is_failing_payloads(&self) -> bool {
        self.payload_failures.load(Ordering::Relaxed) >= DEGRADED_AFTER
    }

    /// Forgets a run of payload failures when no payload outcome came for `quiet` ([`poll_heads`]
    /// passes five of its intervals).
    pub fn forget_failures_after(&self, quiet: Duration) {
        let last = *self.last_payload.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|at| at.elapsed() >= quiet)
            && self.payload_failures.swap(0, Ordering::Relaxed) >= DEGRADED_AFTER
        {
            tracing::info!(target: "switchyard::builder", builder = %self.name, "no getPayload lately: the builder's payload failures are forgotten");
        }
    }

    /// The current state.
    pub fn state(&self) -> HealthState {
        HealthState::unpack(self.state.load(Ordering::Relaxed))
    }

    /// Whether the builder may get forkchoice updates with attributes.
    pub fn is_synced(&self) -> bool {
        self.state() == HealthState::Synced
    }

    /// Records a new state; returns the one it replaces.
    pub fn set(&self, state: HealthState) -> HealthState {
        let previous = HealthState::unpack(self.state.swap(state.pack(), Ordering::Relaxed));
        // Every relayed answer lands here: the gauges (seven labelled series) only move with the
        // state.
        if previous.label() != state.label() {
            tracing::info!(target: "switchyard::builder", builder = %self.name, from = previous.label(), to = state.label(), "builder health changed");
            metrics::synced(&self.name, state);
        }
        if matches!(state, HealthState::Unreachable | HealthState::Tls) {
            self.outage.store(true, Ordering::Relaxed);
        }
        previous
    }

    /// Whether it was unreachable since the last call; clears the mark.
    pub(crate) fn take_outage(&self) -> bool {
        self.outage.swap(false, Ordering::Relaxed)
    }

    /// Learns from the builder's answer to an engine call.
    pub(crate) fn observe(&self, method: &str, result: &Result<Bytes, BuilderError>) {
        let status = match (EngineMethod::parse(method), result) {
            (_, Err(BuilderError::Transport(crate::ForwardError::Tls { .. }))) => {
                self.set(HealthState::Tls);
                return;
            }
            (_, Err(BuilderError::Transport(_))) => {
                self.set(HealthState::Unreachable);
                return;
            }
            (Some(_), Err(_)) => {
                self.set(HealthState::Failing);
                return;
            }
            (Some(EngineMethod::NewPayload(_)), Ok(body)) => {
                serde_json::from_slice::<Status>(body).map(|s| s.status)
            }
            (Some(EngineMethod::ForkchoiceUpdated(_)), Ok(body)) => {
                serde_json::from_slice::<Updated>(body).map(|u| u.payload_status.status)
            }
            _ => return,
        };
        self.set(match status {
            Ok(StatusKind::Valid) => HealthState::Synced,
            Ok(StatusKind::Syncing | StatusKind::Accepted) => HealthState::Syncing,
            Ok(StatusKind::Other) | Err(_) => HealthState::Failing,
        });
    }
}

fn block_number(result: &Bytes) -> Option<u64> {
    let text: String = serde_json::from_slice(result).ok()?;
    u64::from_str_radix(text.trim_start_matches("0x"), 16).ok()
}

/// Every `interval`, compares each builder's head (`eth_blockNumber`) with op-geth's: one more
/// than `max_lag` blocks behind is [`HealthState::Behind`], no answer
/// [`HealthState::Unreachable`], otherwise [`HealthState::Synced`]. A synced builder that may
/// have missed a `miner_*` setting gets them replayed. Runs until dropped.
pub async fn poll_heads(
    l2: BuilderClient,
    builders: Vec<Arc<Builder>>,
    interval: Duration,
    max_lag: u64,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(l2_head) = l2
            .call("eth_blockNumber", b"[]")
            .await
            .ok()
            .as_ref()
            .and_then(block_number)
        else {
            // Without op-geth's head there is nothing to compare against.
            continue;
        };
        for builder in &builders {
            let state = match builder.client().call("eth_blockNumber", b"[]").await {
                Err(BuilderError::Transport(crate::ForwardError::Tls { .. })) => HealthState::Tls,
                Err(BuilderError::Transport(_)) => HealthState::Unreachable,
                Err(_) => HealthState::Failing,
                Ok(result) => match block_number(&result) {
                    None => HealthState::Failing,
                    Some(head) => {
                        let lag = l2_head.saturating_sub(head);
                        metrics::head_lag(builder.name(), lag);
                        if lag > max_lag {
                            HealthState::Behind(lag)
                        } else {
                            HealthState::Synced
                        }
                    }
                },
            };
            builder.health().set(state);
            builder
                .health()
                .forget_failures_after(interval * FORGET_FAILURES_AFTER);
            if state == HealthState::Synced {
                // Back from an outage, it may have restarted with its own defaults.
                if builder.health().take_outage() {
                    builder.mark_settings_stale();
                }
                builder.replay_settings_if_stale();
                builder.send_held_transactions();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_failures_are_forgotten_once_getpayloads_stop() {
        let health = BuilderHealth::new("b".into());
        for _ in 0..DEGRADED_AFTER {
            health.record_payload(false);
        }
        assert!(health.is_failing_payloads());
        // Still sequencing: a getPayload within the window keeps the run.
        health.forget_failures_after(Duration::from_secs(60));
        assert!(health.is_failing_payloads());
        // None since: a follower says what it sees.
        health.forget_failures_after(Duration::ZERO);
        assert!(!health.is_failing_payloads());
    }

    #[test]
    fn each_payload_status_sets_the_state_it_means() {
        let health = BuilderHealth::new("b".into());
        let answer = |json: &'static str| Ok(Bytes::from_static(json.as_bytes()));
        let cases = [
            (
                r#"{"status":"SYNCING","latestValidHash":null}"#,
                HealthState::Syncing,
            ),
            (
                r#"{"status":"VALID","latestValidHash":"0x01"}"#,
                HealthState::Synced,
            ),
            (r#"{"status":"ACCEPTED"}"#, HealthState::Syncing),
            (
                r#"{"status":"INVALID","validationError":"bad"}"#,
                HealthState::Failing,
            ),
            (r#"{"status":"VALID"}"#, HealthState::Synced),
            (r#"{"status":7}"#, HealthState::Failing),
        ];
        for (status, state) in cases {
            health.observe("engine_newPayloadV4", &answer(status));
            assert_eq!(health.state(), state, "newPayload answered {status}");
        }
        for (status, state) in cases {
            let updated = format!(r#"{{"payloadStatus":{status},"payloadId":null}}"#);
            health.observe("engine_forkchoiceUpdatedV3", &Ok(Bytes::from(updated)));
            assert_eq!(health.state(), state, "forkchoice update answered {status}");
        }
    }

    #[test]
    fn the_health_gauges_follow_the_state() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        ::metrics::with_local_recorder(&recorder, || {
            let health = BuilderHealth::new("b".into());
            health.set(HealthState::Syncing);
            // The same state again (every relayed answer reports one) changes nothing.
            health.set(HealthState::Syncing);
        });
        let page = handle.render();
        for line in [
            r#"switchyard_builder_synced{builder="b"} 0"#,
            r#"switchyard_builder_health_state{builder="b",state="syncing"} 1"#,
            r#"switchyard_builder_health_state{builder="b",state="synced"} 0"#,
        ] {
            assert!(
                page.lines().any(|l| l == line),
                "{line} missing from:\n{page}"
            );
        }
    }
}
