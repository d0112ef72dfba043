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
    flash_net_with(names, |_| {}, tweak).await
}

/// [`flash_net`], each builder simulator's configuration adjusted by `sim`.
async fn flash_net_with(
    names: &[&str],
    sim: impl Fn(&mut SimConfig),
    tweak: impl FnOnce(&mut switchyard::Config),
) -> Net {
    let chain = spec(Fork::Isthmus);
    let configs = names
        .iter()
        .map(|name| {
            let mut config = SimConfig::builder(chain.clone())
                .named(*name)
                .with_flashblocks(FlashblocksConfig {
                    interval: Duration::from_millis(5),
                    per_block: PER_BLOCK,
                    brotli: false,
                });
            sim(&mut config);
            (config, switchyard_layers::tls::TlsOptions::default())
        })
        .collect();
    let net = Net::start_custom(chain, configs, tweak).await;
    for builder in &net.builders {
        connected_after(builder, 0).await;
    }
    net
}

/// Connections `builder`'s stream has accepted so far.
fn connections_so_far(builder: &switchyard_sim::EngineSim) -> usize {
    builder
        .flashblocks_connections()
        .map(|c| *c.borrow())
        .unwrap_or(0)
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

/// One block whose flashblocks all reach `subscriber` before its getPayload, and are served.
async fn served_from_all_flashblocks(net: &mut Net, subscriber: &mut Subscriber) {
    net.seq
        .step_after(subscriber.wait(PER_BLOCK))
        .await
        .expect("block");
    assert_eq!(net.last().builders[0].flashblocks, Some(PER_BLOCK));
}

/// The transactions of `frames`, in order.
pub fn transactions(frames: &[Value]) -> Vec<String> {
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

pub fn block_transactions(block: &switchyard_sim::Block) -> Vec<String> {
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
        let connections = connections_so_far(&net.builders[0]);
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

/// A counter of switchyard's `/metrics`, polled until it reaches `at_least` (each poll is an HTTP
/// round trip, so the work it waits for gets to run).
pub(crate) async fn counter_reaches(
    url: &str,
    name: &str,
    labels: &[(&str, &str)],
    at_least: f64,
) -> f64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, page) = crate::harness::get(url).await;
        let page = crate::metrics::series(&String::from_utf8_lossy(&page));
        let value = crate::metrics::value(&page, name, labels);
        if value >= at_least || tokio::time::Instant::now() > deadline {
            return value;
        }
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn flashblocks_that_do_not_fit_the_job_are_never_published_and_each_is_counted() {
    // Names no other test uses: the recorder is process-wide.
    let name = "flash-refusals";
    let mut net = flash_net_with(
        &[name],
        |sim| sim.flashblocks.iter_mut().for_each(|f| f.brotli = true),
        |config| {
            config.metrics = Some("127.0.0.1:0".parse().expect("addr"));
            // Frames over this end the connection (as getPayload answers over it are refused).
            config.builder_policy.max_payload_size = 256 * 1024;
        },
    )
    .await;
    let url = format!("http://{}/metrics", net.proxy.metrics.expect("metrics"));
    let addr = net.proxy.flashblocks.expect("flashblocks listener");
    let mut subscriber = Subscriber::connect(addr, false).await;
    let dropped = "switchyard_flashblocks_dropped_total";
    for (fault, reason) in [
        (FlashFault::BaseMismatch, "fee_recipient"),
        (FlashFault::ForcedMissing, "forced_transactions"),
        (FlashFault::WrongPayloadId, "wrong_payload_id"),
        (FlashFault::Oversized(300 * 1024), "too_large"),
    ] {
        net.builders[0].flashblocks_fault(fault);
        // Until switchyard has seen the fault: a refusal counted, or (for flashblocks no job
        // names yet) the flashblocks read, which wait for a payload id that never comes.
        let received = "switchyard_flashblocks_received_total";
        let by_builder = [("builder", name)];
        let by_reason = [("builder", name), ("reason", reason)];
        let gate = match fault {
            FlashFault::WrongPayloadId => {
                let read = counter_reaches(&url, received, &by_builder, 0.0).await;
                counter_reaches(&url, received, &by_builder, read + 4.0)
            }
            _ => counter_reaches(&url, dropped, &by_reason, 1.0),
        };
        // Around the oversized frame, the block's flashblocks are all published.
        let published_first = if matches!(fault, FlashFault::Oversized(_)) {
            PER_BLOCK
        } else {
            0
        };
        let report = net
            .seq
            .step_after(async {
                tokio::join!(gate, subscriber.wait(published_first));
            })
            .await
            .expect("no slot missed");
        // A brotli frame that expands past the cap is dropped on its own; the stream goes on.
        assert!(
            net.built_by(report.number, name),
            "{fault:?}: the builder's block serves"
        );
        // The next block streams as it should, and is published and served.
        net.seq
            .step_after(subscriber.wait(PER_BLOCK))
            .await
            .expect("block");
        assert_eq!(
            net.last().builders[0].flashblocks,
            Some(PER_BLOCK),
            "{fault:?}"
        );
        let counted =
            counter_reaches(&url, dropped, &[("builder", name), ("reason", reason)], 1.0).await;
        if counted < 1.0 {
            let (_, page) = crate::harness::get(&url).await;
            let page = String::from_utf8_lossy(&page).into_owned();
            let lines: Vec<&str> = page
                .lines()
                .filter(|l| l.contains("flashblocks_dropped"))
                .collect();
            panic!("{fault:?} counted as {reason}: {lines:#?}");
        }
    }
    // Only flashblocks that fit were ever published, each block's in full: the good blocks',
    // and those around the oversized frame.
    assert_eq!(subscriber.drain(), 0);
    let indexes: Vec<u64> = subscriber
        .got
        .iter()
        .map(|f| f["index"].as_u64().unwrap_or(99))
        .collect();
    assert_eq!(indexes, [0, 1, 2, 3].repeat(5));
    let kept = counter_reaches(
        &url,
        "switchyard_flashblocks_preconfirmations_total",
        &[("builder", name), ("outcome", "kept")],
        5.0,
    )
    .await;
    assert_eq!(kept, 5.0);
    let (_, page) = crate::harness::get(&url).await;
    let page = crate::metrics::series(&String::from_utf8_lossy(&page));
    assert_eq!(
        crate::metrics::value(
            &page,
            "switchyard_flashblocks_preconfirmations_total",
            &[("builder", name), ("outcome", "broken")]
        ),
        0.0
    );
    assert_eq!(
        crate::metrics::value(
            &page,
            "switchyard_flashblocks_stream_up",
            &[("builder", name)]
        ),
        1.0
    );
}

#[tokio::test]
async fn a_subscriber_that_connects_mid_block_gets_the_block_so_far_then_the_rest() {
    let mut net = flash_net(&["builder"], |_| {}).await;
    let addr = net.proxy.flashblocks.expect("flashblocks listener");
    let mut early = Subscriber::connect(addr, false).await;
    let mut late = None;
    net.seq
        .step_after(async {
            early.wait(2).await;
            let mut joined = Subscriber::connect(addr, true).await;
            joined.wait(PER_BLOCK).await;
            late = Some(joined);
        })
        .await
        .expect("block");
    early.wait(PER_BLOCK - 2).await;
    let late = late.expect("joined");
    assert_eq!(
        late.got, early.got,
        "the block's flashblocks so far, then the live ones"
    );
}

#[tokio::test]
async fn a_subscriber_that_stops_reading_is_cut_off_and_costs_the_others_nothing() {
    // Big flashblocks (transactions of 16 KiB) fill the stalled subscriber's socket and queue.
    let mut net = flash_net_with(
        &["builder"],
        |sim| sim.filler = Some((16, 16 * 1024)),
        |config| {
            config.metrics = Some("127.0.0.1:0".parse().expect("addr"));
            if let Some(flashblocks) = config.flashblocks.as_mut() {
                flashblocks.subscriber_queue = 4;
                flashblocks.max_subscribers = 2;
            }
        },
    )
    .await;
    let url = format!("http://{}/metrics", net.proxy.metrics.expect("metrics"));
    let addr = net.proxy.flashblocks.expect("flashblocks listener");
    let mut reader = Subscriber::connect(addr, false).await;
    // Handshakes, then never reads a byte.
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (stalled, _) = tokio_tungstenite::client_async(format!("ws://{addr}/"), stream)
        .await
        .expect("handshake");
    // Over the cap: refused at the handshake.
    let third = tokio::net::TcpStream::connect(addr).await.expect("connect");
    match tokio_tungstenite::client_async(format!("ws://{addr}/"), third).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), http::StatusCode::SERVICE_UNAVAILABLE);
        }
        other => panic!("a third subscriber is refused: {:?}", other.map(|_| ())),
    }
    let slow = "switchyard_flashblocks_subscriber_disconnects_total";
    let mut blocks = 0;
    loop {
        net.seq
            .step_after(reader.wait(PER_BLOCK))
            .await
            .expect("block");
        blocks += 1;
        let (_, page) = crate::harness::get(&url).await;
        let page = crate::metrics::series(&String::from_utf8_lossy(&page));
        if crate::metrics::value(&page, slow, &[("reason", "slow")]) >= 1.0 {
            break;
        }
        assert!(blocks < 300, "the stalled subscriber is never cut off");
    }
    drop(stalled);
    // Two more blocks: the reader carries on.
    for _ in 0..2 {
        net.seq
            .step_after(reader.wait(PER_BLOCK))
            .await
            .expect("block");
        blocks += 1;
    }
    // The reader got every flashblock of every block, in order, and each block was served
    // from them.
    let indexes: Vec<u64> = reader
        .got
        .iter()
        .map(|f| f["index"].as_u64().unwrap_or(99))
        .collect();
    assert_eq!(indexes, [0, 1, 2, 3].repeat(blocks));
    assert!(
        net.decisions()
            .iter()
            .all(|d| d.builders[0].flashblocks == Some(PER_BLOCK))
    );
}

#[tokio::test]
async fn switchyard_restarted_mid_block_never_stalls_op_node() {
    let mut net = flash_net(&["builder"], |_| {}).await;
    let mut subscriber = Subscriber::connect(net.proxy.flashblocks.expect("listener"), false).await;
    let connections = connections_so_far(&net.builders[0]);
    let config = net.config.clone();
    let proxy = &mut net.proxy;
    let report = net
        .seq
        .step_after(async {
            // Flashblocks of this block published, then switchyard goes down and comes back
            // with nothing of it.
            subscriber.wait(2).await;
            proxy.restart(config).await;
        })
        .await
        .expect("op-node gets its block from the restarted switchyard");
    let decision = net.last();
    assert_eq!(decision.source, Source::Local, "no job survives a restart");
    assert!(net.built_locally(report.number));
    // The builder's stream finds the new switchyard, and blocks come from flashblocks again.
    connected_after(&net.builders[0], connections).await;
    let mut subscriber = Subscriber::connect(net.proxy.flashblocks.expect("listener"), false).await;
    for _ in 0..2 {
        served_from_all_flashblocks(&mut net, &mut subscriber).await;
    }
}

#[tokio::test]
async fn two_payload_ids_never_get_the_same_block() {
    use serde_json::json;
    let mut net = flash_net(&["builder"], |_| {}).await;
    let mut subscriber = Subscriber::connect(net.proxy.flashblocks.expect("listener"), false).await;
    net.seq
        .step_after(subscriber.wait(PER_BLOCK))
        .await
        .expect("block");
    // op-node asks for a block, then (before getPayload) for another one on the same parent
    // with a later timestamp: two payload ids, two jobs, each streamed.
    let head = net.seq.head();
    let state = json!({
        "headBlockHash": head,
        "safeBlockHash": head,
        "finalizedBlockHash": head,
    });
    let first = net.seq.next_attributes();
    let mut second = first.clone();
    second.payload_attributes.timestamp += 1;
    let client = net.seq.client();
    let mut ids = Vec::new();
    for attributes in [&first, &second] {
        let answer: Value = client
            .call("engine_forkchoiceUpdatedV3", json!([state, attributes]))
            .await
            .expect("fcu");
        ids.push(answer["payloadId"].clone());
        subscriber.wait(PER_BLOCK).await;
    }
    assert_ne!(ids[0], ids[1]);
    let mut blocks = Vec::new();
    for id in [&ids[1], &ids[0]] {
        let envelope: Value = client
            .call("engine_getPayloadV4", json!([id]))
            .await
            .expect("getPayload");
        blocks.push(envelope["executionPayload"].clone());
    }
    let (second_block, first_block) = (&blocks[0], &blocks[1]);
    assert_ne!(second_block["blockHash"], first_block["blockHash"]);
    let timestamp = |block: &Value| {
        u64::from_str_radix(
            block["timestamp"]
                .as_str()
                .unwrap_or("0x0")
                .trim_start_matches("0x"),
            16,
        )
        .unwrap_or(0)
    };
    assert_eq!(timestamp(first_block), first.payload_attributes.timestamp);
    assert_eq!(timestamp(second_block), second.payload_attributes.timestamp);
    let decisions = net.decisions();
    let [.., second_decision, first_decision] = decisions.as_slice() else {
        panic!("two decisions")
    };
    // The second job's block came from its flashblocks, kept; the first one's flashblocks were
    // replaced by the second's, so its block came from the builder's getPayload.
    assert_eq!(second_decision.builders[0].flashblocks, Some(PER_BLOCK));
    assert_eq!(
        second_decision.preconfirmations.as_ref().map(|p| p.broken),
        Some(None)
    );
    assert_eq!(first_decision.builders[0].flashblocks, None);
    assert_eq!(first_decision.source, Source::Builder("builder".into()));
}

#[tokio::test]
async fn an_oversized_text_frame_ends_the_connection_which_is_dialled_again() {
    let mut net = flash_net(&["builder"], |config| {
        config.builder_policy.max_payload_size = 256 * 1024;
    })
    .await;
    let mut subscriber = Subscriber::connect(net.proxy.flashblocks.expect("listener"), false).await;
    let connections = connections_so_far(&net.builders[0]);
    net.builders[0].flashblocks_fault(FlashFault::Oversized(300 * 1024));
    let builder = &net.builders[0];
    let report = net
        .seq
        .step_after(async {
            // Flashblock 0 is published; the frame after it cuts the connection.
            tokio::join!(subscriber.wait(1), connected_after(builder, connections));
        })
        .await
        .expect("no slot missed");
    assert!(net.built_by(report.number, "builder"));
    // Flashblocks of that block may or may not reach the new connection: either is fine.
    subscriber.drain();
    served_from_all_flashblocks(&mut net, &mut subscriber).await;
}

#[tokio::test]
async fn health_is_degraded_while_a_builders_stream_is_down() {
    // A fresh chain (op-geth's head must be recent for 200) whose builder streams; then the same
    // with the stream's address pointing nowhere.
    let healthy = |spec: switchyard_sim::ChainSpec, dead: bool| async move {
        let sim = SimConfig::builder(spec.clone())
            .named("builder")
            .with_flashblocks(FlashblocksConfig::default());
        let net = Net::start_custom(
            spec,
            vec![(sim, switchyard_layers::tls::TlsOptions::default())],
            |config| {
                config.builder_policy.health_interval = Duration::from_millis(50);
                if dead && let Some(flashblocks) = config.flashblocks.as_mut() {
                    // A port that was free a moment ago: nothing listens there.
                    let closed = std::net::TcpListener::bind("127.0.0.1:0")
                        .and_then(|l| l.local_addr())
                        .expect("a port");
                    flashblocks.builder_urls = vec![format!("ws://{closed}").parse().expect("url")];
                }
            },
        )
        .await;
        let want = if dead {
            http::StatusCode::PARTIAL_CONTENT
        } else {
            http::StatusCode::OK
        };
        let detail = crate::harness::healthz_becomes(net.proxy.addr, want).await;
        detail["detail"]["builders"][0]["flashblocks_stream_down"].clone()
    };
    let spec = crate::harness::fresh_spec(Fork::Isthmus);
    assert_eq!(healthy(spec.clone(), false).await, Value::Bool(false));
    assert_eq!(healthy(spec, true).await, Value::Bool(true));
}

#[tokio::test]
async fn a_forkchoice_update_without_attributes_mid_block_keeps_the_flashblocks() {
    use serde_json::json;
    let mut net = flash_net(&["builder"], |_| {}).await;
    let mut subscriber = Subscriber::connect(net.proxy.flashblocks.expect("listener"), false).await;
    served_from_all_flashblocks(&mut net, &mut subscriber).await;
    // op-node's derivation moves the safe head while it sequences: a forkchoice update without
    // attributes between a block's flashblocks (rollup-boost #495 reset its buffer on this).
    let head = net.seq.head();
    let client = net.seq.client().clone();
    net.seq
        .step_after(async {
            subscriber.wait(2).await;
            let state = json!({
                "headBlockHash": head,
                "safeBlockHash": head,
                "finalizedBlockHash": alloy_primitives::B256::ZERO,
            });
            let _: Value = client
                .call("engine_forkchoiceUpdatedV3", json!([state, null]))
                .await
                .expect("fcu without attributes");
            subscriber.wait(PER_BLOCK - 2).await;
        })
        .await
        .expect("block");
    let decision = net.last();
    assert_eq!(decision.builders[0].flashblocks, Some(PER_BLOCK));
    assert_eq!(decision.preconfirmations.map(|p| p.broken), Some(None));
}

#[tokio::test]
async fn a_stream_gone_silent_is_dialled_again_after_the_pong_timeout() {
    let name = "flash-silent";
    let mut net = flash_net_with(
        &[name],
        |_| {},
        |config| {
            config.metrics = Some("127.0.0.1:0".parse().expect("addr"));
            if let Some(flashblocks) = config.flashblocks.as_mut() {
                flashblocks.ping_interval = Duration::from_millis(20);
                flashblocks.pong_timeout = Duration::from_millis(100);
            }
        },
    )
    .await;
    let url = format!("http://{}/metrics", net.proxy.metrics.expect("metrics"));
    let mut subscriber = Subscriber::connect(net.proxy.flashblocks.expect("listener"), false).await;
    served_from_all_flashblocks(&mut net, &mut subscriber).await;
    // The connection stays open but says nothing, pongs included: only the pings tell.
    let connections = connections_so_far(&net.builders[0]);
    net.builders[0].flashblocks_mute(true);
    let silent = counter_reaches(
        &url,
        "switchyard_flashblocks_dropped_total",
        &[("builder", name), ("reason", "silent")],
        1.0,
    )
    .await;
    assert!(silent >= 1.0, "the silent stream is given up");
    connected_after(&net.builders[0], connections).await;
    // Speaking again: blocks are served from their flashblocks again.
    net.builders[0].flashblocks_mute(false);
    let mut blocks = 0;
    loop {
        let before = net.builders[0]
            .flashblocks_sent()
            .map(|s| *s.borrow())
            .unwrap_or(0);
        let builder = &net.builders[0];
        net.seq
            .step_after(sent(builder, before + PER_BLOCK as u64))
            .await
            .expect("block");
        if net.last().builders[0].flashblocks.is_some() {
            break;
        }
        blocks += 1;
        assert!(blocks < 100, "the stream never came back");
    }
    subscriber.drain();
}

#[tokio::test]
async fn the_operator_can_name_the_builder_whose_flashblocks_are_published() {
    let mut net = flash_net(&["alpha", "beta"], |config| {
        if let Some(flashblocks) = config.flashblocks.as_mut() {
            flashblocks.publish_builder = Some(1);
        }
    })
    .await;
    let mut subscriber = Subscriber::connect(net.proxy.flashblocks.expect("listener"), false).await;
    for block in 0..2 {
        let report = net
            .seq
            .step_after(subscriber.wait(PER_BLOCK))
            .await
            .expect("block");
        let beta = alloy_primitives::hex::encode_prefixed(switchyard_sim::tx::builder_tx(
            net.spec.chain_id,
            "beta",
            report.number,
            0,
        ));
        assert!(transactions(&subscriber.got[block * PER_BLOCK..]).contains(&beta));
        // Its promise outranks the policy: beta's block wins.
        let decision = net.last();
        assert_eq!(decision.source, Source::Builder("beta".into()));
        assert_eq!(decision.preconfirmations.map(|p| p.broken), Some(None));
    }
    assert_eq!(subscriber.drain(), 0, "alpha's were never published");
}
