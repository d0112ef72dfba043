//! Integration tests: the real stack on 127.0.0.1:0, over real HTTP, against the simulator.

// Test modules share helpers with `pub`; nothing here is a public API.
#![allow(unreachable_pub)]

mod harness;

mod auth;
mod binary;
mod builders;
mod cluster;
mod devnet;
mod docs;
mod dropin;
mod external_root;
mod faults;
mod flashblocks;
mod health;
mod limits;
mod metrics;
mod otel;
mod outage;
mod panics;
mod passthrough;
mod prometheus;
mod shutdown;
mod soak;
mod tls;
