//! Loading and validating TOML: network preset first, then the file.

use std::path::Path;
use std::time::Duration;

use toml::{Table, Value};

use super::error::ConfigError;
use super::network::Network;
use super::sync::{Config, StagedSyncConfig, SyncConfig, SyncMode};

/// Keys of Harmony's `[Sync]` section this engine accepts and ignores.
const IGNORED_SYNC_KEYS: &[&str] = &["StagedSync"];
/// Keys of Harmony's `[Sync.StagedSyncCfg]` this engine accepts and ignores
/// (turbo mode is always on).
const IGNORED_STAGED_KEYS: &[&str] = &["TurboMode"];

/// Loads `path`: the defaults of `network` (or of the file's
/// `[Network] NetworkType`, else mainnet), then the file's `[Sync]` section.
pub fn load_file(path: &Path, network: Option<Network>) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.display().to_string(),
        source,
    })?;
    load_named(&text, &path.display().to_string(), network)
}

/// Like [`load_file`] for TOML text.
pub fn load_str(text: &str, network: Option<Network>) -> Result<Config, ConfigError> {
    load_named(text, "<string>", network)
}

/// Sets one key of `cfg` as if its file said `key = value`, with the same
/// type and range checks: `key` is the path under `[Sync]`, e.g.
/// `Concurrency` or `StagedSyncCfg.VerifyAllSig`. The rules between keys are
/// left to [`Config::validate`], to run once every override is in.
pub fn set_sync_key(cfg: &mut Config, key: &str, value: Value) -> Result<(), ConfigError> {
    let mut path = key.rsplit('.');
    let mut table = Table::new();
    table.insert(path.next().unwrap_or(key).to_string(), value);
    for outer in path {
        let mut t = Table::new();
        t.insert(outer.to_string(), Value::Table(table));
        table = t;
    }
    apply_sync(&mut cfg.sync, &table)
}

fn load_named(text: &str, path: &str, network: Option<Network>) -> Result<Config, ConfigError> {
    let root: Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::Syntax {
            path: path.to_string(),
            reason: e.to_string(),
        })?;
    let file_network = match root.get("Network").and_then(|n| n.get("NetworkType")) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => return Err(invalid("Network.NetworkType", other, "must be a string")),
        None => None,
    };
    let network = match (network, file_network) {
        (Some(flag), Some(file)) => {
            if file.parse::<Network>()? != flag {
                return Err(ConfigError::NetworkConflict {
                    flag: flag.to_string(),
                    file,
                });
            }
            flag
        }
        (Some(flag), None) => flag,
        (None, Some(file)) => file.parse()?,
        (None, None) => Network::Mainnet,
    };
    let mut cfg = Config::for_network(network);
    if let Some(sync) = root.get("Sync") {
        let Value::Table(t) = sync else {
            return Err(invalid("Sync", sync, "must be a table"));
        };
        apply_sync(&mut cfg.sync, t)?;
    }
    validate(&cfg.sync)?;
    Ok(cfg)
}

fn invalid(key: &str, value: &Value, allowed: &str) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        value: value.to_string(),
        allowed: allowed.to_string(),
    }
}

fn get_bool(key: &str, v: &Value) -> Result<bool, ConfigError> {
    v.as_bool()
        .ok_or_else(|| invalid(key, v, "must be true or false"))
}

fn get_int(key: &str, v: &Value, min: i64, max: i64) -> Result<i64, ConfigError> {
    match v.as_integer() {
        Some(i) if (min..=max).contains(&i) => Ok(i),
        _ => Err(invalid(
            key,
            v,
            &format!("must be an integer in {min}..={max}"),
        )),
    }
}

fn get_usize(key: &str, v: &Value, min: i64, max: i64) -> Result<usize, ConfigError> {
    // In range, hence non-negative and small: the conversion cannot fail.
    get_int(key, v, min, max).map(|i| i as usize)
}

fn get_u64(key: &str, v: &Value, min: i64, max: i64) -> Result<u64, ConfigError> {
    get_int(key, v, min, max).map(|i| i as u64)
}

fn get_duration(
    key: &str,
    v: &Value,
    min: Duration,
    max: Duration,
) -> Result<Duration, ConfigError> {
    let allowed = || {
        format!(
            "must be a duration string such as \"30s\" or \"5m\", between {} and {}",
            humantime::format_duration(min),
            humantime::format_duration(max)
        )
    };
    let d = v
        .as_str()
        .and_then(|s| humantime::parse_duration(s).ok())
        .ok_or_else(|| invalid(key, v, &allowed()))?;
    if d < min || d > max {
        return Err(invalid(key, v, &allowed()));
    }
    Ok(d)
}

const SEC: Duration = Duration::from_secs(1);
const DAY: Duration = Duration::from_secs(24 * 3600);
/// Largest stream count any cap may take.
const MAX_STREAMS: i64 = 100_000;
/// Largest block count any per-cycle or per-batch size may take.
const MAX_BLOCKS: i64 = 100_000_000;

fn apply_sync(s: &mut SyncConfig, t: &Table) -> Result<(), ConfigError> {
    for (k, v) in t {
        let key = format!("Sync.{k}");
        let key = key.as_str();
        match k.as_str() {
            "Enabled" => s.enabled = get_bool(key, v)?,
            "SyncMode" => {
                let m = get_int(key, v, 0, 2)?;
                if m != 0 {
                    return Err(ConfigError::ModeUnavailable(m));
                }
                s.sync_mode = SyncMode::Full;
            }
            "Client" => s.client = get_bool(key, v)?,
            // Harmony's name for the client switch.
            "Downloader" => s.client |= get_bool(key, v)?,
            "Concurrency" => s.concurrency = get_usize(key, v, 1, 1024)?,
            "MinPeers" => s.min_peers = get_usize(key, v, 1, MAX_STREAMS)?,
            "InitStreams" => s.init_streams = get_usize(key, v, 1, MAX_STREAMS)?,
            "HeadsVotesPerIP" => s.heads_votes_per_ip = get_usize(key, v, 0, MAX_STREAMS)?,
            "MaxAdvertiseWaitTime" => s.max_advertise_wait_time = get_u64(key, v, 1, 24 * 60)?,
            "DiscSoftLowCap" => s.disc_soft_low_cap = get_usize(key, v, 1, MAX_STREAMS)?,
            "DiscHardLowCap" => s.disc_hard_low_cap = get_usize(key, v, 1, MAX_STREAMS)?,
            "DiscHighCap" => s.disc_high_cap = get_usize(key, v, 1, MAX_STREAMS)?,
            "DiscBatch" => s.disc_batch = get_usize(key, v, 1, 1024)?,
            "MaxReservedStreams" => s.max_reserved_streams = get_usize(key, v, 0, MAX_STREAMS)?,
            "RemovalCooldownDuration" => {
                s.removal_cooldown_duration = get_duration(key, v, Duration::ZERO, DAY)?
            }
            "MaxRemovalCooldownDuration" => {
                s.max_removal_cooldown_duration = get_duration(key, v, Duration::ZERO, DAY)?
            }
            "SetupConcurrency" => s.setup_concurrency = get_usize(key, v, 1, 1024)?,
            "CheckInterval" => s.check_interval = get_duration(key, v, SEC, DAY)?,
            "DiscoveryTimeout" => s.discovery_timeout = get_duration(key, v, SEC, DAY)?,
            "ConnectTimeout" => s.connect_timeout = get_duration(key, v, SEC, DAY)?,
            "MaxInboundStreams" => {
                s.limits.max_inbound_streams = get_usize(key, v, 1, MAX_STREAMS)?
            }
            "MaxOutboundStreams" => {
                s.limits.max_outbound_streams = get_usize(key, v, 1, MAX_STREAMS)?
            }
            "StreamsPerIP" => s.limits.streams_per_ip = get_usize(key, v, 0, MAX_STREAMS)?,
            "MaxPendingHandshakes" => {
                s.limits.max_pending_handshakes = get_usize(key, v, 1, MAX_STREAMS)?
            }
            "HandshakesPerIP" => s.limits.handshakes_per_ip = get_usize(key, v, 0, MAX_STREAMS)?,
            "HandshakeTimeout" => {
                s.limits.handshake_timeout = get_duration(key, v, Duration::from_millis(100), DAY)?
            }
            "FrameTimeout" => s.limits.frame_timeout = get_duration(key, v, SEC, DAY)?,
            "WriteProgressTimeout" => {
                s.limits.write_progress_timeout = get_duration(key, v, SEC, DAY)?
            }
            "ServerWorkers" => s.limits.server_workers = get_usize(key, v, 1, 1024)?,
            "ServerQueue" => s.limits.server_queue = get_usize(key, v, 1, 1000000)?,
            "StreamRequestRate" => s.limits.stream_request_rate = get_u64(key, v, 1, 1000000000)?,
            "StreamRequestBurst" => s.limits.stream_request_burst = get_u64(key, v, 1, 1000000000)?,
            "StreamByteRate" => s.limits.stream_byte_rate = get_u64(key, v, 1024, 1099511627776)?,
            "StreamByteBurst" => {
                s.limits.stream_byte_burst = get_u64(key, v, 1048576, 1099511627776)?
            }
            "StreamBlockRate" => s.limits.stream_block_rate = get_u64(key, v, 1, 1000000000)?,
            "StreamBlockBurst" => s.limits.stream_block_burst = get_u64(key, v, 128, 1000000000)?,
            "GlobalRequestRate" => s.limits.global_request_rate = get_u64(key, v, 1, 1000000000)?,
            "GlobalRequestBurst" => s.limits.global_request_burst = get_u64(key, v, 1, 1000000000)?,
            "GlobalByteRate" => s.limits.global_byte_rate = get_u64(key, v, 1024, 1099511627776)?,
            "GlobalByteBurst" => {
                s.limits.global_byte_burst = get_u64(key, v, 1048576, 1099511627776)?
            }
            "GlobalBlockRate" => s.limits.global_block_rate = get_u64(key, v, 1, 1000000000)?,
            "GlobalBlockBurst" => s.limits.global_block_burst = get_u64(key, v, 128, 1000000000)?,
            "RateLimitTolerance" => {
                s.limits.rate_limit_tolerance = get_u64(key, v, 0, 1000000)? as u32
            }
            "ReadBufferBudget" => {
                s.limits.read_buffer_budget = get_usize(
                    key,
                    v,
                    super::limits::MIN_READ_BUFFER_BUDGET as i64,
                    1 << 40,
                )?
            }
            "StagedSyncCfg" => {
                let Value::Table(st) = v else {
                    return Err(invalid(key, v, "must be a table"));
                };
                apply_staged(&mut s.staged, st)?;
            }
            k if IGNORED_SYNC_KEYS.contains(&k) => {
                tracing::debug!(key, "Harmony-only key accepted and ignored")
            }
            _ => {
                return Err(ConfigError::UnknownKey {
                    key: key.to_string(),
                })
            }
        }
    }
    Ok(())
}

fn apply_staged(s: &mut StagedSyncConfig, t: &Table) -> Result<(), ConfigError> {
    for (k, v) in t {
        let key = format!("Sync.StagedSyncCfg.{k}");
        let key = key.as_str();
        match k.as_str() {
            "DoubleCheckBlockHashes" => s.double_check_block_hashes = get_bool(key, v)?,
            "MaxBlocksPerSyncCycle" => {
                s.max_blocks_per_sync_cycle = get_u64(key, v, 0, MAX_BLOCKS)?
            }
            "MaxBackgroundBlocks" => s.max_background_blocks = get_u64(key, v, 0, MAX_BLOCKS)?,
            "InsertChainBatchSize" => s.insert_chain_batch_size = get_usize(key, v, 1, 100_000)?,
            "VerifyAllSig" => s.verify_all_sig = get_bool(key, v)?,
            "VerifyHeaderBatchSize" => s.verify_header_batch_size = get_usize(key, v, 1, 100_000)?,
            "MaxMemSyncCycleSize" => s.max_mem_sync_cycle_size = get_u64(key, v, 0, MAX_BLOCKS)?,
            "UseMemDB" => s.use_mem_db = get_bool(key, v)?,
            "MaxStagedBytes" => s.max_staged_bytes = get_u64(key, v, 1 << 20, 1 << 40)?,
            "LogProgress" => s.log_progress = get_bool(key, v)?,
            "DebugMode" => s.debug_mode = get_bool(key, v)?,
            k if IGNORED_STAGED_KEYS.contains(&k) => {
                tracing::debug!(key, "Harmony-only key accepted and ignored")
            }
            _ => {
                return Err(ConfigError::UnknownKey {
                    key: key.to_string(),
                })
            }
        }
    }
    Ok(())
}

fn cross(key: &str, value: impl ToString, allowed: String) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        value: value.to_string(),
        allowed,
    }
}

/// Rules between keys (each key's own range is checked while loading).
pub(crate) fn validate(s: &SyncConfig) -> Result<(), ConfigError> {
    if s.limits.read_buffer_budget < super::limits::MIN_READ_BUFFER_BUDGET {
        return Err(cross(
            "Sync.ReadBufferBudget",
            s.limits.read_buffer_budget,
            format!(
                "must be ≥ {} (one maximum frame and a Noise message)",
                super::limits::MIN_READ_BUFFER_BUDGET
            ),
        ));
    }
    if s.disc_soft_low_cap < s.disc_hard_low_cap {
        return Err(cross(
            "Sync.DiscSoftLowCap",
            s.disc_soft_low_cap,
            format!("must be ≥ Sync.DiscHardLowCap ({})", s.disc_hard_low_cap),
        ));
    }
    if s.disc_high_cap < s.disc_soft_low_cap {
        return Err(cross(
            "Sync.DiscHighCap",
            s.disc_high_cap,
            format!("must be ≥ Sync.DiscSoftLowCap ({})", s.disc_soft_low_cap),
        ));
    }
    for (key, v) in [
        ("Sync.MinPeers", s.min_peers),
        ("Sync.InitStreams", s.init_streams),
    ] {
        if v > s.disc_high_cap {
            return Err(cross(
                key,
                v,
                format!("must be ≤ Sync.DiscHighCap ({})", s.disc_high_cap),
            ));
        }
    }
    if s.removal_cooldown_duration > s.max_removal_cooldown_duration {
        return Err(cross(
            "Sync.RemovalCooldownDuration",
            humantime::format_duration(s.removal_cooldown_duration),
            format!(
                "must be ≤ Sync.MaxRemovalCooldownDuration ({})",
                humantime::format_duration(s.max_removal_cooldown_duration)
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_network_preset_is_valid() {
        for n in Network::ALL {
            validate(&SyncConfig::for_network(n)).expect("preset valid");
        }
    }

    #[test]
    fn mainnet_defaults_match_the_guide() {
        let s = SyncConfig::for_network(Network::Mainnet);
        assert_eq!(
            (
                s.concurrency,
                s.min_peers,
                s.init_streams,
                s.disc_soft_low_cap,
                s.disc_hard_low_cap
            ),
            (6, 6, 8, 8, 6)
        );
        assert_eq!(
            (s.disc_high_cap, s.disc_batch, s.max_advertise_wait_time),
            (128, 8, 60)
        );
        assert_eq!(s.staged.max_blocks_per_sync_cycle, 512);
        assert!(s.staged.use_mem_db && !s.staged.verify_all_sig);
    }

    #[test]
    fn negative_count_names_the_key() {
        let e = load_str("[Sync]\nConcurrency = -3\n", None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("Sync.Concurrency") && e.contains("-3") && e.contains("1..=1024"),
            "{e}"
        );
    }

    #[test]
    fn soft_cap_below_hard_cap_is_refused() {
        let e = load_str("[Sync]\nDiscSoftLowCap = 2\nDiscHardLowCap = 5\n", None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("Sync.DiscSoftLowCap") && e.contains("DiscHardLowCap"),
            "{e}"
        );
    }

    #[test]
    fn unknown_key_is_named() {
        let e = load_str("[Sync.StagedSyncCfg]\nVerifyAllSigs = true\n", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("Sync.StagedSyncCfg.VerifyAllSigs"), "{e}");
    }

    #[test]
    fn wrong_type_is_named() {
        let e = load_str("[Sync]\nEnabled = \"yes\"\n", None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("Sync.Enabled") && e.contains("true or false"),
            "{e}"
        );
    }

    #[test]
    fn fast_and_snap_sync_are_refused_as_reserved() {
        for m in [1, 2] {
            let e = load_str(&format!("[Sync]\nSyncMode = {m}\n"), None).unwrap_err();
            assert!(matches!(e, ConfigError::ModeUnavailable(x) if x == m));
        }
    }

    #[test]
    fn harmony_conf_with_other_sections_and_harmony_only_keys_loads() {
        let text = r#"
Version = "2.5.0"
[General]
  NodeType = "validator"
[Network]
  NetworkType = "testnet"
[Sync]
  Downloader = true
  StagedSync = true
  Concurrency = 5
  [Sync.StagedSyncCfg]
    TurboMode = false
    MaxBlocksPerSyncCycle = 0
"#;
        let c = load_str(text, None).expect("loads");
        assert_eq!(c.network, Network::Testnet);
        assert!(c.sync.client);
        assert_eq!(c.sync.concurrency, 5);
        assert_eq!(c.sync.min_peers, 3, "testnet default kept");
        assert_eq!(c.sync.staged.max_blocks_per_sync_cycle, 0);
    }

    #[test]
    fn dump_loads_back_equal_for_every_network() {
        for n in Network::ALL {
            let c = Config::for_network(n);
            let again = load_str(&c.to_toml(), Some(n)).expect("dump loads");
            assert_eq!(again, c);
            assert_eq!(again.to_toml(), c.to_toml());
        }
    }

    #[test]
    fn every_key_survives_a_round_trip() {
        let mut c = Config::for_network(Network::Partner);
        let s = &mut c.sync;
        s.enabled = false;
        s.client = true;
        s.concurrency = 11;
        s.min_peers = 12;
        s.init_streams = 13;
        s.max_advertise_wait_time = 14;
        s.disc_soft_low_cap = 16;
        s.disc_hard_low_cap = 15;
        s.disc_high_cap = 17;
        s.disc_batch = 18;
        s.max_reserved_streams = 19;
        s.removal_cooldown_duration = Duration::from_secs(20);
        s.max_removal_cooldown_duration = Duration::from_secs(21 * 60);
        s.setup_concurrency = 22;
        s.check_interval = Duration::from_secs(23);
        s.discovery_timeout = Duration::from_secs(24);
        s.connect_timeout = Duration::from_secs(25);
        let l = &mut s.limits;
        l.max_inbound_streams = 40;
        l.max_outbound_streams = 41;
        l.streams_per_ip = 42;
        l.max_pending_handshakes = 43;
        l.handshakes_per_ip = 44;
        l.handshake_timeout = Duration::from_secs(45);
        l.frame_timeout = Duration::from_secs(46);
        l.write_progress_timeout = Duration::from_secs(47);
        l.read_buffer_budget = 48 << 20;
        l.server_workers = 49;
        l.server_queue = 50;
        l.stream_request_rate = 51;
        l.stream_request_burst = 52;
        l.stream_byte_rate = 53 << 20;
        l.stream_byte_burst = 54 << 20;
        l.stream_block_rate = 55;
        l.stream_block_burst = 560;
        l.global_request_rate = 57;
        l.global_request_burst = 58;
        l.global_byte_rate = 59 << 20;
        l.global_byte_burst = 60 << 20;
        l.global_block_rate = 61;
        l.global_block_burst = 620;
        l.rate_limit_tolerance = 63;
        let t = &mut s.staged;
        t.double_check_block_hashes = true;
        t.max_blocks_per_sync_cycle = 26;
        t.max_background_blocks = 27;
        t.insert_chain_batch_size = 28;
        t.verify_all_sig = true;
        t.verify_header_batch_size = 29;
        t.max_mem_sync_cycle_size = 30;
        t.use_mem_db = false;
        t.log_progress = true;
        t.debug_mode = true;
        assert_eq!(load_str(&c.to_toml(), None).expect("loads"), c);
    }

    #[test]
    fn set_sync_key_sets_sync_and_staged_keys_with_the_files_checks() {
        let mut c = Config::for_network(Network::Mainnet);
        set_sync_key(&mut c, "ServerWorkers", Value::Integer(7)).expect("in range");
        set_sync_key(&mut c, "CheckInterval", Value::String("45s".into())).expect("duration");
        set_sync_key(&mut c, "StagedSyncCfg.UseMemDB", Value::Boolean(false)).expect("bool");
        assert_eq!(c.sync.limits.server_workers, 7);
        assert_eq!(c.sync.check_interval, Duration::from_secs(45));
        assert!(!c.sync.staged.use_mem_db);
        let e = set_sync_key(&mut c, "Concurrency", Value::Integer(0)).unwrap_err();
        assert!(e.to_string().contains("Sync.Concurrency"), "{e}");
        let e = set_sync_key(&mut c, "StagedSyncCfg.Nope", Value::Boolean(true)).unwrap_err();
        assert!(matches!(e, ConfigError::UnknownKey { key } if key == "Sync.StagedSyncCfg.Nope"));
        let e = set_sync_key(&mut c, "SyncMode", Value::Integer(1)).unwrap_err();
        assert!(matches!(e, ConfigError::ModeUnavailable(1)));
    }

    #[test]
    fn network_flag_contradicting_file_is_refused() {
        let e = load_str(
            "[Network]\nNetworkType = \"testnet\"\n",
            Some(Network::Mainnet),
        )
        .unwrap_err();
        assert!(matches!(e, ConfigError::NetworkConflict { .. }));
    }
}
