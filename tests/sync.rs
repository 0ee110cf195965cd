//! Staged sync between real nodes over loopback (DESIGN.md §9): smoke
//! tests of the real threads, sockets and LMDB. The sync's rules are
//! tested in the simulator (`tests/sim_sync.rs`).

mod common;

use std::time::Duration;

use common::nodes::{head_hash, serving, syncing};
use streamsync::chain::ChainBackend;
use streamsync::config::{Config, Network};
use streamsync::crypto::NodeIdentity;
use streamsync::node::{Node, NodeConfig};

/// Two real nodes over loopback, cycle after cycle across epochs.
#[test]
fn two_node_sync_reaches_the_source_head_across_epochs() {
    let (genesis, _, blocks) = common::chain(common::spec(3, 50, 8), 2, 333);
    let src = serving(&genesis, &blocks);
    let mut dst = syncing(&genesis, vec![src.node.peer_addr()], |c, _| {
        c.sync.staged.max_blocks_per_sync_cycle = 100;
    });
    assert!(
        dst.node.wait_sync(Duration::from_secs(180)),
        "sync did not finish"
    );
    assert_eq!(dst.store.head().expect("head").number, 333);
    assert_eq!(head_hash(&dst.store), head_hash(&src.store));
    let st = dst.node.status().sync;
    assert!(
        st.cycles >= 4,
        "MaxBlocksPerSyncCycle 100 → several cycles, got {}",
        st.cycles
    );
    assert!(st.sigs_verified > 0);
}

/// `Client = false`: `Node::start` runs no sync thread (a wiring of the
/// real node the simulator does not run), yet the node connects and
/// serves.
#[cfg(feature = "testkit")]
#[test]
fn client_false_node_serves_but_never_syncs() {
    let (genesis, _, blocks) = common::chain(common::spec(6, 100, 8), 1, 30);
    let src = serving(&genesis, &blocks);
    let (store, _dir) = common::store(&genesis, &[]);
    let mut cfg = NodeConfig::new(
        Config::for_network(Network::Localnet),
        "127.0.0.1:0".parse().expect("addr"),
    );
    cfg.trusted = vec![src.node.peer_addr()];
    let node = Node::start(cfg, store.clone(), NodeIdentity::generate(), None).expect("node");
    assert!(node.sync_finished(), "no sync thread without Client");
    // It connects and serves, but stays at genesis.
    let events = node.host().subscribe();
    events
        .recv_timeout(Duration::from_secs(10))
        .expect("stream to the source");
    assert_eq!(store.head().expect("head").number, 0);
    node.shutdown();
}

/// The beacon helper over the real threads (`Node::offer_block`): the
/// node syncs to its peer's head (30), then the host offers blocks the
/// peer does not have, out of order (32, then 31); the sync thread
/// commits them in order and counts them; a stale block is refused at
/// once.
#[test]
fn offered_blocks_reach_the_store_through_the_node_api() {
    let (genesis, _, blocks) = common::chain(common::spec(3, 50, 8), 2, 40);
    let src = serving(&genesis, &blocks[..30]);
    let (store, _dir) = common::store(&genesis, &[]);
    let mut config = Config::for_network(Network::Localnet);
    config.sync.client = true;
    let mut settings = streamsync::sync::SyncSettings::from_sync(&config.sync);
    settings.init_streams = 1;
    settings.min_peers = 1;
    let mut cfg = NodeConfig::new(config, "127.0.0.1:0".parse().expect("addr"));
    cfg.boot = vec![src.node.peer_addr()];
    cfg.sync = Some(settings);
    let (backend, commits) = common::watched::Watched::reporting_commits(store.clone());
    let node = Node::start(
        cfg,
        backend,
        NodeIdentity::generate(),
        Some(streamsync::LmdbStaging::new(store.clone())),
    )
    .expect("node");
    // Each commit reports the new head: wait for one at or past `n`.
    let head_reaches = |n: u64| {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match commits.recv_timeout(left) {
                Ok(head) if head >= n => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    };
    assert!(head_reaches(30), "did not sync to the peer's head");
    assert_eq!(node.offer_block(blocks[31].clone()), Ok(()));
    assert_eq!(node.offer_block(blocks[30].clone()), Ok(()));
    assert!(head_reaches(32), "offered blocks not committed");
    assert_eq!(
        store.hash_by_number(32).expect("read"),
        Some(blocks[31].block.hash())
    );
    // The status follows a commit once the sync thread has taken the
    // writer's result: a moment after the head is readable. Node exposes
    // no status event, so wait for the count with a deadline.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while node.status().sync.beacon_inserted < 2 && std::time::Instant::now() < deadline {
        std::thread::park_timeout(Duration::from_millis(5));
    }
    assert_eq!(node.status().sync.beacon_inserted, 2);
    assert!(matches!(
        node.offer_block(blocks[4].clone()),
        Err(streamsync::node::OfferError::Stale { number: 5, .. })
    ));
    node.shutdown();
}

/// `UseMemDB = false` over a chain that is not the project's LMDB store:
/// the staging lives in a directory of its own, and a sync restarted over
/// it takes the blocks staged there instead of asking peers again (the
/// source serves only the blocks above them).
#[cfg(feature = "testkit")]
#[test]
fn staging_in_its_own_directory_spares_a_memory_chain_the_blocks_it_staged() {
    use std::sync::Arc;

    use streamsync::chain::{types::encode, StageId};
    use streamsync::store::{LmdbStaging, StageWrite, StoreOptions};
    use streamsync::testkit::MemChain;

    const STAGED: usize = 150;
    let (genesis, _, blocks) = common::chain(common::spec(8, 100, 8), 1, 200);
    let src = serving(&genesis, &blocks);
    let dir = tempfile::tempdir().expect("tmp");
    // What a previous run left: every hash, the first 150 blocks.
    let previous = LmdbStaging::open(dir.path(), StoreOptions::default()).expect("staging");
    previous
        .write(&StageWrite {
            hashes: blocks
                .iter()
                .map(|b| (b.block.number(), b.block.hash()))
                .collect(),
            blocks: blocks[..STAGED]
                .iter()
                .map(|b| (b.block.number(), Arc::from(encode(b))))
                .collect(),
            progress: vec![
                (StageId::BlockHashes, 200),
                (StageId::BlockBodies, STAGED as u64),
            ],
        })
        .expect("stage");
    drop(previous);

    let chain = Arc::new(MemChain::new(&genesis).expect("genesis"));
    let mut config = Config::for_network(Network::Localnet);
    config.sync.client = true;
    config.sync.staged.use_mem_db = false;
    let mut settings = streamsync::sync::SyncSettings::from_sync(&config.sync);
    settings.init_streams = 1;
    settings.min_peers = 1;
    let mut cfg = NodeConfig::new(config, "127.0.0.1:0".parse().expect("addr"));
    cfg.boot = vec![src.node.peer_addr()];
    cfg.exit_when_synced = true;
    cfg.sync = Some(settings);
    let staging = LmdbStaging::open(dir.path(), StoreOptions::default()).expect("reopen");
    let mut node =
        Node::start(cfg, chain.clone(), NodeIdentity::generate(), Some(staging)).expect("node");
    assert!(
        node.wait_sync(Duration::from_secs(120)),
        "sync did not finish"
    );
    assert_eq!(chain.head().expect("head").number, 200);
    assert_eq!(node.status().sync.staging, "lmdb");
    let served = src.node.blocks_served();
    assert!(
        (1..=100).contains(&served),
        "the source served {served} blocks: the 50 above the staged ones (twice at most, with hedges), not the 150 staged"
    );
}
