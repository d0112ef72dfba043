//! The one place the layers are composed, outermost first.

use std::convert::Infallible;

use http::{Request, Response};
use hyper::body::Incoming;
use switchyard_layers::{Forward, RequireJwtLayer, RpcMethodLayer, SignJwtLayer, body::RpcBody};
use tower::{Service, ServiceBuilder};

use crate::config::Config;

/// The service op-node talks to.
pub fn stack(
    config: &Config,
) -> impl Service<Request<Incoming>, Response = Response<RpcBody>, Error = Infallible, Future: Send>
+ Clone
+ Send
+ 'static {
    let l2 =
        Forward::new(config.l2.name.clone(), config.l2.url.clone()).with_timeout(config.l2.timeout);
    ServiceBuilder::new()
        // First: an unauthenticated caller gets 401 before we read a byte of its body.
        .layer(RequireJwtLayer::new(config.rpc_secret.clone()))
        // Parse once, under the body cap; every layer below reads the RpcCall extension.
        .layer(
            RpcMethodLayer::new()
                .with_limit(config.limits.max_request_size)
                .with_body_timeout(config.limits.body_read_timeout),
        )
        // op-geth checks its own secret: sign last, just before the wire.
        .layer(SignJwtLayer::new(config.l2.secret.clone()))
        .service(l2)
}
