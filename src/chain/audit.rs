//! Re-checks the root of trust of a stored chain (see `verify`'s module
//! docs): every epoch's hand-over block is signed by the committee of its
//! epoch and names the committee stored for the next one, and the head is
//! signed by the committee of its epoch. Since each block's hash commits to
//! its parent's, those signatures vouch for every stored block; a chain
//! that fails is on an invalid branch from the last block that passed
//! (e.g. a datadir written by a version that sampled signatures unsoundly).
//!
//! One signature per epoch plus one, verified in one parallel batch.

use std::collections::HashMap;

use super::backend::{BackendError, ChainBackend};
use super::error::VerifyError;
use super::verify::{sig_job, CommitteeKeys};
use crate::crypto::{check_batch, SigJob};

/// What [`audit_chain`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Audit {
    /// The head the audit checked.
    pub head: u64,
    /// The highest block the passing checks vouch for: every block up to
    /// it is covered by a verified signature through the hash chain. Equal
    /// to `head` when the chain passed.
    pub verified_to: u64,
    /// Why the block after `verified_to`'s checkpoint failed, if one did.
    pub error: Option<VerifyError>,
    /// Signatures handed to the pairing check.
    pub sigs_checked: usize,
}

impl Audit {
    /// Whether the whole chain passed.
    pub fn passed(&self) -> bool {
        self.error.is_none()
    }
}

/// Audits `backend`'s chain from genesis to its head.
pub fn audit_chain(backend: &dyn ChainBackend) -> Result<Audit, BackendError> {
    let spec = backend.chain_spec().clone();
    let head = backend.head()?.number;
    let mut audit = Audit {
        head,
        verified_to: head,
        error: None,
        sigs_checked: 0,
    };
    if head == 0 {
        return Ok(audit);
    }
    // Checkpoints: every hand-over below the head, then the head.
    let mut points: Vec<u64> = (0..)
        .map(|e| spec.epoch_last_block(e))
        .take_while(|&n| n < head)
        .collect();
    points.push(head);
    let mut keys: HashMap<u64, CommitteeKeys> = HashMap::new();
    let mut jobs: Vec<SigJob> = Vec::with_capacity(points.len());
    let mut failed: Option<(usize, VerifyError)> = None;
    for (i, &n) in points.iter().enumerate() {
        match job_for(backend, n, &mut keys) {
            Ok(job) => jobs.push(job),
            Err(e) => {
                failed = Some((i, e));
                break;
            }
        }
    }
    let batch = check_batch(&jobs);
    audit.sigs_checked = batch.checked;
    if let Some(&bad) = batch.bad.first() {
        if failed.as_ref().is_none_or(|(i, _)| bad < *i) {
            failed = Some((
                bad,
                VerifyError::BadSignature {
                    number: points[bad],
                },
            ));
        }
    }
    if let Some((i, e)) = failed {
        audit.verified_to = i.checked_sub(1).map_or(0, |p| points[p]);
        audit.error = Some(e);
    }
    Ok(audit)
}

/// The signature check of stored block `n` under the stored committee of
/// its epoch, after checking that committee is the one the previous epoch's
/// last block named (epoch 0's: the genesis block).
fn job_for(
    backend: &dyn ChainBackend,
    n: u64,
    keys: &mut HashMap<u64, CommitteeKeys>,
) -> Result<SigJob, VerifyError> {
    let spec = backend.chain_spec();
    let epoch = spec.epoch_of(n);
    let missing = |what: &str| VerifyError::BadHeader {
        number: n,
        reason: format!("{what} missing from the store"),
    };
    let header = backend
        .header_by_number(n)
        .ok()
        .flatten()
        .ok_or_else(|| missing("header"))?;
    let commit = backend
        .commit_sig(n)
        .ok()
        .flatten()
        .ok_or_else(|| missing("commit signature"))?;
    let k = match keys.entry(epoch) {
        std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
        std::collections::hash_map::Entry::Vacant(v) => {
            let namer = if epoch == 0 {
                0
            } else {
                spec.epoch_last_block(epoch - 1)
            };
            let named = backend
                .header_by_number(namer)
                .ok()
                .flatten()
                .ok_or_else(|| missing("hand-over header"))?
                .next_committee_hash;
            let committee = backend
                .committee(epoch)
                .ok()
                .flatten()
                .ok_or_else(|| missing("committee"))?;
            let k = CommitteeKeys::new(epoch, &committee, namer)?;
            if k.hash != named {
                return Err(VerifyError::CommitteeMismatch {
                    number: namer,
                    epoch,
                    named: crate::crypto::hash::to_hex(&named[..8]),
                    established: crate::crypto::hash::to_hex(&k.hash[..8]),
                });
            }
            v.insert(k)
        }
    };
    sig_job(n, &header.hash(), header.view_id, &commit, k)
}
