//! Every `[Sync.StagedSyncCfg]` key has an effect: one test per key.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::watched::Watched;

use streamsync::chain::{BlockWithSig, ChainBackend, Genesis};
use streamsync::config::{Config, Network, StagedSyncConfig};
use streamsync::crypto::NodeIdentity;
use streamsync::node::{Node, NodeConfig};
use streamsync::store::LmdbStaging;
use streamsync::sync::{SyncSettings, SyncStatus};

const BLOCKS: usize = 300;

fn chain() -> (Genesis, Vec<BlockWithSig>) {
    let (g, _, b) = common::chain(common::spec(21, 100, 8), 1, BLOCKS);
    (g, b)
}

/// What one sync run did, counted where it happened.
struct Run {
    /// The syncing node's final status.
    status: SyncStatus,
    /// Block hashes the two servers answered in all.
    hashes_answered: usize,
    /// Most entries the node's LMDB staging tables held when a batch was
    /// committed (hashes + blocks).
    lmdb_staged: usize,
}

/// Syncs the chain from two serving peers with `staged` and reports.
fn sync_with(staged: impl FnOnce(&mut StagedSyncConfig)) -> Run {
    let (genesis, blocks) = chain();
    let servers: Vec<_> = (0..2)
        .map(|_| {
            let (s, d) = common::store(&genesis, &blocks);
            let cfg = NodeConfig::new(
                Config::for_network(Network::Localnet),
                "127.0.0.1:0".parse().expect("addr"),
            );
            let w = Watched::new(s);
            (
                Node::start(cfg, w.clone(), NodeIdentity::generate(), None).expect("node"),
                w,
                d,
            )
        })
        .collect();
    let (dst, _dir) = common::store(&genesis, &[]);
    let lmdb_staged = Arc::new(AtomicUsize::new(0));
    let hook = {
        let (dst, seen) = (dst.clone(), lmdb_staged.clone());
        Box::new(move |_: &streamsync::chain::backend::InsertBatch| {
            let stats = dst.stats().expect("stats");
            let staged: usize = stats
                .tables
                .iter()
                .filter(|t| t.name.starts_with("staging_"))
                .map(|t| t.entries)
                .sum();
            seen.fetch_max(staged, Ordering::Relaxed);
        })
    };
    let backend = Watched::with_hook(dst.clone(), Some(hook));
    let mut config = Config::for_network(Network::Localnet);
    config.sync.client = true;
    staged(&mut config.sync.staged);
    let mut settings = SyncSettings::from_sync(&config.sync);
    settings.init_streams = 2;
    settings.min_peers = 2;
    settings.init_wait = Duration::from_secs(10);
    let mut cfg = NodeConfig::new(config, "127.0.0.1:0".parse().expect("addr"));
    cfg.boot = servers.iter().map(|(n, _, _)| n.peer_addr()).collect();
    cfg.exit_when_synced = true;
    cfg.sync = Some(settings);
    let mut node = Node::start(
        cfg,
        backend,
        NodeIdentity::generate(),
        Some(LmdbStaging::new(dst.clone())),
    )
    .expect("node");
    assert!(
        node.wait_sync(Duration::from_secs(180)),
        "sync did not finish"
    );
    assert_eq!(dst.head().expect("head").number, BLOCKS as u64, "synced");
    Run {
        status: node.status().sync,
        hashes_answered: servers
            .iter()
            .map(|(_, w, _)| w.hashes_asked.lock().len())
            .sum(),
        lmdb_staged: lmdb_staged.load(Ordering::Relaxed),
    }
}

#[test]
fn max_blocks_per_sync_cycle_sets_the_cycle_size_and_zero_means_one_cycle() {
    assert_eq!(
        sync_with(|s| s.max_blocks_per_sync_cycle = 100)
            .status
            .cycles,
        3
    );
    assert_eq!(
        sync_with(|s| s.max_blocks_per_sync_cycle = 0).status.cycles,
        1
    );
}

#[test]
fn insert_chain_batch_size_sets_the_insert_transactions() {
    let st = sync_with(|s| {
        s.max_blocks_per_sync_cycle = 0;
        s.max_mem_sync_cycle_size = 0;
        s.insert_chain_batch_size = 64;
    })
    .status;
    assert_eq!(st.insert_batches, 5, "ceil(300 / 64)");
}

#[test]
fn max_mem_sync_cycle_size_commits_a_small_cycle_once() {
    let st = sync_with(|s| {
        s.max_blocks_per_sync_cycle = 0;
        s.max_mem_sync_cycle_size = 1024;
        s.insert_chain_batch_size = 64;
    })
    .status;
    assert_eq!(
        st.insert_batches, 1,
        "a 300-block cycle under MaxMemSyncCycleSize commits once"
    );
}

/// Signatures counted where they were handed to the pairing check.
#[test]
fn verify_all_sig_verifies_every_block() {
    let all = sync_with(|s| s.verify_all_sig = true).status;
    let sampled = sync_with(|s| s.verify_all_sig = false).status;
    assert!(all.sigs_verified >= BLOCKS as u64, "{}", all.sigs_verified);
    assert!(
        sampled.sigs_verified < BLOCKS as u64 / 4,
        "{}",
        sampled.sigs_verified
    );
}

#[test]
fn verify_header_batch_size_sets_the_sampling() {
    let coarse = sync_with(|s| {
        s.max_blocks_per_sync_cycle = 0;
        s.verify_header_batch_size = 50;
    })
    .status;
    let fine = sync_with(|s| {
        s.max_blocks_per_sync_cycle = 0;
        s.verify_header_batch_size = 10;
    })
    .status;
    // One 300-block batch: the last of every 50 (6) vs every 10 (30), and
    // in both the hand-overs 99, 199 and 299 (not multiples of 10).
    assert_eq!(fine.sigs_verified - coarse.sigs_verified, 30 - 6);
}

/// Counted at the servers: with the key on, every batch's hashes are
/// answered by a second stream too.
#[test]
fn double_check_block_hashes_confirms_every_batch_with_a_second_stream() {
    let on = sync_with(|s| s.double_check_block_hashes = true);
    let off = sync_with(|s| s.double_check_block_hashes = false);
    assert!(on.status.hash_batches_double_checked > 0);
    assert_eq!(off.status.hash_batches_double_checked, 0);
    assert!(
        on.hashes_answered >= 2 * BLOCKS,
        "hashes answered with the check: {}",
        on.hashes_answered
    );
    assert!(
        off.hashes_answered < 2 * BLOCKS,
        "hashes answered without: {}",
        off.hashes_answered
    );
}

#[test]
fn max_background_blocks_prefetches_the_next_cycle() {
    let on = sync_with(|s| {
        s.max_blocks_per_sync_cycle = 100;
        s.max_background_blocks = 100;
    })
    .status;
    let off = sync_with(|s| {
        s.max_blocks_per_sync_cycle = 100;
        s.max_background_blocks = 0;
    })
    .status;
    assert!(on.prefetched_used > 0);
    assert_eq!(off.prefetched_used, 0);
}

/// Read in the node's LMDB staging tables while a batch commits.
#[test]
fn use_mem_db_chooses_where_staging_lives() {
    assert_eq!(sync_with(|s| s.use_mem_db = true).lmdb_staged, 0);
    assert!(sync_with(|s| s.use_mem_db = false).lmdb_staged >= BLOCKS);
}
