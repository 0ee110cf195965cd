//! A running node: the host (network, server, stream and request managers)
//! and, when the client is on, the sync thread running the pipeline.
//!
//! ```no_run
//! use std::sync::Arc;
//! use streamsync::chain::GenesisSpec;
//! use streamsync::config::{Config, Network};
//! use streamsync::crypto::NodeIdentity;
//! use streamsync::node::{Node, NodeConfig};
//! use streamsync::store::{LmdbStaging, Store, StoreOptions};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let genesis = GenesisSpec { seed: 1, network: "localnet".into(), shard_id: 0,
//!                             epoch_len: 1000, committee_size: 64, accounts: 256 }.build()?;
//! let store = Arc::new(Store::open_or_create("/tmp/node".as_ref(), &genesis, StoreOptions::default())?);
//! let mut config = Config::for_network(Network::Localnet);
//! config.sync.client = true;
//! let mut cfg = NodeConfig::new(config, "127.0.0.1:0".parse()?);
//! cfg.boot = vec![]; // PeerAddr of a boot node here
//! let staging = LmdbStaging::new(store.clone()); // UseMemDB = false: staging in its datadir
//! let node = Node::start(cfg, store, NodeIdentity::generate(), Some(staging))?;
//! println!("{:?}", node.status().sync);
//! node.trigger(); // consensus saw a new block: sync now
//! node.shutdown();
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam::channel::{bounded, RecvTimeoutError, Sender};
use parking_lot::RwLock;

use crate::chain::{BlockWithSig, ChainBackend, SealedBlock};
use crate::config::Config;
use crate::crypto::NodeIdentity;
use crate::net::NetError;
#[cfg(feature = "testkit")]
use crate::runtime::HostHandle;
use crate::runtime::{DiscoverySource, Host, HostConfig, HostStatus};
use crate::store::LmdbStaging;
use crate::stream::PeerAddr;
pub use crate::sync::beacon::OfferError;
use crate::sync::{SyncOutcome, SyncSettings, SyncStatus, SyncThread};

/// What a node is started with.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// The effective configuration (`[Sync]`).
    pub config: Config,
    /// Listen address.
    pub listen: SocketAddr,
    /// Shard id.
    pub shard: u32,
    /// Boot peers (a discovery source).
    pub boot: Vec<PeerAddr>,
    /// Trusted peers (dialled first, never removed).
    pub trusted: Vec<PeerAddr>,
    /// Stop the sync thread once synced (the CLI's `--exit-when-synced`).
    pub exit_when_synced: bool,
    /// Engine tuning beyond the config file (tests, benchmarks).
    pub sync: Option<SyncSettings>,
    /// Host tuning beyond the config file.
    pub host: Option<HostConfig>,
}

impl NodeConfig {
    /// A node for `config` listening on `listen`, shard 0, no peers.
    pub fn new(config: Config, listen: SocketAddr) -> Self {
        NodeConfig {
            config,
            listen,
            shard: 0,
            boot: vec![],
            trusted: vec![],
            exit_when_synced: false,
            sync: None,
            host: None,
        }
    }
}

/// How a sync thread that died is reported.
const SYNC_THREAD_PANICKED: &str = "the sync thread panicked";

/// How long [`Node::shutdown`] waits in all for the node's threads to stop:
/// 10 s. The sync thread gets the first three quarters, the host's threads
/// (streams, requests, net, server) what is left. A thread still running
/// then is named in a warning and left behind: it ends with the process.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);

/// Offered blocks ([`Node::offer_block`]) that may wait for the sync
/// thread to take them; the sync buffers up to
/// [`crate::sync::beacon::MAX_OFFERED`] more ahead of its head.
pub const OFFER_QUEUE: usize = 64;

/// What [`Node::shutdown_within`] reports.
#[derive(Clone, Debug)]
pub struct Shutdown {
    /// How the sync ended: `None` without `Client`, or if the sync thread
    /// had not ended by the deadline.
    pub outcome: Option<SyncOutcome>,
    /// What had not stopped by the deadline: `"sync"` (the sync thread)
    /// and/or `"host"` (the host's threads). Empty on a clean stop.
    pub not_stopped: Vec<&'static str>,
}

/// A node's status (what the CLI's `/status` shows, under the guide's
/// health indicator names).
#[derive(Clone, Debug)]
pub struct NodeStatus {
    /// The sync pipeline: stage, head and target (block numbers), blocks/s
    /// overall ([`SyncStatus::blocks_per_sec`]) and per stream
    /// ([`SyncStatus::stream_blocks`]: committed blocks each stream served,
    /// and blocks/s).
    pub sync: SyncStatus,
    /// Streams (active, reserved), cooldowns with their ends
    /// ([`HostStatus::in_cooldown`]), discovery counts
    /// ([`HostStatus::stream_stats`]), and the request manager's health
    /// with failures per stream ([`HostStatus::health`]).
    pub host: HostStatus,
}

impl NodeStatus {
    /// The guide's "Peer Connections" (connected neighbours): open streams,
    /// one per peer, whether active, in reserve, or kept only to serve a
    /// peer that is cooling down; dials in progress are not counted.
    pub fn peer_connections(&self) -> usize {
        self.host.active + self.host.reserved + self.host.serve_only
    }

    /// Sync progress, percent (0–100) of the target height reached: `None`
    /// while no target is decided (0).
    pub fn progress_percent(&self) -> Option<f64> {
        let (head, target) = (self.sync.head, self.sync.target);
        (target > 0).then(|| (head.min(target) as f64 / target as f64) * 100.0)
    }
}

/// A running node. [`Node::shutdown`] (or drop) stops and joins every
/// thread; `shutdown` waits at most [`SHUTDOWN_DEADLINE`].
pub struct Node {
    host: Host,
    sync: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    trigger: Sender<()>,
    offer: Sender<SealedBlock>,
    status: Arc<RwLock<SyncStatus>>,
    started: Instant,
    sync_done: crossbeam::channel::Receiver<()>,
    outcome: Arc<parking_lot::Mutex<Option<SyncOutcome>>>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("host", &self.host).finish()
    }
}

/// Starting a node failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The network could not start.
    #[error("{0}")]
    Net(#[from] NetError),
    /// A thread could not start.
    #[error("cannot start the sync thread: {0}")]
    Thread(#[from] std::io::Error),
}

impl Node {
    /// Starts a node serving `backend`; with `Client` on, also the sync.
    /// `staging` holds what the sync downloaded ahead of the head when
    /// `UseMemDB` is off, so a restart does not download it again: the
    /// project's [`Store`](crate::Store)'s own tables
    /// ([`LmdbStaging::new`]) or a directory of its own beside any backend
    /// ([`LmdbStaging::open`]). `None` keeps it in memory.
    pub fn start(
        cfg: NodeConfig,
        backend: Arc<dyn ChainBackend>,
        identity: NodeIdentity,
        staging: Option<LmdbStaging>,
    ) -> Result<Node, NodeError> {
        Self::start_with_sources(cfg, backend, identity, staging, vec![])
    }

    /// Like [`Node::start`] with extra discovery sources.
    pub fn start_with_sources(
        cfg: NodeConfig,
        backend: Arc<dyn ChainBackend>,
        identity: NodeIdentity,
        staging: Option<LmdbStaging>,
        sources: Vec<Box<dyn DiscoverySource>>,
    ) -> Result<Node, NodeError> {
        let mut host_cfg = cfg
            .host
            .clone()
            .unwrap_or_else(|| HostConfig::from_config(&cfg.config, cfg.listen, cfg.shard));
        host_cfg.boot.extend(cfg.boot.iter().copied());
        host_cfg.trusted.extend(cfg.trusted.iter().copied());
        let entry: Vec<_> = host_cfg.boot.iter().map(|p| p.peer).collect();
        let host = Host::start(host_cfg, identity, backend.clone(), sources)?;
        let stop = Arc::new(AtomicBool::new(false));
        let (trigger, triggers) = bounded(1);
        let (offer, offers) = bounded::<SealedBlock>(OFFER_QUEUE);
        let status = Arc::new(RwLock::new(SyncStatus {
            head: backend.head().map(|h| h.number).unwrap_or(0),
            ..SyncStatus::default()
        }));
        let (done_tx, sync_done) = bounded::<()>(1);
        let outcome: Arc<parking_lot::Mutex<Option<SyncOutcome>>> = Arc::default();
        let sync = if cfg.config.sync.client {
            let settings = cfg
                .sync
                .clone()
                .unwrap_or_else(|| SyncSettings::from_sync(&cfg.config.sync));
            status.write().staging = if settings.staged.use_mem_db || staging.is_none() {
                "memory"
            } else {
                "lmdb"
            };
            let thread = SyncThread {
                backend,
                host: host.handle(),
                settings,
                staging,
                entry,
                status: status.clone(),
                stop: stop.clone(),
            };
            let exit = cfg.exit_when_synced;
            let slot = outcome.clone();
            Some(
                std::thread::Builder::new()
                    .name("sync".into())
                    .spawn(move || {
                        // Signals the end even if the pipeline panics.
                        struct Done(crossbeam::channel::Sender<()>);
                        impl Drop for Done {
                            fn drop(&mut self) {
                                let _ = self.0.send(());
                            }
                        }
                        let _done = Done(done_tx);
                        let end = thread.run(&triggers, &offers, exit);
                        *slot.lock() = Some(end);
                    })?,
            )
        } else {
            None
        };
        Ok(Node {
            host,
            sync,
            stop,
            trigger,
            offer,
            status,
            started: Instant::now(),
            sync_done,
            outcome,
        })
    }

    /// Stage, head, target, blocks/s, streams, discovery, health.
    pub fn status(&self) -> NodeStatus {
        NodeStatus {
            sync: self.status.read().clone(),
            host: self.host.status(),
        }
    }

    /// The host side (streams, requests): tests and the simulator drive
    /// it; an embedder reads [`Node::status`].
    #[cfg(feature = "testkit")]
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// A handle to the host for other threads (test support).
    #[cfg(feature = "testkit")]
    pub fn host_handle(&self) -> HostHandle {
        self.host.handle()
    }

    /// Blocks this node's server has sent peers since it started.
    pub fn blocks_served(&self) -> u64 {
        self.host.blocks_served()
    }

    /// Our dialable address.
    pub fn peer_addr(&self) -> PeerAddr {
        self.host.peer_addr()
    }

    /// Consensus saw a new block: run a sync cycle now.
    pub fn trigger(&self) {
        let _ = self.trigger.try_send(());
    }

    /// Hands the sync a block the host node got from consensus or gossip
    /// (Harmony's beacon helper). It is verified against the committee
    /// the chain of hand-overs established, every commit signature
    /// checked, and committed in order once the blocks below it are in
    /// (downloaded from peers if there is a gap); committed ones count in
    /// `hmy_staged_stream_sync_num_blocks_inserted_beacon_helper`. `Ok`
    /// means queued, not yet verified: a forged block is dropped later
    /// without blaming any peer (see `sync::beacon`). Never blocks.
    ///
    /// Errors: [`OfferError::Stale`] at or below the head,
    /// [`OfferError::Full`] when [`OFFER_QUEUE`] blocks are waiting for the
    /// sync thread, [`OfferError::NotSyncing`] without a running sync.
    pub fn offer_block(&self, block: BlockWithSig) -> Result<(), OfferError> {
        let block = SealedBlock::seal(block);
        let head = self.status.read().head;
        let number = block.number();
        if number <= head {
            return Err(OfferError::Stale { number, head });
        }
        if self.sync_finished() {
            return Err(OfferError::NotSyncing);
        }
        self.offer.try_send(block).map_err(|e| match e {
            crossbeam::channel::TrySendError::Full(_) => OfferError::Full,
            crossbeam::channel::TrySendError::Disconnected(_) => OfferError::NotSyncing,
        })
    }

    /// Whether the sync thread has finished (with `exit_when_synced`).
    pub fn sync_finished(&self) -> bool {
        self.sync.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Waits for the sync thread to end (it ends once synced with
    /// `exit_when_synced`, on shutdown, or if it fails).
    pub fn join_sync(&mut self) {
        if let Some(t) = self.sync.take() {
            if t.join().is_err() {
                *self.outcome.lock() = Some(SyncOutcome::Failed(SYNC_THREAD_PANICKED.into()));
            }
        }
    }

    /// How the sync ended: `None` while it runs, or without `Client`. A
    /// sync thread that died is [`SyncOutcome::Failed`].
    pub fn sync_outcome(&self) -> Option<SyncOutcome> {
        if let Some(o) = self.outcome.lock().clone() {
            return Some(o);
        }
        match &self.sync {
            Some(t) if t.is_finished() => Some(SyncOutcome::Failed(SYNC_THREAD_PANICKED.into())),
            _ => None,
        }
    }

    /// Waits at most `limit` for the sync thread to end; true if it did.
    pub fn wait_sync(&mut self, limit: std::time::Duration) -> bool {
        if self.sync.is_some() && self.sync_done.recv_timeout(limit).is_err() {
            return false;
        }
        self.join_sync();
        true
    }

    /// Time since start.
    pub fn uptime(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    /// Stops the sync, then the host, and joins their threads, waiting at
    /// most [`SHUTDOWN_DEADLINE`] (10 s) in all: a thread that has not
    /// stopped by then is logged and left behind. Returns how the sync
    /// ended (`None` without `Client`, or if it did not stop in time).
    pub fn shutdown(self) -> Option<SyncOutcome> {
        self.shutdown_within(SHUTDOWN_DEADLINE).outcome
    }

    /// [`Node::shutdown`] with a deadline of `limit` instead of
    /// [`SHUTDOWN_DEADLINE`]: the sync thread gets three quarters of it,
    /// the host the rest. Says what did not stop in time.
    pub fn shutdown_within(mut self, limit: Duration) -> Shutdown {
        let start = Instant::now();
        let deadline = start + limit;
        let mut not_stopped = Vec::new();
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.trigger.try_send(());
        if !self.join_sync_by(start + limit * 3 / 4) {
            not_stopped.push("sync");
        }
        let outcome = self.outcome.lock().clone();
        // The host joins its threads itself, without a deadline: let a
        // helper thread own the node and stop it (Drop), and wait for that
        // only until the deadline.
        let (done_tx, done) = bounded::<()>(1);
        let helper = std::thread::Builder::new()
            .name("node-shutdown".into())
            .spawn(move || {
                drop(self);
                let _ = done_tx.send(());
            });
        match helper {
            Ok(_) => match done.recv_deadline(deadline) {
                Ok(()) => {}
                Err(RecvTimeoutError::Timeout) => not_stopped.push("host"),
                Err(RecvTimeoutError::Disconnected) => {
                    tracing::error!("stopping the host panicked");
                }
            },
            // The closure, and the node with it, was dropped on this thread,
            // which stopped the host there.
            Err(e) => tracing::warn!(error = %e, "no helper thread: stopped the host unbounded"),
        }
        if !not_stopped.is_empty() {
            tracing::warn!(
                deadline_s = limit.as_secs_f64(),
                not_stopped = ?not_stopped,
                "node shutdown deadline passed: leaving threads that did not stop behind"
            );
        }
        Shutdown {
            outcome,
            not_stopped,
        }
    }

    /// Joins the sync thread if it ends by `deadline`; false if it is still
    /// running then (its handle is dropped: the thread is left detached).
    fn join_sync_by(&mut self, deadline: Instant) -> bool {
        let Some(t) = self.sync.take() else {
            return true;
        };
        // `sync_done` fires as the thread's closure ends, even by a panic.
        if let Err(RecvTimeoutError::Timeout) = self.sync_done.recv_deadline(deadline) {
            if !t.is_finished() {
                return false;
            }
        }
        if t.join().is_err() {
            *self.outcome.lock() = Some(SyncOutcome::Failed(SYNC_THREAD_PANICKED.into()));
        }
        true
    }

    /// Stops everything; the sync thread is waited for at most
    /// [`SHUTDOWN_DEADLINE`], the host without a deadline
    /// ([`Node::shutdown_within`] bounds that from outside).
    fn stop_all(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.trigger.try_send(());
        if !self.join_sync_by(Instant::now() + SHUTDOWN_DEADLINE) {
            tracing::warn!(
                deadline_s = SHUTDOWN_DEADLINE.as_secs_f64(),
                "the sync thread did not stop in time: leaving it behind"
            );
        }
        self.host.shutdown();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop_all();
    }
}
