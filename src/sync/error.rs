//! Stage errors classify themselves: who (if anyone) is to blame.

use crate::chain::BackendError;
use crate::request::RequestError;

/// Why a stage could not finish.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// No stream answered (timeouts, no peers): soft, retry later.
    #[error("network: {0}")]
    Network(#[from] RequestError),
    /// The node's own chain is on an invalid branch and cannot be unwound
    /// (e.g. no account changes were recorded for its blocks).
    #[error("the chain is on an invalid branch and cannot be unwound: {0}")]
    CannotUnwind(String),
    /// The local chain store failed: blame nobody.
    #[error("local storage: {0}")]
    Local(#[from] BackendError),
}
