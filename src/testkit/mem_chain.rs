//! An in-memory chain store: the [`ChainBackend`] of a simulated node.
//!
//! It keeps what `store::Store` keeps (headers, bodies, hashes, commit
//! signatures, committees, accounts, per-block account changes for
//! unwinding, stage checkpoints) in maps behind one lock, executes each
//! inserted block and checks its state root, and inserts or unwinds a batch
//! atomically. A crashed simulated node keeps its `MemChain` (what was
//! committed survives) and loses everything else.

use std::collections::{BTreeMap, HashMap};

use parking_lot::RwLock;

use crate::chain::backend::InsertBatch;
use crate::chain::executor::Transfers;
use crate::chain::state::{execute_block, Account, Address, ApplyError};
use crate::chain::{
    BackendError, Block, BlockWithSig, ChainBackend, ChainSpec, CommitSig, Committee, Genesis,
    HeadInfo, Header, StageId,
};
use crate::crypto::B256;

/// One stored block.
#[derive(Clone, Debug)]
struct Stored {
    block: Block,
    hash: B256,
    /// The accounts its execution changed, with their values before.
    before: Vec<(Address, Option<Account>)>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Canonical blocks by number; index = number.
    blocks: Vec<Stored>,
    by_hash: HashMap<B256, u64>,
    /// Commit signature of block n (from block n + 1's header, or the one
    /// sent with the head).
    sigs: HashMap<u64, CommitSig>,
    committees: BTreeMap<u64, Committee>,
    accounts: HashMap<Address, Account>,
    progress: HashMap<StageId, u64>,
}

/// An in-memory [`ChainBackend`]; see the module docs.
#[derive(Debug)]
pub struct MemChain {
    spec: ChainSpec,
    inner: RwLock<Inner>,
}

impl MemChain {
    /// A chain holding `genesis` only.
    pub fn new(genesis: &Genesis) -> Result<Self, BackendError> {
        let spec = genesis
            .chain_spec()
            .map_err(|e| BackendError::Storage(e.to_string()))?;
        let b = &genesis.block;
        let hash = b.hash();
        let mut inner = Inner::default();
        inner.by_hash.insert(hash, 0);
        inner.blocks.push(Stored {
            block: b.clone(),
            hash,
            before: Vec::new(),
        });
        inner.committees.insert(0, b.body.committee());
        inner.accounts = genesis.alloc.iter().copied().collect();
        Ok(MemChain {
            spec,
            inner: RwLock::new(inner),
        })
    }

    /// Blocks stored, genesis included.
    pub fn len(&self) -> usize {
        self.inner.read().blocks.len()
    }

    /// Whether only genesis is stored (never empty).
    pub fn is_empty(&self) -> bool {
        false
    }
}

fn head_of(inner: &Inner) -> HeadInfo {
    let s = inner.blocks.last().expect("genesis is always stored");
    HeadInfo {
        number: s.block.number(),
        hash: s.hash,
        epoch: s.block.header.epoch,
    }
}

impl ChainBackend for MemChain {
    fn chain_spec(&self) -> &ChainSpec {
        &self.spec
    }

    fn head(&self) -> Result<HeadInfo, BackendError> {
        Ok(head_of(&self.inner.read()))
    }

    fn hash_by_number(&self, number: u64) -> Result<Option<B256>, BackendError> {
        Ok(self
            .inner
            .read()
            .blocks
            .get(number as usize)
            .map(|s| s.hash))
    }

    fn number_by_hash(&self, hash: &B256) -> Result<Option<u64>, BackendError> {
        Ok(self.inner.read().by_hash.get(hash).copied())
    }

    fn header_by_number(&self, number: u64) -> Result<Option<Header>, BackendError> {
        Ok(self
            .inner
            .read()
            .blocks
            .get(number as usize)
            .map(|s| s.block.header.clone()))
    }

    fn block_by_number(&self, number: u64) -> Result<Option<Block>, BackendError> {
        Ok(self
            .inner
            .read()
            .blocks
            .get(number as usize)
            .map(|s| s.block.clone()))
    }

    fn commit_sig(&self, number: u64) -> Result<Option<CommitSig>, BackendError> {
        Ok(self.inner.read().sigs.get(&number).cloned())
    }

    fn committee(&self, epoch: u64) -> Result<Option<Committee>, BackendError> {
        Ok(self.inner.read().committees.get(&epoch).cloned())
    }

    fn block_with_sig(&self, number: u64) -> Result<Option<BlockWithSig>, BackendError> {
        let inner = self.inner.read();
        let (Some(s), Some(sig)) = (inner.blocks.get(number as usize), inner.sigs.get(&number))
        else {
            return Ok(None);
        };
        Ok(Some(BlockWithSig {
            block: s.block.clone(),
            commit_sig: sig.clone(),
        }))
    }

    fn insert_verified_batch(&self, batch: &InsertBatch) -> Result<HeadInfo, BackendError> {
        let mut guard = self.inner.write();
        let inner = &mut *guard;
        let head = head_of(inner);
        // Everything is checked and executed first, then applied: a failing
        // batch leaves nothing behind.
        let mut parent = inner.blocks[head.number as usize].block.header.clone();
        let mut parent_hash = head.hash;
        let mut overlay: HashMap<Address, Account> = HashMap::new();
        let mut staged: Vec<Stored> = Vec::with_capacity(batch.blocks.len());
        for sealed in batch.blocks.iter() {
            let b = &sealed.block.block;
            let applied = execute_block(b, &parent, &parent_hash, &Transfers, |a: &Address| {
                Ok::<_, std::convert::Infallible>(
                    overlay
                        .get(a)
                        .copied()
                        .or_else(|| inner.accounts.get(a).copied()),
                )
            })
            .map_err(|e| match e {
                ApplyError::NotContiguous { head, got } => {
                    BackendError::NotContiguous { head, got }
                }
                ApplyError::Invalid(v) => BackendError::Invalid(v),
                ApplyError::Read(never) => match never {},
                ApplyError::Executor(why) => BackendError::Storage(why),
            })?;
            let (diff, before) = (applied.diff, applied.before);
            overlay.extend(diff);
            staged.push(Stored {
                block: b.clone(),
                hash: sealed.hash,
                before,
            });
            parent = b.header.clone();
            parent_hash = sealed.hash;
        }
        // Apply.
        if let Some(first) = batch.blocks.first() {
            if let Some(c) = first.block.block.header.parent_commit() {
                inner.sigs.insert(head.number, c);
            }
        }
        let count = staged.len();
        for (i, s) in staged.into_iter().enumerate() {
            let n = s.block.number();
            let kept = batch
                .blocks
                .get(i + 1)
                .and_then(|child| child.block.block.header.parent_commit())
                .unwrap_or_else(|| batch.blocks[i].block.commit_sig.clone());
            inner.sigs.insert(n, kept);
            if self.spec.is_epoch_last(n) {
                inner
                    .committees
                    .insert(self.spec.epoch_of(n) + 1, s.block.body.committee());
            }
            inner.by_hash.insert(s.hash, n);
            inner.blocks.push(s);
        }
        debug_assert!(count == batch.blocks.len());
        inner.accounts.extend(overlay);
        for (stage, n) in &batch.progress {
            inner.progress.insert(*stage, *n);
        }
        Ok(head_of(inner))
    }

    fn unwind_to(&self, number: u64) -> Result<HeadInfo, BackendError> {
        let mut guard = self.inner.write();
        let inner = &mut *guard;
        while inner.blocks.len() as u64 > number + 1 {
            let Some(s) = inner.blocks.pop() else {
                break;
            };
            let n = s.block.number();
            // Restore in reverse: the first read of an account is its value
            // before the block.
            for (addr, acct) in s.before.iter().rev() {
                match acct {
                    Some(a) => {
                        inner.accounts.insert(*addr, *a);
                    }
                    None => {
                        inner.accounts.remove(addr);
                    }
                }
            }
            inner.by_hash.remove(&s.hash);
            inner.sigs.remove(&n);
            if self.spec.is_epoch_last(n) {
                inner.committees.remove(&(self.spec.epoch_of(n) + 1));
            }
        }
        // Its signature came from the removed child's header.
        inner.sigs.remove(&number);
        for v in inner.progress.values_mut() {
            *v = (*v).min(number);
        }
        Ok(head_of(inner))
    }
}
