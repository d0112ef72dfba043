//! The simulator's own tests, over real HTTP with real JWTs.

use std::time::Duration;

use alloy_primitives::B256;
use alloy_rpc_types_engine::{ForkchoiceUpdated, PayloadId, PayloadStatus, PayloadStatusEnum};
use bytes::Bytes;
use http::StatusCode;
use serde_json::{Value, json};

use crate::{
    BuilderPath, ChainSpec, DriverError, EngineClient, EngineSim, Fault, Fork, Forks, Network,
    PayloadIdScheme, Sequencer, SequencerConfig, SimConfig, Tamper, auth,
};

fn spec(last: Fork) -> ChainSpec {
    ChainSpec {
        forks: Forks::through(last),
        ..Default::default()
    }
}

async fn sim(config: SimConfig) -> EngineSim {
    EngineSim::spawn(config).await.expect("spawn")
}

async fn sequencer(sim: &EngineSim) -> Sequencer {
    Sequencer::connect(
        &sim.url(),
        sim.secret(),
        SequencerConfig::new(sim.spec().clone()),
    )
    .await
    .expect("connect")
}

fn client(sim: &EngineSim) -> EngineClient {
    EngineClient::new(&sim.url(), sim.secret()).expect("client")
}

/// FCU with the sequencer's next attributes on `sim`; returns the payload id.
async fn start_build(sim: &EngineSim, seq: &Sequencer) -> PayloadId {
    let attrs = seq.next_attributes();
    let version = sim
        .spec()
        .forks
        .fcu_version(attrs.payload_attributes.timestamp);
    let state = json!({"headBlockHash": seq.head(), "safeBlockHash": B256::ZERO, "finalizedBlockHash": B256::ZERO});
    let updated: ForkchoiceUpdated = client(sim)
        .call(
            &format!("engine_forkchoiceUpdatedV{version}"),
            json!([state, attrs]),
        )
        .await
        .expect("fcu");
    updated.payload_id.expect("a payload id")
}

fn rpc_code(result: Result<impl std::fmt::Debug, DriverError>) -> i32 {
    match result {
        Err(DriverError::Rpc { code, .. }) => code,
        other => panic!("expected a JSON-RPC error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_block_built_by_one_simulator_is_valid_on_another() {
    for last in [
        Fork::Canyon,
        Fork::Ecotone,
        Fork::Holocene,
        Fork::Isthmus,
        Fork::Jovian,
        Fork::Karst,
    ] {
        let a = sim(SimConfig::op_geth(spec(last))).await;
        let b = sim(SimConfig::op_geth(spec(last))).await;
        let mut driver = sequencer(&a).await;
        let mut follower = sequencer(&b).await;
        for report in driver.drive(3).await.expect("drive") {
            let block = a.block(&report.hash).expect("stored");
            follower
                .follow(&block)
                .await
                .unwrap_or_else(|e| panic!("{last:?}: {e}"));
        }
        assert_eq!(b.head().hash, a.head().hash, "{last:?}");
        assert_eq!(b.head().header.number, 3);
    }
}

#[tokio::test]
async fn builder_blocks_differ_from_local_ones_and_are_still_valid() {
    let network = Network::new();
    let geth = sim(SimConfig::op_geth(spec(Fork::Isthmus)).with_network(network.clone())).await;
    let builder = sim(SimConfig::builder(spec(Fork::Isthmus)).with_network(network)).await;
    let seq = sequencer(&geth).await;
    let local_id = start_build(&geth, &seq).await;
    let builder_id = start_build(&builder, &seq).await;
    assert_eq!(local_id.0[0], 0x03);
    assert_eq!(builder_id.0[0], 0x04);
    assert_eq!(
        local_id.0[1..],
        builder_id.0[1..],
        "same hash, different version byte"
    );
    let local: Value = client(&geth)
        .call("engine_getPayloadV4", json!([local_id]))
        .await
        .expect("local");
    let built: Value = client(&builder)
        .call("engine_getPayloadV4", json!([builder_id]))
        .await
        .expect("builder");
    assert_ne!(
        local["executionPayload"]["blockHash"],
        built["executionPayload"]["blockHash"]
    );
    let gas = |v: &Value| {
        let text = v["executionPayload"]["gasUsed"]
            .as_str()
            .unwrap_or("0x0")
            .trim_start_matches("0x")
            .to_owned();
        u64::from_str_radix(&text, 16).expect("quantity")
    };
    assert!(
        gas(&built) > gas(&local),
        "the builder adds transactions of its own"
    );
    let status: PayloadStatus = client(&geth)
        .call(
            "engine_newPayloadV4",
            json!([
                built["executionPayload"],
                [],
                built["parentBeaconBlockRoot"],
                []
            ]),
        )
        .await
        .expect("newPayload");
    assert_eq!(status.status, PayloadStatusEnum::Valid);
}

#[tokio::test]
async fn a_driver_with_a_builder_path_uses_the_builders_validated_blocks() {
    let geth = sim(SimConfig::op_geth(spec(Fork::Isthmus))).await;
    let builder = sim(SimConfig::builder(spec(Fork::Isthmus))).await;
    let mut seq = sequencer(&geth).await;
    let mut path = BuilderPath::new(client(&builder));
    for _ in 0..3 {
        let report = seq.step_with_builder(&mut path).await.expect("step");
        assert!(
            report.tx_count > 1,
            "the builder adds transactions of its own"
        );
    }
    path.settle().await;
    assert_eq!(path.payloads, (3, 3));
    assert_eq!(geth.head().header.number, 3);
    assert_eq!(builder.head().hash, geth.head().hash, "the builder follows");

    // A builder whose payloads fail costs only its payload: op-geth's is used.
    builder
        .faults()
        .add(Fault::MalformedJson.on("engine_getPayloadV4"));
    let report = seq.step_with_builder(&mut path).await.expect("step");
    assert_eq!(
        report.tx_count, 1,
        "op-geth's block: the L1-info deposit alone"
    );
    assert_eq!(path.payloads, (4, 3));
    path.settle().await;
    assert_eq!(builder.head().hash, geth.head().hash);
}

#[tokio::test]
async fn op_geth_refuses_foreign_payload_ids_and_unknown_ones() {
    let geth = sim(SimConfig::op_geth(spec(Fork::Ecotone))).await;
    let seq = sequencer(&geth).await;
    let id = start_build(&geth, &seq).await;
    let mut foreign = id.0;
    foreign[0] = 0x04;
    assert_eq!(
        rpc_code(
            client(&geth)
                .call::<Value>("engine_getPayloadV3", json!([PayloadId(foreign)]))
                .await
        ),
        -38005
    );
    let mut unknown = id.0;
    unknown[7] ^= 0xff;
    assert_eq!(
        rpc_code(
            client(&geth)
                .call::<Value>("engine_getPayloadV3", json!([PayloadId(unknown)]))
                .await
        ),
        -38001
    );
}

#[tokio::test]
async fn method_versions_follow_the_fork() {
    let ecotone = sim(SimConfig::op_geth(spec(Fork::Ecotone))).await;
    let seq = sequencer(&ecotone).await;
    let attrs = seq.next_attributes();
    let state = json!({"headBlockHash": seq.head(), "safeBlockHash": B256::ZERO, "finalizedBlockHash": B256::ZERO});
    let c = client(&ecotone);
    assert_eq!(
        rpc_code(
            c.call::<Value>("engine_forkchoiceUpdatedV2", json!([state, attrs]))
                .await
        ),
        -38005
    );
    let id = start_build(&ecotone, &seq).await;
    assert_eq!(
        rpc_code(c.call::<Value>("engine_getPayloadV4", json!([id])).await),
        -38005
    );
    let envelope: Value = c
        .call("engine_getPayloadV3", json!([id]))
        .await
        .expect("v3");
    let v4_params = json!([
        envelope["executionPayload"],
        [],
        envelope["parentBeaconBlockRoot"],
        []
    ]);
    assert_eq!(
        rpc_code(c.call::<Value>("engine_newPayloadV4", v4_params).await),
        -32602,
        "a V3 payload is not V4-shaped"
    );

    let isthmus = sim(SimConfig::op_geth(spec(Fork::Isthmus))).await;
    let seq = sequencer(&isthmus).await;
    let id = start_build(&isthmus, &seq).await;
    let c = client(&isthmus);
    assert_eq!(
        rpc_code(c.call::<Value>("engine_getPayloadV3", json!([id])).await),
        -38005
    );
    let envelope: Value = c
        .call("engine_getPayloadV4", json!([id]))
        .await
        .expect("v4");
    let v3_params = json!([
        envelope["executionPayload"],
        [],
        envelope["parentBeaconBlockRoot"]
    ]);
    assert_eq!(
        rpc_code(c.call::<Value>("engine_newPayloadV3", v3_params).await),
        -38005
    );
}

#[tokio::test]
async fn bad_attributes_are_invalid_payload_attributes() {
    let jovian = sim(SimConfig::op_geth(spec(Fork::Jovian))).await;
    let seq = sequencer(&jovian).await;
    let state = json!({"headBlockHash": seq.head(), "safeBlockHash": B256::ZERO, "finalizedBlockHash": B256::ZERO});
    let c = client(&jovian);
    let mut cases = Vec::new();
    let mut a = seq.next_attributes();
    a.gas_limit = None;
    cases.push(("missing gasLimit", a));
    let mut a = seq.next_attributes();
    a.payload_attributes.timestamp = jovian.head().header.timestamp;
    cases.push(("timestamp not after the parent", a));
    let mut a = seq.next_attributes();
    a.min_base_fee = None;
    cases.push(("nil minBaseFee post-Jovian", a));
    let mut a = seq.next_attributes();
    a.eip_1559_params = None;
    cases.push(("missing eip1559Params", a));
    for (what, attrs) in cases {
        assert_eq!(
            rpc_code(
                c.call::<Value>("engine_forkchoiceUpdatedV3", json!([state, attrs]))
                    .await
            ),
            -38003,
            "{what}"
        );
    }
    let holocene = sim(SimConfig::op_geth(spec(Fork::Holocene))).await;
    let seq = sequencer(&holocene).await;
    let mut a = seq.next_attributes();
    a.min_base_fee = Some(1);
    let state = json!({"headBlockHash": seq.head(), "safeBlockHash": B256::ZERO, "finalizedBlockHash": B256::ZERO});
    assert_eq!(
        rpc_code(
            client(&holocene)
                .call::<Value>("engine_forkchoiceUpdatedV3", json!([state, a]))
                .await
        ),
        -38003,
        "non-nil minBaseFee pre-Jovian"
    );
}

#[tokio::test]
async fn unknown_head_is_syncing_and_unknown_safe_is_invalid_state() {
    let geth = sim(SimConfig::op_geth(spec(Fork::Isthmus))).await;
    let c = client(&geth);
    let unknown = json!({"headBlockHash": B256::repeat_byte(1), "safeBlockHash": B256::ZERO, "finalizedBlockHash": B256::ZERO});
    let updated: ForkchoiceUpdated = c
        .call("engine_forkchoiceUpdatedV3", json!([unknown, null]))
        .await
        .expect("fcu");
    assert_eq!(updated.payload_status.status, PayloadStatusEnum::Syncing);
    let bad_safe = json!({"headBlockHash": geth.head().hash, "safeBlockHash": B256::repeat_byte(1), "finalizedBlockHash": B256::ZERO});
    assert_eq!(
        rpc_code(
            c.call::<Value>("engine_forkchoiceUpdatedV3", json!([bad_safe, null]))
                .await
        ),
        -38002
    );
}

#[tokio::test]
async fn jwt_rules_are_geths() {
    let geth = sim(SimConfig::op_geth(spec(Fork::Isthmus))).await;
    let c = client(&geth);
    let body =
        Bytes::from_static(br#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}"#);
    let secret = geth.secret();
    let cases = [
        (None, "missing token\n"),
        (
            Some(format!("Bearer {}", auth::token(&[9; 32], 0))),
            "invalid token\n",
        ),
        (
            Some(format!("Bearer {}", auth::token_hs384(&secret))),
            "invalid token\n",
        ),
        (
            Some(format!("Bearer {}", auth::token(&secret, -61))),
            "stale token\n",
        ),
        (
            Some(format!("Bearer {}", auth::token(&secret, 61))),
            "future token\n",
        ),
    ];
    for (header, expected) in cases {
        let (status, body) = c.post(body.clone(), header.as_deref()).await.expect("post");
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(&body[..], expected.as_bytes());
    }
    assert_eq!(
        geth.log().entries().len(),
        0,
        "nothing refused is processed"
    );
    assert_eq!(geth.log().unauthorized(), 5);
    let (status, _) = c
        .post(body, Some(&format!("Bearer {}", auth::token(&secret, -59))))
        .await
        .expect("post");
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn batches_parse_errors_and_unknown_methods() {
    let geth = sim(SimConfig::op_geth(spec(Fork::Isthmus))).await;
    let c = client(&geth);
    let batch = Bytes::from_static(
        br#"[{"jsonrpc":"2.0","id":1,"method":"eth_chainId"},{"jsonrpc":"2.0","id":2,"method":"nope_nope"},{"jsonrpc":"2.0","method":"eth_chainId"},{"jsonrpc":"2.0","id":3,"method":"net_version"}]"#,
    );
    let (_, body) = c.post_signed(batch).await.expect("batch");
    let answers: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(answers[0], json!({"jsonrpc":"2.0","id":1,"result":"0x385"}));
    assert_eq!(answers[1]["error"]["code"], -32601);
    assert_eq!(
        answers[2],
        json!({"jsonrpc":"2.0","id":3,"result":"901"}),
        "no answer to a notification"
    );
    let (_, body) = c
        .post_signed(Bytes::from_static(b"{\"method\":"))
        .await
        .expect("garbage");
    assert_eq!(
        serde_json::from_slice::<Value>(&body).expect("json")["error"]["code"],
        -32700
    );
}

#[tokio::test]
async fn mempool_transactions_follow_the_forced_ones_and_leave_once_included() {
    let geth = sim(SimConfig::op_geth(spec(Fork::Isthmus))).await;
    let c = client(&geth);
    for nonce in 0..5 {
        let raw = crate::tx::transfer(901, 7, nonce, 32);
        let hash: B256 = c
            .call("eth_sendRawTransaction", json!([raw]))
            .await
            .expect("send");
        assert_eq!(hash, crate::tx::hash(&raw));
    }
    assert_eq!(
        rpc_code(
            c.call::<Value>(
                "eth_sendRawTransaction",
                json!([crate::tx::l1_info_deposit(1, 1)])
            )
            .await
        ),
        -32000
    );
    let mut seq = sequencer(&geth).await;
    seq.no_tx_pool = true;
    let report = seq.step().await.expect("noTxPool block");
    assert_eq!(report.tx_count, 1);
    seq.no_tx_pool = false;
    let report = seq.step().await.expect("block");
    assert_eq!(report.tx_count, 6);
    assert_eq!(geth.mempool_len(), 0);
    let number: String = c.call("eth_blockNumber", json!([])).await.expect("number");
    assert_eq!(number, "0x2");
    let block: Value = c
        .call("eth_getBlockByNumber", json!(["0x2", false]))
        .await
        .expect("block");
    assert_eq!(block["hash"], json!(report.hash));
    let by_hash: Value = c
        .call("eth_getBlockByHash", json!([report.hash, true]))
        .await
        .expect("block");
    assert_eq!(by_hash["transactions"].as_array().map(Vec::len), Some(6));
}

/// Builds one block on a builder with `tamper` armed and offers it to op-geth via newPayload.
async fn tampered(tamper: Tamper) -> (Result<PayloadStatus, DriverError>, Value) {
    let network = Network::new();
    let geth = sim(SimConfig::op_geth(spec(Fork::Isthmus)).with_network(network.clone())).await;
    let builder = sim(SimConfig::builder(spec(Fork::Isthmus)).with_network(network)).await;
    let mut seq = sequencer(&geth).await;
    // A block of history first, so that WrongParent has a grandparent to point at.
    let first = seq.step().await.expect("block 1");
    let block = geth.block(&first.hash).expect("stored");
    let mut follower = sequencer(&builder).await;
    follower.follow(&block).await.expect("builder follows");
    let id = start_build(&builder, &seq).await;
    builder
        .faults()
        .add(Fault::Tamper { tamper }.on("engine_getPayloadV4"));
    let envelope: Value = match client(&builder)
        .call("engine_getPayloadV4", json!([id]))
        .await
    {
        Ok(envelope) => envelope,
        Err(e) => return (Err(e), Value::Null),
    };
    let params = json!([
        envelope["executionPayload"],
        [],
        envelope["parentBeaconBlockRoot"],
        []
    ]);
    (
        client(&geth).call("engine_newPayloadV4", params).await,
        envelope,
    )
}

#[tokio::test]
async fn tampered_blocks_are_caught_where_a_real_client_would_catch_them() {
    for tamper in Tamper::ALL {
        let (status, envelope) = tampered(tamper).await;
        match tamper {
            // Internally inconsistent: op-geth itself refuses them.
            // (The padded block also exceeds the gas limit.)
            Tamper::WrongBlockHash
            | Tamper::BadStateRoot
            | Tamper::GasOverLimit
            | Tamper::WrongParent
            | Tamper::Oversized { .. } => {
                let status = status.expect("an answer");
                assert!(
                    matches!(status.status, PayloadStatusEnum::Invalid { .. }),
                    "{tamper:?}: {status:?}"
                );
            }
            Tamper::UnknownPayloadId => assert_eq!(rpc_code(status), -38001),
            // Self-consistent blocks built from other attributes: a real client accepts them.
            // Only a check against the attributes (switchyard's, op-node's) catches them; the
            // sequencer test below proves the simulator's own op-node does.
            _ => {
                let status = status.expect("an answer");
                assert_eq!(status.status, PayloadStatusEnum::Valid, "{tamper:?}");
                assert!(envelope["executionPayload"].is_object());
            }
        }
    }
}

#[tokio::test]
async fn the_sequencer_refuses_every_tampered_block() {
    for tamper in Tamper::ALL {
        let geth = sim(SimConfig::op_geth(spec(Fork::Isthmus))).await;
        let mut seq = sequencer(&geth).await;
        seq.drive(1).await.expect("history");
        geth.faults()
            .add(Fault::Tamper { tamper }.on("engine_getPayloadV4"));
        let outcome = seq.step().await;
        match tamper {
            Tamper::UnknownPayloadId => assert_eq!(rpc_code(outcome), -38001),
            // Consistent and honouring its attributes: op-geth's newPayload refuses it.
            Tamper::BadStateRoot => {
                assert!(
                    matches!(&outcome, Err(DriverError::Status { status, .. }) if status.contains("Invalid")),
                    "{outcome:?}"
                )
            }
            _ => assert!(
                matches!(outcome, Err(DriverError::Check { .. })),
                "{tamper:?}: {outcome:?}"
            ),
        }
    }
}

#[tokio::test]
async fn transport_faults_take_effect() {
    let geth = sim(SimConfig::op_geth(spec(Fork::Isthmus))).await;
    let c = client(&geth);
    let call = || c.call::<String>("eth_chainId", json!([]));

    geth.faults()
        .add(Fault::HttpStatus { status: 503 }.on("eth_chainId").times(1));
    assert!(matches!(
        call().await,
        Err(DriverError::Http {
            status: StatusCode::SERVICE_UNAVAILABLE,
            ..
        })
    ));
    geth.faults()
        .add(Fault::HttpStatus { status: 500 }.on("eth_chainId").times(1));
    assert!(matches!(
        call().await,
        Err(DriverError::Http {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            ..
        })
    ));
    geth.faults()
        .add(Fault::MalformedJson.on("eth_chainId").times(1));
    assert!(matches!(call().await, Err(DriverError::Decode { .. })));
    geth.faults()
        .add(Fault::TruncatedBody.on("eth_chainId").times(1));
    assert!(matches!(call().await, Err(DriverError::Decode { .. })));
    geth.faults()
        .add(Fault::CloseConnection.on("eth_chainId").times(1));
    assert!(matches!(call().await, Err(DriverError::Transport(_))));
    geth.faults().add(
        Fault::RpcError {
            code: -32000,
            message: "boom".into(),
        }
        .on("eth_chainId")
        .times(1),
    );
    assert_eq!(rpc_code(call().await), -32000);
    assert_eq!(call().await.expect("faults expired"), "0x385");

    geth.faults()
        .add(Fault::Delay { ms: 30 }.on("eth_chainId").times(1));
    let started = tokio::time::Instant::now();
    call().await.expect("delayed");
    assert!(
        started.elapsed() >= Duration::from_millis(30),
        "a delay never answers early"
    );
}

#[tokio::test]
async fn a_hang_lasts_until_released() {
    let geth = sim(SimConfig::op_geth(spec(Fork::Isthmus))).await;
    geth.faults().add(Fault::Hang.on("eth_chainId"));
    let c = client(&geth);
    let pending = tokio::spawn(async move { c.call::<String>("eth_chainId", json!([])).await });
    geth.log().wait_for_count("eth_chainId", 1).await;
    // The call has arrived and is held; other methods are not.
    client(&geth)
        .call::<String>("net_version", json!([]))
        .await
        .expect("unaffected");
    assert!(!pending.is_finished());
    geth.faults().clear();
    geth.faults().release_hangs();
    assert_eq!(pending.await.expect("join").expect("released"), "0x385");
}

#[tokio::test]
async fn syncing_and_lag_faults() {
    let geth = sim(SimConfig::op_geth(spec(Fork::Isthmus))).await;
    let mut seq = sequencer(&geth).await;
    geth.faults()
        .add(Fault::Syncing.on("engine_newPayloadV4").times(1));
    assert!(matches!(seq.step().await, Err(DriverError::Status { .. })));

    let network = Network::new();
    let leader = sim(SimConfig::op_geth(spec(Fork::Isthmus)).with_network(network.clone())).await;
    let lagger = sim(SimConfig::op_geth(spec(Fork::Isthmus)).with_network(network)).await;
    let mut driver = sequencer(&leader).await;
    let mut follower = sequencer(&lagger).await;
    lagger.faults().add(Fault::Lag { blocks: 2 }.everywhere());
    let reports = driver.drive(4).await.expect("drive");
    let mut outcomes = Vec::new();
    for report in &reports {
        let block = leader.block(&report.hash).expect("block");
        outcomes.push(follower.follow(&block).await.is_ok());
    }
    // Two blocks ignored, the third arrives on an unknown parent (SYNCING) and triggers the
    // catch-up from the network, the fourth is imported.
    assert_eq!(outcomes, [false, false, false, true]);
    assert_eq!(lagger.head().hash, leader.head().hash);
}

/// One call to a simulator's control endpoint: its status and body.
async fn control_call(method: &str, url: String, body: &'static str) -> (StatusCode, Bytes) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<Bytes>>();
    let request = http::Request::builder()
        .method(method)
        .uri(url)
        .body(http_body_util::Full::new(Bytes::from_static(
            body.as_bytes(),
        )))
        .expect("request");
    let response = client.request(request).await.expect("control");
    let status = response.status();
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .expect("body")
        .to_bytes();
    (status, body)
}

#[tokio::test]
async fn the_control_endpoint_sets_and_clears_faults() {
    let geth = sim(SimConfig::op_geth(spec(Fork::Isthmus))).await;
    let control = |method: &'static str, path: &'static str, body: &'static str| {
        let url = format!("{}{path}", geth.url());
        async move { control_call(method, url, body).await.0 }
    };
    let rule = r#"{"fault":{"kind":"rpc_error","code":-32099,"message":"from control"},"scope":{"method":"eth_chainId"}}"#;
    assert_eq!(control("POST", "/_sim/faults", rule).await, StatusCode::OK);
    assert_eq!(
        rpc_code(client(&geth).call::<String>("eth_chainId", json!([])).await),
        -32099
    );
    assert_eq!(control("DELETE", "/_sim/faults", "").await, StatusCode::OK);
    assert!(
        client(&geth)
            .call::<String>("eth_chainId", json!([]))
            .await
            .is_ok()
    );
    assert_eq!(
        control("POST", "/_sim/faults", "{not json").await,
        StatusCode::BAD_REQUEST
    );
}

/// `/_sim/log`: the calls of a method, each with a hash of its params and its wall-clock
/// arrival, for comparing two simulators' logs from another process; DELETE forgets them.
#[tokio::test]
async fn the_control_endpoint_lists_and_forgets_logged_calls() {
    let geth = sim(SimConfig::op_geth(spec(Fork::Isthmus))).await;
    let get = |method: &'static str| {
        let url = format!("{}/_sim/log?prefix=eth_chainId", geth.url());
        async move {
            let (_, body) = control_call(method, url, "").await;
            serde_json::from_slice::<serde_json::Value>(&body).unwrap_or_default()
        }
    };
    let before = crate::unix_now() as u64;
    for _ in 0..2 {
        client(&geth)
            .call::<String>("eth_chainId", json!([]))
            .await
            .expect("chain id");
    }
    client(&geth)
        .call::<String>("eth_blockNumber", json!([]))
        .await
        .expect("block number");
    let calls = get("GET").await;
    let calls = calls.as_array().expect("a list");
    assert_eq!(calls.len(), 2, "only the method asked for: {calls:?}");
    assert_eq!(calls[0]["params_hash"], calls[1]["params_hash"]);
    let at = calls[0]["unix_nanos"].as_u64().expect("nanos") / 1_000_000_000;
    assert!(at >= before && at <= before + 60, "{at} vs {before}");
    get("DELETE").await;
    assert_eq!(get("GET").await, json!([]));
}

#[tokio::test]
async fn a_restarted_simulator_keeps_its_chain_and_port() {
    let mut geth = sim(SimConfig::op_geth(spec(Fork::Isthmus))).await;
    let addr = geth.addr();
    let mut seq = sequencer(&geth).await;
    seq.drive(2).await.expect("before");
    geth.stop().await;
    assert!(matches!(seq.step().await, Err(DriverError::Transport(_))));
    geth.restart().await.expect("restart");
    assert_eq!(geth.addr(), addr);
    seq.drive(2).await.expect("after");
    assert_eq!(geth.head().header.number, 4);
}

#[tokio::test]
async fn reth_id_scheme_skips_the_version_check() {
    let mut config = SimConfig::op_geth(spec(Fork::Isthmus));
    config.payload_ids = PayloadIdScheme::OpReth;
    let reth = sim(config).await;
    let mut seq = sequencer(&reth).await;
    let report = seq.step().await.expect("a 0x04 id works on getPayloadV4");
    assert_eq!(report.number, 1);
    assert!(
        reth.log().calls("engine_getPayloadV4")[0].params_json()[0]
            .as_str()
            .is_some_and(|id| id.starts_with("0x04"))
    );
}
