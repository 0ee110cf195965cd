//! BlockBodies: the cycle's blocks by hash, `Concurrency` batches in flight
//! through the request manager, out of order into staging. Every block must
//! hash to the hash asked for and match its tx root, or its sender is
//! provably lying (critical). Absent blocks and short answers are soft: the
//! rest is asked again, of streams that did not already say they lack it.
//!
//! Hashes are confirmed by the bodies' own hashes. A hash for which no body
//! can be found (its own source and another stream said they lack it, or
//! two other streams did and its source, asked directly, cannot serve it
//! either) is a claim nobody can match. Its source pays softly at once
//! (useless if it said it lacks it, unresponsive if it did not answer,
//! nothing yet if it is gone); its claims are kept until the canonical
//! blocks prove them false (then it pays critically, see `claims`); and the
//! cycle restarts with fresh hashes. The honest sender of the next block is
//! never blamed for it. A block that is exactly the one asked for but
//! under another number proves its hash source lied.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use super::blame::Fault;
use super::context::SyncContext;
use super::error::StageError;
use crate::chain::verify::verify_body;
use crate::chain::BlockWithSig;
use crate::crypto::B256;
use crate::metrics::names;
use crate::net::StreamId;
use crate::request::{Priority, RequestOptions};
use crate::wire::{Request, Response};

/// First back-off after a round that staged nothing.
const BACKOFF_START: Duration = Duration::from_millis(200);
/// Longest back-off.
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Other streams that must lack a hash before its source is asked directly.
const OTHERS_LACKING: usize = 2;

/// Downloads the blocks of `from..=to` not staged yet.
pub fn run(ctx: &mut SyncContext, from: u64, to: u64) -> Result<(), StageError> {
    let spec = ctx.backend.chain_spec().clone();
    super::turbo::collect(ctx);
    let mut missing: Vec<(u64, B256)> = Vec::new();
    for n in from..=to {
        if ctx
            .staging
            .block(n)
            .map_err(|e| StageError::Local(e.into()))?
            .is_some()
        {
            continue;
        }
        let h = ctx
            .staging
            .hash(n)
            .map_err(|e| StageError::Local(e.into()))?
            .ok_or(StageError::Stalled(Duration::ZERO))?;
        // Turbo brought it already, and it is the block the hash names?
        if let Some((b, stream)) = super::turbo::take(ctx, n) {
            if b.block.hash() == h && verify_body(&spec, &b.block).is_ok() {
                ctx.staging
                    .put_block(&b)
                    .map_err(|e| StageError::Local(e.into()))?;
                ctx.prov.body_from(n, stream);
                ctx.status.write().prefetched_used += 1;
                continue;
            }
        }
        missing.push((n, h));
    }
    // Streams that answered each number's hash as absent.
    let mut lacking: HashMap<u64, HashSet<StreamId>> = HashMap::new();
    let mut backoff = BACKOFF_START;
    while !missing.is_empty() {
        ctx.check()?;
        let batches: Vec<Vec<(u64, B256)>> = missing
            .chunks(ctx.settings.body_batch)
            .map(<[_]>::to_vec)
            .collect();
        // `Concurrency` batches in flight at once.
        let wave = ctx.settings.concurrency.max(1);
        let mut staged: HashSet<u64> = HashSet::new();
        for group in batches.chunks(wave) {
            let reqs = group
                .iter()
                .map(|b| {
                    let unable = lacking
                        .get(&b[0].0)
                        .map(|s| s.iter().copied().collect())
                        .unwrap_or_default();
                    (
                        Request::GetBlocksByHashes(b.iter().map(|(_, h)| *h).collect()),
                        ctx.opts(Priority::Low, unable),
                    )
                })
                .collect();
            for (batch, a) in group.iter().zip(ctx.request_all(reqs)) {
                staged.extend(stage_answer(ctx, &spec, batch, a, &mut lacking)?);
            }
        }
        missing.retain(|(n, _)| !staged.contains(n));
        let live: HashSet<StreamId> = ctx.streams().iter().map(|s| s.id).collect();
        let unmatched = unmatched(ctx, &missing, &lacking, &live);
        if !unmatched.is_empty() {
            let (rescued, lowest) = give_up_on(ctx, &spec, &unmatched, &mut lacking, &live)?;
            if let Some(from) = lowest {
                return Err(StageError::Unservable { from });
            }
            missing.retain(|(n, _)| !rescued.contains(n));
            staged.extend(rescued);
        }
        if !staged.is_empty() {
            ctx.progressed();
            backoff = BACKOFF_START;
        } else if !missing.is_empty() {
            ctx.pause(backoff);
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }
    Ok(())
}

/// Stages what one `GetBlocksByHashes` answer to `batch` brings. Returns
/// the numbers it staged.
fn stage_answer(
    ctx: &mut SyncContext,
    spec: &crate::chain::ChainSpec,
    batch: &[(u64, B256)],
    a: Result<(Response, StreamId), StageError>,
    lacking: &mut HashMap<u64, HashSet<StreamId>>,
) -> Result<Vec<u64>, StageError> {
    let mut staged = Vec::new();
    let Ok((resp, stream)) = a else {
        metrics::counter!(names::FAILED_DOWNLOAD).increment(1);
        return Ok(staged);
    };
    let Response::Blocks(items) = resp else {
        if !matches!(resp, Response::Error { .. }) {
            ctx.blame(
                stream,
                Fault::Useless,
                "GetBlocksByHashes answered with another type",
            );
        }
        return Ok(staged);
    };
    for (i, (n, want)) in batch.iter().enumerate() {
        let Some(item) = items.get(i) else {
            // Cut short by the soft byte limit: ask again, no blame.
            break;
        };
        let Some(bytes) = item else {
            lacking.entry(*n).or_default().insert(stream);
            continue;
        };
        let block = match BlockWithSig::from_bytes(bytes) {
            Ok(b) => b,
            Err(e) => {
                ctx.blame(
                    stream,
                    Fault::ProvenInvalid,
                    &format!("undecodable block: {e}"),
                );
                return Ok(staged);
            }
        };
        if block.block.hash() == *want && block.block.number() != *n {
            // Exactly the block asked for: the hash claimed for block `n`
            // is another block's. Its source lied; start over.
            if let Some(src) = ctx.prov.hash_source(*n) {
                let why = format!(
                    "claimed the hash of block {} for block {n}",
                    block.block.number()
                );
                ctx.blame(src, Fault::ProvenInvalid, &why);
            }
            return Err(StageError::Unservable { from: *n });
        }
        let check = if block.block.hash() != *want {
            Err("block does not hash to the hash asked for".to_string())
        } else {
            verify_body(spec, &block.block)
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        if let Err(why) = check {
            ctx.blame(stream, Fault::ProvenInvalid, &why);
            ctx.status.write().invalid_blocks += 1;
            return Ok(staged);
        }
        ctx.staging
            .put_block(&block)
            .map_err(|e| StageError::Local(e.into()))?;
        ctx.prov.body_from(*n, stream);
        staged.push(*n);
    }
    Ok(staged)
}

/// Missing blocks whose hash nobody seems able to match: its own source
/// and another stream said they lack it, or two other streams did (the
/// source is then asked directly), or every live stream did.
fn unmatched(
    ctx: &SyncContext,
    missing: &[(u64, B256)],
    lacking: &HashMap<u64, HashSet<StreamId>>,
    live: &HashSet<StreamId>,
) -> Vec<(u64, B256)> {
    missing
        .iter()
        .filter(|(n, _)| {
            let Some(who) = lacking.get(n) else {
                return false;
            };
            let src = ctx.prov.hash_source(*n);
            let others = who.iter().filter(|s| Some(**s) != src).count();
            let src_lacks = src.is_some_and(|s| who.contains(&s));
            (src_lacks && others >= 1)
                || others >= OTHERS_LACKING
                || (!live.is_empty() && live.iter().all(|s| who.contains(s)))
        })
        .copied()
        .collect()
}

/// Asks each source of `unmatched` hashes for them directly; what it cannot
/// serve is given up: the source pays softly and its claims wait for proof.
/// Returns the numbers its sources did serve, and the lowest number given
/// up on, if any.
fn give_up_on(
    ctx: &mut SyncContext,
    spec: &crate::chain::ChainSpec,
    unmatched: &[(u64, B256)],
    lacking: &mut HashMap<u64, HashSet<StreamId>>,
    live: &HashSet<StreamId>,
) -> Result<(Vec<u64>, Option<u64>), StageError> {
    let mut rescued: Vec<u64> = Vec::new();
    let mut by_source: HashMap<Option<StreamId>, Vec<(u64, B256)>> = HashMap::new();
    for (n, h) in unmatched {
        by_source
            .entry(ctx.prov.hash_source(*n))
            .or_default()
            .push((*n, *h));
    }
    let mut lowest: Option<u64> = None;
    for (source, items) in by_source {
        // Whether the source itself, asked directly, did not answer.
        let mut silent = false;
        // Ask the source itself, if it is still there and was not asked.
        if let Some(src) = source.filter(|s| live.contains(s)) {
            let asked_it = items
                .iter()
                .all(|(n, _)| lacking.get(n).is_some_and(|w| w.contains(&src)));
            if !asked_it {
                for chunk in items.chunks(ctx.settings.body_batch.max(1)) {
                    let a = ctx
                        .request_all(vec![(
                            Request::GetBlocksByHashes(chunk.iter().map(|(_, h)| *h).collect()),
                            RequestOptions {
                                priority: Priority::High,
                                whitelist: Some(vec![src]),
                                blacklist: vec![],
                                timeout: Some(ctx.settings.request_timeout),
                            },
                        )])
                        .pop()
                        .unwrap_or(Err(StageError::Shutdown));
                    let answered = a.is_ok();
                    rescued.extend(stage_answer(ctx, spec, chunk, a, lacking)?);
                    if !answered {
                        silent = true;
                        // Silent: nobody can serve these either.
                        for (n, _) in chunk {
                            lacking.entry(*n).or_default().insert(src);
                        }
                    }
                }
            }
        }
        let gave_up: Vec<(u64, B256)> = items
            .iter()
            .filter(|(n, _)| !rescued.contains(n))
            .copied()
            .collect();
        let Some(&(first, _)) = gave_up.first() else {
            continue;
        };
        lowest = Some(lowest.map_or(first, |l| l.min(first)));
        if let Some(src) = source {
            if let Some(peer) = ctx.peers.get(&src).copied() {
                for (n, h) in &gave_up {
                    ctx.claims.record(*n, *h, peer);
                }
            }
            tracing::warn!(
                stream = src,
                blocks = gave_up.len(),
                first = gave_up[0].0,
                "hashes nobody can serve, not even the stream that claimed them"
            );
            // What is shown now: it said it lacks what it claimed, or it did
            // not answer. A source already gone shows nothing; its claims
            // wait for proof.
            if !live.contains(&src) {
                continue;
            }
            let (fault, why) = if silent {
                (
                    Fault::Unresponsive,
                    "did not answer for block hashes it claimed",
                )
            } else {
                (Fault::Useless, "claimed block hashes it cannot serve")
            };
            ctx.blame(src, fault, why);
        }
    }
    Ok((rescued, lowest))
}
