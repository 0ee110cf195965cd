//! An attacker's fork of a real chain, the attack of issue "forged committee
//! hand-over": real blocks up to an epoch's last block, a forged last block
//! naming the attacker's own committee, then blocks the attacker signs with
//! it. Transfers, state roots, view ids and timestamps are the real ones, so
//! every forged block is well formed and executes: only the chain of
//! committees (see `chain::verify`'s "Root of trust") can refuse it.

use std::collections::HashMap;

use alloy_rlp::Bytes;

use crate::chain::spec::committee_secret;
use crate::chain::{BlockWithSig, ChainSpec, CommitSig, Committee};
use crate::crypto::hash::{keccak256_parts, ZERO_HASH};
use crate::crypto::{BlsError, BlsSecretKey, B256};

/// The forged blocks of one fork, built lazily from the real chain.
pub struct ForgedFork {
    spec: ChainSpec,
    hand_over: u64,
    committee: Committee,
    /// Sum of the attacker's secret keys: one signature stands for all.
    signer: BlsSecretKey,
    bitmap: Bytes,
    /// Forged blocks `hand_over..`, in order.
    blocks: Vec<BlockWithSig>,
    numbers: HashMap<B256, u64>,
}

impl std::fmt::Debug for ForgedFork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForgedFork")
            .field("hand_over", &self.hand_over)
            .field("forged", &self.blocks.len())
            .finish()
    }
}

impl ForgedFork {
    /// A fork whose first forged block is `hand_over` (an epoch's last
    /// block), with an attacker committee of `size` keys derived from
    /// `attacker_seed`.
    pub fn new(
        spec: &ChainSpec,
        hand_over: u64,
        size: u32,
        attacker_seed: u64,
    ) -> Result<Self, BlsError> {
        let seed = keccak256_parts(&[b"streamsync-attacker", &attacker_seed.to_be_bytes()]);
        let secrets = (0..size)
            .map(|slot| committee_secret(&seed, 0, slot))
            .collect::<Result<Vec<_>, _>>()?;
        let committee = Committee {
            keys: secrets.iter().map(|k| k.public_key().to_bytes()).collect(),
        };
        let signer = BlsSecretKey::sum(&secrets).ok_or(BlsError::EmptyAggregate)?;
        let mut bitmap = vec![0u8; (size as usize).div_ceil(8)];
        for i in 0..size as usize {
            bitmap[i / 8] |= 1 << (i % 8);
        }
        Ok(ForgedFork {
            spec: spec.clone(),
            hand_over,
            committee,
            signer,
            bitmap: Bytes::from(bitmap),
            blocks: Vec::new(),
            numbers: HashMap::new(),
        })
    }

    /// The first forged block (an epoch's last block).
    pub fn hand_over(&self) -> u64 {
        self.hand_over
    }

    /// The attacker's committee, which the forged hand-over names.
    pub fn committee(&self) -> &Committee {
        &self.committee
    }

    /// Forged block `n` (≥ the hand-over), forging every block up to it
    /// from the real blocks `real(k)`; `None` below the hand-over or past
    /// the real chain.
    pub fn block(
        &mut self,
        n: u64,
        real: impl Fn(u64) -> Option<BlockWithSig>,
    ) -> Option<&BlockWithSig> {
        let idx = usize::try_from(n.checked_sub(self.hand_over)?).ok()?;
        while self.blocks.len() <= idx {
            let k = self.hand_over + self.blocks.len() as u64;
            let forged = self.forge(real(k)?);
            self.numbers.insert(forged.block.hash(), k);
            self.blocks.push(forged);
        }
        self.blocks.get(idx)
    }

    /// The number of the forged block with `hash`, if forged so far.
    pub fn number_of(&self, hash: &B256) -> Option<u64> {
        self.numbers.get(hash).copied()
    }

    fn forge(&self, mut b: BlockWithSig) -> BlockWithSig {
        let n = b.block.number();
        let h = &mut b.block.header;
        if let Some(prev) = self.blocks.last() {
            h.parent_hash = prev.block.hash();
            h.last_commit_sig = prev.commit_sig.signature;
            h.last_commit_bitmap = prev.commit_sig.bitmap.clone();
        }
        if self.spec.is_epoch_last(n) {
            b.block.body.next_committee = self.committee.keys.clone();
            h.next_committee_hash = self.committee.hash();
        } else {
            h.next_committee_hash = ZERO_HASH;
        }
        let hash = h.hash();
        let sig = self
            .signer
            .sign(&CommitSig::message(&hash, n, h.view_id))
            .to_bytes();
        b.commit_sig = CommitSig {
            signature: sig,
            bitmap: self.bitmap.clone(),
        };
        b
    }
}
