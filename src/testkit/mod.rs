//! Test kit (cargo feature `testkit`, DESIGN.md §14): pieces for running
//! many complete nodes in one process without disks or sockets.
//!
//! So far: [`MemChain`], an in-memory [`ChainBackend`](crate::chain::ChainBackend)
//! that executes and checks blocks exactly as the LMDB store does, and
//! [`Sim`], the many-node simulator in virtual time, with its named
//! scenarios ([`sim::scenario`]).

mod mem_chain;
pub mod sim;

pub use mem_chain::MemChain;
pub use sim::{Byzantine, CpuModel, LinkConfig, Role, Sim, SimConfig, SimNode};
