//! What the sync shows: a snapshot for `status()`, the `/status` endpoint
//! and progress displays. The machine owns it and publishes it with
//! `Action::Status`.

use serde::Serialize;

use libp2p_identity::PeerId;

use crate::net::StreamId;

/// Serializes a peer as its base58 text (empty when unknown).
fn peer_text<S: serde::Serializer>(p: &Option<PeerId>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&p.map(|p| p.to_string()).unwrap_or_default())
}

/// Most streams [`SyncStatus::stream_blocks`] lists: past it, the stream
/// whose last block was committed longest ago is forgotten (a long-running
/// node goes through many streams).
pub const MAX_STREAM_BLOCKS: usize = 64;

/// The blocks one stream served that the sync committed: the guide's
/// "Download Speed", per stream.
///
/// Source: each committed block's body source (the stream whose answer
/// was staged for it, `Provenance::body_from`), counted as the block is
/// committed. Blocks a restarted node kept from its staging have no source
/// and are in no stream's count; hedged duplicates count once, for the
/// stream whose copy was kept. Per-stream byte rates (`Link::rate`) would
/// count answers later dropped, and the request manager's answered counts
/// are requests of every kind, not blocks.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct StreamBlocks {
    /// The stream (this node's id for it, as in `HostStatus::streams`).
    pub stream: StreamId,
    /// The peer behind it (`None` if the sync never knew). A `PeerId`,
    /// not its text: the status is copied at every step the machine
    /// takes, and a string per stream would be an allocation each time.
    #[serde(serialize_with = "peer_text")]
    pub peer: Option<PeerId>,
    /// Committed blocks whose body this stream served, blocks.
    pub blocks: u64,
    /// `blocks` per second of the sync's run time at the latest commit
    /// (any stream's), blocks/s: the same denominator as
    /// [`SyncStatus::blocks_per_sec`], so the rates of all streams add up
    /// to it less the blocks with no source.
    pub blocks_per_sec: f64,
    /// When this stream's last block was committed, ms since the sync
    /// started.
    pub last_commit_ms: u64,
}

/// A snapshot of the sync, for `status()` and progress displays.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SyncStatus {
    /// The stage running now (`None` when idle).
    pub stage: Option<&'static str>,
    /// Our head.
    pub head: u64,
    /// The target of the current sync (highest height vouched for).
    pub target: u64,
    /// Blocks inserted per second since the sync started, blocks/s
    /// (refreshed at every commit).
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
    /// Committed blocks by the stream that served them, by stream id, at
    /// most [`MAX_STREAM_BLOCKS`] streams (see [`StreamBlocks`]).
    pub stream_blocks: Vec<StreamBlocks>,
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

    /// Notes committed blocks served by each stream of `served` (stream,
    /// its peer if known, blocks) at `ms` since the sync started, and
    /// refreshes every stream's rate and the overall one to `ms`.
    pub fn note_stream_blocks(
        &mut self,
        ms: u64,
        served: impl IntoIterator<Item = (StreamId, Option<PeerId>, u64)>,
    ) {
        for (stream, peer, blocks) in served {
            match self
                .stream_blocks
                .binary_search_by_key(&stream, |e| e.stream)
            {
                Ok(i) => {
                    let e = &mut self.stream_blocks[i];
                    e.blocks += blocks;
                    e.last_commit_ms = ms;
                    if e.peer.is_none() {
                        e.peer = peer;
                    }
                }
                Err(i) => self.stream_blocks.insert(
                    i,
                    StreamBlocks {
                        stream,
                        peer,
                        blocks,
                        blocks_per_sec: 0.0,
                        last_commit_ms: ms,
                    },
                ),
            }
        }
        while self.stream_blocks.len() > MAX_STREAM_BLOCKS {
            let oldest = self
                .stream_blocks
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| (e.last_commit_ms, e.stream))
                .map(|(i, _)| i);
            if let Some(i) = oldest {
                self.stream_blocks.remove(i);
            }
        }
        let secs = ms as f64 / 1e3;
        if secs > 0.0 {
            for e in &mut self.stream_blocks {
                e.blocks_per_sec = e.blocks as f64 / secs;
            }
            self.blocks_per_sec = self.blocks_synced as f64 / secs;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_blocks_add_up_refresh_their_rates_and_stay_bounded() {
        let mut s = SyncStatus {
            blocks_synced: 30,
            ..SyncStatus::default()
        };
        let (a, b) = (PeerId::random(), PeerId::random());
        s.note_stream_blocks(1000, [(7, Some(a), 10), (3, None, 20)]);
        assert_eq!(
            s.stream_blocks.iter().map(|e| e.stream).collect::<Vec<_>>(),
            vec![3, 7]
        );
        s.blocks_synced += 10;
        s.note_stream_blocks(2000, [(3, Some(b), 10)]);
        let three = &s.stream_blocks[0];
        assert_eq!((three.blocks, three.peer), (30, Some(b)));
        assert_eq!(three.last_commit_ms, 2000);
        assert!((three.blocks_per_sec - 15.0).abs() < 1e-9);
        // Stream 7 delivered nothing since: its rate falls with the time.
        assert!((s.stream_blocks[1].blocks_per_sec - 5.0).abs() < 1e-9);
        assert!((s.blocks_per_sec - 20.0).abs() < 1e-9);
        for i in 0..MAX_STREAM_BLOCKS as u64 {
            s.note_stream_blocks(3000 + i, [(100 + i, None, 1)]);
        }
        assert_eq!(s.stream_blocks.len(), MAX_STREAM_BLOCKS);
        // The two oldest went first: 7 (1000 ms), then 3 (2000 ms).
        assert!(s.stream_blocks.iter().all(|e| e.stream >= 100));
    }
}
