//! A builder's flashblocks stream: every block it builds, streamed as it would have grown.
//!
//! When the builder stand-in builds a block for a forkchoice update with attributes, it streams
//! `per_block` flashblocks over WebSocket: flashblock 0 holds the attributes' transactions and
//! the first share of its own, each later one the next share, `interval` apart. Every prefix is
//! sealed as a block of its own (real roots and hash), and the last one is the block its
//! getPayload returns. Faults ([`FlashFault`]) spoil the stream of the next block.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use alloy_primitives::{B256, U256};
use alloy_rpc_types_engine::PayloadId;
use futures_util::{SinkExt, StreamExt};
use op_alloy_rpc_types_engine::{
    OpFlashblockPayload, OpFlashblockPayloadBase, OpFlashblockPayloadDelta,
    OpFlashblockPayloadMetadata,
};
use tokio::{
    net::TcpListener,
    sync::{broadcast, watch},
};
use tokio_tungstenite::tungstenite::Message;

use crate::chain::Block;

/// How a builder stand-in streams flashblocks.
#[derive(Clone, Copy, Debug)]
pub struct FlashblocksConfig {
    /// Time between flashblocks.
    pub interval: Duration,
    /// Flashblocks per block.
    pub per_block: usize,
    /// Send binary frames of brotli-compressed JSON instead of text frames.
    pub brotli: bool,
}

impl Default for FlashblocksConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_millis(20),
            per_block: 4,
            brotli: false,
        }
    }
}

/// A fault of the next block's stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FlashFault {
    /// Index 1 is never sent.
    IndexGap,
    /// Index 1 is sent twice.
    Duplicate,
    /// Every flashblock carries another payload id.
    WrongPayloadId,
    /// The base names another fee recipient than the attributes.
    BaseMismatch,
    /// Index 1 claims a block hash its transactions do not have.
    BadHash,
    /// Flashblock 0 leaves out the attributes' transactions (and the block goes on without them).
    ForcedMissing,
    /// Only flashblock 0 is sent.
    Stall,
    /// Every connection is closed after flashblock 1.
    Disconnect,
    /// A frame of this many bytes of junk goes before flashblock 1.
    Oversized(usize),
    /// getPayload returns a block without the streamed transactions past the forced ones.
    NotInFinal,
    /// After flashblock 1 the stream starts over from 0, as a restarted builder's would.
    Restart,
    /// The streamed blocks carry a state root op-geth will not agree with (hashes consistent).
    BadStateRoot,
    /// [`FlashFault::BadStateRoot`] and [`FlashFault::NotInFinal`] at once: no block holding
    /// the streamed transactions can be returned.
    Broken,
}

impl FlashFault {
    /// Every kind (with a 64 KiB oversized frame), for drawing one at random.
    pub const ALL: [FlashFault; 13] = [
        FlashFault::IndexGap,
        FlashFault::Duplicate,
        FlashFault::WrongPayloadId,
        FlashFault::BaseMismatch,
        FlashFault::BadHash,
        FlashFault::ForcedMissing,
        FlashFault::Stall,
        FlashFault::Disconnect,
        FlashFault::Oversized(64 * 1024),
        FlashFault::NotInFinal,
        FlashFault::Restart,
        FlashFault::BadStateRoot,
        FlashFault::Broken,
    ];
}

/// The stream's shared state.
#[derive(Debug)]
pub(crate) struct FlashSource {
    config: FlashblocksConfig,
    frames: broadcast::Sender<Message>,
    fault: Mutex<Option<FlashFault>>,
    /// Bumped to close every connection.
    kick: watch::Sender<u64>,
    /// Bumped for each block: a block's task stops when the next begins.
    generation: watch::Sender<u64>,
    sent: watch::Sender<u64>,
    connected: watch::Sender<usize>,
    /// While set, connections stay open but say nothing: no frame, no pong.
    muted: watch::Sender<bool>,
}

impl FlashSource {
    pub(crate) fn new(config: FlashblocksConfig) -> Arc<Self> {
        Arc::new(Self {
            config,
            frames: broadcast::channel(1024).0,
            fault: Mutex::new(None),
            kick: watch::channel(0).0,
            generation: watch::channel(0).0,
            sent: watch::channel(0).0,
            connected: watch::channel(0).0,
            muted: watch::channel(false).0,
        })
    }

    pub(crate) fn set_fault(&self, fault: FlashFault) {
        *self.fault.lock().unwrap_or_else(|p| p.into_inner()) = Some(fault);
    }

    fn take_fault(&self) -> Option<FlashFault> {
        self.fault.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Flashblocks sent so far, over the simulator's life.
    pub(crate) fn sent(&self) -> watch::Receiver<u64> {
        self.sent.subscribe()
    }

    /// Connections accepted so far.
    pub(crate) fn connected(&self) -> watch::Receiver<usize> {
        self.connected.subscribe()
    }

    /// Keeps every connection open but silent (`true`): a hung builder process, or a network
    /// path that dropped the connection without a reset.
    pub(crate) fn mute(&self, muted: bool) {
        self.muted.send_replace(muted);
    }

    /// Closes every subscriber connection.
    pub(crate) fn disconnect_all(&self) {
        self.kick.send_modify(|k| *k += 1);
    }

    /// Streams `block` (built for `id` on a parent with `parent_state_root`, the attributes'
    /// transactions numbering `forced`), and returns the block getPayload should return.
    pub(crate) fn stream(
        self: &Arc<Self>,
        id: PayloadId,
        block: &Block,
        parent_state_root: B256,
        forced: usize,
    ) -> Option<Block> {
        let fault = self.take_fault();
        let mut txs = block.transactions.clone();
        if fault == Some(FlashFault::ForcedMissing) {
            txs.drain(..forced);
        }
        let forced_in_stream = if fault == Some(FlashFault::ForcedMissing) {
            0
        } else {
            forced
        };
        let per_block = self.config.per_block.max(1);
        let own = txs.len() - forced_in_stream;
        let mut prefixes: Vec<Block> = (0..per_block)
            .map(|k| {
                let len = forced_in_stream + (own * (k + 1)).div_ceil(per_block);
                let mut draft = block.draft(parent_state_root);
                draft.transactions = txs[..len].to_vec();
                let mut sealed = draft.seal();
                if matches!(fault, Some(FlashFault::BadStateRoot | FlashFault::Broken)) {
                    sealed.header.state_root = B256::repeat_byte(0xee);
                    sealed.rehash();
                }
                sealed
            })
            .collect();
        let mut frames = Vec::with_capacity(per_block + 1);
        let mut previous = 0;
        for (index, prefix) in prefixes.iter().enumerate() {
            let h = &prefix.header;
            let base = (index == 0).then(|| OpFlashblockPayloadBase {
                parent_beacon_block_root: h.parent_beacon_block_root.unwrap_or_default(),
                parent_hash: h.parent_hash,
                fee_recipient: if fault == Some(FlashFault::BaseMismatch) {
                    alloy_primitives::Address::repeat_byte(0x66)
                } else {
                    h.beneficiary
                },
                prev_randao: h.mix_hash,
                block_number: h.number,
                gas_limit: h.gas_limit,
                timestamp: h.timestamp,
                extra_data: h.extra_data.clone(),
                base_fee_per_gas: U256::from(h.base_fee_per_gas.unwrap_or_default()),
            });
            let mut block_hash = prefix.hash;
            if fault == Some(FlashFault::BadHash) && index == 1 {
                block_hash = B256::repeat_byte(0xbb);
            }
            let payload = OpFlashblockPayload {
                payload_id: if fault == Some(FlashFault::WrongPayloadId) {
                    PayloadId::new([0xee; 8])
                } else {
                    id
                },
                index: index as u64,
                base,
                diff: OpFlashblockPayloadDelta {
                    state_root: h.state_root,
                    receipts_root: h.receipts_root,
                    logs_bloom: h.logs_bloom,
                    gas_used: h.gas_used,
                    block_hash,
                    transactions: prefix.transactions[previous..].to_vec(),
                    withdrawals: Vec::new(),
                    withdrawals_root: h.withdrawals_root.unwrap_or_default(),
                    blob_gas_used: h.blob_gas_used,
                },
                metadata: OpFlashblockPayloadMetadata {
                    block_number: h.number,
                    ..Default::default()
                },
            };
            previous = prefix.transactions.len();
            frames.push(serde_json::to_vec(&payload).unwrap_or_default());
        }
        let mut plan: Vec<Step> = frames.iter().cloned().map(Step::Frame).collect();
        match fault {
            Some(FlashFault::IndexGap) if plan.len() > 1 => {
                plan.remove(1);
            }
            Some(FlashFault::Duplicate) if plan.len() > 1 => {
                plan.insert(2, plan[1].clone());
            }
            Some(FlashFault::Stall) => plan.truncate(1),
            Some(FlashFault::Disconnect) if plan.len() > 1 => {
                plan.truncate(2);
                plan.push(Step::Disconnect);
            }
            Some(FlashFault::Oversized(bytes)) if plan.len() > 1 => {
                plan.insert(1, Step::Frame(vec![b' '; bytes]));
            }
            Some(FlashFault::Restart) if plan.len() > 1 => {
                let mut again: Vec<Step> = frames.iter().cloned().map(Step::Frame).collect();
                plan.truncate(2);
                plan.push(Step::Disconnect);
                plan.append(&mut again);
            }
            _ => {}
        }
        let source = self.clone();
        let generation = {
            let mut generation = 0;
            self.generation.send_modify(|g| {
                *g += 1;
                generation = *g;
            });
            generation
        };
        tokio::spawn(async move { source.play(plan, generation).await });
        let last = prefixes.pop();
        match fault {
            Some(FlashFault::NotInFinal | FlashFault::Broken) => {
                let mut draft = block.draft(parent_state_root);
                draft.transactions.truncate(forced);
                Some(draft.seal())
            }
            Some(FlashFault::ForcedMissing | FlashFault::BadStateRoot) => None,
            _ => last,
        }
    }

    async fn play(&self, plan: Vec<Step>, generation: u64) {
        let mut ticks = tokio::time::interval(self.config.interval);
        for step in plan {
            ticks.tick().await;
            if *self.generation.borrow() != generation {
                return;
            }
            match step {
                Step::Frame(json) => {
                    let message = if self.config.brotli {
                        Message::Binary(brotli_compress(&json))
                    } else {
                        match String::from_utf8(json) {
                            Ok(text) => Message::Text(text.into()),
                            Err(e) => Message::Binary(e.into_bytes().into()),
                        }
                    };
                    let _ = self.frames.send(message);
                    self.sent.send_modify(|n| *n += 1);
                }
                Step::Disconnect => self.disconnect_all(),
            }
        }
    }
}

#[derive(Clone, Debug)]
enum Step {
    Frame(Vec<u8>),
    Disconnect,
}

fn brotli_compress(json: &[u8]) -> bytes::Bytes {
    let mut out = Vec::new();
    let params = brotli::enc::BrotliEncoderParams {
        quality: 5,
        ..Default::default()
    };
    let _ = brotli::BrotliCompress(&mut &json[..], &mut out, &params);
    out.into()
}

/// Serves the stream on `listener` (over TLS with `tls`), each connection getting every frame
/// from its connect on.
pub(crate) async fn serve(
    listener: TcpListener,
    source: Arc<FlashSource>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            _ = stop.changed() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else { continue };
        let source = source.clone();
        let stop = stop.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                Some(acceptor) => {
                    if let Ok(stream) = acceptor.accept(stream).await {
                        connection(stream, source, stop).await;
                    }
                }
                None => connection(stream, source, stop).await,
            }
        });
    }
}

async fn connection<S>(stream: S, source: Arc<FlashSource>, mut stop: watch::Receiver<bool>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let mut frames = source.frames.subscribe();
    let mut kick = source.kick.subscribe();
    source.connected.send_modify(|n| *n += 1);
    let (mut sink, mut incoming) = ws.split();
    let mut muted = source.muted.subscribe();
    loop {
        // Muted: nothing is read (so no ping is answered) and nothing is sent.
        let silent = *muted.borrow_and_update();
        tokio::select! {
            _ = stop.changed() => return,
            _ = kick.changed() => return,
            _ = muted.changed() => {}
            message = incoming.next(), if !silent => match message {
                Some(Ok(Message::Ping(data))) => {
                    if sink.send(Message::Pong(data)).await.is_err() {
                        return;
                    }
                }
                Some(Ok(_)) => {}
                _ => return,
            },
            frame = frames.recv() => match frame {
                Ok(_) if silent => {}
                Ok(message) => if sink.send(message).await.is_err() { return },
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            },
        }
    }
}

/// Binds the stream's listener.
pub(crate) async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// `ws://` (or, over TLS, `wss://`) URL of a stream listening on `addr`.
pub(crate) fn url(addr: SocketAddr, tls: bool) -> String {
    format!("{}://{addr}", if tls { "wss" } else { "ws" })
}
