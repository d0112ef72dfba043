//! Parse the JSON-RPC envelope once, share it with every layer below, route by method.
//!
//! # Behaviour
//!
//! [`RpcMethod`] reads the request body (under a byte cap and an optional deadline), parses the
//! envelope with [`jsonrpc::parse`](crate::jsonrpc::parse), and hands the inner service a
//! `Request<`[`RpcBody`](crate::body::RpcBody)`>` whose extensions hold the parsed call:
//!
//! - a single call: an [`RpcCall`](crate::jsonrpc::RpcCall);
//! - a batch whose methods no layer claims: one [`RpcBatch`](crate::jsonrpc::RpcBatch), and the
//!   batch travels on as one request, byte for byte;
//! - a batch holding a *claimed* method (see [`RpcMethodLayer::claim`] and
//!   [`RpcMethodLayer::claim_with`]): each element becomes a request of its own, all run
//!   concurrently, and their answers are joined in the batch's order. Invalid elements are
//!   answered in place.
//!
//! Bad input never reaches the inner service: a body over the cap is answered `413`, a body that
//! does not arrive in time `408`, a broken body stream `400`, and malformed JSON or an invalid
//! request a JSON-RPC error (`-32700`, `-32600`) with the right id.
//!
//! [`MethodRouter`] sends each method name to its own service, and everything else to a fallback.
//! [`Bypass`] sends the methods a stack of layers claims through it, and everything else around.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::{BodyExt, Full};
//! use switchyard_layers::{RpcMethodLayer, body::RpcBody, jsonrpc::{self, RpcCall}};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! let svc = ServiceBuilder::new()
//!     .layer(RpcMethodLayer::new())
//!     .service_fn(|req: Request<RpcBody>| async move {
//!         let call = req.extensions().get::<RpcCall>().expect("parsed once, above");
//!         let body = jsonrpc::result_response(call.id(), format!("\"{}\"", call.method()).as_bytes());
//!         Ok::<_, std::convert::Infallible>(Response::new(RpcBody::new(body)))
//!     });
//!
//! let req = Request::new(Full::new(Bytes::from_static(br#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}"#)));
//! let body = svc.oneshot(req).await.unwrap().into_body().collect().await.unwrap().to_bytes();
//! assert_eq!(&body[..], br#"{"jsonrpc":"2.0","id":1,"result":"eth_chainId"}"#);
//! # }
//! ```

mod bypass;
mod future;
mod layer;
mod router;
mod service;

pub use bypass::{Bypass, BypassLayer, Claims};
pub use future::ResponseFuture;

/// Registers the descriptions of this concern's metrics with the installed recorder.
pub fn describe() {
    metrics::describe_counter!(
        future::REJECTED,
        "Requests refused before routing, by reason (too_large, body_timeout, body_error, parse_error, invalid_request)"
    );
}
pub use layer::{DEFAULT_BODY_LIMIT, RpcMethodLayer};
pub use router::MethodRouter;
pub use service::RpcMethod;
