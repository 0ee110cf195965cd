//! The `streams` thread: feeds the [`StreamManager`], carries out its
//! actions, runs discovery and peer exchange.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam::channel::{select, Receiver, Sender};
use libp2p_identity::PeerId;
use parking_lot::{Mutex, RwLock};

use super::known_peers;
use super::peer_book::PeerBook;
use super::requests::{ReqCmd, RequestHandle, RequestResult};
use super::{DiscoverySource, HostConfig, HostStatus, StreamEvent};
use crate::crypto::NodeIdentity;
use crate::metrics::names;
use crate::net::{CloseReason, NetHandle, StreamClosed, StreamId, StreamInfo};
use crate::request::{HealthStats, Priority, RequestOptions};
use crate::stream::record::verify_record;
use crate::stream::{Action, PeerAddr, RemovalReason, StreamManager, StreamStats};
use crate::wire::limits::MAX_PEERS_PER_RESPONSE;
use crate::wire::{ProtocolId, Request, Response};

/// Time limit of one peer-exchange request.
const PX_TIMEOUT: Duration = Duration::from_secs(10);
/// Active streams asked for peers per discovery round.
const PX_FANOUT: usize = 3;
/// The known peers are saved at most this often (and at shutdown), when
/// they changed.
const KNOWN_PEERS_SAVE_EVERY: Duration = Duration::from_secs(30);

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
    #[cfg_attr(not(feature = "testkit"), allow(dead_code))]
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
    /// Peer-exchange questions asked and not yet answered (each asked
    /// request delivers exactly one result).
    px_pending: usize,
    /// The stream manager's metrics as last published (`None`: never).
    published: Option<StreamStats>,
    /// Where the known peers are saved, if anywhere.
    peers_file: Option<std::path::PathBuf>,
    /// The stream manager's known-peer change count when last saved.
    saved_known: u64,
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
        let saved = cfg.peers_file.as_deref().map_or_else(Vec::new, |path| {
            known_peers::load(path).unwrap_or_else(|e| {
                tracing::warn!(file = %path.display(), error = %e, "cannot read the known peers; starting without them");
                Vec::new()
            })
        });
        StreamsDriver {
            peers_file: cfg.peers_file.clone(),
            saved_known: 0,
            sm: StreamManager::new(
                cfg.streams,
                identity.peer_id(),
                cfg.trusted.clone(),
                Instant::now(),
            )
            .with_entry_peers(cfg.boot.iter().map(|p| p.peer))
            .with_known_peers(saved),
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
            px_pending: 0,
            published: None,
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
        self.publish_metrics();
        let mut next_advertise = Instant::now() + self.advertise_every;
        let mut next_save = Instant::now() + KNOWN_PEERS_SAVE_EVERY;
        loop {
            let now = Instant::now();
            let timeout = self
                .sm
                .next_deadline()
                .min(next_advertise)
                .min(next_save)
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
            self.publish_metrics();
            if Instant::now() >= next_advertise {
                if let Some(id) = &self.identity {
                    self.book.write().resign(id);
                }
                next_advertise = Instant::now() + self.advertise_every;
            }
            if Instant::now() >= next_save {
                self.save_known_peers();
                next_save = Instant::now() + KNOWN_PEERS_SAVE_EVERY;
            }
            self.publish_status();
        }
        self.save_known_peers();
    }

    /// Saves the known peers if they changed since the last save (a few
    /// kilobytes, at most every [`KNOWN_PEERS_SAVE_EVERY`] and at shutdown).
    fn save_known_peers(&mut self) {
        let Some(path) = &self.peers_file else {
            return;
        };
        let changes = self.sm.known_changes();
        if changes == self.saved_known {
            return;
        }
        let peers: Vec<PeerAddr> = self.sm.known_peers().copied().collect();
        match known_peers::save(path, &peers) {
            Ok(()) => self.saved_known = changes,
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "cannot save the known peers")
            }
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

    fn ask_peers(&mut self, stream: StreamId, peer: PeerId) {
        self.px_pending += 1;
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
        self.px_pending = self.px_pending.saturating_sub(1);
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

    /// Publishes the stream manager's metrics (the core never touches the
    /// global recorder).
    fn publish_metrics(&mut self) {
        let now = self.sm.stats();
        let was = self.published.replace(now);
        publish_stream_stats(was.as_ref(), &now, self.sm.drain_setup_durations());
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
            ready: self.sm.ready_streams(self.px_pending > 0),
            streams: self.sm.active().cloned().collect(),
            reserved: s.reserved,
            setting_up: s.setting_up,
            in_cooldown: s.in_cooldown,
            cooling: s.cooling,
            discovery: s.discovery,
            stream_stats: self.published.unwrap_or_else(|| self.sm.stats()),
            health,
            records_rejected: self.records_rejected,
            streams_used: s.activated_total,
            streams_removed: s.removed_total,
            serve_only: s.serve_only,
            recent_removals: s.recent_removals,
        });
    }
}

/// Publishes to the `metrics` recorder, under the guide's names, what a
/// stream manager counted between `was` (its stats at the last call;
/// `None`: never published) and `now`, and its setup durations since.
/// Gauges are set when they changed (always the first time).
pub(crate) fn publish_stream_stats(
    was: Option<&StreamStats>,
    now: &StreamStats,
    setup_durations: impl Iterator<Item = f64>,
) {
    let first = was.is_none();
    let was = was.copied().unwrap_or_default();
    let add = |name: &'static str, now: u64, was: u64| {
        if now > was {
            metrics::counter!(name).increment(now - was);
        }
    };
    add(names::ADDED_STREAMS, now.added_streams, was.added_streams);
    add(
        names::REMOVED_STREAMS,
        now.removed_streams,
        was.removed_streams,
    );
    add(
        names::STREAM_CRITICAL_ERRORS,
        now.critical_errors,
        was.critical_errors,
    );
    add(names::DISCOVER, now.discover, was.discover);
    add(
        names::DISCOVER_PEERS,
        now.discover_peers,
        was.discover_peers,
    );
    for r in RemovalReason::ALL {
        let d = now.removals(r).saturating_sub(was.removals(r));
        if d > 0 {
            metrics::counter!(names::STREAM_REMOVAL_REASONS, names::LABEL_REASON => r.label())
                .increment(d);
        }
    }
    if first || now.num_streams != was.num_streams {
        metrics::gauge!(names::NUM_STREAMS).set(now.num_streams as f64);
    }
    if first || now.num_reserved_streams != was.num_reserved_streams {
        metrics::gauge!(names::NUM_RESERVED_STREAMS).set(now.num_reserved_streams as f64);
    }
    for v in setup_durations {
        metrics::histogram!(names::SETUP_STREAM_DURATION).record(v);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::test_util::nonzero;
    use std::net::SocketAddr;
    use std::time::{Duration, Instant};

    use libp2p_identity::PeerId;

    use super::publish_stream_stats;
    use crate::config::{Network, SyncConfig};
    use crate::crypto::NodeIdentity;
    use crate::net::{CloseReason, StreamInfo};
    use crate::stream::{PeerAddr, RemovalReason, StreamManager, StreamManagerConfig};
    use crate::wire::ProtocolId;

    fn peer(i: u8) -> PeerId {
        NodeIdentity::from_seed([i; 32]).peer_id()
    }

    fn addr(i: u8) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 20_000 + u16::from(i)))
    }

    fn info(i: u8, id: u64) -> StreamInfo {
        StreamInfo {
            id,
            peer_id: peer(i),
            addr: addr(i),
            protocol: ProtocolId::sync(Network::Mainnet, 0),
            inbound: false,
        }
    }

    /// Dials, setups, activations, a reserve, every kind of removal, dial
    /// timeouts; `publish` after every input, as the driver does.
    fn script(publish: &mut dyn FnMut(&mut StreamManager)) {
        let mut s = SyncConfig::for_network(Network::Mainnet);
        s.disc_hard_low_cap = 2;
        s.disc_soft_low_cap = 3;
        s.disc_high_cap = 4;
        s.max_reserved_streams = 2;
        s.disc_batch = 5;
        s.setup_concurrency = 8;
        let cfg = StreamManagerConfig::from_sync(&s);
        let t0 = Instant::now();
        let trusted = PeerAddr {
            peer: peer(1),
            addr: addr(1),
        };
        let mut sm = StreamManager::new(cfg, peer(0), vec![trusted], t0);
        let mut now = t0;
        sm.start(now);
        publish(&mut sm);
        let found: Vec<PeerAddr> = (2..12)
            .map(|i| PeerAddr {
                peer: peer(i),
                addr: addr(i),
            })
            .collect();
        sm.on_discovered(found, now);
        publish(&mut sm);
        for i in 1..9u8 {
            now += Duration::from_millis(7 * u64::from(i));
            sm.on_stream_up(info(i, u64::from(i)), now);
            publish(&mut sm);
        }
        sm.remove_stream(2, RemovalReason::Slow, now);
        publish(&mut sm);
        sm.remove_stream(1, RemovalReason::CriticalError, now);
        publish(&mut sm);
        let closed = CloseReason::PeerClosed;
        sm.on_stream_down(3, Some(&info(3, 3)), Some(peer(3)), addr(3), &closed, now);
        publish(&mut sm);
        let limited = CloseReason::RateLimitViolation;
        sm.on_stream_down(4, Some(&info(4, 4)), Some(peer(4)), addr(4), &limited, now);
        publish(&mut sm);
        sm.penalize_peer(peer(5), RemovalReason::InvalidResponse, now);
        publish(&mut sm);
        now += Duration::from_secs(61);
        sm.on_tick(now);
        publish(&mut sm);
        now += Duration::from_secs(600);
        sm.on_tick(now);
        publish(&mut sm);
        for i in 20..24u8 {
            now += Duration::from_millis(3);
            sm.on_stream_up(info(i, u64::from(i)), now);
            publish(&mut sm);
        }
    }

    /// Runs the script under a recorder of its own and renders it.
    fn render(publish: &mut dyn FnMut(&mut StreamManager)) -> String {
        crate::test_util::render_metrics(|| script(publish))
    }

    #[test]
    fn the_stream_manager_writes_nothing_to_the_recorder() {
        let text = render(&mut |_| {});
        assert_eq!(nonzero(&text), BTreeMap::new());
    }

    /// The values are those the manager wrote itself before it kept its
    /// metrics for the driver (the same script rendered on fe90e46, series
    /// for series), except three more connection failures: since the
    /// manager redials peers it knew, the check at +61 s offers again the
    /// peers it had dialled that lost their streams without a critical
    /// fault, and three of those dials time out by +600 s.
    #[test]
    fn the_driver_publishes_what_the_stream_manager_counted() {
        let mut was = None;
        let text = render(&mut |sm| {
            let now = sm.stats();
            publish_stream_stats(was.as_ref(), &now, sm.drain_setup_durations());
            was = Some(now);
        });
        let reason =
            |r: &str| format!("hmy_stream_stream_removal_reasons{{topic=\"t\",reason=\"{r}\"}}");
        let expected: BTreeMap<String, String> = [
            ("hmy_stream_added_streams{topic=\"t\"}".to_string(), "8"),
            ("hmy_stream_removed_streams{topic=\"t\"}".to_string(), "4"),
            ("hmy_stream_discover{topic=\"t\"}".to_string(), "2"),
            ("hmy_stream_discover_peers{topic=\"t\"}".to_string(), "5"),
            (
                "hmy_stream_stream_critical_errors{topic=\"t\"}".to_string(),
                "1",
            ),
            (reason("critical error"), "1"),
            (reason("connection failure"), "9"),
            (reason("invalid response"), "1"),
            (reason("slow"), "1"),
            (reason("rate-limit violation"), "1"),
            ("hmy_stream_num_streams{topic=\"t\"}".to_string(), "4"),
            (
                "hmy_stream_num_reserved_streams{topic=\"t\"}".to_string(),
                "2",
            ),
            (
                "hmy_stream_setup_stream_duration_sum{topic=\"t\"}".to_string(),
                "0.392",
            ),
            (
                "hmy_stream_setup_stream_duration_count{topic=\"t\"}".to_string(),
                "6",
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k, v.to_string()))
        .collect();
        assert_eq!(nonzero(&text), expected);
    }

    #[test]
    fn removal_reasons_follow_the_guides_labels() {
        let labels = RemovalReason::ALL.map(RemovalReason::label);
        assert_eq!(labels, crate::metrics::names::REMOVAL_REASONS);
        for (i, r) in RemovalReason::ALL.into_iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }
}
