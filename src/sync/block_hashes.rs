//! BlockHashes: the canonical hashes of the window, in segments of
//! `hash_batch` numbers over every stream, out of order, a bounded
//! distance ahead of the body requests. Every staged hash records the
//! stream that claimed it (blame needs it: see `blame`). Its checkpoint is
//! the highest number up to which every hash is staged.
//!
//! An answer is taken for what it gives ([`read_answer`]): its leading
//! hashes are staged, and the first number it answers as absent tells what
//! that stream can serve (a chain is contiguous: it lacks everything above
//! too), so it is not asked from there on. A stream that lacks a block
//! below the height it claimed at Heads is capped at what it showed: Heads
//! counts its vote no higher (a height claim nobody can serve does not set
//! the target). Numbers no live stream can serve bound the target. A
//! segment that brings nothing backs off (200 ms, doubling, at most 5 s).
//!
//! With `DoubleCheckBlockHashes` (and always in ShortRange) a segment is
//! decided by a vote of several streams (`short_range`).

use std::time::{Duration, Instant};

use super::blame::Fault;
use super::machine::{Action, ReqKind, SyncMachine};
use crate::chain::StageId;
use crate::crypto::B256;
use crate::net::StreamId;
use crate::request::Priority;
use crate::store::StageWrite;
use crate::wire::{Request, Response};

/// First back-off after a segment that brought nothing.
pub(super) const BACKOFF_START: Duration = Duration::from_millis(200);
/// Longest back-off.
pub(super) const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Hash requests a stream may have in flight (beside its body window).
const HASH_SLOTS: usize = 4;
/// Most hashes staged or asked ahead of the body requests (1 MiB of them).
pub(super) const HASHES_AHEAD: u64 = 32_768;

/// The leading hashes of an answer to `GetBlockHashes(asked)` and the
/// first number it answered as absent; `None` for an answer of the wrong
/// length (useless). Hashes after an absent entry are ignored.
pub fn read_answer(asked: &[u64], got: &[Option<B256>]) -> Option<(Vec<B256>, Option<u64>)> {
    if got.len() != asked.len() {
        return None;
    }
    let lead: Vec<B256> = got.iter().map_while(|h| *h).collect();
    let absent_from = asked.get(lead.len()).copied();
    Some((lead, absent_from))
}

impl SyncMachine {
    /// Whether `stream` may be asked for hashes from `first` on.
    pub(super) fn may_ask_hashes(&self, stream: StreamId, first: u64) -> bool {
        self.hash_lacks.get(&stream).is_none_or(|l| *l > first)
    }

    /// Hash requests in flight on `stream`.
    fn hash_requests_on(&self, stream: StreamId) -> usize {
        self.reqs
            .values()
            .filter(|r| r.stream == stream && matches!(r.kind, ReqKind::Hashes { .. }))
            .count()
    }

    /// Takes the next hash segment to ask: a retry first, else new numbers.
    fn next_hash_segment(&mut self) -> Option<(u64, u64)> {
        let end = self.window_end().min(self.body_next + HASHES_AHEAD);
        let size = self.settings.hash_batch.max(1) as u64;
        while let Some((&a, &b)) = self.hash_retry.iter().next() {
            self.hash_retry.remove(&a);
            let b = b.min(self.window_end());
            if a > b {
                continue;
            }
            let last = b.min(a + size - 1);
            if last < b {
                super::ranges::add(&mut self.hash_retry, last + 1, b);
            }
            return Some((a, last));
        }
        // Numbers whose hash is in hand (offered blocks) are not asked.
        while self.hash_next <= end && self.slot(self.hash_next).is_some_and(|s| s.hash.is_some()) {
            self.hash_next += 1;
        }
        if self.hash_next > end {
            return None;
        }
        let a = self.hash_next;
        let mut last = a;
        while last < end.min(a + size - 1) && self.slot(last + 1).is_none_or(|s| s.hash.is_none()) {
            last += 1;
        }
        self.hash_next = last + 1;
        Some((a, last))
    }

    /// Sends hash requests while streams have room.
    pub(super) fn request_hashes(&mut self, now: Instant) {
        if let Some((at, _)) = self.hash_pause {
            if now < at {
                return;
            }
        }
        let voting = self.settings.staged.double_check_block_hashes || self.short_range;
        loop {
            let ranked = self.ranked();
            let Some((a, b)) = self.next_hash_segment() else {
                return;
            };
            let eligible: Vec<StreamId> = ranked
                .iter()
                .copied()
                .filter(|s| self.may_ask_hashes(*s, a))
                .collect();
            // Hash answers are small: at most four in flight per stream,
            // apart from its window of body requests.
            let free: Vec<StreamId> = eligible
                .iter()
                .copied()
                .filter(|s| self.hash_requests_on(*s) < HASH_SLOTS)
                .collect();
            if free.is_empty() {
                super::ranges::add(&mut self.hash_retry, a, b);
                if eligible.is_empty() {
                    self.bound_to_servable(now);
                }
                return;
            }
            self.ensure_slots(b);
            for n in a..=b {
                if let Some(s) = self.slot_mut(n) {
                    s.hash_req = true;
                }
            }
            let len = b - a + 1;
            let numbers: Vec<u64> = (a..=b).collect();
            if voting {
                let want = if self.short_range { 3 } else { 2 };
                let want = want.min(eligible.len()).max(1);
                let asked: Vec<StreamId> = eligible.iter().copied().take(want).collect();
                let vote = self.new_vote(a, len, want, &asked);
                for s in asked {
                    let kind = ReqKind::Hashes {
                        first: a,
                        len,
                        vote: Some(vote),
                    };
                    let req = Request::GetBlockHashes(numbers.clone());
                    self.submit(kind, req, s, Priority::Low, 0, now);
                }
            } else {
                let kind = ReqKind::Hashes {
                    first: a,
                    len,
                    vote: None,
                };
                self.submit(
                    kind,
                    Request::GetBlockHashes(numbers),
                    free[0],
                    Priority::Low,
                    0,
                    now,
                );
            }
        }
    }

    /// Hashes `first..first+len` go back to be asked again.
    pub(super) fn requeue_hashes(&mut self, first: u64, last: u64) {
        for n in first..=last {
            if let Some(s) = self.slot_mut(n) {
                s.hash_req = false;
            }
        }
        let mut a = first;
        // Only the numbers still without a hash.
        while a <= last {
            while a <= last && self.slot(a).is_none_or(|s| s.hash.is_some()) {
                a += 1;
            }
            let mut b = a;
            while b < last && self.slot(b + 1).is_some_and(|s| s.hash.is_none()) {
                b += 1;
            }
            if a <= last {
                super::ranges::add(&mut self.hash_retry, a, b);
            }
            a = b + 1;
        }
    }

    /// Backs hash requests off after a segment that brought nothing.
    fn pause_hashes(&mut self, now: Instant) {
        let d = self
            .hash_pause
            .map_or(BACKOFF_START, |(_, d)| (d * 2).min(BACKOFF_MAX));
        self.hash_pause = Some((now + d, d));
    }

    /// An answer to a hash request.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_hashes(
        &mut self,
        first: u64,
        len: u64,
        vote: Option<u64>,
        stream: StreamId,
        resp: Response,
        now: Instant,
    ) {
        let last = first + len - 1;
        let asked: Vec<u64> = (first..=last).collect();
        let got = match resp {
            Response::BlockHashes(hs) => match read_answer(&asked, &hs) {
                Some(x) => Some(x),
                None => {
                    self.blame(stream, Fault::Useless, "hash answer of the wrong length");
                    None
                }
            },
            // Rate limited, busy, internal: not a fault, asked again.
            Response::Error { .. } => None,
            _ => {
                self.blame(
                    stream,
                    Fault::Useless,
                    "GetBlockHashes answered with another type",
                );
                None
            }
        };
        let Some((lead, absent)) = got else {
            if let Some(v) = vote {
                self.vote_failed(v, now);
            } else {
                self.requeue_hashes(first, last);
            }
            return;
        };
        if let Some(gap) = absent {
            self.note_lack(stream, gap, now);
        }
        if let Some(v) = vote {
            self.vote_answer(v, stream, lead, now);
            return;
        }
        if lead.is_empty() {
            self.requeue_hashes(first, last);
            self.pause_hashes(now);
            return;
        }
        let got_to = first + lead.len() as u64 - 1;
        self.stage_hashes(first, &lead, stream, now);
        if got_to < last {
            self.requeue_hashes(got_to + 1, last);
        }
    }

    /// Stages `hashes` from block `first`, claimed by `source`.
    pub(super) fn stage_hashes(
        &mut self,
        first: u64,
        hashes: &[B256],
        source: StreamId,
        now: Instant,
    ) {
        let last = first + hashes.len() as u64 - 1;
        if self.height_caps.get(&source).is_some_and(|cap| last > *cap) {
            self.height_caps.remove(&source);
        }
        let mut staged = Vec::new();
        for (i, h) in hashes.iter().enumerate() {
            let n = first + i as u64;
            let Some(s) = self.slot_mut(n) else {
                continue; // below the head, or the window shrank
            };
            s.hash_req = false;
            if s.hash.is_some() {
                continue;
            }
            s.hash = Some(*h);
            self.prov.hash_from(n, source);
            staged.push((n, *h));
        }
        if staged.is_empty() {
            return;
        }
        self.hash_pause = None;
        self.progressed(now);
        let before = self.hashed_to;
        while self
            .slot(self.hashed_to + 1)
            .is_some_and(|s| s.hash.is_some())
        {
            self.hashed_to += 1;
        }
        if self.persist {
            let mut w = StageWrite {
                hashes: staged,
                ..StageWrite::default()
            };
            if self.hashed_to > before {
                w.progress.push((StageId::BlockHashes, self.hashed_to));
            }
            self.actions.push_back(Action::Stage(w));
        }
    }

    /// `stream` lacks block `gap` and everything above. Below the height it
    /// claimed, that caps what Heads counts for it.
    pub(super) fn note_lack(&mut self, stream: StreamId, gap: u64, now: Instant) {
        let lack = self.hash_lacks.entry(stream).or_insert(gap);
        *lack = (*lack).min(gap);
        if self.claimed.get(&stream).is_some_and(|c| *c >= gap) {
            let cap = gap.saturating_sub(1);
            if self.height_caps.insert(stream, cap) != Some(cap) {
                tracing::info!(
                    stream,
                    claimed = self.claimed.get(&stream).copied().unwrap_or(0),
                    serves_to = cap,
                    "stream claims more than it serves: its height counts as {cap}"
                );
            }
        }
        self.bound_to_servable(now);
    }

    /// Past what every live stream lacks, nobody can serve: the target is
    /// bounded there.
    fn bound_to_servable(&mut self, now: Instant) {
        if self.links.is_empty() || !self.links.keys().all(|s| self.hash_lacks.contains_key(s)) {
            return;
        }
        let servable_to = self
            .links
            .keys()
            .filter_map(|s| self.hash_lacks.get(s))
            .max()
            .map_or(self.target, |n| n.saturating_sub(1))
            .max(self.head());
        if servable_to < self.target {
            tracing::info!(
                target = self.target,
                servable_to,
                "no stream can serve past this: cycle bounded"
            );
            self.set_target(servable_to, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_taken_up_to_its_first_absent_entry() {
        let asked = [5, 6, 7, 8];
        let got = [Some([1; 32]), Some([2; 32]), None, Some([4; 32])];
        assert_eq!(
            read_answer(&asked, &got),
            Some((vec![[1; 32], [2; 32]], Some(7)))
        );
        let full = [Some([1; 32]); 4];
        assert_eq!(read_answer(&asked, &full), Some((vec![[1; 32]; 4], None)));
        assert_eq!(read_answer(&asked, &full[..3]), None, "wrong length");
    }
}
