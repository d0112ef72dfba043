use std::{sync::Arc, time::Duration};

use tower::Layer;

use super::{Decision, DecisionSink, PayloadCheck, PayloadPolicy, PayloadSelect, SelectionPolicy};
use crate::{
    builder::{Builder, ModeSwitch},
    fcu_mux::PayloadJobs,
    rpc_method::DEFAULT_BODY_LIMIT,
};

/// Default deadline of one getPayload: 500 ms.
///
/// op-node seals a block 50 ms before its slot and the Engine API gives getPayload a 1 s
/// timeout; a decision within half of that never trips op-node's retry path, and delays a
/// block by at most a quarter of a 2 s slot. A builder needs one round trip and op-geth one
/// execution of the block in that time.
pub const DEFAULT_DEADLINE: Duration = Duration::from_millis(500);

/// Layer that answers getPayload with the best valid payload. See the [module docs](super).
#[derive(Clone)]
pub struct PayloadSelectLayer {
    pub(super) ctx: Arc<Ctx>,
}

#[derive(Clone)]
pub(super) struct Ctx {
    pub(super) builders: Arc<[Arc<Builder>]>,
    pub(super) jobs: Arc<PayloadJobs>,
    pub(super) mode: ModeSwitch,
    pub(super) deadline: Duration,
    pub(super) policy: Arc<dyn PayloadPolicy>,
    pub(super) max_payload_size: usize,
    pub(super) sinks: Vec<DecisionSink>,
    pub(super) payload_checks: Vec<PayloadCheck>,
    /// Big payloads fetched, decoded and hashed at once: no more than the cores that do it (or
    /// the builders, so that one getPayload never waits). More would finish no sooner and hold
    /// more megabytes.
    pub(super) heavy_checks: Arc<tokio::sync::Semaphore>,
    pub(super) metrics: Arc<super::metrics::Handles>,
    /// Closes the builders' streamed blocks for a payload id and hands over what they hold.
    pub(super) streamed: Option<SealStreamed>,
    /// op-geth rebuilds each builder block from its transactions (state root computed there).
    pub(super) external_state_root: bool,
}

/// What builders streamed for one block, at getPayload (see [`Streamed`]).
pub(super) type SealStreamed =
    Arc<dyn Fn(&alloy_rpc_types_engine::PayloadId) -> Streamed + Send + Sync>;

/// Builders' streamed blocks, sealed at getPayload.
#[derive(Default)]
pub(super) struct Streamed {
    /// Per builder (configuration order): the envelope of its accepted prefix, already checked
    /// against the job, and how many flashblocks made it.
    pub(super) blocks: Vec<Option<(Arc<crate::engine::Envelope>, usize)>>,
    /// The builder whose flashblocks were published, how many, and their transactions.
    pub(super) published: Option<(usize, usize, Arc<[alloy_primitives::Bytes]>)>,
}

impl std::fmt::Debug for PayloadSelectLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PayloadSelectLayer")
            .field("builders", &self.ctx.builders.len())
            .field("deadline", &self.ctx.deadline)
            .field("max_payload_size", &self.ctx.max_payload_size)
            .finish_non_exhaustive()
    }
}

impl PayloadSelectLayer {
    /// Selects among `builders`' payloads for the jobs in `jobs`, obeying `mode`, with the
    /// default deadline, [`SelectionPolicy::MostGas`] and a 32 MiB payload cap.
    pub fn new(builders: Vec<Arc<Builder>>, jobs: Arc<PayloadJobs>, mode: ModeSwitch) -> Self {
        Self {
            ctx: Arc::new(Ctx {
                jobs,
                mode,
                deadline: DEFAULT_DEADLINE,
                policy: Arc::new(SelectionPolicy::default()),
                max_payload_size: DEFAULT_BODY_LIMIT,
                sinks: Vec::new(),
                payload_checks: Vec::new(),
                heavy_checks: Arc::new(tokio::sync::Semaphore::new(
                    std::thread::available_parallelism()
                        .map_or(2, usize::from)
                        .max(builders.len()),
                )),
                metrics: Arc::new(super::metrics::Handles::new(
                    builders.iter().map(|builder| builder.name()),
                )),
                builders: builders.into(),
                streamed: None,
                external_state_root: false,
            }),
        }
    }

    fn ctx_mut(&mut self) -> &mut Ctx {
        Arc::make_mut(&mut self.ctx)
    }

    /// Sets the deadline of one getPayload.
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.ctx_mut().deadline = deadline;
        self
    }

    /// Sets the policy.
    pub fn with_policy(mut self, policy: impl PayloadPolicy) -> Self {
        self.ctx_mut().policy = Arc::new(policy);
        self
    }

    /// Sets the largest builder getPayload answer accepted, in bytes of JSON.
    pub fn with_max_payload_size(mut self, bytes: usize) -> Self {
        self.ctx_mut().max_payload_size = bytes;
        self
    }

    /// Adds a check of the operator's own that every builder payload must pass, after the
    /// built-in ones (e.g. refuse near-empty blocks): `check(builder, payload)` returning `false`
    /// makes the payload lose with reason `custom_check`. A check that panics costs only that
    /// builder's candidate (counted in `switchyard_panics_total{where="builder_payload"}`).
    pub fn with_payload_check(
        mut self,
        check: impl Fn(&str, &crate::engine::Envelope) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.ctx_mut().payload_checks.push(Arc::new(check));
        self
    }

    /// Serves getPayload from builders' flashblocks too: a builder that streamed its block
    /// offers the block its accepted flashblocks assemble (already checked against the job)
    /// for op-geth's validation first, and its getPayload answer if that fails. Once flashblocks
    /// were published for a block, a valid candidate holding every one of them, in order, wins
    /// over any other, whatever the policy (only `dry-run`, read per request, returns op-geth's).
    /// Each decision then says whether the preconfirmations were kept.
    #[cfg(feature = "flashblocks")]
    pub fn with_flashblocks(mut self, flashblocks: crate::flashblocks::Flashblocks) -> Self {
        self.ctx_mut().streamed = Some(Arc::new(move |id| {
            let sealed = flashblocks.seal(id);
            Streamed {
                blocks: sealed
                    .blocks
                    .into_iter()
                    .map(|b| b.map(|b| (b.envelope, b.flashblocks)))
                    .collect(),
                published: sealed
                    .published
                    .map(|p| (p.builder, p.flashblocks, p.transactions)),
            }
        }));
        self.on_decision(crate::flashblocks::record_preconfirmations)
    }

    /// Has op-geth compute each builder block's state root (rollup-boost's
    /// `--external-state-root`, for builders that leave it zero to save time): a builder payload
    /// that passed its checks is not sent to op-geth's `engine_newPayload`; instead op-geth
    /// builds that very block itself (a forkchoice update with op-node's attributes, the builder's
    /// transactions in the builder's order and `noTxPool`, on the same head: op-node's own job
    /// and op-geth's head are not touched), and that block, once it passes every attribute check
    /// and holds exactly the builder's transactions, is the builder's candidate, marked
    /// `external_root`. Any failure costs that candidate only (reasons `external_root_*`).
    pub fn with_external_state_root(mut self, on: bool) -> Self {
        self.ctx_mut().external_state_root = on;
        self
    }

    /// Tells `sink` of every decision.
    pub fn on_decision(mut self, sink: impl Fn(&Decision) + Send + Sync + 'static) -> Self {
        self.ctx_mut().sinks.push(Arc::new(sink));
        self
    }
}

impl<S> Layer<S> for PayloadSelectLayer {
    type Service = PayloadSelect<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PayloadSelect {
            inner,
            ctx: self.ctx.clone(),
        }
    }
}
