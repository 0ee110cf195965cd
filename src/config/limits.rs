//! This engine's own `[Sync]` keys bounding what remote parties can make a
//! node hold or do (DESIGN.md §15): connection slots, per-IP caps,
//! deadlines, the inbound buffer budget and the server's work limits. Names follow the guide's style; each has a
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
    /// `ServerWorkers`: threads answering requests. Default 2.
    pub server_workers: usize,
    /// `ServerQueue`: decoded requests waiting for a worker, all streams;
    /// past it peers get `rate_limited` (100 ms). Default 4096.
    pub server_queue: usize,
    /// `StreamRequestRate` / `StreamRequestBurst`: requests per second one
    /// stream may send, and at once. Default 500 / 1000.
    pub stream_request_rate: u64,
    /// See `stream_request_rate`.
    pub stream_request_burst: u64,
    /// `StreamByteRate` / `StreamByteBurst`: response bytes per second one
    /// stream is served, and at once. Default 128 MiB / 32 MiB.
    pub stream_byte_rate: u64,
    /// See `stream_byte_rate`.
    pub stream_byte_burst: u64,
    /// `StreamBlockRate` / `StreamBlockBurst`: blocks per second one stream
    /// is served, and at once. Default 50,000 / 100,000.
    pub stream_block_rate: u64,
    /// See `stream_block_rate`.
    pub stream_block_burst: u64,
    /// `GlobalRequestRate` / `GlobalRequestBurst`: requests per second over
    /// all streams, each active stream getting at most an equal share.
    /// Default 5000 / 10000.
    pub global_request_rate: u64,
    /// See `global_request_rate`.
    pub global_request_burst: u64,
    /// `GlobalByteRate` / `GlobalByteBurst`: response bytes per second over
    /// all streams (equal shares). Default 512 MiB / 128 MiB.
    pub global_byte_rate: u64,
    /// See `global_byte_rate`.
    pub global_byte_burst: u64,
    /// `GlobalBlockRate` / `GlobalBlockBurst`: blocks per second over all
    /// streams (equal shares). Default 200,000 / 400,000.
    pub global_block_rate: u64,
    /// See `global_block_rate`.
    pub global_block_burst: u64,
    /// `RateLimitTolerance`: requests a peer may send inside its
    /// `retry_after` before it is disconnected. Default 64.
    pub rate_limit_tolerance: u32,
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
            server_workers: 2,
            server_queue: 4096,
            stream_request_rate: 500,
            stream_request_burst: 1000,
            stream_byte_rate: 128 << 20,
            stream_byte_burst: 32 << 20,
            stream_block_rate: 50_000,
            stream_block_burst: 100_000,
            global_request_rate: 5000,
            global_request_burst: 10_000,
            global_byte_rate: 512 << 20,
            global_byte_burst: 128 << 20,
            global_block_rate: 200_000,
            global_block_burst: 400_000,
            rate_limit_tolerance: 64,
        }
    }
}
