//! Real nodes and raw peers over loopback for transport tests.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy_rlp::Bytes;
use streamsync::chain::backend::InsertBatch;
use streamsync::chain::{BlockWithSig, Genesis};
use streamsync::config::Network;
use streamsync::crypto::NodeIdentity;
use streamsync::net::session::{LocalKeys, Session, SessionError};
use streamsync::net::{CloseReason, Net, NetConfig, NetEvent, StreamInfo};
use streamsync::request::DirectClient;
use streamsync::server::{RateLimits, Server, ServerConfig};
use streamsync::store::{Store, StoreOptions};
use streamsync::wire::{Message, ProtocolId};

/// How long any test waits for an event before failing (a bound, not a sleep).
pub const WAIT: Duration = Duration::from_secs(10);

/// A node: network thread, optional server over a store, direct client.
pub struct TestNode {
    pub identity: NodeIdentity,
    pub net: Net,
    pub client: DirectClient,
    pub server: Option<Server>,
    pub store: Option<Arc<Store>>,
    _dir: Option<tempfile::TempDir>,
}

pub fn localnet() -> ProtocolId {
    ProtocolId::sync(Network::Localnet, 0)
}

pub fn net_config(protocol: ProtocolId) -> NetConfig {
    let mut c = NetConfig::new("127.0.0.1:0".parse().expect("addr"), protocol);
    c.handshake_timeout = Duration::from_millis(500);
    c
}

/// A node serving `genesis` + `blocks` with `limits`; `peers` answers GetPeers.
pub fn serving_node(
    genesis: &Genesis,
    blocks: &[BlockWithSig],
    cfg: NetConfig,
    limits: RateLimits,
) -> TestNode {
    let dir = tempfile::tempdir().expect("tmp");
    let opts = StoreOptions {
        durable: false,
        ..StoreOptions::default()
    };
    let store = Arc::new(Store::open_or_create(dir.path(), genesis, opts).expect("store"));
    if !blocks.is_empty() {
        store
            .insert_batch(&InsertBatch::seal(blocks.to_vec(), vec![]))
            .expect("insert");
    }
    let identity = NodeIdentity::generate();
    let net = Net::start(cfg, &identity).expect("net");
    let peers = Arc::new(|max: usize| vec![Bytes::from_static(b"record-1"); max.min(1)]);
    let server = Server::start(
        ServerConfig {
            limits,
            ..ServerConfig::default()
        },
        store.clone(),
        net.handle(),
        net.requests().clone(),
        peers,
    )
    .expect("server");
    let client = DirectClient::start(net.handle(), net.events().clone());
    TestNode {
        identity,
        net,
        client,
        server: Some(server),
        store: Some(store),
        _dir: Some(dir),
    }
}

/// A node that only makes requests.
pub fn client_node(cfg: NetConfig) -> TestNode {
    let identity = NodeIdentity::generate();
    let net = Net::start(cfg, &identity).expect("net");
    let client = DirectClient::start(net.handle(), net.events().clone());
    TestNode {
        identity,
        net,
        client,
        server: None,
        store: None,
        _dir: None,
    }
}

impl TestNode {
    pub fn addr(&self) -> SocketAddr {
        self.net.handle().local_addr()
    }

    /// The next stream event.
    pub fn next_event(&self) -> NetEvent {
        self.client
            .stream_events()
            .recv_timeout(WAIT)
            .expect("stream event in time")
    }

    /// Waits for the next StreamUp.
    pub fn wait_up(&self) -> StreamInfo {
        let deadline = Instant::now() + WAIT;
        loop {
            assert!(Instant::now() < deadline, "no stream came up");
            if let NetEvent::StreamUp(i) = self.next_event() {
                return i;
            }
        }
    }

    /// Waits for the next StreamDown and returns its reason.
    pub fn wait_down(&self) -> CloseReason {
        let deadline = Instant::now() + WAIT;
        loop {
            assert!(Instant::now() < deadline, "no stream went down");
            if let NetEvent::StreamDown(closed) = self.next_event() {
                return closed.reason;
            }
        }
    }

    /// Dials `other` and returns the stream once up.
    pub fn connect(&self, other: &TestNode) -> StreamInfo {
        self.net
            .handle()
            .dial(other.addr(), Some(other.identity.peer_id()))
            .expect("dial");
        self.wait_up()
    }
}

/// A hand-driven peer on a blocking socket: speaks the handshake with the
/// given keys, then lets a test send arbitrary bytes.
pub struct RawPeer {
    pub sock: TcpStream,
    pub session: Session,
    frames: Vec<Vec<u8>>,
}

impl RawPeer {
    /// Connects and runs the handshake; `Err` if the server refused it.
    pub fn connect(addr: SocketAddr, keys: &LocalKeys) -> Result<RawPeer, SessionError> {
        let sock = TcpStream::connect(addr).expect("connect");
        sock.set_read_timeout(Some(WAIT)).expect("timeout");
        let mut p = RawPeer {
            sock,
            session: Session::initiator(keys)?,
            frames: Vec::new(),
        };
        let mut buf = [0u8; 65536];
        while !p.session.is_open() {
            p.flush();
            let n = p.sock.read(&mut buf).unwrap_or(0);
            if n == 0 {
                return Err(SessionError::State("server closed during handshake"));
            }
            p.session.receive(&buf[..n], &mut p.frames)?;
        }
        p.flush();
        Ok(p)
    }

    /// A peer with fresh valid keys for `protocol`.
    pub fn honest(addr: SocketAddr, protocol: ProtocolId) -> RawPeer {
        let keys = LocalKeys::new(&NodeIdentity::generate(), protocol).expect("keys");
        RawPeer::connect(addr, &keys).expect("handshake")
    }

    pub fn flush(&mut self) {
        let out = self.session.take_output();
        if !out.is_empty() {
            let _ = self.sock.write_all(&out);
        }
    }

    pub fn send(&mut self, m: &Message) {
        self.session.send_frame(&m.encode()).expect("frame");
        self.flush();
    }

    pub fn send_unframed(&mut self, bytes: &[u8]) {
        self.session.send_unframed(bytes).expect("encrypt");
        self.flush();
    }

    /// Next message from the server, or None once it closed the connection.
    pub fn recv(&mut self) -> Option<Message> {
        let mut buf = [0u8; 65536];
        loop {
            if !self.frames.is_empty() {
                let f = self.frames.remove(0);
                return Some(Message::decode(&f).expect("server sends valid messages"));
            }
            let n = self.sock.read(&mut buf).ok()?;
            if n == 0 {
                return None;
            }
            self.session.receive(&buf[..n], &mut self.frames).ok()?;
        }
    }

    /// Reads until the server closes the connection (panics after WAIT).
    pub fn expect_closed(&mut self) {
        let deadline = Instant::now() + WAIT;
        while self.recv().is_some() {
            assert!(
                Instant::now() < deadline,
                "server did not close the connection"
            );
        }
    }
}
