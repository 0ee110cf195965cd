//! `testkit::MemChain`, the chain store of simulated nodes, against the LMDB
//! store it stands in for: same blocks in, same chain out.
#![cfg(feature = "testkit")]

mod common;

use streamsync::chain::backend::InsertBatch;
use streamsync::chain::{BackendError, BlockWithSig, ChainBackend, VerifyError};
use streamsync::store::{Store, StoreOptions};
use streamsync::testkit::MemChain;

/// Genesis and 60 blocks over epochs of 10 (six committee hand-overs).
fn chain() -> (streamsync::chain::Genesis, Vec<BlockWithSig>) {
    let (g, _, b) = common::chain(common::spec(7, 10, 4), 3, 60);
    (g, b)
}

fn both(genesis: &streamsync::chain::Genesis) -> (MemChain, Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("dir");
    let store = Store::open_or_create(dir.path(), genesis, StoreOptions::default()).expect("store");
    (MemChain::new(genesis).expect("mem"), store, dir)
}

fn insert(b: &dyn ChainBackend, blocks: &[BlockWithSig]) -> Result<(), BackendError> {
    b.insert_verified_batch(&InsertBatch::seal(blocks.to_vec(), vec![]))
        .map(|_| ())
}

/// Everything a server reads, compared block by block.
fn assert_same(mem: &MemChain, store: &Store, upto: u64) {
    assert_eq!(mem.head().expect("head"), store.head().expect("head"));
    for n in 0..=upto + 1 {
        assert_eq!(
            mem.hash_by_number(n).expect("r"),
            store.hash_by_number(n).expect("r"),
            "hash {n}"
        );
        assert_eq!(
            mem.commit_sig(n).expect("r"),
            store.commit_sig(n).expect("r"),
            "sig {n}"
        );
        assert_eq!(
            mem.block_with_sig_bytes(n).expect("r"),
            store.block_with_sig_bytes(n).expect("r"),
            "served bytes {n}"
        );
    }
    for e in 0..8 {
        assert_eq!(
            mem.committee(e).expect("r"),
            store.committee(e).expect("r"),
            "committee {e}"
        );
    }
}

#[test]
fn mem_chain_and_the_lmdb_store_agree_block_for_block() {
    let (genesis, blocks) = chain();
    let (mem, store, _dir) = both(&genesis);
    for batch in blocks.chunks(7) {
        insert(&mem, batch).expect("mem");
        insert(&store, batch).expect("store");
    }
    assert_same(&mem, &store, 60);
}

#[test]
fn a_batch_with_a_wrong_state_root_leaves_nothing_behind() {
    let (genesis, blocks) = chain();
    let (mem, _store, _dir) = both(&genesis);
    insert(&mem, &blocks[..5]).expect("first batch");
    let mut bad = blocks[5..9].to_vec();
    bad[3].block.header.state_root[0] ^= 1;
    let err = insert(&mem, &bad).expect_err("a wrong state root");
    assert!(
        matches!(
            err,
            BackendError::Invalid(VerifyError::Execution { number: 9, .. })
        ),
        "{err}"
    );
    assert_eq!(
        mem.head().expect("head").number,
        5,
        "nothing of the batch kept"
    );
    assert_eq!(mem.hash_by_number(6).expect("r"), None);
    // The valid batch still goes in on the untouched state.
    insert(&mem, &blocks[5..9]).expect("valid batch");
    assert_eq!(mem.head().expect("head").number, 9);
}

#[test]
fn unwinding_restores_what_the_store_restores() {
    let (genesis, blocks) = chain();
    let (mem, store, _dir) = both(&genesis);
    insert(&mem, &blocks[..33]).expect("mem");
    insert(&store, &blocks[..33]).expect("store");
    mem.unwind_to(12).expect("mem unwinds");
    store.unwind_to(12).expect("store unwinds");
    assert_same(&mem, &store, 33);
    // The accounts are back as they were at 12: the same blocks execute again.
    insert(&mem, &blocks[12..]).expect("mem again");
    insert(&store, &blocks[12..]).expect("store again");
    assert_same(&mem, &store, 60);
}
