//! Finish, and the cycle around the stages: a cycle starts when Heads has
//! decided a target above the head, covers `MaxBlocksPerSyncCycle` blocks
//! (all of them with 0), and finishes when its last block is committed:
//! status and metrics are updated, the next cycle starts at once (its
//! blocks may already be downloaded: Turbo) and Heads refreshes the target
//! beside the download. Reaching the target ends the sync until Heads,
//! asked again after `idle_interval` or a trigger, finds more.
//!
//! Also here: the watchdog (no commit for `stall_timeout` restarts the
//! cycle with the stalled streams deprioritised, and says why), the idle
//! back-off, and what a restarted node restores.

use std::time::{Duration, Instant};

use super::machine::{Action, Phase, Restored, SyncMachine};
use crate::chain::StageId;
use crate::metrics::names;

/// First pause after a cycle that could not start.
pub const IDLE_BACKOFF_START: Duration = Duration::from_millis(500);
/// Longest such pause.
pub const IDLE_BACKOFF_MAX: Duration = Duration::from_secs(8);

/// A metric the driver records (cores never touch the global recorder).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Stat {
    /// Add to a counter.
    Counter(&'static str, u64),
    /// Record a histogram sample.
    Histogram(&'static str, f64),
}

impl SyncMachine {
    /// Starts a cycle from the head towards the target.
    pub(super) fn start_cycle(&mut self, now: Instant) {
        let head = self.head();
        self.cycle_start = head + 1;
        self.cycle_end = self.settings.cycle_end(head, self.target);
        self.short_range =
            self.target + 1 - self.cycle_start <= self.settings.short_range_threshold;
        if self.short_range {
            self.stat(Stat::Counter(names::NUM_SHORT_RANGE, 1));
        }
        self.phase = Phase::Sync;
        self.epoch_lacks.clear();
        self.enter(StageId::SyncEpoch);
        self.enter(if self.short_range {
            StageId::ShortRange
        } else {
            StageId::BlockHashes
        });
        self.progressed(now);
        self.ensure_slots(self.window_end());
        self.fill_offered();
        self.touch();
    }

    /// The window's last block changed: moves the target, dropping what was
    /// downloaded above a lower one.
    pub(super) fn set_target(&mut self, target: u64, now: Instant) {
        self.target = target.max(self.head());
        self.status.target = self.target;
        self.cycle_end = self.cycle_end.min(self.target);
        if self.cycle_end < self.cycle_start && self.head() < self.target {
            self.cycle_end = self.settings.cycle_end(self.head(), self.target);
        }
        let keep = self.target;
        self.truncate_above(keep, now);
        self.ensure_slots(self.window_end());
        self.touch();
    }

    /// The last block of the cycle was committed.
    pub(super) fn finish_cycle(&mut self, now: Instant) {
        self.enter(StageId::Finish);
        self.status.cycles += 1;
        let head = self.head();
        let secs = self.ms_since_start(now) as f64 / 1e3;
        if secs > 0.0 {
            self.status.blocks_per_sec = self.status.blocks_synced as f64 / secs;
        }
        self.idle_backoff = IDLE_BACKOFF_START;
        if head >= self.target {
            // The target is reached: Heads decides whether there is more.
            self.status.stage = None;
            self.phase = Phase::Idle { until: now };
            self.touch();
            return;
        }
        // The next cycle: blocks already downloaded for it were Turbo's.
        let old_end = self.cycle_end;
        self.cycle_start = head + 1;
        self.cycle_end = self.settings.cycle_end(head, self.target);
        self.short_range =
            self.target + 1 - self.cycle_start <= self.settings.short_range_threshold;
        let prefetched = (old_end + 1..=self.cycle_end)
            .filter(|n| self.slot(*n).is_some_and(|s| s.body.is_some() || s.batched))
            .count() as u64;
        self.status.prefetched_used += prefetched;
        self.ensure_slots(self.window_end());
        self.refresh_target(now);
        self.enter(StageId::BlockHashes);
        self.touch();
    }

    /// Waits before the next round of Heads: `d`, or the idle back-off.
    pub(super) fn idle_for(&mut self, now: Instant, d: Option<Duration>) {
        let d = d.unwrap_or_else(|| {
            let d = self.idle_backoff;
            self.idle_backoff = (self.idle_backoff * 2).min(IDLE_BACKOFF_MAX);
            d
        });
        self.status.stage = None;
        self.phase = Phase::Idle { until: now + d };
        self.touch();
    }

    /// No commit for `stall_timeout`: cancel everything in flight, queue
    /// again every number the window lacks ([`Self::requeue_holes`]),
    /// deprioritise the streams that held the lowest missing blocks, and
    /// start over with Heads.
    pub(super) fn watchdog(&mut self, now: Instant) {
        let idle = now.saturating_duration_since(self.last_progress);
        tracing::warn!(
            idle_s = idle.as_secs(),
            head = self.head(),
            "watchdog: no progress, restarting the cycle with fresh streams"
        );
        let lowest = self.verify_next;
        let stalled: Vec<_> = self
            .reqs
            .values()
            .filter(|r| r.covers(lowest))
            .map(|r| r.stream)
            .collect();
        for s in stalled {
            if let Some(l) = self.links.get_mut(&s) {
                l.penalty += 1;
            }
        }
        let ids: Vec<_> = self.reqs.keys().copied().collect();
        for id in ids {
            self.actions.push_back(Action::Cancel { id });
            self.fail_request(id, now);
        }
        self.requeue_holes();
        self.status.last_error = Some(format!("no progress for {idle:?}"));
        self.stat(Stat::Counter(names::FAILED_DOWNLOAD, 1));
        self.progressed(now);
        self.start_heads(now);
    }

    /// Takes what a previous run staged: hashes and blocks above the head
    /// are kept (not downloaded again), within the byte budget.
    pub(super) fn restore(&mut self, r: Restored) {
        let head = self.head();
        let mut hashed_to = head;
        for (n, h) in r.hashes {
            if n != hashed_to + 1 {
                break;
            }
            self.ensure_slots(n);
            if let Some(s) = self.slot_mut(n) {
                s.hash = Some(h);
            }
            hashed_to = n;
        }
        let mut bodies_to = head;
        for b in r.blocks {
            let n = b.number();
            let fits = self.held + b.mem_bytes() <= self.settings.max_staged_bytes;
            let matches = n == bodies_to + 1 && self.slot(n).and_then(|s| s.hash) == Some(b.hash);
            if !fits || !matches {
                break;
            }
            self.held += b.mem_bytes();
            self.note_block_size(b.len());
            if let Some(s) = self.slot_mut(n) {
                s.body = Some(Box::new(b));
            }
            bodies_to = n;
        }
        self.hash_next = hashed_to + 1;
        self.body_next = bodies_to + 1;
        self.hashed_to = hashed_to;
        self.bodies_to = bodies_to;
        self.status.restored_hashes = hashed_to - head;
        self.status.restored_blocks = bodies_to - head;
        if hashed_to > head {
            tracing::info!(
                hashes = hashed_to - head,
                blocks = bodies_to - head,
                "resuming at the checkpointed stages: staged hashes and blocks kept"
            );
        }
    }

    /// Queues a metric for the driver.
    pub(super) fn stat(&mut self, s: Stat) {
        self.actions.push_back(Action::Stat(s));
    }
}
