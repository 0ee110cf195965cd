//! A network of complete nodes in one thread, in virtual time (DESIGN.md
//! §14). First piece: serving nodes answer with the real server handler
//! over their [`MemChain`]; joining nodes run the real [`SyncMachine`],
//! verify inline (real signatures) and commit into their own `MemChain`.
//! Links have a latency and a seeded jitter; a node can crash (it keeps
//! what it committed, loses everything else) and restart.
//!
//! Not yet modelled (issue 11 goes on): the stream and request managers
//! (a joiner addresses its peers directly), bandwidth, loss, partitions,
//! byzantine behaviours, churn, a CPU cost model. Runs are seeded, but not
//! yet bit-for-bit reproducible: the machine's hash maps iterate in a
//! per-process order.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use super::MemChain;
use crate::chain::verify::CommitteeKeys;
use crate::chain::{ChainBackend, Genesis};
use crate::config::{Config, Network};
use crate::crypto::NodeIdentity;
use crate::net::{StreamId, StreamInfo};
use crate::request::RequestError;
use crate::sync::machine::{BatchId, CommitError};
use crate::sync::{Action, Start, SyncMachine, SyncOutcome, SyncSettings, Tip};
use crate::wire::limits::SOFT_RESPONSE_BYTES;
use crate::wire::{ProtocolId, Response};

/// A node of the simulation.
pub struct SimNode {
    /// What it has committed (survives a crash).
    pub chain: Arc<MemChain>,
    /// Its sync, while it runs one.
    sync: Option<SyncMachine>,
    /// Nodes it syncs from.
    peers: Vec<usize>,
    /// Its identity (seeded).
    identity: NodeIdentity,
    /// Whether it answers requests.
    pub online: bool,
    /// Requests it answered.
    pub served: u64,
    /// How its last sync ended.
    pub outcome: Option<SyncOutcome>,
}

enum Event {
    Response {
        node: usize,
        id: u64,
        result: Result<(Response, StreamId), RequestError>,
        /// The node's incarnation the request belongs to.
        life: u64,
    },
    Verified {
        node: usize,
        job: Box<crate::sync::VerifyJob>,
        life: u64,
    },
    Committed {
        node: usize,
        batch: BatchId,
        result: Result<(), CommitError>,
        life: u64,
    },
}

/// The simulation: nodes, links and virtual time.
pub struct Sim {
    genesis: Genesis,
    nodes: Vec<SimNode>,
    /// Each node's incarnation (bumped by a crash: older events are dropped).
    lives: Vec<u64>,
    now: Instant,
    start: Instant,
    queue: BTreeMap<(Instant, u64), Event>,
    seq: u64,
    rng: ChaCha8Rng,
    latency: Duration,
    jitter: Duration,
    settings: SyncSettings,
    /// Inputs handled (for reports and determinism checks).
    pub events: u64,
}

impl Sim {
    /// An empty network for `genesis`, links of `latency` one way plus a
    /// uniform jitter in `[0, jitter]`, seeded by `seed`.
    pub fn new(genesis: Genesis, seed: u64, latency: Duration, jitter: Duration) -> Self {
        let mut c = Config::for_network(Network::Localnet);
        c.sync.client = true;
        let mut settings = SyncSettings::from_sync(&c.sync);
        settings.min_peers = 1;
        let now = Instant::now();
        Sim {
            genesis,
            nodes: Vec::new(),
            lives: Vec::new(),
            now,
            start: now,
            queue: BTreeMap::new(),
            seq: 0,
            rng: ChaCha8Rng::seed_from_u64(seed),
            latency,
            jitter,
            settings,
            events: 0,
        }
    }

    /// Virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// The nodes.
    pub fn nodes(&self) -> &[SimNode] {
        &self.nodes
    }

    /// Adds a serving node holding `chain`; returns its index.
    pub fn add_server(&mut self, chain: Arc<MemChain>) -> usize {
        let i = self.nodes.len();
        let mut seed = [0u8; 32];
        self.rng.fill_bytes(&mut seed);
        self.nodes.push(SimNode {
            chain,
            sync: None,
            peers: Vec::new(),
            identity: NodeIdentity::from_seed(seed),
            online: true,
            served: 0,
            outcome: None,
        });
        self.lives.push(0);
        i
    }

    /// Adds a node at genesis that syncs from `peers`; returns its index.
    pub fn add_joiner(&mut self, peers: &[usize]) -> Result<usize, String> {
        let chain = Arc::new(MemChain::new(&self.genesis).map_err(|e| e.to_string())?);
        let i = self.add_server(chain);
        self.nodes[i].peers = peers.to_vec();
        self.start_sync(i)?;
        Ok(i)
    }

    /// Starts (or restarts) node `i`'s sync from what it has committed.
    pub fn start_sync(&mut self, i: usize) -> Result<(), String> {
        let node = &self.nodes[i];
        let chain = node.chain.clone();
        let head = chain.head().map_err(|e| e.to_string())?;
        let header = chain
            .header_by_number(head.number)
            .map_err(|e| e.to_string())?
            .ok_or("head header missing")?;
        let spec = chain.chain_spec().clone();
        let mut committees = HashMap::new();
        let e = spec.epoch_of(head.number);
        for epoch in e..=e + 1 {
            if let Some(c) = chain.committee(epoch).map_err(|e| e.to_string())? {
                if let Ok(k) = CommitteeKeys::new(epoch, &c, 0) {
                    committees.insert(epoch, Arc::new(k));
                }
            }
        }
        let start = Start {
            tip: Tip {
                header,
                hash: head.hash,
            },
            committees,
            restored: Default::default(),
            persist: false,
            exit_when_synced: true,
        };
        let mut m = SyncMachine::new(self.settings.clone(), spec, start, self.now);
        let infos: Vec<StreamInfo> = node
            .peers
            .iter()
            .filter(|p| self.nodes[**p].online)
            .map(|p| self.info(*p))
            .collect();
        m.handle_streams(&infos, self.now);
        self.nodes[i].sync = Some(m);
        self.nodes[i].outcome = None;
        self.pump(i);
        Ok(())
    }

    /// Crashes node `i`: it loses everything not committed (its sync, its
    /// requests and answers in flight) and stops answering.
    pub fn crash(&mut self, i: usize) {
        self.nodes[i].sync = None;
        self.nodes[i].online = false;
        self.lives[i] += 1;
    }

    /// Brings a crashed node back; a joiner resumes its sync from what it
    /// committed.
    pub fn restart(&mut self, i: usize) -> Result<(), String> {
        self.nodes[i].online = true;
        if !self.nodes[i].peers.is_empty() {
            self.start_sync(i)?;
        }
        Ok(())
    }

    /// Stream id under which a joiner reaches node `peer`.
    fn stream_of(peer: usize) -> StreamId {
        peer as StreamId + 1
    }

    fn info(&self, peer: usize) -> StreamInfo {
        StreamInfo {
            id: Self::stream_of(peer),
            peer_id: self.nodes[peer].identity.peer_id(),
            addr: std::net::SocketAddr::from(([10, 0, (peer >> 8) as u8, peer as u8], 9000)),
            protocol: ProtocolId::sync(Network::Localnet, 0),
            inbound: false,
        }
    }

    /// One way across a link.
    fn hop(&mut self) -> Duration {
        let j = self.jitter.as_nanos() as u64;
        let extra = if j == 0 {
            0
        } else {
            self.rng.next_u64() % (j + 1)
        };
        self.latency + Duration::from_nanos(extra)
    }

    fn at(&mut self, at: Instant, e: Event) {
        self.seq += 1;
        self.queue.insert((at, self.seq), e);
    }

    /// Carries out node `i`'s machine's actions.
    fn pump(&mut self, i: usize) {
        let life = self.lives[i];
        loop {
            let Some(a) = self.nodes[i].sync.as_mut().and_then(|m| m.poll_action()) else {
                break;
            };
            match a {
                Action::Submit {
                    id,
                    request,
                    stream,
                    timeout,
                    ..
                } => {
                    let peer = (stream as usize).wrapping_sub(1);
                    let up = self.nodes.get(peer).is_some_and(|n| n.online);
                    if up {
                        let p = &mut self.nodes[peer];
                        p.served += 1;
                        let r = crate::server::answer(
                            p.chain.as_ref(),
                            &request,
                            SOFT_RESPONSE_BYTES,
                            &|_| Vec::new(),
                        );
                        let rtt = self.hop() + self.hop();
                        let at = self.now + rtt;
                        self.at(
                            at,
                            Event::Response {
                                node: i,
                                id,
                                result: Ok((r, stream)),
                                life,
                            },
                        );
                    } else {
                        let at = self.now + timeout;
                        self.at(
                            at,
                            Event::Response {
                                node: i,
                                id,
                                result: Err(RequestError::Timeout(timeout)),
                                life,
                            },
                        );
                    }
                }
                Action::Cancel { id } => {
                    self.queue.retain(|_, e| {
                        !matches!(e, Event::Response { node, id: x, .. } if *node == i && *x == id)
                    });
                }
                Action::Verify(job) => {
                    let now = self.now;
                    self.at(now, Event::Verified { node: i, job, life });
                }
                Action::Commit(job) => {
                    let batch = crate::chain::backend::InsertBatch {
                        blocks: job.blocks.clone(),
                        progress: job.progress.clone(),
                    };
                    let result = self.nodes[i]
                        .chain
                        .insert_verified_batch(&batch)
                        .map(|_| ())
                        .map_err(|e| CommitError(e.to_string()));
                    let now = self.now;
                    self.at(
                        now,
                        Event::Committed {
                            node: i,
                            batch: job.batch,
                            result,
                            life,
                        },
                    );
                }
                Action::Blame { .. }
                | Action::Stage(_)
                | Action::Unstage { .. }
                | Action::Status(_)
                | Action::Stat(_) => {}
            }
        }
        if let Some(o) = self.nodes[i].sync.as_ref().and_then(|m| m.outcome()) {
            self.nodes[i].outcome = Some(o.clone());
            self.nodes[i].sync = None;
        }
    }

    /// Runs until `done` holds or `limit` of virtual time has passed;
    /// returns whether `done` held.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Sim) -> bool) -> bool {
        let end = self.now + limit;
        loop {
            if done(self) {
                return true;
            }
            let next_q = self.queue.keys().next().map(|(t, _)| *t);
            let next_m = self
                .nodes
                .iter()
                .filter_map(|n| n.sync.as_ref().and_then(|m| m.next_deadline()))
                .min();
            let next = match (next_q, next_m) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) | (None, Some(a)) => a,
                (None, None) => return false,
            };
            if next > end {
                self.now = end;
                return done(self);
            }
            self.now = self.now.max(next);
            let now = self.now;
            let mut touched = Vec::new();
            while self.queue.keys().next().is_some_and(|(t, _)| *t <= now) {
                let Some((_, e)) = self.queue.pop_first() else {
                    break;
                };
                self.events += 1;
                let (node, life) = match &e {
                    Event::Response { node, life, .. }
                    | Event::Verified { node, life, .. }
                    | Event::Committed { node, life, .. } => (*node, *life),
                };
                if life != self.lives[node] {
                    continue; // for a crashed incarnation
                }
                let Some(m) = self.nodes[node].sync.as_mut() else {
                    continue;
                };
                match e {
                    Event::Response { id, result, .. } => m.handle_response(id, result, now),
                    Event::Verified { job, .. } => {
                        let check = job.run();
                        m.handle_verified(job.batch, check, now)
                    }
                    Event::Committed { batch, result, .. } => {
                        m.handle_committed(batch, result, now)
                    }
                }
                touched.push(node);
            }
            for i in 0..self.nodes.len() {
                if let Some(m) = self.nodes[i].sync.as_mut() {
                    if m.next_deadline().is_some_and(|d| d <= now) {
                        m.handle_timeout(now);
                        touched.push(i);
                    }
                }
            }
            touched.sort_unstable();
            touched.dedup();
            for i in touched {
                self.pump(i);
            }
        }
    }
}
