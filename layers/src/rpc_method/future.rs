use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{HeaderValue, Request, Response, StatusCode, header, request};
use http_body::Body;
use http_body_util::BodyExt;
use pin_project_lite::pin_project;
use tower::{Service, ServiceExt};

use super::layer::Config;
use crate::{
    body::{BodyError, BoxError, CollectCapped, RpcBody},
    jsonrpc::{self, Parsed, RpcBatch, RpcCall, RpcError, code},
    warn::WarnLimiter,
};

/// Requests refused before reaching the inner service, by reason.
pub(crate) const REJECTED: &str = "switchyard_rpc_rejected_total";

static REJECTIONS: WarnLimiter = WarnLimiter::new();

pin_project! {
    /// Response future of [`RpcMethod`](super::RpcMethod).
    pub struct ResponseFuture<B, S>
    where
        S: Service<Request<RpcBody>>,
    {
        #[pin]
        state: State<B, S>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<B, S>
    where
        S: Service<Request<RpcBody>>,
    {
        Collecting {
            #[pin]
            body: CollectCapped<B>,
            parts: Option<request::Parts>,
            inner: Option<S>,
            config: Arc<Config>,
        },
        Calling { #[pin] future: S::Future },
        // Split batches fan out to several calls; boxing keeps this rare path simple.
        Split { future: BoxFuture<'static, Result<Response<RpcBody>, S::Error>> },
        Done { response: Option<Response<RpcBody>> },
    }
}

impl<B, S> std::fmt::Debug for ResponseFuture<B, S>
where
    S: Service<Request<RpcBody>>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<B, S> ResponseFuture<B, S>
where
    S: Service<Request<RpcBody>>,
{
    pub(super) fn new(
        body: CollectCapped<B>,
        parts: request::Parts,
        inner: S,
        config: Arc<Config>,
    ) -> Self {
        Self {
            state: State::Collecting {
                body,
                parts: Some(parts),
                inner: Some(inner),
                config,
            },
        }
    }
}

impl<B, S> Future for ResponseFuture<B, S>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
    S: Service<Request<RpcBody>, Response = Response<RpcBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Output = Result<Response<RpcBody>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let next = match this.state.as_mut().project() {
                StateProj::Collecting {
                    body,
                    parts,
                    inner,
                    config,
                } => {
                    let collected = ready!(body.poll(cx));
                    match (collected, parts.take(), inner.take()) {
                        (Ok(bytes), Some(parts), Some(inner)) => route(bytes, parts, inner, config),
                        (Err(error), _, _) => State::Done {
                            response: Some(body_error(&error)),
                        },
                        // Polled again after completion: nothing left to route.
                        _ => State::Done { response: None },
                    }
                }
                StateProj::Calling { future } => return future.poll(cx),
                StateProj::Split { future } => return future.as_mut().poll(cx),
                StateProj::Done { response } => {
                    return Poll::Ready(Ok(response
                        .take()
                        .unwrap_or_else(|| json_response(StatusCode::OK, Bytes::new()))));
                }
            };
            this.state.set(next);
        }
    }
}

fn route<B, S>(
    bytes: Bytes,
    mut parts: request::Parts,
    mut inner: S,
    config: &Config,
) -> State<B, S>
where
    S: Service<Request<RpcBody>, Response = Response<RpcBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    let items = match jsonrpc::parse(&bytes) {
        Err(error) | Ok(Parsed::Single(Err(error))) => {
            return State::Done {
                response: Some(rpc_error(&error)),
            };
        }
        Ok(Parsed::Single(Ok(call))) => {
            crate::trace::record_method(call.method());
            parts.extensions.insert(call);
            let future = inner.call(Request::from_parts(parts, RpcBody::new(bytes)));
            return State::Calling { future };
        }
        Ok(Parsed::Batch(items)) => items,
    };
    crate::trace::record_method("batch");
    let claimed = items.iter().any(|item| {
        item.as_ref()
            .is_ok_and(|call| config.claimed.contains(call.method()))
    });
    if !claimed {
        // Invalid elements included: the upstream answers those itself, as it would directly.
        let calls = items.into_iter().filter_map(Result::ok).collect();
        parts.extensions.insert(RpcBatch(calls));
        let future = inner.call(Request::from_parts(parts, RpcBody::new(bytes)));
        return State::Calling { future };
    }
    State::Split {
        future: Box::pin(split(items, parts, inner)),
    }
}

async fn split<S>(
    items: Vec<Result<RpcCall, RpcError>>,
    parts: request::Parts,
    inner: S,
) -> Result<Response<RpcBody>, S::Error>
where
    S: Service<Request<RpcBody>, Response = Response<RpcBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let answers = items.into_iter().map(|item| {
        let inner = inner.clone();
        let request = match &item {
            Ok(call) => {
                let mut request = Request::new(RpcBody::new(call.bytes().clone()));
                *request.method_mut() = parts.method.clone();
                *request.uri_mut() = parts.uri.clone();
                *request.version_mut() = parts.version;
                *request.headers_mut() = parts.headers.clone();
                *request.extensions_mut() = parts.extensions.clone();
                request.extensions_mut().insert(call.clone());
                Some(request)
            }
            Err(_) => None,
        };
        async move {
            match (item, request) {
                (Ok(call), Some(request)) => {
                    let response = inner.oneshot(request).await?;
                    let body = response.into_body().collect().await.map(|c| c.to_bytes());
                    // A notification gets no element in the batch answer.
                    Ok(if call.is_notification() {
                        Bytes::new()
                    } else {
                        body.unwrap_or_default()
                    })
                }
                (Err(error), _) => Ok(error.to_bytes()),
                (Ok(_), None) => Ok(Bytes::new()),
            }
        }
    });
    let answers = futures_util::future::try_join_all(answers).await?;
    Ok(json_response(
        StatusCode::OK,
        jsonrpc::join_batch(answers.iter().map(|a| &a[..])),
    ))
}

fn json_response(status: StatusCode, body: Bytes) -> Response<RpcBody> {
    let mut response = Response::new(RpcBody::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn rpc_error(error: &RpcError) -> Response<RpcBody> {
    reject(
        match error.code {
            code::PARSE_ERROR => "parse_error",
            _ => "invalid_request",
        },
        &error.message,
    );
    json_response(StatusCode::OK, error.to_bytes())
}

fn body_error(error: &BodyError) -> Response<RpcBody> {
    let (status, code, reason) = match error {
        BodyError::TooLarge { .. } => (
            StatusCode::PAYLOAD_TOO_LARGE,
            code::REQUEST_TOO_LARGE,
            "too_large",
        ),
        BodyError::TimedOut(_) => (
            StatusCode::REQUEST_TIMEOUT,
            code::REQUEST_TIMEOUT,
            "body_timeout",
        ),
        BodyError::Read(_) => (StatusCode::BAD_REQUEST, code::INVALID_REQUEST, "body_error"),
    };
    let message = error.to_string();
    reject(reason, &message);
    json_response(status, jsonrpc::error_response(b"", code, &message))
}

fn reject(reason: &'static str, message: &str) {
    metrics::counter!(REJECTED, "reason" => reason).increment(1);
    if let Some(suppressed) = REJECTIONS.check() {
        tracing::warn!(target: "switchyard::rpc", reason, error = message, suppressed, "rejected a request");
    }
}
