//! # streamsync
//!
//! A peer-to-peer block sync engine: nodes serve their chain to neighbours
//! over authenticated streams and, when behind, download from many peers at
//! once through a staged pipeline (Heads → SyncEpoch → ShortRange →
//! BlockHashes → BlockBodies → States → Finish). A Rust reimplementation of
//! Harmony's stream sync: its config keys, defaults and metric names are kept.
//!
//! No async runtime: every component is a state machine fed events and `now`,
//! wrapped by a thin thread (DESIGN.md §2).
//!
//! ```
//! use streamsync::chain::{generator::Generator, verify::{verify_segment, SigPolicy, CommitteeKeys}, GenesisSpec};
//! use std::sync::Arc;
//!
//! let spec = GenesisSpec { seed: 1, network: "localnet".into(), shard_id: 0,
//!                          epoch_len: 8, committee_size: 4, accounts: 8 };
//! let (mut gen, genesis) = Generator::new(spec, 2).unwrap();
//! let blocks: Vec<_> = (0..20).map(|_| gen.next_block().unwrap()).collect();
//! let chain = gen.chain_spec().clone();
//! let keys0 = Arc::new(CommitteeKeys::new(0, &genesis.block.body.committee(), 0).unwrap());
//! let parent = (&genesis.block.header, &genesis.block.hash());
//! let check = verify_segment(&chain, Some(parent), &blocks, SigPolicy::All,
//!                            |e| (e == 0).then(|| keys0.clone()));
//! assert!(check.is_valid());
//! assert_eq!(check.sigs_checked.len(), 20);
//! ```
#![deny(missing_docs, missing_debug_implementations)]

pub mod byzantine;
pub mod chain;
pub mod config;
pub mod crypto;
pub mod metrics;
pub mod net;
pub mod node;
pub mod request;
pub mod runtime;
pub mod server;
pub mod store;
pub mod stream;
pub mod sync;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod wire;

#[cfg(test)]
mod test_util;

// What an embedder needs, at the root: start a node over a chain, feed it
// consensus blocks, read its status.
pub use chain::backend::InsertBatch;
pub use chain::{BackendError, BlockWithSig, ChainBackend, ChainSpec, Genesis, HeadInfo};
pub use config::{Config, Network};
pub use crypto::NodeIdentity;
pub use node::{Node, NodeConfig, NodeError, NodeStatus, OfferError};
pub use store::Store;
pub use stream::PeerAddr;
pub use sync::{SyncOutcome, SyncStatus};
