//! This engine's own `[Sync]` keys bounding what remote parties can make a
//! node hold (DESIGN.md §15): connection slots, per-IP caps, deadlines and
//! the inbound buffer budget. Names follow the guide's style; each has a
//! `--sync.*` flag.

use std::time::Duration;

use super::network::Network;

/// Connection and buffer limits (keys directly under `[Sync]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitsConfig {
    /// `MaxInboundStreams`: inbound connections at once, any phase; more
    /// are refused at accept. Default 1024.
    pub max_inbound_streams: usize,
    /// `MaxOutboundStreams`: outbound connections at once; a dial past it
    /// fails. Inbound peers cannot take these slots. Default 256.
    pub max_outbound_streams: usize,
    /// `StreamsPerIP`: open inbound streams from one IP address (0 = no
    /// cap). Default 8; 0 in the localnet preset (every peer is
    /// 127.0.0.1).
    pub streams_per_ip: usize,
    /// `MaxPendingHandshakes`: inbound handshakes in progress at once; a
    /// newcomer evicts the oldest. Default 64.
    pub max_pending_handshakes: usize,
    /// `HandshakesPerIP`: inbound handshakes in progress from one IP
    /// address (0 = no cap); a newcomer evicts that address's oldest.
    /// Default 8 (eviction keeps it safe on one shared IP).
    pub handshakes_per_ip: usize,
    /// `HandshakeTimeout`: limit of a Noise handshake. Default 10 s.
    pub handshake_timeout: Duration,
    /// `FrameTimeout`: limit for a started frame to arrive whole. Default
    /// 30 s.
    pub frame_timeout: Duration,
    /// `WriteProgressTimeout`: how long a peer may take none of our unsent
    /// bytes before it is disconnected. Default 10 s.
    pub write_progress_timeout: Duration,
    /// `ReadBufferBudget`: bytes all connections' receive buffers may hold
    /// together (at least 17 MiB: one maximum frame must fit). Default
    /// 268435456 (256 MiB).
    pub read_buffer_budget: usize,
}

/// Smallest `ReadBufferBudget`: one maximum frame (16 MiB) and a Noise
/// message.
pub const MIN_READ_BUFFER_BUDGET: usize = 17 << 20;

impl LimitsConfig {
    /// The defaults of `network`.
    pub fn for_network(network: Network) -> Self {
        LimitsConfig {
            max_inbound_streams: 1024,
            max_outbound_streams: 256,
            streams_per_ip: if network == Network::Localnet { 0 } else { 8 },
            max_pending_handshakes: 64,
            handshakes_per_ip: 8,
            handshake_timeout: Duration::from_secs(10),
            frame_timeout: Duration::from_secs(30),
            write_progress_timeout: Duration::from_secs(10),
            read_buffer_budget: 256 << 20,
        }
    }
}
