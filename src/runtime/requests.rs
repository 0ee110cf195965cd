//! The `requests` thread: feeds the [`RequestManager`] and carries out its
//! actions. Owns the network's event channel.

use std::collections::HashMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam::channel::{select, Receiver, Sender};
use parking_lot::RwLock;

use super::streams::StreamCmd;
use crate::metrics::names;
use crate::net::{NetEvent, NetHandle, StreamId};
use crate::request::{
    HealthStats, RequestError, RequestManager, RequestOptions, RmAction, RmConfig, RmStats, Ticket,
};
use crate::stream::RemovalReason;
use crate::wire::{Message, Request, Response};

/// The outcome of a request: the response and the stream that answered.
pub type RequestResult = Result<(Response, StreamId), RequestError>;
/// Receives a request's outcome (runs on the requests thread: keep it short).
pub type Reply = Box<dyn FnOnce(RequestResult) + Send>;

pub(super) enum ReqCmd {
    Submit {
        request: Request,
        opts: RequestOptions,
        reply: Reply,
        key: Option<u64>,
    },
    Cancel(u64),
    Activated(StreamId),
    Deactivated(StreamId),
    Shutdown,
}

/// Submits requests to the request manager from any thread.
#[derive(Clone)]
pub struct RequestHandle {
    tx: Sender<ReqCmd>,
}

impl std::fmt::Debug for RequestHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RequestHandle")
    }
}

impl RequestHandle {
    pub(super) fn new(tx: Sender<ReqCmd>) -> Self {
        RequestHandle { tx }
    }

    /// Submits `request`; `reply` gets the outcome exactly once.
    pub fn submit_with(&self, request: Request, opts: RequestOptions, reply: Reply) {
        self.send_submit(request, opts, reply, None)
    }

    /// Like [`RequestHandle::submit_with`], under a caller's `key` (unique
    /// among its requests in flight) that [`RequestHandle::cancel`] takes.
    pub fn submit_keyed(&self, key: u64, request: Request, opts: RequestOptions, reply: Reply) {
        self.send_submit(request, opts, reply, Some(key))
    }

    /// Withdraws the request submitted under `key`, wherever it is: it is
    /// not sent if still waiting, and its reply gets `Cancelled`.
    pub fn cancel(&self, key: u64) {
        let _ = self.tx.send(ReqCmd::Cancel(key));
    }

    fn send_submit(&self, request: Request, opts: RequestOptions, reply: Reply, key: Option<u64>) {
        if let Err(e) = self.tx.send(ReqCmd::Submit {
            request,
            opts,
            reply,
            key,
        }) {
            if let ReqCmd::Submit { reply, .. } = e.0 {
                reply(Err(RequestError::Shutdown));
            }
        }
    }

    /// Submits `request`; the outcome arrives on the returned receiver.
    #[cfg(feature = "testkit")]
    pub fn submit(&self, request: Request, opts: RequestOptions) -> Receiver<RequestResult> {
        let (tx, rx) = crossbeam::channel::bounded(1);
        self.submit_with(
            request,
            opts,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        rx
    }

    /// Submits and waits for the outcome.
    #[cfg(feature = "testkit")]
    pub fn do_request(&self, request: Request, opts: RequestOptions) -> RequestResult {
        self.submit(request, opts)
            .recv()
            .unwrap_or(Err(RequestError::Shutdown))
    }
}

pub(super) fn spawn(
    cfg: RmConfig,
    report_every: Duration,
    net: NetHandle,
    events: Receiver<NetEvent>,
    cmds: Receiver<ReqCmd>,
    streams: Sender<StreamCmd>,
    health: Arc<RwLock<Option<HealthStats>>>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("requests".into())
        .spawn(move || {
            let mut d = Driver {
                rm: RequestManager::new(cfg, Instant::now()),
                net,
                streams,
                replies: HashMap::new(),
                keys: HashMap::new(),
                key_of: HashMap::new(),
                health,
                published: RmStats::default(),
            };
            d.run(&events, &cmds, report_every);
        })
}

struct Driver {
    rm: RequestManager,
    net: NetHandle,
    streams: Sender<StreamCmd>,
    replies: HashMap<Ticket, Reply>,
    /// Caller keys of keyed requests → their tickets.
    keys: HashMap<u64, Ticket>,
    /// Tickets of keyed requests → their keys.
    key_of: HashMap<Ticket, u64>,
    health: Arc<RwLock<Option<HealthStats>>>,
    /// The request manager's counters as last published.
    published: RmStats,
}

impl Driver {
    fn run(
        &mut self,
        events: &Receiver<NetEvent>,
        cmds: &Receiver<ReqCmd>,
        report_every: Duration,
    ) {
        let mut out = Vec::new();
        let mut next_report = Instant::now() + report_every;
        let mut next_metrics = Instant::now();
        loop {
            let now = Instant::now();
            let wake = self
                .rm
                .next_deadline()
                .unwrap_or(next_report)
                .min(next_report)
                .min(next_metrics);
            let timeout = wake.saturating_duration_since(now);
            select! {
                recv(events) -> ev => match ev {
                    Ok(NetEvent::Response { stream, id, response }) => {
                        self.rm.on_response(stream, id, response, Instant::now(), &mut out)
                    }
                    Ok(NetEvent::StreamUp(info)) => {
                        let _ = self.streams.send(StreamCmd::NetUp(info));
                    }
                    Ok(NetEvent::StreamDown(closed)) => {
                        let _ = self.streams.send(StreamCmd::NetDown(closed));
                    }
                    Err(_) => break,
                },
                recv(cmds) -> cmd => match cmd {
                    Ok(ReqCmd::Submit { request, opts, reply, key }) => {
                        match self.rm.submit(request, opts, Instant::now(), &mut out) {
                            Ok(t) => {
                                if let Some(k) = key {
                                    self.keys.insert(k, t);
                                    self.key_of.insert(t, k);
                                }
                                self.replies.insert(t, reply);
                            }
                            Err(e) => reply(Err(e)),
                        }
                    }
                    Ok(ReqCmd::Cancel(k)) => {
                        if let Some(t) = self.keys.remove(&k) {
                            self.key_of.remove(&t);
                            self.rm.cancel(t, &mut out);
                        }
                    }
                    Ok(ReqCmd::Activated(s)) => self.rm.on_stream_added(s, Instant::now(), &mut out),
                    Ok(ReqCmd::Deactivated(s)) => self.rm.on_stream_removed(s, Instant::now(), &mut out),
                    Ok(ReqCmd::Shutdown) | Err(_) => break,
                },
                default(timeout) => self.rm.on_tick(Instant::now(), &mut out),
            }
            self.execute(&mut out);
            let now = Instant::now();
            // Counters and delays after every input; gauges twice a second.
            let stats = self.rm.stats();
            publish_rm_counters(&self.published, &stats, self.rm.drain_request_delays());
            self.published = stats;
            if now >= next_metrics {
                self.rm.publish_metrics(now);
                *self.health.write() = Some(self.rm.health_stats(now));
                next_metrics = now + Duration::from_millis(500);
            }
            if now >= next_report {
                let _ = self
                    .streams
                    .send(StreamCmd::Throughput(self.rm.throughput()));
                next_report = now + report_every;
            }
        }
        for (_, reply) in self.replies.drain() {
            reply(Err(RequestError::Shutdown));
        }
    }

    fn execute(&mut self, out: &mut Vec<RmAction>) {
        // Sending can produce no new actions; deliveries cannot either.
        for a in out.drain(..) {
            match a {
                RmAction::Send {
                    stream,
                    id,
                    request,
                } => {
                    // Waits for a write token when 32 writes are in flight.
                    if self
                        .net
                        .send(stream, &Message::Request(id, request))
                        .is_err()
                    {
                        tracing::warn!(stream, "network stopped while sending");
                    }
                }
                RmAction::Deliver { ticket, result } => {
                    if let Some(k) = self.key_of.remove(&ticket) {
                        self.keys.remove(&k);
                    }
                    if let Some(reply) = self.replies.remove(&ticket) {
                        reply(result);
                    }
                }
                RmAction::Misbehaved { stream } => {
                    let _ = self.streams.send(StreamCmd::Remove {
                        stream,
                        reason: RemovalReason::InvalidResponse,
                    });
                }
                RmAction::Unresponsive { stream } => {
                    let _ = self.streams.send(StreamCmd::Remove {
                        stream,
                        reason: RemovalReason::ConnectionFailure,
                    });
                }
            }
        }
    }
}

/// Publishes to the `metrics` recorder, under the guide's names, what a
/// request manager counted between `was` (its stats at the last call) and
/// `now`, and its request delays since. The gauges are
/// [`RequestManager::publish_metrics`]'s.
pub(crate) fn publish_rm_counters(was: &RmStats, now: &RmStats, delays: impl Iterator<Item = f64>) {
    if now.client_requests > was.client_requests {
        metrics::counter!(names::CLIENT_REQUEST)
            .increment(now.client_requests - was.client_requests);
    }
    if now.failed_client_requests > was.failed_client_requests {
        metrics::counter!(names::FAILED_CLIENT_REQUEST)
            .increment(now.failed_client_requests - was.failed_client_requests);
    }
    for v in delays {
        metrics::histogram!(names::CLIENT_REQUEST_DELAY).record(v);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::test_util::nonzero;
    use std::time::{Duration, Instant};

    use super::publish_rm_counters;
    use crate::request::{RequestManager, RequestOptions, RmAction, RmConfig, RmStats};
    use crate::wire::{Request, Response};

    /// Requests failing for want of a stream, sent, answered after
    /// various delays, timing out and retried, a stream removed;
    /// `publish` after every input, as the driver does; the gauges last.
    fn script(publish: &mut dyn FnMut(&mut RequestManager)) {
        let t0 = Instant::now();
        let mut m = RequestManager::new(RmConfig::default(), t0);
        let mut out = Vec::new();
        let mut now = t0;
        let submit = |m: &mut RequestManager, i: u64, now, out: &mut Vec<RmAction>| {
            let req = Request::GetBlockHashes(vec![i]);
            let _ = m.submit(req, RequestOptions::default(), now, out);
        };
        for i in 0..5u64 {
            submit(&mut m, i, now, &mut out);
        }
        publish(&mut m);
        now += Duration::from_secs(61);
        m.on_tick(now, &mut out);
        publish(&mut m);
        for s in 1..=4 {
            m.on_stream_added(s, now, &mut out);
        }
        publish(&mut m);
        out.clear();
        for i in 0..40u64 {
            submit(&mut m, i, now, &mut out);
        }
        publish(&mut m);
        let sends: Vec<(u64, u64)> = out
            .iter()
            .filter_map(|a| match a {
                RmAction::Send { stream, id, .. } => Some((*stream, *id)),
                _ => None,
            })
            .collect();
        out.clear();
        for (k, (s, id)) in sends.into_iter().enumerate() {
            if s <= 2 {
                now += Duration::from_millis(3 * k as u64 + 1);
                let r = Response::BlockNumber {
                    number: 1,
                    hash: [0; 32],
                };
                m.on_response(s, id, r, now, &mut out);
                publish(&mut m);
            }
        }
        for _ in 0..6 {
            now += Duration::from_secs(5);
            m.on_tick(now, &mut out);
            publish(&mut m);
        }
        m.on_stream_removed(3, now, &mut out);
        publish(&mut m);
        m.publish_metrics(now);
    }

    /// Runs the script under a recorder of its own and renders it.
    fn render(publish: &mut dyn FnMut(&mut RequestManager)) -> String {
        crate::test_util::render_metrics(|| script(publish))
    }

    const GAUGES: [(&str, &str); 3] = [
        (
            "hmy_stream_request_manager_num_connected_streams{topic=\"t\"}",
            "3",
        ),
        ("hmy_stream_num_waiting_requests{topic=\"t\"}", "21"),
        ("hmy_stream_num_pending_requests{topic=\"t\"}", "3"),
    ];

    /// Only the driver-side gauge helper (`publish_metrics`, called last by
    /// the script) writes to the recorder.
    #[test]
    fn the_request_manager_writes_nothing_to_the_recorder() {
        let text = render(&mut |_| {});
        let expected: BTreeMap<String, String> = GAUGES
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(nonzero(&text), expected);
    }

    /// The values are those the manager wrote itself before it kept its
    /// metrics for the driver (the same script rendered on fe90e46, series
    /// for series).
    #[test]
    fn the_driver_publishes_what_the_request_manager_counted() {
        let mut was = RmStats::default();
        let text = render(&mut |m| {
            let now = m.stats();
            publish_rm_counters(&was, &now, m.drain_request_delays());
            was = now;
        });
        let expected: BTreeMap<String, String> = [
            ("hmy_stream_sync_client_request{topic=\"t\"}", "56"),
            ("hmy_stream_sync_failed_client_request{topic=\"t\"}", "13"),
            (
                "hmy_stream_sync_client_request_delay_sum{topic=\"t\"}",
                "466.80399999999986",
            ),
            (
                "hmy_stream_sync_client_request_delay_count{topic=\"t\"}",
                "21",
            ),
        ]
        .into_iter()
        .chain(GAUGES)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(nonzero(&text), expected);
    }
}
