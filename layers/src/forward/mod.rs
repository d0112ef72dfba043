//! The innermost service: forward a JSON-RPC request to one upstream URL and return its answer.
//!
//! # Behaviour
//!
//! - Keep-alive HTTP/1.1 connections per upstream, with `TCP_NODELAY`, reused most recently
//!   used first; a request that met a connection the upstream had just closed is sent again on a
//!   new one (it was never written).
//! - The request body is sent as received, byte for byte; the upstream's status, headers and body
//!   come back unchanged, except hop-by-hop headers. `Accept-Encoding` is not passed on: layers
//!   read upstream answers, so they must arrive uncompressed.
//! - The response body is read in full, under a byte cap, before it is returned. op-node therefore
//!   never receives half a response: an upstream that dies mid-body becomes a clean error.
//! - One timeout covers the whole exchange (connect, send, headers, body).
//! - A transport failure, a timeout or an oversized answer becomes an HTTP 200 JSON-RPC error
//!   answering the request's id (from the [`RpcCall`] or [`RpcBatch`] extension), with a code from
//!   [`code`] (`UPSTREAM_TIMEOUT`, `UPSTREAM_UNREACHABLE`,
//!   `UPSTREAM_BAD_RESPONSE`) and a message naming the upstream, e.g.
//!   `upstream l2 timed out after 1s`. The [`ForwardError`] is also put in the response
//!   extensions, so outer layers can count it without parsing. The service never fails and never
//!   hangs: its error type is [`Infallible`].
//!
//! # Example
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use std::time::Duration;
//! use http::Request;
//! use switchyard_layers::{Forward, body::RpcBody};
//! use tower::ServiceExt;
//!
//! let l2 = Forward::new("l2", "http://127.0.0.1:8551".parse().unwrap())
//!     .with_timeout(Duration::from_secs(2));
//! let request = Request::post("/")
//!     .body(RpcBody::from(r#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}"#))
//!     .unwrap();
//! let response = l2.oneshot(request).await.unwrap();
//! # }
//! ```

mod pool;

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
    time::Duration,
};

use bytes::Bytes;
use futures_util::{FutureExt, future::Either};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, Uri, header};
use hyper_util::client::legacy::connect::HttpConnector;
use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tower::{BoxError, Service};

use self::pool::{ExchangeError, Pool};
#[cfg(feature = "tls")]
use crate::tls::{self, TlsError, TlsOptions, UpstreamConnector};
use crate::{
    body::{BodyError, CollectCapped, RpcBody},
    jsonrpc::{self, RpcBatch, RpcCall, code},
};

/// Default cap on an upstream's response body: 64 MiB, well over the largest Engine payload
/// (op-node's p2p layer caps a block at 10 MiB of snappy-compressed SSZ; hex JSON roughly doubles
/// the uncompressed size).
pub const DEFAULT_RESPONSE_LIMIT: usize = 64 * 1024 * 1024;

/// Default timeout for one exchange with an upstream.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// Largest read buffer of one upstream connection; the server reads op-node's requests in
/// buffers of the same size.
const READ_BUFFER_CAP: usize = 64 * 1024;

/// Why a forward failed. Put in the extensions of the synthesized error response.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ForwardError {
    /// No complete answer within the timeout.
    #[error("upstream {upstream} timed out after {}", humanize(*.timeout))]
    Timeout {
        /// The upstream's name.
        upstream: Arc<str>,
        /// The timeout that expired.
        timeout: Duration,
    },
    /// The upstream could not be reached or dropped the connection.
    #[error("upstream {upstream} unreachable: {reason}")]
    Unreachable {
        /// The upstream's name.
        upstream: Arc<str>,
        /// The transport error.
        reason: String,
    },
    /// TLS failed: certificate refused (unknown issuer, expired, wrong name) or the peer refused
    /// ours.
    #[error("upstream {upstream} TLS failed: {reason}")]
    Tls {
        /// The upstream's name.
        upstream: Arc<str>,
        /// What rustls objected to.
        reason: String,
    },
    /// The upstream's answer was larger than the cap.
    #[error("upstream {upstream} sent more than {limit} bytes")]
    TooLarge {
        /// The upstream's name.
        upstream: Arc<str>,
        /// The cap, in bytes.
        limit: usize,
    },
    /// The upstream's answer could not be read.
    #[error("upstream {upstream} sent a bad response: {reason}")]
    BadResponse {
        /// The upstream's name.
        upstream: Arc<str>,
        /// What was wrong.
        reason: String,
    },
}

impl ForwardError {
    /// The JSON-RPC error code this failure is reported with.
    pub fn code(&self) -> i32 {
        match self {
            Self::Timeout { .. } => code::UPSTREAM_TIMEOUT,
            Self::Unreachable { .. } | Self::Tls { .. } => code::UPSTREAM_UNREACHABLE,
            Self::BadResponse { .. } | Self::TooLarge { .. } => code::UPSTREAM_BAD_RESPONSE,
        }
    }

    /// A short, fixed label for metrics: `timeout`, `unreachable`, `too_large` or `bad_response`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Timeout { .. } => "timeout",
            Self::Unreachable { .. } => "unreachable",
            Self::Tls { .. } => "tls",
            Self::BadResponse { .. } => "bad_response",
            Self::TooLarge { .. } => "too_large",
        }
    }
}

fn humanize(d: Duration) -> String {
    if d.subsec_millis() == 0 && d.as_secs() > 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// Service that forwards requests to one upstream. See the [module docs](self).
pub struct Forward<C = HttpConnector> {
    pool: Arc<Pool<C>>,
    name: Arc<str>,
    timeout: Duration,
    response_limit: usize,
}

impl<C> Clone for Forward<C> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            name: self.name.clone(),
            timeout: self.timeout,
            response_limit: self.response_limit,
        }
    }
}

impl<C> std::fmt::Debug for Forward<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forward")
            .field("name", &self.name)
            .field("pool", &self.pool)
            .field("timeout", &self.timeout)
            .field("response_limit", &self.response_limit)
            .finish()
    }
}

/// What a connector must be: a tower service from the upstream's URL to a connection hyper can
/// speak HTTP/1.1 over (hyper-util's `HttpConnector`, hyper-rustls' `HttpsConnector`, ...).
pub trait Connector:
    Service<
        Uri,
        Response: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
        Future: Send,
        Error: Into<BoxError>,
    > + Clone
    + Send
    + Sync
    + 'static
{
}

impl<C> Connector for C where
    C: Service<
            Uri,
            Response: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
            Future: Send,
            Error: Into<BoxError>,
        > + Clone
        + Send
        + Sync
        + 'static
{
}

/// The TCP connector every `Forward` starts from: no Nagle delay, connects bounded by
/// [`DEFAULT_TIMEOUT`].
fn tcp_connector() -> HttpConnector {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(DEFAULT_TIMEOUT));
    connector
}

impl Forward<HttpConnector> {
    /// Forwards to `uri` (plain HTTP), calling the upstream `name` in errors, logs and metrics.
    pub fn new(name: impl Into<Arc<str>>, uri: Uri) -> Self {
        Self::with_connector(name, uri, tcp_connector())
    }
}

#[cfg(feature = "tls")]
impl Forward<UpstreamConnector> {
    /// Forwards to `uri`, over TLS if it is `https://` (see [`tls`]).
    ///
    /// # Errors
    ///
    /// If the TLS configuration cannot be built.
    pub fn with_tls(
        name: impl Into<Arc<str>>,
        uri: Uri,
        options: &TlsOptions,
    ) -> Result<Self, TlsError> {
        let connector = tls::connector(&uri, options, tcp_connector())?;
        Ok(Self::with_connector(name, uri, connector))
    }
}

impl<C: Connector> Forward<C> {
    /// Forwards to `uri` through `connector` (for TLS or custom transports).
    pub fn with_connector(name: impl Into<Arc<str>>, uri: Uri, connector: C) -> Self {
        Self {
            // Each pooled connection keeps its read buffer: uncapped, hyper grows it to ~400 KiB
            // on megabyte payloads, for every connection.
            pool: Arc::new(Pool::new(connector, uri, READ_BUFFER_CAP)),
            name: name.into(),
            timeout: DEFAULT_TIMEOUT,
            response_limit: DEFAULT_RESPONSE_LIMIT,
        }
    }
}

impl<C> Forward<C> {
    /// Sets the timeout of one whole exchange.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the cap on the upstream's response body, in bytes.
    pub fn with_response_limit(mut self, limit: usize) -> Self {
        self.response_limit = limit;
        self
    }

    /// The upstream's name.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// The upstream's URL.
    pub fn uri(&self) -> &Uri {
        self.pool.uri()
    }

    /// The timeout of one exchange.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

/// Whom an error answers: the ids of the forwarded call or batch.
#[derive(Debug)]
enum Answering {
    Call(Bytes),
    Batch(Vec<Bytes>),
}

impl Answering {
    fn of<B>(req: &Request<B>) -> Self {
        if let Some(call) = req.extensions().get::<RpcCall>() {
            Self::Call(Bytes::copy_from_slice(call.id()))
        } else if let Some(RpcBatch(calls)) = req.extensions().get::<RpcBatch>() {
            Self::Batch(
                calls
                    .iter()
                    .filter(|c| !c.is_notification())
                    .map(|c| Bytes::copy_from_slice(c.id()))
                    .collect(),
            )
        } else {
            Self::Call(Bytes::new())
        }
    }

    fn respond(&self, error: ForwardError) -> Response<RpcBody> {
        let message = error.to_string();
        let body = match self {
            Self::Call(id) => jsonrpc::error_response(id, error.code(), &message),
            Self::Batch(ids) => {
                let parts: Vec<Bytes> = ids
                    .iter()
                    .map(|id| jsonrpc::error_response(id, error.code(), &message))
                    .collect();
                jsonrpc::join_batch(parts.iter().map(|p| &p[..]))
            }
        };
        let mut response = Response::new(RpcBody::new(body));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response.extensions_mut().insert(error);
        response
    }
}

impl<C: Connector> Service<Request<RpcBody>> for Forward<C> {
    type Response = Response<RpcBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The pooled client queues internally and is always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<RpcBody>) -> Self::Future {
        let answering = Answering::of(&req);
        let span = exchange_span(&self.name, &req);
        let (mut parts, body) = req.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        parts.headers.remove(header::CONTENT_LENGTH);
        parts.headers.remove(header::ACCEPT_ENCODING);
        let request = Request::from_parts(parts, body);
        ResponseFuture {
            exchange: Box::pin(exchange(
                self.pool.clone(),
                request,
                self.response_limit,
                self.name.clone(),
            )),
            deadline: tokio::time::sleep(self.timeout),
            timeout: self.timeout,
            name: self.name.clone(),
            answering,
            span,
        }
    }
}

/// The span of one exchange (see [`trace`](crate::trace)): `"<upstream> <method>"`, inside the
/// span of the call it serves. Calls of the daemon's own (health polls) start no trace.
fn exchange_span<B>(name: &str, req: &Request<B>) -> tracing::Span {
    if tracing::Span::current().is_none() {
        return tracing::Span::none();
    }
    let method = match req.extensions().get::<RpcCall>() {
        Some(call) => call.method(),
        None if req.extensions().get::<RpcBatch>().is_some() => "batch",
        None => "call",
    };
    tracing::debug_span!(
        target: crate::trace::TARGET,
        "upstream",
        otel.name = %format_args!("{name} {method}"),
        otel.kind = "client",
        upstream = name,
        rpc.method = method,
        otel.status_code = tracing::field::Empty,
        error = tracing::field::Empty,
    )
}

const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    header::TE,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
    header::PROXY_AUTHENTICATE,
    header::TRAILER,
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Usually there is none: one look at each of the few names present, not eight lookups.
    let present = headers
        .keys()
        .any(|name| HOP_BY_HOP.contains(name) || name.as_str() == "keep-alive");
    if present {
        for name in HOP_BY_HOP {
            headers.remove(name);
        }
        headers.remove("keep-alive");
    }
}

/// Sends `req` on a pooled connection and reads the whole answer, under `limit` bytes.
///
/// Combinators, not an `async fn`: the future holds either the send or the read, never both
/// (an `async fn` kept both, and the request twice: 2,200 bytes allocated and copied per call).
fn exchange<C: Connector>(
    pool: Arc<Pool<C>>,
    req: Request<RpcBody>,
    limit: usize,
    name: Arc<str>,
) -> impl Future<Output = Result<Response<RpcBody>, ForwardError>> + Send + 'static {
    pool.send(req).then(move |sent| match sent {
        Err(error) => Either::Left(std::future::ready(Err(send_failed(&name, error)))),
        Ok((response, lease)) => {
            let (mut parts, body) = response.into_parts();
            Either::Right(CollectCapped::new(body, limit, None).map(move |collected| {
                let bytes = collected.map_err(|error| read_failed(&name, error))?;
                // Only a connection whose answer was read to the end can carry the next request.
                lease.give_back();
                strip_hop_by_hop(&mut parts.headers);
                parts.headers.remove(header::CONTENT_LENGTH);
                Ok(Response::from_parts(parts, RpcBody::new(bytes)))
            }))
        }
    })
}

/// What sending a request failed with, as the caller sees it.
fn send_failed(name: &Arc<str>, error: ExchangeError) -> ForwardError {
    match error {
        // Only a failed connect means nobody is there; anything later is a broken answer.
        ExchangeError::Connect(source) => {
            tls_or(name, &*source, |reason| ForwardError::Unreachable {
                upstream: name.clone(),
                reason,
            })
        }
        ExchangeError::Send(source) => tls_or(name, &source, |reason| ForwardError::BadResponse {
            upstream: name.clone(),
            reason,
        }),
    }
}

/// What reading an answer's body failed with, as the caller sees it.
fn read_failed(name: &Arc<str>, error: BodyError) -> ForwardError {
    match error {
        BodyError::TooLarge { limit } => ForwardError::TooLarge {
            upstream: name.clone(),
            limit,
        },
        BodyError::Read(source) => tls_or(name, &*source, |reason| ForwardError::BadResponse {
            upstream: name.clone(),
            reason: format!("connection closed mid-response: {reason}"),
        }),
        other => ForwardError::BadResponse {
            upstream: name.clone(),
            reason: other.to_string(),
        },
    }
}

/// A TLS failure if rustls is behind `source`; otherwise `other` of its error chain.
#[cfg(feature = "tls")]
fn tls_or(
    name: &Arc<str>,
    source: &(dyn std::error::Error + 'static),
    other: impl FnOnce(String) -> ForwardError,
) -> ForwardError {
    match tls::rustls_error(source) {
        Some(tls) => ForwardError::Tls {
            upstream: name.clone(),
            reason: tls.to_string(),
        },
        None => other(error_chain(source)),
    }
}

/// Without TLS support no failure is a TLS one.
#[cfg(not(feature = "tls"))]
fn tls_or(
    _name: &Arc<str>,
    source: &(dyn std::error::Error + 'static),
    other: impl FnOnce(String) -> ForwardError,
) -> ForwardError {
    other(error_chain(source))
}

pin_project! {
    /// Response future of [`Forward`].
    pub struct ResponseFuture {
        exchange: Pin<Box<dyn Future<Output = Result<Response<RpcBody>, ForwardError>> + Send>>,
        #[pin]
        deadline: Sleep,
        timeout: Duration,
        name: Arc<str>,
        answering: Answering,
        span: tracing::Span,
    }
}

impl std::fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("upstream", &self.name)
            .finish_non_exhaustive()
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response<RpcBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        let error = match this.exchange.as_mut().poll(cx) {
            Poll::Ready(Ok(response)) => return Poll::Ready(Ok(response)),
            Poll::Ready(Err(error)) => error,
            Poll::Pending => {
                // Dropping the exchange with us closes its connection: half an exchange cannot
                // be reused.
                ready!(this.deadline.poll(cx));
                ForwardError::Timeout {
                    upstream: this.name.clone(),
                    timeout: *this.timeout,
                }
            }
        };
        if !this.span.is_disabled() {
            this.span.record("otel.status_code", "error");
            this.span.record("error", error.label());
        }
        Poll::Ready(Ok(this.answering.respond(error)))
    }
}

/// The error and its sources on one line: hyper's top-level messages alone are vague.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Whether a response is one of [`Forward`]'s synthesized failures, and which.
pub fn forward_error<B>(response: &Response<B>) -> Option<&ForwardError> {
    response.extensions().get::<ForwardError>()
}

/// Whether the upstream accepted the call: HTTP 200, no transport failure, and a JSON-RPC answer
/// with a `result` and no `error`. Reads the (buffered) body without consuming it.
pub fn accepted(response: &Response<RpcBody>) -> bool {
    response.status() == http::StatusCode::OK
        && forward_error(response).is_none()
        && jsonrpc::RpcResponse::from_slice(&crate::body::peek(response.body()))
            .is_ok_and(|answer| answer.result.is_some() && answer.error.is_none())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tokio::net::TcpListener;
    use tower::ServiceExt;

    async fn body_json(response: Response<RpcBody>) -> serde_json::Value {
        let bytes = response
            .into_body()
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        serde_json::from_slice(&bytes).expect("json")
    }

    fn call_request(id: &[u8]) -> Request<RpcBody> {
        let call = RpcCall::new("eth_chainId", id, b"[]");
        let mut req = Request::post("/")
            .body(RpcBody::new(call.bytes().clone()))
            .expect("req");
        req.extensions_mut().insert(call);
        req
    }

    #[tokio::test]
    async fn refused_connection_is_a_json_rpc_error_with_the_id() {
        // Bind then drop: the port is very likely closed when we connect.
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let forward = Forward::new("l2", format!("http://{addr}").parse().expect("uri"));
        let response = forward
            .oneshot(call_request(b"\"q\""))
            .await
            .expect("infallible");
        assert!(matches!(
            forward_error(&response),
            Some(ForwardError::Unreachable { .. })
        ));
        let json = body_json(response).await;
        assert_eq!(json["id"], "q");
        assert_eq!(json["error"]["code"], code::UPSTREAM_UNREACHABLE);
        assert!(
            json["error"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("upstream l2 unreachable"))
        );
    }

    #[tokio::test]
    async fn a_silent_upstream_times_out_with_a_clear_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        // Accept and hold the connection without answering.
        let holder = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.expect("accept");
            std::future::pending::<()>().await;
            drop(socket);
        });
        let forward = Forward::new("builder-a", format!("http://{addr}").parse().expect("uri"))
            .with_timeout(Duration::from_millis(50));
        let response = forward
            .oneshot(call_request(b"3"))
            .await
            .expect("infallible");
        let json = body_json(response).await;
        assert_eq!(json["id"], 3);
        assert_eq!(json["error"]["code"], code::UPSTREAM_TIMEOUT);
        assert_eq!(
            json["error"]["message"],
            "upstream builder-a timed out after 50ms"
        );
        holder.abort();
    }

    /// How the test upstream treats one connection.
    #[derive(Clone, Copy)]
    enum Upstream {
        /// Answers every request, keeping the connection open.
        KeepAlive,
        /// Answers one request, then closes without saying so (as a server's idle timeout does).
        CloseAfterOne,
        /// Sends the head and half the body of the first connection's answer, then stalls.
        StallFirst,
    }

    /// A raw HTTP/1.1 upstream answering `{"jsonrpc":"2.0","id":1,"result":"0x1"}`; counts its
    /// connections.
    async fn upstream(
        behaviour: Upstream,
    ) -> (
        Uri,
        Arc<std::sync::atomic::AtomicUsize>,
        tokio::task::JoinHandle<()>,
    ) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let uri = format!("http://{}/", listener.local_addr().expect("addr"))
            .parse()
            .expect("uri");
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let server = tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let nth = count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let body = br#"{"jsonrpc":"2.0","id":1,"result":"0x1"}"#;
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                        body.len()
                    );
                    let mut buf = Vec::new();
                    loop {
                        // One request: headers, then as many body bytes as announced.
                        let end = loop {
                            if let Some(end) = memchr::memmem::find(&buf, b"\r\n\r\n") {
                                break end + 4;
                            }
                            let mut chunk = [0u8; 4096];
                            match socket.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        };
                        let head_text = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                        let length: usize = head_text
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        while buf.len() < end + length {
                            let mut chunk = [0u8; 4096];
                            match socket.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        buf.drain(..end + length);
                        match behaviour {
                            Upstream::StallFirst if nth == 0 => {
                                let _ = socket.write_all(head.as_bytes()).await;
                                let _ = socket.write_all(&body[..10]).await;
                                std::future::pending::<()>().await;
                            }
                            _ => {
                                let _ = socket.write_all(head.as_bytes()).await;
                                let _ = socket.write_all(body).await;
                            }
                        }
                        if matches!(behaviour, Upstream::CloseAfterOne) {
                            return;
                        }
                    }
                });
            }
        });
        (uri, accepted, server)
    }

    async fn result_of(forward: &Forward) -> serde_json::Value {
        let response = forward
            .clone()
            .oneshot(call_request(b"1"))
            .await
            .expect("infallible");
        body_json(response).await
    }

    #[test]
    fn hop_by_hop_headers_stop_here_and_the_rest_pass() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        let untouched = headers.clone();
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers, untouched);

        headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
        headers.insert(
            header::PROXY_AUTHORIZATION,
            HeaderValue::from_static("Basic x"),
        );
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers, untouched);
    }

    /// Three calls in a row, each answered: how many connections the upstream saw.
    async fn connections_for_three_calls(behaviour: Upstream) -> usize {
        let (uri, accepted, server) = upstream(behaviour).await;
        let forward = Forward::new("l2", uri);
        for _ in 0..3 {
            assert_eq!(result_of(&forward).await["result"], "0x1");
        }
        server.abort();
        accepted.load(std::sync::atomic::Ordering::SeqCst)
    }

    #[tokio::test]
    async fn one_connection_carries_consecutive_requests() {
        assert_eq!(connections_for_three_calls(Upstream::KeepAlive).await, 1);
    }

    #[tokio::test]
    async fn a_connection_the_upstream_closed_is_not_reused() {
        assert_eq!(
            connections_for_three_calls(Upstream::CloseAfterOne).await,
            3
        );
    }

    #[tokio::test]
    async fn a_half_read_answer_never_leaves_its_connection_in_the_pool() {
        let (uri, accepted, server) = upstream(Upstream::StallFirst).await;
        let forward = Forward::new("l2", uri).with_timeout(Duration::from_millis(100));
        let json = result_of(&forward).await;
        assert_eq!(json["error"]["code"], code::UPSTREAM_TIMEOUT);
        // The stalled connection still holds half an answer: the next request needs another.
        assert_eq!(result_of(&forward).await["result"], "0x1");
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
        server.abort();
    }
}
