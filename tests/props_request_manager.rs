//! Property tests of the request manager core (DESIGN.md §8): random
//! sequences of submissions, cancels, stream changes, responses (in time,
//! stale, unknown, from the wrong stream, rate-limited) and ticks, in
//! virtual time, against a reference model of every ticket and every
//! request in flight. On a failure proptest shrinks the sequence to a
//! minimal one and prints it.
//!
//! The model knows, for each ticket, whether it waits, is in flight (on
//! which stream, under which request id, until which attempt deadline) or
//! was delivered. Attempt deadlines follow the documented rule (4 × the
//! stream's EWMA latency, at least `min_attempt_timeout`, never past the
//! caller's limit or `PendingRequestTimeout`); the model and the core must
//! agree on how many requests wait and how many are in flight after every
//! step.
//!
//! Properties marked `#[ignore = "bug: …"]` fail on the current core; each
//! names the bug it shows. Run them with `-- --ignored`.
#![cfg(feature = "testkit")] // the request manager core is test support

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use streamsync::net::StreamId;
use streamsync::request::{
    Priority, RequestError, RequestManager, RequestOptions, RmAction, RmConfig, Ticket,
};
use streamsync::wire::{ErrorCode, Request, RequestId, Response};

/// Stream ids the ops pick from (1..=STREAMS).
const STREAMS: u64 = 4;

fn cfg() -> RmConfig {
    RmConfig {
        max_waiting: 6,
        pending_timeout: Duration::from_secs(180),
        no_stream_timeout: Duration::from_secs(60),
        min_attempt_timeout: Duration::from_secs(2),
        max_attempts: 3,
        initial_window: 2,
        max_window: 4,
        default_latency: Duration::from_millis(100),
    }
}

/// The request carries its ticket, so a `Send` names the ticket it serves.
fn request_of(t: Ticket) -> Request {
    Request::GetBlockHashes(vec![t])
}

fn ticket_of(r: &Request) -> Option<Ticket> {
    match r {
        Request::GetBlockHashes(v) if v.len() == 1 => Some(v[0]),
        _ => None,
    }
}

fn answer_of(t: Ticket) -> Response {
    Response::BlockHashes(vec![Some([t as u8; 32])])
}

#[derive(Clone, Copy, Debug)]
enum Answer {
    Ok,
    RateLimited {
        retry_after_ms: u64,
    },
    /// An error answer other than `rate_limited`: delivered as it is.
    Internal,
}

#[derive(Clone, Debug)]
enum Op {
    Submit {
        high: bool,
        whitelist: Option<Vec<StreamId>>,
        blacklist: Vec<StreamId>,
        timeout_s: Option<u64>,
    },
    /// Cancels the `k`-th ticket ever issued (waiting, in flight or done).
    Cancel {
        k: usize,
    },
    Added(StreamId),
    Removed(StreamId),
    /// Answers the `k`-th request in flight.
    Respond {
        k: usize,
        answer: Answer,
    },
    /// Answers a request that already ended (late or duplicate).
    Stale {
        k: usize,
    },
    /// Answers a request id never sent.
    Unknown {
        stream: StreamId,
        id: u64,
    },
    /// Answers the `k`-th request in flight from another stream.
    WrongStream {
        k: usize,
        other: StreamId,
    },
    Tick {
        ms: u64,
    },
    /// Every stream goes, then `NoStreamTimeout` passes.
    RemoveAllAndWait,
}

fn streams() -> impl Strategy<Value = Vec<StreamId>> {
    prop::collection::btree_set(1..=STREAMS + 1, 0..3).prop_map(|s| s.into_iter().collect())
}

fn op() -> impl Strategy<Value = Op> {
    let k = 0..16usize;
    prop_oneof![
        6 => (any::<bool>(), prop::option::weighted(0.3, streams()), prop::bool::weighted(0.2),
              streams(), prop::option::of(1u64..300))
            .prop_map(|(high, whitelist, bl, blacklist, timeout_s)| Op::Submit {
                high,
                whitelist,
                blacklist: if bl { blacklist } else { Vec::new() },
                timeout_s,
            }),
        1 => k.clone().prop_map(|k| Op::Cancel { k }),
        3 => (1..=STREAMS).prop_map(Op::Added),
        2 => (1..=STREAMS).prop_map(Op::Removed),
        6 => (k.clone(), prop_oneof![
                6 => Just(Answer::Ok),
                2 => (0u64..90_000).prop_map(|retry_after_ms| Answer::RateLimited { retry_after_ms }),
                1 => Just(Answer::Internal),
            ]).prop_map(|(k, answer)| Op::Respond { k, answer }),
        1 => k.clone().prop_map(|k| Op::Stale { k }),
        1 => (1..=STREAMS, 0u64..4).prop_map(|(stream, id)| Op::Unknown { stream, id }),
        1 => (k.clone(), 1..=STREAMS).prop_map(|(k, other)| Op::WrongStream { k, other }),
        4 => prop_oneof![0u64..500, 0u64..5_000, 0u64..200_000].prop_map(|ms| Op::Tick { ms }),
        1 => Just(Op::RemoveAllAndWait),
    ]
}

#[derive(Clone, Debug)]
struct Flight {
    stream: StreamId,
    id: RequestId,
    sent: Instant,
    deadline: Instant,
}

#[derive(Clone, Debug)]
struct TicketState {
    opts: RequestOptions,
    submitted: Instant,
    attempts: u32,
    flight: Option<Flight>,
    delivered: u32,
}

#[derive(Clone, Debug, Default)]
struct StreamModel {
    latency: Option<f64>,
    paused_until: Option<Instant>,
}

/// What the property checks besides the always-on rules.
#[derive(Clone, Copy, Debug)]
struct Checks {
    /// `waiting() <= max_waiting` at all times (the module docs' "at most
    /// `max_waiting` waiting requests in all").
    strict_waiting_cap: bool,
}

struct Harness {
    rm: RequestManager,
    cfg: RmConfig,
    checks: Checks,
    now: Instant,
    streams: BTreeMap<StreamId, StreamModel>,
    tickets: BTreeMap<Ticket, TicketState>,
    /// In flight: (stream, id) → ticket.
    flights: BTreeMap<(StreamId, RequestId), Ticket>,
    /// Requests that ended (answered, timed out, cancelled, stream gone).
    ended: Vec<(StreamId, RequestId)>,
    sent: HashSet<(StreamId, RequestId)>,
    /// Streams ever added (bounds what can be in flight).
    ever: BTreeSet<StreamId>,
}

impl Harness {
    fn new(checks: Checks) -> Self {
        let now = Instant::now();
        Harness {
            rm: RequestManager::new(cfg(), now),
            cfg: cfg(),
            checks,
            now,
            streams: BTreeMap::new(),
            tickets: BTreeMap::new(),
            flights: BTreeMap::new(),
            ended: Vec::new(),
            sent: HashSet::new(),
            ever: BTreeSet::new(),
        }
    }

    fn waiting(&self) -> usize {
        self.tickets
            .values()
            .filter(|t| t.delivered == 0 && t.flight.is_none())
            .count()
    }

    fn overall_deadline(&self, t: &TicketState) -> Instant {
        t.submitted
            + t.opts
                .timeout
                .unwrap_or(self.cfg.pending_timeout)
                .min(self.cfg.pending_timeout)
    }

    fn nth_flight(&self, k: usize) -> Option<((StreamId, RequestId), Ticket)> {
        if self.flights.is_empty() {
            return None;
        }
        self.flights
            .iter()
            .nth(k % self.flights.len())
            .map(|(a, b)| (*a, *b))
    }

    /// A flight ends (answered, timed out, cancelled, stream gone).
    fn end_flight(&mut self, key: (StreamId, RequestId)) {
        if let Some(t) = self.flights.remove(&key) {
            if let Some(ts) = self.tickets.get_mut(&t) {
                ts.flight = None;
            }
            self.ended.push(key);
        }
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        let mut out = Vec::new();
        let waiting_before = self.rm.waiting();
        let stale_before = self.rm.stale_responses();
        // What the op must deliver, and what it may.
        let mut expect_cancel: Option<Ticket> = None;
        let mut answered: Option<(StreamId, RequestId, Ticket)> = None;
        let mut misbehaved_ok: Option<StreamId> = None;
        let mut is_tick = false;
        match op {
            Op::Submit {
                high,
                whitelist,
                blacklist,
                timeout_s,
            } => {
                let opts = RequestOptions {
                    priority: if *high { Priority::High } else { Priority::Low },
                    whitelist: whitelist.clone(),
                    blacklist: blacklist.clone(),
                    timeout: timeout_s.map(Duration::from_secs),
                };
                let next = self.tickets.keys().next_back().map_or(1, |t| t + 1);
                // The ticket is known before the call: the request names it.
                let r = self
                    .rm
                    .submit(request_of(next), opts.clone(), self.now, &mut out);
                if waiting_before >= self.cfg.max_waiting {
                    prop_assert_eq!(
                        r.clone(),
                        Err(RequestError::QueueFull {
                            limit: self.cfg.max_waiting
                        })
                    );
                } else {
                    prop_assert!(r.is_ok(), "submit refused with {waiting_before} waiting");
                }
                if let Ok(t) = r {
                    prop_assert_eq!(t, next, "tickets are issued in order");
                    self.tickets.insert(
                        t,
                        TicketState {
                            opts,
                            submitted: self.now,
                            attempts: 0,
                            flight: None,
                            delivered: 0,
                        },
                    );
                }
            }
            Op::Cancel { k } => {
                if self.tickets.is_empty() {
                    return Ok(());
                }
                let t = *self
                    .tickets
                    .keys()
                    .nth(k % self.tickets.len())
                    .unwrap_or(&0);
                let live = self.tickets.get(&t).is_some_and(|s| s.delivered == 0);
                if live {
                    expect_cancel = Some(t);
                }
                if let Some(f) = self.tickets.get(&t).and_then(|s| s.flight.clone()) {
                    self.end_flight((f.stream, f.id));
                }
                self.rm.cancel(t, &mut out);
            }
            Op::Added(s) => {
                self.streams.entry(*s).or_default();
                self.ever.insert(*s);
                self.rm.on_stream_added(*s, self.now, &mut out);
            }
            Op::Removed(s) => {
                self.remove_stream(*s, &mut out);
            }
            Op::Respond { k, answer } => {
                let Some(((s, id), t)) = self.nth_flight(*k) else {
                    return Ok(());
                };
                let sent = self.tickets[&t]
                    .flight
                    .as_ref()
                    .map_or(self.now, |f| f.sent);
                self.end_flight((s, id));
                let resp = match answer {
                    Answer::Ok | Answer::Internal => {
                        let sample = self.now.saturating_duration_since(sent).as_secs_f64();
                        let m = self.streams.entry(s).or_default();
                        m.latency = Some(match m.latency {
                            None => sample,
                            Some(l) => l + 0.2 * (sample - l),
                        });
                        answered = Some((s, id, t));
                        if matches!(answer, Answer::Ok) {
                            answer_of(t)
                        } else {
                            Response::Error {
                                code: ErrorCode::Internal,
                                retry_after_ms: 0,
                                message: "busy".into(),
                            }
                        }
                    }
                    Answer::RateLimited { retry_after_ms } => {
                        let wait = Duration::from_millis((*retry_after_ms).clamp(1, 60_000));
                        self.streams.entry(s).or_default().paused_until = Some(self.now + wait);
                        Response::Error {
                            code: ErrorCode::RateLimited,
                            retry_after_ms: *retry_after_ms,
                            message: "slow down".into(),
                        }
                    }
                };
                self.rm.on_response(s, id, resp, self.now, &mut out);
            }
            Op::Stale { k } => {
                if self.ended.is_empty() {
                    return Ok(());
                }
                let (s, id) = self.ended[k % self.ended.len()];
                self.rm.on_response(s, id, answer_of(0), self.now, &mut out);
                prop_assert!(out.is_empty(), "a stale answer acted: {out:?}");
                prop_assert_eq!(self.rm.stale_responses(), stale_before + 1);
                return self.invariants(&[]);
            }
            Op::Unknown { stream, id } => {
                let id = 1_000_000 + id;
                misbehaved_ok = Some(*stream);
                self.rm
                    .on_response(*stream, id, answer_of(0), self.now, &mut out);
                prop_assert_eq!(&out, &vec![RmAction::Misbehaved { stream: *stream }]);
            }
            Op::WrongStream { k, other } => {
                let Some(((s, id), _)) = self.nth_flight(*k) else {
                    return Ok(());
                };
                if s == *other {
                    return Ok(());
                }
                misbehaved_ok = Some(*other);
                self.rm
                    .on_response(*other, id, answer_of(0), self.now, &mut out);
                prop_assert_eq!(&out, &vec![RmAction::Misbehaved { stream: *other }]);
            }
            Op::Tick { ms } => {
                self.now += Duration::from_millis(*ms);
                self.expire();
                is_tick = true;
                self.rm.on_tick(self.now, &mut out);
            }
            Op::RemoveAllAndWait => {
                let all: Vec<StreamId> = self.streams.keys().copied().collect();
                for s in all {
                    let mut o = Vec::new();
                    self.remove_stream(s, &mut o);
                    self.actions(&o, None, None, None, false)?;
                    self.invariants(&o)?;
                }
                self.now += self.cfg.no_stream_timeout;
                self.expire();
                self.rm.on_tick(self.now, &mut out);
                self.actions(&out, None, None, None, true)?;
                self.invariants(&out)?;
                prop_assert_eq!(self.rm.waiting(), 0, "requests wait with no stream");
                prop_assert_eq!(self.rm.pending(), 0, "requests in flight with no stream");
                return Ok(());
            }
        }
        self.actions(&out, expect_cancel, answered, misbehaved_ok, is_tick)?;
        if let Some(t) = expect_cancel {
            prop_assert!(
                out.iter().any(|a| matches!(a, RmAction::Deliver { ticket, result: Err(RequestError::Cancelled) } if *ticket == t)),
                "cancelled live ticket {t} not delivered"
            );
        }
        if let Some((_, _, t)) = answered {
            prop_assert!(
                out.iter().any(
                    |a| matches!(a, RmAction::Deliver { ticket, result: Ok(_) } if *ticket == t)
                ),
                "answered ticket {t} not delivered"
            );
        }
        self.invariants(&out)
    }

    fn remove_stream(&mut self, s: StreamId, out: &mut Vec<RmAction>) {
        let keys: Vec<_> = self
            .flights
            .keys()
            .filter(|(x, _)| *x == s)
            .copied()
            .collect();
        for k in keys {
            self.end_flight(k);
        }
        self.streams.remove(&s);
        self.rm.on_stream_removed(s, self.now, out);
    }

    /// Attempts past their deadline end at the tick (the ticket then
    /// waits again or fails; the actions say which).
    fn expire(&mut self) {
        let now = self.now;
        let expired: Vec<_> = self
            .flights
            .iter()
            .filter(|(_, t)| {
                self.tickets[t]
                    .flight
                    .as_ref()
                    .is_some_and(|f| f.deadline <= now)
            })
            .map(|(k, _)| *k)
            .collect();
        for k in expired {
            self.end_flight(k);
        }
    }

    /// Checks one op's actions and feeds them to the model.
    fn actions(
        &mut self,
        out: &[RmAction],
        cancel: Option<Ticket>,
        answered: Option<(StreamId, RequestId, Ticket)>,
        misbehaved_ok: Option<StreamId>,
        tick: bool,
    ) -> Result<(), TestCaseError> {
        let now = self.now;
        for a in out {
            match a {
                RmAction::Send {
                    stream,
                    id,
                    request,
                } => {
                    let t = ticket_of(request);
                    prop_assert!(t.is_some(), "sent a request no caller made: {request:?}");
                    let t = t.unwrap_or(0);
                    let m = self.streams.get(stream).cloned();
                    prop_assert!(m.is_some(), "sent on stream {stream}, which is not present");
                    let m = m.unwrap_or_default();
                    if let Some(p) = m.paused_until {
                        prop_assert!(
                            now >= p,
                            "sent on stream {stream} {:?} before its pause ends",
                            p - now
                        );
                    }
                    let ts = self.tickets.get(&t).cloned();
                    prop_assert!(ts.is_some(), "sent unknown ticket {t}");
                    let ts = ts.unwrap_or_else(|| unreachable!());
                    prop_assert_eq!(ts.delivered, 0, "ticket {} sent after delivery", t);
                    prop_assert!(ts.flight.is_none(), "ticket {t} sent twice at once");
                    if let Some(w) = &ts.opts.whitelist {
                        prop_assert!(w.contains(stream), "{stream} not in whitelist {w:?}");
                    }
                    prop_assert!(!ts.opts.blacklist.contains(stream), "{stream} in blacklist");
                    prop_assert!(self.sent.insert((*stream, *id)), "request id {id} reused");
                    let adaptive = Duration::from_secs_f64(4.0 * m.latency.unwrap_or(0.0))
                        .max(self.cfg.min_attempt_timeout);
                    let deadline = (now + adaptive)
                        .min(self.overall_deadline(&ts))
                        .min(now + self.cfg.pending_timeout);
                    self.flights.insert((*stream, *id), t);
                    if let Some(x) = self.tickets.get_mut(&t) {
                        x.attempts += 1;
                        x.flight = Some(Flight {
                            stream: *stream,
                            id: *id,
                            sent: now,
                            deadline,
                        });
                    }
                }
                RmAction::Deliver { ticket, result } => {
                    let ts = self.tickets.get(ticket).cloned();
                    prop_assert!(ts.is_some(), "delivered unknown ticket {ticket}");
                    let ts = ts.unwrap_or_else(|| unreachable!());
                    prop_assert_eq!(ts.delivered, 0, "ticket {} delivered twice", ticket);
                    prop_assert!(
                        ts.flight.is_none(),
                        "ticket {ticket} delivered while the model has it in flight"
                    );
                    match result {
                        Ok((resp, s)) => {
                            let (as_, _, at) = answered.unwrap_or((0, 0, 0));
                            prop_assert_eq!(at, *ticket, "delivered an answer to another ticket");
                            prop_assert_eq!(as_, *s, "delivered with the wrong stream");
                            prop_assert!(
                                *resp == answer_of(*ticket)
                                    || matches!(
                                        resp,
                                        Response::Error {
                                            code: ErrorCode::Internal,
                                            ..
                                        }
                                    ),
                                "delivered another answer: {resp:?}"
                            );
                        }
                        Err(RequestError::Cancelled) => {
                            prop_assert_eq!(cancel, Some(*ticket), "cancelled without a cancel");
                        }
                        Err(RequestError::Timeout(_)) => {
                            prop_assert!(tick, "timed out outside a tick");
                            prop_assert!(
                                ts.attempts >= self.cfg.max_attempts
                                    || now >= self.overall_deadline(&ts),
                                "ticket {ticket} timed out after {} attempts, before its limit",
                                ts.attempts
                            );
                        }
                        Err(RequestError::NoStream(_)) => {
                            prop_assert!(tick, "no-stream failure outside a tick");
                            prop_assert!(
                                self.streams.is_empty(),
                                "no-stream failure with streams present"
                            );
                        }
                        Err(e) => prop_assert!(false, "unexpected failure {e:?}"),
                    }
                    if let Some(x) = self.tickets.get_mut(ticket) {
                        x.delivered += 1;
                    }
                }
                RmAction::Misbehaved { stream } => {
                    prop_assert_eq!(
                        misbehaved_ok,
                        Some(*stream),
                        "stream {} reported misbehaving for a request it was sent",
                        stream
                    );
                }
                RmAction::Unresponsive { stream } => {
                    prop_assert!(tick, "unresponsive outside a tick");
                    prop_assert!(self.streams.contains_key(stream), "unresponsive unknown");
                }
            }
        }
        Ok(())
    }

    fn invariants(&self, out: &[RmAction]) -> Result<(), TestCaseError> {
        prop_assert_eq!(
            self.rm.waiting(),
            self.waiting(),
            "core and model disagree on what waits"
        );
        prop_assert_eq!(
            self.rm.pending(),
            self.flights.len(),
            "core and model disagree on what is in flight"
        );
        if self.checks.strict_waiting_cap {
            prop_assert!(
                self.rm.waiting() <= self.cfg.max_waiting,
                "{} waiting > max_waiting {}",
                self.rm.waiting(),
                self.cfg.max_waiting
            );
        }
        // What the core can hold: what submit admitted plus what was in
        // flight when it came back.
        prop_assert!(
            self.rm.waiting() + self.rm.pending()
                <= self.cfg.max_waiting + self.cfg.max_window as usize * self.ever.len()
        );
        for s in self.streams.keys() {
            let w = self.rm.window(*s);
            prop_assert!(w.is_some(), "present stream {s} has no window");
            let w = w.unwrap_or(0);
            prop_assert!(
                (1..=self.cfg.max_window).contains(&w),
                "window {w} of {s} outside 1..=max_window"
            );
        }
        // A stream sent to in this step has at most its window in flight
        // (only then: a timeout halves the window under the requests
        // already out, by design).
        let sent_on: BTreeSet<StreamId> = out
            .iter()
            .filter_map(|a| match a {
                RmAction::Send { stream, .. } => Some(*stream),
                _ => None,
            })
            .collect();
        for s in sent_on {
            let in_flight = self.flights.keys().filter(|(x, _)| *x == s).count() as u32;
            let w = self.rm.window(s).unwrap_or(0);
            prop_assert!(
                in_flight <= w,
                "stream {s}: {in_flight} in flight > window {w}"
            );
        }
        Ok(())
    }

    /// Ends the run: no stream for `NoStreamTimeout`; every ticket must
    /// then have been delivered exactly once.
    fn finish(&mut self) -> Result<(), TestCaseError> {
        self.apply(&Op::RemoveAllAndWait)?;
        for (t, s) in &self.tickets {
            prop_assert_eq!(
                s.delivered,
                1,
                "ticket {} delivered {} times",
                t,
                s.delivered
            );
        }
        Ok(())
    }
}

fn run_ops(checks: Checks, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut h = Harness::new(checks);
    for op in ops {
        h.apply(op)?;
    }
    h.finish()
}

proptest! {
    // No regression files: the minimal failing sequence is printed.
    #![proptest_config(ProptestConfig {
        cases: 1024,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Every ticket is delivered exactly once (answer, failure or cancel);
    /// sends go only to present, eligible, unpaused streams with room in
    /// their window; core and model agree on what waits and what is in
    /// flight; nothing waits once no stream was there for
    /// `NoStreamTimeout`.
    #[test]
    fn request_manager_keeps_its_invariants(ops in prop::collection::vec(op(), 1..80)) {
        run_ops(Checks { strict_waiting_cap: false }, &ops)?;
    }

    /// The module docs' cap: at most `max_waiting` requests wait, in all.
    #[test]
    #[ignore = "bug: requests coming back from a removed stream, a timed-out attempt or a rate-limited answer are queued past max_waiting"]
    fn waiting_requests_never_exceed_max_waiting(ops in prop::collection::vec(op(), 1..80)) {
        run_ops(Checks { strict_waiting_cap: true }, &ops)?;
    }
}
