//! ShortRange: near the tip, ask several streams for the few missing hashes,
//! keep the longest prefix a majority agrees on, fetch those blocks by hash,
//! verify every signature and insert (through States' verify-and-insert, so
//! blame is decided the same way). Also what a consensus trigger runs.

use std::collections::HashMap;

use super::blame::Fault;
use super::context::SyncContext;
use super::error::StageError;
use super::stage_id::StageId;
use super::states::verify_and_insert;
use crate::chain::verify::SigPolicy;
use crate::chain::BlockWithSig;
use crate::crypto::B256;
use crate::metrics::names;
use crate::request::{Priority, RequestOptions};
use crate::wire::limits::MAX_BLOCKS_PER_REQUEST;
use crate::wire::{Request, Response};

/// Streams asked for hashes.
const SHORT_RANGE_STREAMS: usize = 3;

/// Syncs `head+1..=target` (at most 128 blocks). Returns blocks inserted.
pub fn run(ctx: &mut SyncContext, target: u64) -> Result<u64, StageError> {
    metrics::counter!(names::NUM_SHORT_RANGE).increment(1);
    let head = ctx.backend.head()?;
    let to = target.min(head.number + MAX_BLOCKS_PER_REQUEST as u64);
    if to <= head.number {
        return Ok(0);
    }
    let numbers: Vec<u64> = (head.number + 1..=to).collect();
    let streams = ctx.streams();
    let reqs = streams
        .iter()
        .take(SHORT_RANGE_STREAMS)
        .map(|s| {
            (
                Request::GetBlockHashes(numbers.clone()),
                RequestOptions {
                    priority: Priority::High,
                    whitelist: Some(vec![s.id]),
                    blacklist: vec![],
                    timeout: Some(ctx.settings.request_timeout),
                },
            )
        })
        .collect();
    let answers: Vec<Vec<Option<B256>>> = ctx
        .request_all(reqs)
        .into_iter()
        .filter_map(|a| match a {
            Ok((Response::BlockHashes(h), _)) => Some(h),
            _ => None,
        })
        .collect();
    if answers.is_empty() {
        return Ok(0);
    }
    // Longest prefix on which a majority of the answers agree.
    let quorum = answers.len() / 2 + 1;
    let mut chosen: Vec<B256> = Vec::new();
    for i in 0..numbers.len() {
        let mut votes: HashMap<B256, usize> = HashMap::new();
        for a in &answers {
            if let Some(Some(h)) = a.get(i) {
                *votes.entry(*h).or_default() += 1;
            }
        }
        match votes.into_iter().find(|(_, v)| *v >= quorum) {
            Some((h, _)) => chosen.push(h),
            None => break,
        }
    }
    if chosen.is_empty() {
        return Ok(0);
    }
    let a = ctx
        .request_all(vec![(
            Request::GetBlocksByHashes(chosen.clone()),
            ctx.opts(Priority::High, vec![]),
        )])
        .pop()
        .unwrap_or(Err(StageError::Shutdown));
    let (resp, stream) = a?;
    let Response::Blocks(items) = resp else {
        return Ok(0);
    };
    let mut blocks = Vec::new();
    for (i, want) in chosen.iter().enumerate() {
        let Some(Some(bytes)) = items.get(i) else {
            break;
        };
        match BlockWithSig::from_bytes(bytes) {
            Ok(b) if b.block.hash() == *want => {
                ctx.prov.body_from(b.block.number(), stream);
                blocks.push(b);
            }
            _ => {
                ctx.blame(
                    stream,
                    Fault::ProvenInvalid,
                    "short-range block does not match its hash",
                );
                return Ok(0);
            }
        }
    }
    if blocks.is_empty() {
        return Ok(0);
    }
    let spec = ctx.backend.chain_spec().clone();
    let last = blocks.last().map_or(head.number, |b| b.block.number());
    let count = blocks.len() as u64;
    let bytes: u64 = blocks.iter().map(|b| b.to_bytes().len() as u64).sum();
    let progress = vec![(StageId::ShortRange, last), (StageId::States, last)];
    match verify_and_insert(ctx, &spec, blocks, SigPolicy::All, progress) {
        Ok(_) => {}
        // The culprits were blamed; the next cycle tries again.
        Err(StageError::Invalid { .. }) => return Ok(0),
        Err(e) => return Err(e),
    }
    metrics::histogram!(names::NUM_BLOCKS_INSERTED_SHORT_RANGE).record(count as f64);
    ctx.note_commit(count);
    {
        let mut s = ctx.status.write();
        s.head = last;
        s.blocks_synced += count;
        s.bytes_synced += bytes;
        s.short_ranges += 1;
    }
    ctx.progressed();
    Ok(count)
}
