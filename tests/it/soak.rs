//! Chaos soak: thousands of blocks at a 3 ms block time through switchyard, two builders failing
//! at random in every way the simulator knows.
//!
//! Seeded: the seed is printed, and `SOAK_SEED=<seed>` replays a run; `SOAK_BLOCKS` sets its length
//! (default 2,000). Per block it asserts that op-node got exactly one payload, that the payload
//! honours its attributes and is valid on op-geth (the op-node stand-in checks both and fails
//! the block otherwise), that a builder's block wins whenever a builder has been healthy for a
//! few blocks, and, every 100 blocks, that switchyard's queues and job map stay bounded. Both
//! builders stream flashblocks, which fail at random too; a subscriber reads what switchyard
//! publishes, and every block whose preconfirmations were kept must hold exactly those
//! transactions first.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use serde_json::{Value, json};
use switchyard_layers::{JwtSecret, payload_select::Source};
use switchyard_sim::{
    EngineClient, Fault, FaultRule, FlashFault, FlashblocksConfig, Fork, SimConfig, Tamper,
    random_secret, secret_hex,
};

use crate::harness::{Net, fresh_spec};

/// Counts panics raised in switchyard's own code (`src/`, `layers/src/`) from now on, on any
/// thread: a panic in a spawned task would otherwise go unnoticed. Other tests' panics are in
/// `tests/` or `sim/` and are not counted.
fn count_switchyard_panics() -> Arc<AtomicUsize> {
    let count = Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info
            .location()
            .is_some_and(|at| at.file().starts_with("src/") || at.file().starts_with("layers/src/"))
        {
            counted.fetch_add(1, Ordering::Relaxed);
        }
        previous(info);
    }));
    count
}

/// Blocks a builder needs after its last fault to be counted healthy: lag and catch-up, the
/// breaker's cool-down, a skipped forkchoice update.
const RECOVERY: u64 = 8;

fn catalogue() -> Vec<FaultRule> {
    let get_payload = "engine_getPayload*";
    let fcu = "engine_forkchoiceUpdated*";
    let mut faults: Vec<FaultRule> = Tamper::ALL
        .iter()
        .map(|&tamper| Fault::Tamper { tamper }.on(get_payload))
        .collect();
    faults.extend([
        Fault::Delay { ms: 150 }.on(get_payload),
        Fault::Hang.on(get_payload),
        Fault::Hang.on(fcu),
        Fault::HttpStatus { status: 500 }.on(get_payload),
        Fault::HttpStatus { status: 503 }.everywhere(),
        Fault::MalformedJson.on(get_payload),
        Fault::TruncatedBody.on(get_payload),
        Fault::CloseConnection.on(get_payload),
        Fault::CloseConnection.on("engine_newPayload*"),
        Fault::RpcError {
            code: -32000,
            message: "chaos".into(),
        }
        .on(get_payload),
        Fault::Syncing.on(fcu),
        Fault::Lag { blocks: 2 }.everywhere(),
    ]);
    faults
}

/// What switchyard published, by block number.
struct Published {
    frames: Arc<std::sync::Mutex<std::collections::HashMap<u64, Vec<Value>>>>,
}

async fn subscribe(addr: std::net::SocketAddr) -> Published {
    use futures_util::StreamExt;
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/"), stream)
        .await
        .expect("subscribe");
    let frames = Arc::new(std::sync::Mutex::new(std::collections::HashMap::<
        u64,
        Vec<Value>,
    >::new()));
    let filed = frames.clone();
    tokio::spawn(async move {
        let (_sink, mut incoming) = ws.split();
        while let Some(Ok(message)) = incoming.next().await {
            let Ok(text) = message.into_text() else {
                continue;
            };
            let Ok(frame) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            let number = frame["metadata"]["block_number"]
                .as_u64()
                .unwrap_or_default();
            filed
                .lock()
                .expect("frames")
                .entry(number)
                .or_default()
                .push(frame);
        }
    });
    Published { frames }
}

impl Published {
    /// The first `n` frames published for block `number`, waiting for them to arrive.
    async fn frames_of(&self, number: u64, n: usize) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let got = self
                .frames
                .lock()
                .expect("frames")
                .get(&number)
                .map(|f| f.iter().take(n).cloned().collect::<Vec<_>>())
                .unwrap_or_default();
            if got.len() == n {
                return got;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "block {number}: {n} flashblocks published, {} received",
                got.len()
            );
            tokio::task::yield_now().await;
        }
    }
}

// The seed goes to stderr so a failing run can be replayed.
#[allow(clippy::print_stderr)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_soak_two_builders_random_faults() {
    let seed = std::env::var("SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    let blocks: u64 = std::env::var("SOAK_BLOCKS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000);
    eprintln!("chaos soak: seed {seed} (SOAK_SEED={seed} replays it), {blocks} blocks");
    let panics = count_switchyard_panics();
    let mut rng = fastrand::Rng::with_seed(seed);
    let admin_secret = random_secret();
    let chain = fresh_spec(Fork::Isthmus);
    let builders = [("alpha", 1), ("beta", 3)]
        .into_iter()
        .map(|(name, extra_txs)| {
            let mut config = SimConfig::builder(chain.clone())
                .named(name)
                .with_flashblocks(FlashblocksConfig {
                    interval: Duration::from_millis(1),
                    per_block: 3,
                    brotli: name == "beta",
                });
            config.profile = switchyard_sim::Profile::Builder { extra_txs };
            (config, switchyard_layers::tls::TlsOptions::default())
        })
        .collect();
    let mut net = Net::start_custom(chain, builders, |config| {
        config.builder_policy.payload_deadline = Duration::from_millis(100);
        config.builder_policy.max_payload_size = 1024 * 1024;
        config.builder_policy.breaker_threshold = 3;
        config.builder_policy.breaker_cooldown = 3;
        for builder in &mut config.builders {
            builder.timeout = Duration::from_millis(300);
        }
        config.admin = Some(switchyard::config::Admin {
            addr: "127.0.0.1:0".parse().expect("addr"),
            secret: JwtSecret::from_hex(&secret_hex(&admin_secret)).expect("secret"),
        });
    })
    .await;
    let admin = EngineClient::new(
        &format!("http://{}", net.proxy.admin.expect("admin")),
        admin_secret,
    )
    .expect("admin");
    let published = subscribe(net.proxy.flashblocks.expect("flashblocks listener")).await;
    // Long enough for most of a block's flashblocks to be streamed before its getPayload.
    net.seq.set_block_time(Duration::from_millis(3));
    let catalogue = catalogue();
    let mut last_fault: [Option<u64>; 2] = [None, None];
    let (mut kept, mut broken) = (0u64, 0u64);
    let (mut builder_wins, mut local, mut faults) = (0u64, 0u64, 0u64);

    for block in 1..=blocks {
        let mut armed = None;
        if rng.f64() < 0.3 {
            let builder = rng.usize(..2);
            if rng.u8(..4) == 0 {
                let fault = FlashFault::ALL[rng.usize(..FlashFault::ALL.len())];
                armed = Some(format!(
                    "flashblocks {fault:?} on {}",
                    net.builders[builder].log_name()
                ));
                net.builders[builder].flashblocks_fault(fault);
            } else {
                let fault = catalogue[rng.usize(..catalogue.len())].clone().times(1);
                armed = Some(format!(
                    "{:?} on {}",
                    fault.fault,
                    net.builders[builder].log_name()
                ));
                net.builders[builder].faults().add(fault);
            }
            last_fault[builder] = Some(block);
            faults += 1;
        }
        let report = match net.seq.step().await {
            Ok(report) => report,
            Err(error) => {
                panic!("seed {seed}, block {block}: op-node refused its block ({armed:?}): {error}")
            }
        };
        let decision = net.last();
        assert_eq!(
            decision.block_number,
            Some(report.number),
            "seed {seed}: one decision per block"
        );
        let healthy = last_fault
            .iter()
            .any(|last| last.is_none_or(|at| block >= at + RECOVERY));
        match &decision.source {
            Source::Builder(name) => {
                builder_wins += 1;
                // Under NotInFinal or Broken the builder's getPayload block holds the forced
                // transactions only (not its marker): valid, it may still win.
                let truncated = armed.as_deref().is_some_and(|armed| {
                    (armed.contains("NotInFinal") || armed.contains("Broken"))
                        && armed.ends_with(&format!(" on {name}"))
                });
                assert!(
                    truncated || net.built_by(report.number, name),
                    "seed {seed}, block {block}: the winner's block ({armed:?}): {decision:?}"
                );
                let winner = decision
                    .builders
                    .iter()
                    .find(|b| &b.builder == name)
                    .expect("winner");
                assert!(
                    winner.stages.new_payload.is_some(),
                    "seed {seed}: a builder block is validated first"
                );
            }
            Source::Local => {
                local += 1;
                assert!(
                    net.built_locally(report.number),
                    "seed {seed}, block {block}: op-geth's own block"
                );
                assert!(
                    !healthy,
                    "seed {seed}, block {block}: a healthy builder lost: {decision:?} ({armed:?})"
                );
            }
            Source::None => panic!("seed {seed}, block {block}: no payload"),
        }
        if let Some(promises) = &decision.preconfirmations {
            // What the subscriber was sent for this block, in order.
            let frames = published
                .frames_of(report.number, promises.flashblocks)
                .await;
            let promised = crate::flashblocks::transactions(&frames);
            let canonical = crate::flashblocks::block_transactions(&net.geth_block(report.number));
            match promises.broken {
                None => {
                    kept += 1;
                    assert!(
                        canonical.starts_with(&promised),
                        "seed {seed}, block {block}: kept, yet the block does not begin with what was published ({armed:?})"
                    );
                }
                Some(_) => broken += 1,
            }
        }
        for builder in &net.builders {
            builder.faults().clear();
            builder.faults().release_hangs();
        }
        if block % 100 == 0 {
            let status: Value = admin
                .call("switchyard_status", json!([]))
                .await
                .expect("status");
            assert!(
                status["payload_jobs"].as_u64().is_some_and(|n| n <= 64),
                "seed {seed}: {status}"
            );
            for builder in status["builders"].as_array().expect("builders") {
                assert!(
                    builder["engine_queue"].as_u64().is_some_and(|n| n <= 64),
                    "seed {seed}: {status}"
                );
                assert!(
                    builder["transaction_queue"]
                        .as_u64()
                        .is_some_and(|n| n <= 4_096),
                    "seed {seed}: {status}"
                );
            }
        }
    }
    eprintln!(
        "chaos soak: {blocks} blocks, {builder_wins} by builders, {local} by op-geth, {faults} faults injected, preconfirmations kept {kept} broken {broken}"
    );
    assert!(kept > 0, "seed {seed}: flashblocks were published and kept");
    assert_eq!(
        panics.load(Ordering::Relaxed),
        0,
        "seed {seed}: switchyard panicked (in a spawned task, or it would have failed a call)"
    );
    assert_eq!(builder_wins + local, blocks);
    assert!(
        builder_wins > blocks / 2,
        "builders win most blocks despite the chaos"
    );
}
