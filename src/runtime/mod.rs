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
//! `Host::shutdown` (or drop) stops the drivers, then the network thread,
//! then the server, joining each.

mod host;
pub mod known_peers;
mod peer_book;
mod requests;
mod streams;

// The running host is the node's internals: an embedder holds a `Node`.
// Tests and the simulator drive it directly.
#[cfg(not(feature = "testkit"))]
pub(crate) use host::{Host, HostHandle, StreamEvent};
#[cfg(feature = "testkit")]
pub use host::{Host, HostHandle, StreamEvent};

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam::channel::{unbounded, Sender};
use parking_lot::{Mutex, RwLock};

use peer_book::PeerBook;
use requests::ReqCmd;
#[cfg(feature = "testkit")]
pub use requests::{Reply, RequestHandle, RequestResult};
#[cfg(not(feature = "testkit"))]
pub(crate) use requests::{RequestHandle, RequestResult};
use streams::StreamCmd;

// The server's settings, where the host's settings name them (the server
// itself is internal).
pub use crate::server::{Rate, RateLimits, ServerConfig};

use crate::chain::ChainBackend;
use crate::config::Config;
use crate::crypto::NodeIdentity;
use crate::net::{Net, NetConfig, NetError, StreamId, StreamInfo};
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
