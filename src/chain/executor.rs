//! Execution behind its own trait: the state transition a chain store
//! applies to every block it inserts. The sync engine never executes
//! (it verifies links and signatures, then hands batches to its
//! [`ChainBackend`](super::ChainBackend)); a store that keeps state asks its
//! [`Executor`] for each block's account changes and checks nothing else
//! of the state itself.

use super::state::{execute, Account, Address, ExecError, StateDiff};
use super::types::{Block, Header};

/// A state read failed: the store that supplied the reader knows why, and
/// reports its own error (a local fault, not the block's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unreadable;

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("state read failed")
    }
}

/// Why an [`Executor`] did not execute a block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExecFailure {
    /// The block is invalid on its parent's state (the reason, for the
    /// peer that sent it): the block is refused.
    Invalid(String),
    /// Reading the state failed ([`Unreadable`]): nothing is the block's
    /// fault.
    Unreadable,
}

/// A chain's state transition.
///
/// `execute` must be deterministic and must check whatever the header
/// commits to about the state (its state root): the store trusts the
/// returned changes and writes them with the block.
pub trait Executor: Send + Sync + std::fmt::Debug {
    /// Executes `block` on its parent's state: `state` reads an account as
    /// it is after `parent` (`None`: absent). Returns the accounts the
    /// block changed, with their values after it.
    fn execute(
        &self,
        block: &Block,
        parent: &Header,
        state: &mut dyn FnMut(&Address) -> Result<Option<Account>, Unreadable>,
    ) -> Result<StateDiff, ExecFailure>;
}

/// This chain's transition (see [`super::state`]): transfers in order,
/// then the state root chained over the changes, which must equal the
/// header's.
#[derive(Clone, Copy, Debug, Default)]
pub struct Transfers;

impl Executor for Transfers {
    fn execute(
        &self,
        block: &Block,
        parent: &Header,
        state: &mut dyn FnMut(&Address) -> Result<Option<Account>, Unreadable>,
    ) -> Result<StateDiff, ExecFailure> {
        let (diff, root) =
            execute(&block.body.transfers, &parent.state_root, state).map_err(|e| match e {
                ExecError::Read(Unreadable) => ExecFailure::Unreadable,
                other => ExecFailure::Invalid(other.to_string()),
            })?;
        if root != block.header.state_root {
            return Err(ExecFailure::Invalid(
                "state root differs from execution".into(),
            ));
        }
        Ok(diff)
    }
}
