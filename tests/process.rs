//! Process hygiene through the library: `Node::shutdown` is bounded even
//! when a thread hangs, and a datadir is opened by one store at a time.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam::channel::{bounded, Receiver, Sender};
use streamsync::chain::backend::InsertBatch;
use streamsync::chain::BlockWithSig;
use streamsync::chain::{
    BackendError, Block, ChainBackend, ChainSpec, CommitSig, Committee, HeadInfo, Header,
};
use streamsync::config::{Config, Network};
use streamsync::crypto::{NodeIdentity, B256};
use streamsync::node::{Node, NodeConfig, SHUTDOWN_DEADLINE};
use streamsync::store::{Store, StoreError, StoreOptions, LOCK_FILE};

/// A backend that never answers the sync thread: any call from the thread
/// named `sync` says so on `entered` and then blocks until `release` is
/// dropped. Other threads (the caller of `Node::start`, the server) pass.
struct Stalling {
    inner: Arc<Store>,
    entered: Sender<()>,
    release: Receiver<()>,
}

impl Stalling {
    fn gate(&self) {
        if std::thread::current().name() == Some("sync") {
            let _ = self.entered.try_send(());
            let _ = self.release.recv();
        }
    }
}

impl ChainBackend for Stalling {
    fn chain_spec(&self) -> &ChainSpec {
        self.inner.chain_spec()
    }
    fn head(&self) -> Result<HeadInfo, BackendError> {
        self.gate();
        self.inner.head()
    }
    fn hash_by_number(&self, number: u64) -> Result<Option<B256>, BackendError> {
        self.gate();
        self.inner.hash_by_number(number)
    }
    fn number_by_hash(&self, hash: &B256) -> Result<Option<u64>, BackendError> {
        self.gate();
        self.inner.number_by_hash(hash)
    }
    fn header_by_number(&self, number: u64) -> Result<Option<Header>, BackendError> {
        self.gate();
        self.inner.header_by_number(number)
    }
    fn block_by_number(&self, number: u64) -> Result<Option<Block>, BackendError> {
        self.gate();
        self.inner.block_by_number(number)
    }
    fn commit_sig(&self, number: u64) -> Result<Option<CommitSig>, BackendError> {
        self.gate();
        self.inner.commit_sig(number)
    }
    fn committee(&self, epoch: u64) -> Result<Option<Committee>, BackendError> {
        self.gate();
        self.inner.committee(epoch)
    }
    fn block_with_sig(&self, number: u64) -> Result<Option<BlockWithSig>, BackendError> {
        self.gate();
        self.inner.block_with_sig(number)
    }
    fn insert_verified_batch(&self, batch: &InsertBatch) -> Result<HeadInfo, BackendError> {
        self.gate();
        self.inner.insert_verified_batch(batch)
    }
}

fn client_config() -> NodeConfig {
    let mut config = Config::for_network(Network::Localnet);
    config.sync.client = true;
    NodeConfig::new(config, "127.0.0.1:0".parse().expect("addr"))
}

fn opts() -> StoreOptions {
    StoreOptions {
        durable: false,
        ..StoreOptions::default()
    }
}

/// Runs `shutdown` on another thread; `None` if it has not returned after
/// `limit` (so a hang fails the test instead of hanging it).
fn returns_within<T: Send + 'static>(
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = bounded(1);
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).ok()
}

#[test]
fn shutdown_returns_by_its_deadline_and_names_a_sync_thread_that_hangs() {
    let (genesis, _, _) = common::chain(common::spec(3, 10, 4), 0, 0);
    let (store, _dir) = common::store(&genesis, &[]);
    let (entered_tx, entered) = bounded(1);
    let (release, release_rx) = bounded::<()>(0);
    let backend = Arc::new(Stalling {
        inner: store,
        entered: entered_tx,
        release: release_rx,
    });
    let node = Node::start(client_config(), backend, NodeIdentity::generate(), None).expect("node");
    entered
        .recv_timeout(Duration::from_secs(30))
        .expect("the sync thread calls the backend");

    let limit = Duration::from_secs(4);
    let started = Instant::now();
    let report = returns_within(Duration::from_secs(30), move || node.shutdown_within(limit))
        .expect("shutdown_within did not return within 30 s while the sync thread hangs");
    let took = started.elapsed();
    assert_eq!(
        report.not_stopped,
        vec!["sync"],
        "the hung sync thread is named, the host stopped"
    );
    assert!(report.outcome.is_none(), "{:?}", report.outcome);
    assert!(
        took < limit + Duration::from_secs(2),
        "took {took:?} for a deadline of {limit:?}"
    );
    drop(release); // the stalled thread ends now
}

#[test]
fn shutdown_of_a_healthy_node_stops_every_thread_well_within_the_deadline() {
    let (genesis, _, _) = common::chain(common::spec(3, 10, 4), 0, 0);
    let (store, _dir) = common::store(&genesis, &[]);
    let node = Node::start(client_config(), store, NodeIdentity::generate(), None).expect("node");
    let report = returns_within(SHUTDOWN_DEADLINE * 2, move || {
        node.shutdown_within(SHUTDOWN_DEADLINE)
    })
    .expect("shutdown returned");
    assert!(report.not_stopped.is_empty(), "{:?}", report.not_stopped);
    assert!(
        report.outcome.is_some(),
        "the sync thread ended and said how"
    );
}

#[test]
fn a_datadir_already_open_is_refused_naming_the_holder_until_the_store_is_dropped() {
    let (genesis, _, _) = common::chain(common::spec(4, 10, 4), 0, 0);
    let dir = tempfile::tempdir().expect("tmp");
    let first = Store::open_or_create(dir.path(), &genesis, opts()).expect("create");
    let me = std::process::id();
    let lock = std::fs::read_to_string(dir.path().join(LOCK_FILE)).expect("lock file");
    assert_eq!(
        lock.trim(),
        me.to_string(),
        "the holder's pid is in the lock"
    );

    for err in [
        Store::open(dir.path(), opts()).expect_err("second open refused"),
        Store::open_or_create(dir.path(), &genesis, opts()).expect_err("second create refused"),
    ] {
        assert!(
            matches!(err, StoreError::InUse { pid: Some(p), .. } if p == me),
            "{err}"
        );
        let text = err.to_string();
        assert!(
            text.contains(&format!("datadir {} is in use", dir.path().display()))
                && text.contains(&format!("pid {me}")),
            "{text}"
        );
    }
    drop(first);
    Store::open(dir.path(), opts()).expect("reopens once the first store is dropped");
}

#[test]
fn a_directory_holding_only_a_lock_file_is_created_into() {
    // What a creation that failed after taking the lock leaves behind.
    let (genesis, _, _) = common::chain(common::spec(5, 10, 4), 0, 0);
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join(LOCK_FILE), b"12345\n").expect("write");
    let store = Store::open_or_create(dir.path(), &genesis, opts()).expect("created");
    assert_eq!(store.head().expect("head").number, 0);
}
