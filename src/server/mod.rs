//! The sync protocol server (DESIGN.md §6): answers peers' requests from a
//! [`ChainBackend`] on a small worker pool, never on the network thread.
//!
//! Owns: its worker threads and the rate limiter. Fed by the network
//! thread's request channel; answers through the [`NetHandle`]. Over the
//! rate limit a request gets `ErrorResponse{rate_limited, retry_after_ms}`
//! instead of a stalled stream; a peer that keeps sending past that is
//! disconnected as a rate-limit violation.

pub(crate) mod handler;
pub(crate) mod rate_limit;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam::channel::Receiver;
use parking_lot::Mutex;

pub use handler::{answer, PeerSource};
pub use rate_limit::{Decision, Rate, RateLimiter, RateLimits};

use crate::chain::ChainBackend;
use crate::metrics::names;
use crate::net::{CloseReason, InboundRequest, NetHandle};
use crate::wire::limits::SOFT_RESPONSE_BYTES;
use crate::wire::{ErrorCode, Message, Response};

/// Server settings.
#[derive(Clone, Copy, Debug)]
pub struct ServerConfig {
    /// Worker threads answering requests.
    pub workers: usize,
    /// Rate limits.
    pub limits: RateLimits,
    /// Soft limit of one block response, bytes.
    pub soft_response_bytes: usize,
    /// Answer requests (true), or drop them silently (`localnet
    /// --byzantine` simulates a silent peer with it). Test support: only
    /// with the `testkit` feature.
    #[cfg(feature = "testkit")]
    pub answer: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            workers: 2,
            limits: RateLimits::default(),
            soft_response_bytes: SOFT_RESPONSE_BYTES,
            #[cfg(feature = "testkit")]
            answer: true,
        }
    }
}

/// A running server. Its workers stop when the network's request channel
/// closes (the network thread stopped); [`Server::join`] waits for them.
pub struct Server {
    workers: Vec<JoinHandle<()>>,
    served: Arc<AtomicU64>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("workers", &self.workers.len())
            .finish()
    }
}

struct Shared {
    backend: Arc<dyn ChainBackend>,
    net: NetHandle,
    limiter: Mutex<RateLimiter>,
    peers: Arc<PeerSource>,
    soft_limit: usize,
    #[cfg(feature = "testkit")]
    answer: bool,
    /// Blocks sent in answers (block and epoch-state answers), since start.
    served: Arc<AtomicU64>,
}

impl Server {
    /// Starts `cfg.workers` workers answering `requests` from `backend`.
    /// `peers` answers `GetPeers`.
    pub fn start(
        cfg: ServerConfig,
        backend: Arc<dyn ChainBackend>,
        net: NetHandle,
        requests: Receiver<InboundRequest>,
        peers: Arc<PeerSource>,
    ) -> std::io::Result<Server> {
        let served = Arc::new(AtomicU64::new(0));
        let shared = Arc::new(Shared {
            served: served.clone(),
            backend,
            net,
            limiter: Mutex::new(RateLimiter::new(cfg.limits, Instant::now())),
            peers,
            soft_limit: cfg.soft_response_bytes,
            #[cfg(feature = "testkit")]
            answer: cfg.answer,
        });
        let workers = (0..cfg.workers.max(1))
            .map(|i| {
                let shared = shared.clone();
                let requests = requests.clone();
                std::thread::Builder::new()
                    .name(format!("server-{i}"))
                    .spawn(move || worker(&shared, &requests))
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Server { workers, served })
    }

    /// Blocks this server has sent in answers since it started (what
    /// `localnet --plot` draws per peer).
    pub fn blocks_served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    /// Waits for the workers (they end when the network thread stops).
    pub fn join(mut self) {
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

fn worker(s: &Shared, requests: &Receiver<InboundRequest>) {
    let num_server_request = metrics::counter!(names::NUM_SERVER_REQUEST);
    let sync_server_request = metrics::counter!(names::SYNC_SERVER_REQUEST);
    let delay = metrics::histogram!(names::SERVER_REQUEST_DELAY);
    for req in requests.iter() {
        #[cfg(feature = "testkit")]
        if !s.answer {
            continue;
        }
        num_server_request.increment(1);
        sync_server_request.increment(1);
        let now = Instant::now();
        let decision = s.limiter.lock().check(req.stream, now);
        let response = match decision {
            Decision::Allow => answer(
                s.backend.as_ref(),
                &req.request,
                s.soft_limit,
                s.peers.as_ref(),
            ),
            Decision::Limited(wait) => Response::Error {
                code: ErrorCode::RateLimited,
                // Rounded up: a client that waits exactly this long is
                // admitted, not struck.
                retry_after_ms: wait.as_micros().div_ceil(1000).max(1) as u64,
                message: "rate limited".into(),
            },
            Decision::Violation => {
                tracing::warn!(stream = req.stream, peer = %req.peer, "rate-limit violation: closing stream");
                s.limiter.lock().forget(req.stream);
                let _ = s.net.close(req.stream, CloseReason::RateLimitViolation);
                continue;
            }
        };
        let blocks = match &response {
            Response::Blocks(bs) => bs.iter().flatten().count(),
            Response::EpochState(Some(_)) => 1,
            _ => 0,
        };
        let frame = Message::Response(req.id, response).encode();
        if decision == Decision::Allow {
            s.limiter
                .lock()
                .charge_served(req.stream, frame.len(), blocks, Instant::now());
        }
        if s.net.send_encoded(req.stream, frame).is_err() {
            return;
        }
        s.served.fetch_add(blocks as u64, Ordering::Relaxed);
        delay.record(req.received.elapsed().as_secs_f64());
    }
}
