//! Block verification: parent links, tx roots, committee hand-over, quorum and
//! commit signatures (batched and parallel on rayon).
//!
//! Every check returns a [`VerifyError`] naming the block and the rule, so the
//! caller can blame exactly the peer that sent that block.
//!
//! Twenty generated blocks verified against the genesis committee:
//!
//! ```
//! use streamsync::chain::{generator::Generator, verify::{verify_segment, SigPolicy, CommitteeKeys}, GenesisSpec};
//! use std::sync::Arc;
//!
//! let spec = GenesisSpec { seed: 1, network: "localnet".into(), shard_id: 0,
//!                          epoch_len: 8, committee_size: 4, accounts: 8 };
//! let (mut gen, genesis) = Generator::new(spec, 2).unwrap();
//! let blocks: Vec<_> = (0..20).map(|_| gen.next_block().unwrap()).collect();
//! let chain = gen.chain_spec().clone();
//! let keys0 = Arc::new(CommitteeKeys::new(0, &genesis.block.body.committee(), 0).unwrap());
//! let parent = (&genesis.block.header, &genesis.block.hash());
//! let check = verify_segment(&chain, Some(parent), &blocks, SigPolicy::All,
//!                            |e| (e == 0).then(|| keys0.clone()));
//! assert!(check.is_valid());
//! assert_eq!(check.sigs_checked.len(), 20);
//! ```
//!
//! # Root of trust
//!
//! The node trusts the committee of epoch 0 (in its genesis) and nothing a
//! peer says. Every other committee is trusted only through a chain of
//! verified hand-overs: the last block of epoch `e` names the committee of
//! `e + 1`, and that block's commit signature must verify under the
//! committee of `e`, already trusted. SyncEpoch walks that chain ahead of the
//! download (each epoch block signed by the committee the previous one
//! named); the node's own chain and the committees it stored are the same
//! chain, already walked. Those committees are the *established* ones.
//!
//! # Sampling (`VerifyAllSig = false`)
//!
//! [`verify_segment`] with [`SigPolicy::EveryNth`] verifies only some commit
//! signatures; the hash chain covers the rest (block `k`'s hash commits to
//! its parent's, so a verified signature over block `k` vouches for every
//! block below it down to the previous verified one). That is sound only if
//! each verified signature is checked under the right committee, so
//! [`sampled`] always includes:
//!
//! - every epoch's last block (the hand-over), checked under the committee
//!   of its own epoch: an unsampled block therefore always has a sampled
//!   block at or above it **in its own epoch**, and a forged hand-over (real
//!   blocks, then a last block naming the attacker's keys, then blocks the
//!   attacker signs) fails at the hand-over itself;
//! - the segment's last block, whose signature is the one sent beside it,
//!   so a committed batch is covered up to its last block.
//!
//! Committees the caller knows always win over a committee named inside the
//! segment; a segment whose hand-over names a committee other than the
//! established one is invalid ([`VerifyError::CommitteeMismatch`]). A
//! committee named inside the segment is used only for an epoch the caller
//! does not know, and only after the hand-over naming it was itself sampled.

use std::sync::Arc;

use rayon::prelude::*;

use super::error::VerifyError;
use super::spec::ChainSpec;
use super::types::{Block, BlockWithSig, CommitSig, Committee, Header};
use crate::crypto::hash::{to_hex, ZERO_HASH};
use crate::crypto::{check_batch, BatchCheck, BlsPublicKey, BlsSignature, SigJob, B256};

/// The validated public keys of one epoch's committee. Build it once per
/// epoch (decoding and subgroup-checking keys is the expensive part) and
/// share it with `Arc`.
#[derive(Clone, Debug)]
pub struct CommitteeKeys {
    /// The epoch these keys sign for.
    pub epoch: u64,
    /// Hash of the committee (what a hand-over header names).
    pub hash: B256,
    keys: Vec<BlsPublicKey>,
    all: Option<BlsPublicKey>,
}

impl CommitteeKeys {
    /// Decodes and validates every key of `committee`. `number` is the block
    /// that named the committee (for the error).
    pub fn new(epoch: u64, committee: &Committee, number: u64) -> Result<Self, VerifyError> {
        let keys = committee
            .keys
            .par_iter()
            .map(|k| BlsPublicKey::from_bytes(k))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| VerifyError::BadCommitteeKey { number, source })?;
        let all = BlsPublicKey::aggregate(&keys).ok();
        Ok(Self {
            epoch,
            hash: committee.hash(),
            keys,
            all,
        })
    }

    /// Members in the committee.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the committee is empty.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The aggregate key of the signers marked in `bitmap` (after
    /// [`check_quorum`]). A full bitmap reuses the cached aggregate.
    pub fn signers_key(&self, number: u64, bitmap: &[u8]) -> Result<BlsPublicKey, VerifyError> {
        check_quorum(number, bitmap, self.keys.len())?;
        let signers = self
            .keys
            .iter()
            .enumerate()
            .filter(|(i, _)| bitmap[i / 8] & (1 << (i % 8)) != 0);
        if signers.clone().count() == self.keys.len() {
            if let Some(all) = &self.all {
                return Ok(all.clone());
            }
        }
        BlsPublicKey::aggregate(signers.map(|(_, k)| k))
            .map_err(|source| VerifyError::BadBls { number, source })
    }
}

/// Checks a signer bitmap against a committee of `size`: exactly
/// ceil(size/8) bytes, no bits set past `size`, and at least 2/3 of the
/// members signing (3 × signers ≥ 2 × size). Returns the signer count.
pub fn check_quorum(number: u64, bitmap: &[u8], size: usize) -> Result<usize, VerifyError> {
    let bad = |reason: String| VerifyError::BadQuorum { number, reason };
    if size == 0 {
        return Err(bad("empty committee".into()));
    }
    let want = size.div_ceil(8);
    if bitmap.len() != want {
        return Err(bad(format!(
            "bitmap is {} bytes, committee of {size} needs {want}",
            bitmap.len()
        )));
    }
    let spare = want * 8 - size;
    if spare > 0 && bitmap[want - 1] >> (8 - spare) != 0 {
        return Err(bad("bits set past the committee size".into()));
    }
    let signers: usize = bitmap.iter().map(|b| b.count_ones() as usize).sum();
    if signers * 3 < size * 2 {
        return Err(bad(format!("{signers} of {size} signed, need 2/3")));
    }
    Ok(signers)
}

/// Prepares the signature check of block (`number`, `hash`, `view_id`)
/// committed by `commit` under `keys`.
pub fn sig_job(
    number: u64,
    hash: &B256,
    view_id: u64,
    commit: &CommitSig,
    keys: &CommitteeKeys,
) -> Result<SigJob, VerifyError> {
    let pk = keys.signers_key(number, &commit.bitmap)?;
    let sig = BlsSignature::from_bytes(&commit.signature)
        .map_err(|source| VerifyError::BadBls { number, source })?;
    Ok(SigJob {
        msg: CommitSig::message(hash, number, view_id).to_vec(),
        pk,
        sig,
    })
}

/// Checks what a header must satisfy on its own: its epoch follows from its
/// number, and it belongs to this shard ([`VerifyError::BadHeader`]).
pub fn verify_header(spec: &ChainSpec, h: &Header) -> Result<(), VerifyError> {
    let bad = |reason: String| VerifyError::BadHeader {
        number: h.number,
        reason,
    };
    if h.epoch != spec.epoch_of(h.number) {
        return Err(bad(format!(
            "epoch {} should be {}",
            h.epoch,
            spec.epoch_of(h.number)
        )));
    }
    if h.shard_id != spec.shard_id {
        return Err(bad(format!(
            "shard {} should be {}",
            h.shard_id, spec.shard_id
        )));
    }
    Ok(())
}

/// Checks that `child` extends `parent` (whose hash is `parent_hash`):
/// number ([`VerifyError::BadHeader`]), parent hash and non-decreasing
/// timestamp ([`VerifyError::BadLink`]), and [`verify_header`].
pub fn verify_link(
    spec: &ChainSpec,
    parent: &Header,
    parent_hash: &B256,
    child: &Header,
) -> Result<(), VerifyError> {
    let number = child.number;
    if Some(child.number) != parent.number.checked_add(1) {
        return Err(VerifyError::BadHeader {
            number,
            reason: format!("number follows parent {}", parent.number),
        });
    }
    verify_header(spec, child)?;
    let link = |reason: String| VerifyError::BadLink { number, reason };
    if child.parent_hash != *parent_hash {
        return Err(link(format!(
            "parent hash {} is not {}",
            to_hex(&child.parent_hash),
            to_hex(parent_hash)
        )));
    }
    if child.timestamp < parent.timestamp {
        return Err(link("timestamp before parent's".into()));
    }
    Ok(())
}

/// Checks a block's body against its header: tx root, and the committee
/// hand-over (an epoch's last block names a non-empty next committee whose
/// hash is in the header; no other block names one). Returns the next
/// committee when the block names one.
pub fn verify_body(spec: &ChainSpec, block: &Block) -> Result<Option<Committee>, VerifyError> {
    let number = block.number();
    let h = &block.header;
    if block.body.tx_root() != h.tx_root {
        return Err(VerifyError::TxRootMismatch { number });
    }
    let bad = |reason: &str| VerifyError::BadHandOver {
        number,
        reason: reason.to_string(),
    };
    let names_committee = number == 0 || spec.is_epoch_last(number);
    if !names_committee {
        if h.next_committee_hash != ZERO_HASH || !block.body.next_committee.is_empty() {
            return Err(bad("committee named outside an epoch's last block"));
        }
        return Ok(None);
    }
    if block.body.next_committee.is_empty() {
        return Err(bad("epoch's last block names no committee"));
    }
    let committee = block.body.committee();
    if committee.hash() != h.next_committee_hash {
        return Err(bad("next committee does not match its hash"));
    }
    Ok(Some(committee))
}

/// Which commit signatures of a segment to verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SigPolicy {
    /// Every block's (`VerifyAllSig = true`).
    All,
    /// The last of every `n` blocks, every epoch's last block and the
    /// segment's last block; the hash chain covers the rest
    /// (`VerifyHeaderBatchSize`). See the module docs.
    EveryNth(usize),
}

/// Indices (ascending) of the blocks of a segment of `len` blocks starting
/// at block `first` whose commit signatures `policy` verifies. Always holds
/// the last index and, under sampling, the index of every epoch's last
/// block (see the module docs for why).
pub fn sampled(spec: &ChainSpec, first: u64, len: usize, policy: SigPolicy) -> Vec<usize> {
    let last = len.saturating_sub(1);
    (0..len)
        .filter(|&i| match policy {
            SigPolicy::All => true,
            SigPolicy::EveryNth(n) => {
                i == last || (i + 1) % n.max(1) == 0 || spec.is_epoch_last(first + i as u64)
            }
        })
        .collect()
}

/// What [`verify_segment`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SegmentCheck {
    /// Every invalid block found, in block order (empty: the segment is
    /// valid). Structural errors stop at the first bad block, since later
    /// links depend on it.
    pub errors: Vec<VerifyError>,
    /// Numbers of the blocks whose commit signatures were handed to the
    /// pairing check (whatever its result), ascending.
    pub sigs_checked: Vec<u64>,
}

impl SegmentCheck {
    /// Whether the segment is valid.
    pub fn is_valid(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Verifies a contiguous segment of blocks: links (to `parent`, a header
/// and its hash, when given; `None` checks the segment on its own), bodies,
/// committee hand-overs and, per `policy` (see [`sampled`]), commit
/// signatures in parallel. `committee_of(epoch)` supplies the established
/// committees; they always win over committees named inside the segment,
/// which are used only for epochs `committee_of` does not know. The commit
/// of an interior block is the one its child's header carries; the last
/// block's is the one sent with it.
pub fn verify_segment(
    spec: &ChainSpec,
    parent: Option<(&Header, &B256)>,
    blocks: &[impl std::borrow::Borrow<BlockWithSig> + Sync],
    policy: SigPolicy,
    committee_of: impl Fn(u64) -> Option<Arc<CommitteeKeys>> + Sync,
) -> SegmentCheck {
    verify_segment_with(spec, parent, blocks, policy, committee_of, check_batch)
}

/// [`verify_segment`] with the pairing check of the chosen signatures done
/// by `check` (which must answer exactly as [`check_batch`] would). The
/// simulator plugs in a memo of real checks shared by all its nodes, so a
/// thousand nodes verifying the same signature pay for one pairing.
pub fn verify_segment_with(
    spec: &ChainSpec,
    parent: Option<(&Header, &B256)>,
    blocks: &[impl std::borrow::Borrow<BlockWithSig> + Sync],
    policy: SigPolicy,
    committee_of: impl Fn(u64) -> Option<Arc<CommitteeKeys>> + Sync,
    pairing: impl FnOnce(&[SigJob]) -> BatchCheck,
) -> SegmentCheck {
    let blocks: Vec<&BlockWithSig> = blocks.iter().map(|b| b.borrow()).collect();
    let blocks = &blocks[..];
    let mut check = SegmentCheck::default();
    let mut named: Vec<Arc<CommitteeKeys>> = Vec::new();
    let mut prev = parent.map(|(h, hash)| (h, *hash));
    let mut hashes = Vec::with_capacity(blocks.len());
    for b in blocks {
        let h = &b.block.header;
        let structural = (|| {
            match prev {
                Some((ph, phash)) => verify_link(spec, ph, &phash, h)?,
                None => verify_header(spec, h)?,
            }
            if let Some(c) = verify_body(spec, &b.block)? {
                // Genesis names the committee of its own epoch 0.
                let epoch = if h.number == 0 { 0 } else { h.epoch + 1 };
                match committee_of(epoch) {
                    Some(known) if known.hash != c.hash() => {
                        return Err(VerifyError::CommitteeMismatch {
                            number: h.number,
                            epoch,
                            named: short_hex(&c.hash()),
                            established: short_hex(&known.hash),
                        })
                    }
                    Some(_) => {}
                    None => named.push(Arc::new(CommitteeKeys::new(epoch, &c, h.number)?)),
                }
            }
            Ok(())
        })();
        if let Err(e) = structural {
            check.errors.push(e);
            return check;
        }
        let hash = h.hash();
        hashes.push(hash);
        prev = Some((h, hash));
    }
    let keys_for = |epoch: u64| {
        committee_of(epoch).or_else(|| named.iter().find(|k| k.epoch == epoch).cloned())
    };
    let Some(first) = blocks.first().map(|b| b.block.number()) else {
        return check;
    };
    let chosen = sampled(spec, first, blocks.len(), policy);
    let prepared: Vec<Result<SigJob, VerifyError>> = chosen
        .par_iter()
        .map(|&i| {
            let h = &blocks[i].block.header;
            let commit = match blocks.get(i + 1) {
                Some(child) => child
                    .block
                    .header
                    .parent_commit()
                    .unwrap_or_else(|| blocks[i].commit_sig.clone()),
                None => blocks[i].commit_sig.clone(),
            };
            let keys = keys_for(h.epoch).ok_or(VerifyError::UnknownCommittee {
                number: h.number,
                epoch: h.epoch,
            })?;
            sig_job(h.number, &hashes[i], h.view_id, &commit, &keys)
        })
        .collect();
    let mut jobs = Vec::with_capacity(prepared.len());
    let mut numbers = Vec::with_capacity(prepared.len());
    for (i, p) in chosen.iter().zip(prepared) {
        match p {
            Ok(job) => {
                jobs.push(job);
                numbers.push(blocks[*i].block.number());
            }
            Err(e) => check.errors.push(e),
        }
    }
    let batch = pairing(&jobs);
    for bad in batch.bad {
        check.errors.push(VerifyError::BadSignature {
            number: numbers[bad],
        });
    }
    // What the pairing check reports it checked (all jobs, in order).
    numbers.truncate(batch.checked);
    check.sigs_checked = numbers;
    check.errors.sort_by_key(|e| e.block_number());
    check
}

fn short_hex(h: &B256) -> String {
    to_hex(&h[..8])
}

/// Fully verifies one block against its parent and committee: link, body,
/// hand-over, quorum and commit signature.
pub fn verify_block(
    spec: &ChainSpec,
    parent: &Header,
    block: &BlockWithSig,
    keys: &CommitteeKeys,
) -> Result<(), VerifyError> {
    let parent_hash = parent.hash();
    let check = verify_segment(
        spec,
        Some((parent, &parent_hash)),
        std::slice::from_ref(block),
        SigPolicy::All,
        |e| (e == keys.epoch).then(|| Arc::new(keys.clone())),
    );
    match check.errors.into_iter().next() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Checks that `block` hashes to `expected` (from the downloaded hash chain).
pub fn verify_hash(block: &Block, expected: &B256) -> Result<B256, VerifyError> {
    let got = block.hash();
    if &got != expected {
        return Err(VerifyError::HashMismatch {
            number: block.number(),
            got: to_hex(&got),
            expected: to_hex(expected),
        });
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_needs_two_thirds() {
        // 9 members: 6 signers pass, 5 fail.
        assert_eq!(check_quorum(1, &[0b0011_1111, 0], 9), Ok(6));
        assert!(check_quorum(1, &[0b0001_1111, 0], 9).is_err());
    }

    #[test]
    fn quorum_bitmap_length_is_exact() {
        assert!(check_quorum(1, &[0xff], 9).is_err());
        assert!(check_quorum(1, &[0xff, 0x01, 0], 9).is_err());
    }

    #[test]
    fn quorum_refuses_padding_bits() {
        assert!(check_quorum(1, &[0xff, 0b0000_0011], 9).is_err());
    }
}
