//! The simulator's own cost for a ~5,000-transaction (~1 MiB) block: building, hashing and
//! serving it (FCU with attributes + getPayloadV4), and validating it (newPayloadV4).
//!
//! Both must stay well under 5 ms, so that benchmarks of switchyard never measure the simulator.
//! Calls are made in-process ([`EngineSim::call`]): no HTTP, no JWT, only the simulator's work.

// criterion_group! generates an undocumented function; a bench reports on the terminal.
#![allow(missing_docs, clippy::print_stderr)]

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use switchyard_sim::{
    ChainSpec, EngineSim, Fork, Forks, Sequencer, SequencerConfig, SimConfig, tx,
};

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let spec = ChainSpec {
        forks: Forks::through(Fork::Isthmus),
        gas_limit: 200_000_000,
        ..Default::default()
    };
    let (sim, seq) = runtime.block_on(async {
        let sim = EngineSim::spawn(SimConfig::op_geth(spec.clone()))
            .await
            .expect("sim");
        let seq = Sequencer::connect(&sim.url(), sim.secret(), SequencerConfig::new(spec.clone()))
            .await
            .expect("seq");
        (sim, seq)
    });
    for nonce in 0..5_000 {
        let raw = serde_json::to_vec(&json!([tx::transfer(
            spec.chain_id,
            nonce % 97,
            nonce,
            100
        )]))
        .expect("json");
        sim.call("eth_sendRawTransaction", &raw).expect("send");
    }
    let mut attrs = seq.next_attributes();
    let head = sim.head().hash;
    let state = json!({"headBlockHash": head, "safeBlockHash": head, "finalizedBlockHash": head});
    let mut randao = 0u64;
    let mut build = || {
        randao += 1;
        attrs.payload_attributes.prev_randao =
            alloy_primitives::B256::from(alloy_primitives::U256::from(randao));
        let params = serde_json::to_vec(&json!([state, attrs])).expect("json");
        let updated: Value = serde_json::from_slice(
            &sim.call("engine_forkchoiceUpdatedV3", &params)
                .expect("fcu"),
        )
        .expect("json");
        let id = serde_json::to_vec(&json!([updated["payloadId"]])).expect("json");
        sim.call("engine_getPayloadV4", &id).expect("getPayload")
    };

    let envelope: Value = serde_json::from_slice(&build()).expect("json");
    let transactions = envelope["executionPayload"]["transactions"]
        .as_array()
        .map_or(0, Vec::len);
    let size = serde_json::to_vec(&envelope).map_or(0, |v| v.len());
    assert!(transactions >= 5_000, "{transactions} transactions");
    eprintln!(
        "block: {transactions} transactions, envelope {} KiB",
        size / 1024
    );

    let mut group = c.benchmark_group("sim_5000_tx_block");
    group.sample_size(30);
    group.bench_function("build_hash_serve", |b| b.iter(|| black_box(build())));
    let params = serde_json::to_vec(&json!([
        envelope["executionPayload"],
        [],
        envelope["parentBeaconBlockRoot"],
        []
    ]))
    .expect("json");
    let hash: alloy_primitives::B256 =
        serde_json::from_value(envelope["executionPayload"]["blockHash"].clone()).expect("hash");
    group.bench_function("validate_new_payload", |b| {
        b.iter_batched(
            || sim.forget_block(&hash),
            |()| {
                let status = sim
                    .call("engine_newPayloadV4", &params)
                    .expect("newPayload");
                assert!(status.starts_with(br#"{"status":"VALID""#));
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
    drop(runtime);
}

criterion_group!(benches, bench);
criterion_main!(benches);
