//! Flashblocks: builders' partial blocks, taken over WebSocket, checked, re-published to
//! subscribers as preconfirmations, and served on getPayload.
//!
//! A flashblocks builder streams the block it is building as it grows: flashblock 0 carries the
//! block's fixed header fields (`base`) and the first transactions, each later one only what it
//! adds (`diff`) and the roots, gas and hash of the block so far. Every prefix is a complete
//! block.
//!
//! # Behaviour
//!
//! - **Inbound** ([`InboundConfig`]): one WebSocket client per builder, connected forever (ping
//!   liveness, capped exponential backoff with jitter), text frames of JSON or binary frames of
//!   brotli-compressed JSON, bounded in frame size and queue length.
//! - **Acceptance**: a flashblock counts only for the payload id the builder answered op-node's
//!   current forkchoice update with. Indexes are contiguous from 0; only 0 carries a base. Each
//!   prefix is assembled into a getPayload envelope and must pass every check a builder's
//!   payload meets (each attribute op-node fixed, the forced transactions as its exact first
//!   transactions, gas within the limit, the block hash recomputed), so a flashblock that could
//!   never be returned is never published. Flashblocks that arrive before the builder's payload
//!   id is known (its forkchoice answer still on the way) wait in a small buffer. Everything
//!   else is dropped and counted with its reason (`switchyard_flashblocks_dropped_total`), and
//!   logged once per block.
//! - **Publishing** ([`Publisher`]): one builder's accepted flashblocks per block go out, the
//!   first builder in configuration order that was asked to build it; never in `dry-run` or
//!   `disabled`, where switchyard will not return a builder's block. Two streams published side
//!   by side would promise two different blocks.
//! - **getPayload**: [`Flashblocks::seal`] closes the block (nothing is accepted for it after)
//!   and hands payload selection each builder's accepted prefix; a valid candidate that holds
//!   every published flashblock then wins over every other (see
//!   [`PayloadSelectLayer::with_flashblocks`](crate::payload_select::PayloadSelectLayer::with_flashblocks)).
//!
//! Only Ecotone and later blocks (getPayload V3 and up) stream flashblocks.
//!
//! # Example
//!
//! ```
//! use switchyard_layers::{
//!     PayloadSelectLayer,
//!     builder::ModeSwitch,
//!     fcu_mux::PayloadJobs,
//!     flashblocks::{AcceptConfig, Flashblocks, InboundConfig, PublishConfig, Publisher},
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let (jobs, mode) = (PayloadJobs::new(64), ModeSwitch::default());
//! let builders = Vec::new(); // each `Builder`, in configuration order
//! let flashblocks = Flashblocks::new(
//!     builders.clone(),
//!     jobs.clone(),
//!     mode.clone(),
//!     Publisher::new(PublishConfig::default()),
//!     AcceptConfig::default(),
//! );
//! // getPayload served from the builders' flashblocks (below the FcuMuxLayer filing `jobs`).
//! let _select = PayloadSelectLayer::new(builders, jobs, mode).with_flashblocks(flashblocks.clone());
//! // Subscribers connect here.
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
//! tokio::spawn(switchyard_layers::flashblocks::serve(
//!     listener,
//!     flashblocks.publisher().clone(),
//!     std::future::pending(),
//! ));
//! // Each streaming builder's WebSocket, by its index in `builders`:
//! let _stream = InboundConfig::new("ws://127.0.0.1:1111".parse().unwrap());
//! // flashblocks.spawn_stream(0, _stream);
//! # }
//! ```

mod block;
mod inbound;
mod message;
mod metrics;
mod publish;

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use alloy_primitives::Bytes as TxBytes;
use alloy_rpc_types_engine::PayloadId;
use tokio::sync::{mpsc, watch};

pub use block::Refusal;
pub use inbound::{InboundConfig, InboundError};
pub use message::{Flashblock, FrameError, compress, decompress};
pub use metrics::describe;
pub use publish::{Frame, PublishConfig, Publisher, serve};

use self::block::BlockInProgress;
use crate::{
    builder::{Builder, ExecutionMode, ModeSwitch},
    engine::Envelope,
    fcu_mux::{BuilderFcu, PayloadJob, PayloadJobs},
};

/// Limits of acceptance.
#[derive(Clone, Copy, Debug)]
pub struct AcceptConfig {
    /// Flashblocks in one block (the peer's builders send 5 to 10 a second).
    pub max_per_block: usize,
    /// Flashblocks waiting for their payload id to be known.
    pub pending: usize,
    /// Parsed flashblocks queued between a stream and its acceptance; more are a flood.
    pub queue: usize,
    /// Transaction bytes in one block (a block over it could never be returned either).
    pub max_block_bytes: usize,
    /// The builder (configuration index) whose flashblocks are published whenever it is asked
    /// to build the block; `None`: the first builder asked, in configuration order.
    pub publish_builder: Option<usize>,
}

impl Default for AcceptConfig {
    fn default() -> Self {
        Self {
            max_per_block: 256,
            pending: 64,
            queue: 256,
            max_block_bytes: crate::rpc_method::DEFAULT_BODY_LIMIT,
            publish_builder: None,
        }
    }
}

/// Bytes of flashblocks queued between a stream and its acceptance.
#[derive(Debug)]
pub(crate) struct ByteBudget {
    used: std::sync::atomic::AtomicUsize,
    limit: usize,
}

impl ByteBudget {
    fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            used: std::sync::atomic::AtomicUsize::new(0),
            limit,
        })
    }

    /// Takes `bytes` if they fit.
    pub(crate) fn take(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|total| *total <= self.limit)
            })
            .is_ok()
    }

    /// Gives `bytes` back.
    pub(crate) fn give(&self, bytes: usize) {
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                Some(used.saturating_sub(bytes))
            });
    }
}

/// Builder blocks whose transaction bytes are over this are checked off the event loop.
const INLINE_CHECK_BYTES: usize = 64 * 1024;

/// Payload ids of a builder's past blocks remembered, to tell a late flashblock from an early one.
const PAST_BLOCKS: usize = 8;

/// The flashblocks of every builder. See the [module docs](self).
#[derive(Clone)]
pub struct Flashblocks {
    shared: Arc<Shared>,
}

struct Shared {
    builders: Vec<Arc<Builder>>,
    blocks: Vec<Mutex<Option<BlockInProgress>>>,
    up: Vec<Arc<AtomicBool>>,
    streaming: Vec<AtomicBool>,
    publisher: Arc<Publisher>,
    /// The builder publishing for a job, chosen once per job.
    publishing: Mutex<Option<(PayloadId, Option<usize>)>>,
    jobs: Arc<PayloadJobs>,
    mode: ModeSwitch,
    config: AcceptConfig,
}

impl std::fmt::Debug for Flashblocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flashblocks")
            .field("builders", &self.shared.builders.len())
            .field("publisher", &self.shared.publisher)
            .finish_non_exhaustive()
    }
}

/// One builder's block at getPayload: the accepted prefix, sealed.
#[derive(Clone, Debug)]
pub struct SealedBlock {
    /// The prefix as a getPayload envelope, already checked against the job.
    pub envelope: Arc<Envelope>,
    /// Flashblocks in it.
    pub flashblocks: usize,
}

/// What getPayload finds: each builder's sealed block (configuration order), and what was
/// published for the block.
#[derive(Clone, Debug, Default)]
pub struct Sealed {
    /// Per builder.
    pub blocks: Vec<Option<SealedBlock>>,
    /// The publishing builder, the flashblocks published, and their transactions in order.
    pub published: Option<Published>,
}

/// What subscribers were promised for one block.
#[derive(Clone, Debug)]
pub struct Published {
    /// The builder whose flashblocks were published.
    pub builder: usize,
    /// How many.
    pub flashblocks: usize,
    /// Their transactions, in order: the returned block must begin with them.
    pub transactions: Arc<[TxBytes]>,
}

impl Flashblocks {
    /// Flashblocks for `builders` (configuration order), for the jobs filed in `jobs`, published
    /// by `publisher` while `mode` is `enabled`.
    pub fn new(
        builders: Vec<Arc<Builder>>,
        jobs: Arc<PayloadJobs>,
        mode: ModeSwitch,
        publisher: Arc<Publisher>,
        config: AcceptConfig,
    ) -> Self {
        let n = builders.len();
        Self {
            shared: Arc::new(Shared {
                blocks: (0..n).map(|_| Mutex::new(None)).collect(),
                up: (0..n).map(|_| Arc::new(AtomicBool::new(false))).collect(),
                streaming: (0..n).map(|_| AtomicBool::new(false)).collect(),
                builders,
                publisher,
                publishing: Mutex::new(None),
                jobs,
                mode,
                config,
            }),
        }
    }

    /// The outbound fan-out.
    pub fn publisher(&self) -> &Arc<Publisher> {
        &self.shared.publisher
    }

    /// Connects to builder `index`'s stream and accepts its flashblocks, until the runtime
    /// ends. Call inside a Tokio runtime, once per streaming builder.
    pub fn spawn_stream(&self, index: usize, config: InboundConfig) {
        let Some(builder) = self.shared.builders.get(index) else {
            return;
        };
        self.shared.streaming[index].store(true, Ordering::Relaxed);
        let (frames, queue) = mpsc::channel(self.shared.config.queue.max(1));
        // Two blocks' worth of bytes in flight at most, however the frames are sized.
        let budget = ByteBudget::new(self.shared.config.max_block_bytes.saturating_mul(2));
        tokio::spawn(inbound::run(
            config,
            builder.name().clone(),
            frames,
            budget.clone(),
            self.shared.up[index].clone(),
        ));
        tokio::spawn(accept_stream(
            self.shared.clone(),
            index,
            queue,
            Some(budget),
        ));
    }

    /// Feeds builder `index`'s flashblocks from `queue` instead of a WebSocket (another
    /// transport, or a test). Call inside a Tokio runtime.
    pub fn spawn_acceptance(&self, index: usize, queue: mpsc::Receiver<Flashblock>) {
        if index < self.shared.builders.len() {
            self.shared.streaming[index].store(true, Ordering::Relaxed);
            tokio::spawn(accept_stream(self.shared.clone(), index, queue, None));
        }
    }

    /// Whether builder `index` streams flashblocks and its stream is down: a builder fault.
    pub fn stream_down(&self, index: usize) -> bool {
        self.shared
            .streaming
            .get(index)
            .is_some_and(|s| s.load(Ordering::Relaxed))
            && !self.shared.up[index].load(Ordering::Relaxed)
    }

    /// Closes every builder's block for op-geth's payload `id` (nothing more is accepted or
    /// published for it) and returns what was accepted and published.
    pub fn seal(&self, id: &PayloadId) -> Sealed {
        let mut sealed = Sealed::default();
        for (index, block) in self.shared.blocks.iter().enumerate() {
            let mut block = lock(block);
            let entry = match block.as_mut() {
                Some(block) if block.op_geth_id == *id => {
                    block.sealed = true;
                    if block.published > 0 {
                        sealed.published = Some(Published {
                            builder: index,
                            flashblocks: block.published,
                            transactions: block.transactions()[..block.published_transactions]
                                .into(),
                        });
                    }
                    block.envelope.clone().map(|envelope| SealedBlock {
                        envelope,
                        flashblocks: block.accepted,
                    })
                }
                _ => None,
            };
            sealed.blocks.push(entry);
        }
        sealed
    }
}

/// Counts a decision's preconfirmation outcome (`switchyard_flashblocks_preconfirmations_total`).
pub fn record_preconfirmations(decision: &crate::payload_select::Decision) {
    if let Some(preconfirmations) = &decision.preconfirmations {
        metrics::preconfirmation(
            &preconfirmations.builder,
            preconfirmations.outcome(),
            preconfirmations.broken.unwrap_or("none"),
        );
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    /// The builder that publishes for job `id`: the configured one if it was asked to build it,
    /// else the first, in configuration order, asked to. Chosen once: a later change of anyone's
    /// state never makes a second publisher.
    fn publisher_for(&self, id: PayloadId, job: &PayloadJob) -> Option<usize> {
        let mut publishing = lock(&self.publishing);
        if let Some((known, choice)) = *publishing
            && known == id
        {
            return choice;
        }
        let asked =
            |b: &crate::fcu_mux::BuilderJob| !matches!(*b.fcu.borrow(), BuilderFcu::Failed(_));
        let choice = self
            .config
            .publish_builder
            .filter(|&i| job.builders.get(i).is_some_and(asked))
            .or_else(|| job.builders.iter().position(asked));
        *publishing = Some((id, choice));
        choice
    }
}

/// One builder's acceptance: its flashblocks against op-node's current job.
struct Acceptance {
    shared: Arc<Shared>,
    index: usize,
    name: Arc<str>,
    current: Option<(PayloadId, Arc<PayloadJob>)>,
    fcu: Option<watch::Receiver<BuilderFcu>>,
    pending: VecDeque<Flashblock>,
    /// Bytes of JSON in `pending`: bounded like a block.
    pending_bytes: usize,
    past: VecDeque<PayloadId>,
}

async fn accept_stream(
    shared: Arc<Shared>,
    index: usize,
    mut queue: mpsc::Receiver<Flashblock>,
    budget: Option<Arc<ByteBudget>>,
) {
    let mut jobs = shared.jobs.watch();
    let mut acceptance = Acceptance {
        name: shared.builders[index].name().clone(),
        shared,
        index,
        current: None,
        fcu: None,
        pending: VecDeque::new(),
        pending_bytes: 0,
        past: VecDeque::new(),
    };
    loop {
        tokio::select! {
            changed = jobs.changed() => {
                if changed.is_err() {
                    return;
                }
                let latest = jobs.borrow_and_update().clone();
                acceptance.new_job(latest).await;
            }
            answered = async {
                match acceptance.fcu.as_mut() {
                    Some(fcu) => fcu.changed().await.is_ok(),
                    None => std::future::pending().await,
                }
            } => {
                if !answered {
                    // The answer is final (its sender is gone): read it once more, then stop
                    // watching.
                    acceptance.open_if_building().await;
                    acceptance.fcu = None;
                } else {
                    acceptance.open_if_building().await;
                }
            }
            flashblock = queue.recv() => match flashblock {
                Some(flashblock) => {
                    if let Some(budget) = &budget {
                        budget.give(flashblock.json.len());
                    }
                    acceptance.take(flashblock).await
                }
                None => return,
            },
        }
    }
}

impl Acceptance {
    async fn new_job(&mut self, latest: Option<(PayloadId, Arc<PayloadJob>)>) {
        let Some((id, job)) = latest else { return };
        self.fcu = job.builders.get(self.index).map(|b| b.fcu.clone());
        self.current = Some((id, job));
        self.open_if_building().await;
    }

    /// Opens the builder's block for the current job once its payload id is known, and takes
    /// the flashblocks that waited for it.
    async fn open_if_building(&mut self) {
        let Some((id, job)) = self.current.clone() else {
            return;
        };
        let Some(builder_id) = self.fcu.as_ref().and_then(|fcu| match *fcu.borrow() {
            BuilderFcu::Building(builder_id) => Some(builder_id),
            _ => None,
        }) else {
            return;
        };
        {
            let mut block = lock(&self.shared.blocks[self.index]);
            if block.as_ref().is_some_and(|b| b.op_geth_id == id) {
                return;
            }
            if let Some(old) = block.as_ref() {
                // Published, never served: op-node moved on without asking for it.
                if old.published > 0 && !old.sealed {
                    metrics::preconfirmation(&self.name, "broken", "abandoned");
                    tracing::warn!(target: "switchyard::flashblocks", builder = %self.name, payload_id = %old.op_geth_id, flashblocks = old.published, "published flashblocks broken: op-node never asked for their block");
                }
                self.past.push_back(old.builder_id);
                if self.past.len() > PAST_BLOCKS {
                    self.past.pop_front();
                }
            }
            *block = Some(BlockInProgress::new(builder_id, id, job));
        }
        self.fcu = None;
        self.pending_bytes = 0;
        for flashblock in std::mem::take(&mut self.pending) {
            if flashblock.payload_id == builder_id {
                self.accept(flashblock).await;
            } else {
                self.drop_one("wrong_payload_id", &flashblock);
            }
        }
    }

    async fn take(&mut self, flashblock: Flashblock) {
        let ours = lock(&self.shared.blocks[self.index])
            .as_ref()
            .is_some_and(|b| b.builder_id == flashblock.payload_id);
        if ours {
            self.accept(flashblock).await;
        } else if self.past.contains(&flashblock.payload_id) {
            self.drop_one("stale", &flashblock);
        } else {
            // Its payload id may be the answer still on its way (or the next block's, filed a
            // moment from now): it waits, bounded.
            self.pending_bytes += flashblock.json.len();
            self.pending.push_back(flashblock);
            while self.pending.len() > self.shared.config.pending
                || self.pending_bytes > self.shared.config.max_block_bytes
            {
                let Some(oldest) = self.pending.pop_front() else {
                    break;
                };
                self.pending_bytes = self.pending_bytes.saturating_sub(oldest.json.len());
                self.drop_one("wrong_payload_id", &oldest);
            }
        }
    }

    fn drop_one(&self, reason: &'static str, flashblock: &Flashblock) {
        metrics::dropped(&self.name, reason);
        tracing::debug!(target: "switchyard::flashblocks", builder = %self.name, payload_id = %flashblock.payload_id, index = flashblock.index, reason, "flashblock dropped");
    }

    /// Refuses a flashblock of the open block: counted, logged once per block.
    fn refuse(&self, refusal: Refusal, flashblock: &Flashblock) {
        metrics::dropped(&self.name, refusal.label());
        let mut block = lock(&self.shared.blocks[self.index]);
        let first = block
            .as_mut()
            .is_some_and(|b| !std::mem::replace(&mut b.logged, true));
        drop(block);
        if first && refusal != Refusal::Sealed {
            tracing::warn!(target: "switchyard::flashblocks", builder = %self.name, payload_id = %flashblock.payload_id, index = flashblock.index, reason = refusal.label(), "flashblock refused; later ones of this block may be too");
        } else {
            tracing::debug!(target: "switchyard::flashblocks", builder = %self.name, index = flashblock.index, reason = refusal.label(), "flashblock refused");
        }
    }

    async fn accept(&mut self, flashblock: Flashblock) {
        let prepared = {
            let block = lock(&self.shared.blocks[self.index]);
            let Some(block) = block.as_ref() else { return };
            block
                .admits(&flashblock, self.shared.config.max_per_block)
                .map(|()| {
                    (
                        block.parts(),
                        block.job.clone(),
                        block.size_with(&flashblock),
                    )
                })
        };
        let prepared = prepared.and_then(|(parts, job, size)| {
            if size > self.shared.config.max_block_bytes {
                Err(Refusal::TooLarge)
            } else {
                Ok((parts, job, size <= INLINE_CHECK_BYTES))
            }
        });
        let (parts, job, small) = match prepared {
            Ok(prepared) => prepared,
            Err(refusal) => return self.refuse(refusal, &flashblock),
        };
        let flashblock = Arc::new(flashblock);
        let extension = if small {
            block::extend(parts, &flashblock, &job)
        } else {
            let checked = flashblock.clone();
            tokio::task::spawn_blocking(move || block::extend(parts, &checked, &job))
                .await
                .unwrap_or(Err(Refusal::Check("check_failed")))
        };
        let extension = match extension {
            Ok(extension) => extension,
            Err(refusal) => return self.refuse(refusal, &flashblock),
        };
        let mut guard = lock(&self.shared.blocks[self.index]);
        let Some(block) = guard
            .as_mut()
            .filter(|b| b.builder_id == flashblock.payload_id)
        else {
            return;
        };
        if let Err(refusal) = block.apply(extension) {
            drop(guard);
            return self.refuse(refusal, &flashblock);
        }
        metrics::accepted(&self.name);
        // Published under the block's lock: a seal sees every published flashblock in the
        // prefix it takes.
        // Only a stream published from its first flashblock on: a subscriber never sees a
        // block with a hole (a mode switched mid-block starts publishing at the next block).
        let publishes = self.shared.mode.get() == ExecutionMode::Enabled
            && block.published + 1 == block.accepted
            && self.shared.publisher_for(block.op_geth_id, &block.job) == Some(self.index);
        if publishes {
            self.shared.publisher.publish(
                block.op_geth_id,
                Frame::new(flashblock.json.clone()),
                flashblock.received,
            );
            block.published = block.accepted;
            block.published_transactions = block.transactions().len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_byte_budget_holds_frames_up_to_its_limit_and_no_further() {
        let budget = ByteBudget::new(100);
        assert!(budget.take(60));
        assert!(!budget.take(41), "over the limit: dropped, not queued");
        assert!(budget.take(40));
        budget.give(60);
        assert!(budget.take(60), "room again once acceptance took them");
        budget.give(1_000);
        assert!(
            budget.take(100),
            "giving back too much never goes below zero"
        );
    }
}
