//! A network of complete nodes in one thread, in virtual time (DESIGN.md
//! §14), grown from quinn-proto's two-endpoint `Pair` to thousands.
//!
//! Each node runs the engine's real cores, fed by the simulator exactly as
//! the threads feed them in a running node:
//! - the [`StreamManager`] (pools, discovery, cooldowns; its dials become
//!   simulated connections, its discoveries ask the boot list and peer
//!   exchange);
//! - the [`RequestManager`] (windows, retries, timeouts);
//! - the server: [`RateLimiter`] and [`crate::server::answer`] over the
//!   node's [`ChainBackend`];
//! - for syncing nodes, the [`SyncMachine`] committing into the node's own
//!   [`MemChain`], and staging (`UseMemDB = false`) into its own
//!   [`Staging`]; both survive a crash, which [`Sim::crash_on`] can place
//!   at a named point of the sync ([`CrashPoint`]).
//!
//! Links ([`link`]) have latency and jitter per connection, per-node
//! bandwidth, loss (as TCP sees it: a retransmission delay) and
//! partitions. Verification is real (blst), memoized across nodes
//! ([`memo`]), and costs virtual CPU time ([`CpuModel`]); peer records are
//! really signed and verified, memoized the same way.
//!
//! One seed reproduces a run: every random draw comes from the sim's
//! seeded generator, every map iterated for a decision is ordered, events
//! at the same instant run in the order they were scheduled.
//!
//! Not modelled: the Noise handshake's bytes and CPU (a connection opens
//! after one and a half round trips), the wire decoder (responses are
//! handed over as values; their encoded size is what the links carry),
//! LMDB (the store is a [`MemChain`]), and consensus (honest `Server`s
//! share one chain that grows at the tip by itself).

pub mod link;
pub mod memo;
pub mod node;
pub mod scenario;
pub mod stats;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy_rlp::Bytes;
use libp2p_identity::PeerId;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

pub use link::LinkConfig;
pub use memo::{CpuModel, Memo};
pub use node::{Byzantine, CrashPoint, Crashed, NodeLog, NodeStats, Role, SimNode, Staging};

use self::link::Port;
use self::node::{Cores, Owner};
use super::MemChain;
use crate::byzantine::{Behaviour, ByzantineBackend};
use crate::chain::backend::InsertBatch;
use crate::chain::{BlockWithSig, ChainBackend, Genesis, SealedBlock, StageId};
use crate::config::{Config, Network};
use crate::crypto::NodeIdentity;
use crate::net::{CloseReason, StreamId, StreamInfo};
use crate::request::{Priority, RequestError, RequestManager, RequestOptions, RmAction, RmConfig};
use crate::runtime::HostConfig;
use crate::server::{Decision, RateLimiter, RateLimits};
use crate::stream::record::sign_record;
use crate::stream::sample::random_prefix;
use crate::stream::StreamManagerConfig;
use crate::stream::{Action as SmAction, PeerAddr, RemovalReason, StreamManager};
use crate::sync::machine::{BatchId, CommitError};
use crate::sync::resume;
use crate::sync::{Action, Restored, Start, SyncMachine, SyncSettings};
use crate::wire::limits::{MAX_PEERS_PER_RESPONSE, SOFT_RESPONSE_BYTES};
use crate::wire::{ErrorCode, Message, ProtocolId, Request, RequestId, Response};

/// Events at one virtual instant past which the run is a livelock (a core
/// reporting a deadline it does not clear), a bug to report, not to wait
/// out.
const LIVELOCK_EVENTS: u64 = 5_000_000;

/// Time limit of a peer-exchange request (as the host's).
const PX_TIMEOUT: Duration = Duration::from_secs(10);
/// Active streams asked for peers per discovery (as the host's).
const PX_FANOUT: usize = 3;

/// Settings of a simulation.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Seeds every random draw.
    pub seed: u64,
    /// Links.
    pub link: LinkConfig,
    /// Virtual CPU cost of verification.
    pub cpu: CpuModel,
    /// Every syncing node's sync settings.
    pub sync: SyncSettings,
    /// Every node's stream manager settings.
    pub streams: StreamManagerConfig,
    /// Every node's request manager settings.
    pub requests: RmConfig,
    /// Every node's server rate limits.
    pub limits: RateLimits,
    /// `MaxInboundStreams`.
    pub max_inbound: usize,
    /// `StreamsPerIP` (0: no cap).
    pub streams_per_ip: usize,
    /// The protocol every node speaks.
    pub protocol: ProtocolId,
    /// How long a connection cut by a partition lingers before both ends
    /// see it fail (the write-progress deadline of a real node).
    pub partition_break: Duration,
}

impl SimConfig {
    /// The guide's defaults for `network`, links of `link`.
    pub fn new(network: Network, seed: u64, link: LinkConfig) -> Self {
        let mut c = Config::for_network(network);
        c.sync.client = true;
        let host = HostConfig::from_config(&c, SocketAddr::from(([10, 0, 0, 1], 9000)), 0);
        SimConfig {
            seed,
            link,
            cpu: CpuModel::default(),
            sync: SyncSettings::from_sync(&c.sync),
            streams: host.streams,
            requests: host.requests,
            limits: host.server.limits,
            max_inbound: host.net.max_inbound,
            streams_per_ip: host.net.max_streams_per_ip,
            protocol: host.net.protocol.clone(),
            partition_break: c.sync.limits.write_progress_timeout,
        }
    }
}

/// A message on a connection.
#[derive(Debug)]
enum Msg {
    Req(RequestId, Request),
    Resp(RequestId, Response),
}

/// One end of a connection.
#[derive(Clone, Debug)]
struct End {
    node: usize,
    remote: usize,
    remote_end: StreamId,
    latency: Duration,
    /// When the last message from this end arrives at the other.
    last: Instant,
    info: StreamInfo,
    up: bool,
}

#[derive(Debug)]
enum Ev {
    Tick {
        node: usize,
    },
    Up {
        node: usize,
        life: u64,
        end: StreamId,
    },
    Down {
        node: usize,
        life: u64,
        end: StreamId,
        info: StreamInfo,
        up: bool,
        reason: CloseReason,
    },
    DialFailed {
        node: usize,
        life: u64,
        id: StreamId,
        peer: PeerId,
        addr: SocketAddr,
        reason: CloseReason,
    },
    Deliver {
        end: StreamId,
        msg: Msg,
    },
    Verified {
        node: usize,
        life: u64,
        batch: BatchId,
        check: crate::chain::verify::SegmentCheck,
    },
    Committed {
        node: usize,
        life: u64,
        batch: BatchId,
        result: Result<(), CommitError>,
    },
    Start {
        node: usize,
    },
    Crash {
        node: usize,
    },
    /// The `init_wait` of a node's sync waiting for `InitStreams` ended.
    InitWait {
        node: usize,
        life: u64,
    },
    Grow,
    Churn,
}

/// Tip growth: blocks appended to the consensus chain at a fixed pace.
struct Growth {
    chain: Arc<MemChain>,
    blocks: VecDeque<BlockWithSig>,
    every: Duration,
}

/// Churn: random honest nodes crash and come back.
#[derive(Clone, Copy, Debug)]
struct Churn {
    /// Mean time between two crashes (over the whole network).
    every: Duration,
    /// How long a crashed node stays down.
    down: Duration,
}

/// The simulation: nodes, links and virtual time.
pub struct Sim {
    cfg: SimConfig,
    genesis: Genesis,
    /// The honest chain every `Server` serves (grows with [`Sim::grow`]).
    source: Arc<MemChain>,
    nodes: Vec<SimNode>,
    ports: Vec<Port>,
    now: Instant,
    start: Instant,
    queue: BTreeMap<(Instant, u64), Ev>,
    seq: u64,
    rng: ChaCha8Rng,
    ends: HashMap<StreamId, End>,
    next_stream: StreamId,
    by_addr: HashMap<SocketAddr, usize>,
    by_peer: HashMap<PeerId, usize>,
    boot: Vec<usize>,
    byzantine_records: Vec<Bytes>,
    byz_backends: BTreeMap<Behaviour, Arc<dyn ChainBackend>>,
    memo: Memo,
    growth: Option<Growth>,
    churn: Option<Churn>,
    /// Events handled at the current instant (livelock guard).
    same_instant: u64,
    /// Dials attempted.
    pub dials: u64,
    /// Dials that failed, by reason label.
    pub dial_failures: BTreeMap<String, u64>,
    /// Inputs handled.
    pub events: u64,
    /// A running digest of every event handled (when, what, where): two
    /// runs are the same run when their digests are equal.
    pub digest: u64,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim")
            .field("nodes", &self.nodes.len())
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

impl Sim {
    /// A network whose honest chain is `source` (genesis `genesis`).
    pub fn new(cfg: SimConfig, genesis: Genesis, source: Arc<MemChain>) -> Self {
        let now = Instant::now();
        Sim {
            rng: ChaCha8Rng::seed_from_u64(cfg.seed),
            cfg,
            genesis,
            source,
            nodes: Vec::new(),
            ports: Vec::new(),
            now,
            start: now,
            queue: BTreeMap::new(),
            seq: 0,
            ends: HashMap::new(),
            next_stream: 1,
            by_addr: HashMap::new(),
            by_peer: HashMap::new(),
            boot: Vec::new(),
            byzantine_records: Vec::new(),
            byz_backends: BTreeMap::new(),
            memo: Memo::default(),
            growth: None,
            churn: None,
            dials: 0,
            dial_failures: BTreeMap::new(),
            events: 0,
            same_instant: 0,
            digest: 0xcbf2_9ce4_8422_2325,
        }
    }

    // ---- views ----

    /// Virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// The virtual instant the simulation started at.
    pub fn started(&self) -> Instant {
        self.start
    }

    /// The nodes, by index.
    pub fn nodes(&self) -> &[SimNode] {
        &self.nodes
    }

    /// The honest chain.
    pub fn source(&self) -> &Arc<MemChain> {
        &self.source
    }

    /// The memo of real checks (how many were computed, how many reused).
    pub fn memo(&self) -> &Memo {
        &self.memo
    }

    /// Node index of `peer`.
    pub fn node_of(&self, peer: &PeerId) -> Option<usize> {
        self.by_peer.get(peer).copied()
    }

    /// Partition group of node `i` (0 unless [`Sim::partition`] moved it).
    pub fn group_of(&self, i: usize) -> u32 {
        self.ports[i].group
    }

    /// The settings.
    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }

    // ---- building the network ----

    fn add_node(
        &mut self,
        role: Role,
        backend: Arc<dyn ChainBackend>,
        ip: Option<IpAddr>,
    ) -> usize {
        let i = self.nodes.len();
        let mut seed = [0u8; 32];
        self.rng.fill_bytes(&mut seed);
        let identity = NodeIdentity::from_seed(seed);
        let addr = match ip {
            // A group on one address: one port each.
            Some(ip) => {
                let port = 9000 + self.by_addr.keys().filter(|a| a.ip() == ip).count() as u16;
                SocketAddr::new(ip, port)
            }
            None => SocketAddr::new(
                IpAddr::V4(Ipv4Addr::new(10, (i >> 16) as u8, (i >> 8) as u8, i as u8)),
                9000,
            ),
        };
        let record = sign_record(&identity, &self.cfg.protocol, 1, &[addr]).unwrap_or_default();
        let peer_id = identity.peer_id();
        self.by_addr.insert(addr, i);
        self.by_peer.insert(peer_id, i);
        self.ports.push(Port::new(self.now));
        self.nodes.push(SimNode {
            role,
            backend,
            store: None,
            online: false,
            addr,
            peer_id,
            stats: NodeStats::default(),
            outcome: None,
            status: None,
            record,
            life: 0,
            cores: None,
            cpu_free: self.now,
            armed: None,
            exit_when_synced: false,
            sync_pending: false,
            staging: Staging::default(),
            crash_point: None,
            saved_peers: Vec::new(),
        });
        i
    }

    /// Adds a synced honest node serving the honest chain, up now; returns
    /// its index.
    pub fn add_server(&mut self) -> usize {
        let b: Arc<dyn ChainBackend> = self.source.clone();
        let i = self.add_node(Role::Server, b, None);
        self.boot_node(i);
        i
    }

    /// Adds an honest node at genesis that comes up after `delay` and syncs
    /// (and serves what it has). With `exit_when_synced` its sync ends at
    /// the first target reached; otherwise it keeps following the tip.
    pub fn add_syncer(&mut self, delay: Duration, exit_when_synced: bool) -> Result<usize, String> {
        let store = Arc::new(MemChain::new(&self.genesis).map_err(|e| e.to_string())?);
        let b: Arc<dyn ChainBackend> = store.clone();
        let i = self.add_node(Role::Syncer, b, None);
        self.nodes[i].store = Some(store);
        self.nodes[i].exit_when_synced = exit_when_synced;
        let at = self.now + delay;
        self.at(at, Ev::Start { node: i });
        Ok(i)
    }

    /// Adds a byzantine node, up now, on its own address or, for a sybil
    /// group, on `ip` shared with others; returns its index.
    pub fn add_byzantine(&mut self, kind: Byzantine, ip: Option<IpAddr>) -> usize {
        let backend: Arc<dyn ChainBackend> = match kind {
            Byzantine::Serves(b) => self
                .byz_backends
                .entry(b)
                .or_insert_with(|| Arc::new(ByzantineBackend::new(self.source.clone(), b)))
                .clone(),
            Byzantine::Withholding | Byzantine::SlowDrip => self.source.clone(),
        };
        let i = self.add_node(Role::Byzantine(kind), backend, ip);
        let r = self.nodes[i].record.clone();
        if self.byzantine_records.len() < MAX_PEERS_PER_RESPONSE {
            self.byzantine_records.push(r);
        }
        self.boot_node(i);
        i
    }

    /// Makes `nodes` the boot list every node discovers from.
    pub fn set_boot(&mut self, nodes: &[usize]) {
        self.boot = nodes.to_vec();
    }

    /// Appends `blocks` (continuing the honest chain) to it, one every
    /// `every`, from now on.
    pub fn grow(&mut self, blocks: Vec<BlockWithSig>, every: Duration) {
        self.growth = Some(Growth {
            chain: self.source.clone(),
            blocks: blocks.into(),
            every,
        });
        let at = self.now + every;
        self.at(at, Ev::Grow);
    }

    /// The tip stops growing (blocks not yet added are dropped).
    pub fn stop_growth(&mut self) {
        self.growth = None;
    }

    /// From now on, a random honest node crashes every `every` on average
    /// (exponentially distributed) and comes back `down` later.
    pub fn churn(&mut self, every: Duration, down: Duration) {
        self.churn = Some(Churn { every, down });
        let at = self.now + self.exp(every);
        self.at(at, Ev::Churn);
    }

    /// Splits the network: nodes in `group` (1, 2, …) reach only nodes of
    /// the same group; connections across break after
    /// `SimConfig::partition_break`.
    pub fn partition(&mut self, nodes: &[usize], group: u32) {
        for &i in nodes {
            self.ports[i].group = group;
        }
        let brk = self.now + self.cfg.partition_break;
        let mut cut = Vec::new();
        for (id, e) in &self.ends {
            if self.ports[e.node].group != self.ports[e.remote].group {
                cut.push(*id);
            }
        }
        cut.sort_unstable();
        for id in cut {
            if let Some(e) = self.ends.get(&id) {
                let ev = Ev::Down {
                    node: e.node,
                    life: self.nodes[e.node].life,
                    end: id,
                    info: e.info.clone(),
                    up: e.up,
                    reason: CloseReason::Io("connection timed out (partition)".into()),
                };
                self.at(brk, ev);
            }
        }
    }

    /// Heals every partition.
    pub fn heal(&mut self) {
        for p in &mut self.ports {
            p.group = 0;
        }
    }

    /// Crashes node `i` now: it loses everything not committed; its peers
    /// see its connections close.
    pub fn crash(&mut self, i: usize) {
        if !self.nodes[i].online {
            return;
        }
        let ends: Vec<StreamId> = self.nodes[i]
            .cores
            .as_ref()
            .map(|c| c.ends.iter().copied().collect())
            .unwrap_or_default();
        for e in ends {
            if let Some(end) = self.ends.remove(&e) {
                if let Some(r) = self.ends.get(&end.remote_end) {
                    let ev = Ev::Down {
                        node: r.node,
                        life: self.nodes[r.node].life,
                        end: end.remote_end,
                        info: r.info.clone(),
                        up: r.up,
                        reason: CloseReason::PeerClosed,
                    };
                    let at = self.now + end.latency;
                    self.at(at, ev);
                }
            }
        }
        let n = &mut self.nodes[i];
        if let Some(c) = &n.cores {
            n.saved_peers = c.sm.known_peers().copied().collect();
        }
        n.online = false;
        n.sync_pending = false;
        n.cores = None;
        n.life += 1;
        n.armed = None;
    }

    /// Arms node `i` to crash at the next `point` of its sync (see
    /// [`CrashPoint`]); it then stays down until [`Sim::restart`]. The
    /// crash is recorded in its `stats.crashes`.
    pub fn crash_on(&mut self, i: usize, point: CrashPoint) {
        self.nodes[i].crash_point = Some(point);
    }

    /// Starts (or starts afresh) a log of what node `i` asks, checks and
    /// commits, number by number, in its `stats.log`.
    pub fn log(&mut self, i: usize) {
        self.nodes[i].stats.log = Some(NodeLog::default());
    }

    /// What node `i`'s stream manager shows now (`None` while it is down):
    /// its pools, cooldowns and the removals it decided.
    pub fn stream_status(&self, i: usize) -> Option<crate::stream::StreamStatus> {
        self.nodes[i].stream_status(self.now)
    }

    /// If node `i` is armed to crash at `point`, crashes it there (with
    /// `blocks` in hand) and says so.
    fn crash_here(&mut self, i: usize, point: CrashPoint, blocks: RangeInclusive<u64>) -> bool {
        if self.nodes[i].crash_point != Some(point) {
            return false;
        }
        let n = &mut self.nodes[i];
        n.crash_point = None;
        let head = n.head();
        n.stats.crashes.push(Crashed {
            point,
            at: self.now,
            blocks,
            head,
        });
        self.crash(i);
        true
    }

    /// Crashes node `i` after `delay` of virtual time.
    pub fn crash_at(&mut self, i: usize, delay: Duration) {
        let at = self.now + delay;
        self.at(at, Ev::Crash { node: i });
    }

    /// Brings node `i` back (or up for the first time) now: fresh cores,
    /// and a syncing node resumes from what it committed, its sync starting
    /// (as the driver's) once `InitStreams` streams are active or after
    /// `init_wait`.
    pub fn restart(&mut self, i: usize) -> Result<(), String> {
        if self.nodes[i].online {
            return Ok(());
        }
        self.nodes[i].stats.restarts += u32::from(self.nodes[i].life > 0);
        self.boot_node(i);
        if self.nodes[i].role == Role::Syncer {
            // Time to sync counts from the node's first start.
            let goal = self.source.head().map_or(0, |h| h.number);
            let now = self.now;
            let n = &mut self.nodes[i];
            if n.stats.joined.is_none() {
                n.stats.joined = Some(now);
                n.stats.goal = goal;
                if n.head() >= goal {
                    n.stats.synced = Some(now);
                }
            }
            // As the driver: the sync starts once `InitStreams` streams are
            // active, or after `init_wait` with what there is.
            n.sync_pending = true;
            let at = self.now + self.cfg.sync.init_wait;
            let life = self.nodes[i].life;
            self.at(at, Ev::InitWait { node: i, life });
            self.maybe_begin_sync(i);
        }
        self.after(i);
        Ok(())
    }

    /// Starts node `i`'s pending sync if it has `InitStreams` ready
    /// streams (as the driver counts them: `StreamManager::ready_streams`).
    fn maybe_begin_sync(&mut self, i: usize) {
        if !self.nodes[i].sync_pending {
            return;
        }
        let ready = self.nodes[i].cores.as_ref().map_or(0, |c| {
            let exchanging = c.tickets.values().any(|o| matches!(o, Owner::PeerExchange));
            c.sm.ready_streams(exchanging)
        });
        if ready >= self.cfg.sync.init_streams {
            self.begin_sync(i);
        }
    }

    /// Starts node `i`'s pending sync now.
    fn begin_sync(&mut self, i: usize) {
        self.nodes[i].sync_pending = false;
        if let Err(e) = self.start_sync(i) {
            tracing::warn!(node = i, error = %e, "simulated sync failed to start");
        }
    }

    /// The boot list's PeerIds (every node's entry peers, as the driver
    /// passes its boot list).
    fn boot_peers(&self) -> Vec<PeerId> {
        self.boot.iter().map(|b| self.nodes[*b].peer_id).collect()
    }

    /// Starts node `i`'s stream and request managers and server.
    fn boot_node(&mut self, i: usize) {
        let now = self.now;
        let trusted = Vec::new();
        let mut sm = StreamManager::new(self.cfg.streams, self.nodes[i].peer_id, trusted, now)
            .with_entry_peers(self.boot_peers())
            .with_known_peers(self.nodes[i].saved_peers.iter().copied());
        let actions = sm.start(now);
        let n = &mut self.nodes[i];
        n.online = true;
        n.cores = Some(Cores {
            sm,
            rm: RequestManager::new(self.cfg.requests, now),
            limiter: RateLimiter::new(self.cfg.limits, now),
            sync: None,
            tickets: BTreeMap::new(),
            sync_tickets: BTreeMap::new(),
            active: BTreeMap::new(),
            ends: Default::default(),
        });
        self.sm_actions(i, actions);
        self.after(i);
    }

    /// Starts (or restarts) node `i`'s sync from what it has committed,
    /// as the driver does (`sync::resume`).
    fn start_sync(&mut self, i: usize) -> Result<(), String> {
        let chain = self.nodes[i].backend.clone();
        let (tip, committees) = resume::tip_and_committees(&*chain).map_err(|e| e.to_string())?;
        let spec = chain.chain_spec().clone();
        // As the driver: staging persists unless `UseMemDB`; what a
        // previous run staged above the head is restored, else dropped.
        let persist = !self.cfg.sync.staged.use_mem_db;
        let max = self.cfg.sync.max_staged_bytes / 4;
        let staging = &mut self.nodes[i].staging;
        let restored = if persist {
            let r = resume::restore::<std::convert::Infallible, _>(
                tip.header.number,
                staging.progress(StageId::BlockHashes),
                staging.progress(StageId::BlockBodies),
                |from, to| Ok(staging.hashes(from..=to)),
                |from, to| Ok(staging.blocks(from..=to, max)),
            )
            .unwrap_or_else(|e| match e {});
            r.unwrap_or_else(|| {
                staging.clear();
                Restored::default()
            })
        } else {
            staging.clear();
            Restored::default()
        };
        let start = Start {
            tip,
            committees,
            restored,
            persist,
            exit_when_synced: self.nodes[i].exit_when_synced,
        };
        let salt = self.rng.next_u64();
        let mut m = SyncMachine::new(self.cfg.sync.clone(), spec, start, self.now)
            .with_tie_salt(salt)
            .with_entry_peers(self.boot_peers());
        let now = self.now;
        let n = &mut self.nodes[i];
        n.outcome = None;
        if let Some(c) = n.cores.as_mut() {
            let infos: Vec<StreamInfo> = c.active.values().cloned().collect();
            m.handle_streams(&infos, now);
            c.sync = Some(m);
        }
        Ok(())
    }

    /// A number drawn uniformly from `0..n` (0 when `n` is 0) with the
    /// run's seeded generator, for scenarios' own random choices (the same
    /// seed draws the same numbers).
    pub fn draw(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.rng.next_u64() % n
        }
    }

    // ---- scheduling ----

    fn at(&mut self, at: Instant, e: Ev) {
        self.seq += 1;
        self.queue.insert((at.max(self.now), self.seq), e);
    }

    fn exp(&mut self, mean: Duration) -> Duration {
        let u = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        mean.mul_f64(-(1.0 - u).max(1e-12).ln())
    }

    fn new_stream(&mut self) -> StreamId {
        let id = self.next_stream;
        self.next_stream += 1;
        id
    }

    /// Runs until `done` holds (checked whenever virtual time advances) or
    /// `limit` of virtual time has passed; returns whether `done` held.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Sim) -> bool) -> bool {
        let end = self.now + limit;
        let mut checked = None;
        loop {
            if checked != Some(self.now) {
                if done(self) {
                    return true;
                }
                checked = Some(self.now);
            }
            let Some((&(t, _), _)) = self.queue.first_key_value() else {
                self.now = end;
                return done(self);
            };
            if t > end {
                self.now = end;
                return done(self);
            }
            let Some(((t, seq), ev)) = self.queue.pop_first() else {
                continue;
            };
            if t > self.now {
                self.same_instant = 0;
            }
            self.same_instant += 1;
            assert!(
                self.same_instant < LIVELOCK_EVENTS,
                "livelock: {LIVELOCK_EVENTS} events at virtual {:?} (a core's deadline does not advance)",
                t - self.start
            );
            self.now = self.now.max(t);
            self.events += 1;
            self.digest = (self.digest ^ (t - self.start).as_nanos() as u64 ^ seq.rotate_left(17))
                .wrapping_mul(0x0100_0000_01b3);
            self.handle(ev);
        }
    }

    // ---- events ----

    fn alive(&self, node: usize, life: u64) -> bool {
        self.nodes[node].online && self.nodes[node].life == life
    }

    fn handle(&mut self, ev: Ev) {
        let now = self.now;
        match ev {
            Ev::Tick { node } => {
                if self.nodes[node].armed != Some(now) {
                    return; // superseded
                }
                self.nodes[node].armed = None;
                let Some(c) = self.nodes[node].cores.as_mut() else {
                    return;
                };
                let sm = if c.sm.next_deadline() <= now {
                    c.sm.on_tick(now)
                } else {
                    Vec::new()
                };
                let mut out = Vec::new();
                if c.rm.next_deadline().is_some_and(|d| d <= now) {
                    c.rm.on_tick(now, &mut out);
                }
                if let Some(m) = c.sync.as_mut() {
                    if m.next_deadline().is_some_and(|d| d <= now) {
                        m.handle_timeout(now);
                    }
                }
                self.sm_actions(node, sm);
                self.rm_actions(node, out);
                self.after(node);
            }
            Ev::Up { node, life, end } => {
                if !self.alive(node, life) {
                    return;
                }
                let Some(e) = self.ends.get_mut(&end) else {
                    return;
                };
                e.up = true;
                let info = e.info.clone();
                let Some(c) = self.nodes[node].cores.as_mut() else {
                    return;
                };
                c.ends.insert(end);
                let a = c.sm.on_stream_up(info, now);
                self.sm_actions(node, a);
                self.after(node);
            }
            Ev::Down {
                node,
                life,
                end,
                info,
                up,
                reason,
            } => {
                if !self.alive(node, life) {
                    return;
                }
                self.ends.remove(&end);
                let Some(c) = self.nodes[node].cores.as_mut() else {
                    return;
                };
                c.ends.remove(&end);
                c.limiter.forget(end);
                let a = if up {
                    c.sm.on_stream_down(
                        end,
                        Some(&info),
                        Some(info.peer_id),
                        info.addr,
                        &reason,
                        now,
                    )
                } else if !info.inbound {
                    c.sm.on_stream_down(end, None, Some(info.peer_id), info.addr, &reason, now)
                } else {
                    Vec::new()
                };
                self.sm_actions(node, a);
                self.after(node);
            }
            Ev::DialFailed {
                node,
                life,
                id,
                peer,
                addr,
                reason,
            } => {
                if !self.alive(node, life) {
                    return;
                }
                *self
                    .dial_failures
                    .entry(dial_failure_label(&reason).to_owned())
                    .or_default() += 1;
                let Some(c) = self.nodes[node].cores.as_mut() else {
                    return;
                };
                let a =
                    c.sm.on_stream_down(id, None, Some(peer), addr, &reason, now);
                self.sm_actions(node, a);
                self.after(node);
            }
            Ev::Deliver { end, msg } => {
                let Some(e) = self.ends.get(&end) else {
                    return; // the connection closed meanwhile
                };
                let node = e.node;
                if !e.up || !self.nodes[node].online {
                    return;
                }
                match msg {
                    Msg::Req(id, req) => self.serve(node, end, id, req),
                    Msg::Resp(id, resp) => {
                        let mut out = Vec::new();
                        if let Some(c) = self.nodes[node].cores.as_mut() {
                            c.rm.on_response(end, id, resp, now, &mut out);
                        }
                        self.rm_actions(node, out);
                    }
                }
                self.after(node);
            }
            Ev::Verified {
                node,
                life,
                batch,
                check,
            } => {
                if !self.alive(node, life) {
                    return;
                }
                if let Some(m) = self.sync_of(node) {
                    m.handle_verified(batch, check, now);
                }
                self.after(node);
            }
            Ev::Committed {
                node,
                life,
                batch,
                result,
            } => {
                if !self.alive(node, life) {
                    return;
                }
                if let Some(m) = self.sync_of(node) {
                    m.handle_committed(batch, result, now);
                }
                let n = &mut self.nodes[node];
                if n.stats.synced.is_none() && n.head() >= n.stats.goal {
                    n.stats.synced = Some(now);
                }
                self.after(node);
            }
            Ev::Start { node } => {
                if let Err(e) = self.restart(node) {
                    tracing::warn!(node, error = %e, "simulated node failed to start");
                }
            }
            Ev::Crash { node } => self.crash(node),
            Ev::InitWait { node, life } => {
                if self.alive(node, life) && self.nodes[node].sync_pending {
                    self.begin_sync(node);
                }
            }
            Ev::Grow => {
                if let Some(g) = self.growth.as_mut() {
                    if let Some(b) = g.blocks.pop_front() {
                        let _ = g
                            .chain
                            .insert_verified_batch(&InsertBatch::seal(vec![b], vec![]));
                        let at = now + g.every;
                        self.at(at, Ev::Grow);
                    }
                }
            }
            Ev::Churn => {
                let Some(ch) = self.churn else {
                    return;
                };
                let honest: Vec<usize> = (0..self.nodes.len())
                    .filter(|i| self.nodes[*i].honest() && self.nodes[*i].online)
                    .collect();
                if !honest.is_empty() {
                    let victim = honest[(self.rng.next_u64() % honest.len() as u64) as usize];
                    self.crash(victim);
                    self.at(now + ch.down, Ev::Start { node: victim });
                }
                let at = now + self.exp(ch.every);
                self.at(at, Ev::Churn);
            }
        }
    }

    /// Node `i`'s running sync, if it has one.
    fn sync_of(&mut self, i: usize) -> Option<&mut SyncMachine> {
        self.nodes[i].cores.as_mut().and_then(|c| c.sync.as_mut())
    }

    /// Schedules node `i`'s next tick at its cores' earliest deadline.
    fn arm(&mut self, i: usize) {
        let Some(c) = self.nodes[i].cores.as_ref() else {
            return;
        };
        let d = [
            Some(c.sm.next_deadline()),
            c.rm.next_deadline(),
            c.sync.as_ref().and_then(|m| m.next_deadline()),
        ]
        .into_iter()
        .flatten()
        .min();
        if let Some(d) = d {
            let d = d.max(self.now);
            if self.nodes[i].armed != Some(d) {
                self.nodes[i].armed = Some(d);
                self.at(d, Ev::Tick { node: i });
            }
        }
    }

    /// After an input: carry out the sync's actions, then re-arm.
    fn after(&mut self, i: usize) {
        self.maybe_begin_sync(i);
        self.pump_sync(i);
        self.arm(i);
    }

    // ---- connections ----

    fn dial(&mut self, i: usize, p: PeerAddr) {
        self.dials += 1;
        let id = self.new_stream();
        let life = self.nodes[i].life;
        let fail = |reason, peer, addr| Ev::DialFailed {
            node: i,
            life,
            id,
            peer,
            addr,
            reason,
        };
        let target = self
            .by_addr
            .get(&p.addr)
            .copied()
            .filter(|j| self.nodes[*j].online && self.ports[*j].group == self.ports[i].group);
        let Some(j) = target else {
            let at = self.now + self.cfg.streams.connect_timeout;
            self.at(at, fail(CloseReason::ConnectTimeout, p.peer, p.addr));
            return;
        };
        let lat = link::draw_latency(&self.cfg.link, &mut self.rng);
        let rtt = lat * 2;
        if self.nodes[j].peer_id != p.peer {
            let got = self.nodes[j].peer_id;
            let at = self.now + rtt;
            self.at(
                at,
                fail(
                    CloseReason::PeerIdMismatch {
                        expected: p.peer,
                        got,
                    },
                    p.peer,
                    p.addr,
                ),
            );
            return;
        }
        // The listener's slots: inbound streams in all and per address.
        let my_ip = self.nodes[i].addr.ip();
        let (inbound, same_ip) = self.nodes[j].cores.as_ref().map_or((0, 0), |c| {
            c.ends
                .iter()
                .filter_map(|e| self.ends.get(e))
                .filter(|e| e.info.inbound)
                .fold((0, 0), |(n, s), e| {
                    (n + 1, s + usize::from(e.info.addr.ip() == my_ip))
                })
        });
        let per_ip = self.cfg.streams_per_ip;
        if inbound >= self.cfg.max_inbound || (per_ip > 0 && same_ip >= per_ip) {
            let at = self.now + rtt;
            self.at(at, fail(CloseReason::PeerClosed, p.peer, p.addr));
            return;
        }
        let theirs = self.new_stream();
        let now = self.now;
        let info = |id, peer: &SimNode, inbound| StreamInfo {
            id,
            peer_id: peer.peer_id,
            addr: peer.addr,
            protocol: self.cfg.protocol.clone(),
            inbound,
        };
        let mine_info = info(id, &self.nodes[j], false);
        let theirs_info = info(theirs, &self.nodes[i], true);
        self.ends.insert(
            id,
            End {
                node: i,
                remote: j,
                remote_end: theirs,
                latency: lat,
                last: now,
                info: mine_info,
                up: false,
            },
        );
        self.ends.insert(
            theirs,
            End {
                node: j,
                remote: i,
                remote_end: id,
                latency: lat,
                last: now,
                info: theirs_info,
                up: false,
            },
        );
        let lj = self.nodes[j].life;
        self.at(
            now + lat * 2,
            Ev::Up {
                node: j,
                life: lj,
                end: theirs,
            },
        );
        self.at(
            now + lat * 3,
            Ev::Up {
                node: i,
                life,
                end: id,
            },
        );
    }

    /// Closes node `i`'s end `stream` now; the other end hears of it one
    /// latency later.
    fn close(&mut self, i: usize, stream: StreamId, reason: Option<RemovalReason>) {
        let Some(e) = self.ends.remove(&stream) else {
            return;
        };
        let life = self.nodes[i].life;
        let why = reason.map_or("housekeeping", RemovalReason::label);
        self.at(
            self.now,
            Ev::Down {
                node: i,
                life,
                end: stream,
                info: e.info.clone(),
                up: e.up,
                reason: CloseReason::Local(why.into()),
            },
        );
        if let Some(r) = self.ends.get(&e.remote_end) {
            let remote_reason = match reason {
                None => CloseReason::PeerGoingAway(why.into()),
                Some(_) => CloseReason::PeerClosed,
            };
            let ev = Ev::Down {
                node: r.node,
                life: self.nodes[r.node].life,
                end: e.remote_end,
                info: r.info.clone(),
                up: r.up,
                reason: remote_reason,
            };
            let at = self.now + e.latency;
            self.at(at, ev);
        }
    }

    /// Sends `msg` from end `stream`, delayed by `hold` before it leaves.
    fn send(&mut self, stream: StreamId, msg: Msg, bytes: usize, hold: Duration) {
        let Some(e) = self.ends.get(&stream) else {
            return;
        };
        let (i, j, lat, r) = (e.node, e.remote, e.latency, e.remote_end);
        if self.ports[i].group != self.ports[j].group {
            return; // lost in the partition
        }
        let mut last = e.last;
        let (mut from, mut to) = (self.ports[i], self.ports[j]);
        let at = link::arrival(
            &self.cfg.link,
            &mut self.rng,
            self.now + hold,
            bytes,
            lat,
            &mut from,
            &mut to,
            &mut last,
        );
        self.ports[i].up_free = from.up_free;
        self.ports[j].down_free = to.down_free;
        if let Some(e) = self.ends.get_mut(&stream) {
            e.last = last;
        }
        self.at(at, Ev::Deliver { end: r, msg });
    }

    // ---- the server ----

    fn serve(&mut self, j: usize, end: StreamId, id: RequestId, req: Request) {
        let now = self.now;
        let role = self.nodes[j].role;
        if role == Role::Byzantine(Byzantine::Serves(Behaviour::Silence)) {
            return;
        }
        let Some(c) = self.nodes[j].cores.as_mut() else {
            return;
        };
        let response = match c.limiter.check(end, now) {
            Decision::Violation => {
                c.limiter.forget(end);
                self.close(j, end, Some(RemovalReason::RateLimitViolation));
                let a = self.nodes[j]
                    .cores
                    .as_mut()
                    .map(|c| {
                        c.sm.remove_stream(end, RemovalReason::RateLimitViolation, now)
                    })
                    .unwrap_or_default();
                self.sm_actions(j, a);
                return;
            }
            Decision::Limited(wait) => Response::Error {
                code: ErrorCode::RateLimited,
                retry_after_ms: wait.as_micros().div_ceil(1000).max(1) as u64,
                message: "rate limited".into(),
            },
            Decision::Allow => match (&req, role) {
                (Request::GetPeers(max), _) => Response::Peers(self.peer_records(j, *max as usize)),
                (
                    Request::GetBlockHashes(n) | Request::GetBlocksByNumber(n),
                    Role::Byzantine(Byzantine::Withholding),
                ) => match req {
                    Request::GetBlockHashes(_) => Response::BlockHashes(vec![None; n.len()]),
                    _ => Response::Blocks(vec![None; n.len()]),
                },
                (Request::GetBlocksByHashes(h), Role::Byzantine(Byzantine::Withholding)) => {
                    Response::Blocks(vec![None; h.len()])
                }
                _ => crate::server::answer(
                    self.nodes[j].backend.as_ref(),
                    &req,
                    SOFT_RESPONSE_BYTES,
                    &|_| Vec::new(),
                ),
            },
        };
        let blocks = match &response {
            Response::Blocks(bs) => bs.iter().flatten().count(),
            Response::EpochState(Some(_)) => 1,
            _ => 0,
        };
        let msg = Message::Response(id, response);
        let bytes = msg.encode().len();
        let Message::Response(id, response) = msg else {
            return;
        };
        let n = &mut self.nodes[j];
        if let Some(c) = n.cores.as_mut() {
            c.limiter.charge_served(end, bytes, blocks, now);
        }
        n.stats.served += 1;
        n.stats.served_bytes += bytes as u64;
        if matches!(
            req,
            Request::GetBlocksByNumber(_) | Request::GetBlocksByHashes(_)
        ) {
            n.stats.served_block_requests += 1;
        }
        let hold = if role == Role::Byzantine(Byzantine::SlowDrip) {
            node::SLOW_DRIP_HOLD
        } else {
            Duration::ZERO
        };
        self.send(end, Msg::Resp(id, response), bytes, hold);
    }

    /// What node `j` answers to `GetPeers`: its own record, then those of
    /// a random sample of the peers it has active streams to, as
    /// `PeerBook::records_to_share` (a byzantine node names only its
    /// accomplices).
    fn peer_records(&mut self, j: usize, max: usize) -> Vec<Bytes> {
        let max = max.min(MAX_PEERS_PER_RESPONSE);
        let n = &self.nodes[j];
        let mut out = vec![n.record.clone()];
        if !n.honest() {
            out.extend(
                self.byzantine_records
                    .iter()
                    .filter(|r| **r != n.record)
                    .cloned(),
            );
        } else if let Some(c) = n.cores.as_ref() {
            let mut peers: Vec<usize> = c
                .active
                .values()
                .filter_map(|i| self.by_peer.get(&i.peer_id).copied())
                .collect();
            let chosen = random_prefix(&mut peers, max.saturating_sub(1), &mut self.rng);
            out.extend(chosen.iter().map(|k| self.nodes[*k].record.clone()));
        }
        out.truncate(max);
        out
    }

    // ---- the cores' actions ----

    fn sm_actions(&mut self, i: usize, actions: Vec<SmAction>) {
        let now = self.now;
        for a in actions {
            match a {
                SmAction::Dial(p) => self.dial(i, p),
                SmAction::Close { stream, reason } => {
                    if let Some(reason) = reason {
                        let peer = self.ends.get(&stream).map(|e| e.remote);
                        if let Some(k) = peer {
                            self.nodes[i].stats.removed.entry(k).or_insert(reason);
                        }
                    }
                    self.close(i, stream, reason);
                }
                SmAction::Discover { count } => {
                    // The boot list in a random order, as `StaticPeers` answers
                    // (one more: a boot node finds itself on the list).
                    let me = self.nodes[i].peer_id;
                    let mut boot = self.boot.clone();
                    let found: Vec<PeerAddr> = random_prefix(&mut boot, count + 1, &mut self.rng)
                        .iter()
                        .map(|b| PeerAddr {
                            peer: self.nodes[*b].peer_id,
                            addr: self.nodes[*b].addr,
                        })
                        .filter(|p| p.peer != me)
                        .take(count)
                        .collect();
                    let ask: Vec<StreamId> = self.nodes[i]
                        .cores
                        .as_ref()
                        .map(|c| c.active.keys().take(PX_FANOUT).copied().collect())
                        .unwrap_or_default();
                    for s in ask {
                        self.ask_peers(i, s);
                    }
                    self.with_sm(i, |sm| sm.on_discovered(found, now));
                }
                SmAction::Activated(info) => {
                    let id = info.id;
                    let mut out = Vec::new();
                    if let Some(c) = self.nodes[i].cores.as_mut() {
                        c.active.insert(id, info);
                        c.rm.on_stream_added(id, now, &mut out);
                        Self::streams_changed(c, now);
                    }
                    self.rm_actions(i, out);
                    self.ask_peers(i, id);
                    self.maybe_begin_sync(i);
                }
                SmAction::Deactivated(id) => {
                    let mut out = Vec::new();
                    if let Some(c) = self.nodes[i].cores.as_mut() {
                        c.active.remove(&id);
                        c.rm.on_stream_removed(id, now, &mut out);
                        Self::streams_changed(c, now);
                    }
                    self.rm_actions(i, out);
                }
            }
        }
    }

    fn streams_changed(c: &mut Cores, now: Instant) {
        if let Some(m) = c.sync.as_mut() {
            let infos: Vec<StreamInfo> = c.active.values().cloned().collect();
            m.handle_streams(&infos, now);
        }
    }

    fn ask_peers(&mut self, i: usize, stream: StreamId) {
        let now = self.now;
        let mut out = Vec::new();
        if let Some(c) = self.nodes[i].cores.as_mut() {
            let opts = RequestOptions {
                priority: Priority::Low,
                whitelist: Some(vec![stream]),
                blacklist: vec![],
                timeout: Some(PX_TIMEOUT),
            };
            let req = Request::GetPeers(MAX_PEERS_PER_RESPONSE as u32);
            if let Ok(t) = c.rm.submit(req, opts, now, &mut out) {
                c.tickets.insert(t, Owner::PeerExchange);
            }
        }
        self.rm_actions(i, out);
    }

    fn rm_actions(&mut self, i: usize, out: Vec<RmAction>) {
        let now = self.now;
        for a in out {
            match a {
                RmAction::Send {
                    stream,
                    id,
                    request,
                } => {
                    self.log_request(i, &request);
                    let bytes = Message::Request(id, request.clone()).encode().len();
                    self.send(stream, Msg::Req(id, request), bytes, Duration::ZERO);
                }
                RmAction::Deliver { ticket, result } => {
                    let Some(c) = self.nodes[i].cores.as_mut() else {
                        continue;
                    };
                    match c.tickets.remove(&ticket) {
                        Some(Owner::Sync(id)) => {
                            c.sync_tickets.remove(&id);
                            if let Some(m) = c.sync.as_mut() {
                                m.handle_response(id, result, now);
                            }
                        }
                        Some(Owner::PeerExchange) => self.on_peers(i, result),
                        None => {}
                    }
                }
                RmAction::Misbehaved { stream } => {
                    self.remove(i, stream, RemovalReason::InvalidResponse);
                }
                RmAction::Unresponsive { stream } => {
                    self.remove(i, stream, RemovalReason::ConnectionFailure);
                }
            }
        }
    }

    /// Notes `request`, sent by node `i`, in its log (if it keeps one).
    fn log_request(&mut self, i: usize, request: &Request) {
        let Some(log) = self.nodes[i].stats.log.as_mut() else {
            return;
        };
        let count = |m: &mut BTreeMap<u64, u32>, n: u64| *m.entry(n).or_default() += 1;
        match request {
            Request::GetBlockNumber => log.heights_asked += 1,
            Request::GetBlockHashes(ns) => ns.iter().for_each(|n| count(&mut log.hashes_asked, *n)),
            Request::GetBlocksByNumber(ns) => {
                ns.iter().for_each(|n| count(&mut log.blocks_asked, *n))
            }
            Request::GetBlocksByHashes(hs) => {
                for h in hs {
                    match self.source.number_by_hash(h).ok().flatten() {
                        Some(n) => count(&mut log.blocks_asked, n),
                        None => log.unknown_hashes_asked += 1,
                    }
                }
            }
            Request::GetEpochState(e) => count(&mut log.epochs_asked, *e),
            Request::GetPeers(_) => {}
        }
    }

    fn remove(&mut self, i: usize, stream: StreamId, reason: RemovalReason) {
        let now = self.now;
        self.with_sm(i, |sm| sm.remove_stream(stream, reason, now));
    }

    /// Feeds node `i`'s stream manager (if it is up) and carries out what
    /// it decides.
    fn with_sm(&mut self, i: usize, f: impl FnOnce(&mut StreamManager) -> Vec<SmAction>) {
        let a = self.nodes[i]
            .cores
            .as_mut()
            .map(|c| f(&mut c.sm))
            .unwrap_or_default();
        self.sm_actions(i, a);
    }

    /// A peer-exchange answer, checked as the host checks it: the first
    /// record must be the answering peer's own; forged records are a
    /// critical fault.
    fn on_peers(&mut self, i: usize, result: Result<(Response, StreamId), RequestError>) {
        let Ok((Response::Peers(records), from)) = result else {
            return;
        };
        let Some(peer) = self.ends.get(&from).map(|e| e.info.peer_id) else {
            return;
        };
        let me = self.nodes[i].peer_id;
        let mut learned = Vec::new();
        let mut forged = false;
        for (k, r) in records.iter().enumerate() {
            match self.memo.record(r, &self.cfg.protocol) {
                Some(p) if k == 0 && p.peer != peer => forged = true,
                Some(p) if p.peer == me => {}
                Some(p) => learned.push(p),
                None => forged = true,
            }
        }
        let now = self.now;
        self.with_sm(i, |sm| sm.on_peers_learned(learned, Some(peer), now));
        if forged {
            self.remove(i, from, RemovalReason::CriticalError);
        }
    }

    /// Carries out node `i`'s sync machine's actions until it has none.
    fn pump_sync(&mut self, i: usize) {
        let now = self.now;
        let life = self.nodes[i].life;
        loop {
            let Some(a) = self.sync_of(i).and_then(|m| m.poll_action()) else {
                break;
            };
            match a {
                Action::Submit {
                    id,
                    request,
                    stream,
                    priority,
                    timeout,
                } => {
                    if let Some(k) = self.ends.get(&stream).map(|e| e.remote) {
                        self.nodes[i].stats.met.insert(k);
                    }
                    let mut out = Vec::new();
                    let Some(c) = self.nodes[i].cores.as_mut() else {
                        break;
                    };
                    let opts = RequestOptions {
                        priority,
                        whitelist: Some(vec![stream]),
                        blacklist: vec![],
                        timeout: Some(timeout),
                    };
                    match c.rm.submit(request, opts, now, &mut out) {
                        Ok(t) => {
                            c.tickets.insert(t, Owner::Sync(id));
                            c.sync_tickets.insert(id, t);
                        }
                        Err(e) => {
                            if let Some(m) = c.sync.as_mut() {
                                m.handle_response(id, Err(e), now);
                            }
                        }
                    }
                    self.rm_actions(i, out);
                }
                Action::Cancel { id } => {
                    let mut out = Vec::new();
                    if let Some(c) = self.nodes[i].cores.as_mut() {
                        if let Some(t) = c.sync_tickets.remove(&id) {
                            c.tickets.remove(&t);
                            c.rm.cancel(t, &mut out);
                        }
                    }
                    self.rm_actions(i, out);
                }
                Action::Blame {
                    stream,
                    peer,
                    fault,
                    ..
                } => {
                    let Some(reason) = fault.removal() else {
                        continue;
                    };
                    let k = peer
                        .and_then(|p| self.by_peer.get(&p).copied())
                        .or_else(|| self.ends.get(&stream).map(|e| e.remote));
                    if let Some(k) = k {
                        self.nodes[i].stats.removed.entry(k).or_insert(reason);
                    }
                    self.with_sm(i, |sm| match peer {
                        Some(p) => sm.penalize_peer(p, reason, now),
                        None => sm.remove_stream(stream, reason, now),
                    });
                }
                Action::Verify(job) => {
                    let memo = &mut self.memo;
                    let check = job.run_with(|jobs| memo.check(jobs));
                    let cost = self
                        .cfg
                        .cpu
                        .cost(job.blocks.len(), check.sigs_checked.len());
                    let n = &mut self.nodes[i];
                    n.stats.sigs_checked += check.sigs_checked.len() as u64;
                    if let Some(log) = n.stats.log.as_mut() {
                        for b in &check.sigs_checked {
                            *log.sigs_checked.entry(*b).or_default() += 1;
                        }
                    }
                    n.cpu_free = n.cpu_free.max(now) + cost;
                    let at = n.cpu_free;
                    self.at(
                        at,
                        Ev::Verified {
                            node: i,
                            life,
                            batch: job.batch,
                            check,
                        },
                    );
                }
                Action::Commit(job) => {
                    let number = |b: Option<&SealedBlock>| b.map_or(0, SealedBlock::number);
                    let batch = number(job.blocks.first())..=number(job.blocks.last());
                    if self.crash_here(i, CrashPoint::BetweenVerifyAndCommit, batch.clone())
                        || self.crash_here(i, CrashPoint::DuringMapGrowth, batch.clone())
                    {
                        break;
                    }
                    // The writer's commit: the blocks with their checkpoints
                    // in one transaction, then (staging) their staged copy
                    // dropped.
                    let result = match &self.nodes[i].store {
                        Some(store) => store
                            .insert_verified_batch(&InsertBatch {
                                blocks: job.blocks.clone(),
                                progress: job.progress.clone(),
                            })
                            .map(|_| ())
                            .map_err(|e| CommitError(e.to_string())),
                        None => Err(CommitError("node has no store".into())),
                    };
                    if result.is_ok() {
                        let n = &mut self.nodes[i];
                        n.staging.set_progress(&job.progress);
                        if let Some(log) = n.stats.log.as_mut() {
                            log.committed
                                .extend(job.blocks.iter().map(|b| (b.number(), b.hash)));
                        }
                        if self.crash_here(i, CrashPoint::AfterCommitBeforeUnstage, batch.clone()) {
                            break;
                        }
                        if job.unstage {
                            self.nodes[i].staging.remove(*batch.end(), false);
                        }
                    }
                    self.at(
                        now,
                        Ev::Committed {
                            node: i,
                            life,
                            batch: job.batch,
                            result,
                        },
                    );
                }
                Action::Status(s) => self.nodes[i].status = Some(*s),
                Action::Stage(w) => {
                    self.nodes[i].staging.write(&w);
                    if w.progress.is_empty() {
                        continue;
                    }
                    // The writer reports the checkpoints it persisted.
                    if let Some(m) = self.sync_of(i) {
                        m.handle_staged(&w.progress);
                    }
                    let numbers = w.hashes.iter().map(|(n, _)| *n);
                    let numbers = numbers.chain(w.blocks.iter().map(|(n, _)| *n));
                    let (lo, hi) =
                        numbers.fold((u64::MAX, 0), |(lo, hi), n| (lo.min(n), hi.max(n)));
                    let staged = lo..=hi;
                    let advanced = |stage| w.progress.iter().any(|(s, _)| *s == stage);
                    if (advanced(StageId::BlockHashes)
                        && self.crash_here(i, CrashPoint::AfterStagingHashes, staged.clone()))
                        || (advanced(StageId::BlockBodies)
                            && self.crash_here(i, CrashPoint::AfterStagingBodies, staged))
                    {
                        break;
                    }
                }
                Action::Unstage { number } => self.nodes[i].staging.remove(number, true),
                Action::Stat(_) => {}
            }
        }
        let outcome = self.nodes[i]
            .cores
            .as_ref()
            .and_then(|c| c.sync.as_ref())
            .and_then(|m| m.outcome().cloned());
        if let Some(o) = outcome {
            self.nodes[i].outcome = Some(o);
            if let Some(c) = self.nodes[i].cores.as_mut() {
                c.sync = None;
            }
        }
    }
}

/// The label a failed dial is counted under in [`Sim::dial_failures`].
fn dial_failure_label(reason: &CloseReason) -> &'static str {
    match reason {
        CloseReason::ConnectTimeout => "connect_timeout",
        CloseReason::PeerClosed => "refused",
        CloseReason::PeerIdMismatch { .. } => "peer_id_mismatch",
        _ => "other",
    }
}
