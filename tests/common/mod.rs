//! Shared helpers for integration tests: small generated chains.
#![allow(dead_code)]

use std::sync::Arc;

use streamsync::chain::generator::Generator;
use streamsync::chain::verify::CommitteeKeys;
use streamsync::chain::{BlockWithSig, ChainSpec, Genesis, GenesisSpec};

/// A small spec: epochs of `epoch_len`, committee of `committee`.
pub fn spec(seed: u64, epoch_len: u64, committee: u32) -> GenesisSpec {
    GenesisSpec {
        seed,
        network: "localnet".into(),
        shard_id: 0,
        epoch_len,
        committee_size: committee,
        accounts: 16,
    }
}

/// Genesis, chain spec and `n` blocks after genesis.
pub fn chain(spec: GenesisSpec, txs: u32, n: usize) -> (Genesis, ChainSpec, Vec<BlockWithSig>) {
    let (mut g, genesis) = Generator::new(spec, txs).expect("valid spec");
    let blocks = (0..n).map(|_| g.next_block().expect("generates")).collect();
    let chain = g.chain_spec().clone();
    (genesis, chain, blocks)
}

/// Validated committee keys of every epoch named by `genesis` and `blocks`.
pub fn committees(
    chain: &ChainSpec,
    genesis: &Genesis,
    blocks: &[BlockWithSig],
) -> Vec<Arc<CommitteeKeys>> {
    let mut out = vec![Arc::new(
        CommitteeKeys::new(0, &genesis.block.body.committee(), 0).expect("genesis committee"),
    )];
    for b in blocks {
        let n = b.block.number();
        if chain.is_epoch_last(n) {
            let epoch = chain.epoch_of(n) + 1;
            out.push(Arc::new(
                CommitteeKeys::new(epoch, &b.block.body.committee(), n).expect("committee"),
            ));
        }
    }
    out
}

pub mod nodes;
#[cfg(feature = "testkit")]
pub mod peer;
pub mod watched;

/// A fresh store (no fsync) holding `genesis` and then `blocks`.
pub fn store(
    genesis: &Genesis,
    blocks: &[BlockWithSig],
) -> (std::sync::Arc<streamsync::store::Store>, tempfile::TempDir) {
    use streamsync::chain::backend::InsertBatch;
    use streamsync::store::{Store, StoreOptions};
    let dir = tempfile::tempdir().expect("tmp");
    let opts = StoreOptions {
        durable: false,
        ..StoreOptions::default()
    };
    let s = std::sync::Arc::new(Store::open_or_create(dir.path(), genesis, opts).expect("store"));
    if !blocks.is_empty() {
        s.insert_batch(&InsertBatch::seal(blocks.to_vec(), vec![]))
            .expect("insert");
    }
    (s, dir)
}
