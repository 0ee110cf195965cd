//! BlockHashes: the cycle's canonical hashes, in parallel batches over
//! different streams. With `DoubleCheckBlockHashes` every batch is confirmed
//! by a second stream and a disagreement settled by a third (the outvoted
//! stream is removed as an invalid responder). The hash chain is checked
//! against parent links when the bodies arrive (States).

use super::context::SyncContext;
use super::error::StageError;
use crate::crypto::B256;
use crate::net::StreamId;
use crate::request::Priority;
use crate::stream::RemovalReason;
use crate::wire::{Request, Response};

/// Stages the hashes of `from..=to` that are not staged yet.
pub fn run(ctx: &mut SyncContext, from: u64, to: u64) -> Result<(), StageError> {
    let mut missing: Vec<u64> = Vec::new();
    for n in from..=to {
        if ctx
            .staging
            .hash(n)
            .map_err(|e| StageError::Local(e.into()))?
            .is_none()
        {
            missing.push(n);
        }
    }
    let double = ctx.settings.staged.double_check_block_hashes;
    while !missing.is_empty() {
        ctx.check()?;
        let batches: Vec<Vec<u64>> = missing
            .chunks(ctx.settings.hash_batch)
            .map(<[u64]>::to_vec)
            .collect();
        let wave = ctx.settings.concurrency.max(1) * 4;
        let mut still = Vec::new();
        for group in batches.chunks(wave) {
            let reqs = group
                .iter()
                .map(|b| {
                    (
                        Request::GetBlockHashes(b.clone()),
                        ctx.opts(Priority::Low, vec![]),
                    )
                })
                .collect();
            let answers = ctx.request_all(reqs);
            for (batch, a) in group.iter().zip(answers) {
                match complete(ctx, batch, a) {
                    Some((hashes, stream)) => {
                        let confirmed = if double {
                            ctx.status.write().hash_batches_double_checked += 1;
                            confirm(ctx, batch, &hashes, stream)?
                        } else {
                            Some((hashes, stream))
                        };
                        match confirmed {
                            Some((hashes, _)) => {
                                for (n, h) in batch.iter().zip(hashes) {
                                    ctx.staging
                                        .put_hash(*n, h)
                                        .map_err(|e| StageError::Local(e.into()))?;
                                }
                                ctx.progressed();
                            }
                            None => still.extend_from_slice(batch),
                        }
                    }
                    None => still.extend_from_slice(batch),
                }
            }
        }
        missing = still;
    }
    Ok(())
}

/// The hashes of a full answer; `None` (soft: retry) for errors, other
/// message types or absent entries (the peer is behind).
fn complete(
    ctx: &SyncContext,
    batch: &[u64],
    a: Result<(Response, StreamId), StageError>,
) -> Option<(Vec<B256>, StreamId)> {
    let (resp, stream) = a.ok()?;
    match resp {
        Response::BlockHashes(hs) if hs.len() == batch.len() => {
            let all: Option<Vec<B256>> = hs.into_iter().collect();
            all.map(|h| (h, stream))
        }
        Response::BlockHashes(_) => {
            ctx.blame(
                stream,
                RemovalReason::InvalidResponse,
                "hash answer of the wrong length",
            );
            None
        }
        Response::Error { .. } => None,
        _ => {
            ctx.blame(
                stream,
                RemovalReason::InvalidResponse,
                "GetBlockHashes answered with another type",
            );
            None
        }
    }
}

/// Confirms `hashes` (from `first`) with a second stream, a third on
/// disagreement. Returns the majority's hashes, or `None` to retry.
fn confirm(
    ctx: &SyncContext,
    batch: &[u64],
    hashes: &[B256],
    first: StreamId,
) -> Result<Option<(Vec<B256>, StreamId)>, StageError> {
    let ask = |blacklist: Vec<StreamId>| {
        let a = ctx
            .request_all(vec![(
                Request::GetBlockHashes(batch.to_vec()),
                ctx.opts(Priority::Low, blacklist),
            )])
            .pop()
            .unwrap_or(Err(StageError::Shutdown));
        complete(ctx, batch, a)
    };
    let Some((second, s2)) = ask(vec![first]) else {
        return Ok(None);
    };
    if second == hashes {
        return Ok(Some((second, first)));
    }
    let Some((third, s3)) = ask(vec![first, s2]) else {
        return Ok(None);
    };
    if third == hashes {
        ctx.blame(
            s2,
            RemovalReason::InvalidResponse,
            "outvoted on block hashes",
        );
        Ok(Some((third, first)))
    } else if third == second {
        ctx.blame(
            first,
            RemovalReason::InvalidResponse,
            "outvoted on block hashes",
        );
        Ok(Some((third, s2)))
    } else {
        let _ = s3;
        Ok(None)
    }
}
