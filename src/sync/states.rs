//! States: staged blocks in order, in batches of `InsertChainBatchSize` (one
//! batch for cycles up to `MaxMemSyncCycleSize`): parent links and commit
//! signatures verified in parallel on rayon (every block with
//! `VerifyAllSig`, else the last of every `VerifyHeaderBatchSize` and the
//! batch's last), then executed and committed atomically with the stage
//! progress. A provably invalid block gets its senders removed and the cycle
//! re-downloads from it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use super::context::SyncContext;
use super::error::StageError;
use super::stage_id::StageId;
use crate::chain::backend::InsertBatch;
use crate::chain::verify::{verify_segment, CommitteeKeys, SigPolicy};
use crate::chain::{BackendError, BlockWithSig, VerifyError};
use crate::metrics::names;
use crate::stream::RemovalReason;

/// How many blocks of a segment of `len` a policy verifies.
pub fn selected(policy: SigPolicy, len: usize) -> usize {
    match policy {
        SigPolicy::All => len,
        SigPolicy::EveryNth(n) => (0..len)
            .filter(|i| i + 1 == len || (i + 1) % n.max(1) == 0)
            .count(),
    }
}

/// Verifies and inserts the staged blocks `from..=to`.
pub fn run(ctx: &mut SyncContext, from: u64, to: u64) -> Result<(), StageError> {
    let spec = ctx.backend.chain_spec().clone();
    let cycle_len = (to + 1).saturating_sub(from);
    let batch = if cycle_len <= ctx.settings.staged.max_mem_sync_cycle_size {
        cycle_len.max(1)
    } else {
        ctx.settings.staged.insert_chain_batch_size as u64
    };
    let policy = ctx.settings.sig_policy();
    let mut n = from;
    while n <= to {
        ctx.check()?;
        let end = (n + batch - 1).min(to);
        let mut blocks: Vec<BlockWithSig> = Vec::with_capacity((end + 1 - n) as usize);
        for k in n..=end {
            match ctx
                .staging
                .block(k)
                .map_err(|e| StageError::Local(e.into()))?
            {
                Some(b) => blocks.push(b),
                None => return Err(StageError::Stalled(ctx.last_progress.elapsed())),
            }
        }
        let head = ctx.backend.head()?;
        let parent = ctx.backend.header_by_number(head.number)?.ok_or_else(|| {
            StageError::Local(BackendError::Storage("head header missing".into()))
        })?;
        // Committees of every epoch the batch spans (cache, chain, SyncEpoch).
        let mut committees: HashMap<u64, Arc<CommitteeKeys>> = HashMap::new();
        for e in spec.epoch_of(n)..=spec.epoch_of(end) {
            if let Some(k) = ctx.committee(e) {
                committees.insert(e, k);
            }
        }
        let started = Instant::now();
        let check = verify_segment(&spec, Some((&parent, &head.hash)), &blocks, policy, |e| {
            committees.get(&e).cloned()
        });
        ctx.status.write().sigs_verified += check.sigs_checked.len() as u64;
        if let Some(err) = check.errors.into_iter().next() {
            return Err(reject(ctx, err));
        }
        let bytes: u64 = blocks.iter().map(|b| b.to_bytes().len() as u64).sum();
        let count = blocks.len() as u64;
        let batch_insert = InsertBatch {
            blocks,
            progress: vec![
                (StageId::BlockHashes, end),
                (StageId::BlockBodies, end),
                (StageId::States, end),
            ],
        };
        match ctx.backend.insert_verified_batch(&batch_insert) {
            Ok(_) => {}
            Err(BackendError::Invalid(err)) => return Err(reject(ctx, err)),
            Err(e) => {
                metrics::counter!(names::NUM_BLOCKS_FAILED_LONG_RANGE).increment(count);
                return Err(StageError::Local(e));
            }
        }
        metrics::counter!(names::NUM_BLOCKS_SYNCED_LONG_RANGE).increment(count);
        {
            let mut s = ctx.status.write();
            s.head = end;
            s.blocks_synced += count;
            s.bytes_synced += bytes;
            s.insert_batches += 1;
        }
        if ctx.settings.staged.log_progress {
            tracing::info!(
                head = end,
                target = ctx.status.read().target,
                blocks = count,
                ms = started.elapsed().as_millis() as u64,
                "States: batch inserted"
            );
        }
        ctx.progressed();
        n = end + 1;
    }
    Ok(())
}

/// Blames whoever sent the invalid block and returns the stage error.
fn reject(ctx: &mut SyncContext, err: VerifyError) -> StageError {
    let n = err.block_number();
    metrics::counter!(names::NUM_BLOCKS_FAILED_LONG_RANGE).increment(1);
    ctx.status.write().invalid_blocks += 1;
    if err.is_proof_of_invalid_data() {
        let reason = match err {
            // Which side of a broken link lies is not proven.
            VerifyError::BadLink { .. } => RemovalReason::InvalidResponse,
            _ => RemovalReason::CriticalError,
        };
        // Only the stream that sent the failing block (and its carried
        // commit signature) is proven wrong; the hash it matched may well be
        // the honest one.
        let mut blamed = Vec::new();
        if let Some(s) = ctx.body_source.get(&n).copied() {
            ctx.blame(s, reason, &err.to_string());
            blamed.push(s);
        }
        let stream = blamed.first().copied().unwrap_or(0);
        // Everything staged may descend from the bad block: start over.
        let _ = ctx.staging.clear();
        ctx.body_source.clear();
        StageError::Invalid { stream, error: err }
    } else {
        StageError::Invalid {
            stream: 0,
            error: err,
        }
    }
}
