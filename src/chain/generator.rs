//! Deterministic chain generator: same [`GenesisSpec`] and transfers per
//! block → same blocks, byte for byte.
//!
//! Every block is committed by a random ≥ 2/3 subset of its epoch's committee.
//! Since all signers sign one message, the aggregate signature equals one
//! signature by the sum of their secret keys (DESIGN.md §4), so a block costs
//! one BLS signing whatever the committee size.

use std::collections::HashMap;

use alloy_rlp::Bytes;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use super::spec::{ChainSpec, Genesis, GenesisSpec, GENESIS_TIMESTAMP};
use super::state::{execute, Account, Address};
use super::types::{Block, BlockWithSig, Body, CommitSig, Header, Transfer};
use crate::crypto::hash::{keccak256_parts, ZERO_HASH};
use crate::crypto::{BlsError, BlsSecretKey, B256};

/// Seconds between consecutive generated blocks.
pub const BLOCK_INTERVAL_SECS: u64 = 2;

/// Why generation failed (a bug or an impossible spec, never the network).
#[derive(Debug, thiserror::Error)]
pub enum GenError {
    /// Key derivation failed.
    #[error("key derivation: {0}")]
    Bls(#[from] BlsError),
    /// The spec is unusable.
    #[error("invalid generator spec: {0}")]
    Spec(String),
    /// A generated transfer did not execute (a generator bug).
    #[error("generated block {0} does not execute: {1}")]
    Exec(u64, String),
}

/// Produces blocks 1, 2, ... after a genesis, each with its commit signature.
pub struct Generator {
    genesis_spec: GenesisSpec,
    chain: ChainSpec,
    txs_per_block: u32,
    rng: ChaCha8Rng,
    state: HashMap<Address, Account>,
    accounts: Vec<Address>,
    prev: Header,
    prev_hash: B256,
    prev_commit: CommitSig,
    epoch: u64,
    secrets: Vec<BlsSecretKey>,
}

impl std::fmt::Debug for Generator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generator")
            .field("spec", &self.genesis_spec)
            .field("next", &(self.prev.number + 1))
            .finish()
    }
}

impl Generator {
    /// Builds the genesis of `spec` and a generator positioned after it.
    pub fn new(spec: GenesisSpec, txs_per_block: u32) -> Result<(Self, Genesis), GenError> {
        if spec.epoch_len == 0 {
            return Err(GenError::Spec("epoch length must be ≥ 1".into()));
        }
        if spec.committee_size == 0
            || spec.committee_size as usize > super::limits::MAX_COMMITTEE_SIZE
        {
            return Err(GenError::Spec(format!(
                "committee size {} not in 1..={}",
                spec.committee_size,
                super::limits::MAX_COMMITTEE_SIZE
            )));
        }
        if spec.accounts < 2 {
            return Err(GenError::Spec("need at least 2 accounts".into()));
        }
        if txs_per_block as usize > super::limits::MAX_TRANSFERS_PER_BLOCK {
            return Err(GenError::Spec(format!(
                "{} transfers per block exceeds {}",
                txs_per_block,
                super::limits::MAX_TRANSFERS_PER_BLOCK
            )));
        }
        let genesis = spec.build()?;
        let chain = genesis
            .chain_spec()
            .map_err(|e| GenError::Spec(e.to_string()))?;
        let seed = keccak256_parts(&[b"streamsync-generator", &spec.chain_seed()]);
        let secrets = spec.committee_secrets(0)?;
        let mut g = Generator {
            genesis_spec: spec,
            chain,
            txs_per_block,
            rng: ChaCha8Rng::from_seed(seed),
            state: genesis.alloc.iter().copied().collect(),
            accounts: genesis.alloc.iter().map(|(a, _)| *a).collect(),
            prev: genesis.block.header.clone(),
            prev_hash: genesis.block.hash(),
            prev_commit: CommitSig {
                signature: [0; 96],
                bitmap: Bytes::new(),
            },
            epoch: 0,
            secrets,
        };
        g.prev_commit = g.commit(&genesis.block.header, &g.prev_hash.clone())?;
        Ok((g, genesis))
    }

    /// The chain spec of the generated chain.
    pub fn chain_spec(&self) -> &ChainSpec {
        &self.chain
    }

    /// The commit signature of the last block produced (genesis at first).
    pub fn last_commit(&self) -> &CommitSig {
        &self.prev_commit
    }

    fn commit(&mut self, header: &Header, hash: &B256) -> Result<CommitSig, GenError> {
        let size = self.secrets.len();
        let max_absent = size - (size * 2).div_ceil(3);
        let absent = if max_absent == 0 {
            0
        } else {
            (self.rng.next_u64() % (max_absent as u64 + 1)) as usize
        };
        let mut signing = vec![true; size];
        for _ in 0..absent {
            signing[(self.rng.next_u64() % size as u64) as usize] = false;
        }
        let mut bitmap = vec![0u8; size.div_ceil(8)];
        for (i, s) in signing.iter().enumerate() {
            if *s {
                bitmap[i / 8] |= 1 << (i % 8);
            }
        }
        let key = BlsSecretKey::sum(
            self.secrets
                .iter()
                .zip(&signing)
                .filter(|(_, s)| **s)
                .map(|(k, _)| k),
        )
        .ok_or_else(|| GenError::Spec("no signers".into()))?;
        let sig = key.sign(&CommitSig::message(hash, header.number, header.view_id));
        Ok(CommitSig {
            signature: sig.to_bytes(),
            bitmap: Bytes::from(bitmap),
        })
    }

    fn transfers(&mut self) -> Vec<Transfer> {
        let n = self.accounts.len() as u64;
        // Nonces used so far in this block, so a sender's second transfer in
        // the same block is valid too.
        let mut used: HashMap<Address, u64> = HashMap::new();
        (0..self.txs_per_block)
            .map(|_| {
                let from = self.accounts[(self.rng.next_u64() % n) as usize];
                let to = self.accounts[(self.rng.next_u64() % n) as usize];
                let base = self.state.get(&from).map_or(0, |a| a.nonce);
                let k = used.entry(from).or_insert(0);
                let nonce = base + *k;
                *k += 1;
                Transfer {
                    from,
                    to,
                    amount: 1 + self.rng.next_u64() % 1000,
                    nonce,
                }
            })
            .collect()
    }

    /// Produces the next block with its commit signature.
    pub fn next_block(&mut self) -> Result<BlockWithSig, GenError> {
        let number = self.prev.number + 1;
        let epoch = self.chain.epoch_of(number);
        if epoch != self.epoch {
            self.secrets = self.genesis_spec.committee_secrets(epoch)?;
            self.epoch = epoch;
        }
        let transfers = self.transfers();
        let state = &self.state;
        let (diff, state_root) = execute(&transfers, &self.prev.state_root, |a| {
            Ok::<_, std::convert::Infallible>(state.get(a).copied())
        })
        .map_err(|e| GenError::Exec(number, e.to_string()))?;
        self.state.extend(diff);
        let next_committee = if self.chain.is_epoch_last(number) {
            self.genesis_spec.committee(epoch + 1)?.keys
        } else {
            vec![]
        };
        let body = Body {
            transfers,
            next_committee,
        };
        let next_committee_hash = if body.next_committee.is_empty() {
            ZERO_HASH
        } else {
            body.committee().hash()
        };
        let header = Header {
            parent_hash: self.prev_hash,
            number,
            epoch,
            shard_id: self.chain.shard_id,
            view_id: number + self.rng.next_u64() % 2,
            timestamp: GENESIS_TIMESTAMP + number * BLOCK_INTERVAL_SECS,
            tx_root: body.tx_root(),
            state_root,
            last_commit_sig: self.prev_commit.signature,
            last_commit_bitmap: self.prev_commit.bitmap.clone(),
            next_committee_hash,
        };
        let hash = header.hash();
        let commit = self.commit(&header, &hash)?;
        self.prev = header.clone();
        self.prev_hash = hash;
        self.prev_commit = commit.clone();
        Ok(BlockWithSig {
            block: Block { header, body },
            commit_sig: commit,
        })
    }
}

/// Blocks generated per probe when sizing blocks ([`txs_for_block_size`]).
const SIZE_PROBE_BLOCKS: usize = 16;
/// Transfers per block of the second probe.
const SIZE_PROBE_TXS: u32 = 256;

/// Average encoded size (`BlockWithSig::to_bytes`), bytes, of the first
/// [`SIZE_PROBE_BLOCKS`] blocks `spec` generates with `txs` transfers each.
fn probe_block_bytes(spec: &GenesisSpec, txs: u32) -> Result<f64, GenError> {
    let (mut g, _) = Generator::new(spec.clone(), txs)?;
    let mut total = 0usize;
    for _ in 0..SIZE_PROBE_BLOCKS {
        total += g.next_block()?.to_bytes().len();
    }
    Ok(total as f64 / SIZE_PROBE_BLOCKS as f64)
}

/// The transfers per block that make the blocks of `spec` about `bytes`
/// bytes long on average, encoded with their commit signature
/// (`BlockWithSig::to_bytes`, what a peer sends). Measured on a few probe
/// blocks with no and with `SIZE_PROBE_TXS` transfers (a block grows
/// linearly, ~47 bytes per transfer); later blocks come out a few percent
/// larger as the nonces grow. Fails if `bytes` is below an empty block or
/// above a block of `MAX_TRANSFERS_PER_BLOCK` transfers.
pub fn txs_for_block_size(spec: &GenesisSpec, bytes: usize) -> Result<u32, GenError> {
    let empty = probe_block_bytes(spec, 0)?;
    let per_tx = (probe_block_bytes(spec, SIZE_PROBE_TXS)? - empty) / f64::from(SIZE_PROBE_TXS);
    let max = super::limits::MAX_TRANSFERS_PER_BLOCK;
    if per_tx <= 0.0 {
        return Err(GenError::Spec("transfers do not grow the block".into()));
    }
    let n = ((bytes as f64 - empty) / per_tx).round();
    if n < 0.0 {
        return Err(GenError::Spec(format!(
            "a block of {bytes} bytes is smaller than an empty block (~{empty:.0} bytes)"
        )));
    }
    if n > max as f64 {
        return Err(GenError::Spec(format!(
            "a block of {bytes} bytes needs more than {max} transfers (the largest is ~{:.0} bytes)",
            empty + per_tx * max as f64
        )));
    }
    Ok(n as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> GenesisSpec {
        GenesisSpec {
            seed: 1,
            network: "localnet".into(),
            shard_id: 0,
            epoch_len: 1000,
            committee_size: 64,
            accounts: 256,
        }
    }

    #[test]
    fn block_size_picks_the_transfers_per_block() {
        let spec = spec();
        for target in [2048usize, 20 * 1024] {
            let n = txs_for_block_size(&spec, target).expect("size");
            let (mut g, _) = Generator::new(spec.clone(), n).expect("gen");
            let blocks = 64;
            let total: usize = (0..blocks)
                .map(|_| g.next_block().expect("block").to_bytes().len())
                .sum();
            let avg = total as f64 / blocks as f64;
            let err = (avg - target as f64).abs() / target as f64;
            assert!(err < 0.05, "{target} bytes: {n} transfers give {avg:.0}");
        }
        assert!(txs_for_block_size(&spec, 10).is_err());
        assert!(txs_for_block_size(&spec, 1 << 20).is_err());
    }
}
