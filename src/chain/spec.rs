//! Chain parameters and the deterministic genesis.

use alloy_rlp::{Bytes, RlpDecodable, RlpEncodable};

use super::state::{commit_root, Account, Address, StateDiff};
use super::types::{Block, Body, Committee, Header};
use crate::config::Network;
use crate::crypto::hash::{keccak256_parts, ZERO_HASH};
use crate::crypto::{BlsError, BlsSecretKey, B256, SIGNATURE_LEN};

/// Timestamp of every genesis block (2024-01-01T00:00:00Z), seconds.
pub const GENESIS_TIMESTAMP: u64 = 1_704_067_200;
/// Starting balance of each genesis account, base units.
pub const GENESIS_BALANCE: u128 = 1_000_000_000_000_000_000;

/// What identifies a chain: a store refuses to mix chains that differ here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainSpec {
    /// Network the chain belongs to.
    pub network: Network,
    /// Shard id.
    pub shard_id: u32,
    /// Blocks per epoch (≥ 1). Block N is in epoch N / epoch_len.
    pub epoch_len: u64,
    /// Hash of block 0.
    pub genesis_hash: B256,
}

impl ChainSpec {
    /// The epoch block `number` belongs to.
    pub fn epoch_of(&self, number: u64) -> u64 {
        number / self.epoch_len
    }

    /// Whether `number` is the last block of its epoch (it names the next
    /// committee).
    pub fn is_epoch_last(&self, number: u64) -> bool {
        (number + 1).is_multiple_of(self.epoch_len)
    }

    /// The last block of `epoch`.
    pub fn epoch_last_block(&self, epoch: u64) -> u64 {
        (epoch + 1) * self.epoch_len - 1
    }
}

/// Parameters a genesis (and the generator) is derived from. Same spec →
/// same genesis, byte for byte.
#[derive(Clone, Debug, PartialEq, Eq, RlpEncodable, RlpDecodable)]
pub struct GenesisSpec {
    /// Seed of every key, address and transfer.
    pub seed: u64,
    /// Network name (see [`Network`]).
    pub network: String,
    /// Shard id.
    pub shard_id: u32,
    /// Blocks per epoch (≥ 1).
    pub epoch_len: u64,
    /// Members per committee (1..=`MAX_COMMITTEE_SIZE`).
    pub committee_size: u32,
    /// Genesis accounts (≥ 2).
    pub accounts: u32,
}

/// A complete genesis: block 0, its state and the committee of epoch 0.
#[derive(Clone, Debug)]
pub struct Genesis {
    /// The spec it was derived from.
    pub spec: GenesisSpec,
    /// Block 0 (its body names the committee of epoch 0).
    pub block: Block,
    /// Genesis accounts, sorted by address.
    pub alloc: Vec<(Address, Account)>,
}

/// The secret key of committee slot `slot` in `epoch` for a chain seed
/// ([`GenesisSpec::chain_seed`]).
pub fn committee_secret(
    chain_seed: &B256,
    epoch: u64,
    slot: u32,
) -> Result<BlsSecretKey, BlsError> {
    let ikm = keccak256_parts(&[
        b"streamsync-committee",
        chain_seed,
        &epoch.to_be_bytes(),
        &slot.to_be_bytes(),
    ]);
    BlsSecretKey::from_ikm(&ikm)
}

/// The address of genesis account `index` for a chain seed.
pub fn account_address(chain_seed: &B256, index: u32) -> Address {
    let h = keccak256_parts(&[b"streamsync-account", chain_seed, &index.to_be_bytes()]);
    let mut a = [0u8; 20];
    a.copy_from_slice(&h[..20]);
    a
}

impl GenesisSpec {
    /// The spec `streamsync gen-chain` and `node` use by default for
    /// `network` and `seed`: shard 0, epochs of 1,000 blocks, 64-member
    /// committees, 256 funded accounts.
    pub fn with_defaults(network: &str, seed: u64) -> Self {
        GenesisSpec {
            seed,
            network: network.into(),
            shard_id: 0,
            epoch_len: 1000,
            committee_size: 64,
            accounts: 256,
        }
    }

    /// The seed every key and address derives from: the user's seed bound to
    /// the network and shard, so chains of different networks never share a
    /// genesis.
    pub fn chain_seed(&self) -> B256 {
        keccak256_parts(&[
            b"streamsync-chain",
            &self.seed.to_be_bytes(),
            self.network.as_bytes(),
            &self.shard_id.to_be_bytes(),
        ])
    }

    /// The committee secret keys of `epoch`.
    pub fn committee_secrets(&self, epoch: u64) -> Result<Vec<BlsSecretKey>, BlsError> {
        (0..self.committee_size)
            .map(|slot| committee_secret(&self.chain_seed(), epoch, slot))
            .collect()
    }

    /// The committee (public keys) of `epoch`.
    pub fn committee(&self, epoch: u64) -> Result<Committee, BlsError> {
        Ok(Committee {
            keys: self
                .committee_secrets(epoch)?
                .iter()
                .map(|k| k.public_key().to_bytes())
                .collect(),
        })
    }

    /// Builds the genesis.
    pub fn build(&self) -> Result<Genesis, BlsError> {
        let mut alloc: Vec<(Address, Account)> = (0..self.accounts)
            .map(|i| {
                (
                    account_address(&self.chain_seed(), i),
                    Account {
                        nonce: 0,
                        balance: GENESIS_BALANCE,
                    },
                )
            })
            .collect();
        alloc.sort_by_key(|a| a.0);
        let diff: StateDiff = alloc.iter().copied().collect();
        let committee = self.committee(0)?;
        let body = Body {
            transfers: vec![],
            next_committee: committee.keys.clone(),
        };
        let header = Header {
            parent_hash: ZERO_HASH,
            number: 0,
            epoch: 0,
            shard_id: self.shard_id,
            view_id: 0,
            timestamp: GENESIS_TIMESTAMP,
            tx_root: body.tx_root(),
            state_root: commit_root(&ZERO_HASH, &diff),
            last_commit_sig: [0u8; SIGNATURE_LEN],
            last_commit_bitmap: Bytes::new(),
            next_committee_hash: committee.hash(),
        };
        Ok(Genesis {
            spec: self.clone(),
            block: Block { header, body },
            alloc,
        })
    }
}

impl Genesis {
    /// The chain spec this genesis defines. Fails if the network name is unknown.
    pub fn chain_spec(&self) -> Result<ChainSpec, crate::config::ConfigError> {
        Ok(ChainSpec {
            network: self.spec.network.parse()?,
            shard_id: self.spec.shard_id,
            epoch_len: self.spec.epoch_len,
            genesis_hash: self.block.hash(),
        })
    }
}
