//! Heads: ask every active stream its height and decide the target by
//! quorum ([`quorum_target`]): at least `MinPeers` distinct answering peers
//! are needed, votes are counted once per authenticated peer and at most
//! `HeadsVotesPerIP` per IP address (one host's sybils count once), and the
//! target is the highest height a majority of the votes reach, so a
//! minority can neither raise nor lower it. A peer's vote is its claim
//! capped at the highest block it has shown it can serve, once it failed to
//! serve below its claim (see `block_hashes`). "Synced" is decided by the
//! same quorum: fewer answers than `MinPeers` decide nothing.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use libp2p_identity::PeerId;

use super::blame::Fault;
use super::context::SyncContext;
use super::error::StageError;
use crate::request::{Priority, RequestOptions};
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
/// `min_peers` of them, and then the highest height that a majority of them
/// reach (sorted descending, the ⌊n/2⌋+1-th).
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
    Ok(heights[heights.len() / 2])
}

/// Runs Heads; returns the target (≥ our head).
pub fn run(ctx: &mut SyncContext) -> Result<u64, StageError> {
    let streams = ctx.streams();
    let need = ctx.settings.min_peers.max(1);
    if streams.len() < need {
        return Err(StageError::NotEnoughStreams {
            have: streams.len(),
            need,
        });
    }
    // Every stream is asked; once a majority has answered, stragglers get
    // only HEADS_GRACE more (a silent peer must not hold up every cycle).
    let timeout = ctx.settings.request_timeout.min(HEADS_TIMEOUT);
    let asked: Vec<_> = streams
        .iter()
        .map(|s| {
            let opts = RequestOptions {
                priority: Priority::High,
                whitelist: Some(vec![s.id]),
                blacklist: vec![],
                timeout: Some(timeout),
            };
            (
                s.clone(),
                ctx.host.requests().submit(Request::GetBlockNumber, opts),
            )
        })
        .collect();
    let majority = asked.len() / 2 + 1;
    let mut deadline = Instant::now() + HEADS_TIMEOUT;
    let mut votes = Vec::new();
    // Answers in the order they arrive, so a stream that is gone or silent
    // holds up nobody once a majority answered.
    let mut pending: Vec<usize> = (0..asked.len()).collect();
    while !pending.is_empty() {
        let mut sel = crossbeam::channel::Select::new();
        for &i in &pending {
            sel.recv(&asked[i].1);
        }
        let Ok(op) = sel.select_deadline(deadline) else {
            break;
        };
        let i = pending.remove(op.index());
        let (info, rx) = &asked[i];
        match op.recv(rx) {
            Ok(Ok((Response::BlockNumber { number, .. }, stream))) => {
                ctx.claimed.insert(stream, number);
                let height = ctx
                    .height_caps
                    .get(&stream)
                    .map_or(number, |c| number.min(*c));
                votes.push(Vote {
                    peer: info.peer_id,
                    ip: info.addr.ip(),
                    height,
                });
            }
            Ok(Ok((_, stream))) => ctx.blame(
                stream,
                Fault::Useless,
                "GetBlockNumber answered with another type",
            ),
            _ => {}
        }
        if votes.len() == majority {
            deadline = deadline.min(Instant::now() + HEADS_GRACE);
        }
    }
    let target = quorum_target(&votes, need, ctx.settings.heads_votes_per_ip).map_err(|q| {
        StageError::NotEnoughStreams {
            have: q.have,
            need: q.need,
        }
    })?;
    let head = ctx.backend.head()?.number;
    let target = target.max(head);
    ctx.status.write().target = target;
    Ok(target)
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
    fn target_is_the_highest_height_a_majority_reaches() {
        assert_eq!(
            quorum_target(&votes(&[(1, 120), (2, 110), (3, 100)]), 1, 1),
            Ok(110)
        );
        assert_eq!(quorum_target(&votes(&[(1, 42)]), 1, 1), Ok(42));
    }
}
