//! The configuration structs, their defaults and their TOML rendering.

use std::fmt::Write as _;
use std::time::Duration;

use super::network::Network;

/// `SyncMode`: only FullSync exists; FastSync and SnapSync are reserved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncMode {
    /// 0: full sync through the staged pipeline.
    Full,
}

/// The effective configuration of a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The network whose presets the defaults come from.
    pub network: Network,
    /// The `[Sync]` section.
    pub sync: SyncConfig,
}

/// The `[Sync]` section (key names in each field's doc).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncConfig {
    /// `Enabled`: run the stream sync protocol (server side). Default true.
    pub enabled: bool,
    /// `SyncMode`: 0 = FullSync (1, 2 reserved). Default 0.
    pub sync_mode: SyncMode,
    /// `Client` (Harmony's `Downloader` also sets it): run the downloader.
    /// Default false.
    pub client: bool,
    /// `Concurrency`: download batches in flight at once.
    pub concurrency: usize,
    /// `MinPeers`: streams required to start a sync task.
    pub min_peers: usize,
    /// `InitStreams`: streams required for the initial bootstrap.
    pub init_streams: usize,
    /// `HeadsVotesPerIP` (this engine's, not the guide's): most Heads votes
    /// counted from one IP address, so one host's sybil identities count
    /// once; 0 = no cap. Default 1; the localnet preset turns it off, since
    /// every peer there is 127.0.0.1.
    pub heads_votes_per_ip: usize,
    /// `MaxAdvertiseWaitTime`, minutes: longest gap between advertisements.
    pub max_advertise_wait_time: u64,
    /// `DiscSoftLowCap`: below this, the routine check discovers.
    pub disc_soft_low_cap: usize,
    /// `DiscHardLowCap`: below this after a removal, discover at once.
    pub disc_hard_low_cap: usize,
    /// `DiscHighCap`: most active streams.
    pub disc_high_cap: usize,
    /// `DiscBatch`: peers asked for per discovery.
    pub disc_batch: usize,
    /// `MaxReservedStreams`: most reserve streams. Default 100.
    pub max_reserved_streams: usize,
    /// `RemovalCooldownDuration`: cooldown per failure. Default 5 min.
    pub removal_cooldown_duration: Duration,
    /// `MaxRemovalCooldownDuration`: longest cooldown, also the critical
    /// error cooldown. Default 60 min.
    pub max_removal_cooldown_duration: Duration,
    /// `SetupConcurrency`: stream setups at once. Default 16.
    pub setup_concurrency: usize,
    /// `CheckInterval`: routine stream-count check period. Default 30 s.
    pub check_interval: Duration,
    /// `DiscoveryTimeout`: limit of one discovery batch. Default 10 s.
    pub discovery_timeout: Duration,
    /// `ConnectTimeout`: limit of one stream setup. Default 60 s.
    pub connect_timeout: Duration,
    /// Connection and buffer limits (keys directly under `[Sync]`).
    pub limits: super::limits::LimitsConfig,
    /// The `[Sync.StagedSyncCfg]` section.
    pub staged: StagedSyncConfig,
}

/// The `[Sync.StagedSyncCfg]` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StagedSyncConfig {
    /// `DoubleCheckBlockHashes`: confirm each hash batch with a second stream.
    pub double_check_block_hashes: bool,
    /// `MaxBlocksPerSyncCycle`: blocks per cycle; 0 = all in one cycle.
    pub max_blocks_per_sync_cycle: u64,
    /// `MaxBackgroundBlocks`: blocks downloaded ahead in turbo mode.
    pub max_background_blocks: u64,
    /// `InsertChainBatchSize`: blocks per verified, atomically inserted batch.
    pub insert_chain_batch_size: usize,
    /// `VerifyAllSig`: verify every block's commit signature.
    pub verify_all_sig: bool,
    /// `VerifyHeaderBatchSize`: without `VerifyAllSig`, verify at least the
    /// last signature of every this many blocks.
    pub verify_header_batch_size: usize,
    /// `MaxMemSyncCycleSize`: cycles up to this many blocks keep staging in
    /// memory and commit once.
    pub max_mem_sync_cycle_size: u64,
    /// `UseMemDB`: staging tables in memory (else in LMDB).
    pub use_mem_db: bool,
    /// `MaxStagedBytes` (engine key, not Harmony's): the byte budget of
    /// everything downloaded and not yet committed, plus reservations for
    /// the body requests in flight; past it no new body requests go out.
    /// Default 256 MiB; a block counts twice its raw size (raw bytes and
    /// decoded form).
    pub max_staged_bytes: u64,
    /// `LogProgress`: a progress line per batch.
    pub log_progress: bool,
    /// `DebugMode`: log every request, response and stream event.
    pub debug_mode: bool,
}

/// Default `MaxStagedBytes`: 256 MiB.
pub const DEFAULT_MAX_STAGED_BYTES: u64 = 256 << 20;

impl Default for StagedSyncConfig {
    fn default() -> Self {
        StagedSyncConfig {
            double_check_block_hashes: false,
            max_blocks_per_sync_cycle: 512,
            max_background_blocks: 512,
            insert_chain_batch_size: 128,
            verify_all_sig: false,
            verify_header_batch_size: 100,
            max_mem_sync_cycle_size: 1024,
            use_mem_db: true,
            max_staged_bytes: DEFAULT_MAX_STAGED_BYTES,
            log_progress: false,
            debug_mode: false,
        }
    }
}

impl SyncConfig {
    /// The guide's defaults for `network`.
    pub fn for_network(network: Network) -> Self {
        let d = network.defaults();
        SyncConfig {
            enabled: true,
            sync_mode: SyncMode::Full,
            client: false,
            concurrency: d.concurrency,
            min_peers: d.min_peers,
            init_streams: d.init_streams,
            heads_votes_per_ip: if network == Network::Localnet { 0 } else { 1 },
            max_advertise_wait_time: d.max_advertise_wait_time,
            disc_soft_low_cap: d.disc_soft_low_cap,
            disc_hard_low_cap: d.disc_hard_low_cap,
            disc_high_cap: d.disc_high_cap,
            disc_batch: d.disc_batch,
            max_reserved_streams: 100,
            removal_cooldown_duration: Duration::from_secs(5 * 60),
            max_removal_cooldown_duration: Duration::from_secs(60 * 60),
            setup_concurrency: 16,
            check_interval: Duration::from_secs(30),
            discovery_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(60),
            limits: super::limits::LimitsConfig::for_network(network),
            staged: StagedSyncConfig::default(),
        }
    }
}

impl Config {
    /// The defaults of `network`.
    pub fn for_network(network: Network) -> Self {
        Config {
            network,
            sync: SyncConfig::for_network(network),
        }
    }

    /// Checks the rules between keys (after CLI overrides).
    pub fn validate(&self) -> Result<(), super::ConfigError> {
        super::load::validate(&self.sync)
    }

    /// Renders the complete configuration as a `harmony.conf`-style TOML file
    /// that [`super::load_str`] reads back to an equal `Config`.
    pub fn to_toml(&self) -> String {
        let s = &self.sync;
        let t = &s.staged;
        let l = &s.limits;
        let dur = |d: Duration| format!("\"{}\"", humantime::format_duration(d));
        let mut out = String::from("# streamsync effective configuration\n[Network]\n");
        let _ = writeln!(out, "  NetworkType = \"{}\"\n\n[Sync]", self.network);
        let mode = match s.sync_mode {
            SyncMode::Full => 0,
        };
        let lines: Vec<(&str, String)> = vec![
            ("Enabled", s.enabled.to_string()),
            ("SyncMode", mode.to_string()),
            ("Client", s.client.to_string()),
            ("Concurrency", s.concurrency.to_string()),
            ("MinPeers", s.min_peers.to_string()),
            ("InitStreams", s.init_streams.to_string()),
            ("HeadsVotesPerIP", s.heads_votes_per_ip.to_string()),
            (
                "MaxAdvertiseWaitTime",
                s.max_advertise_wait_time.to_string(),
            ),
            ("DiscSoftLowCap", s.disc_soft_low_cap.to_string()),
            ("DiscHardLowCap", s.disc_hard_low_cap.to_string()),
            ("DiscHighCap", s.disc_high_cap.to_string()),
            ("DiscBatch", s.disc_batch.to_string()),
            ("MaxReservedStreams", s.max_reserved_streams.to_string()),
            ("RemovalCooldownDuration", dur(s.removal_cooldown_duration)),
            (
                "MaxRemovalCooldownDuration",
                dur(s.max_removal_cooldown_duration),
            ),
            ("SetupConcurrency", s.setup_concurrency.to_string()),
            ("CheckInterval", dur(s.check_interval)),
            ("DiscoveryTimeout", dur(s.discovery_timeout)),
            ("ConnectTimeout", dur(s.connect_timeout)),
            ("MaxInboundStreams", l.max_inbound_streams.to_string()),
            ("MaxOutboundStreams", l.max_outbound_streams.to_string()),
            ("StreamsPerIP", l.streams_per_ip.to_string()),
            ("MaxPendingHandshakes", l.max_pending_handshakes.to_string()),
            ("HandshakesPerIP", l.handshakes_per_ip.to_string()),
            ("HandshakeTimeout", dur(l.handshake_timeout)),
            ("FrameTimeout", dur(l.frame_timeout)),
            ("WriteProgressTimeout", dur(l.write_progress_timeout)),
            ("ReadBufferBudget", l.read_buffer_budget.to_string()),
            ("ServerWorkers", l.server_workers.to_string()),
            ("ServerQueue", l.server_queue.to_string()),
            ("StreamRequestRate", l.stream_request_rate.to_string()),
            ("StreamRequestBurst", l.stream_request_burst.to_string()),
            ("StreamByteRate", l.stream_byte_rate.to_string()),
            ("StreamByteBurst", l.stream_byte_burst.to_string()),
            ("StreamBlockRate", l.stream_block_rate.to_string()),
            ("StreamBlockBurst", l.stream_block_burst.to_string()),
            ("GlobalRequestRate", l.global_request_rate.to_string()),
            ("GlobalRequestBurst", l.global_request_burst.to_string()),
            ("GlobalByteRate", l.global_byte_rate.to_string()),
            ("GlobalByteBurst", l.global_byte_burst.to_string()),
            ("GlobalBlockRate", l.global_block_rate.to_string()),
            ("GlobalBlockBurst", l.global_block_burst.to_string()),
            ("RateLimitTolerance", l.rate_limit_tolerance.to_string()),
        ];
        for (k, v) in lines {
            let _ = writeln!(out, "  {k} = {v}");
        }
        out.push_str("\n  [Sync.StagedSyncCfg]\n");
        let staged: Vec<(&str, String)> = vec![
            (
                "DoubleCheckBlockHashes",
                t.double_check_block_hashes.to_string(),
            ),
            (
                "MaxBlocksPerSyncCycle",
                t.max_blocks_per_sync_cycle.to_string(),
            ),
            ("MaxBackgroundBlocks", t.max_background_blocks.to_string()),
            (
                "InsertChainBatchSize",
                t.insert_chain_batch_size.to_string(),
            ),
            ("VerifyAllSig", t.verify_all_sig.to_string()),
            (
                "VerifyHeaderBatchSize",
                t.verify_header_batch_size.to_string(),
            ),
            ("MaxMemSyncCycleSize", t.max_mem_sync_cycle_size.to_string()),
            ("UseMemDB", t.use_mem_db.to_string()),
            ("MaxStagedBytes", t.max_staged_bytes.to_string()),
            ("LogProgress", t.log_progress.to_string()),
            ("DebugMode", t.debug_mode.to_string()),
        ];
        for (k, v) in staged {
            let _ = writeln!(out, "    {k} = {v}");
        }
        out
    }
}
