//! Byzantine serving peers for `streamsync localnet --byzantine` and the
//! tests: a [`ChainBackend`] wrapper that corrupts what it serves.

pub mod flood;
pub mod fork;

use std::sync::Arc;

use parking_lot::Mutex;

use crate::chain::backend::InsertBatch;
use crate::chain::{
    BackendError, Block, BlockWithSig, ChainBackend, ChainSpec, CommitSig, Committee, HeadInfo,
    Header,
};
use crate::crypto::B256;
pub use fork::ForgedFork;

/// How a byzantine peer misbehaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Behaviour {
    /// Serves blocks whose body does not match the header (tx root).
    WrongBodies,
    /// Serves blocks with corrupted commit signatures.
    BadSignatures,
    /// Claims a head a million blocks ahead.
    LyingHeights,
    /// Serves undecodable bytes instead of blocks.
    Garbage,
    /// Never answers (set up with the server's `answer = false`).
    Silence,
    /// Serves a fork from the last block of epoch 1 (of epoch 0 on a chain
    /// that short): a forged hand-over naming the attacker's committee, then
    /// blocks signed by it ([`ForgedFork`]). Its hashes are the fork's and it
    /// serves the fork by hash, but answers "absent" by number and for epoch
    /// blocks past the fork, so SyncEpoch cannot establish the next
    /// committee from it (the most dangerous variant: only the verification
    /// of the downloaded blocks stands in the way).
    ForgedFork,
    /// Answers `GetBlockHashes` with hashes no block has (every real hash
    /// with one byte flipped); serves real blocks honestly.
    FakeHashes,
    /// Every 16th block (numbers 7, 23, 39, …) is replaced by a forged copy
    /// (another view id, so another hash) whose child no longer links to
    /// it; its hash is what `GetBlockHashes` answers and the forged block is
    /// what it serves. It serves no other block by hash, so the honest
    /// block after each forged one comes from someone else.
    BrokenLinks,
}

impl Behaviour {
    /// The behaviours, in the order `localnet --byzantine N` hands them out.
    pub const ALL: [Behaviour; 8] = [
        Behaviour::WrongBodies,
        Behaviour::BadSignatures,
        Behaviour::LyingHeights,
        Behaviour::Garbage,
        Behaviour::Silence,
        Behaviour::ForgedFork,
        Behaviour::FakeHashes,
        Behaviour::BrokenLinks,
    ];

    /// The name used on the command line (`forged-fork`, …).
    pub fn name(self) -> &'static str {
        match self {
            Behaviour::WrongBodies => "wrong-bodies",
            Behaviour::BadSignatures => "bad-signatures",
            Behaviour::LyingHeights => "lying-heights",
            Behaviour::Garbage => "garbage",
            Behaviour::Silence => "silence",
            Behaviour::ForgedFork => "forged-fork",
            Behaviour::FakeHashes => "fake-hashes",
            Behaviour::BrokenLinks => "broken-links",
        }
    }
}

impl std::str::FromStr for Behaviour {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Behaviour::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Behaviour::ALL.iter().map(|b| b.name()).collect();
                format!("unknown behaviour {s:?}: one of {}", names.join(", "))
            })
    }
}

/// Period of [`Behaviour::BrokenLinks`]' forged blocks.
const BROKEN_LINK_EVERY: u64 = 16;
/// Offset of [`Behaviour::BrokenLinks`]' forged blocks in their period.
const BROKEN_LINK_AT: u64 = 7;

/// A backend serving corrupted data.
pub struct ByzantineBackend {
    inner: Arc<dyn ChainBackend>,
    behaviour: Behaviour,
    fork: Option<Mutex<ForgedFork>>,
    /// `BrokenLinks`: number of each forged hash handed out.
    broken_hashes: Mutex<std::collections::HashMap<B256, u64>>,
}

impl std::fmt::Debug for ByzantineBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ByzantineBackend")
            .field("behaviour", &self.behaviour)
            .finish()
    }
}

impl ByzantineBackend {
    /// Wraps `inner`. A `ForgedFork` peer forges its whole fork here (one
    /// signature per block), so it answers as fast as an honest peer.
    pub fn new(inner: Arc<dyn ChainBackend>, behaviour: Behaviour) -> Self {
        let fork = (behaviour == Behaviour::ForgedFork)
            .then(|| {
                let spec = inner.chain_spec();
                let head = inner.head().ok()?.number;
                let at = [1, 0]
                    .into_iter()
                    .map(|e| spec.epoch_last_block(e))
                    .find(|&n| n < head)?;
                let size = inner.committee(0).ok()??.keys.len() as u32;
                ForgedFork::new(spec, at, size, 0xbad).ok().map(Mutex::new)
            })
            .flatten();
        let b = ByzantineBackend {
            inner,
            behaviour,
            fork,
            broken_hashes: Mutex::default(),
        };
        if let Ok(head) = b.inner.head() {
            let _ = b.forged(head.number);
        }
        b
    }

    /// The forged block `n` of a `ForgedFork` peer (`None` below its
    /// hand-over or for other behaviours).
    fn forged(&self, n: u64) -> Option<BlockWithSig> {
        let mut f = self.fork.as_ref()?.lock();
        f.block(n, |k| self.inner.block_with_sig(k).ok().flatten())
            .cloned()
    }

    /// `BrokenLinks`' forged copy of block `n`, if `n` is one it forges.
    fn broken(&self, n: u64) -> Option<BlockWithSig> {
        if self.behaviour != Behaviour::BrokenLinks || n % BROKEN_LINK_EVERY != BROKEN_LINK_AT {
            return None;
        }
        let mut b = self.inner.block_with_sig(n).ok()??;
        b.block.header.view_id += 1;
        Some(b)
    }

    /// The block served as number `n`: forged where the behaviour forges.
    fn served(&self, n: u64) -> Result<Option<BlockWithSig>, BackendError> {
        if let Some(b) = self.forged(n).or_else(|| self.broken(n)) {
            return Ok(Some(b));
        }
        self.inner.block_with_sig(n)
    }
}

impl ChainBackend for ByzantineBackend {
    fn chain_spec(&self) -> &ChainSpec {
        self.inner.chain_spec()
    }

    fn head(&self) -> Result<HeadInfo, BackendError> {
        let mut h = self.inner.head()?;
        if self.behaviour == Behaviour::LyingHeights {
            h.number += 1_000_000;
        }
        Ok(h)
    }

    fn hash_by_number(&self, number: u64) -> Result<Option<B256>, BackendError> {
        if let Some(b) = self.forged(number) {
            return Ok(Some(b.block.hash()));
        }
        if let Some(b) = self.broken(number) {
            let hash = b.block.hash();
            self.broken_hashes.lock().insert(hash, number);
            return Ok(Some(hash));
        }
        let h = self.inner.hash_by_number(number)?;
        if self.behaviour == Behaviour::FakeHashes {
            return Ok(h.map(|mut h| {
                h[31] ^= 0x5a;
                h
            }));
        }
        Ok(h)
    }

    fn number_by_hash(&self, hash: &B256) -> Result<Option<u64>, BackendError> {
        if let Some(f) = &self.fork {
            if let Some(n) = f.lock().number_of(hash) {
                return Ok(Some(n));
            }
        }
        let n = self.inner.number_by_hash(hash)?;
        match self.behaviour {
            // Real blocks at or past the fork are not on this peer's chain.
            Behaviour::ForgedFork => {
                let at = self
                    .fork
                    .as_ref()
                    .map_or(u64::MAX, |f| f.lock().hand_over());
                Ok(n.filter(|n| *n < at))
            }
            // Serves only its forged blocks by hash.
            Behaviour::BrokenLinks => Ok(self.broken_hashes.lock().get(hash).copied()),
            _ => Ok(n),
        }
    }

    fn header_by_number(&self, number: u64) -> Result<Option<Header>, BackendError> {
        Ok(self.served(number)?.map(|b| b.block.header))
    }

    fn block_by_number(&self, number: u64) -> Result<Option<Block>, BackendError> {
        Ok(self.served(number)?.map(|b| b.block))
    }

    fn commit_sig(&self, number: u64) -> Result<Option<CommitSig>, BackendError> {
        Ok(self.served(number)?.map(|b| b.commit_sig))
    }

    fn committee(&self, epoch: u64) -> Result<Option<Committee>, BackendError> {
        self.inner.committee(epoch)
    }

    fn insert_verified_batch(&self, batch: &InsertBatch) -> Result<HeadInfo, BackendError> {
        self.inner.insert_verified_batch(batch)
    }

    fn unwind_to(&self, number: u64) -> Result<HeadInfo, BackendError> {
        self.inner.unwind_to(number)
    }

    fn block_with_sig_bytes_by_hash(&self, hash: &B256) -> Result<Option<Vec<u8>>, BackendError> {
        if let Some(f) = &self.fork {
            let n = f.lock().number_of(hash);
            if let Some(n) = n {
                return Ok(self.forged(n).map(|b| b.to_bytes()));
            }
        }
        match self.number_by_hash(hash)? {
            Some(n) => self.block_with_sig_bytes(n),
            None => Ok(None),
        }
    }

    fn block_with_sig_bytes(&self, number: u64) -> Result<Option<Vec<u8>>, BackendError> {
        if self.forged(number).is_some() {
            // By number (and as an epoch block) the fork is "absent".
            return Ok(None);
        }
        let Some(mut b) = self.served(number)? else {
            return Ok(None);
        };
        Ok(Some(match self.behaviour {
            Behaviour::WrongBodies => {
                match b.block.body.transfers.first_mut() {
                    Some(t) => t.amount += 1,
                    None => b.block.body.next_committee.push([7u8; 48]),
                }
                b.to_bytes()
            }
            Behaviour::BadSignatures => {
                b.commit_sig.signature[10] ^= 0x55;
                b.to_bytes()
            }
            Behaviour::Garbage => vec![0xde, 0xad, 0xbe, 0xef, number as u8],
            _ => b.to_bytes(),
        }))
    }

    fn block_with_sig(&self, number: u64) -> Result<Option<BlockWithSig>, BackendError> {
        self.served(number)
    }
}
