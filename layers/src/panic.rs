//! Panics contained: a bug that panics while one request is served costs that request, never the
//! connection, the other requests or the process.
//!
//! # Behaviour
//!
//! [`catch_panic_layer`] is tower-http's [`CatchPanicLayer`] answering a panic with a JSON-RPC
//! error (`-32603`, id `null`: the request that panicked is gone with its id) and HTTP 500,
//! counting it in `switchyard_panics_total{where="request"}` and logging it once at `error`.
//! Layers that run work of their own apart from the request (a builder's part of a getPayload)
//! contain panics there themselves and count them under their own `where`.
//!
//! tower-http's layer boxes the response body ([`UnsyncBoxBody`]); a stack under it answers with
//! that type.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use std::convert::Infallible;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::BodyExt;
//! use switchyard_layers::{body::RpcBody, panic::catch_panic_layer};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! let service = ServiceBuilder::new()
//!     .layer(catch_panic_layer())
//!     .service(service_fn(|_: Request<RpcBody>| async {
//!         if true {
//!             panic!("a bug");
//!         }
//!         Ok::<_, Infallible>(Response::new(RpcBody::default()))
//!     }));
//! let response = service.oneshot(Request::new(RpcBody::default())).await.unwrap();
//! assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
//! let body = response.into_body().collect().await.unwrap().to_bytes();
//! assert!(body.starts_with(br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32603"#));
//! # }
//! ```

use std::any::Any;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
pub use http_body_util::combinators::UnsyncBoxBody;
pub use tower_http::catch_panic::CatchPanicLayer;

use crate::{
    body::RpcBody,
    jsonrpc::{self, code},
};

/// The counter of contained panics, by `where`.
pub const PANICS: &str = "switchyard_panics_total";

/// Registers the description of [`PANICS`] with the installed recorder.
pub fn describe() {
    metrics::describe_counter!(
        PANICS,
        "Panics contained, by where: request (the call got a JSON-RPC error), builder_payload (that builder's candidate lost)"
    );
}

/// Counts one contained panic at `place`.
pub fn count(place: &'static str) {
    metrics::counter!(PANICS, "where" => place).increment(1);
}

/// The panic's message, when it has one.
pub fn message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// Answers a panic with a JSON-RPC error. See the [module docs](self).
#[derive(Clone, Copy, Debug, Default)]
pub struct JsonRpcPanic;

impl tower_http::catch_panic::ResponseForPanic for JsonRpcPanic {
    type ResponseBody = RpcBody;

    fn response_for_panic(&mut self, panic: Box<dyn Any + Send + 'static>) -> Response<RpcBody> {
        count("request");
        // A panic is our bug, never the caller's: `error`, once per panic.
        tracing::error!(target: "switchyard::panic", message = message(&*panic), "a request panicked; it gets a JSON-RPC error");
        let body: Bytes = jsonrpc::error_response(
            b"",
            code::INTERNAL_ERROR,
            "internal error (a bug in switchyard; see its log)",
        );
        let mut response = Response::new(RpcBody::new(body));
        *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}

/// tower-http's [`CatchPanicLayer`], answering with a JSON-RPC error. See the
/// [module docs](self).
pub fn catch_panic_layer() -> CatchPanicLayer<JsonRpcPanic> {
    CatchPanicLayer::custom(JsonRpcPanic)
}
