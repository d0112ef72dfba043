use std::{
    sync::{
        Arc,
        atomic::{AtomicU32, AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::{sync::mpsc, time::Instant};
use tracing::Instrument;

use bytes::Bytes;

use super::{BuilderClient, BuilderError, BuilderHealth, metrics};
use crate::{engine::EngineMethod, jsonrpc::RpcCall, trace::TraceLink};

/// Capacities of a builder's lanes.
#[derive(Clone, Copy, Debug)]
pub struct LaneConfig {
    /// Engine calls that may wait: a few blocks' worth of boost sync.
    pub engine_capacity: usize,
    /// Mirrored transactions that may wait.
    pub transaction_capacity: usize,
    /// Bytes of calls that may wait in one lane: a builder that falls behind must not make
    /// switchyard hold its backlog of megabyte-sized payloads.
    pub bytes_capacity: usize,
    /// A forkchoice update that waited longer than this in the engine lane (behind a builder
    /// that hangs) is dropped unsent: op-node has moved on, and a builder that recovers must
    /// not be handed a backlog of old heads and old blocks to build. Blocks (`newPayload`) are
    /// still sent: the builder needs them all. Best set to the builder's timeout.
    pub forkchoice_stale_after: Duration,
}

impl Default for LaneConfig {
    fn default() -> Self {
        Self {
            engine_capacity: 64,
            transaction_capacity: 4_096,
            bytes_capacity: 32 * 1024 * 1024,
            forkchoice_stale_after: Duration::from_secs(1),
        }
    }
}

/// Why a call was not queued.
#[derive(Clone, Copy, Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum LaneError {
    /// The lane is full; the call was dropped (and counted).
    #[error("queue full")]
    Full,
    /// The lane's worker is gone.
    #[error("queue closed")]
    Closed,
}

/// What to do with a queued call's answer.
#[non_exhaustive]
pub enum Reply {
    /// Nothing: fire, but not forget (failures are counted and feed the builder's health).
    None,
    /// Hand the answer to this function, on the lane's worker.
    Callback(Box<dyn FnOnce(Result<Bytes, BuilderError>) + Send>),
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::None => "Reply::None",
            Self::Callback(_) => "Reply::Callback",
        })
    }
}

struct Job {
    call: RpcCall,
    reply: Reply,
    queued: Instant,
    // The span of the call that queued it: this call's span is its child.
    trace: TraceLink,
}

/// Forkchoice updates in a row a builder may hold unanswered before it is skipped while it holds
/// another: one or two hung updates (a slow block) cost it nothing further.
pub(super) const UNANSWERED_IN_A_ROW: u32 = 3;

/// A bounded queue with one worker: calls reach the builder one at a time, in order.
#[derive(Debug)]
pub(super) struct Lane {
    sender: mpsc::Sender<Job>,
    // A forkchoice update is with the builder now: the next block's may supersede it.
    forkchoice_in_flight: Arc<std::sync::atomic::AtomicBool>,
    // Forkchoice updates in a row the builder held until superseded or timed out.
    forkchoice_unanswered: Arc<AtomicU32>,
    supersede: Arc<tokio::sync::Notify>,
    depth: Arc<AtomicUsize>,
    bytes: Arc<AtomicUsize>,
    bytes_capacity: usize,
    metrics: Arc<metrics::LaneMetrics>,
}

impl Lane {
    /// Starts the worker. `stale_after`: forkchoice updates that waited longer are dropped
    /// unsent (the engine lane; `None` for lanes that carry none).
    pub(super) fn spawn(
        client: BuilderClient,
        kind: &'static str,
        capacity: usize,
        bytes_capacity: usize,
        health: Option<BuilderHealth>,
        stale_after: Option<Duration>,
    ) -> Self {
        let (sender, mut receiver) = mpsc::channel::<Job>(capacity.max(1));
        let depth = Arc::new(AtomicUsize::new(0));
        let bytes = Arc::new(AtomicUsize::new(0));
        let lane_metrics = Arc::new(metrics::LaneMetrics::new(client.name().clone(), kind));
        let (worker_depth, worker_bytes) = (depth.clone(), bytes.clone());
        let worker_metrics = lane_metrics.clone();
        let forkchoice_in_flight = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let forkchoice_unanswered = Arc::new(AtomicU32::new(0));
        let supersede = Arc::new(tokio::sync::Notify::new());
        let (in_flight, superseded) = (forkchoice_in_flight.clone(), supersede.clone());
        let unanswered = forkchoice_unanswered.clone();
        // How long a forkchoice update given up on may still take to finish: the builder's
        // timeout ends it first where the client has one.
        let detached_for = stale_after.unwrap_or(LaneConfig::default().forkchoice_stale_after);
        tokio::spawn(async move {
            while let Some(job) = receiver.recv().await {
                let waiting = worker_depth
                    .fetch_sub(1, Ordering::Relaxed)
                    .saturating_sub(1);
                worker_bytes.fetch_sub(job.call.bytes().len(), Ordering::Relaxed);
                worker_metrics.depth(waiting);
                let method = job.call.method();
                let span = tracing::debug_span!(
                    target: crate::trace::TARGET,
                    parent: None,
                    "builder_call",
                    otel.name = %format_args!("{} {method} (queued)", client.name()),
                    builder = %client.name(),
                    lane = kind,
                    rpc.method = method,
                    queued_ms = job.queued.elapsed().as_secs_f64() * 1e3,
                    outcome = tracing::field::Empty,
                );
                job.trace.adopt(&span);
                let forkchoice = matches!(
                    EngineMethod::parse(method),
                    Some(EngineMethod::ForkchoiceUpdated(_))
                );
                let result = if forkchoice
                    && stale_after.is_some_and(|bound| job.queued.elapsed() > bound)
                {
                    // Waited past the bound: op-node has moved on, so it is not sent.
                    None
                } else if forkchoice {
                    in_flight.store(true, Ordering::Release);
                    // Boxed, so that it can be left to finish on its own (below).
                    let mut relay = Box::pin(client.relay(&job.call).instrument(span.clone()));
                    let relayed = tokio::select! {
                        biased;
                        result = &mut relay => Some(result),
                        () = superseded.notified() => None,
                    };
                    if relayed.is_none() {
                        // Given up on, not cut off: the builder has the update, and cutting the
                        // call would close its connection, so that the next block's attributes
                        // pay for a new one (a TCP or TLS handshake per block, against a builder
                        // merely a little slower than op-geth). Its answer goes unread; one that
                        // never comes is dropped at the bound, and its connection with it.
                        tokio::spawn(async move {
                            let _ = tokio::time::timeout(detached_for, relay).await;
                        });
                    }
                    let held = match &relayed {
                        None => true,
                        Some(Err(error)) => error.label() == "timeout",
                        Some(Ok(_)) => false,
                    };
                    if held {
                        unanswered.fetch_add(1, Ordering::Relaxed);
                    } else {
                        unanswered.store(0, Ordering::Relaxed);
                    }
                    in_flight.store(false, Ordering::Release);
                    relayed
                } else {
                    Some(client.relay(&job.call).instrument(span.clone()).await)
                };
                let Some(result) = result else {
                    // A forkchoice update dropped unsent, or given up at the next block's
                    // attributes while the builder held it: what it was for has passed, and the
                    // calls behind it must reach the builder now. Says nothing of the builder's
                    // health: the next answer will.
                    let stale = Err(BuilderError::Stale);
                    span.record("outcome", "stale");
                    worker_metrics.call(method, &stale);
                    tracing::debug!(target: "switchyard::builder", builder = %client.name(), lane = kind, method, "stale forkchoice update dropped");
                    if let Reply::Callback(reply) = job.reply {
                        reply(stale);
                    }
                    continue;
                };
                if let Some(health) = &health {
                    health.observe(method, &result);
                }
                worker_metrics.call(method, &result);
                span.record(
                    "outcome",
                    result.as_ref().map_or_else(BuilderError::label, |_| "ok"),
                );
                if let Err(error) = &result {
                    tracing::debug!(target: "switchyard::builder", builder = %client.name(), lane = kind, method, %error, "builder call failed");
                }
                if let Reply::Callback(reply) = job.reply {
                    reply(result);
                }
            }
        });
        Self {
            sender,
            forkchoice_in_flight,
            forkchoice_unanswered,
            supersede,
            depth,
            bytes,
            bytes_capacity,
            metrics: lane_metrics,
        }
    }

    /// Gives up on the forkchoice update the builder holds now, if any: called as the next
    /// block's attributes are queued, so that a builder that hangs on one update costs that
    /// block only, never the next. The lane moves on at once; the update's call finishes on its
    /// own, its answer unread, so that its connection is kept.
    pub(super) fn supersede_forkchoice(&self) {
        if self.forkchoice_in_flight.load(Ordering::Acquire) {
            // Wakes the worker's wait only: no permit is left behind for a later update.
            self.supersede.notify_waiters();
        }
    }

    /// Whether the builder holds a forkchoice update now after holding the last
    /// [`UNANSWERED_IN_A_ROW`] unanswered (each superseded by the next block's, or timed out): a
    /// builder that answers none is not sent one per block (each would cost a connection, the
    /// last one given up, and getPayload a wait for an answer that never comes), but one per
    /// timeout, until it answers again.
    pub(super) fn holds_unanswered_forkchoice(&self) -> bool {
        self.forkchoice_unanswered.load(Ordering::Relaxed) >= UNANSWERED_IN_A_ROW
            && self.forkchoice_in_flight.load(Ordering::Acquire)
    }

    /// Queues `call`, sent as it is (its own bytes and id) with the builder's JWT.
    pub(super) fn send(&self, call: &RpcCall, reply: Reply) -> Result<(), LaneError> {
        let size = call.bytes().len();
        if self.bytes.load(Ordering::Relaxed) + size > self.bytes_capacity {
            self.metrics.dropped();
            return Err(LaneError::Full);
        }
        self.bytes.fetch_add(size, Ordering::Relaxed);
        let waiting = self.depth.fetch_add(1, Ordering::Relaxed) + 1;
        match self.sender.try_send(Job {
            call: call.clone(),
            reply,
            queued: Instant::now(),
            trace: TraceLink::current(),
        }) {
            Ok(()) => {
                self.metrics.depth(waiting);
                Ok(())
            }
            Err(error) => {
                self.depth.fetch_sub(1, Ordering::Relaxed);
                self.bytes.fetch_sub(size, Ordering::Relaxed);
                self.metrics.dropped();
                match error {
                    mpsc::error::TrySendError::Full(_) => Err(LaneError::Full),
                    mpsc::error::TrySendError::Closed(_) => Err(LaneError::Closed),
                }
            }
        }
    }

    /// Whether a call would be queued now (the worker may free a place any moment).
    pub(super) fn has_room(&self) -> bool {
        self.sender.capacity() > 0 && self.bytes.load(Ordering::Relaxed) < self.bytes_capacity
    }

    /// Counts a call that was not queued because the lane was full.
    pub(super) fn note_dropped(&self) {
        self.metrics.dropped();
    }

    pub(super) fn depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use std::{
        convert::Infallible,
        sync::{Arc, Mutex},
    };

    use http::{Request, Response};
    use tokio::sync::{Notify, oneshot};

    use super::*;
    use crate::body::RpcBody;

    fn call(method: &str) -> RpcCall {
        RpcCall::new(method, b"1", b"[]")
    }

    /// The result a queued call's callback receives.
    fn send(lane: &Lane, method: &str) -> oneshot::Receiver<Result<Bytes, BuilderError>> {
        let (tx, rx) = oneshot::channel();
        let reply = Reply::Callback(Box::new(move |result| {
            let _ = tx.send(result);
        }));
        lane.send(&call(method), reply).expect("queued");
        rx
    }

    /// The methods that reached the builder, in order.
    type Log = Arc<Mutex<Vec<String>>>;

    /// A builder that logs what reaches it and holds its first call: until `release` is
    /// notified, or forever without one. `arrived` is notified when the first call is in.
    fn holding_first_call(
        sent: &Log,
        arrived: &Arc<Notify>,
        release: Option<Arc<Notify>>,
    ) -> BuilderClient {
        let (log, first_in) = (sent.clone(), arrived.clone());
        let upstream = tower::service_fn(move |req: Request<RpcBody>| {
            let (log, first_in, gate) = (log.clone(), first_in.clone(), release.clone());
            async move {
                let method = req
                    .extensions()
                    .get::<RpcCall>()
                    .map(|c| c.method().to_owned())
                    .unwrap_or_default();
                let first = {
                    let mut log = log.lock().expect("log");
                    log.push(method);
                    log.len() == 1
                };
                if first {
                    first_in.notify_one();
                    match gate {
                        Some(gate) => gate.notified().await,
                        None => std::future::pending::<()>().await,
                    }
                }
                let body = br#"{"jsonrpc":"2.0","id":1,"result":"0x1"}"#;
                Ok::<_, Infallible>(Response::new(RpcBody::new(Bytes::from_static(body))))
            }
        });
        BuilderClient::from_service("builder", upstream)
    }

    #[tokio::test(start_paused = true)]
    async fn forkchoice_updates_that_waited_past_the_bound_are_not_sent() {
        let sent = Log::default();
        let (arrived, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let client = holding_first_call(&sent, &arrived, Some(release.clone()));
        let lane = Lane::spawn(
            client,
            "engine",
            8,
            1 << 20,
            None,
            Some(Duration::from_secs(1)),
        );

        let hung = send(&lane, "engine_forkchoiceUpdatedV3");
        arrived.notified().await;
        let old_head = send(&lane, "engine_forkchoiceUpdatedV3");
        let block = send(&lane, "engine_newPayloadV4");
        tokio::time::advance(Duration::from_secs(2)).await;
        let fresh = send(&lane, "engine_forkchoiceUpdatedV3");
        release.notify_one();

        assert!(hung.await.expect("answered").is_ok());
        assert_eq!(old_head.await.expect("answered"), Err(BuilderError::Stale));
        assert!(
            block.await.expect("answered").is_ok(),
            "blocks are always sent"
        );
        assert!(fresh.await.expect("answered").is_ok());
        assert_eq!(
            *sent.lock().expect("log"),
            [
                "engine_forkchoiceUpdatedV3",
                "engine_newPayloadV4",
                "engine_forkchoiceUpdatedV3"
            ],
            "the stale update never reached the builder"
        );
    }

    /// A forkchoice update the builder holds, a block queued behind it, the update given up:
    /// the update ends stale and the block is answered.
    async fn supersede_a_held_update(lane: &Lane, arrived: &Notify) {
        let held = send(lane, "engine_forkchoiceUpdatedV3");
        arrived.notified().await;
        let block = send(lane, "engine_newPayloadV4");
        lane.supersede_forkchoice();
        assert_eq!(held.await.expect("answered"), Err(BuilderError::Stale));
        assert!(block.await.expect("answered").is_ok(), "the lane moved on");
    }

    #[tokio::test]
    async fn a_held_forkchoice_update_is_given_up_when_superseded_and_the_lane_moves_on() {
        let sent = Log::default();
        let arrived = Arc::new(Notify::new());
        let client = holding_first_call(&sent, &arrived, None);
        let lane = Lane::spawn(client, "engine", 8, 1 << 20, None, None);
        // Nothing held: nothing to give up, and no later update is affected.
        lane.supersede_forkchoice();
        supersede_a_held_update(&lane, &arrived).await;
        let next = send(&lane, "engine_forkchoiceUpdatedV3");
        assert!(next.await.expect("answered").is_ok());
        assert_eq!(
            *sent.lock().expect("log"),
            [
                "engine_forkchoiceUpdatedV3",
                "engine_newPayloadV4",
                "engine_forkchoiceUpdatedV3"
            ]
        );
    }

    #[tokio::test]
    async fn a_builder_holding_three_updates_in_a_row_is_skipped_while_it_holds_the_next() {
        let hang = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let arrived = Arc::new(Notify::new());
        let (hanging, arriving) = (hang.clone(), arrived.clone());
        let upstream = tower::service_fn(move |_: Request<RpcBody>| {
            let (hang, arrived) = (hanging.load(Ordering::Relaxed), arriving.clone());
            async move {
                arrived.notify_one();
                if hang {
                    std::future::pending::<()>().await;
                }
                let body = br#"{"jsonrpc":"2.0","id":1,"result":"0x1"}"#;
                Ok::<_, Infallible>(Response::new(RpcBody::new(Bytes::from_static(body))))
            }
        });
        let client = BuilderClient::from_service("builder", upstream);
        let lane = Lane::spawn(client, "engine", 8, 1 << 20, None, None);
        for held in 1..=UNANSWERED_IN_A_ROW {
            let update = send(&lane, "engine_forkchoiceUpdatedV3");
            arrived.notified().await;
            assert!(
                !lane.holds_unanswered_forkchoice(),
                "{held} held so far: still asked"
            );
            lane.supersede_forkchoice();
            assert_eq!(update.await.expect("answered"), Err(BuilderError::Stale));
        }
        assert!(
            !lane.holds_unanswered_forkchoice(),
            "holding none now: the next is sent"
        );
        let update = send(&lane, "engine_forkchoiceUpdatedV3");
        arrived.notified().await;
        assert!(
            lane.holds_unanswered_forkchoice(),
            "skipped while it holds this one"
        );
        // It recovers: the update it holds ends, the next is answered, and it is asked again.
        hang.store(false, Ordering::Relaxed);
        lane.supersede_forkchoice();
        assert_eq!(update.await.expect("answered"), Err(BuilderError::Stale));
        let update = send(&lane, "engine_forkchoiceUpdatedV3");
        assert!(update.await.expect("answered").is_ok());
        let update = send(&lane, "engine_forkchoiceUpdatedV3");
        assert!(update.await.expect("answered").is_ok());
        assert!(!lane.holds_unanswered_forkchoice());
    }

    /// A builder over real HTTP that holds its first call until `release`, then answers it;
    /// the receiver says how that call ended: `true` answered, `false` dropped while held (its
    /// connection was closed under it). Every later call is answered at once.
    async fn http_builder_holding_first_call(
        arrived: Arc<Notify>,
        release: Arc<Notify>,
    ) -> (http::Uri, oneshot::Receiver<bool>) {
        use hyper_util::rt::TokioIo;
        /// Says `false` if the held call is dropped before it is answered.
        struct Held(Option<oneshot::Sender<bool>>);
        impl Drop for Held {
            fn drop(&mut self) {
                if let Some(first) = self.0.take() {
                    let _ = first.send(false);
                }
            }
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let uri = format!("http://{}/", listener.local_addr().expect("addr"))
            .parse()
            .expect("uri");
        let (first, ended) = oneshot::channel();
        let first = Arc::new(Mutex::new(Some(first)));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (first, arrived, release) = (first.clone(), arrived.clone(), release.clone());
                let service = hyper::service::service_fn(
                    move |_: Request<hyper::body::Incoming>| {
                        let held = first.lock().expect("first").take();
                        let (arrived, release) = (arrived.clone(), release.clone());
                        async move {
                            let mut held = held.map(|first| Held(Some(first)));
                            if held.is_some() {
                                arrived.notify_one();
                                release.notified().await;
                            }
                            let body = br#"{"jsonrpc":"2.0","id":1,"result":{"payloadStatus":{"status":"VALID"}}}"#;
                            if let Some(first) = held.as_mut().and_then(|held| held.0.take()) {
                                let _ = first.send(true);
                            }
                            Ok::<_, Infallible>(Response::new(http_body_util::Full::new(
                                Bytes::from_static(body),
                            )))
                        }
                    },
                );
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        (uri, ended)
    }

    #[tokio::test]
    async fn a_superseded_forkchoice_update_finishes_on_its_connection() {
        let (arrived, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let (uri, held_call) =
            http_builder_holding_first_call(arrived.clone(), release.clone()).await;
        let client = BuilderClient::new(
            "builder",
            crate::Forward::new("builder", uri),
            crate::JwtSecret::from_bytes([1; 32]),
        );
        let lane = Lane::spawn(client, "engine", 8, 1 << 20, None, None);
        supersede_a_held_update(&lane, &arrived).await;
        // The builder answers the update it held: the call was left to finish, not cut off
        // (which would have closed the connection and dropped the builder's answer).
        release.notify_one();
        assert!(
            held_call.await.expect("the held call ended"),
            "the superseded update was answered on a connection still open"
        );
    }
}
