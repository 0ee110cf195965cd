//! Stage errors classify themselves: who (if anyone) is to blame.

use crate::chain::{BackendError, VerifyError};
use crate::net::StreamId;
use crate::request::RequestError;

/// Why a stage could not finish.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// No stream answered (timeouts, no peers): soft, retry later.
    #[error("network: {0}")]
    Network(#[from] RequestError),
    /// Not enough streams to start.
    #[error("only {have} streams, need {need}")]
    NotEnoughStreams {
        /// Streams available.
        have: usize,
        /// Streams needed.
        need: usize,
    },
    /// A block failed verification; its senders were blamed and the cycle
    /// must re-download from the block on.
    #[error("invalid block from stream {stream}: {error}")]
    Invalid {
        /// The stream that sent it.
        stream: StreamId,
        /// What is wrong.
        error: VerifyError,
    },
    /// No stream can serve the blocks of some staged hashes from `from` on
    /// (their sources were blamed): staging is dropped and the cycle
    /// restarts with fresh hashes.
    #[error("no stream can serve the staged hashes from block {from}")]
    Unservable {
        /// The lowest block given up on.
        from: u64,
    },
    /// The node's own chain is on an invalid branch and cannot be unwound
    /// (e.g. no account changes were recorded for its blocks).
    #[error("the chain is on an invalid branch and cannot be unwound: {0}")]
    CannotUnwind(String),
    /// The local chain store failed: blame nobody.
    #[error("local storage: {0}")]
    Local(#[from] BackendError),
    /// No progress for the watchdog's limit.
    #[error("no progress for {0:?}")]
    Stalled(std::time::Duration),
    /// The node is shutting down.
    #[error("shutting down")]
    Shutdown,
}

impl StageError {
    /// Whether the sync cannot go on (reth's `is_fatal`): the node's chain
    /// cannot be repaired. Everything else is retried.
    pub fn is_fatal(&self) -> bool {
        matches!(self, StageError::CannotUnwind(_))
    }
}
