//! Blocks: real headers and real block hashes over a documented stand-in for execution.
//!
//! # What is real and what is a stand-in
//!
//! Real, as op-geth computes them:
//! - the header layout for each fork (withdrawals root from Canyon, blob gas fields and the parent
//!   beacon root from Ecotone, EIP-1559 parameters in `extraData` from Holocene, the requests hash
//!   from Isthmus, `minBaseFee` in `extraData` from Jovian);
//! - the transactions root (the ordered Merkle-Patricia trie of the encoded transactions);
//! - the block hash: keccak-256 of the RLP header (alloy-consensus);
//! - the base fee: EIP-1559 from the parent, with the parameters from the parent's `extraData`
//!   after Holocene (Canyon's 250/6 before), floored at `minBaseFee` under Jovian.
//!
//! Stand-ins, because the simulator executes nothing:
//! - gas used by a transaction = `21_000 + 16 × (encoded length)`;
//! - state root = `keccak256(parent state root ‖ transactions root)`;
//! - receipts root = `keccak256("receipts" ‖ state root ‖ gas used as u64 BE)`;
//! - logs bloom = zero; Isthmus withdrawals root = the empty trie root (nobody withdraws);
//!   Jovian `blobGasUsed` = 0;
//! - block value = `(gas used by non-deposit transactions) × 1 gwei`.
//!
//! The stand-ins are functions of the parent and the transactions, so two simulators with the same
//! genesis agree on every block, and a block with a wrong state root is caught exactly as op-geth
//! would catch it: by recomputing.

use std::{collections::HashMap, sync::Arc};

use alloy_consensus::{EMPTY_OMMER_ROOT_HASH, EMPTY_ROOT_HASH, Header, proofs};
use alloy_eips::{eip1559::BaseFeeParams, eip7685::EMPTY_REQUESTS_HASH};
use alloy_primitives::{Address, B64, B256, Bloom, Bytes, U256, keccak256};
use alloy_rpc_types_engine::{
    ExecutionPayloadEnvelopeV2, ExecutionPayloadFieldV2, ExecutionPayloadV1, ExecutionPayloadV2,
};
use op_alloy_consensus::{
    decode_holocene_extra_data, decode_jovian_extra_data, encode_holocene_extra_data,
    encode_jovian_extra_data,
};
use op_alloy_rpc_types_engine::OpPayloadAttributes;

use crate::spec::{ChainSpec, Fork};

/// Gas a transaction uses under the stand-in: `21_000 + 16` per encoded byte.
pub fn tx_gas(tx: &[u8]) -> u64 {
    21_000 + 16 * tx.len() as u64
}

/// The stand-in state root.
pub fn state_root(parent_state_root: B256, transactions_root: B256) -> B256 {
    let mut input = [0u8; 64];
    input[..32].copy_from_slice(parent_state_root.as_slice());
    input[32..].copy_from_slice(transactions_root.as_slice());
    keccak256(input)
}

/// The stand-in receipts root.
pub fn receipts_root(state_root: B256, gas_used: u64) -> B256 {
    let mut input = Vec::with_capacity(48);
    input.extend_from_slice(b"receipts");
    input.extend_from_slice(state_root.as_slice());
    input.extend_from_slice(&gas_used.to_be_bytes());
    keccak256(input)
}

/// Whether an encoded transaction is an OP deposit (type `0x7e`).
pub fn is_deposit(tx: &[u8]) -> bool {
    tx.first() == Some(&0x7e)
}

/// A sealed block: header, hash, transactions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// The header.
    pub header: Header,
    /// keccak-256 of the RLP header.
    pub hash: B256,
    /// EIP-2718 encoded transactions.
    pub transactions: Vec<Bytes>,
}

/// Everything that goes into a block before its derived fields are computed.
///
/// Sealing computes the transactions root, gas used, state root, receipts root and hash.
/// Faults edit a draft and re-seal it to produce blocks that are wrong but self-consistent.
#[derive(Clone, Debug)]
pub struct Draft {
    /// Parent block hash.
    pub parent_hash: B256,
    /// Parent state root: the input of the stand-in state root.
    pub parent_state_root: B256,
    /// Block number.
    pub number: u64,
    /// Timestamp.
    pub timestamp: u64,
    /// Fee recipient.
    pub fee_recipient: Address,
    /// prevRandao.
    pub prev_randao: B256,
    /// Gas limit.
    pub gas_limit: u64,
    /// extraData.
    pub extra_data: Bytes,
    /// Base fee per gas.
    pub base_fee: u64,
    /// Withdrawals root (Canyon+).
    pub withdrawals_root: Option<B256>,
    /// Blob gas used (Ecotone+).
    pub blob_gas_used: Option<u64>,
    /// Excess blob gas (Ecotone+).
    pub excess_blob_gas: Option<u64>,
    /// Parent beacon block root (Ecotone+).
    pub parent_beacon_block_root: Option<B256>,
    /// Requests hash (Isthmus+).
    pub requests_hash: Option<B256>,
    /// Transactions, in order.
    pub transactions: Vec<Bytes>,
}

impl Draft {
    /// Computes the derived fields and the hash.
    pub fn seal(self) -> Block {
        let transactions_root = proofs::ordered_trie_root_encoded(&self.transactions);
        let gas_used = self.transactions.iter().map(|tx| tx_gas(tx)).sum();
        let state_root = state_root(self.parent_state_root, transactions_root);
        let header = Header {
            parent_hash: self.parent_hash,
            ommers_hash: EMPTY_OMMER_ROOT_HASH,
            beneficiary: self.fee_recipient,
            state_root,
            transactions_root,
            receipts_root: receipts_root(state_root, gas_used),
            logs_bloom: Bloom::ZERO,
            difficulty: U256::ZERO,
            number: self.number,
            gas_limit: self.gas_limit,
            gas_used,
            timestamp: self.timestamp,
            extra_data: self.extra_data,
            mix_hash: self.prev_randao,
            nonce: B64::ZERO,
            base_fee_per_gas: Some(self.base_fee),
            withdrawals_root: self.withdrawals_root,
            blob_gas_used: self.blob_gas_used,
            excess_blob_gas: self.excess_blob_gas,
            parent_beacon_block_root: self.parent_beacon_block_root,
            requests_hash: self.requests_hash,
            ..Default::default()
        };
        Block {
            hash: header.hash_slow(),
            header,
            transactions: self.transactions,
        }
    }
}

impl Block {
    /// The genesis block of `spec`.
    pub fn genesis(spec: &ChainSpec) -> Self {
        let fork = spec.forks.at(spec.genesis_timestamp);
        let mut seed = b"switchyard-sim genesis".to_vec();
        seed.extend_from_slice(&spec.chain_id.to_be_bytes());
        let params = B64::from_slice(&[0, 0, 0, 250, 0, 0, 0, 6]);
        Draft {
            parent_hash: B256::ZERO,
            parent_state_root: keccak256(seed),
            number: 0,
            timestamp: spec.genesis_timestamp,
            fee_recipient: Address::ZERO,
            prev_randao: B256::ZERO,
            gas_limit: spec.gas_limit,
            extra_data: extra_data(fork, Some(params), Some(0)),
            base_fee: spec.genesis_base_fee,
            withdrawals_root: (fork >= Fork::Canyon).then_some(EMPTY_ROOT_HASH),
            blob_gas_used: (fork >= Fork::Ecotone).then_some(0),
            excess_blob_gas: (fork >= Fork::Ecotone).then_some(0),
            parent_beacon_block_root: (fork >= Fork::Ecotone).then_some(B256::ZERO),
            requests_hash: (fork >= Fork::Isthmus).then_some(EMPTY_REQUESTS_HASH),
            transactions: Vec::new(),
        }
        .seal()
    }

    /// A draft child of `self` built from validated attributes: the attributes' transactions
    /// first, then `more` (pool or builder transactions) while they fit the gas limit.
    pub fn child<'a>(
        &self,
        spec: &ChainSpec,
        attrs: &OpPayloadAttributes,
        more: impl IntoIterator<Item = &'a Bytes>,
    ) -> Draft {
        let timestamp = attrs.payload_attributes.timestamp;
        let fork = spec.forks.at(timestamp);
        let gas_limit = attrs.gas_limit.unwrap_or(self.header.gas_limit);
        let mut transactions: Vec<Bytes> = attrs.transactions.clone().unwrap_or_default();
        let mut gas: u64 = transactions.iter().map(|tx| tx_gas(tx)).sum();
        if !attrs.no_tx_pool.unwrap_or(false) {
            for tx in more {
                let next = gas + tx_gas(tx);
                if next > gas_limit {
                    continue;
                }
                gas = next;
                transactions.push(tx.clone());
            }
        }
        Draft {
            parent_hash: self.hash,
            parent_state_root: self.header.state_root,
            number: self.header.number + 1,
            timestamp,
            fee_recipient: attrs.payload_attributes.suggested_fee_recipient,
            prev_randao: attrs.payload_attributes.prev_randao,
            gas_limit,
            extra_data: extra_data(fork, attrs.eip_1559_params, attrs.min_base_fee),
            base_fee: self.next_base_fee(fork, attrs.min_base_fee),
            withdrawals_root: (fork >= Fork::Canyon).then_some(EMPTY_ROOT_HASH),
            blob_gas_used: (fork >= Fork::Ecotone).then_some(0),
            excess_blob_gas: (fork >= Fork::Ecotone).then_some(0),
            parent_beacon_block_root: attrs.payload_attributes.parent_beacon_block_root,
            requests_hash: (fork >= Fork::Isthmus).then_some(EMPTY_REQUESTS_HASH),
            transactions,
        }
    }

    /// The base fee of a child at `fork` (see the module docs).
    pub fn next_base_fee(&self, fork: Fork, min_base_fee: Option<u64>) -> u64 {
        let extra = &self.header.extra_data;
        let params = decode_jovian_extra_data(extra)
            .map(|(elasticity, denominator, _)| (elasticity, denominator))
            .or_else(|_| decode_holocene_extra_data(extra))
            .ok()
            .filter(|&(elasticity, denominator)| elasticity != 0 && denominator != 0)
            .map_or(ChainSpec::BASE_FEE_PARAMS, |(elasticity, denominator)| {
                BaseFeeParams::new(u128::from(denominator), u128::from(elasticity))
            });
        let base_fee = alloy_eips::eip1559::calc_next_block_base_fee(
            self.header.gas_used,
            self.header.gas_limit,
            self.header.base_fee_per_gas.unwrap_or_default(),
            params,
        );
        if fork >= Fork::Jovian {
            base_fee.max(min_base_fee.unwrap_or(0))
        } else {
            base_fee
        }
    }

    /// This block's inputs, for re-sealing after an edit.
    pub fn draft(&self, parent_state_root: B256) -> Draft {
        let h = &self.header;
        Draft {
            parent_hash: h.parent_hash,
            parent_state_root,
            number: h.number,
            timestamp: h.timestamp,
            fee_recipient: h.beneficiary,
            prev_randao: h.mix_hash,
            gas_limit: h.gas_limit,
            extra_data: h.extra_data.clone(),
            base_fee: h.base_fee_per_gas.unwrap_or_default(),
            withdrawals_root: h.withdrawals_root,
            blob_gas_used: h.blob_gas_used,
            excess_blob_gas: h.excess_blob_gas,
            parent_beacon_block_root: h.parent_beacon_block_root,
            requests_hash: h.requests_hash,
            transactions: self.transactions.clone(),
        }
    }

    /// Recomputes only the hash, after the header was edited by hand.
    pub fn rehash(&mut self) {
        self.hash = self.header.hash_slow();
    }

    /// The stand-in block value (see the module docs).
    pub fn block_value(&self) -> U256 {
        let gas: u64 = self
            .transactions
            .iter()
            .filter(|tx| !is_deposit(tx))
            .map(|tx| tx_gas(tx))
            .sum();
        U256::from(gas) * U256::from(1_000_000_000u64)
    }

    fn payload_v1(&self) -> ExecutionPayloadV1 {
        let h = &self.header;
        ExecutionPayloadV1 {
            parent_hash: h.parent_hash,
            fee_recipient: h.beneficiary,
            state_root: h.state_root,
            receipts_root: h.receipts_root,
            logs_bloom: h.logs_bloom,
            prev_randao: h.mix_hash,
            block_number: h.number,
            gas_limit: h.gas_limit,
            gas_used: h.gas_used,
            timestamp: h.timestamp,
            extra_data: h.extra_data.clone(),
            base_fee_per_gas: U256::from(h.base_fee_per_gas.unwrap_or_default()),
            block_hash: self.hash,
            transactions: self.transactions.clone(),
        }
    }

    #[cfg(test)]
    fn payload_v3(&self) -> alloy_rpc_types_engine::ExecutionPayloadV3 {
        alloy_rpc_types_engine::ExecutionPayloadV3 {
            payload_inner: ExecutionPayloadV2 {
                payload_inner: self.payload_v1(),
                withdrawals: Vec::new(),
            },
            blob_gas_used: self.header.blob_gas_used.unwrap_or_default(),
            excess_blob_gas: self.header.excess_blob_gas.unwrap_or_default(),
        }
    }

    /// The `engine_getPayloadV{version}` result for this block, serialized.
    pub fn envelope_json(&self, version: u8) -> Vec<u8> {
        let block_value = self.block_value();
        let encoded = match version {
            2 => {
                let execution_payload = if self.header.withdrawals_root.is_some() {
                    ExecutionPayloadFieldV2::V2(ExecutionPayloadV2 {
                        payload_inner: self.payload_v1(),
                        withdrawals: Vec::new(),
                    })
                } else {
                    ExecutionPayloadFieldV2::V1(self.payload_v1())
                };
                serde_json::to_vec(&ExecutionPayloadEnvelopeV2 {
                    execution_payload,
                    block_value,
                })
            }
            // V3+ envelopes carry megabytes of hex: written directly (see `write_envelope`).
            _ => return self.write_envelope(version),
        };
        // Serializing these plain data types cannot fail.
        encoded.unwrap_or_default()
    }

    /// The getPayloadV3+ envelope, written without serde: a 5,000-transaction block is ~2 MB of
    /// hex, and serde's per-character escape scan of it cost as much as building the block.
    /// The test `hand_written_envelopes_equal_serdes` holds it to serde's output.
    fn write_envelope(&self, version: u8) -> Vec<u8> {
        let h = &self.header;
        let tx_bytes: usize = self.transactions.iter().map(|t| 2 * t.len() + 5).sum();
        let mut out = Vec::with_capacity(tx_bytes + 2_048);
        let hex = |out: &mut Vec<u8>, bytes: &[u8]| {
            out.extend_from_slice(b"\"0x");
            let start = out.len();
            out.resize(start + 2 * bytes.len(), 0);
            // The slice is exactly twice the input's length, so encoding cannot fail.
            let _ = alloy_primitives::hex::encode_to_slice(bytes, &mut out[start..]);
            out.push(b'"');
        };
        let quantity =
            |out: &mut Vec<u8>, n: u128| out.extend_from_slice(format!("\"{n:#x}\"").as_bytes());
        out.extend_from_slice(b"{\"executionPayload\":{\"parentHash\":");
        hex(&mut out, h.parent_hash.as_slice());
        out.extend_from_slice(b",\"feeRecipient\":");
        hex(&mut out, h.beneficiary.as_slice());
        out.extend_from_slice(b",\"stateRoot\":");
        hex(&mut out, h.state_root.as_slice());
        out.extend_from_slice(b",\"receiptsRoot\":");
        hex(&mut out, h.receipts_root.as_slice());
        out.extend_from_slice(b",\"logsBloom\":");
        hex(&mut out, h.logs_bloom.as_slice());
        out.extend_from_slice(b",\"prevRandao\":");
        hex(&mut out, h.mix_hash.as_slice());
        out.extend_from_slice(b",\"blockNumber\":");
        quantity(&mut out, u128::from(h.number));
        out.extend_from_slice(b",\"gasLimit\":");
        quantity(&mut out, u128::from(h.gas_limit));
        out.extend_from_slice(b",\"gasUsed\":");
        quantity(&mut out, u128::from(h.gas_used));
        out.extend_from_slice(b",\"timestamp\":");
        quantity(&mut out, u128::from(h.timestamp));
        out.extend_from_slice(b",\"extraData\":");
        hex(&mut out, &h.extra_data);
        out.extend_from_slice(b",\"baseFeePerGas\":");
        quantity(&mut out, u128::from(h.base_fee_per_gas.unwrap_or_default()));
        out.extend_from_slice(b",\"blockHash\":");
        hex(&mut out, self.hash.as_slice());
        out.extend_from_slice(b",\"transactions\":[");
        for (i, tx) in self.transactions.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            hex(&mut out, tx);
        }
        out.extend_from_slice(b"],\"withdrawals\":[],\"blobGasUsed\":");
        quantity(&mut out, u128::from(h.blob_gas_used.unwrap_or_default()));
        out.extend_from_slice(b",\"excessBlobGas\":");
        quantity(&mut out, u128::from(h.excess_blob_gas.unwrap_or_default()));
        if version >= 4 {
            out.extend_from_slice(b",\"withdrawalsRoot\":");
            hex(&mut out, h.withdrawals_root.unwrap_or_default().as_slice());
        }
        out.extend_from_slice(b"},\"blockValue\":");
        out.extend_from_slice(format!("\"{:#x}\"", self.block_value()).as_bytes());
        out.extend_from_slice(b",\"blobsBundle\":{\"commitments\":[],\"proofs\":[],\"blobs\":[]},\"shouldOverrideBuilder\":false,\"parentBeaconBlockRoot\":");
        hex(
            &mut out,
            h.parent_beacon_block_root.unwrap_or_default().as_slice(),
        );
        if version >= 4 {
            out.extend_from_slice(b",\"executionRequests\":[]");
        }
        out.push(b'}');
        out
    }

    /// The block as `eth_getBlockByNumber` returns it.
    pub fn rpc_json(&self, full: bool) -> serde_json::Value {
        let mut value = serde_json::to_value(&self.header).unwrap_or_default();
        if let Some(object) = value.as_object_mut() {
            object.insert("hash".into(), serde_json::json!(self.hash));
            object.insert("uncles".into(), serde_json::json!([]));
            let size = alloy_rlp::Encodable::length(&self.header)
                + self.transactions.iter().map(|tx| tx.len()).sum::<usize>();
            object.insert("size".into(), serde_json::json!(format!("{size:#x}")));
            let transactions: Vec<serde_json::Value> = self
                .transactions
                .iter()
                .map(|tx| {
                    let hash = keccak256(tx);
                    if full {
                        serde_json::json!({ "hash": hash, "raw": tx, "type": format!("{:#x}", tx.first().copied().unwrap_or(0)) })
                    } else {
                        serde_json::json!(hash)
                    }
                })
                .collect();
            object.insert("transactions".into(), transactions.into());
            if self.header.withdrawals_root.is_some() {
                object.insert("withdrawals".into(), serde_json::json!([]));
            }
        }
        value
    }
}

/// The payload's header as op-geth would rebuild it from the payload and its sidecar.
pub fn payload_header(
    payload: &ExecutionPayloadV1,
    withdrawals_root: Option<B256>,
    blob_gas: Option<(u64, u64)>,
    parent_beacon_block_root: Option<B256>,
    requests_hash: Option<B256>,
) -> Header {
    Header {
        parent_hash: payload.parent_hash,
        ommers_hash: EMPTY_OMMER_ROOT_HASH,
        beneficiary: payload.fee_recipient,
        state_root: payload.state_root,
        transactions_root: proofs::ordered_trie_root_encoded(&payload.transactions),
        receipts_root: payload.receipts_root,
        logs_bloom: payload.logs_bloom,
        number: payload.block_number,
        gas_limit: payload.gas_limit,
        gas_used: payload.gas_used,
        timestamp: payload.timestamp,
        extra_data: payload.extra_data.clone(),
        mix_hash: payload.prev_randao,
        base_fee_per_gas: Some(payload.base_fee_per_gas.saturating_to()),
        withdrawals_root,
        blob_gas_used: blob_gas.map(|(used, _)| used),
        excess_blob_gas: blob_gas.map(|(_, excess)| excess),
        parent_beacon_block_root,
        requests_hash,
        ..Default::default()
    }
}

/// `extraData` for a block at `fork` with the given attribute fields.
fn extra_data(fork: Fork, params: Option<B64>, min_base_fee: Option<u64>) -> Bytes {
    let params = params.unwrap_or_default();
    let encoded = if fork >= Fork::Jovian {
        encode_jovian_extra_data(
            params,
            ChainSpec::BASE_FEE_PARAMS,
            min_base_fee.unwrap_or(0),
        )
    } else if fork >= Fork::Holocene {
        encode_holocene_extra_data(params, ChainSpec::BASE_FEE_PARAMS)
    } else {
        return Bytes::new();
    };
    encoded.unwrap_or_default()
}

/// The blocks a simulator knows, and its fork choice.
#[derive(Debug)]
pub struct Chain {
    blocks: HashMap<B256, Arc<Block>>,
    canonical: Vec<B256>,
    head: B256,
    safe: B256,
    finalized: B256,
    retain: usize,
}

impl Chain {
    /// A chain holding only the genesis of `spec`, keeping bodies of the last `retain` blocks.
    pub fn new(spec: &ChainSpec, retain: usize) -> Self {
        let genesis = Block::genesis(spec);
        let hash = genesis.hash;
        Self {
            blocks: HashMap::from([(hash, Arc::new(genesis))]),
            canonical: vec![hash],
            head: hash,
            safe: hash,
            finalized: hash,
            retain: retain.max(64),
        }
    }

    /// A block by hash.
    pub fn get(&self, hash: &B256) -> Option<Arc<Block>> {
        self.blocks.get(hash).cloned()
    }

    /// Stores a block (not canonical until a fork choice names it or a descendant).
    pub fn insert(&mut self, block: Arc<Block>) {
        self.blocks.insert(block.hash, block);
    }

    /// The head block.
    pub fn head(&self) -> Arc<Block> {
        self.get(&self.head)
            .unwrap_or_else(|| Arc::new(Block::genesis(&ChainSpec::default())))
    }

    /// The current head, safe and finalized hashes.
    pub fn fork_choice(&self) -> (B256, B256, B256) {
        (self.head, self.safe, self.finalized)
    }

    /// Makes `head` canonical (it must be stored) and records safe and finalized.
    pub fn set_fork_choice(&mut self, head: B256, safe: B256, finalized: B256) {
        let mut chain = Vec::new();
        let mut cursor = self.get(&head);
        while let Some(block) = cursor {
            let number = block.header.number as usize;
            if self.canonical.get(number) == Some(&block.hash) {
                break;
            }
            chain.push((number, block.hash));
            cursor = self.get(&block.header.parent_hash);
        }
        if let Some(&(top, _)) = chain.first() {
            self.canonical.truncate(top + 1);
        }
        for (number, hash) in chain.into_iter().rev() {
            if self.canonical.len() <= number {
                self.canonical.resize(number + 1, B256::ZERO);
            }
            self.canonical[number] = hash;
        }
        self.head = head;
        if !safe.is_zero() {
            self.safe = safe;
        }
        if !finalized.is_zero() {
            self.finalized = finalized;
        }
        self.prune();
    }

    /// The canonical block at `number`.
    pub fn by_number(&self, number: u64) -> Option<Arc<Block>> {
        let head = self.head();
        if number > head.header.number {
            return None;
        }
        self.canonical
            .get(number as usize)
            .and_then(|hash| self.get(hash))
    }

    /// The safe block.
    pub fn safe(&self) -> Option<Arc<Block>> {
        self.get(&self.safe)
    }

    /// The finalized block.
    pub fn finalized(&self) -> Option<Arc<Block>> {
        self.get(&self.finalized)
    }

    /// Forgets a stored block (never the head).
    pub fn remove(&mut self, hash: &B256) {
        if *hash != self.head {
            self.blocks.remove(hash);
        }
    }

    /// Whether `hash` is a stored block.
    pub fn contains(&self, hash: &B256) -> bool {
        self.blocks.contains_key(hash)
    }

    fn prune(&mut self) {
        if self.blocks.len() <= self.retain * 2 {
            return;
        }
        let head_number = self.head().header.number;
        let horizon = head_number.saturating_sub(self.retain as u64);
        let keep = [self.head, self.safe, self.finalized];
        self.blocks.retain(|hash, block| {
            block.header.number >= horizon || block.header.number == 0 || keep.contains(hash)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_rpc_types_engine::PayloadAttributes;
    use op_alloy_rpc_types_engine::{
        OpExecutionPayloadEnvelopeV3, OpExecutionPayloadEnvelopeV4, OpExecutionPayloadV4,
    };

    fn attrs(parent: &Block, spec: &ChainSpec) -> OpPayloadAttributes {
        let timestamp = parent.header.timestamp + spec.block_time;
        let fork = spec.forks.at(timestamp);
        OpPayloadAttributes {
            payload_attributes: PayloadAttributes {
                timestamp,
                prev_randao: B256::repeat_byte(7),
                suggested_fee_recipient: Address::repeat_byte(0x42),
                withdrawals: (fork >= Fork::Canyon).then(Vec::new),
                parent_beacon_block_root: (fork >= Fork::Ecotone).then_some(B256::repeat_byte(9)),
                ..Default::default()
            },
            transactions: Some(vec![Bytes::from_static(&[0x7e, 1, 2, 3])]),
            no_tx_pool: Some(false),
            gas_limit: Some(spec.gas_limit),
            eip_1559_params: (fork >= Fork::Holocene)
                .then(|| B64::from_slice(&[0, 0, 0, 50, 0, 0, 0, 4])),
            min_base_fee: (fork >= Fork::Jovian).then_some(7),
        }
    }

    #[test]
    fn same_inputs_same_hash_and_the_hash_covers_every_field() {
        let spec = ChainSpec::default();
        let genesis = Block::genesis(&spec);
        let a = genesis.child(&spec, &attrs(&genesis, &spec), &[]).seal();
        let b = genesis.child(&spec, &attrs(&genesis, &spec), &[]).seal();
        assert_eq!(a.hash, b.hash);
        assert_eq!(a.hash, a.header.hash_slow());
        let mut edited = a.clone();
        edited.header.state_root = B256::repeat_byte(1);
        edited.rehash();
        assert_ne!(edited.hash, a.hash);
    }

    #[test]
    fn hand_written_envelopes_equal_serdes() {
        let spec = ChainSpec {
            forks: crate::spec::Forks::through(Fork::Jovian),
            ..Default::default()
        };
        let genesis = Block::genesis(&spec);
        let pool = [Bytes::from(vec![2u8; 10]), Bytes::from(vec![0xffu8; 33])];
        let block = genesis.child(&spec, &attrs(&genesis, &spec), &pool).seal();
        let beacon_root = block.header.parent_beacon_block_root.unwrap_or_default();
        let v3 = OpExecutionPayloadEnvelopeV3 {
            execution_payload: block.payload_v3(),
            block_value: block.block_value(),
            blobs_bundle: Default::default(),
            should_override_builder: false,
            parent_beacon_block_root: beacon_root,
        };
        let v4 = OpExecutionPayloadEnvelopeV4 {
            execution_payload: OpExecutionPayloadV4 {
                payload_inner: block.payload_v3(),
                withdrawals_root: block.header.withdrawals_root.unwrap_or_default(),
            },
            block_value: block.block_value(),
            blobs_bundle: Default::default(),
            should_override_builder: false,
            parent_beacon_block_root: beacon_root,
            execution_requests: Vec::new(),
        };
        let parse =
            |bytes: &[u8]| serde_json::from_slice::<serde_json::Value>(bytes).expect("json");
        assert_eq!(
            parse(&block.envelope_json(3)),
            serde_json::to_value(&v3).expect("v3")
        );
        assert_eq!(
            parse(&block.envelope_json(4)),
            serde_json::to_value(&v4).expect("v4")
        );
        assert_eq!(
            parse(&block.envelope_json(5)),
            serde_json::to_value(&v4).expect("v5")
        );
    }

    #[test]
    fn pool_transactions_follow_the_forced_ones_within_the_gas_limit() {
        let spec = ChainSpec {
            gas_limit: 100_000,
            ..Default::default()
        };
        let genesis = Block::genesis(&spec);
        let pool = [
            Bytes::from(vec![2u8; 10]),
            Bytes::from(vec![2u8; 5_000]),
            Bytes::from(vec![2u8; 20]),
        ];
        let block = genesis.child(&spec, &attrs(&genesis, &spec), &pool).seal();
        assert_eq!(
            block.transactions.len(),
            3,
            "the 5,000-byte tx does not fit"
        );
        assert_eq!(block.transactions[0][0], 0x7e);
        assert_eq!(
            block.header.gas_used,
            block.transactions.iter().map(|t| tx_gas(t)).sum::<u64>()
        );
    }

    #[test]
    fn holocene_and_jovian_params_land_in_extra_data() {
        let spec = ChainSpec {
            forks: crate::spec::Forks::through(Fork::Jovian),
            ..Default::default()
        };
        let genesis = Block::genesis(&spec);
        let block = genesis.child(&spec, &attrs(&genesis, &spec), &[]).seal();
        assert_eq!(block.header.extra_data.len(), 17);
        assert_eq!(
            decode_jovian_extra_data(&block.header.extra_data).ok(),
            Some((4, 50, 7))
        );
        assert_eq!(block.header.requests_hash, Some(EMPTY_REQUESTS_HASH));
    }

    #[test]
    fn fork_choice_rewrites_the_canonical_chain_on_reorg() {
        let spec = ChainSpec::default();
        let mut chain = Chain::new(&spec, 64);
        let genesis = chain.head();
        let a1 = Arc::new(genesis.child(&spec, &attrs(&genesis, &spec), &[]).seal());
        let mut other = attrs(&genesis, &spec);
        other.payload_attributes.prev_randao = B256::repeat_byte(8);
        let b1 = Arc::new(genesis.child(&spec, &other, &[]).seal());
        chain.insert(a1.clone());
        chain.insert(b1.clone());
        chain.set_fork_choice(a1.hash, B256::ZERO, B256::ZERO);
        assert_eq!(chain.by_number(1).map(|b| b.hash), Some(a1.hash));
        chain.set_fork_choice(b1.hash, B256::ZERO, B256::ZERO);
        assert_eq!(chain.by_number(1).map(|b| b.hash), Some(b1.hash));
        assert!(chain.by_number(2).is_none());
    }
}
