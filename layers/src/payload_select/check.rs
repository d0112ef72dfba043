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
    check_block_hash(envelope)
}

/// The cheap part of [`check_payload`]: everything but the block hash.
///
/// # Errors
///
/// The first check that fails.
pub fn check_attributes(envelope: &Envelope, job: &PayloadJob) -> Result<(), CheckFailure> {
    let payload = envelope.payload();
    let attrs = &job.attributes;
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
/// every transaction, for the transactions root) must be the one it claims.
///
/// # Errors
///
/// [`CheckFailure::BlockHash`].
pub fn check_block_hash(envelope: &Envelope) -> Result<(), CheckFailure> {
    let recomputed = envelope.block_hash().map_err(|_| CheckFailure::BlockHash)?;
    if recomputed == envelope.payload().block_hash {
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
