//! `switchyard devnet`: the whole system in one process, like `geth --dev`.
//!
//! A simulated op-geth, one or more simulated builders, switchyard itself (with metrics) and the
//! op-node stand-in, on free local ports. Each block prints one line (number, who built it, why
//! the others lost, latency); Ctrl-C or `--blocks N` ends it with a summary. `--fault-rate R`
//! makes a random builder commit a random fault from the simulator's catalogue in a share R of
//! blocks, so the fallback paths can be watched (and soaked: `--blocks 100000 --block-time 0ms`).

use std::{
    collections::BTreeMap,
    io::Write,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context;
use clap::Args;
use serde::Serialize;
use switchyard_layers::{
    JwtSecret,
    payload_select::{Decision, Source},
};
use switchyard_sim::{
    ChainSpec, EngineSim, Fault, FaultRule, FlashFault, FlashblocksConfig, Fork, Forks, Network,
    Profile, Sequencer, SequencerConfig, SimConfig, Tamper,
};
use tokio::sync::oneshot;

use crate::{
    Listeners,
    config::{Config, FlashblocksSettings, Upstream, parse_duration},
};

/// `switchyard devnet` flags.
#[derive(Clone, Debug, Args)]
pub struct DevnetArgs {
    /// Stop after this many blocks (and exit 0 if every block was good); default: until Ctrl-C.
    #[arg(long)]
    pub blocks: Option<u64>,
    /// Wall-clock time between a block's attributes and its getPayload.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub block_time: Duration,
    /// How many simulated builders.
    #[arg(long, default_value_t = 1)]
    pub builders: usize,
    /// Share of blocks in which a random builder commits a random fault (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    pub fault_rate: f64,
    /// Seed of the fault draws (default: random; printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Latest fork active from genesis.
    #[arg(long, default_value = "isthmus")]
    pub fork: String,
    /// Port of switchyard's RPC (0: a free one).
    #[arg(long, default_value_t = 0)]
    pub rpc_port: u16,
    /// Port of the metrics endpoint, for Prometheus and the dashboard (0: a free one).
    #[arg(long, default_value_t = 0)]
    pub metrics_port: u16,
    /// Print the summary as one JSON line instead of text, and no per-block lines.
    #[arg(long)]
    pub json: bool,
    /// Builders stream each block as flashblocks, which switchyard publishes and serves; with
    /// `--fault-rate`, flashblock faults are drawn too.
    #[arg(long)]
    pub flashblocks: bool,
    /// Flashblocks per block (spread over the block time), with --flashblocks.
    #[arg(long, default_value_t = 5)]
    pub flashblocks_per_block: usize,
    /// Sequencer nodes: more than one runs a cluster under an op-conductor stand-in (each node
    /// op-geth, a builder, switchyard and op-node; `--blocks` counts slots, `--fault-rate` breaks
    /// a random part of a random node for five slots).
    #[arg(long, default_value_t = 1)]
    pub sequencers: usize,
    /// With --sequencers: a degraded (206) leader loses leadership and a degraded node is not
    /// eligible (op-conductor's strict choice).
    #[arg(long)]
    pub strict: bool,
}

/// What a devnet run did.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    /// Blocks produced.
    pub blocks: u64,
    /// Blocks that failed (op-node stand-in refused or could not complete them).
    pub failed_blocks: u64,
    /// Blocks won by each builder.
    pub builder_wins: BTreeMap<String, u64>,
    /// Blocks op-geth built.
    pub local_blocks: u64,
    /// Why builder payloads lost, by reason.
    pub lost_reasons: BTreeMap<String, u64>,
    /// Faults injected.
    pub faults_injected: u64,
    /// getPayload latency seen by op-node, p50 and p99, in milliseconds.
    pub get_payload_ms: (f64, f64),
    /// FCU with attributes latency seen by op-node, p50 and p99, in milliseconds.
    pub fcu_ms: (f64, f64),
    /// Seconds the run took.
    pub seconds: f64,
    /// The fault seed.
    pub seed: u64,
    /// Peak resident memory of the whole process (simulators included), in KiB.
    pub peak_rss_kib: Option<u64>,
    /// Blocks with published flashblocks whose returned block held them all, in order.
    pub preconfirmations_kept: u64,
    /// Blocks with published flashblocks whose returned block did not, by reason.
    pub preconfirmations_broken: BTreeMap<String, u64>,
    /// Flashblocks published, over all blocks.
    pub flashblocks_published: u64,
    /// With --sequencers: leadership changes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failovers: Vec<crate::cluster::Failover>,
    /// With --sequencers: slots in which no block was sequenced.
    pub missed_slots: u64,
}

/// The faults the devnet draws from (each armed for one call of one builder).
fn fault_catalogue() -> Vec<FaultRule> {
    let mut faults: Vec<FaultRule> = Tamper::ALL
        .iter()
        .filter(|t| !matches!(t, Tamper::Oversized { .. }))
        .map(|&tamper| Fault::Tamper { tamper }.on("engine_getPayload*"))
        .collect();
    faults.extend([
        Fault::Tamper {
            tamper: Tamper::Oversized { mib: 40 },
        }
        .on("engine_getPayload*"),
        Fault::Delay { ms: 900 }.on("engine_getPayload*"),
        Fault::Hang.on("engine_getPayload*"),
        Fault::HttpStatus { status: 500 }.on("engine_getPayload*"),
        Fault::HttpStatus { status: 503 }.on("engine_forkchoiceUpdated*"),
        Fault::MalformedJson.on("engine_getPayload*"),
        Fault::TruncatedBody.on("engine_getPayload*"),
        Fault::CloseConnection.on("engine_getPayload*"),
        Fault::RpcError {
            code: -32000,
            message: "simulated builder error".into(),
        }
        .on("engine_getPayload*"),
        Fault::Syncing.on("engine_forkchoiceUpdated*"),
        Fault::Lag { blocks: 2 }.everywhere(),
    ]);
    faults.into_iter().map(|rule| rule.times(1)).collect()
}

pub(crate) fn fork(name: &str) -> anyhow::Result<Fork> {
    serde_json::from_value(serde_json::Value::String(name.to_lowercase()))
        .with_context(|| format!("--fork: unknown fork {name:?}"))
}

fn percentiles(samples: &mut [f64]) -> (f64, f64) {
    if samples.is_empty() {
        return (0.0, 0.0);
    }
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}

pub(crate) fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs the devnet until `--blocks` or Ctrl-C; returns its summary.
///
/// # Errors
///
/// If a component cannot start.
pub async fn run(args: DevnetArgs) -> anyhow::Result<Summary> {
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.fault_rate),
        "--fault-rate must be between 0 and 1"
    );
    if args.sequencers > 1 {
        return crate::cluster::devnet(&args).await;
    }
    let seed = args.seed.unwrap_or_else(|| fastrand::u64(..));
    let mut rng = fastrand::Rng::with_seed(seed);
    let spec = ChainSpec {
        genesis_timestamp: switchyard_sim::unix_now() as u64,
        forks: Forks::through(fork(&args.fork)?),
        ..Default::default()
    };
    let network = Network::new();
    let mut geth_config = SimConfig::op_geth(spec.clone()).with_network(network.clone());
    geth_config.log_capacity = 1_024;
    let geth = EngineSim::spawn(geth_config)
        .await
        .context("simulated op-geth")?;
    let mut builders = Vec::new();
    for i in 0..args.builders {
        let mut config = SimConfig::builder(spec.clone())
            .named(format!("builder-{}", i + 1))
            .with_network(network.clone());
        config.profile = Profile::Builder { extra_txs: 1 + i };
        config.log_capacity = 1_024;
        if args.flashblocks {
            let per_block = args.flashblocks_per_block.max(1);
            config = config.with_flashblocks(FlashblocksConfig {
                interval: args.block_time / (per_block as u32 + 1),
                per_block,
                brotli: i % 2 == 1,
            });
        }
        builders.push(
            EngineSim::spawn(config)
                .await
                .context("simulated builder")?,
        );
    }

    let l2_secret = JwtSecret::from_hex(&geth.secret_hex())?;
    let mut config = Config::new(geth.url().parse()?, l2_secret);
    config.rpc_addr = SocketAddr::from(([127, 0, 0, 1], args.rpc_port));
    config.metrics = Some(SocketAddr::from(([127, 0, 0, 1], args.metrics_port)));
    config.builders = builders
        .iter()
        .map(|b| -> anyhow::Result<Upstream> {
            Ok(Upstream {
                name: b.log_name(),
                url: b.url().parse()?,
                secret: JwtSecret::from_hex(&b.secret_hex())?,
                timeout: Duration::from_secs(1),
                tls: Default::default(),
            })
        })
        .collect::<anyhow::Result<_>>()?;
    if args.flashblocks {
        anyhow::ensure!(
            !builders.is_empty(),
            "--flashblocks needs --builders 1 or more"
        );
        let streams = builders
            .iter()
            .filter_map(EngineSim::flashblocks_url)
            .map(|url| url.parse())
            .collect::<Result<_, _>>()?;
        // Faults cut streams: dial back within a second, not rollup-boost's five.
        config.flashblocks = Some(FlashblocksSettings {
            max_backoff: Duration::from_secs(1),
            ..FlashblocksSettings::new(streams)
        });
    }
    let decisions: Arc<Mutex<Vec<Decision>>> = Arc::default();
    let sink = decisions.clone();
    config.decision_sink = Some(Arc::new(move |d: &Decision| {
        sink.lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(d.clone());
    }));
    let listeners = Listeners::bind(&config)
        .await
        .context("binding the devnet's ports")?;
    let rpc = listeners.rpc.local_addr()?;
    let metrics = listeners
        .metrics
        .as_ref()
        .map(tokio::net::TcpListener::local_addr)
        .transpose()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let switchyard = tokio::spawn(crate::run(listeners, config, async {
        let _ = stopped.await;
    }));

    let mut out = std::io::stdout().lock();
    if !args.json {
        writeln!(
            out,
            "switchyard devnet: op-geth {} · {} builder(s) · switchyard {rpc}",
            geth.url(),
            builders.len()
        )?;
        if let Some(metrics) = metrics {
            writeln!(
                out,
                "metrics: http://{metrics}/metrics · health: http://{metrics}/healthz"
            )?;
        }
        writeln!(
            out,
            "fault rate {} · seed {seed} · Ctrl-C for the summary",
            args.fault_rate
        )?;
    }
    let mut driver_config = SequencerConfig::new(spec.clone());
    driver_config.block_time = args.block_time;
    let mut op_node =
        Sequencer::connect(&format!("http://{rpc}"), geth.secret(), driver_config).await?;

    let catalogue = fault_catalogue();
    let mut summary = Summary {
        seed,
        ..Default::default()
    };
    let (mut get_payload, mut fcu) = (Vec::new(), Vec::new());
    let started = tokio::time::Instant::now();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        if args
            .blocks
            .is_some_and(|n| summary.blocks + summary.failed_blocks >= n)
        {
            break;
        }
        let mut injected = None;
        if !builders.is_empty() && rng.f64() < args.fault_rate {
            let builder = rng.usize(..builders.len());
            if args.flashblocks && rng.bool() {
                let fault = FlashFault::ALL[rng.usize(..FlashFault::ALL.len())];
                injected = Some((
                    builders[builder].log_name(),
                    format!("flashblocks {fault:?}"),
                ));
                builders[builder].flashblocks_fault(fault);
            } else {
                let fault = catalogue[rng.usize(..catalogue.len())].clone();
                injected = Some((builders[builder].log_name(), format!("{:?}", fault.fault)));
                builders[builder].faults().add(fault);
            }
            summary.faults_injected += 1;
        }
        let step = tokio::select! {
            step = op_node.step() => step,
            _ = &mut ctrl_c => break,
        };
        for builder in &builders {
            builder.faults().clear();
            builder.faults().release_hangs();
        }
        let decision = decisions.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match step {
            Ok(report) => {
                summary.blocks += 1;
                get_payload.push(report.get_payload.as_secs_f64() * 1e3);
                fcu.push(report.fcu.as_secs_f64() * 1e3);
                let Some(decision) = decision else { continue };
                match &decision.source {
                    Source::Builder(name) => {
                        *summary.builder_wins.entry(name.to_string()).or_default() += 1
                    }
                    _ => summary.local_blocks += 1,
                }
                for outcome in &decision.builders {
                    if let Some(reason) = outcome.lost {
                        *summary.lost_reasons.entry(reason.to_owned()).or_default() += 1;
                    }
                }
                let promises = decision.preconfirmations.as_ref().map(|p| {
                    summary.flashblocks_published += p.flashblocks as u64;
                    match p.broken {
                        None => summary.preconfirmations_kept += 1,
                        Some(reason) => {
                            *summary
                                .preconfirmations_broken
                                .entry(reason.to_owned())
                                .or_default() += 1;
                        }
                    }
                    format!(
                        " · {} flashblocks {}",
                        p.flashblocks,
                        p.broken
                            .map_or("kept".to_owned(), |r| format!("broken ({r})"))
                    )
                });
                if !args.json {
                    let winner = decision.winner().unwrap_or("op-geth");
                    let losers: Vec<String> = decision
                        .builders
                        .iter()
                        .filter_map(|o| o.lost.map(|reason| format!("{}: {reason}", o.builder)))
                        .collect();
                    let fault = injected
                        .map(|(b, f)| format!(" · injected {f} on {b}"))
                        .unwrap_or_default();
                    writeln!(
                        out,
                        "#{:<6} {:<10} {:>7.2} ms{}{}{fault}",
                        report.number,
                        winner,
                        report.get_payload.as_secs_f64() * 1e3,
                        promises.unwrap_or_default(),
                        if losers.is_empty() {
                            String::new()
                        } else {
                            format!(" · lost: {}", losers.join(", "))
                        },
                    )?;
                }
            }
            Err(error) => {
                summary.failed_blocks += 1;
                if !args.json {
                    writeln!(out, "block failed: {error}")?;
                }
                tracing::error!(target: "switchyard::devnet", %error, "block failed");
            }
        }
    }
    summary.seconds = started.elapsed().as_secs_f64();
    summary.get_payload_ms = percentiles(&mut get_payload);
    summary.fcu_ms = percentiles(&mut fcu);
    summary.peak_rss_kib = peak_rss_kib();
    let _ = stop.send(());
    let _ = switchyard.await;
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&summary)?)?;
    } else {
        writeln!(
            out,
            "\n{} blocks in {:.1} s ({} failed)",
            summary.blocks, summary.seconds, summary.failed_blocks
        )?;
        writeln!(
            out,
            "built by builders: {:?} · by op-geth: {}",
            summary.builder_wins, summary.local_blocks
        )?;
        writeln!(out, "why builders lost: {:?}", summary.lost_reasons)?;
        if args.flashblocks {
            writeln!(
                out,
                "flashblocks published: {} · preconfirmations kept: {} · broken: {:?}",
                summary.flashblocks_published,
                summary.preconfirmations_kept,
                summary.preconfirmations_broken
            )?;
        }
        writeln!(
            out,
            "getPayload p50 {:.2} ms, p99 {:.2} ms · FCU p50 {:.2} ms, p99 {:.2} ms · faults injected {} · seed {}",
            summary.get_payload_ms.0,
            summary.get_payload_ms.1,
            summary.fcu_ms.0,
            summary.fcu_ms.1,
            summary.faults_injected,
            seed
        )?;
        if let Some(kib) = summary.peak_rss_kib {
            writeln!(
                out,
                "peak memory (whole process, simulators included): {:.1} MiB",
                kib as f64 / 1024.0
            )?;
        }
    }
    Ok(summary)
}
