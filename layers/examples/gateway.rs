//! A read-only JSON-RPC gateway built from switchyard's layers alone: not an Engine API proxy,
//! just JWT in, a method allow-list, and a forward to one upstream.
//!
//! ```text
//! cargo run -p switchyard-layers --example gateway -- 127.0.0.1:8600 http://127.0.0.1:8545 <jwt-secret-hex>
//! ```
//!
//! Callers sign with the secret; only the allowed methods reach the upstream (which here needs no
//! JWT of its own, so nothing is re-signed); every other method gets `-32601`, in batches too.

// An example reports on the terminal.
#![allow(clippy::print_stderr)]

use std::{convert::Infallible, net::SocketAddr};

use http::{Request, Response};
use hyper_util::{rt::TokioIo, service::TowerToHyperService};
use switchyard_layers::{
    Forward, JwtSecret, MethodRouter, RequireJwtLayer, RpcMethodLayer,
    body::RpcBody,
    jsonrpc::{self, RpcCall, code},
};
use tower::{ServiceBuilder, service_fn};

const ALLOWED: [&str; 5] = [
    "eth_chainId",
    "eth_blockNumber",
    "eth_getBalance",
    "eth_call",
    "eth_getBlockByNumber",
];

async fn not_allowed(req: Request<RpcBody>) -> Result<Response<RpcBody>, Infallible> {
    let id = req
        .extensions()
        .get::<RpcCall>()
        .map(|call| call.id().to_vec())
        .unwrap_or_default();
    let body = jsonrpc::error_response(
        &id,
        code::METHOD_NOT_FOUND,
        "method not allowed by this gateway",
    );
    Ok(Response::new(RpcBody::new(body)))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(upstream), Some(secret)) = (args.next(), args.next(), args.next())
    else {
        eprintln!("usage: gateway <listen addr> <upstream url> <jwt secret hex>");
        std::process::exit(2);
    };
    let listen: SocketAddr = listen.parse()?;
    let forward = Forward::new("upstream", upstream.parse()?);

    let router = ALLOWED.iter().fold(
        MethodRouter::new(service_fn(not_allowed)),
        |router, method| router.route(*method, forward.clone()),
    );
    let gateway = ServiceBuilder::new()
        .layer(RequireJwtLayer::new(JwtSecret::from_hex(&secret)?))
        // Split every batch, so the router sees (and filters) each call.
        .layer(RpcMethodLayer::new().claim_all())
        .service(router);

    let listener = tokio::net::TcpListener::bind(listen).await?;
    eprintln!("gateway on {listen}, forwarding {ALLOWED:?} to {upstream}");
    loop {
        let (stream, _) = listener.accept().await?;
        let service = TowerToHyperService::new(gateway.clone());
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
