use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::{BuilderClient, BuilderError, BuilderHealth, metrics};

/// Capacities of a builder's lanes.
#[derive(Clone, Copy, Debug)]
pub struct LaneConfig {
    /// Engine calls that may wait: a few blocks' worth of boost sync.
    pub engine_capacity: usize,
    /// Mirrored transactions that may wait.
    pub transaction_capacity: usize,
}

impl Default for LaneConfig {
    fn default() -> Self {
        Self {
            engine_capacity: 64,
            transaction_capacity: 4_096,
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
    method: Box<str>,
    params: Bytes,
    reply: Reply,
}

/// A bounded queue with one worker: calls reach the builder one at a time, in order.
#[derive(Debug)]
pub(super) struct Lane {
    sender: mpsc::Sender<Job>,
    depth: Arc<AtomicUsize>,
    name: Arc<str>,
    kind: &'static str,
}

impl Lane {
    pub(super) fn spawn(
        client: BuilderClient,
        kind: &'static str,
        capacity: usize,
        health: Option<BuilderHealth>,
    ) -> Self {
        let (sender, mut receiver) = mpsc::channel::<Job>(capacity.max(1));
        let depth = Arc::new(AtomicUsize::new(0));
        let name = client.name().clone();
        let worker_depth = depth.clone();
        tokio::spawn(async move {
            while let Some(job) = receiver.recv().await {
                let waiting = worker_depth
                    .fetch_sub(1, Ordering::Relaxed)
                    .saturating_sub(1);
                metrics::queue_depth(client.name(), kind, waiting);
                let result = client.call(&job.method, &job.params).await;
                if let Some(health) = &health {
                    health.observe(&job.method, &result);
                }
                metrics::lane_call(client.name(), kind, &job.method, &result);
                if let Err(error) = &result {
                    tracing::debug!(target: "switchyard::builder", builder = %client.name(), lane = kind, method = %job.method, %error, "builder call failed");
                }
                if let Reply::Callback(reply) = job.reply {
                    reply(result);
                }
            }
        });
        Self {
            sender,
            depth,
            name,
            kind,
        }
    }

    pub(super) fn send(&self, method: &str, params: Bytes, reply: Reply) -> Result<(), LaneError> {
        let waiting = self.depth.fetch_add(1, Ordering::Relaxed) + 1;
        match self.sender.try_send(Job {
            method: method.into(),
            params,
            reply,
        }) {
            Ok(()) => {
                metrics::queue_depth(&self.name, self.kind, waiting);
                Ok(())
            }
            Err(error) => {
                self.depth.fetch_sub(1, Ordering::Relaxed);
                metrics::dropped(&self.name, self.kind);
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
