//! Byzantine serving peers for `streamsync localnet --byzantine` and the
//! tests: a [`ChainBackend`] wrapper that corrupts what it serves.

use std::sync::Arc;

use crate::chain::backend::InsertBatch;
use crate::chain::{
    BackendError, Block, BlockWithSig, ChainBackend, ChainSpec, CommitSig, Committee, HeadInfo,
    Header,
};
use crate::crypto::B256;
use crate::sync::StageId;

/// How a byzantine peer misbehaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
}

impl Behaviour {
    /// The behaviours, in the order `localnet` hands them out.
    pub const ALL: [Behaviour; 5] = [
        Behaviour::WrongBodies,
        Behaviour::BadSignatures,
        Behaviour::LyingHeights,
        Behaviour::Garbage,
        Behaviour::Silence,
    ];
}

/// A backend serving corrupted data.
pub struct ByzantineBackend {
    inner: Arc<dyn ChainBackend>,
    behaviour: Behaviour,
}

impl std::fmt::Debug for ByzantineBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ByzantineBackend")
            .field("behaviour", &self.behaviour)
            .finish()
    }
}

impl ByzantineBackend {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn ChainBackend>, behaviour: Behaviour) -> Self {
        ByzantineBackend { inner, behaviour }
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
        self.inner.hash_by_number(number)
    }

    fn number_by_hash(&self, hash: &B256) -> Result<Option<u64>, BackendError> {
        self.inner.number_by_hash(hash)
    }

    fn header_by_number(&self, number: u64) -> Result<Option<Header>, BackendError> {
        self.inner.header_by_number(number)
    }

    fn block_by_number(&self, number: u64) -> Result<Option<Block>, BackendError> {
        self.inner.block_by_number(number)
    }

    fn commit_sig(&self, number: u64) -> Result<Option<CommitSig>, BackendError> {
        self.inner.commit_sig(number)
    }

    fn committee(&self, epoch: u64) -> Result<Option<Committee>, BackendError> {
        self.inner.committee(epoch)
    }

    fn stage_progress(&self, stage: StageId) -> Result<u64, BackendError> {
        self.inner.stage_progress(stage)
    }

    fn insert_verified_batch(&self, batch: &InsertBatch) -> Result<HeadInfo, BackendError> {
        self.inner.insert_verified_batch(batch)
    }

    fn block_with_sig_bytes(&self, number: u64) -> Result<Option<Vec<u8>>, BackendError> {
        let Some(mut b) = self.inner.block_with_sig(number)? else {
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
            Behaviour::LyingHeights | Behaviour::Silence => b.to_bytes(),
        }))
    }

    fn block_with_sig(&self, number: u64) -> Result<Option<BlockWithSig>, BackendError> {
        self.inner.block_with_sig(number)
    }
}
