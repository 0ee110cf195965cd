//! The pipeline: runs the stages in order, cycle after cycle, on the `sync`
//! thread. Errors classify themselves: timeouts and missing peers retry,
//! invalid blocks (senders already removed) re-download, local faults back
//! off, and the watchdog restarts a cycle that made no progress, saying why.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam::channel::Receiver;

use super::context::SyncContext;
use super::error::StageError;
use super::stage::{full_sync_stages, Cycle, ExecOutput, Stage};
use super::stage_id::StageId;
use crate::metrics::names;

/// How a cycle ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CycleOutcome {
    /// Blocks were inserted.
    Progress,
    /// Already at the target.
    Synced,
}

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
                    if matches!(e, StageError::Invalid { .. } | StageError::Stalled(_)) {
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
    pub fn run(&mut self, triggers: &Receiver<()>, exit_when_synced: bool) {
        let init = self.ctx.settings.init_streams;
        let wait = self.ctx.settings.init_wait;
        let have = self.ctx.wait_for_streams(init, wait);
        tracing::info!(streams = have, wanted = init, "sync starting");
        loop {
            if self.ctx.stop.load(Ordering::Relaxed) {
                return;
            }
            let pause = match self.run_cycle() {
                Ok(CycleOutcome::Progress) => {
                    self.ctx.status.write().last_error = None;
                    None
                }
                Ok(CycleOutcome::Synced) => {
                    if exit_when_synced {
                        return;
                    }
                    Some(self.ctx.settings.idle_interval)
                }
                Err(StageError::Shutdown) => return,
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
                        other => tracing::info!(error = %other, "cycle ended early"),
                    }
                    metrics::counter!(names::FAILED_DOWNLOAD).increment(1);
                    self.ctx.status.write().last_error = Some(e.to_string());
                    Some(match e {
                        StageError::Invalid { .. } => Duration::ZERO,
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
}
