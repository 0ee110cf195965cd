//! The running network side of a node ([`Host`]) and the handle the sync
//! thread holds ([`HostHandle`]).

use super::*;

/// A change of the active pool, for subscribers (the sync, tests).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamEvent {
    /// A stream joined the active pool.
    Activated(StreamInfo),
    /// A stream left it.
    Deactivated(StreamId),
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
    #[cfg(feature = "testkit")]
    pub fn net(&self) -> crate::net::NetHandle {
        self.net.handle()
    }

    /// This node's identity.
    #[cfg(feature = "testkit")]
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
    #[cfg(feature = "testkit")]
    pub fn remove_stream(&self, stream: StreamId, reason: RemovalReason) {
        let _ = self.stream_tx.send(StreamCmd::Remove { stream, reason });
    }

    /// Active-pool changes from now on. The current pool is replayed first
    /// as `Activated` events.
    #[cfg(feature = "testkit")]
    pub fn subscribe(&self) -> crossbeam::channel::Receiver<StreamEvent> {
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
