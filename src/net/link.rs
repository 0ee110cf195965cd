//! A WAN link emulated in user space (DESIGN.md §12: the kernel here has no
//! netem): one-way latency, jitter, bandwidth and loss applied to the frames
//! a node sends.
//!
//! The model is a TCP connection, so it never drops or reorders data:
//! - **bandwidth** serializes frames: a frame leaves the sender once the
//!   frames before it have, and takes `bytes × 8 / bandwidth` to do so;
//! - **latency** and **jitter** (uniform in `[0, jitter]`) are added on top,
//!   but a frame is never released before the one sent before it;
//! - **loss** becomes a retransmission: a frame "lost" is delivered one
//!   RTO-like delay ([`LinkProfile::retransmission_delay`]) later, and the
//!   frames behind it wait for it (head-of-line blocking).
//!
//! [`LinkShaper`] is the pure computation (no clock, no sockets): the
//! reactor asks it when each frame may be written and holds the frame until
//! then.

use std::time::{Duration, Instant};

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

/// Shortest retransmission delay of a lost frame (Linux's minimum RTO).
pub const MIN_RETRANSMISSION_DELAY: Duration = Duration::from_millis(200);

/// The emulated link every connection of a node sends over. All zero (the
/// default) is a plain loopback link and costs nothing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LinkProfile {
    /// One-way delay added to every frame the node sends.
    pub latency: Duration,
    /// Extra delay per frame, uniform in `[0, jitter]`; frames still leave
    /// in order.
    pub jitter: Duration,
    /// Send rate of each connection (each direction), bits per second;
    /// `None` (or `Some(0)`) for unlimited.
    pub bandwidth_bps: Option<u64>,
    /// Probability in `[0, 1]` that a frame is "lost" and costs one
    /// retransmission delay (not a percentage).
    pub loss: f64,
}

impl LinkProfile {
    /// True when the profile changes nothing: frames are written at once,
    /// exactly as without emulation.
    pub fn is_off(&self) -> bool {
        self.latency.is_zero()
            && self.jitter.is_zero()
            && self.bandwidth().is_none()
            && !self.has_loss()
    }

    /// True when frames may be lost (`loss` > 0; NaN counts as none).
    pub fn has_loss(&self) -> bool {
        self.loss > 0.0
    }

    /// The bandwidth in bits per second, `None` when unlimited.
    pub fn bandwidth(&self) -> Option<u64> {
        self.bandwidth_bps.filter(|b| *b > 0)
    }

    /// The extra delay a lost frame costs: `max(200 ms, 2 × latency)`, an
    /// RTO-like wait before the retransmission arrives.
    pub fn retransmission_delay(&self) -> Duration {
        MIN_RETRANSMISSION_DELAY.max(self.latency.saturating_mul(2))
    }

    /// Time to put `bytes` on the wire at the profile's bandwidth (zero when
    /// unlimited).
    pub fn serialization_time(&self, bytes: usize) -> Duration {
        match self.bandwidth() {
            None => Duration::ZERO,
            Some(bps) => {
                let nanos = (bytes as u128 * 8 * 1_000_000_000).div_ceil(u128::from(bps));
                Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
            }
        }
    }
}

/// The release times of one connection's frames under a [`LinkProfile`]:
/// keeps the time its last frame finished serializing and the last release
/// time, so frames stay in order. Its jitter and loss draws come from a
/// ChaCha8 stream seeded by the caller (the reactor uses the stream id), so
/// a run's draws are reproducible.
#[derive(Clone, Debug)]
pub struct LinkShaper {
    profile: LinkProfile,
    rng: ChaCha8Rng,
    tx_done: Option<Instant>,
    last_release: Option<Instant>,
}

impl LinkShaper {
    /// A shaper for one connection, its random draws seeded by `seed`.
    pub fn new(profile: LinkProfile, seed: u64) -> Self {
        LinkShaper {
            profile,
            rng: ChaCha8Rng::seed_from_u64(seed),
            tx_done: None,
            last_release: None,
        }
    }

    /// The profile this shaper applies.
    #[cfg(feature = "testkit")]
    pub fn profile(&self) -> &LinkProfile {
        &self.profile
    }

    /// When a frame of `bytes` bytes (as written on the wire) handed over at
    /// `now` may be written: after the frames before it are serialized, plus
    /// its own serialization time, latency, a jitter draw and, if the loss
    /// draw says so, one retransmission delay; never before the previous
    /// frame's release.
    #[cfg(any(test, feature = "testkit"))]
    pub fn release_at(&mut self, now: Instant, bytes: usize) -> Instant {
        self.schedule(now, bytes).1
    }

    /// As [`release_at`](Self::release_at), with the time the frame has
    /// left the sender (its serialization done, `now` when bandwidth is
    /// unlimited): from then on it is on the wire, as a frame in the
    /// kernel's hands is, and no longer holds the sender's write permit.
    pub fn schedule(&mut self, now: Instant, bytes: usize) -> (Instant, Instant) {
        let start = self.tx_done.map_or(now, |t| t.max(now));
        let tx_done = start + self.profile.serialization_time(bytes);
        self.tx_done = Some(tx_done);
        let mut at = tx_done + self.profile.latency + self.jitter();
        if self.lost() {
            at += self.profile.retransmission_delay();
        }
        let at = self.last_release.map_or(at, |prev| at.max(prev));
        self.last_release = Some(at);
        (tx_done, at)
    }

    /// Uniform in `[0, jitter]`, nanosecond steps; no draw when off.
    fn jitter(&mut self) -> Duration {
        let j = self.profile.jitter.as_nanos();
        if j == 0 {
            return Duration::ZERO;
        }
        // Lemire's multiply-shift: `u64 × (j + 1) >> 64` is in [0, j].
        let nanos = (u128::from(self.rng.next_u64()) * (j + 1)) >> 64;
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// Whether this frame is lost; no draw when loss is off.
    fn lost(&mut self) -> bool {
        if !self.profile.has_loss() {
            return false;
        }
        // 53 random bits → uniform in [0, 1).
        let u = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        u < self.profile.loss
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn shaper(p: LinkProfile) -> LinkShaper {
        LinkShaper::new(p, 7)
    }

    #[test]
    fn off_profile_adds_nothing() {
        let p = LinkProfile::default();
        assert!(p.is_off());
        assert!(LinkProfile {
            bandwidth_bps: Some(0),
            ..LinkProfile::default()
        }
        .is_off());
        let mut s = shaper(p);
        let now = Instant::now();
        for len in [0, 1, 1500, 1 << 20] {
            assert_eq!(s.release_at(now, len), now);
        }
        for on in [
            LinkProfile {
                latency: MS,
                ..LinkProfile::default()
            },
            LinkProfile {
                jitter: MS,
                ..LinkProfile::default()
            },
            LinkProfile {
                bandwidth_bps: Some(1),
                ..LinkProfile::default()
            },
            LinkProfile {
                loss: 0.01,
                ..LinkProfile::default()
            },
        ] {
            assert!(!on.is_off(), "{on:?}");
        }
    }

    #[test]
    fn latency_delays_each_frame_by_exactly_that() {
        let mut s = shaper(LinkProfile {
            latency: 25 * MS,
            ..LinkProfile::default()
        });
        let t0 = Instant::now();
        assert_eq!(s.release_at(t0, 100), t0 + 25 * MS);
        assert_eq!(s.release_at(t0 + 3 * MS, 100), t0 + 28 * MS);
    }

    #[test]
    fn bandwidth_serializes_frames() {
        // 8 Mbit/s: 1000 bytes take 1 ms.
        let mut s = shaper(LinkProfile {
            latency: 10 * MS,
            bandwidth_bps: Some(8_000_000),
            ..LinkProfile::default()
        });
        let t0 = Instant::now();
        // Three frames handed over at once leave one after the other.
        assert_eq!(s.release_at(t0, 1000), t0 + 11 * MS);
        assert_eq!(s.release_at(t0, 1000), t0 + 12 * MS);
        assert_eq!(s.release_at(t0, 2000), t0 + 14 * MS);
        // The link was busy until t0 + 4 ms: a frame at t0 + 1 ms queues.
        assert_eq!(s.release_at(t0 + MS, 1000), t0 + 15 * MS);
        // An idle link starts at once.
        assert_eq!(s.release_at(t0 + 100 * MS, 1000), t0 + 111 * MS);
        // Throughput over many frames is the bandwidth.
        let t1 = t0 + 1000 * MS;
        let mut last = t1;
        for _ in 0..1000 {
            last = s.release_at(t1, 1000);
        }
        assert_eq!(last, t1 + 1000 * MS + 10 * MS);
    }

    #[test]
    fn jitter_never_reorders_frames() {
        let mut s = shaper(LinkProfile {
            latency: 20 * MS,
            jitter: 15 * MS,
            ..LinkProfile::default()
        });
        let t0 = Instant::now();
        let mut prev = t0;
        let mut delays = Vec::new();
        for i in 0..10_000u32 {
            let now = t0 + Duration::from_micros(u64::from(i) * 100);
            let at = s.release_at(now, 500);
            assert!(at >= prev, "frame {i} released before the one before it");
            let d = at - now;
            assert!(d >= 20 * MS, "frame {i}: {d:?} below the latency");
            prev = at;
            delays.push(d);
        }
        // The jitter varies the delay (not always clamped to the previous).
        let max = delays.iter().max().copied().unwrap_or_default();
        assert!(max > 30 * MS && max <= 35 * MS, "{max:?}");
        // Frames spaced wider than the jitter get their own draw, within
        // [latency, latency + jitter], and the same seed gives the same draws.
        let p = LinkProfile {
            latency: 20 * MS,
            jitter: 15 * MS,
            ..LinkProfile::default()
        };
        let (mut a, mut b) = (LinkShaper::new(p.clone(), 3), LinkShaper::new(p, 3));
        let mut distinct = std::collections::HashSet::new();
        for i in 0..200u64 {
            let now = t0 + Duration::from_secs(i);
            let (x, y) = (a.release_at(now, 10), b.release_at(now, 10));
            assert_eq!(x, y);
            let d = x - now;
            assert!(d >= 20 * MS && d <= 35 * MS, "{d:?}");
            distinct.insert(d);
        }
        assert!(distinct.len() > 150, "{}", distinct.len());
    }

    #[test]
    fn loss_adds_a_retransmission_delay() {
        let p = LinkProfile {
            latency: 25 * MS,
            loss: 0.1,
            ..LinkProfile::default()
        };
        assert_eq!(p.retransmission_delay(), 200 * MS);
        assert_eq!(
            LinkProfile {
                latency: 150 * MS,
                ..p.clone()
            }
            .retransmission_delay(),
            300 * MS
        );
        let mut s = shaper(p);
        let t0 = Instant::now();
        let (mut lost, mut prev) = (0, t0);
        let n = 10_000u64;
        for i in 0..n {
            // Frames 1 s apart: each delay is its own, not its predecessor's.
            let now = t0 + Duration::from_secs(i);
            let at = s.release_at(now, 100);
            assert!(at >= prev);
            prev = at;
            let d = at - now;
            if d == 225 * MS {
                lost += 1;
            } else {
                assert_eq!(d, 25 * MS);
            }
        }
        // About 10 % of the frames.
        assert!((800..1200).contains(&lost), "{lost}");
        // Every frame lost: each one waits latency + one retransmission.
        let mut s = shaper(LinkProfile {
            latency: 25 * MS,
            loss: 1.0,
            ..LinkProfile::default()
        });
        assert_eq!(s.release_at(t0, 100), t0 + 225 * MS);
        // A lost frame holds back the frames behind it (TCP delivers in
        // order): frames 1 ms apart, half of them lost.
        let mut s = shaper(LinkProfile {
            latency: 25 * MS,
            loss: 0.5,
            ..LinkProfile::default()
        });
        let (mut prev, mut held_back) = (t0, 0);
        for i in 0..1000u64 {
            let now = t0 + Duration::from_millis(i);
            let at = s.release_at(now, 100);
            assert!(at >= prev);
            let d = at - now;
            if d > 25 * MS && d < 225 * MS {
                held_back += 1;
                assert_eq!(at, prev, "held back to the previous frame's release");
            }
            prev = at;
        }
        assert!(held_back > 100, "{held_back}");
    }

    #[test]
    fn serialization_time_is_bits_over_bandwidth() {
        let p = LinkProfile {
            bandwidth_bps: Some(20_000_000),
            ..LinkProfile::default()
        };
        // 2048 bytes at 20 Mbit/s: 819.2 µs.
        assert_eq!(p.serialization_time(2048), Duration::from_nanos(819_200));
        assert_eq!(p.serialization_time(0), Duration::ZERO);
        assert_eq!(
            LinkProfile::default().serialization_time(1 << 30),
            Duration::ZERO
        );
    }
}
