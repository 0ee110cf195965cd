//! Token-bucket rate limiting per stream and globally, in requests and
//! bytes. Sans-IO: every call takes `now`.
//!
//! Over the limit a request is answered `rate_limited` with the wait until a
//! token frees up. A peer that sends again before that wait is over collects
//! a strike; past `violation_tolerance` strikes it is a rate-limit violation
//! (the stream is closed and the stream manager told why).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::net::StreamId;

/// A rate and a burst.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    /// Sustained units per second.
    pub per_sec: f64,
    /// Bucket size (units available at once).
    pub burst: f64,
}

/// Limits of the server.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimits {
    /// Requests per stream.
    pub stream_requests: Rate,
    /// Response bytes per stream.
    pub stream_bytes: Rate,
    /// Requests over all streams.
    pub global_requests: Rate,
    /// Response bytes over all streams.
    pub global_bytes: Rate,
    /// Blocks served per stream (the work a request costs, not its count).
    pub stream_blocks: Rate,
    /// Blocks served over all streams.
    pub global_blocks: Rate,
    /// Requests sent before a `retry_after` expired that are forgiven
    /// (in-flight pipelines) before the peer is a violator.
    pub violation_tolerance: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            stream_requests: Rate {
                per_sec: 500.0,
                burst: 1000.0,
            },
            stream_bytes: Rate {
                per_sec: 128.0 * 1024.0 * 1024.0,
                burst: 32.0 * 1024.0 * 1024.0,
            },
            global_requests: Rate {
                per_sec: 5000.0,
                burst: 10000.0,
            },
            global_bytes: Rate {
                per_sec: 512.0 * 1024.0 * 1024.0,
                burst: 128.0 * 1024.0 * 1024.0,
            },
            stream_blocks: Rate {
                per_sec: 50_000.0,
                burst: 100_000.0,
            },
            global_blocks: Rate {
                per_sec: 200_000.0,
                burst: 400_000.0,
            },
            violation_tolerance: 64,
        }
    }
}

/// A token bucket. Tokens may go negative when bytes are charged after the
/// fact; the debt is paid back before the next admission.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    rate: Rate,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: Rate, now: Instant) -> Self {
        TokenBucket {
            rate,
            tokens: rate.burst,
            last: now,
        }
    }

    /// Changes the rate from `now` on (tokens earned so far at the old
    /// rate; a smaller burst caps them at once).
    pub fn set_rate(&mut self, rate: Rate, now: Instant) {
        if rate != self.rate {
            self.refill(now);
            self.rate = rate;
            self.tokens = self.tokens.min(rate.burst);
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * self.rate.per_sec).min(self.rate.burst);
        self.last = now;
    }

    /// How long until `n` tokens are available (zero if they are now).
    pub fn wait_for(&mut self, n: f64, now: Instant) -> Duration {
        self.refill(now);
        if self.tokens >= n {
            return Duration::ZERO;
        }
        if self.rate.per_sec <= 0.0 {
            return Duration::from_secs(3600);
        }
        Duration::from_secs_f64((n - self.tokens) / self.rate.per_sec)
    }

    /// Takes `n` tokens (may go negative).
    pub fn charge(&mut self, n: f64, now: Instant) {
        self.refill(now);
        self.tokens -= n;
    }
}

/// What to do with a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Serve it.
    Allow,
    /// Answer `rate_limited`, retry after this long.
    Limited(Duration),
    /// The peer ignores `rate_limited`: close the stream.
    Violation,
}

struct StreamState {
    requests: TokenBucket,
    bytes: TokenBucket,
    blocks: TokenBucket,
    limited_until: Option<Instant>,
    strikes: u32,
    last_seen: Instant,
}

/// Streams idle this long are forgotten.
const IDLE_FORGET: Duration = Duration::from_secs(600);
/// A stream that sent a request this recently shares the global budget.
const ACTIVE: Duration = Duration::from_secs(10);
/// How often the count of active streams is refreshed.
const ACTIVE_REFRESH: Duration = Duration::from_millis(100);

/// `rate` cut to a fair share of `global` among `n` streams.
fn share(rate: Rate, global: Rate, n: usize) -> Rate {
    let n = n.max(1) as f64;
    Rate {
        per_sec: rate.per_sec.min(global.per_sec / n),
        burst: rate.burst.min(global.burst / n),
    }
}

/// The rate limiter of one server.
pub struct RateLimiter {
    limits: RateLimits,
    global_requests: TokenBucket,
    global_bytes: TokenBucket,
    global_blocks: TokenBucket,
    streams: HashMap<StreamId, StreamState>,
    last_prune: Instant,
    /// Streams seen within `ACTIVE`, as of `active_at`.
    active: usize,
    active_at: Instant,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("limits", &self.limits)
            .field("streams", &self.streams.len())
            .finish()
    }
}

impl RateLimiter {
    /// A limiter with full buckets.
    pub fn new(limits: RateLimits, now: Instant) -> Self {
        RateLimiter {
            limits,
            global_requests: TokenBucket::new(limits.global_requests, now),
            global_bytes: TokenBucket::new(limits.global_bytes, now),
            global_blocks: TokenBucket::new(limits.global_blocks, now),
            streams: HashMap::new(),
            last_prune: now,
            active: 0,
            active_at: now,
        }
    }

    /// Decides on one request from `stream` arriving at `now`; an allowed
    /// request takes one request token from both buckets.
    ///
    /// Fair: each stream's buckets run at most at the global rate (and
    /// burst) divided by the streams active in the last 10 s, so one peer
    /// cannot take the global budget from the others; a stream in debt
    /// (bytes or blocks served past its share) waits until it is paid.
    pub fn check(&mut self, stream: StreamId, now: Instant) -> Decision {
        if now.saturating_duration_since(self.last_prune) > IDLE_FORGET {
            self.streams
                .retain(|_, s| now.saturating_duration_since(s.last_seen) < IDLE_FORGET);
            self.last_prune = now;
        }
        let l = self.limits;
        let fresh = !self.streams.contains_key(&stream);
        if fresh || now.saturating_duration_since(self.active_at) >= ACTIVE_REFRESH {
            self.active = self
                .streams
                .values()
                .filter(|s| now.saturating_duration_since(s.last_seen) < ACTIVE)
                .count()
                + usize::from(fresh);
            self.active_at = now;
        }
        let n = self.active;
        let s = self.streams.entry(stream).or_insert_with(|| StreamState {
            requests: TokenBucket::new(share(l.stream_requests, l.global_requests, n), now),
            bytes: TokenBucket::new(share(l.stream_bytes, l.global_bytes, n), now),
            blocks: TokenBucket::new(share(l.stream_blocks, l.global_blocks, n), now),
            limited_until: None,
            strikes: 0,
            last_seen: now,
        });
        s.last_seen = now;
        s.requests
            .set_rate(share(l.stream_requests, l.global_requests, n), now);
        s.bytes
            .set_rate(share(l.stream_bytes, l.global_bytes, n), now);
        s.blocks
            .set_rate(share(l.stream_blocks, l.global_blocks, n), now);
        if let Some(until) = s.limited_until {
            if now < until {
                s.strikes += 1;
                if s.strikes > l.violation_tolerance {
                    return Decision::Violation;
                }
                return Decision::Limited(until - now);
            }
        }
        let wait = [
            s.requests.wait_for(1.0, now),
            s.bytes.wait_for(0.0, now),
            s.blocks.wait_for(0.0, now),
            self.global_requests.wait_for(1.0, now),
            self.global_bytes.wait_for(0.0, now),
            self.global_blocks.wait_for(0.0, now),
        ]
        .into_iter()
        .max()
        .unwrap_or(Duration::ZERO);
        if wait > Duration::ZERO {
            s.limited_until = Some(now + wait);
            return Decision::Limited(wait);
        }
        s.limited_until = None;
        s.strikes = 0;
        s.requests.charge(1.0, now);
        self.global_requests.charge(1.0, now);
        Decision::Allow
    }

    /// Charges a response of `bytes` holding `blocks` blocks to `stream`
    /// and the global buckets (after the fact: a debt is paid before the
    /// stream's next request is admitted).
    pub fn charge_served(&mut self, stream: StreamId, bytes: usize, blocks: usize, now: Instant) {
        if let Some(s) = self.streams.get_mut(&stream) {
            s.bytes.charge(bytes as f64, now);
            s.blocks.charge(blocks as f64, now);
        }
        self.global_bytes.charge(bytes as f64, now);
        self.global_blocks.charge(blocks as f64, now);
    }

    /// Forgets a stream (it closed).
    pub fn forget(&mut self, stream: StreamId) {
        self.streams.remove(&stream);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_sec: f64, burst: f64, tolerance: u32) -> RateLimits {
        let big = Rate {
            per_sec: 1e12,
            burst: 1e12,
        };
        RateLimits {
            stream_requests: Rate { per_sec, burst },
            stream_bytes: big,
            global_requests: big,
            global_bytes: big,
            stream_blocks: big,
            global_blocks: big,
            violation_tolerance: tolerance,
        }
    }

    #[test]
    fn burst_then_rate_limited_with_retry_after() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(limits(10.0, 3.0, 5), t0);
        for _ in 0..3 {
            assert_eq!(r.check(1, t0), Decision::Allow);
        }
        assert_eq!(
            r.check(1, t0),
            Decision::Limited(Duration::from_millis(100))
        );
        // Another stream is unaffected.
        assert_eq!(r.check(2, t0), Decision::Allow);
        // After the wait, allowed again.
        assert_eq!(r.check(1, t0 + Duration::from_millis(100)), Decision::Allow);
    }

    #[test]
    fn ignoring_rate_limited_past_tolerance_is_a_violation() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(limits(1.0, 1.0, 2), t0);
        assert_eq!(r.check(1, t0), Decision::Allow);
        assert!(matches!(r.check(1, t0), Decision::Limited(_)));
        assert!(matches!(r.check(1, t0), Decision::Limited(_)), "strike 1");
        assert!(matches!(r.check(1, t0), Decision::Limited(_)), "strike 2");
        assert_eq!(
            r.check(1, t0),
            Decision::Violation,
            "strike 3 > tolerance 2"
        );
    }

    #[test]
    fn byte_debt_delays_the_next_request() {
        let t0 = Instant::now();
        let mut l = limits(1e9, 1e9, 5);
        l.stream_bytes = Rate {
            per_sec: 1000.0,
            burst: 1000.0,
        };
        let mut r = RateLimiter::new(l, t0);
        assert_eq!(r.check(1, t0), Decision::Allow);
        r.charge_served(1, 3000, 0, t0);
        assert_eq!(r.check(1, t0), Decision::Limited(Duration::from_secs(2)));
    }

    #[test]
    fn one_stream_cannot_take_the_global_budget() {
        let t0 = Instant::now();
        let mut l = limits(1e6, 1e6, 1000);
        l.global_requests = Rate {
            per_sec: 1.0,
            burst: 100.0,
        };
        let mut r = RateLimiter::new(l, t0);
        // Both streams active: each gets half the global burst.
        assert_eq!(r.check(2, t0), Decision::Allow);
        let greedy = (0..100)
            .filter(|_| r.check(1, t0) == Decision::Allow)
            .count();
        assert!(greedy <= 50, "the greedy stream took {greedy} of 100");
        let other = (0..40)
            .filter(|_| r.check(2, t0) == Decision::Allow)
            .count();
        assert_eq!(other, 40, "the other stream still served its share");
    }

    #[test]
    fn blocks_served_are_counted_not_requests() {
        let t0 = Instant::now();
        let mut l = limits(1e6, 1e6, 1000);
        l.stream_blocks = Rate {
            per_sec: 128.0,
            burst: 256.0,
        };
        let mut r = RateLimiter::new(l, t0);
        for _ in 0..2 {
            assert_eq!(r.check(1, t0), Decision::Allow);
            r.charge_served(1, 1000, 200, t0);
        }
        // 400 blocks served, 144 past the burst: the next request waits,
        // however cheap, until the debt is paid.
        assert!(matches!(r.check(1, t0), Decision::Limited(_)));
        // Block-number requests serve no block and cost none.
        assert_eq!(r.check(2, t0), Decision::Allow);
        r.charge_served(2, 50, 0, t0);
        assert_eq!(r.check(2, t0), Decision::Allow);
    }
}
