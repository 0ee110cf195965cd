//! ShortRange: near the tip (within `short_range_threshold` blocks of the
//! target) a hash segment is not taken from one stream but decided by a
//! vote of up to three, the longest prefix a majority agrees on, and every
//! signature is verified. `DoubleCheckBlockHashes` uses the same vote with
//! two streams, and a third on disagreement. A stream outvoted on a hash
//! pays softly, and its claims wait in `claims` until the committed chain
//! proves them false.

use std::time::Instant;

use super::blame::Fault;
use super::machine::{ReqKind, SyncMachine};
use crate::crypto::B256;
use crate::net::StreamId;
use crate::request::Priority;
use crate::wire::Request;

/// A vote of several streams on the hashes of one segment.
#[derive(Clone, Debug)]
pub struct Vote {
    /// First number of the segment.
    pub first: u64,
    /// Numbers in the segment.
    pub len: u64,
    /// Answers needed before deciding.
    pub want: usize,
    /// Streams asked.
    pub asked: Vec<StreamId>,
    /// Each answer's leading hashes.
    pub answers: Vec<(StreamId, Vec<B256>)>,
}

/// The longest prefix of `answers` that at least `quorum` of them agree
/// on, hash by hash.
pub fn majority_prefix(answers: &[(StreamId, Vec<B256>)], quorum: usize) -> Vec<B256> {
    let mut out = Vec::new();
    for i in 0.. {
        let mut counts: Vec<(B256, usize)> = Vec::new();
        for (_, a) in answers {
            if let Some(h) = a.get(i) {
                match counts.iter_mut().find(|(x, _)| x == h) {
                    Some((_, c)) => *c += 1,
                    None => counts.push((*h, 1)),
                }
            }
        }
        match counts.into_iter().find(|(_, c)| *c >= quorum) {
            Some((h, _)) => out.push(h),
            None => break,
        }
    }
    out
}

impl SyncMachine {
    /// Opens a vote on `first..first+len` among `asked`.
    pub(super) fn new_vote(
        &mut self,
        first: u64,
        len: u64,
        want: usize,
        asked: &[StreamId],
    ) -> u64 {
        let id = self.next_vote;
        self.next_vote += 1;
        self.votes.insert(
            id,
            Vote {
                first,
                len,
                want,
                asked: asked.to_vec(),
                answers: Vec::new(),
            },
        );
        id
    }

    /// A member of vote `v` could not answer: the segment is asked again.
    pub(super) fn vote_failed(&mut self, v: u64, _now: Instant) {
        if let Some(vote) = self.votes.remove(&v) {
            self.requeue_hashes(vote.first, vote.first + vote.len - 1);
        }
    }

    /// `stream` answered vote `v` with `lead`.
    pub(super) fn vote_answer(&mut self, v: u64, stream: StreamId, lead: Vec<B256>, now: Instant) {
        let Some(vote) = self.votes.get_mut(&v) else {
            return; // decided or dropped already
        };
        vote.answers.push((stream, lead));
        if vote.answers.len() < vote.want {
            return;
        }
        let quorum = vote.want / 2 + 1;
        let chosen = majority_prefix(&vote.answers, quorum);
        let common = vote.answers.iter().map(|(_, a)| a.len()).min().unwrap_or(0);
        // Two that disagree within what both answered: ask a third.
        if vote.want == 2 && chosen.len() < common {
            let asked = vote.asked.clone();
            let (first, len) = (vote.first, vote.len);
            let third = self
                .ranked()
                .into_iter()
                .find(|s| !asked.contains(s) && self.may_ask_hashes(*s, first));
            match third {
                Some(s) => {
                    if let Some(vote) = self.votes.get_mut(&v) {
                        vote.want = 3;
                        vote.asked.push(s);
                    }
                    let kind = ReqKind::Hashes {
                        first,
                        len,
                        vote: Some(v),
                    };
                    let req = Request::GetBlockHashes((first..first + len).collect());
                    self.submit(kind, req, s, Priority::Low, 0, now);
                }
                None => self.vote_failed(v, now),
            }
            return;
        }
        let Some(vote) = self.votes.remove(&v) else {
            return;
        };
        let last = vote.first + vote.len - 1;
        if chosen.is_empty() {
            self.requeue_hashes(vote.first, last);
            return;
        }
        if vote.want >= 2 {
            self.status.hash_batches_double_checked += 1;
        }
        // Outvoted: a different hash within the chosen prefix.
        let mut source = None;
        for (s, a) in &vote.answers {
            let differs = a.iter().zip(&chosen).any(|(x, y)| x != y);
            if differs {
                if let Some(peer) = self.peers.get(s).copied() {
                    for (i, h) in a.iter().enumerate().take(chosen.len()) {
                        self.claims.record(vote.first + i as u64, *h, peer);
                    }
                }
                self.blame(*s, Fault::Useless, "outvoted on block hashes");
            } else if source.is_none() && a.len() >= chosen.len() {
                source = Some(*s);
            }
        }
        let source = source.unwrap_or(vote.answers[0].0);
        let got_to = vote.first + chosen.len() as u64 - 1;
        self.stage_hashes(vote.first, &chosen, source, now);
        if got_to < last {
            self.requeue_hashes(got_to + 1, last);
        }
        self.touch();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_majority_decides_each_hash_of_the_prefix() {
        let a = (1, vec![[1; 32], [2; 32], [3; 32]]);
        let b = (2, vec![[1; 32], [2; 32], [9; 32]]);
        let c = (3, vec![[1; 32], [2; 32]]);
        assert_eq!(
            majority_prefix(&[a.clone(), b.clone(), c], 2),
            vec![[1; 32], [2; 32]]
        );
        assert_eq!(majority_prefix(&[a, b], 2), vec![[1; 32], [2; 32]]);
    }
}
