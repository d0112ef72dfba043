//! On `engine_getPayload`, a builder's payload, checked and validated, or op-geth's own.
//!
//! # Behaviour
//!
//! [`PayloadSelect`] claims `engine_getPayloadV2..V5(id)` and, under **one deadline** per call:
//!
//! 1. starts op-geth's getPayload at once;
//! 2. for each builder of the [`PayloadJob`](crate::fcu_mux::PayloadJob) filed under `id`, waits
//!    for the builder's forkchoice answer if it is still in flight, then asks for its payload with
//!    *the builder's own* payload id and the same method version;
//! 3. checks the payload before trusting it ([`check_payload`]): size, shape and version, every
//!    field the attributes fixed, the forced transactions as the exact prefix, gas within the
//!    limit, and the block hash recomputed from the payload;
//! 4. validates it on op-geth with `engine_newPayload` of the matching version, re-encoded from
//!    what was checked (see [`Envelope`](crate::engine::Envelope)): only `VALID` counts. The
//!    block-hash check (milliseconds of keccak for a big block) runs on a blocking thread at the
//!    same time, and both must pass;
//! 5. lets the [`PayloadPolicy`] choose among op-geth's payload and the valid builder payloads,
//!    and answers in op-geth's envelope format for the version asked, with op-node's id.
//!
//! When the deadline expires, builders still at work are abandoned and the best payload already
//! validated wins, else op-geth's (which is awaited: its own timeout bounds it). **Ties:** when a
//! builder's last step and the deadline complete in the same poll, the builder's result is
//! counted (results are polled before the deadline).
//!
//! Exactly one payload is returned per call, never one that failed a check or validation, and
//! never an error while op-geth's payload is available. If op-geth's getPayload fails but a builder
//! payload validated, that one is returned (in every mode: liveness first). In `dry-run` mode
//! everything above happens, the decision is recorded, and op-geth's payload is returned. While the
//! builder's [circuit breaker](crate::builder::CircuitBreaker) is open its payload is fetched and
//! validated but cannot win. In `disabled` mode, or for an id with no job, the call simply goes to
//! op-geth (and is recorded).
//!
//! Each call produces one [`Decision`]: logged once at `info` (target `switchyard::payload`),
//! counted in metrics, and handed to every [`DecisionSink`].
//!
//! This layer's future is boxed: it fans out to several upstreams and runs once per block.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use switchyard_layers::{PayloadSelectLayer, builder::ModeSwitch, fcu_mux::PayloadJobs};
//! use switchyard_layers::payload_select::SelectionPolicy;
//!
//! let layer = PayloadSelectLayer::new(Vec::new(), PayloadJobs::new(64), ModeSwitch::default())
//!     .with_deadline(Duration::from_millis(500))
//!     .with_policy(SelectionPolicy::HighestValue);
//! # let _ = layer;
//! ```

mod check;
mod decision;
mod layer;
mod metrics;
mod policy;
mod service;

pub use check::{CheckFailure, check_attributes, check_block_hash, check_payload};
pub use decision::{BuilderOutcome, Decision, DecisionSink, Preconfirmations, Source, Stages};
pub use layer::{DEFAULT_DEADLINE, PayloadSelectLayer};
pub use metrics::describe;
pub use policy::{Choice, PayloadPolicy, SelectionPolicy, Summary, UnknownPolicy};
pub use service::PayloadSelect;

/// An operator's own check of builder payloads; see [`PayloadSelectLayer::with_payload_check`].
pub type PayloadCheck =
    std::sync::Arc<dyn Fn(&str, &crate::engine::Envelope) -> bool + Send + Sync>;
