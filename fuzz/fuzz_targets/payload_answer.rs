//! A builder's getPayload answer, as hostile bytes: never a panic; what we accept writes out
//! and reads back as the same envelope, hashes without panicking, and is held to the
//! attributes it claims to honour.
#![no_main]

use libfuzzer_sys::fuzz_target;
use op_alloy_rpc_types_engine::OpPayloadAttributes;
use serde_json::Value;
use switchyard_layers::{
    engine::Envelope,
    fcu_mux::PayloadJob,
    payload_select::{CheckFailure, check_attributes, check_payload},
};

fuzz_target!(|data: &[u8]| {
    let [version, body @ ..] = data else { return };
    let version = 2 + version % 4;
    let Ok(envelope) = Envelope::parse_answer(version, body) else {
        return;
    };

    let written = envelope.write();
    let again = Envelope::parse(version, written.envelope()).expect("our own JSON reads back");
    assert_eq!(again, envelope, "the fast writer changed the envelope");
    let (_, params) = written.new_payload_params();
    let _: Value = serde_json::from_slice(&params).expect("newPayload params are JSON");
    let _ = envelope.block_hash();

    // Attributes that ask for exactly this block: only OP's fixed rules can fail it.
    let job = job_for(&envelope);
    match check_attributes(&envelope, &job) {
        Ok(()) => {}
        Err(
            CheckFailure::ForbiddenSidecar | CheckFailure::Withdrawals | CheckFailure::GasOverLimit,
        ) => return,
        Err(other) => panic!("a block failed its own attributes: {other:?}"),
    }
    // Asked for another timestamp, the same block must fail.
    let mut other = job_for(&envelope);
    other.attributes.payload_attributes.timestamp ^= 1;
    assert_eq!(
        check_payload(&envelope, &other),
        Err(CheckFailure::Timestamp)
    );
});

fn job_for(envelope: &Envelope) -> PayloadJob {
    let payload = envelope.payload();
    let mut attributes = OpPayloadAttributes::default();
    let asked = &mut attributes.payload_attributes;
    asked.timestamp = payload.timestamp;
    asked.prev_randao = payload.prev_randao;
    asked.suggested_fee_recipient = payload.fee_recipient;
    asked.withdrawals = envelope.withdrawals().map(|_| Vec::new());
    asked.parent_beacon_block_root = envelope.parent_beacon_block_root();
    attributes.transactions = Some(payload.transactions.clone());
    attributes.gas_limit = Some(payload.gas_limit);
    PayloadJob {
        fcu_version: 3,
        parent: payload.parent_hash,
        attributes,
        builders: Vec::new(),
    }
}
