//! Turbo: while States verifies and commits a cycle, the next cycle's blocks
//! (up to `MaxBackgroundBlocks`) download in the background, so network and
//! execution overlap. Prefetched blocks are fetched by number; BlockBodies
//! of the next cycle keeps those whose hash equals the hash BlockHashes
//! staged and drops the rest (a by-number answer alone proves nothing, so
//! nobody is blamed for a mismatch; undecodable bytes are blamed).

use std::collections::HashMap;

use crossbeam::channel::Receiver;

use super::blame::Fault;
use super::context::SyncContext;
use crate::chain::BlockWithSig;
use crate::host::RequestResult;
use crate::net::StreamId;
use crate::request::Priority;
use crate::wire::limits::MAX_BLOCKS_PER_REQUEST;
use crate::wire::{Request, Response};

/// Background downloads for the next cycle.
#[derive(Default)]
pub struct Prefetch {
    pending: Vec<(Vec<u64>, Receiver<RequestResult>)>,
    blocks: HashMap<u64, (BlockWithSig, StreamId)>,
}

impl std::fmt::Debug for Prefetch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prefetch")
            .field("pending", &self.pending.len())
            .field("blocks", &self.blocks.len())
            .finish()
    }
}

/// Starts downloading `from..=to` by number without waiting.
pub fn start(ctx: &mut SyncContext, from: u64, to: u64) {
    if from > to {
        return;
    }
    let numbers: Vec<u64> = (from..=to).collect();
    let batch = ctx.settings.body_batch.clamp(1, MAX_BLOCKS_PER_REQUEST);
    for chunk in numbers.chunks(batch) {
        let rx = ctx.host.requests().submit(
            Request::GetBlocksByNumber(chunk.to_vec()),
            ctx.opts(Priority::Low, vec![]),
        );
        ctx.prefetch.pending.push((chunk.to_vec(), rx));
    }
}

/// Collects what the background downloads brought, waiting for the ones
/// still in flight. Only blocks answering the number asked are kept (so a
/// peer cannot fill the prefetch with blocks of its choosing).
pub fn collect(ctx: &mut SyncContext) {
    for (asked, rx) in std::mem::take(&mut ctx.prefetch.pending) {
        let Ok(Ok((Response::Blocks(items), stream))) = rx.recv() else {
            continue;
        };
        // Item i answers number asked[i]: anything else is a lie.
        for (bytes, want) in items.into_iter().zip(asked) {
            let Some(bytes) = bytes else { continue };
            match BlockWithSig::from_bytes(&bytes) {
                Ok(b) if b.block.number() == want => {
                    ctx.prefetch.blocks.insert(want, (b, stream));
                }
                Ok(_) => {
                    ctx.blame(
                        stream,
                        Fault::ProvenInvalid,
                        "block answered for another number",
                    );
                    break;
                }
                Err(e) => {
                    ctx.blame(
                        stream,
                        Fault::ProvenInvalid,
                        &format!("undecodable block: {e}"),
                    );
                    break;
                }
            }
        }
    }
}

/// Takes the prefetched block `n`.
pub fn take(ctx: &mut SyncContext, n: u64) -> Option<(BlockWithSig, StreamId)> {
    ctx.prefetch.blocks.remove(&n)
}

/// Drops prefetched blocks at or below `head` (already in the chain).
pub fn prune(ctx: &mut SyncContext, head: u64) {
    ctx.prefetch.blocks.retain(|n, _| *n > head);
}

/// Drops everything prefetched (a cycle restarts).
pub fn clear(ctx: &mut SyncContext) {
    ctx.prefetch.pending.clear();
    ctx.prefetch.blocks.clear();
}
