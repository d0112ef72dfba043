//! A sequencer cluster under op-conductor, simulated: each node runs a simulated op-geth, its own
//! simulated builder, a real switchyard (the daemon's own stack, over real HTTP) and an op-node
//! stand-in; an op-conductor stand-in ([`Conductor`]) polls every switchyard's `/healthz` once a
//! slot and moves leadership by op-conductor's rules.
//!
//! The leader's op-node sequences one block a slot through its switchyard; the followers' import
//! it as op-node does (`engine_newPayload`, then a forkchoice update without attributes, through
//! their own switchyard, so that their builders follow by boost sync). A node whose parts were
//! down imports what it missed once they are back, and a new leader's op-node catches up before
//! it sequences. Tests and `switchyard devnet --sequencers 3` break parts of a node and watch
//! what the cluster does.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use switchyard_layers::{
    JwtSecret,
    payload_select::{Decision, SelectionPolicy, Source},
};
use switchyard_sim::{
    Block, ChainSpec, Conductor, EngineSim, Network, Profile, Sequencer, SequencerConfig,
    SidecarHealth, SimConfig, Transfer,
};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle, time::Instant};

use crate::{
    Listeners,
    config::{Config, Upstream},
};

/// How the cluster is built.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// Sequencer nodes (op-conductor clusters run three or five).
    pub nodes: usize,
    /// op-conductor's choice for 206: not eligible, and a degraded leader hands over.
    pub strict: bool,
    /// Wall-clock length of a slot (the block time).
    pub slot_time: Duration,
    /// Each switchyard's `--health-check-interval`: how soon `/healthz` reflects a fault.
    pub health_interval: Duration,
    /// Each switchyard's selection policy.
    pub selection: SelectionPolicy,
    /// The chain.
    pub spec: ChainSpec,
    /// Transactions (count, bytes) every op-geth and builder puts in each block beyond the
    /// forced ones, so that blocks carry gas.
    pub filler: (usize, usize),
    /// Nodes whose builder sends valid but empty blocks (only the forced transactions).
    pub empty_builders: Vec<usize>,
}

impl ClusterOptions {
    /// Three nodes on `spec`, lenient, 100 ms slots, health checked every 20 ms.
    pub fn new(spec: ChainSpec) -> Self {
        Self {
            nodes: 3,
            strict: false,
            slot_time: Duration::from_millis(100),
            health_interval: Duration::from_millis(20),
            selection: SelectionPolicy::default(),
            spec,
            filler: (4, 100),
            empty_builders: Vec::new(),
        }
    }
}

/// A running switchyard.
#[derive(Debug)]
struct Sidecar {
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

/// One sequencer node.
#[derive(Debug)]
pub struct Node {
    /// Its op-geth.
    pub geth: EngineSim,
    /// Its builder.
    pub builder: EngineSim,
    /// Where its switchyard serves op-node (and `/healthz`).
    pub rpc: SocketAddr,
    config: Config,
    sidecar: Option<Sidecar>,
    op_node: Sequencer,
    /// Blocks of the cluster's chain its op-node has imported (or built).
    imported: usize,
    decisions: Arc<Mutex<Vec<Decision>>>,
}

/// What a slot produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A block, and who built it: `builder` or `local` (op-geth).
    Built {
        /// Its number.
        number: u64,
        /// Whose payload the leader's switchyard returned.
        source: &'static str,
    },
    /// No block: the leader could not sequence one.
    Missed(String),
}

/// One slot of the cluster.
#[derive(Clone, Debug)]
pub struct SlotReport {
    /// Its index, from 0.
    pub slot: u64,
    /// Each node's `/healthz`, as the conductor read it at the slot's start.
    pub health: Vec<SidecarHealth>,
    /// A leadership change made on those readings.
    pub transfer: Option<Transfer>,
    /// The node that sequenced (or tried to).
    pub leader: usize,
    /// What came of it.
    pub outcome: Outcome,
}

/// The cluster.
#[derive(Debug)]
pub struct Cluster {
    /// The nodes.
    pub nodes: Vec<Node>,
    options: ClusterOptions,
    conductor: Conductor,
    chain: Vec<Arc<Block>>,
    /// Every slot so far.
    pub slots: Vec<SlotReport>,
    http: Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>,
}

impl Cluster {
    /// Starts every node, node 0 the leader, and waits until every switchyard is healthy.
    ///
    /// # Errors
    ///
    /// If a part cannot start, or the cluster never gets healthy.
    pub async fn start(options: ClusterOptions) -> anyhow::Result<Self> {
        let network = Network::new();
        let mut nodes = Vec::with_capacity(options.nodes);
        for index in 0..options.nodes {
            nodes.push(Node::start(index, &options, &network).await?);
        }
        let cluster = Self {
            nodes,
            conductor: Conductor::new(0, options.strict),
            options,
            chain: Vec::new(),
            slots: Vec::new(),
            http: Client::builder(TokioExecutor::new()).build_http(),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while cluster
            .health()
            .await
            .iter()
            .any(|h| *h != SidecarHealth::Healthy)
        {
            anyhow::ensure!(Instant::now() < deadline, "the cluster did not get healthy");
            tokio::time::sleep(cluster.options.health_interval).await;
        }
        Ok(cluster)
    }

    /// The node that sequences now.
    pub fn leader(&self) -> usize {
        self.conductor.leader()
    }

    /// The cluster's chain: every block a leader sequenced, in order.
    pub fn chain(&self) -> &[Arc<Block>] {
        &self.chain
    }

    /// Whether the chain is one chain: each block's number one more than the last's, on it (no
    /// block sequenced twice, no fork).
    pub fn one_chain(&self) -> bool {
        self.chain.windows(2).all(|pair| {
            pair[1].header.number == pair[0].header.number + 1
                && pair[1].header.parent_hash == pair[0].hash
        })
    }

    /// Each node's `/healthz` now.
    pub async fn health(&self) -> Vec<SidecarHealth> {
        let polls = self.nodes.iter().map(|node| async move {
            let uri = format!("http://{}/healthz", node.rpc);
            let status = match uri.parse() {
                Ok(uri) => tokio::time::timeout(Duration::from_millis(500), self.http.get(uri))
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .map(|response| response.status().as_u16()),
                Err(_) => None,
            };
            SidecarHealth::from_status(status)
        });
        futures_util::future::join_all(polls).await
    }

    /// One slot: the conductor reads every node's health and moves leadership if its rules say
    /// so; the leader's op-node catches up and sequences a block; the followers import it. The
    /// slot lasts at least `slot_time`.
    pub async fn slot(&mut self) -> &SlotReport {
        let started = Instant::now();
        let health = self.health().await;
        let transfer = self.conductor.observe(&health);
        let leader = self.conductor.leader();
        let outcome = match self.sequence(leader).await {
            Ok(outcome) => outcome,
            Err(error) => Outcome::Missed(format!("{error:#}")),
        };
        for follower in (0..self.nodes.len()).filter(|&i| i != leader) {
            // A follower whose parts are down imports what it missed once they are back.
            let _ = self.catch_up(follower).await;
        }
        let slot = self.slots.len() as u64;
        self.slots.push(SlotReport {
            slot,
            health,
            transfer,
            leader,
            outcome,
        });
        tokio::time::sleep_until(started + self.options.slot_time).await;
        &self.slots[self.slots.len() - 1]
    }

    async fn sequence(&mut self, leader: usize) -> anyhow::Result<Outcome> {
        self.catch_up(leader).await.context("catching up")?;
        let node = &mut self.nodes[leader];
        let report = node.op_node.step().await.context("sequencing")?;
        let block = node
            .geth
            .block(&report.hash)
            .context("the leader's op-geth lost its block")?;
        let source = node
            .decisions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .rev()
            .find(|d| d.block_number == Some(report.number))
            .map_or("local", |d| match d.source {
                Source::Builder(_) => "builder",
                _ => "local",
            });
        self.chain.push(block);
        self.nodes[leader].imported = self.chain.len();
        Ok(Outcome::Built {
            number: report.number,
            source,
        })
    }

    /// Imports the blocks `node` has not, through its switchyard, stopping at the first failure.
    async fn catch_up(&mut self, index: usize) -> anyhow::Result<()> {
        let node = &mut self.nodes[index];
        while let Some(block) = self.chain.get(node.imported) {
            node.op_node.follow(block).await?;
            node.imported += 1;
        }
        Ok(())
    }

    /// Kills node `index`'s switchyard at once (its connections drop).
    pub fn kill_switchyard(&mut self, index: usize) {
        if let Some(sidecar) = self.nodes[index].sidecar.take() {
            sidecar.task.abort();
            drop(sidecar.stop);
        }
    }

    /// Starts node `index`'s switchyard again, on the same address.
    ///
    /// # Errors
    ///
    /// If its address cannot be bound again.
    pub async fn restart_switchyard(&mut self, index: usize) -> anyhow::Result<()> {
        self.kill_switchyard(index);
        let node = &mut self.nodes[index];
        node.sidecar = Some(Sidecar::start(&node.config, node.rpc).await?);
        Ok(())
    }
}

impl Node {
    async fn start(
        index: usize,
        options: &ClusterOptions,
        network: &Arc<Network>,
    ) -> anyhow::Result<Self> {
        let spec = &options.spec;
        let mut geth_config = SimConfig::op_geth(spec.clone())
            .named(format!("op-geth-{}", index + 1))
            .with_network(network.clone());
        let mut builder_config = SimConfig::builder(spec.clone())
            .named(format!("builder-{}", index + 1))
            .with_network(network.clone());
        builder_config.profile = Profile::Builder { extra_txs: 1 };
        if options.filler.0 > 0 {
            geth_config.filler = Some(options.filler);
            builder_config.filler = Some(options.filler);
        }
        if options.empty_builders.contains(&index) {
            builder_config.profile = Profile::Builder { extra_txs: 0 };
            builder_config.filler = None;
        }
        let geth = EngineSim::spawn(geth_config).await.context("op-geth")?;
        let builder = EngineSim::spawn(builder_config).await.context("builder")?;

        let mut config = Config::new(
            geth.url().parse()?,
            JwtSecret::from_hex(&geth.secret_hex())?,
        );
        config.builders = vec![Upstream {
            name: builder.log_name(),
            url: builder.url().parse()?,
            secret: JwtSecret::from_hex(&builder.secret_hex())?,
            timeout: Duration::from_millis(500),
            tls: Default::default(),
        }];
        config.builder_policy.health_interval = options.health_interval;
        config.builder_policy.selection = options.selection;
        config.builder_policy.payload_deadline = Duration::from_millis(500);
        let decisions: Arc<Mutex<Vec<Decision>>> = Arc::default();
        let sink = decisions.clone();
        config.decision_sink = Some(Arc::new(move |d: &Decision| {
            let mut all = sink.lock().unwrap_or_else(|p| p.into_inner());
            // The last few are all a slot reads.
            if all.len() >= 64 {
                all.drain(..32);
            }
            all.push(d.clone());
        }));
        let listener = TcpListener::bind(config.rpc_addr).await?;
        let rpc = listener.local_addr()?;
        let sidecar = Sidecar::serve(&config, listener);
        let op_node = Sequencer::connect(
            &format!("http://{rpc}"),
            geth.secret(),
            SequencerConfig::new(spec.clone()),
        )
        .await
        .context("op-node stand-in")?;
        Ok(Self {
            geth,
            builder,
            rpc,
            config,
            sidecar: Some(sidecar),
            op_node,
            imported: 0,
            decisions,
        })
    }

    /// Its switchyard's decisions so far (the latest few).
    pub fn decisions(&self) -> Vec<Decision> {
        self.decisions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Sidecar {
    async fn start(config: &Config, addr: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr} again"))?;
        Ok(Self::serve(config, listener))
    }

    fn serve(config: &Config, rpc: TcpListener) -> Self {
        let (stop, stopped) = oneshot::channel::<()>();
        let listeners = Listeners {
            rpc,
            admin: None,
            metrics: None,
            flashblocks: None,
        };
        let task = tokio::spawn(crate::run(listeners, config.clone(), async {
            let _ = stopped.await;
        }));
        Self { stop, task }
    }
}

/// A leadership change as the devnet saw it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Failover {
    /// The slot in which the conductor moved leadership.
    pub slot: u64,
    /// The old leader.
    pub from: usize,
    /// The new leader.
    pub to: usize,
    /// What the old leader's `/healthz` said.
    pub because: &'static str,
    /// Slots from the old leader's last block to the new leader's first.
    pub slots: u64,
    /// The same, in milliseconds of wall time.
    pub ms: f64,
    /// Slots with no block in between.
    pub missed: u64,
}

/// A fault the devnet breaks a node with, repaired a few slots later.
#[derive(Clone, Copy, Debug)]
enum NodeFault {
    SwitchyardKilled,
    OpGethDown,
    BuilderPartitioned,
    BuilderStopsProducing,
    BuilderBehind,
}

impl NodeFault {
    const ALL: [Self; 5] = [
        Self::SwitchyardKilled,
        Self::OpGethDown,
        Self::BuilderPartitioned,
        Self::BuilderStopsProducing,
        Self::BuilderBehind,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::SwitchyardKilled => "switchyard killed",
            Self::OpGethDown => "op-geth down",
            Self::BuilderPartitioned => "builder partitioned",
            Self::BuilderStopsProducing => "builder stops producing",
            Self::BuilderBehind => "builder behind",
        }
    }
}

/// Slots a devnet fault lasts before it is repaired.
const REPAIR_AFTER: u64 = 5;

impl Cluster {
    async fn break_node(&mut self, node: usize, fault: NodeFault) -> anyhow::Result<()> {
        match fault {
            NodeFault::SwitchyardKilled => self.kill_switchyard(node),
            NodeFault::OpGethDown => self.nodes[node].geth.stop().await,
            NodeFault::BuilderPartitioned => self.nodes[node].builder.stop().await,
            NodeFault::BuilderStopsProducing => {
                self.nodes[node].builder.faults().add(
                    switchyard_sim::Fault::HttpStatus { status: 500 }.on("engine_getPayload*"),
                );
            }
            NodeFault::BuilderBehind => {
                self.nodes[node]
                    .builder
                    .faults()
                    .add(switchyard_sim::Fault::Lag { blocks: 1_000 }.everywhere());
            }
        }
        Ok(())
    }

    async fn repair_node(&mut self, node: usize, fault: NodeFault) -> anyhow::Result<()> {
        match fault {
            NodeFault::SwitchyardKilled => self.restart_switchyard(node).await?,
            NodeFault::OpGethDown => self.nodes[node].geth.restart().await?,
            NodeFault::BuilderPartitioned => self.nodes[node].builder.restart().await?,
            NodeFault::BuilderStopsProducing | NodeFault::BuilderBehind => {
                self.nodes[node].builder.faults().clear();
            }
        }
        Ok(())
    }
}

/// `switchyard devnet --sequencers N`: the cluster live, a line per slot naming the leader and
/// whose block it was; `--fault-rate` breaks a random part of a random node (switchyard killed,
/// op-geth down, builder partitioned, stopping or behind) for five slots.
///
/// # Errors
///
/// If the cluster cannot start.
pub async fn devnet(args: &crate::devnet::DevnetArgs) -> anyhow::Result<crate::devnet::Summary> {
    use std::io::Write;
    let seed = args.seed.unwrap_or_else(|| fastrand::u64(..));
    let mut rng = fastrand::Rng::with_seed(seed);
    let spec = ChainSpec {
        genesis_timestamp: switchyard_sim::unix_now() as u64,
        forks: switchyard_sim::Forks::through(crate::devnet::fork(&args.fork)?),
        ..Default::default()
    };
    let mut options = ClusterOptions::new(spec);
    options.nodes = args.sequencers;
    options.strict = args.strict;
    options.slot_time = args.block_time;
    options.health_interval = (args.block_time / 5).max(Duration::from_millis(5));
    let mut cluster = Cluster::start(options).await?;
    let mut out = std::io::stdout().lock();
    if !args.json {
        writeln!(
            out,
            "switchyard devnet: {} sequencers under an op-conductor stand-in ({}) · fault rate {} · seed {seed}",
            args.sequencers,
            if args.strict {
                "strict: 206 fails over"
            } else {
                "lenient: 206 stays"
            },
            args.fault_rate
        )?;
    }
    let mut summary = crate::devnet::Summary {
        seed,
        ..Default::default()
    };
    let started = Instant::now();
    let mut broken: Vec<Option<(NodeFault, u64)>> = vec![None; args.sequencers];
    let mut slot_started = Vec::new();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut last_built: Option<(usize, u64)> = None;
    loop {
        let slot = cluster.slots.len() as u64;
        if args.blocks.is_some_and(|n| slot >= n) {
            break;
        }
        let mut notes = Vec::new();
        for (node, fault) in broken.iter_mut().enumerate() {
            if let Some((what, since)) = *fault
                && slot >= since + REPAIR_AFTER
            {
                cluster.repair_node(node, what).await?;
                *fault = None;
                notes.push(format!("repaired node {node}"));
            }
        }
        if rng.f64() < args.fault_rate {
            let node = rng.usize(..broken.len());
            if broken[node].is_none() {
                let fault = NodeFault::ALL[rng.usize(..NodeFault::ALL.len())];
                cluster.break_node(node, fault).await?;
                broken[node] = Some((fault, slot));
                summary.faults_injected += 1;
                notes.push(format!("{} on node {node}", fault.label()));
            }
        }
        slot_started.push(started.elapsed());
        let report = tokio::select! {
            report = cluster.slot() => report.clone(),
            _ = &mut ctrl_c => break,
        };
        if let Some(transfer) = report.transfer {
            summary.failovers.push(Failover {
                slot,
                from: transfer.from,
                to: transfer.to,
                because: transfer.because.as_str(),
                slots: 0,
                ms: 0.0,
                missed: 0,
            });
        }
        let line = match &report.outcome {
            Outcome::Built { number, source } => {
                summary.blocks += 1;
                match *source {
                    "builder" => {
                        *summary
                            .builder_wins
                            .entry(format!("builder-{}", report.leader + 1))
                            .or_default() += 1;
                    }
                    _ => summary.local_blocks += 1,
                }
                // A failover ends at the new leader's first block.
                if let (Some(failover), Some((_, last_slot))) =
                    (summary.failovers.last_mut(), last_built)
                    && failover.to == report.leader
                    && failover.slots == 0
                    && slot >= failover.slot
                {
                    failover.slots = slot - last_slot;
                    failover.missed = slot - last_slot - 1;
                    let from = slot_started
                        .get(last_slot as usize + 1)
                        .copied()
                        .unwrap_or_default();
                    failover.ms = (started.elapsed() - from).as_secs_f64() * 1e3;
                }
                last_built = Some((report.leader, slot));
                format!("#{number:<6} {source:<8}")
            }
            Outcome::Missed(reason) => {
                summary.missed_slots += 1;
                format!("missed: {}", reason.lines().next().unwrap_or_default())
            }
        };
        if !args.json {
            let transfer = report
                .transfer
                .map(|t| {
                    format!(
                        " · failover node {} → node {} ({})",
                        t.from, t.to, t.because
                    )
                })
                .unwrap_or_default();
            let notes = if notes.is_empty() {
                String::new()
            } else {
                format!(" · {}", notes.join(", "))
            };
            writeln!(
                out,
                "slot {slot:<5} leader node {} · {line}{transfer}{notes}",
                report.leader
            )?;
        }
    }
    let one_chain = cluster.one_chain();
    if !one_chain {
        summary.failed_blocks += 1;
    }
    summary.seconds = started.elapsed().as_secs_f64();
    summary.peak_rss_kib = crate::devnet::peak_rss_kib();
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&summary)?)?;
    } else {
        writeln!(
            out,
            "\n{} slots in {:.1} s: {} blocks ({} by builders, {} by op-geth), {} missed · one chain: {}",
            cluster.slots.len(),
            summary.seconds,
            summary.blocks,
            summary.builder_wins.values().sum::<u64>(),
            summary.local_blocks,
            summary.missed_slots,
            if one_chain { "yes" } else { "NO" },
        )?;
        writeln!(
            out,
            "failovers: {} · faults injected: {}",
            summary.failovers.len(),
            summary.faults_injected
        )?;
        for f in &summary.failovers {
            writeln!(
                out,
                "  slot {}: node {} → node {} ({}): {} slots, {:.0} ms, {} missed",
                f.slot, f.from, f.to, f.because, f.slots, f.ms, f.missed
            )?;
        }
    }
    Ok(summary)
}
