//! What every stage works with: the chain, the host (requests, blame), the
//! staging tables, the committees known so far, the status.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use libp2p_identity::PeerId;
use parking_lot::RwLock;
use serde::Serialize;

use super::blame::{Fault, Provenance};
use super::claims::Claims;
use super::error::StageError;
use super::settings::SyncSettings;
use super::stage_id::StageId;
use crate::chain::verify::CommitteeKeys;
use crate::chain::ChainBackend;
use crate::host::HostHandle;
use crate::net::{StreamId, StreamInfo};
use crate::request::{Priority, RequestOptions};
use crate::store::Staging;
use crate::wire::{Request, Response};

/// Outcome of one request: the response and the stream that sent it.
pub type Answer = Result<(Response, StreamId), StageError>;

/// A snapshot of the sync, for `status()` and progress displays.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SyncStatus {
    /// The stage running now (`None` when idle).
    pub stage: Option<&'static str>,
    /// Our head.
    pub head: u64,
    /// The target of the current sync (highest height vouched for).
    pub target: u64,
    /// Blocks inserted per second over the last cycle.
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
    /// Blocks taken from Turbo's background downloads.
    pub prefetched_used: u64,
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

/// The shared state of the stages.
pub struct SyncContext {
    /// The chain.
    pub backend: Arc<dyn ChainBackend>,
    /// Requests and blame.
    pub host: HostHandle,
    /// Settings.
    pub settings: SyncSettings,
    /// Downloaded, not yet inserted.
    pub staging: Box<dyn Staging>,
    /// Validated committees by epoch.
    pub committees: HashMap<u64, Arc<CommitteeKeys>>,
    /// Which streams claimed the hash and served the body of each staged
    /// block (what blame needs).
    pub prov: Provenance,
    /// Hash claims awaiting proof (see [`Claims`]).
    pub claims: Claims,
    /// The height each stream claimed at the last Heads.
    pub claimed: HashMap<StreamId, u64>,
    /// Streams that failed to serve hashes below their claimed height: the
    /// highest block each has shown it can serve. Heads counts their votes
    /// at most that high.
    pub height_caps: HashMap<StreamId, u64>,
    /// The peer behind each stream seen (so a fault proven after a stream
    /// is gone still reaches its peer).
    pub peers: HashMap<StreamId, PeerId>,
    /// Status for readers.
    pub status: Arc<RwLock<SyncStatus>>,
    /// Set to stop.
    pub stop: Arc<AtomicBool>,
    /// Last time any stage made progress (the watchdog's clock).
    pub last_progress: Instant,
    /// When the sync started (commit times are reported from here).
    pub started: Instant,
    /// Turbo: the next cycle's blocks downloading in the background.
    pub prefetch: super::turbo::Prefetch,
}

impl std::fmt::Debug for SyncContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncContext")
            .field("status", &*self.status.read())
            .finish()
    }
}

impl SyncContext {
    /// The active streams now (also remembers who is behind each).
    pub fn streams(&mut self) -> Vec<StreamInfo> {
        let streams = self.host.status().streams;
        // Bounded: forget streams that are gone, keep the current ones.
        if self.peers.len() > 4 * streams.len() + 1024 {
            self.peers.clear();
        }
        for s in &streams {
            self.peers.insert(s.id, s.peer_id);
        }
        let live: std::collections::HashSet<StreamId> = streams.iter().map(|s| s.id).collect();
        self.height_caps.retain(|s, _| live.contains(s));
        self.claimed.retain(|s, _| live.contains(s));
        streams
    }

    /// Fails with `Shutdown` when asked to stop, `Stalled` when the watchdog
    /// limit passed without progress.
    pub fn check(&self) -> Result<(), StageError> {
        if self.stop.load(Ordering::Relaxed) {
            return Err(StageError::Shutdown);
        }
        let idle = self.last_progress.elapsed();
        if idle > self.settings.stall_timeout {
            return Err(StageError::Stalled(idle));
        }
        Ok(())
    }

    /// Notes progress (resets the watchdog).
    pub fn progressed(&mut self) {
        self.last_progress = Instant::now();
    }

    /// Default options for a download request.
    pub fn opts(&self, priority: Priority, blacklist: Vec<StreamId>) -> RequestOptions {
        RequestOptions {
            priority,
            whitelist: None,
            blacklist,
            timeout: Some(self.settings.request_timeout),
        }
    }

    /// Sends every request at once (the request manager spreads them over
    /// streams and pipelines them) and returns the answers in order.
    pub fn request_all(&self, reqs: Vec<(Request, RequestOptions)>) -> Vec<Answer> {
        let rxs: Vec<_> = reqs
            .into_iter()
            .map(|(r, o)| self.host.requests().submit(r, o))
            .collect();
        rxs.into_iter()
            .map(|rx| match rx.recv() {
                Ok(Ok(x)) => Ok(x),
                Ok(Err(e)) => Err(StageError::Network(e)),
                Err(_) => Err(StageError::Shutdown),
            })
            .collect()
    }

    /// Makes `stream`'s peer pay for `fault` (see [`Fault::removal`]),
    /// even if the stream is gone. The one place the sync blames.
    pub fn blame(&self, stream: StreamId, fault: Fault, why: &str) {
        let Some(reason) = fault.removal() else {
            return;
        };
        tracing::warn!(stream, reason = reason.label(), why, "blaming stream");
        match self.peers.get(&stream) {
            Some(peer) => self.host.penalize_peer(*peer, reason),
            None => self.host.remove_stream(stream, reason),
        }
    }

    /// Makes `peer` pay for `fault` (its stream may be long gone).
    pub fn blame_peer(&self, peer: PeerId, fault: Fault, why: &str) {
        if let Some(reason) = fault.removal() {
            tracing::warn!(%peer, reason = reason.label(), why, "blaming peer");
            self.host.penalize_peer(peer, reason);
        }
    }

    /// Waits `d`, or less if asked to stop (a retry's back-off).
    pub fn pause(&self, d: Duration) {
        let until = Instant::now() + d;
        while !self.stop.load(Ordering::Relaxed) {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            std::thread::park_timeout(left.min(Duration::from_millis(50)));
        }
    }

    /// The validated keys of `epoch`'s committee, from the cache or the chain.
    pub fn committee(&mut self, epoch: u64) -> Option<Arc<CommitteeKeys>> {
        if let Some(k) = self.committees.get(&epoch) {
            return Some(k.clone());
        }
        let c = self.backend.committee(epoch).ok()??;
        let keys = Arc::new(CommitteeKeys::new(epoch, &c, 0).ok()?);
        self.committees.insert(epoch, keys.clone());
        Some(keys)
    }

    /// Notes `count` blocks committed now (time to first block, steady rate).
    pub fn note_commit(&self, count: u64) {
        let ms = self.started.elapsed().as_millis() as u64;
        self.status.write().note_commit(ms, count);
    }

    /// Updates the status.
    pub fn set_stage(&self, stage: Option<StageId>) {
        self.status.write().stage = stage.map(StageId::name);
    }

    /// Waits up to `d` (or until stopped) for the host to have `n` streams.
    pub fn wait_for_streams(&mut self, n: usize, d: Duration) -> usize {
        let deadline = Instant::now() + d;
        loop {
            let have = self.streams().len();
            if have >= n || Instant::now() >= deadline || self.stop.load(Ordering::Relaxed) {
                return have;
            }
            // The host publishes its pool asynchronously; poll it.
            std::thread::park_timeout(Duration::from_millis(50));
        }
    }
}
