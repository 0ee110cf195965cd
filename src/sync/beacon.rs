//! The beacon helper (Harmony's name): blocks the host node got from
//! consensus or gossip, handed to the sync with
//! [`Node::offer_block`](crate::Node::offer_block) (the machine's
//! `handle_offered`).
//!
//! Rules:
//! - an offered block at or below the head is refused as stale; one more
//!   than [`MAX_OFFERED_AHEAD`] past the head, or past the buffer's
//!   [`MAX_OFFERED`] blocks / [`MAX_OFFERED_BYTES`], is refused as well
//!   (the buffer is bounded whatever the caller sends);
//! - offered blocks go through the same pipeline as downloaded ones: they
//!   fill the window's empty slots (hash and body), are verified against
//!   the committee the chain of hand-overs established, **every commit
//!   signature checked** (as a short range is), and are committed in
//!   order, whatever order they were offered in;
//! - when the block after the head is offered and the machine is idle, a
//!   cycle to the end of the offered run starts at once (no Heads round);
//! - an offered block with a gap below it triggers a sync (as a consensus
//!   trigger does): Heads, then a cycle that downloads the gap from peers;
//!   the offered blocks are used once the window reaches them;
//! - a block that fails verification is dropped (its number is downloaded
//!   from peers instead) and nobody is blamed: no peer sent it;
//! - committed offered blocks are counted in
//!   `hmy_staged_stream_sync_num_blocks_inserted_beacon_helper`.

use std::time::Instant;

use super::finish::Stat;
use super::machine::{Phase, SyncMachine};
use crate::chain::SealedBlock;
use crate::metrics::names;

/// Most blocks the buffer of offered blocks holds.
pub const MAX_OFFERED: usize = 256;
/// Most bytes (raw blocks) the buffer of offered blocks holds: 32 MiB.
pub const MAX_OFFERED_BYTES: usize = 32 << 20;
/// Farthest an offered block may be past the head, blocks.
pub const MAX_OFFERED_AHEAD: u64 = 4096;

/// Why an offered block was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OfferError {
    /// At or below the head: nothing to do.
    #[error("block {number} is at or below the head {head}")]
    Stale {
        /// The block's number.
        number: u64,
        /// The head.
        head: u64,
    },
    /// Too far past the head to buffer.
    #[error("block {number} is more than {MAX_OFFERED_AHEAD} blocks past the head {head}")]
    TooFarAhead {
        /// The block's number.
        number: u64,
        /// The head.
        head: u64,
    },
    /// The buffer of offered blocks is full.
    #[error(
        "the buffer of offered blocks is full ({MAX_OFFERED} blocks, {MAX_OFFERED_BYTES} bytes)"
    )]
    Full,
    /// The sync is not running (no `Client`, or it ended).
    #[error("the sync is not running")]
    NotSyncing,
}

impl SyncMachine {
    /// The host node hands in a block it got from consensus or gossip
    /// (see the module docs). `Ok` means buffered, not yet verified.
    pub fn handle_offered(&mut self, block: SealedBlock, now: Instant) -> Result<(), OfferError> {
        let number = block.number();
        let head = self.head();
        if number <= head {
            return Err(OfferError::Stale { number, head });
        }
        if number > head + MAX_OFFERED_AHEAD {
            return Err(OfferError::TooFarAhead { number, head });
        }
        if !self.offered.contains_key(&number) {
            // At most MAX_OFFERED blocks: summing them is cheap.
            let bytes: usize = self.offered.values().map(SealedBlock::len).sum();
            if self.offered.len() >= MAX_OFFERED || bytes + block.len() > MAX_OFFERED_BYTES {
                return Err(OfferError::Full);
            }
            self.offered.insert(number, block);
            self.status.offered += 1;
        }
        // A gap below it: sync now, as a consensus trigger does.
        if number > head + 1 && !self.offered.contains_key(&(head + 1)) {
            if let Phase::Idle { .. } = self.phase {
                self.phase = Phase::Idle { until: now };
            }
        }
        self.touch();
        self.step(now);
        Ok(())
    }

    /// Uses what was offered: drops what the head passed, starts a cycle
    /// for a run that continues the head when idle, fills empty slots
    /// while a cycle runs (a cycle also takes them when it starts).
    pub(super) fn use_offered(&mut self, now: Instant) {
        if self.offered.is_empty() {
            return;
        }
        let head = self.head();
        while self
            .offered
            .first_key_value()
            .is_some_and(|(n, _)| *n <= head)
        {
            self.offered.pop_first();
        }
        if matches!(self.phase, Phase::Idle { .. }) && self.offered.contains_key(&(head + 1)) {
            let mut end = head + 1;
            while self.offered.contains_key(&(end + 1)) {
                end += 1;
            }
            self.target = self.target.max(end);
            self.status.target = self.target;
            self.start_cycle(now);
        }
        if matches!(self.phase, Phase::Sync) {
            self.fill_offered();
        }
    }

    /// Moves offered blocks into the window's empty slots (no hash, no
    /// body, nothing asked), so nobody is asked for them.
    pub(super) fn fill_offered(&mut self) {
        if self.offered.is_empty() {
            return;
        }
        let head = self.head();
        let last_slot = head + self.slots.len() as u64;
        if self
            .offered
            .first_key_value()
            .is_none_or(|(n, _)| *n > last_slot)
        {
            return;
        }
        let fits: Vec<u64> = self
            .offered
            .range(..=last_slot)
            .map(|(n, _)| *n)
            .filter(|n| {
                self.slot(*n).is_some_and(|s| {
                    s.body.is_none() && s.body_req.is_none() && !s.batched && s.hash.is_none()
                })
            })
            .collect();
        for n in fits {
            let Some(b) = self.offered.remove(&n) else {
                continue;
            };
            self.beacon.insert(n, b.hash);
            self.prov.forget(n);
            self.held += b.mem_bytes();
            if let Some(s) = self.slot_mut(n) {
                s.hash = Some(b.hash);
                s.body = Some(Box::new(b));
            }
            self.touch();
        }
    }

    /// Counts the committed blocks that were offered.
    pub(super) fn count_beacon(&mut self, committed: &[(u64, crate::crypto::B256)]) {
        let mut n = 0;
        for (number, hash) in committed {
            if self.beacon.remove(number) == Some(*hash) {
                n += 1;
            }
        }
        if let Some(last) = committed.last() {
            self.beacon = self.beacon.split_off(&(last.0 + 1));
        }
        if n > 0 {
            self.status.beacon_inserted += n;
            self.stat(Stat::Counter(names::NUM_BLOCKS_INSERTED_BEACON_HELPER, n));
        }
    }
}
