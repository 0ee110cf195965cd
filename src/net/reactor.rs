//! The network thread: one mio `Poll` owning the listener and every
//! connection. It never blocks and never does work that is not I/O, Noise or
//! framing: requests go to the server pool, responses and stream events to
//! their consumers, over channels.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crossbeam::channel::{Receiver, Sender, TrySendError};
use libp2p_identity::PeerId;
use metrics::Counter;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

use super::events::{CloseReason, InboundRequest, NetEvent, StreamClosed, StreamId, StreamInfo};
use super::link::LinkShaper;
use super::semaphore::WritePermit;
use super::session::{self, LocalKeys, Session};
use super::NetConfig;
use crate::metrics::names;
use crate::wire::{ErrorCode, Message, Response};

pub(super) const LISTENER: Token = Token(0);
pub(super) const WAKER: Token = Token(usize::MAX);
/// Bytes read from one connection per readiness event before others get a turn.
const READ_BUDGET: usize = 1 << 20;
/// Read buffer size.
const READ_CHUNK: usize = 64 * 1024;
/// How long a peer is told to wait when the server queue is full, ms.
const BUSY_RETRY_MS: u64 = 100;

/// Commands from other threads.
/// A frame held by the emulated link (`NetConfig::link`).
struct Delayed {
    /// When the link delivers it (it is written to the socket then).
    at: Instant,
    frame: Vec<u8>,
    /// The sender's write permit, with when the frame has left the sender
    /// (its serialization done); `None` once given back.
    permit: Option<(Instant, WritePermit)>,
}

pub(super) enum Command {
    Dial {
        addr: SocketAddr,
        expect: Option<PeerId>,
    },
    Send {
        stream: StreamId,
        frame: Vec<u8>,
        permit: Option<WritePermit>,
    },
    Close {
        stream: StreamId,
        reason: CloseReason,
    },
    Shutdown,
}

enum Phase {
    Connecting,
    Handshaking,
    Open,
}

struct Conn {
    socket: TcpStream,
    addr: SocketAddr,
    inbound: bool,
    phase: Phase,
    session: Option<Session>,
    expect: Option<PeerId>,
    info: Option<StreamInfo>,
    out: Vec<u8>,
    out_pos: usize,
    queued: u64,
    written: u64,
    /// Where each frame queued and not yet fully written ends (in
    /// `queued` bytes), to count frames lost on close.
    frame_ends: VecDeque<u64>,
    /// Open: when the peer last took bytes, or the output became pending.
    last_write: Instant,
    /// Bytes of the inbound budget this connection's receive buffers hold.
    rx_charge: usize,
    /// When the frame being received started arriving.
    frame_started: Option<Instant>,
    /// Requests we sent on it not answered yet: while 0 the peer may send
    /// no frame over `limits::MAX_UNSOLICITED_FRAME`.
    awaiting: u32,
    deadline: Option<Instant>,
    goodbye: Option<String>,
    delayed: VecDeque<Delayed>,
    /// Release times of this connection's frames (`None` when the link
    /// profile is off).
    link: Option<LinkShaper>,
}

struct Counters {
    bytes_read: Counter,
    bytes_write: Counter,
    msg_read: Counter,
    msg_write: Counter,
    msg_read_failed: Counter,
    msg_write_failed: Counter,
}

impl Counters {
    fn new() -> Self {
        Counters {
            bytes_read: metrics::counter!(names::BYTES_READ),
            bytes_write: metrics::counter!(names::BYTES_WRITE),
            msg_read: metrics::counter!(names::MSG_READ),
            msg_write: metrics::counter!(names::MSG_WRITE),
            msg_read_failed: metrics::counter!(names::MSG_READ_FAILED),
            msg_write_failed: metrics::counter!(names::MSG_WRITE_FAILED),
        }
    }
}

pub(super) struct Reactor {
    poll: Poll,
    listener: TcpListener,
    cfg: NetConfig,
    keys: LocalKeys,
    conns: HashMap<StreamId, Conn>,
    next_id: StreamId,
    timers: BinaryHeap<Reverse<(Instant, StreamId)>>,
    /// Inbound connections still handshaking, oldest (lowest id) first,
    /// with their IP: bounded by `max_inbound_handshakes` and
    /// `max_handshakes_per_ip`, the oldest evicted to make room.
    inbound_handshakes: std::collections::BTreeMap<StreamId, std::net::IpAddr>,
    pending_reads: HashSet<StreamId>,
    /// Bytes all connections' receive buffers hold (`NetConfig::read_buffer_budget`).
    rx_total: usize,
    /// Connections by direction, any phase (`max_inbound`, `max_outbound`).
    inbound_conns: usize,
    outbound_conns: usize,
    /// Open inbound streams by IP (`max_streams_per_ip`); no zero entries.
    streams_by_ip: HashMap<std::net::IpAddr, usize>,
    delayed_conns: HashSet<StreamId>,
    cmds: Receiver<Command>,
    events: Sender<NetEvent>,
    requests: Sender<InboundRequest>,
    scratch: Vec<u8>,
    counters: Counters,
}

impl Reactor {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        poll: Poll,
        listener: TcpListener,
        cfg: NetConfig,
        keys: LocalKeys,
        cmds: Receiver<Command>,
        events: Sender<NetEvent>,
        requests: Sender<InboundRequest>,
    ) -> Self {
        Reactor {
            poll,
            listener,
            cfg,
            keys,
            conns: HashMap::new(),
            next_id: 1,
            timers: BinaryHeap::new(),
            inbound_handshakes: std::collections::BTreeMap::new(),
            rx_total: 0,
            inbound_conns: 0,
            outbound_conns: 0,
            streams_by_ip: HashMap::new(),
            pending_reads: HashSet::new(),
            delayed_conns: HashSet::new(),
            cmds,
            events,
            requests,
            scratch: vec![0u8; READ_CHUNK],
            counters: Counters::new(),
        }
    }

    pub(super) fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = if self.pending_reads.is_empty() {
                let timer = self.timers.peek().map(|Reverse((t, _))| *t);
                let release = self.next_release();
                [timer, release]
                    .into_iter()
                    .flatten()
                    .min()
                    .map(|t| t.saturating_duration_since(Instant::now()))
            } else {
                Some(Duration::ZERO)
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                tracing::error!(error = %e, "network poll failed; network thread stops");
                self.close_all(CloseReason::Io(e.to_string()));
                return;
            }
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept_all(),
                    WAKER => {}
                    Token(t) => self.on_ready(t as StreamId, ev.is_readable(), ev.is_writable()),
                }
            }
            let pending: Vec<StreamId> = self.pending_reads.drain().collect();
            for id in pending {
                self.on_ready(id, true, false);
            }
            if !self.drain_commands() {
                self.close_all(CloseReason::Shutdown);
                return;
            }
            self.release_delayed();
            self.expire_timers();
        }
    }

    fn accept_all(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((socket, addr)) => {
                    if self.conns.len() >= self.cfg.max_connections
                        || self.inbound_conns >= self.cfg.max_inbound
                    {
                        tracing::debug!(%addr, "refused: {}", CloseReason::TooManyConnections);
                        continue;
                    }
                    let per_ip = self.cfg.max_streams_per_ip;
                    if per_ip > 0
                        && self.streams_by_ip.get(&addr.ip()).copied().unwrap_or(0) >= per_ip
                    {
                        tracing::debug!(%addr, "refused: {}", CloseReason::TooManyFromIp);
                        continue;
                    }
                    self.make_handshake_room(addr.ip());
                    let session = match Session::responder(&self.keys) {
                        Ok(s) => s,
                        Err(e) => {
                            tracing::error!(error = %e, "cannot start a handshake");
                            continue;
                        }
                    };
                    let id = self.add_conn(
                        socket,
                        addr,
                        true,
                        Phase::Handshaking,
                        None,
                        self.cfg.handshake_timeout,
                    );
                    if let Some(c) = self.conns.get_mut(&id) {
                        c.session = Some(session);
                        self.inbound_handshakes.insert(id, addr.ip());
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    return;
                }
            }
        }
    }

    /// Sets connection `id`'s deadline to `at` unless an earlier one is set.
    fn arm(&mut self, id: StreamId, at: Instant) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        if c.deadline.is_none_or(|d| at < d) {
            c.deadline = Some(at);
            self.timers.push(Reverse((at, id)));
        }
    }

    /// Charges connection `id`'s receive buffers to the inbound budget,
    /// starts its frame deadline when a frame has begun, and past the
    /// budget closes the connection holding the most (the largest partial
    /// frame: an honest answer is at most ~2 MiB, an attacker's partial
    /// frame up to 16 MiB). Returns false if `id` itself was closed.
    fn account_rx(&mut self, id: StreamId) -> bool {
        let Some(c) = self.conns.get_mut(&id) else {
            return false;
        };
        let Some(session) = c.session.as_ref() else {
            return true;
        };
        let charge = session.buffer_capacity();
        let in_frame = session.in_frame();
        if c.awaiting == 0
            && session
                .announced_frame()
                .is_some_and(|n| n > crate::wire::limits::MAX_UNSOLICITED_FRAME)
        {
            // Only an answer may be that large, and we asked nothing.
            self.close(id, CloseReason::UnsolicitedLargeFrame);
            return false;
        }
        self.rx_total = self.rx_total.saturating_sub(c.rx_charge) + charge;
        c.rx_charge = charge;
        let open = matches!(c.phase, Phase::Open);
        match (in_frame, c.frame_started) {
            (true, None) if open => {
                let now = Instant::now();
                c.frame_started = Some(now);
                let at = now + self.cfg.frame_timeout;
                self.arm(id, at);
            }
            (false, Some(_)) => c.frame_started = None,
            _ => {}
        }
        while self.rx_total > self.cfg.read_buffer_budget {
            let Some((&worst, _)) = self
                .conns
                .iter()
                .filter(|(_, c)| c.rx_charge > 0)
                .max_by_key(|(cid, c)| (c.rx_charge, std::cmp::Reverse(**cid)))
            else {
                break;
            };
            tracing::debug!(
                stream = worst,
                total = self.rx_total,
                "inbound buffer budget exceeded"
            );
            self.close(worst, CloseReason::ReadBudget);
            if worst == id {
                return false;
            }
        }
        true
    }

    /// Makes room for one more inbound handshake from `ip`: past
    /// `max_handshakes_per_ip` from that IP, or `max_inbound_handshakes` in
    /// all, the oldest pending one (of that IP first) is closed. Silent or
    /// slow sockets then cannot keep a newcomer out: an honest handshake
    /// completes long before newer arrivals push it out, even from the same
    /// IP (DESIGN.md §15).
    fn make_handshake_room(&mut self, ip: std::net::IpAddr) {
        let per_ip = self.cfg.max_handshakes_per_ip;
        if per_ip > 0 {
            let from_ip: Vec<StreamId> = self
                .inbound_handshakes
                .iter()
                .filter(|(_, a)| **a == ip)
                .map(|(id, _)| *id)
                .collect();
            if from_ip.len() >= per_ip {
                self.close(from_ip[0], CloseReason::TooManyHandshakes);
            }
        }
        while self.inbound_handshakes.len() >= self.cfg.max_inbound_handshakes.max(1) {
            let Some((&oldest, _)) = self.inbound_handshakes.iter().next() else {
                break;
            };
            self.close(oldest, CloseReason::TooManyHandshakes);
        }
    }

    fn add_conn(
        &mut self,
        mut socket: TcpStream,
        addr: SocketAddr,
        inbound: bool,
        phase: Phase,
        expect: Option<PeerId>,
        timeout: Duration,
    ) -> StreamId {
        let id = self.next_id;
        self.next_id += 1;
        if let Err(e) = self.poll.registry().register(
            &mut socket,
            Token(id as usize),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            tracing::warn!(error = %e, %addr, "cannot register socket");
            return id;
        }
        if inbound {
            self.inbound_conns += 1;
        } else {
            self.outbound_conns += 1;
        }
        let _ = socket.set_nodelay(true);
        let deadline = Instant::now() + timeout;
        self.timers.push(Reverse((deadline, id)));
        self.conns.insert(
            id,
            Conn {
                socket,
                addr,
                inbound,
                phase,
                session: None,
                expect,
                info: None,
                out: Vec::new(),
                out_pos: 0,
                queued: 0,
                written: 0,
                frame_ends: VecDeque::new(),
                last_write: Instant::now(),
                rx_charge: 0,
                frame_started: None,
                awaiting: 0,
                deadline: Some(deadline),
                goodbye: None,
                delayed: VecDeque::new(),
                link: (!self.cfg.link.is_off()).then(|| LinkShaper::new(self.cfg.link.clone(), id)),
            },
        );
        id
    }

    /// Returns false on shutdown.
    fn drain_commands(&mut self) -> bool {
        while let Ok(cmd) = self.cmds.try_recv() {
            match cmd {
                Command::Dial { addr, expect } => self.dial(addr, expect),
                Command::Send {
                    stream,
                    frame,
                    permit,
                } => {
                    if self.cfg.link.is_off() {
                        self.send(stream, &frame, permit)
                    } else if let Some(c) = self.conns.get_mut(&stream) {
                        // Held until the emulated link would have
                        // delivered it; its write permit only until it has
                        // left the sender (a frame on a real wire is the
                        // kernel's, not the sender's).
                        let now = Instant::now();
                        let (sent, at) = match c.link.as_mut() {
                            Some(l) => l.schedule(now, session::wire_len(frame.len())),
                            None => (now, now + self.cfg.link.latency),
                        };
                        let permit = permit.filter(|_| sent > now).map(|p| (sent, p));
                        c.delayed.push_back(Delayed { at, frame, permit });
                        self.delayed_conns.insert(stream);
                    }
                }
                Command::Close { stream, reason } => {
                    if matches!(reason, CloseReason::Local(_)) {
                        self.say_goodbye(stream, &reason.to_string());
                    }
                    self.close(stream, reason)
                }
                Command::Shutdown => return false,
            }
        }
        true
    }

    fn dial(&mut self, addr: SocketAddr, expect: Option<PeerId>) {
        // Outbound slots are ours: inbound peers cannot take them.
        let full = self.outbound_conns >= self.cfg.max_outbound
            || self.conns.len() >= self.cfg.max_connections;
        let connected = if full {
            Err(std::io::Error::other("outbound connection slots full"))
        } else {
            TcpStream::connect(addr)
        };
        match connected {
            Ok(socket) => {
                self.add_conn(
                    socket,
                    addr,
                    false,
                    Phase::Connecting,
                    expect,
                    self.cfg.connect_timeout,
                );
            }
            Err(e) => {
                let id = self.next_id;
                self.next_id += 1;
                let _ = self
                    .events
                    .send(NetEvent::StreamDown(Box::new(StreamClosed {
                        id,
                        info: None,
                        peer: None,
                        inbound: false,
                        addr,
                        reason: CloseReason::ConnectFailed(e.to_string()),
                    })));
            }
        }
    }

    fn next_release(&self) -> Option<Instant> {
        self.delayed_conns
            .iter()
            .filter_map(|id| {
                self.conns.get(id).and_then(|c| {
                    let frame = c.delayed.front().map(|d| d.at);
                    let permit = c
                        .delayed
                        .iter()
                        .find_map(|d| d.permit.as_ref().map(|p| p.0));
                    frame.into_iter().chain(permit).min()
                })
            })
            .min()
    }

    /// Sends the delayed frames whose time has come (`NetConfig::link`).
    fn release_delayed(&mut self) {
        if self.delayed_conns.is_empty() {
            return;
        }
        let now = Instant::now();
        let ids: Vec<StreamId> = self.delayed_conns.iter().copied().collect();
        for id in ids {
            loop {
                let Some(c) = self.conns.get_mut(&id) else {
                    self.delayed_conns.remove(&id);
                    break;
                };
                // Frames that have left the sender give their permit back.
                for d in c.delayed.iter_mut() {
                    match &d.permit {
                        Some((sent, _)) if *sent <= now => d.permit = None,
                        Some(_) => break,
                        None => {}
                    }
                }
                if c.delayed.front().is_none_or(|d| d.at > now) {
                    if c.delayed.is_empty() {
                        self.delayed_conns.remove(&id);
                    }
                    break;
                }
                if let Some(d) = c.delayed.pop_front() {
                    self.send(id, &d.frame, d.permit.map(|p| p.1));
                }
            }
        }
    }

    fn send(&mut self, stream: StreamId, frame: &[u8], permit: Option<WritePermit>) {
        let Some(c) = self.conns.get_mut(&stream) else {
            self.counters.msg_write_failed.increment(1);
            return;
        };
        let Some(session) = c.session.as_mut().filter(|s| s.is_open()) else {
            self.counters.msg_write_failed.increment(1);
            return;
        };
        if let Err(e) = session.send_frame(frame) {
            self.counters.msg_write_failed.increment(1);
            tracing::warn!(stream, error = %e, "cannot send frame");
            return;
        }
        let out = session.take_output();
        if c.out_pos == c.out.len() {
            // Nothing was pending: the write-progress clock starts now.
            c.last_write = Instant::now();
        }
        c.queued += out.len() as u64;
        c.out.extend_from_slice(&out);
        c.frame_ends.push_back(c.queued);
        // Message type bytes below 0x40 are requests: the peer owes an answer.
        if frame.first().is_some_and(|t| *t < 0x40) {
            c.awaiting = c.awaiting.saturating_add(1);
        }
        // Queued on its connection: the token goes back now, whether or not
        // this peer ever reads (its output is bounded by
        // `write_buffer_limit` and the write-progress deadline instead).
        drop(permit);
        self.counters.msg_write.increment(1);
        if c.out.len() - c.out_pos > self.cfg.write_buffer_limit {
            self.close(stream, CloseReason::WriteBufferFull);
            return;
        }
        self.flush(stream);
    }

    fn on_ready(&mut self, id: StreamId, readable: bool, writable: bool) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        if matches!(c.phase, Phase::Connecting) {
            if !(readable || writable) {
                return;
            }
            match (c.socket.take_error(), c.socket.peer_addr()) {
                (Ok(None), Ok(_)) => {}
                (Ok(Some(e)), _) | (Err(e), _) => {
                    return self.close(id, CloseReason::ConnectFailed(e.to_string()))
                }
                (Ok(None), Err(e)) if e.kind() == ErrorKind::NotConnected => return,
                (Ok(None), Err(e)) => {
                    return self.close(id, CloseReason::ConnectFailed(e.to_string()))
                }
            }
            match Session::initiator(&self.keys) {
                Ok(mut s) => {
                    let out = s.take_output();
                    c.queued += out.len() as u64;
                    c.out.extend_from_slice(&out);
                    c.session = Some(s);
                    c.phase = Phase::Handshaking;
                    let deadline = Instant::now() + self.cfg.handshake_timeout;
                    c.deadline = Some(deadline);
                    self.timers.push(Reverse((deadline, id)));
                }
                Err(e) => return self.close(id, CloseReason::Session(e)),
            }
            self.flush(id);
        }
        if readable {
            self.read(id);
        }
        if writable {
            self.flush(id);
        }
    }

    fn read(&mut self, id: StreamId) {
        let mut total = 0;
        let mut frames = Vec::new();
        loop {
            let Some(c) = self.conns.get_mut(&id) else {
                return;
            };
            let n = match c.socket.read(&mut self.scratch) {
                Ok(0) => {
                    let reason = match c.goodbye.take() {
                        Some(why) => CloseReason::PeerGoingAway(why),
                        None => CloseReason::PeerClosed,
                    };
                    return self.close(id, reason);
                }
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return self.close(id, CloseReason::Io(e.to_string())),
            };
            self.counters.bytes_read.increment(n as u64);
            total += n;
            let Some(session) = c.session.as_mut() else {
                return;
            };
            let result = session.receive(&self.scratch[..n], &mut frames);
            let out = session.take_output();
            if !out.is_empty() {
                c.queued += out.len() as u64;
                c.out.extend_from_slice(&out);
            }
            match result {
                Ok(true) => {
                    self.flush(id);
                    if !self.on_open(id) {
                        return;
                    }
                }
                Ok(false) => {}
                Err(e) => {
                    // Best effort: our last handshake message tells the peer
                    // why (e.g. protocol mismatch).
                    self.flush(id);
                    self.counters.msg_read_failed.increment(1);
                    return self.close(id, CloseReason::Session(e));
                }
            }
            for f in frames.drain(..) {
                if !self.route(id, &f) {
                    return;
                }
            }
            if !self.account_rx(id) {
                return;
            }
            if total >= READ_BUDGET {
                self.pending_reads.insert(id);
                break;
            }
        }
        self.flush(id);
    }

    /// Returns false if the connection was closed.
    fn on_open(&mut self, id: StreamId) -> bool {
        let Some(c) = self.conns.get_mut(&id) else {
            return false;
        };
        let Some(hello) = c.session.as_ref().and_then(|s| s.remote()).cloned() else {
            return false;
        };
        if let Some(expected) = c.expect {
            if expected != hello.peer_id {
                self.close(
                    id,
                    CloseReason::PeerIdMismatch {
                        expected,
                        got: hello.peer_id,
                    },
                );
                return false;
            }
        }
        if c.inbound {
            self.inbound_handshakes.remove(&id);
            *self.streams_by_ip.entry(c.addr.ip()).or_default() += 1;
        }
        c.phase = Phase::Open;
        c.deadline = None;
        let info = StreamInfo {
            id,
            peer_id: hello.peer_id,
            addr: c.addr,
            protocol: hello.protocol,
            inbound: c.inbound,
        };
        c.info = Some(info.clone());
        tracing::debug!(stream = id, peer = %info.peer_id, addr = %info.addr, inbound = info.inbound, "stream up");
        let _ = self.events.send(NetEvent::StreamUp(info));
        true
    }

    /// Returns false if the connection was closed.
    fn route(&mut self, id: StreamId, frame: &[u8]) -> bool {
        let msg = match Message::decode(frame) {
            Ok(m) => m,
            Err(e) => {
                self.counters.msg_read_failed.increment(1);
                self.close(id, CloseReason::Wire(e));
                return false;
            }
        };
        self.counters.msg_read.increment(1);
        if msg.is_going_away() {
            if let (Some(c), Message::Response(_, Response::Error { message, .. })) =
                (self.conns.get_mut(&id), msg)
            {
                c.goodbye = Some(message);
            }
            return true;
        }
        let peer = match self.conns.get(&id).and_then(|c| c.info.as_ref()) {
            Some(i) => i.peer_id,
            None => return false,
        };
        if matches!(msg, Message::Response(..)) {
            if let Some(c) = self.conns.get_mut(&id) {
                c.awaiting = c.awaiting.saturating_sub(1);
            }
        }
        match msg {
            Message::Request(rid, request) => {
                let req = InboundRequest {
                    stream: id,
                    peer,
                    id: rid,
                    request,
                    received: Instant::now(),
                };
                if let Err(TrySendError::Full(_)) = self.requests.try_send(req) {
                    let busy = Message::Response(
                        rid,
                        Response::Error {
                            code: ErrorCode::RateLimited,
                            retry_after_ms: BUSY_RETRY_MS,
                            message: "server busy".into(),
                        },
                    );
                    self.send(id, &busy.encode(), None);
                }
            }
            Message::Response(rid, response) => {
                let _ = self.events.send(NetEvent::Response {
                    stream: id,
                    id: rid,
                    response,
                });
            }
        }
        self.conns.contains_key(&id)
    }

    fn flush(&mut self, id: StreamId) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        if matches!(c.phase, Phase::Connecting) {
            return;
        }
        while c.out_pos < c.out.len() {
            match c.socket.write(&c.out[c.out_pos..]) {
                Ok(0) => return self.close(id, CloseReason::PeerClosed),
                Ok(n) => {
                    c.out_pos += n;
                    c.written += n as u64;
                    c.last_write = Instant::now();
                    self.counters.bytes_write.increment(n as u64);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return self.close(id, CloseReason::Io(e.to_string())),
            }
        }
        while c.frame_ends.front().is_some_and(|end| *end <= c.written) {
            c.frame_ends.pop_front();
        }
        if c.out_pos == c.out.len() {
            c.out.clear();
            c.out_pos = 0;
        } else {
            if c.out_pos > (1 << 20) {
                c.out.drain(..c.out_pos);
                c.out_pos = 0;
            }
            // Bytes left: make sure the write-progress deadline is armed.
            if matches!(c.phase, Phase::Open) {
                let at = c.last_write + self.cfg.write_progress_timeout;
                self.arm(id, at);
            }
        }
    }

    fn close(&mut self, id: StreamId, reason: CloseReason) {
        let Some(mut c) = self.conns.remove(&id) else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut c.socket);
        self.pending_reads.remove(&id);
        self.inbound_handshakes.remove(&id);
        self.rx_total = self.rx_total.saturating_sub(c.rx_charge);
        if c.inbound {
            self.inbound_conns = self.inbound_conns.saturating_sub(1);
            if matches!(c.phase, Phase::Open) {
                let ip = c.addr.ip();
                if let Some(n) = self.streams_by_ip.get_mut(&ip) {
                    *n -= 1;
                    if *n == 0 {
                        self.streams_by_ip.remove(&ip);
                    }
                }
            }
        } else {
            self.outbound_conns = self.outbound_conns.saturating_sub(1);
        }
        let dropped_frames = c.frame_ends.len() as u64;
        if dropped_frames > 0 {
            self.counters.msg_write_failed.increment(dropped_frames);
        }
        if reason.is_critical() {
            tracing::warn!(stream = id, addr = %c.addr, peer = ?c.info.as_ref().map(|i| i.peer_id), %reason, "stream closed: peer broke the protocol");
        } else {
            tracing::debug!(stream = id, addr = %c.addr, %reason, "stream closed");
        }
        let peer = c
            .session
            .as_ref()
            .and_then(|s| s.remote())
            .map(|h| h.peer_id);
        let _ = self
            .events
            .send(NetEvent::StreamDown(Box::new(StreamClosed {
                id,
                info: c.info,
                peer,
                inbound: c.inbound,
                addr: c.addr,
                reason,
            })));
    }

    fn close_all(&mut self, reason: CloseReason) {
        let ids: Vec<StreamId> = self.conns.keys().copied().collect();
        for id in ids {
            if reason == CloseReason::Shutdown {
                self.say_goodbye(id, "shutting down");
            }
            self.close(id, reason.clone());
        }
    }

    /// Best effort: tell an open stream's peer we close it on purpose.
    fn say_goodbye(&mut self, id: StreamId, why: &str) {
        let open = self
            .conns
            .get(&id)
            .is_some_and(|c| matches!(c.phase, Phase::Open));
        if open {
            self.send(id, &Message::going_away(why).encode(), None);
        }
    }

    fn expire_timers(&mut self) {
        let now = Instant::now();
        while let Some(Reverse((t, id))) = self.timers.peek().copied() {
            if t > now {
                break;
            }
            self.timers.pop();
            let Some(c) = self.conns.get_mut(&id) else {
                continue;
            };
            if c.deadline != Some(t) {
                continue;
            }
            let reason = match c.phase {
                Phase::Connecting => CloseReason::ConnectTimeout,
                Phase::Handshaking => CloseReason::HandshakeTimeout,
                Phase::Open => {
                    // The write-progress deadline (bytes pending and none
                    // taken since `last_write`) and the frame deadline (a
                    // started frame not completed in time).
                    c.deadline = None;
                    let write = (c.out_pos < c.out.len())
                        .then(|| c.last_write + self.cfg.write_progress_timeout);
                    let frame = c.frame_started.map(|t| t + self.cfg.frame_timeout);
                    if write.is_some_and(|at| at <= now) {
                        CloseReason::WriteStalled
                    } else if frame.is_some_and(|at| at <= now) {
                        CloseReason::FrameTimeout
                    } else {
                        if let Some(at) = write.into_iter().chain(frame).min() {
                            c.deadline = Some(at);
                            self.timers.push(Reverse((at, id)));
                        }
                        continue;
                    }
                }
            };
            self.close(id, reason);
        }
    }
}
