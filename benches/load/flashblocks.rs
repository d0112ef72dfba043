//! The flashblocks rows of the load bench: a builder streaming ~100 KiB flashblocks five times a
//! second, switchyard (the release binary, a child process) taking, checking and publishing them,
//! and 1, 100 or 1,000 loopback subscribers reading what it publishes.
//!
//! Each flashblock's latency is taken from its arrival at a probe reading the builder's stream
//! directly (when switchyard reads it too) to its arrival at the last subscriber. The floor is
//! the same number of subscribers reading the builder's stream directly, the probe among them: a
//! WebSocket fan-out with no sidecar at all. Figures are medians of per-round ratios, rounds
//! interleaved (floor, switchyard, floor, ...), since the machine is noisy.

use std::{collections::HashMap, time::Duration};

use futures_util::StreamExt;
use switchyard_sim::{
    EngineSim, FlashblocksConfig, Network, Sequencer, SequencerConfig, SimConfig, secret_hex,
};
use tokio::{sync::watch, time::Instant};

/// The first bytes of a frame: its payload id and index, so the same flashblock is recognised
/// wherever it arrives (switchyard publishes the builder's bytes as they are).
type Key = [u8; 64];

fn key(frame: &[u8]) -> Key {
    let mut key = [0u8; 64];
    let n = frame.len().min(64);
    key[..n].copy_from_slice(&frame[..n]);
    key
}

/// A subscriber: the arrival time of every frame, until `stop`.
async fn subscribe(
    url: String,
    stall: bool,
    ready: tokio::sync::mpsc::Sender<()>,
    mut stop: watch::Receiver<bool>,
) -> Vec<(Key, Instant)> {
    let addr = url
        .trim_start_matches("ws://")
        .trim_end_matches('/')
        .to_owned();
    let stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let _ = stream.set_nodelay(true);
    let (ws, _) = tokio_tungstenite::client_async(url, stream).await.unwrap();
    let (_sink, mut frames) = ws.split();
    let _ = ready.send(()).await;
    let mut seen = Vec::new();
    if stall {
        // Connected, never reads: its socket and then its queue fill.
        let _ = stop.changed().await;
        return seen;
    }
    loop {
        tokio::select! {
            _ = stop.changed() => return seen,
            frame = frames.next() => match frame {
                Some(Ok(message)) => {
                    let at = Instant::now();
                    let data = message.into_data();
                    if !data.is_empty() {
                        seen.push((key(&data), at));
                    }
                }
                _ => return seen,
            },
        }
    }
}

struct Round {
    /// Per flashblock: probe arrival to the last subscriber's, in ms.
    latencies: Vec<f64>,
    get_payload_ms: Vec<f64>,
}

/// `blocks` blocks driven by `op_node`, with `n` subscribers on `url` (and `stalled` that never
/// read) and a probe on the builder's stream.
async fn round(
    op_node: &mut Sequencer,
    probe_url: &str,
    url: &str,
    n: usize,
    stalled: usize,
    blocks: usize,
) -> Round {
    let (stop, stopped) = watch::channel(false);
    let (ready, mut connected) = tokio::sync::mpsc::channel(n + stalled + 1);
    let probe = tokio::spawn(subscribe(
        probe_url.to_owned(),
        false,
        ready.clone(),
        stopped.clone(),
    ));
    let mut subscribers = Vec::with_capacity(n);
    for i in 0..n + stalled {
        subscribers.push(tokio::spawn(subscribe(
            url.to_owned(),
            i >= n,
            ready.clone(),
            stopped.clone(),
        )));
    }
    // Every subscriber connected before the first block: one that connected mid-block would be
    // caught up on the block so far, which is not the latency measured here.
    for _ in 0..=n + stalled {
        connected.recv().await.unwrap();
    }
    let mut get_payload_ms = Vec::new();
    for _ in 0..blocks {
        let report = op_node.step().await.unwrap();
        get_payload_ms.push(report.get_payload.as_secs_f64() * 1e3);
    }
    // The last block's flashblocks delivered.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = stop.send(true);
    let probe: HashMap<Key, Instant> = probe.await.unwrap().into_iter().collect();
    let mut last: HashMap<Key, Instant> = HashMap::new();
    for subscriber in subscribers {
        for (key, at) in subscriber.await.unwrap() {
            let entry = last.entry(key).or_insert(at);
            if at > *entry {
                *entry = at;
            }
        }
    }
    let latencies = last
        .iter()
        .filter_map(|(key, at)| {
            let start = probe.get(key)?;
            Some(at.saturating_duration_since(*start).as_secs_f64() * 1e3)
        })
        .collect();
    Round {
        latencies,
        get_payload_ms,
    }
}

fn percentile(samples: &mut [f64], q: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    samples.sort_by(f64::total_cmp);
    samples[((samples.len() - 1) as f64 * q).round() as usize]
}

fn median(mut samples: Vec<f64>) -> (f64, f64, f64) {
    samples.retain(|s| s.is_finite());
    if samples.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    samples.sort_by(f64::total_cmp);
    (
        samples[samples.len() / 2],
        samples[0],
        samples[samples.len() - 1],
    )
}

fn rss_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// A switchyard child process with `--flashblocks` (or without), and where it listens.
struct Daemon {
    child: std::process::Child,
    rpc: String,
    flashblocks: Option<String>,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn daemon(binary: &str, geth: &EngineSim, builder: &EngineSim, flashblocks: bool) -> Daemon {
    daemon_with(binary, geth, builder, flashblocks, &[])
}

fn daemon_with(
    binary: &str,
    geth: &EngineSim,
    builder: &EngineSim,
    flashblocks: bool,
    extra: &[&str],
) -> Daemon {
    use std::io::BufRead;
    let mut args = vec![
        "--l2-url".to_owned(),
        geth.url(),
        "--l2-jwt-token".into(),
        secret_hex(&geth.secret()),
        "--builder-url".into(),
        builder.url(),
        "--builder-jwt-token".into(),
        secret_hex(&builder.secret()),
        "--rpc-port".into(),
        "0".into(),
        "--metrics".into(),
        "false".into(),
        "--log-format".into(),
        "json".into(),
        "--payload-deadline".into(),
        "2s".into(),
    ];
    if flashblocks {
        args.extend([
            "--flashblocks".to_owned(),
            "--flashblocks-builder-url".into(),
            builder.flashblocks_url().unwrap(),
            "--flashblocks-port".into(),
            "0".into(),
            "--flashblocks-max-subscribers".into(),
            "4096".into(),
        ]);
    }
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    super::evict_from_page_cache(std::path::Path::new(binary));
    let mut child = std::process::Command::new(binary)
        .args(&args)
        .env("RUST_LOG", "warn,switchyard=info,switchyard::payload=warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let (rpc, flashblocks) = loop {
        let line = lines.next().unwrap().unwrap();
        let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if event["message"] == "listening" {
            break (
                event["addr"].as_str().unwrap().to_owned(),
                event["flashblocks"].as_str().map(str::to_owned),
            );
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Daemon {
        child,
        rpc,
        flashblocks,
    }
}

/// Runs the flashblocks rows and prints their table.
pub(crate) async fn run(quick: bool) {
    let binary = &super::switchyard_binary();
    let (rounds, blocks) = if quick { (3, 4) } else { (5, 10) };
    let fanouts: &[usize] = if quick { &[1, 100] } else { &[1, 100, 1_000] };
    let spec = super::chain_spec();
    let network = Network::new();
    let geth = EngineSim::spawn(SimConfig::op_geth(spec.clone()).with_network(network.clone()))
        .await
        .unwrap();
    // Five flashblocks a second of about 100 KiB each: a 250 KB block, 1 s block time.
    let mut builder_config = SimConfig::builder(spec.clone())
        .with_network(network)
        .with_flashblocks(FlashblocksConfig {
            interval: Duration::from_millis(200),
            per_block: 5,
            brotli: false,
        });
    builder_config.filler = Some((250, 900));
    let builder = EngineSim::spawn(builder_config).await.unwrap();
    let switchyard = daemon(binary, &geth, &builder, true);
    let outbound = format!("ws://{}/", switchyard.flashblocks.clone().unwrap());
    let direct = builder.flashblocks_url().unwrap() + "/";
    let mut config = SequencerConfig::new(spec.clone());
    config.block_time = Duration::from_millis(950);
    let mut op_node =
        Sequencer::connect(&format!("http://{}", switchyard.rpc), geth.secret(), config)
            .await
            .unwrap();
    let pid = switchyard.child.id();
    // Warm-up: switchyard connected to the stream, a few blocks through.
    for _ in 0..2 {
        op_node.step().await.unwrap();
    }

    println!(
        "\n## Flashblocks fan-out (rounds {rounds}, {blocks} blocks of 5 × ~100 KiB flashblocks each)\n"
    );
    println!(
        "| Subscribers | floor p50 ms | floor p99 ms | switchyard p50 ms | switchyard p99 ms | p99 ratio (median, spread) | switchyard RSS MiB |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    let mut p99_by_fanout = HashMap::new();
    let mut served_from_flashblocks = Vec::new();
    for &n in fanouts {
        let (mut floor_all, mut ours_all, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            let mut floor = round(&mut op_node, &direct, &direct, n, 0, blocks).await;
            let mut ours = round(&mut op_node, &direct, &outbound, n, 0, blocks).await;
            served_from_flashblocks.append(&mut ours.get_payload_ms);
            let (f99, o99) = (
                percentile(&mut floor.latencies, 0.99),
                percentile(&mut ours.latencies, 0.99),
            );
            ratios.push(o99 / f99);
            floor_all.extend(floor.latencies);
            ours_all.extend(ours.latencies);
        }
        let rss = rss_kib(pid, "VmRSS:").unwrap_or(0) as f64 / 1024.0;
        let (ratio, low, high) = median(ratios);
        let ours99 = percentile(&mut ours_all, 0.99);
        p99_by_fanout.insert(n, ours99);
        println!(
            "| {n} | {:.2} | {:.2} | {:.2} | {ours99:.2} | {ratio:.2} ({low:.2}–{high:.2}) | {rss:.1} |",
            percentile(&mut floor_all, 0.5),
            percentile(&mut floor_all, 0.99),
            percentile(&mut ours_all, 0.5),
        );
    }
    let peak = rss_kib(pid, "VmHWM:").unwrap_or(0) as f64 / 1024.0;
    println!("\nswitchyard peak RSS over the fan-out rows: {peak:.1} MiB");

    // A stalled subscriber beside 100 readers: the readers' latency, against 100 alone.
    let mut ratios = Vec::new();
    for _ in 0..rounds {
        let mut alone = round(&mut op_node, &direct, &outbound, 100, 0, blocks).await;
        let mut stalled = round(&mut op_node, &direct, &outbound, 100, 1, blocks).await;
        ratios.push(
            percentile(&mut stalled.latencies, 0.99) / percentile(&mut alone.latencies, 0.99),
        );
    }
    let (ratio, low, high) = median(ratios);
    println!(
        "100 readers beside one stalled subscriber, p99 ÷ 100 readers alone: {ratio:.2} ({low:.2}–{high:.2})"
    );

    // getPayload served from flashblocks, against the same block from the builder's getPayload
    // (a switchyard without --flashblocks, the same simulators).
    drop(switchyard);
    let plain = daemon(binary, &geth, &builder, false);
    let mut config = SequencerConfig::new(spec);
    config.block_time = Duration::from_millis(950);
    let mut op_node = Sequencer::connect(&format!("http://{}", plain.rpc), geth.secret(), config)
        .await
        .unwrap();
    let mut from_builder = Vec::new();
    // The first blocks find the new process cold.
    for _ in 0..2 {
        op_node.step().await.unwrap();
    }
    for _ in 0..blocks * 2 {
        from_builder.push(op_node.step().await.unwrap().get_payload.as_secs_f64() * 1e3);
    }
    let from_flashblocks = percentile(&mut served_from_flashblocks, 0.5);
    let from_getpayload = percentile(&mut from_builder, 0.5);
    println!(
        "getPayload p50: served from flashblocks {from_flashblocks:.2} ms, from the builder's getPayload {from_getpayload:.2} ms (ratio {:.2})",
        from_flashblocks / from_getpayload
    );
    drop(plain);

    // The widest fan-out again, switchyard with two worker threads (the default is one).
    if let Some(&widest) = fanouts.last() {
        let two = daemon_with(binary, &geth, &builder, true, &["--worker-threads", "2"]);
        let outbound = format!("ws://{}/", two.flashblocks.clone().unwrap());
        let mut config = SequencerConfig::new(super::chain_spec());
        config.block_time = Duration::from_millis(950);
        let mut op_node = Sequencer::connect(&format!("http://{}", two.rpc), geth.secret(), config)
            .await
            .unwrap();
        for _ in 0..2 {
            op_node.step().await.unwrap();
        }
        let (mut ours_all, mut ratios) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            let mut floor = round(&mut op_node, &direct, &direct, widest, 0, blocks).await;
            let mut ours = round(&mut op_node, &direct, &outbound, widest, 0, blocks).await;
            ratios.push(
                percentile(&mut ours.latencies, 0.99) / percentile(&mut floor.latencies, 0.99),
            );
            ours_all.extend(ours.latencies);
        }
        let (ratio, low, high) = median(ratios);
        println!(
            "{widest} subscribers, switchyard with 2 worker threads: p50 {:.2} ms, p99 {:.2} ms, p99 ÷ floor {ratio:.2} ({low:.2}–{high:.2})",
            percentile(&mut ours_all, 0.5),
            percentile(&mut ours_all, 0.99),
        );
    }

    // --external-state-root: a builder leaving the state root zero, op-geth rebuilding its block,
    // against the plain builder getPayload path above (same block size).
    let network = Network::new();
    let spec = super::chain_spec();
    let geth = EngineSim::spawn(SimConfig::op_geth(spec.clone()).with_network(network.clone()))
        .await
        .unwrap();
    let mut rootless = SimConfig::builder(spec.clone()).with_network(network);
    rootless.filler = Some((250, 900));
    rootless.zero_state_root = true;
    let rootless = EngineSim::spawn(rootless).await.unwrap();
    let external = daemon_with(binary, &geth, &rootless, false, &["--external-state-root"]);
    let mut config = SequencerConfig::new(spec);
    config.block_time = Duration::from_millis(200);
    let mut op_node =
        Sequencer::connect(&format!("http://{}", external.rpc), geth.secret(), config)
            .await
            .unwrap();
    let mut rebuilt = Vec::new();
    for _ in 0..blocks * 2 {
        rebuilt.push(op_node.step().await.unwrap().get_payload.as_secs_f64() * 1e3);
    }
    let rebuilt = percentile(&mut rebuilt, 0.5);
    println!(
        "getPayload p50 with --external-state-root (op-geth rebuilds the builder's block) {rebuilt:.2} ms, against the plain builder path {from_getpayload:.2} ms (ratio {:.2})",
        rebuilt / from_getpayload
    );
    if let Some(p99) = p99_by_fanout.get(&1_000) {
        println!("target: p99 to the last of 1,000 subscribers ≤ 5 ms: {p99:.2} ms");
    }
}
