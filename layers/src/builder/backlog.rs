//! Transactions held for a builder that is not synced (down, behind, syncing), sent to it in
//! order once it is.
//!
//! A builder that comes back from an outage with no peers of its own has only what switchyard
//! mirrored to it: a transaction skipped while it was away leaves a nonce gap, and its blocks
//! then leave out that sender's later transactions. So transactions wait here, bounded: past
//! the capacity the newest are dropped and counted (what is kept stays a gap-free prefix).

use std::{collections::VecDeque, sync::Mutex};

use crate::jsonrpc::RpcCall;

#[derive(Debug)]
pub(super) struct Backlog {
    held: Mutex<VecDeque<RpcCall>>,
    capacity: usize,
}

/// What became of a transaction handed to [`Backlog::hold_or_pass`].
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Mirrored {
    /// Nothing was waiting and the builder is synced: send it now.
    Pass,
    /// Held behind the others.
    Held,
    /// The backlog is full: dropped.
    Dropped,
}

impl Backlog {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            held: Mutex::new(VecDeque::new()),
            capacity,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<RpcCall>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Holds `call` unless the builder is `synced` and nothing waits ahead of it, so that no
    /// transaction overtakes one held earlier; `send` runs under the lock, keeping the order.
    pub(super) fn hold_or_pass(
        &self,
        call: &RpcCall,
        synced: bool,
        send: impl FnOnce(),
    ) -> Mirrored {
        let mut held = self.lock();
        if synced && held.is_empty() {
            send();
            return Mirrored::Pass;
        }
        if held.len() >= self.capacity {
            return Mirrored::Dropped;
        }
        held.push_back(call.clone());
        Mirrored::Held
    }

    /// Hands every held transaction, oldest first, to `send`; returns how many.
    pub(super) fn drain(&self, mut send: impl FnMut(&RpcCall)) -> usize {
        let mut held = self.lock();
        let count = held.len();
        for call in held.drain(..) {
            send(&call);
        }
        count
    }

    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(n: u8) -> RpcCall {
        RpcCall::new("eth_sendRawTransaction", &[b'0' + n], b"[]")
    }

    #[test]
    fn held_transactions_keep_their_order_and_none_overtakes_them() {
        let backlog = Backlog::new(2);
        let mut sent = Vec::new();
        assert_eq!(
            backlog.hold_or_pass(&call(1), false, || sent.push(1)),
            Mirrored::Held
        );
        // Synced again, but one is waiting: this one queues behind it.
        assert_eq!(
            backlog.hold_or_pass(&call(2), true, || sent.push(2)),
            Mirrored::Held
        );
        assert_eq!(
            backlog.hold_or_pass(&call(3), false, || sent.push(3)),
            Mirrored::Dropped
        );
        assert!(sent.is_empty());
        let mut drained = Vec::new();
        assert_eq!(backlog.drain(|c| drained.push(c.id().to_vec())), 2);
        assert_eq!(drained, [b"1".to_vec(), b"2".to_vec()]);
        assert_eq!(
            backlog.hold_or_pass(&call(4), true, || sent.push(4)),
            Mirrored::Pass
        );
        assert_eq!(sent, [4]);
        assert_eq!(backlog.len(), 0);
    }
}
