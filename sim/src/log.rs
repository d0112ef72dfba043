//! What the simulator was asked, and when: the tests' window onto the wire.

use std::{
    collections::VecDeque,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use bytes::Bytes;
use tokio::{sync::Notify, time::Instant};

/// One authenticated JSON-RPC call as it arrived.
#[derive(Clone, Debug)]
pub struct LogEntry {
    /// The method.
    pub method: String,
    /// The raw `params` JSON text (empty if absent).
    pub params: Bytes,
    /// The raw `id` JSON text (`null` if absent).
    pub id: String,
    /// When the request arrived (after its body was read, before any fault or processing).
    pub at: Instant,
    /// The same moment on the wall clock, in nanoseconds since the Unix epoch: comparable across
    /// processes (the load bench's boost-sync lag, from two simulators' logs).
    pub unix_nanos: u64,
}

impl LogEntry {
    /// The params parsed as JSON (`Null` when absent or unreadable).
    pub fn params_json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.params).unwrap_or_default()
    }
}

/// A bounded log of the calls a simulator served. Only calls that passed JWT authentication are
/// logged; refused requests are only counted.
#[derive(Debug)]
pub struct RequestLog {
    entries: Mutex<VecDeque<LogEntry>>,
    capacity: usize,
    unauthorized: AtomicU64,
    changed: Notify,
}

impl RequestLog {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
            unauthorized: AtomicU64::new(0),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<LogEntry>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn push(&self, entry: LogEntry) {
        {
            let mut entries = self.lock();
            if entries.len() == self.capacity {
                entries.pop_front();
            }
            entries.push_back(entry);
        }
        self.changed.notify_waiters();
    }

    pub(crate) fn refused(&self) {
        self.unauthorized.fetch_add(1, Ordering::Relaxed);
        self.changed.notify_waiters();
    }

    /// Every logged call, oldest first.
    pub fn entries(&self) -> Vec<LogEntry> {
        self.lock().iter().cloned().collect()
    }

    /// The calls whose method starts with `prefix` (`"engine_getPayload"` matches every version).
    pub fn calls(&self, prefix: &str) -> Vec<LogEntry> {
        self.lock()
            .iter()
            .filter(|e| e.method.starts_with(prefix))
            .cloned()
            .collect()
    }

    /// How many calls' methods start with `prefix`.
    pub fn count(&self, prefix: &str) -> usize {
        self.lock()
            .iter()
            .filter(|e| e.method.starts_with(prefix))
            .count()
    }

    /// How many requests were refused for their JWT.
    pub fn unauthorized(&self) -> u64 {
        self.unauthorized.load(Ordering::Relaxed)
    }

    /// Forgets every logged call.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// Waits until `done` holds for the logged calls. No timer: it wakes on each new call.
    pub async fn wait_for(&self, mut done: impl FnMut(&[LogEntry]) -> bool) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let mut entries = self.lock();
                if done(entries.make_contiguous()) {
                    return;
                }
            }
            changed.await;
        }
    }

    /// Waits until at least `n` calls' methods start with `prefix`.
    pub async fn wait_for_count(&self, prefix: &str, n: usize) {
        self.wait_for(|entries| {
            entries
                .iter()
                .filter(|e| e.method.starts_with(prefix))
                .count()
                >= n
        })
        .await;
    }
}
