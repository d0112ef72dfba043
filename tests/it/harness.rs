//! Spawning switchyard and simulators for a test.

use std::{net::SocketAddr, time::Duration};

use bytes::Bytes;
use switchyard::Config;
use switchyard_layers::JwtSecret;
use switchyard_sim::{ChainSpec, EngineClient, EngineSim, Fork, Forks, SimConfig};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

/// A chain with every fork through `last` active from genesis.
pub fn spec(last: Fork) -> ChainSpec {
    ChainSpec {
        forks: Forks::through(last),
        ..Default::default()
    }
}

/// A simulated op-geth.
pub async fn op_geth(spec: ChainSpec) -> EngineSim {
    EngineSim::spawn(SimConfig::op_geth(spec))
        .await
        .expect("spawn op-geth")
}

/// The JWT secret a simulator uses, as switchyard reads it.
pub fn secret_of(sim: &EngineSim) -> JwtSecret {
    JwtSecret::from_hex(&sim.secret_hex()).expect("sim secret")
}

/// switchyard in front of `l2`, with op-node signing with the L2 secret.
pub fn config_for(l2: &EngineSim) -> Config {
    Config::new(l2.url().parse().expect("url"), secret_of(l2))
}

/// A switchyard running in this process.
pub struct Switchyard {
    pub addr: SocketAddr,
    pub admin: Option<SocketAddr>,
    pub metrics: Option<SocketAddr>,
    pub flashblocks: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// A listener on `127.0.0.1:0` and its address, if `wanted`.
async fn loopback_if(wanted: bool) -> (Option<TcpListener>, Option<SocketAddr>) {
    if !wanted {
        return (None, None);
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    (Some(listener), Some(addr))
}

impl Switchyard {
    pub async fn start(config: Config) -> Self {
        Self::start_at(config, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Serves op-node on `addr` (a restarted switchyard takes its predecessor's port back).
    pub async fn start_at(config: Config, addr: SocketAddr) -> Self {
        let listener = TcpListener::bind(addr).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (admin_listener, admin) = loopback_if(config.admin.is_some()).await;
        let (metrics_listener, metrics) = loopback_if(config.metrics.is_some()).await;
        let (flashblocks_listener, flashblocks) = loopback_if(config.flashblocks.is_some()).await;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let listeners = switchyard::Listeners {
                rpc: listener,
                admin: admin_listener,
                metrics: metrics_listener,
                flashblocks: flashblocks_listener,
            };
            switchyard::run(listeners, config, async {
                let _ = stopped.await;
            })
            .await
            .expect("run");
        });
        Self {
            addr,
            admin,
            metrics,
            flashblocks,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A client signing with `secret`, as op-node would.
    pub fn client(&self, secret: [u8; 32]) -> EngineClient {
        EngineClient::new(&self.url(), secret).expect("client")
    }

    /// Begins a graceful shutdown.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Stops (draining) and starts again on the same port with `config`, state lost, as a
    /// restarted process would.
    pub async fn restart(&mut self, config: Config) {
        self.drain().await;
        *self = Self::start_at(config, self.addr).await;
    }

    /// Shuts down and waits for the drain to finish.
    pub async fn stop(mut self) {
        self.drain().await;
    }

    async fn drain(&mut self) {
        self.begin_shutdown();
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .expect("drained in time")
                .expect("join");
        }
    }
}

impl Drop for Switchyard {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// A JSON-RPC request body.
pub fn call(id: u64, method: &str, params: serde_json::Value) -> Bytes {
    serde_json::to_vec(
        &serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}),
    )
    .expect("json")
    .into()
}

/// The parsed JSON of a body.
pub fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)))
}

/// op-geth, builders and switchyard on one simulated chain, with an op-node driving it.
pub struct Net {
    pub spec: ChainSpec,
    pub geth: EngineSim,
    pub builders: Vec<EngineSim>,
    pub proxy: Switchyard,
    pub seq: switchyard_sim::Sequencer,
    /// switchyard's configuration, for a restart.
    pub config: Config,
    decisions: std::sync::Arc<std::sync::Mutex<Vec<switchyard_layers::payload_select::Decision>>>,
}

impl Net {
    /// A chain with builders named `names` (each adding two transactions of its own),
    /// switchyard configured by `tweak`.
    pub async fn start(spec: ChainSpec, names: &[&str], tweak: impl FnOnce(&mut Config)) -> Self {
        let builders: Vec<(&str, usize)> = names.iter().map(|name| (*name, 2)).collect();
        Self::start_with(spec, &builders, tweak).await
    }

    /// A chain with builders `(name, transactions of its own per block)`.
    pub async fn start_with(
        spec: ChainSpec,
        builders_spec: &[(&str, usize)],
        tweak: impl FnOnce(&mut Config),
    ) -> Self {
        let configs = builders_spec
            .iter()
            .map(|(name, extra_txs)| {
                let mut config = SimConfig::builder(spec.clone()).named(*name);
                config.profile = switchyard_sim::Profile::Builder {
                    extra_txs: *extra_txs,
                };
                (config, switchyard_layers::tls::TlsOptions::default())
            })
            .collect();
        Self::start_custom(spec, configs, tweak).await
    }

    /// A chain with these builder simulators, each reached with its TLS options.
    pub async fn start_custom(
        spec: ChainSpec,
        builder_configs: Vec<(SimConfig, switchyard_layers::tls::TlsOptions)>,
        tweak: impl FnOnce(&mut Config),
    ) -> Self {
        let network = switchyard_sim::Network::new();
        let geth = EngineSim::spawn(SimConfig::op_geth(spec.clone()).with_network(network.clone()))
            .await
            .expect("op-geth");
        let mut builders = Vec::new();
        let mut tls = Vec::new();
        for (config, options) in builder_configs {
            builders.push(
                EngineSim::spawn(config.with_network(network.clone()))
                    .await
                    .expect("builder"),
            );
            tls.push(options);
        }
        let mut config = config_for(&geth);
        config.builders = builders
            .iter()
            .zip(tls)
            .map(|(sim, tls)| switchyard::config::Upstream {
                name: sim.log_name(),
                url: sim.url().parse().expect("url"),
                secret: secret_of(sim),
                timeout: Duration::from_secs(5),
                tls,
            })
            .collect();
        let streams: Vec<http::Uri> = builders
            .iter()
            .filter_map(|b| b.flashblocks_url())
            .map(|url| url.parse().expect("ws url"))
            .collect();
        if !streams.is_empty() {
            // Back quickly: tests cut streams on purpose.
            config.flashblocks = Some(switchyard::config::FlashblocksSettings {
                initial_backoff: Duration::from_millis(5),
                max_backoff: Duration::from_millis(100),
                max_subscribers: 64,
                ..switchyard::config::FlashblocksSettings::new(streams)
            });
        }
        // Long enough that only the faults under test decide; wire tests never wait on it.
        config.builder_policy.payload_deadline = Duration::from_secs(2);
        let decisions = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = decisions.clone();
        config.decision_sink = Some(std::sync::Arc::new(
            move |d: &switchyard_layers::payload_select::Decision| {
                sink.lock().expect("decisions").push(d.clone());
            },
        ));
        tweak(&mut config);
        let proxy = Switchyard::start(config.clone()).await;
        let seq_config = switchyard_sim::SequencerConfig::new(spec.clone());
        let seq = switchyard_sim::Sequencer::connect(&proxy.url(), geth.secret(), seq_config)
            .await
            .expect("op-node");
        Self {
            spec,
            geth,
            builders,
            proxy,
            seq,
            config,
            decisions,
        }
    }

    /// Every decision so far.
    pub fn decisions(&self) -> Vec<switchyard_layers::payload_select::Decision> {
        self.decisions.lock().expect("decisions").clone()
    }

    /// The latest decision.
    pub fn last(&self) -> switchyard_layers::payload_select::Decision {
        self.decisions().pop().expect("a decision")
    }

    /// One block through switchyard; the op-node stand-in checks it honours its attributes.
    pub async fn step(&mut self) -> switchyard_sim::BlockReport {
        self.seq.step().await.expect("block")
    }

    /// Whether op-geth's canonical block `number` is the one builder `name` built.
    pub fn built_by(&self, number: u64, name: &str) -> bool {
        let block = self.geth_block(number);
        let mark = switchyard_sim::tx::builder_tx(self.spec.chain_id, name, number, 0);
        block.transactions.contains(&mark)
    }

    /// Whether op-geth's canonical block `number` holds no builder's transaction.
    pub fn built_locally(&self, number: u64) -> bool {
        let names: Vec<String> = self.builders.iter().map(|b| b.log_name()).collect();
        names.iter().all(|name| !self.built_by(number, name))
    }

    pub fn geth_block(&self, number: u64) -> std::sync::Arc<switchyard_sim::Block> {
        let mut block = self.geth.head();
        while block.header.number > number {
            block = self
                .geth
                .block(&block.header.parent_hash)
                .expect("ancestor");
        }
        block
    }
}

/// `GET url` without credentials: status and body.
pub async fn get(url: &str) -> (http::StatusCode, Bytes) {
    try_get(url).await.expect("GET")
}

/// `GET url`, or the transport error.
pub async fn try_get(url: &str) -> Result<(http::StatusCode, Bytes), String> {
    use http_body_util::BodyExt;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<Bytes>>();
    let uri = url.parse().map_err(|e| format!("{e}"))?;
    let response = client.get(uri).await.map_err(|e| format!("{e:?}"))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("{e}"))?
        .to_bytes();
    Ok((status, body))
}

/// The `/healthz` status of `addr`, polled until it equals `want` (each poll is an HTTP round
/// trip, so the background check it waits for gets to run).
pub async fn healthz_becomes(addr: SocketAddr, want: http::StatusCode) -> serde_json::Value {
    healthz_until(addr, want, |_| true).await
}

/// Like [`healthz_becomes`], until the body also satisfies `done`.
pub async fn healthz_until(
    addr: SocketAddr,
    want: http::StatusCode,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let url = format!("http://{addr}/healthz");
    let mut last = None;
    for _ in 0..2_000 {
        let (status, body) = get(&url).await;
        if status == want && done(&json(&body)) {
            return json(&body);
        }
        last = Some((status, body));
        tokio::task::yield_now().await;
    }
    panic!("/healthz never became {want}: last {last:?}");
}

/// A chain whose genesis is now, so that op-geth's head counts as fresh.
pub fn fresh_spec(last: Fork) -> ChainSpec {
    let now = switchyard_sim::unix_now() as u64;
    ChainSpec {
        genesis_timestamp: now,
        ..spec(last)
    }
}
