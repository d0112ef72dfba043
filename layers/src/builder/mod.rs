//! Block builders: a client each, ordered lanes, health, a circuit breaker, and the execution
//! mode that governs them all.
//!
//! # Behaviour
//!
//! A [`Builder`] is one external block builder, shared by every builder layer:
//!
//! - [`BuilderClient`] calls it over the [`Forward`](crate::Forward) + [`SignJwt`](crate::SignJwt)
//!   stack of its own (its URL, timeout and JWT secret), and turns every failure into a typed
//!   [`BuilderError`].
//! - Its *engine lane* is a bounded queue served by one worker, in order: boost-sync messages
//!   (`engine_newPayload`, forkchoice updates) and forkchoice updates with attributes travel
//!   through it, so the builder always sees block N before the attributes of block N+1. Its
//!   *transaction lane* carries mirrored transactions, so a flood of those never delays the
//!   engine traffic. A full lane drops the message and counts the drop; nobody waits on a lane.
//!   A forkchoice update that waited in the engine lane longer than
//!   [`LaneConfig::forkchoice_stale_after`] (behind a builder that hangs) is dropped unsent, so
//!   a builder that recovers gets today's head, not a backlog of old ones. A forkchoice update
//!   the builder is still holding when the next block's attributes arrive is given up
//!   ([`Builder::supersede_forkchoice`]): a builder that hangs on one update costs that block
//!   only, and the blocks queued behind it reach it at once.
//! - [`BuilderHealth`] says whether it is synced: from what it answers in its engine lane, and
//!   from [`poll_heads`], which compares its head with op-geth's.
//! - `miner_*` settings (DA limits, gas limit, extra data, gas price) go to it through its
//!   transaction lane, and the latest of each is kept: a builder that missed one (down, full
//!   lane, error) gets them all again once [`poll_heads`] sees it synced.
//! - [`CircuitBreaker`]: after `threshold` invalid payloads in a row it opens, and the builder
//!   runs dry (its payloads are fetched and checked but never chosen) for `cooldown` blocks.
//!
//! [`ModeSwitch`] holds the [`ExecutionMode`] every layer reads on each request, so an operator
//! can switch it at run time.
//!
//! # Example
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use std::time::Duration;
//! use switchyard_layers::{Forward, JwtSecret, builder::{Builder, BuilderClient, LaneConfig}};
//!
//! let secret = JwtSecret::from_bytes([7; 32]);
//! let forward = Forward::new("builder", "http://10.0.0.2:8551".parse().unwrap())
//!     .with_timeout(Duration::from_millis(500));
//! let builder = Builder::new(BuilderClient::new("builder", forward, secret), LaneConfig::default());
//! let result = builder.client().call("eth_blockNumber", b"[]").await;
//! # }
//! ```

mod backlog;
mod breaker;
mod client;
mod health;
mod lane;
pub(crate) mod metrics;
mod mode;
mod settings;

pub use breaker::CircuitBreaker;
pub use client::{BuilderClient, BuilderError};
pub use health::{BuilderHealth, DEGRADED_AFTER, HealthState, poll_heads};
pub use lane::{LaneConfig, LaneError, Reply};
pub use metrics::describe;
pub use mode::{ExecutionMode, ModeSwitch, UnknownMode};

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use crate::jsonrpc::RpcCall;
use lane::Lane;
use settings::Settings;

/// One external block builder. See the [module docs](self).
#[derive(Debug)]
pub struct Builder {
    client: BuilderClient,
    engine: Lane,
    transactions: Lane,
    health: BuilderHealth,
    breaker: CircuitBreaker,
    settings: Settings,
    held: backlog::Backlog,
    // Bytes of its last getPayload answer: how big its next one will likely be.
    payload_size: AtomicUsize,
}

impl Builder {
    /// A builder reached through `client`, with lanes sized by `lanes`; starts the lane workers
    /// (call from within a tokio runtime).
    pub fn new(client: BuilderClient, lanes: LaneConfig) -> Arc<Self> {
        Self::with_breaker(client, lanes, CircuitBreaker::disabled())
    }

    /// As [`Builder::new`], with a circuit breaker.
    pub fn with_breaker(
        client: BuilderClient,
        lanes: LaneConfig,
        breaker: CircuitBreaker,
    ) -> Arc<Self> {
        let health = BuilderHealth::new(client.name().clone());
        metrics::register(client.name());
        Arc::new(Self {
            engine: Lane::spawn(
                client.clone(),
                "engine",
                lanes.engine_capacity,
                lanes.bytes_capacity,
                Some(health.clone()),
                Some(lanes.forkchoice_stale_after),
            ),
            transactions: Lane::spawn(
                client.clone(),
                "transactions",
                lanes.transaction_capacity,
                lanes.bytes_capacity,
                None,
                None,
            ),
            client,
            health,
            breaker,
            settings: Settings::default(),
            held: backlog::Backlog::new(lanes.transaction_capacity),
            payload_size: AtomicUsize::new(0),
        })
    }

    /// Size in bytes of the builder's last getPayload answer (0 before the first).
    pub fn last_payload_size(&self) -> usize {
        self.payload_size.load(Ordering::Relaxed)
    }

    pub(crate) fn note_payload_size(&self, size: usize) {
        self.payload_size.store(size, Ordering::Relaxed);
    }

    /// The builder's name.
    pub fn name(&self) -> &Arc<str> {
        self.client.name()
    }

    /// The builder's client, for direct calls.
    pub fn client(&self) -> &BuilderClient {
        &self.client
    }

    /// The skip reason of a builder whose engine lane is full.
    pub const QUEUE_FULL: &'static str = "queue_full";

    /// The skip reason of a builder that holds a forkchoice update after leaving the last
    /// three unanswered (each given up at the next block's, or timed out): it is asked again
    /// once that one ends.
    pub const UNANSWERED: &'static str = "skipped_unanswered";

    /// Why a forkchoice update with attributes queued now would not reach it, as a skip
    /// reason: not synced (its health's reason), its engine lane full (`queue_full`), or still
    /// holding a forkchoice update after three unanswered in a row (`skipped_unanswered`);
    /// `None` when it would.
    pub fn build_skip_reason(&self) -> Option<&'static str> {
        if !self.health.is_synced() {
            return Some(self.health.state().skip_reason());
        }
        if !self.engine.has_room() {
            return Some(Self::QUEUE_FULL);
        }
        if self.engine.holds_unanswered_forkchoice() {
            return Some(Self::UNANSWERED);
        }
        None
    }

    /// Counts an engine call dropped because the lane was full, without trying to queue it.
    pub(crate) fn note_engine_drop(&self) {
        self.engine.note_dropped();
    }

    /// Its health.
    pub fn health(&self) -> &BuilderHealth {
        &self.health
    }

    /// Its circuit breaker.
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    /// Queues an engine call (boost sync, forkchoice) behind the ones already queued.
    ///
    /// # Errors
    ///
    /// [`LaneError::Full`] if the lane is full (the call is dropped and counted).
    pub fn send_engine(&self, call: &RpcCall, reply: Reply) -> Result<(), LaneError> {
        self.engine.send(call, reply)
    }

    /// Gives up on the forkchoice update the builder is holding, if any (the engine lane moves on
    /// to what is queued behind it). For the next block's attributes: a builder that hung on one
    /// block's update then costs that block only.
    pub fn supersede_forkchoice(&self) {
        self.engine.supersede_forkchoice();
    }

    /// Queues a mirrored transaction.
    ///
    /// # Errors
    ///
    /// [`LaneError::Full`] if the lane is full (the transaction is dropped and counted).
    pub fn send_transaction(&self, call: &RpcCall) -> Result<(), LaneError> {
        self.transactions.send(call, Reply::None)
    }

    /// Mirrors a transaction: through the transaction lane while the builder is synced; while it
    /// is not (down, behind, syncing), held in a bounded backlog (the lane's capacity) and sent
    /// in order once [`poll_heads`] sees it synced again, so that a builder back from an outage
    /// has the pool it would have had. Past the bound the newest are dropped and counted.
    pub fn mirror_transaction(&self, call: &RpcCall) {
        let outcome = self.held.hold_or_pass(call, self.health.is_synced(), || {
            // A full lane is counted by the lane itself.
            let _ = self.transactions.send(call, Reply::None);
        });
        match outcome {
            backlog::Mirrored::Pass => {}
            backlog::Mirrored::Held => metrics::transaction_held(self.name()),
            backlog::Mirrored::Dropped => metrics::transaction_held_dropped(self.name()),
        }
    }

    /// Sends the transactions held while the builder was not synced, oldest first. Called by
    /// [`poll_heads`] when it sees the builder synced.
    pub fn send_held_transactions(&self) {
        let sent = self.held.drain(|call| {
            let _ = self.transactions.send(call, Reply::None);
        });
        if sent > 0 {
            tracing::info!(target: "switchyard::builder", builder = %self.name(), transactions = sent, "sending the transactions held while it was not synced");
        }
    }

    /// Transactions held for the builder until it is synced.
    pub fn held_transactions(&self) -> usize {
        self.held.len()
    }

    /// Sends a `miner_*` setting through the transaction lane and keeps it as the latest of its
    /// method. If the builder is unreachable, the lane is full or the builder answers with an
    /// error, the settings are replayed once it is next seen synced.
    pub fn send_setting(&self, call: &RpcCall) {
        self.settings.remember(call);
        if matches!(
            self.health.state(),
            HealthState::Unreachable | HealthState::Tls
        ) {
            self.settings.mark_stale();
            return;
        }
        self.send_setting_now(call);
    }

    fn send_setting_now(&self, call: &RpcCall) {
        let stale = self.settings.stale_flag();
        let reply = Reply::Callback(Box::new(move |result| {
            // Unreachable, or a JSON-RPC error: the builder did not take the setting.
            if result.is_err() {
                stale.store(true, Ordering::Relaxed);
            }
        }));
        if self.transactions.send(call, reply).is_err() {
            self.settings.mark_stale();
        }
    }

    /// Marks the settings for replay at the next [`Builder::replay_settings_if_stale`].
    pub fn mark_settings_stale(&self) {
        self.settings.mark_stale();
    }

    /// Replays every remembered setting if the builder may have missed one. Called by
    /// [`poll_heads`] when it sees the builder synced.
    pub fn replay_settings_if_stale(&self) {
        if self.settings.take_stale() {
            let settings = self.settings.all();
            if !settings.is_empty() {
                tracing::info!(target: "switchyard::builder", builder = %self.name(), settings = settings.len(), "replaying miner settings");
            }
            for call in &settings {
                self.send_setting_now(call);
            }
        }
    }

    /// Calls waiting in the engine lane and the transaction lane.
    pub fn queue_depths(&self) -> (usize, usize) {
        (self.engine.depth(), self.transactions.depth())
    }
}
