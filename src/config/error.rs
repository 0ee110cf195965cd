//! Configuration errors: each names the key, the value and what is allowed.

/// A configuration could not be loaded or is invalid.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value is out of range or of the wrong type.
    #[error("{key} = {value}: {allowed}")]
    Invalid {
        /// Full key path, e.g. `Sync.Concurrency`.
        key: String,
        /// The value as written.
        value: String,
        /// What is allowed, e.g. "must be an integer in 1..=128".
        allowed: String,
    },
    /// A key this engine does not know (and Harmony does not define).
    #[error("unknown key {key}")]
    UnknownKey {
        /// Full key path.
        key: String,
    },
    /// `SyncMode` 1 (FastSync) or 2 (SnapSync), reserved by the guide.
    #[error("Sync.SyncMode = {0}: FastSync (1) and SnapSync (2) are reserved for future implementation; only 0 (FullSync) is implemented")]
    ModeUnavailable(i64),
    /// A network name that is not one of the presets.
    #[error("unknown network {0:?}: expected mainnet, testnet, localnet or partner")]
    UnknownNetwork(String),
    /// `--network` and the file's `[Network] NetworkType` disagree.
    #[error("--network {flag} contradicts Network.NetworkType = {file:?} in the config file")]
    NetworkConflict {
        /// From the command line.
        flag: String,
        /// From the file.
        file: String,
    },
    /// The file is not valid TOML.
    #[error("{path}: not valid TOML: {reason}")]
    Syntax {
        /// File path (or `<string>`).
        path: String,
        /// The parser's message, with line and column.
        reason: String,
    },
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// File path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}
