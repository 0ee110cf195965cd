//! The stream manager and discovery (DESIGN.md §7, the guide's "Stream
//! Manager"): which peers a node keeps streams to.
//!
//! - `cooldown`: per-peer failure counts and cooldowns;
//! - `manager`: the sans-IO pool/cap/discovery state machine;
//! - `sample`: uniform random choice among peers.
//!
//! Runs on the `streams` thread; it owns its pools and decides, the network
//! thread carries out dials and closes.

pub(crate) mod cooldown;
// The sans-IO manager and the signed peer records: the host runs them on
// its streams thread; tests drive them directly (test support).
#[cfg(feature = "testkit")]
pub mod manager;
#[cfg(not(feature = "testkit"))]
pub(crate) mod manager;
#[cfg(feature = "testkit")]
pub mod record;
#[cfg(not(feature = "testkit"))]
pub(crate) mod record;
pub(crate) mod sample;

#[cfg(test)]
mod tests;

// What a node's addresses, the host's settings and its status name.
pub use cooldown::CooldownConfig;
#[cfg(feature = "testkit")]
pub use cooldown::Cooldowns;
#[cfg(feature = "testkit")]
pub use manager::{Action, StreamManager, StreamStatus, MAX_KNOWN};
#[cfg(not(feature = "testkit"))]
pub(crate) use manager::{Action, StreamManager, MAX_KNOWN};
pub use manager::{DiscoveryState, PeerAddr, RemovalReason, StreamManagerConfig, StreamStats};
