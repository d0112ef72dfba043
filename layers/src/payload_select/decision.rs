//! The record of one getPayload decision: what was chosen, from whom, and why the others lost.

use std::{fmt::Write as _, sync::Arc, time::Duration};

use alloy_primitives::U256;
use alloy_rpc_types_engine::PayloadId;

use crate::builder::ExecutionMode;

/// Where the returned payload came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// op-geth built it.
    Local,
    /// This builder built it.
    Builder(Arc<str>),
    /// Nothing could be returned: op-geth failed and no builder payload validated.
    None,
}

impl Source {
    /// `local`, `builder` or `none`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Builder(_) => "builder",
            Self::None => "none",
        }
    }
}

/// How long each stage of one builder's path took (absent: not reached).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stages {
    /// Waiting for the builder's forkchoice answer (its payload id).
    pub fcu_wait: Option<Duration>,
    /// The builder's getPayload.
    pub get_payload: Option<Duration>,
    /// Parsing and checking the payload against the attributes.
    pub checks: Option<Duration>,
    /// op-geth's newPayload validation.
    pub new_payload: Option<Duration>,
}

/// What became of one builder's payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuilderOutcome {
    /// The builder.
    pub builder: Arc<str>,
    /// `None` if its payload won; otherwise why it lost (a fixed label: `unsynced`,
    /// `fcu_syncing`, `timeout`, `block_hash`, `fee_recipient`, `invalid`, `deadline`,
    /// `policy`, `dry_run`, `circuit_open`, ...).
    pub lost: Option<&'static str>,
    /// Stage latencies.
    pub stages: Stages,
    /// Gas used, if its payload was read.
    pub gas_used: Option<u64>,
    /// Block value, if its payload was read.
    pub block_value: Option<U256>,
    /// How many of its flashblocks made the payload it offered, if it offered the block its
    /// flashblocks assembled (rather than its getPayload answer).
    pub flashblocks: Option<usize>,
    /// Its block as op-geth rebuilt it from its transactions (`with_external_state_root`).
    pub external_root: bool,
}

/// One getPayload decision. See the [module docs](super).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// op-geth's payload id, as op-node asked.
    pub payload_id: PayloadId,
    /// The getPayload version.
    pub version: u8,
    /// The block number, when known.
    pub block_number: Option<u64>,
    /// The mode the decision was made in.
    pub mode: ExecutionMode,
    /// Where the returned payload came from.
    pub source: Source,
    /// Why op-geth's payload was not returned, if it was not (`policy`), or why it could not be
    /// (`error`).
    pub local_lost: Option<&'static str>,
    /// How long op-geth's getPayload took (`None` if it failed).
    pub local_latency: Option<Duration>,
    /// Each builder, in configuration order.
    pub builders: Vec<BuilderOutcome>,
    /// From the call to the answer.
    pub total: Duration,
    /// The deadline minus `total` (zero when it expired).
    pub headroom: Duration,
    /// Flashblocks published for this block, and whether the returned block kept them.
    pub preconfirmations: Option<Preconfirmations>,
}

/// Flashblocks published for one block as preconfirmations, and whether they were kept: whether
/// the returned block holds every one of them, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preconfirmations {
    /// The builder whose flashblocks were published.
    pub builder: Arc<str>,
    /// How many were published.
    pub flashblocks: usize,
    /// `None`: kept. Otherwise why they were broken: the loss of the block they assembled
    /// (`invalid`, `deadline`, `number`, ...), `not_contained` (another builder's block won),
    /// or `dry_run`.
    pub broken: Option<&'static str>,
}

impl Preconfirmations {
    /// `kept` or `broken`.
    pub fn outcome(&self) -> &'static str {
        if self.broken.is_some() {
            "broken"
        } else {
            "kept"
        }
    }
}

impl Decision {
    /// `builder-a=won builder-b=fee_recipient`, for the log line.
    pub fn outcomes(&self) -> String {
        let mut out = String::new();
        for (i, b) in self.builders.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            let _ = write!(out, "{}={}", b.builder, b.lost.unwrap_or("won"));
        }
        out
    }

    /// The winning builder's name, if a builder won.
    pub fn winner(&self) -> Option<&str> {
        match &self.source {
            Source::Builder(name) => Some(name),
            _ => None,
        }
    }
}

/// Something told of every decision (metrics, tests, an admin view).
pub type DecisionSink = Arc<dyn Fn(&Decision) + Send + Sync>;
