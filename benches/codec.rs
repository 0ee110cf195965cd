//! Header hashing and block encode/decode.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use streamsync::chain::generator::Generator;
use streamsync::chain::{BlockWithSig, GenesisSpec};

fn sample() -> BlockWithSig {
    let spec = GenesisSpec {
        seed: 1,
        network: "localnet".into(),
        shard_id: 0,
        epoch_len: 1000,
        committee_size: 64,
        accounts: 256,
    };
    let (mut g, _) = Generator::new(spec, 4).expect("spec");
    g.next_block().expect("block")
}

fn codec(c: &mut Criterion) {
    let b = sample();
    let bytes = b.to_bytes();
    let mut g = c.benchmark_group("codec");
    g.throughput(Throughput::Elements(1));
    g.bench_function("header_hash", |x| {
        x.iter(|| black_box(&b.block.header).hash())
    });
    g.bench_function("block_encode", |x| x.iter(|| black_box(&b).to_bytes()));
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("block_decode", |x| {
        x.iter(|| BlockWithSig::from_bytes(black_box(&bytes)).expect("valid"))
    });
    g.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
