//! The [`ChainBackend`] trait: everything the sync engine and the server need
//! from a chain. The project's LMDB [`crate::store::Store`] implements it; an
//! embedder can implement it over its own chain database.

use std::sync::Arc;

use super::error::VerifyError;
use super::sealed::SealedBlock;
use super::spec::ChainSpec;
use super::stage_id::StageId;
use super::types::{Block, BlockWithSig, CommitSig, Committee, Header};
use crate::crypto::B256;

/// The chain head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadInfo {
    /// Height of the head block.
    pub number: u64,
    /// Hash of the head block.
    pub hash: B256,
    /// Epoch of the head block.
    pub epoch: u64,
}

/// A batch of verified blocks to insert atomically, with the stage progress
/// it completes. Blocks must be contiguous and extend the current head.
/// Blocks are sealed (decoded, hashed, with their raw bytes), so a store
/// writes the bytes received and the hash computed once, never re-encoding
/// or re-hashing them; the sync hands its batches over without a copy.
#[derive(Clone, Debug, Default)]
pub struct InsertBatch {
    /// Blocks in ascending order, each with its commit signature.
    pub blocks: Arc<Vec<SealedBlock>>,
    /// Stage checkpoints written in the same transaction.
    pub progress: Vec<(StageId, u64)>,
}

impl InsertBatch {
    /// A batch of blocks built or decoded elsewhere: each is sealed
    /// (encoded and hashed once) here.
    pub fn seal(blocks: Vec<BlockWithSig>, progress: Vec<(StageId, u64)>) -> Self {
        InsertBatch {
            blocks: Arc::new(blocks.into_iter().map(SealedBlock::seal).collect()),
            progress,
        }
    }
}

/// Errors of a chain backend.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The storage layer failed (a local fault: blame no peer).
    #[error("storage: {0}")]
    Storage(String),
    /// The batch does not extend the head.
    #[error("batch starts at block {got}, head is {head}")]
    NotContiguous {
        /// The head number.
        head: u64,
        /// The first block number of the batch.
        got: u64,
    },
    /// A block of the batch is invalid (executing it failed, or its state
    /// root differs): nothing of the batch was written.
    #[error("invalid block: {0}")]
    Invalid(#[from] VerifyError),
}

/// What the sync engine and the server need from a chain: read canonical
/// blocks, insert a verified batch. Six methods are required; the rest
/// have defaults derived from them, which a backend may override to be
/// faster (the project's LMDB [`crate::store::Store`] overrides most).
///
/// Implementations must be safe to read from many threads while one thread
/// inserts; readers see either the whole of an inserted batch or none of it.
pub trait ChainBackend: Send + Sync {
    /// The identity of the chain (network, shard, epoch length, genesis).
    fn chain_spec(&self) -> &ChainSpec;
    /// The current head.
    fn head(&self) -> Result<HeadInfo, BackendError>;
    /// Hash of canonical block `number`.
    fn hash_by_number(&self, number: u64) -> Result<Option<B256>, BackendError>;
    /// Number of the canonical block with `hash`.
    fn number_by_hash(&self, hash: &B256) -> Result<Option<u64>, BackendError>;
    /// Canonical block `number` with its commit signature, as served to
    /// peers (`None` above the head, or without a signature).
    fn block_with_sig(&self, number: u64) -> Result<Option<BlockWithSig>, BackendError>;
    /// Inserts a verified batch atomically (executing it, if the backend
    /// keeps state: the engine never executes; the project's store does
    /// it through its [`Executor`](super::Executor)); returns the new head. `batch.progress` is the sync's
    /// checkpoint for the stages it completes: a backend may keep it or
    /// ignore it (the engine reads its checkpoints from its staging).
    fn insert_verified_batch(&self, batch: &InsertBatch) -> Result<HeadInfo, BackendError>;

    /// Header of canonical block `number`.
    fn header_by_number(&self, number: u64) -> Result<Option<Header>, BackendError> {
        Ok(self.block_with_sig(number)?.map(|b| b.block.header))
    }

    /// Block `number` (header and body).
    fn block_by_number(&self, number: u64) -> Result<Option<Block>, BackendError> {
        Ok(self.block_with_sig(number)?.map(|b| b.block))
    }

    /// Commit signature of block `number`.
    fn commit_sig(&self, number: u64) -> Result<Option<CommitSig>, BackendError> {
        Ok(self.block_with_sig(number)?.map(|b| b.commit_sig))
    }

    /// Committee of `epoch`: named by the genesis block for epoch 0, and
    /// by the last block of the epoch before for the others.
    fn committee(&self, epoch: u64) -> Result<Option<Committee>, BackendError> {
        let named_by = match epoch.checked_sub(1) {
            None => 0,
            Some(before) => self.chain_spec().epoch_last_block(before),
        };
        Ok(self.block_by_number(named_by)?.map(|b| b.body.committee()))
    }

    /// Takes the chain back to block `number` (the sync calls it when it
    /// proves its head is on an invalid branch): removes every block above
    /// it and restores the state, atomically. Backends that cannot unwind
    /// keep this default, which refuses.
    fn unwind_to(&self, number: u64) -> Result<HeadInfo, BackendError> {
        Err(BackendError::Storage(format!(
            "this chain backend cannot unwind (to block {number})"
        )))
    }

    /// Header of the block with `hash`.
    fn header_by_hash(&self, hash: &B256) -> Result<Option<Header>, BackendError> {
        match self.number_by_hash(hash)? {
            Some(n) => self.header_by_number(n),
            None => Ok(None),
        }
    }

    /// Block with `hash`.
    fn block_by_hash(&self, hash: &B256) -> Result<Option<Block>, BackendError> {
        match self.number_by_hash(hash)? {
            Some(n) => self.block_by_number(n),
            None => Ok(None),
        }
    }

    /// RLP of [`BlockWithSig`] for block `number`, as served to peers.
    /// Backends that store encoded blocks override this to skip re-encoding.
    fn block_with_sig_bytes(&self, number: u64) -> Result<Option<Vec<u8>>, BackendError> {
        Ok(self.block_with_sig(number)?.map(|b| b.to_bytes()))
    }

    /// RLP of [`BlockWithSig`] for the block with `hash`, as served to peers
    /// (`GetBlocksByHashes`). By default: its number, then
    /// [`ChainBackend::block_with_sig_bytes`].
    fn block_with_sig_bytes_by_hash(&self, hash: &B256) -> Result<Option<Vec<u8>>, BackendError> {
        match self.number_by_hash(hash)? {
            Some(n) => self.block_with_sig_bytes(n),
            None => Ok(None),
        }
    }
}
