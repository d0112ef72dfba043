//! The rest of the fault catalogue (docs/faults.md): op-geth failing in each way, and hostile or
//! clumsy clients.

use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use serde_json::json;
use switchyard_layers::{jsonrpc::code, payload_select::Source};
use switchyard_sim::{DriverError, EngineSim, Fault, Fork, SimConfig};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::harness::{
    Net, Switchyard, call, config_for, fresh_spec, healthz_becomes, json, op_geth, secret_of, spec,
};

#[tokio::test]
async fn op_geth_down_at_start_then_appearing() {
    // Take a free port and leave it closed: op-geth is not there yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port");
    let secret = switchyard_sim::random_secret();
    let l2_secret = switchyard_layers::JwtSecret::from_hex(&switchyard_sim::secret_hex(&secret))
        .expect("secret");
    let mut config =
        switchyard::Config::new(format!("http://{port}").parse().expect("url"), l2_secret);
    config.builder_policy.health_interval = Duration::from_millis(20);
    let proxy = Switchyard::start(config).await;
    // switchyard is up, says op-geth is not, and answers calls with a clear error.
    let body = healthz_becomes(proxy.addr, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_ne!(body["detail"]["l2"]["status"], "up");
    let client = proxy.client(secret);
    let (_, answer) = client
        .post_signed(call(1, "eth_chainId", json!([])))
        .await
        .expect("answer");
    assert_eq!(json(&answer)["error"]["code"], code::UPSTREAM_UNREACHABLE);

    let geth = EngineSim::spawn(
        SimConfig::op_geth(fresh_spec(Fork::Isthmus))
            .with_secret(secret)
            .with_addr(port),
    )
    .await
    .expect("op-geth appears");
    let (_, answer) = client
        .post_signed(call(2, "eth_chainId", json!([])))
        .await
        .expect("answer");
    assert_eq!(
        json(&answer)["result"],
        "0x385",
        "served as soon as op-geth is there, no restart"
    );
    healthz_becomes(proxy.addr, StatusCode::OK).await;
    drop(geth);
}

#[tokio::test]
async fn op_geth_failing_get_payload_returns_the_validated_builder_block() {
    let mut net = Net::start(spec(Fork::Isthmus), &["builder"], |_| {}).await;
    net.step().await;
    net.geth.faults().add(
        Fault::RpcError {
            code: -32000,
            message: "op-geth on fire".into(),
        }
        .on("engine_getPayloadV4")
        .times(1),
    );
    let report = net.step().await;
    let decision = net.last();
    assert_eq!(
        decision.source,
        Source::Builder("builder".into()),
        "liveness first: {decision:?}"
    );
    assert_eq!(decision.local_lost, Some("error"));
    assert!(net.built_by(report.number, "builder"));
}

#[tokio::test]
async fn op_geth_failing_get_payload_with_no_builder_block_passes_its_error_on() {
    let mut net = Net::start(spec(Fork::Isthmus), &["builder"], |_| {}).await;
    net.step().await;
    net.geth.faults().add(
        Fault::RpcError {
            code: -32000,
            message: "op-geth on fire".into(),
        }
        .on("engine_getPayloadV4")
        .times(1),
    );
    net.builders[0].faults().add(
        Fault::HttpStatus { status: 500 }
            .on("engine_getPayloadV4")
            .times(1),
    );
    match net.seq.step().await {
        Err(DriverError::Rpc { code, message, .. }) => {
            assert_eq!(code, -32000);
            assert_eq!(
                message, "op-geth on fire",
                "op-geth's own answer, untouched"
            );
        }
        other => panic!("expected op-geth's error, got {other:?}"),
    }
    assert_eq!(net.last().source, Source::None);
    // The next block is built normally.
    net.step().await;
}

#[tokio::test]
async fn op_geth_failing_validation_makes_the_local_block_win() {
    let mut net = Net::start(spec(Fork::Isthmus), &["builder"], |_| {}).await;
    net.step().await;
    // The first newPayload of the block is switchyard's validation of the builder's block.
    net.geth.faults().add(
        Fault::HttpStatus { status: 503 }
            .on("engine_newPayloadV4")
            .times(1),
    );
    let report = net.step().await;
    assert_eq!(net.last().builders[0].lost, Some("validation_error"));
    assert!(net.built_locally(report.number));
}

#[tokio::test]
async fn op_geth_not_saying_valid_makes_the_local_block_win() {
    // Only VALID validates: SYNCING (op-geth cannot tell yet) is not good enough.
    let mut net = Net::start(spec(Fork::Isthmus), &["builder"], |_| {}).await;
    net.step().await;
    net.geth
        .faults()
        .add(Fault::Syncing.on("engine_newPayloadV4").times(1));
    let report = net.step().await;
    assert_eq!(net.last().builders[0].lost, Some("syncing"));
    assert!(net.built_locally(report.number));
}

#[tokio::test]
async fn op_geth_failing_op_nodes_new_payload_passes_its_error_on() {
    let mut net = Net::start(spec(Fork::Isthmus), &["builder"], |config| {
        config.builder_policy.mode = switchyard_layers::builder::ExecutionMode::Disabled;
    })
    .await;
    net.geth.faults().add(
        Fault::RpcError {
            code: -32603,
            message: "disk full".into(),
        }
        .on("engine_newPayloadV4")
        .times(1),
    );
    match net.seq.step().await {
        Err(DriverError::Rpc {
            code: -32603,
            method,
            ..
        }) => assert_eq!(method, "engine_newPayloadV4"),
        other => panic!("expected op-geth's newPayload error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_slow_op_geth_get_payload_still_lets_the_validated_builder_block_win_at_the_deadline() {
    let mut net = Net::start(spec(Fork::Isthmus), &["builder"], |config| {
        config.builder_policy.payload_deadline = Duration::from_millis(100);
    })
    .await;
    net.step().await;
    net.geth
        .faults()
        .add(Fault::Delay { ms: 400 }.on("engine_getPayloadV4").times(1));
    let report = net.step().await;
    let decision = net.last();
    assert_eq!(
        decision.source,
        Source::Builder("builder".into()),
        "{decision:?}"
    );
    assert!(net.built_by(report.number, "builder"));
}

#[tokio::test]
async fn a_flapping_builder_never_costs_a_block() {
    let mut net = Net::start(spec(Fork::Isthmus), &["builder"], |config| {
        config.builder_policy.breaker_threshold = 0;
    })
    .await;
    for block in 0..12 {
        if block % 2 == 0 {
            net.builders[0]
                .faults()
                .add(Fault::HttpStatus { status: 503 }.everywhere());
        } else {
            net.builders[0].faults().clear();
        }
        let report = net.step().await;
        let decision = net.last();
        if decision.source == Source::Local {
            assert!(net.built_locally(report.number));
        } else {
            assert!(net.built_by(report.number, "builder"));
        }
    }
    net.builders[0].faults().clear();
}

/// Sends raw bytes on a fresh connection and reads what comes back until it closes.
async fn raw_exchange(
    addr: std::net::SocketAddr,
    parts: &[&[u8]],
    pause_after_first: bool,
) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    for (i, part) in parts.iter().enumerate() {
        stream.write_all(part).await.expect("write");
        if i == 0 && pause_after_first {
            // The client goes silent; switchyard's timer decides, not ours.
            let mut answer = Vec::new();
            let _ = stream.read_to_end(&mut answer).await;
            return String::from_utf8_lossy(&answer).into_owned();
        }
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn slow_drip_clients_are_cut_off_and_nothing_reaches_op_geth() {
    let l2 = op_geth(spec(Fork::Isthmus)).await;
    let mut config = config_for(&l2);
    config.limits.header_read_timeout = Duration::from_millis(200);
    config.limits.body_read_timeout = Duration::from_millis(200);
    let proxy = Switchyard::start(config).await;
    let token = format!("Bearer {}", switchyard_sim::token(&l2.secret(), 0));

    // Headers that never finish: the connection is closed.
    let answer = raw_exchange(proxy.addr, &[b"POST / HTTP/1.1\r\nHost: x\r\n"], true).await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer:?}"
    );

    // A body that never finishes: 408.
    let head = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nAuthorization: {token}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"jsonrpc\""
    );
    let answer = raw_exchange(proxy.addr, &[head.as_bytes()], true).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert_eq!(
        l2.log().count("eth_"),
        l2.log().count("eth_getBlockByNumber"),
        "only switchyard's own checks"
    );
}

#[tokio::test]
async fn oversized_headers_are_refused() {
    let l2 = op_geth(spec(Fork::Isthmus)).await;
    let proxy = Switchyard::start(config_for(&l2)).await;
    let huge = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nX-Padding: {}\r\n\r\n",
        "a".repeat(128 * 1024)
    );
    let answer = raw_exchange(proxy.addr, &[huge.as_bytes()], false).await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{:?}",
        &answer[..answer.len().min(80)]
    );
    // And the server still serves.
    let (status, _) = proxy
        .client(l2.secret())
        .post_signed(call(1, "eth_chainId", json!([])))
        .await
        .expect("post");
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_burst_of_forkchoice_updates_is_all_answered() {
    let mut net = Net::start(spec(Fork::Isthmus), &["builder"], |_| {}).await;
    net.step().await;
    let head = net.seq.head();
    let body = Bytes::from(
        serde_json::to_vec(&json!({"jsonrpc":"2.0","id":1,"method":"engine_forkchoiceUpdatedV3",
            "params":[{"headBlockHash": head, "safeBlockHash": head, "finalizedBlockHash": head}, null]}))
        .expect("json"),
    );
    let client = net.seq.client().clone();
    let burst: Vec<_> = (0..300)
        .map(|_| {
            let client = client.clone();
            let body = body.clone();
            tokio::spawn(async move { client.post_signed(body).await })
        })
        .collect();
    for answer in burst {
        let (status, answer) = answer.await.expect("join").expect("answered");
        assert_eq!(status, StatusCode::OK);
        assert_eq!(json(&answer)["result"]["payloadStatus"]["status"], "VALID");
    }
    // The builder's lane took what it could; the chain goes on.
    net.step().await;
    let _ = secret_of(&net.geth);
}

#[tokio::test]
async fn a_builder_that_goes_down_and_comes_back_wins_again() {
    let mut net = Net::start(spec(Fork::Isthmus), &["builder"], |config| {
        config.builder_policy.breaker_threshold = 0;
    })
    .await;
    let report = net.step().await;
    assert!(net.built_by(report.number, "builder"));

    // Down: connections refused. Every slot still gets op-geth's block.
    net.builders[0].stop().await;
    let mut reasons = Vec::new();
    for _ in 0..3 {
        let report = net.step().await;
        assert!(net.built_locally(report.number));
        reasons.push(net.last().builders[0].lost.unwrap_or("won"));
    }
    assert!(
        reasons
            .iter()
            .all(|r| r.starts_with("skipped_") || *r == "unreachable"),
        "{reasons:?}"
    );

    // Back on the same address, behind by three blocks: it catches up and builds again.
    net.builders[0].restart().await.expect("restart");
    let mut won = false;
    for _ in 0..6 {
        let report = net.step().await;
        if net.built_by(report.number, "builder") {
            won = true;
            break;
        }
        assert!(net.built_locally(report.number));
    }
    assert!(
        won,
        "{:?}",
        net.decisions().iter().rev().take(6).collect::<Vec<_>>()
    );
}
