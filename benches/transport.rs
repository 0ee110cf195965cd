//! Transport and server over loopback, Noise on:
//! - one stream, 64 KiB frames: frames/s and MB/s (criterion, throughput in bytes);
//! - GetBlockNumber round trip: p50/p99 (printed after the criterion runs);
//! - GetBlocksByNumber(128) served by one node to 4 clients: blocks/s.

use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy_rlp::Bytes;
use criterion::{criterion_group, Criterion, Throughput};
use streamsync::chain::backend::InsertBatch;
use streamsync::chain::generator::Generator;
use streamsync::chain::GenesisSpec;
use streamsync::config::Network;
use streamsync::crypto::NodeIdentity;
use streamsync::net::{Net, NetConfig, NetEvent, StreamInfo};
use streamsync::request::DirectClient;
use streamsync::server::{Server, ServerConfig};
use streamsync::store::{Store, StoreOptions};
use streamsync::wire::{Message, ProtocolId, Request, Response};

const FRAME: usize = 64 * 1024;
const CHAIN: u64 = 4096;
const T: Duration = Duration::from_secs(30);

fn cfg() -> NetConfig {
    NetConfig::new(
        "127.0.0.1:0".parse().expect("addr"),
        ProtocolId::sync(Network::Localnet, 0),
    )
}

fn up(events: &crossbeam::channel::Receiver<NetEvent>) -> StreamInfo {
    loop {
        match events.recv_timeout(T).expect("event") {
            NetEvent::StreamUp(i) => return i,
            NetEvent::StreamDown(d) => panic!("stream down: {}", d.reason),
            NetEvent::Response { .. } => {}
        }
    }
}

fn frames(c: &mut Criterion) {
    let (a_id, b_id) = (NodeIdentity::generate(), NodeIdentity::generate());
    let a = Net::start(cfg(), &a_id).expect("net");
    let b = Net::start(cfg(), &b_id).expect("net");
    a.handle()
        .dial(b.handle().local_addr(), Some(b_id.peer_id()))
        .expect("dial");
    let s = up(a.events());
    up(b.events());
    // A 64 KiB message: a Blocks response carrying one opaque 64 KiB blob.
    let frame = Message::Response(
        1,
        Response::Blocks(vec![Some(Bytes::from(vec![0x5a; FRAME - 16]))]),
    )
    .encode();
    let mut g = c.benchmark_group("loopback_noise_one_stream");
    g.throughput(Throughput::Bytes(frame.len() as u64 * 256));
    g.sample_size(20);
    g.bench_function("256_frames_of_64KiB", |x| {
        x.iter(|| {
            let h = a.handle();
            let f = frame.clone();
            let sender = std::thread::spawn(move || {
                for _ in 0..256 {
                    h.send_encoded(s.id, f.clone()).expect("send");
                }
            });
            for _ in 0..256 {
                match b.events().recv_timeout(T).expect("frame") {
                    NetEvent::Response { .. } => {}
                    other => panic!("{other:?}"),
                }
            }
            sender.join().expect("sender");
        })
    });
    g.finish();
}

struct Served {
    _dir: tempfile::TempDir,
    net: Net,
    _server: Server,
    id: NodeIdentity,
}

fn serving() -> Served {
    let spec = GenesisSpec {
        seed: 1,
        network: "localnet".into(),
        shard_id: 0,
        epoch_len: 1000,
        committee_size: 64,
        accounts: 256,
    };
    let (mut g, genesis) = Generator::new(spec, 4).expect("spec");
    let dir = tempfile::tempdir().expect("tmp");
    let opts = StoreOptions {
        durable: false,
        ..StoreOptions::default()
    };
    let store = Arc::new(Store::open_or_create(dir.path(), &genesis, opts).expect("store"));
    let blocks = (0..CHAIN).map(|_| g.next_block().expect("block")).collect();
    store
        .insert_batch(&InsertBatch::seal(blocks, vec![]))
        .expect("insert");
    let id = NodeIdentity::generate();
    let net = Net::start(cfg(), &id).expect("net");
    let server = Server::start(
        ServerConfig::default(),
        store,
        net.handle(),
        net.requests().clone(),
        Arc::new(|_| vec![]),
    )
    .expect("server");
    Served {
        _dir: dir,
        net,
        _server: server,
        id,
    }
}

fn client(of: &Served) -> (Net, DirectClient, StreamInfo) {
    let id = NodeIdentity::generate();
    let net = Net::start(cfg(), &id).expect("net");
    let client = DirectClient::start(net.handle(), net.events().clone());
    net.handle()
        .dial(of.net.handle().local_addr(), Some(of.id.peer_id()))
        .expect("dial");
    let s = up(client.stream_events());
    (net, client, s)
}

fn served_blocks(c: &mut Criterion) {
    let srv = serving();
    let clients: Vec<_> = (0..4).map(|_| client(&srv)).collect();
    let clients = Arc::new(clients);
    // Per iteration: each of 4 clients fetches 16 ranges of 128 blocks with 4
    // requests in flight (4 threads) = 8192 blocks.
    let mut g = c.benchmark_group("server_get_blocks_by_number_128");
    g.throughput(Throughput::Elements(4 * 16 * 128));
    g.sample_size(10);
    g.bench_function("4_clients", |x| {
        x.iter(|| {
            let mut threads = Vec::new();
            for ci in 0..4 {
                for t in 0..4u64 {
                    let clients = clients.clone();
                    threads.push(std::thread::spawn(move || {
                        let (_, client, s) = &clients[ci];
                        for k in 0..4u64 {
                            let start = 1 + ((t * 4 + k) * 128 + ci as u64 * 512) % (CHAIN - 128);
                            let nums = (start..start + 128).collect();
                            match client
                                .request(s.id, Request::GetBlocksByNumber(nums), T)
                                .expect("response")
                            {
                                Response::Blocks(b) => assert_eq!(b.len(), 128),
                                other => panic!("{other:?}"),
                            }
                        }
                    }));
                }
            }
            for t in threads {
                t.join().expect("client");
            }
        })
    });
    g.finish();

    // Round trip of GetBlockNumber, one request at a time: percentiles.
    let (_, client, s) = &clients[0];
    let mut lat: Vec<Duration> = (0..5000)
        .map(|_| {
            let t0 = Instant::now();
            client
                .request(s.id, Request::GetBlockNumber, T)
                .expect("response");
            t0.elapsed()
        })
        .collect();
    lat.sort_unstable();
    let p = |q: f64| lat[((lat.len() as f64 - 1.0) * q) as usize];
    println!(
        "get_block_number_round_trip (5000 sequential): p50 {:?} p99 {:?} max {:?}",
        p(0.5),
        p(0.99),
        lat[lat.len() - 1]
    );
}

criterion_group!(benches, frames, served_blocks);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
