//! op-geth down, hanging, and back: clear errors, no hang, recovery without a restart.

use std::time::Duration;

use switchyard_layers::jsonrpc::code;
use switchyard_sim::{Fault, Fork};

use crate::harness::{Switchyard, call, config_for, json, op_geth, spec};

#[tokio::test]
async fn op_geth_down_then_back() {
    let mut l2 = op_geth(spec(Fork::Isthmus)).await;
    let proxy = Switchyard::start(config_for(&l2)).await;
    let client = proxy.client(l2.secret());
    let chain_id = || client.post_signed(call(11, "eth_chainId", serde_json::json!([])));
    assert_eq!(json(&chain_id().await.expect("up").1)["result"], "0x385");

    l2.stop().await;
    let answer = json(&chain_id().await.expect("an answer, not a hang").1);
    assert_eq!(answer["id"], 11);
    assert_eq!(answer["error"]["code"], code::UPSTREAM_UNREACHABLE);
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(message.starts_with("upstream l2 unreachable"), "{message}");

    l2.restart().await.expect("restart");
    assert_eq!(json(&chain_id().await.expect("back").1)["result"], "0x385");
}

#[tokio::test]
async fn a_hanging_op_geth_times_out_with_a_clear_error() {
    let l2 = op_geth(spec(Fork::Isthmus)).await;
    let mut config = config_for(&l2);
    config.l2.timeout = Duration::from_millis(200);
    let proxy = Switchyard::start(config).await;
    let client = proxy.client(l2.secret());
    l2.faults().add(Fault::Hang.on("eth_chainId").times(1));
    let (_, answer) = client
        .post_signed(call(5, "eth_chainId", serde_json::json!([])))
        .await
        .expect("answer");
    let answer = json(&answer);
    assert_eq!(answer["error"]["code"], code::UPSTREAM_TIMEOUT);
    assert_eq!(
        answer["error"]["message"],
        "upstream l2 timed out after 200ms"
    );
    l2.faults().release_hangs();
    let (_, answer) = client
        .post_signed(call(6, "eth_chainId", serde_json::json!([])))
        .await
        .expect("answer");
    assert_eq!(json(&answer)["result"], "0x385");
}

#[tokio::test]
async fn broken_answers_from_op_geth_become_errors_not_half_responses() {
    let l2 = op_geth(spec(Fork::Isthmus)).await;
    let proxy = Switchyard::start(config_for(&l2)).await;
    let client = proxy.client(l2.secret());
    l2.faults()
        .add(Fault::CloseConnection.on("eth_chainId").times(1));
    let (_, answer) = client
        .post_signed(call(8, "eth_chainId", serde_json::json!([])))
        .await
        .expect("answer");
    let answer = json(&answer);
    assert_eq!(answer["error"]["code"], code::UPSTREAM_BAD_RESPONSE);
    assert_eq!(answer["id"], 8);
    // A well-framed 503 is op-geth's answer and passes through as it is.
    l2.faults()
        .add(Fault::HttpStatus { status: 503 }.on("eth_chainId").times(1));
    let (status, _) = client
        .post_signed(call(9, "eth_chainId", serde_json::json!([])))
        .await
        .expect("answer");
    assert_eq!(status, http::StatusCode::SERVICE_UNAVAILABLE);
}
