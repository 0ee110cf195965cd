//! Work many simulated nodes would repeat, done once: BLS pairing checks
//! and peer-record signature checks are pure functions of their bytes, so
//! the simulator remembers each result. Every check is real (blst,
//! libp2p's signed envelopes) the first time; a node repeating it gets the
//! same answer for free, and pays in *virtual* CPU time instead
//! ([`CpuModel`]).

use std::collections::HashMap;
use std::time::Duration;

use alloy_rlp::Bytes;

use crate::crypto::{check_batch, keccak256, BatchCheck, SigJob, B256};
use crate::stream::record::verify_record;
use crate::stream::PeerAddr;
use crate::wire::ProtocolId;

/// Virtual CPU time a node spends verifying (the simulator's cost model;
/// the defaults are this engine's measurements on the 2-core machine,
/// issue 9: ~1 ms per signature in the sync's small batches, ~20 µs per
/// block for everything else).
#[derive(Clone, Copy, Debug)]
pub struct CpuModel {
    /// Per commit signature handed to the pairing check.
    pub per_signature: Duration,
    /// Per block verified (hashing, links, bodies, execution).
    pub per_block: Duration,
}

impl Default for CpuModel {
    fn default() -> Self {
        CpuModel {
            per_signature: Duration::from_micros(1000),
            per_block: Duration::from_micros(20),
        }
    }
}

impl CpuModel {
    /// The virtual time to verify `blocks` blocks with `sigs` signatures.
    pub fn cost(&self, blocks: usize, sigs: usize) -> Duration {
        self.per_block * blocks as u32 + self.per_signature * sigs as u32
    }
}

/// Results of real checks, shared by all nodes of a simulation.
#[derive(Debug, Default)]
pub struct Memo {
    sigs: HashMap<B256, bool>,
    records: HashMap<Bytes, Option<PeerAddr>>,
    /// Pairing checks really run (the rest were remembered).
    pub sigs_computed: u64,
    /// Pairing checks answered from the memo.
    pub sigs_remembered: u64,
}

fn key(job: &SigJob) -> B256 {
    let mut b = Vec::with_capacity(job.msg.len() + 48 + 96);
    b.extend_from_slice(&job.msg);
    b.extend_from_slice(&job.pk.to_bytes());
    b.extend_from_slice(&job.sig.to_bytes());
    keccak256(&b)
}

impl Memo {
    /// [`check_batch`], with each job's result remembered by (message,
    /// key, signature).
    pub fn check(&mut self, jobs: &[SigJob]) -> BatchCheck {
        let keys: Vec<B256> = jobs.iter().map(key).collect();
        let unknown: Vec<usize> = (0..jobs.len())
            .filter(|i| !self.sigs.contains_key(&keys[*i]))
            .collect();
        if !unknown.is_empty() {
            let fresh: Vec<SigJob> = unknown.iter().map(|i| jobs[*i].clone()).collect();
            let r = check_batch(&fresh);
            for (n, i) in unknown.iter().enumerate() {
                self.sigs.insert(keys[*i], !r.bad.contains(&n));
            }
            self.sigs_computed += unknown.len() as u64;
        }
        self.sigs_remembered += (jobs.len() - unknown.len()) as u64;
        BatchCheck {
            bad: (0..jobs.len())
                .filter(|i| self.sigs.get(&keys[*i]) == Some(&false))
                .collect(),
            checked: jobs.len(),
        }
    }

    /// The peer a signed record names (and its first address), `None` when
    /// the record does not verify for `protocol`.
    pub fn record(&mut self, bytes: &Bytes, protocol: &ProtocolId) -> Option<PeerAddr> {
        if let Some(r) = self.records.get(bytes) {
            return *r;
        }
        let r = verify_record(bytes, protocol).ok().and_then(|r| {
            r.addrs.first().map(|a| PeerAddr {
                peer: r.peer,
                addr: *a,
            })
        });
        self.records.insert(bytes.clone(), r);
        r
    }
}
