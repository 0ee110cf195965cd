//! Per-stream request windows sized to the link (DESIGN.md §9): each stream
//! keeps as many requests in flight as its bandwidth-delay product needs,
//! measured from its own answers: the smallest round trip seen (the path's
//! delay without queueing) times the bytes per second it delivers (the
//! highest recent per-round-trip sample), with a
//! gain of 2 so the window can grow until the stream, not the window, is
//! the limit (as BBR probes). Streams are ranked by delivered bytes/s.
//!
//! Pure bookkeeping: fed `now` by the machine, no clock reads.

use std::time::{Duration, Instant};

/// Smallest window: every stream always has work when there is work.
pub const MIN_WINDOW: usize = 2;
/// Largest window (the request manager's per-stream cap).
pub const MAX_WINDOW: usize = 32;
/// Window of a stream with no measurement yet, unless `Concurrency` says
/// otherwise.
pub const INITIAL_WINDOW: usize = 4;
/// Shortest time delivered bytes are summed before the rate is updated
/// (else one round trip).
const RATE_INTERVAL: Duration = Duration::from_millis(20);
/// How much of the previous rate a new, lower sample keeps.
const RATE_DECAY: f64 = 0.75;
/// EWMA weight of a new rate or round-trip sample.
const ALPHA: f64 = 0.25;
/// Window gain over the measured bandwidth-delay product.
const GAIN: f64 = 2.0;
/// Rate samples in a row without `STARTUP_GROWTH` that end startup (as
/// BBR's full-pipe check).
const STARTUP_ROUNDS: u32 = 3;
/// Growth of the rate sample that counts as the pipe still filling.
const STARTUP_GROWTH: f64 = 1.25;
/// Answers a body request of a stream should take at most (its request
/// size is cut so that one answer arrives within this at its rate).
const ANSWER_TIME: Duration = Duration::from_millis(250);

/// What the sync knows about one stream's link.
#[derive(Clone, Debug)]
pub struct Link {
    /// Requests in flight now.
    pub in_flight: usize,
    /// Smoothed round trip of its answers, seconds (`None`: no sample).
    pub srtt: Option<f64>,
    /// Smallest round trip seen, seconds.
    pub min_rtt: Option<f64>,
    /// Delivered bytes per second (max filter over per-round-trip samples).
    pub rate: f64,
    /// Mean bytes of one answer (EWMA).
    pub answer_bytes: f64,
    /// Bytes delivered since `interval_start`.
    interval_bytes: u64,
    interval_start: Option<Instant>,
    /// Penalty rank (the watchdog deprioritises stalled streams).
    pub penalty: u32,
    /// Answers received.
    pub answers: u64,
    /// Window before the link is measured (`Concurrency`).
    pub initial: usize,
    /// In startup the window also grows by one request per answer (it
    /// doubles every round trip, ack-clocked, without waiting for the rate
    /// estimate, which lags a round trip), until the rate stops growing
    /// or a request fails.
    startup: bool,
    /// The startup window, requests.
    cwnd: f64,
    /// Highest rate sample of startup, and samples since it grew.
    full_rate: f64,
    flat_rounds: u32,
}

impl Default for Link {
    fn default() -> Self {
        Link {
            in_flight: 0,
            srtt: None,
            min_rtt: None,
            rate: 0.0,
            answer_bytes: 0.0,
            interval_bytes: 0,
            interval_start: None,
            penalty: 0,
            answers: 0,
            initial: INITIAL_WINDOW,
            startup: true,
            cwnd: INITIAL_WINDOW as f64,
            full_rate: 0.0,
            flat_rounds: 0,
        }
    }
}

impl Link {
    /// A link whose window starts at `initial` requests (the guide's
    /// `Concurrency`), within `MIN_WINDOW..=MAX_WINDOW`.
    pub fn with_initial(initial: usize) -> Self {
        let initial = initial.clamp(MIN_WINDOW, MAX_WINDOW);
        Link {
            initial,
            cwnd: initial as f64,
            ..Link::default()
        }
    }

    /// Notes an answer of `bytes` that took `rtt` since it was sent.
    pub fn on_answer(&mut self, bytes: usize, rtt: Duration, now: Instant) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.answers += 1;
        if self.startup {
            self.cwnd = (self.cwnd + 1.0).min(MAX_WINDOW as f64);
        }
        let r = rtt.as_secs_f64();
        self.srtt = Some(self.srtt.map_or(r, |s| s + ALPHA * (r - s)));
        self.min_rtt = Some(self.min_rtt.map_or(r, |m| m.min(r)));
        let b = bytes as f64;
        self.answer_bytes = if self.answer_bytes == 0.0 {
            b
        } else {
            self.answer_bytes + ALPHA * (b - self.answer_bytes)
        };
        self.interval_bytes += bytes as u64;
        let start = *self.interval_start.get_or_insert(now - rtt);
        let span = now.saturating_duration_since(start);
        // One sample per round trip (at least 20 ms): a max filter, as
        // BBR's, so the window follows a growing rate at once and lets go
        // of a falling one over a few samples.
        let interval = Duration::from_secs_f64(self.min_rtt.unwrap_or(0.0)).max(RATE_INTERVAL);
        if span >= interval {
            let sample = self.interval_bytes as f64 / span.as_secs_f64();
            self.rate = sample.max(self.rate * RATE_DECAY);
            if self.startup {
                if sample >= self.full_rate * STARTUP_GROWTH {
                    self.full_rate = sample;
                    self.flat_rounds = 0;
                } else {
                    self.flat_rounds += 1;
                    self.startup = self.flat_rounds < STARTUP_ROUNDS;
                }
            }
            self.interval_bytes = 0;
            self.interval_start = Some(now);
        }
    }

    /// Notes a request that failed (timeout, stream gone): it ends
    /// startup, as a loss ends TCP's slow start.
    pub fn on_failure(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.startup = false;
    }

    /// Notes a request we cancelled (it says nothing about the link).
    pub fn on_cancel(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// Requests this stream should have in flight: its bandwidth-delay
    /// product in answers, with gain, within `MIN_WINDOW..=MAX_WINDOW`.
    /// In startup, at least the startup window.
    pub fn window(&self) -> usize {
        let floor = if self.startup {
            self.cwnd as usize
        } else {
            MIN_WINDOW
        };
        let (Some(rtt), true) = (self.min_rtt, self.answer_bytes > 0.0 && self.rate > 0.0) else {
            return self.initial.max(floor);
        };
        let bdp_answers = self.rate * rtt / self.answer_bytes;
        ((GAIN * bdp_answers).ceil() as usize + 1)
            .max(floor)
            .clamp(MIN_WINDOW, MAX_WINDOW)
    }

    /// Whether it may take one more request.
    pub fn has_room(&self) -> bool {
        self.in_flight < self.window()
    }

    /// Blocks per body request for this stream: as many as arrive within
    /// `ANSWER_TIME` at its rate (`block_bytes` each), within `min..=max`.
    pub fn body_request_len(&self, block_bytes: f64, min: usize, max: usize) -> usize {
        if self.rate <= 0.0 || block_bytes <= 0.0 {
            return max;
        }
        let n = self.rate * ANSWER_TIME.as_secs_f64() / block_bytes;
        (n as usize).clamp(min.min(max), max)
    }

    /// When a request sent at `sent` to this stream is late enough to be
    /// hedged: 1.5 × its smoothed round trip plus 10 ms (100 ms unknown).
    pub fn hedge_after(&self, sent: Instant) -> Instant {
        let srtt = self.srtt.unwrap_or(0.1);
        sent + Duration::from_secs_f64(1.5 * srtt + 0.01)
    }

    /// Ranking key, best first: delivered bytes/s, lowered by penalties
    /// (the machine ranks a stream not measured yet with the best one).
    pub fn score(&self) -> f64 {
        self.rate.max(1.0) / f64::from(1 + self.penalty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_follows_the_bandwidth_delay_product() {
        let t0 = Instant::now();
        let mut fast_far = Link::default();
        let mut fast_near = Link::default();
        // 1 MB answers every 10 ms = 100 MB/s; 100 ms vs 1 ms round trips.
        for i in 1..=100u64 {
            let now = t0 + Duration::from_millis(10 * i);
            fast_far.in_flight += 1;
            fast_far.on_answer(1_000_000, Duration::from_millis(100), now);
            fast_near.in_flight += 1;
            fast_near.on_answer(1_000_000, Duration::from_millis(1), now);
        }
        assert!(
            fast_far.window() > 10 * fast_near.window() / 2,
            "far {} near {}",
            fast_far.window(),
            fast_near.window()
        );
        assert_eq!(fast_near.window(), MIN_WINDOW);
        // 100 MB/s × 100 ms = 10 answers in flight, twice that with gain.
        assert!(
            (15..=MAX_WINDOW).contains(&fast_far.window()),
            "{}",
            fast_far.window()
        );
    }

    /// Round trips of 200 ms in which a stream delivers everything asked:
    /// returns the window after `rounds` of them.
    fn window_after_rounds(rounds: u32) -> usize {
        let t0 = Instant::now();
        let rtt = Duration::from_millis(200);
        let mut l = Link::default();
        for r in 0..rounds {
            let w = l.window();
            l.in_flight = w;
            for i in 0..w {
                let now = t0 + rtt * (r + 1) + Duration::from_micros(i as u64);
                l.on_answer(70_000, rtt, now);
            }
        }
        l.window()
    }

    #[test]
    fn startup_doubles_the_window_every_round_trip() {
        // 4 → 8 → 16 → 32: one more request per answer, as TCP's slow
        // start, not one doubling per two round trips of rate estimates.
        assert_eq!(window_after_rounds(1), 2 * INITIAL_WINDOW);
        assert_eq!(window_after_rounds(3), MAX_WINDOW);
    }

    #[test]
    fn a_failure_ends_startup() {
        let mut l = Link::default();
        let t0 = Instant::now();
        l.in_flight = 4;
        for i in 0..3u64 {
            l.on_answer(
                70_000,
                Duration::from_millis(200),
                t0 + Duration::from_millis(200 + i),
            );
        }
        let grown = l.window();
        l.on_failure();
        assert!(
            l.window() < grown,
            "window {} after a timeout, {grown} before",
            l.window()
        );
    }
}
