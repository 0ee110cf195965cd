//! LMDB batch insert: blocks/s and MB/s, durable (fsync per commit) and no-sync.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use streamsync::chain::backend::InsertBatch;
use streamsync::chain::generator::Generator;
use streamsync::chain::{BlockWithSig, Genesis, GenesisSpec};
use streamsync::store::{Store, StoreOptions};

/// Blocks per insert_batch (InsertChainBatchSize default).
const BATCH: usize = 128;
/// Batches inserted per iteration.
const BATCHES: usize = 8;

fn chain() -> (Genesis, Vec<BlockWithSig>) {
    let spec = GenesisSpec {
        seed: 1,
        network: "localnet".into(),
        shard_id: 0,
        epoch_len: 1000,
        committee_size: 64,
        accounts: 256,
    };
    let (mut g, genesis) = Generator::new(spec, 4).expect("spec");
    let blocks = (0..BATCH * BATCHES)
        .map(|_| g.next_block().expect("block"))
        .collect();
    (genesis, blocks)
}

fn insert(c: &mut Criterion) {
    let (genesis, blocks) = chain();
    let bytes: usize = blocks.iter().map(|b| b.to_bytes().len()).sum();
    let mut g = c.benchmark_group("lmdb_insert_1024_blocks");
    g.sample_size(10);
    for durable in [true, false] {
        let name = if durable { "durable" } else { "no_sync" };
        for (unit, tp) in [
            ("blocks", Throughput::Elements(blocks.len() as u64)),
            ("bytes", Throughput::Bytes(bytes as u64)),
        ] {
            g.throughput(tp);
            g.bench_function(format!("{name}_{unit}"), |x| {
                x.iter_batched(
                    || {
                        let dir = tempfile::tempdir().expect("tmp");
                        let opts = StoreOptions {
                            durable,
                            ..StoreOptions::default()
                        };
                        let store =
                            Store::open_or_create(dir.path(), &genesis, opts).expect("store");
                        (dir, store)
                    },
                    |(dir, store)| {
                        for chunk in blocks.chunks(BATCH) {
                            store
                                .insert_batch(&InsertBatch::seal(chunk.to_vec(), vec![]))
                                .expect("insert");
                        }
                        (dir, store)
                    },
                    BatchSize::PerIteration,
                )
            });
        }
    }
    g.finish();
}

criterion_group!(benches, insert);
criterion_main!(benches);
