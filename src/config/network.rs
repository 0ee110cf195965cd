//! Network presets with the guide's defaults.

use std::fmt;
use std::str::FromStr;

use super::error::ConfigError;

/// A network, selecting the defaults of the guide's "Network-Specific Defaults".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Network {
    /// Harmony mainnet.
    Mainnet,
    /// Testnet.
    Testnet,
    /// A local network (what `streamsync localnet` runs).
    Localnet,
    /// Partner networks.
    Partner,
}

/// The per-network defaults of the guide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetworkDefaults {
    /// `Concurrency`.
    pub concurrency: usize,
    /// `MinPeers`.
    pub min_peers: usize,
    /// `InitStreams`.
    pub init_streams: usize,
    /// `DiscSoftLowCap`.
    pub disc_soft_low_cap: usize,
    /// `DiscHardLowCap`.
    pub disc_hard_low_cap: usize,
    /// `DiscHighCap`.
    pub disc_high_cap: usize,
    /// `DiscBatch`.
    pub disc_batch: usize,
    /// `MaxAdvertiseWaitTime`, minutes.
    pub max_advertise_wait_time: u64,
}

impl Network {
    /// Every network, in the guide's order.
    pub const ALL: [Network; 4] = [
        Network::Mainnet,
        Network::Testnet,
        Network::Localnet,
        Network::Partner,
    ];

    /// The name used in config files, protocol ids and the CLI.
    pub fn name(self) -> &'static str {
        match self {
            Network::Mainnet => "mainnet",
            Network::Testnet => "testnet",
            Network::Localnet => "localnet",
            Network::Partner => "partner",
        }
    }

    /// The guide's defaults for this network.
    pub fn defaults(self) -> NetworkDefaults {
        let d = |c, m, i, s, h, hi, b, w| NetworkDefaults {
            concurrency: c,
            min_peers: m,
            init_streams: i,
            disc_soft_low_cap: s,
            disc_hard_low_cap: h,
            disc_high_cap: hi,
            disc_batch: b,
            max_advertise_wait_time: w,
        };
        match self {
            Network::Mainnet => d(6, 6, 8, 8, 6, 128, 8, 60),
            Network::Testnet => d(3, 3, 3, 3, 3, 1024, 3, 5),
            Network::Localnet => d(4, 4, 4, 4, 4, 1024, 8, 5),
            Network::Partner => d(3, 3, 3, 3, 3, 1024, 5, 5),
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Network {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, ConfigError> {
        Network::ALL
            .into_iter()
            .find(|n| n.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| ConfigError::UnknownNetwork(s.to_string()))
    }
}
