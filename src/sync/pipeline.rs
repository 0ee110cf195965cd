//! The pipeline: runs the stages in order, cycle after cycle, on the `sync`
//! thread. Errors classify themselves: timeouts and missing peers retry,
//! invalid blocks (senders already blamed) and hashes nobody can serve
//! re-download, local faults back off, and the watchdog restarts a cycle
//! that made no progress, saying why. Cycles that make no progress back off
//! (0.5 s doubling to 8 s) instead of spinning.
//!
//! Before the first cycle the node audits its own chain's root of trust
//! (`chain::audit`); a chain on an invalid branch is unwound to its last
//! verified block, and the node says so.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam::channel::Receiver;
use serde::Serialize;

use super::context::SyncContext;
use super::error::StageError;
use super::stage::{full_sync_stages, Cycle, ExecOutput, Stage};
use super::stage_id::StageId;
use crate::chain::audit::audit_chain;
use crate::metrics::names;

/// How a cycle ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CycleOutcome {
    /// Blocks were inserted.
    Progress,
    /// Already at the target, as the Heads quorum decided.
    Synced,
}

/// How [`Pipeline::run`] ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum SyncOutcome {
    /// It reached the target the Heads quorum decided (only with
    /// `exit_when_synced`).
    Synced {
        /// The head reached.
        head: u64,
        /// The quorum's target.
        target: u64,
    },
    /// It was asked to stop first.
    Stopped {
        /// The head at the stop.
        head: u64,
        /// The last target Heads decided (0 if none yet).
        target: u64,
    },
    /// It cannot go on (e.g. its chain is on an invalid branch it cannot
    /// unwind).
    Failed(String),
}

/// First pause after a cycle that made no progress.
const IDLE_BACKOFF_START: Duration = Duration::from_millis(500);
/// Longest pause after cycles that made no progress.
const IDLE_BACKOFF_MAX: Duration = Duration::from_secs(8);

/// The staged-sync pipeline.
pub struct Pipeline {
    ctx: SyncContext,
    stages: Vec<Box<dyn Stage>>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline").field("ctx", &self.ctx).finish()
    }
}

impl Pipeline {
    /// A full-sync pipeline over `ctx`.
    pub fn new(ctx: SyncContext) -> Self {
        Pipeline {
            ctx,
            stages: full_sync_stages(),
        }
    }

    /// Audits the node's own chain and unwinds it to its last verified
    /// block if it is on an invalid branch.
    pub fn check_own_chain(&mut self) -> Result<(), StageError> {
        let audit = audit_chain(&*self.ctx.backend)?;
        self.ctx.status.write().sigs_verified += audit.sigs_checked as u64;
        let Some(error) = audit.error else {
            return Ok(());
        };
        tracing::warn!(
            head = audit.head,
            last_verified = audit.verified_to,
            %error,
            "the chain is on an invalid branch: unwinding to its last verified block"
        );
        let head = self
            .ctx
            .backend
            .unwind_to(audit.verified_to)
            .map_err(|e| StageError::CannotUnwind(e.to_string()))?;
        self.ctx.committees.clear();
        let _ = self.ctx.staging.clear();
        self.ctx.prov.clear();
        let mut s = self.ctx.status.write();
        s.unwinds += 1;
        s.head = head.number;
        tracing::warn!(
            from = audit.head,
            to = head.number,
            "unwound: the blocks above were not covered by verified signatures"
        );
        Ok(())
    }

    /// Runs one cycle through every stage.
    pub fn run_cycle(&mut self) -> Result<CycleOutcome, StageError> {
        self.ctx.progressed();
        let started = Instant::now();
        let before = self.ctx.backend.head()?.number;
        let mut cycle = Cycle::default();
        let mut skip_to_finish = false;
        for stage in &mut self.stages {
            if skip_to_finish && stage.id() != StageId::Finish {
                continue;
            }
            self.ctx.set_stage(Some(stage.id()));
            if self.ctx.settings.staged.debug_mode {
                tracing::info!(stage = %stage.id(), ?cycle, "stage start");
            }
            match stage.execute(&mut self.ctx, &mut cycle) {
                Ok(ExecOutput::Continue) => {}
                Ok(ExecOutput::SkipToFinish) => skip_to_finish = true,
                Ok(ExecOutput::Synced) => {
                    self.ctx.set_stage(None);
                    return Ok(CycleOutcome::Synced);
                }
                Err(e) => {
                    if matches!(
                        e,
                        StageError::Invalid { .. }
                            | StageError::Stalled(_)
                            | StageError::Unservable { .. }
                    ) {
                        let from = cycle.from;
                        stage.revert(&mut self.ctx, from)?;
                    }
                    self.ctx.set_stage(None);
                    return Err(e);
                }
            }
        }
        self.ctx.set_stage(None);
        let after = self.ctx.backend.head()?.number;
        let secs = started.elapsed().as_secs_f64().max(1e-9);
        self.ctx.status.write().blocks_per_sec = (after - before) as f64 / secs;
        Ok(CycleOutcome::Progress)
    }

    /// Runs cycles until stopped (or synced, with `exit_when_synced`).
    /// Between cycles once synced it waits `idle_interval` or a trigger.
    pub fn run(&mut self, triggers: &Receiver<()>, exit_when_synced: bool) -> SyncOutcome {
        if let Err(e) = self.check_own_chain() {
            tracing::error!(error = %e, "cannot sync");
            self.ctx.status.write().last_error = Some(e.to_string());
            return SyncOutcome::Failed(e.to_string());
        }
        let init = self.ctx.settings.init_streams;
        let wait = self.ctx.settings.init_wait;
        let have = self.ctx.wait_for_streams(init, wait);
        tracing::info!(streams = have, wanted = init, "sync starting");
        let mut idle_backoff = IDLE_BACKOFF_START;
        loop {
            if self.ctx.stop.load(Ordering::Relaxed) {
                return self.stopped();
            }
            let before = self.ctx.backend.head().map(|h| h.number).ok();
            let pause = match self.run_cycle() {
                Ok(CycleOutcome::Progress) => {
                    self.ctx.status.write().last_error = None;
                    if self.ctx.backend.head().map(|h| h.number).ok() == before {
                        // Nothing servable: do not spin.
                        let p = idle_backoff;
                        idle_backoff = (idle_backoff * 2).min(IDLE_BACKOFF_MAX);
                        Some(p)
                    } else {
                        idle_backoff = IDLE_BACKOFF_START;
                        None
                    }
                }
                Ok(CycleOutcome::Synced) => {
                    idle_backoff = IDLE_BACKOFF_START;
                    if exit_when_synced {
                        let s = self.ctx.status.read();
                        return SyncOutcome::Synced {
                            head: self.ctx.backend.head().map_or(s.head, |h| h.number),
                            target: s.target,
                        };
                    }
                    Some(self.ctx.settings.idle_interval)
                }
                Err(StageError::Shutdown) => return self.stopped(),
                Err(e) => {
                    match &e {
                        StageError::Stalled(d) => {
                            tracing::warn!(
                                idle_s = d.as_secs(),
                                "watchdog: no progress, restarting the cycle with fresh streams"
                            )
                        }
                        StageError::Invalid { .. } => {
                            tracing::warn!(error = %e, "invalid block: re-downloading")
                        }
                        StageError::Unservable { .. } => {
                            tracing::warn!(error = %e, "re-fetching hashes")
                        }
                        other => {
                            let again =
                                self.ctx.status.read().last_error == Some(other.to_string());
                            if again {
                                tracing::debug!(error = %other, "cycle ended early");
                            } else {
                                tracing::info!(error = %other, "cycle ended early");
                            }
                        }
                    }
                    metrics::counter!(names::FAILED_DOWNLOAD).increment(1);
                    self.ctx.status.write().last_error = Some(e.to_string());
                    Some(match e {
                        StageError::Invalid { .. } | StageError::Unservable { .. } => {
                            Duration::ZERO
                        }
                        _ => Duration::from_millis(500),
                    })
                }
            };
            if let Some(p) = pause.filter(|p| !p.is_zero()) {
                if triggers.recv_timeout(p).is_ok() {
                    metrics::counter!(names::CONSENSUS_TRIGGER).increment(1);
                }
            }
        }
    }

    fn stopped(&self) -> SyncOutcome {
        let head = self.ctx.backend.head().map_or(0, |h| h.number);
        SyncOutcome::Stopped {
            head,
            target: self.ctx.status.read().target,
        }
    }
}
