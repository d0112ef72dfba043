use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use tower::{ServiceExt, util::BoxCloneSyncService};

use crate::{
    Forward, ForwardError, JwtSecret, SignJwtLayer,
    body::RpcBody,
    forward,
    jsonrpc::{ErrorObject, RpcCall, RpcResponse},
};

type Upstream = BoxCloneSyncService<Request<RpcBody>, Response<RpcBody>, Infallible>;

/// Why a call to a builder failed.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuilderError {
    /// Transport: timeout, unreachable, broken answer.
    #[error(transparent)]
    Transport(#[from] ForwardError),
    /// An HTTP status other than 200.
    #[error("HTTP {0}")]
    Http(StatusCode),
    /// A body that is not a JSON-RPC response.
    #[error("malformed JSON-RPC response: {0}")]
    Malformed(String),
    /// A JSON-RPC error.
    #[error("JSON-RPC error {}: {}", .0.code, .0.message)]
    Rpc(ErrorObject),
    /// Not sent: a forkchoice update that waited in the engine lane past its bound (see
    /// [`LaneConfig::forkchoice_stale_after`](super::LaneConfig::forkchoice_stale_after)).
    #[error("stale: waited too long in the engine lane, not sent")]
    Stale,
}

impl BuilderError {
    /// A short, fixed label for metrics and decision records.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Transport(e) => e.label(),
            Self::Http(_) => "http_status",
            Self::Malformed(_) => "malformed",
            Self::Rpc(e) if e.code == crate::jsonrpc::code::UNKNOWN_PAYLOAD => "unknown_payload",
            Self::Rpc(_) => "rpc_error",
            Self::Stale => "stale",
        }
    }
}

/// A JSON-RPC client of one builder, signing with its own secret. See the [module docs](super).
#[derive(Clone)]
pub struct BuilderClient {
    name: Arc<str>,
    upstream: Upstream,
    next_id: Arc<AtomicU64>,
}

impl std::fmt::Debug for BuilderClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuilderClient")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl BuilderClient {
    /// A client named `name` calling through `forward`, signing with `secret`.
    pub fn new<C>(name: impl Into<Arc<str>>, forward: Forward<C>, secret: JwtSecret) -> Self
    where
        Forward<C>: tower::Service<Request<RpcBody>, Response = Response<RpcBody>, Error = Infallible>
            + Clone
            + Send
            + Sync
            + 'static,
        <Forward<C> as tower::Service<Request<RpcBody>>>::Future: Send + 'static,
    {
        let name = name.into();
        let measured = tower::Layer::layer(&crate::MeasureLayer::upstream(name.clone()), forward);
        let signed = tower::Layer::layer(&SignJwtLayer::new(secret), measured);
        Self::from_service(name, signed)
    }

    /// A client over any service that answers JSON-RPC requests (tests, custom transports).
    pub fn from_service<S>(name: impl Into<Arc<str>>, service: S) -> Self
    where
        S: tower::Service<Request<RpcBody>, Response = Response<RpcBody>, Error = Infallible>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        Self {
            name: name.into(),
            upstream: BoxCloneSyncService::new(service),
            next_id: Arc::new(AtomicU64::new(1)),
        }
    }

    /// The builder's name.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// Calls `method` with raw JSON `params`; returns the raw JSON of the result.
    ///
    /// # Errors
    ///
    /// Any failure, typed.
    pub async fn call(&self, method: &str, params: &[u8]) -> Result<Bytes, BuilderError> {
        result_of(self.call_answer(method, params).await?)
    }

    /// Calls `method` and returns the whole JSON-RPC answer, unread: for callers that decode it
    /// in one typed pass.
    ///
    /// # Errors
    ///
    /// A transport failure or an HTTP status other than 200.
    pub async fn call_answer(&self, method: &str, params: &[u8]) -> Result<Bytes, BuilderError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed).to_string();
        self.exchange(RpcCall::new(method, id.as_bytes(), params))
            .await
    }

    /// Sends someone else's call as it is (its bytes, its id), signed with this builder's JWT;
    /// returns the raw JSON of the result. For relaying op-node's calls without copying them.
    /// The call owns what it needs (it borrows neither `self` nor `call`): a lane can leave it to
    /// finish on its own.
    ///
    /// # Errors
    ///
    /// Any failure, typed.
    pub fn relay(
        &self,
        call: &RpcCall,
    ) -> impl Future<Output = Result<Bytes, BuilderError>> + Send + 'static {
        let exchange = self.exchange(call.clone());
        async move { result_of(exchange.await?) }
    }

    fn exchange(
        &self,
        call: RpcCall,
    ) -> impl Future<Output = Result<Bytes, BuilderError>> + Send + 'static {
        let mut request = Request::new(RpcBody::new(call.bytes().clone()));
        *request.method_mut() = http::Method::POST;
        request.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        request.extensions_mut().insert(call);
        let upstream = self.upstream.clone();
        async move {
            let response = match upstream.oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            if let Some(error) = forward::forward_error(&response) {
                return Err(BuilderError::Transport(error.clone()));
            }
            if response.status() != StatusCode::OK {
                return Err(BuilderError::Http(response.status()));
            }
            Ok(crate::body::into_bytes(response).1)
        }
    }
}

/// The raw JSON of an answer's `result`, or its error, typed.
fn result_of(body: Bytes) -> Result<Bytes, BuilderError> {
    let answer =
        RpcResponse::from_slice(&body).map_err(|e| BuilderError::Malformed(e.to_string()))?;
    if let Some(error) = answer.error {
        return Err(BuilderError::Rpc(error));
    }
    let result = answer
        .result
        .ok_or_else(|| BuilderError::Malformed("neither result nor error".into()))?;
    Ok(body.slice_ref(result))
}
