//! The builder path end to end: builders win when they should, lose with the right reason when
//! they must, and never slow op-node down.

use std::time::Duration;

use serde_json::{Value, json};
use switchyard_layers::{
    JwtSecret,
    builder::ExecutionMode,
    payload_select::{SelectionPolicy, Source},
};
use switchyard_sim::{EngineClient, Fault, Fork, Forks, Tamper, random_secret, secret_hex, token};

use crate::harness::{Net, spec};

fn builder_params_of(entry: &switchyard_sim::LogEntry) -> Value {
    entry.params_json()
}

/// Whether a logged forkchoice update carried attributes.
fn has_attributes(entry: &switchyard_sim::LogEntry) -> bool {
    !builder_params_of(entry)[1].is_null()
}

async fn builders_win_for(spec: switchyard_sim::ChainSpec, blocks: u64) {
    let mut net = Net::start(spec, &["builder"], |_| {}).await;
    for _ in 0..blocks {
        let report = net.step().await;
        let decision = net.last();
        assert_eq!(
            decision.source,
            Source::Builder("builder".into()),
            "block {}: {decision:?}",
            report.number
        );
        assert!(
            net.built_by(report.number, "builder"),
            "block {} is the builder's",
            report.number
        );
    }
    assert_eq!(net.geth.head().header.number, blocks);
}

#[tokio::test]
async fn builder_blocks_win_for_50_blocks_on_ecotone() {
    builders_win_for(spec(Fork::Ecotone), 50).await;
}

#[tokio::test]
async fn builder_blocks_win_for_50_blocks_on_isthmus() {
    builders_win_for(spec(Fork::Isthmus), 50).await;
}

#[tokio::test]
async fn builder_blocks_win_across_the_holocene_to_isthmus_transition() {
    let mut chain = spec(Fork::Holocene);
    // Block 25 is the first Isthmus block: getPayloadV3/newPayloadV3 before, V4 after.
    chain.forks = Forks::transition(
        Fork::Holocene,
        Fork::Isthmus,
        chain.genesis_timestamp + 25 * chain.block_time,
    );
    let mut net = Net::start(chain, &["builder"], |_| {}).await;
    for _ in 0..50 {
        let report = net.step().await;
        assert!(
            net.built_by(report.number, "builder"),
            "block {}",
            report.number
        );
    }
    let versions: Vec<u8> = net.decisions().iter().map(|d| d.version).collect();
    assert_eq!(versions[..24], [3; 24]);
    assert_eq!(versions[24..], [4; 26]);
    assert_eq!(net.builders[0].log().count("engine_getPayloadV3"), 24);
    assert_eq!(net.builders[0].log().count("engine_getPayloadV4"), 26);
}

#[tokio::test]
async fn payload_ids_differ_and_are_translated() {
    let mut net = Net::start(spec(Fork::Isthmus), &["builder"], |_| {}).await;
    net.step().await;
    let asked_l2 = net.geth.log().calls("engine_getPayloadV4");
    let asked_builder = net.builders[0].log().calls("engine_getPayloadV4");
    let l2_id = asked_l2[0].params_json()[0]
        .as_str()
        .map(str::to_owned)
        .expect("l2 id");
    let builder_id = asked_builder[0].params_json()[0]
        .as_str()
        .map(str::to_owned)
        .expect("builder id");
    assert!(l2_id.starts_with("0x03"), "{l2_id}");
    assert!(builder_id.starts_with("0x04"), "{builder_id}");
    assert_eq!(net.last().source, Source::Builder("builder".into()));
}

/// One faulty block: the builder's block is not returned, for the expected reason; the next block
/// is the builder's again.
async fn faulty_block(net: &mut Net, fault: switchyard_sim::FaultRule, expected: &[&str]) {
    net.builders[0].faults().add(fault);
    let report = net.step().await;
    let decision = net.last();
    assert_eq!(decision.source, Source::Local, "{decision:?}");
    let reason = decision.builders[0].lost.unwrap_or("won");
    assert!(
        expected.contains(&reason),
        "expected one of {expected:?}, got {reason}: {decision:?}"
    );
    assert!(
        net.built_locally(report.number),
        "block {} must be op-geth's",
        report.number
    );
    net.builders[0].faults().clear();
    net.builders[0].faults().release_hangs();
}

#[tokio::test]
async fn every_tamper_kind_loses_to_the_local_block_with_its_reason() {
    let mut net = Net::start(spec(Fork::Jovian), &["builder"], |config| {
        config.builder_policy.max_payload_size = 1024 * 1024;
        config.builder_policy.breaker_threshold = 0;
    })
    .await;
    net.step().await;
    let expectations: [(Tamper, &[&str]); 13] = [
        (Tamper::WrongBlockHash, &["block_hash"]),
        (Tamper::WrongParent, &["parent_hash"]),
        (Tamper::BadStateRoot, &["invalid"]),
        (Tamper::ForcedTxsMissing, &["forced_transactions"]),
        (Tamper::ForcedTxsReordered, &["forced_transactions"]),
        (Tamper::WrongTimestamp, &["timestamp"]),
        (Tamper::WrongFeeRecipient, &["fee_recipient"]),
        (Tamper::WrongPrevRandao, &["prev_randao"]),
        (Tamper::WrongGasLimit, &["gas_limit"]),
        (Tamper::WrongBeaconRoot, &["beacon_root"]),
        (Tamper::GasOverLimit, &["gas_over_limit"]),
        (Tamper::Oversized { mib: 2 }, &["too_large"]),
        (Tamper::UnknownPayloadId, &["unknown_payload"]),
    ];
    for (tamper, reasons) in expectations {
        faulty_block(
            &mut net,
            Fault::Tamper { tamper }.on("engine_getPayloadV4").times(1),
            reasons,
        )
        .await;
        let report = net.step().await;
        assert!(
            net.built_by(report.number, "builder"),
            "{tamper:?}: the builder wins again"
        );
    }
}

#[tokio::test]
async fn every_transport_fault_loses_to_the_local_block_with_its_reason() {
    let mut net = Net::start(spec(Fork::Isthmus), &["builder"], |config| {
        config.builder_policy.payload_deadline = Duration::from_millis(300);
    })
    .await;
    net.step().await;
    let faults: Vec<(switchyard_sim::FaultRule, &[&str])> = vec![
        (
            Fault::Delay { ms: 1_000 }
                .on("engine_getPayloadV4")
                .times(1),
            &["deadline"],
        ),
        (
            Fault::Hang.on("engine_getPayloadV4").times(1),
            &["deadline"],
        ),
        (
            Fault::HttpStatus { status: 500 }
                .on("engine_getPayloadV4")
                .times(1),
            &["http_status"],
        ),
        (
            Fault::HttpStatus { status: 503 }
                .on("engine_getPayloadV4")
                .times(1),
            &["http_status"],
        ),
        (
            Fault::MalformedJson.on("engine_getPayloadV4").times(1),
            &["malformed"],
        ),
        (
            Fault::TruncatedBody.on("engine_getPayloadV4").times(1),
            &["malformed"],
        ),
        (
            Fault::CloseConnection.on("engine_getPayloadV4").times(1),
            &["bad_response"],
        ),
        (
            Fault::RpcError {
                code: -32000,
                message: "builder on fire".into(),
            }
            .on("engine_getPayloadV4")
            .times(1),
            &["rpc_error"],
        ),
        (
            Fault::Syncing.on("engine_forkchoiceUpdatedV3").times(1),
            &["fcu_syncing"],
        ),
        (
            Fault::Hang.on("engine_forkchoiceUpdatedV3").times(1),
            &["deadline"],
        ),
    ];
    for (fault, reasons) in faults {
        let what = format!("{:?}", fault.fault);
        faulty_block(&mut net, fault, reasons).await;
        // A syncing builder is skipped until its next answer says it is synced again.
        for _ in 0..3 {
            let report = net.step().await;
            if net.built_by(report.number, "builder") {
                break;
            }
        }
        let report = net.step().await;
        assert!(
            net.built_by(report.number, "builder"),
            "after {what} the builder wins again"
        );
    }
}

#[tokio::test]
async fn a_lagging_builder_is_skipped_until_it_catches_up() {
    let mut net = Net::start(spec(Fork::Isthmus), &["builder"], |_| {}).await;
    net.step().await;
    net.builders[0]
        .faults()
        .add(Fault::Lag { blocks: 3 }.everywhere());
    let mut reasons = Vec::new();
    for _ in 0..4 {
        let report = net.step().await;
        assert!(
            net.built_locally(report.number),
            "a lagging builder never wins"
        );
        reasons.push(net.last().builders[0].lost.unwrap_or("won"));
    }
    assert!(
        reasons
            .iter()
            .all(|r| ["fcu_syncing", "skipped_syncing"].contains(r)),
        "{reasons:?}"
    );
    // Caught up from the network: it builds again.
    let mut won = false;
    for _ in 0..4 {
        let report = net.step().await;
        won |= net.built_by(report.number, "builder");
    }
    assert!(
        won,
        "the builder recovers: {:?}",
        net.decisions().iter().rev().take(4).collect::<Vec<_>>()
    );
}

/// A builder that hangs on one block's forkchoice update (or two in a row) costs those blocks
/// only: the next block's attributes give up on the held update, so the blocks queued behind it
/// and the new attributes reach the builder at once, and its payload is on time.
#[tokio::test]
async fn after_one_or_two_hung_forkchoice_updates_the_next_builder_block_is_on_time() {
    let mut net = Net::start(spec(Fork::Isthmus), &["builder"], |config| {
        // Far below the builder's call timeout (5 s here): a lane held by the hung call until
        // it timed out would miss this deadline.
        config.builder_policy.payload_deadline = Duration::from_millis(500);
    })
    .await;
    net.step().await;
    for hung in [1, 2] {
        net.builders[0]
            .faults()
            .add(Fault::Hang.on("engine_forkchoiceUpdatedV3").times(hung));
        for _ in 0..hung {
            let report = net.step().await;
            assert!(
                net.built_locally(report.number),
                "a hung builder: op-geth's block"
            );
        }
        let report = net.step().await;
        assert!(
            net.built_by(report.number, "builder"),
            "after {hung} hung updates the builder's block is on time: {:?}",
            net.last()
        );
    }
    net.builders[0].faults().release_hangs();
}

#[tokio::test]
async fn a_hanging_builder_never_delays_a_forkchoice_update() {
    let mut net = Net::start(spec(Fork::Isthmus), &["builder"], |config| {
        config.builder_policy.payload_deadline = Duration::from_millis(200);
    })
    .await;
    net.step().await;
    net.builders[0]
        .faults()
        .add(Fault::Hang.on("engine_forkchoiceUpdatedV3").times(1));
    let before = net.geth.log().entries().len();
    let report = net.step().await;
    // The builder still holds the forkchoice update; op-node's whole block cycle went through.
    let builder_fcus = net.builders[0].log().calls("engine_forkchoiceUpdatedV3");
    let held = builder_fcus.last().expect("the builder got the FCU").at;
    // op-node's calls (switchyard's head checks of op-geth aside).
    let cycle: Vec<_> = net.geth.log().entries()[before..]
        .iter()
        .filter(|e| e.method.starts_with("engine_"))
        .cloned()
        .collect();
    let methods: Vec<&str> = cycle.iter().map(|e| e.method.as_str()).collect();
    assert_eq!(
        methods,
        [
            "engine_forkchoiceUpdatedV3",
            "engine_getPayloadV4",
            "engine_newPayloadV4",
            "engine_forkchoiceUpdatedV3"
        ]
    );
    // op-geth got the FCU no later than the builder did: it was sent at once, not after.
    assert!(
        cycle[0].at <= held + Duration::from_millis(50),
        "{:?} vs {:?}",
        cycle[0].at,
        held
    );
    assert_eq!(net.last().builders[0].lost, Some("deadline"));
    assert!(net.built_locally(report.number));
    net.builders[0].faults().release_hangs();
}

#[tokio::test]
async fn a_builder_hanging_on_every_forkchoice_update_still_gets_every_block() {
    let blocks = 12;
    let mut net = Net::start(spec(Fork::Isthmus), &["builder"], |config| {
        config.builders[0].timeout = Duration::from_secs(1);
        config.builder_policy.payload_deadline = Duration::from_millis(20);
    })
    .await;
    net.step().await;
    let log = net.builders[0].log();
    let (fcus_before, blocks_before) = (
        log.count("engine_forkchoiceUpdatedV3"),
        log.count("engine_newPayload"),
    );
    net.builders[0]
        .faults()
        .add(Fault::Hang.on("engine_forkchoiceUpdatedV3"));
    // Each block queues a forkchoice update with attributes, a newPayload and a forkchoice update
    // on the builder's lane; the update the builder holds is given up at the next attributes, and
    // an update that waited out the builder timeout is dropped unsent.
    let mut reasons = Vec::new();
    for _ in 0..blocks {
        net.step().await;
        reasons.push(net.last().builders[0].lost.unwrap_or("won"));
    }
    net.builders[0]
        .log()
        .wait_for_count("engine_newPayload", blocks_before + blocks)
        .await;
    let fcus = net.builders[0].log().count("engine_forkchoiceUpdatedV3") - fcus_before;
    // op-node sent two forkchoice updates a block: at most one a block was ever held by the
    // builder, and none was replayed as a backlog.
    assert!(
        fcus <= blocks + 1,
        "{fcus} of {} forkchoice updates reached the builder",
        2 * blocks
    );
    // Three held in a row, it is no longer asked while it holds one (until the builder timeout
    // ends that one): getPayload does not wait for it.
    assert!(reasons.contains(&"skipped_unanswered"), "{reasons:?}");
    assert!(!reasons.contains(&"won"), "{reasons:?}");
    net.builders[0].faults().clear();
    net.builders[0].faults().release_hangs();
    // Its answer to the update it held puts it back.
    let mut won = false;
    for _ in 0..4 {
        let report = net.step().await;
        won |= net.built_by(report.number, "builder");
    }
    assert!(won, "the builder wins again once it answers");
}

#[tokio::test]
async fn boost_sync_relays_every_new_payload_and_forkchoice_in_order() {
    let mut net = Net::start(spec(Fork::Isthmus), &["builder"], |_| {}).await;
    for _ in 0..20 {
        net.step().await;
    }
    let builder = &net.builders[0];
    let head = net.geth.head();
    builder
        .log()
        .wait_for(|entries| {
            entries
                .iter()
                .filter(|e| e.method == "engine_forkchoiceUpdatedV3" && !has_attributes(e))
                .count()
                >= 20
        })
        .await;
    let chain_update = |e: &&switchyard_sim::LogEntry| {
        e.method.starts_with("engine_newPayload")
            || (e.method.starts_with("engine_forkchoice") && !has_attributes(e))
    };
    let relayed: Vec<(String, String)> = builder
        .log()
        .entries()
        .iter()
        .filter(chain_update)
        .map(|e| (e.method.clone(), e.params_json().to_string()))
        .collect();
    // What op-node sent op-geth: without switchyard's own validation calls (their id says so).
    let sent: Vec<(String, String)> = net
        .geth
        .log()
        .entries()
        .iter()
        .filter(chain_update)
        .filter(|e| e.id != "\"switchyard\"")
        .map(|e| (e.method.clone(), e.params_json().to_string()))
        .collect();
    assert_eq!(
        relayed.len(),
        40,
        "20 newPayloads and 20 forkchoice updates"
    );
    assert_eq!(relayed, sent, "the same calls, in the same order");
    assert_eq!(
        builder.head().hash,
        head.hash,
        "the builder follows the tip"
    );
}

#[tokio::test]
async fn no_tx_pool_blocks_never_reach_the_builder() {
    let mut net = Net::start(spec(Fork::Isthmus), &["builder"], |_| {}).await;
    net.seq.no_tx_pool = true;
    for _ in 0..5 {
        let report = net.step().await;
        assert!(net.built_locally(report.number));
        assert_eq!(net.last().source, Source::Local);
    }
    let with_attributes = net.builders[0]
        .log()
        .calls("engine_forkchoiceUpdated")
        .iter()
        .filter(|e| has_attributes(e))
        .count();
    assert_eq!(with_attributes, 0);
    assert_eq!(net.builders[0].log().count("engine_getPayload"), 0);
    // The builder still follows the chain, so it builds as soon as op-node lets it.
    net.seq.no_tx_pool = false;
    let report = net.step().await;
    assert!(net.built_by(report.number, "builder"));
}

#[tokio::test]
async fn disabled_mode_sends_nothing_engine_related_and_dry_run_returns_local() {
    let mut net = Net::start(spec(Fork::Isthmus), &["builder"], |config| {
        config.builder_policy.mode = ExecutionMode::Disabled;
    })
    .await;
    for _ in 0..3 {
        let report = net.step().await;
        assert!(net.built_locally(report.number));
    }
    assert_eq!(
        net.builders[0].log().count("engine_"),
        0,
        "nothing engine-related"
    );

    let mut net = Net::start(spec(Fork::Isthmus), &["builder"], |config| {
        config.builder_policy.mode = ExecutionMode::DryRun;
    })
    .await;
    for _ in 0..5 {
        let report = net.step().await;
        assert!(
            net.built_locally(report.number),
            "dry run returns op-geth's block"
        );
        let decision = net.last();
        assert_eq!(decision.source, Source::Local);
        assert_eq!(
            decision.builders[0].lost,
            Some("dry_run"),
            "the builder's block was valid and recorded"
        );
        assert!(
            decision.builders[0].stages.new_payload.is_some(),
            "and validated"
        );
    }
}

#[tokio::test]
async fn two_builders_the_policy_picks_and_one_failing_does_not_hurt_the_other() {
    let mut net = Net::start_with(spec(Fork::Isthmus), &[("small", 1), ("big", 5)], |config| {
        config.builder_policy.selection = SelectionPolicy::MostGas;
    })
    .await;
    // "big" adds more transactions of its own: more gas used.
    for _ in 0..3 {
        net.builders[1].faults().clear();
        let report = net.step().await;
        let decision = net.last();
        let gas: Vec<Option<u64>> = decision.builders.iter().map(|b| b.gas_used).collect();
        let winner = decision.winner().expect("a builder won").to_owned();
        let (best, _) = gas
            .iter()
            .enumerate()
            .max_by_key(|(_, g)| **g)
            .expect("two");
        assert_eq!(winner, decision.builders[best].builder.as_ref(), "{gas:?}");
        assert_eq!(winner, "big", "five transactions of its own: the most gas");
        assert!(net.built_by(report.number, &winner));
    }
    net.builders[1]
        .faults()
        .add(Fault::HttpStatus { status: 502 }.on("engine_getPayloadV4"));
    for _ in 0..3 {
        let report = net.step().await;
        let decision = net.last();
        assert_eq!(decision.winner(), Some("small"), "{decision:?}");
        assert_eq!(decision.builders[1].lost, Some("http_status"));
        assert!(net.built_by(report.number, "small"));
    }
}

#[tokio::test]
async fn highest_value_policy() {
    let mut net = Net::start_with(spec(Fork::Isthmus), &[("a", 1), ("b", 3)], |config| {
        config.builder_policy.selection = SelectionPolicy::HighestValue;
    })
    .await;
    net.step().await;
    let decision = net.last();
    let values: Vec<_> = decision.builders.iter().map(|b| b.block_value).collect();
    let winner = decision.winner().expect("a builder");
    let best = decision
        .builders
        .iter()
        .max_by_key(|b| b.block_value)
        .expect("two");
    assert_eq!(winner, best.builder.as_ref(), "{values:?}");
}

#[tokio::test]
async fn the_admin_endpoint_needs_its_own_token_and_switches_the_mode() {
    let admin_secret = random_secret();
    let mut net = Net::start(spec(Fork::Isthmus), &["builder"], |config| {
        config.admin = Some(switchyard::config::Admin {
            addr: "127.0.0.1:0".parse().expect("addr"),
            secret: JwtSecret::from_hex(&secret_hex(&admin_secret)).expect("secret"),
        });
    })
    .await;
    let url = format!("http://{}", net.proxy.admin.expect("admin on"));
    let set = |mode: &str| {
        serde_json::to_vec(&json!({"jsonrpc":"2.0","id":1,"method":"switchyard_setExecutionMode","params":[{"execution_mode": mode}]}))
            .expect("json")
    };
    let anonymous = EngineClient::new(&url, admin_secret).expect("client");
    let (status, _) = anonymous
        .post(set("disabled").into(), None)
        .await
        .expect("post");
    assert_eq!(status, http::StatusCode::UNAUTHORIZED);
    let wrong = format!("Bearer {}", token(&net.geth.secret(), 0));
    let (status, _) = anonymous
        .post(set("disabled").into(), Some(&wrong))
        .await
        .expect("post");
    assert_eq!(
        status,
        http::StatusCode::UNAUTHORIZED,
        "op-geth's secret is not the admin's"
    );
    net.step().await;
    assert_eq!(
        net.last().source,
        Source::Builder("builder".into()),
        "still enabled"
    );

    let admin = EngineClient::new(&url, admin_secret).expect("client");
    let mode: Value = admin
        .call(
            "switchyard_setExecutionMode",
            json!([{"execution_mode": "dry-run"}]),
        )
        .await
        .expect("set");
    assert_eq!(mode["execution_mode"], "dry-run");
    let report = net.step().await;
    assert!(net.built_locally(report.number));
    assert_eq!(net.last().builders[0].lost, Some("dry_run"));
    // rollup-boost's spelling works too.
    let mode: Value = admin
        .call(
            "debug_setExecutionMode",
            json!([{"execution_mode": "enabled"}]),
        )
        .await
        .expect("set");
    assert_eq!(mode["execution_mode"], "enabled");
    let report = net.step().await;
    assert!(net.built_by(report.number, "builder"));
    let got: Value = admin
        .call("debug_getExecutionMode", json!([]))
        .await
        .expect("get");
    assert_eq!(got["execution_mode"], "enabled");
    let builders: Value = admin
        .call("switchyard_builders", json!([]))
        .await
        .expect("builders");
    assert_eq!(builders[0]["name"], "builder");
    assert_eq!(builders[0]["health"], "synced");
    assert!(
        admin
            .call::<Value>("switchyard_setExecutionMode", json!(["sideways"]))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn the_circuit_breaker_trips_and_recovers() {
    let mut net = Net::start(spec(Fork::Isthmus), &["builder"], |config| {
        config.builder_policy.breaker_threshold = 2;
        config.builder_policy.breaker_cooldown = 3;
    })
    .await;
    net.step().await;
    net.builders[0].faults().add(
        Fault::Tamper {
            tamper: Tamper::WrongFeeRecipient,
        }
        .on("engine_getPayloadV4")
        .times(2),
    );
    for _ in 0..2 {
        let report = net.step().await;
        assert_eq!(net.last().builders[0].lost, Some("fee_recipient"));
        assert!(net.built_locally(report.number));
    }
    // Tripped: valid payloads, but the builder runs dry for the cool-down.
    let mut dry = 0;
    let mut report = net.step().await;
    while net.last().builders[0].lost == Some("circuit_open") {
        assert!(net.built_locally(report.number));
        dry += 1;
        report = net.step().await;
    }
    assert_eq!(
        dry, 2,
        "three blocks of cool-down, the first spent on the tripping block"
    );
    assert!(
        net.built_by(report.number, "builder"),
        "recovered: {:?}",
        net.last()
    );
}

/// A builder down for some blocks gets every transaction sent meanwhile, in order, when it is
/// back and synced: no nonce gap for a builder with no peers of its own.
#[tokio::test]
async fn transactions_sent_while_a_builder_is_down_reach_it_in_order_when_it_returns() {
    let mut net = Net::start(spec(Fork::Isthmus), &["builder"], |config| {
        config.builder_policy.health_interval = Duration::from_millis(20);
    })
    .await;
    net.step().await;
    net.builders[0].stop().await;
    crate::harness::healthz_until(
        net.proxy.addr,
        http::StatusCode::SERVICE_UNAVAILABLE,
        |body| body["detail"]["builders"][0]["health"] == "unreachable",
    )
    .await;
    let raws: Vec<_> = (0..5)
        .map(|nonce| switchyard_sim::tx::transfer(net.spec.chain_id, 77, nonce, 0))
        .collect();
    for (i, raw) in raws.iter().enumerate() {
        net.seq
            .client()
            .call::<Value>("eth_sendRawTransaction", json!([raw]))
            .await
            .expect("op-geth takes it");
        // Blocks go on while the builder is away.
        if i % 2 == 1 {
            net.step().await;
        }
    }
    let before = net.builders[0].log().count("eth_sendRawTransaction");
    net.builders[0].restart().await.expect("restart");
    // Boost sync brings it to the head; once the head check sees it synced, the held
    // transactions follow, oldest first.
    for _ in 0..3 {
        net.step().await;
    }
    let delivered = net.builders[0]
        .log()
        .wait_for_count("eth_sendRawTransaction", before + raws.len());
    // (The bound only turns a missing delivery into a failure instead of a hang.)
    tokio::time::timeout(Duration::from_secs(10), delivered)
        .await
        .expect("every held transaction reached the builder");
    let sent: Vec<Value> = all_params(&net.builders[0], "eth_sendRawTransaction")
        .into_iter()
        .skip(before)
        .collect();
    let expected: Vec<Value> = raws.iter().map(|raw| json!([raw])).collect();
    assert_eq!(sent, expected, "in the order they were sent");
}

#[tokio::test]
async fn transactions_are_mirrored_to_the_builder() {
    let mut net = Net::start(spec(Fork::Isthmus), &["builder"], |_| {}).await;
    let raw = switchyard_sim::tx::transfer(net.spec.chain_id, 42, 0, 30);
    let hash: Value = net
        .seq
        .client()
        .call("eth_sendRawTransaction", json!([raw]))
        .await
        .expect("send");
    assert_eq!(hash, json!(switchyard_sim::tx::hash(&raw)));
    net.builders[0]
        .log()
        .wait_for_count("eth_sendRawTransaction", 1)
        .await;
    let report = net.step().await;
    assert!(net.built_by(report.number, "builder"));
    let block = net.geth.head();
    assert!(
        block.transactions.contains(&raw),
        "the builder included the mirrored transaction"
    );
}

/// The params of each of the builder's calls of `method`, in order.
fn all_params(sim: &switchyard_sim::EngineSim, method: &str) -> Vec<Value> {
    sim.log()
        .calls(method)
        .iter()
        .map(|e| e.params_json())
        .collect()
}

/// The params of the builder's last call of `method`.
fn last_params(sim: &switchyard_sim::EngineSim, method: &str) -> Option<Value> {
    sim.log().calls(method).last().map(|e| e.params_json())
}

#[tokio::test]
async fn miner_settings_reach_the_builder_and_are_replayed_after_an_outage() {
    let mut net = Net::start(spec(Fork::Isthmus), &["builder"], |config| {
        config.builder_policy.health_interval = Duration::from_millis(20);
    })
    .await;
    let client = net.seq.client().clone();
    let set = |method: &'static str, params: Value| {
        let client = client.clone();
        async move {
            let answer: Value = client.call(method, params).await.expect("op-geth answers");
            assert_eq!(answer, json!(true), "{method}");
        }
    };

    // The batcher throttles: op-geth and the builder both get it.
    set("miner_setMaxDASize", json!(["0x1000", "0x20000"])).await;
    net.builders[0]
        .log()
        .wait_for_count("miner_setMaxDASize", 1)
        .await;
    assert_eq!(net.geth.log().count("miner_setMaxDASize"), 1);

    // Settings change while the builder is down; it comes back with its own defaults.
    net.builders[0].stop().await;
    set("miner_setMaxDASize", json!(["0x800", "0x10000"])).await;
    set("miner_setGasLimit", json!(["0x1c9c380"])).await;
    net.builders[0].restart().await.expect("restart");

    // The health poll sees it back and replays the latest of each setting, not the history.
    // (The bound only turns a missing replay into a failure instead of a hang.)
    let replayed = net.builders[0].log().wait_for(|entries| {
        entries.iter().any(|e| e.method == "miner_setGasLimit")
            && entries
                .iter()
                .rev()
                .find(|e| e.method == "miner_setMaxDASize")
                .is_some_and(|e| e.params_json() == json!(["0x800", "0x10000"]))
    });
    tokio::time::timeout(Duration::from_secs(10), replayed)
        .await
        .expect("settings replayed after the outage");
    assert_eq!(
        last_params(&net.builders[0], "miner_setGasLimit"),
        Some(json!(["0x1c9c380"]))
    );
    assert_eq!(net.geth.log().count("miner_setMaxDASize"), 2);
    // Blocks go on as before.
    let report = net.step().await;
    assert!(net.built_by(report.number, "builder"));
}

/// A setting op-geth refused (a DA limit or gas limit the sequencer does not hold) never reaches
/// a builder, and is not replayed to one after an outage: builders follow what op-geth accepted.
#[tokio::test]
async fn a_miner_setting_op_geth_refuses_never_reaches_a_builder() {
    let mut net = Net::start(spec(Fork::Isthmus), &["builder"], |config| {
        config.builder_policy.health_interval = Duration::from_millis(20);
    })
    .await;
    net.geth.faults().add(
        Fault::RpcError {
            code: -32602,
            message: "invalid max DA size".into(),
        }
        .on("miner_setMaxDASize")
        .times(1),
    );
    let client = net.seq.client().clone();
    let refused = client
        .call::<Value>("miner_setMaxDASize", json!(["0x1", "0x1"]))
        .await;
    assert!(refused.is_err(), "the batcher sees op-geth's refusal");
    let accepted: Value = client
        .call("miner_setMaxDASize", json!(["0x1000", "0x20000"]))
        .await
        .expect("op-geth accepts");
    assert_eq!(accepted, json!(true));
    net.builders[0]
        .log()
        .wait_for_count("miner_setMaxDASize", 1)
        .await;
    assert_eq!(
        all_params(&net.builders[0], "miner_setMaxDASize"),
        [json!(["0x1000", "0x20000"])]
    );

    // After an outage the builder gets the accepted setting again, never the refused one.
    net.builders[0].stop().await;
    crate::harness::healthz_until(
        net.proxy.addr,
        http::StatusCode::SERVICE_UNAVAILABLE,
        |body| body["detail"]["builders"][0]["health"] == "unreachable",
    )
    .await;
    net.builders[0].restart().await.expect("restart");
    let replayed = net.builders[0]
        .log()
        .wait_for_count("miner_setMaxDASize", 2);
    tokio::time::timeout(Duration::from_secs(10), replayed)
        .await
        .expect("the accepted setting replayed");
    assert_eq!(
        all_params(&net.builders[0], "miner_setMaxDASize"),
        [json!(["0x1000", "0x20000"]), json!(["0x1000", "0x20000"])]
    );
}

#[tokio::test]
async fn builder_blocks_win_at_zero_block_time_with_a_50ms_builder() {
    // The peer's `fcu_no_block_time_delay`: every builder call takes 50 ms, and op-node asks for
    // the payload right after its forkchoice update. The builder's lane holds the previous
    // block's boost sync ahead of the attributes (ordered, as the builder needs them), so its
    // payload is ready about four calls (~200 ms) later: within a 1 s deadline even on a busy CI
    // machine.
    let mut net = Net::start(spec(Fork::Isthmus), &["builder"], |config| {
        config.builder_policy.payload_deadline = Duration::from_secs(1);
    })
    .await;
    net.builders[0]
        .faults()
        .add(Fault::Delay { ms: 50 }.everywhere());
    for _ in 0..30 {
        let report = net.step().await;
        assert!(
            net.built_by(report.number, "builder"),
            "block {}: {:?}",
            report.number,
            net.last()
        );
    }
}

#[tokio::test]
async fn big_payloads_from_two_builders_are_checked_off_the_event_loop() {
    // Four hundred 200-byte transactions a block: about 170 KB of JSON, past the size checked
    // inline, so both builders' payloads are decoded and hashed on blocking threads, no more than
    // the cores at once; from the second block on, each builder (its last payload big) is asked
    // for its payload only once a check slot is free.
    let configs = [("a", 1), ("b", 2)]
        .into_iter()
        .map(|(name, extra_txs)| {
            let mut config = switchyard_sim::SimConfig::builder(spec(Fork::Isthmus)).named(name);
            config.profile = switchyard_sim::Profile::Builder { extra_txs };
            config.filler = Some((400, 200));
            (config, switchyard_layers::tls::TlsOptions::default())
        })
        .collect();
    let mut net = Net::start_custom(spec(Fork::Isthmus), configs, |config| {
        config.builder_policy.selection = SelectionPolicy::MostGas;
        config.builder_policy.breaker_threshold = 0;
    })
    .await;
    for _ in 0..3 {
        let report = net.step().await;
        let decision = net.last();
        assert_eq!(decision.winner(), Some("b"), "{decision:?}");
        for builder in &decision.builders {
            // Both valid: one chosen, the other outvoted.
            let expected = if builder.builder.as_ref() == "b" {
                None
            } else {
                Some("policy")
            };
            assert_eq!(builder.lost, expected, "{decision:?}");
            assert!(
                builder.gas_used.is_some_and(|gas| gas > 400 * 21_000),
                "a big block: {decision:?}"
            );
        }
        assert!(net.built_by(report.number, "b"));
    }
    // A big payload with a wrong block hash is caught as a small one is.
    net.builders[1].faults().add(
        Fault::Tamper {
            tamper: Tamper::WrongBlockHash,
        }
        .on("engine_getPayloadV4")
        .times(1),
    );
    let report = net.step().await;
    let decision = net.last();
    assert_eq!(
        decision.builders[1].lost,
        Some("block_hash"),
        "{decision:?}"
    );
    assert_eq!(decision.winner(), Some("a"), "{decision:?}");
    assert!(net.built_by(report.number, "a"));
}
