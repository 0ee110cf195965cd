//! The LMDB chain store and its [`ChainBackend`] implementation.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use lmdb::{Database, RwTransaction, Transaction, WriteFlags};
use serde::Serialize;

use super::env::Env;
use super::error::StoreError;
use super::lock::DirLock;
use super::tables::*;
use crate::chain::backend::InsertBatch;
use crate::chain::executor::{Executor, Transfers};
use crate::chain::spec::{ChainSpec, Genesis, GenesisSpec};
use crate::chain::state::{execute_block, Account, Address, ApplyError, StateDiff};
use crate::chain::types::{encode, Block, BlockWithSig, Body, CommitSig, Committee, Header};
use crate::chain::StageId;
use crate::chain::{BackendError, ChainBackend, HeadInfo};
use crate::crypto::hash::to_hex;
use crate::crypto::B256;

/// Tuning of a store.
#[derive(Clone, Copy, Debug)]
pub struct StoreOptions {
    /// Initial LMDB map size, bytes; doubled on `MDB_MAP_FULL`.
    pub initial_map_size: usize,
    /// fsync on every commit (durable). `false` trades durability of the last
    /// commits on power loss for speed (LMDB `NO_SYNC`); a process crash
    /// still loses nothing committed.
    pub durable: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            initial_map_size: 256 << 20,
            durable: true,
        }
    }
}

/// Encoded header and body of one block, as stored.
pub type RawBlock = (Vec<u8>, Vec<u8>);

/// Size of one table.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct TableStats {
    /// Table name.
    pub name: &'static str,
    /// Number of entries.
    pub entries: usize,
    /// Bytes in pages (branch + leaf + overflow) × page size.
    pub bytes: u64,
}

/// What `streamsync inspect` reports.
#[derive(Clone, Debug, Serialize)]
pub struct StoreStats {
    /// Network of the chain.
    pub network: String,
    /// Shard id.
    pub shard_id: u32,
    /// Head number.
    pub head_number: u64,
    /// Head hash, hex.
    pub head_hash: String,
    /// Head epoch.
    pub epoch: u64,
    /// Blocks stored (including genesis).
    pub blocks: usize,
    /// Genesis hash, hex.
    pub genesis_hash: String,
    /// Current LMDB map size, bytes.
    pub map_size: usize,
    /// Every table's size.
    pub tables: Vec<TableStats>,
}

#[derive(Clone, Copy)]
pub(super) struct Dbs {
    pub(super) meta: Database,
    pub(super) headers: Database,
    pub(super) bodies: Database,
    pub(super) hashes: Database,
    pub(super) hash_to_number: Database,
    pub(super) commit_sigs: Database,
    pub(super) committees: Database,
    pub(super) accounts: Database,
    pub(super) stage_progress: Database,
    pub(super) account_changes: Database,
    pub(super) staging_hashes: Database,
    pub(super) staging_blocks: Database,
}

/// An LMDB-backed chain: the project's [`ChainBackend`].
pub struct Store {
    path: PathBuf,
    env: Env,
    dbs: Dbs,
    spec: ChainSpec,
    genesis_spec: GenesisSpec,
    /// The state transition every inserted block goes through.
    executor: Arc<dyn Executor>,
    /// The datadir's lock; the last field, so it is released only after
    /// the environment has closed.
    _lock: DirLock,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .field("spec", &self.spec)
            .finish()
    }
}

fn is_lmdb_dir(dir: &Path) -> bool {
    dir.join("data.mdb").is_file()
}

impl Store {
    /// Opens the existing streamsync database in `dir`. Refuses a directory
    /// without one, or with an LMDB file that is not ours, and a datadir
    /// another open store holds ([`StoreError::InUse`]): the store keeps
    /// `dir`'s lock until it is dropped.
    pub fn open(dir: &Path, opts: StoreOptions) -> Result<Store, StoreError> {
        if !is_lmdb_dir(dir) {
            return Err(StoreError::NotOurs {
                path: dir.to_path_buf(),
                reason: "no data.mdb".into(),
            });
        }
        let lock = DirLock::acquire(dir)?;
        Store::open_locked(dir, opts, lock)
    }

    /// [`Store::open`] once `dir`'s lock is held.
    fn open_locked(dir: &Path, opts: StoreOptions, lock: DirLock) -> Result<Store, StoreError> {
        let (env, dbs) = open_env(dir, opts)?;
        let (magic, genesis_bytes, head) = env.read(|txn| {
            let get = |k: &[u8]| txn.get(dbs.meta, &k).ok().map(<[u8]>::to_vec);
            Ok((get(META_MAGIC), get(META_GENESIS), get(META_HEAD)))
        })?;
        if magic.as_deref() != Some(MAGIC) {
            return Err(StoreError::NotOurs {
                path: dir.to_path_buf(),
                reason: "no streamsync format marker".into(),
            });
        }
        let genesis_spec: GenesisSpec = genesis_bytes
            .and_then(|b| alloy_rlp::decode_exact(&b).ok())
            .ok_or_else(|| StoreError::Corrupt("genesis spec missing or malformed".into()))?;
        if head.is_none() {
            return Err(StoreError::Corrupt("head pointer missing".into()));
        }
        let genesis = genesis_spec
            .build()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let spec = genesis
            .chain_spec()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let store = Store {
            path: dir.to_path_buf(),
            env,
            dbs,
            spec,
            genesis_spec,
            executor: Arc::new(Transfers),
            _lock: lock,
        };
        let stored_genesis = store.read(|txn, dbs| get_raw(txn, dbs.hashes, &be(0)))?;
        if stored_genesis.as_deref() != Some(&store.spec.genesis_hash[..]) {
            return Err(StoreError::Corrupt(
                "stored genesis differs from its spec".into(),
            ));
        }
        Ok(store)
    }

    /// Opens `dir` if it holds this genesis' chain, or initialises it with
    /// `genesis` if it is empty or absent. Refuses another chain's database,
    /// any non-empty directory that is not a streamsync database, and a
    /// datadir another open store holds ([`StoreError::InUse`]).
    pub fn open_or_create(
        dir: &Path,
        genesis: &Genesis,
        opts: StoreOptions,
    ) -> Result<Store, StoreError> {
        let wanted = genesis
            .chain_spec()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let same_chain = |store: Store| {
            if store.spec != wanted {
                return Err(StoreError::OtherChain {
                    path: dir.to_path_buf(),
                    found: describe(&store.spec),
                    wanted: describe(&wanted),
                });
            }
            Ok(store)
        };
        if is_lmdb_dir(dir) {
            return same_chain(Store::open(dir, opts)?);
        }
        if super::lock::holds_foreign_files(dir)? {
            return Err(StoreError::NotOurs {
                path: dir.to_path_buf(),
                reason: "directory is not empty".into(),
            });
        }
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let lock = DirLock::acquire(dir)?;
        // Another process may have created the chain between the checks
        // above and the lock.
        if is_lmdb_dir(dir) {
            return same_chain(Store::open_locked(dir, opts, lock)?);
        }
        let (env, dbs) = open_env(dir, opts)?;
        env.write(|txn| {
            let put = |txn: &mut RwTransaction<'_>, db, k: &[u8], v: &[u8]| {
                txn.put(db, &k, &v, WriteFlags::empty())
                    .map_err(StoreError::lmdb("init"))
            };
            put(txn, dbs.meta, META_MAGIC, MAGIC)?;
            put(txn, dbs.meta, META_GENESIS, &encode(&genesis.spec))?;
            let b = &genesis.block;
            let hash = b.hash();
            write_block(txn, &dbs, b, &hash)?;
            put(txn, dbs.committees, &be(0), &b.body.committee().to_bytes())?;
            for (addr, acct) in &genesis.alloc {
                put(txn, dbs.accounts, addr, &encode(acct))?;
            }
            put(txn, dbs.meta, META_HEAD, &head_value(0, &hash))?;
            Ok(())
        })?;
        drop(env);
        Store::open_locked(dir, opts, lock)
    }

    /// This store with `executor` as the state transition of the blocks
    /// it inserts from now on (the default is [`Transfers`], this chain's
    /// own). The genesis state is the one the store was created with.
    pub fn with_executor(mut self, executor: Arc<dyn Executor>) -> Store {
        self.executor = executor;
        self
    }

    /// The datadir.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The genesis spec the chain was created from.
    pub fn genesis_spec(&self) -> &GenesisSpec {
        &self.genesis_spec
    }

    /// Current LMDB map size, bytes.
    pub fn map_size(&self) -> usize {
        self.env.map_size()
    }

    /// The environment and tables (the staging tables share them).
    pub(super) fn env(&self) -> (&Env, &Dbs) {
        (&self.env, &self.dbs)
    }

    /// Runs `f` in a read transaction.
    pub(super) fn read<T>(
        &self,
        f: impl FnOnce(&lmdb::RoTransaction<'_>, &Dbs) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.env.read(|txn| f(txn, &self.dbs))
    }

    /// Runs `f` in a write transaction and commits it, growing the map and
    /// retrying the whole transaction on `MDB_MAP_FULL`.
    pub(super) fn write<T>(
        &self,
        mut f: impl FnMut(&mut RwTransaction<'_>, &Dbs) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.env.write(|txn| f(txn, &self.dbs))
    }

    /// Executes and inserts `batch` in one write transaction: blocks, commit
    /// signatures, committees named, account changes, head and stage
    /// progress. Checks that the batch extends the head and executes every
    /// block with the store's [`Executor`] (which checks its state root);
    /// on any error nothing is written. Signatures are the caller's job (see `chain::verify`): the
    /// commit signature kept for each block is the one its child's header
    /// carries, and for the batch's last block the one sent with it, which
    /// the caller must have verified.
    pub fn insert_batch(&self, batch: &InsertBatch) -> Result<HeadInfo, StoreError> {
        let spec = self.spec.clone();
        let executor = self.executor.clone();
        self.write(|txn, dbs| {
            let (head_n, head_hash) = read_head(txn, dbs)?;
            let mut parent: Header =
                get_decoded(txn, dbs.headers, &be(head_n), Header::from_bytes)?
                    .ok_or_else(|| StoreError::Corrupt(format!("head header {head_n} missing")))?;
            let mut parent_hash = head_hash;
            let mut overlay = StateDiff::new();
            // The old head's signature is the one the first block's header
            // carries (the hash chain covers it), replacing the copy kept.
            if let Some(first) = batch.blocks.first() {
                if let Some(c) = first.block.block.header.parent_commit() {
                    put(txn, dbs.commit_sigs, &be(head_n), &c.to_bytes())?;
                }
            }
            for (i, sealed) in batch.blocks.iter().enumerate() {
                let bws = &sealed.block;
                let b = &bws.block;
                let n = b.number();
                let applied =
                    {
                        let accounts = dbs.accounts;
                        let txn_ro: &RwTransaction<'_> = txn;
                        execute_block(b, &parent, &parent_hash, &*executor, |a: &Address| {
                            match overlay.get(a) {
                                Some(acct) => Ok(Some(*acct)),
                                None => read_account(txn_ro, accounts, a),
                            }
                        })
                    }
                    .map_err(|e| match e {
                        ApplyError::NotContiguous { head, got } => {
                            StoreError::NotContiguous { head, got }
                        }
                        ApplyError::Invalid(v) => StoreError::Invalid(v),
                        ApplyError::Read(se) => se,
                        ApplyError::Executor(why) => StoreError::Executor(why),
                    })?;
                let before: Vec<AccountChange> = applied
                    .before
                    .iter()
                    .map(|(address, acct)| AccountChange {
                        address: *address,
                        before: acct.map(|x| encode(&x).into()).unwrap_or_default(),
                    })
                    .collect();
                let diff = applied.diff;
                append(txn, dbs.account_changes, &be(n), &encode(&before))?;
                overlay.extend(diff);
                let hash = sealed.hash;
                match sealed.raw_parts() {
                    Some((header, body)) => write_raw_block(txn, dbs, n, header, body, &hash)?,
                    None => write_block(txn, dbs, b, &hash)?,
                }
                // Its signature: the one the next block's header carries, or
                // for the batch's last the one sent with it (verified).
                let kept = match batch.blocks.get(i + 1) {
                    Some(child) => child.block.block.header.parent_commit(),
                    None => None,
                };
                let kept = kept.as_ref().unwrap_or(&bws.commit_sig);
                append(txn, dbs.commit_sigs, &be(n), &kept.to_bytes())?;
                if spec.is_epoch_last(n) {
                    put(
                        txn,
                        dbs.committees,
                        &be(spec.epoch_of(n) + 1),
                        &b.body.committee().to_bytes(),
                    )?;
                }
                parent = b.header.clone();
                parent_hash = hash;
            }
            for (addr, acct) in &overlay {
                put(txn, dbs.accounts, addr, &encode(acct))?;
            }
            put(
                txn,
                dbs.meta,
                META_HEAD,
                &head_value(parent.number, &parent_hash),
            )?;
            for (stage, n) in &batch.progress {
                put(txn, dbs.stage_progress, stage.name().as_bytes(), &be(*n))?;
            }
            Ok(HeadInfo {
                number: parent.number,
                hash: parent_hash,
                epoch: parent.epoch,
            })
        })
    }

    /// Takes the chain back to block `number` in one write transaction:
    /// removes every block above it (headers, bodies, hashes, commit
    /// signatures, committees they named), restores the accounts they
    /// changed, moves the head and lowers stage checkpoints above `number`.
    /// Block `number`'s own commit signature came from the removed child's
    /// header, so it is dropped too and rewritten by the next insert. Does
    /// nothing if the head is at or below `number`.
    pub fn unwind_to(&self, number: u64) -> Result<HeadInfo, StoreError> {
        let spec = self.spec.clone();
        self.write(|txn, dbs| {
            let (head, _) = read_head(txn, dbs)?;
            for n in (number + 1..=head).rev() {
                let changes = get_raw(txn, dbs.account_changes, &be(n))?.ok_or_else(|| {
                    StoreError::CannotUnwind {
                        number: n,
                        reason: "no account changes recorded for it".into(),
                    }
                })?;
                let changes: Vec<AccountChange> = alloy_rlp::decode_exact(&changes)
                    .map_err(|e| StoreError::Corrupt(format!("account changes of {n}: {e}")))?;
                for c in changes {
                    if c.before.is_empty() {
                        del(txn, dbs.accounts, &c.address)?;
                    } else {
                        put(txn, dbs.accounts, &c.address, &c.before)?;
                    }
                }
                if let Some(hash) = get_raw(txn, dbs.hashes, &be(n))? {
                    del(txn, dbs.hash_to_number, &hash)?;
                }
                for db in [
                    dbs.account_changes,
                    dbs.headers,
                    dbs.bodies,
                    dbs.hashes,
                    dbs.commit_sigs,
                ] {
                    del(txn, db, &be(n))?;
                }
                if spec.is_epoch_last(n) {
                    del(txn, dbs.committees, &be(spec.epoch_of(n) + 1))?;
                }
            }
            let hash: B256 = match get_raw(txn, dbs.hashes, &be(number.min(head)))? {
                Some(h) => h
                    .try_into()
                    .map_err(|_| StoreError::Corrupt(format!("hash of {number} malformed")))?,
                None => return Err(StoreError::Corrupt(format!("block {number} missing"))),
            };
            if number < head {
                del(txn, dbs.commit_sigs, &be(number))?;
                put(txn, dbs.meta, META_HEAD, &head_value(number, &hash))?;
                for stage in StageId::ALL {
                    let key = stage.name().as_bytes();
                    let at = get_raw(txn, dbs.stage_progress, key)?.and_then(|v| from_be(&v));
                    if at.is_some_and(|at| at > number) {
                        put(txn, dbs.stage_progress, key, &be(number))?;
                    }
                }
            }
            Ok(HeadInfo {
                number: number.min(head),
                hash,
                epoch: spec.epoch_of(number.min(head)),
            })
        })
    }

    /// Checkpoint of `stage` (0 when never written): what the sync's
    /// staging and its commits recorded.
    pub fn stage_progress(&self, stage: StageId) -> Result<u64, StoreError> {
        let v = self.read(|txn, dbs| get_raw(txn, dbs.stage_progress, stage.name().as_bytes()))?;
        Ok(v.and_then(|v| from_be(&v)).unwrap_or(0))
    }

    /// An account's state at the head.
    pub fn account(&self, addr: &Address) -> Result<Option<Account>, StoreError> {
        self.read(|txn, dbs| read_account(txn, dbs.accounts, addr))
    }

    /// Head, block count and table sizes (what `streamsync inspect` prints).
    pub fn stats(&self) -> Result<StoreStats, StoreError> {
        let head = self.head_info()?;
        let tables = self.read(|txn, dbs| {
            let all = [
                dbs.meta,
                dbs.headers,
                dbs.bodies,
                dbs.hashes,
                dbs.hash_to_number,
                dbs.commit_sigs,
                dbs.committees,
                dbs.accounts,
                dbs.stage_progress,
                dbs.account_changes,
                dbs.staging_hashes,
                dbs.staging_blocks,
            ];
            TABLES
                .iter()
                .zip(all)
                .map(|(name, db)| {
                    let s = txn.stat(db).map_err(StoreError::lmdb("stat"))?;
                    let pages = s.branch_pages() + s.leaf_pages() + s.overflow_pages();
                    Ok(TableStats {
                        name,
                        entries: s.entries(),
                        bytes: pages as u64 * u64::from(s.page_size()),
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()
        })?;
        let blocks = tables
            .iter()
            .find(|t| t.name == HEADERS)
            .map_or(0, |t| t.entries);
        Ok(StoreStats {
            network: self.spec.network.to_string(),
            shard_id: self.spec.shard_id,
            head_number: head.number,
            head_hash: to_hex(&head.hash),
            epoch: head.epoch,
            blocks,
            genesis_hash: to_hex(&self.spec.genesis_hash),
            map_size: self.map_size(),
            tables,
        })
    }

    fn head_info(&self) -> Result<HeadInfo, StoreError> {
        let (number, hash) = self.read(|txn, dbs| read_head(txn, dbs))?;
        Ok(HeadInfo {
            number,
            hash,
            epoch: self.spec.epoch_of(number),
        })
    }

    fn get_by_number<T>(
        &self,
        table: impl Fn(&Dbs) -> Database,
        number: u64,
        decode: impl Fn(&[u8]) -> Result<T, crate::chain::DecodeError>,
    ) -> Result<Option<T>, StoreError> {
        self.read(|txn, dbs| get_decoded(txn, table(dbs), &be(number), decode))
    }

    /// Raw RLP bytes of block `number`'s header and body, for serving without
    /// re-encoding.
    pub fn block_bytes(&self, number: u64) -> Result<Option<RawBlock>, StoreError> {
        self.read(|txn, dbs| {
            let h = get_raw(txn, dbs.headers, &be(number))?;
            let b = get_raw(txn, dbs.bodies, &be(number))?;
            Ok(h.zip(b))
        })
    }
}

fn describe(s: &ChainSpec) -> String {
    format!(
        "{} shard {} (epoch length {}, genesis {})",
        s.network,
        s.shard_id,
        s.epoch_len,
        &to_hex(&s.genesis_hash)[..16]
    )
}

fn open_env(dir: &Path, opts: StoreOptions) -> Result<(Env, Dbs), StoreError> {
    let env = Env::open(dir, opts, TABLES.len() as u32 + 1)?;
    let dbs = Dbs {
        meta: env.table(META)?,
        headers: env.table(HEADERS)?,
        bodies: env.table(BODIES)?,
        hashes: env.table(HASHES)?,
        hash_to_number: env.table(HASH_TO_NUMBER)?,
        commit_sigs: env.table(COMMIT_SIGS)?,
        committees: env.table(COMMITTEES)?,
        accounts: env.table(ACCOUNTS)?,
        stage_progress: env.table(STAGE_PROGRESS)?,
        account_changes: env.table(ACCOUNT_CHANGES)?,
        staging_hashes: env.table(STAGING_HASHES)?,
        staging_blocks: env.table(STAGING_BLOCKS)?,
    };
    Ok((env, dbs))
}

/// One account as it was before a block changed it (`account_changes`).
#[derive(alloy_rlp::RlpEncodable, alloy_rlp::RlpDecodable)]
struct AccountChange {
    address: Address,
    /// RLP of the account before the block; empty: it did not exist.
    before: alloy_rlp::Bytes,
}

pub(super) fn del(txn: &mut RwTransaction<'_>, db: Database, k: &[u8]) -> Result<(), StoreError> {
    match txn.del(db, &k, None) {
        Ok(()) | Err(lmdb::Error::NotFound) => Ok(()),
        Err(source) => Err(StoreError::Lmdb { op: "del", source }),
    }
}

fn append(txn: &mut RwTransaction<'_>, db: Database, k: &[u8], v: &[u8]) -> Result<(), StoreError> {
    txn.put(db, &k, &v, WriteFlags::APPEND)
        .map_err(StoreError::lmdb("append"))
}

pub(super) fn put(
    txn: &mut RwTransaction<'_>,
    db: Database,
    k: &[u8],
    v: &[u8],
) -> Result<(), StoreError> {
    txn.put(db, &k, &v, WriteFlags::empty())
        .map_err(StoreError::lmdb("put"))
}

pub(super) fn get_raw<T: Transaction>(
    txn: &T,
    db: Database,
    k: &[u8],
) -> Result<Option<Vec<u8>>, StoreError> {
    match txn.get(db, &k) {
        Ok(v) => Ok(Some(v.to_vec())),
        Err(lmdb::Error::NotFound) => Ok(None),
        Err(source) => Err(StoreError::Lmdb { op: "get", source }),
    }
}

fn get_decoded<T, X: Transaction>(
    txn: &X,
    db: Database,
    k: &[u8],
    decode: impl Fn(&[u8]) -> Result<T, crate::chain::DecodeError>,
) -> Result<Option<T>, StoreError> {
    match txn.get(db, &k) {
        Ok(v) => decode(v)
            .map(Some)
            .map_err(|e| StoreError::Corrupt(e.to_string())),
        Err(lmdb::Error::NotFound) => Ok(None),
        Err(source) => Err(StoreError::Lmdb { op: "get", source }),
    }
}

fn read_account<T: Transaction>(
    txn: &T,
    db: Database,
    a: &Address,
) -> Result<Option<Account>, StoreError> {
    match txn.get(db, a) {
        Ok(v) => alloy_rlp::decode_exact(v)
            .map(Some)
            .map_err(|e| StoreError::Corrupt(format!("account {}: {e}", to_hex(a)))),
        Err(lmdb::Error::NotFound) => Ok(None),
        Err(source) => Err(StoreError::Lmdb {
            op: "get account",
            source,
        }),
    }
}

fn head_value(n: u64, hash: &B256) -> [u8; 40] {
    let mut v = [0u8; 40];
    v[..8].copy_from_slice(&be(n));
    v[8..].copy_from_slice(hash);
    v
}

fn read_head<T: Transaction>(txn: &T, dbs: &Dbs) -> Result<(u64, B256), StoreError> {
    let v = get_raw(txn, dbs.meta, META_HEAD)?
        .ok_or_else(|| StoreError::Corrupt("head pointer missing".into()))?;
    if v.len() != 40 {
        return Err(StoreError::Corrupt("head pointer malformed".into()));
    }
    let n = from_be(&v[..8]).ok_or_else(|| StoreError::Corrupt("head pointer malformed".into()))?;
    let mut h = [0u8; 32];
    h.copy_from_slice(&v[8..]);
    Ok((n, h))
}

/// As [`write_block`], from the header's and body's RLP as received.
fn write_raw_block(
    txn: &mut RwTransaction<'_>,
    dbs: &Dbs,
    number: u64,
    header: &[u8],
    body: &[u8],
    hash: &B256,
) -> Result<(), StoreError> {
    let key = be(number);
    append(txn, dbs.headers, &key, header)?;
    append(txn, dbs.bodies, &key, body)?;
    append(txn, dbs.hashes, &key, hash)?;
    put(txn, dbs.hash_to_number, hash, &key)
}

fn write_block(
    txn: &mut RwTransaction<'_>,
    dbs: &Dbs,
    b: &Block,
    hash: &B256,
) -> Result<(), StoreError> {
    let key = be(b.number());
    // Blocks only ever extend the head, so numbered tables take appends
    // (LMDB's fast path; it refuses a key that is not the largest).
    append(txn, dbs.headers, &key, &b.header.to_bytes())?;
    append(txn, dbs.bodies, &key, &b.body.to_bytes())?;
    append(txn, dbs.hashes, &key, hash)?;
    put(txn, dbs.hash_to_number, hash, &key)
}

impl ChainBackend for Store {
    fn chain_spec(&self) -> &ChainSpec {
        &self.spec
    }

    fn head(&self) -> Result<HeadInfo, BackendError> {
        Ok(self.head_info()?)
    }

    fn hash_by_number(&self, number: u64) -> Result<Option<B256>, BackendError> {
        let v = self.read(|txn, dbs| get_raw(txn, dbs.hashes, &be(number)))?;
        match v {
            None => Ok(None),
            Some(v) => v.try_into().map(Some).map_err(|_| {
                StoreError::Corrupt(format!("hash of block {number} malformed")).into()
            }),
        }
    }

    fn number_by_hash(&self, hash: &B256) -> Result<Option<u64>, BackendError> {
        let v = self.read(|txn, dbs| get_raw(txn, dbs.hash_to_number, hash))?;
        match v {
            None => Ok(None),
            Some(v) => from_be(&v)
                .map(Some)
                .ok_or_else(|| StoreError::Corrupt("hash index malformed".into()).into()),
        }
    }

    fn header_by_number(&self, number: u64) -> Result<Option<Header>, BackendError> {
        Ok(self.get_by_number(|d| d.headers, number, Header::from_bytes)?)
    }

    fn block_by_number(&self, number: u64) -> Result<Option<Block>, BackendError> {
        let Some((h, b)) = self.block_bytes(number)? else {
            return Ok(None);
        };
        let header = Header::from_bytes(&h).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let body = Body::from_bytes(&b).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(Some(Block { header, body }))
    }

    fn commit_sig(&self, number: u64) -> Result<Option<CommitSig>, BackendError> {
        Ok(self.get_by_number(|d| d.commit_sigs, number, CommitSig::from_bytes)?)
    }

    fn committee(&self, epoch: u64) -> Result<Option<Committee>, BackendError> {
        Ok(self.get_by_number(|d| d.committees, epoch, Committee::from_bytes)?)
    }

    fn block_with_sig(&self, number: u64) -> Result<Option<BlockWithSig>, BackendError> {
        let Some(block) = self.block_by_number(number)? else {
            return Ok(None);
        };
        let Some(commit_sig) = self.commit_sig(number)? else {
            return Ok(None);
        };
        Ok(Some(BlockWithSig { block, commit_sig }))
    }

    fn insert_verified_batch(&self, batch: &InsertBatch) -> Result<HeadInfo, BackendError> {
        Ok(self.insert_batch(batch)?)
    }

    fn unwind_to(&self, number: u64) -> Result<HeadInfo, BackendError> {
        Ok(self.unwind_to(number)?)
    }

    fn block_with_sig_bytes(&self, number: u64) -> Result<Option<Vec<u8>>, BackendError> {
        let parts = self.read(|txn, dbs| {
            let k = be(number);
            Ok(get_raw(txn, dbs.headers, &k)?
                .zip(get_raw(txn, dbs.bodies, &k)?)
                .zip(get_raw(txn, dbs.commit_sigs, &k)?))
        })?;
        Ok(parts.map(|((h, b), c)| {
            // BlockWithSig = [[header, body], commit_sig], from the stored
            // encodings without decoding them.
            let block_len = h.len() + b.len();
            let block_hdr = alloy_rlp::Header {
                list: true,
                payload_length: block_len,
            };
            let outer_len = block_hdr.length() + block_len + c.len();
            let mut out = Vec::with_capacity(outer_len + 9);
            alloy_rlp::Header {
                list: true,
                payload_length: outer_len,
            }
            .encode(&mut out);
            block_hdr.encode(&mut out);
            out.extend_from_slice(&h);
            out.extend_from_slice(&b);
            out.extend_from_slice(&c);
            out
        }))
    }
}
