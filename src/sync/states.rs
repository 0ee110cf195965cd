//! States: the downloaded prefix of the window, in order, cut into batches
//! (the whole cycle when it is at most `MaxMemSyncCycleSize` blocks, else
//! `InsertChainBatchSize`), verified on rayon (`Verify` actions, up to two
//! batches at once, each against the last block of the one before) and
//! committed in order by the writer (`Commit`), while the network fetches
//! the batches after. Parent links and commit signatures are verified:
//! every block with `VerifyAllSig` or in ShortRange, else the sample
//! `chain::verify::sampled` chooses, which always covers every block of the
//! batch through the hash chain. Nothing of a batch is committed unless all
//! of it is covered by a verified signature, and a batch is committed only
//! after every batch before it.
//!
//! A failed batch is judged only once every batch before it has verified
//! (its parent must be canonical), in one place (`blame::judge`): the
//! streams proven to have sent invalid data pay, and everything from the
//! batch on is downloaded again. A commit settles the pending hash claims
//! (`claims`): peers whose claims the committed blocks contradict are
//! proven liars.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::blame::{judge, resolve_break, Fault, Verdict};
use super::finish::Stat;
use super::machine::{
    Action, Batch, BatchId, BatchState, CommitError, CommitJob, SyncMachine, Tip, VerifyJob,
};
use crate::chain::verify::{verify_segment, CommitteeKeys, SegmentCheck, SigPolicy};
use crate::chain::{SealedBlock, StageId, VerifyError};
use crate::metrics::names;
use crate::net::StreamId;

/// Batches verifying at once.
const MAX_VERIFYING: usize = 2;
/// Pause before committing again after the writer failed.
const COMMIT_RETRY: Duration = Duration::from_millis(500);

impl SyncMachine {
    /// Last block of the batch starting at `first`.
    pub(super) fn batch_end(&self, first: u64) -> u64 {
        let per = self.settings.staged.max_blocks_per_sync_cycle;
        let (cycle_first, cycle_last) = if per == 0 || first <= self.cycle_end {
            (self.cycle_start, self.cycle_end.max(first))
        } else {
            // A later cycle (Turbo): where it will start and end.
            let k = (first - self.cycle_start) / per;
            let s = self.cycle_start + k * per;
            (s, (s + per - 1).min(self.target))
        };
        let len = cycle_last + 1 - cycle_first;
        let size = if len <= self.settings.staged.max_mem_sync_cycle_size {
            len
        } else {
            self.settings.staged.insert_chain_batch_size.max(1) as u64
        };
        let by_size = cycle_first + ((first - cycle_first) / size + 1) * size - 1;
        by_size.min(cycle_last).min(self.target)
    }

    /// The highest block of a batch being committed (the head if none).
    pub(super) fn committing_to(&self) -> u64 {
        self.batches
            .iter()
            .filter(|b| matches!(b.state, BatchState::Committing))
            .map(|b| b.last)
            .max()
            .unwrap_or(self.head())
    }

    /// The committee of `epoch` for a batch starting at `first`: known, or
    /// named by a block of an earlier batch (verified before this batch
    /// commits).
    fn committee_for(&self, epoch: u64, first: u64) -> Option<Arc<CommitteeKeys>> {
        if let Some(k) = self.committees.get(&epoch) {
            return Some(k.clone());
        }
        let naming = self.spec.epoch_last_block(epoch.checked_sub(1)?);
        if naming >= first {
            return None;
        }
        let b = self
            .batches
            .iter()
            .find(|b| b.first <= naming && naming <= b.last)?;
        let blk = b.blocks.get((naming - b.first) as usize)?;
        let c = blk.block.block.body.committee();
        CommitteeKeys::new(epoch, &c, naming).ok().map(Arc::new)
    }

    /// Forms batches from the downloaded prefix, and commits verified ones
    /// in order.
    pub(super) fn advance_batches(&mut self, now: Instant) {
        while self
            .batches
            .iter()
            .filter(|b| matches!(b.state, BatchState::Verifying))
            .count()
            < MAX_VERIFYING
        {
            let first = self.verify_next;
            if first > self.target {
                break;
            }
            let last = self.batch_end(first);
            if last < first
                || !(first..=last).all(|n| self.slot(n).is_some_and(|s| s.body.is_some()))
            {
                break;
            }
            let first_epoch = self.spec.epoch_of(first);
            let Some(k) = self.committee_for(first_epoch, first) else {
                break; // SyncEpoch will bring it
            };
            // SyncEpoch still fetching a committee the batch spans: wait
            // for it (established committees win over named ones, and
            // blame needs them to judge a break).
            let last_epoch = self.spec.epoch_of(last);
            if (first_epoch + 1..=last_epoch)
                .any(|e| !self.committees.contains_key(&e) && self.epoch_pending(e, now))
            {
                break;
            }
            let mut committees = HashMap::new();
            committees.insert(first_epoch, k);
            for e in first_epoch + 1..=last_epoch {
                if let Some(k) = self.committees.get(&e) {
                    committees.insert(e, k.clone());
                }
            }
            let parent = match self.batches.back() {
                Some(b) => match b.blocks.last() {
                    Some(p) => (p.block.block.header.clone(), p.hash),
                    None => break,
                },
                None => (self.tip.header.clone(), self.tip.hash),
            };
            let mut blocks = Vec::with_capacity((last - first + 1) as usize);
            for n in first..=last {
                if let Some(s) = self.slot_mut(n) {
                    s.batched = true;
                    if let Some(b) = s.body.take() {
                        blocks.push(*b);
                    }
                }
            }
            let short = self.short_range && first >= self.cycle_start && last <= self.cycle_end;
            // Offered blocks: every signature, as in a short range.
            let offered = self.beacon.range(first..=last).next().is_some();
            let policy = if short || offered {
                SigPolicy::All
            } else {
                self.settings.sig_policy()
            };
            let id = self.next_batch;
            self.next_batch += 1;
            let blocks = Arc::new(blocks);
            self.actions.push_back(Action::Verify(Box::new(VerifyJob {
                batch: id,
                parent,
                blocks: blocks.clone(),
                policy,
                committees: committees.clone(),
                spec: self.spec.clone(),
            })));
            self.batches.push_back(Batch {
                id,
                first,
                last,
                blocks,
                policy,
                committees,
                state: BatchState::Verifying,
                short_range: short,
            });
            self.verify_next = last + 1;
            self.enter(StageId::States);
            self.touch();
        }
        if self.commit_retry.is_some_and(|t| now < t) {
            return;
        }
        self.commit_retry = None;
        for i in 0..self.batches.len() {
            match self.batches[i].state {
                BatchState::Committing => continue,
                BatchState::Verified => {
                    self.batches[i].state = BatchState::Committing;
                    let job = self.commit_job(i);
                    self.actions.push_back(Action::Commit(job));
                }
                BatchState::Failed(_) => {
                    // Every batch before it verified: judge it now.
                    if let BatchState::Failed(check) =
                        std::mem::replace(&mut self.batches[i].state, BatchState::Verifying)
                    {
                        self.reject(i, check, now);
                    }
                    return;
                }
                BatchState::Verifying => return,
            }
        }
    }

    /// The commit of batch `i` with the checkpoints it completes.
    fn commit_job(&self, i: usize) -> CommitJob {
        let b = &self.batches[i];
        let mut progress = vec![(StageId::Heads, self.target)];
        if self.persist {
            progress.push((StageId::BlockHashes, self.hashed_to.max(b.last)));
            progress.push((StageId::BlockBodies, self.bodies_to.max(b.last)));
        } else {
            progress.push((StageId::BlockHashes, b.last));
            progress.push((StageId::BlockBodies, b.last));
        }
        progress.push((StageId::States, b.last));
        if b.short_range {
            progress.push((StageId::ShortRange, b.last));
        }
        if b.last == self.cycle_end {
            progress.push((StageId::Finish, b.last));
        }
        CommitJob {
            batch: b.id,
            blocks: b.blocks.clone(),
            progress,
            unstage: self.persist,
        }
    }

    /// A verification result.
    pub(super) fn on_verified(&mut self, id: BatchId, check: SegmentCheck, _now: Instant) {
        let Some(b) = self.batches.iter_mut().find(|b| b.id == id) else {
            return; // dropped meanwhile
        };
        self.status.sigs_verified += check.sigs_checked.len() as u64;
        b.state = if check.is_valid() {
            BatchState::Verified
        } else {
            BatchState::Failed(check)
        };
        self.touch();
    }

    /// A commit result.
    pub(super) fn on_committed(
        &mut self,
        id: BatchId,
        result: Result<(), CommitError>,
        now: Instant,
    ) {
        if self.batches.front().map(|b| b.id) != Some(id) {
            return;
        }
        if let Err(CommitError(e)) = result {
            // Covered by verified signatures: a failure here is the node's
            // own (storage, or its state). Blame nobody, try again.
            tracing::error!(error = %e, "commit failed");
            for b in self.batches.iter_mut() {
                if matches!(b.state, BatchState::Committing) {
                    b.state = BatchState::Verified;
                }
            }
            self.status.last_error = Some(format!("local storage: {e}"));
            self.stat(Stat::Counter(names::FAILED_DOWNLOAD, 1));
            self.commit_retry = Some(now + COMMIT_RETRY);
            self.touch();
            return;
        }
        let Some(b) = self.batches.pop_front() else {
            return;
        };
        let count = b.blocks.len() as u64;
        let bytes: u64 = b.blocks.iter().map(|x| x.len() as u64).sum();
        for blk in b.blocks.iter() {
            self.held = self.held.saturating_sub(blk.mem_bytes());
            let n = blk.number();
            if self.spec.is_epoch_last(n) {
                let e = self.spec.epoch_of(n) + 1;
                if let std::collections::hash_map::Entry::Vacant(v) = self.committees.entry(e) {
                    if let Ok(k) = CommitteeKeys::new(e, &blk.block.block.body.committee(), n) {
                        v.insert(Arc::new(k));
                    }
                }
            }
        }
        if let Some(last) = b.blocks.last() {
            self.tip = Tip {
                header: last.block.block.header.clone(),
                hash: last.hash,
            };
        }
        let drop = (count as usize).min(self.slots.len());
        self.slots.drain(..drop);
        self.hashed_to = self.hashed_to.max(b.last);
        self.bodies_to = self.bodies_to.max(b.last);
        self.hash_next = self.hash_next.max(b.last + 1);
        self.body_next = self.body_next.max(b.last + 1);
        self.hedged.retain(|id| self.reqs.contains_key(id));
        let hashes: Vec<(u64, crate::crypto::B256)> =
            b.blocks.iter().map(|x| (x.number(), x.hash)).collect();
        // Who served the bodies, before their provenance is forgotten.
        let mut served: std::collections::BTreeMap<StreamId, u64> = Default::default();
        for (n, _) in &hashes {
            if let Some(src) = self.prov.body_source(*n) {
                *served.entry(src).or_default() += 1;
            }
        }
        self.prov.prune_to(b.last);
        self.count_beacon(&hashes);
        let liars = self.claims.settle(&hashes);
        for peer in liars {
            self.status.liars_proven += 1;
            tracing::warn!(%peer, "its block hashes contradict the verified chain");
            self.actions.push_back(Action::Blame {
                stream: 0,
                peer: Some(peer),
                fault: Fault::ProvenInvalid,
                why: "its block hashes contradict the verified chain".into(),
            });
        }
        self.stat(Stat::Counter(names::NUM_BLOCKS_SYNCED_LONG_RANGE, count));
        if b.short_range {
            self.status.short_ranges += 1;
            self.stat(Stat::Histogram(
                names::NUM_BLOCKS_INSERTED_SHORT_RANGE,
                count as f64,
            ));
        }
        let ms = self.ms_since_start(now);
        let s = &mut self.status;
        s.head = b.last;
        s.blocks_synced += count;
        s.bytes_synced += bytes;
        s.insert_batches += 1;
        s.last_error = None;
        s.note_commit(ms, count);
        let peers = &self.peers;
        s.note_stream_blocks(
            ms,
            served
                .into_iter()
                .map(|(id, n)| (id, peers.get(&id).copied(), n)),
        );
        if self.settings.staged.log_progress {
            tracing::info!(
                head = b.last,
                target = self.target,
                blocks = count,
                "States: batch inserted"
            );
        }
        self.progressed(now);
        self.touch();
        if b.last >= self.cycle_end {
            self.finish_cycle(now);
        }
    }

    /// Batch `i` failed verification with `check`: blame who is proven at
    /// fault, and download everything from the batch on again.
    fn reject(&mut self, i: usize, check: SegmentCheck, now: Instant) {
        let Some(b) = self.batches.get(i).cloned() else {
            return;
        };
        let Some(err) = check.errors.into_iter().next() else {
            return;
        };
        self.stat(Stat::Counter(names::NUM_BLOCKS_FAILED_LONG_RANGE, 1));
        self.stat(Stat::Counter(names::FAILED_DOWNLOAD, 1));
        let (verdict, why) =
            self.judge_batch(&b.blocks, b.first, b.last, &err, b.policy, &b.committees);
        let mut blamed = false;
        match verdict {
            Verdict::Proven(streams) => {
                self.status.invalid_blocks += 1;
                for s in &streams {
                    self.blame(*s, Fault::ProvenInvalid, why.clone());
                }
                blamed = !streams.is_empty();
            }
            Verdict::Local | Verdict::LinkBreak(_) => {
                tracing::warn!(error = %why, "invalid batch that no peer is proven to have caused");
            }
        }
        tracing::warn!(error = %err, blamed, "invalid block: re-downloading");
        self.status.last_error = Some(format!("invalid block: {err}"));
        self.truncate_above(b.first - 1, now);
        self.touch();
    }

    /// The verdict on `err` found in `blocks`, settling link breaks by
    /// verifying the blocks after them on their own (each at most once).
    fn judge_batch(
        &mut self,
        blocks: &[SealedBlock],
        first: u64,
        last: u64,
        err: &VerifyError,
        policy: SigPolicy,
        committees: &HashMap<u64, Arc<CommitteeKeys>>,
    ) -> (Verdict, String) {
        let mut verdict = judge(err, last, &self.prov);
        let mut why = err.to_string();
        while let Verdict::LinkBreak(n) = verdict {
            let from = (n.saturating_sub(first)) as usize;
            let suffix = verify_segment(&self.spec, None, &blocks[from..], policy, |e| {
                committees.get(&e).cloned()
            });
            self.status.sigs_verified += suffix.sigs_checked.len() as u64;
            let decided = suffix.errors.first();
            verdict = resolve_break(n, first, last, decided.map_or(Ok(()), Err), &self.prov);
            why = match decided {
                Some(e) => format!("{why}; the blocks from {n} on: {e}"),
                None => format!(
                    "{why}; the blocks from {n} on verify, so block {} is not canonical",
                    n - 1
                ),
            };
            if verdict == Verdict::LinkBreak(n) {
                verdict = Verdict::Local;
            }
        }
        (verdict, why)
    }
}
