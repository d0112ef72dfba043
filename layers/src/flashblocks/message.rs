//! One flashblock off the wire: decoded from a text frame or a brotli-compressed binary frame,
//! its JSON kept as received so that it is re-published byte for byte.

use std::io::Read;

use alloy_rpc_types_engine::PayloadId;
use bytes::Bytes;
use op_alloy_rpc_types_engine::{OpFlashblockPayloadBase, OpFlashblockPayloadDelta};
use serde::Deserialize;
use tokio::time::Instant;

/// A flashblock as received. See the [module docs](super).
#[derive(Clone, Debug)]
pub struct Flashblock {
    /// The builder's payload id (not op-geth's).
    pub payload_id: PayloadId,
    /// Its place in the block: 0 carries the base, each later one only a diff.
    pub index: u64,
    /// The block's fixed header fields (index 0 only).
    pub base: Option<OpFlashblockPayloadBase>,
    /// New transactions and withdrawals, and the roots, gas and hash of the block so far.
    pub diff: OpFlashblockPayloadDelta,
    /// The JSON as the builder sent it (decompressed): what subscribers receive.
    pub json: Bytes,
    /// When its frame was read.
    pub received: Instant,
}

/// The fields switchyard reads. `metadata` (receipts, balances) is the builder's to describe
/// and the subscribers' to read: it travels in [`Flashblock::json`] unread, so that a builder
/// whose metadata differs from op-alloy's shape is not refused for it.
#[derive(Deserialize)]
struct Wire {
    payload_id: PayloadId,
    index: u64,
    #[serde(default)]
    base: Option<OpFlashblockPayloadBase>,
    diff: OpFlashblockPayloadDelta,
}

/// Why a frame yields no flashblock.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// Bigger than the cap, compressed or not.
    #[error("frame over {limit} bytes")]
    TooLarge {
        /// The cap.
        limit: usize,
    },
    /// A binary frame that is not brotli.
    #[error("binary frame is not brotli: {0}")]
    Brotli(std::io::Error),
    /// Not a flashblock.
    #[error("not a flashblock: {0}")]
    Json(#[from] serde_json::Error),
}

impl FrameError {
    /// A short, fixed label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "too_large",
            Self::Brotli(_) => "brotli",
            Self::Json(_) => "malformed",
        }
    }
}

impl Flashblock {
    /// Reads a text frame's JSON.
    ///
    /// # Errors
    ///
    /// If it is over `limit` bytes or not a flashblock.
    pub fn from_json(json: Bytes, limit: usize) -> Result<Self, FrameError> {
        if json.len() > limit {
            return Err(FrameError::TooLarge { limit });
        }
        let wire: Wire = serde_json::from_slice(&json)?;
        Ok(Self {
            payload_id: wire.payload_id,
            index: wire.index,
            base: wire.base,
            diff: wire.diff,
            json,
            received: Instant::now(),
        })
    }

    /// Reads a binary frame: brotli-compressed JSON, decompressed up to `limit` bytes (a small
    /// frame can expand a thousandfold: the cap holds on what it expands to).
    ///
    /// # Errors
    ///
    /// If it is not brotli, expands past `limit`, or is not a flashblock.
    pub fn from_brotli(compressed: &[u8], limit: usize) -> Result<Self, FrameError> {
        let json = decompress(compressed, limit)?;
        Self::from_json(json, limit)
    }

    /// The transactions this flashblock adds.
    pub fn transactions(&self) -> &[alloy_primitives::Bytes] {
        &self.diff.transactions
    }
}

/// Brotli-decompresses `compressed`, refusing output over `limit` bytes.
///
/// # Errors
///
/// If it is not brotli or expands past `limit`.
pub fn decompress(compressed: &[u8], limit: usize) -> Result<Bytes, FrameError> {
    let mut out = Vec::with_capacity(compressed.len().saturating_mul(4).min(limit));
    brotli::Decompressor::new(compressed, 4096)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(FrameError::Brotli)?;
    if out.len() > limit {
        return Err(FrameError::TooLarge { limit });
    }
    Ok(Bytes::from(out))
}

/// Brotli-compresses `json` as flashblocks streams do (quality 5: most of the size gain of the
/// top levels at a small fraction of their CPU).
pub fn compress(json: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(json.len() / 3 + 64);
    let params = brotli::enc::BrotliEncoderParams {
        quality: 5,
        lgwin: 22,
        ..Default::default()
    };
    // Writing into a Vec cannot fail.
    let _ = brotli::BrotliCompress(&mut &json[..], &mut out, &params);
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{"payload_id":"0x0102030405060708","index":1,"diff":{"state_root":"0x0000000000000000000000000000000000000000000000000000000000000001","receipts_root":"0x0000000000000000000000000000000000000000000000000000000000000002","logs_bloom":"0x00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000","gas_used":"0x5208","block_hash":"0x0000000000000000000000000000000000000000000000000000000000000003","transactions":["0x02f8"],"withdrawals":[],"withdrawals_root":"0x0000000000000000000000000000000000000000000000000000000000000000"},"metadata":{"anything":"goes","block_number":7}}"#;

    #[test]
    fn text_and_brotli_frames_read_the_same_and_keep_the_json() {
        let text = Flashblock::from_json(Bytes::from_static(SAMPLE.as_bytes()), 1 << 20)
            .expect("a flashblock");
        assert_eq!(text.index, 1);
        assert_eq!(text.payload_id, PayloadId::new([1, 2, 3, 4, 5, 6, 7, 8]));
        assert!(text.base.is_none());
        assert_eq!(text.diff.gas_used, 21_000);
        assert_eq!(&text.json[..], SAMPLE.as_bytes());

        let compressed = compress(SAMPLE.as_bytes());
        assert!(compressed.len() < SAMPLE.len());
        let binary = Flashblock::from_brotli(&compressed, 1 << 20).expect("a flashblock");
        assert_eq!(binary.json, text.json);
    }

    #[test]
    fn the_cap_holds_on_what_a_frame_expands_to() {
        let big = vec![b' '; 100_000];
        let compressed = compress(&big);
        assert!(compressed.len() < 1_000, "spaces compress well");
        assert!(matches!(
            decompress(&compressed, 50_000),
            Err(FrameError::TooLarge { limit: 50_000 })
        ));
        assert!(matches!(
            Flashblock::from_json(Bytes::from(big), 50_000),
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[test]
    fn garbage_is_refused_with_its_reason() {
        assert_eq!(
            Flashblock::from_brotli(b"not brotli at all", 1 << 20)
                .map(|_| ())
                .map_err(|e| e.label()),
            Err("brotli")
        );
        assert_eq!(
            Flashblock::from_json(Bytes::from_static(b"{\"index\":1}"), 1 << 20)
                .map(|_| ())
                .map_err(|e| e.label()),
            Err("malformed")
        );
    }
}
