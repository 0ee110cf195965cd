//! One simulated node: its real cores and what the simulator records
//! about it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use alloy_rlp::Bytes;
use libp2p_identity::PeerId;

use crate::byzantine::Behaviour;
use crate::chain::ChainBackend;
use crate::net::{StreamId, StreamInfo};
use crate::request::{RequestManager, Ticket};
use crate::server::RateLimiter;
use crate::stream::{RemovalReason, StreamManager};
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
}
