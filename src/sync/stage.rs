//! The `Stage` trait and the pipeline's stage list, in order.

use super::context::SyncContext;
use super::error::StageError;
use super::stage_id::StageId;
use super::{block_bodies, block_hashes, finish, heads, short_range, states, sync_epoch};

/// The range a cycle works on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cycle {
    /// First block of the cycle (head + 1).
    pub from: u64,
    /// Last block of the cycle (≤ target, capped by `MaxBlocksPerSyncCycle`).
    pub to: u64,
    /// The sync target from Heads.
    pub target: u64,
}

/// What a stage tells the pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecOutput {
    /// Run the next stage.
    Continue,
    /// Nothing to sync: end the cycle here.
    Synced,
    /// The stage did the cycle's work (ShortRange): go to Finish.
    SkipToFinish,
}

/// One stage of the pipeline. Stages persist their own progress (in the
/// same transaction as the data it covers, where they write data).
pub trait Stage: Send {
    /// Which stage this is.
    fn id(&self) -> StageId;
    /// Runs the stage on `cycle`.
    fn execute(
        &mut self,
        ctx: &mut SyncContext,
        cycle: &mut Cycle,
    ) -> Result<ExecOutput, StageError>;
    /// Undoes the stage's unfinished work after a bad block at `from`
    /// (default: drop everything staged, which the next cycle re-fetches).
    fn revert(&mut self, ctx: &mut SyncContext, from: u64) -> Result<(), StageError> {
        let _ = from;
        super::turbo::clear(ctx);
        ctx.staging
            .clear()
            .map_err(|e| StageError::Local(e.into()))?;
        ctx.prov.clear();
        Ok(())
    }
}

struct Heads;
struct SyncEpoch;
struct ShortRange;
struct BlockHashes;
struct BlockBodies;
struct States;
struct Finish;

impl Stage for Heads {
    fn id(&self) -> StageId {
        StageId::Heads
    }
    fn execute(
        &mut self,
        ctx: &mut SyncContext,
        cycle: &mut Cycle,
    ) -> Result<ExecOutput, StageError> {
        let head = ctx.backend.head()?.number;
        let target = heads::run(ctx)?;
        ctx.status.write().synced = target <= head;
        if target <= head {
            return Ok(ExecOutput::Synced);
        }
        *cycle = Cycle {
            from: head + 1,
            to: ctx.settings.cycle_end(head, target),
            target,
        };
        Ok(ExecOutput::Continue)
    }
}

impl Stage for SyncEpoch {
    fn id(&self) -> StageId {
        StageId::SyncEpoch
    }
    fn execute(
        &mut self,
        ctx: &mut SyncContext,
        cycle: &mut Cycle,
    ) -> Result<ExecOutput, StageError> {
        sync_epoch::run(ctx, cycle.to)?;
        Ok(ExecOutput::Continue)
    }
}

impl Stage for ShortRange {
    fn id(&self) -> StageId {
        StageId::ShortRange
    }
    fn execute(
        &mut self,
        ctx: &mut SyncContext,
        cycle: &mut Cycle,
    ) -> Result<ExecOutput, StageError> {
        if cycle.target + 1 - cycle.from > ctx.settings.short_range_threshold {
            return Ok(ExecOutput::Continue);
        }
        short_range::run(ctx, cycle.target)?;
        Ok(ExecOutput::SkipToFinish)
    }
}

impl Stage for BlockHashes {
    fn id(&self) -> StageId {
        StageId::BlockHashes
    }
    fn execute(
        &mut self,
        ctx: &mut SyncContext,
        cycle: &mut Cycle,
    ) -> Result<ExecOutput, StageError> {
        // Bounded to what some stream can serve (a height claim nobody can
        // serve does not hold the cycle).
        cycle.to = block_hashes::run(ctx, cycle.from, cycle.to)?;
        if cycle.to < cycle.from {
            return Ok(ExecOutput::SkipToFinish);
        }
        Ok(ExecOutput::Continue)
    }
}

impl Stage for BlockBodies {
    fn id(&self) -> StageId {
        StageId::BlockBodies
    }
    fn execute(
        &mut self,
        ctx: &mut SyncContext,
        cycle: &mut Cycle,
    ) -> Result<ExecOutput, StageError> {
        block_bodies::run(ctx, cycle.from, cycle.to)?;
        Ok(ExecOutput::Continue)
    }
}

impl Stage for States {
    fn id(&self) -> StageId {
        StageId::States
    }
    fn execute(
        &mut self,
        ctx: &mut SyncContext,
        cycle: &mut Cycle,
    ) -> Result<ExecOutput, StageError> {
        // Turbo: the next cycle's blocks download while this one executes.
        let ahead = ctx.settings.staged.max_background_blocks;
        if ahead > 0 && cycle.to < cycle.target {
            let end = cycle.target.min(cycle.to + ahead);
            super::turbo::start(ctx, cycle.to + 1, end);
        }
        states::run(ctx, cycle.from, cycle.to)?;
        Ok(ExecOutput::Continue)
    }
}

impl Stage for Finish {
    fn id(&self) -> StageId {
        StageId::Finish
    }
    fn execute(
        &mut self,
        ctx: &mut SyncContext,
        _cycle: &mut Cycle,
    ) -> Result<ExecOutput, StageError> {
        finish::run(ctx)?;
        Ok(ExecOutput::Continue)
    }
}

/// The full-sync stages, in the order the pipeline runs them.
pub fn full_sync_stages() -> Vec<Box<dyn Stage>> {
    vec![
        Box::new(Heads),
        Box::new(SyncEpoch),
        Box::new(ShortRange),
        Box::new(BlockHashes),
        Box::new(BlockBodies),
        Box::new(States),
        Box::new(Finish),
    ]
}
