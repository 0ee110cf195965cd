//! One LMDB environment whose map grows on `MDB_MAP_FULL`: the chain
//! store's, or a staging directory's of its own.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use lmdb::{
    Database, DatabaseFlags, Environment, EnvironmentFlags, RoTransaction, RwTransaction,
    Transaction,
};
use parking_lot::{Mutex, RwLock};

use super::chain_store::StoreOptions;
use super::error::StoreError;

/// An open environment: any number of readers, one writer at a time.
pub(super) struct Env {
    env: Environment,
    /// Readers and writers hold it shared; growing the map holds it
    /// exclusively (LMDB forbids resizing with transactions open).
    resize: RwLock<()>,
    /// One writer at a time.
    writer: Mutex<()>,
    /// Current map size, bytes.
    map_size: AtomicUsize,
}

impl Env {
    /// Opens (creating it if absent) the environment in `dir` with room
    /// for `max_dbs` named tables.
    pub(super) fn open(dir: &Path, opts: StoreOptions, max_dbs: u32) -> Result<Env, StoreError> {
        let mut flags = EnvironmentFlags::NO_TLS;
        if !opts.durable {
            flags |= EnvironmentFlags::NO_SYNC | EnvironmentFlags::NO_META_SYNC;
        }
        let env = Environment::new()
            .set_max_dbs(max_dbs)
            .set_map_size(opts.initial_map_size)
            .set_flags(flags)
            .open(dir)
            .map_err(|e| match e {
                lmdb::Error::Invalid | lmdb::Error::VersionMismatch => StoreError::NotOurs {
                    path: dir.to_path_buf(),
                    reason: format!("data.mdb is not an LMDB file we can open ({e})"),
                },
                source => StoreError::Lmdb { op: "open", source },
            })?;
        // A file a previous run grew keeps its size.
        let map_size = env.info().map_err(StoreError::lmdb("info"))?.map_size();
        Ok(Env {
            env,
            resize: RwLock::new(()),
            writer: Mutex::new(()),
            map_size: AtomicUsize::new(map_size),
        })
    }

    /// Opens table `name`, creating it if absent.
    pub(super) fn table(&self, name: &str) -> Result<Database, StoreError> {
        self.env
            .create_db(Some(name), DatabaseFlags::empty())
            .map_err(StoreError::lmdb("create table"))
    }

    /// Opens table `name` if it exists (`None` if it does not), writing
    /// nothing.
    pub(super) fn existing_table(&self, name: &str) -> Result<Option<Database>, StoreError> {
        match self.env.open_db(Some(name)) {
            Ok(db) => Ok(Some(db)),
            Err(lmdb::Error::NotFound) => Ok(None),
            Err(source) => Err(StoreError::Lmdb {
                op: "open table",
                source,
            }),
        }
    }

    /// Current map size, bytes.
    pub(super) fn map_size(&self) -> usize {
        self.map_size.load(Ordering::Relaxed)
    }

    /// Runs `f` in a read transaction.
    pub(super) fn read<T>(
        &self,
        f: impl FnOnce(&RoTransaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let _g = self.resize.read();
        let txn = self
            .env
            .begin_ro_txn()
            .map_err(StoreError::lmdb("begin read"))?;
        f(&txn)
    }

    /// Runs `f` in a write transaction and commits it, doubling the map and
    /// retrying the whole transaction on `MDB_MAP_FULL`.
    pub(super) fn write<T>(
        &self,
        mut f: impl FnMut(&mut RwTransaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let _w = self.writer.lock();
        loop {
            let attempt = {
                let _g = self.resize.read();
                let mut txn = self
                    .env
                    .begin_rw_txn()
                    .map_err(StoreError::lmdb("begin write"))?;
                match f(&mut txn) {
                    Ok(v) => txn.commit().map(|_| v).map_err(StoreError::lmdb("commit")),
                    Err(e) => Err(e), // dropping txn aborts it
                }
            };
            match attempt {
                Err(StoreError::Lmdb {
                    source: lmdb::Error::MapFull,
                    ..
                }) => self.grow()?,
                other => return other,
            }
        }
    }

    fn grow(&self) -> Result<(), StoreError> {
        let _g = self.resize.write();
        let new = self.map_size().saturating_mul(2);
        self.env
            .set_map_size(new)
            .map_err(StoreError::lmdb("grow map"))?;
        self.map_size.store(new, Ordering::Relaxed);
        tracing::info!(map_size = new, "LMDB map grown");
        Ok(())
    }
}
