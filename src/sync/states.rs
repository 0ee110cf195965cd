//! States: staged blocks in order, in batches of `InsertChainBatchSize` (one
//! batch for cycles up to `MaxMemSyncCycleSize`): parent links and commit
//! signatures verified in parallel on rayon (every block with
//! `VerifyAllSig`, else the sample `chain::verify::sampled` chooses, which
//! always covers every block of the batch through the hash chain), then
//! executed and committed atomically with the stage progress. Nothing of a
//! batch is committed unless all of it is covered by a verified signature.
//!
//! A failure is judged in one place (`blame`): the streams proven to have
//! sent invalid data are removed, staging is dropped and the cycle
//! re-downloads from the head. A commit settles the pending hash claims
//! (`claims`): peers whose claims the committed blocks contradict are
//! proven liars.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use super::blame::{judge, resolve_break, Fault, Verdict};
use super::context::SyncContext;
use super::error::StageError;
use super::stage_id::StageId;
use crate::chain::backend::InsertBatch;
use crate::chain::verify::{verify_segment, CommitteeKeys, SigPolicy};
use crate::chain::{BackendError, BlockWithSig, ChainSpec, VerifyError};
use crate::metrics::names;

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
        let started = Instant::now();
        let count = blocks.len() as u64;
        let bytes: u64 = blocks.iter().map(|b| b.to_bytes().len() as u64).sum();
        let committed = verify_and_insert(
            ctx,
            &spec,
            blocks,
            policy,
            vec![
                (StageId::BlockHashes, end),
                (StageId::BlockBodies, end),
                (StageId::States, end),
            ],
        )?;
        metrics::counter!(names::NUM_BLOCKS_SYNCED_LONG_RANGE).increment(count);
        {
            ctx.note_commit(count);
            let mut s = ctx.status.write();
            s.head = committed;
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

/// Verifies `blocks` (extending the head) with `policy` and, if valid,
/// executes and commits them with `progress` in one transaction, then
/// settles the hash claims they prove. Returns the new head number. On a
/// failure, blames who is proven at fault (see `reject`). Shared by
/// States and ShortRange.
pub fn verify_and_insert(
    ctx: &mut SyncContext,
    spec: &ChainSpec,
    blocks: Vec<BlockWithSig>,
    policy: SigPolicy,
    progress: Vec<(StageId, u64)>,
) -> Result<u64, StageError> {
    let head = ctx.backend.head()?;
    let parent = ctx
        .backend
        .header_by_number(head.number)?
        .ok_or_else(|| StageError::Local(BackendError::Storage("head header missing".into())))?;
    let (Some(first), Some(last)) = (
        blocks.first().map(|b| b.block.number()),
        blocks.last().map(|b| b.block.number()),
    ) else {
        return Ok(head.number);
    };
    // Committees of every epoch the batch spans (cache, chain, SyncEpoch).
    let mut committees: HashMap<u64, Arc<CommitteeKeys>> = HashMap::new();
    for e in spec.epoch_of(first)..=spec.epoch_of(last) {
        if let Some(k) = ctx.committee(e) {
            committees.insert(e, k);
        }
    }
    let known = |e: u64| committees.get(&e).cloned();
    let check = verify_segment(spec, Some((&parent, &head.hash)), &blocks, policy, known);
    ctx.status.write().sigs_verified += check.sigs_checked.len() as u64;
    if let Some(err) = check.errors.into_iter().next() {
        return Err(reject(ctx, spec, &blocks, err, policy, &committees));
    }
    let hashes: Vec<(u64, crate::crypto::B256)> = blocks
        .iter()
        .map(|b| (b.block.number(), b.block.hash()))
        .collect();
    let count = blocks.len() as u64;
    match ctx
        .backend
        .insert_verified_batch(&InsertBatch { blocks, progress })
    {
        Ok(_) => {}
        Err(BackendError::Invalid(err)) => {
            metrics::counter!(names::NUM_BLOCKS_FAILED_LONG_RANGE).increment(count);
            // Covered by verified signatures, so canonical: if it does not
            // execute here, the node's own state is what is wrong.
            tracing::error!(error = %err, "a verified block does not execute on the local state");
            return Err(StageError::Local(BackendError::Invalid(err)));
        }
        Err(e) => {
            metrics::counter!(names::NUM_BLOCKS_FAILED_LONG_RANGE).increment(count);
            return Err(StageError::Local(e));
        }
    }
    ctx.prov.prune_to(last);
    for peer in ctx.claims.settle(&hashes) {
        ctx.status.write().liars_proven += 1;
        ctx.blame_peer(
            peer,
            Fault::ProvenInvalid,
            "its block hashes contradict the verified chain",
        );
    }
    Ok(last)
}

/// Blames whoever is proven to have sent invalid data for `err` (found in
/// `blocks`), drops staging, and returns the stage error.
fn reject(
    ctx: &mut SyncContext,
    spec: &ChainSpec,
    blocks: &[BlockWithSig],
    err: VerifyError,
    policy: SigPolicy,
    committees: &HashMap<u64, Arc<CommitteeKeys>>,
) -> StageError {
    let first = blocks.first().map_or(0, |b| b.block.number());
    let last = blocks.last().map_or(0, |b| b.block.number());
    metrics::counter!(names::NUM_BLOCKS_FAILED_LONG_RANGE).increment(1);
    let mut verdict = judge(&err, last, &ctx.prov);
    let mut why = err.to_string();
    // A broken link between two sources: the blocks after it decide, each
    // break further along at most once.
    while let Verdict::LinkBreak(n) = verdict {
        let from = (n.saturating_sub(first)) as usize;
        let suffix = verify_segment(spec, None, &blocks[from..], policy, |e| {
            committees.get(&e).cloned()
        });
        ctx.status.write().sigs_verified += suffix.sigs_checked.len() as u64;
        let decided = suffix.errors.first();
        verdict = resolve_break(n, first, last, decided.map_or(Ok(()), Err), &ctx.prov);
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
    let mut blamed = 0;
    match verdict {
        Verdict::Proven(streams) => {
            ctx.status.write().invalid_blocks += 1;
            for s in &streams {
                ctx.blame(*s, Fault::ProvenInvalid, &why);
            }
            blamed = streams.first().copied().unwrap_or(0);
        }
        Verdict::Local => {
            tracing::warn!(error = %why, "invalid batch that no peer is proven to have caused");
        }
        Verdict::LinkBreak(_) => {}
    }
    // Everything staged may descend from the bad block: start over.
    let _ = ctx.staging.clear();
    ctx.prov.clear();
    StageError::Invalid {
        stream: blamed,
        error: err,
    }
}
