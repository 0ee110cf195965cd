//! Errors of the chain layer: decoding and verification. Every verification
//! error is proof that the data is invalid, so whoever sent it is to blame.

use crate::crypto::BlsError;

/// A chain object could not be decoded from bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The RLP is malformed (truncated, non-canonical, trailing bytes, ...).
    #[error("malformed {what}: {source}")]
    Rlp {
        /// What was being decoded ("header", "body", "block", ...).
        what: &'static str,
        /// The RLP decoder's reason.
        source: alloy_rlp::Error,
    },
    /// The object decodes but breaks a hard limit of [`super::limits`].
    #[error("{what} has {got} {unit}, limit is {limit}")]
    TooLarge {
        /// What was being decoded.
        what: &'static str,
        /// What was counted ("bytes", "transfers", "members").
        unit: &'static str,
        /// The count found.
        got: usize,
        /// The limit.
        limit: usize,
    },
}

/// Why a block (or a chain of blocks) failed verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The block's hash is not the one expected (from its child or the
    /// downloaded hash chain).
    #[error("block {number}: hash {got} does not match expected {expected}")]
    HashMismatch {
        /// Block number.
        number: u64,
        /// Hex of the hash found.
        got: String,
        /// Hex of the hash expected.
        expected: String,
    },
    /// The header does not link to its parent: parent hash, or a timestamp
    /// before the parent's (either of the two blocks may be the bad one).
    #[error("block {number}: {reason}")]
    BadLink {
        /// Block number (the child).
        number: u64,
        /// Which link rule failed.
        reason: String,
    },
    /// The header is invalid on its own: number, epoch or shard.
    #[error("block {number}: {reason}")]
    BadHeader {
        /// Block number (its position in the chain).
        number: u64,
        /// Which rule failed.
        reason: String,
    },
    /// The body does not match the header's tx root.
    #[error("block {number}: tx root mismatch")]
    TxRootMismatch {
        /// Block number.
        number: u64,
    },
    /// Committee hand-over rules broken (missing/extra committee, wrong hash).
    #[error("block {number}: committee hand-over: {reason}")]
    BadHandOver {
        /// Block number.
        number: u64,
        /// Which rule failed.
        reason: String,
    },
    /// An epoch's last block names a committee other than the one the node
    /// already established for the next epoch (by SyncEpoch's chain of
    /// verified hand-overs, or its own chain): the header is not canonical.
    #[error(
        "block {number}: names committee {named} for epoch {epoch}, established is {established}"
    )]
    CommitteeMismatch {
        /// Block number (an epoch's last block).
        number: u64,
        /// The epoch whose committee is named.
        epoch: u64,
        /// Hex prefix of the named committee's hash.
        named: String,
        /// Hex prefix of the established committee's hash.
        established: String,
    },
    /// A committee named by an epoch's last block holds a key that does not
    /// decode or fails its subgroup check.
    #[error("block {number}: named committee: {source}")]
    BadCommitteeKey {
        /// Block number (the block naming the committee).
        number: u64,
        /// The decoding error.
        source: BlsError,
    },
    /// Signer bitmap has the wrong length, stray padding bits, or too few signers.
    #[error("block {number}: quorum: {reason}")]
    BadQuorum {
        /// Block number.
        number: u64,
        /// Which rule failed.
        reason: String,
    },
    /// A commit signature does not decode (or its signers' key does not
    /// aggregate).
    #[error("block {number}: {source}")]
    BadBls {
        /// Block number.
        number: u64,
        /// The decoding error.
        source: BlsError,
    },
    /// The commit signature does not verify.
    #[error("block {number}: commit signature does not verify")]
    BadSignature {
        /// Block number.
        number: u64,
    },
    /// The committee needed to verify this block is not known.
    #[error("block {number}: committee of epoch {epoch} unknown")]
    UnknownCommittee {
        /// Block number.
        number: u64,
        /// The epoch whose committee is missing.
        epoch: u64,
    },
    /// Executing the block failed (bad nonce, balance) or its state root differs.
    #[error("block {number}: execution: {reason}")]
    Execution {
        /// Block number.
        number: u64,
        /// What failed.
        reason: String,
    },
}

impl VerifyError {
    /// Number of the block the error is about.
    pub fn block_number(&self) -> u64 {
        match self {
            VerifyError::HashMismatch { number, .. }
            | VerifyError::BadLink { number, .. }
            | VerifyError::BadHeader { number, .. }
            | VerifyError::TxRootMismatch { number }
            | VerifyError::BadHandOver { number, .. }
            | VerifyError::CommitteeMismatch { number, .. }
            | VerifyError::BadCommitteeKey { number, .. }
            | VerifyError::BadQuorum { number, .. }
            | VerifyError::BadBls { number, .. }
            | VerifyError::BadSignature { number }
            | VerifyError::UnknownCommittee { number, .. }
            | VerifyError::Execution { number, .. } => *number,
        }
    }

    /// Whether the error proves the data invalid (someone sent it: see
    /// `sync::blame` for who). An unknown committee is not proof (the node may
    /// simply lack the epoch), nor is a failed execution of a block whose
    /// signatures verified (the node's own state is then what is wrong).
    pub fn is_proof_of_invalid_data(&self) -> bool {
        !matches!(
            self,
            VerifyError::UnknownCommittee { .. } | VerifyError::Execution { .. }
        )
    }

    /// Whether the error is about a commit signature (its decoding, its
    /// signer bitmap or the pairing check), as opposed to a block's contents.
    pub fn is_signature_error(&self) -> bool {
        matches!(
            self,
            VerifyError::BadSignature { .. }
                | VerifyError::BadQuorum { .. }
                | VerifyError::BadBls { .. }
        )
    }
}
