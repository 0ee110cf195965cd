//! The trust rules of the sync over loopback (DESIGN.md §9 "Security of
//! sampling", "Heads", "Blame in one place"): default settings never commit
//! a forged chain or an unverified signature, liars pay and honest senders
//! never do, a height nobody can serve does not stall the sync, Heads needs
//! its quorum, and a node on an invalid branch unwinds.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::nodes::{
    byzantine, head_hash, serving, serving_and_dialling, serving_through, syncing, syncing_through,
    Running,
};
use common::watched::Watched;
use libp2p_identity::PeerId;
use streamsync::byzantine::{Behaviour, ByzantineBackend, ForgedFork};
use streamsync::chain::backend::InsertBatch;
use streamsync::chain::{BlockWithSig, ChainBackend};
use streamsync::config::Config;
use streamsync::node::Node;
use streamsync::stream::{PeerAddr, RemovalReason};
use streamsync::sync::SyncOutcome;

const WAIT: Duration = Duration::from_secs(120);

fn peer(r: &Running) -> PeerId {
    r.node.peer_addr().peer
}

fn boot(peers: &[&Running]) -> Vec<PeerAddr> {
    peers.iter().map(|r| r.node.peer_addr()).collect()
}

/// The removals `node` decided, as (peer, reason).
fn removals(node: &Node) -> Vec<(PeerId, RemovalReason)> {
    node.status().host.recent_removals
}

fn assert_never_removed(node: &Node, honest: &Running) {
    let r = removals(node);
    assert!(
        !r.iter().any(|(p, _)| *p == peer(honest)),
        "the honest peer was removed: {r:?}"
    );
}

fn assert_removed_critically(node: &Node, liar: &Running) {
    let r = removals(node);
    assert!(
        r.contains(&(peer(liar), RemovalReason::CriticalError)),
        "the liar was not removed for a critical error: {r:?}"
    );
}

/// Small batches over several short cycles: every peer gets work.
fn small_batches(c: &mut Config, s: &mut streamsync::sync::SyncSettings) {
    c.sync.staged.max_blocks_per_sync_cycle = 64;
    s.hash_batch = 4;
    s.body_batch = 4;
    s.request_timeout = Duration::from_secs(3);
}

/// Waits (bounded, polling the node's status) until `cond` holds.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::park_timeout(Duration::from_millis(20));
    }
}

/// Finding 1: a peer serving real blocks up to an epoch's last block, then
/// a forged last block naming its own committee, then blocks it signs. With
/// the default (sampled) verification the node alone with it commits
/// nothing past the hand-over and removes it; an honest peer joining later
/// brings the node to the honest head. Every block ever committed is the
/// honest chain's.
#[test]
fn a_forged_committee_hand_over_is_never_committed() {
    let (genesis, chain, blocks) = common::chain(common::spec(31, 100, 8), 1, 400);
    let hand_over = chain.epoch_last_block(1);
    let liar = byzantine(&genesis, &blocks, Behaviour::ForgedFork);
    let (store, _dir) = common::store(&genesis, &[]);
    let dst_chain = Watched::new(store.clone());
    let mut dst = syncing_through(
        dst_chain.clone(),
        store.clone(),
        boot(&[&liar]),
        small_batches,
    );
    wait_for(
        "the forger removed, or a block past the hand-over committed",
        || !removals(&dst).is_empty() || store.head().expect("head").number >= hand_over,
    );
    // An honest peer dials the node (its only boot peer is gone).
    let honest = serving_and_dialling(&genesis, &blocks, dst.peer_addr());
    assert!(
        dst.wait_sync(WAIT),
        "sync did not finish: {:?}",
        dst.status()
    );
    let honest_chain = &honest.store;
    for (n, h) in dst_chain.committed.lock().iter() {
        assert_eq!(
            honest_chain.hash_by_number(*n).expect("read"),
            Some(*h),
            "block {n} committed off the honest chain"
        );
    }
    assert_eq!(head_hash(&store), head_hash(honest_chain));
    assert_removed_critically(&dst, &liar);
}

/// Finding 2: the commit signature stored for each block is the one the
/// hash chain covers (or, for the head, the one verified), never a copy a
/// peer sent beside a block. A `BadSignatures` peer one block behind (so
/// every batch's last block, whose copy is verified, comes from an honest
/// peer) serves many interior blocks: the node stores exactly the source's
/// signatures, block by block. (One epoch: SyncEpoch, which checks the
/// copies sent beside epoch blocks, would remove it before it serves any.)
#[test]
fn a_node_synced_next_to_a_bad_signatures_peer_stores_exactly_the_sources_signatures() {
    let (genesis, _, blocks) = common::chain(common::spec(32, 1000, 8), 1, 220);
    let a = serving(&genesis, &blocks);
    let b = serving(&genesis, &blocks);
    let liar = byzantine(&genesis, &blocks[..219], Behaviour::BadSignatures);
    let mut dst = syncing(&genesis, boot(&[&a, &b, &liar]), |c, s| {
        c.sync.staged.max_blocks_per_sync_cycle = 0;
        s.body_batch = 4;
        s.hash_batch = 16;
    });
    assert!(dst.node.wait_sync(WAIT), "sync did not finish");
    assert_eq!(head_hash(&dst.store), head_hash(&a.store));
    for n in 0..=220u64 {
        assert_eq!(
            dst.store.commit_sig(n).expect("read"),
            a.store.commit_sig(n).expect("read"),
            "block {n}: stored signature differs from the source's"
        );
    }
}

/// Finding 3: a stream whose hashes nobody can serve (it cannot serve them
/// itself) pays: softly at once, critically once the canonical blocks at
/// those numbers are committed and prove its claims false. The honest
/// peer is never blamed.
#[test]
fn a_hash_source_whose_hashes_nobody_can_serve_pays() {
    let (genesis, _, blocks) = common::chain(common::spec(33, 50, 8), 1, 200);
    let honest = serving(&genesis, &blocks);
    let liar = byzantine(&genesis, &blocks, Behaviour::FakeHashes);
    let mut dst = syncing(&genesis, boot(&[&honest, &liar]), small_batches);
    assert!(dst.node.wait_sync(WAIT), "sync did not finish");
    assert_eq!(head_hash(&dst.store), head_hash(&honest.store));
    assert_never_removed(&dst.node, &honest);
    assert_removed_critically(&dst.node, &liar);
    assert!(dst.node.status().sync.liars_proven >= 1);
}

/// Finding 3, second variant: a stream claims the hash of a forged block
/// and serves it; the honest block after it (from another peer) then does
/// not link. The hash list that is not a chain proves its source lied; the
/// honest sender of the next block is not blamed.
#[test]
fn a_broken_link_blames_the_hash_source_not_the_next_sender() {
    let (genesis, _, blocks) = common::chain(common::spec(34, 50, 8), 1, 200);
    let honest = serving(&genesis, &blocks);
    let liar = byzantine(&genesis, &blocks, Behaviour::BrokenLinks);
    let mut dst = syncing(&genesis, boot(&[&honest, &liar]), small_batches);
    assert!(dst.node.wait_sync(WAIT), "sync did not finish");
    assert_eq!(head_hash(&dst.store), head_hash(&honest.store));
    assert_never_removed(&dst.node, &honest);
    assert_removed_critically(&dst.node, &liar);
}

/// Finding 4: the only peer claims a height a million blocks ahead while
/// serving 600. The sync fetches everything it has, treats its claim as
/// 600 (what it showed it can serve) and ends synced, instead of asking
/// again and again for blocks it does not have.
#[test]
fn a_height_no_one_can_serve_does_not_stall_the_sync() {
    let (genesis, _, blocks) = common::chain(common::spec(35, 100, 8), 1, 600);
    let liar_chain: Arc<std::sync::Mutex<Option<Arc<Watched>>>> = Arc::default();
    let slot = liar_chain.clone();
    let liar = serving_through(&genesis, &blocks, true, move |s| {
        let w = Watched::new(Arc::new(ByzantineBackend::new(s, Behaviour::LyingHeights)));
        *slot.lock().expect("slot") = Some(w.clone());
        w
    });
    let mut dst = syncing(&genesis, boot(&[&liar]), |_, _| {});
    assert!(
        dst.node.wait_sync(WAIT),
        "sync did not finish: {:?}",
        dst.node.status()
    );
    assert_eq!(head_hash(&dst.store), head_hash(&liar.store));
    match dst.node.sync_outcome() {
        Some(SyncOutcome::Synced {
            head: 600,
            target: 600,
        }) => {}
        other => panic!("not synced at the servable height: {other:?}"),
    }
    let watched = liar_chain
        .lock()
        .expect("slot")
        .clone()
        .expect("liar backend");
    let past_head = watched
        .hashes_asked
        .lock()
        .iter()
        .filter(|n| **n > 600)
        .count();
    // At most the hash requests already in flight when its first "absent"
    // came back (4 per stream, 1,024 numbers each); never asked again.
    assert!(
        past_head <= 4 * 1024,
        "asked {past_head} times for hashes past the peer's chain"
    );
}

/// Finding 5: Heads needs `MinPeers` answering peers. With two of three
/// the node decides nothing (it neither syncs nor declares itself synced);
/// when a third connects, it syncs.
#[test]
fn heads_needs_min_peers_answering_peers() {
    let (genesis, _, blocks) = common::chain(common::spec(36, 50, 8), 1, 120);
    let a = serving(&genesis, &blocks);
    let b = serving(&genesis, &blocks);
    let mut dst = syncing(&genesis, boot(&[&a, &b]), |_, s| {
        s.min_peers = 3;
        s.init_wait = Duration::ZERO;
    });
    wait_for("Heads refusing to decide with two peers", || {
        dst.node
            .status()
            .sync
            .last_error
            .is_some_and(|e| e.contains("need 3"))
    });
    let st = dst.node.status().sync;
    assert_eq!(
        dst.store.head().expect("head").number,
        0,
        "synced without a quorum"
    );
    assert!(!st.synced, "declared synced without a quorum");
    assert!(!dst.node.sync_finished());
    // A third peer connects (it dials the node).
    let _third = serving_and_dialling(&genesis, &blocks, dst.node.peer_addr());
    assert!(
        dst.node.wait_sync(WAIT),
        "sync did not finish with three peers"
    );
    assert_eq!(head_hash(&dst.store), head_hash(&a.store));
}

/// A node whose datadir holds a forged branch (written, say, by a version
/// whose sampling was unsound: real blocks, a forged hand-over, blocks
/// signed by the forger) finds it on start, unwinds to its last verified
/// block, says so, and syncs the honest chain.
#[test]
fn a_node_on_an_invalid_branch_unwinds_to_its_last_verified_block() {
    let (genesis, chain, blocks) = common::chain(common::spec(37, 50, 8), 1, 300);
    let hand_over = chain.epoch_last_block(1);
    let mut fork = ForgedFork::new(&chain, hand_over, 8, 5).expect("keys");
    let real = |n: u64| blocks.get(n as usize - 1).cloned();
    let forged: Vec<BlockWithSig> = (hand_over..=hand_over + 60)
        .map(|n| fork.block(n, real).expect("forged").clone())
        .collect();
    let (store, _dir) = common::store(&genesis, &blocks[..hand_over as usize - 1]);
    store
        .insert_batch(&InsertBatch::seal(forged, vec![]))
        .expect("the forged branch executes");
    let honest = serving(&genesis, &blocks);
    let mut dst = common::nodes::syncing_node(store.clone(), boot(&[&honest]), |_, _| {});
    assert!(
        dst.wait_sync(WAIT),
        "sync did not finish: {:?}",
        dst.status()
    );
    assert_eq!(head_hash(&store), head_hash(&honest.store));
    assert_eq!(dst.status().sync.unwinds, 1);
    assert_never_removed(&dst, &honest);
}

/// Finding 7 at the API: a sync thread that dies is reported as failed,
/// not as synced.
#[test]
fn a_dead_sync_thread_is_reported_as_failed() {
    struct Panics(Arc<dyn ChainBackend>);
    impl ChainBackend for Panics {
        fn chain_spec(&self) -> &streamsync::chain::ChainSpec {
            self.0.chain_spec()
        }
        fn head(&self) -> Result<streamsync::chain::HeadInfo, streamsync::chain::BackendError> {
            self.0.head()
        }
        fn hash_by_number(
            &self,
            n: u64,
        ) -> Result<Option<[u8; 32]>, streamsync::chain::BackendError> {
            self.0.hash_by_number(n)
        }
        fn number_by_hash(
            &self,
            h: &[u8; 32],
        ) -> Result<Option<u64>, streamsync::chain::BackendError> {
            self.0.number_by_hash(h)
        }
        fn header_by_number(
            &self,
            n: u64,
        ) -> Result<Option<streamsync::chain::Header>, streamsync::chain::BackendError> {
            self.0.header_by_number(n)
        }
        fn block_by_number(
            &self,
            n: u64,
        ) -> Result<Option<streamsync::chain::Block>, streamsync::chain::BackendError> {
            self.0.block_by_number(n)
        }
        fn commit_sig(
            &self,
            n: u64,
        ) -> Result<Option<streamsync::chain::CommitSig>, streamsync::chain::BackendError> {
            self.0.commit_sig(n)
        }
        fn committee(
            &self,
            e: u64,
        ) -> Result<Option<streamsync::chain::Committee>, streamsync::chain::BackendError> {
            self.0.committee(e)
        }
        fn stage_progress(
            &self,
            s: streamsync::chain::StageId,
        ) -> Result<u64, streamsync::chain::BackendError> {
            self.0.stage_progress(s)
        }
        fn insert_verified_batch(
            &self,
            _: &InsertBatch,
        ) -> Result<streamsync::chain::HeadInfo, streamsync::chain::BackendError> {
            panic!("the writer died");
        }
    }
    let (genesis, _, blocks) = common::chain(common::spec(38, 50, 8), 1, 40);
    let src = serving(&genesis, &blocks);
    let (store, _dir) = common::store(&genesis, &[]);
    let mut dst = syncing_through(
        Arc::new(Panics(store.clone())),
        store,
        boot(&[&src]),
        |_, _| {},
    );
    assert!(dst.wait_sync(WAIT), "the sync thread did not end");
    assert!(
        matches!(dst.sync_outcome(), Some(SyncOutcome::Failed(_))),
        "{:?}",
        dst.sync_outcome()
    );
}
