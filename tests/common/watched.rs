//! A chain backend that records what really happened through it: which
//! blocks it served, how many hashes it answered, which blocks were
//! committed, and what a hook saw at each commit.

use std::sync::Arc;

use parking_lot::Mutex;
use streamsync::chain::backend::InsertBatch;
use streamsync::chain::{
    BackendError, Block, BlockWithSig, ChainBackend, ChainSpec, CommitSig, Committee, HeadInfo,
    Header,
};
use streamsync::crypto::B256;

/// Called with each batch before it is committed.
pub type OnInsert = Box<dyn Fn(&InsertBatch) + Send + Sync>;

/// Wraps a backend and records its traffic.
pub struct Watched {
    inner: Arc<dyn ChainBackend>,
    /// Numbers of the blocks served (`block_with_sig_bytes`).
    pub served: Mutex<Vec<u64>>,
    /// Numbers of the blocks served by hash (`GetBlocksByHashes`: bodies).
    pub served_by_hash: Mutex<Vec<u64>>,
    /// Numbers whose hash was asked (`hash_by_number`).
    pub hashes_asked: Mutex<Vec<u64>>,
    /// (number, hash) of every block committed through it.
    pub committed: Mutex<Vec<(u64, B256)>>,
    on_insert: Option<OnInsert>,
    /// Gets the new head after each commit, once it is readable.
    on_commit: Option<Mutex<std::sync::mpsc::Sender<u64>>>,
}

impl Watched {
    /// Records `inner`'s traffic.
    pub fn new(inner: Arc<dyn ChainBackend>) -> Arc<Self> {
        Self::with_hook(inner, None)
    }

    /// Records `inner`'s traffic and calls `hook` before every commit.
    pub fn with_hook(inner: Arc<dyn ChainBackend>, hook: Option<OnInsert>) -> Arc<Self> {
        Arc::new(Watched {
            inner,
            served: Mutex::default(),
            served_by_hash: Mutex::default(),
            hashes_asked: Mutex::default(),
            committed: Mutex::default(),
            on_insert: hook,
            on_commit: None,
        })
    }

    /// Records `inner`'s traffic and sends the new head's number after
    /// every commit: a test waits on the receiver instead of polling.
    pub fn reporting_commits(
        inner: Arc<dyn ChainBackend>,
    ) -> (Arc<Self>, std::sync::mpsc::Receiver<u64>) {
        let (tx, rx) = std::sync::mpsc::channel();
        let mut w = Watched {
            inner,
            served: Mutex::default(),
            served_by_hash: Mutex::default(),
            hashes_asked: Mutex::default(),
            committed: Mutex::default(),
            on_insert: None,
            on_commit: None,
        };
        w.on_commit = Some(Mutex::new(tx));
        (Arc::new(w), rx)
    }

    /// Forgets what was recorded so far.
    pub fn reset(&self) {
        self.served.lock().clear();
        self.served_by_hash.lock().clear();
        self.hashes_asked.lock().clear();
        self.committed.lock().clear();
    }
}

impl ChainBackend for Watched {
    fn chain_spec(&self) -> &ChainSpec {
        self.inner.chain_spec()
    }
    fn head(&self) -> Result<HeadInfo, BackendError> {
        self.inner.head()
    }
    fn hash_by_number(&self, number: u64) -> Result<Option<B256>, BackendError> {
        self.hashes_asked.lock().push(number);
        self.inner.hash_by_number(number)
    }
    fn number_by_hash(&self, hash: &B256) -> Result<Option<u64>, BackendError> {
        self.inner.number_by_hash(hash)
    }
    fn header_by_number(&self, number: u64) -> Result<Option<Header>, BackendError> {
        self.inner.header_by_number(number)
    }
    fn block_by_number(&self, number: u64) -> Result<Option<Block>, BackendError> {
        self.inner.block_by_number(number)
    }
    fn commit_sig(&self, number: u64) -> Result<Option<CommitSig>, BackendError> {
        self.inner.commit_sig(number)
    }
    fn committee(&self, epoch: u64) -> Result<Option<Committee>, BackendError> {
        self.inner.committee(epoch)
    }
    fn insert_verified_batch(&self, batch: &InsertBatch) -> Result<HeadInfo, BackendError> {
        if let Some(hook) = &self.on_insert {
            hook(batch);
        }
        let head = self.inner.insert_verified_batch(batch)?;
        self.committed
            .lock()
            .extend(batch.blocks.iter().map(|b| (b.number(), b.hash)));
        if let Some(tx) = &self.on_commit {
            let _ = tx.lock().send(head.number);
        }
        Ok(head)
    }
    fn unwind_to(&self, number: u64) -> Result<HeadInfo, BackendError> {
        self.inner.unwind_to(number)
    }
    fn block_with_sig_bytes(&self, number: u64) -> Result<Option<Vec<u8>>, BackendError> {
        let b = self.inner.block_with_sig_bytes(number)?;
        if b.is_some() {
            self.served.lock().push(number);
        }
        Ok(b)
    }
    fn block_with_sig_bytes_by_hash(&self, hash: &B256) -> Result<Option<Vec<u8>>, BackendError> {
        let n = self.inner.number_by_hash(hash)?;
        let b = self.inner.block_with_sig_bytes_by_hash(hash)?;
        if let (Some(n), Some(_)) = (n, &b) {
            self.served.lock().push(n);
            self.served_by_hash.lock().push(n);
        }
        Ok(b)
    }
    fn block_with_sig(&self, number: u64) -> Result<Option<BlockWithSig>, BackendError> {
        self.inner.block_with_sig(number)
    }
}
