//! One simulated node: its real cores and what the simulator records
//! about it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Instant;

use alloy_rlp::Bytes;
use libp2p_identity::PeerId;

use crate::byzantine::Behaviour;
use crate::chain::{ChainBackend, StageId};
use crate::crypto::B256;
use crate::net::{StreamId, StreamInfo};
use crate::request::{RequestManager, Ticket};
use crate::server::RateLimiter;
use crate::store::StageWrite;
use crate::stream::{PeerAddr, RemovalReason, StreamManager, StreamStatus};
use crate::sync::machine::ReqId;
use crate::sync::{SyncMachine, SyncOutcome, SyncStatus};
use crate::testkit::MemChain;

/// How a byzantine node misbehaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Byzantine {
    /// One of the engine's serving behaviours ([`Behaviour`]: wrong bodies,
    /// bad signatures, lying heights, garbage, silence, a forged fork from
    /// an epoch boundary, fake hashes, broken links).
    Serves(Behaviour),
    /// Announces its head honestly, then answers every hash and block
    /// request with "absent".
    Withholding,
    /// Serves honestly, but holds every answer for [`SLOW_DRIP_HOLD`].
    SlowDrip,
}

/// How long a slow-drip node holds each answer.
pub const SLOW_DRIP_HOLD: std::time::Duration = std::time::Duration::from_secs(8);

impl Byzantine {
    /// Every byzantine behaviour the simulator knows, in a fixed order.
    pub fn all() -> Vec<Byzantine> {
        let mut v: Vec<Byzantine> = Behaviour::ALL
            .iter()
            .map(|b| Byzantine::Serves(*b))
            .collect();
        v.push(Byzantine::Withholding);
        v.push(Byzantine::SlowDrip);
        v
    }

    /// A short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Byzantine::Serves(b) => b.name(),
            Byzantine::Withholding => "withholding",
            Byzantine::SlowDrip => "slow-drip",
        }
    }
}

/// What a node is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Honest, synced: serves a chain fed by consensus (it does not sync).
    Server,
    /// Honest, syncing into its own store, and serving what it has.
    Syncer,
    /// Byzantine: serves lies (it does not sync).
    Byzantine(Byzantine),
}

/// Counters of one node.
#[derive(Clone, Debug, Default)]
pub struct NodeStats {
    /// Requests it answered (of any kind).
    pub served: u64,
    /// Block requests (`GetBlocksByNumber`/`ByHashes`) it answered.
    pub served_block_requests: u64,
    /// Bytes of responses it sent.
    pub served_bytes: u64,
    /// When its sync started (virtual).
    pub joined: Option<Instant>,
    /// When its committed head first reached `goal` (virtual).
    pub synced: Option<Instant>,
    /// The head it must reach to count as synced (the honest head when it
    /// joined).
    pub goal: u64,
    /// Peers (node indices) it sent a sync request to.
    pub met: BTreeSet<usize>,
    /// Peers it removed, with the reason of the first removal.
    pub removed: BTreeMap<usize, RemovalReason>,
    /// Restarts so far.
    pub restarts: u32,
    /// Commit signatures its sync handed to the pairing check (counted
    /// from the checks' results, not from the settings).
    pub sigs_checked: u64,
    /// Crashes at a named point ([`CrashPoint`]), as they happened.
    pub crashes: Vec<Crashed>,
    /// What it asked and committed, number by number, once
    /// [`Sim::log`](super::Sim::log) started a log (`None` before: a large
    /// simulation keeps no per-block record).
    pub log: Option<NodeLog>,
}

/// What one node asked its peers, checked and committed, number by number
/// (see [`Sim::log`](super::Sim::log)): what really went over its links
/// and into its store, for tests to count.
#[derive(Clone, Debug, Default)]
pub struct NodeLog {
    /// Times each block number's hash was asked (`GetBlockHashes` sent).
    pub hashes_asked: BTreeMap<u64, u32>,
    /// Times each block was asked (`GetBlocksByNumber`, or
    /// `GetBlocksByHashes` of a hash the honest chain has at that number).
    pub blocks_asked: BTreeMap<u64, u32>,
    /// Hashes asked (`GetBlocksByHashes`) that no honest block has.
    pub unknown_hashes_asked: u64,
    /// Times each epoch's state was asked (`GetEpochState`).
    pub epochs_asked: BTreeMap<u64, u32>,
    /// Heights asked (`GetBlockNumber`).
    pub heights_asked: u64,
    /// Times each block's commit signature was handed to the pairing check
    /// by its sync's verification jobs.
    pub sigs_checked: BTreeMap<u64, u32>,
    /// Every block committed to its store, in order, with its hash.
    pub committed: Vec<(u64, B256)>,
}

impl NodeLog {
    /// Numbers in `range` whose hash was asked.
    pub fn hashes_asked_in(&self, range: RangeInclusive<u64>) -> usize {
        self.hashes_asked.range(range).count()
    }

    /// Numbers in `range` whose block was asked.
    pub fn blocks_asked_in(&self, range: RangeInclusive<u64>) -> usize {
        self.blocks_asked.range(range).count()
    }
}

/// A point in a syncing node's work at which
/// [`Sim::crash_on`](super::Sim::crash_on) kills it, named as redb names
/// its crash tests.
/// The simulator carries out a node's writes in the order its sync emits
/// them, each landing whole (as an LMDB transaction does), so "after" a
/// write means it is on disk and "before" means none of it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CrashPoint {
    /// Right after a staging write that advanced BlockHashes' checkpoint
    /// (`UseMemDB = false`) landed.
    AfterStagingHashes,
    /// Right after a staging write that advanced BlockBodies' checkpoint
    /// (`UseMemDB = false`) landed.
    AfterStagingBodies,
    /// A batch is verified and its commit emitted; the insert has not run.
    BetweenVerifyAndCommit,
    /// Inside a commit's insert, while LMDB grows its map (it does so when
    /// a commit finds the map full, then retries the transaction). The
    /// transaction is not committed, so nothing of the batch is stored and
    /// its checkpoints stay as they were. The simulator's store
    /// ([`MemChain`]) has no map: it models this as the insert not landing,
    /// atomically, with the node dead before it could report the commit.
    DuringMapGrowth,
    /// A commit landed (blocks and checkpoints); the staged copy of its
    /// blocks (`UseMemDB = false`) is not dropped yet.
    AfterCommitBeforeUnstage,
}

/// A crash at a named point, as it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Crashed {
    /// Where.
    pub point: CrashPoint,
    /// When (virtual).
    pub at: Instant,
    /// The block numbers in hand: the batch being committed (commit
    /// points), or the numbers the staging write held (staging points).
    pub blocks: RangeInclusive<u64>,
    /// The committed head at the crash.
    pub head: u64,
}

/// A syncing node's staging tables, the sim's `LmdbStaging`: hashes and
/// blocks downloaded and not committed (`UseMemDB = false`), and the
/// BlockHashes and BlockBodies checkpoints. Like the node's [`MemChain`],
/// it survives a crash: each write lands whole when the sync emits it, and
/// a crash loses only the writes not made yet.
#[derive(Clone, Debug, Default)]
pub struct Staging {
    hashes: BTreeMap<u64, B256>,
    blocks: BTreeMap<u64, Arc<[u8]>>,
    /// Stage checkpoints, written by staging writes and by commits alike
    /// (one table in the LMDB store: the last write wins).
    progress: BTreeMap<StageId, u64>,
}

impl Staging {
    /// Writes `w` (one transaction).
    pub(super) fn write(&mut self, w: &StageWrite) {
        self.hashes.extend(w.hashes.iter().copied());
        self.blocks
            .extend(w.blocks.iter().map(|(n, raw)| (*n, raw.clone())));
        self.set_progress(&w.progress);
    }

    /// Sets checkpoints (a staging write's, or a commit's in its
    /// transaction).
    pub(super) fn set_progress(&mut self, progress: &[(StageId, u64)]) {
        self.progress.extend(progress.iter().copied());
    }

    /// Drops what is staged at or below `number` (committed), or, with
    /// `above`, everything above it (it may descend from a bad block).
    pub(super) fn remove(&mut self, number: u64, above: bool) {
        if above {
            let from = number.saturating_add(1);
            drop(self.hashes.split_off(&from));
            drop(self.blocks.split_off(&from));
        } else {
            let from = number.saturating_add(1);
            self.hashes = self.hashes.split_off(&from);
            self.blocks = self.blocks.split_off(&from);
        }
    }

    /// Drops every staged hash and block (not the checkpoints).
    pub(super) fn clear(&mut self) {
        self.hashes.clear();
        self.blocks.clear();
    }

    /// A stage's checkpoint (0 if never written).
    pub fn progress(&self, stage: StageId) -> u64 {
        self.progress.get(&stage).copied().unwrap_or(0)
    }

    /// Staged hashes of `range`, ascending.
    pub fn hashes(&self, range: RangeInclusive<u64>) -> Vec<(u64, B256)> {
        self.hashes.range(range).map(|(n, h)| (*n, *h)).collect()
    }

    /// Staged raw blocks of `range`, ascending, at most `max_bytes` in all.
    pub fn blocks(&self, range: RangeInclusive<u64>, max_bytes: usize) -> Vec<(u64, Arc<[u8]>)> {
        let mut bytes = 0usize;
        self.blocks
            .range(range)
            .take_while(|(_, raw)| {
                bytes += raw.len();
                bytes <= max_bytes
            })
            .map(|(n, raw)| (*n, raw.clone()))
            .collect()
    }

    /// How many hashes are staged.
    pub fn hash_count(&self) -> usize {
        self.hashes.len()
    }

    /// How many blocks are staged.
    pub fn block_count(&self) -> usize {
        self.blocks.len()
    }
}

/// Who asked a request the request manager carries.
#[derive(Clone, Copy, Debug)]
pub(super) enum Owner {
    Sync(ReqId),
    PeerExchange,
}

/// A node of the simulation.
pub struct SimNode {
    /// What it is.
    pub role: Role,
    /// What it serves (for syncers: its own store, `store`).
    pub backend: Arc<dyn ChainBackend>,
    /// Its own store, when it syncs (what it committed survives a crash).
    pub store: Option<Arc<MemChain>>,
    /// Whether it is up.
    pub online: bool,
    /// Its address.
    pub addr: SocketAddr,
    /// Its identity's PeerId.
    pub peer_id: PeerId,
    /// Counters.
    pub stats: NodeStats,
    /// How its last sync ended (syncs started with `exit_when_synced`).
    pub outcome: Option<SyncOutcome>,
    /// Its sync's latest status.
    pub status: Option<SyncStatus>,
    pub(super) record: Bytes,
    /// Incarnation: bumped by a crash, so its old events are dropped.
    pub(super) life: u64,
    pub(super) cores: Option<Cores>,
    /// When its (virtual) CPU is free.
    pub(super) cpu_free: Instant,
    /// The tick it has scheduled, if any.
    pub(super) armed: Option<Instant>,
    /// Whether its sync exits once synced.
    pub(super) exit_when_synced: bool,
    /// Its sync waits for `InitStreams` active streams (at most
    /// `init_wait`, as the driver does) and starts when this incarnation
    /// has them.
    pub(super) sync_pending: bool,
    /// Its staging tables (syncers; survive a crash like `store`).
    pub(super) staging: Staging,
    /// Where it is to crash next, if armed ([`Sim::crash_on`](super::Sim::crash_on)).
    pub(super) crash_point: Option<CrashPoint>,
    /// Its peers file (`<datadir>/known_peers`): the stream manager's
    /// known peers when it went down, offered again when it restarts. The
    /// driver saves them at most 30 s before a crash; the simulator at the
    /// crash itself.
    pub(super) saved_peers: Vec<PeerAddr>,
}

impl std::fmt::Debug for SimNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimNode")
            .field("role", &self.role)
            .field("online", &self.online)
            .field("peer_id", &self.peer_id)
            .finish_non_exhaustive()
    }
}

/// What a crash loses.
pub(super) struct Cores {
    pub sm: StreamManager,
    pub rm: RequestManager,
    pub limiter: RateLimiter,
    pub sync: Option<SyncMachine>,
    pub tickets: BTreeMap<Ticket, Owner>,
    pub sync_tickets: BTreeMap<ReqId, Ticket>,
    /// The active pool, as the sync sees it.
    pub active: BTreeMap<StreamId, StreamInfo>,
    /// Its open connection ends.
    pub ends: BTreeSet<StreamId>,
}

impl SimNode {
    /// The committed head number of a syncing node (the backend's for
    /// others).
    pub fn head(&self) -> u64 {
        self.backend.head().map_or(0, |h| h.number)
    }

    /// Whether it is honest.
    pub fn honest(&self) -> bool {
        !matches!(self.role, Role::Byzantine(_))
    }

    /// Active streams of its stream manager (0 while down).
    pub fn active_streams(&self) -> usize {
        self.cores.as_ref().map_or(0, |c| c.sm.active_count())
    }

    /// Whether it is running a sync.
    pub fn syncing(&self) -> bool {
        self.cores.as_ref().is_some_and(|c| c.sync.is_some())
    }

    /// Its staging tables (empty unless it syncs with `UseMemDB = false`).
    pub fn staging(&self) -> &Staging {
        &self.staging
    }

    /// What its stream manager shows now (`None` while down): its pools,
    /// cooldowns and the removals it decided.
    pub fn stream_status(&self, now: Instant) -> Option<StreamStatus> {
        self.cores.as_ref().map(|c| c.sm.status(now))
    }
}
