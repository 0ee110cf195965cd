//! The stream manager core (DESIGN.md §7): which streams are active, which
//! are held in reserve, who cools down, when to discover. Sans-IO: every
//! input takes `now`, every decision comes back as [`Action`]s for the driver
//! to carry out; it never touches a socket or reads the clock.
//!
//! Rules (the guide's, with the names its config keys use):
//! - active streams are kept between the low caps and `DiscHighCap`; extra
//!   streams go to a reserve of up to `MaxReservedStreams`, and beyond that
//!   are closed;
//! - every `CheckInterval`: below `DiscSoftLowCap` → discover `DiscBatch`;
//!   otherwise, while active and reserve streams together are below
//!   `DiscHighCap`, dial one *feeler*: a known peer we have no stream to
//!   (Bitcoin Core's feeler connections, kept here as streams). Without it
//!   a pool above the soft cap never changes, so the two sides of a healed
//!   partition (or a node eclipsed by peers that agree on an old head)
//!   stay apart for good: the simulator's 200-node partition never
//!   converged. The pool grows by at most one stream per `CheckInterval`
//!   this way, and never past `DiscHighCap`;
//! - on removal: promote from the reserve at once; still below
//!   `DiscHardLowCap` → discover now, and again while it stays below, after
//!   a back-off that starts at `discovery_retry` (1 s) and doubles up to
//!   `CheckInterval` (a node that just started, or lost most of its peers,
//!   does not wait a whole check interval for a peer exchange that came
//!   back too early to name anyone);
//! - a discovery that brings nobody new, or times out after
//!   `DiscoveryTimeout`, backs off before the next one;
//! - at most `SetupConcurrency` dials at once, each given `ConnectTimeout`;
//! - removal cools the peer down (`super::cooldown`); trusted peers are
//!   dialled first and never removed, even on critical errors;
//! - cooldowns decide whom **we** dial and ask for blocks, not whether an
//!   authenticated peer may connect and be served (DESIGN.md §15): a peer
//!   that connects while cooling down is kept as a *serve-only* stream (the
//!   server answers it within its rate limits; the request manager never
//!   sees it) and joins the pools when its cooldown ends;
//! - a stream that ends because the peer closed it or the connection broke
//!   (its process died, a restart) is not a failure: it does not
//!   accumulate into cooldowns; failed dials, timeouts reported by the
//!   request manager and proven faults do;
//! - when a peer opens a second stream and both were dialled by the same
//!   side, the newer one replaces the older (the older is most likely the
//!   dead half of a connection the peer lost when it restarted);
//! - a stream persistently far slower than the others is swapped for a
//!   reserve stream when there is one (reason `slow`);
//! - an inbound stream arriving when both pools are full replaces the
//!   oldest reserve stream, so a node everyone dials first (a boot node)
//!   never locks newcomers out: they still reach it and learn peers;
//! - peers we reached by dialling, or that were connected when a peer
//!   exchange named their address, are remembered (at most [`MAX_KNOWN`])
//!   and offered again, with the discovery sources, at every discovery: a
//!   node whose sources name nobody new (boot nodes full or gone, every
//!   peer on its side of a healed partition) reconnects to peers it knew,
//!   as a DHT's routing table would let it; a critical fault forgets one;
//! - boot peers ([`StreamManager::with_entry_peers`]) are the way in, not
//!   the servers of the whole network: only streams to other peers count
//!   as ready for the sync's `InitStreams` while more are coming
//!   ([`StreamManager::ready_streams`]), reserve promotions and demotions
//!   prefer other peers, and the sync itself asks boot peers for blocks
//!   only when it has too few others (`SyncMachine::with_entry_peers`).
//!   Every node dials the same few boot peers first; without this they
//!   served most of every joiner's sync (the simulator measured the ten
//!   boot nodes of 1,000 serving 14 % of all block requests).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use libp2p_identity::PeerId;

use super::cooldown::{CooldownConfig, Cooldowns};
use crate::config::SyncConfig;
use crate::metrics::Samples;
use crate::net::{CloseReason, StreamId, StreamInfo};

/// A dialable peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PeerAddr {
    /// Who.
    pub peer: PeerId,
    /// Where.
    pub addr: SocketAddr,
}

impl std::fmt::Display for PeerAddr {
    /// `/ip4/A/tcp/P/p2p/PEERID`: what its `FromStr` parses.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}",
            crate::net::to_multiaddr(self.addr, Some(self.peer))
        )
    }
}

impl std::str::FromStr for PeerAddr {
    type Err = String;

    /// Parses `/ip4/A/tcp/P/p2p/PEERID` (or `/ip6/…`), as the CLI's
    /// `--boot` and `--trusted` and the guide's peer lists write them.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let m: libp2p_core::Multiaddr = s
            .parse()
            .map_err(|e| format!("{s}: not a multiaddr: {e}"))?;
        match crate::net::from_multiaddr(&m) {
            Some((addr, Some(peer))) => Ok(PeerAddr { peer, addr }),
            _ => Err(format!("{s}: expected /ip4/A/tcp/P/p2p/PEERID")),
        }
    }
}

/// Why a stream was removed (metric label `reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RemovalReason {
    /// Proven invalid data or a protocol violation.
    CriticalError,
    /// Disconnects, timeouts, failed dials.
    ConnectionFailure,
    /// Persistently far slower than the other streams.
    Slow,
    /// An answer that does not fit the request (short of proven invalid).
    InvalidResponse,
    /// Kept requesting past `rate_limited`.
    RateLimitViolation,
    /// Another network, shard, service or major version.
    ProtocolMismatch,
}

impl RemovalReason {
    /// Every reason, in the order of their labels in
    /// `metrics::names::REMOVAL_REASONS` (and of
    /// [`StreamStats::removal_reasons`]).
    pub const ALL: [RemovalReason; 6] = [
        RemovalReason::CriticalError,
        RemovalReason::ConnectionFailure,
        RemovalReason::Slow,
        RemovalReason::InvalidResponse,
        RemovalReason::RateLimitViolation,
        RemovalReason::ProtocolMismatch,
    ];

    /// Its position in [`RemovalReason::ALL`].
    pub fn index(self) -> usize {
        match self {
            RemovalReason::CriticalError => 0,
            RemovalReason::ConnectionFailure => 1,
            RemovalReason::Slow => 2,
            RemovalReason::InvalidResponse => 3,
            RemovalReason::RateLimitViolation => 4,
            RemovalReason::ProtocolMismatch => 5,
        }
    }

    /// The metric label (one of `metrics::names::REMOVAL_REASONS`).
    pub fn label(self) -> &'static str {
        match self {
            RemovalReason::CriticalError => "critical error",
            RemovalReason::ConnectionFailure => "connection failure",
            RemovalReason::Slow => "slow",
            RemovalReason::InvalidResponse => "invalid response",
            RemovalReason::RateLimitViolation => "rate-limit violation",
            RemovalReason::ProtocolMismatch => "protocol mismatch",
        }
    }

    /// Whether the removal cools the peer down for the maximum.
    pub fn is_critical(self) -> bool {
        matches!(
            self,
            RemovalReason::CriticalError
                | RemovalReason::RateLimitViolation
                | RemovalReason::ProtocolMismatch
        )
    }

    /// The reason a network close amounts to.
    pub fn from_close(r: &CloseReason) -> Self {
        match r.label() {
            "critical error" => RemovalReason::CriticalError,
            "invalid response" => RemovalReason::InvalidResponse,
            "rate-limit violation" => RemovalReason::RateLimitViolation,
            "protocol mismatch" => RemovalReason::ProtocolMismatch,
            _ => RemovalReason::ConnectionFailure,
        }
    }
}

/// What the driver must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Dial a peer.
    Dial(PeerAddr),
    /// Close a stream. `reason: None` is housekeeping (duplicate, pools
    /// full, peer cooling down), not a failure.
    Close {
        /// The stream.
        stream: StreamId,
        /// Why, if it is a removal.
        reason: Option<RemovalReason>,
    },
    /// Ask the discovery sources for up to `count` peers; answer with
    /// [`StreamManager::on_discovered`].
    Discover {
        /// How many peers are wanted.
        count: usize,
    },
    /// A stream joined the active pool: subscribers may use it.
    Activated(StreamInfo),
    /// A stream left the active pool.
    Deactivated(StreamId),
}

/// Settings of the stream manager (from `[Sync]`).
#[derive(Clone, Copy, Debug)]
pub struct StreamManagerConfig {
    /// `DiscHardLowCap`.
    pub hard_low_cap: usize,
    /// `DiscSoftLowCap`.
    pub soft_low_cap: usize,
    /// `DiscHighCap`.
    pub high_cap: usize,
    /// `DiscBatch`.
    pub disc_batch: usize,
    /// `MaxReservedStreams`.
    pub max_reserved: usize,
    /// `SetupConcurrency`.
    pub setup_concurrency: usize,
    /// `CheckInterval`.
    pub check_interval: Duration,
    /// `DiscoveryTimeout`.
    pub discovery_timeout: Duration,
    /// `ConnectTimeout`.
    pub connect_timeout: Duration,
    /// Back-off after a discovery that found nobody new (at most).
    pub discovery_backoff: Duration,
    /// First back-off between discoveries while below `DiscHardLowCap`
    /// (doubling up to `discovery_backoff`).
    pub discovery_retry: Duration,
    /// Cooldown rules.
    pub cooldown: CooldownConfig,
    /// A stream is slow when its throughput is below the median divided by this.
    pub slow_factor: f64,
    /// Consecutive slow reports before a slow stream is swapped.
    pub slow_reports: u32,
}

impl StreamManagerConfig {
    /// From the `[Sync]` section.
    pub fn from_sync(s: &SyncConfig) -> Self {
        StreamManagerConfig {
            hard_low_cap: s.disc_hard_low_cap,
            soft_low_cap: s.disc_soft_low_cap,
            high_cap: s.disc_high_cap,
            disc_batch: s.disc_batch,
            max_reserved: s.max_reserved_streams,
            setup_concurrency: s.setup_concurrency,
            check_interval: s.check_interval,
            discovery_timeout: s.discovery_timeout,
            connect_timeout: s.connect_timeout,
            discovery_backoff: s.check_interval,
            discovery_retry: Duration::from_secs(1).min(s.check_interval),
            cooldown: CooldownConfig {
                per_failure: s.removal_cooldown_duration,
                max: s.max_removal_cooldown_duration,
                decay: s.max_removal_cooldown_duration,
            },
            slow_factor: 4.0,
            slow_reports: 3,
        }
    }
}

/// Discovery progress, for status displays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiscoveryState {
    /// Not discovering.
    Idle,
    /// Waiting for discovery results since this instant.
    Running(Instant),
    /// The last discovery found nobody: no new one before this instant.
    BackingOff(Instant),
}

/// A snapshot for `status()`.
#[derive(Clone, Debug)]
pub struct StreamStatus {
    /// Active streams.
    pub active: usize,
    /// Reserve streams.
    pub reserved: usize,
    /// Dials in progress.
    pub setting_up: usize,
    /// Peers cooling down, with the end of their cooldown.
    pub in_cooldown: Vec<(PeerId, Instant)>,
    /// Peers cooling down (all of them; `in_cooldown` lists at most 64).
    pub cooling: usize,
    /// Discovery state.
    pub discovery: DiscoveryState,
    /// Streams ever activated.
    pub activated_total: u64,
    /// Streams ever removed (by the node or the network).
    pub removed_total: u64,
    /// Streams kept only to serve their peer (it is cooling down).
    pub serve_only: usize,
    /// The latest removals the node decided (`remove_stream`,
    /// `penalize_peer`), oldest first, at most [`RECENT_REMOVALS`].
    pub recent_removals: Vec<(PeerId, RemovalReason)>,
    /// Candidates waiting to be dialled (at most [`MAX_CANDIDATES`]).
    #[cfg(any(test, feature = "testkit"))]
    pub candidates: usize,
}

/// The stream manager's metrics (DESIGN.md §11): counters since it started
/// and gauges as they are now, kept by the core rather than written to the
/// process-global recorder (a simulator runs thousands of managers in one
/// process). The `streams` driver publishes them under the guide's names;
/// setup durations (a histogram) are drained with
/// `StreamManager::drain_setup_durations`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// `hmy_stream_added_streams`: streams activated.
    pub added_streams: u64,
    /// `hmy_stream_removed_streams`: streams that left the pools.
    pub removed_streams: u64,
    /// `hmy_stream_stream_critical_errors`: critical failures accounted.
    pub critical_errors: u64,
    /// `hmy_stream_stream_removal_reasons` by label, in the order of
    /// [`RemovalReason::ALL`] (see [`StreamStats::removals`]).
    pub removal_reasons: [u64; 6],
    /// `hmy_stream_discover`: discoveries started.
    pub discover: u64,
    /// `hmy_stream_discover_peers`: discovered peers whose stream came up.
    pub discover_peers: u64,
    /// Feelers offered: known peers dialled at a routine check although
    /// the pool was at or above `DiscSoftLowCap` (not a guide metric).
    pub feelers: u64,
    /// `hmy_stream_num_streams` (gauge): active streams.
    pub num_streams: usize,
    /// `hmy_stream_num_reserved_streams` (gauge): reserve streams.
    pub num_reserved_streams: usize,
}

impl StreamStats {
    /// Removals counted under `reason`'s label.
    pub fn removals(&self, reason: RemovalReason) -> u64 {
        self.removal_reasons[reason.index()]
    }
}

/// How many of the latest removals [`StreamStatus::recent_removals`] keeps.
pub const RECENT_REMOVALS: usize = 64;

struct Setup {
    addr: SocketAddr,
    started: Instant,
    discovered: bool,
    /// The peer whose peer-exchange answer named this address and PeerId:
    /// it pays if the address answers as someone else.
    relayer: Option<PeerId>,
}

/// Most candidates waiting to be dialled (and relayers remembered for
/// them); learned peers past it are dropped.
pub const MAX_CANDIDATES: usize = 1024;

/// Most peers remembered as reached by dialling ([`StreamManager`]'s
/// known peers); past it the one reached longest ago is forgotten.
pub const MAX_KNOWN: usize = 256;

/// The stream manager.
pub struct StreamManager {
    cfg: StreamManagerConfig,
    me: PeerId,
    trusted_retry: Vec<PeerAddr>,
    trusted: Vec<PeerAddr>,
    /// Looked up only (never iterated): a hash set.
    trusted_ids: HashSet<PeerId>,
    /// Boot peers (the operator's list, so bounded by the config): used
    /// to enter the network, rested once others are active.
    entry: HashSet<PeerId>,
    /// Iterated (demotion, subscribers, status): ordered by stream id so
    /// every decision is a function of the inputs (DESIGN.md §14).
    active: BTreeMap<StreamId, StreamInfo>,
    reserved: VecDeque<StreamInfo>,
    /// Looked up only.
    by_peer: HashMap<PeerId, StreamId>,
    /// Iterated (timeouts, failed dials by address); at most
    /// `SetupConcurrency` entries.
    setups: BTreeMap<PeerId, Setup>,
    candidates: VecDeque<PeerAddr>,
    /// Who relayed each candidate learned by peer exchange (at most
    /// `MAX_CANDIDATES` entries).
    relayers: HashMap<PeerId, PeerId>,
    /// Peers reached by dialling (the address proven by the handshake) or
    /// connected when their signed record named their address, re-offered
    /// at each discovery, least recently offered first; at most
    /// [`MAX_KNOWN`].
    known: VecDeque<PeerAddr>,
    /// Bumped whenever `known` gains or loses a peer (for the driver to
    /// save it when it changed).
    known_changes: u64,
    cooldowns: Cooldowns,
    discovery: DiscoveryState,
    /// When the last discovery started.
    last_discovery: Option<Instant>,
    /// The back-off before the next discovery while below the hard cap.
    retry: Duration,
    next_check: Instant,
    slow_strikes: BTreeMap<StreamId, u32>,
    closing: BTreeSet<StreamId>,
    /// Streams of peers cooling down, kept only to serve them; at most
    /// `MaxReservedStreams`. Iterated when cooldowns end: ordered.
    serve_only: BTreeMap<PeerId, StreamInfo>,
    /// The earliest future end of a serve-only peer's cooldown.
    serve_wakeup: Option<Instant>,
    recent_removals: VecDeque<(PeerId, RemovalReason)>,
    activated_total: u64,
    removed_total: u64,
    /// Metrics counted for the driver (see [`StreamStats`]); the added and
    /// removed counts are `activated_total` and `removed_total`.
    stats: StreamStats,
    /// `hmy_stream_setup_stream_duration` samples not yet drained.
    setup_durations: Samples,
}

impl std::fmt::Debug for StreamManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamManager")
            .field("active", &self.active.len())
            .field("reserved", &self.reserved.len())
            .field("setups", &self.setups.len())
            .finish()
    }
}

impl StreamManager {
    /// A manager for the node `me` that will dial `trusted` peers first.
    pub fn new(cfg: StreamManagerConfig, me: PeerId, trusted: Vec<PeerAddr>, now: Instant) -> Self {
        StreamManager {
            me,
            trusted_retry: Vec::new(),
            trusted_ids: trusted.iter().map(|p| p.peer).collect(),
            trusted,
            entry: HashSet::new(),
            cfg,
            active: BTreeMap::new(),
            reserved: VecDeque::new(),
            by_peer: HashMap::new(),
            setups: BTreeMap::new(),
            candidates: VecDeque::new(),
            relayers: HashMap::new(),
            known: VecDeque::new(),
            known_changes: 0,
            cooldowns: Cooldowns::default(),
            discovery: DiscoveryState::Idle,
            last_discovery: None,
            retry: cfg.discovery_retry,
            next_check: now + cfg.check_interval,
            slow_strikes: BTreeMap::new(),
            closing: BTreeSet::new(),
            serve_only: BTreeMap::new(),
            serve_wakeup: None,
            recent_removals: VecDeque::new(),
            activated_total: 0,
            removed_total: 0,
            stats: StreamStats::default(),
            setup_durations: Samples::default(),
        }
    }

    /// Marks `peers` (the boot list) as entry peers: streams to them count
    /// toward [`StreamManager::ready_streams`] only when nobody else is
    /// coming, and are the first demoted and the last promoted. A trusted
    /// peer is never an entry peer.
    pub fn with_entry_peers(mut self, peers: impl IntoIterator<Item = PeerId>) -> Self {
        self.entry = peers
            .into_iter()
            .filter(|p| !self.trusted_ids.contains(p))
            .collect();
        self
    }

    /// Seeds the known peers (a previous run's, see
    /// [`StreamManager::known_peers`]), least recent first; at most
    /// [`MAX_KNOWN`] are kept (the most recent). They are offered at every
    /// discovery, the first at [`StreamManager::start`], so a node that
    /// restarts while its boot peers are gone still finds the network.
    pub fn with_known_peers(mut self, peers: impl IntoIterator<Item = PeerAddr>) -> Self {
        for p in peers {
            if p.peer != self.me {
                self.remember(p);
            }
        }
        self.known_changes = 0;
        self
    }

    /// The known peers, least recently offered first.
    pub fn known_peers(&self) -> impl Iterator<Item = &PeerAddr> {
        self.known.iter()
    }

    /// A count that changes whenever a known peer is added or forgotten
    /// (to save them only when they changed).
    pub fn known_changes(&self) -> u64 {
        self.known_changes
    }

    /// Starts: dials the trusted peers, then discovers.
    pub fn start(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        let trusted = self.trusted.clone();
        self.candidates.extend(trusted);
        self.dial_candidates(now, &mut out);
        self.discover(now, &mut out);
        out
    }

    // ---- views ----

    /// Active streams, by stream id.
    pub fn active(&self) -> impl Iterator<Item = &StreamInfo> {
        self.active.values()
    }

    /// Number of active streams.
    #[cfg(any(test, feature = "testkit"))]
    pub fn active_count(&self) -> usize {
        self.active.len()
    }

    /// Active streams the sync may count toward `InitStreams`: those to
    /// peers other than boot peers while more peers are coming (a dial in
    /// progress, a candidate waiting, or `exchanging`: a peer-exchange
    /// question of ours unanswered), all active streams once nobody else
    /// is (a network of only boot peers still syncs at once).
    pub fn ready_streams(&self, exchanging: bool) -> usize {
        if exchanging || !self.setups.is_empty() || !self.candidates.is_empty() {
            self.active_others()
        } else {
            self.active.len()
        }
    }

    /// Active streams to peers that are not entry peers.
    fn active_others(&self) -> usize {
        self.active
            .values()
            .filter(|i| !self.entry.contains(&i.peer_id))
            .count()
    }

    /// Number of reserve streams.
    #[cfg(any(test, feature = "testkit"))]
    pub fn reserved_count(&self) -> usize {
        self.reserved.len()
    }

    /// Whether `peer` is trusted.
    pub fn is_trusted(&self, peer: &PeerId) -> bool {
        self.trusted_ids.contains(peer)
    }

    /// When `peer`'s cooldown ends, if it is cooling down.
    #[cfg(any(test, feature = "testkit"))]
    pub fn cooling_until(&self, peer: &PeerId, now: Instant) -> Option<Instant> {
        self.cooldowns.cooling_until(peer, now)
    }

    /// A status snapshot.
    pub fn status(&self, now: Instant) -> StreamStatus {
        StreamStatus {
            active: self.active.len(),
            reserved: self.reserved.len(),
            setting_up: self.setups.len(),
            in_cooldown: self.cooldowns.in_cooldown(now),
            cooling: self.cooldowns.cooling(now),
            discovery: self.discovery,
            activated_total: self.activated_total,
            removed_total: self.removed_total,
            serve_only: self.serve_only.len(),
            recent_removals: self.recent_removals.iter().copied().collect(),
            #[cfg(any(test, feature = "testkit"))]
            candidates: self.candidates.len(),
        }
    }

    /// The metrics counted so far (counters since the start, gauges now).
    pub fn stats(&self) -> StreamStats {
        StreamStats {
            added_streams: self.activated_total,
            removed_streams: self.removed_total,
            num_streams: self.active.len(),
            num_reserved_streams: self.reserved.len(),
            ..self.stats
        }
    }

    /// Takes the stream setup durations (seconds) recorded since the last
    /// call, oldest first (at most `metrics::samples::MAX_PENDING_SAMPLES`
    /// are kept between calls).
    pub fn drain_setup_durations(&mut self) -> std::vec::Drain<'_, f64> {
        self.setup_durations.drain()
    }

    /// Whether `peer` has a stream kept only to serve it.
    #[cfg(any(test, feature = "testkit"))]
    pub fn is_serve_only(&self, peer: &PeerId) -> bool {
        self.serve_only.contains_key(peer)
    }

    /// The next instant [`StreamManager::on_tick`] has work.
    pub fn next_deadline(&self) -> Instant {
        let mut t = self.next_check;
        if let Some(w) = self.serve_wakeup {
            t = t.min(w);
        }
        if let Some(d) = self.urgent_discovery_at() {
            t = t.min(d);
        }
        if let DiscoveryState::Running(s) = self.discovery {
            t = t.min(s + self.cfg.discovery_timeout);
        }
        if let Some(s) = self
            .setups
            .values()
            .map(|s| s.started + self.cfg.connect_timeout)
            .min()
        {
            t = t.min(s);
        }
        t
    }

    // ---- inputs ----

    /// A stream completed its handshake.
    pub fn on_stream_up(&mut self, info: StreamInfo, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        let setup = self.setups.remove(&info.peer_id);
        if let Some(s) = &setup {
            self.setup_durations
                .record(now.saturating_duration_since(s.started).as_secs_f64());
            if s.discovered {
                self.stats.discover_peers += 1;
            }
            self.remember(PeerAddr {
                peer: info.peer_id,
                addr: s.addr,
            });
        }
        let trusted = self.is_trusted(&info.peer_id);
        let housekeeping = |stream| Action::Close {
            stream,
            reason: None,
        };
        let cooling = !trusted && self.cooldowns.cooling_until(&info.peer_id, now).is_some();
        if let Some(&existing) = self.by_peer.get(&info.peer_id) {
            // Two streams to one peer. Simultaneous dials: both sides keep
            // the one dialled by the lower PeerId, so they agree. Both
            // dialled by the same side: the newer one (the peer lost the
            // older one, e.g. it restarted).
            let preferred = self.me.min(info.peer_id);
            let dialer = |inbound: bool| if inbound { info.peer_id } else { self.me };
            let existing_inbound = self.info_of(existing).is_some_and(|i| i.inbound);
            let same_dialer = existing_inbound == info.inbound;
            if same_dialer
                || (dialer(info.inbound) == preferred && dialer(existing_inbound) != preferred)
            {
                self.replace(existing, info, &mut out);
            } else {
                out.push(housekeeping(info.id));
            }
        } else if cooling {
            // Served, not asked: it joins the pools when the cooldown ends.
            // A newer stream replaces an older one (the peer restarted).
            if let Some(old) = self.serve_only.remove(&info.peer_id) {
                out.push(housekeeping(old.id));
            }
            if self.serve_only.len() < self.cfg.max_reserved {
                self.serve_only.insert(info.peer_id, info);
                self.refresh_serve_wakeup(now);
            } else {
                out.push(housekeeping(info.id));
            }
        } else if let Some(no_room) = self.join_pools(info, trusted, &mut out) {
            out.push(housekeeping(no_room.id));
        }
        for a in &out {
            if let Action::Close { stream, .. } = a {
                self.closing.insert(*stream);
            }
        }
        self.dial_candidates(now, &mut out);
        out
    }

    /// The network closed a stream or a dial failed (`info` is `None` for a
    /// connection that never opened; `addr` identifies a failed dial).
    pub fn on_stream_down(
        &mut self,
        id: StreamId,
        info: Option<&StreamInfo>,
        peer: Option<PeerId>,
        addr: SocketAddr,
        reason: &CloseReason,
        now: Instant,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        if self.closing.remove(&id) {
            // We closed it ourselves and already accounted for it.
            self.dial_candidates(now, &mut out);
            return out;
        }
        let removal = RemovalReason::from_close(reason);
        let going_away = matches!(reason, CloseReason::PeerGoingAway(_));
        if let Some(info) = info {
            if self
                .serve_only
                .get(&info.peer_id)
                .is_some_and(|s| s.id == id)
            {
                self.serve_only.remove(&info.peer_id);
            } else if self.detach(id, &mut out) {
                if going_away {
                    // Not a failure; but it closed on purpose (likely full):
                    // leave it alone for a while (trusted peers excepted).
                    if !self.is_trusted(&info.peer_id) {
                        self.cooldowns.pause(
                            &self.cfg.cooldown,
                            info.peer_id,
                            now + self.cfg.cooldown.per_failure,
                            now,
                        );
                    }
                } else if reason.is_disconnect() {
                    // The peer closed or the connection broke (its process
                    // may have died): not a failure, nothing accumulates.
                    self.stats.removal_reasons[removal.index()] += 1;
                } else {
                    self.account(info.peer_id, removal, now);
                }
                if let Some(t) = self.trusted.iter().find(|t| t.peer == info.peer_id) {
                    // Never lost for good: redialled at the next check (not
                    // in a tight loop if it keeps refusing us).
                    self.trusted_retry.push(*t);
                }
                self.after_removal(now, &mut out);
            }
        } else {
            // A dial that failed, or an inbound handshake refused. The
            // setup is found by the peer reached or, failing that, by the
            // address dialled (a PeerId mismatch reaches someone else), so
            // its dial slot is always freed.
            let failed = self
                .setups
                .iter()
                .find(|(p, _)| peer.is_some_and(|x| x == **p))
                .or_else(|| self.setups.iter().find(|(_, s)| s.addr == addr))
                .map(|(p, s)| (*p, s.relayer));
            if let CloseReason::PeerIdMismatch { expected, got } = reason {
                // The address belongs to `got`, who proved who it is: not
                // its fault. The record naming `expected` there was false:
                // its relayer pays; `expected` is not dialled again soon.
                if let Some((p, relayer)) = failed {
                    self.setups.remove(&p);
                    self.forget(p);
                    let until = now + self.cfg.cooldown.max;
                    self.cooldowns.pause(&self.cfg.cooldown, p, until, now);
                    if let Some(r) = relayer.filter(|r| *r != *got) {
                        tracing::warn!(relayer = %r, %expected, %got, %addr, "a relayed peer record named the wrong PeerId for its address");
                        out.extend(self.penalize_peer(r, RemovalReason::CriticalError, now));
                    }
                }
            } else if let Some((p, _)) = failed {
                self.setups.remove(&p);
                self.account(p, removal, now);
            } else if let Some(p) = peer.filter(|_| removal.is_critical()) {
                self.account(p, removal, now);
            }
        }
        self.dial_candidates(now, &mut out);
        out
    }

    /// A consumer (request manager, sync) removes a stream for `reason`.
    /// Trusted peers are kept (the failure is still counted).
    pub fn remove_stream(
        &mut self,
        id: StreamId,
        reason: RemovalReason,
        now: Instant,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        let Some(peer) = self.peer_of(id) else {
            return out;
        };
        if self.is_trusted(&peer) {
            tracing::info!(stream = id, %peer, reason = reason.label(), "trusted peer kept despite removal request");
            self.stats.removal_reasons[reason.index()] += 1;
            return out;
        }
        if self.detach(id, &mut out) {
            self.note_removal(peer, reason);
            self.account(peer, reason, now);
            self.closing.insert(id);
            out.push(Action::Close {
                stream: id,
                reason: Some(reason),
            });
            self.after_removal(now, &mut out);
        }
        self.dial_candidates(now, &mut out);
        out
    }

    /// A consumer proved `peer` at fault after its stream may already be
    /// gone (e.g. the sync proved, once the canonical blocks were verified,
    /// that hashes it sent earlier were false): counts the failure against
    /// the peer and closes its stream if it still has one. Trusted peers are
    /// kept.
    pub fn penalize_peer(
        &mut self,
        peer: PeerId,
        reason: RemovalReason,
        now: Instant,
    ) -> Vec<Action> {
        if let Some(&id) = self.by_peer.get(&peer) {
            return self.remove_stream(id, reason, now);
        }
        let mut out = Vec::new();
        if self.is_trusted(&peer) {
            return out;
        }
        self.note_removal(peer, reason);
        self.account(peer, reason, now);
        if reason.is_critical() {
            if let Some(s) = self.serve_only.remove(&peer) {
                self.closing.insert(s.id);
                out.push(Action::Close {
                    stream: s.id,
                    reason: Some(reason),
                });
            }
        }
        out
    }

    /// Discovery results.
    pub fn on_discovered(&mut self, peers: Vec<PeerAddr>, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        let mut fresh = 0;
        for p in peers {
            if self.candidates.len() >= MAX_CANDIDATES {
                break;
            }
            if self.by_peer.contains_key(&p.peer)
                || self.setups.contains_key(&p.peer)
                || self.candidates.iter().any(|c| c.peer == p.peer)
                || self.cooldowns.cooling_until(&p.peer, now).is_some()
            {
                continue;
            }
            fresh += 1;
            self.candidates.push_back(p);
        }
        self.discovery = if fresh == 0 {
            DiscoveryState::BackingOff(now + self.backoff())
        } else {
            DiscoveryState::Idle
        };
        self.dial_candidates(now, &mut out);
        out
    }

    /// Peers learned outside a discovery round (peer exchange answers):
    /// added as candidates and dialled when there is room; the discovery
    /// state is left alone.
    /// `relayer` is the peer whose answer named them: it pays if an
    /// address answers under another PeerId. At most `MAX_CANDIDATES`
    /// wait; more are dropped.
    pub fn on_peers_learned(
        &mut self,
        peers: Vec<PeerAddr>,
        relayer: Option<PeerId>,
        now: Instant,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        for p in peers {
            if self.by_peer.contains_key(&p.peer) && p.peer != self.me {
                // Connected (perhaps it dialled us): its signed record gives
                // the address to dial it at should we lose each other.
                self.remember(p);
                continue;
            }
            if self.candidates.len() >= MAX_CANDIDATES {
                break;
            }
            if !self.by_peer.contains_key(&p.peer)
                && !self.setups.contains_key(&p.peer)
                && !self.candidates.iter().any(|c| c.peer == p.peer)
                && self.cooldowns.cooling_until(&p.peer, now).is_none()
            {
                if let Some(r) = relayer {
                    if self.relayers.len() < MAX_CANDIDATES {
                        self.relayers.insert(p.peer, r);
                    }
                }
                self.candidates.push_back(p);
            }
        }
        self.dial_candidates(now, &mut out);
        out
    }

    /// Whether `peer` has a stream (active or reserve). For the property
    /// tests' invariants; the engine never asks.
    #[cfg(feature = "testkit")]
    pub fn is_connected(&self, peer: &PeerId) -> bool {
        self.by_peer.contains_key(peer)
    }

    /// Per-stream throughput (e.g. blocks/s) from the request manager.
    /// Streams below the median / `slow_factor` for `slow_reports` reports in
    /// a row are swapped for a reserve stream, if there is one.
    pub fn on_throughput(&mut self, samples: &[(StreamId, f64)], now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        let mut v: Vec<f64> = samples
            .iter()
            .filter(|(id, _)| self.active.contains_key(id))
            .map(|(_, t)| *t)
            .collect();
        if v.len() < 3 {
            return out;
        }
        v.sort_by(|a, b| a.total_cmp(b));
        let median = v[v.len() / 2];
        let mut slow = Vec::new();
        for (id, t) in samples {
            if !self.active.contains_key(id) {
                continue;
            }
            if *t * self.cfg.slow_factor < median {
                let s = self.slow_strikes.entry(*id).or_insert(0);
                *s += 1;
                if *s >= self.cfg.slow_reports {
                    slow.push(*id);
                }
            } else {
                self.slow_strikes.remove(id);
            }
        }
        for id in slow {
            if self.reserved.is_empty() {
                break;
            }
            self.slow_strikes.remove(&id);
            out.extend(self.remove_stream(id, RemovalReason::Slow, now));
        }
        out
    }

    /// Timers: the routine check, discovery timeout, dial timeouts.
    pub fn on_tick(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        let expired: Vec<PeerId> = self
            .setups
            .iter()
            .filter(|(_, s)| now.saturating_duration_since(s.started) >= self.cfg.connect_timeout)
            .map(|(p, _)| *p)
            .collect();
        for p in expired {
            self.setups.remove(&p);
            self.account(p, RemovalReason::ConnectionFailure, now);
        }
        if let DiscoveryState::Running(s) = self.discovery {
            if now.saturating_duration_since(s) >= self.cfg.discovery_timeout {
                self.discovery = DiscoveryState::BackingOff(now + self.backoff());
            }
        }
        if self.active.len() >= self.cfg.hard_low_cap {
            self.retry = self.cfg.discovery_retry;
        } else if self.urgent_discovery_at().is_some_and(|d| d <= now) {
            self.discover(now, &mut out);
            self.retry = (self.retry * 2).min(self.cfg.discovery_backoff);
        }
        self.admit_served(now, &mut out);
        if now >= self.next_check {
            self.next_check = now + self.cfg.check_interval;
            for t in std::mem::take(&mut self.trusted_retry) {
                if !self.by_peer.contains_key(&t.peer) {
                    self.candidates.push_front(t);
                }
            }
            self.cooldowns.prune(&self.cfg.cooldown, now);
            if self.active.len() < self.cfg.soft_low_cap {
                self.promote(&mut out);
                if self.active.len() < self.cfg.soft_low_cap {
                    self.discover(now, &mut out);
                }
            } else if self.active.len() + self.reserved.len() < self.cfg.high_cap {
                // A feeler: one known peer we have no stream to, so a pool
                // whose peers all share one view meets others.
                self.stats.feelers += self.reoffer_known(now, 1) as u64;
            }
        }
        self.dial_candidates(now, &mut out);
        out
    }

    // ---- internals ----

    /// Serve-only streams whose peer's cooldown has ended join the pools.
    fn admit_served(&mut self, now: Instant, out: &mut Vec<Action>) {
        let ready: Vec<PeerId> = self
            .serve_only
            .keys()
            .filter(|p| self.cooldowns.cooling_until(p, now).is_none())
            .copied()
            .collect();
        for p in ready {
            let Some(info) = self.serve_only.remove(&p) else {
                continue;
            };
            if let Some(no_room) = self.join_pools(info, false, out) {
                // It stays served only.
                self.serve_only.insert(p, no_room);
            }
        }
        self.refresh_serve_wakeup(now);
    }

    /// Puts a stream of a peer with no other stream in the active pool if
    /// there is room (a trusted one demotes someone), else in the reserve;
    /// gives it back if both are full.
    fn join_pools(
        &mut self,
        info: StreamInfo,
        trusted: bool,
        out: &mut Vec<Action>,
    ) -> Option<StreamInfo> {
        if self.active.len() >= self.cfg.high_cap && trusted {
            // Trusted peers always get an active slot.
            self.demote_one(out);
        }
        if self.active.len() < self.cfg.high_cap {
            self.by_peer.insert(info.peer_id, info.id);
            self.activate(info, out);
        } else if self.reserved.len() < self.cfg.max_reserved {
            self.by_peer.insert(info.peer_id, info.id);
            self.reserved.push_back(info);
        } else if info.inbound && self.cfg.max_reserved > 0 {
            // Both pools full: a newcomer takes the place of the oldest
            // reserve stream (which we do not use), so a node everyone
            // dials first (a boot node) still lets new nodes in to ask for
            // peers, instead of locking them out of the network.
            if let Some(old) = self.reserved.pop_front() {
                self.by_peer.remove(&old.peer_id);
                out.push(Action::Close {
                    stream: old.id,
                    reason: None,
                });
            }
            self.by_peer.insert(info.peer_id, info.id);
            self.reserved.push_back(info);
        } else {
            return Some(info);
        }
        None
    }

    fn refresh_serve_wakeup(&mut self, now: Instant) {
        self.serve_wakeup = self
            .serve_only
            .keys()
            .filter_map(|p| self.cooldowns.until(p))
            .filter(|u| *u > now)
            .min();
    }

    fn note_removal(&mut self, peer: PeerId, reason: RemovalReason) {
        if self.recent_removals.len() == RECENT_REMOVALS {
            self.recent_removals.pop_front();
        }
        self.recent_removals.push_back((peer, reason));
    }

    /// Moves one non-trusted active stream (an entry peer's first) to the
    /// reserve (or closes it if the reserve is full) to make room.
    fn demote_one(&mut self, out: &mut Vec<Action>) {
        // An entry peer's stream first: it is the one we need least.
        let Some(id) = self
            .active
            .values()
            .find(|i| self.entry.contains(&i.peer_id))
            .or_else(|| {
                self.active
                    .values()
                    .find(|i| !self.trusted_ids.contains(&i.peer_id))
            })
            .map(|i| i.id)
        else {
            return;
        };
        let Some(info) = self.active.remove(&id) else {
            return;
        };
        out.push(Action::Deactivated(id));
        if self.reserved.len() < self.cfg.max_reserved {
            self.reserved.push_front(info);
        } else {
            self.by_peer.remove(&info.peer_id);
            self.closing.insert(id);
            out.push(Action::Close {
                stream: id,
                reason: None,
            });
        }
    }

    fn info_of(&self, id: StreamId) -> Option<&StreamInfo> {
        self.active
            .get(&id)
            .or_else(|| self.reserved.iter().find(|i| i.id == id))
    }

    /// Puts `new` in the place of `old` (same peer), closing `old` without
    /// counting a failure.
    fn replace(&mut self, old: StreamId, new: StreamInfo, out: &mut Vec<Action>) {
        self.closing.insert(old);
        out.push(Action::Close {
            stream: old,
            reason: None,
        });
        self.by_peer.insert(new.peer_id, new.id);
        if self.active.remove(&old).is_some() {
            out.push(Action::Deactivated(old));
            self.active.insert(new.id, new.clone());
            out.push(Action::Activated(new));
        } else if let Some(slot) = self.reserved.iter_mut().find(|i| i.id == old) {
            *slot = new;
        }
    }

    fn peer_of(&self, id: StreamId) -> Option<PeerId> {
        self.active
            .get(&id)
            .map(|i| i.peer_id)
            .or_else(|| self.reserved.iter().find(|i| i.id == id).map(|i| i.peer_id))
    }

    fn activate(&mut self, info: StreamInfo, out: &mut Vec<Action>) {
        self.activated_total += 1;
        self.active.insert(info.id, info.clone());
        out.push(Action::Activated(info));
    }

    /// Removes a stream from whichever pool holds it; true if it was there.
    fn detach(&mut self, id: StreamId, out: &mut Vec<Action>) -> bool {
        self.slow_strikes.remove(&id);
        let info = if let Some(i) = self.active.remove(&id) {
            out.push(Action::Deactivated(id));
            i
        } else if let Some(pos) = self.reserved.iter().position(|i| i.id == id) {
            match self.reserved.remove(pos) {
                Some(i) => i,
                None => return false,
            }
        } else {
            return false;
        };
        self.by_peer.remove(&info.peer_id);
        self.removed_total += 1;
        true
    }

    fn account(&mut self, peer: PeerId, reason: RemovalReason, now: Instant) {
        self.stats.removal_reasons[reason.index()] += 1;
        if reason.is_critical() {
            self.stats.critical_errors += 1;
        }
        if self.is_trusted(&peer) {
            return;
        }
        if reason.is_critical() {
            self.forget(peer);
        }
        let d = self
            .cooldowns
            .record_failure(&self.cfg.cooldown, peer, reason.is_critical(), now);
        if !d.is_zero() {
            tracing::info!(%peer, reason = reason.label(), cooldown_s = d.as_secs(), "peer cooling down");
        }
    }

    fn promote(&mut self, out: &mut Vec<Action>) {
        while self.active.len() < self.cfg.high_cap {
            let Some(info) = self.take_reserve() else {
                break;
            };
            self.activate(info, out);
            if self.active.len() >= self.cfg.soft_low_cap {
                break;
            }
        }
    }

    /// The reserve stream to promote: the oldest to a peer that is not an
    /// entry peer, else the oldest.
    fn take_reserve(&mut self) -> Option<StreamInfo> {
        let pos = self
            .reserved
            .iter()
            .position(|i| !self.entry.contains(&i.peer_id))
            .unwrap_or(0);
        self.reserved.remove(pos)
    }

    fn after_removal(&mut self, now: Instant, out: &mut Vec<Action>) {
        // Promote at once: one reserve stream per free active slot.
        if self.active.len() < self.cfg.high_cap {
            if let Some(info) = self.take_reserve() {
                self.activate(info, out);
            }
        }
        if self.active.len() < self.cfg.hard_low_cap {
            self.discover(now, out);
        }
    }

    /// The back-off after a discovery that found nobody: short while below
    /// the hard cap, `discovery_backoff` otherwise.
    fn backoff(&self) -> Duration {
        if self.active.len() < self.cfg.hard_low_cap {
            self.retry
        } else {
            self.cfg.discovery_backoff
        }
    }

    /// Below the hard cap, when the next discovery is due.
    fn urgent_discovery_at(&self) -> Option<Instant> {
        if self.active.len() >= self.cfg.hard_low_cap {
            return None;
        }
        match self.discovery {
            DiscoveryState::Running(_) => None,
            DiscoveryState::BackingOff(until) => Some(until),
            DiscoveryState::Idle => Some(self.last_discovery? + self.retry),
        }
    }

    fn discover(&mut self, now: Instant, out: &mut Vec<Action>) {
        match self.discovery {
            DiscoveryState::Running(_) => return,
            DiscoveryState::BackingOff(until) if now < until => return,
            _ => {}
        }
        self.stats.discover += 1;
        self.reoffer_known(now, self.cfg.disc_batch);
        self.last_discovery = Some(now);
        self.discovery = DiscoveryState::Running(now);
        out.push(Action::Discover {
            count: self.cfg.disc_batch,
        });
    }

    /// Forgets a known peer.
    fn forget(&mut self, peer: PeerId) {
        let before = self.known.len();
        self.known.retain(|k| k.peer != peer);
        if self.known.len() != before {
            self.known_changes += 1;
        }
    }

    /// Remembers a peer reached by dialling, as the most recent.
    fn remember(&mut self, p: PeerAddr) {
        self.known_changes += 1;
        self.known.retain(|k| k.peer != p.peer);
        if self.known.len() >= MAX_KNOWN {
            self.known.pop_front();
        }
        self.known.push_back(p);
    }

    /// Offers up to `count` known peers we have no stream or dial to and
    /// that are not cooling down as candidates; those offered go to the
    /// back, so the next discovery (or feeler) offers others. Returns how
    /// many were offered.
    fn reoffer_known(&mut self, now: Instant, count: usize) -> usize {
        let mut offered = Vec::new();
        let mut rest = VecDeque::with_capacity(self.known.len());
        for k in std::mem::take(&mut self.known) {
            let eligible = offered.len() < count
                && self.candidates.len() < MAX_CANDIDATES
                && k.peer != self.me
                && !self.by_peer.contains_key(&k.peer)
                && !self.setups.contains_key(&k.peer)
                && !self.candidates.iter().any(|c| c.peer == k.peer)
                && self.cooldowns.cooling_until(&k.peer, now).is_none();
            if eligible {
                self.candidates.push_back(k);
                offered.push(k);
            } else {
                rest.push_back(k);
            }
        }
        let n = offered.len();
        rest.extend(offered);
        self.known = rest;
        n
    }

    fn dial_candidates(&mut self, now: Instant, out: &mut Vec<Action>) {
        let room = (self.cfg.high_cap + self.cfg.max_reserved)
            .saturating_sub(self.active.len() + self.reserved.len());
        while self.setups.len() < self.cfg.setup_concurrency && self.setups.len() < room {
            let Some(p) = self.candidates.pop_front() else {
                break;
            };
            let trusted = self.is_trusted(&p.peer);
            if self.by_peer.contains_key(&p.peer)
                || self.setups.contains_key(&p.peer)
                || (!trusted && self.cooldowns.cooling_until(&p.peer, now).is_some())
            {
                self.relayers.remove(&p.peer);
                continue;
            }
            let relayer = self.relayers.remove(&p.peer);
            self.setups.insert(
                p.peer,
                Setup {
                    addr: p.addr,
                    started: now,
                    discovered: !trusted,
                    relayer,
                },
            );
            out.push(Action::Dial(p));
        }
    }
}
