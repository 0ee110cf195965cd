//! Storage errors.

use std::path::PathBuf;

use crate::chain::VerifyError;

/// Errors of the LMDB store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// LMDB failed (I/O, corruption, limits): a local fault.
    #[error("lmdb: {op}: {source}")]
    Lmdb {
        /// What the store was doing.
        op: &'static str,
        /// LMDB's error.
        source: lmdb::Error,
    },
    /// Filesystem error around the datadir.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The directory holds something that is not a streamsync database.
    #[error("{path} is not a streamsync database ({reason}); refusing to touch it")]
    NotOurs {
        /// The datadir.
        path: PathBuf,
        /// What was found.
        reason: String,
    },
    /// The database belongs to another network, shard or genesis.
    #[error("{path} holds a {found} chain, not {wanted}; refusing to mix chains")]
    OtherChain {
        /// The datadir.
        path: PathBuf,
        /// What the database holds.
        found: String,
        /// What was asked for.
        wanted: String,
    },
    /// Another open of the datadir holds its lock (`DIR/LOCK`): another
    /// process is running on it (or this process opened it already).
    #[error("datadir {path} is in use by {}", holder(.pid))]
    InUse {
        /// The datadir.
        path: PathBuf,
        /// The holder's process id, as it wrote it into the lock file
        /// (`None` if unreadable).
        pid: Option<u32>,
    },
    /// A stored value does not decode: the database is corrupt.
    #[error("corrupt database: {0}")]
    Corrupt(String),
    /// The batch does not extend the head.
    #[error("batch starts at block {got}, head is {head}")]
    NotContiguous {
        /// Current head number.
        head: u64,
        /// First number of the batch.
        got: u64,
    },
    /// The store cannot unwind that far (no account changes recorded for a
    /// block, e.g. one written by a version that did not record them).
    #[error("cannot unwind below block {number}: {reason}")]
    CannotUnwind {
        /// The lowest block that could not be removed.
        number: u64,
        /// Why.
        reason: String,
    },
    /// The store's executor broke its contract (a local fault, no
    /// block's): nothing was written.
    #[error("executor: {0}")]
    Executor(String),
    /// A block of the batch failed execution: nothing was written.
    #[error("batch rejected: {0}")]
    Invalid(#[from] VerifyError),
}

/// Who holds a datadir's lock, for [`StoreError::InUse`].
fn holder(pid: &Option<u32>) -> String {
    match pid {
        Some(p) if *p == std::process::id() => {
            format!("this process (pid {p}), which opened it already")
        }
        Some(p) => format!("another streamsync process (pid {p})"),
        None => "another streamsync process".into(),
    }
}

impl StoreError {
    pub(super) fn lmdb(op: &'static str) -> impl FnOnce(lmdb::Error) -> StoreError {
        move |source| StoreError::Lmdb { op, source }
    }
}

impl From<StoreError> for crate::chain::BackendError {
    fn from(e: StoreError) -> Self {
        use crate::chain::BackendError;
        match e {
            StoreError::NotContiguous { head, got } => BackendError::NotContiguous { head, got },
            StoreError::Invalid(v) => BackendError::Invalid(v),
            other => BackendError::Storage(other.to_string()),
        }
    }
}
