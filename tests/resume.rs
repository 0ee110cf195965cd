//! A syncing node killed with SIGKILL at a random point resumes from its
//! committed head, re-downloads nothing it committed, and reaches the
//! source's head (the binary is spawned as a child process).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use streamsync::chain::backend::InsertBatch;
use streamsync::chain::ChainBackend;
use streamsync::config::{Config, Network};
use streamsync::crypto::hash::to_hex;
use streamsync::crypto::NodeIdentity;
use streamsync::net::to_multiaddr;
use streamsync::node::{Node, NodeConfig};
use streamsync::runtime::HostConfig;
use streamsync::store::{LmdbStaging, Store, StoreOptions};

const BLOCKS: usize = 3000;

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
}

/// The head and BlockBodies' checkpoint the node reports.
fn head_of(status: SocketAddr) -> Option<(u64, u64)> {
    let mut s = TcpStream::connect(status).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    write!(s, "GET /status HTTP/1.0\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let v: serde_json::Value = serde_json::from_str(text.split("\r\n\r\n").nth(1)?).ok()?;
    Some((v["head"].as_u64()?, v["bodies_staged_to"].as_u64()?))
}

fn spawn(datadir: &std::path::Path, boot: &str, status: SocketAddr) -> Child {
    Command::new(env!("CARGO_BIN_EXE_streamsync"))
        .arg("node")
        .arg("--datadir")
        .arg(datadir)
        .args(["--network", "localnet", "--boot", boot])
        .args(["--sync.downloader", "true", "--sync.init-peers", "1"])
        .args(["--sync.min-peers", "1"])
        .args([
            "--sync.max-blocks-per-cycle",
            "64",
            "--sync.use-mem-db",
            "false",
        ])
        .args([
            "--genesis-seed",
            "11",
            "--committee",
            "8",
            "--epoch-len",
            "100",
            "--accounts",
            "16",
        ])
        .args(["--latency", "3", "--exit-when-synced", "--json"])
        .args(["--metrics", &status.to_string()])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn streamsync node")
}

#[test]
fn node_killed_mid_sync_resumes_without_redownloading_committed_or_staged_blocks() {
    // The source, in this process, with a little latency so the sync takes a while.
    let (genesis, _, blocks) = common::chain(common::spec(11, 100, 8), 2, BLOCKS);
    let src_dir = tempfile::tempdir().expect("tmp");
    let opts = StoreOptions {
        durable: false,
        ..StoreOptions::default()
    };
    let src = Arc::new(Store::open_or_create(src_dir.path(), &genesis, opts).expect("store"));
    src.insert_batch(&InsertBatch::seal(blocks, vec![]))
        .expect("insert");
    let config = Config::for_network(Network::Localnet);
    let listen: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let mut host = HostConfig::from_config(&config, listen, 0);
    host.net.link.latency = Duration::from_millis(3);
    let host2 = host.clone();
    let mut cfg = NodeConfig::new(config, listen);
    cfg.host = Some(host);
    let served = common::watched::Watched::new(src.clone());
    let server = Node::start(cfg, served.clone(), NodeIdentity::generate(), None).expect("node");
    let boot = to_multiaddr(server.peer_addr().addr, Some(server.peer_addr().peer)).to_string();

    // First run: kill -9 once the head passes a random height while blocks
    // are staged above it (during BlockBodies). A commit can land between
    // the status read and the kill; then the node is started and killed
    // again, until the disk shows staged blocks above the committed head.
    let dir = tempfile::tempdir().expect("tmp");
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut kill_at = 300 + u64::from(nanos) % 1500;
    let deadline = Instant::now() + Duration::from_secs(120);
    let (committed, on_disk) = loop {
        let status = free_addr();
        let mut child = spawn(dir.path(), &boot, status);
        loop {
            assert!(Instant::now() < deadline, "sync never passed {kill_at}");
            assert!(
                child.try_wait().expect("child").is_none(),
                "finished before the kill point"
            );
            if head_of(status).is_some_and(|(h, b)| h >= kill_at && b > h) {
                break;
            }
            std::thread::park_timeout(Duration::from_millis(20));
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        let s = Arc::new(
            Store::open(dir.path(), StoreOptions::default()).expect("reopen after kill -9"),
        );
        let h = s.head().expect("head");
        assert!(
            h.number >= kill_at,
            "committed head {} below the kill point {kill_at}",
            h.number
        );
        assert_eq!(
            Some(h.hash),
            src.hash_by_number(h.number).expect("read"),
            "committed head is canonical"
        );
        // Counted on disk: staged blocks contiguous above the head.
        let staged = LmdbStaging::new(s.clone())
            .blocks(h.number + 1, u64::MAX, usize::MAX)
            .expect("staging");
        let run = staged
            .iter()
            .enumerate()
            .take_while(|(i, (n, _))| *n == h.number + 1 + *i as u64)
            .count() as u64;
        if run > 0 {
            break (h.number, run);
        }
        kill_at = h.number + 50;
    };

    // Second run: resumes at the committed head and finishes, from a second
    // server started now, so what it counts is only what the second run
    // asked (the first server may still answer the killed run's requests).
    drop(served);
    let mut cfg2 = NodeConfig::new(Config::for_network(Network::Localnet), listen);
    cfg2.host = Some(host2);
    let served = common::watched::Watched::new(src.clone());
    let server2 = Node::start(cfg2, served.clone(), NodeIdentity::generate(), None).expect("node");
    let boot = to_multiaddr(server2.peer_addr().addr, Some(server2.peer_addr().peer)).to_string();
    let mut child = spawn(dir.path(), &boot, free_addr());
    let out = child.stdout.take().expect("stdout");
    let last = BufReader::new(out)
        .lines()
        .map_while(Result::ok)
        .last()
        .expect("report");
    assert!(child.wait().expect("exit").success());
    let report: serde_json::Value = serde_json::from_str(&last).expect("JSON report");
    assert_eq!(report["head"], BLOCKS as u64);
    assert_eq!(report["head_hash"], to_hex(&src.head().expect("head").hash));
    assert_eq!(
        report["blocks"],
        BLOCKS as u64 - committed,
        "the second run synced exactly what the first had not committed"
    );
    // What the source really served in the second run: no block the first
    // run had committed, none it had staged (`UseMemDB = false`: the
    // restart resumes at BlockBodies' checkpoint), and every other block.
    let asked: std::collections::BTreeSet<u64> =
        served.served_by_hash.lock().iter().copied().collect();
    let staged = report["restored_blocks"].as_u64().expect("restored_blocks");
    assert!(
        staged > 0 && staged <= on_disk,
        "restored {staged} of the {on_disk} blocks staged on disk"
    );
    assert!(
        asked.first().is_none_or(|n| *n > committed + staged),
        "the second run downloaded committed or staged blocks: lowest served {:?}, \
         committed {committed}, staged {staged}",
        asked.first()
    );
    assert!((committed + staged + 1..=BLOCKS as u64).all(|n| asked.contains(&n)));
    server2.shutdown();
    server.shutdown();
}
