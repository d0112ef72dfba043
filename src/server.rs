//! The HTTP/1.1 server op-node talks to: accept loop, connection cap, graceful drain, and the
//! adapter that hands each request to the tower stack.

use std::{
    cell::RefCell,
    convert::Infallible,
    future::Future,
    sync::Arc,
    task::{Context, Poll, Waker},
    time::Duration,
};

use futures_util::future::Either;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
};
use tokio::{net::TcpListener, sync::Semaphore};
use tower::{Service, ServiceExt, util::Oneshot};

use crate::config::ServerLimits;

/// Serves `service` on `listener` until `shutdown` resolves, then lets in-flight requests
/// finish (up to `limits.shutdown_timeout`).
///
/// At most `limits.max_connections` connections are served at once; further clients wait in the
/// listen backlog. A client that takes longer than `limits.header_read_timeout` to send a
/// request's headers is disconnected.
pub async fn serve<S, B>(
    listener: TcpListener,
    service: S,
    limits: &ServerLimits,
    shutdown: impl Future<Output = ()>,
) where
    S: Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        // Request line and headers past 64 KiB are refused (431) before they are buffered further.
        .max_buf_size(64 * 1024)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot,
            () = &mut shutdown => break,
        };
        let Ok(slot) = slot else { break };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(target: "switchyard::server", %error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let connection =
            http.serve_connection(TokioIo::new(stream), CallWhenReady::new(service.clone()));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(target: "switchyard::server", %peer, %error, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    tracing::info!(target: "switchyard::server", "shutting down: letting in-flight requests finish");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!(target: "switchyard::server", "all connections closed"),
        () = tokio::time::sleep(limits.shutdown_timeout) => {
            tracing::warn!(target: "switchyard::server", timeout = ?limits.shutdown_timeout, "shutdown timeout: dropping remaining connections");
        }
    }
}

/// A tower service as hyper's connection calls it: what `hyper_util`'s `TowerToHyperService`
/// does, without its clone of the whole stack per request (ours calls a ready service in place;
/// the clone and its drop were 2 % of an eth_* call's instructions: 45,089 → 44,209).
struct CallWhenReady<S> {
    service: RefCell<S>,
}

impl<S> CallWhenReady<S> {
    fn new(service: S) -> Self {
        Self {
            service: RefCell::new(service),
        }
    }
}

impl<S, R> hyper::service::Service<R> for CallWhenReady<S>
where
    S: Service<R, Error = Infallible> + Clone,
{
    type Response = S::Response;
    type Error = Infallible;
    type Future = Either<S::Future, Oneshot<S, R>>;

    fn call(&self, req: R) -> Self::Future {
        // hyper calls from its own poll, one request at a time: the borrow ends here and is
        // never taken twice.
        let mut service = self.service.borrow_mut();
        match service.poll_ready(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(Ok(())) => Either::Left(service.call(req)),
            Poll::Ready(Err(never)) => match never {},
            // Not ready now: a clone waits for readiness with this request's own waker.
            Poll::Pending => Either::Right(service.clone().oneshot(req)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        convert::Infallible,
        future::Ready,
        sync::{
            Arc,
            atomic::{AtomicUsize, Ordering},
        },
        task::{Context, Poll},
    };

    use hyper::service::Service as _;

    use super::CallWhenReady;

    /// Ready only from its second `poll_ready` on (shared by its clones); counts its calls.
    #[derive(Clone, Default)]
    struct SlowToStart {
        polls: Arc<AtomicUsize>,
        calls: Arc<AtomicUsize>,
    }

    impl tower::Service<u32> for SlowToStart {
        type Response = u32;
        type Error = Infallible;
        type Future = Ready<Result<u32, Infallible>>;

        fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            if self.polls.fetch_add(1, Ordering::SeqCst) == 0 {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, req: u32) -> Self::Future {
            self.calls.fetch_add(1, Ordering::SeqCst);
            std::future::ready(Ok(req * 2))
        }
    }

    #[tokio::test]
    async fn a_service_not_yet_ready_is_waited_for_and_a_ready_one_called_in_place() {
        let service = SlowToStart::default();
        let hyper_service = CallWhenReady::new(service.clone());
        // Not ready: the request waits on a clone, and is answered once it is.
        assert_eq!(hyper_service.call(1).await, Ok(2));
        assert_eq!(service.polls.load(Ordering::SeqCst), 2);
        // Ready: called at once, with no further wait.
        assert_eq!(hyper_service.call(2).await, Ok(4));
        assert_eq!(service.polls.load(Ordering::SeqCst), 3);
        assert_eq!(service.calls.load(Ordering::SeqCst), 2);
    }
}
