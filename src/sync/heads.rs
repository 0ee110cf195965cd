//! Heads: ask every active stream its height and decide the target by
//! quorum ([`quorum_target`]): at least `MinPeers` distinct answering peers
//! are needed, votes are counted once per authenticated peer and at most
//! `HeadsVotesPerIP` per IP address (one host's sybils count once), and the
//! target is the highest height at least `MinPeers` of the votes reach
//! (DESIGN.md §9), so fewer than `MinPeers` hosts can neither raise it nor,
//! while `MinPeers` others hold a higher head, lower it. (A majority rule
//! would stall every node whose peers are mostly syncing nodes behind the
//! tip: the simulator's `partition` scenario, 90 % syncers, stood still at
//! the head they shared.) A peer's vote is its claim
//! capped at the highest block it has shown it can serve, once it failed to
//! serve below its claim (see `block_hashes`). "Synced" is decided by the
//! same quorum: fewer answers than `MinPeers` decide nothing.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use libp2p_identity::PeerId;

use super::blame::Fault;
use super::machine::{Action, Phase, ReqId, ReqKind, SyncMachine};
use crate::chain::StageId;
use crate::net::StreamId;
use crate::request::Priority;
use crate::wire::{Request, Response};

/// How long stragglers get once a majority of streams answered.
const HEADS_GRACE: Duration = Duration::from_millis(200);

/// How long Heads waits for each stream's height.
const HEADS_TIMEOUT: Duration = Duration::from_secs(2);

/// One peer's vote: the height it claims (after its cap).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vote {
    /// The authenticated peer.
    pub peer: PeerId,
    /// Its address.
    pub ip: IpAddr,
    /// The height it vouches for.
    pub height: u64,
}

/// Too few votes to decide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoQuorum {
    /// Votes counted.
    pub have: usize,
    /// Votes needed (`MinPeers`).
    pub need: usize,
}

/// The target `votes` decide: one vote per peer (its lowest), at most
/// `per_ip` per IP address (the lowest ones; 0 = no cap), at least
/// `min_peers` of them, and then the highest height that `min_peers` of
/// them reach (sorted descending, the `min_peers`-th).
pub fn quorum_target(votes: &[Vote], min_peers: usize, per_ip: usize) -> Result<u64, NoQuorum> {
    let mut by_peer: HashMap<PeerId, Vote> = HashMap::new();
    for v in votes {
        by_peer
            .entry(v.peer)
            .and_modify(|old| old.height = old.height.min(v.height))
            .or_insert(*v);
    }
    let mut by_ip: HashMap<IpAddr, Vec<u64>> = HashMap::new();
    for v in by_peer.values() {
        by_ip.entry(v.ip).or_default().push(v.height);
    }
    let mut heights: Vec<u64> = Vec::with_capacity(by_peer.len());
    for mut hs in by_ip.into_values() {
        hs.sort_unstable();
        if per_ip > 0 {
            hs.truncate(per_ip);
        }
        heights.extend(hs);
    }
    let need = min_peers.max(1);
    if heights.len() < need {
        return Err(NoQuorum {
            have: heights.len(),
            need,
        });
    }
    heights.sort_unstable_by(|a, b| b.cmp(a));
    Ok(heights[need - 1])
}

/// One round of Heads: who was asked, who answered what.
#[derive(Clone, Debug)]
pub struct HeadsRound {
    /// Streams asked and not yet answered or failed (ordered: the
    /// stragglers' requests are cancelled in this order).
    pub(super) pending: BTreeSet<StreamId>,
    /// Streams asked.
    pub(super) asked: usize,
    /// Votes so far.
    pub(super) votes: Vec<Vote>,
    /// When to decide with what is there (2 s, or 200 ms after a
    /// majority answered).
    pub(super) deadline: Instant,
}

impl HeadsRound {
    /// Whether every stream asked has answered or failed.
    pub fn complete(&self) -> bool {
        self.pending.is_empty()
    }

    /// `stream` will not answer.
    pub fn failed(&mut self, stream: StreamId) {
        self.pending.remove(&stream);
    }
}

impl SyncMachine {
    /// Asks every live stream its height (a new round of Heads).
    fn heads_round(&mut self, now: Instant) -> Option<HeadsRound> {
        let streams: Vec<StreamId> = self.links.keys().copied().collect();
        let need = self.settings.min_peers.max(1);
        if streams.len() < need {
            self.status.last_error = Some(format!("only {} streams, need {need}", streams.len()));
            self.touch();
            return None;
        }
        for s in &streams {
            self.submit(
                ReqKind::Heads,
                Request::GetBlockNumber,
                *s,
                Priority::High,
                0,
                now,
            );
        }
        Some(HeadsRound {
            pending: streams.iter().copied().collect(),
            asked: streams.len(),
            votes: Vec::new(),
            deadline: now + HEADS_TIMEOUT.min(self.settings.request_timeout),
        })
    }

    /// Starts a cycle with a round of Heads (the stage Heads).
    pub(super) fn start_heads(&mut self, now: Instant) {
        self.enter(StageId::Heads);
        match self.heads_round(now) {
            Some(r) => self.phase = Phase::Heads(r),
            None => self.idle_for(now, None),
        }
    }

    /// A height answer.
    pub(super) fn on_heads_answer(&mut self, stream: StreamId, resp: Response, now: Instant) {
        let Response::BlockNumber { number, .. } = resp else {
            self.blame(
                stream,
                Fault::Useless,
                "GetBlockNumber answered with another type",
            );
            return;
        };
        self.claimed.insert(stream, number);
        let height = self
            .height_caps
            .get(&stream)
            .map_or(number, |c| number.min(*c));
        let Some(info) = self.infos.get(&stream) else {
            return;
        };
        let vote = Vote {
            peer: info.peer_id,
            ip: info.addr.ip(),
            height,
        };
        for r in [
            match &mut self.phase {
                Phase::Heads(r) => Some(r),
                _ => None,
            },
            self.bg_heads.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            if r.pending.remove(&stream) {
                r.votes.push(vote);
                if r.votes.len() == r.asked / 2 + 1 {
                    r.deadline = r.deadline.min(now + HEADS_GRACE);
                }
            }
        }
    }

    /// The quorum's target for `round`, or why there is none.
    fn target_of(&self, round: &HeadsRound) -> Result<u64, NoQuorum> {
        quorum_target(
            &round.votes,
            self.settings.min_peers.max(1),
            self.settings.heads_votes_per_ip,
        )
        .map(|t| t.max(self.head()))
    }

    /// Decides the round of Heads that started the cycle.
    pub(super) fn decide_heads(&mut self, now: Instant) {
        let Phase::Heads(round) = std::mem::replace(&mut self.phase, Phase::Sync) else {
            return;
        };
        for s in &round.pending {
            self.cancel_kind(*s, |k| matches!(k, ReqKind::Heads));
        }
        match self.target_of(&round) {
            Err(q) => {
                self.status.last_error = Some(format!("only {} streams, need {}", q.have, q.need));
                self.idle_for(now, None);
            }
            Ok(target) => {
                self.target = target;
                self.status.target = target;
                let head = self.head();
                self.status.synced = target <= head;
                self.touch();
                if target <= head {
                    self.idle_backoff = super::finish::IDLE_BACKOFF_START;
                    if self.exit_when_synced {
                        self.outcome = Some(super::SyncOutcome::Synced { head, target });
                    }
                    self.status.stage = None;
                    self.phase = Phase::Idle {
                        until: now + self.settings.idle_interval,
                    };
                    return;
                }
                self.start_cycle(now);
            }
        }
    }

    /// Decides a round of Heads run beside the download: the target moves
    /// (a lower one drops the window above it).
    pub(super) fn decide_bg_heads(&mut self, now: Instant) {
        let Some(round) = self.bg_heads.take() else {
            return;
        };
        for s in &round.pending {
            self.cancel_kind(*s, |k| matches!(k, ReqKind::Heads));
        }
        if let Ok(target) = self.target_of(&round) {
            if target != self.target {
                self.set_target(target, now);
            }
        }
    }

    /// Starts a round of Heads beside the download.
    pub(super) fn refresh_target(&mut self, now: Instant) {
        if self.bg_heads.is_none() {
            self.bg_heads = self.heads_round(now);
        }
    }

    /// Cancels `stream`'s requests of a kind.
    fn cancel_kind(&mut self, stream: StreamId, kind: impl Fn(&ReqKind) -> bool) {
        let ids: Vec<ReqId> = self
            .reqs
            .iter()
            .filter(|(_, r)| r.stream == stream && kind(&r.kind))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            if let Some(r) = self.reqs.remove(&id) {
                self.reserved -= r.reserved;
                if r.counts() {
                    if let Some(l) = self.links.get_mut(&r.stream) {
                        l.on_cancel();
                    }
                }
            }
            self.actions.push_back(Action::Cancel { id });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn votes(hosts: &[(u8, u64)]) -> Vec<Vote> {
        hosts
            .iter()
            .map(|(ip, height)| Vote {
                peer: crate::crypto::NodeIdentity::generate().peer_id(),
                ip: IpAddr::from([10, 0, 0, *ip]),
                height: *height,
            })
            .collect()
    }

    #[test]
    fn min_peers_answers_are_needed_to_decide() {
        let v = votes(&[(1, 100), (2, 100)]);
        assert_eq!(quorum_target(&v, 3, 1), Err(NoQuorum { have: 2, need: 3 }));
        assert_eq!(quorum_target(&v, 2, 1), Ok(100));
        assert_eq!(quorum_target(&[], 1, 1), Err(NoQuorum { have: 0, need: 1 }));
    }

    #[test]
    fn one_hosts_sybils_count_once() {
        // Five identities on one host claim a million; three honest hosts 100.
        let mut v = votes(&[(9, 1_000_000); 5]);
        v.extend(votes(&[(1, 100), (2, 100), (3, 100)]));
        assert_eq!(quorum_target(&v, 3, 1), Ok(100));
        // Without the cap (loopback networks), they would outvote them.
        assert_eq!(quorum_target(&v, 3, 0), Ok(1_000_000));
        // Nor can they make up a quorum on their own.
        assert!(quorum_target(&votes(&[(9, 0); 6]), 3, 1).is_err());
    }

    #[test]
    fn a_peer_counts_once_whatever_it_sends() {
        let mut v = votes(&[(1, 100)]);
        let twice = Vote {
            height: 900,
            ..v[0]
        };
        v.push(twice);
        assert_eq!(quorum_target(&v, 2, 0), Err(NoQuorum { have: 1, need: 2 }));
    }

    #[test]
    fn a_minority_can_neither_raise_nor_lower_the_target() {
        let v = votes(&[(1, 100), (2, 100), (3, 100), (4, 1_000_000)]);
        assert_eq!(quorum_target(&v, 3, 1), Ok(100));
        let v = votes(&[(1, 100), (2, 100), (3, 100), (4, 0)]);
        assert_eq!(quorum_target(&v, 3, 1), Ok(100));
        let v = votes(&[(1, 9_999_999), (2, 9_999_999), (3, 500), (4, 500), (5, 500)]);
        assert_eq!(quorum_target(&v, 3, 1), Ok(500));
    }

    #[test]
    fn target_is_the_highest_height_min_peers_hosts_reach() {
        let v = votes(&[(1, 120), (2, 110), (3, 100)]);
        assert_eq!(quorum_target(&v, 1, 1), Ok(120));
        assert_eq!(quorum_target(&v, 2, 1), Ok(110));
        assert_eq!(quorum_target(&v, 3, 1), Ok(100));
        assert_eq!(quorum_target(&votes(&[(1, 42)]), 1, 1), Ok(42));
    }

    /// Most peers are syncing nodes behind the tip: the `MinPeers` that
    /// hold it set the target (a majority rule kept it at the laggards').
    #[test]
    fn peers_behind_the_tip_do_not_hold_the_target_down() {
        let mut v = votes(&[(1, 700), (2, 700), (3, 700)]);
        v.extend((10..30).map(|ip| votes(&[(ip, 624)])[0]));
        assert_eq!(quorum_target(&v, 3, 1), Ok(700));
    }
}
