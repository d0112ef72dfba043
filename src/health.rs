//! Health: is op-geth there with a fresh head, and are the builders working?
//!
//! `/healthz` (on the RPC port, where op-conductor polls it, and on the metrics port) answers
//! 200 when op-geth is reachable with a head younger than `--max-unsafe-interval` and every
//! builder is synced and delivering; 206 when op-geth is fine but a builder is not (unsynced,
//! failing its payloads, or with its circuit breaker open); 503 when op-geth is unreachable, its
//! head is stale, or it has not been checked yet. Builders never degrade health unless the mode is
//! `enabled`: in `dry-run` and `disabled` modes they are not on the block's path, and a 206 there
//! could make op-conductor fail over for nothing. `/readyz` is 200 once op-geth has been seen
//! healthy; `/livez` is always 200.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde::Deserialize;
use serde_json::json;
use switchyard_layers::{
    builder::{BuilderClient, ExecutionMode},
    health::{Health, HealthReport},
};

use crate::stack::Parts;

const L2_UP: &str = "switchyard_l2_up";
const L2_HEAD_AGE: &str = "switchyard_l2_head_age_seconds";
const HEALTH: &str = "switchyard_health_status";

/// Registers the descriptions of the health metrics.
pub fn describe() {
    ::metrics::describe_gauge!(L2_UP, "1 if op-geth answered the last head check, else 0");
    ::metrics::describe_gauge!(
        L2_HEAD_AGE,
        "Age of op-geth's latest block at the last check, in seconds"
    );
    ::metrics::describe_gauge!(
        HEALTH,
        "1 for the current /healthz verdict (healthy, degraded, unavailable)"
    );
}

/// What the last check of op-geth found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L2Status {
    /// Not checked yet.
    Unknown,
    /// Reachable; its head is this many seconds old.
    Up(u64),
    /// Reachable, but its head is this many seconds old: too old.
    Stale(u64),
    /// Unreachable or answering errors.
    Down,
}

/// The latest check of op-geth, shared with the health probe.
#[derive(Debug, Default)]
pub struct L2Monitor {
    // 0 unknown, 1 up, 2 stale, 3 down; the head age in the upper bits.
    state: AtomicU64,
}

impl L2Monitor {
    /// The latest finding.
    pub fn status(&self) -> L2Status {
        let bits = self.state.load(Ordering::Relaxed);
        match bits & 0xff {
            1 => L2Status::Up(bits >> 8),
            2 => L2Status::Stale(bits >> 8),
            3 => L2Status::Down,
            _ => L2Status::Unknown,
        }
    }

    fn set(&self, status: L2Status) {
        let bits = match status {
            L2Status::Unknown => 0,
            L2Status::Up(age) => 1 | (age.min(u64::MAX >> 8) << 8),
            L2Status::Stale(age) => 2 | (age.min(u64::MAX >> 8) << 8),
            L2Status::Down => 3,
        };
        let previous = self.status();
        self.state.store(bits, Ordering::Relaxed);
        let up = !matches!(status, L2Status::Down);
        ::metrics::gauge!(L2_UP).set(if up { 1.0 } else { 0.0 });
        if let L2Status::Up(age) | L2Status::Stale(age) = status {
            ::metrics::gauge!(L2_HEAD_AGE).set(age as f64);
        }
        let changed = std::mem::discriminant(&previous) != std::mem::discriminant(&status);
        if changed && !matches!(previous, L2Status::Unknown) {
            tracing::warn!(target: "switchyard::health", from = ?previous, to = ?status, "op-geth health changed");
        }
    }
}

#[derive(Deserialize)]
struct Head {
    timestamp: String,
}

/// Every `interval`, reads op-geth's latest block and records how old it is; runs until dropped.
pub async fn watch_l2(
    l2: BuilderClient,
    monitor: Arc<L2Monitor>,
    interval: Duration,
    max_age: Duration,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let head = l2
            .call("eth_getBlockByNumber", br#"["latest",false]"#)
            .await
            .ok()
            .and_then(|raw| serde_json::from_slice::<Head>(&raw).ok())
            .and_then(|head| u64::from_str_radix(head.timestamp.trim_start_matches("0x"), 16).ok());
        let status = match head {
            None => L2Status::Down,
            Some(timestamp) => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let age = now.saturating_sub(timestamp);
                if age > max_age.as_secs() {
                    L2Status::Stale(age)
                } else {
                    L2Status::Up(age)
                }
            }
        };
        monitor.set(status);
    }
}

/// The `/healthz` verdict from op-geth's state and the builders'.
pub fn report(monitor: &L2Monitor, parts: &Parts) -> HealthReport {
    let l2 = monitor.status();
    let mode = parts.mode.get();
    let builders: Vec<_> = parts
        .builders
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let stream_down = parts.flashblocks.as_ref().is_some_and(|f| f.stream_down(i));
            let degraded = !b.health().is_synced()
                || b.health().is_failing_payloads()
                || b.breaker().is_open()
                || stream_down;
            (b, degraded, stream_down)
        })
        .collect();
    let health = match l2 {
        L2Status::Unknown | L2Status::Down | L2Status::Stale(_) => Health::Unavailable,
        L2Status::Up(_)
            if mode == ExecutionMode::Enabled && builders.iter().any(|(_, d, _)| *d) =>
        {
            Health::Degraded
        }
        L2Status::Up(_) => Health::Healthy,
    };
    for each in [Health::Healthy, Health::Degraded, Health::Unavailable] {
        ::metrics::gauge!(HEALTH, "status" => each.label()).set(if each == health {
            1.0
        } else {
            0.0
        });
    }
    let (l2_state, age) = match l2 {
        L2Status::Unknown => ("unknown", None),
        L2Status::Up(age) => ("up", Some(age)),
        L2Status::Stale(age) => ("stale", Some(age)),
        L2Status::Down => ("down", None),
    };
    let detail = json!({
        "l2": { "status": l2_state, "head_age_seconds": age },
        "mode": mode.as_str(),
        "builders": builders.iter().map(|(b, degraded, stream_down)| json!({
            "flashblocks_stream_down": stream_down,
            "name": b.name().as_ref(),
            "health": b.health().state().label(),
            "failing_payloads": b.health().is_failing_payloads(),
            "circuit_open": b.breaker().is_open(),
            "degraded": degraded,
        })).collect::<Vec<_>>(),
    });
    HealthReport {
        health,
        ready: matches!(l2, L2Status::Up(_)),
        detail,
    }
}
