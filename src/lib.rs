//! switchyard: an OP Stack block-builder sidecar.
//!
//! It sits where op-node expects op-geth's authenticated Engine API, forwards every call to
//! op-geth unchanged, and (with builders configured) lets an external block builder produce the
//! blocks, falling back to op-geth's own block whenever the builder's is late, invalid or not the
//! block op-node asked for. The reusable parts are tower layers in `switchyard-layers`; this
//! crate composes them ([`stack`]), serves them ([`server`]) and reads the command line
//! ([`config`]).

pub mod config;
pub mod server;
pub mod stack;

use std::future::Future;

pub use config::{Cli, Config};
use tokio::net::TcpListener;

/// Runs switchyard on `listener` until `shutdown` resolves, then drains in-flight requests.
///
/// # Errors
///
/// If the listener's address cannot be read.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!(
        target: "switchyard",
        %addr,
        l2 = %config.l2.url,
        builders = config.builders.len(),
        "listening"
    );
    let service = stack::stack(&config);
    server::serve(listener, service, &config.limits, shutdown).await;
    Ok(())
}
