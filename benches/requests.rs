//! Request manager:
//! - core dispatch rate: submit → dispatch → deliver with 8 streams, no I/O;
//! - over loopback with 4 real serving peers: GetBlocksByNumber(128)
//!   blocks/s with an in-flight window of 1 (Harmony's design) vs adaptive.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, BatchSize, Criterion, Throughput};
use streamsync::chain::backend::InsertBatch;
use streamsync::chain::generator::Generator;
use streamsync::chain::{BlockWithSig, Genesis, GenesisSpec};
use streamsync::config::{Config, Network};
use streamsync::crypto::NodeIdentity;
use streamsync::request::{RequestManager, RequestOptions, RmAction, RmConfig};
use streamsync::runtime::{Host, HostConfig, StreamEvent};
use streamsync::store::{Store, StoreOptions};
use streamsync::wire::{Request, Response};

const BATCH: u64 = 10_000;
const CHAIN: u64 = 4096;

fn dispatch(c: &mut Criterion) {
    let mut g = c.benchmark_group("request_manager_core");
    g.throughput(Throughput::Elements(BATCH));
    g.bench_function("submit_dispatch_deliver_8_streams", |b| {
        b.iter_batched(
            || {
                let now = Instant::now();
                let mut m = RequestManager::new(RmConfig::default(), now);
                let mut out = Vec::new();
                for s in 1..=8 {
                    m.on_stream_added(s, now, &mut out);
                }
                (m, now)
            },
            |(mut m, now)| {
                let mut out = Vec::with_capacity(64);
                let mut delivered = 0u64;
                let resp = Response::BlockNumber {
                    number: 1,
                    hash: [0; 32],
                };
                for _ in 0..BATCH {
                    m.submit(
                        Request::GetBlockNumber,
                        RequestOptions::default(),
                        now,
                        &mut out,
                    )
                    .expect("room");
                    while let Some(a) = out.pop() {
                        match a {
                            RmAction::Send { stream, id, .. } => {
                                m.on_response(stream, id, resp.clone(), now, &mut out)
                            }
                            RmAction::Deliver { .. } => delivered += 1,
                            RmAction::Misbehaved { .. } | RmAction::Unresponsive { .. } => {}
                        }
                    }
                }
                assert_eq!(delivered, BATCH);
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

struct Peer {
    host: Host,
    _dir: tempfile::TempDir,
}

fn host(
    genesis: &Genesis,
    blocks: &[BlockWithSig],
    rm: RmConfig,
    trusted: Vec<streamsync::stream::PeerAddr>,
) -> Peer {
    let dir = tempfile::tempdir().expect("tmp");
    let opts = StoreOptions {
        durable: false,
        ..StoreOptions::default()
    };
    let store = Arc::new(Store::open_or_create(dir.path(), genesis, opts).expect("store"));
    if !blocks.is_empty() {
        store
            .insert_batch(&InsertBatch::seal(blocks.to_vec(), vec![]))
            .expect("insert");
    }
    let mut cfg = HostConfig::from_config(
        &Config::for_network(Network::Localnet),
        "127.0.0.1:0".parse().expect("addr"),
        0,
    );
    cfg.requests = rm;
    cfg.trusted = trusted;
    let host = Host::start(cfg, NodeIdentity::generate(), store, vec![]).expect("host");
    Peer { host, _dir: dir }
}

fn loopback(c: &mut Criterion) {
    let spec = GenesisSpec {
        seed: 1,
        network: "localnet".into(),
        shard_id: 0,
        epoch_len: 1000,
        committee_size: 64,
        accounts: 256,
    };
    let (mut gen, genesis) = Generator::new(spec, 4).expect("spec");
    let blocks: Vec<_> = (0..CHAIN)
        .map(|_| gen.next_block().expect("block"))
        .collect();
    let servers: Vec<Peer> = (0..4)
        .map(|_| host(&genesis, &blocks, RmConfig::default(), vec![]))
        .collect();
    let trusted: Vec<_> = servers.iter().map(|p| p.host.peer_addr()).collect();
    let mut g = c.benchmark_group("loopback_4_peers_get_blocks_by_number_128");
    // 64 requests of 128 blocks each per iteration.
    g.throughput(Throughput::Elements(64 * 128));
    g.sample_size(10);
    for (name, window) in [("window_1", 1), ("adaptive_window", 32)] {
        let rm = RmConfig {
            initial_window: window.min(4),
            max_window: window,
            ..RmConfig::default()
        };
        let client = host(&genesis, &[], rm, trusted.clone());
        let events = client.host.subscribe();
        let mut up = 0;
        while up < 4 {
            if let Ok(StreamEvent::Activated(_)) = events.recv_timeout(Duration::from_secs(10)) {
                up += 1;
            }
        }
        let requests = client.host.requests();
        g.bench_function(name, |b| {
            b.iter(|| {
                let pending: Vec<_> = (0..64u64)
                    .map(|i| {
                        let start = 1 + (i * 128) % (CHAIN - 128);
                        requests.submit(
                            Request::GetBlocksByNumber((start..start + 128).collect()),
                            RequestOptions::default(),
                        )
                    })
                    .collect();
                for rx in pending {
                    match rx.recv().expect("outcome") {
                        Ok((Response::Blocks(b), _)) => assert_eq!(b.len(), 128),
                        other => panic!("{other:?}"),
                    }
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, dispatch, loopback);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
