//! An authenticated JSON-RPC gateway on an axum `Router`: switchyard's layers beside
//! tower-http's, forwarding to one upstream that wants a JWT of its own.
//!
//! ```text
//! cargo run -p switchyard-layers --example axum_gateway -- \
//!     127.0.0.1:8600 http://127.0.0.1:8551 <callers' secret hex> <upstream's secret hex>
//! ```
//!
//! - `POST /`: callers sign with their secret ([`RequireJwtLayer`], as a `route_layer`, so it
//!   guards the routes only); the call is parsed once ([`RpcMethodLayer`]), re-signed with the
//!   upstream's secret ([`SignJwtLayer`]) and forwarded ([`Forward`]).
//! - `GET /livez`: no JWT, answered by axum itself.
//! - Around everything, tower-http: `Authorization` marked sensitive, panics answered as JSON-RPC
//!   errors, a 10-second cap on the whole exchange.

// An example reports on the terminal.
#![allow(clippy::print_stderr)]

use std::{net::SocketAddr, time::Duration};

use axum::{Router, routing::get};
use http::{StatusCode, Uri, header::AUTHORIZATION};
use switchyard_layers::{
    Forward, JwtSecret, RequireJwtLayer, RpcMethodLayer, SignJwtLayer, panic::catch_panic_layer,
};
use tower::ServiceBuilder;
use tower_http::{sensitive_headers::SetSensitiveRequestHeadersLayer, timeout::TimeoutLayer};

/// The gateway: callers sign with `callers`, the upstream at `upstream` checks `upstream_secret`.
pub(crate) fn router(callers: JwtSecret, upstream: Uri, upstream_secret: JwtSecret) -> Router {
    let forward = ServiceBuilder::new()
        .layer(RpcMethodLayer::new())
        .layer(SignJwtLayer::new(upstream_secret))
        .service(Forward::new("upstream", upstream));
    Router::new()
        .route_service("/", forward)
        .route_layer(RequireJwtLayer::new(callers))
        .route("/livez", get(|| async { "ok\n" }))
        .layer(
            ServiceBuilder::new()
                .layer(SetSensitiveRequestHeadersLayer::new([AUTHORIZATION]))
                .layer(catch_panic_layer())
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::GATEWAY_TIMEOUT,
                    Duration::from_secs(10),
                )),
        )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, upstream, callers, upstream_secret] = args.as_slice() else {
        eprintln!(
            "usage: axum_gateway <listen addr> <upstream url> <callers' secret hex> <upstream's secret hex>"
        );
        std::process::exit(2);
    };
    let listen: SocketAddr = listen.parse()?;
    let app = router(
        JwtSecret::from_hex(callers)?,
        upstream.parse()?,
        JwtSecret::from_hex(upstream_secret)?,
    );
    let listener = tokio::net::TcpListener::bind(listen).await?;
    eprintln!("gateway on {listen}, forwarding to {upstream}");
    axum::serve(listener, app).await?;
    Ok(())
}
