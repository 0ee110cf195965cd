//! Request manager rules (DESIGN.md §8, the guide's "Request Manager"),
//! driven with a manual clock, plus a randomised invariant check.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use super::manager::*;
use crate::wire::{ErrorCode, Request, Response};

fn rm() -> (RequestManager, Instant) {
    let now = Instant::now();
    (RequestManager::new(RmConfig::default(), now), now)
}

fn sends(out: &[RmAction]) -> Vec<(u64, u64)> {
    out.iter()
        .filter_map(|a| match a {
            RmAction::Send { stream, id, .. } => Some((*stream, *id)),
            _ => None,
        })
        .collect()
}

type Outcome = Result<(Response, u64), RequestError>;

fn delivered(out: &[RmAction]) -> Vec<(Ticket, Outcome)> {
    out.iter()
        .filter_map(|a| match a {
            RmAction::Deliver { ticket, result } => Some((*ticket, result.clone())),
            _ => None,
        })
        .collect()
}

fn ok() -> Response {
    Response::BlockNumber {
        number: 1,
        hash: [0; 32],
    }
}

fn high() -> RequestOptions {
    RequestOptions {
        priority: Priority::High,
        ..Default::default()
    }
}

#[test]
fn waiting_queue_full_fails_fast() {
    let (mut m, now) = rm();
    let mut out = Vec::new();
    for _ in 0..1024 {
        m.submit(
            Request::GetBlockNumber,
            RequestOptions::default(),
            now,
            &mut out,
        )
        .expect("room");
    }
    let e = m
        .submit(
            Request::GetBlockNumber,
            RequestOptions::default(),
            now,
            &mut out,
        )
        .unwrap_err();
    assert_eq!(e, RequestError::QueueFull { limit: 1024 });
}

#[test]
fn high_priority_dispatched_first() {
    let (mut m, now) = rm();
    let mut out = Vec::new();
    let low = m
        .submit(
            Request::GetBlockHashes(vec![1]),
            RequestOptions::default(),
            now,
            &mut out,
        )
        .expect("ok");
    let hi = m
        .submit(Request::GetBlockNumber, high(), now, &mut out)
        .expect("ok");
    out.clear();
    m.on_stream_added(1, now, &mut out);
    let order: Vec<_> = out
        .iter()
        .filter_map(|a| match a {
            RmAction::Send { request, .. } => Some(request.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        order,
        vec![Request::GetBlockNumber, Request::GetBlockHashes(vec![1])]
    );
    let _ = (low, hi);
}

#[test]
fn dispatch_happens_on_every_event_not_on_a_tick() {
    let (mut m, now) = rm();
    let mut out = Vec::new();
    m.on_stream_added(1, now, &mut out);
    m.submit(
        Request::GetBlockNumber,
        RequestOptions::default(),
        now,
        &mut out,
    )
    .expect("ok");
    assert_eq!(sends(&out).len(), 1, "sent within submit, no tick needed");
}

#[test]
fn each_stream_pipelines_up_to_its_window() {
    let (mut m, now) = rm();
    let mut out = Vec::new();
    m.on_stream_added(1, now, &mut out);
    for _ in 0..10 {
        m.submit(
            Request::GetBlockNumber,
            RequestOptions::default(),
            now,
            &mut out,
        )
        .expect("ok");
    }
    assert_eq!(sends(&out).len(), 4, "initial window 4, not Harmony's 1");
    assert_eq!(m.waiting(), 6);
}

#[test]
fn window_grows_on_success_and_halves_on_timeout() {
    let (mut m, mut now) = rm();
    let mut out = Vec::new();
    m.on_stream_added(1, now, &mut out);
    for _ in 0..200 {
        m.submit(
            Request::GetBlockNumber,
            RequestOptions::default(),
            now,
            &mut out,
        )
        .expect("ok");
        for (s, id) in sends(&std::mem::take(&mut out)) {
            now += Duration::from_millis(1);
            m.on_response(s, id, ok(), now, &mut out);
        }
    }
    let grown = m.window(1).expect("stream");
    assert!(grown > 4, "window grew to {grown}");
    out.clear();
    for _ in 0..40 {
        m.submit(
            Request::GetBlockNumber,
            RequestOptions::default(),
            now,
            &mut out,
        )
        .expect("ok");
    }
    now += Duration::from_secs(3);
    m.on_tick(now, &mut out);
    assert!(
        m.window(1).expect("stream") <= grown / 2,
        "halved on timeout"
    );
}

#[test]
fn removed_stream_requests_requeued() {
    let (mut m, now) = rm();
    let mut out = Vec::new();
    m.on_stream_added(1, now, &mut out);
    let t = m
        .submit(
            Request::GetBlockNumber,
            RequestOptions::default(),
            now,
            &mut out,
        )
        .expect("ok");
    assert_eq!(sends(&out), vec![(1, 1)]);
    out.clear();
    m.on_stream_removed(1, now, &mut out);
    assert!(delivered(&out).is_empty(), "not failed");
    assert_eq!(m.waiting(), 1);
    m.on_stream_added(2, now, &mut out);
    let s = sends(&out);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].0, 2, "re-sent on the new stream");
    out.clear();
    m.on_response(s[0].0, s[0].1, ok(), now, &mut out);
    assert_eq!(delivered(&out), vec![(t, Ok((ok(), 2)))]);
}

#[test]
fn no_stream_timeout_fails_waiting() {
    let (mut m, now) = rm();
    let mut out = Vec::new();
    let t = m
        .submit(
            Request::GetBlockNumber,
            RequestOptions::default(),
            now,
            &mut out,
        )
        .expect("ok");
    m.on_tick(now + Duration::from_secs(59), &mut out);
    assert!(delivered(&out).is_empty());
    m.on_tick(now + Duration::from_secs(60), &mut out);
    assert_eq!(
        delivered(&out),
        vec![(t, Err(RequestError::NoStream(Duration::from_secs(60))))]
    );
}

#[test]
fn slow_stream_gets_less_work() {
    let (mut m, mut now) = rm();
    let mut out = Vec::new();
    m.on_stream_added(1, now, &mut out);
    m.on_stream_added(2, now, &mut out);
    let mut per_stream: HashMap<u64, u32> = HashMap::new();
    let mut inflight: Vec<(u64, u64, Instant)> = Vec::new();
    for step in 0..2000u32 {
        now += Duration::from_millis(1);
        if step % 2 == 0 {
            let _ = m.submit(
                Request::GetBlockNumber,
                RequestOptions::default(),
                now,
                &mut out,
            );
        }
        for (s, id) in sends(&std::mem::take(&mut out)) {
            *per_stream.entry(s).or_default() += 1;
            // Stream 1 answers in 2 ms, stream 2 in 50 ms.
            let lat = if s == 1 { 2 } else { 50 };
            inflight.push((s, id, now + Duration::from_millis(lat)));
        }
        let (due, rest): (Vec<_>, Vec<_>) = inflight.into_iter().partition(|(_, _, t)| *t <= now);
        inflight = rest;
        for (s, id, _) in due {
            m.on_response(s, id, ok(), now, &mut out);
        }
    }
    let (fast, slow) = (per_stream[&1], per_stream[&2]);
    assert!(fast > 5 * slow, "fast stream {fast} vs slow stream {slow}");
}

#[test]
fn rate_limited_pauses_the_stream_and_retries_elsewhere() {
    let (mut m, now) = rm();
    let mut out = Vec::new();
    m.on_stream_added(1, now, &mut out);
    let t = m
        .submit(
            Request::GetBlockNumber,
            RequestOptions::default(),
            now,
            &mut out,
        )
        .expect("ok");
    let (s, id) = sends(&out)[0];
    out.clear();
    m.on_stream_added(2, now, &mut out);
    let limited = Response::Error {
        code: ErrorCode::RateLimited,
        retry_after_ms: 500,
        message: String::new(),
    };
    m.on_response(s, id, limited, now, &mut out);
    assert!(delivered(&out).is_empty(), "not delivered as a failure");
    let again = sends(&out);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].0, 2, "retried on the other stream");
    assert_eq!(m.health_stats(now).available_streams, 1, "stream 1 paused");
    assert_eq!(
        m.health_stats(now + Duration::from_millis(500))
            .available_streams,
        2
    );
    let _ = t;
}

#[test]
fn attempt_timeout_retries_on_another_stream_then_fails() {
    let (mut m, now) = rm();
    let mut out = Vec::new();
    m.on_stream_added(1, now, &mut out);
    let t = m
        .submit(
            Request::GetBlockNumber,
            RequestOptions::default(),
            now,
            &mut out,
        )
        .expect("ok");
    m.on_stream_added(2, now, &mut out);
    out.clear();
    m.on_tick(now + Duration::from_secs(2), &mut out);
    let s = sends(&out);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].0, 2, "second attempt avoids the stream that failed");
    out.clear();
    m.on_tick(now + Duration::from_secs(4), &mut out);
    out.clear();
    m.on_tick(now + Duration::from_secs(6), &mut out);
    assert!(
        matches!(delivered(&out).as_slice(), [(x, Err(RequestError::Timeout(_)))] if *x == t),
        "{out:?}"
    );
}

#[test]
fn caller_timeout_is_clamped_to_pending_request_timeout() {
    let (mut m, now) = rm();
    let mut out = Vec::new();
    let opts = RequestOptions {
        timeout: Some(Duration::from_secs(3600)),
        ..Default::default()
    };
    let t = m
        .submit(Request::GetBlockNumber, opts, now, &mut out)
        .expect("ok");
    // A stream that exists but never has room: pause it via rate limiting.
    m.on_stream_added(1, now, &mut out);
    let (s, id) = sends(&out)[0];
    for _ in 0..100 {
        out.clear();
        let limited = Response::Error {
            code: ErrorCode::RateLimited,
            retry_after_ms: 60_000,
            message: String::new(),
        };
        m.on_response(s, id, limited, now, &mut out);
        if !sends(&out).is_empty() {
            break;
        }
    }
    out.clear();
    m.on_tick(now + Duration::from_secs(180), &mut out);
    assert!(
        matches!(delivered(&out).as_slice(), [(x, Err(RequestError::Timeout(_)))] if *x == t),
        "{out:?}"
    );
}

#[test]
fn response_from_a_stream_that_does_not_own_the_request_is_not_delivered() {
    let (mut m, now) = rm();
    let mut out = Vec::new();
    m.on_stream_added(1, now, &mut out);
    m.on_stream_added(2, now, &mut out);
    m.submit(
        Request::GetBlockNumber,
        RequestOptions::default(),
        now,
        &mut out,
    )
    .expect("ok");
    let (s, id) = sends(&out)[0];
    let other = if s == 1 { 2 } else { 1 };
    out.clear();
    m.on_response(other, id, ok(), now, &mut out);
    assert_eq!(out, vec![RmAction::Misbehaved { stream: other }]);
    assert_eq!(m.pending(), 1, "still waiting for the owner");
}

#[test]
fn duplicate_and_late_responses_are_dropped_and_counted() {
    let (mut m, now) = rm();
    let mut out = Vec::new();
    m.on_stream_added(1, now, &mut out);
    m.submit(
        Request::GetBlockNumber,
        RequestOptions::default(),
        now,
        &mut out,
    )
    .expect("ok");
    let (s, id) = sends(&out)[0];
    m.on_response(s, id, ok(), now, &mut out);
    out.clear();
    m.on_response(s, id, ok(), now, &mut out);
    assert!(out.is_empty());
    assert_eq!(m.stale_responses(), 1);
    // Late: after the attempt timed out.
    m.submit(
        Request::GetBlockNumber,
        RequestOptions::default(),
        now,
        &mut out,
    )
    .expect("ok");
    let (s2, id2) = *sends(&out).last().expect("sent");
    m.on_tick(now + Duration::from_secs(2), &mut out);
    out.clear();
    m.on_response(s2, id2, ok(), now + Duration::from_secs(3), &mut out);
    assert!(!out
        .iter()
        .any(|a| matches!(a, RmAction::Deliver { .. } | RmAction::Misbehaved { .. })));
    assert_eq!(m.stale_responses(), 2);
}

#[test]
fn whitelist_and_blacklist_are_respected() {
    let (mut m, now) = rm();
    let mut out = Vec::new();
    m.on_stream_added(1, now, &mut out);
    m.on_stream_added(2, now, &mut out);
    let only2 = RequestOptions {
        whitelist: Some(vec![2]),
        ..Default::default()
    };
    let not1 = RequestOptions {
        blacklist: vec![1],
        ..Default::default()
    };
    for o in [only2, not1] {
        out.clear();
        m.submit(Request::GetBlockNumber, o, now, &mut out)
            .expect("ok");
        assert_eq!(sends(&out)[0].0, 2);
    }
}

#[test]
fn cancel_delivers_cancelled_once() {
    let (mut m, now) = rm();
    let mut out = Vec::new();
    let t = m
        .submit(
            Request::GetBlockNumber,
            RequestOptions::default(),
            now,
            &mut out,
        )
        .expect("ok");
    m.cancel(t, &mut out);
    m.cancel(t, &mut out);
    assert_eq!(delivered(&out), vec![(t, Err(RequestError::Cancelled))]);
}

#[test]
fn health_stats_report_failures() {
    let (mut m, now) = rm();
    let mut out = Vec::new();
    m.on_stream_added(1, now, &mut out);
    m.on_stream_added(2, now, &mut out);
    m.submit(
        Request::GetBlockNumber,
        RequestOptions::default(),
        now,
        &mut out,
    )
    .expect("ok");
    m.on_tick(now + Duration::from_secs(2), &mut out);
    let h = m.health_stats(now + Duration::from_secs(2));
    assert_eq!(h.total_streams, 2);
    assert_eq!(h.total_failures, 1);
    assert_eq!(h.failure_distribution, vec![(0, 1), (1, 1)]);
    assert_eq!(h.stream_failures.iter().map(|(_, f)| f).sum::<u32>(), 1);
    assert_eq!(h.stream_failures.len(), 2);
    assert!((h.average_failures - 0.5).abs() < 1e-9);
}

/// Arbitrary event sequences: every submitted request ends exactly once,
/// every delivery goes to a submitted ticket, nothing is sent on a stream
/// that is not there, windows and queue limits hold.
#[test]
fn random_event_sequences_keep_the_invariants() {
    for seed in 0..40u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (mut m, mut now) = rm();
        let mut out = Vec::new();
        let mut submitted: HashMap<Ticket, u32> = HashMap::new();
        let mut streams: Vec<u64> = Vec::new();
        let mut next_stream = 1;
        let mut inflight: Vec<(u64, u64)> = Vec::new();
        for _ in 0..3000 {
            match rng.next_u32() % 9 {
                0..=2 => {
                    let opts = RequestOptions {
                        priority: if rng.next_u32() % 2 == 0 {
                            Priority::High
                        } else {
                            Priority::Low
                        },
                        timeout: (rng.next_u32() % 3 == 0)
                            .then(|| Duration::from_millis(u64::from(rng.next_u32() % 5000))),
                        ..Default::default()
                    };
                    if let Ok(t) = m.submit(Request::GetBlockNumber, opts, now, &mut out) {
                        submitted.insert(t, 0);
                    }
                }
                3 => {
                    streams.push(next_stream);
                    m.on_stream_added(next_stream, now, &mut out);
                    next_stream += 1;
                }
                4 if !streams.is_empty() => {
                    let s = streams.remove((rng.next_u32() as usize) % streams.len());
                    m.on_stream_removed(s, now, &mut out);
                }
                5 | 6 if !inflight.is_empty() => {
                    let (s, id) = inflight[(rng.next_u32() as usize) % inflight.len()];
                    // Sometimes a wrong stream, sometimes a duplicate.
                    let s = if rng.next_u32() % 10 == 0 { s + 1 } else { s };
                    m.on_response(s, id, ok(), now, &mut out);
                }
                7 => {
                    let t = 1 + u64::from(rng.next_u32() % 50);
                    m.cancel(t, &mut out);
                }
                _ => {
                    now += Duration::from_millis(u64::from(rng.next_u32() % 3000));
                    m.on_tick(now, &mut out);
                }
            }
            for a in out.drain(..) {
                match a {
                    RmAction::Send { stream, id, .. } => {
                        assert!(streams.contains(&stream), "sent on a stream that is gone");
                        inflight.push((stream, id));
                    }
                    RmAction::Deliver { ticket, result } => {
                        let n = submitted
                            .get_mut(&ticket)
                            .expect("delivered to a ticket never submitted");
                        *n += 1;
                        assert_eq!(*n, 1, "ticket {ticket} ended twice");
                        let _ = result;
                    }
                    RmAction::Misbehaved { .. } | RmAction::Unresponsive { .. } => {}
                }
            }
            assert!(m.waiting() <= 1024);
        }
        // Drain: add a stream, answer everything, let time pass.
        m.on_stream_added(9999, now, &mut out);
        streams.push(9999);
        for _ in 0..20 {
            for a in std::mem::take(&mut out) {
                match a {
                    RmAction::Send { stream, id, .. } => {
                        m.on_response(stream, id, ok(), now, &mut out)
                    }
                    RmAction::Deliver { ticket, .. } => {
                        let n = submitted.get_mut(&ticket).expect("known ticket");
                        *n += 1;
                        assert_eq!(*n, 1, "ticket {ticket} ended twice");
                    }
                    RmAction::Misbehaved { .. } | RmAction::Unresponsive { .. } => {}
                }
            }
            now += Duration::from_secs(200);
            m.on_tick(now, &mut out);
        }
        let unfinished: Vec<_> = submitted.iter().filter(|(_, n)| **n == 0).collect();
        assert!(
            unfinished.is_empty(),
            "seed {seed}: requests never ended: {unfinished:?}"
        );
    }
}

/// One scripted run from `t0` through a fresh manager: every action it
/// gave, in order. Two dozen streams and a few hundred requests, so that
/// any decision taken in a hash map's iteration order shows.
fn scripted_run(t0: Instant) -> Vec<String> {
    let mut m = RequestManager::new(RmConfig::default(), t0);
    let mut now = t0;
    let mut out = Vec::new();
    let mut log = Vec::new();
    let mut sent: Vec<(u64, u64)> = Vec::new();
    let step =
        |what: &str, out: &mut Vec<RmAction>, sent: &mut Vec<(u64, u64)>, log: &mut Vec<String>| {
            sent.extend(sends(out));
            log.push(format!("{what} {:?}", std::mem::take(out)));
        };
    for s in 1..=24 {
        m.on_stream_added(s, now, &mut out);
    }
    step("added", &mut out, &mut sent, &mut log);
    // Submitted at one instant: every attempt has the same deadline.
    for i in 0..300u64 {
        let opts = RequestOptions {
            priority: if i % 3 == 0 {
                Priority::High
            } else {
                Priority::Low
            },
            ..Default::default()
        };
        let _ = m.submit(Request::GetBlockHashes(vec![i]), opts, now, &mut out);
    }
    step("submitted", &mut out, &mut sent, &mut log);
    // Streams with an odd id answer; the others stay silent.
    for round in 0..3u64 {
        now += Duration::from_millis(40 + round);
        for (s, id) in std::mem::take(&mut sent) {
            if s % 2 == 1 {
                m.on_response(s, id, ok(), now, &mut out);
            } else {
                sent.push((s, id));
            }
        }
        step("answered", &mut out, &mut sent, &mut log);
    }
    log.push(format!("throughput {:?}", m.throughput()));
    // The silent streams' attempts expire together, and are retried.
    now += Duration::from_secs(3);
    m.on_tick(now, &mut out);
    step("tick", &mut out, &mut sent, &mut log);
    // Streams go away with requests in flight, all submitted at one
    // instant: back to the front of the queue.
    for s in [2, 3, 4, 5, 6] {
        m.on_stream_removed(s, now, &mut out);
        step("removed", &mut out, &mut sent, &mut log);
    }
    for _ in 0..4 {
        now += Duration::from_secs(3);
        m.on_tick(now, &mut out);
        step("tick", &mut out, &mut sent, &mut log);
    }
    log.push(format!("health {:?}", m.health_stats(now)));
    log
}

/// The simulator reproduces a run from its seed: which expired attempt is
/// retried first, the order a removed stream's requests go back to the
/// queue, the throughput report: functions of the inputs only, never of a
/// hash map's per-instance random order.
#[test]
fn the_same_inputs_give_the_same_actions() {
    crate::test_util::assert_same_runs(scripted_run);
}
