//! [`SyncMachine`]: the staged sync as a sans-IO state machine (DESIGN.md
//! §9). It never blocks, reads no clock, and holds no channel, socket or
//! store handle: the `sync` thread (`super::driver`) feeds it inputs and
//! carries out the actions it returns, and tests drive it with a manual
//! clock.
//!
//! # Call order
//! 1. [`SyncMachine::new`] with the chain tip, the committees the store
//!    knows and what a previous run staged ([`Restored`]).
//! 2. Feed every input as it happens, with `now`:
//!    [`handle_streams`](SyncMachine::handle_streams) (the live pool),
//!    [`handle_response`](SyncMachine::handle_response) (the outcome of a
//!    `Submit`), [`handle_verified`](SyncMachine::handle_verified) (a
//!    `Verify` job's result), [`handle_committed`](SyncMachine::handle_committed)
//!    (a `Commit` job's result), [`handle_trigger`](SyncMachine::handle_trigger)
//!    (consensus saw a block) and [`handle_timeout`](SyncMachine::handle_timeout)
//!    once [`next_deadline`](SyncMachine::next_deadline) has passed.
//! 3. After each input, drain [`poll_action`](SyncMachine::poll_action)
//!    until `None`, then wait for the next input or the deadline.
//!
//! # Stages, per batch
//! Heads decides the target (`super::heads`); SyncEpoch fetches the
//! committees up to it in the background (`super::sync_epoch`). The range
//! is then a window of slots from the head: BlockHashes
//! (`super::block_hashes`) and BlockBodies (`super::block_bodies`)
//! fill them out of order over every stream, each stream with as many
//! requests in flight as its link needs (`super::window`); States
//! (`super::states`) cuts the filled prefix into batches, verifies them on
//! rayon and commits them in order; Finish (`super::finish`) closes each
//! cycle. Near the tip ShortRange (`super::short_range`) replaces
//! BlockHashes' single source with a majority of streams and verifies every
//! signature. Later cycles download while earlier ones verify and commit
//! (the guide's Turbo, bounded by `MaxBackgroundBlocks` past the cycle's
//! end), and everything downloaded and not committed fits the byte budget
//! `MaxStagedBytes`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use libp2p_identity::PeerId;

use super::blame::Provenance;
// What `Action::Blame` and `Action::Stat` carry.
pub use super::blame::Fault;
use super::claims::Claims;
pub use super::finish::Stat;
use super::settings::SyncSettings;
use super::status::SyncStatus;
use super::window::Link;
use crate::chain::verify::{CommitteeKeys, SegmentCheck, SigPolicy};
use crate::chain::{ChainSpec, Header, SealedBlock, StageId};
use crate::crypto::B256;
use crate::net::{StreamId, StreamInfo};
use crate::request::{Priority, RequestError};
use crate::store::StageWrite;
use crate::wire::{Request, Response};

/// Identifies a request the machine submitted.
pub type ReqId = u64;
/// Identifies a batch handed to verification and commit.
pub type BatchId = u64;

/// What the driver must do for the machine.
#[derive(Debug)]
pub enum Action {
    /// Send `request` on `stream` (only there) and report the outcome with
    /// `handle_response(id, …)`.
    Submit {
        /// The machine's id for it.
        id: ReqId,
        /// What to ask.
        request: Request,
        /// The only stream to ask.
        stream: StreamId,
        /// Queue.
        priority: Priority,
        /// Overall time limit.
        timeout: Duration,
    },
    /// Withdraw request `id` (its outcome is no longer wanted).
    Cancel {
        /// The request.
        id: ReqId,
    },
    /// Make the peer behind `stream` pay for `fault`.
    Blame {
        /// The stream.
        stream: StreamId,
        /// Its peer, if known (the stream may be gone).
        peer: Option<PeerId>,
        /// What is proven.
        fault: Fault,
        /// Why, for the log.
        why: String,
    },
    /// Run `job.run()` off this thread (rayon) and report it with
    /// `handle_verified(job.batch, …)`.
    Verify(Box<VerifyJob>),
    /// Commit `job` in order on the writer and report it with
    /// `handle_committed(job.batch, …)`.
    Commit(CommitJob),
    /// Persist staged data with its checkpoints (`UseMemDB = false` only).
    Stage(StageWrite),
    /// Drop what is staged above `number` (it may descend from a bad block).
    Unstage {
        /// Keep up to here.
        number: u64,
    },
    /// The status changed.
    Status(Box<SyncStatus>),
    /// A metric to record.
    Stat(Stat),
}

/// A batch to verify: pure and self-contained, so it runs on any thread.
#[derive(Clone, Debug)]
pub struct VerifyJob {
    /// The batch.
    pub batch: BatchId,
    /// The block before the batch and its hash.
    pub parent: (Header, B256),
    /// The blocks, contiguous.
    pub blocks: Arc<Vec<SealedBlock>>,
    /// Which signatures.
    pub policy: SigPolicy,
    /// Established committees of the epochs it spans.
    pub committees: HashMap<u64, Arc<CommitteeKeys>>,
    /// The chain.
    pub spec: ChainSpec,
}

impl VerifyJob {
    /// Verifies the batch (CPU-bound: run it on rayon).
    pub fn run(&self) -> SegmentCheck {
        self.run_with(crate::crypto::check_batch)
    }

    /// [`VerifyJob::run`] with the pairing check done by `check`, which
    /// must answer as [`crate::crypto::check_batch`] would (the simulator
    /// memoizes real checks across its nodes).
    pub fn run_with(
        &self,
        check: impl FnOnce(&[crate::crypto::SigJob]) -> crate::crypto::BatchCheck,
    ) -> SegmentCheck {
        crate::chain::verify::verify_segment_with(
            &self.spec,
            Some((&self.parent.0, &self.parent.1)),
            &self.blocks,
            self.policy,
            |e| self.committees.get(&e).cloned(),
            check,
        )
    }
}

/// A verified batch to commit, with the checkpoints it completes.
#[derive(Clone, Debug)]
pub struct CommitJob {
    /// The batch.
    pub batch: BatchId,
    /// The blocks, contiguous, extending the head.
    pub blocks: Arc<Vec<SealedBlock>>,
    /// Checkpoints written in the same transaction.
    pub progress: Vec<(StageId, u64)>,
    /// Drop staged data up to the batch's last block afterwards.
    pub unstage: bool,
}

/// What a previous run staged (`UseMemDB = false`), read on start.
#[derive(Clone, Debug, Default)]
pub struct Restored {
    /// Staged hashes above the head, ascending.
    pub hashes: Vec<(u64, B256)>,
    /// Staged blocks above the head, ascending.
    pub blocks: Vec<SealedBlock>,
}

/// Where the machine starts.
#[derive(Clone, Debug)]
pub struct Start {
    /// The committed head.
    pub tip: Tip,
    /// Committees the store knows (at least the head's epoch's).
    pub committees: HashMap<u64, Arc<CommitteeKeys>>,
    /// What a previous run staged.
    pub restored: Restored,
    /// Stage downloads in LMDB (`UseMemDB = false`).
    pub persist: bool,
    /// End with `Synced` once the quorum's target is reached.
    pub exit_when_synced: bool,
}

/// The chain tip the machine starts from.
#[derive(Clone, Debug)]
pub struct Tip {
    /// Head header.
    pub header: Header,
    /// Head hash.
    pub hash: B256,
}

/// Why a commit failed.
#[derive(Clone, Debug)]
pub struct CommitError(pub String);

/// One block number in the window.
#[derive(Clone, Debug, Default)]
pub(super) struct Slot {
    /// The staged hash.
    pub hash: Option<B256>,
    /// The downloaded block.
    pub body: Option<Box<SealedBlock>>,
    /// The body request in flight for it.
    pub body_req: Option<ReqId>,
    /// Whether a hash request for it is in flight.
    pub hash_req: bool,
    /// Streams that answered it as absent.
    pub lacking: Vec<StreamId>,
    /// Handed to a batch (verifying or committing).
    pub batched: bool,
}

/// A request in flight.
#[derive(Clone, Debug)]
pub(super) struct Req {
    pub kind: ReqKind,
    pub stream: StreamId,
    pub sent: Instant,
    /// Bytes of the byte budget it holds until answered.
    pub reserved: usize,
}

impl Req {
    /// Whether it counts in its stream's window (body requests: the bytes
    /// the window is sized for; the other kinds are small and capped
    /// apart).
    pub fn counts(&self) -> bool {
        matches!(self.kind, ReqKind::Bodies { .. })
    }

    /// Whether it asks for block `n` (hashes or body).
    pub fn covers(&self, n: u64) -> bool {
        match self.kind {
            ReqKind::Hashes { first, len, .. } | ReqKind::Bodies { first, len, .. } => {
                first <= n && n < first + len
            }
            _ => false,
        }
    }
}

/// What a request was for.
#[derive(Clone, Debug)]
pub(super) enum ReqKind {
    Heads,
    Epoch(u64),
    Hashes {
        first: u64,
        len: u64,
        vote: Option<u64>,
    },
    Bodies {
        first: u64,
        len: u64,
        /// Request it hedges (the lowest missing range, asked again).
        hedge_of: Option<ReqId>,
        /// Asked of the hash source itself, to decide a claim.
        direct: bool,
    },
}

/// Where a batch is.
#[derive(Clone, Debug)]
pub(super) enum BatchState {
    Verifying,
    Verified,
    Failed(SegmentCheck),
    Committing,
}

/// A batch between its download and its commit.
#[derive(Clone, Debug)]
pub(super) struct Batch {
    pub id: BatchId,
    pub first: u64,
    pub last: u64,
    pub blocks: Arc<Vec<SealedBlock>>,
    pub policy: SigPolicy,
    pub committees: HashMap<u64, Arc<CommitteeKeys>>,
    pub state: BatchState,
    pub short_range: bool,
}

/// The cycle-level phase.
#[derive(Clone, Debug)]
pub(super) enum Phase {
    /// Waiting (synced, or backing off) until `until` or a trigger.
    Idle { until: Instant },
    /// Asking heights.
    Heads(super::heads::HeadsRound),
    /// Downloading, verifying and committing towards the target.
    Sync,
}

/// The staged-sync state machine. See the module docs for the call order.
pub struct SyncMachine {
    pub(super) settings: SyncSettings,
    /// Breaks ties between equally ranked streams (see
    /// [`SyncMachine::with_tie_salt`]).
    pub(super) tie_salt: u64,
    /// Boot peers: asked for blocks only when too few others are live
    /// (the operator's boot list: bounded by the config).
    pub(super) entry: HashSet<PeerId>,
    pub(super) spec: ChainSpec,
    pub(super) exit_when_synced: bool,
    // ---- chain ----
    /// The committed head.
    pub(super) tip: Tip,
    /// Established committees by epoch.
    pub(super) committees: HashMap<u64, Arc<CommitteeKeys>>,
    // ---- cycle ----
    pub(super) phase: Phase,
    pub(super) target: u64,
    /// First block of the current cycle.
    pub(super) cycle_start: u64,
    /// Last block of the current cycle.
    pub(super) cycle_end: u64,
    /// The current cycle is a short-range one.
    pub(super) short_range: bool,
    /// A Heads round running beside the download (refreshing the target).
    pub(super) bg_heads: Option<super::heads::HeadsRound>,
    pub(super) idle_backoff: Duration,
    // ---- window ----
    /// Slot of block `tip + 1 + i` at index `i`.
    pub(super) slots: VecDeque<Slot>,
    /// Next number no hash request has covered yet.
    pub(super) hash_next: u64,
    /// Every hash up to here is staged (BlockHashes' checkpoint).
    pub(super) hashed_to: u64,
    /// Every block up to here is downloaded (BlockBodies' checkpoint).
    pub(super) bodies_to: u64,
    /// Requests already hedged.
    pub(super) hedged: BTreeSet<ReqId>,
    /// Hash ranges to ask again (first → last).
    pub(super) hash_retry: BTreeMap<u64, u64>,
    /// Next number no body request has covered yet.
    pub(super) body_next: u64,
    /// Body ranges to ask again (first → last).
    pub(super) body_retry: BTreeMap<u64, u64>,
    /// Not before this may hashes be asked again after a round that
    /// brought nothing (back-off).
    pub(super) hash_pause: Option<(Instant, Duration)>,
    /// Likewise for bodies.
    pub(super) body_pause: Option<(Instant, Duration)>,
    /// The lowest number each stream answered as absent (by number).
    pub(super) hash_lacks: BTreeMap<StreamId, u64>,
    /// Votes on hash segments (`DoubleCheckBlockHashes`, ShortRange).
    pub(super) votes: BTreeMap<u64, super::short_range::Vote>,
    pub(super) next_vote: u64,
    // ---- requests and streams ----
    // Every map keyed by stream, request or block number is ordered: they
    // are walked to choose streams and to cancel or fail requests, and the
    // simulator needs those choices to be functions of the inputs only
    // (DESIGN.md §14). All are small (the pool, the requests in flight)
    // and none is touched per block; only `committees` (looked up by
    // epoch, part of the public `Start`) stays a hash map.
    pub(super) reqs: BTreeMap<ReqId, Req>,
    pub(super) next_req: ReqId,
    pub(super) links: BTreeMap<StreamId, Link>,
    /// Streams blamed and dropped, until the pool no longer lists them.
    pub(super) removed: BTreeSet<StreamId>,
    /// Requests of dropped streams, failed at the next step (not inside
    /// the handler that blamed them).
    pub(super) pending_fail: Vec<ReqId>,
    pub(super) infos: BTreeMap<StreamId, StreamInfo>,
    /// The peer behind each stream seen (bounded, see `handle_streams`).
    pub(super) peers: BTreeMap<StreamId, PeerId>,
    /// The height each stream claimed at the last Heads.
    pub(super) claimed: BTreeMap<StreamId, u64>,
    /// Streams shown to lack blocks below their claim: what they serve.
    pub(super) height_caps: BTreeMap<StreamId, u64>,
    // ---- epochs ----
    /// Epoch blocks fetched, waiting for the one before to be verified.
    pub(super) epoch_blocks: BTreeMap<u64, (crate::chain::BlockWithSig, StreamId)>,
    pub(super) epochs_asked: BTreeSet<u64>,
    /// Streams that answered an epoch block as absent.
    pub(super) epoch_lacks: BTreeMap<u64, Vec<StreamId>>,
    // ---- batches ----
    pub(super) batches: VecDeque<Batch>,
    pub(super) next_batch: BatchId,
    /// First number not yet in a batch.
    pub(super) verify_next: u64,
    pub(super) commit_retry: Option<Instant>,
    // ---- budget ----
    /// Bytes held by downloaded, uncommitted blocks (raw and decoded).
    pub(super) held: usize,
    /// Bytes reserved by body requests in flight.
    pub(super) reserved: usize,
    /// Mean raw block size seen (bytes).
    pub(super) block_bytes: f64,
    // ---- beacon helper ----
    /// Blocks the host node offered, by number, not yet in the window
    /// (at most `beacon::MAX_OFFERED`, `beacon::MAX_OFFERED_BYTES`).
    pub(super) offered: BTreeMap<u64, SealedBlock>,
    /// Offered blocks placed in the window, by number: counted when
    /// committed (at most the window's slots).
    pub(super) beacon: BTreeMap<u64, B256>,
    // ---- blame ----
    pub(super) prov: Provenance,
    pub(super) claims: Claims,
    // ---- watchdog ----
    pub(super) last_progress: Instant,
    // ---- output ----
    pub(super) actions: VecDeque<Action>,
    pub(super) status: SyncStatus,
    pub(super) status_dirty: bool,
    pub(super) outcome: Option<super::SyncOutcome>,
    pub(super) started: Instant,
    /// Use LMDB staging (`UseMemDB = false`).
    pub(super) persist: bool,
    /// Inputs are being batched (`begin_inputs`).
    pub(super) deferred: bool,
    /// The instant of the last step: deadlines at or before it were acted
    /// on then, and one still standing waits for an input, not for time.
    pub(super) last_step: Option<Instant>,
    /// A step was deferred.
    pub(super) step_pending: bool,
}

impl std::fmt::Debug for SyncMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncMachine")
            .field("head", &self.tip.header.number)
            .field("target", &self.target)
            .field("slots", &self.slots.len())
            .field("reqs", &self.reqs.len())
            .field("batches", &self.batches.len())
            .finish()
    }
}

/// Most slots the window holds ahead of the head (about 40 B each when
/// empty): with the byte budget, what bounds the sync's memory.
pub const MAX_WINDOW_BLOCKS: u64 = 65_536;

/// Bytes `blocks` downloaded blocks of `raw_len` raw bytes in all are
/// expected to hold before they are decoded (for reservations): their raw
/// bytes, their decoded form (transfers take ~1.2 × their RLP) and a fixed
/// part each. A decoded block is charged exactly,
/// [`SealedBlock::mem_bytes`](crate::chain::SealedBlock::mem_bytes).
pub(super) fn charge(raw_len: usize, blocks: usize) -> usize {
    raw_len
        .saturating_mul(9)
        .div_ceil(4)
        .saturating_add(blocks.saturating_mul(BLOCK_OVERHEAD))
}

/// Fixed bytes of a decoded block besides its lists (struct, allocations).
const BLOCK_OVERHEAD: usize = 640;

impl SyncMachine {
    /// A machine at `start.tip` (see [`Start`]).
    pub fn new(settings: SyncSettings, spec: ChainSpec, start: Start, now: Instant) -> Self {
        let Start {
            tip,
            committees,
            restored,
            persist,
            exit_when_synced,
        } = start;
        let head = tip.header.number;
        let mut m = SyncMachine {
            tie_salt: 0,
            entry: HashSet::new(),
            settings,
            spec,
            exit_when_synced,
            tip,
            committees,
            phase: Phase::Idle { until: now },
            target: 0,
            cycle_start: head + 1,
            cycle_end: head,
            short_range: false,
            bg_heads: None,
            idle_backoff: super::finish::IDLE_BACKOFF_START,
            slots: VecDeque::new(),
            hash_next: head + 1,
            hashed_to: head,
            bodies_to: head,
            hedged: BTreeSet::new(),
            hash_retry: BTreeMap::new(),
            body_next: head + 1,
            body_retry: BTreeMap::new(),
            hash_pause: None,
            body_pause: None,
            hash_lacks: BTreeMap::new(),
            votes: BTreeMap::new(),
            next_vote: 1,
            reqs: BTreeMap::new(),
            next_req: 1,
            links: BTreeMap::new(),
            removed: BTreeSet::new(),
            pending_fail: Vec::new(),
            infos: BTreeMap::new(),
            peers: BTreeMap::new(),
            claimed: BTreeMap::new(),
            height_caps: BTreeMap::new(),
            epoch_blocks: BTreeMap::new(),
            epochs_asked: BTreeSet::new(),
            epoch_lacks: BTreeMap::new(),
            batches: VecDeque::new(),
            next_batch: 1,
            verify_next: head + 1,
            commit_retry: None,
            held: 0,
            reserved: 0,
            block_bytes: 0.0,
            offered: BTreeMap::new(),
            beacon: BTreeMap::new(),
            prov: Provenance::default(),
            claims: Claims::default(),
            last_progress: now,
            actions: VecDeque::new(),
            status: SyncStatus {
                head,
                staging: if persist { "lmdb" } else { "memory" },
                ..SyncStatus::default()
            },
            status_dirty: true,
            outcome: None,
            started: now,
            persist,
            deferred: false,
            step_pending: false,
            last_step: None,
        };
        m.restore(restored);
        m
    }

    /// Carries counters of what happened before the machine started (the
    /// audit's signatures, unwinds) into its status.
    pub fn carry_status(&mut self, prior: &SyncStatus) {
        self.status.unwinds = prior.unwinds;
        self.status.sigs_verified += prior.sigs_verified;
        self.touch();
    }

    // ---- getters ----

    /// The status now.
    pub fn status(&self) -> &SyncStatus {
        &self.status
    }

    /// How the sync ended, once it has (only `Synced` with
    /// `exit_when_synced`; the driver decides `Stopped`).
    pub fn outcome(&self) -> Option<&super::SyncOutcome> {
        self.outcome.as_ref()
    }

    /// The committed head.
    pub fn head(&self) -> u64 {
        self.tip.header.number
    }

    /// Bytes of the byte budget in use: downloaded blocks not committed
    /// plus reservations of body requests in flight.
    pub fn budget_used(&self) -> usize {
        self.held + self.reserved
    }

    /// Requests in flight on `stream`.
    #[cfg(any(test, feature = "testkit"))]
    pub fn in_flight_on(&self, stream: StreamId) -> usize {
        self.links.get(&stream).map_or(0, |l| l.in_flight)
    }

    // ---- inputs ----

    /// The live pool of streams now (the whole set, not a change).
    pub fn handle_streams(&mut self, streams: &[StreamInfo], now: Instant) {
        let live: BTreeSet<StreamId> = streams.iter().map(|s| s.id).collect();
        if self.peers.len() > 4 * streams.len() + 1024 {
            self.peers.retain(|s, _| live.contains(s));
        }
        self.removed.retain(|s| live.contains(s));
        for s in streams.iter().filter(|s| !self.removed.contains(&s.id)) {
            self.peers.insert(s.id, s.peer_id);
            self.infos.insert(s.id, s.clone());
            let initial = self.settings.concurrency;
            self.links
                .entry(s.id)
                .or_insert_with(|| Link::with_initial(initial));
        }
        let gone: Vec<StreamId> = self
            .links
            .keys()
            .filter(|s| !live.contains(s))
            .copied()
            .collect();
        for s in gone {
            self.links.remove(&s);
            self.infos.remove(&s);
            self.height_caps.remove(&s);
            self.claimed.remove(&s);
            self.hash_lacks.remove(&s);
            // Its requests go elsewhere.
            let ids: Vec<ReqId> = self
                .reqs
                .iter()
                .filter(|(_, r)| r.stream == s)
                .map(|(id, _)| *id)
                .collect();
            for id in ids {
                self.actions.push_back(Action::Cancel { id });
                self.fail_request(id, now);
            }
        }
        self.step(now);
    }

    /// The outcome of request `id`.
    pub fn handle_response(
        &mut self,
        id: ReqId,
        result: Result<(Response, StreamId), RequestError>,
        now: Instant,
    ) {
        match result {
            Ok((resp, stream)) => {
                let Some(req) = self.reqs.remove(&id) else {
                    return; // cancelled or already decided: dropped, no blame
                };
                self.reserved -= req.reserved;
                let bytes = resp_bytes(&resp);
                if req.counts() {
                    if let Some(l) = self.links.get_mut(&stream) {
                        l.on_answer(bytes, now.saturating_duration_since(req.sent), now);
                    }
                }
                match req.kind {
                    ReqKind::Heads => self.on_heads_answer(stream, resp, now),
                    ReqKind::Epoch(e) => self.on_epoch_answer(e, stream, resp),
                    ReqKind::Hashes { first, len, vote } => {
                        self.on_hashes(first, len, vote, stream, resp, now)
                    }
                    ReqKind::Bodies {
                        first,
                        len,
                        hedge_of,
                        direct,
                    } => self.on_bodies(
                        id,
                        first,
                        len,
                        hedge_of,
                        direct,
                        stream,
                        resp,
                        req.reserved,
                        now,
                    ),
                }
            }
            Err(_) => self.fail_request(id, now),
        }
        self.step(now);
    }

    /// A `Verify` job's result.
    pub fn handle_verified(&mut self, batch: BatchId, check: SegmentCheck, now: Instant) {
        self.on_verified(batch, check, now);
        self.step(now);
    }

    /// A `Commit` job's result: the new head header and hash, or why not.
    pub fn handle_committed(
        &mut self,
        batch: BatchId,
        result: Result<(), CommitError>,
        now: Instant,
    ) {
        self.on_committed(batch, result, now);
        self.step(now);
    }

    /// The writer persisted staged data with these checkpoints
    /// (`UseMemDB = false`): the status reports them from now on.
    pub fn handle_staged(&mut self, progress: &[(StageId, u64)]) {
        for (stage, n) in progress {
            match stage {
                StageId::BlockHashes => {
                    self.status.hashes_staged_to = self.status.hashes_staged_to.max(*n)
                }
                StageId::BlockBodies => {
                    self.status.bodies_staged_to = self.status.bodies_staged_to.max(*n)
                }
                _ => {}
            }
        }
        self.touch();
    }

    /// Consensus saw a new block: sync now if idle.
    pub fn handle_trigger(&mut self, now: Instant) {
        if let Phase::Idle { .. } = self.phase {
            self.status.consensus_triggers += 1;
            self.phase = Phase::Idle { until: now };
        }
        self.step(now);
    }

    /// Timers (call once `next_deadline` has passed; extra calls are
    /// harmless).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.step(now);
    }

    /// Defers the scheduling work of the inputs that follow until
    /// [`SyncMachine::end_inputs`]: a driver that has several inputs queued
    /// feeds them all, then schedules once (the same result, less work).
    pub fn begin_inputs(&mut self) {
        self.deferred = true;
    }

    /// Ends [`SyncMachine::begin_inputs`] and runs what the inputs made
    /// possible.
    pub fn end_inputs(&mut self, now: Instant) {
        self.deferred = false;
        if std::mem::take(&mut self.step_pending) {
            self.step(now);
        }
    }

    // ---- outputs ----

    /// The next action, or `None` when there is nothing to do until the
    /// next input.
    pub fn poll_action(&mut self) -> Option<Action> {
        if let Some(a) = self.actions.pop_front() {
            return Some(a);
        }
        if self.status_dirty {
            self.status_dirty = false;
            if !self.persist {
                self.status.hashes_staged_to = self.hashed_to;
                self.status.bodies_staged_to = self.bodies_to;
            }
            return Some(Action::Status(Box::new(self.status.clone())));
        }
        None
    }

    /// When `handle_timeout` has work next (`None`: only inputs matter).
    pub fn next_deadline(&self) -> Option<Instant> {
        let mut t: Vec<Instant> = Vec::new();
        match &self.phase {
            Phase::Idle { until } => t.push(*until),
            Phase::Heads(r) => t.push(r.deadline),
            Phase::Sync => {
                t.push(self.last_progress + self.settings.stall_timeout);
                if let Some(h) = self.hedge_deadline() {
                    t.push(h);
                }
                if let Some(e) = self.epoch_wait_deadline() {
                    t.push(e);
                }
            }
        }
        if let Some(r) = &self.bg_heads {
            t.push(r.deadline);
        }
        if let Some((at, _)) = self.hash_pause {
            t.push(at);
        }
        if let Some((at, _)) = self.body_pause {
            t.push(at);
        }
        if let Some(at) = self.commit_retry {
            t.push(at);
        }
        // A deadline the last step already passed was acted on: what still
        // stands (an epoch request kept in flight, a commit retry left from
        // a cycle that ended) waits for an input. Reporting it would make a
        // driver call `handle_timeout` in a loop without time advancing.
        t.into_iter()
            .filter(|d| self.last_step.is_none_or(|s| *d > s))
            .min()
    }

    // ---- internals shared by the stages ----

    /// Runs whatever can run now, in stage order.
    pub(super) fn step(&mut self, now: Instant) {
        if self.deferred {
            self.step_pending = true;
            return;
        }
        self.last_step = Some(self.last_step.map_or(now, |t| t.max(now)));
        for id in std::mem::take(&mut self.pending_fail) {
            self.fail_request(id, now);
        }
        self.use_offered(now);
        match &self.phase {
            Phase::Idle { until } if *until <= now => self.start_heads(now),
            Phase::Heads(r) if r.deadline <= now || r.complete() => self.decide_heads(now),
            _ => {}
        }
        if self
            .bg_heads
            .as_ref()
            .is_some_and(|r| r.deadline <= now || r.complete())
        {
            self.decide_bg_heads(now);
        }
        if matches!(self.phase, Phase::Sync) {
            if now >= self.last_progress + self.settings.stall_timeout {
                self.watchdog(now);
                return;
            }
            self.request_epochs(now);
            self.request_hashes(now);
            self.request_bodies(now);
            self.hedge(now);
            self.advance_batches(now);
        }
    }

    /// Allocates a request id and emits `Submit`.
    pub(super) fn submit(
        &mut self,
        kind: ReqKind,
        request: Request,
        stream: StreamId,
        priority: Priority,
        reserved: usize,
        now: Instant,
    ) -> ReqId {
        let id = self.next_req;
        self.next_req += 1;
        if matches!(kind, ReqKind::Bodies { .. }) {
            if let Some(l) = self.links.get_mut(&stream) {
                l.in_flight += 1;
            }
        }
        self.reserved += reserved;
        self.reqs.insert(
            id,
            Req {
                kind,
                stream,
                sent: now,
                reserved,
            },
        );
        if self.settings.staged.debug_mode {
            tracing::info!(id, stream, ?request, "sync request");
        }
        self.actions.push_back(Action::Submit {
            id,
            request,
            stream,
            priority,
            timeout: self.settings.request_timeout,
        });
        id
    }

    /// Request `id` failed (timeout, cancelled, stream gone): its work goes
    /// back to be asked again. No blame: a timeout is soft and the request
    /// manager reports streams that keep timing out.
    pub(super) fn fail_request(&mut self, id: ReqId, now: Instant) {
        let Some(req) = self.reqs.remove(&id) else {
            return;
        };
        self.reserved -= req.reserved;
        if req.counts() {
            if let Some(l) = self.links.get_mut(&req.stream) {
                l.on_failure();
            }
        }
        match req.kind {
            ReqKind::Heads => {
                if let Phase::Heads(r) = &mut self.phase {
                    r.failed(req.stream);
                }
                if let Some(r) = &mut self.bg_heads {
                    r.failed(req.stream);
                }
            }
            ReqKind::Epoch(e) => {
                self.epochs_asked.remove(&e);
                self.epoch_lacking(e, req.stream);
            }
            ReqKind::Hashes { first, len, vote } => {
                if let Some(v) = vote {
                    self.votes.remove(&v);
                }
                self.requeue_hashes(first, first + len - 1);
            }
            ReqKind::Bodies {
                first,
                len,
                hedge_of,
                direct,
            } => {
                if direct {
                    self.on_direct_silent(req.stream, first, len, now);
                } else {
                    self.requeue_bodies(id, first, first + len - 1, hedge_of);
                }
            }
        }
    }

    /// Slot of block `n`, if in the window.
    pub(super) fn slot(&self, n: u64) -> Option<&Slot> {
        let i = n.checked_sub(self.tip.header.number + 1)?;
        self.slots.get(usize::try_from(i).ok()?)
    }

    /// Mutable slot of block `n`, if in the window.
    pub(super) fn slot_mut(&mut self, n: u64) -> Option<&mut Slot> {
        let i = n.checked_sub(self.tip.header.number + 1)?;
        self.slots.get_mut(usize::try_from(i).ok()?)
    }

    /// Grows the window to cover `n`.
    pub(super) fn ensure_slots(&mut self, n: u64) {
        let base = self.tip.header.number + 1;
        if n < base {
            return;
        }
        let want = (n - base + 1) as usize;
        if self.slots.len() < want {
            self.slots.resize_with(want, Slot::default);
        }
    }

    /// Last block the window may download now, never past the target.
    /// With Turbo on (`MaxBackgroundBlocks` > 0) the window runs past the
    /// current cycle as far as the byte budget allows (at least
    /// `MaxBackgroundBlocks`, at most `MAX_WINDOW_BLOCKS` slots ahead of
    /// the head); with 0 it stops at the cycle's end, the guide's barrier.
    pub(super) fn window_end(&self) -> u64 {
        let bg = self.settings.staged.max_background_blocks;
        if bg == 0 {
            return self.cycle_end.min(self.target);
        }
        let ahead = MAX_WINDOW_BLOCKS.max(bg);
        self.head()
            .saturating_add(ahead)
            .max(self.cycle_end.saturating_add(bg))
            .min(self.target)
    }

    /// Makes `stream`'s peer pay for `fault` (see [`Fault::removal`]): the
    /// one place the sync blames.
    /// The stream is dropped from the machine's pool at once (the stream
    /// manager removes it too), its requests going elsewhere.
    pub(super) fn blame(&mut self, stream: StreamId, fault: Fault, why: impl Into<String>) {
        if fault.removal().is_none() {
            return;
        }
        self.actions.push_back(Action::Blame {
            stream,
            peer: self.peers.get(&stream).copied(),
            fault,
            why: why.into(),
        });
        if self.links.remove(&stream).is_some() {
            self.removed.insert(stream);
            self.infos.remove(&stream);
            let ids: Vec<ReqId> = self
                .reqs
                .iter()
                .filter(|(_, r)| r.stream == stream)
                .map(|(id, _)| *id)
                .collect();
            for id in ids {
                self.actions.push_back(Action::Cancel { id });
                self.pending_fail.push(id);
            }
        }
    }

    /// Live streams, best first (delivered bytes/s, then fewer in flight);
    /// streams to entry (boot) peers are left out while at least
    /// `MinPeers` others are live ([`SyncMachine::with_entry_peers`]).
    pub(super) fn ranked(&self) -> Vec<StreamId> {
        let is_entry = |s: &StreamId| self.peers.get(s).is_some_and(|p| self.entry.contains(p));
        let others = self.links.keys().filter(|s| !is_entry(s)).count();
        let skip_entry = !self.entry.is_empty() && others >= self.settings.min_peers.max(1);
        // A stream not measured yet ranks with the best measured one, so
        // it is tried without being preferred over proven ones.
        let best = self
            .links
            .values()
            .filter(|l| l.rate > 0.0)
            .map(Link::score)
            .fold(1.0, f64::max);
        let mut v: Vec<(f64, usize, StreamId)> = self
            .links
            .iter()
            .filter(|(s, _)| !(skip_entry && is_entry(s)))
            .map(|(s, l)| {
                let score = if l.rate > 0.0 {
                    l.score()
                } else {
                    best / f64::from(1 + l.penalty)
                };
                (score, l.in_flight, *s)
            })
            .collect();
        let salt = self.tie_salt;
        v.sort_by(|a, b| {
            b.0.total_cmp(&a.0)
                .then(a.1.cmp(&b.1))
                .then(tie(a.2, salt).cmp(&tie(b.2, salt)))
                .then(a.2.cmp(&b.2))
        });
        v.into_iter().map(|(_, _, s)| s).collect()
    }

    /// Sets the salt that orders equally ranked streams (default 0). Ties
    /// used to go to the oldest stream, and since every node meets the boot
    /// nodes first, a whole network sent its first requests to the boot
    /// nodes (seen in the simulator: the 1 % busiest nodes, the boot nodes,
    /// served 9 % of all block requests). Each node must order ties its
    /// own way: the driver passes a random salt, the simulator a seeded
    /// one.
    pub fn with_tie_salt(mut self, salt: u64) -> Self {
        self.tie_salt = salt;
        self
    }

    /// Marks `peers` (the boot list) as entry peers: every node dials them
    /// first, so if they served block requests like any peer they would
    /// serve most of every joiner's sync (the simulator measured the ten
    /// boot nodes of 1,000 serving 14 % of all block requests). While at
    /// least `MinPeers` other streams are live, hashes and bodies are asked
    /// of the others only; Heads still asks every stream, boot peers
    /// included (resting them from the pool instead left a network whose
    /// only up-to-date servers were its boot nodes without a quorum for
    /// the tip).
    pub fn with_entry_peers(mut self, peers: impl IntoIterator<Item = PeerId>) -> Self {
        self.entry = peers.into_iter().collect();
        self
    }

    /// Notes progress (resets the watchdog).
    pub(super) fn progressed(&mut self, now: Instant) {
        self.last_progress = now;
    }

    /// Notes the stage now running (the lowest one with work); with
    /// `DebugMode` each change is logged.
    pub(super) fn enter(&mut self, stage: StageId) {
        if self.status.stage != Some(stage.name()) {
            if self.settings.staged.debug_mode {
                tracing::info!(stage = %stage, head = self.head(), target = self.target, "stage start");
            }
            self.status.stage = Some(stage.name());
            self.touch();
        }
    }

    /// Marks the status changed.
    pub(super) fn touch(&mut self) {
        self.status_dirty = true;
    }

    /// Milliseconds since the machine started.
    pub(super) fn ms_since_start(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.started).as_millis() as u64
    }
}

/// Bytes an answer carried (raw block bytes for blocks, else an estimate).
fn resp_bytes(r: &Response) -> usize {
    match r {
        Response::Blocks(items) => items.iter().flatten().map(|b| b.len()).sum::<usize>() + 8,
        Response::BlockHashes(h) => 33 * h.len() + 8,
        Response::EpochState(Some(b)) => b.len() + 8,
        _ => 64,
    }
}

/// `stream` mixed with `salt` (splitmix64's finalizer): a per-node order
/// of streams that is unrelated to when they opened.
fn tie(stream: StreamId, salt: u64) -> u64 {
    let mut z = stream
        .wrapping_add(salt)
        .wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
