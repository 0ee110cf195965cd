//! Stream manager rules, one test per rule of the guide / DESIGN.md §7,
//! driven with a manual clock.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use libp2p_identity::PeerId;

use super::manager::*;
use crate::config::{Network, SyncConfig};
use crate::crypto::NodeIdentity;
use crate::net::{CloseReason, StreamInfo};
use crate::wire::ProtocolId;

const MIN: Duration = Duration::from_secs(60);

fn cfg() -> StreamManagerConfig {
    let mut s = SyncConfig::for_network(Network::Mainnet);
    s.disc_hard_low_cap = 2;
    s.disc_soft_low_cap = 3;
    s.disc_high_cap = 4;
    s.max_reserved_streams = 2;
    s.disc_batch = 5;
    s.setup_concurrency = 3;
    StreamManagerConfig::from_sync(&s)
}

struct Fixture {
    sm: StreamManager,
    me: PeerId,
    now: Instant,
    next: u64,
}

fn peer() -> PeerId {
    NodeIdentity::generate().peer_id()
}

fn addr(n: u64) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 10_000 + n as u16))
}

impl Fixture {
    fn new(trusted: Vec<PeerAddr>) -> Self {
        let now = Instant::now();
        let me = peer();
        Fixture {
            me,
            sm: StreamManager::new(cfg(), me, trusted, now),
            now,
            next: 1,
        }
    }

    fn up_peer(&mut self, p: PeerId) -> (StreamInfo, Vec<Action>) {
        let info = StreamInfo {
            id: self.next,
            peer_id: p,
            addr: addr(self.next),
            protocol: ProtocolId::sync(Network::Mainnet, 0),
            inbound: true,
        };
        self.next += 1;
        let a = self.sm.on_stream_up(info.clone(), self.now);
        (info, a)
    }

    fn sm_me(&self) -> PeerId {
        self.me
    }

    fn up_dir(&mut self, p: PeerId, inbound: bool) -> (StreamInfo, Vec<Action>) {
        let info = StreamInfo {
            id: self.next,
            peer_id: p,
            addr: addr(self.next),
            protocol: ProtocolId::sync(Network::Mainnet, 0),
            inbound,
        };
        self.next += 1;
        let a = self.sm.on_stream_up(info.clone(), self.now);
        (info, a)
    }

    fn up(&mut self) -> (StreamInfo, Vec<Action>) {
        self.up_peer(peer())
    }

    fn advance(&mut self, d: Duration) -> Vec<Action> {
        self.now += d;
        self.sm.on_tick(self.now)
    }
}

fn discovers(a: &[Action]) -> bool {
    a.iter().any(|x| matches!(x, Action::Discover { .. }))
}

fn activated(a: &[Action]) -> Vec<u64> {
    a.iter()
        .filter_map(|x| match x {
            Action::Activated(i) => Some(i.id),
            _ => None,
        })
        .collect()
}

#[test]
fn streams_fill_active_up_to_high_cap_then_reserve_then_are_closed() {
    let mut f = Fixture::new(vec![]);
    for _ in 0..4 {
        assert_eq!(activated(&f.up().1).len(), 1);
    }
    for _ in 0..2 {
        let (_, a) = f.up();
        assert!(
            activated(&a).is_empty(),
            "beyond DiscHighCap goes to reserve"
        );
    }
    assert_eq!((f.sm.active_count(), f.sm.reserved_count()), (4, 2));
    let (info, a) = f.up_dir(peer(), false);
    assert!(
        a.contains(&Action::Close {
            stream: info.id,
            reason: None
        }),
        "an outbound stream beyond MaxReservedStreams is closed"
    );
}

#[test]
fn a_newcomer_at_full_pools_replaces_the_oldest_reserve_stream() {
    // A boot node everyone dials first fills both pools; a new node must
    // still get in (to ask for peers), or it can never join the network.
    let mut f = Fixture::new(vec![]);
    for _ in 0..4 {
        f.up();
    }
    let (oldest, _) = f.up();
    let (second, _) = f.up();
    let (newcomer, a) = f.up();
    assert!(
        a.contains(&Action::Close {
            stream: oldest.id,
            reason: None
        }),
        "the oldest reserve stream makes room: {a:?}"
    );
    assert!(!a.iter().any(
        |x| matches!(x, Action::Close { stream, .. } if *stream == newcomer.id || *stream == second.id)
    ));
    assert_eq!((f.sm.active_count(), f.sm.reserved_count()), (4, 2));
}

#[test]
fn removal_promotes_reserved_stream_immediately() {
    let mut f = Fixture::new(vec![]);
    let first = f.up().0;
    for _ in 0..4 {
        f.up();
    }
    assert_eq!(f.sm.reserved_count(), 1);
    let a =
        f.sm.remove_stream(first.id, RemovalReason::InvalidResponse, f.now);
    assert!(a.contains(&Action::Deactivated(first.id)));
    assert_eq!(
        activated(&a).len(),
        1,
        "a reserve stream replaces it in the same step"
    );
    assert_eq!((f.sm.active_count(), f.sm.reserved_count()), (4, 0));
}

#[test]
fn below_hard_cap_discovers_at_once() {
    let mut f = Fixture::new(vec![]);
    let a = f.up().0;
    let b = f.up().0;
    let acts =
        f.sm.remove_stream(a.id, RemovalReason::InvalidResponse, f.now);
    assert!(discovers(&acts), "1 active < hard cap 2: discover now");
    let _ = b;
}

#[test]
fn removal_above_hard_cap_does_not_discover_at_once() {
    let mut f = Fixture::new(vec![]);
    let a = f.up().0;
    f.up();
    f.up();
    let acts =
        f.sm.remove_stream(a.id, RemovalReason::ConnectionFailure, f.now);
    assert!(
        !discovers(&acts),
        "2 active = hard cap: wait for the routine check"
    );
}

#[test]
fn below_soft_cap_discovers_on_check() {
    let mut f = Fixture::new(vec![]);
    f.up();
    f.up();
    assert!(
        !discovers(&f.advance(Duration::from_secs(29))),
        "not before CheckInterval"
    );
    assert!(
        discovers(&f.advance(Duration::from_secs(1))),
        "2 < soft cap 3 at the check"
    );
}

#[test]
fn at_soft_cap_the_check_does_not_discover() {
    let mut f = Fixture::new(vec![]);
    for _ in 0..3 {
        f.up();
    }
    assert!(!discovers(&f.advance(Duration::from_secs(30))));
}

#[test]
fn discovery_that_found_nobody_backs_off() {
    let mut f = Fixture::new(vec![]);
    assert!(discovers(&f.sm.start(f.now)));
    f.sm.on_discovered(vec![], f.now);
    assert!(matches!(
        f.sm.status(f.now).discovery,
        DiscoveryState::BackingOff(_)
    ));
    // The next check falls inside the back-off (= CheckInterval here) only if
    // it comes earlier; at the check after the back-off it discovers again.
    assert!(discovers(&f.advance(Duration::from_secs(30))));
}

/// A node below `DiscHardLowCap` (it just started, or lost most peers)
/// keeps discovering, 1 s after the last try, then 2 s, 4 s ... never
/// waiting a whole `CheckInterval` while a peer exchange may have come
/// back too early to name anyone; at the hard cap it waits for the check.
#[test]
fn below_the_hard_cap_discovery_retries_with_a_growing_back_off() {
    let mut f = Fixture::new(vec![]);
    assert!(discovers(&f.sm.start(f.now)));
    f.up();
    // The boot peer was found (and connected), peer exchange named nobody.
    f.sm.on_discovered(vec![], f.now);
    let mut gaps = Vec::new();
    let mut last = f.now;
    for _ in 0..4 {
        loop {
            let at = f.sm.next_deadline();
            assert!(at <= last + Duration::from_secs(30), "waits for the check");
            f.now = at;
            if discovers(&f.sm.on_tick(f.now)) {
                break;
            }
        }
        gaps.push((f.now - last).as_secs());
        last = f.now;
        f.sm.on_discovered(vec![], f.now);
    }
    assert_eq!(gaps, vec![1, 2, 4, 8]);
    // At the hard cap: nothing more before the routine check (at 30 s).
    f.up();
    assert!(!discovers(&f.advance(Duration::from_secs(29 - 15))));
}

#[test]
fn discovery_times_out() {
    let mut f = Fixture::new(vec![]);
    f.sm.start(f.now);
    f.advance(Duration::from_secs(10));
    assert!(matches!(
        f.sm.status(f.now).discovery,
        DiscoveryState::BackingOff(_)
    ));
}

#[test]
fn setup_concurrency_limits_dials() {
    let mut f = Fixture::new(vec![]);
    f.sm.start(f.now);
    let peers: Vec<PeerAddr> = (0..5)
        .map(|i| PeerAddr {
            peer: peer(),
            addr: addr(100 + i),
        })
        .collect();
    let a = f.sm.on_discovered(peers.clone(), f.now);
    assert_eq!(
        a.iter().filter(|x| matches!(x, Action::Dial(_))).count(),
        3,
        "SetupConcurrency 3"
    );
    // One setup completes: the next candidate is dialled.
    let (_, a) = f.up_peer(peers[0].peer);
    assert_eq!(a.iter().filter(|x| matches!(x, Action::Dial(_))).count(), 1);
}

#[test]
fn connect_timeout_counts_as_a_failure_and_frees_the_slot() {
    let mut f = Fixture::new(vec![]);
    f.sm.start(f.now);
    let peers: Vec<PeerAddr> = (0..4)
        .map(|i| PeerAddr {
            peer: peer(),
            addr: addr(200 + i),
        })
        .collect();
    f.sm.on_discovered(peers, f.now);
    assert_eq!(f.sm.status(f.now).setting_up, 3);
    let a = f.advance(Duration::from_secs(60));
    assert_eq!(
        a.iter().filter(|x| matches!(x, Action::Dial(_))).count(),
        1,
        "fourth candidate dialled"
    );
}

#[test]
fn trusted_peers_are_dialled_first() {
    let t = PeerAddr {
        peer: peer(),
        addr: addr(1),
    };
    let mut f = Fixture::new(vec![t]);
    let a = f.sm.start(f.now);
    assert_eq!(a.first(), Some(&Action::Dial(t)));
}

#[test]
fn trusted_peer_survives_critical_error() {
    let t = PeerAddr {
        peer: peer(),
        addr: addr(1),
    };
    let mut f = Fixture::new(vec![t]);
    f.sm.start(f.now);
    let (info, _) = f.up_peer(t.peer);
    let a =
        f.sm.remove_stream(info.id, RemovalReason::CriticalError, f.now);
    assert!(a.is_empty(), "no close, no deactivation: {a:?}");
    assert_eq!(f.sm.active_count(), 1);
    assert_eq!(f.sm.cooling_until(&t.peer, f.now), None);
}

#[test]
fn trusted_peer_lost_by_the_network_is_redialled_at_the_next_check() {
    let t = PeerAddr {
        peer: peer(),
        addr: addr(1),
    };
    let mut f = Fixture::new(vec![t]);
    f.sm.start(f.now);
    let (info, _) = f.up_peer(t.peer);
    let a = f.sm.on_stream_down(
        info.id,
        Some(&info),
        Some(t.peer),
        info.addr,
        &CloseReason::PeerClosed,
        f.now,
    );
    assert!(!a.contains(&Action::Dial(t)), "no hot redial loop");
    assert_eq!(
        f.sm.cooling_until(&t.peer, f.now),
        None,
        "trusted peers never cool down"
    );
    assert!(f
        .advance(Duration::from_secs(30))
        .contains(&Action::Dial(t)));
}

#[test]
fn critical_error_cools_down_sixty_minutes() {
    let mut f = Fixture::new(vec![]);
    let (info, _) = f.up();
    f.sm.remove_stream(info.id, RemovalReason::CriticalError, f.now);
    assert_eq!(
        f.sm.cooling_until(&info.peer_id, f.now),
        Some(f.now + 60 * MIN)
    );
    // Discovery offering it again does not dial it.
    f.sm.start(f.now);
    let a = f.sm.on_discovered(
        vec![PeerAddr {
            peer: info.peer_id,
            addr: info.addr,
        }],
        f.now,
    );
    assert!(!a.iter().any(|x| matches!(x, Action::Dial(_))));
}

#[test]
fn second_failure_cools_down_five_minutes() {
    let mut f = Fixture::new(vec![]);
    let p = peer();
    // The request manager reports a stream that stopped answering.
    let (a1, _) = f.up_peer(p);
    f.sm.remove_stream(a1.id, RemovalReason::ConnectionFailure, f.now);
    assert_eq!(
        f.sm.cooling_until(&p, f.now),
        None,
        "first failure: no cooldown"
    );
    let (a2, _) = f.up_peer(p);
    f.sm.remove_stream(a2.id, RemovalReason::ConnectionFailure, f.now);
    assert_eq!(f.sm.cooling_until(&p, f.now), Some(f.now + 5 * MIN));
}

/// A peer whose process dies and restarts closes its streams (or they
/// break) again and again: that is not a failure and never accumulates into
/// a cooldown.
#[test]
fn a_peer_that_restarts_is_never_cooled_down_for_its_disconnects() {
    let mut f = Fixture::new(vec![]);
    let p = peer();
    for i in 0..6 {
        let (info, a) = f.up_peer(p);
        assert_eq!(activated(&a), vec![info.id], "restart {i}: not taken back");
        let reason = if i % 2 == 0 {
            CloseReason::PeerClosed
        } else {
            CloseReason::Io("connection reset by peer".into())
        };
        f.sm.on_stream_down(info.id, Some(&info), Some(p), info.addr, &reason, f.now);
        assert_eq!(f.sm.cooling_until(&p, f.now), None, "after restart {i}");
        f.now += Duration::from_secs(5);
    }
}

/// Cooldowns decide whom we dial and ask, not whom we serve (DESIGN.md
/// §15): a peer that connects while cooling down keeps its stream, is not
/// handed to the request manager, and joins the pools once the cooldown
/// has ended.
#[test]
fn a_peer_in_cooldown_that_connects_is_served_and_joins_when_it_ends() {
    let mut f = Fixture::new(vec![]);
    let (info, _) = f.up();
    f.sm.remove_stream(info.id, RemovalReason::CriticalError, f.now);
    let until =
        f.sm.cooling_until(&info.peer_id, f.now)
            .expect("cooling down");
    let (again, a) = f.up_peer(info.peer_id);
    assert!(
        !a.iter()
            .any(|x| matches!(x, Action::Close { stream, .. } if *stream == again.id)),
        "closed: {a:?}"
    );
    assert!(activated(&a).is_empty(), "asked while cooling down");
    assert!(f.sm.is_serve_only(&info.peer_id));
    assert_eq!(f.sm.status(f.now).serve_only, 1);
    assert!(
        f.sm.next_deadline() <= until,
        "wakes up by the time it ends"
    );
    let a = f.advance(until - f.now);
    assert_eq!(activated(&a), vec![again.id]);
    assert!(!f.sm.is_serve_only(&info.peer_id));
}

#[test]
fn a_newer_stream_dialled_by_the_same_side_replaces_the_older() {
    let mut f = Fixture::new(vec![]);
    let p = peer();
    let (old, _) = f.up_peer(p);
    let (new, a) = f.up_peer(p);
    assert!(a.contains(&Action::Close {
        stream: old.id,
        reason: None
    }));
    assert!(a.contains(&Action::Activated(new.clone())));
    assert_eq!(
        f.sm.active().map(|i| i.id).collect::<Vec<_>>(),
        vec![new.id]
    );
}

/// The sync may prove a peer lied only after its stream went away (its
/// hashes are shown false once the canonical blocks verify): the peer still
/// pays.
#[test]
fn a_fault_proven_after_the_stream_is_gone_still_cools_the_peer_down() {
    let mut f = Fixture::new(vec![]);
    let (info, _) = f.up();
    f.sm.on_stream_down(
        info.id,
        Some(&info),
        Some(info.peer_id),
        info.addr,
        &CloseReason::PeerClosed,
        f.now,
    );
    f.sm.penalize_peer(info.peer_id, RemovalReason::CriticalError, f.now);
    assert_eq!(
        f.sm.cooling_until(&info.peer_id, f.now),
        Some(f.now + 60 * MIN)
    );
    assert_eq!(
        f.sm.status(f.now).recent_removals,
        vec![(info.peer_id, RemovalReason::CriticalError)]
    );
}

#[test]
fn slow_stream_is_swapped_for_a_reserve_stream() {
    let mut f = Fixture::new(vec![]);
    let ids: Vec<u64> = (0..4).map(|_| f.up().0.id).collect();
    let reserve = f.up().0.id;
    let samples: Vec<(u64, f64)> = ids
        .iter()
        .map(|id| (*id, if *id == ids[0] { 10.0 } else { 1000.0 }))
        .collect();
    assert!(f.sm.on_throughput(&samples, f.now).is_empty());
    assert!(f.sm.on_throughput(&samples, f.now).is_empty());
    let a = f.sm.on_throughput(&samples, f.now);
    assert!(a.contains(&Action::Close {
        stream: ids[0],
        reason: Some(RemovalReason::Slow)
    }));
    assert_eq!(activated(&a), vec![reserve]);
}

#[test]
fn slow_stream_is_kept_when_there_is_no_reserve() {
    let mut f = Fixture::new(vec![]);
    let ids: Vec<u64> = (0..4).map(|_| f.up().0.id).collect();
    let samples: Vec<(u64, f64)> = ids
        .iter()
        .map(|id| (*id, if *id == ids[0] { 1.0 } else { 1000.0 }))
        .collect();
    for _ in 0..5 {
        assert!(
            f.sm.on_throughput(&samples, f.now).is_empty(),
            "no starving the pool"
        );
    }
}

#[test]
fn simultaneous_dials_keep_the_stream_dialled_by_the_lower_peer_id() {
    // First our outbound stream, then the peer's inbound one.
    let mut f = Fixture::new(vec![]);
    let p = peer();
    let me = f.sm_me();
    let outbound = f.up_dir(p, false).0;
    let (inbound, a) = f.up_dir(p, true);
    if me < p {
        assert!(
            a.contains(&Action::Close {
                stream: inbound.id,
                reason: None
            }),
            "keep ours (we are lower)"
        );
    } else {
        assert!(
            a.contains(&Action::Close {
                stream: outbound.id,
                reason: None
            }),
            "keep theirs (they are lower)"
        );
        assert!(a.contains(&Action::Activated(inbound.clone())));
    }
    assert_eq!(f.sm.active_count(), 1);
}

#[test]
fn trusted_stream_arriving_at_full_pool_takes_an_active_slot() {
    let t = PeerAddr {
        peer: peer(),
        addr: addr(1),
    };
    let mut f = Fixture::new(vec![t]);
    for _ in 0..4 {
        f.up();
    }
    let (info, a) = f.up_peer(t.peer);
    assert!(a.contains(&Action::Activated(info)));
    assert!(
        a.iter().any(|x| matches!(x, Action::Deactivated(_))),
        "someone demoted"
    );
    assert_eq!(
        (f.sm.active_count(), f.sm.reserved_count()),
        (4, 1),
        "DiscHighCap holds"
    );
}

#[test]
fn peer_going_away_on_purpose_is_not_a_failure_but_is_left_alone() {
    let mut f = Fixture::new(vec![]);
    let p = peer();
    for _ in 0..3 {
        let (info, _) = f.up_peer(p);
        f.sm.on_stream_down(
            info.id,
            Some(&info),
            Some(p),
            info.addr,
            &CloseReason::PeerGoingAway("full".into()),
            f.now,
        );
        f.now += 6 * MIN;
    }
    // Three goodbyes never escalate to a failure cooldown: after each pause
    // it may be dialled again.
    assert_eq!(f.sm.cooling_until(&p, f.now), None);
    let (info, _) = f.up_peer(p);
    f.sm.on_stream_down(
        info.id,
        Some(&info),
        Some(p),
        info.addr,
        &CloseReason::PeerGoingAway("full".into()),
        f.now,
    );
    assert_eq!(
        f.sm.cooling_until(&p, f.now),
        Some(f.now + 5 * MIN),
        "paused, not punished"
    );
}

/// Arbitrary event sequences: pools stay within their caps, no peer in
/// cooldown has a stream, trusted peers never cool down, and the
/// Activated/Deactivated actions describe the active pool exactly.
#[test]
fn random_event_sequences_keep_the_invariants() {
    use rand_chacha::ChaCha8Rng;
    use rand_core::{RngCore, SeedableRng};
    use std::collections::HashSet;

    for seed in 0..30u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let peers: Vec<PeerId> = (0..12).map(|_| peer()).collect();
        let trusted = PeerAddr {
            peer: peers[0],
            addr: addr(0),
        };
        let mut f = Fixture::new(vec![trusted]);
        // Two boot peers (and the trusted one listed as boot too: trust wins).
        let entry = [peers[0], peers[1], peers[2]];
        f.sm = StreamManager::new(cfg(), f.me, vec![trusted], f.now).with_entry_peers(entry);
        let mut view: HashSet<u64> = HashSet::new();
        let mut open: Vec<StreamInfo> = Vec::new();
        let apply = |acts: Vec<Action>, view: &mut HashSet<u64>, open: &mut Vec<StreamInfo>| {
            for a in acts {
                match a {
                    Action::Activated(i) => assert!(view.insert(i.id), "activated twice"),
                    Action::Deactivated(id) => assert!(view.remove(&id), "deactivated unknown"),
                    Action::Close { stream, .. } => open.retain(|i| i.id != stream),
                    _ => {}
                }
            }
        };
        let acts = f.sm.start(f.now);
        apply(acts, &mut view, &mut open);
        for _ in 0..2000 {
            let op = rng.next_u32() % 7;
            let acts = match op {
                0 | 1 => {
                    let p = peers[(rng.next_u32() as usize) % peers.len()];
                    let (info, acts) = f.up_dir(p, rng.next_u32() % 2 == 0);
                    open.push(info);
                    acts
                }
                2 if !open.is_empty() => {
                    let i = open.remove((rng.next_u32() as usize) % open.len());
                    let reason = match rng.next_u32() % 3 {
                        0 => CloseReason::PeerClosed,
                        1 => CloseReason::PeerGoingAway("full".into()),
                        _ => CloseReason::RateLimitViolation,
                    };
                    f.sm.on_stream_down(i.id, Some(&i), Some(i.peer_id), i.addr, &reason, f.now)
                }
                3 if !open.is_empty() => {
                    let i = open[(rng.next_u32() as usize) % open.len()].clone();
                    let reason = [
                        RemovalReason::CriticalError,
                        RemovalReason::Slow,
                        RemovalReason::InvalidResponse,
                    ][(rng.next_u32() % 3) as usize];
                    f.sm.remove_stream(i.id, reason, f.now)
                }
                4 => {
                    let found = (0..3)
                        .map(|k| PeerAddr {
                            peer: peers[(rng.next_u32() as usize + k) % peers.len()],
                            addr: addr(50 + k as u64),
                        })
                        .collect();
                    f.sm.on_discovered(found, f.now)
                }
                5 => {
                    let samples: Vec<(u64, f64)> = view
                        .iter()
                        .map(|id| (*id, f64::from(rng.next_u32() % 1000)))
                        .collect();
                    f.sm.on_throughput(&samples, f.now)
                }
                _ => f.advance(Duration::from_secs(u64::from(rng.next_u32() % 120))),
            };
            apply(acts, &mut view, &mut open);
            assert!(
                f.sm.active_count() <= 4,
                "seed {seed}: active over DiscHighCap"
            );
            assert!(
                f.sm.reserved_count() <= 2,
                "seed {seed}: reserve over MaxReservedStreams"
            );
            let active: HashSet<u64> = f.sm.active().map(|i| i.id).collect();
            assert_eq!(active, view, "seed {seed}: actions disagree with the pool");
            for i in f.sm.active() {
                assert!(
                    f.sm.cooling_until(&i.peer_id, f.now).is_none(),
                    "seed {seed}: active stream of a peer in cooldown"
                );
            }
            assert!(
                f.sm.cooling_until(&trusted.peer, f.now).is_none(),
                "trusted peer cooled down"
            );
        }
    }
}

/// A relayed record names a fake PeerId at an honest peer's address: the
/// dial reaches the honest peer (PeerId mismatch). The honest address owner
/// is not cooled down, the dial slot is freed, and the relayer pays
/// (DESIGN.md §15; on 78dc348 the honest peer got the 60-minute critical
/// cooldown and the slot stayed pinned).
#[test]
fn a_false_record_costs_its_relayer_not_the_address_owner() {
    let mut f = Fixture::new(vec![]);
    let relayer = peer();
    let (rinfo, _) = f.up_peer(relayer);
    let (fake, honest) = (peer(), peer());
    let at = addr(500);
    let a = f.sm.on_peers_learned(
        vec![PeerAddr {
            peer: fake,
            addr: at,
        }],
        Some(relayer),
        f.now,
    );
    assert!(a.contains(&Action::Dial(PeerAddr {
        peer: fake,
        addr: at
    })));
    assert_eq!(f.sm.status(f.now).setting_up, 1);
    let reason = CloseReason::PeerIdMismatch {
        expected: fake,
        got: honest,
    };
    let a =
        f.sm.on_stream_down(999, None, Some(honest), at, &reason, f.now);
    assert_eq!(
        f.sm.cooling_until(&honest, f.now),
        None,
        "the address owner is not blamed"
    );
    assert_eq!(f.sm.status(f.now).setting_up, 0, "the dial slot is freed");
    assert!(
        f.sm.cooling_until(&relayer, f.now).is_some(),
        "the relayer pays"
    );
    assert!(
        a.contains(&Action::Close {
            stream: rinfo.id,
            reason: Some(RemovalReason::CriticalError)
        }),
        "the relayer's stream is closed: {a:?}"
    );
    assert!(
        f.sm.cooling_until(&fake, f.now).is_some(),
        "the fake id is not redialled"
    );
}

/// Peer exchange cannot grow the candidate queue without bound.
#[test]
fn learned_candidates_are_bounded() {
    let mut f = Fixture::new(vec![]);
    let relayer = peer();
    f.up_peer(relayer);
    let many: Vec<PeerAddr> = (0..MAX_CANDIDATES as u64 + 500)
        .map(|i| PeerAddr {
            peer: peer(),
            addr: addr(1000 + i % 5000),
        })
        .collect();
    f.sm.on_peers_learned(many, Some(relayer), f.now);
    let waiting = f.sm.status(f.now).candidates;
    assert!(waiting <= MAX_CANDIDATES, "{waiting} candidates");
}

/// A fixed identity per number: two runs of one script see the same peers.
fn fixed_peer(i: u32) -> PeerId {
    let mut seed = [0x5e; 32];
    seed[..4].copy_from_slice(&i.to_le_bytes());
    NodeIdentity::from_seed(seed).peer_id()
}

/// One scripted run from `t0` through a fresh manager: every action and
/// status it gave, in order. Two dozen peers so that any decision taken in
/// a hash map's iteration order shows.
fn scripted_run(t0: Instant) -> Vec<String> {
    let mut s = SyncConfig::for_network(Network::Mainnet);
    s.disc_hard_low_cap = 4;
    s.disc_soft_low_cap = 6;
    s.disc_high_cap = 8;
    s.max_reserved_streams = 30;
    s.disc_batch = 10;
    s.setup_concurrency = 16;
    let cfg = StreamManagerConfig::from_sync(&s);
    let trusted: Vec<PeerAddr> = (1..=3)
        .map(|i| PeerAddr {
            peer: fixed_peer(i),
            addr: addr(u64::from(i)),
        })
        .collect();
    let mut sm = StreamManager::new(cfg, fixed_peer(0), trusted.clone(), t0);
    let mut now = t0;
    let mut log = Vec::new();
    let mut next_id = 1;
    let mut stream = |peer: PeerId, inbound: bool| {
        let info = StreamInfo {
            id: next_id,
            peer_id: peer,
            addr: addr(100 + next_id),
            protocol: ProtocolId::sync(Network::Mainnet, 0),
            inbound,
        };
        next_id += 1;
        info
    };
    log.push(format!("start {:?}", sm.start(now)));
    // Two dozen peers at fault before they connect: they cool down
    // together and are served only.
    let crowd: Vec<PeerId> = (10..34).map(fixed_peer).collect();
    for p in &crowd {
        let a = sm.penalize_peer(*p, RemovalReason::CriticalError, now);
        log.push(format!("penalize {a:?}"));
    }
    for p in &crowd {
        let a = sm.on_stream_up(stream(*p, true), now);
        log.push(format!("up {a:?}"));
    }
    log.push(format!("status {:?}", sm.status(now)));
    // Their cooldowns end at one instant: they join the pools.
    now += 61 * MIN;
    log.push(format!("tick {:?}", sm.on_tick(now)));
    // Trusted peers arrive with the active pool full: others are demoted.
    for t in &trusted {
        let a = sm.on_stream_up(stream(t.peer, false), now);
        log.push(format!("trusted up {a:?}"));
    }
    // Discovery finds peers, several behind one address; dials fail by
    // address only.
    let found: Vec<PeerAddr> = (40..64)
        .map(|i| PeerAddr {
            peer: fixed_peer(i),
            addr: addr(200 + u64::from(i % 4)),
        })
        .collect();
    log.push(format!("discovered {:?}", sm.on_discovered(found, now)));
    for k in 0..4 {
        let reason = CloseReason::PeerClosed;
        let a = sm.on_stream_down(10_000 + k, None, None, addr(200 + k), &reason, now);
        log.push(format!("dial failed {a:?}"));
    }
    // Half the active streams are slow.
    let samples: Vec<(u64, f64)> = sm
        .active()
        .map(|i| (i.id, if i.id % 2 == 0 { 1.0 } else { 100.0 }))
        .collect();
    for _ in 0..3 {
        log.push(format!("throughput {:?}", sm.on_throughput(&samples, now)));
    }
    // The rest of the dials time out.
    now += cfg.connect_timeout;
    log.push(format!("tick {:?}", sm.on_tick(now)));
    let ids: Vec<u64> = sm.active().map(|i| i.id).collect();
    for id in ids.iter().take(3) {
        let a = sm.remove_stream(*id, RemovalReason::InvalidResponse, now);
        log.push(format!("remove {a:?}"));
    }
    now += 10 * MIN;
    log.push(format!("tick {:?}", sm.on_tick(now)));
    log.push(format!(
        "active {:?}",
        sm.active().map(|i| i.id).collect::<Vec<_>>()
    ));
    log.push(format!("status {:?}", sm.status(now)));
    log
}

/// The simulator reproduces a run from its seed: the manager's decisions
/// (which served-only stream is admitted first, which stream a trusted
/// peer displaces, which dial a failure at a shared address ends, the
/// order of the status lists) depend on its inputs only, never on a hash
/// map's per-instance random order.
#[test]
fn the_same_inputs_give_the_same_actions() {
    crate::test_util::assert_same_runs(scripted_run);
}

fn dials(a: &[Action]) -> Vec<PeerId> {
    a.iter()
        .filter_map(|x| match x {
            Action::Dial(p) => Some(p.peer),
            _ => None,
        })
        .collect()
}

/// Dials `p` at `at` as a discovered candidate and completes the handshake.
fn dial_up(f: &mut Fixture, p: PeerId, at: SocketAddr) -> StreamInfo {
    let acts =
        f.sm.on_discovered(vec![PeerAddr { peer: p, addr: at }], f.now);
    assert_eq!(dials(&acts), vec![p]);
    dial_up_again(f, p, at)
}

/// The case the simulator's "boot nodes gone, link flapped" run found: the
/// discovery sources name nobody (boot nodes offline) and peer exchange has
/// no stream to ask, yet the node reconnects to the peers it had dialled.
#[test]
fn peers_reached_by_dialling_are_redialled_when_discovery_names_nobody() {
    let mut f = Fixture::new(vec![]);
    let (a, b) = (peer(), peer());
    let ia = dial_up(&mut f, a, addr(900));
    let ib = dial_up(&mut f, b, addr(901));
    // The node's link breaks: both connections drop (not a failure), and
    // it falls below the hard cap: the discovery round offers both known
    // peers again, at the addresses that answered, while the sources (boot
    // nodes gone) have nobody to name.
    let mut acts = Vec::new();
    for i in [&ia, &ib] {
        acts.extend(f.sm.on_stream_down(
            i.id,
            Some(i),
            Some(i.peer_id),
            i.addr,
            &CloseReason::Io("connection reset".into()),
            f.now,
        ));
    }
    assert!(discovers(&acts));
    acts.extend(f.sm.on_discovered(vec![], f.now));
    // The next round (the retry back-off below the hard cap) offers the
    // one that dropped while the first round ran.
    acts.extend(f.advance(Duration::from_secs(2)));
    let mut again = dials(&acts);
    again.sort();
    let mut want = vec![a, b];
    want.sort();
    assert_eq!(again, want, "{acts:?}");
    assert!(acts
        .iter()
        .any(|x| matches!(x, Action::Dial(p) if p.peer == a && p.addr == addr(900))));
}

/// A peer proven at fault is forgotten: it is not redialled from memory
/// once its cooldown ends (a new discovery may still name it).
#[test]
fn a_peer_removed_for_a_critical_fault_is_not_redialled_from_memory() {
    let mut f = Fixture::new(vec![]);
    let (a, b) = (peer(), peer());
    let ia = dial_up(&mut f, a, addr(900));
    let ib = dial_up(&mut f, b, addr(901));
    f.sm.remove_stream(ia.id, RemovalReason::CriticalError, f.now);
    f.sm.on_stream_down(
        ib.id,
        Some(&ib),
        Some(b),
        ib.addr,
        &CloseReason::Io("connection reset".into()),
        f.now,
    );
    // b is offered again (below the hard cap); a, cooling down for the
    // fault, is not, and after its cooldown it is still not.
    let mut acts = f.sm.on_discovered(vec![], f.now);
    acts.extend(f.advance(Duration::from_secs(2)));
    assert!(dials(&acts).contains(&b), "{acts:?}");
    f.now += 61 * MIN;
    let mut later = Vec::new();
    for _ in 0..60 {
        later.extend(f.advance(Duration::from_secs(1)));
    }
    assert!(discovers(&later));
    acts.extend(later);
    assert!(!dials(&acts).contains(&a), "{acts:?}");
}

/// `InitStreams` counts streams to other peers while more are coming (a
/// dial in progress, a peer-exchange answer awaited), so a joiner does not
/// start its sync on the boot streams it got first; with nobody else to
/// reach, boot streams count (a network of boot peers still syncs).
#[test]
fn boot_streams_count_toward_init_streams_only_when_nobody_else_is_coming() {
    let b = peer();
    let mut f = Fixture::new(vec![]);
    f.sm = StreamManager::new(cfg(), f.me, vec![], f.now).with_entry_peers([b]);
    f.up_peer(b);
    assert_eq!(
        f.sm.ready_streams(true),
        0,
        "its peer-exchange answer is awaited"
    );
    assert_eq!(f.sm.ready_streams(false), 1, "nobody else is coming");
    let x = peer();
    let a = f.sm.on_peers_learned(
        vec![PeerAddr {
            peer: x,
            addr: addr(700),
        }],
        Some(b),
        f.now,
    );
    assert_eq!(dials(&a), vec![x]);
    assert_eq!(f.sm.ready_streams(false), 0, "a dial is in progress");
    let (ix, _) = f.up_dir(x, false);
    assert!(f.sm.active().any(|i| i.id == ix.id));
    assert_eq!(f.sm.ready_streams(true), 1);
    assert_eq!(f.sm.ready_streams(false), 2);
}

/// A pool at or above the soft cap still meets one known peer it has no
/// stream to at each check (a feeler), up to `DiscHighCap`: without it the
/// two sides of a healed partition never reconnect, since neither falls
/// below the soft cap (the simulator's 200-node partition never
/// converged).
#[test]
fn a_pool_at_the_soft_cap_dials_one_known_peer_at_each_check_below_the_high_cap() {
    let mut f = Fixture::new(vec![]);
    let (a, b, c, d, e) = (peer(), peer(), peer(), peer(), peer());
    for (i, p) in [a, b, c].into_iter().enumerate() {
        dial_up(&mut f, p, addr(900 + i as u64));
    }
    // `d` was reached once; its connection broke (the cut).
    let id = dial_up(&mut f, d, addr(903));
    f.sm.on_stream_down(
        id.id,
        Some(&id),
        Some(d),
        id.addr,
        &CloseReason::Io("connection timed out".into()),
        f.now,
    );
    assert_eq!(f.sm.active_count(), 3, "at the soft cap");
    let acts = f.advance(Duration::from_secs(30));
    assert!(!discovers(&acts), "no discovery at the soft cap");
    assert_eq!(dials(&acts), vec![d], "one feeler, to the known peer");
    assert_eq!(f.sm.stats().feelers, 1);
    // At the high cap (d back, e inbound), no feeler.
    let id = dial_up_again(&mut f, d, addr(903));
    f.up_peer(e);
    assert_eq!(f.sm.active_count(), 4);
    f.sm.on_stream_down(
        id.id,
        Some(&id),
        Some(d),
        id.addr,
        &CloseReason::Io("connection timed out".into()),
        f.now,
    );
    f.up();
    let acts = f.advance(Duration::from_secs(30));
    assert!(dials(&acts).is_empty(), "at the high cap: {acts:?}");
}

/// Completes the handshake of a dial already under way to `p`.
fn dial_up_again(f: &mut Fixture, p: PeerId, at: SocketAddr) -> StreamInfo {
    let info = StreamInfo {
        id: f.next,
        peer_id: p,
        // The outbound stream's address is the one dialled.
        addr: at,
        protocol: ProtocolId::sync(Network::Mainnet, 0),
        inbound: false,
    };
    f.next += 1;
    f.sm.on_stream_up(info.clone(), f.now);
    info
}
