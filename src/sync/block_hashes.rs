//! BlockHashes: the cycle's canonical hashes, in parallel batches over
//! different streams. Every staged hash records the stream that claimed it
//! (blame needs it: see `blame`).
//!
//! An answer is taken for what it gives ([`read_answer`]): its leading
//! hashes are staged, and the first number it answers as absent tells what
//! that stream can serve (a chain is contiguous: it lacks everything above
//! too), so it is not asked from there on. A stream that lacks a block
//! below the height it claimed at Heads is capped at what it showed: Heads
//! counts its vote no higher (a height claim nobody can serve does not set
//! the target). Numbers no active stream can serve bound the cycle. A round
//! that stages nothing backs off (200 ms, doubling, at most 5 s) instead of
//! asking again at once.
//!
//! With `DoubleCheckBlockHashes` every batch is confirmed by a second
//! stream and a disagreement settled by a third; the outvoted stream pays
//! softly and its claims wait for proof (`claims`). The hash chain itself is
//! checked when the bodies arrive (States).

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use super::blame::Fault;
use super::context::SyncContext;
use super::error::StageError;
use crate::crypto::B256;
use crate::net::StreamId;
use crate::request::Priority;
use crate::wire::{Request, Response};

/// First back-off after a round that staged nothing.
const BACKOFF_START: Duration = Duration::from_millis(200);
/// Longest back-off.
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// The leading hashes of an answer to `GetBlockHashes(asked)` and the
/// first number it answered as absent; `None` for an answer of the wrong
/// length (useless). Hashes after an absent entry are ignored.
pub fn read_answer(asked: &[u64], got: &[Option<B256>]) -> Option<(Vec<B256>, Option<u64>)> {
    if got.len() != asked.len() {
        return None;
    }
    let lead: Vec<B256> = got.iter().map_while(|h| *h).collect();
    let absent_from = asked.get(lead.len()).copied();
    Some((lead, absent_from))
}

/// Stages the hashes of `from..=to` that are not staged yet. Returns the
/// cycle's new last block: `to`, or lower when no active stream can serve
/// past it (below `from` if none can serve anything).
pub fn run(ctx: &mut SyncContext, from: u64, to: u64) -> Result<u64, StageError> {
    let mut to = to;
    let mut missing: BTreeSet<u64> = BTreeSet::new();
    for n in from..=to {
        if ctx
            .staging
            .hash(n)
            .map_err(|e| StageError::Local(e.into()))?
            .is_none()
        {
            missing.insert(n);
        }
    }
    // The lowest number each stream answered as absent.
    let mut lacks: HashMap<StreamId, u64> = HashMap::new();
    let double = ctx.settings.staged.double_check_block_hashes;
    let mut backoff = BACKOFF_START;
    while !missing.is_empty() {
        ctx.check()?;
        let streams: Vec<StreamId> = ctx.streams().iter().map(|s| s.id).collect();
        // Past what every stream lacks, nobody can serve: bound the cycle.
        if !streams.is_empty() && streams.iter().all(|s| lacks.contains_key(s)) {
            let servable_to = streams
                .iter()
                .filter_map(|s| lacks.get(s))
                .max()
                .map_or(to, |n| n.saturating_sub(1));
            if servable_to < to {
                tracing::info!(
                    from,
                    to,
                    servable_to,
                    "no stream can serve past this: cycle bounded"
                );
                to = servable_to;
                missing.retain(|n| *n <= to);
                continue;
            }
        }
        let batches = runs(&missing, ctx.settings.hash_batch);
        let wave = ctx.settings.concurrency.max(1) * 4;
        let mut staged_any = false;
        for group in batches.chunks(wave) {
            let reqs = group
                .iter()
                .map(|b| {
                    let unable: Vec<StreamId> = lacks
                        .iter()
                        .filter(|(_, n)| **n <= b[0])
                        .map(|(s, _)| *s)
                        .collect();
                    (
                        Request::GetBlockHashes(b.clone()),
                        ctx.opts(Priority::Low, unable),
                    )
                })
                .collect();
            let answers = ctx.request_all(reqs);
            for (batch, a) in group.iter().zip(answers) {
                let Some((lead, absent_from, stream)) = usable(ctx, batch, a) else {
                    continue;
                };
                if let Some(gap) = absent_from {
                    note_lack(ctx, &mut lacks, stream, gap);
                }
                if lead.is_empty() {
                    continue;
                }
                let asked = &batch[..lead.len()];
                let confirmed = if double {
                    confirm(ctx, asked, lead, stream)?
                } else {
                    Some((lead, stream))
                };
                let Some((hashes, source)) = confirmed else {
                    continue;
                };
                if ctx
                    .height_caps
                    .get(&source)
                    .is_some_and(|cap| asked.last().is_some_and(|n| n > cap))
                {
                    ctx.height_caps.remove(&source);
                }
                for (n, h) in asked.iter().zip(hashes) {
                    ctx.staging
                        .put_hash(*n, h)
                        .map_err(|e| StageError::Local(e.into()))?;
                    ctx.prov.hash_from(*n, source);
                    missing.remove(n);
                }
                staged_any = true;
            }
        }
        if staged_any {
            ctx.progressed();
            backoff = BACKOFF_START;
        } else if !missing.is_empty() {
            ctx.pause(backoff);
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }
    Ok(to)
}

/// Contiguous runs of `numbers`, cut into batches of at most `size`.
fn runs(numbers: &BTreeSet<u64>, size: usize) -> Vec<Vec<u64>> {
    let mut out: Vec<Vec<u64>> = Vec::new();
    for &n in numbers {
        match out.last_mut() {
            Some(b) if b.len() < size.max(1) && b.last().is_some_and(|l| l + 1 == n) => b.push(n),
            _ => out.push(vec![n]),
        }
    }
    out
}

/// `stream` lacks block `gap` and everything above. Below the height it
/// claimed, that caps what Heads counts for it.
fn note_lack(
    ctx: &mut SyncContext,
    lacks: &mut HashMap<StreamId, u64>,
    stream: StreamId,
    gap: u64,
) {
    let lack = lacks.entry(stream).or_insert(gap);
    *lack = (*lack).min(gap);
    if ctx.claimed.get(&stream).is_some_and(|c| *c >= gap) {
        let cap = gap.saturating_sub(1);
        if ctx.height_caps.insert(stream, cap) != Some(cap) {
            tracing::info!(
                stream,
                claimed = ctx.claimed.get(&stream).copied().unwrap_or(0),
                serves_to = cap,
                "stream claims more than it serves: its height counts as {cap}"
            );
        }
    }
}

/// The hashes of an answer and the stream that sent it; `None` (after
/// blaming what deserves it) for anything else.
fn usable(
    ctx: &SyncContext,
    batch: &[u64],
    a: Result<(Response, StreamId), StageError>,
) -> Option<(Vec<B256>, Option<u64>, StreamId)> {
    let (resp, stream) = a.ok()?;
    match resp {
        Response::BlockHashes(hs) => match read_answer(batch, &hs) {
            Some((lead, gap)) => Some((lead, gap, stream)),
            None => {
                ctx.blame(stream, Fault::Useless, "hash answer of the wrong length");
                None
            }
        },
        // Rate limited, busy, internal: not a fault, retried.
        Response::Error { .. } => None,
        _ => {
            ctx.blame(
                stream,
                Fault::Useless,
                "GetBlockHashes answered with another type",
            );
            None
        }
    }
}

/// Confirms `hashes` of `batch` (from `first`) with a second stream, a
/// third on disagreement. Returns the majority's hashes and the stream
/// that first claimed them, or `None` to retry. The outvoted stream pays
/// softly and its claims are kept until the canonical blocks prove them.
fn confirm(
    ctx: &mut SyncContext,
    batch: &[u64],
    hashes: Vec<B256>,
    first: StreamId,
) -> Result<Option<(Vec<B256>, StreamId)>, StageError> {
    let ask = |ctx: &SyncContext, blacklist: Vec<StreamId>| {
        let a = ctx
            .request_all(vec![(
                Request::GetBlockHashes(batch.to_vec()),
                ctx.opts(Priority::Low, blacklist),
            )])
            .pop()
            .unwrap_or(Err(StageError::Shutdown));
        match usable(ctx, batch, a) {
            Some((lead, None, s)) => Some((lead, s)),
            _ => None,
        }
    };
    let Some((second, s2)) = ask(ctx, vec![first]) else {
        return Ok(None);
    };
    if second == hashes {
        ctx.status.write().hash_batches_double_checked += 1;
        return Ok(Some((hashes, first)));
    }
    let Some((third, _)) = ask(ctx, vec![first, s2]) else {
        return Ok(None);
    };
    let (winner, loser, lost) = if third == hashes {
        (first, s2, second)
    } else if third == second {
        (s2, first, hashes)
    } else {
        return Ok(None);
    };
    if let Some(peer) = ctx.peers.get(&loser).copied() {
        for (n, h) in batch.iter().zip(&lost) {
            ctx.claims.record(*n, *h, peer);
        }
    }
    ctx.blame(loser, Fault::Useless, "outvoted on block hashes");
    ctx.status.write().hash_batches_double_checked += 1;
    Ok(Some((third, winner)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_taken_up_to_its_first_absent_entry() {
        let asked = [5, 6, 7, 8];
        let got = [Some([1; 32]), Some([2; 32]), None, Some([4; 32])];
        assert_eq!(
            read_answer(&asked, &got),
            Some((vec![[1; 32], [2; 32]], Some(7)))
        );
        let full = [Some([1; 32]); 4];
        assert_eq!(read_answer(&asked, &full), Some((vec![[1; 32]; 4], None)));
        assert_eq!(read_answer(&asked, &full[..3]), None, "wrong length");
    }

    #[test]
    fn missing_numbers_are_asked_in_contiguous_batches() {
        let missing: BTreeSet<u64> = [1, 2, 3, 4, 5, 9, 10].into_iter().collect();
        assert_eq!(
            runs(&missing, 3),
            vec![vec![1, 2, 3], vec![4, 5], vec![9, 10]]
        );
    }
}
