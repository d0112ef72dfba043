//! Forkchoice updates with attributes go to op-geth and, at the same moment, to every synced
//! builder.
//!
//! # Behaviour
//!
//! [`FcuMux`] claims `engine_forkchoiceUpdatedV*` calls that carry payload attributes with
//! `noTxPool` unset or false. It queues the same params (byte for byte) on each synced builder's
//! engine lane, so the builder gets them right after the boost-sync messages before them, and
//! calls op-geth. **op-node gets op-geth's answer as soon as op-geth answers**: no builder is
//! ever awaited on this path.
//!
//! When op-geth's answer carries a payload id, a [`PayloadJob`] is filed under that id in the
//! shared [`PayloadJobs`]: the attributes asked for, the parent, and for each builder a handle
//! on its own forkchoice answer (its payload id, which differs from op-geth's whenever the
//! builder derives ids differently, or why it has none). [`PayloadSelect`](crate::PayloadSelect)
//! reads it on `engine_getPayload`. op-node has op-geth's answer first: the payload id is read
//! from it and the job filed just after, by a task of its own; any read of the jobs before that
//! task runs files it first, so a getPayload always finds it. (Traced calls file it before
//! answering, to put the id on the call's span.) Jobs are evicted as the chain moves on: beyond
//! a fixed count, or once their timestamp is a minute behind the newest.
//!
//! Passed through untouched: forkchoice updates without attributes (boost sync handles those),
//! `noTxPool` ones (op-geth alone must build those: derivation and forced-inclusion blocks), and
//! everything while the [mode](crate::builder::ExecutionMode) is `disabled`. A builder that is
//! not synced, or whose lane is full, is skipped and its job entry says why. When no builder
//! takes the call, the job holds only those reasons, the parent and the timestamp: the
//! attributes are not decoded, and op-node's call costs about what it costs with no builder.
//!
//! # Example
//!
//! ```
//! use switchyard_layers::{FcuMuxLayer, builder::ModeSwitch, fcu_mux::PayloadJobs};
//!
//! let jobs = PayloadJobs::new(64);
//! let layer = FcuMuxLayer::new(Vec::new(), jobs.clone(), ModeSwitch::default());
//! # let _ = layer;
//! ```

mod jobs;
mod layer;
mod service;

pub use jobs::{BuilderFcu, BuilderJob, PayloadJob, PayloadJobs};
pub use layer::FcuMuxLayer;
pub use service::{FcuMux, ResponseFuture};
