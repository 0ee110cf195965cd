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
    limited_until: Option<Instant>,
    strikes: u32,
    last_seen: Instant,
}

/// Streams idle this long are forgotten.
const IDLE_FORGET: Duration = Duration::from_secs(600);

/// The rate limiter of one server.
pub struct RateLimiter {
    limits: RateLimits,
    global_requests: TokenBucket,
    global_bytes: TokenBucket,
    streams: HashMap<StreamId, StreamState>,
    last_prune: Instant,
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
            streams: HashMap::new(),
            last_prune: now,
        }
    }

    /// Decides on one request from `stream` arriving at `now`; an allowed
    /// request takes one request token from both buckets.
    pub fn check(&mut self, stream: StreamId, now: Instant) -> Decision {
        if now.saturating_duration_since(self.last_prune) > IDLE_FORGET {
            self.streams
                .retain(|_, s| now.saturating_duration_since(s.last_seen) < IDLE_FORGET);
            self.last_prune = now;
        }
        let l = self.limits;
        let s = self.streams.entry(stream).or_insert_with(|| StreamState {
            requests: TokenBucket::new(l.stream_requests, now),
            bytes: TokenBucket::new(l.stream_bytes, now),
            limited_until: None,
            strikes: 0,
            last_seen: now,
        });
        s.last_seen = now;
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
            self.global_requests.wait_for(1.0, now),
            self.global_bytes.wait_for(0.0, now),
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

    /// Charges `bytes` of response to `stream` and the global byte bucket.
    pub fn charge_bytes(&mut self, stream: StreamId, bytes: usize, now: Instant) {
        if let Some(s) = self.streams.get_mut(&stream) {
            s.bytes.charge(bytes as f64, now);
        }
        self.global_bytes.charge(bytes as f64, now);
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
        r.charge_bytes(1, 3000, t0);
        assert_eq!(r.check(1, t0), Decision::Limited(Duration::from_secs(2)));
    }
}
