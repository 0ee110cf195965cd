//! Property tests of the [`SyncMachine`] (DESIGN.md §9): the machine syncs
//! a small honest chain, served by the real server handler over a
//! `MemChain`, while random ops decide how each of its requests is
//! answered (honestly, with a timeout, an `Error` answer, a short or empty
//! answer, late), which streams come and go, when time passes, in what
//! order verification jobs (run for real) come back and whether the writer
//! (a second `MemChain`, which checks and executes what it inserts)
//! succeeds. After every step: what is committed is the source's chain,
//! contiguous; requests go only to live streams; nobody is blamed without
//! proof; the byte budget holds. At the end, with honest answers only, the
//! machine must reach the source's head within a bounded number of steps.
//!
//! Properties marked `#[ignore = "bug: …"]` fail on the current core; each
//! names the bug it shows. Run them with `-- --ignored`.
#![cfg(feature = "testkit")]

mod common;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use libp2p_identity::PeerId;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use streamsync::chain::backend::InsertBatch;
use streamsync::chain::verify::CommitteeKeys;
use streamsync::chain::{ChainBackend, Genesis};
use streamsync::config::{Config, Network};
use streamsync::crypto::{NodeIdentity, B256};
use streamsync::net::{StreamId, StreamInfo};
use streamsync::request::RequestError;
use streamsync::sync::machine::{CommitError, CommitJob, ReqId};
use streamsync::sync::{Action, Start, SyncMachine, SyncSettings, Tip, VerifyJob};
use streamsync::testkit::MemChain;
use streamsync::wire::limits::SOFT_RESPONSE_BYTES;
use streamsync::wire::{ErrorCode, ProtocolId, Request, Response};

/// Blocks of the source chain (epochs of 20: several hand-overs).
const BLOCKS: usize = 60;
/// Peers streams belong to (a peer may come back under a new stream).
const PEERS: usize = 4;
/// Steps the honest ending gets to reach the source's head.
const HEAL_STEPS: usize = 4000;
/// Bytes the machine may hold (small: the budget binds).
const BUDGET: usize = 48 * 1024;
/// Blocks per body request.
const BODY_BATCH: usize = 8;

struct Source {
    genesis: Genesis,
    chain: Arc<MemChain>,
    hashes: Vec<B256>,
    /// Largest raw block (with its signature), bytes.
    max_block: usize,
}

/// The source chain, generated once.
fn source() -> &'static Source {
    static S: OnceLock<Source> = OnceLock::new();
    S.get_or_init(|| {
        let (genesis, _, blocks) = common::chain(common::spec(5, 20, 4), 2, BLOCKS);
        let chain = Arc::new(MemChain::new(&genesis).expect("genesis"));
        chain
            .insert_verified_batch(&InsertBatch::seal(blocks.clone(), vec![]))
            .expect("source chain");
        let mut hashes = vec![genesis.block.hash()];
        hashes.extend(blocks.iter().map(|b| b.block.hash()));
        let max_block = blocks.iter().map(|b| b.to_bytes().len()).max().unwrap_or(0);
        Source {
            genesis,
            chain,
            hashes,
            max_block,
        }
    })
}

fn peer_ids() -> &'static [PeerId] {
    static P: OnceLock<Vec<PeerId>> = OnceLock::new();
    P.get_or_init(|| {
        (0..PEERS)
            .map(|i| NodeIdentity::from_seed([i as u8 + 1; 32]).peer_id())
            .collect()
    })
}

fn settings() -> SyncSettings {
    let mut c = Config::for_network(Network::Localnet);
    c.sync.client = true;
    let mut s = SyncSettings::from_sync(&c.sync);
    s.min_peers = 1;
    s.init_streams = 2;
    s.hash_batch = 16;
    s.body_batch = BODY_BATCH;
    s.max_staged_bytes = BUDGET;
    s.staged.max_blocks_per_sync_cycle = 24;
    s.staged.max_background_blocks = 16;
    s.staged.insert_chain_batch_size = 8;
    s.staged.max_mem_sync_cycle_size = 8;
    s.staged.verify_header_batch_size = 5;
    s
}

/// The most one body answer can be charged or reserved: `BODY_BATCH`
/// blocks at the larger of the machine's first guess (4 KiB) and 1.25 ×
/// the largest block, raw plus decoded (9/4) plus a fixed part (640 B).
fn one_response() -> usize {
    let per = 4096usize.max(source().max_block * 5 / 4);
    BODY_BATCH * ((per * 9).div_ceil(4) + 640)
}

/// How a pending request is answered.
#[derive(Clone, Copy, Debug)]
enum How {
    Honest,
    /// The request manager gave up on it.
    Timeout,
    /// `Error{Internal}` (the server's own fault) or `Error{RateLimited}`.
    Error {
        rate_limited: bool,
    },
    /// Block answers: the first `keep` blocks (a server stops at its soft
    /// byte limit; 0 is an empty answer). Hash answers: `keep` hashes
    /// short, which no honest server sends (the stream is then fair game).
    Short {
        keep: usize,
    },
}

#[derive(Clone, Debug)]
enum Op {
    Answer {
        k: usize,
        how: How,
    },
    /// A request the machine cancelled is answered anyway.
    Late {
        k: usize,
    },
    Join {
        peer: usize,
    },
    Leave {
        k: usize,
    },
    Advance {
        ms: u64,
    },
    AdvanceToDeadline,
    /// The `k`-th verification job runs and comes back.
    Verify {
        k: usize,
    },
    /// The writer finishes its oldest commit (or fails it).
    Commit {
        fail: bool,
    },
    Trigger,
}

fn op() -> impl Strategy<Value = Op> {
    let k = 0..16usize;
    prop_oneof![
        12 => (k.clone(), prop_oneof![
                8 => Just(How::Honest),
                1 => Just(How::Timeout),
                1 => any::<bool>().prop_map(|rate_limited| How::Error { rate_limited }),
                2 => (0usize..8).prop_map(|keep| How::Short { keep }),
            ]).prop_map(|(k, how)| Op::Answer { k, how }),
        1 => k.clone().prop_map(|k| Op::Late { k }),
        2 => (0..PEERS).prop_map(|peer| Op::Join { peer }),
        1 => k.clone().prop_map(|k| Op::Leave { k }),
        2 => prop_oneof![0u64..300, 0u64..30_000].prop_map(|ms| Op::Advance { ms }),
        2 => Just(Op::AdvanceToDeadline),
        3 => k.clone().prop_map(|k| Op::Verify { k }),
        3 => prop::bool::weighted(0.2).prop_map(|fail| Op::Commit { fail }),
        1 => Just(Op::Trigger),
    ]
}

/// What the property checks besides the always-on rules.
#[derive(Clone, Copy, Debug)]
struct Checks {
    /// `GetBlockNumber` may be answered with an `Error` too (else such
    /// an answer becomes a timeout).
    errors_on_heads: bool,
    /// Past the byte budget by at most one response (the brief's bound:
    /// the request the writer waits for), or else by one response plus
    /// one per body request in flight.
    strict_budget: bool,
    /// After `handle_timeout(now)`, `next_deadline()` is past `now`: the
    /// timeout did the work that was due, so a driver never spins.
    no_spin: bool,
}

impl Checks {
    const HOLDING: Checks = Checks {
        errors_on_heads: false,
        strict_budget: false,
        no_spin: false,
    };
}

struct Harness {
    m: SyncMachine,
    checks: Checks,
    now: Instant,
    /// The joiner's chain: the writer commits here.
    chain: MemChain,
    next_stream: StreamId,
    /// The set last given to `handle_streams`.
    live: BTreeMap<StreamId, StreamInfo>,
    pending: BTreeMap<ReqId, (StreamId, Request)>,
    cancelled: Vec<(ReqId, StreamId, Request)>,
    verifies: Vec<VerifyJob>,
    commits: VecDeque<CommitJob>,
    /// Streams that sent something no honest server sends.
    sinned: HashSet<StreamId>,
    peer_of: HashMap<StreamId, PeerId>,
    head: u64,
    max_budget: usize,
}

impl Harness {
    fn new(checks: Checks) -> Self {
        let src = source();
        let now = Instant::now();
        let g = &src.genesis;
        let mut committees = HashMap::new();
        committees.insert(
            0,
            Arc::new(CommitteeKeys::new(0, &g.block.body.committee(), 0).expect("keys")),
        );
        let start = Start {
            tip: Tip {
                header: g.block.header.clone(),
                hash: g.block.hash(),
            },
            committees,
            restored: Default::default(),
            persist: false,
            exit_when_synced: true,
        };
        let m = SyncMachine::new(settings(), g.chain_spec().expect("spec"), start, now);
        Harness {
            m,
            checks,
            now,
            chain: MemChain::new(g).expect("genesis"),
            next_stream: 1,
            live: BTreeMap::new(),
            pending: BTreeMap::new(),
            cancelled: Vec::new(),
            verifies: Vec::new(),
            commits: VecDeque::new(),
            sinned: HashSet::new(),
            peer_of: HashMap::new(),
            head: 0,
            max_budget: 0,
        }
    }

    fn join(&mut self, peer: usize) -> Result<(), TestCaseError> {
        let id = self.next_stream;
        self.next_stream += 1;
        let info = StreamInfo {
            id,
            peer_id: peer_ids()[peer],
            addr: std::net::SocketAddr::from(([10, 0, 0, peer as u8 + 1], 9000)),
            protocol: ProtocolId::sync(Network::Localnet, 0),
            inbound: false,
        };
        self.peer_of.insert(id, info.peer_id);
        self.live.insert(id, info);
        self.streams()
    }

    fn streams(&mut self) -> Result<(), TestCaseError> {
        let v: Vec<StreamInfo> = self.live.values().cloned().collect();
        self.m.handle_streams(&v, self.now);
        self.pump()
    }

    fn honest(req: &Request) -> Response {
        streamsync::server::answer(source().chain.as_ref(), req, SOFT_RESPONSE_BYTES, &|_| {
            Vec::new()
        })
    }

    fn nth_pending(&self, k: usize) -> Option<(ReqId, StreamId, Request)> {
        if self.pending.is_empty() {
            return None;
        }
        self.pending
            .iter()
            .nth(k % self.pending.len())
            .map(|(id, (s, r))| (*id, *s, r.clone()))
    }

    fn answer(&mut self, id: ReqId, stream: StreamId, req: &Request, mut how: How) {
        self.pending.remove(&id);
        if matches!(how, How::Error { .. })
            && matches!(req, Request::GetBlockNumber)
            && !self.checks.errors_on_heads
        {
            how = How::Timeout;
        }
        let now = self.now;
        let result = match how {
            How::Honest => Ok((Self::honest(req), stream)),
            How::Timeout => Err(RequestError::Timeout(Duration::from_secs(20))),
            How::Error { rate_limited } => Ok((
                Response::Error {
                    code: if rate_limited {
                        ErrorCode::RateLimited
                    } else {
                        ErrorCode::Internal
                    },
                    retry_after_ms: if rate_limited { 500 } else { 0 },
                    message: "busy".into(),
                },
                stream,
            )),
            How::Short { keep } => {
                let resp = match Self::honest(req) {
                    Response::Blocks(mut v) => {
                        v.truncate(keep);
                        Response::Blocks(v)
                    }
                    Response::BlockHashes(mut v) if keep < v.len() => {
                        v.truncate(keep);
                        self.sinned.insert(stream);
                        Response::BlockHashes(v)
                    }
                    other => other,
                };
                Ok((resp, stream))
            }
        };
        self.m.handle_response(id, result, now);
    }

    fn run(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match op {
            Op::Answer { k, how } => {
                let Some((id, s, req)) = self.nth_pending(*k) else {
                    return Ok(());
                };
                self.answer(id, s, &req, *how);
            }
            Op::Late { k } => {
                if self.cancelled.is_empty() {
                    return Ok(());
                }
                let (id, s, req) = self.cancelled[k % self.cancelled.len()].clone();
                self.m
                    .handle_response(id, Ok((Self::honest(&req), s)), self.now);
            }
            Op::Join { peer } => return self.join(*peer),
            Op::Leave { k } => {
                if self.live.is_empty() {
                    return Ok(());
                }
                let s = *self.live.keys().nth(k % self.live.len()).unwrap_or(&0);
                self.live.remove(&s);
                return self.streams();
            }
            Op::Advance { ms } => {
                self.now += Duration::from_millis(*ms);
                return self.timeout();
            }
            Op::AdvanceToDeadline => {
                if let Some(d) = self.m.next_deadline() {
                    self.now = self.now.max(d);
                }
                return self.timeout();
            }
            Op::Verify { k } => {
                if self.verifies.is_empty() {
                    return Ok(());
                }
                let job = self.verifies.remove(k % self.verifies.len());
                let check = job.run();
                self.m.handle_verified(job.batch, check, self.now);
            }
            Op::Commit { fail } => {
                let Some(job) = self.commits.pop_front() else {
                    return Ok(());
                };
                let result = if *fail {
                    Err(CommitError("disk full (injected)".into()))
                } else {
                    self.commit(&job)?
                };
                self.m.handle_committed(job.batch, result, self.now);
            }
            Op::Trigger => self.m.handle_trigger(self.now),
        }
        self.pump()
    }

    /// `handle_timeout(now)`, then the actions.
    fn timeout(&mut self) -> Result<(), TestCaseError> {
        self.m.handle_timeout(self.now);
        self.pump()?;
        if self.checks.no_spin {
            let d = self.m.next_deadline();
            prop_assert!(
                d.is_none_or(|d| d > self.now),
                "next_deadline {:?} in the past right after handle_timeout (status {:?})",
                d.map(|d| self.now - d),
                self.m.status()
            );
        }
        Ok(())
    }

    /// The writer: inserts into the joiner's chain, which checks that the
    /// batch extends its head and executes it.
    fn commit(&mut self, job: &CommitJob) -> Result<Result<(), CommitError>, TestCaseError> {
        let batch = InsertBatch {
            blocks: job.blocks.clone(),
            progress: job.progress.clone(),
        };
        let before = self.chain.head().expect("head").number;
        let r = self.chain.insert_verified_batch(&batch);
        if r.is_ok() {
            let src = source();
            let mut n = before;
            for b in job.blocks.iter() {
                n += 1;
                prop_assert_eq!(b.number(), n, "committed numbers not contiguous");
                prop_assert_eq!(
                    Some(&b.hash),
                    src.hashes.get(n as usize),
                    "committed block {} is not the source's",
                    n
                );
            }
        }
        Ok(r.map(|_| ()).map_err(|e| CommitError(e.to_string())))
    }

    /// Drains the machine's actions, checking each.
    fn pump(&mut self) -> Result<(), TestCaseError> {
        while let Some(a) = self.m.poll_action() {
            match a {
                Action::Submit {
                    id,
                    request,
                    stream,
                    ..
                } => {
                    prop_assert!(
                        self.live.contains_key(&stream),
                        "request {id} submitted on stream {stream}, not in the live set"
                    );
                    prop_assert!(self.pending.insert(id, (stream, request)).is_none());
                }
                Action::Cancel { id } => {
                    if let Some((s, r)) = self.pending.remove(&id) {
                        self.cancelled.push((id, s, r));
                    }
                }
                Action::Blame {
                    stream,
                    peer,
                    fault,
                    why,
                } => {
                    let proven = self.sinned.contains(&stream)
                        || (stream == 0
                            && peer.is_some_and(|p| {
                                self.sinned.iter().any(|s| self.peer_of.get(s) == Some(&p))
                            }));
                    prop_assert!(
                        proven,
                        "stream {stream} blamed ({fault:?}: {why}) without having sent anything an honest server would not"
                    );
                }
                Action::Verify(job) => self.verifies.push(*job),
                Action::Commit(job) => {
                    let src = source();
                    for b in job.blocks.iter() {
                        prop_assert_eq!(
                            Some(&b.hash),
                            src.hashes.get(b.number() as usize),
                            "commit of block {} that is not the source's",
                            b.number()
                        );
                    }
                    self.commits.push_back(job);
                }
                Action::Stage(_) | Action::Unstage { .. } => {
                    prop_assert!(false, "staging with UseMemDB");
                }
                Action::Status(_) | Action::Stat(_) => {}
            }
        }
        self.invariants()
    }

    fn invariants(&mut self) -> Result<(), TestCaseError> {
        let head = self.m.head();
        prop_assert!(
            head >= self.head,
            "head went back from {} to {head}",
            self.head
        );
        self.head = head;
        prop_assert_eq!(
            head,
            self.chain.head().expect("head").number,
            "the machine's head is not what the writer committed"
        );
        let used = self.m.budget_used();
        self.max_budget = self.max_budget.max(used);
        let bodies_in_flight = self
            .pending
            .values()
            .filter(|(_, r)| matches!(r, Request::GetBlocksByHashes(_)))
            .count();
        let slack = if self.checks.strict_budget {
            1
        } else {
            1 + bodies_in_flight
        };
        prop_assert!(
            used <= BUDGET + slack * one_response(),
            "budget {used} B > {BUDGET} B + {slack} response(s) of {} B ({bodies_in_flight} body requests in flight)",
            one_response()
        );
        Ok(())
    }

    /// Honest answers only, two fresh streams: the source's head must be
    /// reached within `HEAL_STEPS` steps.
    fn heal(&mut self) -> Result<(), TestCaseError> {
        let target = BLOCKS as u64;
        self.join(0)?;
        self.join(1)?;
        for _ in 0..HEAL_STEPS {
            if self.m.head() == target {
                break;
            }
            if let Some((id, s, req)) = self.nth_pending(0) {
                self.answer(id, s, &req, How::Honest);
                self.pump()?;
            } else if !self.verifies.is_empty() {
                self.run(&Op::Verify { k: 0 })?;
            } else if !self.commits.is_empty() {
                self.run(&Op::Commit { fail: false })?;
            } else {
                // A driver with a clock: it sleeps until the deadline, and
                // its clock moves on even when the deadline is already
                // past (it then spins; see `no_spin`).
                let next = self
                    .m
                    .next_deadline()
                    .unwrap_or(self.now + Duration::from_secs(1));
                self.now = next.max(self.now + Duration::from_millis(100));
                self.timeout()?;
            }
        }
        prop_assert_eq!(
            self.m.head(),
            target,
            "not synced after {} honest steps (status {:?})",
            HEAL_STEPS,
            self.m.status()
        );
        prop_assert_eq!(
            self.chain.head().expect("head").hash,
            source().chain.head().expect("head").hash
        );
        Ok(())
    }
}

fn run_ops(checks: Checks, initial: usize, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut h = Harness::new(checks);
    for p in 0..initial {
        h.join(p)?;
    }
    for op in ops {
        h.run(op)?;
    }
    h.heal()
}

proptest! {
    // No regression files: the minimal failing sequence is printed, and
    // the machine iterates hash maps in a per-process order, so a saved
    // seed would not reliably replay.
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Committed blocks are the source's, contiguous; requests go to live
    /// streams only; blame only with proof; the byte budget holds; no
    /// panic; and honest answers then bring the head to the source's.
    #[test]
    fn sync_machine_keeps_its_invariants_and_syncs(
        initial in 0usize..=PEERS,
        ops in prop::collection::vec(op(), 1..120),
    ) {
        run_ops(Checks::HOLDING, initial, &ops)?;
    }

    /// Downloads past the byte budget: at most one body request, the one
    /// the writer waits for.
    #[test]
    #[ignore = "bug: hedges of the lowest missing range are sent without checking the byte budget, beside the request the writer waits for (asked again when its stream leaves or times out while a hedge is out): 2 and 3 responses over were seen"]
    fn the_budget_is_exceeded_by_one_response_at_most(
        initial in 0usize..=PEERS,
        ops in prop::collection::vec(op(), 1..120),
    ) {
        run_ops(Checks { strict_budget: true, ..Checks::HOLDING }, initial, &ops)?;
    }

    /// A timeout does all the work that is due: right after
    /// `handle_timeout(now)`, `next_deadline()` is after `now`.
    #[test]
    fn a_timeout_leaves_no_deadline_in_the_past(
        initial in 0usize..=PEERS,
        ops in prop::collection::vec(op(), 1..120),
    ) {
        run_ops(Checks { no_spin: true, ..Checks::HOLDING }, initial, &ops)?;
    }

    /// An `Error` answer to `GetBlockNumber` (busy, rate limited, the
    /// server's storage failing) is not proof of anything: no blame.
    #[test]
    #[ignore = "bug: Heads blames an Error answer to GetBlockNumber as Useless (InvalidResponse removal), unlike BlockHashes, BlockBodies and SyncEpoch, which ask again"]
    fn an_error_answer_to_get_block_number_is_not_blamed(
        initial in 0usize..=PEERS,
        ops in prop::collection::vec(op(), 1..120),
    ) {
        run_ops(Checks { errors_on_heads: true, ..Checks::HOLDING }, initial, &ops)?;
    }
}
