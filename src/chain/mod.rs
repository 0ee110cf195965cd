//! The reference chain (DESIGN.md §4): a real, verifiable chain used by the
//! binary, the tests, the benches and the fuzzers.
//!
//! - [`types`]: header, body, block, commit signature, committee; RLP codec.
//! - [`spec`]: network/shard/epoch parameters and the deterministic genesis.
//! - [`state`]: accounts and the state transition with its state-root commitment.
//! - [`verify`]: parent links, tx roots, committee hand-over, quorum, and
//!   parallel batch verification of commit signatures.
//! - [`generator`]: deterministic chain generation from a seed.
//! - [`backend`]: the [`ChainBackend`] trait the sync engine is generic over.
//! - [`executor`]: the [`Executor`] trait, the state transition a store applies.
//! - [`audit`]: re-checks a stored chain's root of trust (hand-overs, head).
//! - [`sealed`]: a block decoded and hashed once, with its raw bytes.
//! - [`stage_id`]: the sync stages' names, the keys of their checkpoints.
//!
//! Pure logic: nothing here touches the disk or the network.

pub mod audit;
pub mod backend;
pub mod error;
pub mod executor;
pub mod generator;
pub mod limits;
pub mod sealed;
pub mod spec;
pub mod stage_id;
pub mod state;
pub mod types;
pub mod verify;

pub use backend::{BackendError, ChainBackend, HeadInfo};
pub use error::{DecodeError, VerifyError};
pub use executor::{Executor, Transfers};
pub use sealed::SealedBlock;
pub use spec::{ChainSpec, Genesis, GenesisSpec};
pub use stage_id::StageId;
pub use state::{Account, Address};
pub use types::{Block, BlockWithSig, Body, CommitSig, Committee, Header, Transfer};
