//! One builder's block as its flashblocks arrive: each accepted flashblock extends a prefix that
//! is itself a complete block, checked as every builder payload is checked.

use std::sync::Arc;

use alloy_eips::eip4895::Withdrawal;
use alloy_primitives::{B256, Bytes, U256};
use alloy_rpc_types_engine::{
    BlobsBundleV1, ExecutionPayloadV1, ExecutionPayloadV2, ExecutionPayloadV3, PayloadId,
};
use op_alloy_rpc_types_engine::{
    OpExecutionPayloadEnvelopeV3, OpExecutionPayloadEnvelopeV4, OpExecutionPayloadV4,
    OpFlashblockPayloadBase,
};

use super::Flashblock;
use crate::{engine::Envelope, fcu_mux::PayloadJob, payload_select::check_payload};

/// Why a flashblock was not accepted. Each has a fixed label for metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// Index 0 without a base.
    BaseMissing,
    /// A base after index 0.
    BaseUnexpected,
    /// An index already taken.
    Duplicate,
    /// An index past the next one.
    IndexGap,
    /// The block has been served (getPayload came): nothing may be added to it.
    Sealed,
    /// More flashblocks in one block than allowed.
    TooMany,
    /// More transaction bytes in one block than allowed.
    TooLarge,
    /// The prefix failed a payload check (attributes, forced transactions, block hash, ...).
    Check(&'static str),
}

impl Refusal {
    /// A short, fixed label.
    pub fn label(self) -> &'static str {
        match self {
            Self::BaseMissing => "base_missing",
            Self::BaseUnexpected => "base_unexpected",
            Self::Duplicate => "duplicate",
            Self::IndexGap => "index_gap",
            Self::Sealed => "sealed",
            Self::TooMany => "too_many",
            Self::TooLarge => "block_too_large",
            Self::Check(label) => label,
        }
    }
}

/// The accepted prefix of one builder's block for one job.
#[derive(Debug)]
pub(crate) struct BlockInProgress {
    /// The builder's payload id.
    pub(crate) builder_id: PayloadId,
    /// op-geth's payload id: the one getPayload names.
    pub(crate) op_geth_id: PayloadId,
    pub(crate) job: Arc<PayloadJob>,
    base: Option<OpFlashblockPayloadBase>,
    transactions: Vec<Bytes>,
    withdrawals: Vec<Withdrawal>,
    /// The envelope of the accepted prefix.
    pub(crate) envelope: Option<Arc<Envelope>>,
    /// Flashblocks accepted.
    pub(crate) accepted: usize,
    /// Of them, how many were published, and the transactions they hold.
    pub(crate) published: usize,
    pub(crate) published_transactions: usize,
    /// getPayload came: nothing more is accepted.
    pub(crate) sealed: bool,
    /// A refusal was logged for this block already.
    pub(crate) logged: bool,
}

/// The next prefix, computed from a flashblock off the lock; applied if the block is unchanged.
pub(crate) struct Extension {
    envelope: Arc<Envelope>,
    base: Option<OpFlashblockPayloadBase>,
    new_transactions: Vec<Bytes>,
    new_withdrawals: Vec<Withdrawal>,
    index: u64,
}

impl BlockInProgress {
    pub(crate) fn new(builder_id: PayloadId, op_geth_id: PayloadId, job: Arc<PayloadJob>) -> Self {
        Self {
            builder_id,
            op_geth_id,
            job,
            base: None,
            transactions: Vec::new(),
            withdrawals: Vec::new(),
            envelope: None,
            accepted: 0,
            published: 0,
            published_transactions: 0,
            sealed: false,
            logged: false,
        }
    }

    /// The prefix's transactions.
    pub(crate) fn transactions(&self) -> &[Bytes] {
        &self.transactions
    }

    /// The order rules, checked before anything is computed.
    pub(crate) fn admits(
        &self,
        flashblock: &Flashblock,
        max_per_block: usize,
    ) -> Result<(), Refusal> {
        if self.sealed {
            return Err(Refusal::Sealed);
        }
        let next = self.accepted as u64;
        if flashblock.index < next {
            return Err(Refusal::Duplicate);
        }
        if flashblock.index > next {
            return Err(Refusal::IndexGap);
        }
        match (next, &flashblock.base) {
            (0, None) => return Err(Refusal::BaseMissing),
            (1.., Some(_)) => return Err(Refusal::BaseUnexpected),
            _ => {}
        }
        if self.accepted >= max_per_block {
            return Err(Refusal::TooMany);
        }
        Ok(())
    }

    /// How many transaction bytes the block would hold with `flashblock`: what decides whether
    /// checking it is done on the event loop or off it.
    pub(crate) fn size_with(&self, flashblock: &Flashblock) -> usize {
        self.transactions
            .iter()
            .chain(flashblock.transactions())
            .map(|tx| tx.len())
            .sum()
    }

    /// The inputs of [`extend`], copied out (transactions are reference-counted).
    pub(crate) fn parts(&self) -> (Option<OpFlashblockPayloadBase>, Vec<Bytes>, Vec<Withdrawal>) {
        (
            self.base.clone(),
            self.transactions.clone(),
            self.withdrawals.clone(),
        )
    }

    /// Takes a checked extension, if the block is still the one it was computed for.
    pub(crate) fn apply(&mut self, extension: Extension) -> Result<(), Refusal> {
        if self.sealed {
            return Err(Refusal::Sealed);
        }
        if extension.index != self.accepted as u64 {
            return Err(Refusal::Duplicate);
        }
        if let Some(base) = extension.base {
            self.base = Some(base);
        }
        self.transactions.extend(extension.new_transactions);
        self.withdrawals.extend(extension.new_withdrawals);
        self.envelope = Some(extension.envelope);
        self.accepted += 1;
        Ok(())
    }
}

/// The prefix `parts` extended by `flashblock`, assembled and checked against `job` as a
/// builder's getPayload answer is (every attribute, the forced transactions as the exact prefix,
/// gas, the recomputed block hash). Pure: runs off the event loop for big blocks.
pub(crate) fn extend(
    parts: (Option<OpFlashblockPayloadBase>, Vec<Bytes>, Vec<Withdrawal>),
    flashblock: &Flashblock,
    job: &PayloadJob,
) -> Result<Extension, Refusal> {
    let (base, mut transactions, mut withdrawals) = parts;
    let new_base = flashblock.base.clone();
    let Some(base_ref) = new_base.as_ref().or(base.as_ref()) else {
        return Err(Refusal::BaseMissing);
    };
    transactions.extend(flashblock.diff.transactions.iter().cloned());
    withdrawals.extend(flashblock.diff.withdrawals.iter().cloned());
    let mut last_failure = Refusal::Check("block_hash");
    for envelope in assemble(base_ref, transactions, withdrawals, flashblock) {
        match check_payload(&envelope, job) {
            Ok(()) => {
                return Ok(Extension {
                    envelope: Arc::new(envelope),
                    base: new_base,
                    new_transactions: flashblock.diff.transactions.clone(),
                    new_withdrawals: flashblock.diff.withdrawals.clone(),
                    index: flashblock.index,
                });
            }
            Err(failure) => last_failure = Refusal::Check(failure.label()),
        }
    }
    Err(last_failure)
}

/// The block a prefix describes, as getPayload envelopes: Isthmus's V4 (the withdrawals root is
/// the L2-to-L1 message passer's storage root) when the builder gave a withdrawals root, and
/// Ecotone's V3 (which some builders fill it for as well): the block hash tells which is meant.
fn assemble(
    base: &OpFlashblockPayloadBase,
    transactions: Vec<Bytes>,
    withdrawals: Vec<Withdrawal>,
    last: &Flashblock,
) -> Vec<Envelope> {
    let diff = &last.diff;
    let v3 = ExecutionPayloadV3 {
        payload_inner: ExecutionPayloadV2 {
            payload_inner: ExecutionPayloadV1 {
                parent_hash: base.parent_hash,
                fee_recipient: base.fee_recipient,
                state_root: diff.state_root,
                receipts_root: diff.receipts_root,
                logs_bloom: diff.logs_bloom,
                prev_randao: base.prev_randao,
                block_number: base.block_number,
                gas_limit: base.gas_limit,
                gas_used: diff.gas_used,
                timestamp: base.timestamp,
                extra_data: base.extra_data.clone(),
                base_fee_per_gas: base.base_fee_per_gas,
                block_hash: diff.block_hash,
                transactions,
            },
            withdrawals,
        },
        blob_gas_used: diff.blob_gas_used.unwrap_or_default(),
        excess_blob_gas: 0,
    };
    let mut envelopes = Vec::with_capacity(2);
    if diff.withdrawals_root != B256::ZERO {
        envelopes.push(Envelope::V4(OpExecutionPayloadEnvelopeV4 {
            execution_payload: OpExecutionPayloadV4 {
                payload_inner: v3.clone(),
                withdrawals_root: diff.withdrawals_root,
            },
            block_value: U256::ZERO,
            blobs_bundle: BlobsBundleV1::default(),
            should_override_builder: false,
            parent_beacon_block_root: base.parent_beacon_block_root,
            execution_requests: Vec::new(),
        }));
    }
    envelopes.push(Envelope::V3(OpExecutionPayloadEnvelopeV3 {
        execution_payload: v3,
        block_value: U256::ZERO,
        blobs_bundle: BlobsBundleV1::default(),
        should_override_builder: false,
        parent_beacon_block_root: base.parent_beacon_block_root,
    }));
    envelopes
}

#[cfg(test)]
mod tests {
    use alloy_primitives::{Address, B256, Bloom, Bytes};
    use alloy_rpc_types_engine::{PayloadAttributes, PayloadId};
    use op_alloy_rpc_types_engine::{OpFlashblockPayloadDelta, OpPayloadAttributes};

    use super::*;

    const PARENT: B256 = B256::repeat_byte(0x11);

    fn job() -> Arc<PayloadJob> {
        Arc::new(PayloadJob {
            fcu_version: 3,
            parent: PARENT,
            timestamp: 1_000,
            attributes: Some(OpPayloadAttributes {
                payload_attributes: PayloadAttributes {
                    timestamp: 1_000,
                    prev_randao: B256::repeat_byte(0x22),
                    suggested_fee_recipient: Address::repeat_byte(0x33),
                    withdrawals: Some(Vec::new()),
                    parent_beacon_block_root: Some(B256::repeat_byte(0x44)),
                    ..Default::default()
                },
                transactions: Some(vec![Bytes::from_static(&[0x7e, 1])]),
                no_tx_pool: None,
                gas_limit: Some(30_000_000),
                eip_1559_params: None,
                min_base_fee: None,
            }),
            builders: Vec::new(),
            trace: Default::default(),
        })
    }

    fn base() -> OpFlashblockPayloadBase {
        OpFlashblockPayloadBase {
            parent_beacon_block_root: B256::repeat_byte(0x44),
            parent_hash: PARENT,
            fee_recipient: Address::repeat_byte(0x33),
            prev_randao: B256::repeat_byte(0x22),
            block_number: 7,
            gas_limit: 30_000_000,
            timestamp: 1_000,
            extra_data: Bytes::new(),
            base_fee_per_gas: U256::from(1_000_000u64),
        }
    }

    /// Flashblock `index` adding `new` to `before` (the transactions so far), with the true
    /// block hash of the prefix.
    fn flashblock(index: u64, before: &[Bytes], new: &[Bytes]) -> Flashblock {
        let mut flashblock = Flashblock {
            payload_id: PayloadId::new([9; 8]),
            index,
            base: (index == 0).then(base),
            diff: OpFlashblockPayloadDelta {
                state_root: B256::repeat_byte(0x55),
                receipts_root: B256::repeat_byte(0x66),
                logs_bloom: Bloom::ZERO,
                gas_used: 21_000 * (before.len() + new.len()) as u64,
                block_hash: B256::ZERO,
                transactions: new.to_vec(),
                withdrawals: Vec::new(),
                withdrawals_root: B256::ZERO,
                blob_gas_used: Some(0),
            },
            json: bytes::Bytes::new(),
            received: tokio::time::Instant::now(),
        };
        let all: Vec<Bytes> = before.iter().chain(new).cloned().collect();
        let envelope = assemble(&base(), all, Vec::new(), &flashblock).pop();
        flashblock.diff.block_hash = envelope
            .and_then(|e| e.block_hash().ok())
            .unwrap_or_default();
        flashblock
    }

    fn tx(n: u8) -> Bytes {
        Bytes::from(vec![0x02, n])
    }

    fn forced() -> Bytes {
        Bytes::from_static(&[0x7e, 1])
    }

    fn take(block: &mut BlockInProgress, flashblock: &Flashblock) -> Result<(), Refusal> {
        block.admits(flashblock, 8)?;
        let extension = extend(block.parts(), flashblock, &block.job)?;
        block.apply(extension)
    }

    fn open() -> BlockInProgress {
        BlockInProgress::new(PayloadId::new([9; 8]), PayloadId::new([1; 8]), job())
    }

    #[test]
    fn each_prefix_is_a_checked_block_and_the_last_one_is_served() {
        let mut block = open();
        take(&mut block, &flashblock(0, &[], &[forced(), tx(1)])).expect("0");
        take(&mut block, &flashblock(1, &[forced(), tx(1)], &[tx(2)])).expect("1");
        take(&mut block, &flashblock(2, &[forced(), tx(1), tx(2)], &[])).expect("2, empty");
        assert_eq!(block.accepted, 3);
        let envelope = block.envelope.clone().expect("an envelope");
        assert_eq!(envelope.payload().transactions, [forced(), tx(1), tx(2)]);
        assert!(
            matches!(*envelope, Envelope::V3(_)),
            "no withdrawals root: Ecotone's V3"
        );
    }

    #[test]
    fn order_rules_refuse_before_anything_is_computed() {
        let mut block = open();
        let no_base = Flashblock {
            base: None,
            ..flashblock(0, &[], &[forced()])
        };
        assert_eq!(block.admits(&no_base, 8), Err(Refusal::BaseMissing));
        take(&mut block, &flashblock(0, &[], &[forced()])).expect("0");
        assert_eq!(
            block.admits(&flashblock(0, &[], &[forced()]), 8),
            Err(Refusal::Duplicate)
        );
        assert_eq!(
            block.admits(&flashblock(2, &[forced()], &[tx(1)]), 8),
            Err(Refusal::IndexGap)
        );
        let with_base = Flashblock {
            base: Some(base()),
            ..flashblock(1, &[forced()], &[tx(1)])
        };
        assert_eq!(block.admits(&with_base, 8), Err(Refusal::BaseUnexpected));
        assert_eq!(
            block.admits(&flashblock(1, &[forced()], &[tx(1)]), 1),
            Err(Refusal::TooMany)
        );
        block.sealed = true;
        assert_eq!(
            block.admits(&flashblock(1, &[forced()], &[tx(1)]), 8),
            Err(Refusal::Sealed)
        );
    }

    #[test]
    fn a_prefix_that_could_never_be_returned_is_refused_with_its_check() {
        let mut block = open();
        let mut wrong_hash = flashblock(0, &[], &[forced()]);
        wrong_hash.diff.block_hash = B256::repeat_byte(0xbb);
        assert_eq!(
            take(&mut block, &wrong_hash),
            Err(Refusal::Check("block_hash"))
        );

        let mut other_recipient = flashblock(0, &[], &[forced()]);
        if let Some(base) = other_recipient.base.as_mut() {
            base.fee_recipient = Address::repeat_byte(0x99);
        }
        assert_eq!(
            take(&mut block, &other_recipient),
            Err(Refusal::Check("fee_recipient"))
        );

        let no_deposit = flashblock(0, &[], &[tx(1)]);
        assert_eq!(
            take(&mut block, &no_deposit),
            Err(Refusal::Check("forced_transactions"))
        );
        assert_eq!(block.accepted, 0, "nothing was taken");

        take(&mut block, &flashblock(0, &[], &[forced()])).expect("the right one");
        assert_eq!(block.accepted, 1);
    }
}
