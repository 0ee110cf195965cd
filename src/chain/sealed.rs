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
        let mut block = BlockWithSig::from_bytes(raw)?;
        // The decoder grows its lists by doubling: up to 1.8 × the
        // transfers' size held for as long as the block waits.
        block.block.body.transfers.shrink_to_fit();
        block.block.body.next_committee.shrink_to_fit();
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

    /// Bytes of memory it holds: itself, its raw bytes and its decoded
    /// lists (what the sync charges to its byte budget). Fixed for a given
    /// block, so charging and releasing it always balance.
    pub fn mem_bytes(&self) -> usize {
        /// Per heap allocation (allocator header and rounding), bytes.
        const ALLOC: usize = 16;
        let body = &self.block.block.body;
        std::mem::size_of::<Self>()
            + self.raw.len()
            + 2 * std::mem::size_of::<usize>()
            + body.transfers.capacity() * std::mem::size_of::<super::types::Transfer>()
            + body.next_committee.capacity() * crate::crypto::PUBLIC_KEY_LEN
            + self.block.block.header.last_commit_bitmap.len()
            + self.block.commit_sig.bitmap.len()
            + 5 * ALLOC
    }

    /// The RLP of its header and of its body, as slices of the raw bytes
    /// (what `Header::to_bytes` and `Body::to_bytes` give: a decoded block
    /// was canonical RLP, which the decoder enforces). `None` if the raw
    /// bytes are not a block's RLP (a block built with inconsistent
    /// fields).
    pub fn raw_parts(&self) -> Option<(&[u8], &[u8])> {
        fn item(buf: &[u8]) -> Option<(&[u8], &[u8])> {
            let mut rest = buf;
            let h = alloy_rlp::Header::decode(&mut rest).ok()?;
            let len = buf.len() - rest.len() + h.payload_length;
            (len <= buf.len()).then(|| buf.split_at(len))
        }
        fn payload(buf: &[u8]) -> Option<&[u8]> {
            let mut rest = buf;
            let h = alloy_rlp::Header::decode(&mut rest).ok()?;
            (h.list && h.payload_length <= rest.len()).then(|| &rest[..h.payload_length])
        }
        let block = payload(&self.raw)?;
        let (block, _) = item(block)?;
        let fields = payload(block)?;
        let (header, rest) = item(fields)?;
        let (body, _) = item(rest)?;
        Some((header, body))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::generator::Generator;
    use crate::chain::GenesisSpec;

    #[test]
    fn raw_parts_are_the_header_and_body_encodings() {
        let spec = GenesisSpec {
            seed: 5,
            network: "localnet".into(),
            shard_id: 0,
            epoch_len: 3,
            committee_size: 4,
            accounts: 8,
        };
        let (mut g, _) = Generator::new(spec, 7).expect("spec");
        for _ in 0..6 {
            let b = g.next_block().expect("block");
            let s = SealedBlock::from_raw(&b.to_bytes()).expect("decodes");
            let (h, body) = s.raw_parts().expect("a block's RLP");
            assert_eq!(h, b.block.header.to_bytes().as_slice());
            assert_eq!(body, b.block.body.to_bytes().as_slice());
        }
    }
}
