//! Sync staging tables: downloaded hashes and blocks waiting for the States
//! stage. `UseMemDB = true` keeps them in memory ([`MemStaging`]); `false`
//! puts them in the node's LMDB environment ([`LmdbStaging`]), so a
//! restarted node keeps what it downloaded.

use std::collections::BTreeMap;
use std::sync::Arc;

use lmdb::Transaction;

use super::chain_store::{get_raw, put, Store};
use super::error::StoreError;
use super::tables::be;
use crate::chain::BlockWithSig;
use crate::crypto::B256;

/// Where downloaded-but-not-yet-inserted data waits. Keys are block numbers.
pub trait Staging: Send {
    /// Records the downloaded hash of block `number`.
    fn put_hash(&mut self, number: u64, hash: B256) -> Result<(), StoreError>;
    /// The staged hash of block `number`.
    fn hash(&self, number: u64) -> Result<Option<B256>, StoreError>;
    /// Records a downloaded block.
    fn put_block(&mut self, block: &BlockWithSig) -> Result<(), StoreError>;
    /// The staged block `number`.
    fn block(&self, number: u64) -> Result<Option<BlockWithSig>, StoreError>;
    /// Number of staged blocks.
    fn block_count(&self) -> Result<usize, StoreError>;
    /// Drops everything staged (the Finish stage).
    fn clear(&mut self) -> Result<(), StoreError>;
}

/// In-memory staging (`UseMemDB = true`).
#[derive(Debug, Default)]
pub struct MemStaging {
    hashes: BTreeMap<u64, B256>,
    blocks: BTreeMap<u64, BlockWithSig>,
}

impl Staging for MemStaging {
    fn put_hash(&mut self, number: u64, hash: B256) -> Result<(), StoreError> {
        self.hashes.insert(number, hash);
        Ok(())
    }

    fn hash(&self, number: u64) -> Result<Option<B256>, StoreError> {
        Ok(self.hashes.get(&number).copied())
    }

    fn put_block(&mut self, block: &BlockWithSig) -> Result<(), StoreError> {
        self.blocks.insert(block.block.number(), block.clone());
        Ok(())
    }

    fn block(&self, number: u64) -> Result<Option<BlockWithSig>, StoreError> {
        Ok(self.blocks.get(&number).cloned())
    }

    fn block_count(&self) -> Result<usize, StoreError> {
        Ok(self.blocks.len())
    }

    fn clear(&mut self) -> Result<(), StoreError> {
        self.hashes.clear();
        self.blocks.clear();
        Ok(())
    }
}

/// Staging in the node's LMDB environment (`UseMemDB = false`).
#[derive(Debug, Clone)]
pub struct LmdbStaging {
    store: Arc<Store>,
}

impl LmdbStaging {
    /// Staging tables of `store`.
    pub fn new(store: Arc<Store>) -> Self {
        LmdbStaging { store }
    }
}

impl Staging for LmdbStaging {
    fn put_hash(&mut self, number: u64, hash: B256) -> Result<(), StoreError> {
        self.store
            .write(|txn, dbs| put(txn, dbs.staging_hashes, &be(number), &hash))
    }

    fn hash(&self, number: u64) -> Result<Option<B256>, StoreError> {
        let v = self
            .store
            .read(|txn, dbs| get_raw(txn, dbs.staging_hashes, &be(number)))?;
        v.map(|v| {
            v.try_into()
                .map_err(|_| StoreError::Corrupt(format!("staged hash {number} malformed")))
        })
        .transpose()
    }

    fn put_block(&mut self, block: &BlockWithSig) -> Result<(), StoreError> {
        let bytes = block.to_bytes();
        self.store
            .write(|txn, dbs| put(txn, dbs.staging_blocks, &be(block.block.number()), &bytes))
    }

    fn block(&self, number: u64) -> Result<Option<BlockWithSig>, StoreError> {
        let v = self
            .store
            .read(|txn, dbs| get_raw(txn, dbs.staging_blocks, &be(number)))?;
        v.map(|v| BlockWithSig::from_bytes(&v).map_err(|e| StoreError::Corrupt(e.to_string())))
            .transpose()
    }

    fn block_count(&self) -> Result<usize, StoreError> {
        self.store.read(|txn, dbs| {
            txn.stat(dbs.staging_blocks)
                .map(|s| s.entries())
                .map_err(StoreError::lmdb("stat staging"))
        })
    }

    fn clear(&mut self) -> Result<(), StoreError> {
        self.store.write(|txn, dbs| {
            txn.clear_db(dbs.staging_hashes)
                .map_err(StoreError::lmdb("clear staging"))?;
            txn.clear_db(dbs.staging_blocks)
                .map_err(StoreError::lmdb("clear staging"))
        })
    }
}
