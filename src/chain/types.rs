//! Chain objects and their canonical RLP encoding.
//!
//! Block hash = keccak256(RLP(header)). The header commits to its body by
//! `tx_root` = keccak256(RLP(transfers)) and to the next committee by
//! `next_committee_hash` = keccak256(RLP(next_committee)). The commit
//! signature of block N travels in header N+1 (`last_commit_*`) and, for the
//! head, alongside the block ([`BlockWithSig`]).

use alloy_rlp::{Bytes, Decodable, Encodable, RlpDecodable, RlpEncodable};

use super::error::DecodeError;
use super::limits::{MAX_BITMAP_LEN, MAX_BLOCK_BYTES, MAX_COMMITTEE_SIZE, MAX_TRANSFERS_PER_BLOCK};
use super::state::Address;
use crate::crypto::hash::{keccak256, ZERO_HASH};
use crate::crypto::{B256, PUBLIC_KEY_LEN, SIGNATURE_LEN};

/// A block header (RLP list, fields in this order).
#[derive(Clone, Debug, PartialEq, Eq, RlpEncodable, RlpDecodable)]
pub struct Header {
    /// Hash of the parent header; zero for genesis.
    pub parent_hash: B256,
    /// Height; genesis is 0.
    pub number: u64,
    /// `number / epoch_len` of the chain spec.
    pub epoch: u64,
    /// Shard the block belongs to.
    pub shard_id: u32,
    /// Consensus view that produced the block (part of the signed message).
    pub view_id: u64,
    /// Seconds since the Unix epoch; never below the parent's.
    pub timestamp: u64,
    /// keccak256(RLP(body.transfers)).
    pub tx_root: B256,
    /// State commitment after executing this block (see [`super::state`]).
    pub state_root: B256,
    /// Aggregate BLS signature of the parent's commit (zero in genesis).
    pub last_commit_sig: [u8; SIGNATURE_LEN],
    /// Signer bitmap of the parent's commit (empty in genesis).
    pub last_commit_bitmap: Bytes,
    /// keccak256(RLP(next committee)) on an epoch's last block (and genesis,
    /// which names the committee of epoch 0); zero otherwise.
    pub next_committee_hash: B256,
}

/// A value transfer between two accounts.
#[derive(Clone, Debug, PartialEq, Eq, RlpEncodable, RlpDecodable)]
pub struct Transfer {
    /// Sender; must exist with `nonce` equal to the transfer's.
    pub from: Address,
    /// Recipient; created if absent.
    pub to: Address,
    /// Amount moved, in base units.
    pub amount: u64,
    /// The sender's nonce before this transfer.
    pub nonce: u64,
}

/// A block body.
#[derive(Clone, Debug, Default, PartialEq, Eq, RlpEncodable, RlpDecodable)]
pub struct Body {
    /// Transfers, executed in order.
    pub transfers: Vec<Transfer>,
    /// BLS public keys (compressed) of the next epoch's committee, on an
    /// epoch's last block and genesis only; empty otherwise.
    pub next_committee: Vec<[u8; PUBLIC_KEY_LEN]>,
}

/// A header with its body.
#[derive(Clone, Debug, PartialEq, Eq, RlpEncodable, RlpDecodable)]
pub struct Block {
    /// The header.
    pub header: Header,
    /// The body.
    pub body: Body,
}

/// The commit signature of one block: an aggregate BLS signature by the
/// signers marked in `bitmap` (bit i = member i of the epoch's committee,
/// least significant bit first within each byte).
#[derive(Clone, Debug, PartialEq, Eq, RlpEncodable, RlpDecodable)]
pub struct CommitSig {
    /// Compressed aggregate signature.
    pub signature: [u8; SIGNATURE_LEN],
    /// Signer bitmap, exactly ceil(committee size / 8) bytes.
    pub bitmap: Bytes,
}

/// A block together with its own commit signature, as served to peers.
#[derive(Clone, Debug, PartialEq, Eq, RlpEncodable, RlpDecodable)]
pub struct BlockWithSig {
    /// The block.
    pub block: Block,
    /// The commit signature of `block` (normally also in its child's header).
    pub commit_sig: CommitSig,
}

/// The committee of one epoch: BLS public keys in slot order.
#[derive(Clone, Debug, Default, PartialEq, Eq, RlpEncodable, RlpDecodable)]
pub struct Committee {
    /// Compressed public keys; index = bit position in signer bitmaps.
    pub keys: Vec<[u8; PUBLIC_KEY_LEN]>,
}

fn decode_exact<T: Decodable>(what: &'static str, bytes: &[u8]) -> Result<T, DecodeError> {
    if bytes.len() > MAX_BLOCK_BYTES {
        return Err(DecodeError::TooLarge {
            what,
            unit: "bytes",
            got: bytes.len(),
            limit: MAX_BLOCK_BYTES,
        });
    }
    alloy_rlp::decode_exact(bytes).map_err(|source| DecodeError::Rlp { what, source })
}

fn check_len(
    what: &'static str,
    unit: &'static str,
    got: usize,
    limit: usize,
) -> Result<(), DecodeError> {
    if got > limit {
        return Err(DecodeError::TooLarge {
            what,
            unit,
            got,
            limit,
        });
    }
    Ok(())
}

/// RLP-encodes any encodable value.
pub fn encode<T: Encodable>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.length());
    value.encode(&mut out);
    out
}

impl Header {
    /// keccak256(RLP(self)): the block hash.
    pub fn hash(&self) -> B256 {
        keccak256(&encode(self))
    }

    /// The canonical encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        encode(self)
    }

    /// Decodes exactly one header from `bytes` and checks its limits.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let h: Header = decode_exact("header", bytes)?;
        h.check_limits()?;
        Ok(h)
    }

    fn check_limits(&self) -> Result<(), DecodeError> {
        check_len(
            "header bitmap",
            "bytes",
            self.last_commit_bitmap.len(),
            MAX_BITMAP_LEN,
        )
    }

    /// The parent's commit signature carried by this header (`None` in genesis).
    pub fn parent_commit(&self) -> Option<CommitSig> {
        (self.number > 0).then(|| CommitSig {
            signature: self.last_commit_sig,
            bitmap: self.last_commit_bitmap.clone(),
        })
    }

    /// Whether this header names a next committee.
    pub fn has_next_committee(&self) -> bool {
        self.next_committee_hash != ZERO_HASH
    }
}

impl Body {
    /// The canonical encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        encode(self)
    }

    /// Decodes exactly one body from `bytes` and checks its limits.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let b: Body = decode_exact("body", bytes)?;
        b.check_limits()?;
        Ok(b)
    }

    fn check_limits(&self) -> Result<(), DecodeError> {
        check_len(
            "body",
            "transfers",
            self.transfers.len(),
            MAX_TRANSFERS_PER_BLOCK,
        )?;
        check_len(
            "body next committee",
            "members",
            self.next_committee.len(),
            MAX_COMMITTEE_SIZE,
        )
    }

    /// keccak256(RLP(transfers)): what `Header::tx_root` must equal.
    pub fn tx_root(&self) -> B256 {
        keccak256(&encode(&self.transfers))
    }

    /// The next committee named by this body, as a [`Committee`].
    pub fn committee(&self) -> Committee {
        Committee {
            keys: self.next_committee.clone(),
        }
    }
}

impl Block {
    /// The block hash (hash of the header).
    pub fn hash(&self) -> B256 {
        self.header.hash()
    }

    /// Height of the block.
    pub fn number(&self) -> u64 {
        self.header.number
    }

    /// The canonical encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        encode(self)
    }

    /// Decodes exactly one block from `bytes` and checks its limits.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let b: Block = decode_exact("block", bytes)?;
        b.header.check_limits()?;
        b.body.check_limits()?;
        Ok(b)
    }
}

impl CommitSig {
    /// The canonical encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        encode(self)
    }

    /// Decodes exactly one commit signature and checks its limits.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let c: CommitSig = decode_exact("commit signature", bytes)?;
        check_len("commit bitmap", "bytes", c.bitmap.len(), MAX_BITMAP_LEN)?;
        Ok(c)
    }

    /// The message a committee signs to commit block `hash` at `number` in
    /// view `view_id`: hash (32 B) ‖ number (8 B BE) ‖ view id (8 B BE).
    pub fn message(hash: &B256, number: u64, view_id: u64) -> [u8; 48] {
        let mut m = [0u8; 48];
        m[..32].copy_from_slice(hash);
        m[32..40].copy_from_slice(&number.to_be_bytes());
        m[40..].copy_from_slice(&view_id.to_be_bytes());
        m
    }
}

impl BlockWithSig {
    /// The canonical encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        encode(self)
    }

    /// Decodes exactly one block with signature and checks its limits.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let b: BlockWithSig = decode_exact("block with signature", bytes)?;
        b.block.header.check_limits()?;
        b.block.body.check_limits()?;
        check_len(
            "commit bitmap",
            "bytes",
            b.commit_sig.bitmap.len(),
            MAX_BITMAP_LEN,
        )?;
        Ok(b)
    }
}

impl Committee {
    /// keccak256(RLP(keys)): what `Header::next_committee_hash` commits to.
    pub fn hash(&self) -> B256 {
        keccak256(&encode(&self.keys))
    }

    /// Members in the committee.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the committee has no members.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The canonical encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        encode(self)
    }

    /// Decodes a committee and checks its size limit.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let c: Committee = decode_exact("committee", bytes)?;
        check_len("committee", "members", c.keys.len(), MAX_COMMITTEE_SIZE)?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_block() -> Block {
        let body = Body {
            transfers: vec![Transfer {
                from: [1; 20],
                to: [2; 20],
                amount: 5,
                nonce: 0,
            }],
            next_committee: vec![],
        };
        Block {
            header: Header {
                parent_hash: [7; 32],
                number: 3,
                epoch: 0,
                shard_id: 0,
                view_id: 3,
                timestamp: 1_700_000_000,
                tx_root: body.tx_root(),
                state_root: [9; 32],
                last_commit_sig: [3; 96],
                last_commit_bitmap: Bytes::from_static(&[0xff]),
                next_committee_hash: ZERO_HASH,
            },
            body,
        }
    }

    #[test]
    fn block_round_trips_through_rlp() {
        let b = sample_block();
        assert_eq!(Block::from_bytes(&b.to_bytes()), Ok(b.clone()));
        assert_eq!(
            Header::from_bytes(&b.header.to_bytes()),
            Ok(b.header.clone())
        );
        assert_eq!(Body::from_bytes(&b.body.to_bytes()), Ok(b.body));
    }

    #[test]
    fn every_truncation_of_a_block_is_an_error() {
        let bytes = sample_block().to_bytes();
        for len in 0..bytes.len() {
            assert!(
                Block::from_bytes(&bytes[..len]).is_err(),
                "prefix of {len} bytes decoded"
            );
        }
    }

    #[test]
    fn trailing_bytes_are_an_error() {
        let mut bytes = sample_block().to_bytes();
        bytes.push(0);
        assert!(matches!(
            Block::from_bytes(&bytes),
            Err(DecodeError::Rlp { what: "block", .. })
        ));
    }

    #[test]
    fn oversized_bitmap_is_refused_by_name() {
        let mut h = sample_block().header;
        h.last_commit_bitmap = Bytes::from(vec![0u8; MAX_BITMAP_LEN + 1]);
        let err = Header::from_bytes(&h.to_bytes()).unwrap_err();
        assert!(err.to_string().contains("header bitmap"), "{err}");
    }

    #[test]
    fn header_hash_is_keccak_of_its_rlp() {
        let h = sample_block().header;
        assert_eq!(h.hash(), keccak256(&h.to_bytes()));
    }
}
