//! Health endpoints for probes and op-conductor: `/healthz`, `/readyz`, `/livez`.
//!
//! # Behaviour
//!
//! [`HealthRoutes`] answers `GET` (and `HEAD`) on three paths itself, before anything else in the
//! stack and without authentication, as Kubernetes probes and op-conductor's rollup-boost health
//! check expect; every other request goes to the inner service.
//!
//! - `/healthz`: `200 OK` when healthy, `206 Partial Content` when degraded (the block producer
//!   works, a builder does not), `503 Service Unavailable` when blocks cannot be produced. These
//!   are rollup-boost's codes, which op-conductor maps to healthy, partially healthy and unhealthy.
//! - `/readyz`: `200` once the probe says it is ready, `503` before.
//! - `/livez`: `200` while the process serves.
//!
//! The body is a small JSON object with the probe's details. What "healthy" means is the
//! [`HealthProbe`]'s business; closures `Fn() -> HealthReport` are probes.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use http::{Request, Response, StatusCode};
//! use switchyard_layers::{HealthLayer, body::RpcBody, health::{Health, HealthReport}};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! let svc = ServiceBuilder::new()
//!     .layer(HealthLayer::new(|| HealthReport::new(Health::Degraded, true)))
//!     .service_fn(|_req: Request<RpcBody>| async { Ok::<_, std::convert::Infallible>(Response::new(RpcBody::default())) });
//! let req = Request::get("/healthz").body(RpcBody::default()).unwrap();
//! assert_eq!(svc.oneshot(req).await.unwrap().status(), StatusCode::PARTIAL_CONTENT);
//! # }
//! ```

use std::{
    convert::Infallible,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;
use futures_util::future::{Either, Ready, ready};
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use tower::{Layer, Service};

/// Whether blocks can be produced, and how well.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Health {
    /// Everything works.
    Healthy,
    /// Blocks are produced, but something (a builder) is not working.
    Degraded,
    /// Blocks cannot be produced (the execution client is down or stale).
    Unavailable,
}

impl Health {
    /// The `/healthz` status code.
    pub fn status(self) -> StatusCode {
        match self {
            Self::Healthy => StatusCode::OK,
            Self::Degraded => StatusCode::PARTIAL_CONTENT,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// `healthy`, `degraded` or `unavailable`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Degraded => "degraded",
            Self::Unavailable => "unavailable",
        }
    }
}

/// A probe's answer.
#[derive(Clone, Debug, PartialEq)]
pub struct HealthReport {
    /// The verdict.
    pub health: Health,
    /// Whether to report ready.
    pub ready: bool,
    /// Details for the response body.
    pub detail: serde_json::Value,
}

impl HealthReport {
    /// A report with no details.
    pub fn new(health: Health, ready: bool) -> Self {
        Self {
            health,
            ready,
            detail: serde_json::Value::Null,
        }
    }
}

/// Says how healthy the service is.
pub trait HealthProbe: Send + Sync + 'static {
    /// The current report.
    fn report(&self) -> HealthReport;
}

impl<F> HealthProbe for F
where
    F: Fn() -> HealthReport + Send + Sync + 'static,
{
    fn report(&self) -> HealthReport {
        self()
    }
}

/// Layer that serves the health endpoints. See the [module docs](self).
#[derive(Clone)]
pub struct HealthLayer {
    probe: Arc<dyn HealthProbe>,
}

impl std::fmt::Debug for HealthLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthLayer").finish_non_exhaustive()
    }
}

impl HealthLayer {
    /// Serves the health endpoints from `probe`.
    pub fn new(probe: impl HealthProbe) -> Self {
        Self {
            probe: Arc::new(probe),
        }
    }
}

impl<S> Layer<S> for HealthLayer {
    type Service = HealthRoutes<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HealthRoutes {
            inner,
            probe: self.probe.clone(),
        }
    }
}

/// Service that answers the health endpoints. See the [module docs](self).
#[derive(Clone)]
pub struct HealthRoutes<S> {
    inner: S,
    probe: Arc<dyn HealthProbe>,
}

impl<S> std::fmt::Debug for HealthRoutes<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthRoutes").finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for HealthRoutes<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>, Error = Infallible>,
    ResBody: From<Bytes>,
{
    type Response = Response<ResBody>;
    type Error = Infallible;
    type Future = Either<Ready<Result<Response<ResBody>, Infallible>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let probe_path = matches!(req.uri().path(), "/healthz" | "/readyz" | "/livez");
        if !probe_path || !matches!(*req.method(), Method::GET | Method::HEAD) {
            return Either::Right(self.inner.call(req));
        }
        let (status, body) = match req.uri().path() {
            "/livez" => (StatusCode::OK, serde_json::json!({ "status": "alive" })),
            path => {
                let report = self.probe.report();
                let status = match path {
                    "/readyz" if report.ready => StatusCode::OK,
                    "/readyz" => StatusCode::SERVICE_UNAVAILABLE,
                    _ => report.health.status(),
                };
                let body = serde_json::json!({
                    "status": report.health.label(),
                    "ready": report.ready,
                    "detail": report.detail,
                });
                (status, body)
            }
        };
        let mut response = Response::new(ResBody::from(Bytes::from(body.to_string())));
        *response.status_mut() = status;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Either::Left(ready(Ok(response)))
    }
}
