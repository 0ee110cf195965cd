//! The network side of a node: the `net` thread, the server pool, and the
//! `streams` and `requests` driver threads around the two sans-IO managers,
//! with peer exchange.
//!
//! ```text
//!  net events ──► requests thread ──(stream up/down)──► streams thread
//!                 RequestManager     ◄─(activated/      StreamManager
//!                 ▲   │ send            deactivated)    discovery, peer book
//!     submit ─────┘   ▼ NetHandle                       │ dial/close
//!                                                       ▼ NetHandle
//! ```
//!
//! The requests thread owns the network's event channel: responses go to the
//! request manager, stream events are forwarded to the streams thread, which
//! decides which streams are active and tells the request manager.
//! [`Host::shutdown`] (or drop) stops the drivers, then the network thread,
//! then the server, joining each.

pub mod known_peers;
mod peer_book;
mod requests;
mod streams;

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam::channel::{unbounded, Receiver, Sender};
use parking_lot::{Mutex, RwLock};

use peer_book::PeerBook;
use requests::ReqCmd;
pub use requests::{Reply, RequestHandle, RequestResult};
use streams::StreamCmd;

// The server's settings, where the host's settings name them (the server
// itself is internal).
pub use crate::server::{Rate, RateLimits, ServerConfig};

use crate::chain::ChainBackend;
use crate::config::Config;
use crate::crypto::NodeIdentity;
use crate::net::{Net, NetConfig, NetError, NetHandle, StreamId, StreamInfo};
use crate::request::{HealthStats, RmConfig};
use crate::server::Server;
use crate::stream::{DiscoveryState, PeerAddr, RemovalReason, StreamManagerConfig, StreamStats};
use crate::wire::ProtocolId;

/// A source of peers for discovery (boot lists, a DHT the embedder runs, ...).
pub trait DiscoverySource: Send {
    /// Up to `count` peers worth dialling. Called on the streams thread: must
    /// not block for long.
    fn discover(&mut self, count: usize) -> Vec<PeerAddr>;
}

/// A fixed list of peers (boot peers from the config), answered in a
/// random order: with more boot peers than a discovery asks for, every
/// node taking the first ones would make those the whole network's first
/// peers, and so its busiest servers (seen in the simulator).
#[derive(Clone, Debug, Default)]
pub(crate) struct StaticPeers(pub Vec<PeerAddr>);

impl DiscoverySource for StaticPeers {
    fn discover(&mut self, count: usize) -> Vec<PeerAddr> {
        let mut v = self.0.clone();
        crate::stream::sample::random_prefix(&mut v, count, &mut crate::stream::sample::os_seeded())
            .to_vec()
    }
}

/// A change of the active pool, for subscribers (the sync, tests).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamEvent {
    /// A stream joined the active pool.
    Activated(StreamInfo),
    /// A stream left it.
    Deactivated(StreamId),
}

/// Settings of a host.
#[derive(Clone, Debug)]
pub struct HostConfig {
    /// Transport.
    pub net: NetConfig,
    /// Server pool and rate limits.
    pub server: ServerConfig,
    /// Stream manager.
    pub streams: StreamManagerConfig,
    /// Request manager.
    pub requests: RmConfig,
    /// Trusted peers: dialled first, never removed.
    pub trusted: Vec<PeerAddr>,
    /// Boot peers: a discovery source.
    pub boot: Vec<PeerAddr>,
    /// `MaxAdvertiseWaitTime`: our peer record is re-signed at most this often.
    pub advertise_every: Duration,
    /// Addresses put in our peer record (default: the listen address).
    pub advertise_addrs: Option<Vec<SocketAddr>>,
    /// How often the request manager reports stream throughput.
    pub throughput_report: Duration,
    /// Where the peers this node knew are kept across restarts
    /// ([`known_peers`]; the CLI's node uses `<datadir>/known_peers`);
    /// `None`: they are forgotten when it stops.
    pub peers_file: Option<std::path::PathBuf>,
}

impl HostConfig {
    /// A host for `config` listening on `listen`.
    pub fn from_config(config: &Config, listen: SocketAddr, shard: u32) -> Self {
        let l = &config.sync.limits;
        let mut net = NetConfig::new(listen, ProtocolId::sync(config.network, shard));
        net.max_inbound = l.max_inbound_streams;
        net.max_outbound = l.max_outbound_streams;
        net.max_streams_per_ip = l.streams_per_ip;
        net.max_inbound_handshakes = l.max_pending_handshakes;
        net.max_handshakes_per_ip = l.handshakes_per_ip;
        net.handshake_timeout = l.handshake_timeout;
        net.frame_timeout = l.frame_timeout;
        net.write_progress_timeout = l.write_progress_timeout;
        net.read_buffer_budget = l.read_buffer_budget;
        net.request_queue = l.server_queue;
        let rate = |per_sec: u64, burst: u64| Rate {
            per_sec: per_sec as f64,
            burst: burst as f64,
        };
        let server = ServerConfig {
            workers: l.server_workers,
            limits: RateLimits {
                stream_requests: rate(l.stream_request_rate, l.stream_request_burst),
                stream_bytes: rate(l.stream_byte_rate, l.stream_byte_burst),
                stream_blocks: rate(l.stream_block_rate, l.stream_block_burst),
                global_requests: rate(l.global_request_rate, l.global_request_burst),
                global_bytes: rate(l.global_byte_rate, l.global_byte_burst),
                global_blocks: rate(l.global_block_rate, l.global_block_burst),
                violation_tolerance: l.rate_limit_tolerance,
            },
            ..ServerConfig::default()
        };
        HostConfig {
            net,
            server,
            streams: StreamManagerConfig::from_sync(&config.sync),
            requests: RmConfig::default(),
            trusted: Vec::new(),
            boot: Vec::new(),
            advertise_every: Duration::from_secs(config.sync.max_advertise_wait_time * 60),
            advertise_addrs: None,
            throughput_report: Duration::from_secs(10),
            peers_file: None,
        }
    }
}

/// A status snapshot.
#[derive(Clone, Debug)]
pub struct HostStatus {
    /// Active streams.
    pub active: usize,
    /// Active streams that count toward `InitStreams` (streams to boot
    /// peers only once nobody else is coming:
    /// `stream::StreamManager::ready_streams`).
    pub ready: usize,
    /// The active streams themselves.
    pub streams: Vec<StreamInfo>,
    /// Reserve streams.
    pub reserved: usize,
    /// Dials in progress.
    pub setting_up: usize,
    /// Peers in cooldown (the 64 ending first), with the instant their
    /// cooldown ends (the time left is that minus now: the snapshot may be
    /// older than the reader, so an end already past means it is over).
    pub in_cooldown: Vec<(libp2p_identity::PeerId, std::time::Instant)>,
    /// Peers cooling down (all; `in_cooldown` lists the 64 ending first).
    pub cooling: usize,
    /// Discovery state.
    pub discovery: DiscoveryState,
    /// The stream manager's counters and gauges, as published under the
    /// guide's metric names (`discover` is `hmy_stream_discover`, counts
    /// of discoveries started; `discover_peers` is
    /// `hmy_stream_discover_peers`, discovered peers whose stream came up).
    pub stream_stats: StreamStats,
    /// Request manager health.
    pub health: HealthStats,
    /// Peer-exchange records rejected (forged, garbage, other networks).
    pub records_rejected: u64,
    /// Streams ever activated.
    pub streams_used: u64,
    /// Streams ever removed.
    pub streams_removed: u64,
    /// Streams kept only to serve peers that are cooling down.
    pub serve_only: usize,
    /// The latest removals the node decided, oldest first (peer, reason).
    pub recent_removals: Vec<(libp2p_identity::PeerId, RemovalReason)>,
}

impl HostStatus {
    fn empty() -> Self {
        HostStatus {
            active: 0,
            ready: 0,
            streams: vec![],
            reserved: 0,
            setting_up: 0,
            in_cooldown: vec![],
            cooling: 0,
            discovery: DiscoveryState::Idle,
            stream_stats: StreamStats::default(),
            health: HealthStats::default(),
            records_rejected: 0,
            streams_used: 0,
            streams_removed: 0,
            serve_only: 0,
            recent_removals: vec![],
        }
    }
}

/// What the sync needs from the host, for another thread.
#[derive(Clone)]
pub struct HostHandle {
    requests: RequestHandle,
    stream_tx: Sender<StreamCmd>,
    status: Arc<RwLock<Option<HostStatus>>>,
    health: Arc<RwLock<Option<HealthStats>>>,
}

impl std::fmt::Debug for HostHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HostHandle")
    }
}

impl HostHandle {
    /// Submits requests through the request manager.
    pub fn requests(&self) -> &RequestHandle {
        &self.requests
    }

    /// Asks the stream manager to remove a stream (trusted peers are kept).
    pub fn remove_stream(&self, stream: StreamId, reason: RemovalReason) {
        let _ = self.stream_tx.send(StreamCmd::Remove { stream, reason });
    }

    /// Counts a fault against `peer` even if its stream is gone, closing
    /// the stream if it still has one (trusted peers are kept).
    pub fn penalize_peer(&self, peer: libp2p_identity::PeerId, reason: RemovalReason) {
        let _ = self.stream_tx.send(StreamCmd::Penalize { peer, reason });
    }

    /// The latest status snapshot.
    pub fn status(&self) -> HostStatus {
        let mut s = self.status.read().clone().unwrap_or_else(HostStatus::empty);
        if let Some(h) = self.health.read().clone() {
            s.health = h;
        }
        s
    }
}

/// The running network side of a node.
pub struct Host {
    net: Net,
    server: Option<Server>,
    identity: NodeIdentity,
    stream_tx: Sender<StreamCmd>,
    req_tx: Sender<ReqCmd>,
    streams_thread: Option<JoinHandle<()>>,
    requests_thread: Option<JoinHandle<()>>,
    subscribers: Arc<Mutex<Vec<Sender<StreamEvent>>>>,
    status: Arc<RwLock<Option<HostStatus>>>,
    health: Arc<RwLock<Option<HealthStats>>>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("peer_id", &self.identity.peer_id())
            .finish()
    }
}

impl Host {
    /// Starts the network thread, the server over `backend`, and the two
    /// manager threads; `sources` are extra discovery sources.
    pub fn start(
        cfg: HostConfig,
        identity: NodeIdentity,
        backend: Arc<dyn ChainBackend>,
        sources: Vec<Box<dyn DiscoverySource>>,
    ) -> Result<Host, NetError> {
        let net = Net::start(cfg.net.clone(), &identity)?;
        let handle = net.handle();
        let addrs = cfg
            .advertise_addrs
            .clone()
            .unwrap_or_else(|| vec![handle.local_addr()]);
        let book = Arc::new(RwLock::new(PeerBook::new(
            &identity,
            cfg.net.protocol.clone(),
            addrs,
        )));
        let peers_source = {
            let book = book.clone();
            Arc::new(move |max: usize| book.read().records_to_share(max))
        };
        let server = Server::start(
            cfg.server,
            backend,
            handle.clone(),
            net.requests().clone(),
            peers_source,
        )?;
        let (stream_tx, stream_rx) = unbounded();
        let (req_tx, req_rx) = unbounded();
        let subscribers: Arc<Mutex<Vec<Sender<StreamEvent>>>> = Arc::default();
        let status = Arc::new(RwLock::new(None));
        let health = Arc::new(RwLock::new(None));
        let requests = RequestHandle::new(req_tx.clone());
        let mut all_sources: Vec<Box<dyn DiscoverySource>> =
            vec![Box::new(StaticPeers(cfg.boot.clone()))];
        all_sources.extend(sources);
        let streams_thread = streams::spawn(streams::StreamsDriver::new(
            &cfg,
            &identity,
            handle.clone(),
            stream_rx,
            stream_tx.clone(),
            req_tx.clone(),
            requests.clone(),
            all_sources,
            book,
            subscribers.clone(),
            status.clone(),
            health.clone(),
        ))?;
        let requests_thread = requests::spawn(
            cfg.requests,
            cfg.throughput_report,
            handle,
            net.events().clone(),
            req_rx,
            stream_tx.clone(),
            health.clone(),
        )?;
        Ok(Host {
            net,
            server: Some(server),
            identity,
            stream_tx,
            req_tx,
            streams_thread: Some(streams_thread),
            requests_thread: Some(requests_thread),
            subscribers,
            status,
            health,
        })
    }

    /// A cloneable handle for other threads (the sync).
    pub fn handle(&self) -> HostHandle {
        HostHandle {
            requests: self.requests(),
            stream_tx: self.stream_tx.clone(),
            status: self.status.clone(),
            health: self.health.clone(),
        }
    }

    /// Submits requests through the request manager.
    pub fn requests(&self) -> RequestHandle {
        RequestHandle::new(self.req_tx.clone())
    }

    /// The network handle.
    pub fn net(&self) -> NetHandle {
        self.net.handle()
    }

    /// This node's identity.
    pub fn identity(&self) -> &NodeIdentity {
        &self.identity
    }

    /// Our dialable address.
    pub fn peer_addr(&self) -> PeerAddr {
        PeerAddr {
            peer: self.identity.peer_id(),
            addr: self.net.handle().local_addr(),
        }
    }

    /// Asks the stream manager to remove a stream (trusted peers are kept).
    pub fn remove_stream(&self, stream: StreamId, reason: RemovalReason) {
        let _ = self.stream_tx.send(StreamCmd::Remove { stream, reason });
    }

    /// Active-pool changes from now on. The current pool is replayed first
    /// as `Activated` events.
    pub fn subscribe(&self) -> Receiver<StreamEvent> {
        let (tx, rx) = unbounded();
        let _ = self.stream_tx.send(StreamCmd::Subscribe(tx));
        rx
    }

    /// The latest status snapshot (refreshed after every stream-manager step).
    pub fn status(&self) -> HostStatus {
        let mut s = self.status.read().clone().unwrap_or_else(HostStatus::empty);
        if let Some(h) = self.health.read().clone() {
            s.health = h;
        }
        s
    }

    /// Blocks the server has sent to peers since the node started.
    pub fn blocks_served(&self) -> u64 {
        self.server.as_ref().map_or(0, Server::blocks_served)
    }

    /// Stops everything and joins every thread.
    pub fn shutdown(&mut self) {
        let _ = self.stream_tx.send(StreamCmd::Shutdown);
        let _ = self.req_tx.send(ReqCmd::Shutdown);
        if let Some(t) = self.streams_thread.take() {
            let _ = t.join();
        }
        if let Some(t) = self.requests_thread.take() {
            let _ = t.join();
        }
        self.net.shutdown();
        if let Some(s) = self.server.take() {
            s.join();
        }
        self.subscribers.lock().clear();
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_peers_are_offered_in_a_random_order_so_every_one_is_used() {
        let boot: Vec<PeerAddr> = (0..10u16)
            .map(|i| PeerAddr {
                peer: libp2p_identity::PeerId::random(),
                addr: std::net::SocketAddr::from(([127, 0, 0, 1], 20_000 + i)),
            })
            .collect();
        let mut src = StaticPeers(boot.clone());
        let mut named = std::collections::HashSet::new();
        for _ in 0..200 {
            let got = src.discover(3);
            assert_eq!(got.len(), 3);
            named.extend(got);
        }
        // Taking the first three every time would name 3 of the 10; a
        // random order misses a given one with probability 0.7^200.
        assert_eq!(named, boot.into_iter().collect());
    }
}
