//! The staged sync (DESIGN.md §9) as a sans-IO streaming machine.
//!
//! - `machine`: `SyncMachine`, the whole logic: `handle_*(…, now)`
//!   inputs, polled `Action`s, `next_deadline()`; no blocking, no clock,
//!   no channel, socket or store handle. Its module docs give the call
//!   order.
//! - One file per stage, each holding that stage's part of the machine, in
//!   the guide's order (the order itself is [`StageId::ALL`]):
//!   `heads`, `sync_epoch`, `short_range`, `block_hashes`,
//!   `block_bodies`, `states`, `finish`. The stages run **per batch**:
//!   a cycle's range is a window of slots that BlockHashes and BlockBodies
//!   fill out of order over every stream while States verifies and commits
//!   its prefix in order, so downloads of later batches (and cycles)
//!   overlap the verification and commit of earlier ones.
//! - `window`: per-stream request windows from the measured
//!   bandwidth-delay product; streams ranked by delivered bytes/s.
//! - `ranges`: the retry queues' sets of block numbers.
//! - [`beacon`]: the beacon helper: blocks the host node offers
//!   (`Node::offer_block`), verified and committed in order.
//! - `blame`: who pays for what, in one place; `claims`: hash claims
//!   waiting for proof.
//! - `resume`: where a (re)started sync begins (tip, committees, what
//!   is staged), shared by the driver and the simulator.
//! - Threads: `driver` (the `sync` thread, a thin adapter), `writer`
//!   (`sync-writer`, the one LMDB writer), and rayon for verification.
//!
//! Checkpoints: BlockHashes and BlockBodies record the highest number up to
//! which everything is staged, in the same LMDB transaction as the staged
//! data (`UseMemDB = false`); States, the head, in the commit's. A
//! restarted node reads them and keeps what is staged.
//!
//! Verification is the anchor of blame: a block is accepted only if it
//! hashes to a hash BlockHashes staged, matches its tx root, links to the
//! chain and is covered by a verified commit signature of the committee its
//! epoch's chain of hand-overs established (see `chain::verify`).

pub mod beacon;
mod blame;
mod block_bodies;
mod block_hashes;
mod claims;
pub(crate) mod driver;
mod error;
mod finish;
mod heads;
// The sans-IO machine and its jobs: the node drives it on its sync thread;
// tests and the simulator drive it directly (test support).
#[cfg(feature = "testkit")]
pub mod machine;
#[cfg(not(feature = "testkit"))]
pub(crate) mod machine;
mod ranges;
pub(crate) mod resume;
mod settings;
mod short_range;
mod states;
mod status;
mod sync_epoch;
mod window;
pub(crate) mod writer;

pub use crate::chain::StageId;
pub(crate) use driver::SyncThread;
#[cfg(feature = "testkit")]
pub use error::StageError;
#[cfg(not(feature = "testkit"))]
pub(crate) use error::StageError;
#[cfg(feature = "testkit")]
pub use machine::{Action, CommitJob, Restored, Start, SyncMachine, Tip, VerifyJob};
pub use settings::SyncSettings;
pub use status::{StreamBlocks, SyncStatus, MAX_STREAM_BLOCKS};

use serde::Serialize;

/// How the sync ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum SyncOutcome {
    /// It reached the target the Heads quorum decided (only with
    /// `exit_when_synced`).
    Synced {
        /// The head reached.
        head: u64,
        /// The quorum's target.
        target: u64,
    },
    /// It was asked to stop first.
    Stopped {
        /// The head at the stop.
        head: u64,
        /// The last target Heads decided (0 if none yet).
        target: u64,
    },
    /// It cannot go on (e.g. its chain is on an invalid branch it cannot
    /// unwind).
    Failed(String),
}
#[cfg(test)]
mod tests;
