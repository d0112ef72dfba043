//! Faults a simulator can be told to commit, switchable at run time.
//!
//! A [`FaultRule`] is a [`Fault`] with a [`Scope`] (one method, a method prefix, or every call) and
//! an optional number of times it applies. Rules are checked in the order they were added; the
//! first rule that matches a call and applies to it fires.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// One fault.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// Answer `ms` milliseconds late.
    Delay {
        /// The delay.
        ms: u64,
    },
    /// Do not answer until [`Faults::release_hangs`] (or the control endpoint) releases it.
    Hang,
    /// Answer with this HTTP status and a plain-text body instead of processing the call.
    HttpStatus {
        /// The status code.
        status: u16,
    },
    /// Answer `200` with a body that is not JSON.
    MalformedJson,
    /// Process the call, then send only the first half of the answer (correctly framed).
    TruncatedBody,
    /// Process the call, then close the connection halfway through the answer's body.
    CloseConnection,
    /// Answer with this JSON-RPC error instead of processing the call.
    RpcError {
        /// The error code.
        code: i32,
        /// The error message.
        message: String,
    },
    /// Answer `SYNCING` to forkchoice updates and new payloads without acting on them.
    Syncing,
    /// Ignore the next `blocks` new payloads (answer `SYNCING`, import nothing), and every
    /// forkchoice update meanwhile: the simulator falls behind the chain.
    Lag {
        /// How many blocks to miss.
        blocks: u64,
    },
    /// Serve a doctored block from `engine_getPayload`.
    Tamper {
        /// How to doctor it.
        tamper: Tamper,
    },
}

/// How a served block is doctored. All but `WrongBlockHash` and `BadStateRoot`-style faults keep
/// the block self-consistent (its hash is recomputed), so that only a check against the
/// attributes can catch them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tamper {
    /// The advertised block hash is not the header's hash.
    WrongBlockHash,
    /// Built on the parent's parent instead of the parent (hash recomputed).
    WrongParent,
    /// A state root that execution would not produce (hash recomputed, so only re-execution
    /// catches it).
    BadStateRoot,
    /// The attributes' forced transactions left out (block re-sealed).
    ForcedTxsMissing,
    /// The forced transactions in another order (block re-sealed).
    ForcedTxsReordered,
    /// Timestamp one second later than asked (re-sealed).
    WrongTimestamp,
    /// Another fee recipient (re-sealed).
    WrongFeeRecipient,
    /// Another prevRandao (re-sealed).
    WrongPrevRandao,
    /// Another gas limit (re-sealed).
    WrongGasLimit,
    /// Another parent beacon block root, in header and envelope (re-sealed).
    WrongBeaconRoot,
    /// Gas used above the gas limit (hash recomputed).
    GasOverLimit,
    /// Padded with transactions to about `mib` MiB (re-sealed).
    Oversized {
        /// Size to reach, in MiB.
        mib: u32,
    },
    /// Answer `-38001 Unknown payload` to the payload id.
    UnknownPayloadId,
}

impl Tamper {
    /// Every tamper kind (with a 2 MiB oversized payload).
    pub const ALL: [Tamper; 13] = [
        Tamper::WrongBlockHash,
        Tamper::WrongParent,
        Tamper::BadStateRoot,
        Tamper::ForcedTxsMissing,
        Tamper::ForcedTxsReordered,
        Tamper::WrongTimestamp,
        Tamper::WrongFeeRecipient,
        Tamper::WrongPrevRandao,
        Tamper::WrongGasLimit,
        Tamper::WrongBeaconRoot,
        Tamper::GasOverLimit,
        Tamper::Oversized { mib: 2 },
        Tamper::UnknownPayloadId,
    ];
}

/// Which calls a rule applies to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Every call.
    All,
    /// Calls whose method equals this, or starts with it if it ends with `*`
    /// (`engine_getPayload*` is every version).
    Method(String),
}

impl Scope {
    fn matches(&self, method: &str) -> bool {
        match self {
            Self::All => true,
            Self::Method(m) => match m.strip_suffix('*') {
                Some(prefix) => method.starts_with(prefix),
                None => method == m,
            },
        }
    }
}

/// A fault, where it applies, and how many more times.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultRule {
    /// The fault.
    pub fault: Fault,
    /// Where it applies.
    pub scope: Scope,
    /// How many more times it fires; `None` until removed.
    #[serde(default)]
    pub times: Option<u32>,
}

impl Fault {
    /// This fault on calls of `method` (a trailing `*` matches a prefix).
    pub fn on(self, method: &str) -> FaultRule {
        FaultRule {
            fault: self,
            scope: Scope::Method(method.to_owned()),
            times: None,
        }
    }

    /// This fault on every call.
    pub fn everywhere(self) -> FaultRule {
        FaultRule {
            fault: self,
            scope: Scope::All,
            times: None,
        }
    }

    /// Whether this fault acts at the HTTP level (before or instead of JSON-RPC processing).
    pub(crate) fn is_transport(&self) -> bool {
        matches!(
            self,
            Self::Delay { .. }
                | Self::Hang
                | Self::HttpStatus { .. }
                | Self::MalformedJson
                | Self::TruncatedBody
                | Self::CloseConnection
        )
    }
}

impl FaultRule {
    /// Fire only `n` times, then remove the rule.
    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }
}

/// The live fault rules of one simulator.
#[derive(Debug)]
pub struct Faults {
    rules: Mutex<Vec<(u64, FaultRule)>>,
    next_id: Mutex<u64>,
    released: watch::Sender<u64>,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            rules: Mutex::new(Vec::new()),
            next_id: Mutex::new(0),
            released: watch::channel(0).0,
        }
    }
}

impl Faults {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(u64, FaultRule)>> {
        self.rules
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds a rule; returns its id for [`Faults::remove`].
    pub fn add(&self, rule: FaultRule) -> u64 {
        let mut next = self
            .next_id
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *next += 1;
        let id = *next;
        self.lock().push((id, rule));
        id
    }

    /// Removes one rule.
    pub fn remove(&self, id: u64) {
        self.lock().retain(|(rule_id, _)| *rule_id != id);
    }

    /// Removes every rule (hangs already in progress stay until released).
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// The live rules.
    pub fn rules(&self) -> Vec<FaultRule> {
        self.lock().iter().map(|(_, rule)| rule.clone()).collect()
    }

    /// Releases every call currently hanging.
    pub fn release_hangs(&self) {
        self.released.send_modify(|generation| *generation += 1);
    }

    pub(crate) fn hang_release(&self) -> watch::Receiver<u64> {
        self.released.subscribe()
    }

    /// Takes the first rule for `method` whose fault satisfies `wanted`, counting one use.
    pub(crate) fn take(&self, method: &str, wanted: impl Fn(&Fault) -> bool) -> Option<Fault> {
        let mut rules = self.lock();
        let index = rules
            .iter()
            .position(|(_, rule)| rule.scope.matches(method) && wanted(&rule.fault))?;
        let fault = rules[index].1.fault.clone();
        if let Some(times) = rules[index].1.times.as_mut() {
            *times = times.saturating_sub(1);
            if *times == 0 {
                rules.remove(index);
            }
        }
        Some(fault)
    }

    /// Whether a lag is in progress; counts one missed block when `block` is true.
    pub(crate) fn lagging(&self, block: bool) -> bool {
        let mut rules = self.lock();
        let Some(index) = rules
            .iter()
            .position(|(_, r)| matches!(r.fault, Fault::Lag { .. }))
        else {
            return false;
        };
        if block && let Fault::Lag { blocks } = &mut rules[index].1.fault {
            *blocks = blocks.saturating_sub(1);
            if *blocks == 0 {
                rules.remove(index);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_fire_in_order_and_expire() {
        let faults = Faults::default();
        faults.add(Fault::Delay { ms: 1 }.on("engine_getPayload*").times(1));
        faults.add(Fault::Hang.everywhere());
        assert_eq!(
            faults.take("engine_getPayloadV3", Fault::is_transport),
            Some(Fault::Delay { ms: 1 })
        );
        assert_eq!(
            faults.take("engine_getPayloadV3", Fault::is_transport),
            Some(Fault::Hang)
        );
        assert_eq!(
            faults.take("eth_chainId", |f| matches!(f, Fault::Delay { .. })),
            None
        );
    }

    #[test]
    fn rules_round_trip_through_json() {
        let rule = Fault::Tamper {
            tamper: Tamper::Oversized { mib: 3 },
        }
        .on("engine_getPayloadV4")
        .times(2);
        let json = serde_json::to_string(&rule).expect("json");
        assert_eq!(serde_json::from_str::<FaultRule>(&json).ok(), Some(rule));
    }

    #[test]
    fn lag_counts_blocks_not_forkchoice_updates() {
        let faults = Faults::default();
        faults.add(Fault::Lag { blocks: 2 }.everywhere());
        assert!(faults.lagging(false));
        assert!(faults.lagging(true));
        assert!(faults.lagging(true));
        assert!(!faults.lagging(false));
    }
}
