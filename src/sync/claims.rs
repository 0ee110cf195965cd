//! Hash claims awaiting proof: "soft first, critical when proven".
//!
//! When no body can be found for hashes a stream claimed (it cannot serve
//! them itself), the stream pays softly at once and its claims are kept
//! here. Once the canonical blocks at those numbers are committed (verified
//! through signatures), every claim that contradicts them is proof that its
//! peer lied, and the peer pays critically, even if its stream is long gone
//! (hence claims are kept by peer, not by stream).
//!
//! Bounded: at most [`MAX_CLAIMS`] claims; past that, new ones are dropped
//! (the soft blame already happened).

use std::collections::BTreeMap;

use libp2p_identity::PeerId;

use crate::crypto::B256;

/// Most claims kept at once.
pub const MAX_CLAIMS: usize = 65_536;

/// Disputed hash claims by block number.
#[derive(Debug, Default)]
pub struct Claims {
    by_number: BTreeMap<u64, Vec<(B256, PeerId)>>,
    len: usize,
}

impl Claims {
    /// Keeps `peer`'s claim that block `n` has hash `hash`.
    pub fn record(&mut self, n: u64, hash: B256, peer: PeerId) {
        if self.len >= MAX_CLAIMS {
            return;
        }
        let v = self.by_number.entry(n).or_default();
        if !v.contains(&(hash, peer)) {
            v.push((hash, peer));
            self.len += 1;
        }
    }

    /// Claims kept.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no claim is kept.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Blocks `committed` (number, hash, ascending) are canonical: returns
    /// the peers whose claims they contradict (each once) and forgets every
    /// claim at or below the last of them.
    pub fn settle(&mut self, committed: &[(u64, B256)]) -> Vec<PeerId> {
        let Some(&(top, _)) = committed.last() else {
            return Vec::new();
        };
        let mut liars = Vec::new();
        for (n, hash) in committed {
            for (claimed, peer) in self.by_number.get(n).into_iter().flatten() {
                if claimed != hash && !liars.contains(peer) {
                    liars.push(*peer);
                }
            }
        }
        let rest = self.by_number.split_off(&(top + 1));
        self.by_number = rest;
        self.len = self.by_number.values().map(Vec::len).sum();
        liars
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> PeerId {
        crate::crypto::NodeIdentity::generate().peer_id()
    }

    #[test]
    fn a_claim_contradicted_by_the_committed_chain_proves_its_peer_lied() {
        let (liar, honest) = (peer(), peer());
        let mut c = Claims::default();
        c.record(5, [1; 32], liar);
        c.record(6, [2; 32], liar);
        c.record(5, [9; 32], honest);
        c.record(40, [3; 32], liar);
        assert_eq!(c.settle(&[(5, [9; 32]), (6, [7; 32])]), vec![liar]);
        assert_eq!(c.len(), 1, "claims above the commit are kept");
        assert_eq!(c.settle(&[(40, [3; 32])]), Vec::<PeerId>::new());
        assert!(c.is_empty());
    }

    #[test]
    fn claims_are_bounded() {
        let mut c = Claims::default();
        let p = peer();
        for n in 0..(MAX_CLAIMS as u64 + 10) {
            c.record(n, [0; 32], p);
        }
        assert_eq!(c.len(), MAX_CLAIMS);
    }
}
