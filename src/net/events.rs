//! What the network thread reports, and why streams close.

use std::net::SocketAddr;
use std::time::Instant;

use libp2p_identity::PeerId;

use super::session::SessionError;
use crate::wire::{ProtocolId, Request, RequestId, Response, WireError};

/// Id of one stream (one connection), unique for the life of a node.
pub type StreamId = u64;

/// An authenticated stream that completed its handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamInfo {
    /// The stream.
    pub id: StreamId,
    /// The authenticated peer.
    pub peer_id: PeerId,
    /// The peer's socket address.
    pub addr: SocketAddr,
    /// The protocol the peer speaks (matches ours).
    pub protocol: ProtocolId,
    /// Whether the peer dialled us.
    pub inbound: bool,
}

/// Why a stream closed (or never opened).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CloseReason {
    /// The node is shutting down.
    #[error("node shutting down")]
    Shutdown,
    /// Closed locally on purpose (e.g. removed by the stream manager).
    #[error("closed locally: {0}")]
    Local(String),
    /// The peer closed the connection.
    #[error("peer closed the connection")]
    PeerClosed,
    /// The peer announced it was closing on purpose (pools full, duplicate,
    /// shutdown), then closed: not a failure.
    #[error("peer went away on purpose: {0}")]
    PeerGoingAway(String),
    /// A socket error.
    #[error("i/o: {0}")]
    Io(String),
    /// The TCP connect failed.
    #[error("connect failed: {0}")]
    ConnectFailed(String),
    /// The TCP connect did not complete in time.
    #[error("connect timed out")]
    ConnectTimeout,
    /// The handshake did not complete in time (e.g. a peer that says nothing).
    #[error("handshake timed out")]
    HandshakeTimeout,
    /// Noise, handshake payload, protocol mismatch or frame-size violation.
    #[error("{0}")]
    Session(#[from] SessionError),
    /// A frame that is not a valid message.
    #[error("invalid message: {0}")]
    Wire(#[from] WireError),
    /// The peer is not the one we dialled.
    #[error("dialled {expected}, reached {got}")]
    PeerIdMismatch {
        /// Who we dialled.
        expected: PeerId,
        /// Who answered.
        got: PeerId,
    },
    /// The peer does not read what we send.
    #[error("write buffer over its limit (peer not reading)")]
    WriteBufferFull,
    /// The peer took none of our unsent bytes for the write-progress
    /// deadline (`NetConfig::write_progress_timeout`).
    #[error("peer took no data for the write-progress deadline (not reading)")]
    WriteStalled,
    /// The peer announced a frame over `limits::MAX_UNSOLICITED_FRAME`
    /// while it owed us no answer (only an answer may be that large).
    #[error("large frame announced while no answer was owed")]
    UnsolicitedLargeFrame,
    /// A frame started arriving and did not complete within
    /// `NetConfig::frame_timeout`.
    #[error("frame not completed within the frame deadline")]
    FrameTimeout,
    /// The node's inbound buffers passed `NetConfig::read_buffer_budget`
    /// and this connection held the most of them (a partial frame).
    #[error("inbound buffer budget exceeded (largest partial frame)")]
    ReadBudget,
    /// Too many inbound handshakes at once: the oldest pending one is
    /// closed to make room for a newcomer.
    #[error("too many inbound handshakes (oldest pending evicted)")]
    TooManyHandshakes,
    /// Too many connections (in all, or in the inbound direction).
    #[error("connection limit reached")]
    TooManyConnections,
    /// Too many inbound streams from the peer's IP address.
    #[error("too many streams from one IP address")]
    TooManyFromIp,
    /// The peer kept requesting past `rate_limited` answers.
    #[error("rate-limit violation")]
    RateLimitViolation,
}

impl CloseReason {
    /// Whether the peer is proven to have broken the protocol (a critical
    /// error: DESIGN.md §7 cools it down 60 minutes). Timeouts, closes and
    /// local faults are not.
    pub fn is_critical(&self) -> bool {
        match self {
            CloseReason::Session(SessionError::ProtocolMismatch { .. }) => false,
            CloseReason::Session(_)
            | CloseReason::Wire(_)
            | CloseReason::PeerIdMismatch { .. }
            | CloseReason::UnsolicitedLargeFrame
            | CloseReason::RateLimitViolation => true,
            _ => false,
        }
    }

    /// Whether an open stream ended because the peer closed it or the
    /// connection broke, with no fault proven (e.g. its process died).
    pub fn is_disconnect(&self) -> bool {
        matches!(self, CloseReason::PeerClosed | CloseReason::Io(_))
    }

    /// The removal-reason label (metric `hmy_stream_stream_removal_reasons`).
    pub fn label(&self) -> &'static str {
        match self {
            CloseReason::Session(SessionError::ProtocolMismatch { .. }) => "protocol mismatch",
            CloseReason::RateLimitViolation => "rate-limit violation",
            CloseReason::Wire(_) => "invalid response",
            r if r.is_critical() => "critical error",
            _ => "connection failure",
        }
    }
}

/// Events for the stream manager and the client side.
#[derive(Clone, Debug)]
pub enum NetEvent {
    /// A stream completed its handshake.
    StreamUp(StreamInfo),
    /// A connection closed: an open stream, a failed dial, or an inbound
    /// connection refused during its handshake.
    StreamDown(Box<StreamClosed>),
    /// A response arrived on a stream.
    Response {
        /// The stream it arrived on.
        stream: StreamId,
        /// The request id it answers.
        id: RequestId,
        /// The response.
        response: Response,
    },
}

/// Details of a closed connection.
#[derive(Clone, Debug)]
pub struct StreamClosed {
    /// The stream (or the connection's id if it never opened).
    pub id: StreamId,
    /// The stream, if it had opened.
    pub info: Option<StreamInfo>,
    /// The peer, if its handshake payload was verified.
    pub peer: Option<PeerId>,
    /// Whether the peer dialled us.
    #[cfg_attr(not(feature = "testkit"), allow(dead_code))]
    pub inbound: bool,
    /// The address dialled or connected from.
    pub addr: SocketAddr,
    /// Why.
    pub reason: CloseReason,
}

/// A request from a peer, for the server.
#[derive(Clone, Debug)]
pub struct InboundRequest {
    /// The stream it arrived on.
    pub stream: StreamId,
    /// The authenticated peer.
    pub peer: PeerId,
    /// Its request id.
    pub id: RequestId,
    /// The request.
    pub request: Request,
    /// When the network thread decoded it.
    pub received: Instant,
}
