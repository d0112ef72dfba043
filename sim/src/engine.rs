//! The JSON-RPC methods of a simulated execution client.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{Arc, Mutex, RwLock},
};

use alloy_consensus::proofs;
use alloy_eips::{eip2718::Decodable2718, eip7685::EMPTY_REQUESTS_HASH};
use alloy_primitives::{B256, Bloom, Bytes, U256, keccak256};
use alloy_rpc_types_engine::{
    ClientVersionV1, ExecutionPayloadInputV2, ExecutionPayloadV1, ExecutionPayloadV3,
    ForkchoiceState, ForkchoiceUpdated, PayloadId, PayloadStatus, PayloadStatusEnum,
};
use op_alloy_consensus::OpTxEnvelope;
use op_alloy_rpc_types_engine::{OpExecutionPayloadV4, OpPayloadAttributes};
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use crate::{
    chain::{self, Block, Chain, Draft},
    faults::{Fault, Faults, Tamper},
    spec::{ChainSpec, Fork},
    tx,
};

/// A JSON-RPC error the simulator answers with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RpcErr {
    /// Error code.
    pub code: i32,
    /// Error message.
    pub message: String,
}

impl RpcErr {
    fn new(code: i32, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
    fn params(message: impl std::fmt::Display) -> Self {
        Self::new(-32602, format!("invalid argument: {message}"))
    }
    fn attributes(message: impl Into<String>) -> Self {
        Self::new(-38003, message)
    }
    fn unsupported_fork() -> Self {
        Self::new(-38005, "Unsupported fork")
    }
}

/// How the simulator builds blocks.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// Like op-geth: the forced transactions, then the mempool.
    OpGeth,
    /// Like an external builder: the forced transactions, then `extra_txs` transactions of its
    /// own, then the mempool. Its blocks differ from op-geth's for the same attributes.
    Builder {
        /// Transactions of its own per block.
        extra_txs: usize,
    },
}

/// How payload ids are derived from the attributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayloadIdScheme {
    /// op-geth: sha256 over parent and attributes, first byte the FCU version (`0x03` on Ecotone+);
    /// getPayloadV3+ refuses ids whose first byte is not `0x03` (`-38005`).
    OpGeth,
    /// op-reth: the same hash, first byte `0x04`, and no version check on getPayload.
    OpReth,
}

/// A shared store of blocks, standing in for p2p gossip: simulators on the same network learn
/// each other's validated blocks, and a simulator that fell behind catches up from it.
#[derive(Debug, Default)]
pub struct Network {
    blocks: RwLock<HashMap<B256, Arc<Block>>>,
}

impl Network {
    /// A new, empty network.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn publish(&self, block: &Arc<Block>) {
        let mut blocks = self.blocks.write().unwrap_or_else(|p| p.into_inner());
        if blocks.len() > 8_192 {
            let horizon = block.header.number.saturating_sub(4_096);
            blocks.retain(|_, b| b.header.number >= horizon);
        }
        blocks.insert(block.hash, block.clone());
    }

    fn get(&self, hash: &B256) -> Option<Arc<Block>> {
        self.blocks
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(hash)
            .cloned()
    }
}

const MEMPOOL_CAP: usize = 200_000;

/// Built payloads by id, and their ids oldest first (to forget the oldest).
type Payloads = (HashMap<PayloadId, Arc<Block>>, VecDeque<PayloadId>);

/// Pending transactions in arrival order, each with its hash (computed once, on arrival).
#[derive(Debug, Default)]
struct Mempool {
    order: VecDeque<(B256, Bytes)>,
    known: HashSet<B256>,
}

/// State and methods of one simulated client.
#[derive(Debug)]
pub(crate) struct Engine {
    pub(crate) spec: ChainSpec,
    pub(crate) name: String,
    profile: Profile,
    ids: PayloadIdScheme,
    pub(crate) chain: Mutex<Chain>,
    payloads: Mutex<Payloads>,
    mempool: Mutex<Mempool>,
    network: Option<Arc<Network>>,
    pub(crate) faults: Arc<Faults>,
    filler: Option<(usize, usize)>,
    // op-geth keeps a handful of payloads; with 1 MiB blocks this bounds memory too.
    payloads_kept: usize,
    pub(crate) flashblocks: Option<Arc<crate::flashblocks::FlashSource>>,
    /// Builder blocks leave the state root zero (the hash covers the zero), as builders that
    /// leave it to op-geth (`--external-state-root`) do.
    pub(crate) zero_state_root: bool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Splits a params array into its raw elements.
fn elements(params: &[u8]) -> Result<Vec<&RawValue>, RpcErr> {
    if params.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_slice(params).map_err(RpcErr::params)
}

fn arg<T: DeserializeOwned>(args: &[&RawValue], index: usize) -> Result<T, RpcErr> {
    let raw = args
        .get(index)
        .ok_or_else(|| RpcErr::params(format!("missing value for required argument {index}")))?;
    serde_json::from_str(raw.get()).map_err(|e| RpcErr::params(format!("argument {index}: {e}")))
}

fn json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

fn status(status: PayloadStatusEnum, latest_valid_hash: Option<B256>) -> Vec<u8> {
    json(&PayloadStatus {
        status,
        latest_valid_hash,
    })
}

fn invalid(reason: impl Into<String>, latest_valid_hash: Option<B256>) -> Vec<u8> {
    status(
        PayloadStatusEnum::Invalid {
            validation_error: reason.into(),
        },
        latest_valid_hash,
    )
}

impl Engine {
    pub(crate) fn new(
        name: String,
        spec: ChainSpec,
        profile: Profile,
        ids: PayloadIdScheme,
        network: Option<Arc<Network>>,
        retain: usize,
        faults: Arc<Faults>,
    ) -> Self {
        Self {
            chain: Mutex::new(Chain::new(&spec, retain)),
            spec,
            name,
            profile,
            ids,
            payloads: Mutex::new((HashMap::new(), VecDeque::new())),
            mempool: Mutex::new(Mempool::default()),
            network,
            faults,
            filler: None,
            payloads_kept: 16,
            flashblocks: None,
            zero_state_root: false,
        }
    }

    /// Keeps this many built payloads retrievable (see `SimConfig::payloads_kept`).
    pub(crate) fn with_payloads_kept(mut self, kept: usize) -> Self {
        self.payloads_kept = kept.max(1);
        self
    }

    /// Adds generated transactions to every block (see `SimConfig::filler`).
    pub(crate) fn with_filler(mut self, filler: Option<(usize, usize)>) -> Self {
        self.filler = filler;
        self
    }

    /// Answers one call with the raw JSON of its result, or an error.
    pub(crate) fn handle(&self, method: &str, params: &[u8]) -> Result<Vec<u8>, RpcErr> {
        if let Some(Fault::RpcError { code, message }) = self
            .faults
            .take(method, |f| matches!(f, Fault::RpcError { .. }))
        {
            return Err(RpcErr::new(code, message));
        }
        let args = elements(params)?;
        match method {
            "engine_forkchoiceUpdatedV1" => self.forkchoice_updated(method, 1, &args),
            "engine_forkchoiceUpdatedV2" => self.forkchoice_updated(method, 2, &args),
            "engine_forkchoiceUpdatedV3" => self.forkchoice_updated(method, 3, &args),
            "engine_getPayloadV2" => self.get_payload(method, 2, &args),
            "engine_getPayloadV3" => self.get_payload(method, 3, &args),
            "engine_getPayloadV4" => self.get_payload(method, 4, &args),
            "engine_getPayloadV5" => self.get_payload(method, 5, &args),
            "engine_newPayloadV2" => self.new_payload(method, 2, &args),
            "engine_newPayloadV3" => self.new_payload(method, 3, &args),
            "engine_newPayloadV4" => self.new_payload(method, 4, &args),
            "engine_exchangeCapabilities" => Ok(json(&CAPABILITIES)),
            "engine_getClientVersionV1" => Ok(json(&[ClientVersionV1 {
                code: alloy_rpc_types_engine::ClientCode::GE,
                name: format!("switchyard-sim/{}", self.name),
                version: env!("CARGO_PKG_VERSION").into(),
                commit: "0x00000000".into(),
            }])),
            "engine_signalSuperchainV1" => Ok(json(&B256::ZERO)),
            "eth_chainId" => Ok(json(&format!("{:#x}", self.spec.chain_id))),
            "net_version" => Ok(json(&self.spec.chain_id.to_string())),
            "web3_clientVersion" => Ok(json(&format!(
                "switchyard-sim/v{}/{}",
                env!("CARGO_PKG_VERSION"),
                self.name
            ))),
            "eth_syncing" => Ok(b"false".to_vec()),
            "eth_blockNumber" => Ok(json(&format!(
                "{:#x}",
                lock(&self.chain).head().header.number
            ))),
            "eth_getBlockByNumber" => {
                let tag: String = arg(&args, 0)?;
                let full: bool = arg(&args, 1).unwrap_or(false);
                let chain = lock(&self.chain);
                let block = match tag.as_str() {
                    "latest" | "pending" => Some(chain.head()),
                    "safe" => chain.safe(),
                    "finalized" => chain.finalized(),
                    "earliest" => chain.by_number(0),
                    hex => {
                        let number = u64::from_str_radix(hex.trim_start_matches("0x"), 16)
                            .map_err(|_| RpcErr::params(format!("invalid block number {hex:?}")))?;
                        chain.by_number(number)
                    }
                };
                Ok(block.map_or_else(|| b"null".to_vec(), |b| json(&b.rpc_json(full))))
            }
            "eth_getBlockByHash" => {
                let hash: B256 = arg(&args, 0)?;
                let full: bool = arg(&args, 1).unwrap_or(false);
                let block = lock(&self.chain).get(&hash);
                Ok(block.map_or_else(|| b"null".to_vec(), |b| json(&b.rpc_json(full))))
            }
            "eth_sendRawTransaction" => {
                let raw: Bytes = arg(&args, 0)?;
                self.add_transaction(raw).map(|hash| json(&hash))
            }
            // op-geth's miner API: accepted and answered `true`; what was set is in the log.
            "miner_setMaxDASize" => {
                let _: U256 = arg(&args, 0)?;
                let _: U256 = arg(&args, 1)?;
                Ok(json(&true))
            }
            "miner_setGasLimit" => {
                let _: alloy_primitives::U64 = arg(&args, 0)?;
                Ok(json(&true))
            }
            "miner_setGasPrice" => {
                let _: U256 = arg(&args, 0)?;
                Ok(json(&true))
            }
            "miner_setExtra" => {
                let extra: String = arg(&args, 0)?;
                if extra.len() > 32 {
                    return Err(RpcErr::new(-32000, "extra exceeds max length. 33 > 32"));
                }
                Ok(json(&true))
            }
            other => Err(RpcErr::new(
                -32601,
                format!("the method {other} does not exist/is not available"),
            )),
        }
    }

    /// Adds a signed transaction to the mempool.
    pub(crate) fn add_transaction(&self, raw: Bytes) -> Result<B256, RpcErr> {
        match OpTxEnvelope::decode_2718_exact(&raw) {
            Ok(OpTxEnvelope::Deposit(_)) => {
                return Err(RpcErr::new(-32000, "transaction type not supported"));
            }
            Ok(_) => {}
            Err(e) => return Err(RpcErr::new(-32000, format!("rlp: {e}"))),
        }
        let hash = keccak256(&raw);
        let mut pool = lock(&self.mempool);
        if pool.known.insert(hash) {
            if pool.order.len() >= MEMPOOL_CAP {
                return Err(RpcErr::new(-32000, "txpool is full"));
            }
            pool.order.push_back((hash, raw));
        }
        Ok(hash)
    }

    /// Transactions waiting in the mempool.
    pub(crate) fn mempool_len(&self) -> usize {
        lock(&self.mempool).order.len()
    }

    fn forkchoice_updated(
        &self,
        method: &str,
        version: u8,
        args: &[&RawValue],
    ) -> Result<Vec<u8>, RpcErr> {
        let state: ForkchoiceState = arg(args, 0)?;
        let attrs: Option<OpPayloadAttributes> = if args.len() > 1 { arg(args, 1)? } else { None };
        let syncing = || json(&ForkchoiceUpdated::from_status(PayloadStatusEnum::Syncing));
        if self
            .faults
            .take(method, |f| matches!(f, Fault::Syncing))
            .is_some()
            || self.faults.lagging(false)
        {
            return Ok(syncing());
        }
        let mut chain = lock(&self.chain);
        let Some(head) = chain.get(&state.head_block_hash) else {
            self.catch_up(&mut chain, state.head_block_hash);
            return Ok(syncing());
        };
        if let Some(attrs) = &attrs
            && self
                .spec
                .forks
                .fcu_version(attrs.payload_attributes.timestamp)
                != version
        {
            return Err(RpcErr::unsupported_fork());
        }
        for hash in [state.safe_block_hash, state.finalized_block_hash] {
            if !hash.is_zero() && !chain.contains(&hash) {
                return Err(RpcErr::new(-38002, "Invalid forkchoice state"));
            }
        }
        chain.set_fork_choice(
            state.head_block_hash,
            state.safe_block_hash,
            state.finalized_block_hash,
        );
        self.forget_included(&head);
        let Some(attrs) = attrs else {
            return Ok(json(
                &ForkchoiceUpdated::from_status(PayloadStatusEnum::Valid)
                    .with_latest_valid_hash(head.hash),
            ));
        };
        drop(chain);
        self.check_attributes(&head, &attrs)?;
        let id = attrs.payload_id(
            &head.hash,
            match self.ids {
                PayloadIdScheme::OpGeth => version,
                PayloadIdScheme::OpReth => 4,
            },
        );
        let known = lock(&self.payloads).0.contains_key(&id);
        if !known {
            let mut block = Arc::new(self.build(&head, &attrs));
            if let Some(source) = &self.flashblocks {
                let forced = attrs.transactions.as_ref().map_or(0, Vec::len);
                if let Some(last) = source.stream(id, &block, head.header.state_root, forced) {
                    block = Arc::new(last);
                }
            }
            let mut payloads = lock(&self.payloads);
            payloads.0.insert(id, block);
            payloads.1.push_back(id);
            if payloads.1.len() > self.payloads_kept
                && let Some(old) = payloads.1.pop_front()
            {
                payloads.0.remove(&old);
            }
        }
        Ok(json(
            &ForkchoiceUpdated::from_status(PayloadStatusEnum::Valid)
                .with_latest_valid_hash(head.hash)
                .with_payload_id(id),
        ))
    }

    fn check_attributes(&self, head: &Block, attrs: &OpPayloadAttributes) -> Result<(), RpcErr> {
        let a = &attrs.payload_attributes;
        let fork = self.spec.forks.at(a.timestamp);
        if (fork >= Fork::Canyon) != a.withdrawals.is_some() {
            return Err(RpcErr::attributes(if fork >= Fork::Canyon {
                "missing withdrawals"
            } else {
                "withdrawals before shanghai"
            }));
        }
        if (fork >= Fork::Ecotone) != a.parent_beacon_block_root.is_some() {
            return Err(RpcErr::attributes(
                "parent beacon block root presence does not match the fork",
            ));
        }
        let Some(gas_limit) = attrs.gas_limit else {
            return Err(RpcErr::attributes("gasLimit parameter is required"));
        };
        if a.timestamp <= head.header.timestamp {
            return Err(RpcErr::attributes("invalid timestamp"));
        }
        match (fork >= Fork::Holocene, attrs.eip_1559_params) {
            (false, Some(_)) => {
                return Err(RpcErr::attributes(
                    "eip155Params not supported prior to Holocene upgrade",
                ));
            }
            (true, None) => return Err(RpcErr::attributes("missing eip1559Params")),
            (true, Some(params)) => {
                let (elasticity, denominator) = op_alloy_consensus::decode_eip_1559_params(params);
                if denominator == 0 && elasticity != 0 {
                    return Err(RpcErr::attributes(
                        "invalid eip1559Params: zero denominator",
                    ));
                }
            }
            (false, None) => {}
        }
        match (fork >= Fork::Jovian, attrs.min_base_fee) {
            (false, Some(_)) => return Err(RpcErr::attributes("non-nil minBaseFee pre-Jovian")),
            (true, None) => return Err(RpcErr::attributes("nil minBaseFee post-Jovian")),
            _ => {}
        }
        let forced: u64 = attrs
            .transactions
            .iter()
            .flatten()
            .map(|t| chain::tx_gas(t))
            .sum();
        if forced > gas_limit {
            return Err(RpcErr::attributes(
                "forced transactions exceed the gas limit",
            ));
        }
        Ok(())
    }

    fn build(&self, parent: &Block, attrs: &OpPayloadAttributes) -> Block {
        let number = parent.header.number + 1;
        let mut extras: Vec<Bytes> = match self.profile {
            Profile::OpGeth => Vec::new(),
            Profile::Builder { extra_txs } => (0..extra_txs as u64)
                .map(|i| tx::builder_tx(self.spec.chain_id, &self.name, number, i))
                .collect(),
        };
        if let Some((count, bytes)) = self.filler {
            extras.extend(
                (0..count as u64)
                    .map(|i| tx::transfer(self.spec.chain_id, 0xf111_0000 + i, number, bytes)),
            );
        }
        let pool = lock(&self.mempool);
        let mut block = parent
            .child(
                &self.spec,
                attrs,
                extras.iter().chain(pool.order.iter().map(|(_, tx)| tx)),
            )
            .seal();
        if self.zero_state_root {
            block.header.state_root = B256::ZERO;
            block.rehash();
        }
        block
    }

    fn forget_included(&self, head: &Block) {
        let mut pool = lock(&self.mempool);
        if pool.order.is_empty() || head.transactions.is_empty() {
            return;
        }
        let included: HashSet<B256> = head
            .transactions
            .iter()
            .filter(|tx| !chain::is_deposit(tx))
            .map(keccak256)
            .collect();
        if included.is_empty() {
            return;
        }
        pool.order.retain(|(hash, _)| !included.contains(hash));
        pool.known.retain(|hash| !included.contains(hash));
    }

    fn get_payload(
        &self,
        method: &str,
        version: u8,
        args: &[&RawValue],
    ) -> Result<Vec<u8>, RpcErr> {
        let id: PayloadId = arg(args, 0)?;
        let tamper = match self
            .faults
            .take(method, |f| matches!(f, Fault::Tamper { .. }))
        {
            Some(Fault::Tamper { tamper }) => Some(tamper),
            _ => None,
        };
        if tamper == Some(Tamper::UnknownPayloadId) {
            return Err(RpcErr::new(-38001, "Unknown payload"));
        }
        if self.ids == PayloadIdScheme::OpGeth {
            let first = id.0[0];
            let allowed = if version == 2 {
                first == 1 || first == 2
            } else {
                first == 3
            };
            if !allowed {
                return Err(RpcErr::unsupported_fork());
            }
        }
        let block = lock(&self.payloads)
            .0
            .get(&id)
            .cloned()
            .ok_or_else(|| RpcErr::new(-38001, "Unknown payload"))?;
        if self.spec.forks.get_payload_version(block.header.timestamp) != version {
            return Err(RpcErr::unsupported_fork());
        }
        let served = match tamper {
            Some(tamper) => self.tamper(&block, tamper),
            None => (*block).clone(),
        };
        Ok(served.envelope_json(version))
    }

    /// A doctored copy of `block` (see [`Tamper`]).
    fn tamper(&self, block: &Block, tamper: Tamper) -> Block {
        let chain = lock(&self.chain);
        let parent_state = chain
            .get(&block.header.parent_hash)
            .map(|p| p.header.state_root)
            .unwrap_or_default();
        let mut draft: Draft = block.draft(parent_state);
        let forced = draft
            .transactions
            .iter()
            .take_while(|t| chain::is_deposit(t))
            .count();
        match tamper {
            Tamper::WrongBlockHash => {
                let mut doctored = block.clone();
                doctored.hash = keccak256(block.hash);
                return doctored;
            }
            Tamper::BadStateRoot => {
                let mut doctored = block.clone();
                doctored.header.state_root = keccak256(block.header.state_root);
                doctored.rehash();
                return doctored;
            }
            Tamper::GasOverLimit => {
                let mut doctored = block.clone();
                doctored.header.gas_used = doctored.header.gas_limit + 1;
                doctored.rehash();
                return doctored;
            }
            Tamper::WrongParent => {
                let grandparent = chain
                    .get(&block.header.parent_hash)
                    .map(|p| p.header.parent_hash)
                    .unwrap_or_default();
                draft.parent_state_root = chain
                    .get(&grandparent)
                    .map(|g| g.header.state_root)
                    .unwrap_or_default();
                draft.parent_hash = grandparent;
            }
            Tamper::ForcedTxsMissing => {
                draft
                    .transactions
                    .drain(..forced.max(1).min(draft.transactions.len()));
            }
            Tamper::ForcedTxsReordered => {
                if forced >= 2 {
                    draft.transactions[..forced].reverse();
                } else {
                    // One forced transaction: put one of ours in front of it.
                    let ours = tx::transfer(self.spec.chain_id, 0xbad, block.header.number, 8);
                    draft.transactions.insert(0, ours);
                }
            }
            Tamper::WrongTimestamp => draft.timestamp += 1,
            Tamper::WrongFeeRecipient => {
                draft.fee_recipient = alloy_primitives::Address::repeat_byte(0xbe)
            }
            Tamper::WrongPrevRandao => draft.prev_randao = keccak256(draft.prev_randao),
            Tamper::WrongGasLimit => draft.gas_limit += 1,
            Tamper::WrongBeaconRoot => {
                draft.parent_beacon_block_root = Some(keccak256(
                    draft.parent_beacon_block_root.unwrap_or_default(),
                ));
            }
            Tamper::Oversized { mib } => {
                let target = mib as usize * 1024 * 1024;
                let mut size: usize = draft.transactions.iter().map(|t| t.len()).sum();
                let mut nonce = 0;
                while size < target {
                    let padding = tx::transfer(self.spec.chain_id, 0x0b5, nonce, 120 * 1024);
                    size += padding.len();
                    nonce += 1;
                    draft.transactions.push(padding);
                }
            }
            Tamper::UnknownPayloadId => {}
        }
        draft.seal()
    }

    fn new_payload(
        &self,
        method: &str,
        version: u8,
        args: &[&RawValue],
    ) -> Result<Vec<u8>, RpcErr> {
        let (payload, withdrawals_root, beacon_root, requests_hash): (
            ExecutionPayloadV1,
            Option<B256>,
            Option<B256>,
            Option<B256>,
        );
        let mut blob_fields = None;
        match version {
            2 => {
                let input: ExecutionPayloadInputV2 = arg(args, 0)?;
                withdrawals_root = input
                    .withdrawals
                    .as_ref()
                    .map(|w| proofs::calculate_withdrawals_root(w));
                if input.withdrawals.as_ref().is_some_and(|w| !w.is_empty()) {
                    return Err(RpcErr::params("non-empty withdrawals"));
                }
                payload = input.execution_payload;
                beacon_root = None;
                requests_hash = None;
            }
            3 => {
                let v3: ExecutionPayloadV3 = arg(args, 0)?;
                let hashes: Vec<B256> = arg(args, 1)?;
                beacon_root = Some(arg(args, 2)?);
                if !hashes.is_empty() {
                    return Err(RpcErr::params("non-empty blob versioned hashes"));
                }
                blob_fields = Some((v3.blob_gas_used, v3.excess_blob_gas));
                withdrawals_root = Some(proofs::calculate_withdrawals_root(
                    &v3.payload_inner.withdrawals,
                ));
                payload = v3.payload_inner.payload_inner;
                requests_hash = None;
            }
            _ => {
                let v4: OpExecutionPayloadV4 = arg(args, 0)?;
                let hashes: Vec<B256> = arg(args, 1)?;
                beacon_root = Some(arg(args, 2)?);
                let requests: Vec<Bytes> = arg(args, 3)?;
                if !hashes.is_empty() || !requests.is_empty() {
                    return Err(RpcErr::params(
                        "non-empty blob hashes or execution requests",
                    ));
                }
                blob_fields = Some((
                    v4.payload_inner.blob_gas_used,
                    v4.payload_inner.excess_blob_gas,
                ));
                withdrawals_root = Some(v4.withdrawals_root);
                payload = v4.payload_inner.payload_inner.payload_inner;
                requests_hash = Some(EMPTY_REQUESTS_HASH);
            }
        }
        if self.spec.forks.new_payload_version(payload.timestamp) != version {
            return Err(RpcErr::unsupported_fork());
        }
        if self
            .faults
            .take(method, |f| matches!(f, Fault::Syncing))
            .is_some()
            || self.faults.lagging(true)
        {
            return Ok(status(PayloadStatusEnum::Syncing, None));
        }
        let header = chain::payload_header(
            &payload,
            withdrawals_root,
            blob_fields,
            beacon_root,
            requests_hash,
        );
        let transactions_root = header.transactions_root;
        let hash = header.hash_slow();
        if hash != payload.block_hash {
            return Ok(invalid(
                format!(
                    "blockhash mismatch, want {}, got {}",
                    payload.block_hash, hash
                ),
                None,
            ));
        }
        let mut chain = lock(&self.chain);
        if chain.contains(&hash) {
            return Ok(status(PayloadStatusEnum::Valid, Some(hash)));
        }
        let Some(parent) = chain.get(&payload.parent_hash) else {
            // p2p would bring this block and its ancestors; the next call finds them.
            self.catch_up(&mut chain, hash);
            return Ok(status(PayloadStatusEnum::Syncing, None));
        };
        let parent_hash = Some(parent.hash);
        if header.number != parent.header.number + 1 || header.timestamp <= parent.header.timestamp
        {
            return Ok(invalid(
                "invalid number or timestamp for the parent",
                parent_hash,
            ));
        }
        let gas: u64 = payload.transactions.iter().map(|t| chain::tx_gas(t)).sum();
        if header.gas_used > header.gas_limit {
            return Ok(invalid(
                format!(
                    "gas used {} exceeds gas limit {}",
                    header.gas_used, header.gas_limit
                ),
                parent_hash,
            ));
        }
        if gas != header.gas_used {
            return Ok(invalid(
                format!(
                    "invalid gas used (remote: {} local: {gas})",
                    header.gas_used
                ),
                parent_hash,
            ));
        }
        let fork = self.spec.forks.at(header.timestamp);
        let min_base_fee = op_alloy_consensus::decode_jovian_extra_data(&header.extra_data)
            .ok()
            .map(|(_, _, m)| m);
        let base_fee = parent.next_base_fee(fork, min_base_fee);
        if header.base_fee_per_gas != Some(base_fee) {
            return Ok(invalid(
                format!(
                    "invalid baseFee: have {:?}, want {base_fee}",
                    header.base_fee_per_gas
                ),
                parent_hash,
            ));
        }
        let state_root = chain::state_root(parent.header.state_root, transactions_root);
        if state_root != header.state_root {
            return Ok(invalid(
                format!(
                    "invalid merkle root (remote: {} local: {state_root})",
                    header.state_root
                ),
                parent_hash,
            ));
        }
        if chain::receipts_root(state_root, gas) != header.receipts_root {
            return Ok(invalid("invalid receipt root hash", parent_hash));
        }
        if header.logs_bloom != Bloom::ZERO {
            return Ok(invalid("invalid bloom", parent_hash));
        }
        let block = Arc::new(Block {
            header,
            hash,
            transactions: payload.transactions,
        });
        chain.insert(block.clone());
        if let Some(network) = &self.network {
            network.publish(&block);
        }
        Ok(status(PayloadStatusEnum::Valid, Some(hash)))
    }

    /// Imports `target` and its missing ancestors from the network, if it has them all.
    fn catch_up(&self, chain: &mut Chain, target: B256) {
        let Some(network) = &self.network else { return };
        let mut missing = Vec::new();
        let mut cursor = target;
        while !chain.contains(&cursor) {
            let Some(block) = network.get(&cursor) else {
                return;
            };
            cursor = block.header.parent_hash;
            missing.push(block);
            if missing.len() > 4_096 {
                return;
            }
        }
        for block in missing.into_iter().rev() {
            chain.insert(block);
        }
    }

    pub(crate) fn head(&self) -> Arc<Block> {
        lock(&self.chain).head()
    }

    pub(crate) fn block(&self, hash: &B256) -> Option<Arc<Block>> {
        lock(&self.chain).get(hash)
    }

    pub(crate) fn forget(&self, hash: &B256) {
        lock(&self.chain).remove(hash);
    }
}

/// The methods `engine_exchangeCapabilities` reports.
pub const CAPABILITIES: [&str; 12] = [
    "engine_forkchoiceUpdatedV1",
    "engine_forkchoiceUpdatedV2",
    "engine_forkchoiceUpdatedV3",
    "engine_getPayloadV2",
    "engine_getPayloadV3",
    "engine_getPayloadV4",
    "engine_getPayloadV5",
    "engine_newPayloadV2",
    "engine_newPayloadV3",
    "engine_newPayloadV4",
    "engine_getClientVersionV1",
    "engine_signalSuperchainV1",
];
