//! Flashblocks end to end, over real WebSockets and HTTP: builder simulators stream their blocks,
//! switchyard accepts, publishes and serves them, and subscribers read what it publishes.

use std::{net::SocketAddr, time::Duration};

use futures_util::StreamExt;
use serde_json::Value;
use switchyard_layers::{builder::ExecutionMode, payload_select::Source};
use switchyard_sim::{FlashFault, FlashblocksConfig, Fork, SimConfig};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{Net, spec};

const PER_BLOCK: usize = 4;

/// A chain whose builders (`names`) each stream every block as `PER_BLOCK` flashblocks, with
/// switchyard taking them; returns once switchyard is connected to every stream.
async fn flash_net(names: &[&str], tweak: impl FnOnce(&mut switchyard::Config)) -> Net {
    let chain = spec(Fork::Isthmus);
    let configs = names
        .iter()
        .map(|name| {
            let config = SimConfig::builder(chain.clone())
                .named(*name)
                .with_flashblocks(FlashblocksConfig {
                    interval: Duration::from_millis(5),
                    per_block: PER_BLOCK,
                    brotli: false,
                });
            (config, switchyard_layers::tls::TlsOptions::default())
        })
        .collect();
    let net = Net::start_custom(chain, configs, tweak).await;
    for builder in &net.builders {
        connected_after(builder, 0).await;
    }
    net
}

/// Waits until switchyard has connected to `builder`'s stream more than `before` times.
async fn connected_after(builder: &switchyard_sim::EngineSim, before: usize) {
    let mut connections = builder.flashblocks_connections().expect("a stream");
    tokio::time::timeout(
        Duration::from_secs(10),
        connections.wait_for(|n| *n > before),
    )
    .await
    .expect("switchyard connects to the builder's stream")
    .expect("stream alive");
}

/// A subscriber of switchyard's outbound stream: every frame, as JSON.
struct Subscriber {
    frames: mpsc::UnboundedReceiver<Value>,
    got: Vec<Value>,
}

impl Subscriber {
    async fn connect(addr: SocketAddr, brotli: bool) -> Self {
        let query = if brotli { "/?encoding=brotli" } else { "/" };
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}{query}"), stream)
            .await
            .expect("handshake");
        let (tx, frames) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let (_sink, mut incoming) = ws.split();
            while let Some(Ok(message)) = incoming.next().await {
                let json = match message {
                    Message::Text(text) => text.as_bytes().to_vec(),
                    Message::Binary(binary) => {
                        assert!(brotli, "binary frames only for brotli subscribers");
                        switchyard_layers::flashblocks::decompress(&binary, 1 << 24)
                            .expect("brotli")
                            .to_vec()
                    }
                    _ => continue,
                };
                let value: Value = serde_json::from_slice(&json).expect("JSON");
                if tx.send(value).is_err() {
                    return;
                }
            }
        });
        Self {
            frames,
            got: Vec::new(),
        }
    }

    /// Waits for `n` more frames.
    async fn wait(&mut self, n: usize) {
        for _ in 0..n {
            let frame = tokio::time::timeout(Duration::from_secs(10), self.frames.recv())
                .await
                .expect("a flashblock within 10 s")
                .expect("stream open");
            self.got.push(frame);
        }
    }

    /// The frames received so far without waiting.
    fn drain(&mut self) -> usize {
        let mut n = 0;
        while let Ok(frame) = self.frames.try_recv() {
            self.got.push(frame);
            n += 1;
        }
        n
    }
}

/// The transactions of `frames`, in order.
fn transactions(frames: &[Value]) -> Vec<String> {
    frames
        .iter()
        .flat_map(|f| {
            f["diff"]["transactions"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|tx| tx.as_str().unwrap_or_default().to_owned())
        .collect()
}

fn block_transactions(block: &switchyard_sim::Block) -> Vec<String> {
    block
        .transactions
        .iter()
        .map(alloy_primitives::hex::encode_prefixed)
        .collect()
}

/// The sim's flashblocks sent reach `target`.
async fn sent(builder: &switchyard_sim::EngineSim, target: u64) {
    let mut sent = builder.flashblocks_sent().expect("a stream");
    tokio::time::timeout(Duration::from_secs(10), sent.wait_for(|n| *n >= target))
        .await
        .expect("the builder streams")
        .expect("alive");
}

#[tokio::test]
async fn flashblocks_reach_every_subscriber_in_order_and_the_block_is_served_from_them() {
    let mut net = flash_net(&["builder"], |_| {}).await;
    let addr = net.proxy.flashblocks.expect("flashblocks listener");
    let mut text = Subscriber::connect(addr, false).await;
    let mut compressed = Subscriber::connect(addr, true).await;
    for block in 0..5 {
        let report = net
            .seq
            .step_after(text.wait(PER_BLOCK))
            .await
            .expect("block");
        compressed.wait(PER_BLOCK).await;
        let frames = &text.got[block * PER_BLOCK..];
        let indexes: Vec<u64> = frames
            .iter()
            .map(|f| f["index"].as_u64().unwrap_or(99))
            .collect();
        assert_eq!(indexes, [0, 1, 2, 3], "in order");
        assert!(frames[0]["base"].is_object() && frames[1].get("base").is_none());
        assert_eq!(
            frames,
            &compressed.got[block * PER_BLOCK..],
            "same flashblocks both ways"
        );

        let decision = net.last();
        assert_eq!(decision.source, Source::Builder("builder".into()));
        assert_eq!(
            decision.builders[0].flashblocks,
            Some(PER_BLOCK),
            "served from them"
        );
        let promises = decision.preconfirmations.expect("published");
        assert_eq!((promises.flashblocks, promises.broken), (PER_BLOCK, None));
        // The chain holds exactly what was promised, in order.
        let canonical = net.geth_block(report.number);
        assert_eq!(block_transactions(&canonical), transactions(frames));
    }
    // The builder still got its getPayload for each block (its last flashblock, its job done).
    assert_eq!(net.builders[0].log().count("engine_getPayloadV4"), 5);
}

#[tokio::test]
async fn a_stream_that_breaks_its_own_rules_is_cut_where_it_breaks_and_the_promise_is_kept() {
    let mut net = flash_net(&["builder"], |_| {}).await;
    let addr = net.proxy.flashblocks.expect("flashblocks listener");
    let mut subscriber = Subscriber::connect(addr, false).await;
    // Index 1 never comes: 2 and 3 are gaps. Index 1 claims a hash its transactions do not
    // have. Either way only flashblock 0 is published, and the block served holds it.
    for (fault, streamed, expected) in [
        (FlashFault::IndexGap, 3, 1),
        (FlashFault::BadHash, 4, 1),
        (FlashFault::Duplicate, 5, PER_BLOCK),
    ] {
        net.builders[0].flashblocks_fault(fault);
        let before = net.builders[0]
            .flashblocks_sent()
            .map(|s| *s.borrow())
            .unwrap_or(0);
        let builder = &net.builders[0];
        let report = net
            .seq
            .step_after(async {
                tokio::join!(subscriber.wait(expected), sent(builder, before + streamed));
            })
            .await
            .expect("no slot missed");
        subscriber.drain();
        let decision = net.last();
        let promises = decision
            .preconfirmations
            .clone()
            .expect("flashblock 0 was published");
        assert_eq!(promises.broken, None, "{fault:?}: {decision:?}");
        let canonical = block_transactions(&net.geth_block(report.number));
        let published =
            transactions(&subscriber.got[subscriber.got.len() - promises.flashblocks..]);
        assert!(canonical.starts_with(&published), "{fault:?}");
        assert_eq!(promises.flashblocks, expected, "{fault:?}");
    }
}

#[tokio::test]
async fn flashblocks_op_geth_rejects_break_nothing_the_builder_still_serves_the_same_transactions()
{
    let mut net = flash_net(&["builder"], |_| {}).await;
    let addr = net.proxy.flashblocks.expect("flashblocks listener");
    let mut subscriber = Subscriber::connect(addr, false).await;
    // Hashes consistent, state root wrong: only op-geth can tell. Its getPayload block is right.
    net.builders[0].flashblocks_fault(FlashFault::BadStateRoot);
    let report = net
        .seq
        .step_after(subscriber.wait(PER_BLOCK))
        .await
        .expect("no slot missed");
    let decision = net.last();
    assert_eq!(
        decision.builders[0].flashblocks, None,
        "the assembled block lost"
    );
    assert_eq!(decision.source, Source::Builder("builder".into()));
    let promises = decision.preconfirmations.expect("published");
    assert_eq!(
        promises.broken, None,
        "its getPayload holds every published transaction"
    );
    assert_eq!(
        block_transactions(&net.geth_block(report.number)),
        transactions(&subscriber.got)
    );

    // Now the getPayload block leaves the streamed transactions out too: no block holding
    // them can be returned, and the promise is counted broken.
    net.builders[0].flashblocks_fault(FlashFault::Broken);
    net.seq
        .step_after(subscriber.wait(PER_BLOCK))
        .await
        .expect("no slot missed");
    let promises = net.last().preconfirmations.expect("published");
    assert!(
        matches!(promises.broken, Some("invalid" | "not_contained")),
        "{promises:?}"
    );
}

#[tokio::test]
async fn nothing_is_published_in_dry_run() {
    let mut net = flash_net(&["builder"], |config| {
        config.builder_policy.mode = ExecutionMode::DryRun;
    })
    .await;
    let addr = net.proxy.flashblocks.expect("flashblocks listener");
    let mut subscriber = Subscriber::connect(addr, false).await;
    for block in 1..=3u64 {
        let builder = &net.builders[0];
        net.seq
            .step_after(async { sent(builder, block * PER_BLOCK as u64).await })
            .await
            .expect("block");
        let decision = net.last();
        assert_eq!(decision.source, Source::Local);
        assert_eq!(decision.preconfirmations, None);
    }
    // One more whole block's exchanges: anything published for the blocks above would have
    // reached the subscriber by now.
    net.seq.step().await.expect("block");
    assert_eq!(subscriber.drain(), 0, "nothing published in dry-run");
}

#[tokio::test]
async fn with_two_builders_streaming_one_builders_flashblocks_are_published() {
    let mut net = flash_net(&["alpha", "beta"], |_| {}).await;
    let addr = net.proxy.flashblocks.expect("flashblocks listener");
    let mut subscriber = Subscriber::connect(addr, false).await;
    for block in 0..3 {
        let report = net
            .seq
            .step_after(subscriber.wait(PER_BLOCK))
            .await
            .expect("block");
        let frames = &subscriber.got[block * PER_BLOCK..];
        let mine = alloy_primitives::hex::encode_prefixed(switchyard_sim::tx::builder_tx(
            net.spec.chain_id,
            "alpha",
            report.number,
            0,
        ));
        assert!(
            transactions(frames).contains(&mine),
            "alpha's, the first configured"
        );
        let decision = net.last();
        assert_eq!(decision.source, Source::Builder("alpha".into()));
        assert_eq!(decision.preconfirmations.map(|p| p.broken), Some(None));
    }
    assert_eq!(
        subscriber.drain(),
        0,
        "beta's flashblocks were never published"
    );
}

#[tokio::test]
async fn a_builder_restarted_mid_stream_or_a_stream_cut_mid_block_never_stalls_the_chain() {
    let mut net = flash_net(&["builder"], |_| {}).await;
    let addr = net.proxy.flashblocks.expect("flashblocks listener");
    let mut subscriber = Subscriber::connect(addr, false).await;
    for fault in [
        FlashFault::Restart,
        FlashFault::Disconnect,
        FlashFault::Stall,
    ] {
        let connections = net.builders[0]
            .flashblocks_connections()
            .map(|c| *c.borrow())
            .unwrap_or(0);
        net.builders[0].flashblocks_fault(fault);
        let report = net
            .seq
            .step_after(subscriber.wait(1))
            .await
            .expect("no slot missed");
        subscriber.drain();
        let decision = net.last();
        let promises = decision.preconfirmations.clone().expect("published");
        assert_eq!(promises.broken, None, "{fault:?}: {decision:?}");
        let canonical = block_transactions(&net.geth_block(report.number));
        let published =
            transactions(&subscriber.got[subscriber.got.len() - promises.flashblocks..]);
        assert!(canonical.starts_with(&published), "{fault:?}");
        if fault != FlashFault::Stall {
            // The stream was cut: switchyard dials again.
            connected_after(&net.builders[0], connections).await;
        }
    }
    // And the stream carries on.
    net.seq
        .step_after(subscriber.wait(PER_BLOCK))
        .await
        .expect("block");
    assert_eq!(net.last().builders[0].flashblocks, Some(PER_BLOCK));
}
