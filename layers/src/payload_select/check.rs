//! Checks of a builder's payload against what op-node asked for, before op-geth validates it.

use alloy_primitives::B64;

use crate::{engine::Envelope, fcu_mux::PayloadJob};

/// Why a payload failed its checks. Each has a fixed label for metrics and decision records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CheckFailure {
    /// Blobs or execution requests, which OP forbids.
    ForbiddenSidecar,
    /// The advertised block hash is not the header's.
    BlockHash,
    /// Not built on the forkchoice head.
    ParentHash,
    /// Not the next block number.
    Number,
    /// Another timestamp than asked.
    Timestamp,
    /// Another prevRandao than asked.
    PrevRandao,
    /// Another fee recipient than asked.
    FeeRecipient,
    /// Another gas limit than asked.
    GasLimit,
    /// Another parent beacon block root than asked.
    BeaconRoot,
    /// Withdrawals where OP has none, or missing where the fork needs the (empty) list.
    Withdrawals,
    /// extraData does not carry the asked EIP-1559 parameters (Holocene) or minBaseFee (Jovian).
    ExtraData,
    /// The attributes' transactions are not exactly the block's first transactions.
    ForcedTransactions,
    /// A `noTxPool` job with transactions beyond the forced ones.
    PoolTransactions,
    /// More gas used than the gas limit.
    GasOverLimit,
    /// A job whose attributes were never decoded, because no builder was asked to build it: no
    /// payload can honour attributes nobody was given.
    NotAsked,
}

impl CheckFailure {
    /// A short, fixed label.
    pub fn label(self) -> &'static str {
        match self {
            Self::ForbiddenSidecar => "forbidden_sidecar",
            Self::BlockHash => "block_hash",
            Self::ParentHash => "parent_hash",
            Self::Number => "number",
            Self::Timestamp => "timestamp",
            Self::PrevRandao => "prev_randao",
            Self::FeeRecipient => "fee_recipient",
            Self::GasLimit => "gas_limit",
            Self::BeaconRoot => "beacon_root",
            Self::Withdrawals => "withdrawals",
            Self::ExtraData => "extra_data",
            Self::ForcedTransactions => "forced_transactions",
            Self::PoolTransactions => "pool_transactions",
            Self::GasOverLimit => "gas_over_limit",
            Self::NotAsked => "not_asked",
        }
    }
}

/// Checks `envelope` against `job`: every field op-node fixed in its attributes, the forced
/// transactions as the exact prefix, gas within the limit, and the recomputed block hash (last,
/// as the dearest). The block number is checked by the caller against op-geth's payload, which
/// knows the parent's number.
///
/// # Errors
///
/// The first check that fails.
pub fn check_payload(envelope: &Envelope, job: &PayloadJob) -> Result<(), CheckFailure> {
    check_attributes(envelope, job)?;
    check_block_hash(envelope.clone())
}

/// The cheap part of [`check_payload`]: everything but the block hash.
///
/// # Errors
///
/// The first check that fails.
pub fn check_attributes(envelope: &Envelope, job: &PayloadJob) -> Result<(), CheckFailure> {
    let payload = envelope.payload();
    let Some(attrs) = job.attributes.as_ref() else {
        return Err(CheckFailure::NotAsked);
    };
    let asked = &attrs.payload_attributes;
    let expect = |ok: bool, failure: CheckFailure| if ok { Ok(()) } else { Err(failure) };

    expect(
        !envelope.has_forbidden_sidecar(),
        CheckFailure::ForbiddenSidecar,
    )?;
    expect(payload.parent_hash == job.parent, CheckFailure::ParentHash)?;
    expect(
        payload.timestamp == asked.timestamp,
        CheckFailure::Timestamp,
    )?;
    expect(
        payload.prev_randao == asked.prev_randao,
        CheckFailure::PrevRandao,
    )?;
    expect(
        payload.fee_recipient == asked.suggested_fee_recipient,
        CheckFailure::FeeRecipient,
    )?;
    expect(
        Some(payload.gas_limit) == attrs.gas_limit,
        CheckFailure::GasLimit,
    )?;
    expect(
        envelope.parent_beacon_block_root() == asked.parent_beacon_block_root,
        CheckFailure::BeaconRoot,
    )?;
    let withdrawals_ok = match (envelope.withdrawals(), &asked.withdrawals) {
        (None, None) => true,
        (Some(got), Some(asked)) => got.is_empty() && asked.is_empty(),
        _ => false,
    };
    expect(withdrawals_ok, CheckFailure::Withdrawals)?;
    expect(
        extra_data_ok(
            &payload.extra_data,
            attrs.eip_1559_params,
            attrs.min_base_fee,
        ),
        CheckFailure::ExtraData,
    )?;
    let forced = attrs.transactions.as_deref().unwrap_or_default();
    expect(
        payload.transactions.starts_with(forced),
        CheckFailure::ForcedTransactions,
    )?;
    if attrs.no_tx_pool == Some(true) {
        expect(
            payload.transactions.len() == forced.len(),
            CheckFailure::PoolTransactions,
        )?;
    }
    expect(
        payload.gas_used <= payload.gas_limit,
        CheckFailure::GasOverLimit,
    )
}

/// The dear part of [`check_payload`]: the block hash recomputed from the payload (keccak over
/// every transaction, for the transactions root) must be the one it claims. Consumes the
/// envelope: the hash is the decoded payload's last use, and needs no copy of it.
///
/// # Errors
///
/// [`CheckFailure::BlockHash`].
pub fn check_block_hash(envelope: Envelope) -> Result<(), CheckFailure> {
    let claimed = envelope.payload().block_hash;
    let recomputed = envelope
        .into_block_hash()
        .map_err(|_| CheckFailure::BlockHash)?;
    if recomputed == claimed {
        Ok(())
    } else {
        Err(CheckFailure::BlockHash)
    }
}

/// Holocene: `0x00 ‖ denominator ‖ elasticity` (9 bytes); Jovian: version `0x01` and `minBaseFee`
/// appended (17 bytes). Zero parameters mean "the chain's defaults", which the execution client
/// substitutes, so they are not compared byte for byte. Before Holocene nothing is fixed.
fn extra_data_ok(extra: &[u8], params: Option<B64>, min_base_fee: Option<u64>) -> bool {
    let Some(params) = params else { return true };
    let params_ok = |encoded: &[u8]| params == B64::ZERO || encoded == params.as_slice();
    match min_base_fee {
        None => extra.len() == 9 && extra[0] == 0 && params_ok(&extra[1..9]),
        Some(min) => {
            extra.len() == 17
                && extra[0] == 1
                && params_ok(&extra[1..9])
                && extra[9..17] == min.to_be_bytes()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_data_rules() {
        let params = B64::from([0, 0, 0, 250, 0, 0, 0, 6]);
        let holocene = [0, 0, 0, 0, 250, 0, 0, 0, 6];
        assert!(extra_data_ok(&holocene, Some(params), None));
        assert!(!extra_data_ok(
            &holocene,
            Some(B64::from([0, 0, 0, 50, 0, 0, 0, 6])),
            None
        ));
        assert!(
            extra_data_ok(&holocene, Some(B64::ZERO), None),
            "zero params: the defaults"
        );
        let mut jovian = vec![1, 0, 0, 0, 250, 0, 0, 0, 6];
        jovian.extend_from_slice(&7u64.to_be_bytes());
        assert!(extra_data_ok(&jovian, Some(params), Some(7)));
        assert!(!extra_data_ok(&jovian, Some(params), Some(8)));
        assert!(
            !extra_data_ok(&holocene, Some(params), Some(7)),
            "Jovian needs version 1"
        );
        assert!(
            extra_data_ok(b"anything", None, None),
            "nothing fixed before Holocene"
        );
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use alloy_primitives::{Address, B256, Bytes};
    use op_alloy_rpc_types_engine::OpPayloadAttributes;
    use proptest::prelude::*;

    /// A consistent Jovian-era V4 payload and the job that asked for exactly it.
    fn consistent(txs: Vec<Vec<u8>>, forced: usize, seed: u8) -> (Envelope, PayloadJob) {
        let txs: Vec<String> = txs
            .iter()
            .map(|t| format!("0x7e{}", alloy_primitives::hex::encode(t)))
            .collect();
        let params = [0u8, 0, 0, 250, 0, 0, 0, 6];
        let mut extra = vec![1u8];
        extra.extend_from_slice(&params);
        extra.extend_from_slice(&7u64.to_be_bytes());
        let envelope = serde_json::json!({
            "executionPayload": {
                "parentHash": B256::repeat_byte(seed), "feeRecipient": Address::repeat_byte(0x42),
                "stateRoot": B256::repeat_byte(2), "receiptsRoot": B256::repeat_byte(3),
                "logsBloom": format!("0x{}", "00".repeat(256)), "prevRandao": B256::repeat_byte(4),
                "blockNumber": "0x10", "gasLimit": "0x1c9c380", "gasUsed": "0x5208", "timestamp": "0x6553f100",
                "extraData": format!("0x{}", alloy_primitives::hex::encode(&extra)), "baseFeePerGas": "0x7",
                "blockHash": B256::ZERO, "transactions": txs, "withdrawals": [], "blobGasUsed": "0x0",
                "excessBlobGas": "0x0", "withdrawalsRoot": B256::repeat_byte(5),
            },
            "blockValue": "0x0", "blobsBundle": {"commitments": [], "proofs": [], "blobs": []},
            "shouldOverrideBuilder": false, "parentBeaconBlockRoot": B256::repeat_byte(6), "executionRequests": [],
        });
        let mut envelope = Envelope::parse(4, envelope.to_string().as_bytes()).expect("valid");
        let hash = envelope.block_hash().expect("a block");
        set_hash(&mut envelope, hash);
        let p = envelope.payload();
        let mut attributes = OpPayloadAttributes::default();
        attributes.payload_attributes.timestamp = p.timestamp;
        attributes.payload_attributes.prev_randao = p.prev_randao;
        attributes.payload_attributes.suggested_fee_recipient = p.fee_recipient;
        attributes.payload_attributes.withdrawals = Some(Vec::new());
        attributes.payload_attributes.parent_beacon_block_root =
            envelope.parent_beacon_block_root();
        attributes.transactions = Some(p.transactions[..forced.min(p.transactions.len())].to_vec());
        attributes.gas_limit = Some(p.gas_limit);
        attributes.eip_1559_params = Some(alloy_primitives::B64::from(params));
        attributes.min_base_fee = Some(7);
        let job = PayloadJob {
            fcu_version: 3,
            parent: p.parent_hash,
            timestamp: p.timestamp,
            attributes: Some(attributes),
            builders: Vec::new(),
            trace: Default::default(),
        };
        (envelope, job)
    }

    fn payload_mut(envelope: &mut Envelope) -> &mut alloy_rpc_types_engine::ExecutionPayloadV1 {
        match envelope {
            Envelope::V4(e) => {
                &mut e
                    .execution_payload
                    .payload_inner
                    .payload_inner
                    .payload_inner
            }
            _ => unreachable!("V4 only here"),
        }
    }

    fn set_hash(envelope: &mut Envelope, hash: B256) {
        payload_mut(envelope).block_hash = hash;
    }

    fn transactions() -> impl Strategy<Value = Vec<Vec<u8>>> {
        prop::collection::vec(prop::collection::vec(any::<u8>(), 1..40), 1..8)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn a_consistent_payload_passes(txs in transactions(), forced in 0usize..4, seed: u8) {
            let (envelope, job) = consistent(txs, forced, seed);
            prop_assert_eq!(check_payload(&envelope, &job), Ok(()));
        }

        /// Changing any one field the attributes fix (and re-hashing, as a careful cheat would)
        /// fails exactly that field's check.
        #[test]
        fn each_attribute_is_enforced(txs in transactions(), seed: u8, field in 0u8..7, noise in 1u8..255) {
            let (mut envelope, job) = consistent(txs, 1, seed);
            let expected = {
                let p = payload_mut(&mut envelope);
                match field {
                    0 => { p.parent_hash = B256::repeat_byte(seed.wrapping_add(noise)); CheckFailure::ParentHash }
                    1 => { p.timestamp += u64::from(noise); CheckFailure::Timestamp }
                    2 => { p.prev_randao.0[0] ^= noise; CheckFailure::PrevRandao }
                    3 => { p.fee_recipient.0[0] ^= noise; CheckFailure::FeeRecipient }
                    4 => { p.gas_limit += u64::from(noise); CheckFailure::GasLimit }
                    5 => { p.extra_data = Bytes::from(vec![1u8; 17]); CheckFailure::ExtraData }
                    _ => { p.transactions.insert(0, Bytes::from(vec![noise])); CheckFailure::ForcedTransactions }
                }
            };
            let hash = envelope.block_hash().expect("a block");
            set_hash(&mut envelope, hash);
            prop_assert_eq!(check_attributes(&envelope, &job), Err(expected));
        }

        /// Changing any hashed field without re-hashing fails the hash check. (Changes XOR a
        /// non-zero `noise` in, so they never land back on the original value.)
        #[test]
        fn the_block_hash_covers_the_payload(txs in transactions(), seed: u8, field in 0u8..4, noise in 1u8..255) {
            let (mut envelope, _) = consistent(txs, 1, seed);
            let p = payload_mut(&mut envelope);
            match field {
                0 => p.state_root.0[0] ^= noise,
                1 => p.gas_used += u64::from(noise),
                2 => p.transactions.push(Bytes::from(vec![noise])),
                _ => p.receipts_root.0[0] ^= noise,
            }
            prop_assert_eq!(check_block_hash(envelope), Err(CheckFailure::BlockHash));
        }
    }
}
