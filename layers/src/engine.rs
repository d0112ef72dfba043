//! Engine API facts the builder layers share: method names and versions, forkchoice params, and
//! payload envelopes read, re-hashed and re-written.
//!
//! # Behaviour
//!
//! - [`EngineMethod::parse`] reads a method name (`engine_getPayloadV4` → `GetPayload(4)`).
//! - [`forkchoice_head`] splits `engine_forkchoiceUpdated` params into the head and the raw
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
    BlobsBundleV1, ExecutionPayloadEnvelopeV2, ExecutionPayloadFieldV2, ExecutionPayloadV1,
    PayloadId,
};
use bytes::Bytes;

use crate::{
    body::RpcBody,
    jsonrpc::{ErrorObject, RpcCall},
};
use op_alloy_rpc_types_engine::{
    OpExecutionData, OpExecutionPayload, OpExecutionPayloadEnvelopeV3, OpExecutionPayloadEnvelopeV4,
};
use serde::Deserialize;

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
        // Spelled exactly as the Engine API names them: `V` and one digit, 1 to 9, at the end
        // (every layer asks this of every call: a byte match, not a number parse).
        let (name, [b'V', digit @ b'1'..=b'9']) = method
            .strip_prefix("engine_")?
            .as_bytes()
            .split_last_chunk::<2>()?
        else {
            return None;
        };
        let version = digit - b'0';
        match name {
            b"forkchoiceUpdated" => Some(Self::ForkchoiceUpdated(version)),
            b"getPayload" => Some(Self::GetPayload(version)),
            b"newPayload" => Some(Self::NewPayload(version)),
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

/// `engine_forkchoiceUpdated` params: the head block hash, and the attributes as raw JSON
/// (`None` when absent or `null`), without copying them. Only the state is scanned, and only its
/// head decoded: the attributes are what follows it, for whoever needs them to decode (a
/// malformed or extra element then fails that decode).
///
/// # Errors
///
/// If the params are not an array whose first element is a forkchoice state.
pub fn forkchoice_head(params: &[u8]) -> Result<(B256, Option<&[u8]>), serde_json::Error> {
    let (state, rest) = crate::scan::head_and_rest(params).map_err(|_| not_forkchoice_params())?;
    head_and_attributes(&params[state], rest.map(|rest| &params[rest]))
}

/// [`forkchoice_head`] of a parsed call, whose params are split once however many layers ask.
///
/// # Errors
///
/// If the call has no params, or they are not an array whose first element is a forkchoice
/// state.
pub fn call_forkchoice_head(call: &RpcCall) -> Result<(B256, Option<&[u8]>), serde_json::Error> {
    let (state, rest) = call
        .params_first_and_rest()
        .ok_or_else(not_forkchoice_params)?;
    head_and_attributes(state, rest)
}

fn not_forkchoice_params() -> serde_json::Error {
    <serde_json::Error as serde::de::Error>::custom("not forkchoice params")
}

fn head_and_attributes<'a>(
    state: &[u8],
    rest: Option<&'a [u8]>,
) -> Result<(B256, Option<&'a [u8]>), serde_json::Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Head {
        head_block_hash: B256,
    }
    let head = match scanned_head(state) {
        Some(head) => head,
        None => serde_json::from_slice::<Head>(state)?.head_block_hash,
    };
    Ok((head, attributes_of(rest)))
}

/// `headBlockHash` as op-node writes it (`"0x"` and 64 hex digits, no escape anywhere in the
/// state), read off the scan; anything else is left to the decode, whose verdict stands.
fn scanned_head(state: &[u8]) -> Option<B256> {
    if memchr::memchr(b'\\', state).is_some() {
        return None;
    }
    let [head] = crate::scan::members_loosely(state, [b"headBlockHash"]).ok()?;
    crate::scan::hex_literal(&state[head?]).map(B256::from)
}

fn attributes_of(rest: Option<&[u8]>) -> Option<&[u8]> {
    rest.filter(|raw| *raw != b"null")
}

/// Whether `engine_forkchoiceUpdated` params carry attributes (anything after the state but
/// `null`), found by scanning the state alone; `None` if the params are not an array whose first
/// element is an object.
pub fn has_attributes(params: &[u8]) -> Option<bool> {
    let (state, rest) = crate::scan::head_and_rest(params).ok()?;
    attributes_follow(&params[state], rest.map(|rest| &params[rest]))
}

/// [`has_attributes`] of a parsed call, whose params are split once however many layers ask.
pub fn call_has_attributes(call: &RpcCall) -> Option<bool> {
    let (state, rest) = call.params_first_and_rest()?;
    attributes_follow(state, rest)
}

fn attributes_follow(state: &[u8], rest: Option<&[u8]>) -> Option<bool> {
    (state.first() == Some(&b'{')).then(|| attributes_of(rest).is_some())
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
pub fn no_tx_pool(attributes: &[u8]) -> bool {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Flag {
        #[serde(default)]
        no_tx_pool: Option<bool>,
    }
    serde_json::from_slice::<Flag>(attributes).is_ok_and(|f| f.no_tx_pool == Some(true))
}

/// What a payload job needs of forkchoice attributes that no builder will build: their
/// `timestamp`, and whether they set `noTxPool`; found by a scan of the attributes' members
/// (the transactions are skipped over, not decoded). `None` if they are not attributes.
pub fn attributes_timestamp(attributes: &[u8]) -> Option<(u64, bool)> {
    scanned_timestamp(attributes).or_else(|| decoded_timestamp(attributes))
}

/// The scan: a `"0x…"` timestamp and a boolean (or absent, or `null`) `noTxPool`, as op-node
/// writes them; anything else is left to [`decoded_timestamp`].
fn scanned_timestamp(attributes: &[u8]) -> Option<(u64, bool)> {
    let [timestamp, no_tx_pool] =
        crate::scan::members_loosely(attributes, [b"timestamp", b"noTxPool"]).ok()?;
    let digits = attributes[timestamp?]
        .strip_prefix(b"\"0x")?
        .strip_suffix(b"\"")?;
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    let timestamp = digits.iter().try_fold(0u64, |value, &digit| {
        let nibble = char::from(digit).to_digit(16)?;
        Some(value << 4 | u64::from(nibble))
    })?;
    let no_tx_pool = match no_tx_pool.map(|span| &attributes[span]) {
        Some(b"true") => true,
        None | Some(b"false" | b"null") => false,
        Some(_) => return None,
    };
    Some((timestamp, no_tx_pool))
}

fn decoded_timestamp(attributes: &[u8]) -> Option<(u64, bool)> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Head {
        timestamp: alloy_primitives::U64,
        #[serde(default)]
        no_tx_pool: Option<bool>,
    }
    let head: Head = serde_json::from_slice(attributes).ok()?;
    Some((head.timestamp.to(), head.no_tx_pool == Some(true)))
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

/// A getPayload envelope written out (see [`Envelope::write`]).
#[derive(Clone, Debug)]
pub struct Written {
    envelope: Bytes,
    answer: Option<Bytes>,
    payload: std::ops::Range<usize>,
    version: u8,
    beacon: Option<B256>,
}

impl Written {
    /// The envelope: the `result` of op-geth's getPayload answer.
    pub fn envelope(&self) -> &Bytes {
        &self.envelope
    }

    /// The whole JSON-RPC answer around the envelope, if written by [`Envelope::write_answer`].
    pub fn answer(&self) -> Option<&Bytes> {
        self.answer.as_ref()
    }

    /// The `engine_newPayload` version and params for this payload.
    pub fn new_payload_params(&self) -> (u8, Vec<u8>) {
        let mut params = Vec::with_capacity(self.payload.len() + 96);
        self.write_new_payload_params(&mut params);
        (self.version, params)
    }

    /// The `engine_newPayload` request that validates this payload, under `id` (raw JSON): its
    /// body in three parts around the payload these bytes already hold, so that the payload is
    /// not copied, and the call's [head](crate::jsonrpc::RpcCall::head) for the layers that count
    /// it and answer for it.
    pub fn new_payload_request(&self, id: &[u8]) -> (crate::jsonrpc::RpcCall, RpcBody) {
        let method = format!("engine_newPayloadV{}", self.version);
        let head = crate::jsonrpc::RpcCall::head(&method, id);
        let mut open = Vec::with_capacity(64 + id.len());
        open.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
        open.extend_from_slice(id);
        open.extend_from_slice(b",\"method\":\"");
        open.extend_from_slice(method.as_bytes());
        open.extend_from_slice(b"\",\"params\":[");
        let mut close = Vec::with_capacity(96);
        self.write_params_tail(&mut close);
        close.push(b'}');
        let body = RpcBody::from_parts([
            Bytes::from(open),
            self.envelope.slice(self.payload.clone()),
            Bytes::from(close),
        ]);
        (head, body)
    }

    fn write_new_payload_params(&self, params: &mut Vec<u8>) {
        params.push(b'[');
        params.extend_from_slice(&self.envelope[self.payload.clone()]);
        self.write_params_tail(params);
    }

    /// What follows the payload in newPayload's params, the closing bracket included.
    fn write_params_tail(&self, out: &mut Vec<u8>) {
        if let Some(beacon) = self.beacon {
            out.extend_from_slice(b",[],");
            hex(out, beacon.as_slice());
            if self.version == 4 {
                out.extend_from_slice(b",[]");
            }
        }
        out.push(b']');
    }
}

/// Why a getPayload answer yields no envelope.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum AnswerError {
    /// The answer is a JSON-RPC error.
    #[error("JSON-RPC error {}: {}", .0.code, .0.message)]
    Rpc(ErrorObject),
    /// The answer is not the envelope of the version asked for.
    #[error("malformed answer: {0}")]
    Malformed(String),
}

fn hex(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(b"\"0x");
    let start = out.len();
    out.resize(start + 2 * bytes.len(), 0);
    // The space is exactly twice the input: encoding cannot fail.
    let _ = alloy_primitives::hex::encode_to_slice(bytes, &mut out[start..]);
    out.push(b'"');
}

fn quantity(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(format!("\"{value:#x}\"").as_bytes());
}

fn quantity_u256(out: &mut Vec<u8>, value: U256) {
    out.extend_from_slice(format!("\"{value:#x}\"").as_bytes());
}

/// `at` is at a JSON array of `"0x…"` strings (whitespace as JSON allows): the span of each
/// element's digits, and the index just past the array. `None` for anything else.
fn hex_string_spans(text: &[u8], at: usize) -> Option<(Vec<std::ops::Range<usize>>, usize)> {
    let ws = |i: usize| crate::scan::skip_ws(text, i);
    let mut digits = Vec::new();
    if text.get(at) != Some(&b'[') {
        return None;
    }
    let mut i = ws(at + 1);
    if text.get(i) != Some(&b']') {
        loop {
            let start = i + text.get(i..)?.strip_prefix(b"\"0x").map(|_| 3)?;
            let end = start + memchr::memchr(b'"', text.get(start..)?)?;
            if (end - start) % 2 != 0 {
                return None;
            }
            digits.push(start..end);
            i = ws(end + 1);
            match text.get(i) {
                Some(b',') => i = ws(i + 1),
                Some(b']') => break,
                _ => return None,
            }
        }
    }
    Some((digits, i + 1))
}

/// The hex `digits` of `text` decoded into one buffer that every element shares: one
/// allocation for thousands of transactions. `None` if any is not hex.
fn decode_hex_strings(
    text: &[u8],
    digits: &[std::ops::Range<usize>],
) -> Option<Vec<alloy_primitives::Bytes>> {
    let mut buffer = vec![0u8; digits.iter().map(|span| span.len() / 2).sum()];
    let mut at = 0;
    for span in digits {
        let len = span.len() / 2;
        alloy_primitives::hex::decode_to_slice(&text[span.clone()], &mut buffer[at..at + len])
            .ok()?;
        at += len;
    }
    let buffer = Bytes::from(buffer);
    let mut at = 0;
    Some(
        digits
            .iter()
            .map(|span| {
                let len = span.len() / 2;
                at += len;
                alloy_primitives::Bytes::from(buffer.slice(at - len..at))
            })
            .collect(),
    )
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
    /// Works on a copy of the payload; [`Envelope::into_block_hash`] needs none.
    ///
    /// # Errors
    ///
    /// If the payload cannot form a block.
    pub fn block_hash(&self) -> Result<B256, EnvelopeError> {
        self.clone().into_block_hash()
    }

    /// As [`Envelope::block_hash`], consuming the envelope: the payload's transactions become
    /// the block's as they are, not copied one by one.
    ///
    /// # Errors
    ///
    /// If the payload cannot form a block.
    pub fn into_block_hash(self) -> Result<B256, EnvelopeError> {
        let not_a_block = |e: &dyn std::fmt::Display| EnvelopeError::NotABlock(e.to_string());
        let block = match self {
            Self::V2(e) => match e.execution_payload {
                ExecutionPayloadFieldV2::V1(p) => {
                    p.into_block_raw().map_err(|e| not_a_block(&e))?
                }
                ExecutionPayloadFieldV2::V2(p) => {
                    p.into_block_raw().map_err(|e| not_a_block(&e))?
                }
            },
            Self::V3(e) => {
                let data = OpExecutionData::v3(
                    e.execution_payload,
                    Vec::new(),
                    e.parent_beacon_block_root,
                );
                data.payload
                    .into_block_with_sidecar_raw(&data.sidecar)
                    .map_err(|e| not_a_block(&e))?
            }
            Self::V4(e) => {
                let data = OpExecutionData::v4(
                    e.execution_payload,
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
        self.write().envelope.to_vec()
    }

    /// The `engine_newPayload` version and params that validate this payload, as op-node sends
    /// them: `[payload]` (V2), `[payload, [], beaconRoot]` (V3), `[payload, [], beaconRoot, []]`
    /// (V4).
    pub fn new_payload_params(&self) -> (u8, Vec<u8>) {
        self.write().new_payload_params()
    }

    /// Writes the envelope out once; op-geth's newPayload params and op-node's answer are both
    /// cut from these bytes.
    pub fn write(&self) -> Written {
        self.write_framed(b"", b"", None)
    }

    /// As [`Envelope::write`], inside the JSON-RPC answer to the call with raw id `id` (see
    /// [`Written::answer`]): the answer to op-node needs no second copy of the payload.
    pub fn write_answer(&self, id: &[u8]) -> Written {
        self.write_answer_listing(id, None)
    }

    /// [`Envelope::write_answer`], with the payload's transactions written as `transactions`,
    /// the array [`Envelope::parse_answer_with_transactions`] read this envelope's from: copied,
    /// not encoded again (what op-geth validates and op-node gets are the very strings checked).
    pub fn write_answer_with_transactions(&self, id: &[u8], transactions: &[u8]) -> Written {
        self.write_answer_listing(id, Some(transactions))
    }

    fn write_answer_listing(&self, id: &[u8], transactions: Option<&[u8]>) -> Written {
        let mut prefix = Vec::with_capacity(40 + id.len());
        prefix.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
        prefix.extend_from_slice(if id.is_empty() { b"null" } else { id });
        prefix.extend_from_slice(b",\"result\":");
        self.write_framed(&prefix, b"}", transactions)
    }

    fn write_framed(&self, prefix: &[u8], suffix: &[u8], transactions: Option<&[u8]>) -> Written {
        let payload = self.payload();
        let hex_len: usize = match transactions {
            Some(listed) => listed.len(),
            None => payload.transactions.iter().map(|tx| 2 * tx.len() + 5).sum(),
        };
        let mut out = Vec::with_capacity(prefix.len() + hex_len + 2_048);
        out.extend_from_slice(prefix);
        out.extend_from_slice(b"{\"executionPayload\":");
        let start = out.len();
        self.write_payload(&mut out, transactions);
        let end = out.len();
        out.extend_from_slice(b",\"blockValue\":");
        quantity_u256(&mut out, self.block_value());
        let (version, beacon) = match self {
            Self::V2(_) => (2, None),
            Self::V3(e) => {
                self.write_sidecar(
                    &mut out,
                    &e.blobs_bundle,
                    e.should_override_builder,
                    e.parent_beacon_block_root,
                );
                (3, Some(e.parent_beacon_block_root))
            }
            Self::V4(e) => {
                self.write_sidecar(
                    &mut out,
                    &e.blobs_bundle,
                    e.should_override_builder,
                    e.parent_beacon_block_root,
                );
                out.extend_from_slice(b",\"executionRequests\":");
                out.extend_from_slice(
                    &serde_json::to_vec(&e.execution_requests).unwrap_or_else(|_| b"[]".to_vec()),
                );
                (4, Some(e.parent_beacon_block_root))
            }
        };
        out.push(b'}');
        let envelope_end = out.len();
        out.extend_from_slice(suffix);
        let whole = Bytes::from(out);
        let offset = prefix.len();
        Written {
            envelope: whole.slice(offset..envelope_end),
            answer: (!prefix.is_empty()).then_some(whole),
            payload: start - offset..end - offset,
            version,
            beacon,
        }
    }

    fn write_sidecar(
        &self,
        out: &mut Vec<u8>,
        blobs: &BlobsBundleV1,
        override_builder: bool,
        beacon: B256,
    ) {
        out.extend_from_slice(b",\"blobsBundle\":");
        out.extend_from_slice(&serde_json::to_vec(blobs).unwrap_or_default());
        out.extend_from_slice(if override_builder {
            b",\"shouldOverrideBuilder\":true".as_slice()
        } else {
            b",\"shouldOverrideBuilder\":false".as_slice()
        });
        out.extend_from_slice(b",\"parentBeaconBlockRoot\":");
        hex(out, beacon.as_slice());
    }

    /// The execution payload object. Hex is written straight into the buffer: serde's
    /// per-character escape check of megabytes of transactions cost more than the block hash.
    fn write_payload(&self, out: &mut Vec<u8>, transactions: Option<&[u8]>) {
        let withdrawals = self.withdrawals();
        if withdrawals.is_some_and(|w| !w.is_empty()) {
            // Never valid on OP (the checks refuse it); written exactly, not fast.
            let exact = match self {
                Self::V2(e) => serde_json::to_vec(&e.execution_payload),
                Self::V3(e) => serde_json::to_vec(&e.execution_payload),
                Self::V4(e) => serde_json::to_vec(&e.execution_payload),
            };
            out.extend_from_slice(&exact.unwrap_or_default());
            return;
        }
        let p = self.payload();
        out.extend_from_slice(b"{\"parentHash\":");
        hex(out, p.parent_hash.as_slice());
        out.extend_from_slice(b",\"feeRecipient\":");
        hex(out, p.fee_recipient.as_slice());
        out.extend_from_slice(b",\"stateRoot\":");
        hex(out, p.state_root.as_slice());
        out.extend_from_slice(b",\"receiptsRoot\":");
        hex(out, p.receipts_root.as_slice());
        out.extend_from_slice(b",\"logsBloom\":");
        hex(out, p.logs_bloom.as_slice());
        out.extend_from_slice(b",\"prevRandao\":");
        hex(out, p.prev_randao.as_slice());
        for (key, value) in [
            (&b",\"blockNumber\":"[..], p.block_number),
            (b",\"gasLimit\":", p.gas_limit),
            (b",\"gasUsed\":", p.gas_used),
            (b",\"timestamp\":", p.timestamp),
        ] {
            out.extend_from_slice(key);
            quantity(out, value);
        }
        out.extend_from_slice(b",\"extraData\":");
        hex(out, &p.extra_data);
        out.extend_from_slice(b",\"baseFeePerGas\":");
        quantity_u256(out, p.base_fee_per_gas);
        out.extend_from_slice(b",\"blockHash\":");
        hex(out, p.block_hash.as_slice());
        out.extend_from_slice(b",\"transactions\":");
        match transactions {
            Some(listed) => out.extend_from_slice(listed),
            None => {
                out.push(b'[');
                for (i, tx) in p.transactions.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    hex(out, tx);
                }
                out.push(b']');
            }
        }
        if withdrawals.is_some() {
            out.extend_from_slice(b",\"withdrawals\":[]");
        }
        let (blob_gas, withdrawals_root) = match self {
            Self::V2(_) => (None, None),
            Self::V3(e) => (
                Some((
                    e.execution_payload.blob_gas_used,
                    e.execution_payload.excess_blob_gas,
                )),
                None,
            ),
            Self::V4(e) => (
                Some((
                    e.execution_payload.payload_inner.blob_gas_used,
                    e.execution_payload.payload_inner.excess_blob_gas,
                )),
                Some(e.execution_payload.withdrawals_root),
            ),
        };
        if let Some((used, excess)) = blob_gas {
            out.extend_from_slice(b",\"blobGasUsed\":");
            quantity(out, used);
            out.extend_from_slice(b",\"excessBlobGas\":");
            quantity(out, excess);
        }
        if let Some(root) = withdrawals_root {
            out.extend_from_slice(b",\"withdrawalsRoot\":");
            hex(out, root.as_slice());
        }
        out.push(b'}');
    }

    /// Reads a whole JSON-RPC answer to `engine_getPayloadV{version}` in one pass.
    ///
    /// # Errors
    ///
    /// The JSON-RPC error the answer carries, or why it is not that version's envelope.
    pub fn parse_answer(version: u8, body: &[u8]) -> Result<Self, AnswerError> {
        if let Some((envelope, _)) = Self::parse_answer_scanned(version, body) {
            return Ok(envelope);
        }
        Self::parse_answer_decoded(version, body)
    }

    /// [`Envelope::parse_answer`], and the payload's `transactions` array as received when the
    /// scan read it (every element `"0x…"`, even-length hex, no escape: the text an encoder
    /// would write, up to case and spacing), for [`Envelope::write_answer_with_transactions`]
    /// to copy instead of encoding them again.
    ///
    /// # Errors
    ///
    /// As [`Envelope::parse_answer`].
    pub fn parse_answer_with_transactions(
        version: u8,
        body: &Bytes,
    ) -> Result<(Self, Option<Bytes>), AnswerError> {
        if let Some((envelope, listed)) = Self::parse_answer_scanned(version, body) {
            return Ok((envelope, Some(body.slice(listed))));
        }
        Self::parse_answer_decoded(version, body).map(|envelope| (envelope, None))
    }

    /// [`Envelope::parse_answer`] for an answer as execution clients write it: the
    /// transactions (nearly all of a big payload's bytes) cut out by the scan and hex-decoded
    /// into one buffer, everything else decoded as ever. `None` (and the whole answer to the
    /// decode, whose verdict stands) for anything else: an escape anywhere, an error member, a
    /// transaction not written `"0x…"`, an array the scan does not follow.
    fn parse_answer_scanned(version: u8, body: &[u8]) -> Option<(Self, std::ops::Range<usize>)> {
        if memchr::memchr(b'\\', body).is_some() {
            return None;
        }
        // The transactions are delimited by reading them, in the same pass as the envelope.
        let ([_, error], listed) = crate::scan::members_loosely_along(
            body,
            [b"result", b"error"],
            &[b"result", b"executionPayload", b"transactions"],
            |at| hex_string_spans(body, at).ok_or(crate::scan::ScanError::Syntax),
        )
        .ok()?;
        if error.is_some_and(|error| &body[error] != b"null") {
            return None;
        }
        let (digits, listed) = listed?;
        let transactions = decode_hex_strings(body, &digits)?;
        let mut rest = Vec::with_capacity(body.len() - listed.len() + 2);
        rest.extend_from_slice(&body[..listed.start]);
        rest.extend_from_slice(b"[]");
        rest.extend_from_slice(&body[listed.end..]);
        let mut envelope = Self::parse_answer_decoded(version, &rest).ok()?;
        *envelope.transactions_mut() = transactions;
        Some((envelope, listed))
    }

    fn transactions_mut(&mut self) -> &mut Vec<alloy_primitives::Bytes> {
        match self {
            Self::V2(e) => match &mut e.execution_payload {
                ExecutionPayloadFieldV2::V1(p) => &mut p.transactions,
                ExecutionPayloadFieldV2::V2(p) => &mut p.payload_inner.transactions,
            },
            Self::V3(e) => &mut e.execution_payload.payload_inner.payload_inner.transactions,
            Self::V4(e) => {
                &mut e
                    .execution_payload
                    .payload_inner
                    .payload_inner
                    .payload_inner
                    .transactions
            }
        }
    }

    fn parse_answer_decoded(version: u8, body: &[u8]) -> Result<Self, AnswerError> {
        #[derive(Deserialize)]
        struct Answer<T> {
            #[serde(default = "Option::default")]
            result: Option<T>,
            #[serde(default)]
            error: Option<ErrorObject>,
        }
        fn read<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, AnswerError> {
            let answer: Answer<T> =
                serde_json::from_slice(body).map_err(|e| AnswerError::Malformed(e.to_string()))?;
            match (answer.result, answer.error) {
                (_, Some(error)) => Err(AnswerError::Rpc(error)),
                (Some(result), None) => Ok(result),
                (None, None) => Err(AnswerError::Malformed("neither result nor error".into())),
            }
        }
        match version {
            2 => read(body).map(Self::V2),
            3 => read(body).map(Self::V3),
            4 | 5 => read(body).map(Self::V4),
            other => Err(AnswerError::Malformed(format!(
                "unsupported getPayload version {other}"
            ))),
        }
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
            "engine_getPayloadV10",
            "engine_getPayloadV03",
            "engine_getPayloadV+3",
            "engine_getPayloadv3",
            "engine_getPayloadV3 ",
            "eth_getPayloadV3",
            "engine_fooV3",
        ] {
            assert_eq!(EngineMethod::parse(name), None, "{name}");
        }
        assert_eq!(EngineMethod::GetPayload(5).name(), "engine_getPayloadV5");
    }

    #[test]
    fn the_head_read_off_the_scan_is_the_decodes_and_odd_ones_go_to_the_decode() {
        let hash = format!("0x{}", "ab".repeat(32));
        let expected: B256 = hash.parse().expect("hash");
        let state = |head: &str| {
            format!(
                r#"[{{"headBlockHash":{head},"safeBlockHash":"{hash}","finalizedBlockHash":"{hash}"}}]"#
            )
        };
        for head in [
            format!("\"{hash}\""),
            format!("\"{}\"", hash.to_uppercase().replacen("0X", "0x", 1)),
            // Escapes and a missing prefix are the decode's to judge.
            format!("\"\\u0030x{}\"", "ab".repeat(32)),
            format!("\"{}\"", "ab".repeat(32)),
        ] {
            let params = state(&head);
            let decoded = serde_json::from_str::<serde_json::Value>(&params).expect("json")[0]
                ["headBlockHash"]
                .as_str()
                .and_then(|h| h.parse::<B256>().ok());
            assert_eq!(
                forkchoice_head(params.as_bytes()).ok().map(|(h, _)| h),
                decoded,
                "{head}"
            );
            assert_eq!(decoded, Some(expected), "{head}");
        }
        for bad in ["\"0x12\"", "\"0xzz\"", "1", "null"] {
            assert!(forkchoice_head(state(bad).as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn forkchoice_head_with_and_without_attributes() {
        let state = r#"{"headBlockHash":"0x0000000000000000000000000000000000000000000000000000000000000001","safeBlockHash":"0x0000000000000000000000000000000000000000000000000000000000000000","finalizedBlockHash":"0x0000000000000000000000000000000000000000000000000000000000000000"}"#;
        let one = format!("[{state}]");
        let (head, attrs) = forkchoice_head(one.as_bytes()).expect("one");
        assert_eq!(head, B256::with_last_byte(1));
        assert!(attrs.is_none());
        let null = format!("[{state}, null]");
        let (_, attrs) = forkchoice_head(null.as_bytes()).expect("null");
        assert!(attrs.is_none());
        let with = format!(r#"[{state},{{"timestamp":"0x1","noTxPool":true}}]"#);
        let (_, attrs) = forkchoice_head(with.as_bytes()).expect("attrs");
        assert!(attrs.is_some_and(no_tx_pool));
        let spaced = format!("[ {state} ,  null ]");
        assert!(
            forkchoice_head(spaced.as_bytes())
                .expect("spaced")
                .1
                .is_none()
        );
        assert_eq!(has_attributes(spaced.as_bytes()), Some(false));
        // However the array is laid out, the attributes are its second element exactly.
        let attributes = serde_json::json!({"timestamp": "0x1", "transactions": ["0x7e", "]"]});
        let state_value: serde_json::Value = serde_json::from_str(state).expect("json");
        for layout in [
            serde_json::to_vec(&serde_json::json!([state_value, attributes])),
            serde_json::to_vec_pretty(&serde_json::json!([state_value, attributes])),
        ] {
            let params = layout.expect("json");
            let (_, attrs) = forkchoice_head(&params).expect("params");
            let attrs: serde_json::Value =
                serde_json::from_slice(attrs.expect("attributes")).expect("json");
            assert_eq!(attrs, attributes);
        }
        // An extra element rides with the attributes, whose decode then refuses it.
        let extra = format!(r#"[{state},{{"timestamp":"0x1"}},1]"#);
        let (_, attrs) = forkchoice_head(extra.as_bytes()).expect("a state");
        assert_eq!(attrs.map(attributes_timestamp), Some(None));
        assert!(forkchoice_head(b"[1]").is_err());
        // The scan agrees with the decode.
        assert_eq!(has_attributes(one.as_bytes()), Some(false));
        assert_eq!(has_attributes(null.as_bytes()), Some(false));
        assert_eq!(has_attributes(with.as_bytes()), Some(true));
        assert_eq!(has_attributes(b"[1]"), None);
        assert_eq!(has_attributes(b"[{}"), None);
        // A parsed call reads the same, asked twice (the second answer is the kept split).
        for params in [&one, &null, &with, &spaced, &extra, "[1]", "[{}", "{}"] {
            let call = RpcCall::new("engine_forkchoiceUpdatedV3", b"1", params.as_bytes());
            for _ in 0..2 {
                assert_eq!(
                    call_forkchoice_head(&call).ok(),
                    forkchoice_head(params.as_bytes()).ok(),
                    "{params}"
                );
                assert_eq!(
                    call_has_attributes(&call),
                    has_attributes(params.as_bytes()),
                    "{params}"
                );
            }
        }
        let no_params = RpcCall::head("engine_forkchoiceUpdatedV3", b"1");
        assert!(call_forkchoice_head(&no_params).is_err());
        assert_eq!(call_has_attributes(&no_params), None);
    }

    fn payload_json(v2: bool, v3: bool, v4: bool) -> serde_json::Value {
        let mut payload = serde_json::json!({
            "parentHash": format!("0x{}", "11".repeat(32)),
            "feeRecipient": "0x4200000000000000000000000000000000000011",
            "stateRoot": format!("0x{}", "22".repeat(32)),
            "receiptsRoot": format!("0x{}", "33".repeat(32)),
            "logsBloom": format!("0x{}", "00".repeat(256)),
            "prevRandao": format!("0x{}", "44".repeat(32)),
            "blockNumber": "0x10",
            "gasLimit": "0x1c9c380",
            "gasUsed": "0x0",
            "timestamp": "0x6553f100",
            "extraData": "0x00000000fa00000006",
            "baseFeePerGas": "0x3b9aca00",
            "blockHash": format!("0x{}", "55".repeat(32)),
            "transactions": ["0x7e01", "0x02abcdef"],
        });
        if v2 {
            payload["withdrawals"] = serde_json::json!([]);
        }
        if v3 {
            payload["blobGasUsed"] = serde_json::json!("0x0");
            payload["excessBlobGas"] = serde_json::json!("0x7");
        }
        if v4 {
            payload["withdrawalsRoot"] = serde_json::json!(format!("0x{}", "66".repeat(32)));
        }
        payload
    }

    /// An envelope of every version (V2 twice: before and after Canyon).
    fn envelopes() -> [(u8, serde_json::Value); 4] {
        let beacon = format!("0x{}", "77".repeat(32));
        let sidecar = serde_json::json!({"commitments": [], "proofs": [], "blobs": []});
        [
            (
                2,
                serde_json::json!({"executionPayload": payload_json(false, false, false), "blockValue": "0x0"}),
            ),
            (
                2,
                serde_json::json!({"executionPayload": payload_json(true, false, false), "blockValue": "0x5"}),
            ),
            (
                3,
                serde_json::json!({"executionPayload": payload_json(true, true, false), "blockValue": "0x3039",
                "blobsBundle": sidecar, "shouldOverrideBuilder": true, "parentBeaconBlockRoot": beacon}),
            ),
            (
                4,
                serde_json::json!({"executionPayload": payload_json(true, true, true), "blockValue": "0x3039",
                "blobsBundle": sidecar, "shouldOverrideBuilder": false, "parentBeaconBlockRoot": beacon,
                "executionRequests": []}),
            ),
        ]
    }

    /// The answers of every version, with `transactions` replaced by `txs` (raw JSON).
    fn answers(txs: &str) -> Vec<(u8, String)> {
        envelopes()
            .into_iter()
            .map(|(version, envelope)| {
                let answer = serde_json::json!({"jsonrpc": "2.0", "id": 1, "result": envelope});
                let text = answer
                    .to_string()
                    .replace(r#"["0x7e01","0x02abcdef"]"#, txs);
                (version, text)
            })
            .collect()
    }

    #[test]
    fn answers_read_off_the_scan_equal_the_decodes_and_the_rest_go_to_the_decode() {
        let many: Vec<String> = (0..300u32)
            .map(|i| format!("\"0x02{}\"", "ab".repeat(i as usize % 40)))
            .collect();
        let scanned = [
            r#"["0x7e01","0x02abcdef"]"#.to_owned(),
            "[]".to_owned(),
            "[ ]".to_owned(),
            r#"["0x"]"#.to_owned(),
            r#"[ "0x7E01" ,
              "0x02ABcdef" ]"#
                .to_owned(),
            format!("[{}]", many.join(",")),
        ];
        let decoded = [
            r#"["7e01"]"#,
            r#"["0x7e0"]"#,
            r#"["0x7e0g"]"#,
            r#"["0x7e01",]"#,
            r#"["0x7e01" "0x02"]"#,
            r#"["0x7e01",1]"#,
            r#"["\u0030x7e01"]"#,
            r#"{"0x7e01":1}"#,
            r#"null"#,
            r#"["0x7e01"],"transactions":["0x02"]"#,
        ];
        let same = |version: u8, text: &str| {
            let scanned =
                Envelope::parse_answer(version, text.as_bytes()).map(|e| format!("{e:?}"));
            let decoded =
                Envelope::parse_answer_decoded(version, text.as_bytes()).map(|e| format!("{e:?}"));
            match (scanned, decoded) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{text}"),
                (Err(_), Err(_)) => {}
                (a, b) => panic!("{text}: {a:?} against {b:?}"),
            }
        };
        for txs in &scanned {
            for (version, text) in answers(txs) {
                assert!(
                    Envelope::parse_answer_scanned(version, text.as_bytes()).is_some(),
                    "v{version} {txs}: read off the scan"
                );
                same(version, &text);
                // Written back with the transactions as received: what op-geth validates and
                // op-node gets reads as the envelope checked; byte for byte as written afresh
                // when the builder wrote them as we do.
                let body = Bytes::from(text.clone());
                let (envelope, listed) =
                    Envelope::parse_answer_with_transactions(version, &body).expect("reads");
                let listed = listed.expect("read off the scan");
                let copied = envelope.write_answer_with_transactions(b"7", &listed);
                let encoded = envelope.write_answer(b"7");
                let reread = |written: &Written| {
                    let answer = written.answer().expect("an answer");
                    format!(
                        "{:?}",
                        Envelope::parse_answer(version, answer).expect("reads")
                    )
                };
                assert_eq!(reread(&copied), reread(&encoded), "v{version} {txs}");
                let params = |written: &Written| {
                    serde_json::from_slice::<serde_json::Value>(&written.new_payload_params().1)
                        .expect("params")
                };
                let (copied_params, encoded_params) = (params(&copied), params(&encoded));
                let lower = |v: &serde_json::Value| v.to_string().to_lowercase();
                assert_eq!(
                    lower(&copied_params),
                    lower(&encoded_params),
                    "v{version} {txs}"
                );
                if !txs.contains(char::is_whitespace) && txs == &txs.to_lowercase() {
                    assert_eq!(copied.answer(), encoded.answer(), "v{version} {txs}");
                }
            }
        }
        for txs in decoded {
            for (version, text) in answers(txs) {
                assert!(
                    Envelope::parse_answer_scanned(version, text.as_bytes()).is_none(),
                    "v{version} {txs}: left to the decode"
                );
                same(version, &text);
            }
        }
        // An error answer, and a key escaped elsewhere, are the decode's too.
        let error =
            br#"{"jsonrpc":"2.0","id":1,"error":{"code":-38001,"message":"Unknown payload"}}"#;
        assert!(Envelope::parse_answer_scanned(4, error).is_none());
        assert!(matches!(
            Envelope::parse_answer(4, error),
            Err(AnswerError::Rpc(_))
        ));
        for (version, text) in answers(r#"["0x7e01"]"#) {
            let escaped = text.replace("\"blockValue\"", "\"block\\u0056alue\"");
            assert!(Envelope::parse_answer_scanned(version, escaped.as_bytes()).is_none());
            same(version, &escaped);
        }
    }

    #[test]
    fn written_envelopes_equal_serdes_and_params_follow_op_node() {
        let beacon = format!("0x{}", "77".repeat(32));
        for (version, value) in envelopes() {
            let envelope = Envelope::parse(version, value.to_string().as_bytes()).expect("parses");
            let serde_value = match &envelope {
                Envelope::V2(e) => serde_json::to_value(e),
                Envelope::V3(e) => serde_json::to_value(e),
                Envelope::V4(e) => serde_json::to_value(e),
            }
            .expect("serde");
            let written = envelope.write();
            let ours: serde_json::Value =
                serde_json::from_slice(written.envelope()).expect("valid JSON");
            assert_eq!(ours, serde_value, "v{version}");
            let (new_version, params) = written.new_payload_params();
            let params: serde_json::Value = serde_json::from_slice(&params).expect("params JSON");
            let expected = match new_version {
                2 => serde_json::json!([serde_value["executionPayload"]]),
                3 => serde_json::json!([serde_value["executionPayload"], [], beacon]),
                _ => serde_json::json!([serde_value["executionPayload"], [], beacon, []]),
            };
            assert_eq!(params, expected, "v{version}");
            let (head, body) = written.new_payload_request(b"7");
            assert_eq!(head.method(), format!("engine_newPayloadV{new_version}"));
            assert_eq!(head.id(), b"7");
            assert!(head.params().is_none(), "the head carries no params");
            let sent = body.to_bytes();
            let Ok(crate::jsonrpc::Parsed::Single(Ok(call))) = crate::jsonrpc::parse(&sent) else {
                panic!("the parts join into one call")
            };
            assert_eq!(call.method(), head.method());
            assert_eq!(call.id(), b"7");
            let call_params: serde_json::Value =
                serde_json::from_slice(call.params().unwrap_or_default()).expect("params JSON");
            assert_eq!(
                call_params, expected,
                "v{version}: the call carries the same params"
            );
            let framed = envelope.write_answer(b"\"op-node\"");
            assert_eq!(framed.envelope(), written.envelope());
            assert_eq!(framed.new_payload_params(), written.new_payload_params());
            let whole: serde_json::Value =
                serde_json::from_slice(framed.answer().expect("an answer")).expect("answer JSON");
            assert_eq!(whole["id"], "op-node");
            assert_eq!(whole["result"], serde_value, "v{version}");
            assert!(written.answer().is_none());
            let answer = format!(
                r#"{{"jsonrpc":"2.0","id":1,"result":{}}}"#,
                String::from_utf8_lossy(written.envelope())
            );
            assert_eq!(
                Envelope::parse_answer(version, answer.as_bytes()).ok(),
                Some(envelope)
            );
        }
        let error =
            br#"{"jsonrpc":"2.0","id":1,"error":{"code":-38001,"message":"Unknown payload"}}"#;
        assert!(
            matches!(Envelope::parse_answer(4, error), Err(AnswerError::Rpc(e)) if e.code == -38001)
        );
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

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// The scan of a forkchoice update's attributes reads what their decode reads.
        #[test]
        fn attributes_scan_agrees_with_decode(
            timestamp: u64,
            no_tx_pool in prop::option::of(prop_oneof![Just(json!(true)), Just(json!(false)), Just(Value::Null)]),
            transactions in prop::collection::vec("[0-9a-f]{0,64}", 0..4),
            pretty: bool,
        ) {
            let mut attributes = json!({
                "timestamp": format!("{timestamp:#x}"),
                "prevRandao": B256::ZERO,
                "transactions": transactions.iter().map(|t| format!("0x{t}")).collect::<Vec<_>>(),
                "withdrawals": [{"index": "0x0", "amount": "0x1"}],
            });
            if let Some(flag) = no_tx_pool {
                attributes["noTxPool"] = flag;
            }
            let text = if pretty { serde_json::to_vec_pretty(&attributes) } else { serde_json::to_vec(&attributes) }.unwrap_or_default();
            let scanned = scanned_timestamp(&text);
            prop_assert!(scanned.is_some(), "op-node's form is read by the scan");
            prop_assert_eq!(scanned, decoded_timestamp(&text));
        }
    }

    #[test]
    fn other_forms_are_left_to_the_decode() {
        for (attributes, expected) in [
            (&br#"{"t\u0069mestamp":"0x10"}"#[..], Some((16, false))),
            (br#"{"timestamp":"0x10","noTxPool":"yes"}"#, None),
            // The decode's own rules hold for what the scan leaves to it.
            (br#"{"timestamp":"0x"}"#, Some((0, false))),
            (br#"{"noTxPool":true}"#, None),
            (br#"{"timestamp":"0x10","timestamp":"0x11"}"#, None),
        ] {
            assert_eq!(
                attributes_timestamp(attributes),
                expected,
                "{}",
                String::from_utf8_lossy(attributes)
            );
        }
    }
}
