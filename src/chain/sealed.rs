//! A block as it travels from the wire to the store: decoded once, hashed
//! once, with the raw bytes it arrived as (DESIGN.md §9 "decode once").
//! Its size is the raw length, never a re-encoding.

use std::sync::Arc;

use super::error::DecodeError;
use super::types::BlockWithSig;
use crate::crypto::B256;

/// A decoded block with its hash and the bytes it was decoded from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedBlock {
    /// The decoded block with its commit signature.
    pub block: BlockWithSig,
    /// Its header's hash, computed once at decode.
    pub hash: B256,
    /// The RLP of the block with signature exactly as received.
    pub raw: Arc<[u8]>,
}

impl SealedBlock {
    /// Decodes `raw` (RLP of a [`BlockWithSig`], limits checked) and
    /// hashes its header once.
    pub fn from_raw(raw: &[u8]) -> Result<Self, DecodeError> {
        let block = BlockWithSig::from_bytes(raw)?;
        let hash = block.block.hash();
        Ok(SealedBlock {
            block,
            hash,
            raw: raw.into(),
        })
    }

    /// Seals a block built locally (encodes it once).
    pub fn seal(block: BlockWithSig) -> Self {
        let raw: Arc<[u8]> = block.to_bytes().into();
        let hash = block.block.hash();
        SealedBlock { block, hash, raw }
    }

    /// Its number.
    pub fn number(&self) -> u64 {
        self.block.block.number()
    }

    /// Bytes it arrived as.
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// Whether it arrived as no bytes (never, for a decoded block).
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }
}

impl std::borrow::Borrow<BlockWithSig> for SealedBlock {
    fn borrow(&self) -> &BlockWithSig {
        &self.block
    }
}
