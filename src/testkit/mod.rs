//! Test kit (cargo feature `testkit`, DESIGN.md §14): pieces for running
//! many complete nodes in one process without disks or sockets.
//!
//! So far: [`MemChain`], an in-memory [`ChainBackend`](crate::chain::ChainBackend)
//! that executes and checks blocks exactly as the LMDB store does.

mod mem_chain;

pub use mem_chain::MemChain;
