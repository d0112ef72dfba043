use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use tokio::sync::mpsc;

use bytes::Bytes;

use super::{BuilderClient, BuilderError, BuilderHealth, metrics};
use crate::jsonrpc::RpcCall;

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
}

impl Default for LaneConfig {
    fn default() -> Self {
        Self {
            engine_capacity: 64,
            transaction_capacity: 4_096,
            bytes_capacity: 32 * 1024 * 1024,
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
}

/// A bounded queue with one worker: calls reach the builder one at a time, in order.
#[derive(Debug)]
pub(super) struct Lane {
    sender: mpsc::Sender<Job>,
    depth: Arc<AtomicUsize>,
    bytes: Arc<AtomicUsize>,
    bytes_capacity: usize,
    metrics: Arc<metrics::LaneMetrics>,
}

impl Lane {
    pub(super) fn spawn(
        client: BuilderClient,
        kind: &'static str,
        capacity: usize,
        bytes_capacity: usize,
        health: Option<BuilderHealth>,
    ) -> Self {
        let (sender, mut receiver) = mpsc::channel::<Job>(capacity.max(1));
        let depth = Arc::new(AtomicUsize::new(0));
        let bytes = Arc::new(AtomicUsize::new(0));
        let lane_metrics = Arc::new(metrics::LaneMetrics::new(client.name().clone(), kind));
        let (worker_depth, worker_bytes) = (depth.clone(), bytes.clone());
        let worker_metrics = lane_metrics.clone();
        tokio::spawn(async move {
            while let Some(job) = receiver.recv().await {
                let waiting = worker_depth
                    .fetch_sub(1, Ordering::Relaxed)
                    .saturating_sub(1);
                worker_bytes.fetch_sub(job.call.bytes().len(), Ordering::Relaxed);
                worker_metrics.depth(waiting);
                let method = job.call.method();
                let result = client.relay(&job.call).await;
                if let Some(health) = &health {
                    health.observe(method, &result);
                }
                worker_metrics.call(method, &result);
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
            depth,
            bytes,
            bytes_capacity,
            metrics: lane_metrics,
        }
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

    pub(super) fn depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }
}
