//! Engine API facts the builder layers share: method names and versions, forkchoice params, and
//! payload envelopes read, re-hashed and re-written.
//!
//! # Behaviour
//!
//! - [`EngineMethod::parse`] reads a method name (`engine_getPayloadV4` → `GetPayload(4)`).
//! - [`forkchoice_params`] splits `engine_forkchoiceUpdated` params into the state and the raw
//!   attributes, without copying them.
//! - [`Envelope`] is a getPayload result of a given version, parsed into the op-alloy types.
//!   [`Envelope::block_hash`] recomputes the block hash from the payload (the RLP header's
//!   keccak, after rebuilding the transactions and withdrawals roots) so a payload can be checked
//!   without an execution client. [`Envelope::to_json`] and [`Envelope::new_payload_params`] write
//!   it back out canonically.
//!
//! Why write it back out instead of passing the builder's bytes on: JSON allows duplicate keys,
//! and decoders disagree on them (serde takes one, Go's `encoding/json` the last). A builder
//! could send a payload that we read with one fee recipient and op-geth with another. Whatever we
//! checked is what we re-encode, and only those bytes go to op-geth for validation and to
//! op-node.
//!
//! # Example
//!
//! ```
//! use switchyard_layers::engine::EngineMethod;
//!
//! assert_eq!(EngineMethod::parse("engine_getPayloadV4"), Some(EngineMethod::GetPayload(4)));
//! assert_eq!(EngineMethod::parse("engine_forkchoiceUpdatedV3"), Some(EngineMethod::ForkchoiceUpdated(3)));
//! assert_eq!(EngineMethod::parse("eth_chainId"), None);
//! ```

use alloy_eips::eip7685::Requests;
use alloy_primitives::{B256, U256};
use alloy_rpc_types_engine::{
    ExecutionPayloadEnvelopeV2, ExecutionPayloadFieldV2, ExecutionPayloadV1, ForkchoiceState,
    PayloadId,
};
use op_alloy_rpc_types_engine::{
    OpExecutionData, OpExecutionPayload, OpExecutionPayloadEnvelopeV3, OpExecutionPayloadEnvelopeV4,
};
use serde::Deserialize;
use serde_json::value::RawValue;

/// An Engine API method the builder layers act on, with its version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EngineMethod {
    /// `engine_forkchoiceUpdatedV{n}`.
    ForkchoiceUpdated(u8),
    /// `engine_getPayloadV{n}`.
    GetPayload(u8),
    /// `engine_newPayloadV{n}`.
    NewPayload(u8),
}

impl EngineMethod {
    /// Reads a method name; `None` for anything else.
    pub fn parse(method: &str) -> Option<Self> {
        let rest = method.strip_prefix("engine_")?;
        let (name, version) = rest.rsplit_once('V')?;
        let version: u8 = version.parse().ok().filter(|v| (1..=9).contains(v))?;
        match name {
            "forkchoiceUpdated" => Some(Self::ForkchoiceUpdated(version)),
            "getPayload" => Some(Self::GetPayload(version)),
            "newPayload" => Some(Self::NewPayload(version)),
            _ => None,
        }
    }

    /// The method's name.
    pub fn name(self) -> String {
        match self {
            Self::ForkchoiceUpdated(v) => format!("engine_forkchoiceUpdatedV{v}"),
            Self::GetPayload(v) => format!("engine_getPayloadV{v}"),
            Self::NewPayload(v) => format!("engine_newPayloadV{v}"),
        }
    }
}

/// Every method name the builder layers may claim, for [`RpcMethodLayer::claim`](crate::RpcMethodLayer::claim).
pub fn claimed_methods() -> Vec<String> {
    let mut methods = Vec::new();
    for v in 1..=3 {
        methods.push(EngineMethod::ForkchoiceUpdated(v).name());
    }
    for v in 2..=5 {
        methods.push(EngineMethod::GetPayload(v).name());
    }
    for v in 2..=4 {
        methods.push(EngineMethod::NewPayload(v).name());
    }
    methods.extend([
        "eth_sendRawTransaction".to_owned(),
        "eth_sendRawTransactionConditional".to_owned(),
    ]);
    methods
}

/// `engine_forkchoiceUpdated` params: the state, and the attributes as raw JSON (`None` when
/// absent or `null`).
///
/// # Errors
///
/// If the params are not an array whose first element is a forkchoice state.
pub fn forkchoice_params(
    params: &[u8],
) -> Result<(ForkchoiceState, Option<&RawValue>), serde_json::Error> {
    let elements: Vec<&RawValue> = serde_json::from_slice(params)?;
    let state_raw = elements.first().map_or("null", |raw| raw.get());
    let state: ForkchoiceState = serde_json::from_str(state_raw)?;
    let attributes = elements
        .get(1)
        .copied()
        .filter(|raw| raw.get().trim() != "null");
    Ok((state, attributes))
}

/// The payload id of `engine_getPayload` params.
///
/// # Errors
///
/// If the params are not `[id]`.
pub fn get_payload_id(params: &[u8]) -> Result<PayloadId, serde_json::Error> {
    let (id,): (PayloadId,) = serde_json::from_slice(params)?;
    Ok(id)
}

/// Whether FCU attributes ask for a block without mempool transactions (`noTxPool: true`).
pub fn no_tx_pool(attributes: &RawValue) -> bool {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Flag {
        #[serde(default)]
        no_tx_pool: Option<bool>,
    }
    serde_json::from_str::<Flag>(attributes.get()).is_ok_and(|f| f.no_tx_pool == Some(true))
}

/// A getPayload result, typed by the version asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Envelope {
    /// `engine_getPayloadV2`: a V1 or V2 payload and the block value.
    V2(ExecutionPayloadEnvelopeV2),
    /// `engine_getPayloadV3` (Ecotone to Holocene).
    V3(OpExecutionPayloadEnvelopeV3),
    /// `engine_getPayloadV4` and `V5` (Isthmus and later; V5 reuses V4's shape).
    V4(OpExecutionPayloadEnvelopeV4),
}

/// Why an envelope could not be read.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// Not the shape of the version asked for.
    #[error("not a getPayloadV{version} result: {source}")]
    Shape {
        /// The version asked for.
        version: u8,
        /// The decoding error.
        #[source]
        source: serde_json::Error,
    },
    /// A version this crate does not know.
    #[error("unsupported getPayload version {0}")]
    Version(u8),
    /// The payload cannot be turned into a block (e.g. extraData over 32 bytes).
    #[error("payload is not a block: {0}")]
    NotABlock(String),
}

impl Envelope {
    /// Reads the result of `engine_getPayloadV{version}`.
    ///
    /// # Errors
    ///
    /// If `raw` is not that version's envelope.
    pub fn parse(version: u8, raw: &[u8]) -> Result<Self, EnvelopeError> {
        let shape = |source| EnvelopeError::Shape { version, source };
        match version {
            2 => serde_json::from_slice(raw).map(Self::V2).map_err(shape),
            3 => serde_json::from_slice(raw).map(Self::V3).map_err(shape),
            4 | 5 => serde_json::from_slice(raw).map(Self::V4).map_err(shape),
            other => Err(EnvelopeError::Version(other)),
        }
    }

    /// The fields every payload version has.
    pub fn payload(&self) -> &ExecutionPayloadV1 {
        match self {
            Self::V2(e) => match &e.execution_payload {
                ExecutionPayloadFieldV2::V1(p) => p,
                ExecutionPayloadFieldV2::V2(p) => &p.payload_inner,
            },
            Self::V3(e) => &e.execution_payload.payload_inner.payload_inner,
            Self::V4(e) => {
                &e.execution_payload
                    .payload_inner
                    .payload_inner
                    .payload_inner
            }
        }
    }

    /// The withdrawals list, from Canyon (V2 payloads) on.
    pub fn withdrawals(&self) -> Option<&[alloy_eips::eip4895::Withdrawal]> {
        match self {
            Self::V2(e) => match &e.execution_payload {
                ExecutionPayloadFieldV2::V1(_) => None,
                ExecutionPayloadFieldV2::V2(p) => Some(&p.withdrawals),
            },
            Self::V3(e) => Some(&e.execution_payload.payload_inner.withdrawals),
            Self::V4(e) => Some(&e.execution_payload.payload_inner.payload_inner.withdrawals),
        }
    }

    /// The parent beacon block root, from Ecotone on.
    pub fn parent_beacon_block_root(&self) -> Option<B256> {
        match self {
            Self::V2(_) => None,
            Self::V3(e) => Some(e.parent_beacon_block_root),
            Self::V4(e) => Some(e.parent_beacon_block_root),
        }
    }

    /// The block value the client claims.
    pub fn block_value(&self) -> U256 {
        match self {
            Self::V2(e) => e.block_value,
            Self::V3(e) => e.block_value,
            Self::V4(e) => e.block_value,
        }
    }

    /// Whether the envelope carries anything OP forbids: blobs, or EL requests.
    pub fn has_forbidden_sidecar(&self) -> bool {
        match self {
            Self::V2(_) => false,
            Self::V3(e) => {
                !e.blobs_bundle.commitments.is_empty() || !e.blobs_bundle.blobs.is_empty()
            }
            Self::V4(e) => {
                !e.blobs_bundle.commitments.is_empty()
                    || !e.blobs_bundle.blobs.is_empty()
                    || !e.execution_requests.is_empty()
            }
        }
    }

    /// The block hash recomputed from the payload and its sidecar (not the one it claims).
    ///
    /// # Errors
    ///
    /// If the payload cannot form a block.
    pub fn block_hash(&self) -> Result<B256, EnvelopeError> {
        let not_a_block = |e: &dyn std::fmt::Display| EnvelopeError::NotABlock(e.to_string());
        let block = match self {
            Self::V2(e) => match &e.execution_payload {
                ExecutionPayloadFieldV2::V1(p) => {
                    p.clone().into_block_raw().map_err(|e| not_a_block(&e))?
                }
                ExecutionPayloadFieldV2::V2(p) => {
                    p.clone().into_block_raw().map_err(|e| not_a_block(&e))?
                }
            },
            Self::V3(e) => {
                let data = OpExecutionData::v3(
                    e.execution_payload.clone(),
                    Vec::new(),
                    e.parent_beacon_block_root,
                );
                data.payload
                    .into_block_with_sidecar_raw(&data.sidecar)
                    .map_err(|e| not_a_block(&e))?
            }
            Self::V4(e) => {
                let data = OpExecutionData::v4(
                    e.execution_payload.clone(),
                    Vec::new(),
                    e.parent_beacon_block_root,
                    Requests::default(),
                );
                data.payload
                    .into_block_with_sidecar_raw(&data.sidecar)
                    .map_err(|e| not_a_block(&e))?
            }
        };
        Ok(block.header.hash_slow())
    }

    /// The canonical JSON of this envelope: what op-geth answers getPayload with.
    pub fn to_json(&self) -> Vec<u8> {
        let written = match self {
            Self::V2(e) => serde_json::to_vec(e),
            Self::V3(e) => serde_json::to_vec(e),
            Self::V4(e) => serde_json::to_vec(e),
        };
        // Plain data: serialization cannot fail.
        written.unwrap_or_default()
    }

    /// The `engine_newPayload` version and params that validate this payload, as op-node sends
    /// them: `[payload]` (V2), `[payload, [], beaconRoot]` (V3), `[payload, [], beaconRoot, []]`
    /// (V4).
    pub fn new_payload_params(&self) -> (u8, Vec<u8>) {
        let (version, payload, beacon) = match self {
            Self::V2(e) => (2, serde_json::to_vec(&e.execution_payload), None),
            Self::V3(e) => (
                3,
                serde_json::to_vec(&e.execution_payload),
                Some(e.parent_beacon_block_root),
            ),
            Self::V4(e) => (
                4,
                serde_json::to_vec(&e.execution_payload),
                Some(e.parent_beacon_block_root),
            ),
        };
        let payload = payload.unwrap_or_default();
        let mut params = Vec::with_capacity(payload.len() + 96);
        params.push(b'[');
        params.extend_from_slice(&payload);
        if let Some(beacon) = beacon {
            params.extend_from_slice(format!(",[],\"{beacon}\"").as_bytes());
            if version == 4 {
                params.extend_from_slice(b",[]");
            }
        }
        params.push(b']');
        (version, params)
    }

    /// The encoded size of the transactions, in bytes.
    pub fn transactions_size(&self) -> usize {
        self.payload().transactions.iter().map(|tx| tx.len()).sum()
    }

    /// The payload as op-alloy's version-agnostic type.
    pub fn to_op_payload(&self) -> OpExecutionPayload {
        match self {
            Self::V2(e) => match &e.execution_payload {
                ExecutionPayloadFieldV2::V1(p) => OpExecutionPayload::V1(p.clone()),
                ExecutionPayloadFieldV2::V2(p) => OpExecutionPayload::V2(p.clone()),
            },
            Self::V3(e) => OpExecutionPayload::V3(e.execution_payload.clone()),
            Self::V4(e) => OpExecutionPayload::V4(e.execution_payload.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_methods_and_refuses_lookalikes() {
        assert_eq!(
            EngineMethod::parse("engine_newPayloadV2"),
            Some(EngineMethod::NewPayload(2))
        );
        for name in [
            "engine_getPayloadV",
            "engine_getPayloadV0",
            "engine_getPayloadVx",
            "eth_getPayloadV3",
            "engine_fooV3",
        ] {
            assert_eq!(EngineMethod::parse(name), None, "{name}");
        }
        assert_eq!(EngineMethod::GetPayload(5).name(), "engine_getPayloadV5");
    }

    #[test]
    fn forkchoice_params_with_and_without_attributes() {
        let state = r#"{"headBlockHash":"0x0000000000000000000000000000000000000000000000000000000000000001","safeBlockHash":"0x0000000000000000000000000000000000000000000000000000000000000000","finalizedBlockHash":"0x0000000000000000000000000000000000000000000000000000000000000000"}"#;
        let one = format!("[{state}]");
        let (parsed, attrs) = forkchoice_params(one.as_bytes()).expect("one");
        assert_eq!(parsed.head_block_hash, B256::with_last_byte(1));
        assert!(attrs.is_none());
        let null = format!("[{state}, null]");
        let (_, attrs) = forkchoice_params(null.as_bytes()).expect("null");
        assert!(attrs.is_none());
        let with = format!(r#"[{state},{{"timestamp":"0x1","noTxPool":true}}]"#);
        let (_, attrs) = forkchoice_params(with.as_bytes()).expect("attrs");
        assert!(attrs.is_some_and(no_tx_pool));
        assert!(forkchoice_params(b"[1]").is_err());
    }

    #[test]
    fn payload_ids() {
        assert_eq!(
            get_payload_id(br#"["0x0300000000000001"]"#).ok(),
            Some(PayloadId::new([3, 0, 0, 0, 0, 0, 0, 1]))
        );
        assert!(get_payload_id(b"[]").is_err());
    }
}
