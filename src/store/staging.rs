//! Sync staging tables (`UseMemDB = false`): downloaded hashes and blocks
//! waiting to be committed, kept in the node's LMDB environment so a
//! restarted node does not download them again. With `UseMemDB = true` the
//! sync keeps them in memory only and this is unused.
//!
//! Every write puts the data and the checkpoints it completes
//! (`BlockHashes`, `BlockBodies`) in **one** transaction, so a checkpoint
//! never claims data a crash lost. Blocks are stored as the raw bytes they
//! arrived as.

use std::sync::Arc;

use lmdb::{Cursor, Transaction};

use super::chain_store::{put, Store};
use super::error::StoreError;
use super::tables::{be, from_be};
use crate::chain::StageId;
use crate::crypto::B256;

/// LMDB staging tables of a [`Store`].
#[derive(Debug, Clone)]
pub struct LmdbStaging {
    store: Arc<Store>,
}

/// One staging write: hashes, raw blocks and the checkpoints they complete.
#[derive(Clone, Debug, Default)]
pub struct StageWrite {
    /// Downloaded hashes by number.
    pub hashes: Vec<(u64, B256)>,
    /// Downloaded blocks (RLP of block with signature, as received).
    pub blocks: Vec<(u64, Arc<[u8]>)>,
    /// Stage checkpoints written in the same transaction.
    pub progress: Vec<(StageId, u64)>,
}

impl LmdbStaging {
    /// Staging tables of `store`.
    pub fn new(store: Arc<Store>) -> Self {
        LmdbStaging { store }
    }

    /// Checkpoint of `stage` (0 when never written): the highest number up
    /// to which everything is staged (BlockHashes, BlockBodies) or
    /// committed (States).
    pub fn progress(&self, stage: crate::chain::StageId) -> Result<u64, StoreError> {
        self.store.stage_progress(stage)
    }

    /// Writes `w` in one transaction.
    pub fn write(&self, w: &StageWrite) -> Result<(), StoreError> {
        self.store.write(|txn, dbs| {
            for (n, h) in &w.hashes {
                put(txn, dbs.staging_hashes, &be(*n), h)?;
            }
            for (n, raw) in &w.blocks {
                put(txn, dbs.staging_blocks, &be(*n), raw)?;
            }
            for (stage, n) in &w.progress {
                put(txn, dbs.stage_progress, stage.name().as_bytes(), &be(*n))?;
            }
            Ok(())
        })
    }

    /// Staged hashes of `from..=to`, ascending (absent numbers skipped).
    pub fn hashes(&self, from: u64, to: u64) -> Result<Vec<(u64, B256)>, StoreError> {
        self.store.read(|txn, dbs| {
            let mut out = Vec::new();
            let mut cur = txn
                .open_ro_cursor(dbs.staging_hashes)
                .map_err(StoreError::lmdb("cursor"))?;
            for item in cur.iter_from(be(from)) {
                let (k, v) = item.map_err(StoreError::lmdb("cursor"))?;
                let n = from_be(k).ok_or_else(|| StoreError::Corrupt("staged hash key".into()))?;
                if n > to {
                    break;
                }
                let h: B256 = v
                    .try_into()
                    .map_err(|_| StoreError::Corrupt(format!("staged hash {n} malformed")))?;
                out.push((n, h));
            }
            Ok(out)
        })
    }

    /// Staged raw blocks of `from..=to`, ascending, at most `max_bytes` of
    /// them in all (absent numbers skipped).
    pub fn blocks(
        &self,
        from: u64,
        to: u64,
        max_bytes: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.store.read(|txn, dbs| {
            let mut out = Vec::new();
            let mut bytes = 0usize;
            let mut cur = txn
                .open_ro_cursor(dbs.staging_blocks)
                .map_err(StoreError::lmdb("cursor"))?;
            for item in cur.iter_from(be(from)) {
                let (k, v) = item.map_err(StoreError::lmdb("cursor"))?;
                let n = from_be(k).ok_or_else(|| StoreError::Corrupt("staged block key".into()))?;
                if n > to || bytes + v.len() > max_bytes {
                    break;
                }
                bytes += v.len();
                out.push((n, v.to_vec()));
            }
            Ok(out)
        })
    }

    /// Number of staged blocks.
    pub fn block_count(&self) -> Result<usize, StoreError> {
        self.store.read(|txn, dbs| {
            txn.stat(dbs.staging_blocks)
                .map(|s| s.entries())
                .map_err(StoreError::lmdb("stat staging"))
        })
    }

    /// Drops what is staged at or below `number` (committed), or everything
    /// above it with `above` (a bad block was found there).
    pub fn remove(&self, number: u64, above: bool) -> Result<(), StoreError> {
        self.store.write(|txn, dbs| {
            for db in [dbs.staging_hashes, dbs.staging_blocks] {
                let keys: Vec<Vec<u8>> = {
                    let mut cur = txn.open_ro_cursor(db).map_err(StoreError::lmdb("cursor"))?;
                    let start = if above {
                        be(number.saturating_add(1))
                    } else {
                        be(0)
                    };
                    let mut keys = Vec::new();
                    for item in cur.iter_from(start) {
                        let (k, _) = item.map_err(StoreError::lmdb("cursor"))?;
                        if !above && from_be(k).is_some_and(|n| n > number) {
                            break;
                        }
                        keys.push(k.to_vec());
                    }
                    keys
                };
                for k in keys {
                    match txn.del(db, &k, None) {
                        Ok(()) | Err(lmdb::Error::NotFound) => {}
                        Err(source) => return Err(StoreError::Lmdb { op: "del", source }),
                    }
                }
            }
            Ok(())
        })
    }

    /// Drops everything staged.
    pub fn clear(&self) -> Result<(), StoreError> {
        self.store.write(|txn, dbs| {
            txn.clear_db(dbs.staging_hashes)
                .map_err(StoreError::lmdb("clear staging"))?;
            txn.clear_db(dbs.staging_blocks)
                .map_err(StoreError::lmdb("clear staging"))
        })
    }
}
