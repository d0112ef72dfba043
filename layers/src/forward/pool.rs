//! Keep-alive HTTP/1.1 connections to one upstream, without hyper-util's general-purpose client.
//!
//! An upstream here is one fixed URL spoken to in HTTP/1.1, so the pool is a stack of idle
//! connections: no pool keys to build and hash per request, no race between a checkout and a
//! speculative connect, no task spawned per response to wait for its connection to go idle.

use std::{
    future::Future,
    sync::{Arc, Mutex},
    time::Duration,
};

use http::{HeaderValue, Request, Response, Uri};
use hyper::{
    body::Incoming,
    client::conn::{
        TrySendError,
        http1::{self, SendRequest},
    },
};
use tokio::time::Instant;
use tower::{BoxError, ServiceExt};

use crate::body::RpcBody;

/// Idle connections kept at most; more (after a burst) are closed as they come back.
const MAX_IDLE: usize = 64;

/// How long a connection may sit idle before it is closed rather than reused: under geth's own
/// idle timeout (120 s), so that we rarely race the server's close.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Why a connection could not be had or used.
#[derive(Debug)]
pub(super) enum ExchangeError {
    /// Connecting (TCP, TLS or the HTTP handshake) failed: nobody usable is there.
    Connect(BoxError),
    /// The connection failed after the request was handed to it.
    Send(hyper::Error),
}

/// The connections of one upstream, and how to open more.
pub(super) struct Pool<C> {
    connector: C,
    uri: Uri,
    /// The request target (origin form) and `Host`, made once from the upstream's URL.
    path: Uri,
    host: Option<HeaderValue>,
    read_buffer_cap: usize,
    /// Least recently used first: connections are taken from and returned to the end.
    idle: Mutex<Vec<Idle>>,
}

struct Idle {
    sender: SendRequest<RpcBody>,
    since: Instant,
}

/// A connection on loan for one exchange; [`Lease::give_back`] returns it once its answer has
/// been read in full.
pub(super) struct Lease<C> {
    sender: SendRequest<RpcBody>,
    pool: Arc<Pool<C>>,
}

impl<C: super::Connector> Lease<C> {
    /// Gives the connection back to its pool, once its answer was read in full.
    pub(super) fn give_back(self) {
        self.pool.put(self.sender);
    }
}

impl<C: super::Connector> Pool<C> {
    pub(super) fn new(connector: C, uri: Uri, read_buffer_cap: usize) -> Self {
        let path = uri
            .path_and_query()
            .map_or_else(|| Uri::from_static("/"), |p| Uri::from(p.clone()));
        let host = uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok());
        Self {
            connector,
            uri,
            path,
            host,
            read_buffer_cap,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Sends `req` and returns the answer's head, its body still to be read, and the connection.
    ///
    /// The request is made ready here; the future owns what it needs. Not an `async fn`: that
    /// would keep a second copy of the request (and the rare resend path's state) in every
    /// exchange's future, which each upstream call allocates and copies.
    pub(super) fn send(
        self: Arc<Self>,
        mut req: Request<RpcBody>,
    ) -> impl Future<Output = Result<(Response<Incoming>, Lease<C>), ExchangeError>> + Send {
        *req.uri_mut() = self.path.clone();
        *req.version_mut() = http::Version::HTTP_11;
        if let Some(host) = &self.host {
            req.headers_mut().insert(http::header::HOST, host.clone());
        }
        let pool = self;
        async move {
            // Connecting (TCP, TLS, the handshake) is a large future: boxed, only the rare call
            // that connects pays for it.
            let (mut sender, reused) = match pool.take_idle().await {
                Some(sender) => (sender, true),
                None => (Box::pin(pool.connect()).await?, false),
            };
            let error = match sender.try_send_request(req).await {
                Ok(response) => return Ok((response, Lease { sender, pool })),
                Err(error) => error,
            };
            Box::pin(pool.resend(error, reused)).await
        }
    }

    /// After a failed send: the request again on a fresh connection, if nothing of it went out.
    async fn resend(
        self: Arc<Self>,
        mut error: TrySendError<Request<RpcBody>>,
        reused: bool,
    ) -> Result<(Response<Incoming>, Lease<C>), ExchangeError> {
        match error.take_message() {
            // The server closed a kept-alive connection before our request went out on it:
            // nothing was sent, so sending it on a fresh one is safe.
            Some(req) if reused => {
                let mut sender = self.connect().await?;
                let response = sender
                    .send_request(req)
                    .await
                    .map_err(ExchangeError::Send)?;
                Ok((response, Lease { sender, pool: self }))
            }
            _ => Err(ExchangeError::Send(error.into_error())),
        }
    }

    /// Takes back a connection whose answer was read in full.
    fn put(&self, sender: SendRequest<RpcBody>) {
        if sender.is_closed() {
            return;
        }
        let now = Instant::now();
        let mut idle = lock(&self.idle);
        let stale = idle.partition_point(|i| now.duration_since(i.since) >= IDLE_TIMEOUT);
        idle.drain(..stale);
        if idle.len() < MAX_IDLE {
            idle.push(Idle { sender, since: now });
        }
    }

    /// The most recently used idle connection that still works, if any.
    async fn take_idle(&self) -> Option<SendRequest<RpcBody>> {
        loop {
            let Idle { mut sender, since } = lock(&self.idle).pop()?;
            if since.elapsed() >= IDLE_TIMEOUT || sender.is_closed() {
                continue;
            }
            // Given back as soon as its answer was read, a connection may not have noticed yet
            // that it is idle again: a moment, not a round trip.
            if sender.ready().await.is_ok() {
                return Some(sender);
            }
        }
    }

    async fn connect(&self) -> Result<SendRequest<RpcBody>, ExchangeError> {
        let io = self
            .connector
            .clone()
            .oneshot(self.uri.clone())
            .await
            .map_err(|e| ExchangeError::Connect(e.into()))?;
        let (sender, connection) = http1::Builder::new()
            .max_buf_size(self.read_buffer_cap)
            .handshake(io)
            .await
            .map_err(|e| ExchangeError::Connect(e.into()))?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(target: "switchyard::forward", %error, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }
}

impl<C> Pool<C> {
    pub(super) fn uri(&self) -> &Uri {
        &self.uri
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl<C> std::fmt::Debug for Pool<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("uri", &self.uri)
            .field("idle", &lock(&self.idle).len())
            .finish_non_exhaustive()
    }
}
