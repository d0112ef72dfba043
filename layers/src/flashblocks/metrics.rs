//! Metrics of the flashblocks streams. Every name is `switchyard_flashblocks_*`; labels come
//! from closed sets (builder names from configuration, fixed reason labels).

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};

/// Describes every flashblocks metric to the installed recorder.
pub fn describe() {
    describe_counter!(
        "switchyard_flashblocks_received_total",
        "Flashblocks read off a builder's stream"
    );
    describe_counter!(
        "switchyard_flashblocks_accepted_total",
        "Flashblocks accepted: in order, for op-node's current job, every check passed"
    );
    describe_counter!(
        "switchyard_flashblocks_dropped_total",
        "Flashblocks (or frames) dropped, by reason"
    );
    describe_counter!(
        "switchyard_flashblocks_published_total",
        "Flashblocks published to subscribers as preconfirmations"
    );
    describe_gauge!(
        "switchyard_flashblocks_subscribers",
        "Subscribers connected to the outbound stream"
    );
    describe_counter!(
        "switchyard_flashblocks_subscriber_disconnects_total",
        "Subscribers disconnected, by reason (slow: fell behind its queue; closed; refused: over the cap)"
    );
    describe_histogram!(
        "switchyard_flashblocks_publish_latency_seconds",
        "From a flashblock's frame read to its publication to every subscriber's queue"
    );
    describe_counter!(
        "switchyard_flashblocks_preconfirmations_total",
        "Blocks with published flashblocks, by publishing builder, outcome (kept: the returned block holds them all, in order; broken) and reason"
    );
    describe_gauge!(
        "switchyard_flashblocks_stream_up",
        "1 while a builder's flashblocks stream is connected"
    );
    describe_counter!(
        "switchyard_flashblocks_reconnects_total",
        "Connections made to a builder's flashblocks stream after the first"
    );
}

pub(crate) fn received(builder: &str) {
    counter!("switchyard_flashblocks_received_total", "builder" => builder.to_owned()).increment(1);
}

pub(crate) fn accepted(builder: &str) {
    counter!("switchyard_flashblocks_accepted_total", "builder" => builder.to_owned()).increment(1);
}

pub(crate) fn dropped(builder: &str, reason: &'static str) {
    counter!("switchyard_flashblocks_dropped_total", "builder" => builder.to_owned(), "reason" => reason)
        .increment(1);
}

pub(crate) fn published(latency: std::time::Duration) {
    counter!("switchyard_flashblocks_published_total").increment(1);
    histogram!("switchyard_flashblocks_publish_latency_seconds").record(latency.as_secs_f64());
}

pub(crate) fn subscribers(count: usize) {
    gauge!("switchyard_flashblocks_subscribers").set(count as f64);
}

pub(crate) fn subscriber_disconnect(reason: &'static str) {
    counter!("switchyard_flashblocks_subscriber_disconnects_total", "reason" => reason)
        .increment(1);
}

pub(crate) fn preconfirmation(builder: &str, outcome: &'static str, reason: &'static str) {
    counter!("switchyard_flashblocks_preconfirmations_total", "builder" => builder.to_owned(), "outcome" => outcome, "reason" => reason)
        .increment(1);
}

pub(crate) fn stream_up(builder: &str, up: bool) {
    gauge!("switchyard_flashblocks_stream_up", "builder" => builder.to_owned()).set(if up {
        1.0
    } else {
        0.0
    });
}

pub(crate) fn reconnect(builder: &str) {
    counter!("switchyard_flashblocks_reconnects_total", "builder" => builder.to_owned())
        .increment(1);
}
