//! Batch commit-signature verification: one thread vs rayon on all cores.
//! Throughput is in signatures (elements/s = signatures/s).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use streamsync::chain::generator::Generator;
use streamsync::chain::verify::{sig_job, CommitteeKeys};
use streamsync::chain::GenesisSpec;
use streamsync::crypto::{verify_batch, SigJob};

/// Signatures per benchmark iteration (as one States batch: InsertChainBatchSize).
const BATCH: usize = 128;

fn jobs() -> Vec<SigJob> {
    let spec = GenesisSpec {
        seed: 1,
        network: "localnet".into(),
        shard_id: 0,
        epoch_len: 100_000,
        committee_size: 64,
        accounts: 256,
    };
    let (mut g, genesis) = Generator::new(spec, 0).expect("spec");
    let keys = CommitteeKeys::new(0, &genesis.block.body.committee(), 0).expect("keys");
    (0..BATCH)
        .map(|_| {
            let b = g.next_block().expect("block");
            let h = &b.block.header;
            sig_job(h.number, &h.hash(), h.view_id, &b.commit_sig, &keys).expect("job")
        })
        .collect()
}

fn verify(c: &mut Criterion) {
    let jobs = jobs();
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool");
    let all = rayon::ThreadPoolBuilder::new().build().expect("pool");
    let mut g = c.benchmark_group("verify_batch_128_sigs");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.sample_size(20);
    g.bench_function("1_thread", |x| {
        x.iter(|| one.install(|| assert!(verify_batch(black_box(&jobs)).is_empty())))
    });
    g.bench_function(format!("{}_threads", all.current_num_threads()), |x| {
        x.iter(|| all.install(|| assert!(verify_batch(black_box(&jobs)).is_empty())))
    });
    g.bench_function("1_thread_one_by_one", |x| {
        x.iter(|| {
            one.install(|| {
                for j in black_box(&jobs) {
                    assert!(j.sig.verify(&j.msg, &j.pk));
                }
            })
        })
    });
    g.finish();
}

criterion_group!(benches, verify);
criterion_main!(benches);
