//! The `streams` thread: feeds the [`StreamManager`], carries out its
//! actions, runs discovery and peer exchange.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam::channel::{select, Receiver, Sender};
use libp2p_identity::PeerId;
use parking_lot::{Mutex, RwLock};

use super::peer_book::PeerBook;
use super::requests::{ReqCmd, RequestHandle, RequestResult};
use super::{DiscoverySource, HostConfig, HostStatus, StreamEvent};
use crate::crypto::NodeIdentity;
use crate::net::{CloseReason, NetHandle, StreamClosed, StreamId, StreamInfo};
use crate::request::{HealthStats, Priority, RequestOptions};
use crate::stream::record::verify_record;
use crate::stream::{Action, PeerAddr, RemovalReason, StreamManager};
use crate::wire::limits::MAX_PEERS_PER_RESPONSE;
use crate::wire::{ProtocolId, Request, Response};

/// Time limit of one peer-exchange request.
const PX_TIMEOUT: Duration = Duration::from_secs(10);
/// Active streams asked for peers per discovery round.
const PX_FANOUT: usize = 3;

pub(super) enum StreamCmd {
    NetUp(StreamInfo),
    NetDown(Box<StreamClosed>),
    Remove {
        stream: StreamId,
        reason: RemovalReason,
    },
    Penalize {
        peer: PeerId,
        reason: RemovalReason,
    },
    Peers {
        stream: StreamId,
        peer: PeerId,
        result: RequestResult,
    },
    Throughput(Vec<(StreamId, f64)>),
    Subscribe(Sender<StreamEvent>),
    Shutdown,
}

pub(super) struct StreamsDriver {
    sm: StreamManager,
    me: PeerId,
    identity: Option<NodeIdentity>,
    protocol: ProtocolId,
    net: NetHandle,
    cmds: Receiver<StreamCmd>,
    self_tx: Sender<StreamCmd>,
    req_tx: Sender<ReqCmd>,
    requests: RequestHandle,
    sources: Vec<Box<dyn DiscoverySource>>,
    book: Arc<RwLock<PeerBook>>,
    subscribers: Arc<Mutex<Vec<Sender<StreamEvent>>>>,
    status: Arc<RwLock<Option<HostStatus>>>,
    health: Arc<RwLock<Option<HealthStats>>>,
    advertise_every: Duration,
    records_rejected: u64,
    /// The peer of each active stream, to mark it disconnected in the peer
    /// book when the stream leaves (bounded by the active pool).
    active_peers: std::collections::HashMap<StreamId, PeerId>,
    /// Discovery rounds so far: each round asks the next `PX_FANOUT`
    /// active streams for peers.
    px_round: usize,
}

impl StreamsDriver {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        cfg: &HostConfig,
        identity: &NodeIdentity,
        net: NetHandle,
        cmds: Receiver<StreamCmd>,
        self_tx: Sender<StreamCmd>,
        req_tx: Sender<ReqCmd>,
        requests: RequestHandle,
        sources: Vec<Box<dyn DiscoverySource>>,
        book: Arc<RwLock<PeerBook>>,
        subscribers: Arc<Mutex<Vec<Sender<StreamEvent>>>>,
        status: Arc<RwLock<Option<HostStatus>>>,
        health: Arc<RwLock<Option<HealthStats>>>,
    ) -> Self {
        StreamsDriver {
            sm: StreamManager::new(
                cfg.streams,
                identity.peer_id(),
                cfg.trusted.clone(),
                Instant::now(),
            ),
            me: identity.peer_id(),
            identity: Some(identity.clone()),
            protocol: cfg.net.protocol.clone(),
            net,
            cmds,
            self_tx,
            req_tx,
            requests,
            sources,
            book,
            subscribers,
            status,
            health,
            advertise_every: cfg.advertise_every,
            records_rejected: 0,
            active_peers: std::collections::HashMap::new(),
            px_round: 0,
        }
    }
}

pub(super) fn spawn(mut d: StreamsDriver) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("streams".into())
        .spawn(move || d.run())
}

impl StreamsDriver {
    fn run(&mut self) {
        let actions = self.sm.start(Instant::now());
        self.execute(actions);
        let mut next_advertise = Instant::now() + self.advertise_every;
        loop {
            let now = Instant::now();
            let timeout = self
                .sm
                .next_deadline()
                .min(next_advertise)
                .saturating_duration_since(now);
            let actions = select! {
                recv(self.cmds) -> cmd => match cmd {
                    Ok(StreamCmd::NetUp(info)) => self.sm.on_stream_up(info, Instant::now()),
                    Ok(StreamCmd::NetDown(c)) => {
                        self.sm.on_stream_down(c.id, c.info.as_ref(), c.peer, c.addr, &c.reason, Instant::now())
                    }
                    Ok(StreamCmd::Remove { stream, reason }) => self.sm.remove_stream(stream, reason, Instant::now()),
                    Ok(StreamCmd::Penalize { peer, reason }) => self.sm.penalize_peer(peer, reason, Instant::now()),
                    Ok(StreamCmd::Peers { stream, peer, result }) => self.on_peers(stream, peer, result),
                    Ok(StreamCmd::Throughput(samples)) => self.sm.on_throughput(&samples, Instant::now()),
                    Ok(StreamCmd::Subscribe(tx)) => {
                        for info in self.sm.active() {
                            let _ = tx.send(StreamEvent::Activated(info.clone()));
                        }
                        self.subscribers.lock().push(tx);
                        Vec::new()
                    }
                    Ok(StreamCmd::Shutdown) | Err(_) => break,
                },
                default(timeout) => self.sm.on_tick(Instant::now()),
            };
            self.execute(actions);
            if Instant::now() >= next_advertise {
                if let Some(id) = &self.identity {
                    self.book.write().resign(id);
                }
                next_advertise = Instant::now() + self.advertise_every;
            }
            self.publish_status();
        }
    }

    fn execute(&mut self, actions: Vec<Action>) {
        for a in actions {
            tracing::debug!(me = %self.me, action = ?a, "stream manager");
            match a {
                Action::Dial(p) => {
                    let _ = self.net.dial(p.addr, Some(p.peer));
                }
                Action::Close { stream, reason } => {
                    let why = reason.map_or("housekeeping", RemovalReason::label);
                    let _ = self.net.close(stream, CloseReason::Local(why.to_string()));
                }
                Action::Discover { count } => {
                    let mut found: Vec<PeerAddr> = Vec::new();
                    for s in &mut self.sources {
                        found.extend(s.discover(count));
                    }
                    found.retain(|p| p.peer != self.me);
                    // Ask a few active streams for their peers too: the
                    // pool lists them in a fixed order, so each round
                    // takes the next few (not the same ones every time).
                    let all: Vec<(StreamId, PeerId)> =
                        self.sm.active().map(|i| (i.id, i.peer_id)).collect();
                    let skip = self.px_round.wrapping_mul(PX_FANOUT) % all.len().max(1);
                    self.px_round = self.px_round.wrapping_add(1);
                    let ask: Vec<(StreamId, PeerId)> = all
                        .iter()
                        .cycle()
                        .skip(skip)
                        .take(PX_FANOUT.min(all.len()))
                        .copied()
                        .collect();
                    for (stream, peer) in ask {
                        self.ask_peers(stream, peer);
                    }
                    let more = self.sm.on_discovered(found, Instant::now());
                    self.execute(more);
                }
                Action::Activated(info) => {
                    self.book.write().set_connected(info.peer_id, true);
                    self.active_peers.insert(info.id, info.peer_id);
                    let _ = self.req_tx.send(ReqCmd::Activated(info.id));
                    self.ask_peers(info.id, info.peer_id);
                    self.publish(StreamEvent::Activated(info));
                }
                Action::Deactivated(id) => {
                    // GetPeers answers name the peers we are connected to,
                    // and the set must not grow forever.
                    if let Some(p) = self.active_peers.remove(&id) {
                        self.book.write().set_connected(p, false);
                    }
                    let _ = self.req_tx.send(ReqCmd::Deactivated(id));
                    self.publish(StreamEvent::Deactivated(id));
                }
            }
        }
    }

    fn ask_peers(&self, stream: StreamId, peer: PeerId) {
        let tx = self.self_tx.clone();
        self.requests.submit_with(
            Request::GetPeers(MAX_PEERS_PER_RESPONSE as u32),
            RequestOptions {
                priority: Priority::Low,
                whitelist: Some(vec![stream]),
                blacklist: vec![],
                timeout: Some(PX_TIMEOUT),
            },
            Box::new(move |result| {
                let _ = tx.send(StreamCmd::Peers {
                    stream,
                    peer,
                    result,
                });
            }),
        );
    }

    /// A peer-exchange answer: verify every record; the first must be the
    /// answering peer's own. Forged or garbage records cool the answering
    /// peer down; records of other networks are dropped and counted.
    fn on_peers(&mut self, stream: StreamId, peer: PeerId, result: RequestResult) -> Vec<Action> {
        let (records, from) = match result {
            Ok((Response::Peers(records), from)) => (records, from),
            other => {
                tracing::debug!(stream, %peer, outcome = ?other, "peer exchange failed");
                return Vec::new();
            }
        };
        tracing::debug!(me = %self.me, stream, %peer, records = records.len(), "peer exchange answer");
        let mut learned = Vec::new();
        let mut forged = false;
        for (i, bytes) in records.iter().enumerate() {
            match verify_record(bytes, &self.protocol) {
                Ok(r) => {
                    if i == 0 && r.peer != peer {
                        tracing::warn!(stream, %peer, claimed = %r.peer, "peer advertises itself under another PeerId");
                        forged = true;
                        continue;
                    }
                    if r.peer == self.me {
                        continue;
                    }
                    if let Some(addr) = r.addrs.first() {
                        learned.push(PeerAddr {
                            peer: r.peer,
                            addr: *addr,
                        });
                    }
                    self.book.write().learn(r);
                }
                Err(e) => {
                    self.records_rejected += 1;
                    forged |= e.is_proof_of_invalid_data();
                    tracing::debug!(stream, %peer, error = %e, "peer record rejected");
                }
            }
        }
        let mut out = self
            .sm
            .on_peers_learned(learned, Some(peer), Instant::now());
        if forged {
            out.extend(
                self.sm
                    .remove_stream(from, RemovalReason::CriticalError, Instant::now()),
            );
        }
        out
    }

    fn publish(&self, ev: StreamEvent) {
        self.subscribers
            .lock()
            .retain(|s| s.send(ev.clone()).is_ok());
    }

    fn publish_status(&self) {
        let now = Instant::now();
        let s = self.sm.status(now);
        let health = self.health.read().clone().unwrap_or_default();
        *self.status.write() = Some(HostStatus {
            active: s.active,
            streams: self.sm.active().cloned().collect(),
            reserved: s.reserved,
            setting_up: s.setting_up,
            in_cooldown: s.in_cooldown.iter().map(|(p, _)| *p).collect(),
            cooling: s.cooling,
            discovery: s.discovery,
            health,
            records_rejected: self.records_rejected,
            streams_used: s.activated_total,
            streams_removed: s.removed_total,
            serve_only: s.serve_only,
            recent_removals: s.recent_removals,
        });
    }
}
