//! Graceful shutdown: a request in flight when the signal comes still completes.

use switchyard_sim::{EngineClient, Fault, Fork};

use crate::harness::{Switchyard, call, config_for, json, op_geth, spec};

#[tokio::test]
async fn in_flight_request_completes_during_shutdown() {
    let l2 = op_geth(spec(Fork::Isthmus)).await;
    let mut proxy = Switchyard::start(config_for(&l2)).await;
    let client = proxy.client(l2.secret());
    l2.faults().add(Fault::Hang.on("eth_chainId"));
    let in_flight = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .post_signed(call(1, "eth_chainId", serde_json::json!([])))
                .await
        })
    };
    l2.log().wait_for_count("eth_chainId", 1).await;

    proxy.begin_shutdown();
    // New connections are refused once the listener is closed.
    let fresh = EngineClient::new(&proxy.url(), l2.secret()).expect("client");
    let mut refused = false;
    for _ in 0..1_000 {
        if fresh
            .post_signed(call(2, "net_version", serde_json::json!([])))
            .await
            .is_err()
        {
            refused = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(refused, "the listener closes on shutdown");
    assert!(!in_flight.is_finished());

    l2.faults().clear();
    l2.faults().release_hangs();
    let (status, answer) = in_flight.await.expect("join").expect("completed");
    assert_eq!(status, http::StatusCode::OK);
    assert_eq!(json(&answer)["result"], "0x385");
    proxy.stop().await;
}
