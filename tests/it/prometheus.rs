//! Every query of every panel of the Grafana dashboard, evaluated by a real Prometheus that
//! scraped a running switchyard, returns data.
//!
//! Needs the `prometheus` binary (Debian's package; `.ci/run` installs it).

use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::Value;
use switchyard_sim::{Fault, Fork, Tamper};

use crate::harness::{Net, fresh_spec, json, try_get};

struct Prometheus {
    child: Child,
    url: String,
    _dir: std::path::PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self._dir);
    }
}

impl Prometheus {
    fn start(target: std::net::SocketAddr) -> Self {
        let dir =
            std::env::temp_dir().join(format!("switchyard-prometheus-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: switchyard\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .expect("config");
        // Prometheus cannot report a port it picked, so take a free one from the kernel first.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the prometheus binary (apt-get install prometheus)");
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        }
    }

    /// The result vector of an instant query, or the error Prometheus gives.
    async fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let encoded: String = expr
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        let (status, body) = try_get(&format!("{}/api/v1/query?query={encoded}", self.url)).await?;
        let answer = json(&body);
        if answer["status"] != "success" {
            return Err(format!("HTTP {status}: {answer}"));
        }
        Ok(answer["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }
}

/// Grafana's variables, as a dashboard user with every builder selected would have them.
fn substitute(expr: &str) -> String {
    expr.replace("$__rate_interval", "10s")
        .replace("$builder", ".*")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_returns_data() {
    let dashboard: Value = serde_json::from_str(include_str!("../../grafana/switchyard.json"))
        .expect("dashboard JSON");
    let queries: Vec<(String, String)> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|panel| {
            let title = panel["title"].as_str().unwrap_or_default().to_owned();
            panel["targets"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |t| {
                    (
                        title.clone(),
                        t["expr"].as_str().unwrap_or_default().to_owned(),
                    )
                })
        })
        .collect();
    assert!(queries.len() >= 33, "the dashboard has its panels");

    // A builder streaming flashblocks (first: flashblocks streams pair with builders in order)
    // and one that does not.
    let chain = fresh_spec(Fork::Isthmus);
    let builders = [("prom-flash", true), ("prom-builder", false)]
        .into_iter()
        .map(|(name, streams)| {
            let mut config = switchyard_sim::SimConfig::builder(chain.clone()).named(name);
            if streams {
                config = config.with_flashblocks(switchyard_sim::FlashblocksConfig::default());
            }
            (config, switchyard_layers::tls::TlsOptions::default())
        })
        .collect();
    let mut net = Net::start_custom(chain, builders, |config| {
        config.metrics = Some("127.0.0.1:0".parse().expect("addr"));
        config.builder_policy.health_interval = Duration::from_millis(200);
    })
    .await;
    let prometheus = Prometheus::start(net.proxy.metrics.expect("metrics port"));
    // A subscriber that comes and goes, for the subscriber panel.
    let flashblocks = net.proxy.flashblocks.expect("flashblocks listener");
    let stream = tokio::net::TcpStream::connect(flashblocks)
        .await
        .expect("connect");
    let (subscriber, _) = tokio_tungstenite::client_async(format!("ws://{flashblocks}/"), stream)
        .await
        .expect("subscribe");
    drop(subscriber);

    // Something for every panel: bad requests, builder faults, blocks at a steady pace while
    // Prometheus scrapes.
    let rpc = format!("http://{}", net.proxy.addr);
    let anonymous = switchyard_sim::EngineClient::new(&rpc, [0; 32]).expect("client");
    let _ = anonymous.post(bytes::Bytes::from_static(b"{}"), None).await;
    let _ = net
        .seq
        .client()
        .post_signed(bytes::Bytes::from_static(b"{not json"))
        .await;
    net.seq.set_block_time(Duration::from_millis(25));
    let driver = tokio::spawn(async move {
        for n in 0u64.. {
            if n % 5 == 1 {
                let fault = Fault::Tamper {
                    tamper: Tamper::WrongFeeRecipient,
                }
                .on("engine_getPayloadV4")
                .times(1);
                net.builders[1].faults().add(fault);
            }
            if n % 6 == 2 {
                net.builders[0].flashblocks_fault(switchyard_sim::FlashFault::IndexGap);
            }
            if n % 11 == 4 {
                net.builders[0].flashblocks_fault(switchyard_sim::FlashFault::Broken);
            }
            if n % 7 == 3 {
                net.builders[1].faults().add(
                    Fault::HttpStatus { status: 500 }
                        .on("engine_newPayloadV4")
                        .times(1),
                );
            }
            net.step().await;
        }
    });

    // Wait for Prometheus to hold a few scrapes with decisions in them. It offers no push, so
    // this polls its API, a quarter second apart, for at most a minute.
    let ready = "sum(increase(switchyard_payload_decisions_total[10s])) > 0";
    let mut waited = Duration::ZERO;
    while prometheus.query(ready).await.map_or(true, |r| r.is_empty()) {
        assert!(
            waited < Duration::from_secs(60),
            "Prometheus never scraped switchyard's decisions"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
        waited += Duration::from_millis(250);
    }

    let mut failures = Vec::new();
    for (title, expr) in &queries {
        let expr = substitute(expr);
        match prometheus.query(&expr).await {
            Ok(result) if !result.is_empty() => {}
            Ok(_) => failures.push(format!("{title}: empty: {expr}")),
            Err(error) => failures.push(format!("{title}: error {error}: {expr}")),
        }
    }
    driver.abort();
    assert!(
        failures.is_empty(),
        "{} of {} queries failed:\n{}",
        failures.len(),
        queries.len(),
        failures.join("\n")
    );
}
