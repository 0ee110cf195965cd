//! `LogProgress` and `DebugMode` change what the sync logs (their own test
//! binary: they install the process-wide log subscriber).

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use streamsync::chain::backend::InsertBatch;
use streamsync::config::{Config, Network, StagedSyncConfig};
use streamsync::crypto::NodeIdentity;
use streamsync::node::{Node, NodeConfig};
use streamsync::store::{LmdbStaging, Store, StoreOptions};
use streamsync::sync::SyncSettings;

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn run(buf: &Buf, staged: impl FnOnce(&mut StagedSyncConfig)) -> String {
    buf.0.lock().expect("lock").clear();
    let (genesis, _, blocks) = common::chain(common::spec(31, 100, 8), 1, 120);
    let opts = StoreOptions {
        durable: false,
        ..StoreOptions::default()
    };
    let (d1, d2) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let src = Arc::new(Store::open_or_create(d1.path(), &genesis, opts).expect("store"));
    src.insert_batch(&InsertBatch::seal(blocks, vec![]))
        .expect("insert");
    let server = Node::start(
        NodeConfig::new(
            Config::for_network(Network::Localnet),
            "127.0.0.1:0".parse().expect("addr"),
        ),
        src,
        NodeIdentity::generate(),
        None,
    )
    .expect("node");
    let dst = Arc::new(Store::open_or_create(d2.path(), &genesis, opts).expect("store"));
    let mut config = Config::for_network(Network::Localnet);
    config.sync.client = true;
    config.sync.staged.max_blocks_per_sync_cycle = 40;
    config.sync.staged.max_mem_sync_cycle_size = 0;
    config.sync.staged.insert_chain_batch_size = 20;
    staged(&mut config.sync.staged);
    let mut settings = SyncSettings::from_sync(&config.sync);
    settings.init_streams = 1;
    settings.min_peers = 1;
    settings.init_wait = Duration::from_secs(10);
    let mut cfg = NodeConfig::new(config, "127.0.0.1:0".parse().expect("addr"));
    cfg.boot = vec![server.peer_addr()];
    cfg.exit_when_synced = true;
    cfg.sync = Some(settings);
    let mut node = Node::start(
        cfg,
        dst.clone(),
        NodeIdentity::generate(),
        Some(LmdbStaging::new(dst)),
    )
    .expect("node");
    assert!(
        node.wait_sync(Duration::from_secs(180)),
        "sync did not finish"
    );
    node.shutdown();
    server.shutdown();
    String::from_utf8_lossy(&buf.0.lock().expect("lock")).into_owned()
}

#[test]
fn log_progress_and_debug_mode_add_their_log_lines() {
    let buf = Buf::default();
    let w = buf.clone();
    tracing_subscriber::fmt()
        .with_writer(move || w.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .init();
    let quiet = run(&buf, |_| {});
    assert!(!quiet.contains("States: batch inserted"));
    assert!(!quiet.contains("stage start"));
    let progress = run(&buf, |s| s.log_progress = true);
    assert_eq!(
        progress.matches("States: batch inserted").count(),
        6,
        "120 blocks in batches of 20: a line each"
    );
    let debug = run(&buf, |s| s.debug_mode = true);
    assert!(debug.contains("stage start"), "DebugMode logs every stage");
}
