//! Staged sync between real nodes over loopback (DESIGN.md §9).

mod common;

use std::time::Duration;

use common::nodes::{byzantine, head_hash, serving, syncing, syncing_node, Running};
use streamsync::chain::backend::InsertBatch;
use streamsync::chain::{BlockWithSig, ChainBackend, Genesis};
use streamsync::config::{Config, Network};
use streamsync::crypto::NodeIdentity;
use streamsync::node::{Node, NodeConfig};
use streamsync::stream::PeerAddr;

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

#[test]
fn sync_from_six_peers_with_every_signature_verified() {
    let (genesis, _, blocks) = common::chain(common::spec(4, 40, 8), 1, 400);
    let peers: Vec<Running> = (0..6).map(|_| serving(&genesis, &blocks)).collect();
    let boot = peers.iter().map(|p| p.node.peer_addr()).collect();
    let mut dst = syncing(&genesis, boot, |c, _| {
        c.sync.staged.verify_all_sig = true;
        c.sync.staged.max_blocks_per_sync_cycle = 0;
    });
    assert!(
        dst.node.wait_sync(Duration::from_secs(180)),
        "sync did not finish"
    );
    assert_eq!(head_hash(&dst.store), head_hash(&peers[0].store));
    let st = dst.node.status().sync;
    assert!(
        st.sigs_verified >= 400,
        "VerifyAllSig verifies every block: {}",
        st.sigs_verified
    );
}

#[test]
fn short_range_catches_up_after_the_source_grows() {
    let (genesis, _, blocks) = common::chain(common::spec(5, 100, 8), 1, 60);
    let src = serving(&genesis, &blocks[..50]);
    let dst = syncing(&genesis, vec![src.node.peer_addr()], |_, _| {});
    let Running {
        mut node,
        store: dst_store,
        _dir,
    } = dst;
    assert!(
        node.wait_sync(Duration::from_secs(180)),
        "sync did not finish"
    );
    assert_eq!(dst_store.head().expect("head").number, 50);
    assert_eq!(node.status().sync.short_ranges, 0, "50 blocks: long range");
    node.shutdown();
    // The source grows by ten blocks; a restarted node catches up by short range.
    src.store
        .insert_batch(&InsertBatch::seal(blocks[50..].to_vec(), vec![]))
        .expect("grow");
    let mut again = syncing_node(dst_store.clone(), vec![src.node.peer_addr()], |_, _| {});
    assert!(
        again.wait_sync(Duration::from_secs(180)),
        "sync did not finish"
    );
    assert_eq!(head_hash(&dst_store), head_hash(&src.store));
    assert_eq!(again.status().sync.short_ranges, 1);
}

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

/// Each byzantine behaviour alone next to one honest peer: the sync reaches
/// the honest head, the honest peer is never removed, and the peers proven
/// to lie are the ones removed with a critical error.
#[test]
fn each_byzantine_behaviour_alone_with_an_honest_peer() {
    use streamsync::byzantine::Behaviour;
    use streamsync::stream::RemovalReason;
    let (genesis, _, blocks) = common::chain(common::spec(8, 50, 8), 2, 220);
    for b in Behaviour::ALL {
        let honest = serving(&genesis, &blocks);
        let liar = byzantine(&genesis, &blocks, b);
        let mut dst = syncing(
            &genesis,
            vec![honest.node.peer_addr(), liar.node.peer_addr()],
            |c, s| {
                // Many short cycles: each cycle's last block (whose carried
                // commit signature is checked) comes from either stream.
                c.sync.staged.max_blocks_per_sync_cycle = 16;
                s.request_timeout = Duration::from_secs(3);
                // Small batches, several in flight: both streams get work.
                s.body_batch = 4;
                s.hash_batch = 4;
            },
        );
        let done = dst.node.wait_sync(Duration::from_secs(60));
        assert!(done, "{b:?}: sync did not finish: {:?}", dst.node.status());
        assert_eq!(head_hash(&dst.store), head_hash(&honest.store), "{b:?}");
        let removed = dst.node.status().host.recent_removals;
        let honest_peer = honest.node.peer_addr().peer;
        let liar_peer = liar.node.peer_addr().peer;
        assert!(
            !removed.iter().any(|(p, _)| *p == honest_peer),
            "{b:?}: the honest peer was removed: {removed:?}"
        );
        if !matches!(b, Behaviour::LyingHeights | Behaviour::Silence) {
            assert!(
                removed.contains(&(liar_peer, RemovalReason::CriticalError)),
                "{b:?}: the liar was not removed for a critical error: {removed:?}"
            );
        }
    }
}

#[test]
fn mixed_byzantine_peers_with_honest_majority() {
    use streamsync::byzantine::Behaviour;
    let (genesis, _, blocks) = common::chain(common::spec(9, 50, 8), 2, 300);
    let honest: Vec<Running> = (0..2).map(|_| serving(&genesis, &blocks)).collect();
    let liars: Vec<Running> = Behaviour::ALL[..4]
        .iter()
        .map(|b| byzantine(&genesis, &blocks, *b))
        .collect();
    let boot: Vec<PeerAddr> = honest
        .iter()
        .chain(liars.iter())
        .map(|r| r.node.peer_addr())
        .collect();
    let mut dst = syncing(&genesis, boot, |c, _| {
        c.sync.staged.max_blocks_per_sync_cycle = 100
    });
    assert!(
        dst.node.wait_sync(Duration::from_secs(180)),
        "sync did not finish"
    );
    assert_eq!(head_hash(&dst.store), head_hash(&honest[0].store));
}

#[test]
fn serving_peer_killed_mid_sync_does_not_stop_the_sync() {
    let (genesis, _, blocks) = common::chain(common::spec(12, 100, 8), 1, 1500);
    let slow = |g: &Genesis, b: &[BlockWithSig]| {
        let (store, dir) = common::store(g, b);
        let config = Config::for_network(Network::Localnet);
        let listen = "127.0.0.1:0".parse().expect("addr");
        let mut host = streamsync::host::HostConfig::from_config(&config, listen, 0);
        host.net.link.latency = Duration::from_millis(2);
        let mut cfg = NodeConfig::new(config, listen);
        cfg.host = Some(host);
        let node = Node::start(cfg, store.clone(), NodeIdentity::generate(), None).expect("node");
        Running {
            node,
            store,
            _dir: dir,
        }
    };
    let mut peers: Vec<Running> = (0..3).map(|_| slow(&genesis, &blocks)).collect();
    let boot = peers.iter().map(|p| p.node.peer_addr()).collect();
    let mut dst = syncing(&genesis, boot, |c, _| {
        c.sync.staged.max_blocks_per_sync_cycle = 64
    });
    // Kill one serving peer once the sync is under way.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while dst.node.status().sync.head < 200 {
        assert!(std::time::Instant::now() < deadline, "sync never started");
        std::thread::park_timeout(Duration::from_millis(10));
    }
    let victim = peers.remove(0);
    victim.node.shutdown();
    assert!(
        dst.node.wait_sync(Duration::from_secs(180)),
        "sync did not finish"
    );
    assert_eq!(head_hash(&dst.store), head_hash(&peers[0].store));
    assert!(
        dst.node.status().host.streams_removed >= 1,
        "the dead peer's stream was removed"
    );
}
