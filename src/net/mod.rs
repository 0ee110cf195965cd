//! Transport (DESIGN.md §6): TCP through one mio thread, Noise XX with the
//! node's libp2p identity bound to every stream, protocol-id matching, frames.
//!
//! Owns: the listener, every connection, their Noise sessions and buffers.
//! Runs on the `net` thread (`reactor`); everything else talks to it through
//! [`NetHandle`] (commands over a crossbeam channel plus a mio `Waker`) and
//! hears from it on two channels: [`NetEvent`]s (stream up/down, responses)
//! and [`InboundRequest`]s (for the server pool). It never blocks: a full
//! server queue is answered `rate_limited` at once.

pub(crate) mod events;
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

pub use events::{CloseReason, InboundRequest, NetEvent, StreamClosed, StreamId, StreamInfo};
pub use link::{LinkProfile, LinkShaper};
use reactor::{Command, Reactor, LISTENER, WAKER};
pub use semaphore::{WritePermit, WriteSemaphore, DEFAULT_WRITE_CONCURRENCY};
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

/// A cheap, cloneable handle to the network thread.
#[derive(Clone)]
pub struct NetHandle {
    cmds: Sender<Command>,
    waker: Arc<Waker>,
    semaphore: WriteSemaphore,
    local_addr: SocketAddr,
    peer_id: PeerId,
}

impl std::fmt::Debug for NetHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetHandle")
            .field("local_addr", &self.local_addr)
            .field("peer_id", &self.peer_id)
            .finish()
    }
}

impl NetHandle {
    fn command(&self, c: Command) -> Result<(), NetError> {
        self.cmds.send(c).map_err(|_| NetError::Stopped)?;
        self.waker.wake().map_err(NetError::Io)
    }

    /// Dials `addr`; if `expect` is given the stream opens only if the peer
    /// authenticates as that `PeerId`. The outcome arrives as a
    /// [`NetEvent::StreamUp`] or [`NetEvent::StreamDown`].
    pub fn dial(&self, addr: SocketAddr, expect: Option<PeerId>) -> Result<(), NetError> {
        self.command(Command::Dial { addr, expect })
    }

    /// Sends `msg` on `stream`, waiting for a write token first (back-pressure
    /// when 32 frames wait for the network thread; the wait is on that
    /// thread, never on a peer). Encoding happens on the caller's thread.
    pub fn send(&self, stream: StreamId, msg: &Message) -> Result<(), NetError> {
        let permit = self.semaphore.acquire();
        self.command(Command::Send {
            stream,
            frame: msg.encode(),
            permit: Some(permit),
        })
    }

    /// Sends an already encoded message.
    pub fn send_encoded(&self, stream: StreamId, frame: Vec<u8>) -> Result<(), NetError> {
        let permit = self.semaphore.acquire();
        self.command(Command::Send {
            stream,
            frame,
            permit: Some(permit),
        })
    }

    /// Closes `stream`, reporting `reason`.
    pub fn close(&self, stream: StreamId, reason: CloseReason) -> Result<(), NetError> {
        self.command(Command::Close { stream, reason })
    }

    /// The bound listen address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// This node's `PeerId`.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// This node's address as a Multiaddr `/ip4/…/tcp/…/p2p/…`.
    pub fn multiaddr(&self) -> Multiaddr {
        to_multiaddr(self.local_addr, Some(self.peer_id))
    }

    /// The write semaphore (for inspection).
    pub fn write_semaphore(&self) -> &WriteSemaphore {
        &self.semaphore
    }
}

/// A running network thread. [`Net::shutdown`] (or drop) closes every
/// stream and joins the thread.
#[derive(Debug)]
pub struct Net {
    handle: NetHandle,
    events: Receiver<NetEvent>,
    requests: Receiver<InboundRequest>,
    thread: Option<JoinHandle<()>>,
}

impl Net {
    /// Binds `cfg.listen` and starts the network thread.
    pub fn start(cfg: NetConfig, identity: &NodeIdentity) -> Result<Net, NetError> {
        let keys = LocalKeys::new(identity, cfg.protocol.clone())?;
        let poll = Poll::new()?;
        let mut listener = mio::net::TcpListener::bind(cfg.listen)?;
        let local_addr = listener.local_addr()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (cmd_tx, cmd_rx) = unbounded();
        let (ev_tx, ev_rx) = unbounded();
        let (req_tx, req_rx): (Sender<InboundRequest>, _) = bounded(cfg.request_queue.max(1));
        let semaphore = WriteSemaphore::new(cfg.write_concurrency);
        let reactor = Reactor::new(poll, listener, cfg, keys, cmd_rx, ev_tx, req_tx);
        let thread = std::thread::Builder::new()
            .name("net".into())
            .spawn(move || reactor.run())?;
        Ok(Net {
            handle: NetHandle {
                cmds: cmd_tx,
                waker,
                semaphore,
                local_addr,
                peer_id: identity.peer_id(),
            },
            events: ev_rx,
            requests: req_rx,
            thread: Some(thread),
        })
    }

    /// A handle for other threads.
    pub fn handle(&self) -> NetHandle {
        self.handle.clone()
    }

    /// Stream events and responses.
    pub fn events(&self) -> &Receiver<NetEvent> {
        &self.events
    }

    /// Requests from peers, for the server.
    pub fn requests(&self) -> &Receiver<InboundRequest> {
        &self.requests
    }

    /// Closes every stream and joins the network thread.
    pub fn shutdown(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = self.handle.command(Command::Shutdown);
            let _ = t.join();
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.shutdown();
    }
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
