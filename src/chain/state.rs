//! Account state and the state transition.
//!
//! State is a map from 20-byte address to [`Account`] (nonce, balance).
//! Executing a block applies its transfers in order: the sender must exist,
//! its nonce must equal the transfer's and its balance cover the amount; the
//! sender's nonce then increments, the amount moves, and an absent recipient
//! is created.
//!
//! **State-root commitment** (incremental, over the changes):
//!
//! ```text
//! root(genesis) = keccak256(0x00*32 ‖ RLP([[addr, nonce, balance], ...]))   all genesis accounts
//! root(N)       = keccak256(root(N-1) ‖ RLP([[addr, nonce, balance], ...])) accounts block N touched
//! ```
//!
//! Lists are sorted by address, values are those after the block. The root
//! therefore commits to the whole history of state changes: two nodes agree on
//! `root(N)` only if they executed the same transfers from the same genesis.
//! It costs one hash per block, whatever the state size.

use std::collections::BTreeMap;

use alloy_rlp::{RlpDecodable, RlpEncodable};

use super::executor::{ExecFailure, Executor, Unreadable};
use super::types::{encode, Transfer};
use crate::crypto::hash::keccak256_parts;
use crate::crypto::B256;

/// A 20-byte account address.
pub type Address = [u8; 20];

/// One account.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, RlpEncodable, RlpDecodable)]
pub struct Account {
    /// Transfers sent so far.
    pub nonce: u64,
    /// Balance in base units.
    pub balance: u128,
}

#[derive(RlpEncodable)]
struct Change<'a> {
    addr: &'a Address,
    nonce: u64,
    balance: u128,
}

/// Accounts changed by a block (or a batch), by address, values after it.
pub type StateDiff = BTreeMap<Address, Account>;

/// Why a block did not execute.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError<E> {
    /// Transfer `index` comes from an account that does not exist.
    #[error("transfer {index}: unknown sender")]
    UnknownSender {
        /// Position of the transfer in the body.
        index: usize,
    },
    /// Transfer `index` has the wrong nonce.
    #[error("transfer {index}: nonce {got}, account expects {expected}")]
    BadNonce {
        /// Position of the transfer in the body.
        index: usize,
        /// The account's nonce.
        expected: u64,
        /// The transfer's nonce.
        got: u64,
    },
    /// Transfer `index` moves more than the sender has.
    #[error("transfer {index}: insufficient balance")]
    InsufficientBalance {
        /// Position of the transfer in the body.
        index: usize,
    },
    /// A balance would overflow.
    #[error("transfer {index}: balance overflow")]
    Overflow {
        /// Position of the transfer in the body.
        index: usize,
    },
    /// Reading the state failed (a local fault, not the block's).
    #[error("state read failed: {0}")]
    Read(E),
}

/// Commitment over a sorted diff chained to `prev_root` (see module docs).
pub fn commit_root(prev_root: &B256, diff: &StateDiff) -> B256 {
    let changes: Vec<Change<'_>> = diff
        .iter()
        .map(|(addr, a)| Change {
            addr,
            nonce: a.nonce,
            balance: a.balance,
        })
        .collect();
    keccak256_parts(&[prev_root, &encode(&changes)])
}

/// Executes `transfers` on top of the state `read` returns, and returns the
/// accounts they changed and the new root chained to `prev_root`. Nothing is
/// written: the caller applies the diff (in the same transaction as the block).
pub fn execute<E>(
    transfers: &[Transfer],
    prev_root: &B256,
    mut read: impl FnMut(&Address) -> Result<Option<Account>, E>,
) -> Result<(StateDiff, B256), ExecError<E>> {
    let mut diff = StateDiff::new();
    for (index, t) in transfers.iter().enumerate() {
        let mut sender = match diff.get(&t.from) {
            Some(a) => *a,
            None => read(&t.from)
                .map_err(ExecError::Read)?
                .ok_or(ExecError::UnknownSender { index })?,
        };
        if sender.nonce != t.nonce {
            return Err(ExecError::BadNonce {
                index,
                expected: sender.nonce,
                got: t.nonce,
            });
        }
        sender.balance = sender
            .balance
            .checked_sub(u128::from(t.amount))
            .ok_or(ExecError::InsufficientBalance { index })?;
        sender.nonce = sender
            .nonce
            .checked_add(1)
            .ok_or(ExecError::Overflow { index })?;
        diff.insert(t.from, sender);
        let mut recipient = match diff.get(&t.to) {
            Some(a) => *a,
            None => read(&t.to).map_err(ExecError::Read)?.unwrap_or_default(),
        };
        recipient.balance = recipient
            .balance
            .checked_add(u128::from(t.amount))
            .ok_or(ExecError::Overflow { index })?;
        diff.insert(t.to, recipient);
    }
    let root = commit_root(prev_root, &diff);
    Ok((diff, root))
}

/// Why a block could not be applied on its parent.
#[derive(Debug)]
pub enum ApplyError<E> {
    /// The block's number does not follow the parent's.
    NotContiguous {
        /// The parent's number.
        head: u64,
        /// The block's number.
        got: u64,
    },
    /// The block is invalid on its parent (link, execution, state root).
    Invalid(super::error::VerifyError),
    /// Reading an account failed (a local fault).
    Read(E),
    /// The executor broke its contract (a local fault: the block is not
    /// blamed).
    Executor(String),
}

/// A block executed on its parent's state.
#[derive(Debug)]
pub struct Applied {
    /// The accounts it changed, with their values after.
    pub diff: StateDiff,
    /// Each account it read, with its value before the block (`None`:
    /// absent), in reading order: what unwinding the block restores.
    pub before: Vec<(Address, Option<Account>)>,
}

/// Checks that `block` extends `parent` (whose hash is `parent_hash`) and
/// executes it with `executor` on the state `read` returns (the state
/// after the parent), recording what it read: the one place both chain
/// stores (LMDB and `testkit::MemChain`) validate what they insert.
pub fn execute_block<E: std::fmt::Display>(
    block: &super::types::Block,
    parent: &super::types::Header,
    parent_hash: &B256,
    executor: &dyn Executor,
    mut read: impl FnMut(&Address) -> Result<Option<Account>, E>,
) -> Result<Applied, ApplyError<E>> {
    use super::error::VerifyError;
    let n = block.number();
    if n != parent.number + 1 {
        return Err(ApplyError::NotContiguous {
            head: parent.number,
            got: n,
        });
    }
    if block.header.parent_hash != *parent_hash {
        return Err(ApplyError::Invalid(VerifyError::BadLink {
            number: n,
            reason: format!(
                "parent hash is not the head's {}",
                crate::crypto::hash::to_hex(parent_hash)
            ),
        }));
    }
    // Each account read is recorded with its value before the block, what
    // unwinding restores. `read` answers the state after the parent, never
    // this block's own changes, so an account an executor reads twice is
    // recorded twice with the same value: harmless to restore twice.
    // A failed read keeps the store's own error.
    let mut before: Vec<(Address, Option<Account>)> = Vec::new();
    let mut failed: Option<E> = None;
    let result = executor.execute(block, parent, &mut |a: &Address| match read(a) {
        Ok(acct) => {
            before.push((*a, acct));
            Ok(acct)
        }
        Err(e) => {
            failed = Some(e);
            Err(Unreadable)
        }
    });
    let diff = match (result, failed) {
        (_, Some(e)) => return Err(ApplyError::Read(e)),
        (Ok(diff), None) => diff,
        (Err(ExecFailure::Invalid(reason)), None) => {
            return Err(ApplyError::Invalid(VerifyError::Execution {
                number: n,
                reason,
            }))
        }
        // No read failed: the executor itself is wrong, not the block.
        (Err(ExecFailure::Unreadable), None) => {
            return Err(ApplyError::Executor(format!(
                "block {n}: reported a failed state read that did not happen"
            )))
        }
    };
    Ok(Applied { diff, before })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    fn state() -> impl FnMut(&Address) -> Result<Option<Account>, Infallible> {
        |a: &Address| {
            Ok((a[0] == 1).then_some(Account {
                nonce: 0,
                balance: 100,
            }))
        }
    }

    fn t(amount: u64, nonce: u64) -> Transfer {
        Transfer {
            from: [1; 20],
            to: [2; 20],
            amount,
            nonce,
        }
    }

    #[test]
    fn transfers_move_balance_and_bump_nonce() {
        let (diff, _) = execute(&[t(30, 0), t(20, 1)], &[0; 32], state()).expect("valid");
        assert_eq!(
            diff[&[1; 20]],
            Account {
                nonce: 2,
                balance: 50
            }
        );
        assert_eq!(
            diff[&[2; 20]],
            Account {
                nonce: 0,
                balance: 50
            }
        );
    }

    #[test]
    fn replayed_nonce_is_refused() {
        let err = execute(&[t(1, 0), t(1, 0)], &[0; 32], state()).unwrap_err();
        assert_eq!(
            err,
            ExecError::BadNonce {
                index: 1,
                expected: 1,
                got: 0
            }
        );
    }

    #[test]
    fn overdraft_is_refused() {
        let err = execute(&[t(101, 0)], &[0; 32], state()).unwrap_err();
        assert_eq!(err, ExecError::InsufficientBalance { index: 0 });
    }

    #[test]
    fn root_chains_previous_root() {
        let (_, r1) = execute(&[t(1, 0)], &[0; 32], state()).expect("valid");
        let (_, r2) = execute(&[t(1, 0)], &[1; 32], state()).expect("valid");
        assert_ne!(r1, r2);
    }
}
