//! Writes seed corpora for the cargo-fuzz targets from real encodings:
//! `cargo run --example fuzz_corpus -- fuzz/corpus`.

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
    println!("seed corpora written under {}", out.display());
    Ok(())
}
