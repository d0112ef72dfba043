//! The op-node stand-in: drives blocks through an Engine API URL and checks every answer.
//!
//! Per block, as op-node's sequencer does: `engine_forkchoiceUpdated` with attributes (an L1-info
//! deposit first, user deposits at epoch starts, the method version for the fork) → wait the block
//! time → `engine_getPayload` → check that the payload honours the attributes (and recompute its
//! hash) → `engine_newPayload` → `engine_forkchoiceUpdated` to the new head. Any error, any status
//! other than `VALID`, and any payload that does not honour its attributes fails the step loudly.

use std::{
    collections::VecDeque,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use alloy_consensus::proofs;
use alloy_eips::eip7685::EMPTY_REQUESTS_HASH;
use alloy_primitives::{Address, B64, B256, U256, keccak256};
use alloy_rpc_types_engine::{
    ExecutionPayloadV1, ExecutionPayloadV3, ForkchoiceState, ForkchoiceUpdated, PayloadAttributes,
    PayloadId, PayloadStatus, PayloadStatusEnum,
};
use bytes::Bytes as RawBytes;
use http::{HeaderValue, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use op_alloy_rpc_types_engine::{OpExecutionPayloadV4, OpPayloadAttributes};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{json, value::RawValue};
use tokio::time::Instant;

use crate::{
    chain::{self, Block},
    spec::{ChainSpec, Fork},
    tx,
};

/// Why a call or a block failed.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The request did not get an HTTP answer.
    #[error("transport: {0}")]
    Transport(String),
    /// A non-200 HTTP answer.
    #[error("{method}: HTTP {status}: {body}")]
    Http {
        /// The method called.
        method: String,
        /// The HTTP status.
        status: StatusCode,
        /// The body, as text.
        body: String,
    },
    /// A JSON-RPC error answer.
    #[error("{method}: JSON-RPC error {code}: {message}")]
    Rpc {
        /// The method called.
        method: String,
        /// The error code.
        code: i32,
        /// The error message.
        message: String,
    },
    /// An answer that is not the JSON it should be.
    #[error("{method}: undecodable answer: {reason}")]
    Decode {
        /// The method called.
        method: String,
        /// What failed.
        reason: String,
    },
    /// A status other than `VALID`.
    #[error("{method}: status {status}")]
    Status {
        /// The method called.
        method: String,
        /// The status received.
        status: String,
    },
    /// A payload that does not honour its attributes.
    #[error("block {number}: payload does not honour its attributes: {what}")]
    Check {
        /// The block number.
        number: u64,
        /// What is wrong.
        what: String,
    },
}

/// An HTTP JSON-RPC client that signs every request with its own JWT, as op-node does.
#[derive(Clone, Debug)]
pub struct EngineClient {
    client: Client<HttpConnector, Full<RawBytes>>,
    uri: Uri,
    secret: [u8; 32],
    next_id: Arc<AtomicU64>,
}

#[derive(Deserialize)]
struct Answer<'a> {
    #[serde(borrow, default)]
    result: Option<&'a RawValue>,
    #[serde(default)]
    error: Option<AnswerError>,
}

#[derive(Deserialize)]
struct AnswerError {
    code: i32,
    #[serde(default)]
    message: String,
}

impl EngineClient {
    /// A client of `url` signing with `secret`.
    ///
    /// # Errors
    ///
    /// If `url` is not a valid URI.
    pub fn new(url: &str, secret: [u8; 32]) -> Result<Self, DriverError> {
        let uri: Uri = url
            .parse()
            .map_err(|e| DriverError::Transport(format!("bad url {url}: {e}")))?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(Self {
            client,
            uri,
            secret,
            next_id: Arc::new(AtomicU64::new(1)),
        })
    }

    /// POSTs `body` with the given `Authorization` value (`None`: no header); returns the raw
    /// status and body.
    ///
    /// # Errors
    ///
    /// On transport failure.
    pub async fn post(
        &self,
        body: RawBytes,
        authorization: Option<&str>,
    ) -> Result<(StatusCode, RawBytes), DriverError> {
        let mut request = Request::post(self.uri.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .map_err(|e| DriverError::Transport(e.to_string()))?;
        if let Some(value) = authorization {
            let value =
                HeaderValue::try_from(value).map_err(|e| DriverError::Transport(e.to_string()))?;
            request.headers_mut().insert(header::AUTHORIZATION, value);
        }
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| DriverError::Transport(format!("{e:?}")))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| DriverError::Transport(e.to_string()))?
            .to_bytes();
        Ok((status, body))
    }

    /// POSTs `body` signed with a fresh token.
    ///
    /// # Errors
    ///
    /// On transport failure.
    pub async fn post_signed(&self, body: RawBytes) -> Result<(StatusCode, RawBytes), DriverError> {
        let token = format!("Bearer {}", crate::auth::token(&self.secret, 0));
        self.post(body, Some(&token)).await
    }

    /// Calls `method` and returns the raw JSON of its result.
    ///
    /// # Errors
    ///
    /// On transport failure, a non-200 status, a JSON-RPC error or an undecodable answer.
    pub async fn call_raw(
        &self,
        method: &str,
        params: &serde_json::Value,
    ) -> Result<RawBytes, DriverError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body = serde_json::to_vec(
            &json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }),
        )
        .map_err(|e| DriverError::Transport(e.to_string()))?;
        let (status, body) = self.post_signed(body.into()).await?;
        if status != StatusCode::OK {
            return Err(DriverError::Http {
                method: method.into(),
                status,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        let decode = |reason: String| DriverError::Decode {
            method: method.into(),
            reason,
        };
        let answer: Answer<'_> =
            serde_json::from_slice(&body).map_err(|e| decode(e.to_string()))?;
        if let Some(error) = answer.error {
            return Err(DriverError::Rpc {
                method: method.into(),
                code: error.code,
                message: error.message,
            });
        }
        let result = answer.result.ok_or_else(|| decode("no result".into()))?;
        Ok(body.slice_ref(result.get().as_bytes()))
    }

    /// Calls `method` and decodes its result.
    ///
    /// # Errors
    ///
    /// As [`EngineClient::call_raw`].
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        params: serde_json::Value,
    ) -> Result<T, DriverError> {
        let raw = self.call_raw(method, &params).await?;
        serde_json::from_slice(&raw).map_err(|e| DriverError::Decode {
            method: method.into(),
            reason: e.to_string(),
        })
    }
}

/// How the sequencer builds its attributes.
#[derive(Clone, Debug)]
pub struct SequencerConfig {
    /// The chain: forks decide method versions and attribute fields.
    pub spec: ChainSpec,
    /// Wall-clock wait between the FCU and getPayload (0 in tests).
    pub block_time: Duration,
    /// Fee recipient of every block.
    pub fee_recipient: Address,
    /// Add a user deposit every this many blocks (an epoch's first block); 0 never.
    pub deposit_every: u64,
    /// Holocene EIP-1559 parameters (denominator, elasticity).
    pub eip1559: (u32, u32),
    /// Jovian minimum base fee.
    pub min_base_fee: u64,
}

impl SequencerConfig {
    /// Defaults for `spec`: zero block time, the sequencer fee vault, a deposit every 6 blocks.
    pub fn new(spec: ChainSpec) -> Self {
        Self {
            spec,
            block_time: Duration::ZERO,
            fee_recipient: tx::SEQUENCER_FEE_VAULT,
            deposit_every: 6,
            eip1559: (250, 6),
            min_base_fee: 1_000_000,
        }
    }
}

/// What one block cost and what it was.
#[derive(Clone, Debug)]
pub struct BlockReport {
    /// Block number.
    pub number: u64,
    /// Block hash.
    pub hash: B256,
    /// Gas used.
    pub gas_used: u64,
    /// Transactions in the block.
    pub tx_count: usize,
    /// The envelope's block value.
    pub block_value: U256,
    /// Latency of the FCU with attributes.
    pub fcu: Duration,
    /// Latency of getPayload.
    pub get_payload: Duration,
    /// Latency of newPayload.
    pub new_payload: Duration,
    /// Latency of the FCU to the new head.
    pub fcu_head: Duration,
}

#[derive(Clone, Copy, Debug)]
struct HeadRef {
    hash: B256,
    number: u64,
    timestamp: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEnvelope<'a> {
    #[serde(borrow)]
    execution_payload: &'a RawValue,
    #[serde(default)]
    block_value: U256,
    #[serde(default)]
    parent_beacon_block_root: Option<B256>,
}

#[derive(Deserialize)]
struct BlockHead {
    hash: B256,
    #[serde(with = "alloy_serde_quantity")]
    number: u64,
    #[serde(with = "alloy_serde_quantity")]
    timestamp: u64,
}

mod alloy_serde_quantity {
    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let text = String::deserialize(d)?;
        u64::from_str_radix(text.trim_start_matches("0x"), 16).map_err(serde::de::Error::custom)
    }
}

/// The op-node stand-in. See the [module docs](self).
#[derive(Debug)]
pub struct Sequencer {
    client: EngineClient,
    config: SequencerConfig,
    head: HeadRef,
    recent: VecDeque<B256>,
    /// Ask for blocks without mempool transactions (`noTxPool`), as op-node does past the
    /// sequencer drift.
    pub no_tx_pool: bool,
}

impl Sequencer {
    /// Connects to `url` with `secret` and starts from its latest block.
    ///
    /// # Errors
    ///
    /// If the latest block cannot be read.
    pub async fn connect(
        url: &str,
        secret: [u8; 32],
        config: SequencerConfig,
    ) -> Result<Self, DriverError> {
        let client = EngineClient::new(url, secret)?;
        let latest: BlockHead = client
            .call("eth_getBlockByNumber", json!(["latest", false]))
            .await?;
        Ok(Self {
            client,
            config,
            head: HeadRef {
                hash: latest.hash,
                number: latest.number,
                timestamp: latest.timestamp,
            },
            recent: VecDeque::from([latest.hash]),
            no_tx_pool: false,
        })
    }

    /// The client, for extra calls.
    pub fn client(&self) -> &EngineClient {
        &self.client
    }

    /// Sets the wall-clock wait between the FCU and getPayload.
    pub fn set_block_time(&mut self, block_time: Duration) {
        self.config.block_time = block_time;
    }

    /// The current head hash.
    pub fn head(&self) -> B256 {
        self.head.hash
    }

    /// The current head number.
    pub fn head_number(&self) -> u64 {
        self.head.number
    }

    /// The attributes of the next block.
    pub fn next_attributes(&self) -> OpPayloadAttributes {
        let number = self.head.number + 1;
        let timestamp = self.head.timestamp + self.config.spec.block_time.max(1);
        let fork = self.config.spec.forks.at(timestamp);
        let mut transactions = vec![tx::l1_info_deposit(number, timestamp)];
        if self.config.deposit_every > 0 && number.is_multiple_of(self.config.deposit_every) {
            transactions.push(tx::user_deposit(number, 0));
        }
        let (denominator, elasticity) = self.config.eip1559;
        let mut params = [0u8; 8];
        params[..4].copy_from_slice(&denominator.to_be_bytes());
        params[4..].copy_from_slice(&elasticity.to_be_bytes());
        OpPayloadAttributes {
            payload_attributes: PayloadAttributes {
                timestamp,
                prev_randao: keccak256(number.to_be_bytes()),
                suggested_fee_recipient: self.config.fee_recipient,
                withdrawals: (fork >= Fork::Canyon).then(Vec::new),
                parent_beacon_block_root: (fork >= Fork::Ecotone)
                    .then(|| keccak256([b"beacon".as_slice(), &number.to_be_bytes()].concat())),
                ..Default::default()
            },
            transactions: Some(transactions),
            no_tx_pool: Some(self.no_tx_pool),
            gas_limit: Some(self.config.spec.gas_limit),
            eip_1559_params: (fork >= Fork::Holocene).then(|| B64::from(params)),
            min_base_fee: (fork >= Fork::Jovian).then_some(self.config.min_base_fee),
        }
    }

    fn fork_choice(&self, head: B256) -> ForkchoiceState {
        // op-node's safe and finalized heads trail the unsafe head; model a short lag.
        let at = |back: usize| {
            self.recent
                .iter()
                .rev()
                .nth(back)
                .copied()
                .unwrap_or(self.head.hash)
        };
        ForkchoiceState {
            head_block_hash: head,
            safe_block_hash: at(2),
            finalized_block_hash: at(4),
        }
    }

    /// Builds, checks and imports one block.
    ///
    /// # Errors
    ///
    /// On any failure of any step (see the [module docs](self)).
    pub async fn step(&mut self) -> Result<BlockReport, DriverError> {
        self.step_via(None, None).await
    }

    /// [`Sequencer::step`], waiting for `gate` between the forkchoice update and getPayload (a
    /// builder's flashblocks seen, say), as op-node waits out the block time.
    ///
    /// # Errors
    ///
    /// As [`Sequencer::step`].
    pub async fn step_after(
        &mut self,
        gate: impl std::future::Future<Output = ()> + Send,
    ) -> Result<BlockReport, DriverError> {
        self.step_via(None, Some(Box::pin(gate))).await
    }

    /// [`Sequencer::step`], with this driver itself also making the exchanges a builder sidecar
    /// makes for op-node: see [`BuilderPath`]. Each step's latency is what op-node would wait
    /// for behind a sidecar that cost nothing.
    ///
    /// # Errors
    ///
    /// As [`Sequencer::step`]; a builder that fails only costs its payload (op-geth's is used).
    pub async fn step_with_builder(
        &mut self,
        builder: &mut BuilderPath,
    ) -> Result<BlockReport, DriverError> {
        self.step_via(Some(builder), None).await
    }

    async fn step_via(
        &mut self,
        mut builder: Option<&mut BuilderPath>,
        gate: Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>>>,
    ) -> Result<BlockReport, DriverError> {
        let forks = self.config.spec.forks;
        let attrs = self.next_attributes();
        let timestamp = attrs.payload_attributes.timestamp;
        let number = self.head.number + 1;

        let method = format!("engine_forkchoiceUpdatedV{}", forks.fcu_version(timestamp));
        let params = json!([self.fork_choice(self.head.hash), attrs]);
        let started = Instant::now();
        if let Some(builder) = builder.as_deref_mut() {
            builder.relay(&method, &params);
        }
        let updated: ForkchoiceUpdated = self.client.call(&method, params).await?;
        let fcu = started.elapsed();
        let payload_id = expect_valid_id(&method, &updated)?;

        if !self.config.block_time.is_zero() {
            tokio::time::sleep(self.config.block_time).await;
        }
        if let Some(gate) = gate {
            gate.await;
        }

        let get_version = forks.get_payload_version(timestamp);
        let new_version = forks.new_payload_version(timestamp);
        let method = format!("engine_getPayloadV{get_version}");
        let started = Instant::now();
        let local_params = json!([payload_id]);
        let local = self.client.call_raw(&method, &local_params);
        let raw = match builder.as_deref_mut() {
            None => local.await?,
            Some(builder) => {
                let built = builder.payload(&method, new_version, &self.client);
                match tokio::join!(local, built) {
                    (_, Some(built)) => built,
                    (local, None) => local?,
                }
            }
        };
        let get_payload = started.elapsed();
        let envelope: RawEnvelope<'_> =
            serde_json::from_slice(&raw).map_err(|e| DriverError::Decode {
                method: method.clone(),
                reason: e.to_string(),
            })?;
        let checked = check_payload(
            self.head,
            &attrs,
            &envelope,
            get_version,
            number,
            forks.at(timestamp),
        )?;

        let method = format!("engine_newPayloadV{new_version}");
        let params = new_payload_params(&method, new_version, &envelope)?;
        let started = Instant::now();
        if let Some(builder) = builder.as_deref_mut() {
            builder.relay(&method, &params);
        }
        let status: PayloadStatus = self.client.call(&method, params).await?;
        let new_payload = started.elapsed();
        if status.status != PayloadStatusEnum::Valid {
            return Err(DriverError::Status {
                method,
                status: format!("{:?}", status.status),
            });
        }

        let method = "engine_forkchoiceUpdatedV3".to_owned();
        let params = json!([self.fork_choice(checked.hash), null]);
        let started = Instant::now();
        if let Some(builder) = builder {
            builder.relay(&method, &params);
        }
        let updated: ForkchoiceUpdated = self.client.call(&method, params).await?;
        let fcu_head = started.elapsed();
        if updated.payload_status.status != PayloadStatusEnum::Valid {
            return Err(DriverError::Status {
                method,
                status: format!("{:?}", updated.payload_status.status),
            });
        }

        self.head = HeadRef {
            hash: checked.hash,
            number,
            timestamp,
        };
        self.recent.push_back(checked.hash);
        if self.recent.len() > 16 {
            self.recent.pop_front();
        }
        Ok(BlockReport {
            number,
            hash: checked.hash,
            gas_used: checked.gas_used,
            tx_count: checked.tx_count,
            block_value: envelope.block_value,
            fcu,
            get_payload,
            new_payload,
            fcu_head,
        })
    }

    /// Drives `n` blocks.
    ///
    /// # Errors
    ///
    /// The first failing step's error.
    pub async fn drive(&mut self, n: usize) -> Result<Vec<BlockReport>, DriverError> {
        let mut reports = Vec::with_capacity(n);
        for _ in 0..n {
            reports.push(self.step().await?);
        }
        Ok(reports)
    }

    /// Follower mode: imports a block built elsewhere (newPayload, then FCU to it).
    ///
    /// # Errors
    ///
    /// If either call fails or is not `VALID`.
    pub async fn follow(&mut self, block: &Block) -> Result<(), DriverError> {
        let forks = self.config.spec.forks;
        let timestamp = block.header.timestamp;
        let envelope_json = block.envelope_json(forks.get_payload_version(timestamp));
        let envelope: RawEnvelope<'_> =
            serde_json::from_slice(&envelope_json).map_err(|e| DriverError::Decode {
                method: "follow".into(),
                reason: e.to_string(),
            })?;
        let version = forks.new_payload_version(timestamp);
        let method = format!("engine_newPayloadV{version}");
        let params = new_payload_params(&method, version, &envelope)?;
        let status: PayloadStatus = self.client.call(&method, params).await?;
        if status.status != PayloadStatusEnum::Valid {
            return Err(DriverError::Status {
                method,
                status: format!("{:?}", status.status),
            });
        }
        let method = "engine_forkchoiceUpdatedV3".to_owned();
        let updated: ForkchoiceUpdated = self
            .client
            .call(&method, json!([self.fork_choice(block.hash), null]))
            .await?;
        if updated.payload_status.status != PayloadStatusEnum::Valid {
            return Err(DriverError::Status {
                method,
                status: format!("{:?}", updated.payload_status.status),
            });
        }
        self.head = HeadRef {
            hash: block.hash,
            number: block.header.number,
            timestamp,
        };
        self.recent.push_back(block.hash);
        Ok(())
    }
}

/// `engine_newPayload`'s params (of `version`) for a getPayload answer's payload.
fn new_payload_params(
    method: &str,
    version: u8,
    envelope: &RawEnvelope<'_>,
) -> Result<serde_json::Value, DriverError> {
    let payload = envelope.execution_payload.get();
    let beacon = envelope.parent_beacon_block_root.unwrap_or_default();
    let params = match version {
        2 => format!("[{payload}]"),
        3 => format!("[{payload},[],\"{beacon}\"]"),
        _ => format!("[{payload},[],\"{beacon}\",[]]"),
    };
    serde_json::from_str(&params).map_err(|e| DriverError::Decode {
        method: method.into(),
        reason: e.to_string(),
    })
}

/// The exchanges a builder sidecar makes for op-node, made by the driver itself: a floor for
/// what any sidecar adds, since these cost the same behind one and it adds its own hop on top.
///
/// With [`Sequencer::step_with_builder`]: every forkchoice update and `newPayload` also goes to
/// each builder, in order, without op-node waiting for it (boost sync); getPayload asks op-geth
/// and, at once, every builder (for the payload its forkchoice update started), has op-geth
/// validate each builder's payload, and uses the first builder's valid one. The driver checks
/// whichever it uses.
#[derive(Debug)]
pub struct BuilderPath {
    builders: Vec<RelayLane>,
    /// getPayloads, and those answered with a builder's payload.
    pub payloads: (u64, u64),
}

/// One builder's calls, each waiting for the one before (the builder sees them in order).
#[derive(Debug)]
struct RelayLane {
    client: EngineClient,
    last: Option<tokio::task::JoinHandle<Option<RawBytes>>>,
}

impl BuilderPath {
    /// A builder path to `builder`.
    pub fn new(builder: EngineClient) -> Self {
        Self::to_each(vec![builder])
    }

    /// A builder path to each of `builders`.
    pub fn to_each(builders: Vec<EngineClient>) -> Self {
        let builders = builders
            .into_iter()
            .map(|client| RelayLane { client, last: None })
            .collect();
        Self {
            builders,
            payloads: (0, 0),
        }
    }

    fn relay(&mut self, method: &str, params: &serde_json::Value) {
        for lane in &mut self.builders {
            let previous = lane.last.take();
            let client = lane.client.clone();
            let (method, params) = (method.to_owned(), params.clone());
            lane.last = Some(tokio::spawn(async move {
                if let Some(previous) = previous {
                    let _ = previous.await;
                }
                client.call_raw(&method, &params).await.ok()
            }));
        }
    }

    /// Waits until every builder has answered every call relayed so far.
    pub async fn settle(&mut self) {
        for lane in &mut self.builders {
            if let Some(last) = lane.last.take() {
                let _ = last.await;
            }
        }
    }

    /// The first builder's payload, of those op-geth (`l2`) validated, for the forkchoice update
    /// relayed last; `None` if none passes.
    async fn payload(
        &mut self,
        get_method: &str,
        new_version: u8,
        l2: &EngineClient,
    ) -> Option<RawBytes> {
        self.payloads.0 += 1;
        let asked = PayloadAsk {
            get_method,
            new_version,
            l2,
        };
        let each = self.builders.iter_mut().map(|lane| lane.payload(&asked));
        let valid = futures_util::future::join_all(each).await;
        let chosen = valid.into_iter().flatten().next()?;
        self.payloads.1 += 1;
        Some(chosen)
    }
}

/// What a getPayload asks of each builder: its method, and the `newPayload` version op-geth
/// (`l2`) validates the answer with.
struct PayloadAsk<'a> {
    get_method: &'a str,
    new_version: u8,
    l2: &'a EngineClient,
}

impl RelayLane {
    async fn payload(&mut self, asked: &PayloadAsk<'_>) -> Option<RawBytes> {
        let PayloadAsk {
            get_method,
            new_version,
            l2,
        } = *asked;
        let updated = self.last.take()?.await.ok()??;
        let updated: ForkchoiceUpdated = serde_json::from_slice(&updated).ok()?;
        let id = expect_valid_id(get_method, &updated).ok()?;
        let raw = self.client.call_raw(get_method, &json!([id])).await.ok()?;
        let envelope: RawEnvelope<'_> = serde_json::from_slice(&raw).ok()?;
        let method = format!("engine_newPayloadV{new_version}");
        let params = new_payload_params(&method, new_version, &envelope).ok()?;
        let status: PayloadStatus = l2.call(&method, params).await.ok()?;
        (status.status == PayloadStatusEnum::Valid).then_some(raw)
    }
}

fn expect_valid_id(method: &str, updated: &ForkchoiceUpdated) -> Result<PayloadId, DriverError> {
    match (&updated.payload_status.status, updated.payload_id) {
        (PayloadStatusEnum::Valid, Some(id)) => Ok(id),
        (status, _) => Err(DriverError::Status {
            method: method.into(),
            status: format!("{status:?} (payload id {:?})", updated.payload_id),
        }),
    }
}

struct Checked {
    hash: B256,
    gas_used: u64,
    tx_count: usize,
}

fn check_payload(
    head: HeadRef,
    attrs: &OpPayloadAttributes,
    envelope: &RawEnvelope<'_>,
    version: u8,
    number: u64,
    fork: Fork,
) -> Result<Checked, DriverError> {
    let fail = |what: String| DriverError::Check { number, what };
    let raw = envelope.execution_payload.get();
    let (payload, header) = match version {
        2 => {
            let v1: ExecutionPayloadV1 =
                serde_json::from_str(raw).map_err(|e| fail(e.to_string()))?;
            let withdrawals = (fork >= Fork::Canyon).then_some(alloy_consensus::EMPTY_ROOT_HASH);
            let header = chain::payload_header(&v1, withdrawals, None, None, None);
            (v1, header)
        }
        3 => {
            let v3: ExecutionPayloadV3 =
                serde_json::from_str(raw).map_err(|e| fail(e.to_string()))?;
            let header = chain::payload_header(
                &v3.payload_inner.payload_inner,
                Some(proofs::calculate_withdrawals_root(
                    &v3.payload_inner.withdrawals,
                )),
                Some((v3.blob_gas_used, v3.excess_blob_gas)),
                envelope.parent_beacon_block_root,
                None,
            );
            (v3.payload_inner.payload_inner, header)
        }
        _ => {
            let v4: OpExecutionPayloadV4 =
                serde_json::from_str(raw).map_err(|e| fail(e.to_string()))?;
            let header = chain::payload_header(
                &v4.payload_inner.payload_inner.payload_inner,
                Some(v4.withdrawals_root),
                Some((
                    v4.payload_inner.blob_gas_used,
                    v4.payload_inner.excess_blob_gas,
                )),
                envelope.parent_beacon_block_root,
                Some(EMPTY_REQUESTS_HASH),
            );
            (v4.payload_inner.payload_inner.payload_inner, header)
        }
    };
    let a = &attrs.payload_attributes;
    let hash = header.hash_slow();
    let checks: [(bool, &str); 9] = [
        (
            hash == payload.block_hash,
            "block hash does not match the header",
        ),
        (payload.parent_hash == head.hash, "parent hash"),
        (payload.block_number == number, "block number"),
        (payload.timestamp == a.timestamp, "timestamp"),
        (
            payload.fee_recipient == a.suggested_fee_recipient,
            "fee recipient",
        ),
        (payload.prev_randao == a.prev_randao, "prevRandao"),
        (Some(payload.gas_limit) == attrs.gas_limit, "gas limit"),
        (
            envelope.parent_beacon_block_root == a.parent_beacon_block_root || version == 2,
            "parent beacon block root",
        ),
        (
            payload.gas_used <= payload.gas_limit,
            "gas used over the limit",
        ),
    ];
    if let Some((_, what)) = checks.iter().find(|(ok, _)| !ok) {
        return Err(fail((*what).to_owned()));
    }
    let forced = attrs.transactions.as_deref().unwrap_or_default();
    if !payload.transactions.starts_with(forced) {
        return Err(fail(
            "the attributes' transactions are not the block's prefix".into(),
        ));
    }
    if attrs.no_tx_pool == Some(true) && payload.transactions.len() != forced.len() {
        return Err(fail("noTxPool block has pool transactions".into()));
    }
    // op-node's sanityCheckPayload: a deposit first, every deposit before every other transaction.
    let deposits = payload
        .transactions
        .iter()
        .take_while(|t| chain::is_deposit(t))
        .count();
    if deposits == 0
        || payload.transactions[deposits..]
            .iter()
            .any(|t| chain::is_deposit(t))
    {
        return Err(fail("deposits must come first".into()));
    }
    if fork >= Fork::Holocene {
        let params = attrs
            .eip_1559_params
            .map(|p| p.0.to_vec())
            .unwrap_or_default();
        if payload.extra_data.get(1..9) != Some(&params[..]) {
            return Err(fail("eip1559 parameters in extraData".into()));
        }
    }
    Ok(Checked {
        hash,
        gas_used: payload.gas_used,
        tx_count: payload.transactions.len(),
    })
}
