//! SyncEpoch: fetch the block naming each epoch's committee up to the
//! target (the last block of the previous epoch), verify them all in one
//! parallel batch (each signed by the committee the one before it named),
//! so States can verify blocks of any epoch in parallel.

use std::sync::Arc;

use super::blame::Fault;
use super::context::SyncContext;
use super::error::StageError;
use crate::chain::verify::{sig_job, verify_body, CommitteeKeys};
use crate::chain::{BlockWithSig, VerifyError};
use crate::crypto::check_batch;
use crate::metrics::names;
use crate::request::Priority;
use crate::wire::{Request, Response};

/// Establishes the committees of every epoch up to `upto`'s (the cycle's
/// last block: bounded by the cycle, whatever height a peer claims).
pub fn run(ctx: &mut SyncContext, upto: u64) -> Result<(), StageError> {
    let target = upto;
    let spec = ctx.backend.chain_spec().clone();
    let head = ctx.backend.head()?.number;
    let mut known = spec.epoch_of(head);
    while ctx.committee(known + 1).is_some() {
        known += 1;
    }
    let want = spec.epoch_of(target);
    if known >= want {
        return Ok(());
    }
    metrics::counter!(names::NUM_EPOCH_SYNC).increment(1);
    let epochs: Vec<u64> = (known + 1..=want).collect();
    let reqs = epochs
        .iter()
        .map(|e| (Request::GetEpochState(*e), ctx.opts(Priority::High, vec![])))
        .collect();
    let answers = ctx.request_all(reqs);
    // Decode and pre-check; stop at the first epoch we cannot establish.
    let mut blocks: Vec<(u64, BlockWithSig, u64)> = Vec::new();
    for (e, a) in epochs.iter().zip(answers) {
        let (resp, stream) = a?;
        let Response::EpochState(Some(bytes)) = resp else {
            // Absent: the peer does not have it (soft), try again next cycle.
            break;
        };
        let Ok(b) = BlockWithSig::from_bytes(&bytes) else {
            ctx.blame(stream, Fault::ProvenInvalid, "undecodable epoch block");
            break;
        };
        if b.block.number() != spec.epoch_last_block(e - 1) {
            ctx.blame(
                stream,
                Fault::ProvenInvalid,
                "epoch block with the wrong number",
            );
            break;
        }
        blocks.push((*e, b, stream));
    }
    // Committees named by the blocks, tentatively; a batch check of all the
    // signatures then proves the whole chain of hand-overs at once.
    let mut keys: Vec<Arc<CommitteeKeys>> = Vec::new();
    let mut jobs = Vec::new();
    let mut signer = match ctx.committee(known) {
        Some(k) => k,
        None => return Ok(()),
    };
    for (e, b, stream) in &blocks {
        let h = &b.block.header;
        let hash = h.hash();
        let prepared = verify_body(&spec, &b.block)
            .and_then(|c| {
                c.ok_or(VerifyError::BadHandOver {
                    number: h.number,
                    reason: "epoch block names no committee".into(),
                })
            })
            .and_then(|c| CommitteeKeys::new(*e, &c, h.number))
            .and_then(|k| {
                sig_job(h.number, &hash, h.view_id, &b.commit_sig, &signer).map(|j| (k, j))
            });
        match prepared {
            Ok((k, j)) => {
                let k = Arc::new(k);
                signer = k.clone();
                keys.push(k);
                jobs.push(j);
            }
            Err(err) => {
                ctx.blame(*stream, Fault::ProvenInvalid, &err.to_string());
                break;
            }
        }
    }
    let batch = check_batch(&jobs);
    let good = batch.bad.first().copied().unwrap_or(jobs.len());
    if let Some(&i) = batch.bad.first() {
        ctx.blame(
            blocks[i].2,
            Fault::ProvenInvalid,
            "epoch block signature invalid",
        );
    }
    ctx.status.write().sigs_verified += batch.checked as u64;
    for k in keys.into_iter().take(good) {
        ctx.committees.insert(k.epoch, k);
    }
    metrics::histogram!(names::NUM_BLOCKS_INSERTED_EPOCH_SYNC).record(good as f64);
    if good > 0 {
        ctx.progressed();
    }
    Ok(())
}
