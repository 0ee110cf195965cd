//! LMDB store: atomic batches, map growth, refusal of foreign data.

mod common;

use std::sync::Arc;

use streamsync::chain::backend::InsertBatch;
use streamsync::chain::ChainBackend;
use streamsync::chain::StageId;
use streamsync::store::{LmdbStaging, StageWrite, Store, StoreError, StoreOptions};

fn opts() -> StoreOptions {
    StoreOptions {
        initial_map_size: 64 << 20,
        durable: false,
    }
}

#[test]
fn insert_batch_is_atomic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (genesis, _, blocks) = common::chain(common::spec(1, 10, 4), 3, 20);
    let store = Store::open_or_create(dir.path(), &genesis, opts()).expect("create");
    store
        .insert_batch(&InsertBatch::seal(
            blocks[..10].to_vec(),
            vec![(StageId::States, 10)],
        ))
        .expect("first batch");
    let sender = blocks[10].block.body.transfers[0].from;
    let before = store.account(&sender).expect("read");
    // Second batch: block 16 claims a wrong state root.
    let mut bad = blocks[10..].to_vec();
    bad[5].block.header.state_root[0] ^= 1;
    let err = store
        .insert_batch(&InsertBatch::seal(bad, vec![(StageId::States, 20)]))
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Invalid(ref v) if v.block_number() == 16),
        "{err}"
    );
    let head = store.head().expect("head");
    assert_eq!(head.number, 10);
    assert_eq!(head.hash, blocks[9].block.hash());
    assert_eq!(
        store.account(&sender).expect("read"),
        before,
        "state changed by a failed batch"
    );
    assert_eq!(
        store.block_by_number(11).expect("read"),
        None,
        "block of a failed batch visible"
    );
    assert_eq!(store.stage_progress(StageId::States).expect("read"), 10);
}

#[test]
fn batch_not_extending_head_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (genesis, _, blocks) = common::chain(common::spec(1, 10, 4), 0, 5);
    let store = Store::open_or_create(dir.path(), &genesis, opts()).expect("create");
    let err = store
        .insert_batch(&InsertBatch::seal(blocks[2..].to_vec(), vec![]))
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NotContiguous { head: 0, got: 3 }),
        "{err}"
    );
}

#[test]
fn reads_by_number_and_hash_after_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (genesis, chain, blocks) = common::chain(common::spec(2, 4, 4), 2, 9);
    {
        let store = Store::open_or_create(dir.path(), &genesis, opts()).expect("create");
        store
            .insert_batch(&InsertBatch::seal(blocks.clone(), vec![]))
            .expect("insert");
    }
    let store = Store::open(dir.path(), opts()).expect("reopen");
    assert_eq!(store.chain_spec(), &chain);
    let b5 = &blocks[4];
    let hash = b5.block.hash();
    assert_eq!(store.hash_by_number(5).expect("read"), Some(hash));
    assert_eq!(store.number_by_hash(&hash).expect("read"), Some(5));
    assert_eq!(
        store.block_by_hash(&hash).expect("read"),
        Some(b5.block.clone())
    );
    assert_eq!(store.header_by_hash(&[0; 32]).expect("read"), None);
    assert_eq!(
        store.block_with_sig(9).expect("read"),
        Some(blocks[8].clone())
    );
    // Block 4's commit comes from block 5's header.
    assert_eq!(
        store.commit_sig(4).expect("read"),
        blocks[4].block.header.parent_commit()
    );
    // Epochs of 4: committees of epochs 0, 1, 2 known after block 7.
    for e in 0..=2 {
        assert!(store.committee(e).expect("read").is_some(), "committee {e}");
    }
    assert_eq!(store.head().expect("head").epoch, 2);
}

#[test]
fn map_grows_instead_of_failing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (genesis, _, blocks) = common::chain(common::spec(4, 100, 8), 8, 600);
    let small = StoreOptions {
        initial_map_size: 256 << 10,
        durable: false,
    };
    let store = Store::open_or_create(dir.path(), &genesis, small).expect("create");
    for chunk in blocks.chunks(200) {
        store
            .insert_batch(&InsertBatch::seal(chunk.to_vec(), vec![]))
            .expect("insert grows the map");
    }
    assert_eq!(store.head().expect("head").number, 600);
    assert!(store.map_size() > 256 << 10, "map did not grow");
}

#[test]
fn other_network_database_is_refused_untouched() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (genesis, _, _) = common::chain(common::spec(1, 10, 4), 0, 0);
    drop(Store::open_or_create(dir.path(), &genesis, opts()).expect("create"));
    let mut other = common::spec(1, 10, 4);
    other.network = "testnet".into();
    let other = other.build().expect("genesis");
    let err = Store::open_or_create(dir.path(), &other, opts()).unwrap_err();
    assert!(matches!(err, StoreError::OtherChain { .. }), "{err}");
    assert_eq!(
        Store::open(dir.path(), opts())
            .expect("still ours")
            .chain_spec()
            .genesis_hash,
        genesis.block.hash()
    );
}

#[test]
fn foreign_directory_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("notes.txt"), b"mine").expect("write");
    let (genesis, _, _) = common::chain(common::spec(1, 10, 4), 0, 0);
    let err = Store::open_or_create(dir.path(), &genesis, opts()).unwrap_err();
    assert!(matches!(err, StoreError::NotOurs { .. }), "{err}");
    assert!(!dir.path().join("data.mdb").exists());
    // An LMDB file of garbage is refused too.
    let dir2 = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir2.path().join("data.mdb"), vec![0x5a; 8192]).expect("write");
    assert!(matches!(
        Store::open(dir2.path(), opts()),
        Err(StoreError::NotOurs { .. })
    ));
}

/// A staging write lands with its checkpoints in one transaction, reads
/// back by range, and commits drop what they cover.
#[test]
fn staged_hashes_and_blocks_land_with_their_checkpoints() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (genesis, _, blocks) = common::chain(common::spec(1, 10, 4), 1, 4);
    let store = Arc::new(Store::open_or_create(dir.path(), &genesis, opts()).expect("create"));
    let s = LmdbStaging::new(store.clone());
    s.write(&StageWrite {
        hashes: blocks
            .iter()
            .map(|b| (b.block.number(), b.block.hash()))
            .collect(),
        blocks: blocks[..3]
            .iter()
            .map(|b| (b.block.number(), b.to_bytes().into()))
            .collect(),
        progress: vec![(StageId::BlockHashes, 4), (StageId::BlockBodies, 3)],
    })
    .expect("write");
    assert_eq!(store.stage_progress(StageId::BlockHashes).expect("ckpt"), 4);
    assert_eq!(store.stage_progress(StageId::BlockBodies).expect("ckpt"), 3);
    assert_eq!(s.block_count().expect("count"), 3);
    let hashes = s.hashes(2, 3).expect("read");
    assert_eq!(
        hashes,
        vec![(2, blocks[1].block.hash()), (3, blocks[2].block.hash())]
    );
    let raw = s.blocks(1, 4, usize::MAX).expect("read");
    assert_eq!(raw.len(), 3);
    assert_eq!(raw[2].1, blocks[2].to_bytes());
    // A byte limit stops the read.
    assert_eq!(s.blocks(1, 4, raw[0].1.len()).expect("read").len(), 1);
    s.remove(2, false).expect("remove");
    assert_eq!(s.block_count().expect("count"), 1);
    assert_eq!(s.hashes(1, 4).expect("read").len(), 2);
    s.remove(3, true).expect("remove above");
    assert_eq!(
        s.hashes(1, 4).expect("read"),
        vec![(3, blocks[2].block.hash())]
    );
    s.clear().expect("clear");
    assert_eq!(s.block_count().expect("count"), 0);
}

/// The signature kept for a block is the one its child's header carries
/// (covered by the child's hash), never the copy sent beside it: a batch
/// whose side copies were corrupted (as a `BadSignatures` peer sends them)
/// stores exactly the chain's signatures, except the batch's last block,
/// whose side copy is the one the caller verified.
#[test]
fn stored_commit_signatures_are_the_ones_the_hash_chain_covers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (genesis, _, blocks) = common::chain(common::spec(2, 10, 4), 1, 25);
    let store = Store::open_or_create(dir.path(), &genesis, opts()).expect("create");
    for part in [&blocks[..12], &blocks[12..]] {
        let mut sent = part.to_vec();
        let last = sent.len() - 1;
        for b in &mut sent[..last] {
            b.commit_sig.signature[10] ^= 0x55;
        }
        store
            .insert_batch(&InsertBatch::seal(sent, vec![]))
            .expect("insert");
    }
    for b in &blocks {
        let n = b.block.number();
        assert_eq!(
            store.commit_sig(n).expect("read").as_ref(),
            Some(&b.commit_sig),
            "block {n}"
        );
    }
}

/// `unwind_to` removes the blocks above the target and restores the state
/// exactly: the removed blocks insert again on top of it (their state roots
/// check out) and give the same head.
#[test]
fn unwind_restores_the_state_and_removes_later_blocks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (genesis, chain, blocks) = common::chain(common::spec(3, 10, 4), 3, 30);
    let store = Store::open_or_create(dir.path(), &genesis, opts()).expect("create");
    store
        .insert_batch(&InsertBatch::seal(
            blocks.clone(),
            vec![(StageId::States, 30)],
        ))
        .expect("insert");
    let tip = store.head().expect("head");
    let head = store.unwind_to(12).expect("unwind");
    assert_eq!(head.number, 12);
    assert_eq!(head.hash, blocks[11].block.hash());
    assert_eq!(store.head().expect("head"), head);
    assert_eq!(store.stage_progress(StageId::States).expect("read"), 12);
    for n in 13..=30u64 {
        assert_eq!(store.hash_by_number(n).expect("read"), None, "block {n}");
        let hash = blocks[n as usize - 1].block.hash();
        assert_eq!(store.number_by_hash(&hash).expect("read"), None);
    }
    assert!(
        store.committee(1).expect("read").is_some(),
        "named by block {}, kept",
        chain.epoch_last_block(0)
    );
    assert!(
        store.committee(2).expect("read").is_none(),
        "the committee block {} named is gone",
        chain.epoch_last_block(1)
    );
    assert_eq!(
        store.commit_sig(12).expect("read"),
        None,
        "the head's signature came from a removed header"
    );
    store
        .insert_batch(&InsertBatch::seal(blocks[12..].to_vec(), vec![]))
        .expect("the removed blocks execute again on the restored state");
    assert_eq!(store.head().expect("head"), tip);
    assert_eq!(
        store.commit_sig(12).expect("read").as_ref(),
        Some(&blocks[11].commit_sig)
    );
}

/// The audit of a stored chain re-checks every hand-over and the head: an
/// honest chain passes; a chain with a forged hand-over is verified only up
/// to the previous epoch's last block.
#[test]
#[cfg(feature = "testkit")] // ForgedFork is test support
fn audit_stops_at_the_last_block_before_a_forged_hand_over() {
    use streamsync::byzantine::ForgedFork;
    use streamsync::chain::audit::audit_chain;
    let (genesis, chain, blocks) = common::chain(common::spec(4, 10, 4), 1, 60);
    let (honest, _d1) = common::store(&genesis, &blocks);
    let audit = audit_chain(&*honest).expect("audit");
    assert!(audit.passed(), "{audit:?}");
    assert_eq!(audit.verified_to, 60);
    assert_eq!(
        audit.sigs_checked, 7,
        "hand-overs 9, 19, .., 59 and the head"
    );

    let hand_over = chain.epoch_last_block(1);
    let mut fork = ForgedFork::new(&chain, hand_over, 4, 1).expect("keys");
    let real = |n: u64| blocks.get(n as usize - 1).cloned();
    let forged: Vec<_> = (hand_over..=40)
        .map(|n| fork.block(n, real).expect("forged").clone())
        .collect();
    let (store, _d2) = common::store(&genesis, &blocks[..hand_over as usize - 1]);
    store
        .insert_batch(&InsertBatch::seal(forged, vec![]))
        .expect("the forged blocks execute");
    let audit = audit_chain(&*store).expect("audit");
    assert_eq!(audit.head, 40);
    assert_eq!(audit.verified_to, chain.epoch_last_block(0));
    assert_eq!(audit.error.map(|e| e.block_number()), Some(hand_over));
}

/// A backend implementing only `ChainBackend`'s six required methods (the
/// rest are the trait's defaults) answers every read as the LMDB store,
/// which overrides them, does: headers, bodies, commit signatures, and the
/// committee of every epoch (named by genesis, then by each epoch's last
/// block).
#[test]
fn the_trait_defaults_answer_as_the_store_does() {
    use streamsync::chain::{BackendError, BlockWithSig, ChainSpec, HeadInfo};
    struct SixMethods(Arc<Store>);
    impl ChainBackend for SixMethods {
        fn chain_spec(&self) -> &ChainSpec {
            self.0.chain_spec()
        }
        fn head(&self) -> Result<HeadInfo, BackendError> {
            self.0.head()
        }
        fn hash_by_number(&self, n: u64) -> Result<Option<[u8; 32]>, BackendError> {
            self.0.hash_by_number(n)
        }
        fn number_by_hash(&self, h: &[u8; 32]) -> Result<Option<u64>, BackendError> {
            self.0.number_by_hash(h)
        }
        fn block_with_sig(&self, n: u64) -> Result<Option<BlockWithSig>, BackendError> {
            self.0.block_with_sig(n)
        }
        fn insert_verified_batch(&self, b: &InsertBatch) -> Result<HeadInfo, BackendError> {
            self.0.insert_verified_batch(b)
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (genesis, _, blocks) = common::chain(common::spec(4, 10, 4), 2, 45);
    let store = Arc::new(Store::open_or_create(dir.path(), &genesis, opts()).expect("create"));
    store
        .insert_batch(&InsertBatch::seal(blocks, vec![]))
        .expect("insert");
    let six = SixMethods(store.clone());
    for epoch in 0..=4 {
        let want = store.committee(epoch).expect("read");
        assert!(want.is_some(), "the store knows epoch {epoch}");
        assert_eq!(six.committee(epoch).expect("read"), want, "epoch {epoch}");
    }
    for n in [1, 9, 10, 44] {
        assert_eq!(
            six.header_by_number(n).expect("read"),
            store.header_by_number(n).expect("read")
        );
        assert_eq!(
            six.block_by_number(n).expect("read"),
            store.block_by_number(n).expect("read")
        );
        assert_eq!(
            six.commit_sig(n).expect("read"),
            store.commit_sig(n).expect("read")
        );
        assert_eq!(
            six.block_with_sig_bytes(n).expect("read"),
            store.block_with_sig_bytes(n).expect("read")
        );
    }
}

/// The state transition a store applies is its executor's: every inserted
/// block goes through it once, and a block it refuses is not inserted,
/// nor any of its batch.
#[test]
fn the_store_executes_each_inserted_block_through_its_executor() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use streamsync::chain::executor::{ExecFailure, Unreadable};
    use streamsync::chain::state::StateDiff;
    use streamsync::chain::{Account, Address, Block, Executor, Header, Transfers};

    /// This chain's transfers, counting the blocks executed and refusing
    /// one number.
    #[derive(Debug)]
    struct Counting {
        executed: AtomicU64,
        refuse: u64,
    }
    impl Executor for Counting {
        fn execute(
            &self,
            block: &Block,
            parent: &Header,
            state: &mut dyn FnMut(&Address) -> Result<Option<Account>, Unreadable>,
        ) -> Result<StateDiff, ExecFailure> {
            self.executed.fetch_add(1, Ordering::Relaxed);
            if block.number() == self.refuse {
                return Err(ExecFailure::Invalid("refused by the test executor".into()));
            }
            Transfers.execute(block, parent, state)
        }
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let (genesis, _, blocks) = common::chain(common::spec(1, 10, 4), 3, 12);
    let executor = Arc::new(Counting {
        executed: AtomicU64::new(0),
        refuse: 9,
    });
    let store = Store::open_or_create(dir.path(), &genesis, opts())
        .expect("create")
        .with_executor(executor.clone());
    store
        .insert_batch(&InsertBatch::seal(blocks[..6].to_vec(), vec![]))
        .expect("blocks 1-6");
    assert_eq!(executor.executed.load(Ordering::Relaxed), 6);
    let err = store
        .insert_batch(&InsertBatch::seal(blocks[6..].to_vec(), vec![]))
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Invalid(ref v) if v.block_number() == 9),
        "{err}"
    );
    assert_eq!(
        executor.executed.load(Ordering::Relaxed),
        9,
        "7, 8, then 9 refused: execution stops at the refused block"
    );
    assert_eq!(
        store.head().expect("head").number,
        6,
        "nothing of the batch"
    );
    assert_eq!(store.block_by_number(7).expect("read"), None);
}

/// An executor that reports a failed state read when none failed broke
/// its contract: the store refuses the batch as a local fault (a storage
/// error the sync blames nobody for), not as an invalid block.
#[test]
fn an_executor_that_breaks_its_contract_is_a_local_fault_not_an_invalid_block() {
    use streamsync::chain::executor::{ExecFailure, Unreadable};
    use streamsync::chain::state::StateDiff;
    use streamsync::chain::{Account, Address, BackendError, Block, Executor, Header};

    #[derive(Debug)]
    struct Liar;
    impl Executor for Liar {
        fn execute(
            &self,
            _: &Block,
            _: &Header,
            _: &mut dyn FnMut(&Address) -> Result<Option<Account>, Unreadable>,
        ) -> Result<StateDiff, ExecFailure> {
            Err(ExecFailure::Unreadable)
        }
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let (genesis, _, blocks) = common::chain(common::spec(1, 10, 4), 3, 2);
    let store = Store::open_or_create(dir.path(), &genesis, opts())
        .expect("create")
        .with_executor(Arc::new(Liar));
    let err = store
        .insert_verified_batch(&InsertBatch::seal(blocks, vec![]))
        .unwrap_err();
    assert!(matches!(err, BackendError::Storage(_)), "{err}");
    assert_eq!(store.head().expect("head").number, 0);
}
