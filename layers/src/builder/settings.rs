use std::sync::{
    Arc, Mutex,
    atomic::{AtomicBool, Ordering},
};

use crate::jsonrpc::RpcCall;

/// The latest call of each `miner_*` setting, kept to replay to a builder that missed one.
///
/// Settings are state, not a stream: a builder that was down when the batcher lowered the DA
/// limit needs the current limit when it is back, not a backlog of every change.
#[derive(Debug, Default)]
pub(super) struct Settings {
    latest: Mutex<Vec<RpcCall>>,
    stale: Arc<AtomicBool>,
}

impl Settings {
    /// Keeps `call` as the latest of its method.
    pub(super) fn remember(&self, call: &RpcCall) {
        let mut latest = self.latest.lock().unwrap_or_else(|p| p.into_inner());
        match latest.iter_mut().find(|c| c.method() == call.method()) {
            Some(slot) => *slot = call.clone(),
            None => latest.push(call.clone()),
        }
    }

    /// Every remembered setting, in the order each was first set.
    pub(super) fn all(&self) -> Vec<RpcCall> {
        self.latest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The builder may have missed a setting: replay them when it is next synced.
    pub(super) fn mark_stale(&self) {
        self.stale.store(true, Ordering::Relaxed);
    }

    /// Whether a replay was due; clears the mark.
    pub(super) fn take_stale(&self) -> bool {
        self.stale.swap(false, Ordering::Relaxed)
    }

    /// A handle that marks the settings stale from a lane's answer callback.
    pub(super) fn stale_flag(&self) -> Arc<AtomicBool> {
        self.stale.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_latest_of_each_method_in_first_set_order() {
        let settings = Settings::default();
        settings.remember(&RpcCall::new(
            "miner_setMaxDASize",
            b"1",
            b"[\"0x1\",\"0x2\"]",
        ));
        settings.remember(&RpcCall::new("miner_setGasLimit", b"2", b"[\"0x5\"]"));
        settings.remember(&RpcCall::new(
            "miner_setMaxDASize",
            b"3",
            b"[\"0x3\",\"0x4\"]",
        ));
        let all = settings.all();
        let seen: Vec<_> = all.iter().map(|c| (c.method(), c.params())).collect();
        assert_eq!(
            seen,
            [
                ("miner_setMaxDASize", Some(&b"[\"0x3\",\"0x4\"]"[..])),
                ("miner_setGasLimit", Some(&b"[\"0x5\"]"[..])),
            ]
        );
        assert!(!settings.take_stale());
        settings.mark_stale();
        assert!(settings.take_stale());
        assert!(!settings.take_stale(), "taken once");
    }
}
