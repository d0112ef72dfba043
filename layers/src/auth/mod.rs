//! Engine API JWT authentication, both directions.
//!
//! # Behaviour
//!
//! - [`RequireJwt`] guards a server: each request must carry `Authorization: Bearer <token>`, an
//!   HS256 token signed with the [`JwtSecret`] whose `iat` claim is within ±60 s of now (an `exp`
//!   claim, if present, must not have passed). That is geth's rule, so op-node cannot tell us from
//!   op-geth. A request that fails is answered `401 Unauthorized` with a short plain-text reason
//!   (`missing token`, `stale token`, ...) and is **not** passed on.
//! - [`SignJwt`] signs each outbound request with *that upstream's* secret: a fresh token whose
//!   `iat` is the current second. The token is minted once per second and reused within it.
//! - [`JwtSecret`] reads the 32-byte hex secret file the way geth and op-node do (optional `0x`,
//!   surrounding whitespace). Its `Debug` output never shows the key.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use switchyard_layers::{JwtSecret, RequireJwtLayer};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! let secret: JwtSecret = "0x2222222222222222222222222222222222222222222222222222222222222222".parse().unwrap();
//! let svc = ServiceBuilder::new()
//!     .layer(RequireJwtLayer::new(secret.clone()))
//!     .service_fn(|_req: Request<Full<Bytes>>| async {
//!         Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
//!     });
//!
//! let unsigned = Request::new(Full::new(Bytes::new()));
//! assert_eq!(svc.clone().oneshot(unsigned).await.unwrap().status(), StatusCode::UNAUTHORIZED);
//!
//! let token = secret.token_now().unwrap();
//! let signed = Request::builder()
//!     .header("authorization", format!("Bearer {token}"))
//!     .body(Full::new(Bytes::new()))
//!     .unwrap();
//! assert_eq!(svc.oneshot(signed).await.unwrap().status(), StatusCode::OK);
//! # }
//! ```

mod error;
mod metrics;
mod require;
mod secret;
mod sign;

pub use error::{JwtError, JwtSecretError};
pub use metrics::describe;
pub use require::{RequireJwt, RequireJwtLayer, ResponseFuture};
pub use secret::{JWT_MAX_IAT_DIFF_SECS, JwtSecret};
pub use sign::{SignJwt, SignJwtLayer};
