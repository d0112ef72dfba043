//! Real EIP-2718 transactions for the simulated chain.
//!
//! Deposits are genuine OP deposit transactions (`0x7e`). User transactions are genuine EIP-1559
//! encodings with a fixed stand-in signature: nothing here recovers senders, so the signature only
//! has to decode.

use alloy_consensus::{Signed, TxEip1559};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, B256, Bytes, Signature, TxKind, U256, address, keccak256};
use op_alloy_consensus::TxDeposit;

/// The L1 attributes depositor account.
pub const L1_INFO_DEPOSITOR: Address = address!("DeaDDEaDDeAdDeAdDEAdDEaddeAddEAdDEAd0001");
/// The L1Block predeploy.
pub const L1_BLOCK: Address = address!("4200000000000000000000000000000000000015");
/// The sequencer fee vault, op-node's default fee recipient.
pub const SEQUENCER_FEE_VAULT: Address = address!("4200000000000000000000000000000000000011");

/// The L1-info deposit that op-node puts first in every block.
pub fn l1_info_deposit(number: u64, timestamp: u64) -> Bytes {
    // Ecotone's setL1BlockValuesEcotone calldata is 164 bytes: selector + packed values.
    let mut input = vec![0x44, 0x0a, 0x5e, 0x20];
    input.extend_from_slice(&number.to_be_bytes());
    input.extend_from_slice(&timestamp.to_be_bytes());
    input.resize(164, 0);
    let deposit = TxDeposit {
        source_hash: keccak256([b"l1-info".as_slice(), &number.to_be_bytes()].concat()),
        from: L1_INFO_DEPOSITOR,
        to: TxKind::Call(L1_BLOCK),
        mint: 0,
        value: U256::ZERO,
        gas_limit: 1_000_000,
        is_system_transaction: false,
        input: input.into(),
    };
    deposit.encoded_2718().into()
}

/// A user deposit from L1, as op-node adds on the first block of an epoch.
pub fn user_deposit(number: u64, index: u64) -> Bytes {
    let deposit = TxDeposit {
        source_hash: keccak256(
            [
                b"user-deposit".as_slice(),
                &number.to_be_bytes(),
                &index.to_be_bytes(),
            ]
            .concat(),
        ),
        from: Address::with_last_byte(0xd0),
        to: TxKind::Call(Address::with_last_byte(0xd1)),
        mint: 1_000_000_000_000_000,
        value: U256::from(1_000u64),
        gas_limit: 100_000,
        is_system_transaction: false,
        input: Bytes::new(),
    };
    deposit.encoded_2718().into()
}

/// An EIP-1559 transfer from account `sender` with `nonce`, carrying `data_len` bytes of calldata.
pub fn transfer(chain_id: u64, sender: u64, nonce: u64, data_len: usize) -> Bytes {
    let tx = TxEip1559 {
        chain_id,
        nonce,
        gas_limit: 21_000 + 16 * data_len as u64,
        max_fee_per_gas: 2_000_000_000,
        max_priority_fee_per_gas: 1_000_000,
        to: TxKind::Call(Address::with_last_byte(0xee)),
        value: U256::from(1u64),
        access_list: Default::default(),
        input: vec![0xab; data_len].into(),
    };
    let r = U256::from_be_bytes(keccak256(sender.to_be_bytes()).0);
    let signature = Signature::new(r, U256::from(nonce + 1), false);
    Signed::new_unhashed(tx, signature).encoded_2718().into()
}

/// The `index`-th transaction a builder named `builder` adds to block `number`: a transfer from an
/// account of its own, so anyone can tell whose block it is.
pub fn builder_tx(chain_id: u64, builder: &str, number: u64, index: u64) -> Bytes {
    let account = u64::from_be_bytes(
        keccak256(builder.as_bytes())[..8]
            .try_into()
            .unwrap_or_default(),
    );
    transfer(chain_id, account.wrapping_add(index), number, 64)
}

/// The hash a transaction is known by: keccak-256 of its EIP-2718 encoding.
pub fn hash(tx: &[u8]) -> B256 {
    keccak256(tx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_eips::eip2718::Decodable2718;
    use op_alloy_consensus::OpTxEnvelope;

    #[test]
    fn transactions_decode_as_op_envelopes() {
        let deposit = l1_info_deposit(5, 1_000);
        assert_eq!(deposit[0], 0x7e);
        assert!(matches!(
            OpTxEnvelope::decode_2718_exact(&deposit),
            Ok(OpTxEnvelope::Deposit(_))
        ));
        let user = transfer(901, 1, 0, 100);
        assert_eq!(user[0], 0x02);
        assert!(matches!(
            OpTxEnvelope::decode_2718_exact(&user),
            Ok(OpTxEnvelope::Eip1559(_))
        ));
        assert_ne!(transfer(901, 1, 0, 100), transfer(901, 2, 0, 100));
    }
}
