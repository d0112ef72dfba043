#![doc = include_str!("../README.md")]
//!
//! Below [`RpcMethod`] every request carries its parsed [`jsonrpc::RpcCall`] (or
//! [`jsonrpc::RpcBatch`]) in its extensions and its body as one buffered [`body::RpcBody`], so
//! no layer parses a body twice. Failures become responses (HTTP statuses or JSON-RPC errors), so
//! a stack built from these layers over [`Forward`] has the error type
//! [`Infallible`](std::convert::Infallible).
#![warn(missing_docs)]
#![deny(unreachable_pub)]
#![forbid(unsafe_code)]

// The transport floor: any authenticated JSON-RPC gateway.
pub mod auth;
pub mod body;
pub mod forward;
pub mod health;
pub mod jsonrpc;
pub mod measure;
pub mod panic;
pub mod rpc_method;
mod scan;
#[cfg(feature = "tls")]
pub mod tls;
pub mod trace;
mod warn;

// The Engine API floor: builders beside op-geth.
#[cfg(feature = "engine")]
pub mod boost_sync;
#[cfg(feature = "engine")]
pub mod builder;
#[cfg(feature = "engine")]
pub mod claims;
#[cfg(feature = "engine")]
pub mod engine;
#[cfg(feature = "engine")]
pub mod fcu_mux;
#[cfg(feature = "flashblocks")]
pub mod flashblocks;
#[cfg(feature = "engine")]
pub mod miner_mirror;
#[cfg(feature = "engine")]
pub mod payload_select;
#[cfg(feature = "engine")]
pub mod relay;
#[cfg(feature = "engine")]
pub mod tx_mirror;

pub use auth::{
    JwtError, JwtSecret, JwtSecretError, RequireJwt, RequireJwtLayer, SignJwt, SignJwtLayer,
};
pub use forward::{Forward, ForwardError};
pub use health::{HealthLayer, HealthRoutes};
pub use measure::{Measure, MeasureLayer};
pub use rpc_method::{Bypass, BypassLayer, MethodRouter, RpcMethod, RpcMethodLayer};

#[cfg(feature = "engine")]
pub use boost_sync::{BoostSync, BoostSyncLayer};
#[cfg(feature = "engine")]
pub use fcu_mux::{FcuMux, FcuMuxLayer};
#[cfg(feature = "engine")]
pub use miner_mirror::{MinerMirror, MinerMirrorLayer};
#[cfg(feature = "engine")]
pub use payload_select::{PayloadSelect, PayloadSelectLayer};
#[cfg(feature = "engine")]
pub use relay::{Relay, RelayLayer, RelayRule};
#[cfg(feature = "engine")]
pub use tx_mirror::{TxMirror, TxMirrorLayer};
