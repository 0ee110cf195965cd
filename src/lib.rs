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
//! Embedding: start a [`Node`] over the host's chain (any [`ChainBackend`];
//! the crate's LMDB [`Store`] stands in here), boot it from peers, hand it
//! consensus blocks with [`Node::offer_block`], read [`Node::status`]. The
//! same as `examples/embed.rs`:
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use streamsync::chain::GenesisSpec;
//! use streamsync::{ChainBackend, Config, Network, Node, NodeConfig, NodeIdentity, Store};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let genesis = GenesisSpec::with_defaults("localnet", 1).build()?;
//! let chain: Arc<dyn ChainBackend> =
//!     Arc::new(Store::open_or_create(dir.path(), &genesis, Default::default())?);
//! let mut config = Config::for_network(Network::Localnet);
//! config.sync.client = true; // sync, not only serve
//! let mut cfg = NodeConfig::new(config, "127.0.0.1:0".parse()?);
//! cfg.boot.push("/ip4/127.0.0.1/tcp/9000/p2p/12D3KooWCiLjM4g4jYFyZ85FFUEWsq9muZW9u43qJnTvaotYeQFv".parse()?);
//! let node = Node::start(cfg, chain, NodeIdentity::generate(), None)?;
//! println!("{:?} at head {}", node.peer_addr(), node.status().sync.head);
//! node.shutdown();
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs, missing_debug_implementations)]
// A type the public API hands out must have a public path (and so a doc
// page): modules kept internal without the `testkit` feature re-export what
// the embedder's types name.
#![deny(unnameable_types)]

// Misbehaving backends and the junk-connection flood: attack code for
// tests and `localnet --byzantine`, not for an embedder.
#[cfg(feature = "testkit")]
pub mod byzantine;
pub mod chain;
pub mod config;
pub mod crypto;
pub mod metrics;
pub mod net;
pub mod node;
pub mod request;
pub mod runtime;
// The server pool and its rate limiter: the host runs them; tests run a
// bare server (test support). Its settings are `runtime`'s re-exports.
#[cfg(feature = "testkit")]
pub mod server;
#[cfg(not(feature = "testkit"))]
pub(crate) mod server;
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
pub use store::{LmdbStaging, Store, StoreOptions};
pub use stream::PeerAddr;
pub use sync::{SyncOutcome, SyncStatus};
