//! Sync settings: the guide's `[Sync.StagedSyncCfg]` plus the engine's own
//! limits.

use std::time::Duration;

use crate::chain::verify::SigPolicy;
use crate::config::{StagedSyncConfig, SyncConfig};

/// Settings of the staged sync.
#[derive(Clone, Debug)]
pub struct SyncSettings {
    /// `[Sync.StagedSyncCfg]`.
    pub staged: StagedSyncConfig,
    /// `Concurrency`: body requests in flight per stream before its link
    /// is measured; then its window follows the link (see `window`).
    pub concurrency: usize,
    /// `MinPeers`: distinct peers whose heights Heads needs to decide a
    /// target (and "synced").
    pub min_peers: usize,
    /// `HeadsVotesPerIP`: most Heads votes counted per IP (0 = no cap).
    pub heads_votes_per_ip: usize,
    /// `InitStreams`: streams waited for before the first cycle (at most
    /// `init_wait`).
    pub init_streams: usize,
    /// How long the first cycle waits for `InitStreams`.
    pub init_wait: Duration,
    /// Within this many blocks of the target, ShortRange syncs instead of
    /// the long-range stages.
    pub short_range_threshold: u64,
    /// Hashes per `GetBlockHashes` request (≤ 1024).
    pub hash_batch: usize,
    /// Most blocks per `GetBlocksByHashes` request (≤ 128; slow streams
    /// get smaller ones).
    pub body_batch: usize,
    /// Per-request time limit.
    pub request_timeout: Duration,
    /// Watchdog: a cycle with no progress for this long restarts.
    pub stall_timeout: Duration,
    /// `MaxStagedBytes`: the byte budget of downloaded, uncommitted blocks
    /// and body requests in flight.
    pub max_staged_bytes: usize,
    /// Pause between cycles once synced.
    pub idle_interval: Duration,
}

impl SyncSettings {
    /// From the `[Sync]` section.
    pub fn from_sync(s: &SyncConfig) -> Self {
        SyncSettings {
            staged: s.staged.clone(),
            concurrency: s.concurrency,
            min_peers: s.min_peers,
            heads_votes_per_ip: s.heads_votes_per_ip,
            init_streams: s.init_streams,
            init_wait: Duration::from_secs(10),
            short_range_threshold: 16,
            hash_batch: crate::wire::limits::MAX_HASHES_PER_REQUEST,
            body_batch: 128,
            request_timeout: Duration::from_secs(20),
            stall_timeout: Duration::from_secs(60),
            max_staged_bytes: usize::try_from(s.staged.max_staged_bytes).unwrap_or(usize::MAX),
            idle_interval: Duration::from_secs(2),
        }
    }

    /// Which commit signatures States verifies.
    pub fn sig_policy(&self) -> SigPolicy {
        if self.staged.verify_all_sig {
            SigPolicy::All
        } else {
            SigPolicy::EveryNth(self.staged.verify_header_batch_size)
        }
    }

    /// Blocks of one cycle starting after `head`, towards `target`.
    pub fn cycle_end(&self, head: u64, target: u64) -> u64 {
        let mut end = target;
        if self.staged.max_blocks_per_sync_cycle > 0 {
            end = end.min(head + self.staged.max_blocks_per_sync_cycle);
        }
        end
    }
}
