//! `--external-state-root`: a builder that leaves its blocks' state root zero still builds the
//! blocks, op-geth computing the root by building the same block from the builder's
//! transactions.

use switchyard_layers::payload_select::Source;
use switchyard_sim::{Fault, Fork, SimConfig, Tamper};

use crate::harness::{Net, spec};

async fn zero_root_net(external: bool) -> Net {
    let chain = spec(Fork::Isthmus);
    let mut builder = SimConfig::builder(chain.clone()).named("rootless");
    builder.zero_state_root = true;
    Net::start_custom(
        chain,
        vec![(builder, switchyard_layers::tls::TlsOptions::default())],
        |config| config.builder_policy.external_state_root = external,
    )
    .await
}

#[tokio::test]
async fn without_the_flag_a_zero_state_root_block_is_invalid_and_op_geth_builds() {
    let mut net = zero_root_net(false).await;
    let report = net.step().await;
    let decision = net.last();
    assert_eq!(decision.source, Source::Local);
    assert_eq!(decision.builders[0].lost, Some("invalid"));
    assert!(net.built_locally(report.number));
}

#[tokio::test]
async fn with_the_flag_op_geth_rebuilds_the_builders_block_and_it_wins() {
    let mut net = zero_root_net(true).await;
    for _ in 0..5 {
        let report = net.step().await;
        let decision = net.last();
        assert_eq!(
            decision.source,
            Source::Builder("rootless".into()),
            "{decision:?}"
        );
        assert!(decision.builders[0].external_root);
        // The builder's transactions, in its order, with op-geth's state root.
        assert!(net.built_by(report.number, "rootless"));
        let canonical = net.geth_block(report.number);
        assert_ne!(canonical.header.state_root, alloy_primitives::B256::ZERO);
    }
    // Op-node's own job is untouched: op-geth built each block twice (op-node's job and the
    // rebuild), and no builder block went to newPayload for validation.
    let geth = net.geth.log();
    assert_eq!(
        geth.count("engine_forkchoiceUpdatedV3"),
        5 * 3,
        "op-node's two and ours"
    );
    assert_eq!(
        geth.count("engine_newPayloadV4"),
        5,
        "op-node's import only"
    );
}

#[tokio::test]
async fn a_rebuilt_block_that_is_not_what_op_node_asked_for_loses() {
    let mut net = zero_root_net(true).await;
    // The builder's block on another fee recipient: op-geth would rebuild it with op-node's, so
    // the builder's block is refused before any rebuild.
    net.builders[0].faults().add(
        Fault::Tamper {
            tamper: Tamper::WrongFeeRecipient,
        }
        .on("engine_getPayloadV4")
        .times(1),
    );
    let report = net.step().await;
    let decision = net.last();
    assert_eq!(decision.source, Source::Local);
    assert_eq!(decision.builders[0].lost, Some("fee_recipient"));
    assert!(net.built_locally(report.number));
    // And a hash that does not match what the builder sent is refused too.
    net.builders[0].faults().add(
        Fault::Tamper {
            tamper: Tamper::WrongBlockHash,
        }
        .on("engine_getPayloadV4")
        .times(1),
    );
    net.step().await;
    assert_eq!(net.last().builders[0].lost, Some("block_hash"));
}
