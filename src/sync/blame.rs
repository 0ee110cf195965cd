//! Blame in one place (DESIGN.md §9): who, if anyone, pays for an outcome.
//!
//! The sync deals with two kinds of claims from peers:
//! - a **hash source** claims "block N of the canonical chain has hash H"
//!   (`GetBlockHashes`);
//! - a **body source** serves a block for a hash it was asked for, with the
//!   commit signature it sends beside it.
//!
//! Honest nodes store only blocks covered by verified signatures (see
//! `chain::verify`), so they only ever claim canonical hashes and serve
//! canonical blocks with verified signatures. Hence, once the hash chain and
//! the signatures prove a block non-canonical, both the stream that claimed
//! its hash and the stream that served it are proven to lie; a bad copy of
//! a signature sent beside a block proves only its sender wrong; and an
//! error that peers cannot cause (an unknown committee, a verified block
//! the node cannot execute) blames nobody.
//!
//! [`judge`] maps a verification error to a [`Verdict`]; the stages turn
//! verdicts and the other outcomes of a request into [`Fault`]s, which
//! [`Fault::removal`] maps to what the stream manager does.

use std::collections::BTreeMap;

use crate::chain::VerifyError;
use crate::net::StreamId;
use crate::stream::RemovalReason;

/// What a stream did wrong, by what is proven.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// It sent data proven invalid: critical (60-minute cooldown).
    ProvenInvalid,
    /// Its answer cannot be used (another message type, a wrong length,
    /// hashes it then cannot serve): soft, counted as a failure.
    Useless,
    /// It did not answer in time: soft (the request manager reports
    /// streams that keep timing out).
    Unresponsive,
}

impl Fault {
    /// The removal this fault asks of the stream manager (`None`: keep it).
    pub fn removal(self) -> Option<RemovalReason> {
        match self {
            Fault::ProvenInvalid => Some(RemovalReason::CriticalError),
            Fault::Useless => Some(RemovalReason::InvalidResponse),
            Fault::Unresponsive => Some(RemovalReason::ConnectionFailure),
        }
    }
}

/// Which stream supplied the hash and the body of each staged block.
#[derive(Clone, Debug, Default)]
pub struct Provenance {
    hash: BTreeMap<u64, StreamId>,
    body: BTreeMap<u64, StreamId>,
}

impl Provenance {
    /// Records that `stream` claimed the hash of block `n`.
    pub fn hash_from(&mut self, n: u64, stream: StreamId) {
        self.hash.insert(n, stream);
    }

    /// Records that `stream` served block `n`.
    pub fn body_from(&mut self, n: u64, stream: StreamId) {
        self.body.insert(n, stream);
    }

    /// Who claimed the hash of block `n`.
    pub fn hash_source(&self, n: u64) -> Option<StreamId> {
        self.hash.get(&n).copied()
    }

    /// Who served block `n`.
    pub fn body_source(&self, n: u64) -> Option<StreamId> {
        self.body.get(&n).copied()
    }

    /// Forgets who claimed or served block `n` (the host node offered
    /// it: no stream answers for it).
    pub fn forget(&mut self, n: u64) {
        self.hash.remove(&n);
        self.body.remove(&n);
    }

    /// Forgets blocks at or below `n` (committed).
    pub fn prune_to(&mut self, n: u64) {
        self.hash = self.hash.split_off(&(n + 1));
        self.body = self.body.split_off(&(n + 1));
    }

    /// Forgets blocks above `n` (dropped from the window).
    pub fn drop_above(&mut self, n: u64) {
        self.hash.retain(|k, _| *k <= n);
        self.body.retain(|k, _| *k <= n);
    }

    /// Both sources of block `n` (hash first), without repeats.
    fn both(&self, n: u64) -> Vec<StreamId> {
        let mut v: Vec<StreamId> = self.hash_source(n).into_iter().collect();
        if let Some(b) = self.body_source(n).filter(|b| !v.contains(b)) {
            v.push(b);
        }
        v
    }
}

/// Who is to blame for a verification error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// These streams sent data proven invalid.
    Proven(Vec<StreamId>),
    /// Blocks `n − 1` and `n` do not link, and no single stream vouched for
    /// both (different hash sources, or `n − 1` is the node's own head):
    /// which one is not canonical is decided by verifying the blocks from
    /// `n` on by themselves (see [`resolve_break`]).
    LinkBreak(u64),
    /// Not a peer's fault.
    Local,
}

/// The verdict on `err`, found verifying a segment whose last block is
/// `last`, with the sources in `prov`.
pub fn judge(err: &VerifyError, last: u64, prov: &Provenance) -> Verdict {
    use VerifyError as E;
    match err {
        // The block does not match what it was asked for, or its body does
        // not match its header: its sender.
        E::HashMismatch { number, .. }
        | E::TxRootMismatch { number }
        | E::BadHandOver { number, .. } => {
            Verdict::Proven(prov.body_source(*number).into_iter().collect())
        }
        // The header itself is not canonical: who claimed it, who served it.
        E::BadHeader { number, .. }
        | E::CommitteeMismatch { number, .. }
        | E::BadCommitteeKey { number, .. } => Verdict::Proven(prov.both(*number)),
        // The last block's signature is the copy sent beside it: its
        // sender. Any other's is carried by the child's header, which is
        // then not canonical.
        E::BadSignature { number } | E::BadQuorum { number, .. } | E::BadBls { number, .. } => {
            if *number == last {
                Verdict::Proven(prov.body_source(*number).into_iter().collect())
            } else {
                Verdict::Proven(prov.both(number + 1))
            }
        }
        // A hash list that is not a chain proves its one source wrong.
        E::BadLink { number, .. } => match (
            number.checked_sub(1).and_then(|p| prov.hash_source(p)),
            prov.hash_source(*number),
        ) {
            (Some(a), Some(b)) if a == b => Verdict::Proven(vec![a]),
            _ => Verdict::LinkBreak(*number),
        },
        E::UnknownCommittee { .. } | E::Execution { .. } => Verdict::Local,
    }
}

/// Settles a [`Verdict::LinkBreak`] at block `n` (the segment starts at
/// `first`), given whether the blocks from `n` on verified by themselves
/// (`suffix`: `Ok` or their first error). If they did, they are canonical,
/// so block `n − 1` is not: its sources lie; and when `n − 1` is the node's
/// own (verified) head, the committee signed a chain that does not extend
/// it, which no peer can cause: `Local`. If they did not, their own error is
/// judged.
pub fn resolve_break(
    n: u64,
    first: u64,
    last: u64,
    suffix: Result<(), &VerifyError>,
    prov: &Provenance,
) -> Verdict {
    match suffix {
        Ok(()) if n == first => Verdict::Local,
        Ok(()) => Verdict::Proven(prov.both(n - 1)),
        Err(e) => match judge(e, last, prov) {
            // The suffix was verified on its own: a break inside it is
            // another pair, settled the same way by the caller.
            Verdict::LinkBreak(m) if m == n => Verdict::Local,
            v => v,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prov(hashes: &[(u64, StreamId)], bodies: &[(u64, StreamId)]) -> Provenance {
        let mut p = Provenance::default();
        for (n, s) in hashes {
            p.hash_from(*n, *s);
        }
        for (n, s) in bodies {
            p.body_from(*n, *s);
        }
        p
    }

    #[test]
    fn a_bad_side_copy_of_the_last_signature_blames_only_its_sender() {
        let p = prov(&[(10, 1)], &[(10, 2)]);
        let e = VerifyError::BadSignature { number: 10 };
        assert_eq!(judge(&e, 10, &p), Verdict::Proven(vec![2]));
    }

    #[test]
    fn a_bad_signature_carried_by_a_header_blames_who_claimed_and_served_that_header() {
        let p = prov(&[(9, 1), (10, 3)], &[(9, 2), (10, 4)]);
        let e = VerifyError::BadSignature { number: 9 };
        assert_eq!(judge(&e, 20, &p), Verdict::Proven(vec![3, 4]));
    }

    #[test]
    fn a_hash_list_that_is_not_a_chain_blames_its_one_source_not_the_next_sender() {
        // Stream 1 claimed hashes 6 and 7 in one answer; stream 2 served 7.
        let p = prov(&[(6, 1), (7, 1)], &[(6, 1), (7, 2)]);
        let e = VerifyError::BadLink {
            number: 7,
            reason: "parent hash".into(),
        };
        assert_eq!(judge(&e, 20, &p), Verdict::Proven(vec![1]));
    }

    #[test]
    fn a_break_between_two_sources_is_settled_by_the_blocks_after_it() {
        let p = prov(&[(6, 1), (7, 2)], &[(6, 1), (7, 2)]);
        let e = VerifyError::BadLink {
            number: 7,
            reason: "parent hash".into(),
        };
        assert_eq!(judge(&e, 20, &p), Verdict::LinkBreak(7));
        // Blocks 7.. verify on their own: block 6 is not canonical.
        assert_eq!(
            resolve_break(7, 1, 20, Ok(()), &p),
            Verdict::Proven(vec![1])
        );
        // They do not: their own error decides (7's signature, in 8's header).
        let p = prov(&[(6, 1), (7, 2), (8, 2)], &[(6, 1), (7, 2), (8, 2)]);
        let sig = VerifyError::BadSignature { number: 7 };
        assert_eq!(
            resolve_break(7, 1, 20, Err(&sig), &p),
            Verdict::Proven(vec![2])
        );
    }

    #[test]
    fn a_verified_chain_that_does_not_extend_the_head_blames_no_peer() {
        let p = prov(&[(11, 1)], &[(11, 1)]);
        assert_eq!(resolve_break(11, 11, 20, Ok(()), &p), Verdict::Local);
    }

    #[test]
    fn what_peers_cannot_cause_blames_nobody() {
        let p = Provenance::default();
        let e = VerifyError::UnknownCommittee {
            number: 5,
            epoch: 3,
        };
        assert_eq!(judge(&e, 9, &p), Verdict::Local);
        let e = VerifyError::Execution {
            number: 5,
            reason: "state root".into(),
        };
        assert_eq!(judge(&e, 9, &p), Verdict::Local);
    }

    #[test]
    fn only_proven_faults_are_critical() {
        assert!(Fault::ProvenInvalid
            .removal()
            .is_some_and(RemovalReason::is_critical));
        for f in [Fault::Useless, Fault::Unresponsive] {
            assert!(f.removal().is_some_and(|r| !r.is_critical()), "{f:?}");
        }
    }
}
