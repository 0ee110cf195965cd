//! Writes seed corpora for the cargo-fuzz targets from real encodings:
//! `cargo run --features testkit --example fuzz_corpus -- fuzz/corpus`.

use std::path::{Path, PathBuf};

use alloy_rlp::Bytes;
use streamsync::chain::generator::Generator;
use streamsync::chain::GenesisSpec;
use streamsync::config::Network;
use streamsync::crypto::NodeIdentity;
use streamsync::net::session::{LocalKeys, Session};
use streamsync::wire::{encode_frame, ErrorCode, Message, ProtocolId, Request, Response};

fn write(dir: &Path, target: &str, seeds: &[Vec<u8>]) -> std::io::Result<()> {
    let d = dir.join(target);
    std::fs::create_dir_all(&d)?;
    for (i, s) in seeds.iter().enumerate() {
        std::fs::write(d.join(format!("seed-{i:03}")), s)?;
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out: PathBuf = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "fuzz/corpus".into())
        .into();
    let spec = GenesisSpec {
        seed: 1,
        network: "localnet".into(),
        shard_id: 0,
        epoch_len: 3,
        committee_size: 8,
        accounts: 8,
    };
    let (mut g, genesis) = Generator::new(spec, 3)?;
    let blocks = (0..3)
        .map(|_| g.next_block())
        .collect::<Result<Vec<_>, _>>()?;
    let b = &blocks[2];
    let chain = vec![
        b.block.header.to_bytes(),
        b.block.body.to_bytes(),
        b.block.to_bytes(),
        b.to_bytes(),
        b.commit_sig.to_bytes(),
        genesis.block.body.committee().to_bytes(),
        genesis.block.to_bytes(),
    ];
    write(&out, "chain_decode", &chain)?;

    let block_bytes: Vec<Option<Bytes>> = blocks
        .iter()
        .map(|b| Some(Bytes::from(b.to_bytes())))
        .collect();
    let messages = vec![
        Message::Request(1, Request::GetBlockNumber),
        Message::Request(2, Request::GetBlockHashes(vec![0, 1, 2, 3])),
        Message::Request(3, Request::GetBlocksByNumber(vec![1, 2])),
        Message::Request(4, Request::GetBlocksByHashes(vec![b.block.hash()])),
        Message::Request(5, Request::GetEpochState(1)),
        Message::Request(6, Request::GetPeers(8)),
        Message::Response(
            7,
            Response::BlockNumber {
                number: 3,
                hash: b.block.hash(),
            },
        ),
        Message::Response(8, Response::BlockHashes(vec![Some(b.block.hash()), None])),
        Message::Response(9, Response::Blocks(block_bytes.clone())),
        Message::Response(10, Response::EpochState(block_bytes[1].clone())),
        Message::Response(11, Response::Peers(vec![Bytes::from_static(b"record")])),
        Message::Response(
            12,
            Response::Error {
                code: ErrorCode::RateLimited,
                retry_after_ms: 100,
                message: "rate limited".into(),
            },
        ),
    ];
    let encoded: Vec<Vec<u8>> = messages.iter().map(Message::encode).collect();
    write(&out, "message_decode", &encoded)?;

    let mut frames = Vec::new();
    for (i, m) in encoded.iter().enumerate() {
        let mut s = vec![(i * 7 % 64) as u8 + 1];
        encode_frame(m, &mut s)?;
        encode_frame(&encoded[(i + 1) % encoded.len()], &mut s)?;
        frames.push(s);
    }
    write(&out, "frame_decode", &frames)?;

    let keys = LocalKeys::new(
        &NodeIdentity::from_seed([2; 32]),
        ProtocolId::sync(Network::Localnet, 0),
    )?;
    let mut init = Session::initiator(&keys)?;
    write(
        &out,
        "handshake_payload",
        &[keys.hello.clone(), init.take_output()],
    )?;
    write(&out, "sim_network", &sim_network_seeds())?;
    println!("seed corpora written under {}", out.display());
    Ok(())
}

/// One `sim_network` input in the layout its target documents
/// (`fuzz/fuzz_targets/sim_network.rs`); indices of `byzantine` are into
/// `Byzantine::all()`: 0–7 the engine's behaviours in `Behaviour::ALL`
/// order (wrong bodies, bad signatures, lying heights, garbage, silence,
/// forged fork, fake hashes, broken links), 8 withholding, 9 slow drip.
struct SimSeed {
    seed: u64,
    servers: u8,
    /// (kind index, on the shared sybil address)
    byzantine: Vec<(u8, bool)>,
    /// (join delay s, exits once synced)
    syncers: Vec<(u8, bool)>,
    boot_mask: u16,
    min_peers: u8,
    latency_ms: u8,
    jitter_ms: u8,
    /// Loss: this / 255 × 0.3.
    loss: u8,
    /// 0: unlimited, else Mbit/s.
    bandwidth: u8,
    /// (blocks, every s) of tip growth from the start.
    grow: (u8, u8),
    /// Virtual time limit: 60 + 2 × this s.
    limit: u8,
    /// (s after the previous event, op: 0 crash, 1 restart, 2 partition,
    /// 3 heal, 4 grow; argument bytes)
    events: Vec<(u8, u8, u8, u8)>,
}

impl SimSeed {
    fn bytes(&self) -> Vec<u8> {
        let mut v = self.seed.to_le_bytes().to_vec();
        v.push(self.servers - 2);
        v.push(self.byzantine.len() as u8);
        for (k, sybil) in &self.byzantine {
            v.extend([*k, u8::from(*sybil)]);
        }
        v.push(self.syncers.len() as u8 - 1);
        for (d, exit) in &self.syncers {
            v.extend([*d, u8::from(*exit)]);
        }
        v.extend(self.boot_mask.to_le_bytes());
        v.push(self.min_peers - 1);
        v.extend([
            self.latency_ms - 1,
            self.jitter_ms,
            self.loss,
            self.bandwidth,
            self.grow.0,
            self.grow.1.saturating_sub(1),
            self.limit,
            self.events.len() as u8,
        ]);
        for (dt, op, x, y) in &self.events {
            v.extend([*dt, *op, *x, *y]);
        }
        v
    }
}

/// Seeds for `sim_network`: a calm network, every byzantine kind, churn
/// with partitions and tip growth, and a joiner whose only boot nodes lie.
fn sim_network_seeds() -> Vec<Vec<u8>> {
    let calm = || SimSeed {
        seed: 1,
        servers: 3,
        byzantine: vec![],
        syncers: vec![(0, true)],
        boot_mask: 0b111,
        min_peers: 2,
        latency_ms: 50,
        jitter_ms: 20,
        loss: 0,
        bandwidth: 0,
        grow: (0, 1),
        limit: 30,
        events: vec![],
    };
    let liars = |seed, kinds: [u8; 4]| SimSeed {
        seed,
        servers: 3,
        byzantine: kinds.iter().map(|k| (*k, k % 2 == 0)).collect(),
        syncers: vec![(0, false), (5, true)],
        // Two servers and two liars.
        boot_mask: 0b1_1011,
        min_peers: 2,
        loss: 20,
        bandwidth: 50,
        grow: (20, 2),
        ..calm()
    };
    let churn = SimSeed {
        seed: 4,
        servers: 4,
        byzantine: vec![(5, false), (7, false)],
        syncers: vec![(0, false), (10, false), (20, true)],
        boot_mask: 0b11_0011,
        min_peers: 2,
        latency_ms: 80,
        jitter_ms: 60,
        loss: 40,
        bandwidth: 20,
        grow: (30, 3),
        limit: 120,
        events: vec![
            // Crash the first syncer (node 6) and bring it back.
            (20, 0, 6, 0),
            (10, 1, 6, 0),
            // Cut servers 0, 1 and the second syncer (7) off, then heal.
            (10, 2, 0b1000_0011, 0),
            (60, 3, 0, 0),
            // More tip.
            (5, 4, 40, 1),
            // Crash a server for good.
            (5, 0, 2, 0),
        ],
    };
    let lied_to = SimSeed {
        seed: 5,
        servers: 2,
        byzantine: vec![(5, true), (7, true), (2, false), (6, false)],
        syncers: vec![(0, false)],
        // Only the four liars are boot nodes.
        boot_mask: 0b11_1100,
        min_peers: 1,
        latency_ms: 20,
        jitter_ms: 5,
        loss: 0,
        bandwidth: 0,
        grow: (10, 5),
        limit: 60,
        events: vec![],
    };
    vec![
        calm().bytes(),
        liars(2, [0, 1, 2, 3]).bytes(),
        liars(3, [4, 5, 6, 7]).bytes(),
        liars(6, [8, 9, 5, 7]).bytes(),
        churn.bytes(),
        lied_to.bytes(),
    ]
}
