//! What the sync shows: a snapshot for `status()`, the `/status` endpoint
//! and progress displays. The machine owns it and publishes it with
//! `Action::Status`.

use serde::Serialize;

/// A snapshot of the sync, for `status()` and progress displays.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SyncStatus {
    /// The stage running now (`None` when idle).
    pub stage: Option<&'static str>,
    /// Our head.
    pub head: u64,
    /// The target of the current sync (highest height vouched for).
    pub target: u64,
    /// Blocks inserted per second since the sync started.
    pub blocks_per_sec: f64,
    /// Blocks inserted since start.
    pub blocks_synced: u64,
    /// Encoded bytes of the blocks inserted since start.
    pub bytes_synced: u64,
    /// Commit signatures verified since start.
    pub sigs_verified: u64,
    /// Cycles completed.
    pub cycles: u64,
    /// Short-range syncs done.
    pub short_ranges: u64,
    /// Blocks rejected as invalid (their senders were removed).
    pub invalid_blocks: u64,
    /// Whether the last Heads found nothing to do.
    pub synced: bool,
    /// Atomic insert transactions States committed.
    pub insert_batches: u64,
    /// Hash batches confirmed by a second stream (`DoubleCheckBlockHashes`).
    pub hash_batches_double_checked: u64,
    /// Blocks of a cycle downloaded before it started (Turbo: the window
    /// runs up to `MaxBackgroundBlocks` past the current cycle).
    pub prefetched_used: u64,
    /// Blocks asked for by hash (hedges included).
    pub blocks_requested: u64,
    /// Requests hedged to a second stream.
    pub hedges: u64,
    /// Times hashes nobody could serve were given up on.
    pub unservable: u64,
    /// Consensus triggers taken.
    pub consensus_triggers: u64,
    /// Blocks the host node offered (beacon helper) that were buffered.
    pub offered: u64,
    /// Offered blocks committed
    /// (`hmy_staged_stream_sync_num_blocks_inserted_beacon_helper`).
    pub beacon_inserted: u64,
    /// Staged hashes a restarted node kept (not downloaded again).
    pub restored_hashes: u64,
    /// Staged blocks a restarted node kept (not downloaded again).
    pub restored_blocks: u64,
    /// BlockHashes' checkpoint: every hash up to here is staged (persisted,
    /// with `UseMemDB = false`).
    pub hashes_staged_to: u64,
    /// BlockBodies' checkpoint: every block up to here is downloaded
    /// (persisted, with `UseMemDB = false`).
    pub bodies_staged_to: u64,
    /// Bytes of the byte budget in use (`MaxStagedBytes`).
    pub budget_used: u64,
    /// Peak of `budget_used`.
    pub budget_peak: u64,
    /// Where staging lives: "memory" (`UseMemDB`) or "lmdb".
    pub staging: &'static str,
    /// Times the node found its own chain on an invalid branch and unwound.
    pub unwinds: u64,
    /// Peers proven, once the canonical blocks were committed, to have
    /// claimed false hashes.
    pub liars_proven: u64,
    /// When the first block was committed, in ms since the sync started
    /// (`None` before any commit): the report's time to first block.
    pub first_commit_ms: Option<u64>,
    /// When the last block was committed, in ms since the sync started.
    pub last_commit_ms: Option<u64>,
    /// Blocks committed at `first_commit_ms` (the first batch), so the
    /// steady rate counts only what came after it.
    pub first_commit_blocks: u64,
    /// The last error a cycle ended with.
    pub last_error: Option<String>,
}

impl SyncStatus {
    /// Notes `count` blocks committed at `ms` since the sync started.
    pub fn note_commit(&mut self, ms: u64, count: u64) {
        if self.first_commit_ms.is_none() {
            self.first_commit_ms = Some(ms);
            self.first_commit_blocks = count;
        }
        self.last_commit_ms = Some(ms);
    }

    /// Blocks committed between the first and the last commit, per second
    /// of that time (0 with fewer than two commits).
    pub fn steady_blocks_per_sec(&self) -> f64 {
        match (self.first_commit_ms, self.last_commit_ms) {
            (Some(a), Some(b)) if b > a => {
                (self.blocks_synced.saturating_sub(self.first_commit_blocks)) as f64
                    / ((b - a) as f64 / 1e3)
            }
            _ => 0.0,
        }
    }
}
