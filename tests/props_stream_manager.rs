//! Property tests of the stream manager core (DESIGN.md §7): random
//! sequences of network events, consumer removals, discovery answers,
//! throughput reports and ticks, in virtual time, with the pool rules
//! checked after every step. On a failure proptest shrinks the sequence to
//! a minimal one and prints it.
//!
//! A small reference model rides along: the streams the network has open,
//! the active set the `Activated`/`Deactivated` actions describe, and the
//! dials in progress (a `Dial` action opens one; the peer's stream coming
//! up, a failed dial or `ConnectTimeout` at a tick closes it).
//!
//! Properties marked `#[ignore = "bug: …"]` fail on the current core; each
//! names the bug it shows. Run them with `-- --ignored`.
#![cfg(feature = "testkit")]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use libp2p_identity::PeerId;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use streamsync::config::Network;
use streamsync::crypto::NodeIdentity;
use streamsync::net::{CloseReason, StreamId, StreamInfo};
use streamsync::stream::manager::MAX_CANDIDATES;
use streamsync::stream::{
    Action, CooldownConfig, PeerAddr, RemovalReason, StreamManager, StreamManagerConfig,
};
use streamsync::wire::ProtocolId;

/// Peers the ops pick from (small, so duplicates and re-connections are
/// frequent).
const PEERS: usize = 6;
/// Extra peers for the candidate-flooding op (more than `MAX_CANDIDATES`).
const FLOOD: usize = MAX_CANDIDATES + 76;

const MIN: Duration = Duration::from_secs(60);

fn cfg() -> StreamManagerConfig {
    StreamManagerConfig {
        hard_low_cap: 2,
        soft_low_cap: 3,
        high_cap: 4,
        disc_batch: 3,
        max_reserved: 2,
        setup_concurrency: 2,
        check_interval: Duration::from_secs(30),
        discovery_timeout: Duration::from_secs(10),
        connect_timeout: MIN,
        discovery_backoff: Duration::from_secs(30),
        discovery_retry: Duration::from_secs(1),
        cooldown: CooldownConfig {
            per_failure: 5 * MIN,
            max: 60 * MIN,
            decay: 60 * MIN,
        },
        slow_factor: 4.0,
        slow_reports: 2,
    }
}

/// `PEERS` pool peers, then the node itself, then `FLOOD` strangers:
/// deterministic identities, made once.
fn ids() -> &'static [PeerId] {
    static IDS: OnceLock<Vec<PeerId>> = OnceLock::new();
    IDS.get_or_init(|| {
        (0..PEERS + 1 + FLOOD)
            .map(|i| {
                let mut seed = [7u8; 32];
                seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
                NodeIdentity::from_seed(seed).peer_id()
            })
            .collect()
    })
}

fn me() -> PeerId {
    ids()[PEERS]
}

/// Where pool peer `i` (or stranger `PEERS + 1 + j`) listens.
fn addr_of(i: usize) -> SocketAddr {
    SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 9000))
}

/// A peer named in a discovery or peer-exchange answer.
#[derive(Clone, Copy, Debug)]
enum Who {
    Peer(usize),
    /// The node itself (its own record relayed back to it).
    Me,
}

/// How a dial fails.
#[derive(Clone, Copy, Debug)]
enum DialFailure {
    /// TCP refused: no peer known, only the address.
    Refused,
    /// The handshake reached another peer (`got`, or the owner of the
    /// address dialled).
    Mismatch { got: usize },
}

/// Why the network closed an open stream.
#[derive(Clone, Copy, Debug)]
enum Down {
    PeerClosed,
    Io,
    GoingAway,
    RateLimitViolation,
    WriteStalled,
}

impl Down {
    fn reason(self) -> CloseReason {
        match self {
            Down::PeerClosed => CloseReason::PeerClosed,
            Down::Io => CloseReason::Io("reset".into()),
            Down::GoingAway => CloseReason::PeerGoingAway("full".into()),
            Down::RateLimitViolation => CloseReason::RateLimitViolation,
            Down::WriteStalled => CloseReason::WriteStalled,
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    /// Pool peer `peer` opens a stream (new or duplicate peer, trusted or not).
    StreamUp { peer: usize, inbound: bool },
    /// The `k`-th dial in progress completes.
    DialOk { k: usize },
    /// The `k`-th dial in progress fails.
    DialFails { k: usize, how: DialFailure },
    /// The network closes the `k`-th open stream.
    StreamDown { k: usize, why: Down },
    /// The network reports gone the `k`-th stream the manager closed.
    CloseDone { k: usize },
    /// A consumer removes the `k`-th open stream (or an unknown id).
    Remove {
        k: usize,
        reason: RemovalReason,
        unknown: bool,
    },
    /// A consumer penalises a pool peer (with or without a stream).
    Penalize { peer: usize, reason: RemovalReason },
    /// Discovery answers.
    Discovered(Vec<Who>),
    /// A peer-exchange answer from `relayer`; `lie` names peer `.0` at
    /// peer `.1`'s address.
    Learned {
        peers: Vec<Who>,
        relayer: Option<usize>,
        lie: Option<(usize, usize)>,
    },
    /// A peer-exchange answer naming `count` strangers.
    Flood { count: usize },
    /// Throughput samples for the `k`-th open streams.
    Throughput(Vec<(usize, u16)>),
    /// Time passes, then a tick.
    Tick { secs: u64 },
    /// A tick exactly at `next_deadline()`.
    TickAtDeadline,
}

fn removal_reason() -> impl Strategy<Value = RemovalReason> {
    prop_oneof![
        Just(RemovalReason::CriticalError),
        Just(RemovalReason::ConnectionFailure),
        Just(RemovalReason::Slow),
        Just(RemovalReason::InvalidResponse),
        Just(RemovalReason::RateLimitViolation),
        Just(RemovalReason::ProtocolMismatch),
    ]
}

/// A peer in an answer; with `me`, sometimes the node's own record (the
/// host filters it out today, before the core sees it).
fn who(me: bool) -> impl Strategy<Value = Who> {
    let me_weight = if me { 1 } else { 0 };
    prop_oneof![9 => (0..PEERS).prop_map(Who::Peer), me_weight => Just(Who::Me)]
}

fn op(me: bool) -> impl Strategy<Value = Op> {
    let k = 0..8usize;
    prop_oneof![
        6 => (0..PEERS, any::<bool>()).prop_map(|(peer, inbound)| Op::StreamUp { peer, inbound }),
        4 => k.clone().prop_map(|k| Op::DialOk { k }),
        2 => (k.clone(), prop_oneof![
                Just(DialFailure::Refused),
                (0..PEERS).prop_map(|got| DialFailure::Mismatch { got }),
            ]).prop_map(|(k, how)| Op::DialFails { k, how }),
        4 => (k.clone(), prop_oneof![
                Just(Down::PeerClosed),
                Just(Down::Io),
                Just(Down::GoingAway),
                Just(Down::RateLimitViolation),
                Just(Down::WriteStalled),
            ]).prop_map(|(k, why)| Op::StreamDown { k, why }),
        2 => k.clone().prop_map(|k| Op::CloseDone { k }),
        3 => (k.clone(), removal_reason(), prop::bool::weighted(0.1))
            .prop_map(|(k, reason, unknown)| Op::Remove { k, reason, unknown }),
        2 => (0..PEERS, removal_reason()).prop_map(|(peer, reason)| Op::Penalize { peer, reason }),
        3 => prop::collection::vec(who(me), 0..5).prop_map(Op::Discovered),
        2 => (
                prop::collection::vec(who(me), 0..5),
                prop::option::of(0..PEERS),
                prop::option::weighted(0.3, (0..PEERS, 0..PEERS)),
            ).prop_map(|(peers, relayer, lie)| Op::Learned { peers, relayer, lie }),
        1 => (0..FLOOD + 1).prop_map(|count| Op::Flood { count }),
        2 => prop::collection::vec((k.clone(), 0u16..1000), 0..6).prop_map(Op::Throughput),
        4 => prop_oneof![0u64..5, 0u64..120, 0u64..7200].prop_map(|secs| Op::Tick { secs }),
        2 => Just(Op::TickAtDeadline),
    ]
}

/// What the property checks besides the always-on rules.
#[derive(Clone, Copy, Debug)]
struct Checks {
    /// `next_deadline() >= now` after every input (not only after ticks).
    strict_deadline: bool,
    /// No trusted peer is ever cooling down.
    trusted_never_cool: bool,
    /// At the end, every trusted peer without a stream is dialled again
    /// within a connect timeout and two check intervals.
    trusted_redialled: bool,
    /// At most `MAX_CANDIDATES` candidates (else: plus the trusted peers).
    strict_candidates: bool,
    /// A dial that reaches another peer (`PeerIdMismatch`) never cools
    /// that peer down.
    mismatch_spares_reached: bool,
}

impl Checks {
    const HOLDING: Checks = Checks {
        strict_deadline: false,
        trusted_never_cool: false,
        trusted_redialled: false,
        strict_candidates: false,
        mismatch_spares_reached: false,
    };
}

/// The core under test and the reference model beside it.
struct Harness {
    sm: StreamManager,
    checks: Checks,
    cfg: StreamManagerConfig,
    now: Instant,
    next_id: StreamId,
    trusted: HashSet<PeerId>,
    /// Streams the network has open that the manager has not closed.
    open: BTreeMap<StreamId, StreamInfo>,
    /// Streams the manager closed that the network has not reported gone.
    closing: BTreeMap<StreamId, StreamInfo>,
    /// Every stream ever opened.
    all: HashMap<StreamId, StreamInfo>,
    /// The active pool as the actions describe it.
    view: HashSet<StreamId>,
    /// Dials in progress: address and start.
    dials: BTreeMap<PeerId, (SocketAddr, Instant)>,
    /// After a dial that reached another peer: that peer, and whether it
    /// was cooling down before.
    mismatch: Option<(PeerId, bool)>,
}

impl Harness {
    fn new(checks: Checks, trusted: usize) -> (Self, Vec<Action>) {
        let now = Instant::now();
        let cfg = cfg();
        let t: Vec<PeerAddr> = (0..trusted)
            .map(|i| PeerAddr {
                peer: ids()[i],
                addr: addr_of(i),
            })
            .collect();
        let mut sm = StreamManager::new(cfg, me(), t.clone(), now);
        let first = sm.start(now);
        let h = Harness {
            sm,
            checks,
            cfg,
            now,
            next_id: 1,
            trusted: t.iter().map(|p| p.peer).collect(),
            open: BTreeMap::new(),
            closing: BTreeMap::new(),
            all: HashMap::new(),
            view: HashSet::new(),
            dials: BTreeMap::new(),
            mismatch: None,
        };
        (h, first)
    }

    fn info(&mut self, peer: PeerId, addr: SocketAddr, inbound: bool) -> StreamInfo {
        let id = self.next_id;
        self.next_id += 1;
        let info = StreamInfo {
            id,
            peer_id: peer,
            addr,
            protocol: ProtocolId::sync(Network::Localnet, 0),
            inbound,
        };
        self.all.insert(id, info.clone());
        info
    }

    fn stream_up(&mut self, info: StreamInfo) -> Vec<Action> {
        // The manager forgets a dial once its peer has a stream up, in
        // either direction.
        self.dials.remove(&info.peer_id);
        self.open.insert(info.id, info.clone());
        self.sm.on_stream_up(info, self.now)
    }

    fn nth<T: Clone>(m: &BTreeMap<StreamId, T>, k: usize) -> Option<T> {
        if m.is_empty() {
            None
        } else {
            m.values().nth(k % m.len()).cloned()
        }
    }

    /// Runs one op against the core; returns its actions (or `None` when
    /// the op does not apply in this state).
    fn run(&mut self, op: &Op) -> Option<Vec<Action>> {
        let now = self.now;
        Some(match op {
            Op::StreamUp { peer, inbound } => {
                let p = ids()[*peer];
                let info = self.info(p, addr_of(*peer), *inbound);
                self.stream_up(info)
            }
            Op::DialOk { k } => {
                let (&p, &(addr, _)) = self.dials.iter().nth(k % self.dials.len().max(1))?;
                let info = self.info(p, addr, false);
                self.stream_up(info)
            }
            Op::DialFails { k, how } => {
                let (&p, &(addr, _)) = self.dials.iter().nth(k % self.dials.len().max(1))?;
                let (peer, reason) = match how {
                    DialFailure::Refused => (None, CloseReason::ConnectFailed("refused".into())),
                    DialFailure::Mismatch { got } => {
                        // Whoever listens at the address answers.
                        let owner = (0..ids().len())
                            .find(|i| addr_of(*i) == addr)
                            .map(|i| ids()[i])
                            .filter(|o| *o != p)
                            .unwrap_or(ids()[*got]);
                        if owner == p {
                            return None;
                        }
                        (
                            Some(owner),
                            CloseReason::PeerIdMismatch {
                                expected: p,
                                got: owner,
                            },
                        )
                    }
                };
                // The model frees the dial the manager frees: the one of
                // the peer reached, else the one to the address (see
                // `a_peer_reached_under_another_id_pays_nothing` for why
                // the first is wrong). Two dials to one address are
                // indistinguishable: skip.
                let freed = match peer.filter(|x| self.dials.contains_key(x)) {
                    Some(x) => x,
                    None => {
                        let same: Vec<PeerId> = self
                            .dials
                            .iter()
                            .filter(|(_, (a, _))| *a == addr)
                            .map(|(p, _)| *p)
                            .collect();
                        if same.len() != 1 {
                            return None;
                        }
                        same[0]
                    }
                };
                self.dials.remove(&freed);
                let id = self.next_id;
                self.next_id += 1;
                let got_cooling = peer.map(|g| self.sm.cooling_until(&g, now).is_some());
                let acts = self.sm.on_stream_down(id, None, peer, addr, &reason, now);
                self.mismatch = peer.zip(got_cooling);
                acts
            }
            Op::StreamDown { k, why } => {
                let info = Self::nth(&self.open, *k)?;
                self.open.remove(&info.id);
                self.sm.on_stream_down(
                    info.id,
                    Some(&info),
                    Some(info.peer_id),
                    info.addr,
                    &why.reason(),
                    now,
                )
            }
            Op::CloseDone { k } => {
                let info = Self::nth(&self.closing, *k)?;
                self.closing.remove(&info.id);
                self.sm.on_stream_down(
                    info.id,
                    Some(&info),
                    Some(info.peer_id),
                    info.addr,
                    &CloseReason::Local("removed".into()),
                    now,
                )
            }
            Op::Remove { k, reason, unknown } => {
                if *unknown {
                    return Some(self.sm.remove_stream(1_000_000 + *k as u64, *reason, now));
                }
                let info = Self::nth(&self.open, *k)?;
                self.sm.remove_stream(info.id, *reason, now)
            }
            Op::Penalize { peer, reason } => self.sm.penalize_peer(ids()[*peer], *reason, now),
            Op::Discovered(w) => {
                let peers = w.iter().map(|w| self.record(*w)).collect();
                self.sm.on_discovered(peers, now)
            }
            Op::Learned {
                peers,
                relayer,
                lie,
            } => {
                let mut v: Vec<PeerAddr> = peers.iter().map(|w| self.record(*w)).collect();
                if let Some((named, at)) = lie {
                    v.push(PeerAddr {
                        peer: ids()[*named],
                        addr: addr_of(*at),
                    });
                }
                self.sm.on_peers_learned(v, relayer.map(|r| ids()[r]), now)
            }
            Op::Flood { count } => {
                let v = (0..*count)
                    .map(|j| PeerAddr {
                        peer: ids()[PEERS + 1 + j],
                        addr: addr_of(PEERS + 1 + j),
                    })
                    .collect();
                self.sm.on_peers_learned(v, None, now)
            }
            Op::Throughput(s) => {
                let samples: Vec<(StreamId, f64)> = s
                    .iter()
                    .filter_map(|(k, t)| Some((Self::nth(&self.open, *k)?.id, f64::from(*t))))
                    .collect();
                self.sm.on_throughput(&samples, now)
            }
            Op::Tick { secs } => {
                self.now += Duration::from_secs(*secs);
                self.tick()
            }
            Op::TickAtDeadline => {
                self.now = self.now.max(self.sm.next_deadline());
                self.tick()
            }
        })
    }

    fn tick(&mut self) -> Vec<Action> {
        let now = self.now;
        let timeout = self.cfg.connect_timeout;
        self.dials
            .retain(|_, (_, started)| now.saturating_duration_since(*started) < timeout);
        self.sm.on_tick(now)
    }

    fn record(&self, w: Who) -> PeerAddr {
        match w {
            Who::Peer(i) => PeerAddr {
                peer: ids()[i],
                addr: addr_of(i),
            },
            Who::Me => PeerAddr {
                peer: me(),
                addr: addr_of(PEERS),
            },
        }
    }

    /// Checks one op's actions and feeds them to the model.
    fn actions(&mut self, op: &Op, acts: Vec<Action>) -> Result<(), TestCaseError> {
        let now = self.now;
        let mut dialled = Vec::new();
        if matches!(op, Op::Remove { unknown: true, .. }) {
            prop_assert!(
                acts.is_empty(),
                "removing an unknown stream acted: {acts:?}"
            );
        }
        for a in acts {
            match a {
                Action::Dial(p) => {
                    prop_assert_ne!(p.peer, me(), "dialled itself");
                    prop_assert!(
                        !self.dials.contains_key(&p.peer),
                        "dialled {} twice at once",
                        p.peer
                    );
                    self.dials.insert(p.peer, (p.addr, now));
                    dialled.push(p.peer);
                }
                Action::Close { stream, reason } => {
                    let info = self.all.get(&stream).cloned();
                    prop_assert!(info.is_some(), "closed unknown stream {stream}");
                    let Some(info) = info else { continue };
                    if reason.is_some() {
                        prop_assert!(
                            !self.trusted.contains(&info.peer_id),
                            "trusted peer's stream {stream} closed for {reason:?}"
                        );
                    }
                    if self.open.remove(&stream).is_some() {
                        self.closing.insert(stream, info);
                    }
                }
                Action::Activated(info) => {
                    prop_assert!(
                        self.view.insert(info.id),
                        "stream {} activated twice",
                        info.id
                    );
                    prop_assert!(
                        self.open.contains_key(&info.id),
                        "activated stream {} is not open",
                        info.id
                    );
                }
                Action::Deactivated(id) => {
                    prop_assert!(
                        self.view.remove(&id),
                        "stream {id} deactivated, never activated"
                    );
                }
                Action::Discover { count } => {
                    prop_assert!(count <= self.cfg.disc_batch, "discover {count}");
                }
            }
        }
        if let Some((got, was_cooling)) = self
            .mismatch
            .take()
            .filter(|_| self.checks.mismatch_spares_reached)
        {
            // The peer reached proved who it is: the false record is not
            // its fault.
            prop_assert!(
                was_cooling || self.sm.cooling_until(&got, now).is_none(),
                "{got}, reached at an address a record gave another PeerId, cools down"
            );
        }
        for p in dialled {
            prop_assert!(!self.sm.is_connected(&p), "dialled {p}, which has a stream");
            if !self.trusted.contains(&p) {
                prop_assert!(
                    self.sm.cooling_until(&p, now).is_none(),
                    "dialled {p}, which is cooling down"
                );
            }
        }
        Ok(())
    }

    /// The state invariants, after every op (`ticked`: the op ended with
    /// `on_tick(now)`).
    fn invariants(&self, ticked: bool) -> Result<(), TestCaseError> {
        let now = self.now;
        let st = self.sm.status(now);
        prop_assert!(
            self.sm.active_count() <= self.cfg.high_cap,
            "active {} > DiscHighCap",
            self.sm.active_count()
        );
        prop_assert!(
            self.sm.reserved_count() <= self.cfg.max_reserved,
            "reserve {} > MaxReservedStreams",
            self.sm.reserved_count()
        );
        prop_assert!(
            self.dials.len() <= self.cfg.setup_concurrency,
            "{} dials outstanding > SetupConcurrency",
            self.dials.len()
        );
        prop_assert_eq!(
            self.dials.len(),
            st.setting_up,
            "the dials the actions opened and the manager's disagree"
        );
        let cap = if self.checks.strict_candidates {
            MAX_CANDIDATES
        } else {
            MAX_CANDIDATES + self.trusted.len()
        };
        prop_assert!(st.candidates <= cap, "{} candidates > {cap}", st.candidates);
        let active: HashSet<StreamId> = self.sm.active().map(|i| i.id).collect();
        prop_assert_eq!(
            &active,
            &self.view,
            "Activated/Deactivated disagree with the pool"
        );
        // A tick does all the work due: the driver never spins.
        if ticked {
            prop_assert!(
                self.sm.next_deadline() > now,
                "next_deadline {:?} not after the tick that just ran",
                now.saturating_duration_since(self.sm.next_deadline())
            );
        }
        if self.checks.strict_deadline {
            prop_assert!(
                self.sm.next_deadline() >= now,
                "next_deadline {:?} before now",
                now.saturating_duration_since(self.sm.next_deadline())
            );
        }
        if self.checks.trusted_never_cool {
            for t in &self.trusted {
                prop_assert!(
                    self.sm.cooling_until(t, now).is_none(),
                    "trusted {t} cooling down"
                );
            }
        }
        Ok(())
    }

    /// Quiet time: ticks at every deadline, discoveries find nobody. Every
    /// trusted peer must have a stream or have been dialled again by the
    /// end (a connect timeout for a dial in progress to expire, then two
    /// check intervals).
    fn quiet_until_trusted_redialled(&mut self) -> Result<(), TestCaseError> {
        let end = self.now + self.cfg.connect_timeout + 2 * self.cfg.check_interval;
        let mut dialled: HashSet<PeerId> = HashSet::new();
        while self.now < end {
            self.now = self.now.max(self.sm.next_deadline()).min(end);
            let mut acts = self.tick();
            while !acts.is_empty() {
                let discover = acts.iter().any(|a| matches!(a, Action::Discover { .. }));
                dialled.extend(acts.iter().filter_map(|a| match a {
                    Action::Dial(p) => Some(p.peer),
                    _ => None,
                }));
                self.actions(&Op::TickAtDeadline, acts)?;
                self.invariants(true)?;
                acts = if discover {
                    self.sm.on_discovered(Vec::new(), self.now)
                } else {
                    Vec::new()
                };
            }
        }
        for t in &self.trusted {
            prop_assert!(
                self.sm.is_connected(t) || dialled.contains(t),
                "trusted {t} neither connected nor dialled again"
            );
        }
        Ok(())
    }
}

fn run_ops(checks: Checks, trusted: usize, ops: &[Op]) -> Result<(), TestCaseError> {
    let (mut h, first) = Harness::new(checks, trusted);
    h.actions(&Op::Tick { secs: 0 }, first)?;
    h.invariants(false)?;
    for op in ops {
        let ticked = matches!(op, Op::Tick { .. } | Op::TickAtDeadline);
        if let Some(acts) = h.run(op) {
            h.actions(op, acts)?;
        }
        h.invariants(ticked)?;
    }
    if checks.trusted_redialled {
        h.quiet_until_trusted_redialled()?;
    }
    Ok(())
}

proptest! {
    // No regression files: the minimal failing sequence is printed, and
    // the core iterates hash maps in a per-process order, so a saved seed
    // would not reliably replay.
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Every rule of the pools, dials, closes and deadlines, after every
    /// step of a random sequence (see `Harness::actions` and
    /// `Harness::invariants`).
    #[test]
    fn stream_manager_keeps_its_invariants(
        trusted in 0usize..=2,
        ops in prop::collection::vec(op(false), 1..60),
    ) {
        run_ops(Checks::HOLDING, trusted, &ops)?;
    }

    /// Trusted peers never cool down (they are never removed, whatever
    /// they do).
    #[test]
    #[ignore = "bug: a dial of a trusted peer that reaches another PeerId pauses the trusted peer for the maximum cooldown (the PeerIdMismatch path does not skip trusted peers)"]
    fn trusted_peers_never_cool_down(
        trusted in 1usize..=2,
        ops in prop::collection::vec(op(false), 1..60),
    ) {
        run_ops(Checks { trusted_never_cool: true, ..Checks::HOLDING }, trusted, &ops)?;
    }

    /// A trusted peer that lost its stream or whose dial failed is dialled
    /// again within a connect timeout and two check intervals.
    #[test]
    #[ignore = "bug: a trusted peer whose dial fails (refused, timed out, mismatched) is never dialled again: only a trusted peer whose open stream closed goes back on the retry list"]
    fn trusted_peers_are_dialled_again(
        trusted in 1usize..=2,
        ops in prop::collection::vec(op(false), 1..60),
    ) {
        run_ops(Checks { trusted_redialled: true, ..Checks::HOLDING }, trusted, &ops)?;
    }

    /// At most `MAX_CANDIDATES` candidates wait, trusted peers included.
    #[test]
    #[ignore = "bug: trusted peers going back on the candidate list at a check are pushed past MAX_CANDIDATES"]
    fn candidates_never_exceed_max_candidates(
        trusted in 1usize..=2,
        ops in prop::collection::vec(op(false), 1..60),
    ) {
        run_ops(Checks { strict_candidates: true, ..Checks::HOLDING }, trusted, &ops)?;
    }

    /// A dial that reaches another peer than the one dialled frees that
    /// dial and costs the peer reached nothing: it proved who it is, the
    /// record was false (DESIGN.md §15).
    #[test]
    #[ignore = "bug: on PeerIdMismatch the setup is looked up by the peer reached first, so when that peer is being dialled too its setup is freed and it is paused for the maximum, while the failed dial keeps its slot until ConnectTimeout"]
    fn a_peer_reached_under_another_id_pays_nothing(
        trusted in 0usize..=2,
        ops in prop::collection::vec(op(false), 1..60),
    ) {
        run_ops(Checks { mismatch_spares_reached: true, ..Checks::HOLDING }, trusted, &ops)?;
    }

    /// The core never dials the node itself, even when an answer names
    /// it (a peer relays our own record back; a discovery source lists us).
    #[test]
    #[ignore = "bug: on_discovered/on_peers_learned take the node's own record as a candidate and dial it; only the host's driver filters it today"]
    fn never_dials_itself_even_when_answers_name_it(
        trusted in 0usize..=2,
        ops in prop::collection::vec(op(true), 1..60),
    ) {
        run_ops(Checks::HOLDING, trusted, &ops)?;
    }

    /// `next_deadline()` is never in the past after any input, not only
    /// after a tick.
    #[test]
    #[ignore = "contract: a discovery answer arriving later than the retry back-off leaves the urgent re-discovery due at once (deadline in the past, handled by the next tick); see the report"]
    fn next_deadline_is_never_in_the_past(
        trusted in 0usize..=2,
        ops in prop::collection::vec(op(false), 1..60),
    ) {
        run_ops(Checks { strict_deadline: true, ..Checks::HOLDING }, trusted, &ops)?;
    }
}
