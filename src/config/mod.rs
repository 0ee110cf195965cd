//! Configuration: the `[Sync]` and `[Sync.StagedSyncCfg]` sections of a
//! `harmony.conf`, with Harmony's key names and network defaults (the guide),
//! loaded from TOML and validated.
//!
//! Effective configuration = the network's preset, then the file, then the
//! command line's overrides (each through [`set_sync_key`], checked as the
//! file's key would be). Other
//! sections of a `harmony.conf` are ignored; `[Network] NetworkType` picks
//! the preset when no `--network` is given.

mod error;
mod limits;
mod load;
mod network;
mod sync;

pub use error::ConfigError;
pub use limits::{LimitsConfig, MIN_READ_BUFFER_BUDGET};
pub use load::{load_file, load_str, set_sync_key};
pub use network::{Network, NetworkDefaults};
pub use sync::{Config, StagedSyncConfig, SyncConfig, SyncMode};
