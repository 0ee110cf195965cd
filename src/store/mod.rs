//! LMDB storage (DESIGN.md §5): one environment per datadir holding the chain
//! tables, the stage progress and (with `UseMemDB = false`) the sync staging
//! tables.
//!
//! Each [`Store::insert_batch`] writes blocks, state changes, the head pointer
//! and stage progress in **one** write transaction: a crash loses at most the
//! batch in flight and never leaves a half-written block. Numbered keys are
//! 8-byte big-endian so LMDB's key order is block order. The map grows on
//! `MDB_MAP_FULL` instead of failing. The files open with `mdb_stat -a DIR`.
//!
//! The commit signature stored for block N is the one block N+1's header
//! carries, which the hash chain covers; for the head (the last block of
//! the last batch) it is the one sent beside it, which the caller must have
//! verified (`chain::verify` always verifies a segment's last block with
//! that copy). A copy sent beside any other block is never stored, so the
//! node never serves a signature nobody checked.
//!
//! Every block also records the accounts it changed as they were before it
//! (`account_changes`), so [`Store::unwind_to`] can take the chain back to
//! an earlier block in one transaction if the node ever finds itself on an
//! invalid branch.
//!
//! One process per datadir: an open store holds an exclusive lock on
//! `DIR/LOCK` (see [`LOCK_FILE`]); a second opener gets
//! [`StoreError::InUse`] naming the holder's pid. The kernel releases the
//! lock when the process exits or dies.
//!
//! Threads: any number of readers (each read is its own short read
//! transaction); one writer at a time (the sync thread's LMDB writer).

mod chain_store;
mod env;
mod error;
mod lock;
mod staging;
mod tables;

pub use chain_store::{RawBlock, Store, StoreOptions, StoreStats, TableStats};
pub use error::StoreError;
pub use lock::LOCK_FILE;
pub use staging::{LmdbStaging, StageWrite};
pub use tables::TABLES;
