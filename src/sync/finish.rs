//! Finish: clear the staging data of the cycle, update status and metrics.

use super::context::SyncContext;
use super::error::StageError;

/// Ends a cycle.
pub fn run(ctx: &mut SyncContext) -> Result<(), StageError> {
    ctx.staging
        .clear()
        .map_err(|e| StageError::Local(e.into()))?;
    ctx.prov.clear();
    let head = ctx.backend.head()?.number;
    super::turbo::prune(ctx, head);
    let mut s = ctx.status.write();
    s.head = head;
    s.cycles += 1;
    Ok(())
}
