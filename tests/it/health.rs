//! `/healthz` answers 200, 206 and 503 when it should, on the RPC port and the metrics port.

use std::time::Duration;

use http::StatusCode;
use switchyard_layers::builder::ExecutionMode;
use switchyard_sim::{Fault, Fork};

use crate::harness::{Net, fresh_spec, get, healthz_becomes, healthz_until, spec};

fn fast_checks(config: &mut switchyard::Config) {
    config.builder_policy.health_interval = Duration::from_millis(20);
    config.metrics = Some("127.0.0.1:0".parse().expect("addr"));
}

#[tokio::test]
async fn healthy_then_degraded_by_a_failing_builder_then_unavailable_without_op_geth() {
    let mut net = Net::start(fresh_spec(Fork::Isthmus), &["builder"], fast_checks).await;
    let rpc = net.proxy.addr;
    let metrics = net.proxy.metrics.expect("metrics port");
    net.step().await;
    let body = healthz_becomes(rpc, StatusCode::OK).await;
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["detail"]["l2"]["status"], "up");
    healthz_becomes(metrics, StatusCode::OK).await;
    assert_eq!(get(&format!("http://{rpc}/readyz")).await.0, StatusCode::OK);
    assert_eq!(get(&format!("http://{rpc}/livez")).await.0, StatusCode::OK);

    // The builder fails every call: its lane marks it failing, health drops to 206.
    net.builders[0]
        .faults()
        .add(Fault::HttpStatus { status: 500 }.everywhere());
    for _ in 0..3 {
        net.step().await;
    }
    let body = healthz_becomes(rpc, StatusCode::PARTIAL_CONTENT).await;
    assert_eq!(body["detail"]["builders"][0]["degraded"], true);
    healthz_becomes(metrics, StatusCode::PARTIAL_CONTENT).await;

    // op-geth fails its head check: 503, whatever the builders do.
    net.geth
        .faults()
        .add(Fault::HttpStatus { status: 503 }.on("eth_getBlockByNumber"));
    let seen = net.geth.log().count("eth_getBlockByNumber");
    net.geth
        .log()
        .wait_for_count("eth_getBlockByNumber", seen + 1)
        .await;
    let body = healthz_becomes(rpc, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(body["detail"]["l2"]["status"], "down");
    assert_eq!(
        get(&format!("http://{rpc}/readyz")).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );

    // op-geth answers again: healthy builders aside, it recovers without a restart.
    net.geth.faults().clear();
    net.builders[0].faults().clear();
    net.step().await;
    net.step().await;
    healthz_becomes(rpc, StatusCode::OK).await;
}

#[tokio::test]
async fn builders_never_degrade_health_unless_enabled() {
    for mode in [ExecutionMode::Disabled, ExecutionMode::DryRun] {
        let mut net = Net::start(fresh_spec(Fork::Isthmus), &["builder"], |config| {
            fast_checks(config);
            config.builder_policy.mode = mode;
        })
        .await;
        net.builders[0]
            .faults()
            .add(Fault::HttpStatus { status: 500 }.everywhere());
        for _ in 0..4 {
            net.step().await;
        }
        let body = healthz_becomes(net.proxy.addr, StatusCode::OK).await;
        assert_eq!(body["detail"]["mode"], mode.as_str());
    }
}

#[tokio::test]
async fn a_stale_op_geth_head_is_unavailable() {
    // Genesis years ago and no blocks since: op-geth's head is stale.
    let mut net = Net::start(spec(Fork::Isthmus), &["builder"], fast_checks).await;
    net.geth
        .log()
        .wait_for_count("eth_getBlockByNumber", 1)
        .await;
    // Before the first check it is 503 too ("unknown"): wait for the verdict itself.
    let body = healthz_until(net.proxy.addr, StatusCode::SERVICE_UNAVAILABLE, |b| {
        b["detail"]["l2"]["status"] != "unknown"
    })
    .await;
    assert_eq!(body["detail"]["l2"]["status"], "stale");
    // Blocks still flow: health is a verdict for op-conductor, not a gate.
    net.step().await;
}
