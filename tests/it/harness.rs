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
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Switchyard {
    pub async fn start(config: Config) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let listeners = switchyard::Listeners {
                rpc: listener,
                admin: None,
            };
            switchyard::run(listeners, config, async {
                let _ = stopped.await;
            })
            .await
            .expect("run");
        });
        Self {
            addr,
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

    /// Shuts down and waits for the drain to finish.
    pub async fn stop(mut self) {
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
