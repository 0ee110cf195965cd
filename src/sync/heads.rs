//! Heads: ask every active stream its height; the target is the highest
//! height that a majority of the answering streams vouch for (claim at least
//! that height). One liar, or any minority of liars, can neither raise nor
//! lower it beyond what the honest majority claims.

use std::time::Instant;

use super::context::SyncContext;
use super::error::StageError;
use crate::request::{Priority, RequestOptions};
use crate::stream::RemovalReason;
use crate::wire::{Request, Response};

/// How long stragglers get once a majority of streams answered.
const HEADS_GRACE: std::time::Duration = std::time::Duration::from_millis(200);

/// How long Heads waits for each stream's height.
const HEADS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// The target vouched for by a majority of `heights`: sorted descending,
/// the (⌊n/2⌋+1)-th value. `None` for no heights.
pub fn majority_target(heights: &[u64]) -> Option<u64> {
    let mut h = heights.to_vec();
    h.sort_unstable_by(|a, b| b.cmp(a));
    h.get(h.len() / 2).copied()
}

/// Runs Heads; returns the target (≥ our head).
pub fn run(ctx: &mut SyncContext) -> Result<u64, StageError> {
    let streams = ctx.streams();
    // MinPeers streams (or all we have) must exist; silent ones may not
    // answer, so any answers decide, by majority.
    let need = 1;
    if streams.is_empty() {
        return Err(StageError::NotEnoughStreams { have: 0, need });
    }
    let reqs: Vec<(Request, RequestOptions)> = streams
        .iter()
        .map(|s| {
            (
                Request::GetBlockNumber,
                RequestOptions {
                    priority: Priority::High,
                    whitelist: Some(vec![s.id]),
                    blacklist: vec![],
                    timeout: Some(ctx.settings.request_timeout.min(HEADS_TIMEOUT)),
                },
            )
        })
        .collect();
    // Every stream is asked; once a majority has answered, stragglers get
    // only HEADS_GRACE more (a silent peer must not hold up every cycle).
    let rxs: Vec<_> = reqs
        .into_iter()
        .map(|(r, o)| ctx.host.requests().submit(r, o))
        .collect();
    let majority = rxs.len() / 2 + 1;
    let mut deadline = Instant::now() + HEADS_TIMEOUT;
    let mut heights = Vec::new();
    for rx in rxs {
        let wait = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok(Ok((Response::BlockNumber { number, .. }, _))) => heights.push(number),
            Ok(Ok((_, stream))) => ctx.blame(
                stream,
                RemovalReason::InvalidResponse,
                "GetBlockNumber answered with another type",
            ),
            _ => {}
        }
        if heights.len() == majority {
            deadline = deadline.min(Instant::now() + HEADS_GRACE);
        }
    }
    if heights.len() < need {
        return Err(StageError::NotEnoughStreams {
            have: heights.len(),
            need,
        });
    }
    let head = ctx.backend.head()?.number;
    let target = majority_target(&heights).unwrap_or(head).max(head);
    ctx.status.write().target = target;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::majority_target;

    #[test]
    fn one_liar_cannot_set_the_target() {
        assert_eq!(majority_target(&[100, 100, 100, 1_000_000]), Some(100));
        assert_eq!(majority_target(&[100, 100, 100, 0]), Some(100));
    }

    #[test]
    fn minority_of_liars_cannot_raise_the_target() {
        assert_eq!(
            majority_target(&[9_999_999, 9_999_999, 500, 500, 500]),
            Some(500)
        );
    }

    #[test]
    fn target_is_the_highest_height_a_majority_reaches() {
        assert_eq!(majority_target(&[120, 110, 100]), Some(110));
        assert_eq!(majority_target(&[42]), Some(42));
        assert_eq!(majority_target(&[]), None);
    }
}
