//! Where a (re)started sync begins, shared by the driver and the
//! simulator so both start a [`SyncMachine`](super::SyncMachine) the same
//! way: the committed head as the tip, the committees the store knows
//! around it, and what a previous run staged above the head.

use std::collections::HashMap;
use std::sync::Arc;

use super::machine::{Restored, Tip};
use crate::chain::verify::CommitteeKeys;
use crate::chain::{BackendError, ChainBackend, SealedBlock};
use crate::crypto::B256;

/// The committed head of `backend` as a tip, with the committees of the
/// head's epoch and the next that the backend holds (a committee whose
/// keys do not parse is left out: the sync establishes it again).
pub fn tip_and_committees(
    backend: &dyn ChainBackend,
) -> Result<(Tip, HashMap<u64, Arc<CommitteeKeys>>), BackendError> {
    let head = backend.head()?;
    let header = backend
        .header_by_number(head.number)?
        .ok_or_else(|| BackendError::Storage("head header missing".into()))?;
    let spec = backend.chain_spec();
    let mut committees = HashMap::new();
    let e = spec.epoch_of(head.number);
    for epoch in e..=e + 1 {
        if let Some(c) = backend.committee(epoch)? {
            if let Ok(k) = CommitteeKeys::new(epoch, &c, 0) {
                committees.insert(epoch, Arc::new(k));
            }
        }
    }
    let tip = Tip {
        header,
        hash: head.hash,
    };
    Ok((tip, committees))
}

/// What a previous run staged that a sync restarted at `head` keeps:
/// `None` if BlockHashes' checkpoint `hashes_to` is not above the head
/// (the staging is stale: the caller drops it); else the staged hashes
/// `head+1..=hashes_to` (read by `hashes(from, to)`) and, if BlockBodies'
/// checkpoint `bodies_to` is above the head, the staged blocks read by
/// `blocks(from, to)` (bounded by the reader), as far as they decode in
/// order at their numbers.
pub fn restore<E, R: AsRef<[u8]>>(
    head: u64,
    hashes_to: u64,
    bodies_to: u64,
    hashes: impl FnOnce(u64, u64) -> Result<Vec<(u64, B256)>, E>,
    blocks: impl FnOnce(u64, u64) -> Result<Vec<(u64, R)>, E>,
) -> Result<Option<Restored>, E> {
    if hashes_to <= head {
        return Ok(None);
    }
    let mut r = Restored {
        hashes: hashes(head + 1, hashes_to)?,
        blocks: Vec::new(),
    };
    if bodies_to > head {
        for (n, raw) in blocks(head + 1, bodies_to)? {
            match SealedBlock::from_raw(raw.as_ref()) {
                Ok(b) if b.number() == n => r.blocks.push(b),
                _ => break,
            }
        }
    }
    Ok(Some(r))
}
