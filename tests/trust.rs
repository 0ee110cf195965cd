//! The trust rules that live in the real node's threads, over loopback
//! (DESIGN.md §9): a node on an invalid branch unwinds on start (the sync
//! driver's audit of its own LMDB chain), and a sync thread that dies is
//! reported as failed. The trust rules of the sync itself (forged
//! hand-overs, bad signatures, liars paying, heights nobody serves, the
//! Heads quorum) are tested in the simulator (`tests/sim_sync.rs`).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::nodes::{serving, syncing_through, Running};
use streamsync::chain::backend::InsertBatch;
use streamsync::chain::ChainBackend;
use streamsync::stream::PeerAddr;
use streamsync::sync::SyncOutcome;
#[cfg(feature = "testkit")] // ForgedFork is test support
use {
    common::nodes::head_hash, libp2p_identity::PeerId, streamsync::byzantine::ForgedFork,
    streamsync::chain::BlockWithSig, streamsync::node::Node, streamsync::stream::RemovalReason,
};

const WAIT: Duration = Duration::from_secs(120);

#[cfg(feature = "testkit")]
fn peer(r: &Running) -> PeerId {
    r.node.peer_addr().peer
}

fn boot(peers: &[&Running]) -> Vec<PeerAddr> {
    peers.iter().map(|r| r.node.peer_addr()).collect()
}

/// The removals `node` decided, as (peer, reason).
#[cfg(feature = "testkit")]
fn removals(node: &Node) -> Vec<(PeerId, RemovalReason)> {
    node.status().host.recent_removals
}

#[cfg(feature = "testkit")]
fn assert_never_removed(node: &Node, honest: &Running) {
    let r = removals(node);
    assert!(
        !r.iter().any(|(p, _)| *p == peer(honest)),
        "the honest peer was removed: {r:?}"
    );
}

/// A node whose datadir holds a forged branch (written, say, by a version
/// whose sampling was unsound: real blocks, a forged hand-over, blocks
/// signed by the forger) finds it on start, unwinds to its last verified
/// block, says so, and syncs the honest chain.
#[test]
#[cfg(feature = "testkit")] // ForgedFork is test support
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
        fn block_with_sig(
            &self,
            n: u64,
        ) -> Result<Option<streamsync::chain::BlockWithSig>, streamsync::chain::BackendError>
        {
            self.0.block_with_sig(n)
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
