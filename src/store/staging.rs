//! Sync staging tables (`UseMemDB = false`): downloaded hashes and blocks
//! waiting to be committed, kept in LMDB so a restarted node does not
//! download them again. With `UseMemDB = true` the sync keeps them in
//! memory only and this is unused.
//!
//! The tables live either in the project's [`Store`] environment
//! ([`LmdbStaging::new`]), or in a directory of their own
//! ([`LmdbStaging::open`]), beside whatever chain database an embedder's
//! [`ChainBackend`](crate::ChainBackend) keeps: staging needs nothing of
//! the chain.
//!
//! Every write puts the data and the checkpoints it completes
//! (`BlockHashes`, `BlockBodies`) in **one** transaction, so a checkpoint
//! never claims data a crash lost. Blocks are stored as the raw bytes they
//! arrived as.

use std::path::Path;
use std::sync::Arc;

use lmdb::{Cursor, Database, RoTransaction, RwTransaction, Transaction};

use super::chain_store::{del, get_raw, put, Store, StoreOptions};
use super::env::Env;
use super::error::StoreError;
use super::lock::DirLock;
use super::tables::{be, from_be, STAGE_PROGRESS, STAGING_BLOCKS, STAGING_HASHES};
use crate::chain::StageId;
use crate::crypto::B256;

/// `meta` table of a staging directory: its format marker.
const STAGING_META: &str = "staging_meta";
/// The format marker's key and value.
const STAGING_MAGIC: (&[u8], &[u8]) = (b"magic", b"streamsync-staging-v1");

/// The sync's LMDB staging tables (cheap to clone: one shared handle).
#[derive(Debug, Clone)]
pub struct LmdbStaging {
    inner: Arc<Inner>,
}

struct Inner {
    home: Home,
    hashes: Database,
    blocks: Database,
    progress: Database,
}

/// Whose environment the tables are in.
enum Home {
    /// The chain store's.
    Store(Arc<Store>),
    /// A directory of their own, locked while open (the lock is dropped
    /// after the environment: field order).
    Own {
        env: Env,
        path: std::path::PathBuf,
        _lock: DirLock,
    },
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.home {
            Home::Store(s) => f
                .debug_struct("LmdbStaging")
                .field("store", &s.path())
                .finish(),
            Home::Own { path, .. } => f.debug_struct("LmdbStaging").field("dir", path).finish(),
        }
    }
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
    /// Staging tables in `store`'s own environment (its datadir).
    pub fn new(store: Arc<Store>) -> Self {
        let (_, dbs) = store.env();
        let (hashes, blocks, progress) =
            (dbs.staging_hashes, dbs.staging_blocks, dbs.stage_progress);
        LmdbStaging {
            inner: Arc::new(Inner {
                home: Home::Store(store),
                hashes,
                blocks,
                progress,
            }),
        }
    }

    /// Staging tables in directory `dir` of their own (created if absent),
    /// for a node whose chain is not the project's [`Store`]. Holds `dir`'s
    /// lock while open: a second opener, or a [`Store`] in the same
    /// directory, gets [`StoreError::InUse`]. Refuses a directory holding
    /// anything else (a chain store's files included) with
    /// [`StoreError::NotOurs`].
    pub fn open(dir: &Path, opts: StoreOptions) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let lock = DirLock::acquire(dir)?;
        let existed = dir.join("data.mdb").is_file();
        let not_ours = |reason: &str| StoreError::NotOurs {
            path: dir.to_path_buf(),
            reason: reason.into(),
        };
        if !existed && super::lock::holds_foreign_files(dir)? {
            return Err(not_ours("directory is not empty"));
        }
        let env = Env::open(dir, opts, 4)?;
        if existed {
            // Read before writing anything: another program's file (a
            // chain store's included) is left as it was.
            let meta = env
                .existing_table(STAGING_META)?
                .ok_or_else(|| not_ours("no streamsync staging marker"))?;
            let magic = env.read(|txn| get_raw(txn, meta, STAGING_MAGIC.0))?;
            if magic.as_deref() != Some(STAGING_MAGIC.1) {
                return Err(not_ours("not a streamsync staging directory"));
            }
        } else {
            let meta = env.table(STAGING_META)?;
            env.write(|txn| put(txn, meta, STAGING_MAGIC.0, STAGING_MAGIC.1))?;
        }
        let (hashes, blocks, progress) = (
            env.table(STAGING_HASHES)?,
            env.table(STAGING_BLOCKS)?,
            env.table(STAGE_PROGRESS)?,
        );
        Ok(LmdbStaging {
            inner: Arc::new(Inner {
                home: Home::Own {
                    env,
                    path: dir.to_path_buf(),
                    _lock: lock,
                },
                hashes,
                blocks,
                progress,
            }),
        })
    }

    fn env(&self) -> &Env {
        match &self.inner.home {
            Home::Store(s) => s.env().0,
            Home::Own { env, .. } => env,
        }
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&RoTransaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.env().read(f)
    }

    fn txn<T>(
        &self,
        f: impl FnMut(&mut RwTransaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.env().write(f)
    }

    /// Checkpoint of `stage` (0 when never written): the highest number up
    /// to which everything is staged (BlockHashes, BlockBodies) or
    /// committed (States).
    pub fn progress(&self, stage: StageId) -> Result<u64, StoreError> {
        let db = self.inner.progress;
        let v = self.read(|txn| get_raw(txn, db, stage.name().as_bytes()))?;
        Ok(v.and_then(|v| from_be(&v)).unwrap_or(0))
    }

    /// Writes `w` in one transaction.
    pub fn write(&self, w: &StageWrite) -> Result<(), StoreError> {
        self.txn(|txn| {
            for (n, h) in &w.hashes {
                put(txn, self.inner.hashes, &be(*n), h)?;
            }
            for (n, raw) in &w.blocks {
                put(txn, self.inner.blocks, &be(*n), raw)?;
            }
            for (stage, n) in &w.progress {
                put(txn, self.inner.progress, stage.name().as_bytes(), &be(*n))?;
            }
            Ok(())
        })
    }

    /// Staged hashes of `from..=to`, ascending (absent numbers skipped).
    pub fn hashes(&self, from: u64, to: u64) -> Result<Vec<(u64, B256)>, StoreError> {
        self.read(|txn| {
            let mut out = Vec::new();
            let mut cur = txn
                .open_ro_cursor(self.inner.hashes)
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
        self.read(|txn| {
            let mut out = Vec::new();
            let mut bytes = 0usize;
            let mut cur = txn
                .open_ro_cursor(self.inner.blocks)
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
        self.read(|txn| {
            txn.stat(self.inner.blocks)
                .map(|s| s.entries())
                .map_err(StoreError::lmdb("stat staging"))
        })
    }

    /// Drops what is staged at or below `number` (committed), or everything
    /// above it with `above` (a bad block was found there).
    pub fn remove(&self, number: u64, above: bool) -> Result<(), StoreError> {
        self.txn(|txn| {
            for db in [self.inner.hashes, self.inner.blocks] {
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
                    del(txn, db, &k)?;
                }
            }
            Ok(())
        })
    }

    /// Drops everything staged, and the `BlockHashes` and `BlockBodies`
    /// checkpoints that claimed it, in one transaction.
    pub fn clear(&self) -> Result<(), StoreError> {
        let (hashes, blocks, progress) =
            (self.inner.hashes, self.inner.blocks, self.inner.progress);
        self.txn(|txn| {
            for db in [hashes, blocks] {
                txn.clear_db(db)
                    .map_err(StoreError::lmdb("clear staging"))?;
            }
            for stage in [StageId::BlockHashes, StageId::BlockBodies] {
                del(txn, progress, stage.name().as_bytes())?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> StoreOptions {
        StoreOptions {
            initial_map_size: 1 << 20,
            durable: false,
        }
    }

    fn one_write() -> StageWrite {
        StageWrite {
            hashes: vec![(1, [1; 32]), (2, [2; 32])],
            blocks: vec![(1, Arc::from(&b"block one"[..]))],
            progress: vec![(StageId::BlockHashes, 2), (StageId::BlockBodies, 1)],
        }
    }

    #[test]
    fn staging_in_its_own_directory_keeps_rows_and_checkpoints_across_a_reopen() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = LmdbStaging::open(dir.path(), opts()).expect("open");
        s.write(&one_write()).expect("write");
        drop(s);
        let s = LmdbStaging::open(dir.path(), opts()).expect("reopen");
        assert_eq!(s.progress(StageId::BlockHashes).expect("read"), 2);
        assert_eq!(s.progress(StageId::BlockBodies).expect("read"), 1);
        assert_eq!(
            s.hashes(1, 9).expect("read"),
            vec![(1, [1; 32]), (2, [2; 32])]
        );
        assert_eq!(
            s.blocks(1, 9, 1 << 20).expect("read"),
            vec![(1, b"block one".to_vec())]
        );
    }

    #[test]
    fn a_staging_directory_open_elsewhere_or_holding_a_chain_is_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        let held = LmdbStaging::open(dir.path(), opts()).expect("open");
        assert!(matches!(
            LmdbStaging::open(dir.path(), opts()),
            Err(StoreError::InUse { .. })
        ));
        drop(held);
        let chain_dir = tempfile::tempdir().expect("tmp");
        let genesis = crate::chain::GenesisSpec::with_defaults("localnet", 1)
            .build()
            .expect("genesis");
        drop(Store::open_or_create(chain_dir.path(), &genesis, opts()).expect("store"));
        let refused = LmdbStaging::open(chain_dir.path(), opts());
        assert!(
            matches!(refused, Err(StoreError::NotOurs { .. })),
            "{refused:?}"
        );
        // Nor did the refusal write into the chain's file.
        let env = lmdb::Environment::new()
            .set_max_dbs(16)
            .open(chain_dir.path())
            .expect("env");
        let names: Vec<String> = {
            let main = env.open_db(None).expect("main table");
            let txn = env.begin_ro_txn().expect("txn");
            let mut cur = txn.open_ro_cursor(main).expect("cursor");
            cur.iter_start()
                .map(|kv| String::from_utf8_lossy(kv.expect("entry").0).into_owned())
                .collect()
        };
        let mut want: Vec<String> = crate::store::TABLES.iter().map(|t| t.to_string()).collect();
        want.sort();
        assert_eq!(names, want, "the chain's tables, and no more");
        drop(env);
        assert!(Store::open(chain_dir.path(), opts()).is_ok());
        let foreign = tempfile::tempdir().expect("tmp");
        std::fs::write(foreign.path().join("notes.txt"), b"mine").expect("write");
        assert!(matches!(
            LmdbStaging::open(foreign.path(), opts()),
            Err(StoreError::NotOurs { .. })
        ));
    }

    #[test]
    fn clearing_staging_drops_the_checkpoints_that_claimed_it() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = LmdbStaging::open(dir.path(), opts()).expect("open");
        s.write(&one_write()).expect("write");
        s.clear().expect("clear");
        assert_eq!(s.block_count().expect("count"), 0);
        assert_eq!(s.hashes(0, 9).expect("read"), vec![]);
        assert_eq!(s.progress(StageId::BlockHashes).expect("read"), 0);
        assert_eq!(s.progress(StageId::BlockBodies).expect("read"), 0);
    }
}
