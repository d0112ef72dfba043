//! The decisions show up in `/metrics`, with the right labels.

use std::collections::HashMap;

use switchyard_sim::{Fault, Fork, Tamper};

use crate::harness::{Net, get, spec};

/// `name{labels} value` lines of a Prometheus text page, by the full series text.
pub fn series(page: &str) -> HashMap<String, f64> {
    page.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect()
}

pub fn value(page: &HashMap<String, f64>, name: &str, labels: &[(&str, &str)]) -> f64 {
    page.iter()
        .filter(|(series, _)| {
            series.starts_with(&format!("{name}{{"))
                && labels
                    .iter()
                    .all(|(k, v)| series.contains(&format!("{k}=\"{v}\"")))
        })
        .map(|(_, value)| value)
        .sum()
}

#[tokio::test]
async fn decision_counters_move_with_the_right_labels() {
    // A name no other test uses: the recorder is process-wide.
    let name = "metrics-probe-builder";
    let mut net = Net::start(spec(Fork::Isthmus), &[name], |config| {
        config.metrics = Some("127.0.0.1:0".parse().expect("addr"));
    })
    .await;
    let url = format!(
        "http://{}/metrics",
        net.proxy.metrics.expect("metrics port")
    );
    for _ in 0..3 {
        net.step().await;
    }
    net.builders[0].faults().add(
        Fault::Tamper {
            tamper: Tamper::WrongFeeRecipient,
        }
        .on("engine_getPayloadV4")
        .times(2),
    );
    for _ in 0..2 {
        net.step().await;
    }
    net.builders[0].faults().add(
        Fault::HttpStatus { status: 503 }
            .on("engine_getPayloadV4")
            .times(1),
    );
    net.step().await;

    let (status, page) = get(&url).await;
    assert_eq!(status, http::StatusCode::OK);
    let page = series(&String::from_utf8_lossy(&page));
    let decisions = "switchyard_payload_decisions_total";
    assert!(
        value(
            &page,
            decisions,
            &[("source", "builder"), ("builder", name)]
        ) >= 3.0
    );
    let lost = "switchyard_payload_candidates_lost_total";
    assert_eq!(
        value(
            &page,
            lost,
            &[("builder", name), ("reason", "fee_recipient")]
        ),
        2.0
    );
    assert_eq!(
        value(&page, lost, &[("builder", name), ("reason", "http_status")]),
        1.0
    );
    let stages = "switchyard_payload_stage_seconds_count";
    assert!(
        value(
            &page,
            stages,
            &[("builder", name), ("stage", "get_payload")]
        ) >= 6.0
    );
    assert!(
        value(
            &page,
            stages,
            &[("builder", name), ("stage", "new_payload")]
        ) >= 3.0
    );
    let calls = "switchyard_rpc_requests_total";
    assert!(
        value(
            &page,
            calls,
            &[
                ("upstream", name),
                ("method", "engine_getPayloadV4"),
                ("outcome", "http_error")
            ]
        ) >= 1.0
    );
    assert!(
        value(
            &page,
            calls,
            &[
                ("upstream", name),
                ("method", "engine_newPayloadV4"),
                ("outcome", "ok")
            ]
        ) >= 6.0
    );
    assert!(value(&page, "switchyard_builder_synced", &[("builder", name)]) >= 0.0);
    // Each builder payload chosen was built on a forkchoice update the lane saw answered first.
    assert!(
        value(
            &page,
            "switchyard_builder_lane_calls_total",
            &[
                ("builder", name),
                ("lane", "engine"),
                ("kind", "forkchoice"),
                ("outcome", "ok")
            ]
        ) >= 3.0
    );
    assert!(page.keys().any(|k| k.starts_with("switchyard_build_info{")));
    assert_eq!(
        value(&page, "switchyard_execution_mode", &[("mode", "enabled")]),
        1.0
    );
}

#[tokio::test]
async fn the_readme_documents_every_metric_switchyard_exports() {
    let mut net = Net::start(spec(Fork::Isthmus), &["readme-metrics-builder"], |config| {
        config.metrics = Some("127.0.0.1:0".parse().expect("addr"));
    })
    .await;
    net.step().await;
    let (_, page) = get(&format!(
        "http://{}/metrics",
        net.proxy.metrics.expect("metrics port")
    ))
    .await;
    let page = String::from_utf8_lossy(&page);
    let readme = include_str!("../../README.md");
    let exported: std::collections::BTreeSet<&str> = page
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_whitespace().next())
        .filter(|name| name.starts_with("switchyard_"))
        .collect();
    assert!(exported.len() >= 15, "{exported:?}");
    let missing: Vec<&&str> = exported
        .iter()
        .filter(|name| !readme.contains(&format!("`{name}`")))
        .collect();
    assert!(missing.is_empty(), "undocumented metrics: {missing:?}");
}
