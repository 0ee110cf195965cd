//! The effective configuration of `node` and `dump-config`: the network's
//! defaults, then the file, then one `--sync.*` flag per `[Sync]` and
//! `[Sync.StagedSyncCfg]` key.
//!
//! Flags go through the file's own loader ([`config::set_sync_key`]): a
//! flag takes exactly the values, ranges and cross-key rules its key takes
//! in a file, and an error names the flag and the key.

use std::path::PathBuf;

use streamsync::config::{self, Config, Network};
use toml::Value;

use super::{parse_network, CliError};

/// Where the configuration comes from: `--network`, `--config`, then the
/// `--sync.*` flags.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Configuration")]
pub struct ConfigArgs {
    /// A `harmony.conf`-style TOML file; its `[Sync]` section overrides the
    /// network's defaults (other sections are ignored).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Network whose defaults apply (mainnet, testnet, localnet, partner);
    /// default: the file's `[Network] NetworkType`, else mainnet.
    #[arg(long, value_parser = parse_network)]
    pub network: Option<Network>,
    /// The `--sync.*` overrides (boxed: 54 options would make every
    /// subcommand holding them as large).
    #[command(flatten)]
    pub sync: Box<SyncFlags>,
}

impl ConfigArgs {
    /// The effective configuration: the network's defaults, the file, the
    /// flags; validated.
    pub fn effective(&self) -> Result<Config, CliError> {
        let mut cfg = match &self.config {
            Some(path) => config::load_file(path, self.network)?,
            None => Config::for_network(self.network.unwrap_or(Network::Mainnet)),
        };
        self.sync.apply(&mut cfg)?;
        Ok(cfg)
    }
}

/// Command-line overrides of `[Sync]` keys: the guide's flag names where it
/// gives one (`--sync`, `--sync.mode`, `--sync.concurrency`,
/// `--sync.min-peers`, `--sync.init-peers`, `--sync.disc.batch`), else
/// `--sync.<kebab-key>` for `[Sync]` keys and `--sync.staged.<kebab-key>`
/// for `[Sync.StagedSyncCfg]` keys.
///
/// Boolean flags take `--flag` (true), `--flag=BOOL` and `--flag BOOL`:
/// `num_args = 0..=1` with `default_missing_value = "true"`. No
/// `require_equals`: clap never takes a `-`-led token as the value, so
/// `--sync --sync.mode 0` leaves `--sync.mode` alone, and neither command
/// has a positional argument a bare boolean could swallow; the space form
/// keeps working for the scripts that use it (`--sync.downloader true`).
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Sync configuration (each flag overrides its [Sync] key)")]
pub struct SyncFlags {
    /// `Enabled`: run the stream sync protocol (the server side).
    #[arg(long = "sync", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub enabled: Option<bool>,
    /// `SyncMode`: 0 = FullSync, the only mode implemented (1 FastSync and
    /// 2 SnapSync are reserved and refused).
    #[arg(long = "sync.mode", value_name = "MODE")]
    pub mode: Option<i64>,
    /// `Client`: run the downloader (sync this node from its peers).
    #[arg(long = "sync.downloader", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub downloader: Option<bool>,
    /// `Concurrency`: download batches in flight at once.
    #[arg(long = "sync.concurrency", value_name = "N")]
    pub concurrency: Option<i64>,
    /// `MinPeers`: streams required to start a sync task.
    #[arg(long = "sync.min-peers", value_name = "N")]
    pub min_peers: Option<i64>,
    /// `InitStreams`: streams required for the initial bootstrap.
    #[arg(long = "sync.init-peers", value_name = "N")]
    pub init_peers: Option<i64>,
    /// `HeadsVotesPerIP`: most Heads votes counted from one IP (0 = no cap).
    #[arg(long = "sync.heads-votes-per-ip", value_name = "N")]
    pub heads_votes_per_ip: Option<i64>,
    /// `MaxAdvertiseWaitTime`: longest gap between advertisements, minutes.
    #[arg(long = "sync.max-advertise-wait-time", value_name = "MINUTES")]
    pub max_advertise_wait_time: Option<i64>,
    /// `DiscSoftLowCap`: below this, the routine check discovers.
    #[arg(long = "sync.disc.soft-low-cap", value_name = "N")]
    pub disc_soft_low_cap: Option<i64>,
    /// `DiscHardLowCap`: below this after a removal, discover at once.
    #[arg(long = "sync.disc.hard-low-cap", value_name = "N")]
    pub disc_hard_low_cap: Option<i64>,
    /// `DiscHighCap`: most active streams.
    #[arg(long = "sync.disc.hi-cap", value_name = "N")]
    pub disc_high_cap: Option<i64>,
    /// `DiscBatch`: peers asked for per discovery.
    #[arg(long = "sync.disc.batch", value_name = "N")]
    pub disc_batch: Option<i64>,
    /// `MaxReservedStreams`: most reserve streams.
    #[arg(long = "sync.max-reserved-streams", value_name = "N")]
    pub max_reserved_streams: Option<i64>,
    /// `RemovalCooldownDuration`: cooldown per failure (e.g. 5m).
    #[arg(long = "sync.removal-cooldown-duration", value_name = "DURATION")]
    pub removal_cooldown_duration: Option<String>,
    /// `MaxRemovalCooldownDuration`: longest cooldown (e.g. 60m).
    #[arg(long = "sync.max-removal-cooldown-duration", value_name = "DURATION")]
    pub max_removal_cooldown_duration: Option<String>,
    /// `SetupConcurrency`: stream setups at once.
    #[arg(long = "sync.setup-concurrency", value_name = "N")]
    pub setup_concurrency: Option<i64>,
    /// `CheckInterval`: routine stream-count check period (e.g. 30s).
    #[arg(long = "sync.check-interval", value_name = "DURATION")]
    pub check_interval: Option<String>,
    /// `DiscoveryTimeout`: limit of one discovery batch (e.g. 10s).
    #[arg(long = "sync.discovery-timeout", value_name = "DURATION")]
    pub discovery_timeout: Option<String>,
    /// `ConnectTimeout`: limit of one stream setup (e.g. 60s).
    #[arg(long = "sync.connect-timeout", value_name = "DURATION")]
    pub connect_timeout: Option<String>,
    /// `MaxInboundStreams`: inbound connections at once.
    #[arg(long = "sync.max-inbound-streams", value_name = "N")]
    pub max_inbound_streams: Option<i64>,
    /// `MaxOutboundStreams`: outbound connections at once.
    #[arg(long = "sync.max-outbound-streams", value_name = "N")]
    pub max_outbound_streams: Option<i64>,
    /// `StreamsPerIP`: open inbound streams from one IP (0 = no cap).
    #[arg(long = "sync.streams-per-ip", value_name = "N")]
    pub streams_per_ip: Option<i64>,
    /// `MaxPendingHandshakes`: inbound handshakes at once.
    #[arg(long = "sync.max-pending-handshakes", value_name = "N")]
    pub max_pending_handshakes: Option<i64>,
    /// `HandshakesPerIP`: inbound handshakes at once from one IP (0 = no cap).
    #[arg(long = "sync.handshakes-per-ip", value_name = "N")]
    pub handshakes_per_ip: Option<i64>,
    /// `HandshakeTimeout`: limit of a Noise handshake (e.g. 10s).
    #[arg(long = "sync.handshake-timeout", value_name = "DURATION")]
    pub handshake_timeout: Option<String>,
    /// `FrameTimeout`: limit for a started frame to arrive whole (e.g. 30s).
    #[arg(long = "sync.frame-timeout", value_name = "DURATION")]
    pub frame_timeout: Option<String>,
    /// `WriteProgressTimeout`: how long a peer may take none of our bytes.
    #[arg(long = "sync.write-progress-timeout", value_name = "DURATION")]
    pub write_progress_timeout: Option<String>,
    /// `ReadBufferBudget`: bytes all receive buffers may hold together.
    #[arg(long = "sync.read-buffer-budget", value_name = "BYTES")]
    pub read_buffer_budget: Option<i64>,
    /// `ServerWorkers`: threads answering requests.
    #[arg(long = "sync.server-workers", value_name = "N")]
    pub server_workers: Option<i64>,
    /// `ServerQueue`: decoded requests waiting for a worker.
    #[arg(long = "sync.server-queue", value_name = "N")]
    pub server_queue: Option<i64>,
    /// `StreamRequestRate`: requests per second one stream may send.
    #[arg(long = "sync.stream-request-rate", value_name = "N")]
    pub stream_request_rate: Option<i64>,
    /// `StreamRequestBurst`: requests one stream may send at once.
    #[arg(long = "sync.stream-request-burst", value_name = "N")]
    pub stream_request_burst: Option<i64>,
    /// `StreamByteRate`: response bytes per second one stream is served.
    #[arg(long = "sync.stream-byte-rate", value_name = "BYTES")]
    pub stream_byte_rate: Option<i64>,
    /// `StreamByteBurst`: response bytes one stream is served at once.
    #[arg(long = "sync.stream-byte-burst", value_name = "BYTES")]
    pub stream_byte_burst: Option<i64>,
    /// `StreamBlockRate`: blocks per second one stream is served.
    #[arg(long = "sync.stream-block-rate", value_name = "N")]
    pub stream_block_rate: Option<i64>,
    /// `StreamBlockBurst`: blocks one stream is served at once.
    #[arg(long = "sync.stream-block-burst", value_name = "N")]
    pub stream_block_burst: Option<i64>,
    /// `GlobalRequestRate`: requests per second over all streams.
    #[arg(long = "sync.global-request-rate", value_name = "N")]
    pub global_request_rate: Option<i64>,
    /// `GlobalRequestBurst`: requests at once over all streams.
    #[arg(long = "sync.global-request-burst", value_name = "N")]
    pub global_request_burst: Option<i64>,
    /// `GlobalByteRate`: response bytes per second over all streams.
    #[arg(long = "sync.global-byte-rate", value_name = "BYTES")]
    pub global_byte_rate: Option<i64>,
    /// `GlobalByteBurst`: response bytes at once over all streams.
    #[arg(long = "sync.global-byte-burst", value_name = "BYTES")]
    pub global_byte_burst: Option<i64>,
    /// `GlobalBlockRate`: blocks per second over all streams.
    #[arg(long = "sync.global-block-rate", value_name = "N")]
    pub global_block_rate: Option<i64>,
    /// `GlobalBlockBurst`: blocks at once over all streams.
    #[arg(long = "sync.global-block-burst", value_name = "N")]
    pub global_block_burst: Option<i64>,
    /// `RateLimitTolerance`: requests a peer may send inside its
    /// `retry_after` before it is disconnected.
    #[arg(long = "sync.rate-limit-tolerance", value_name = "N")]
    pub rate_limit_tolerance: Option<i64>,
    /// `StagedSyncCfg.DoubleCheckBlockHashes`: confirm each hash batch with
    /// a second stream.
    #[arg(long = "sync.staged.double-check-block-hashes", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub double_check_block_hashes: Option<bool>,
    /// `StagedSyncCfg.MaxBlocksPerSyncCycle`: blocks per cycle (0 = all in
    /// one cycle).
    #[arg(
        long = "sync.staged.max-blocks-per-sync-cycle",
        alias = "sync.max-blocks-per-cycle",
        value_name = "N"
    )]
    pub max_blocks_per_sync_cycle: Option<i64>,
    /// `StagedSyncCfg.MaxBackgroundBlocks`: blocks downloaded ahead.
    #[arg(long = "sync.staged.max-background-blocks", value_name = "N")]
    pub max_background_blocks: Option<i64>,
    /// `StagedSyncCfg.InsertChainBatchSize`: blocks per inserted batch.
    #[arg(long = "sync.staged.insert-chain-batch-size", value_name = "N")]
    pub insert_chain_batch_size: Option<i64>,
    /// `StagedSyncCfg.VerifyAllSig`: verify every block's commit signature.
    #[arg(long = "sync.staged.verify-all-sig", alias = "sync.verify-all-sig", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub verify_all_sig: Option<bool>,
    /// `StagedSyncCfg.VerifyHeaderBatchSize`: without VerifyAllSig, verify
    /// at least one signature per this many blocks.
    #[arg(long = "sync.staged.verify-header-batch-size", value_name = "N")]
    pub verify_header_batch_size: Option<i64>,
    /// `StagedSyncCfg.MaxMemSyncCycleSize`: cycles up to this many blocks
    /// commit once.
    #[arg(long = "sync.staged.max-mem-sync-cycle-size", value_name = "N")]
    pub max_mem_sync_cycle_size: Option<i64>,
    /// `StagedSyncCfg.UseMemDB`: staging tables in memory (else in LMDB).
    #[arg(long = "sync.staged.use-mem-db", alias = "sync.use-mem-db", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub use_mem_db: Option<bool>,
    /// `StagedSyncCfg.MaxStagedBytes`: byte budget of downloaded, not yet
    /// committed blocks.
    #[arg(long = "sync.staged.max-staged-bytes", value_name = "BYTES")]
    pub max_staged_bytes: Option<i64>,
    /// `StagedSyncCfg.LogProgress`: a progress line per batch.
    #[arg(long = "sync.staged.log-progress", alias = "sync.log-progress", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub log_progress: Option<bool>,
    /// `StagedSyncCfg.DebugMode`: log every request, response and stream
    /// event.
    #[arg(long = "sync.staged.debug-mode", alias = "sync.debug-mode", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub debug_mode: Option<bool>,
}

impl SyncFlags {
    /// The flags given, in declaration order: each one's clap id, the key it
    /// sets (its path under `[Sync]`) and the value as TOML.
    fn overrides(&self) -> Vec<(&'static str, &'static str, Value)> {
        let mut out = Vec::new();
        macro_rules! keys {
            ($($field:ident => $key:literal),* $(,)?) => {$(
                if let Some(v) = &self.$field {
                    out.push((stringify!($field), $key, Value::from(v.clone())));
                }
            )*};
        }
        keys!(
            enabled => "Enabled",
            mode => "SyncMode",
            downloader => "Client",
            concurrency => "Concurrency",
            min_peers => "MinPeers",
            init_peers => "InitStreams",
            heads_votes_per_ip => "HeadsVotesPerIP",
            max_advertise_wait_time => "MaxAdvertiseWaitTime",
            disc_soft_low_cap => "DiscSoftLowCap",
            disc_hard_low_cap => "DiscHardLowCap",
            disc_high_cap => "DiscHighCap",
            disc_batch => "DiscBatch",
            max_reserved_streams => "MaxReservedStreams",
            removal_cooldown_duration => "RemovalCooldownDuration",
            max_removal_cooldown_duration => "MaxRemovalCooldownDuration",
            setup_concurrency => "SetupConcurrency",
            check_interval => "CheckInterval",
            discovery_timeout => "DiscoveryTimeout",
            connect_timeout => "ConnectTimeout",
            max_inbound_streams => "MaxInboundStreams",
            max_outbound_streams => "MaxOutboundStreams",
            streams_per_ip => "StreamsPerIP",
            max_pending_handshakes => "MaxPendingHandshakes",
            handshakes_per_ip => "HandshakesPerIP",
            handshake_timeout => "HandshakeTimeout",
            frame_timeout => "FrameTimeout",
            write_progress_timeout => "WriteProgressTimeout",
            read_buffer_budget => "ReadBufferBudget",
            server_workers => "ServerWorkers",
            server_queue => "ServerQueue",
            stream_request_rate => "StreamRequestRate",
            stream_request_burst => "StreamRequestBurst",
            stream_byte_rate => "StreamByteRate",
            stream_byte_burst => "StreamByteBurst",
            stream_block_rate => "StreamBlockRate",
            stream_block_burst => "StreamBlockBurst",
            global_request_rate => "GlobalRequestRate",
            global_request_burst => "GlobalRequestBurst",
            global_byte_rate => "GlobalByteRate",
            global_byte_burst => "GlobalByteBurst",
            global_block_rate => "GlobalBlockRate",
            global_block_burst => "GlobalBlockBurst",
            rate_limit_tolerance => "RateLimitTolerance",
            double_check_block_hashes => "StagedSyncCfg.DoubleCheckBlockHashes",
            max_blocks_per_sync_cycle => "StagedSyncCfg.MaxBlocksPerSyncCycle",
            max_background_blocks => "StagedSyncCfg.MaxBackgroundBlocks",
            insert_chain_batch_size => "StagedSyncCfg.InsertChainBatchSize",
            verify_all_sig => "StagedSyncCfg.VerifyAllSig",
            verify_header_batch_size => "StagedSyncCfg.VerifyHeaderBatchSize",
            max_mem_sync_cycle_size => "StagedSyncCfg.MaxMemSyncCycleSize",
            use_mem_db => "StagedSyncCfg.UseMemDB",
            max_staged_bytes => "StagedSyncCfg.MaxStagedBytes",
            log_progress => "StagedSyncCfg.LogProgress",
            debug_mode => "StagedSyncCfg.DebugMode",
        );
        out
    }

    /// Applies the flags to `c` as its file's keys would be, then checks
    /// the rules between keys. A refused value names the flag and the key.
    pub fn apply(&self, c: &mut Config) -> Result<(), CliError> {
        for (id, key, value) in self.overrides() {
            config::set_sync_key(c, key, value).map_err(|e| format!("{}: {e}", flag_of(id)))?;
        }
        c.validate()?;
        Ok(())
    }
}

/// `--name` of the flag whose clap id is `id` (the field's name).
fn flag_of(id: &str) -> String {
    let cmd = <SyncFlags as clap::Args>::augment_args(clap::Command::new("streamsync"));
    let long = cmd
        .get_arguments()
        .find(|a| a.get_id() == id)
        .and_then(|a| a.get_long());
    long.map_or_else(|| id.to_string(), |l| format!("--{l}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// `SyncFlags` alone, parsed as the commands parse it.
    #[derive(Debug, Parser)]
    struct Only {
        #[command(flatten)]
        sync: SyncFlags,
    }

    fn parse(args: &[&str]) -> Result<SyncFlags, clap::Error> {
        Only::try_parse_from(std::iter::once("streamsync").chain(args.iter().copied()))
            .map(|o| o.sync)
    }

    /// The keys `Config::to_toml` writes, as paths under `[Sync]`.
    fn dumped_keys() -> std::collections::BTreeSet<String> {
        let root: toml::Table = Config::for_network(Network::Mainnet)
            .to_toml()
            .parse()
            .expect("the dump is TOML");
        let mut keys = std::collections::BTreeSet::new();
        for (k, v) in root["Sync"].as_table().expect("[Sync]") {
            match v.as_table() {
                Some(t) => keys.extend(t.keys().map(|s| format!("{k}.{s}"))),
                None => {
                    keys.insert(k.clone());
                }
            }
        }
        keys
    }

    /// Every key of the configuration has exactly one flag, and every flag
    /// a key the loader knows: each flag alone, with a value of its kind,
    /// yields one override that `set_sync_key` accepts or refuses for its
    /// range, never as an unknown key.
    #[test]
    fn every_key_has_one_flag_and_every_flag_a_key() {
        let cmd = <SyncFlags as clap::Args>::augment_args(clap::Command::new("t"));
        let mut keys = std::collections::BTreeSet::new();
        for arg in cmd.get_arguments() {
            let long = arg.get_long().expect("every sync flag is long");
            let value = match arg.get_value_names().and_then(|v| v.first()) {
                Some(v) if v == "BOOL" => "true",
                Some(v) if v == "DURATION" => "30s",
                _ => "1",
            };
            let flag = format!("--{long}={value}");
            let f = parse(&[flag.as_str()]).unwrap_or_else(|e| panic!("{flag}: {e}"));
            let o = f.overrides();
            assert_eq!(o.len(), 1, "{flag} sets no key (missing from keys!)");
            assert_eq!(flag_of(o[0].0), format!("--{long}"));
            let mut c = Config::for_network(Network::Mainnet);
            if let Err(e) = config::set_sync_key(&mut c, o[0].1, o[0].2.clone()) {
                assert!(
                    !matches!(e, config::ConfigError::UnknownKey { .. }),
                    "{flag}: {e}"
                );
            }
            assert!(keys.insert(o[0].1.to_string()), "two flags set {}", o[0].1);
        }
        assert_eq!(keys, dumped_keys(), "flags' keys vs the dump's keys");
    }

    #[test]
    fn bare_boolean_is_true_and_does_not_swallow_the_next_flag() {
        let f = parse(&["--sync", "--sync.mode", "0", "--sync.downloader"]).expect("parses");
        assert_eq!(
            (f.enabled, f.mode, f.downloader),
            (Some(true), Some(0), Some(true))
        );
        let f = parse(&["--sync=false", "--sync.downloader", "false"]).expect("parses");
        assert_eq!((f.enabled, f.downloader), (Some(false), Some(false)));
        assert!(parse(&["--sync=yes"]).is_err());
    }

    #[test]
    fn a_refused_value_names_the_flag_and_the_key() {
        let mut c = Config::for_network(Network::Mainnet);
        let e = parse(&["--sync.concurrency", "0"])
            .expect("parses")
            .apply(&mut c)
            .expect_err("0 is out of range")
            .to_string();
        assert!(
            e.contains("--sync.concurrency") && e.contains("Sync.Concurrency"),
            "{e}"
        );
    }
}
