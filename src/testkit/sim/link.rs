//! The simulated network's links: when a message sent now arrives.
//!
//! A connection has a one-way latency drawn once when it opens (the
//! configured latency ± jitter, uniformly), and, like TCP, delivers in
//! order: a message never overtakes the one before it on the same
//! connection. Each node has an uplink and a downlink of the configured
//! bandwidth, shared by all its connections in FIFO order. A lost segment
//! is modelled as TCP sees it: the message (and, through the ordering, all
//! behind it) arrives one retransmission timeout later, never not at all.
//! Partitions put nodes in groups; across groups nothing arrives.

use std::time::{Duration, Instant};

use rand_chacha::ChaCha8Rng;
use rand_core::RngCore;

/// Link settings of a simulation.
#[derive(Clone, Copy, Debug)]
pub struct LinkConfig {
    /// Mean one-way latency of a connection.
    pub latency: Duration,
    /// A connection's latency is drawn uniformly in `latency ± jitter`.
    pub jitter: Duration,
    /// Each node's uplink and downlink, bits per second (0: unlimited).
    pub bandwidth_bps: u64,
    /// Probability that a message is hit by a loss (0.0–1.0): it then
    /// arrives one retransmission timeout late.
    pub loss: f64,
    /// Lowest retransmission timeout (Linux: 200 ms); the timeout used is
    /// the larger of this and two round trips.
    pub min_rto: Duration,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            latency: Duration::from_millis(50),
            jitter: Duration::ZERO,
            bandwidth_bps: 0,
            loss: 0.0,
            min_rto: Duration::from_millis(200),
        }
    }
}

/// Per-node link state.
#[derive(Clone, Copy, Debug)]
pub struct Port {
    /// When the uplink has sent everything queued so far.
    pub up_free: Instant,
    /// When the downlink has received everything queued so far.
    pub down_free: Instant,
    /// Partition group (nodes in different groups cannot reach each other).
    pub group: u32,
}

impl Port {
    /// An idle port in group 0.
    pub fn new(now: Instant) -> Self {
        Port {
            up_free: now,
            down_free: now,
            group: 0,
        }
    }
}

/// Draws a connection's one-way latency.
pub fn draw_latency(cfg: &LinkConfig, rng: &mut ChaCha8Rng) -> Duration {
    let j = cfg.jitter.min(cfg.latency).as_nanos() as u64;
    if j == 0 {
        return cfg.latency;
    }
    let offset = rng.next_u64() % (2 * j + 1);
    cfg.latency - Duration::from_nanos(j) + Duration::from_nanos(offset)
}

/// Time to put `bytes` on a link of `bps` (zero when unlimited).
fn wire_time(bytes: usize, bps: u64) -> Duration {
    if bps == 0 {
        return Duration::ZERO;
    }
    Duration::from_nanos((bytes as u128 * 8 * 1_000_000_000 / u128::from(bps)) as u64)
}

/// When a message of `bytes` sent at `now` from `from` arrives at `to`
/// over a connection of one-way `latency` whose previous message arrived
/// at `last` (updated). Advances both ports' queues.
#[allow(clippy::too_many_arguments)]
pub fn arrival(
    cfg: &LinkConfig,
    rng: &mut ChaCha8Rng,
    now: Instant,
    bytes: usize,
    latency: Duration,
    from: &mut Port,
    to: &mut Port,
    last: &mut Instant,
) -> Instant {
    let t = wire_time(bytes, cfg.bandwidth_bps);
    let sent = from.up_free.max(now) + t;
    from.up_free = sent;
    let mut at = sent + latency;
    if cfg.loss > 0.0 && (rng.next_u64() as f64 / u64::MAX as f64) < cfg.loss {
        at += cfg.min_rto.max(latency * 4);
    }
    // The receiver's downlink takes it in after what it is already taking.
    let received = at.max(to.down_free + t);
    to.down_free = received;
    let at = received.max(*last);
    *last = at;
    at
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;

    #[test]
    fn a_connection_delivers_in_order_and_a_busy_uplink_queues() {
        let now = Instant::now();
        let cfg = LinkConfig {
            latency: Duration::from_millis(10),
            bandwidth_bps: 8_000_000, // 1 MB/s
            ..LinkConfig::default()
        };
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let (mut a, mut b) = (Port::new(now), Port::new(now));
        let mut last = now;
        let lat = Duration::from_millis(10);
        // 1 MB takes a second on the wire, then 10 ms of latency.
        let first = arrival(
            &cfg, &mut rng, now, 1_000_000, lat, &mut a, &mut b, &mut last,
        );
        assert_eq!(first - now, Duration::from_millis(1010));
        // A small message sent just after waits behind it.
        let second = arrival(&cfg, &mut rng, now, 10, lat, &mut a, &mut b, &mut last);
        assert!(second > first, "{second:?} vs {first:?}");
    }
}
