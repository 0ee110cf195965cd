//! BlockBodies: the cycle's blocks by hash, `Concurrency`
//! batches in flight through the request manager, out of order into
//! staging. Every block must hash to the hash asked for and match its tx
//! root: otherwise its sender is provably lying (critical). Absent blocks
//! and short answers are soft: the rest is asked again.

use super::context::SyncContext;
use super::error::StageError;
use crate::chain::verify::verify_body;
use crate::chain::BlockWithSig;
use crate::metrics::names;
use crate::request::Priority;
use crate::stream::RemovalReason;
use crate::wire::{Request, Response};

/// Downloads the blocks of `from..=to` not staged yet.
pub fn run(ctx: &mut SyncContext, from: u64, to: u64) -> Result<(), StageError> {
    let spec = ctx.backend.chain_spec().clone();
    super::turbo::collect(ctx);
    let mut missing: Vec<(u64, [u8; 32])> = Vec::new();
    for n in from..=to {
        if ctx
            .staging
            .block(n)
            .map_err(|e| StageError::Local(e.into()))?
            .is_none()
        {
            let h = ctx
                .staging
                .hash(n)
                .map_err(|e| StageError::Local(e.into()))?
                .ok_or(StageError::Stalled(std::time::Duration::ZERO))?;
            // Turbo brought it already, and it is the block the hash names?
            if let Some((b, stream)) = super::turbo::take(ctx, n) {
                if b.block.hash() == h && verify_body(&spec, &b.block).is_ok() {
                    ctx.staging
                        .put_block(&b)
                        .map_err(|e| StageError::Local(e.into()))?;
                    ctx.body_source.insert(n, stream);
                    ctx.status.write().prefetched_used += 1;
                    continue;
                }
            }
            missing.push((n, h));
        }
    }
    let mut absent_rounds = 0u32;
    while !missing.is_empty() {
        ctx.check()?;
        let batches: Vec<Vec<(u64, [u8; 32])>> = missing
            .chunks(ctx.settings.body_batch)
            .map(<[_]>::to_vec)
            .collect();
        // `Concurrency` batches in flight at once.
        let wave = ctx.settings.concurrency.max(1);
        let mut still = Vec::new();
        let mut got_any = false;
        for group in batches.chunks(wave) {
            let reqs = group
                .iter()
                .map(|b| {
                    (
                        Request::GetBlocksByHashes(b.iter().map(|(_, h)| *h).collect()),
                        ctx.opts(Priority::Low, vec![]),
                    )
                })
                .collect();
            for (batch, a) in group.iter().zip(ctx.request_all(reqs)) {
                let Ok((resp, stream)) = a else {
                    metrics::counter!(names::FAILED_DOWNLOAD).increment(1);
                    still.extend_from_slice(batch);
                    continue;
                };
                let Response::Blocks(items) = resp else {
                    if !matches!(resp, Response::Error { .. }) {
                        ctx.blame(
                            stream,
                            RemovalReason::InvalidResponse,
                            "GetBlocksByHashes answered with another type",
                        );
                    }
                    still.extend_from_slice(batch);
                    continue;
                };
                let mut bad = false;
                for (i, (n, want)) in batch.iter().enumerate() {
                    let Some(Some(bytes)) = items.get(i) else {
                        // Absent, or cut short by the soft limit: ask again.
                        still.push((*n, *want));
                        continue;
                    };
                    if bad {
                        still.push((*n, *want));
                        continue;
                    }
                    let block = match BlockWithSig::from_bytes(bytes) {
                        Ok(b) => b,
                        Err(e) => {
                            ctx.blame(
                                stream,
                                RemovalReason::CriticalError,
                                &format!("undecodable block: {e}"),
                            );
                            bad = true;
                            still.push((*n, *want));
                            continue;
                        }
                    };
                    let hash = block.block.hash();
                    let check = if hash != *want || block.block.number() != *n {
                        Err("block does not hash to the hash asked for".to_string())
                    } else {
                        verify_body(&spec, &block.block)
                            .map(|_| ())
                            .map_err(|e| e.to_string())
                    };
                    if let Err(why) = check {
                        ctx.blame(stream, RemovalReason::CriticalError, &why);
                        ctx.status.write().invalid_blocks += 1;
                        bad = true;
                        still.push((*n, *want));
                        continue;
                    }
                    ctx.staging
                        .put_block(&block)
                        .map_err(|e| StageError::Local(e.into()))?;
                    ctx.body_source.insert(*n, stream);
                    got_any = true;
                }
            }
        }
        if got_any {
            ctx.progressed();
            absent_rounds = 0;
        } else {
            absent_rounds += 1;
            if absent_rounds >= 5 {
                // Nobody has these hashes: they are likely not canonical.
                // The stage's revert drops staging, so the next cycle
                // fetches them again.
                return Err(StageError::Stalled(ctx.last_progress.elapsed()));
            }
        }
        missing = still;
    }
    Ok(())
}
