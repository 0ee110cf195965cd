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
//! Threads: any number of readers (each read is its own short read
//! transaction); one writer at a time (the sync thread's LMDB writer).

mod chain_store;
mod error;
mod staging;
mod tables;

pub use chain_store::{RawBlock, Store, StoreOptions, StoreStats, TableStats};
pub use error::StoreError;
pub use staging::{LmdbStaging, MemStaging, Staging};
pub use tables::TABLES;
