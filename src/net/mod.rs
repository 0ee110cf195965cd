//! Transport (DESIGN.md §6): TCP through one mio thread, Noise XX with the
//! node's libp2p identity bound to every stream, protocol-id matching, frames.
//!
//! Owns: the listener, every connection, their Noise sessions and buffers.
//! Runs on the `net` thread (`reactor`); everything else talks to it through
//! `NetHandle` (commands over a crossbeam channel plus a mio `Waker`) and
//! hears from it on two channels: `NetEvent`s (stream up/down, responses)
//! and `InboundRequest`s (for the server pool). It never blocks: a full
//! server queue is answered `rate_limited` at once.

pub(crate) mod events;
mod handle;
pub(crate) mod link;
mod reactor;
pub(crate) mod semaphore;
#[cfg(feature = "testkit")]
pub mod session;
#[cfg(not(feature = "testkit"))]
pub(crate) mod session;

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam::channel::{bounded, unbounded, Receiver, Sender};
use libp2p_core::multiaddr::Protocol;
use libp2p_core::Multiaddr;
use libp2p_identity::PeerId;
use mio::{Interest, Poll, Waker};

pub use events::{StreamId, StreamInfo};
pub use link::LinkProfile;
// The network thread and what it says are the host's internals: public
// only to tests and the simulator.
pub use events::CloseReason;
#[cfg(feature = "testkit")]
pub use events::{InboundRequest, NetEvent, StreamClosed};
#[cfg(not(feature = "testkit"))]
pub(crate) use events::{InboundRequest, NetEvent, StreamClosed};
#[cfg(feature = "testkit")]
pub use handle::{Net, NetHandle};
#[cfg(not(feature = "testkit"))]
pub(crate) use handle::{Net, NetHandle};
#[cfg(feature = "testkit")]
pub use link::LinkShaper;
use reactor::{Command, Reactor, LISTENER, WAKER};
#[cfg(feature = "testkit")]
pub use semaphore::{WritePermit, WriteSemaphore, DEFAULT_WRITE_CONCURRENCY};
#[cfg(not(feature = "testkit"))]
pub(crate) use semaphore::{WriteSemaphore, DEFAULT_WRITE_CONCURRENCY};
// Named by a closed stream's reason (`CloseReason::Session`).
use session::LocalKeys;
pub use session::SessionError;

use crate::crypto::NodeIdentity;
use crate::wire::{Message, ProtocolId};

/// Network settings.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// Address to listen on (port 0 picks one).
    pub listen: SocketAddr,
    /// The protocol this node speaks.
    pub protocol: ProtocolId,
    /// Limit of a TCP connect.
    pub connect_timeout: Duration,
    /// Limit of a Noise handshake, from accept or connect.
    pub handshake_timeout: Duration,
    /// Inbound handshakes in progress at once; a new one evicts the oldest.
    pub max_inbound_handshakes: usize,
    /// Inbound handshakes in progress at once from one IP address (0 = no
    /// cap); a new one evicts that address's oldest.
    pub max_handshakes_per_ip: usize,
    /// Connections at once (any state, both directions); an inbound one
    /// past it is refused at accept, a dial fails.
    pub max_connections: usize,
    /// Inbound connections at once (any state); more are refused at
    /// accept. Outbound ones have their own slots, so inbound peers cannot
    /// keep us from dialling.
    pub max_inbound: usize,
    /// Outbound connections at once (any state); a dial past it fails.
    pub max_outbound: usize,
    /// Open inbound streams from one IP address (0 = no cap); more are
    /// refused at accept.
    pub max_streams_per_ip: usize,
    /// Unsent bytes one connection may hold before it is closed as a peer
    /// that does not read.
    pub write_buffer_limit: usize,
    /// Bytes all connections' receive buffers (Noise messages and partial
    /// frames) may hold together; past it the connection holding the most
    /// is closed ([`CloseReason::ReadBudget`]). One connection holds at
    /// most one maximum frame (16 MiB) plus one Noise message (64 KiB).
    pub read_buffer_budget: usize,
    /// How long a frame may take to arrive once its first byte has
    /// ([`CloseReason::FrameTimeout`]): a peer cannot keep a partial frame
    /// buffered.
    pub frame_timeout: Duration,
    /// How long a connection with unsent bytes may go without the peer
    /// taking any of them before it is closed as a peer that does not read
    /// ([`CloseReason::WriteStalled`]).
    pub write_progress_timeout: Duration,
    /// Write tokens (the write semaphore): frames handed to the network
    /// thread and not yet queued on their connection. A token is given back
    /// as soon as the network thread queues the frame, so a peer that does
    /// not read never holds one.
    pub write_concurrency: usize,
    /// Requests queued for the server; past this, peers get `rate_limited`.
    pub request_queue: usize,
    /// The emulated WAN link every frame this node sends goes through
    /// (user space: the kernel here has no netem); its `latency` is the
    /// one-way delay added to each frame. Off (all zero) by default.
    pub link: LinkProfile,
}

impl NetConfig {
    /// Defaults for `protocol` listening on `listen`.
    pub fn new(listen: SocketAddr, protocol: ProtocolId) -> Self {
        NetConfig {
            listen,
            protocol,
            connect_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            max_inbound_handshakes: 64,
            max_handshakes_per_ip: 8,
            max_connections: 2048,
            max_inbound: 1024,
            max_outbound: 256,
            max_streams_per_ip: 0,
            write_buffer_limit: 64 << 20,
            write_progress_timeout: Duration::from_secs(10),
            read_buffer_budget: 256 << 20,
            frame_timeout: Duration::from_secs(30),
            write_concurrency: DEFAULT_WRITE_CONCURRENCY,
            request_queue: 4096,
            link: LinkProfile::default(),
        }
    }
}

/// Network errors.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// Binding or polling failed.
    #[error("network setup: {0}")]
    Io(#[from] std::io::Error),
    /// Noise key setup failed.
    #[error("noise setup: {0}")]
    Keys(#[from] session::SessionError),
    /// The network thread has stopped.
    #[error("network thread stopped")]
    Stopped,
}

/// `/ip4/A/tcp/P[/p2p/ID]` (or `/ip6/…`) for a socket address.
pub fn to_multiaddr(addr: SocketAddr, peer: Option<PeerId>) -> Multiaddr {
    let mut m = Multiaddr::empty();
    match addr {
        SocketAddr::V4(a) => m.push(Protocol::Ip4(*a.ip())),
        SocketAddr::V6(a) => m.push(Protocol::Ip6(*a.ip())),
    }
    m.push(Protocol::Tcp(addr.port()));
    if let Some(p) = peer {
        m.push(Protocol::P2p(p));
    }
    m
}

/// The socket address and optional `PeerId` of a `/ip4|ip6/…/tcp/…[/p2p/…]`
/// Multiaddr; `None` for other shapes.
pub fn from_multiaddr(m: &Multiaddr) -> Option<(SocketAddr, Option<PeerId>)> {
    let mut it = m.iter();
    let ip: std::net::IpAddr = match it.next()? {
        Protocol::Ip4(a) => a.into(),
        Protocol::Ip6(a) => a.into(),
        _ => return None,
    };
    let Protocol::Tcp(port) = it.next()? else {
        return None;
    };
    let peer = match it.next() {
        None => None,
        Some(Protocol::P2p(p)) => Some(p),
        Some(_) => return None,
    };
    if it.next().is_some() {
        return None;
    }
    Some((SocketAddr::new(ip, port), peer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiaddr_round_trips() {
        let id = NodeIdentity::generate().peer_id();
        let addr: SocketAddr = "127.0.0.1:9000".parse().expect("addr");
        let m = to_multiaddr(addr, Some(id));
        assert!(m
            .to_string()
            .starts_with("/ip4/127.0.0.1/tcp/9000/p2p/12D3"));
        assert_eq!(from_multiaddr(&m), Some((addr, Some(id))));
        assert_eq!(from_multiaddr(&"/dns4/x/tcp/1".parse().expect("ma")), None);
    }
}
