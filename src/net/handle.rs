//! [`Net`], the network thread's owner, and [`NetHandle`], the cheap
//! handle every other thread talks to it through.

use super::*;

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
    #[cfg(feature = "testkit")]
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// This node's address as a Multiaddr `/ip4/…/tcp/…/p2p/…`.
    #[cfg(feature = "testkit")]
    pub fn multiaddr(&self) -> Multiaddr {
        to_multiaddr(self.local_addr, Some(self.peer_id))
    }

    /// The write semaphore (for inspection).
    #[cfg(feature = "testkit")]
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
