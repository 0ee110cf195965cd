//! The stream manager and discovery (DESIGN.md §7, the guide's "Stream
//! Manager"): which peers a node keeps streams to.
//!
//! - `cooldown`: per-peer failure counts and cooldowns;
//! - [`manager`]: the sans-IO pool/cap/discovery state machine;
//! - `sample`: uniform random choice among peers.
//!
//! Runs on the `streams` thread; it owns its pools and decides, the network
//! thread carries out dials and closes.

pub(crate) mod cooldown;
pub mod manager;
pub mod record;
pub(crate) mod sample;

pub use cooldown::{CooldownConfig, Cooldowns};
#[cfg(test)]
mod tests;

pub use manager::{
    Action, DiscoveryState, PeerAddr, RemovalReason, StreamManager, StreamManagerConfig,
    StreamStats, StreamStatus, MAX_KNOWN,
};
