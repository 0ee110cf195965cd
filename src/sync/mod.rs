//! The staged sync pipeline (DESIGN.md §9): Heads → SyncEpoch → ShortRange
//! → BlockHashes → BlockBodies → States → Finish, cycle after cycle, on the
//! `sync` thread. One file per stage; [`stage`] lists them in order and
//! defines the [`Stage`] trait; [`pipeline`] runs them; errors classify
//! themselves in [`error`].
//!
//! Verification is the anchor of blame: a block is accepted only if it
//! hashes to a hash the hash stage staged, matches its tx root, links to
//! our chain and is covered by a verified commit signature of the
//! committee its epoch's chain of hand-overs established (see
//! `chain::verify`). Who pays for what is decided in one place, [`blame`];
//! hash claims that cannot be proven at once wait in [`claims`]. Heads
//! decides the target by quorum ([`heads`]). Before its first cycle the
//! pipeline audits the node's own chain and unwinds an invalid branch.

pub mod blame;
pub mod block_bodies;
pub mod block_hashes;
pub mod claims;
pub mod context;
pub mod error;
pub mod finish;
pub mod heads;
pub mod pipeline;
pub mod settings;
pub mod short_range;
pub mod stage;
mod stage_id;
pub mod states;
pub mod sync_epoch;
pub mod turbo;

pub use context::{SyncContext, SyncStatus};
pub use error::StageError;
pub use pipeline::{CycleOutcome, Pipeline, SyncOutcome};
pub use settings::SyncSettings;
pub use stage::{Cycle, ExecOutput, Stage};
pub use stage_id::StageId;
