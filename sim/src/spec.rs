//! The simulated chain's fixed facts: chain id, genesis, fork activation times.

use alloy_eips::eip1559::BaseFeeParams;
use serde::{Deserialize, Serialize};

/// An OP Stack hard fork that changes what the Engine API sends or accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fork {
    /// Bedrock and Regolith: FCU V1, getPayload V2, newPayload V2, no withdrawals.
    Bedrock,
    /// Canyon (Shanghai): FCU V2, empty withdrawals.
    Canyon,
    /// Ecotone (Cancun): FCU V3, getPayload V3, newPayload V3, parent beacon root.
    Ecotone,
    /// Holocene: EIP-1559 parameters in the attributes and in `extraData`.
    Holocene,
    /// Isthmus (Prague): getPayload V4, newPayload V4, withdrawals root of the message passer.
    Isthmus,
    /// Jovian: `minBaseFee` in the attributes, `extraData` version 1.
    Jovian,
    /// Karst (Osaka): getPayload V5, same envelope as V4.
    Karst,
}

/// Activation timestamps of each fork; `None` never activates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forks {
    /// Canyon activation time.
    pub canyon: Option<u64>,
    /// Ecotone activation time.
    pub ecotone: Option<u64>,
    /// Holocene activation time.
    pub holocene: Option<u64>,
    /// Isthmus activation time.
    pub isthmus: Option<u64>,
    /// Jovian activation time.
    pub jovian: Option<u64>,
    /// Karst activation time.
    pub karst: Option<u64>,
}

impl Forks {
    /// Every fork up to and including `last` active from genesis.
    pub fn through(last: Fork) -> Self {
        let at = |fork: Fork| (fork <= last).then_some(0);
        Self {
            canyon: at(Fork::Canyon),
            ecotone: at(Fork::Ecotone),
            holocene: at(Fork::Holocene),
            isthmus: at(Fork::Isthmus),
            jovian: at(Fork::Jovian),
            karst: at(Fork::Karst),
        }
    }

    /// Forks through `before` active from genesis, and `fork` (only) from timestamp `at`.
    pub fn transition(before: Fork, fork: Fork, at: u64) -> Self {
        let mut forks = Self::through(before);
        forks.set(fork, Some(at));
        forks
    }

    /// Sets one fork's activation time.
    pub fn set(&mut self, fork: Fork, at: Option<u64>) {
        match fork {
            Fork::Bedrock => {}
            Fork::Canyon => self.canyon = at,
            Fork::Ecotone => self.ecotone = at,
            Fork::Holocene => self.holocene = at,
            Fork::Isthmus => self.isthmus = at,
            Fork::Jovian => self.jovian = at,
            Fork::Karst => self.karst = at,
        }
    }

    /// The latest fork active at `timestamp`.
    pub fn at(&self, timestamp: u64) -> Fork {
        let active = |t: Option<u64>| t.is_some_and(|t| timestamp >= t);
        [
            (self.karst, Fork::Karst),
            (self.jovian, Fork::Jovian),
            (self.isthmus, Fork::Isthmus),
            (self.holocene, Fork::Holocene),
            (self.ecotone, Fork::Ecotone),
            (self.canyon, Fork::Canyon),
        ]
        .into_iter()
        .find(|(t, _)| active(*t))
        .map_or(Fork::Bedrock, |(_, fork)| fork)
    }

    /// The `engine_forkchoiceUpdated` version op-node uses with attributes at `timestamp`.
    pub fn fcu_version(&self, timestamp: u64) -> u8 {
        match self.at(timestamp) {
            Fork::Bedrock => 1,
            Fork::Canyon => 2,
            _ => 3,
        }
    }

    /// The `engine_getPayload` version op-node uses for a payload at `timestamp`.
    pub fn get_payload_version(&self, timestamp: u64) -> u8 {
        match self.at(timestamp) {
            Fork::Bedrock | Fork::Canyon => 2,
            Fork::Ecotone | Fork::Holocene => 3,
            Fork::Isthmus | Fork::Jovian => 4,
            Fork::Karst => 5,
        }
    }

    /// The `engine_newPayload` version op-node uses for a payload at `timestamp`.
    pub fn new_payload_version(&self, timestamp: u64) -> u8 {
        match self.at(timestamp) {
            Fork::Bedrock | Fork::Canyon => 2,
            Fork::Ecotone | Fork::Holocene => 3,
            Fork::Isthmus | Fork::Jovian | Fork::Karst => 4,
        }
    }
}

/// Genesis and chain parameters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainSpec {
    /// The L2 chain id.
    pub chain_id: u64,
    /// Genesis timestamp (seconds).
    pub genesis_timestamp: u64,
    /// Genesis gas limit, and the gas limit the driver asks for.
    pub gas_limit: u64,
    /// Genesis base fee (wei).
    pub genesis_base_fee: u64,
    /// L2 block time in seconds: how far apart block timestamps are.
    pub block_time: u64,
    /// Fork activation times.
    pub forks: Forks,
}

impl Default for ChainSpec {
    fn default() -> Self {
        Self {
            chain_id: 901,
            genesis_timestamp: 1_700_000_000,
            gas_limit: 30_000_000,
            genesis_base_fee: 1_000_000_000,
            block_time: 2,
            forks: Forks::through(Fork::Isthmus),
        }
    }
}

impl ChainSpec {
    /// Canyon's EIP-1559 parameters on OP mainnet (denominator 250, elasticity 6), used before
    /// Holocene and when the Holocene parameters are zero.
    pub const BASE_FEE_PARAMS: BaseFeeParams = BaseFeeParams::new(250, 6);
}
