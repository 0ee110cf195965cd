//! BlockBodies: the window's blocks by hash, over every stream, lowest
//! numbers first, each stream with as many requests in flight as its link
//! needs and requests sized to its rate (`window`). Blocks arrive out of
//! order into the window's slots; States takes them in order. Its
//! checkpoint is the highest number up to which every block is staged.
//!
//! **Byte budget.** Blocks downloaded and not committed, plus a reservation
//! for every body request in flight, fit `MaxStagedBytes`; an answer is
//! taken only as far as its reservation goes (the rest is asked again, no
//! blame). Only the request for the lowest missing block may exceed it, so
//! the writer can never starve. Memory therefore does not depend on block
//! size or on what peers send.
//!
//! **Hedging.** Once the lowest missing block holds up the writer (no batch
//! verifying or committing) and its request is late (1.5 round trips of
//! its stream), the same blocks are asked of another stream; the first
//! answer wins and the other is dropped without blame.
//!
//! **Blame.** Every block must hash to the hash asked for and match its tx
//! root, or its sender is provably lying (critical). Absent blocks and
//! short answers are soft: the rest is asked again, of streams that did not
//! already say they lack it. A hash for which no body can be found (its
//! own source and another stream said they lack it, or two other streams
//! did, or every live stream did; its source is then asked directly) is a
//! claim nobody can match: its source pays softly (useless if it said it
//! lacks it, unresponsive if it did not answer, nothing yet if it is gone),
//! its claims wait for proof (`claims`), and the hashes from there on are
//! fetched again. A block that is exactly the one asked for but under
//! another number proves its hash source lied.

use std::collections::BTreeMap;
use std::time::Instant;

use super::blame::Fault;
use super::machine::{charge, Action, ReqId, ReqKind, SyncMachine};
use crate::chain::limits::MAX_BLOCK_BYTES;
use crate::chain::verify::verify_body;
use crate::chain::{SealedBlock, StageId};
use crate::net::StreamId;
use crate::request::Priority;
use crate::store::StageWrite;
use crate::wire::limits::SOFT_RESPONSE_BYTES;
use crate::wire::{Request, Response};

/// Other streams that must lack a hash before its source is asked directly.
const OTHERS_LACKING: usize = 2;
/// Smallest body request (blocks), for slow streams.
const MIN_BODY_REQUEST: usize = 16;
/// Most a single answer can hold: the soft response limit plus one block.
const MAX_ANSWER_BYTES: usize = SOFT_RESPONSE_BYTES + MAX_BLOCK_BYTES;
/// Block size assumed before any block was seen (bytes).
const DEFAULT_BLOCK_BYTES: f64 = 4096.0;

impl SyncMachine {
    /// Notes the raw size of a block seen.
    pub(super) fn note_block_size(&mut self, len: usize) {
        let l = len as f64;
        self.block_bytes = if self.block_bytes == 0.0 {
            l
        } else {
            self.block_bytes + 0.05 * (l - self.block_bytes)
        };
    }

    /// Budget to reserve for a body request of `n` blocks: their expected
    /// size with margin, at most what one answer can hold.
    fn reservation(&self, n: usize) -> usize {
        let per = if self.block_bytes > 0.0 {
            self.block_bytes * 1.25
        } else {
            DEFAULT_BLOCK_BYTES
        };
        let raw = ((per * n as f64) as usize).min(MAX_ANSWER_BYTES);
        charge(raw, n)
    }

    /// The lowest block not downloaded yet (what the writer waits for).
    /// Everything up to `bodies_to` (BlockBodies' checkpoint) is
    /// downloaded, batched or committed, so this is O(1).
    pub(super) fn lowest_missing(&self) -> Option<u64> {
        let n = self.bodies_to.max(self.head()) + 1;
        match self.slot(n) {
            Some(s) if n <= self.target && s.body.is_none() && !s.batched => Some(n),
            _ => None,
        }
    }

    /// Whether block `n` can be asked now: hashed, not downloaded, not
    /// asked, not batched.
    fn askable(&self, n: u64) -> bool {
        self.slot(n).is_some_and(|s| {
            s.hash.is_some() && s.body.is_none() && s.body_req.is_none() && !s.batched
        })
    }

    /// Queues again every number below the cursors that lacks its hash (or
    /// its body) with no request in flight for it: after the watchdog
    /// cancelled everything, the cycle it starts over asks for all the
    /// window lacks, whatever bookkeeping let a number slip.
    pub(super) fn requeue_holes(&mut self) {
        let base = self.head() + 1;
        for n in base..self.hash_next {
            if self
                .slot(n)
                .is_some_and(|s| s.hash.is_none() && !s.hash_req)
            {
                super::ranges::add(&mut self.hash_retry, n, n);
            }
        }
        for n in base..self.body_next {
            if self.askable(n) {
                super::ranges::add(&mut self.body_retry, n, n);
            }
        }
    }

    /// The next run of askable numbers: retries first, then new ones.
    fn next_body_run(&mut self) -> Option<(u64, u64)> {
        let end = self.window_end();
        while let Some((&a, &b)) = self.body_retry.iter().next() {
            self.body_retry.remove(&a);
            let mut a = a;
            while a <= b.min(end) && !self.askable(a) {
                a += 1;
            }
            if a > b.min(end) {
                continue;
            }
            let mut last = a;
            while last < b.min(end) && self.askable(last + 1) {
                last += 1;
            }
            if last < b {
                super::ranges::add(&mut self.body_retry, last + 1, b);
            }
            return Some((a, last));
        }
        while self.body_next <= end && self.slot(self.body_next).is_some_and(|s| s.hash.is_some()) {
            if self.askable(self.body_next) {
                let a = self.body_next;
                let mut last = a;
                while last < end && self.askable(last + 1) {
                    last += 1;
                }
                self.body_next = last + 1;
                return Some((a, last));
            }
            self.body_next += 1;
        }
        None
    }

    /// Sends body requests while streams have room and the budget allows.
    pub(super) fn request_bodies(&mut self, now: Instant) {
        if let Some((at, _)) = self.body_pause {
            if now < at {
                return;
            }
        }
        let budget = self.settings.max_staged_bytes;
        let lowest = self.lowest_missing();
        let max_len = self.settings.body_batch.max(1);
        let est = if self.block_bytes > 0.0 {
            self.block_bytes
        } else {
            DEFAULT_BLOCK_BYTES
        };
        loop {
            let Some((a, b)) = self.next_body_run() else {
                return;
            };
            let ranked = self.ranked();
            let stream = ranked.into_iter().find(|s| {
                self.links.get(s).is_some_and(|l| l.has_room())
                    && self.slot(a).is_some_and(|x| !x.lacking.contains(s))
                    && self.may_ask_hashes(*s, a)
            });
            let Some(stream) = stream else {
                super::ranges::add(&mut self.body_retry, a, b);
                // Every live stream said it lacks block `a` (its hash source
                // may be gone since): nobody can match that hash.
                let all_lack = !self.links.is_empty()
                    && self
                        .slot(a)
                        .is_some_and(|x| self.links.keys().all(|s| x.lacking.contains(s)));
                if all_lack {
                    self.check_unmatched(&[a], now);
                }
                return;
            };
            let len = self.links.get(&stream).map_or(max_len, |l| {
                l.body_request_len(est, MIN_BODY_REQUEST, max_len)
            });
            let last = b.min(a + len as u64 - 1);
            let n = (last - a + 1) as usize;
            let reserve = self.reservation(n);
            // Only the request the next batch waits for may pass the
            // budget (else downloads past it could starve the writer).
            let holds_writer = lowest == Some(a) && a <= self.batch_end(self.verify_next);
            if self.held + self.reserved + reserve > budget && !holds_writer {
                // Full: nothing more until commits free some.
                super::ranges::add(&mut self.body_retry, a, b);
                return;
            }
            if last < b {
                super::ranges::add(&mut self.body_retry, last + 1, b);
            }
            self.send_bodies(a, last, stream, None, false, reserve, now);
        }
    }

    /// Asks `stream` for the blocks `a..=last` by hash.
    #[allow(clippy::too_many_arguments)]
    fn send_bodies(
        &mut self,
        a: u64,
        last: u64,
        stream: StreamId,
        hedge_of: Option<ReqId>,
        direct: bool,
        reserve: usize,
        now: Instant,
    ) -> ReqId {
        let hashes: Vec<_> = (a..=last)
            .filter_map(|n| self.slot(n).and_then(|s| s.hash))
            .collect();
        let len = last - a + 1;
        let kind = ReqKind::Bodies {
            first: a,
            len,
            hedge_of,
            direct,
        };
        // What the writer waits for next goes first in the request queue.
        let prio = if direct || hedge_of.is_some() || a <= self.batch_end(self.verify_next) {
            Priority::High
        } else {
            Priority::Low
        };
        let id = self.submit(
            kind,
            Request::GetBlocksByHashes(hashes),
            stream,
            prio,
            reserve,
            now,
        );
        if hedge_of.is_none() {
            for n in a..=last {
                if let Some(s) = self.slot_mut(n) {
                    s.body_req = Some(id);
                }
            }
        }
        self.status.blocks_requested += len;
        if self.status.stage == Some(StageId::BlockHashes.name()) {
            self.enter(StageId::BlockBodies);
        }
        id
    }

    /// Blocks of request `id` not downloaded go back to be asked again.
    pub(super) fn requeue_bodies(
        &mut self,
        id: ReqId,
        first: u64,
        last: u64,
        hedge_of: Option<ReqId>,
    ) {
        if hedge_of.is_some() {
            return; // the original request still covers them
        }
        let mut a = None;
        for n in first..=last {
            let mine = self.slot(n).is_some_and(|s| s.body_req == Some(id));
            if mine {
                if let Some(s) = self.slot_mut(n) {
                    s.body_req = None;
                }
            }
            let missing = mine && self.askable(n);
            match (missing, a) {
                (true, None) => a = Some(n),
                (false, Some(s)) => {
                    super::ranges::add(&mut self.body_retry, s, n - 1);
                    a = None;
                }
                _ => {}
            }
        }
        if let Some(s) = a {
            super::ranges::add(&mut self.body_retry, s, last);
        }
    }

    /// An answer to a body request.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_bodies(
        &mut self,
        id: ReqId,
        first: u64,
        len: u64,
        hedge_of: Option<ReqId>,
        direct: bool,
        stream: StreamId,
        resp: Response,
        reserved: usize,
        now: Instant,
    ) {
        let last = first + len - 1;
        let items = match resp {
            Response::Blocks(items) => items,
            other => {
                if !matches!(other, Response::Error { .. }) {
                    self.blame(
                        stream,
                        Fault::Useless,
                        "GetBlocksByHashes answered with another type",
                    );
                }
                self.requeue_bodies(id, first, last, hedge_of);
                if direct {
                    self.on_direct_silent(stream, first, len, now);
                }
                return;
            }
        };
        let mut room = reserved;
        let mut staged: Vec<(u64, std::sync::Arc<[u8]>)> = Vec::new();
        let mut lacked: Vec<u64> = Vec::new();
        let lowest = self.lowest_missing();
        for (i, item) in items.into_iter().enumerate().take(len as usize) {
            let n = first + i as u64;
            let Some(slot) = self.slot(n) else {
                continue; // committed meanwhile, or the window moved
            };
            if slot.body.is_some() || slot.batched {
                continue; // the other of a hedged pair won: dropped, no blame
            }
            let Some(want) = slot.hash else {
                continue;
            };
            let Some(bytes) = item else {
                if let Some(s) = self.slot_mut(n) {
                    if !s.lacking.contains(&stream) {
                        s.lacking.push(stream);
                    }
                }
                lacked.push(n);
                continue;
            };
            let cost = charge(bytes.len(), 1);
            if cost > room && lowest != Some(n) {
                break; // past its reservation: asked again, no blame
            }
            room = room.saturating_sub(cost);
            let block = match SealedBlock::from_raw(&bytes) {
                Ok(b) => b,
                Err(e) => {
                    self.blame(
                        stream,
                        Fault::ProvenInvalid,
                        format!("undecodable block: {e}"),
                    );
                    break;
                }
            };
            if block.hash == want && block.number() != n {
                // Exactly the block asked for: the hash claimed for block
                // `n` is another block's. Its source lied; start over.
                if let Some(src) = self.prov.hash_source(n) {
                    let why = format!("claimed the hash of block {} for block {n}", block.number());
                    self.blame(src, Fault::ProvenInvalid, why);
                }
                self.truncate_above(n - 1, now);
                self.status.unservable += 1;
                return;
            }
            let check = if block.hash != want {
                Err("block does not hash to the hash asked for".to_string())
            } else {
                verify_body(&self.spec, &block.block.block)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            };
            if let Err(why) = check {
                self.blame(stream, Fault::ProvenInvalid, why);
                self.status.invalid_blocks += 1;
                break;
            }
            self.held += block.mem_bytes();
            self.note_block_size(block.len());
            self.prov.body_from(n, stream);
            staged.push((n, block.raw.clone()));
            if let Some(s) = self.slot_mut(n) {
                s.body = Some(Box::new(block));
                if s.body_req == Some(id) {
                    s.body_req = None;
                }
            }
        }
        self.requeue_bodies(id, first, last, hedge_of);
        // A hedged pair: once one has brought everything, drop the other.
        let partner = hedge_of.or_else(|| {
            self.reqs
                .iter()
                .find(
                    |(_, r)| matches!(r.kind, ReqKind::Bodies { hedge_of: Some(o), .. } if o == id),
                )
                .map(|(k, _)| *k)
        });
        if let Some(p) = partner {
            let done = self.reqs.get(&p).is_some_and(|r| match r.kind {
                ReqKind::Bodies { first, len, .. } => (first..first + len)
                    .all(|n| self.slot(n).is_none_or(|s| s.body.is_some() || s.batched)),
                _ => false,
            });
            if done {
                self.actions.push_back(Action::Cancel { id: p });
                self.fail_request(p, now);
            }
        }
        if !staged.is_empty() {
            self.body_pause = None;
            self.progressed(now);
            self.persist_bodies(staged);
        }
        if direct && !lacked.is_empty() {
            self.give_up(Some(stream), &lacked, false, now);
            return;
        }
        if !lacked.is_empty() {
            self.check_unmatched(&lacked, now);
        }
    }

    /// Stages downloaded blocks in LMDB with the BlockBodies checkpoint.
    fn persist_bodies(&mut self, staged: Vec<(u64, std::sync::Arc<[u8]>)>) {
        let before = self.bodies_to;
        while self
            .slot(self.bodies_to + 1)
            .is_some_and(|s| s.body.is_some() || s.batched)
        {
            self.bodies_to += 1;
        }
        if self.bodies_to > before {
            self.touch();
        }
        if !self.persist {
            return;
        }
        let mut w = StageWrite {
            blocks: staged,
            ..StageWrite::default()
        };
        if self.bodies_to > before {
            w.progress.push((StageId::BlockBodies, self.bodies_to));
        }
        self.actions.push_back(Action::Stage(w));
    }

    /// Numbers answered as absent: those whose hash nobody seems able to
    /// match are asked of their source directly, or given up on.
    fn check_unmatched(&mut self, lacked: &[u64], now: Instant) {
        // Ordered: each source is asked (or given up on) in turn.
        let mut by_source: BTreeMap<Option<StreamId>, Vec<u64>> = BTreeMap::new();
        for &n in lacked {
            let Some(s) = self.slot(n) else { continue };
            if s.body.is_some() {
                continue;
            }
            let src = self.prov.hash_source(n);
            let others = s.lacking.iter().filter(|x| Some(**x) != src).count();
            let src_lacks = src.is_some_and(|x| s.lacking.contains(&x));
            let all = !self.links.is_empty() && self.links.keys().all(|x| s.lacking.contains(x));
            if (src_lacks && others >= 1) || others >= OTHERS_LACKING || all {
                by_source.entry(src).or_default().push(n);
            }
        }
        for (src, numbers) in by_source {
            let live_src = src.filter(|s| self.links.contains_key(s));
            let asked_it = live_src.is_some_and(|s| {
                numbers
                    .iter()
                    .all(|n| self.slot(*n).is_some_and(|x| x.lacking.contains(&s)))
            });
            match live_src {
                Some(s) if !asked_it => {
                    // Ask the source itself, once, before deciding.
                    for chunk in numbers.chunks(self.settings.body_batch.max(1)) {
                        let (a, b) = (chunk[0], chunk[chunk.len() - 1]);
                        if b - a + 1 != chunk.len() as u64 {
                            // Not contiguous: one by one.
                            for n in chunk {
                                self.take_from_retry(*n, *n);
                                self.send_bodies(*n, *n, s, None, true, self.reservation(1), now);
                            }
                            continue;
                        }
                        self.take_from_retry(a, b);
                        let r = self.reservation(chunk.len());
                        self.send_bodies(a, b, s, None, true, r, now);
                    }
                }
                _ => self.give_up(src, &numbers, false, now),
            }
        }
    }

    /// Removes `a..=b` from the body retry ranges (asked elsewhere now).
    fn take_from_retry(&mut self, a: u64, b: u64) {
        let hits: Vec<(u64, u64)> = self
            .body_retry
            .iter()
            .filter(|(x, y)| **x <= b && **y >= a)
            .map(|(x, y)| (*x, *y))
            .collect();
        for (x, y) in hits {
            self.body_retry.remove(&x);
            if x < a {
                super::ranges::add(&mut self.body_retry, x, a - 1);
            }
            if y > b {
                super::ranges::add(&mut self.body_retry, b + 1, y);
            }
        }
    }

    /// The hash source, asked directly for `first..first+len`, did not
    /// answer.
    pub(super) fn on_direct_silent(
        &mut self,
        stream: StreamId,
        first: u64,
        len: u64,
        now: Instant,
    ) {
        let numbers: Vec<u64> = (first..first + len)
            .filter(|n| {
                self.slot(*n)
                    .is_some_and(|s| s.body.is_none() && !s.batched)
            })
            .collect();
        for n in &numbers {
            if let Some(s) = self.slot_mut(*n) {
                s.body_req = None;
            }
        }
        if !numbers.is_empty() {
            self.give_up(Some(stream), &numbers, true, now);
        }
    }

    /// Gives up on the hashes of `numbers`, claimed by `source`: it pays
    /// for what it showed, its claims wait for proof, and the hashes from
    /// the lowest on are fetched again (not from it).
    fn give_up(&mut self, source: Option<StreamId>, numbers: &[u64], silent: bool, now: Instant) {
        let Some(&lowest) = numbers.iter().min() else {
            return;
        };
        if let Some(src) = source {
            if let Some(peer) = self.peers.get(&src).copied() {
                for n in numbers {
                    if let Some(h) = self.slot(*n).and_then(|s| s.hash) {
                        self.claims.record(*n, h, peer);
                    }
                }
            }
            tracing::warn!(
                stream = src,
                blocks = numbers.len(),
                first = lowest,
                "hashes nobody can serve, not even the stream that claimed them"
            );
            if self.links.contains_key(&src) {
                let (fault, why) = if silent {
                    (
                        Fault::Unresponsive,
                        "did not answer for block hashes it claimed",
                    )
                } else {
                    (Fault::Useless, "claimed block hashes it cannot serve")
                };
                self.blame(src, fault, why);
                // Not asked for hashes from there on.
                let lack = self.hash_lacks.entry(src).or_insert(lowest);
                *lack = (*lack).min(lowest);
            }
        }
        self.status.unservable += 1;
        self.truncate_above(lowest - 1, now);
    }

    /// The request to hedge and when: the one holding the lowest missing
    /// block (its hash or its body) while the writer has nothing to do.
    fn hedge_candidate(&self) -> Option<(ReqId, Instant)> {
        if self.batches.iter().any(|b| {
            matches!(
                b.state,
                super::machine::BatchState::Verifying | super::machine::BatchState::Committing
            )
        }) {
            return None;
        }
        let m = self.lowest_missing()?;
        let slot = self.slot(m)?;
        let id = match slot.body_req {
            Some(id) => id,
            None if slot.hash.is_none() => self
                .reqs
                .iter()
                .filter(|(_, r)| {
                    matches!(r.kind, ReqKind::Hashes { vote: None, .. }) && r.covers(m)
                })
                .map(|(id, _)| *id)
                .min()?,
            None => return None,
        };
        if self.hedged.contains(&id) {
            return None;
        }
        let r = self.reqs.get(&id)?;
        if matches!(r.kind, ReqKind::Bodies { direct: true, .. }) {
            return None;
        }
        let at = self.links.get(&r.stream)?.hedge_after(r.sent);
        Some((id, at))
    }

    /// When the lowest missing range becomes worth hedging.
    pub(super) fn hedge_deadline(&self) -> Option<Instant> {
        self.hedge_candidate().map(|(_, at)| at)
    }

    /// Asks another stream for the lowest missing range once it holds up
    /// the writer.
    pub(super) fn hedge(&mut self, now: Instant) {
        let Some((id, at)) = self.hedge_candidate() else {
            return;
        };
        if now < at {
            return;
        }
        self.hedged.insert(id);
        let Some(r) = self.reqs.get(&id).cloned() else {
            return;
        };
        let Some(m) = self.lowest_missing() else {
            return;
        };
        let (first, len, hashes) = match r.kind {
            ReqKind::Bodies { first, len, .. } => (first, len, false),
            ReqKind::Hashes { first, len, .. } => (first, len, true),
            _ => return,
        };
        let last = first + len - 1;
        let other = self.ranked().into_iter().find(|s| {
            *s != r.stream
                && self.links.get(s).is_some_and(|l| l.in_flight <= l.window())
                && self.slot(m).is_some_and(|x| !x.lacking.contains(s))
                && self.may_ask_hashes(*s, m)
        });
        let Some(other) = other else {
            return;
        };
        tracing::debug!(
            slow = r.stream,
            other,
            first = m,
            last,
            hashes,
            "hedging the lowest missing range"
        );
        self.status.hedges += 1;
        if hashes {
            let kind = ReqKind::Hashes {
                first: m,
                len: last - m + 1,
                vote: None,
            };
            let req = crate::wire::Request::GetBlockHashes((m..=last).collect());
            self.submit(kind, req, other, Priority::High, 0, now);
            return;
        }
        let reserve = self.reservation((last - m + 1) as usize);
        self.send_bodies(m, last, other, Some(id), false, reserve, now);
    }

    /// Drops everything above `keep` that is not committing (hashes,
    /// blocks, requests, batches): it may descend from a bad block, or lies
    /// past the target.
    pub(super) fn truncate_above(&mut self, keep: u64, now: Instant) {
        let keep = keep.max(self.committing_to()).max(self.head());
        // Batches above: their blocks are dropped with them.
        while let Some(b) = self.batches.back() {
            if b.last <= keep || matches!(b.state, super::machine::BatchState::Committing) {
                break;
            }
            let Some(b) = self.batches.pop_back() else {
                break;
            };
            for blk in b.blocks.iter() {
                self.held = self.held.saturating_sub(blk.mem_bytes());
            }
            for n in b.first..=b.last {
                if let Some(s) = self.slot_mut(n) {
                    s.batched = false;
                }
            }
            self.verify_next = self.verify_next.min(b.first);
        }
        // Requests covering numbers above.
        let ids: Vec<ReqId> = self
            .reqs
            .iter()
            .filter(|(_, r)| match r.kind {
                ReqKind::Hashes { first, len, .. } | ReqKind::Bodies { first, len, .. } => {
                    first + len - 1 > keep
                }
                _ => false,
            })
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.actions.push_back(Action::Cancel { id });
            if let Some(r) = self.reqs.remove(&id) {
                self.reserved -= r.reserved;
                if r.counts() {
                    if let Some(l) = self.links.get_mut(&r.stream) {
                        l.on_cancel();
                    }
                }
                if let ReqKind::Hashes { vote: Some(v), .. } = r.kind {
                    self.votes.remove(&v);
                }
            }
        }
        let base = self.head() + 1;
        let keep_len = (keep + 1 - base) as usize;
        let mut give_back = Vec::new();
        for s in self.slots.iter_mut().skip(keep_len) {
            if let Some(b) = s.body.take() {
                self.held = self.held.saturating_sub(b.mem_bytes());
                if self.beacon.get(&b.number()) == Some(&b.hash) {
                    give_back.push(*b);
                }
            }
            *s = Default::default();
        }
        // Offered blocks above go back to the buffer (no peer needs to
        // serve them); offered blocks in a batch that failed are gone.
        self.beacon = {
            let mut below = std::mem::take(&mut self.beacon);
            below.split_off(&(keep + 1));
            below
        };
        for b in give_back {
            self.offered.insert(b.number(), b);
        }
        // Below `keep`, requests that were cancelled leave their numbers.
        for s in self.slots.iter_mut().take(keep_len) {
            if s.body_req.is_some_and(|id| !self.reqs.contains_key(&id)) {
                s.body_req = None;
            }
            if s.hash_req && s.hash.is_none() {
                s.hash_req = false;
            }
        }
        self.slots.truncate(keep_len);
        self.prov.drop_above(keep);
        self.hash_retry.clear();
        self.body_retry.clear();
        self.hash_next = base;
        self.body_next = base;
        self.verify_next = self.verify_next.min(keep + 1);
        self.hashed_to = self.hashed_to.min(keep);
        self.bodies_to = self.bodies_to.min(keep);
        // Numbers below `keep` not hashed or not downloaded are found again
        // by the cursors, which restart at the base.
        self.requeue_gaps(keep);
        if self.persist {
            self.actions.push_back(Action::Unstage { number: keep });
        }
        self.ensure_slots(self.window_end());
        let _ = now;
        self.touch();
    }

    /// After a truncation the hash cursor restarts at the base, past what
    /// is hashed or asked already.
    fn requeue_gaps(&mut self, _keep: u64) {
        while self
            .slot(self.hash_next)
            .is_some_and(|s| s.hash.is_some() || s.hash_req)
        {
            self.hash_next += 1;
        }
    }
}
