//! Failure accounting and cooldowns per peer (the guide's "Cooldown Process
//! and Failures"):
//!
//! - first failure: no cooldown (a one-off disconnect is not punished);
//! - n-th failure (n ≥ 2): `RemovalCooldownDuration × (n − 1)` (5, 10, 15 …
//!   minutes), at most `MaxRemovalCooldownDuration` (60 minutes);
//! - critical error (proven invalid data, protocol violation): the maximum;
//! - failure counts decay: one failure is forgiven per quiet
//!   `MaxRemovalCooldownDuration` without a new one, so a peer is not
//!   punished forever (Harmony's counters never decay);
//! - what counts as a failure is the stream manager's call: a connection the
//!   peer closed or that broke (its process died) is not one, so restarts
//!   never accumulate into exclusion; and a cooldown only stops the node
//!   from dialling and asking the peer, never from serving it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p_identity::PeerId;

/// Cooldown settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CooldownConfig {
    /// `RemovalCooldownDuration`: cooldown per failure after the first.
    pub per_failure: Duration,
    /// `MaxRemovalCooldownDuration`: cap, and the critical-error cooldown.
    pub max: Duration,
    /// Quiet time after which one failure is forgiven.
    pub decay: Duration,
}

#[derive(Clone, Copy, Debug)]
struct Record {
    failures: u32,
    last_failure: Instant,
    until: Option<Instant>,
    /// Order of first record: breaks ties when one must be forgotten, so
    /// the choice never depends on the map's (random) iteration order.
    seq: u64,
}

/// Most peers whose failures and cooldowns are remembered; past it, after
/// pruning, the record whose cooldown ends first is forgotten (identities
/// cost an attacker nothing, so the map must not grow with them).
pub const MAX_COOLDOWNS: usize = 8192;

/// Most peers [`Cooldowns::in_cooldown`] lists (those ending first).
pub const MAX_LISTED: usize = 64;

/// Per-peer failures and cooldowns.
///
/// Keyed by peer-chosen identities and looked up on every dial and
/// candidate, so a hash map (randomly keyed: no hash flooding); wherever it
/// is iterated for a decision or a list, ties are broken by the record's
/// sequence number or the `PeerId`, never by iteration order.
#[derive(Debug, Default)]
pub struct Cooldowns {
    peers: HashMap<PeerId, Record>,
    next_seq: u64,
}

impl Cooldowns {
    fn decayed(cfg: &CooldownConfig, r: &mut Record, now: Instant) {
        if cfg.decay.is_zero() {
            return;
        }
        let quiet = now.saturating_duration_since(r.last_failure);
        let forgiven = (quiet.as_secs_f64() / cfg.decay.as_secs_f64()) as u32;
        if forgiven > 0 {
            r.failures = r.failures.saturating_sub(forgiven);
            r.last_failure += cfg.decay * forgiven;
        }
    }

    /// Makes room for one more record (see [`MAX_COOLDOWNS`]).
    fn make_room(&mut self, cfg: &CooldownConfig, peer: &PeerId, now: Instant) {
        if self.peers.len() < MAX_COOLDOWNS || self.peers.contains_key(peer) {
            return;
        }
        self.prune(cfg, now);
        while self.peers.len() >= MAX_COOLDOWNS {
            let Some(first) = self
                .peers
                .iter()
                .min_by_key(|(_, r)| (r.until, r.failures, r.seq))
                .map(|(p, _)| *p)
            else {
                break;
            };
            self.peers.remove(&first);
        }
    }

    /// Peers remembered (at most `MAX_COOLDOWNS`).
    #[cfg(any(test, feature = "testkit"))]
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// Whether no peer is remembered.
    #[cfg(feature = "testkit")]
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// Records a failure of `peer` and returns its cooldown (zero: none).
    pub fn record_failure(
        &mut self,
        cfg: &CooldownConfig,
        peer: PeerId,
        critical: bool,
        now: Instant,
    ) -> Duration {
        self.make_room(cfg, &peer, now);
        let seq = self.next_seq;
        let r = self.peers.entry(peer).or_insert(Record {
            failures: 0,
            last_failure: now,
            until: None,
            seq,
        });
        if r.seq == seq {
            self.next_seq += 1;
        }
        Self::decayed(cfg, r, now);
        r.failures = r.failures.saturating_add(1);
        r.last_failure = now;
        let d = if critical {
            cfg.max
        } else {
            (cfg.per_failure * (r.failures - 1)).min(cfg.max)
        };
        r.until = (!d.is_zero()).then(|| now + d);
        d
    }

    /// Keeps `peer` from being dialled until `until` without counting a
    /// failure (it went away on purpose, e.g. its pools were full).
    pub fn pause(&mut self, cfg: &CooldownConfig, peer: PeerId, until: Instant, now: Instant) {
        self.make_room(cfg, &peer, now);
        let seq = self.next_seq;
        let r = self.peers.entry(peer).or_insert(Record {
            failures: 0,
            last_failure: until,
            until: None,
            seq,
        });
        if r.seq == seq {
            self.next_seq += 1;
        }
        r.until = Some(r.until.map_or(until, |u| u.max(until)));
    }

    /// Failures currently counted against `peer`.
    #[cfg(any(test, feature = "testkit"))]
    pub fn failures(&mut self, cfg: &CooldownConfig, peer: &PeerId, now: Instant) -> u32 {
        match self.peers.get_mut(peer) {
            Some(r) => {
                Self::decayed(cfg, r, now);
                r.failures
            }
            None => 0,
        }
    }

    /// When `peer`'s cooldown ends, if it is cooling down at `now`.
    pub fn cooling_until(&self, peer: &PeerId, now: Instant) -> Option<Instant> {
        self.peers
            .get(peer)
            .and_then(|r| r.until)
            .filter(|u| *u > now)
    }

    /// When `peer`'s latest cooldown ends (or ended), if it ever had one.
    pub fn until(&self, peer: &PeerId) -> Option<Instant> {
        self.peers.get(peer).and_then(|r| r.until)
    }

    /// Peers cooling down at `now`, with the end of their cooldown: the
    /// `MAX_LISTED` ending first, in that order, equal ends by `PeerId`
    /// (not the whole map sorted on every status update).
    pub fn in_cooldown(&self, now: Instant) -> Vec<(PeerId, Instant)> {
        let mut v: Vec<_> = self
            .peers
            .iter()
            .filter_map(|(p, r)| r.until.filter(|u| *u > now).map(|u| (*p, u)))
            .collect();
        if v.len() > MAX_LISTED {
            v.select_nth_unstable_by_key(MAX_LISTED, |(p, u)| (*u, *p));
            v.truncate(MAX_LISTED);
        }
        v.sort_unstable_by_key(|(p, u)| (*u, *p));
        v
    }

    /// How many peers are cooling down at `now`.
    pub fn cooling(&self, now: Instant) -> usize {
        self.peers
            .values()
            .filter(|r| r.until.is_some_and(|u| u > now))
            .count()
    }

    /// Forgets peers with no failures left and no cooldown (bounded memory).
    pub fn prune(&mut self, cfg: &CooldownConfig, now: Instant) {
        self.peers.retain(|_, r| {
            Self::decayed(cfg, r, now);
            r.failures > 0 || r.until.is_some_and(|u| u > now)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn cfg() -> CooldownConfig {
        CooldownConfig {
            per_failure: 5 * MIN,
            max: 60 * MIN,
            decay: 60 * MIN,
        }
    }

    fn peer() -> PeerId {
        crate::crypto::NodeIdentity::generate().peer_id()
    }

    #[test]
    fn first_failure_has_no_cooldown() {
        let (mut c, p, t) = (Cooldowns::default(), peer(), Instant::now());
        assert_eq!(c.record_failure(&cfg(), p, false, t), Duration::ZERO);
        assert_eq!(c.cooling_until(&p, t), None);
    }

    #[test]
    fn second_failure_cools_down_five_minutes() {
        let (mut c, p, t) = (Cooldowns::default(), peer(), Instant::now());
        c.record_failure(&cfg(), p, false, t);
        assert_eq!(c.record_failure(&cfg(), p, false, t + MIN), 5 * MIN);
        assert_eq!(c.cooling_until(&p, t + MIN), Some(t + 6 * MIN));
        assert_eq!(c.cooling_until(&p, t + 6 * MIN), None, "cooldown expires");
    }

    #[test]
    fn cooldown_grows_with_failures_and_caps_at_sixty_minutes() {
        let (mut c, p, t) = (Cooldowns::default(), peer(), Instant::now());
        let got: Vec<Duration> = (0..15)
            .map(|i| c.record_failure(&cfg(), p, false, t + MIN * i))
            .collect();
        assert_eq!(got[2], 10 * MIN);
        assert_eq!(got[3], 15 * MIN);
        assert_eq!(got[14], 60 * MIN);
    }

    #[test]
    fn critical_error_cools_down_sixty_minutes() {
        let (mut c, p, t) = (Cooldowns::default(), peer(), Instant::now());
        assert_eq!(c.record_failure(&cfg(), p, true, t), 60 * MIN);
    }

    #[test]
    fn failure_counts_decay_after_a_quiet_period() {
        let (mut c, p, t) = (Cooldowns::default(), peer(), Instant::now());
        for i in 0..3 {
            c.record_failure(&cfg(), p, false, t + MIN * i);
        }
        assert_eq!(c.failures(&cfg(), &p, t + 3 * MIN), 3);
        assert_eq!(
            c.failures(&cfg(), &p, t + 2 * MIN + 121 * MIN),
            1,
            "two quiet hours forgive two"
        );
        // After a long quiet, the next failure is a first failure again.
        assert_eq!(
            c.record_failure(&cfg(), p, false, t + 10 * 60 * MIN),
            Duration::ZERO
        );
    }

    #[test]
    fn the_cooldown_map_is_bounded_whatever_identities_fail() {
        let cfg = CooldownConfig {
            per_failure: Duration::from_secs(300),
            max: Duration::from_secs(3600),
            decay: Duration::from_secs(3600),
        };
        let now = Instant::now();
        let mut c = Cooldowns::default();
        for _ in 0..MAX_COOLDOWNS + 100 {
            let p = crate::crypto::NodeIdentity::generate().peer_id();
            c.record_failure(&cfg, p, true, now);
        }
        assert_eq!(c.len(), MAX_COOLDOWNS);
        assert_eq!(c.in_cooldown(now).len(), MAX_LISTED);
    }
}
