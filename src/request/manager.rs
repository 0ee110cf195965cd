//! The request manager core (DESIGN.md §8): who sends which request on which
//! stream, and when. Sans-IO: inputs take `now`, outputs are [`RmAction`]s.
//!
//! - two queues (high, low), at most `max_waiting` (1024) waiting requests in
//!   all; past that `submit` fails at once;
//! - each stream has an in-flight window: slow start (+1 per success, so it
//!   doubles every round trip) until its first timeout, then additive
//!   increase (+1 per window of successes); halved on a timeout; 1..=32. A
//!   link with a long round trip needs its window filled quickly;
//! - dispatch runs on every input (new request, response, stream added,
//!   tick), never on a fixed tick;
//! - stream choice: the eligible stream with room in its window and the
//!   lowest expected completion time, `(in_flight + 1) × EWMA latency ×
//!   (1 + recent failures)`; a stream that answered `rate_limited` is paused
//!   for `retry_after`;
//! - each attempt has a deadline adaptive from the stream's latency (4 ×
//!   EWMA, at least `min_attempt_timeout`), never above
//!   `PendingRequestTimeout`; a timed-out attempt is retried on another
//!   stream until the caller's own timeout or `max_attempts`;
//! - with no stream for `NoStreamTimeout`, waiting requests fail;
//! - a removed stream's in-flight requests go back to the front of the high
//!   queue, they do not fail;
//! - responses are matched by (stream, request id); late and duplicate ones
//!   are dropped and counted, unsolicited ones reported as misbehaviour.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use crate::metrics::{names, Samples};
use crate::net::StreamId;
use crate::wire::{ErrorCode, Request, RequestId, Response};

/// Identifies one submitted request to its caller.
pub type Ticket = u64;

/// Request priority.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Priority {
    /// Epoch sync, consensus-triggered downloads, retries.
    High,
    /// Regular downloads.
    #[default]
    Low,
}

/// Per-request options.
#[derive(Clone, Debug, Default)]
pub struct RequestOptions {
    /// Queue.
    pub priority: Priority,
    /// Only these streams (if given).
    pub whitelist: Option<Vec<StreamId>>,
    /// Never these streams.
    pub blacklist: Vec<StreamId>,
    /// Overall limit from submission (clamped to `PendingRequestTimeout`).
    pub timeout: Option<Duration>,
}

/// Why a request failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The waiting queue is full.
    #[error("request queue full ({limit} waiting): try again later")]
    QueueFull {
        /// The limit.
        limit: usize,
    },
    /// No stream existed for `NoStreamTimeout`.
    #[error("no stream available for {0:?}")]
    NoStream(Duration),
    /// No response within the request's time limit.
    #[error("request timed out after {0:?}")]
    Timeout(Duration),
    /// Cancelled by the caller.
    #[error("request cancelled")]
    Cancelled,
    /// The request manager stopped.
    #[error("request manager stopped")]
    Shutdown,
}

/// What the driver must do.
#[derive(Clone, Debug, PartialEq)]
pub enum RmAction {
    /// Send `request` with id `id` on `stream`.
    Send {
        /// The stream.
        stream: StreamId,
        /// The wire request id.
        id: RequestId,
        /// The request.
        request: Request,
    },
    /// Hand the outcome to the caller of `ticket`.
    Deliver {
        /// The caller.
        ticket: Ticket,
        /// The outcome.
        result: Result<(Response, StreamId), RequestError>,
    },
    /// A stream answered a request it was never sent: report it.
    Misbehaved {
        /// The stream.
        stream: StreamId,
    },
    /// A stream let `UNRESPONSIVE_TIMEOUTS` requests in a row time out: a
    /// soft failure, reported so the stream manager can replace it.
    Unresponsive {
        /// The stream.
        stream: StreamId,
    },
}

/// Timeouts in a row, with no answer between, after which a stream is
/// reported unresponsive.
pub const UNRESPONSIVE_TIMEOUTS: u32 = 3;

/// Settings.
#[derive(Clone, Copy, Debug)]
pub struct RmConfig {
    /// Most waiting requests (Harmony's `maxWaitingSize`, 1024).
    pub max_waiting: usize,
    /// `PendingRequestTimeout` (180 s): no attempt or request outlives it.
    pub pending_timeout: Duration,
    /// `NoStreamTimeout` (60 s).
    pub no_stream_timeout: Duration,
    /// Shortest adaptive attempt deadline.
    pub min_attempt_timeout: Duration,
    /// Attempts per request before it fails as timed out.
    pub max_attempts: u32,
    /// Starting in-flight window of a new stream.
    pub initial_window: u32,
    /// Largest window.
    pub max_window: u32,
    /// Latency assumed for a stream with no sample yet.
    pub default_latency: Duration,
}

impl Default for RmConfig {
    fn default() -> Self {
        RmConfig {
            max_waiting: 1024,
            pending_timeout: Duration::from_secs(180),
            no_stream_timeout: Duration::from_secs(60),
            min_attempt_timeout: Duration::from_secs(2),
            max_attempts: 3,
            initial_window: 4,
            max_window: 32,
            default_latency: Duration::from_millis(100),
        }
    }
}

/// `health_stats()` (the guide's `GetStreamHealthStats`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HealthStats {
    /// Streams known.
    pub total_streams: usize,
    /// Streams with room in their window and not paused.
    pub available_streams: usize,
    /// Sum of recent failures over streams.
    pub total_failures: u64,
    /// failures → number of streams with that many.
    pub failure_distribution: Vec<(u32, usize)>,
    /// Average failures per stream.
    pub average_failures: f64,
    /// The recent failures of each stream (timed-out attempts, one
    /// forgiven per 64 answers), by stream id: what `total_failures` and
    /// `failure_distribution` sum up.
    pub stream_failures: Vec<(StreamId, u32)>,
}

/// The request manager's metrics (DESIGN.md §11): counters since it
/// started and gauges as they are now, kept by the core rather than written
/// to the process-global recorder (a simulator runs thousands of managers
/// in one process). The `requests` driver publishes them under the guide's
/// names; request delays (a histogram) are drained with
/// [`RequestManager::drain_request_delays`]. The gauge of available
/// streams depends on the time: it is [`HealthStats::available_streams`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RmStats {
    /// `hmy_stream_sync_client_request`: attempts sent.
    pub client_requests: u64,
    /// `hmy_stream_sync_failed_client_request`: requests that failed
    /// (timed out, or no stream).
    pub failed_client_requests: u64,
    /// `hmy_stream_num_waiting_requests` (gauge).
    pub waiting: usize,
    /// `hmy_stream_num_pending_requests` (gauge): requests in flight.
    pub pending: usize,
    /// `hmy_stream_request_manager_num_connected_streams` (gauge).
    pub connected_streams: usize,
}

#[derive(Clone, Debug)]
struct Job {
    ticket: Ticket,
    request: Request,
    opts: RequestOptions,
    submitted: Instant,
    attempts: u32,
}

struct Flight {
    job: Job,
    sent: Instant,
    deadline: Instant,
}

#[derive(Clone, Debug)]
struct StreamState {
    in_flight: u32,
    window: f64,
    latency: Option<f64>,
    failures: u32,
    paused_until: Option<Instant>,
    done: u64,
    timeouts_in_a_row: u32,
    /// No timeout yet: the window grows by one per success.
    slow_start: bool,
}

/// EWMA weight of a new latency sample.
const EWMA_ALPHA: f64 = 0.2;
/// Recently finished (stream, id) pairs remembered to tell late and
/// duplicate responses from unsolicited ones.
const RECENT_MEMORY: usize = 8192;

/// The request manager.
pub struct RequestManager {
    cfg: RmConfig,
    high: VecDeque<Job>,
    low: VecDeque<Job>,
    /// Iterated on every dispatch and report: ordered by stream id so every
    /// decision is a function of the inputs (DESIGN.md §14). Small (the
    /// active pool).
    streams: BTreeMap<StreamId, StreamState>,
    /// Iterated when attempts expire and streams go: ordered by (stream,
    /// request id), our own ids. At most streams × `max_window` entries,
    /// touched once per request, not per block.
    flights: BTreeMap<(StreamId, RequestId), Flight>,
    next_id: RequestId,
    next_ticket: Ticket,
    no_stream_since: Option<Instant>,
    /// Only looked up (with ids a peer sends): a hash set.
    recent: HashSet<(StreamId, RequestId)>,
    recent_order: VecDeque<(StreamId, RequestId)>,
    stale: u64,
    /// Counters for the driver (see [`RmStats`]).
    client_requests: u64,
    failed_client_requests: u64,
    /// `hmy_stream_sync_client_request_delay` samples not yet drained.
    delays: Samples,
}

impl std::fmt::Debug for RequestManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestManager")
            .field("waiting", &self.waiting())
            .field("pending", &self.flights.len())
            .field("streams", &self.streams.len())
            .finish()
    }
}

impl RequestManager {
    /// An empty manager.
    pub fn new(cfg: RmConfig, now: Instant) -> Self {
        RequestManager {
            cfg,
            high: VecDeque::new(),
            low: VecDeque::new(),
            streams: BTreeMap::new(),
            flights: BTreeMap::new(),
            next_id: 1,
            next_ticket: 1,
            no_stream_since: Some(now),
            recent: HashSet::new(),
            recent_order: VecDeque::new(),
            stale: 0,
            client_requests: 0,
            failed_client_requests: 0,
            delays: Samples::default(),
        }
    }

    /// Requests waiting for a stream.
    pub fn waiting(&self) -> usize {
        self.high.len() + self.low.len()
    }

    /// Requests in flight.
    #[cfg(any(test, feature = "testkit"))]
    pub fn pending(&self) -> usize {
        self.flights.len()
    }

    /// Late or duplicate responses dropped so far.
    #[cfg(any(test, feature = "testkit"))]
    pub fn stale_responses(&self) -> u64 {
        self.stale
    }

    /// The in-flight window of `stream`.
    #[cfg(any(test, feature = "testkit"))]
    pub fn window(&self, stream: StreamId) -> Option<u32> {
        self.streams.get(&stream).map(|s| s.window as u32)
    }

    /// Requests answered per second by each stream (1 / EWMA latency), for
    /// the stream manager's slow-stream detection, by stream id.
    pub fn throughput(&self) -> Vec<(StreamId, f64)> {
        self.streams
            .iter()
            .filter_map(|(id, s)| s.latency.map(|l| (*id, s.window / l.max(1e-6))))
            .collect()
    }

    /// Submits a request. Fails at once when the queue is full.
    pub fn submit(
        &mut self,
        request: Request,
        opts: RequestOptions,
        now: Instant,
        out: &mut Vec<RmAction>,
    ) -> Result<Ticket, RequestError> {
        if self.waiting() >= self.cfg.max_waiting {
            return Err(RequestError::QueueFull {
                limit: self.cfg.max_waiting,
            });
        }
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        let job = Job {
            ticket,
            request,
            submitted: now,
            attempts: 0,
            opts,
        };
        match job.opts.priority {
            Priority::High => self.high.push_back(job),
            Priority::Low => self.low.push_back(job),
        }
        self.dispatch(now, out);
        Ok(ticket)
    }

    /// Cancels `ticket` wherever it is; its caller gets `Cancelled`.
    pub fn cancel(&mut self, ticket: Ticket, out: &mut Vec<RmAction>) {
        let before = self.waiting();
        self.high.retain(|j| j.ticket != ticket);
        self.low.retain(|j| j.ticket != ticket);
        let mut found = self.waiting() != before;
        if let Some(key) = self
            .flights
            .iter()
            .find(|(_, f)| f.job.ticket == ticket)
            .map(|(k, _)| *k)
        {
            self.flights.remove(&key);
            if let Some(s) = self.streams.get_mut(&key.0) {
                s.in_flight = s.in_flight.saturating_sub(1);
            }
            self.remember(key);
            found = true;
        }
        if found {
            out.push(RmAction::Deliver {
                ticket,
                result: Err(RequestError::Cancelled),
            });
        }
    }

    /// A stream became available.
    pub fn on_stream_added(&mut self, stream: StreamId, now: Instant, out: &mut Vec<RmAction>) {
        self.streams.entry(stream).or_insert(StreamState {
            in_flight: 0,
            window: f64::from(self.cfg.initial_window),
            latency: None,
            failures: 0,
            paused_until: None,
            done: 0,
            timeouts_in_a_row: 0,
            slow_start: true,
        });
        self.no_stream_since = None;
        self.dispatch(now, out);
    }

    /// A stream went away: its in-flight requests go back to the front of
    /// the high queue.
    pub fn on_stream_removed(&mut self, stream: StreamId, now: Instant, out: &mut Vec<RmAction>) {
        if self.streams.remove(&stream).is_none() {
            return;
        }
        let keys: Vec<_> = self
            .flights
            .range((stream, RequestId::MIN)..=(stream, RequestId::MAX))
            .map(|(k, _)| *k)
            .collect();
        let mut jobs: Vec<Job> = keys
            .into_iter()
            .filter_map(|k| {
                self.remember(k);
                self.flights.remove(&k).map(|f| f.job)
            })
            .collect();
        jobs.sort_by_key(|j| j.submitted);
        for j in jobs.into_iter().rev() {
            self.high.push_front(j);
        }
        if self.streams.is_empty() {
            self.no_stream_since = Some(now);
        }
        self.dispatch(now, out);
    }

    /// A response arrived on `stream` for request `id`.
    pub fn on_response(
        &mut self,
        stream: StreamId,
        id: RequestId,
        response: Response,
        now: Instant,
        out: &mut Vec<RmAction>,
    ) {
        let Some(f) = self.flights.remove(&(stream, id)) else {
            if self.recent.contains(&(stream, id)) {
                self.stale += 1;
            } else {
                out.push(RmAction::Misbehaved { stream });
            }
            return;
        };
        self.remember((stream, id));
        let max_window = f64::from(self.cfg.max_window);
        if let Some(s) = self.streams.get_mut(&stream) {
            s.in_flight = s.in_flight.saturating_sub(1);
            if let Response::Error {
                code: ErrorCode::RateLimited,
                retry_after_ms,
                ..
            } = response
            {
                // Not a failure: pause the stream, retry the request first.
                let wait = Duration::from_millis(retry_after_ms.clamp(1, 60_000));
                s.paused_until = Some(now + wait);
                s.window = (s.window / 2.0).max(1.0);
                self.high.push_front(f.job);
                self.dispatch(now, out);
                return;
            }
            let sample = now.saturating_duration_since(f.sent).as_secs_f64();
            s.latency = Some(match s.latency {
                None => sample,
                Some(l) => l + EWMA_ALPHA * (sample - l),
            });
            let step = if s.slow_start { 1.0 } else { 1.0 / s.window };
            s.window = (s.window + step).min(max_window);
            s.done += 1;
            s.timeouts_in_a_row = 0;
            if s.done % 64 == 0 {
                s.failures = s.failures.saturating_sub(1);
            }
        }
        self.delays
            .record(now.saturating_duration_since(f.job.submitted).as_secs_f64());
        out.push(RmAction::Deliver {
            ticket: f.job.ticket,
            result: Ok((response, stream)),
        });
        self.dispatch(now, out);
    }

    /// Timers: attempt deadlines, request timeouts, `NoStreamTimeout`.
    pub fn on_tick(&mut self, now: Instant, out: &mut Vec<RmAction>) {
        let expired: Vec<_> = self
            .flights
            .iter()
            .filter(|(_, f)| f.deadline <= now)
            .map(|(k, _)| *k)
            .collect();
        for key in expired {
            let Some(f) = self.flights.remove(&key) else {
                continue;
            };
            self.remember(key);
            if let Some(s) = self.streams.get_mut(&key.0) {
                s.in_flight = s.in_flight.saturating_sub(1);
                s.failures += 1;
                s.window = (s.window / 2.0).max(1.0);
                s.slow_start = false;
                s.timeouts_in_a_row += 1;
                // Only a stream that never answered is reported: one that has
                // served before and is merely slow now is penalised, not lost.
                if s.timeouts_in_a_row == UNRESPONSIVE_TIMEOUTS && s.done == 0 {
                    out.push(RmAction::Unresponsive { stream: key.0 });
                }
            }
            let job = f.job;
            let overall = self.overall_deadline(&job);
            if job.attempts >= self.cfg.max_attempts || now >= overall {
                self.fail(
                    job,
                    RequestError::Timeout(now.saturating_duration_since(f.sent)),
                    now,
                    out,
                );
            } else {
                self.high.push_front(job);
            }
        }
        // Requests whose own time limit passed while waiting.
        for q in [Priority::High, Priority::Low] {
            let queue = match q {
                Priority::High => &mut self.high,
                Priority::Low => &mut self.low,
            };
            let mut timed_out = Vec::new();
            let cfg = self.cfg;
            queue.retain(|j| {
                let limit = j
                    .opts
                    .timeout
                    .unwrap_or(cfg.pending_timeout)
                    .min(cfg.pending_timeout);
                if now.saturating_duration_since(j.submitted) >= limit {
                    timed_out.push(j.clone());
                    false
                } else {
                    true
                }
            });
            for j in timed_out {
                let waited = now.saturating_duration_since(j.submitted);
                self.fail(j, RequestError::Timeout(waited), now, out);
            }
        }
        if let Some(since) = self.no_stream_since {
            let mut failed = Vec::new();
            for q in [&mut self.high, &mut self.low] {
                q.retain(|j| {
                    let waited = now.saturating_duration_since(j.submitted.max(since));
                    if waited >= self.cfg.no_stream_timeout {
                        failed.push(j.clone());
                        false
                    } else {
                        true
                    }
                });
            }
            for j in failed {
                self.fail(
                    j,
                    RequestError::NoStream(self.cfg.no_stream_timeout),
                    now,
                    out,
                );
            }
        }
        self.dispatch(now, out);
    }

    /// The next instant [`RequestManager::on_tick`] has work.
    pub fn next_deadline(&self) -> Option<Instant> {
        let flights = self.flights.values().map(|f| f.deadline).min();
        let waits = self
            .high
            .iter()
            .chain(self.low.iter())
            .map(|j| self.overall_deadline(j))
            .min();
        let no_stream = self.no_stream_since.and_then(|s| {
            self.high
                .iter()
                .chain(self.low.iter())
                .map(|j| j.submitted.max(s) + self.cfg.no_stream_timeout)
                .min()
        });
        let paused = self.streams.values().filter_map(|s| s.paused_until).min();
        [flights, waits, no_stream, paused]
            .into_iter()
            .flatten()
            .min()
    }

    /// `GetStreamHealthStats`.
    pub fn health_stats(&self, now: Instant) -> HealthStats {
        let total_streams = self.streams.len();
        let available_streams = self
            .streams
            .values()
            .filter(|s| Self::has_room(s, now))
            .count();
        let total_failures: u64 = self.streams.values().map(|s| u64::from(s.failures)).sum();
        let mut dist: BTreeMap<u32, usize> = BTreeMap::new();
        for s in self.streams.values() {
            *dist.entry(s.failures).or_default() += 1;
        }
        let failure_distribution: Vec<_> = dist.into_iter().collect();
        let stream_failures = self
            .streams
            .iter()
            .map(|(id, s)| (*id, s.failures))
            .collect();
        HealthStats {
            total_streams,
            available_streams,
            total_failures,
            failure_distribution,
            average_failures: if total_streams == 0 {
                0.0
            } else {
                total_failures as f64 / total_streams as f64
            },
            stream_failures,
        }
    }

    /// The metrics counted so far: counters since the start, gauges now
    /// (O(1): the driver reads them after every input).
    pub fn stats(&self) -> RmStats {
        RmStats {
            client_requests: self.client_requests,
            failed_client_requests: self.failed_client_requests,
            waiting: self.waiting(),
            pending: self.flights.len(),
            connected_streams: self.streams.len(),
        }
    }

    /// Takes the request delays (seconds from submission to the answer or
    /// the failure) recorded since the last call, oldest first (at most
    /// `metrics::samples::MAX_PENDING_SAMPLES` are kept between calls).
    pub fn drain_request_delays(&mut self) -> std::vec::Drain<'_, f64> {
        self.delays.drain()
    }

    /// Sets the request-manager gauges of the global `metrics` recorder
    /// (available streams at `now`). A helper for the driver thread: the
    /// core itself never calls it, nor touches the recorder otherwise.
    pub fn publish_metrics(&self, now: Instant) {
        let s = self.stats();
        metrics::gauge!(names::NUM_WAITING_REQUESTS).set(s.waiting as f64);
        metrics::gauge!(names::NUM_PENDING_REQUESTS).set(s.pending as f64);
        metrics::gauge!(names::REQUEST_MANAGER_NUM_CONNECTED_STREAMS)
            .set(s.connected_streams as f64);
        let available = self
            .streams
            .values()
            .filter(|s| Self::has_room(s, now))
            .count();
        metrics::gauge!(names::REQUEST_MANAGER_NUM_AVAILABLE_STREAMS).set(available as f64);
    }

    // ---- internals ----

    fn overall_deadline(&self, j: &Job) -> Instant {
        j.submitted
            + j.opts
                .timeout
                .unwrap_or(self.cfg.pending_timeout)
                .min(self.cfg.pending_timeout)
    }

    fn has_room(s: &StreamState, now: Instant) -> bool {
        s.paused_until.is_none_or(|p| p <= now) && f64::from(s.in_flight) < s.window.floor()
    }

    fn remember(&mut self, key: (StreamId, RequestId)) {
        if self.recent.insert(key) {
            self.recent_order.push_back(key);
            if self.recent_order.len() > RECENT_MEMORY {
                if let Some(old) = self.recent_order.pop_front() {
                    self.recent.remove(&old);
                }
            }
        }
    }

    fn fail(&mut self, job: Job, e: RequestError, now: Instant, out: &mut Vec<RmAction>) {
        self.failed_client_requests += 1;
        self.delays
            .record(now.saturating_duration_since(job.submitted).as_secs_f64());
        out.push(RmAction::Deliver {
            ticket: job.ticket,
            result: Err(e),
        });
    }

    fn pick(&self, job: &Job, now: Instant) -> Option<StreamId> {
        let default = self.cfg.default_latency.as_secs_f64();
        let eligible = |id: &StreamId| {
            job.opts.whitelist.as_ref().is_none_or(|w| w.contains(id))
                && !job.opts.blacklist.contains(id)
        };
        self.streams
            .iter()
            .filter(|(id, s)| Self::has_room(s, now) && eligible(id))
            .map(|(id, s)| {
                let cost = f64::from(s.in_flight + 1)
                    * s.latency.unwrap_or(default)
                    * f64::from(1 + s.failures);
                (cost, *id)
            })
            .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)))
            .map(|(_, id)| id)
    }

    fn dispatch(&mut self, now: Instant, out: &mut Vec<RmAction>) {
        if self.streams.is_empty() {
            return;
        }
        for prio in [Priority::High, Priority::Low] {
            let mut i = 0;
            loop {
                let queue = match prio {
                    Priority::High => &self.high,
                    Priority::Low => &self.low,
                };
                let Some(job) = queue.get(i) else { break };
                let Some(stream) = self.pick(job, now) else {
                    // Nothing free for this one; a whitelisted job may block
                    // only itself, so look further only if it is restricted.
                    if job.opts.whitelist.is_some() || !job.opts.blacklist.is_empty() {
                        i += 1;
                        continue;
                    }
                    break;
                };
                let queue = match prio {
                    Priority::High => &mut self.high,
                    Priority::Low => &mut self.low,
                };
                let Some(mut job) = queue.remove(i) else {
                    break;
                };
                job.attempts += 1;
                let id = self.next_id;
                self.next_id += 1;
                let Some(s) = self.streams.get_mut(&stream) else {
                    break;
                };
                s.in_flight += 1;
                let adaptive = Duration::from_secs_f64(4.0 * s.latency.unwrap_or(0.0))
                    .max(self.cfg.min_attempt_timeout);
                let deadline = (now + adaptive)
                    .min(self.overall_deadline(&job))
                    .min(now + self.cfg.pending_timeout);
                self.client_requests += 1;
                out.push(RmAction::Send {
                    stream,
                    id,
                    request: job.request.clone(),
                });
                self.flights.insert(
                    (stream, id),
                    Flight {
                        job,
                        sent: now,
                        deadline,
                    },
                );
            }
        }
    }
}
