//! Panics contained: a bug that panics costs one candidate or one call, never op-node's block, a
//! connection or the daemon.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use switchyard_sim::{DriverError, Fork};

use crate::{
    harness::{Net, get, spec},
    metrics::{series, value},
};

fn metrics_on(config: &mut switchyard::Config) {
    config.metrics = Some("127.0.0.1:0".parse().expect("addr"));
}

async fn panics(net: &Net, place: &str) -> f64 {
    let url = format!("http://{}/metrics", net.proxy.metrics.expect("metrics"));
    let (_, page) = get(&url).await;
    value(
        &series(std::str::from_utf8(&page).expect("utf-8")),
        "switchyard_panics_total",
        &[("where", place)],
    )
}

#[tokio::test]
async fn a_panic_on_one_builders_payload_costs_only_that_candidate() {
    let mut net = Net::start(
        spec(Fork::Isthmus),
        &["panicky-builder", "steady-builder"],
        |config| {
            metrics_on(config);
            config.payload_check = Some(Arc::new(|builder, _payload| {
                // A bug in a check, as a stranger's or ours could have.
                assert_ne!(
                    builder, "panicky-builder",
                    "a bug on this builder's payload"
                );
                true
            }));
        },
    )
    .await;
    let before = panics(&net, "builder_payload").await;
    for _ in 0..3 {
        let report = net.step().await;
        assert!(net.built_by(report.number, "steady-builder"));
        let decision = net.last();
        let lost: Vec<_> = decision
            .builders
            .iter()
            .map(|o| (o.builder.to_string(), o.lost))
            .collect();
        assert_eq!(
            lost,
            [
                ("panicky-builder".to_owned(), Some("panic")),
                ("steady-builder".to_owned(), None)
            ]
        );
    }
    assert_eq!(panics(&net, "builder_payload").await - before, 3.0);
}

#[tokio::test]
async fn a_panic_elsewhere_on_the_request_path_is_a_json_rpc_error_and_the_daemon_lives_on() {
    let armed = Arc::new(AtomicBool::new(true));
    let trigger = armed.clone();
    let mut net = Net::start(spec(Fork::Isthmus), &["builder"], |config| {
        metrics_on(config);
        // The decision sink runs on op-node's getPayload, after the choice: a panic there has
        // no candidate to cost, only the call.
        config.decision_sink = Some(Arc::new(move |_| {
            assert!(
                !trigger.swap(false, Ordering::SeqCst),
                "a bug after the choice"
            );
        }));
    })
    .await;
    let before = panics(&net, "request").await;
    match net.seq.step().await {
        Err(DriverError::Http { status, body, .. }) => {
            assert_eq!(status, http::StatusCode::INTERNAL_SERVER_ERROR);
            let answer: serde_json::Value = serde_json::from_str(&body).expect("JSON-RPC");
            assert_eq!(answer["error"]["code"], -32603, "{body}");
            assert_eq!(answer["id"], serde_json::Value::Null, "{body}");
        }
        other => panic!("expected the panicked call's JSON-RPC error, got {other:?}"),
    }
    assert_eq!(panics(&net, "request").await - before, 1.0);
    // The daemon is alive and the chain goes on: the slot's next try gets a validated block.
    let report = net.step().await;
    assert!(net.built_by(report.number, "builder"));
}
