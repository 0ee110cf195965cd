//! SyncEpoch: the committees of the epochs the window reaches, from the
//! block naming each (the last block of the epoch before), each verified
//! against the committee before it, in the background: batches never wait
//! for it when the hand-over is in the window, but a committee it
//! established always wins over one named inside a downloaded segment (a
//! forged hand-over is then a `CommitteeMismatch`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::blame::Fault;
use super::finish::Stat;
use super::machine::{ReqKind, SyncMachine};
use crate::chain::verify::{sig_job, verify_body, CommitteeKeys};
use crate::chain::{BlockWithSig, VerifyError};
use crate::crypto::check_batch;
use crate::metrics::names;
use crate::net::StreamId;
use crate::request::Priority;
use crate::wire::{Request, Response};

/// How far past the next batch SyncEpoch fetches committees (blocks): as
/// far as BlockHashes runs ahead, so that at a 200 ms round trip and
/// ~50,000 blocks/s (10,000 blocks per round trip) a batch never waits for
/// its committee (8,192 did: batches stalled a round trip per epoch).
const EPOCH_LOOKAHEAD: u64 = super::block_hashes::HASHES_AHEAD;
/// Epoch blocks asked at once.
const EPOCHS_IN_FLIGHT: usize = 64;
/// How long a batch spanning an epoch waits for SyncEpoch's committee
/// before verifying with the committee named inside the window.
pub(super) const EPOCH_WAIT: Duration = Duration::from_secs(1);

impl SyncMachine {
    /// Whether a request for epoch `e`'s block is in flight and young
    /// enough to wait for.
    pub(super) fn epoch_pending(&self, e: u64, now: Instant) -> bool {
        self.reqs
            .values()
            .any(|r| matches!(r.kind, ReqKind::Epoch(x) if x == e) && now < r.sent + EPOCH_WAIT)
    }

    /// `stream` could not give epoch `e`'s block: it is not asked for it
    /// again this cycle (each stream listed once).
    pub(super) fn epoch_lacking(&mut self, e: u64, stream: StreamId) {
        let who = self.epoch_lacks.entry(e).or_default();
        if !who.contains(&stream) {
            who.push(stream);
        }
    }

    /// When the oldest epoch request stops being waited for.
    pub(super) fn epoch_wait_deadline(&self) -> Option<Instant> {
        self.reqs
            .values()
            .filter(|r| matches!(r.kind, ReqKind::Epoch(_)))
            .map(|r| r.sent + EPOCH_WAIT)
            .min()
    }

    /// The highest epoch whose committee, and every one before it from the
    /// head's, is established.
    fn known_epoch(&self) -> u64 {
        let mut e = self.spec.epoch_of(self.head());
        while self.committees.contains_key(&(e + 1)) {
            e += 1;
        }
        e
    }

    /// Asks for the epoch blocks the window needs.
    pub(super) fn request_epochs(&mut self, now: Instant) {
        // Only the committees the next batches need (each costs a pairing
        // check on this thread), not every epoch up to the target at once.
        let reach = self
            .window_end()
            .min(self.hash_next.max(self.verify_next))
            .min(self.verify_next + EPOCH_LOOKAHEAD);
        let want = self.spec.epoch_of(reach);
        let known = self.known_epoch();
        let asking = self
            .reqs
            .values()
            .filter(|r| matches!(r.kind, ReqKind::Epoch(_)))
            .count();
        let mut room = EPOCHS_IN_FLIGHT.saturating_sub(asking);
        for e in known + 1..=want {
            if room == 0 {
                break;
            }
            if self.epochs_asked.contains(&e) || self.epoch_blocks.contains_key(&e) {
                continue;
            }
            // Epoch blocks are small and few: they do not wait for room in
            // a stream's window; they go to the stream with fewest in flight.
            let lacking = self.epoch_lacks.get(&e).cloned().unwrap_or_default();
            let Some(s) = self
                .links
                .iter()
                .filter(|(s, _)| !lacking.contains(s))
                .min_by_key(|(s, l)| (l.in_flight, **s))
                .map(|(s, _)| *s)
            else {
                continue;
            };
            if self.epochs_asked.is_empty() {
                self.stat(Stat::Counter(names::NUM_EPOCH_SYNC, 1));
            }
            self.epochs_asked.insert(e);
            self.submit(
                ReqKind::Epoch(e),
                Request::GetEpochState(e),
                s,
                Priority::High,
                0,
                now,
            );
            room -= 1;
        }
    }

    /// An epoch block arrived.
    pub(super) fn on_epoch_answer(&mut self, e: u64, stream: StreamId, resp: Response) {
        let Response::EpochState(Some(bytes)) = resp else {
            // Absent or refused: soft; asked of another stream.
            self.epochs_asked.remove(&e);
            self.epoch_lacking(e, stream);
            return;
        };
        let Ok(b) = BlockWithSig::from_bytes(&bytes) else {
            self.blame(stream, Fault::ProvenInvalid, "undecodable epoch block");
            return;
        };
        if e == 0 || b.block.number() != self.spec.epoch_last_block(e - 1) {
            self.blame(
                stream,
                Fault::ProvenInvalid,
                "epoch block with the wrong number",
            );
            return;
        }
        self.epoch_blocks.insert(e, (b, stream));
        self.extend_committees();
    }

    /// Establishes the committees whose naming blocks verify, in order.
    fn extend_committees(&mut self) {
        let mut established = 0u64;
        loop {
            let known = self.known_epoch();
            let e = known + 1;
            let Some((b, stream)) = self.epoch_blocks.remove(&e) else {
                break;
            };
            let Some(signer) = self.committees.get(&known).cloned() else {
                break;
            };
            let h = &b.block.header;
            let hash = h.hash();
            let prepared = verify_body(&self.spec, &b.block)
                .and_then(|c| {
                    c.ok_or(VerifyError::BadHandOver {
                        number: h.number,
                        reason: "epoch block names no committee".into(),
                    })
                })
                .and_then(|c| CommitteeKeys::new(e, &c, h.number))
                .and_then(|k| {
                    sig_job(h.number, &hash, h.view_id, &b.commit_sig, &signer).map(|j| (k, j))
                });
            let (k, job) = match prepared {
                Ok(x) => x,
                Err(err) => {
                    self.blame(stream, Fault::ProvenInvalid, err.to_string());
                    break;
                }
            };
            let check = check_batch(std::slice::from_ref(&job));
            self.status.sigs_verified += check.checked as u64;
            if !check.bad.is_empty() {
                self.blame(
                    stream,
                    Fault::ProvenInvalid,
                    "epoch block signature invalid",
                );
                break;
            }
            self.committees.insert(e, Arc::new(k));
            established += 1;
        }
        if established > 0 {
            self.stat(Stat::Histogram(
                names::NUM_BLOCKS_INSERTED_EPOCH_SYNC,
                established as f64,
            ));
            self.touch();
        }
    }
}
