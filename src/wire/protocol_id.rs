//! Protocol ids: `streamsync/<service>/<network>/<shard>/<semver>`.

use std::fmt;
use std::str::FromStr;

use crate::config::Network;

/// Fixed first segment of every protocol id.
pub const PROTOCOL_PREFIX: &str = "streamsync";
/// This implementation's protocol version (major, minor, patch).
pub const PROTOCOL_VERSION: (u32, u32, u32) = (1, 0, 0);

/// A parsed protocol id.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ProtocolId {
    /// Service name, e.g. `sync`.
    pub service: String,
    /// Network.
    pub network: Network,
    /// Shard id.
    pub shard_id: u32,
    /// Semantic version (major, minor, patch).
    pub version: (u32, u32, u32),
}

/// A protocol id string that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid protocol id {id:?}: {reason}")]
pub struct ProtocolIdError {
    /// The string (truncated to 128 bytes).
    pub id: String,
    /// What is wrong.
    pub reason: &'static str,
}

impl ProtocolId {
    /// The sync protocol of this version for `network` and `shard_id`.
    pub fn sync(network: Network, shard_id: u32) -> Self {
        ProtocolId {
            service: "sync".into(),
            network,
            shard_id,
            version: PROTOCOL_VERSION,
        }
    }

    /// Whether a peer speaking `other` can talk to us: same service,
    /// network, shard and major version.
    pub fn matches(&self, other: &ProtocolId) -> bool {
        self.service == other.service
            && self.network == other.network
            && self.shard_id == other.shard_id
            && self.version.0 == other.version.0
    }
}

impl fmt::Display for ProtocolId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (a, b, c) = self.version;
        write!(
            f,
            "{PROTOCOL_PREFIX}/{}/{}/{}/{a}.{b}.{c}",
            self.service, self.network, self.shard_id
        )
    }
}

impl FromStr for ProtocolId {
    type Err = ProtocolIdError;

    fn from_str(s: &str) -> Result<Self, ProtocolIdError> {
        let err = |reason| ProtocolIdError {
            id: s.chars().take(128).collect(),
            reason,
        };
        let parts: Vec<&str> = s.split('/').collect();
        let [prefix, service, network, shard, version] = parts.as_slice() else {
            return Err(err("expected 5 '/'-separated parts"));
        };
        if *prefix != PROTOCOL_PREFIX {
            return Err(err("wrong prefix"));
        }
        if service.is_empty()
            || !service
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(err("bad service name"));
        }
        let network: Network = network.parse().map_err(|_| err("unknown network"))?;
        let shard_id = shard.parse().map_err(|_| err("bad shard id"))?;
        let v: Vec<u32> = version
            .split('.')
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map_err(|_| err("bad version"))?;
        let [a, b, c] = v.as_slice() else {
            return Err(err("version must be major.minor.patch"));
        };
        Ok(ProtocolId {
            service: service.to_string(),
            network,
            shard_id,
            version: (*a, *b, *c),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_id_round_trips() {
        let p = ProtocolId::sync(Network::Localnet, 0);
        assert_eq!(p.to_string(), "streamsync/sync/localnet/0/1.0.0");
        assert_eq!(p.to_string().parse::<ProtocolId>(), Ok(p));
    }

    #[test]
    fn protocol_match_table() {
        let me: ProtocolId = "streamsync/sync/mainnet/0/1.2.0".parse().expect("valid");
        let cases = [
            ("streamsync/sync/mainnet/0/1.0.7", true),
            ("streamsync/sync/mainnet/0/2.0.0", false),
            ("streamsync/sync/testnet/0/1.2.0", false),
            ("streamsync/sync/mainnet/1/1.2.0", false),
            ("streamsync/beacon/mainnet/0/1.2.0", false),
        ];
        for (id, ok) in cases {
            let other: ProtocolId = id.parse().expect("valid");
            assert_eq!(me.matches(&other), ok, "{id}");
        }
    }

    #[test]
    fn malformed_ids_are_refused() {
        for bad in [
            "",
            "streamsync",
            "x/sync/mainnet/0/1.0.0",
            "streamsync/sync/moon/0/1.0.0",
            "streamsync/sync/mainnet/-1/1.0.0",
            "streamsync/sync/mainnet/0/1.0",
            "streamsync//mainnet/0/1.0.0",
        ] {
            assert!(bad.parse::<ProtocolId>().is_err(), "{bad}");
        }
    }
}
