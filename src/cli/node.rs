//! `streamsync node`: run a node (server always; the sync client when
//! `Client` / `--sync.downloader` is on).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use streamsync::chain::{ChainBackend, GenesisSpec};
use streamsync::config::{self, Config, Network};
use streamsync::crypto::hash::to_hex;
use streamsync::crypto::NodeIdentity;
use streamsync::metrics::MetricsServer;
use streamsync::net::{from_multiaddr, to_multiaddr};
use streamsync::node::{Node, NodeConfig, NodeStatus};
use streamsync::store::{Store, StoreOptions};
use streamsync::stream::PeerAddr;
use streamsync::sync::SyncOutcome;
use streamsync::wire::ProtocolId;

use super::signals::StopSignal;
use super::{cpu_seconds, parse_network, peak_rss_mb, CliError, DataDir, LinkArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    dir: DataDir,
    /// A `harmony.conf`-style TOML file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Network (default: the file's, else mainnet).
    #[arg(long, value_parser = parse_network)]
    network: Option<Network>,
    /// Listen address.
    #[arg(long, default_value = "/ip4/127.0.0.1/tcp/0", value_name = "MULTIADDR")]
    listen: String,
    /// Boot peer `/ip4/…/tcp/…/p2p/…` (repeatable).
    #[arg(long, value_name = "MULTIADDR")]
    boot: Vec<String>,
    /// Trusted peer (repeatable): dialled first, never removed.
    #[arg(long, value_name = "MULTIADDR")]
    trusted: Vec<String>,
    /// Serve `/metrics` and `/status` on this address.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<std::net::SocketAddr>,
    /// Exit once synced, printing a report.
    #[arg(long)]
    exit_when_synced: bool,
    /// With `--exit-when-synced`: the report as one JSON line.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    link: LinkArgs,
    #[command(flatten)]
    genesis: GenesisArgs,
    #[command(flatten)]
    sync: SyncFlags,
}

/// The genesis of a new datadir (ignored when the datadir has a chain).
#[derive(Debug, Clone, clap::Args)]
pub struct GenesisArgs {
    /// Genesis seed.
    #[arg(long = "genesis-seed", default_value_t = 1)]
    pub seed: u64,
    /// Committee members per epoch.
    #[arg(long, default_value_t = 64)]
    pub committee: u32,
    /// Blocks per epoch.
    #[arg(long = "epoch-len", default_value_t = 1000)]
    pub epoch_len: u64,
    /// Genesis accounts.
    #[arg(long, default_value_t = 256)]
    pub accounts: u32,
    /// Shard id.
    #[arg(long, default_value_t = 0)]
    pub shard: u32,
}

/// Command-line overrides of `[Sync]` keys (the guide's flag names).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SyncFlags {
    /// `Enabled`.
    #[arg(long = "sync")]
    pub enabled: Option<bool>,
    /// `SyncMode` (0 only).
    #[arg(long = "sync.mode")]
    pub mode: Option<i64>,
    /// `Client`: run the downloader.
    #[arg(long = "sync.downloader")]
    pub downloader: Option<bool>,
    /// `Concurrency`.
    #[arg(long = "sync.concurrency")]
    pub concurrency: Option<usize>,
    /// `MinPeers`.
    #[arg(long = "sync.min-peers")]
    pub min_peers: Option<usize>,
    /// `InitStreams`.
    #[arg(long = "sync.init-peers")]
    pub init_peers: Option<usize>,
    /// `HeadsVotesPerIP` (0 = no cap).
    #[arg(long = "sync.heads-votes-per-ip")]
    pub heads_votes_per_ip: Option<usize>,
    /// `MaxInboundStreams`: inbound connections at once.
    #[arg(long = "sync.max-inbound-streams")]
    pub max_inbound_streams: Option<usize>,
    /// `MaxOutboundStreams`: outbound connections at once.
    #[arg(long = "sync.max-outbound-streams")]
    pub max_outbound_streams: Option<usize>,
    /// `StreamsPerIP`: open inbound streams from one IP (0 = no cap).
    #[arg(long = "sync.streams-per-ip")]
    pub streams_per_ip: Option<usize>,
    /// `MaxPendingHandshakes`: inbound handshakes at once.
    #[arg(long = "sync.max-pending-handshakes")]
    pub max_pending_handshakes: Option<usize>,
    /// `HandshakesPerIP`: inbound handshakes at once from one IP (0 = no cap).
    #[arg(long = "sync.handshakes-per-ip")]
    pub handshakes_per_ip: Option<usize>,
    /// `ReadBufferBudget`: bytes all receive buffers may hold together.
    #[arg(long = "sync.read-buffer-budget", value_name = "BYTES")]
    pub read_buffer_budget: Option<usize>,
    /// `ServerWorkers`.
    #[arg(long = "sync.server-workers")]
    pub server_workers: Option<usize>,
    /// `ServerQueue`.
    #[arg(long = "sync.server-queue")]
    pub server_queue: Option<usize>,
    /// `StreamRequestRate`.
    #[arg(long = "sync.stream-request-rate")]
    pub stream_request_rate: Option<u64>,
    /// `StreamRequestBurst`.
    #[arg(long = "sync.stream-request-burst")]
    pub stream_request_burst: Option<u64>,
    /// `StreamByteRate`.
    #[arg(long = "sync.stream-byte-rate")]
    pub stream_byte_rate: Option<u64>,
    /// `StreamByteBurst`.
    #[arg(long = "sync.stream-byte-burst")]
    pub stream_byte_burst: Option<u64>,
    /// `StreamBlockRate`.
    #[arg(long = "sync.stream-block-rate")]
    pub stream_block_rate: Option<u64>,
    /// `StreamBlockBurst`.
    #[arg(long = "sync.stream-block-burst")]
    pub stream_block_burst: Option<u64>,
    /// `GlobalRequestRate`.
    #[arg(long = "sync.global-request-rate")]
    pub global_request_rate: Option<u64>,
    /// `GlobalRequestBurst`.
    #[arg(long = "sync.global-request-burst")]
    pub global_request_burst: Option<u64>,
    /// `GlobalByteRate`.
    #[arg(long = "sync.global-byte-rate")]
    pub global_byte_rate: Option<u64>,
    /// `GlobalByteBurst`.
    #[arg(long = "sync.global-byte-burst")]
    pub global_byte_burst: Option<u64>,
    /// `GlobalBlockRate`.
    #[arg(long = "sync.global-block-rate")]
    pub global_block_rate: Option<u64>,
    /// `GlobalBlockBurst`.
    #[arg(long = "sync.global-block-burst")]
    pub global_block_burst: Option<u64>,
    /// `RateLimitTolerance`.
    #[arg(long = "sync.rate-limit-tolerance")]
    pub rate_limit_tolerance: Option<u32>,
    /// `MaxAdvertiseWaitTime`, minutes.
    #[arg(long = "sync.max-advertise-wait-time")]
    pub max_advertise_wait_time: Option<u64>,
    /// `DiscSoftLowCap`.
    #[arg(long = "sync.disc.soft-low-cap")]
    pub soft_low_cap: Option<usize>,
    /// `DiscHardLowCap`.
    #[arg(long = "sync.disc.hard-low-cap")]
    pub hard_low_cap: Option<usize>,
    /// `DiscHighCap`.
    #[arg(long = "sync.disc.hi-cap")]
    pub hi_cap: Option<usize>,
    /// `DiscBatch`.
    #[arg(long = "sync.disc.batch")]
    pub disc_batch: Option<usize>,
    /// `VerifyAllSig`.
    #[arg(long = "sync.verify-all-sig")]
    pub verify_all_sig: Option<bool>,
    /// `MaxBlocksPerSyncCycle` (0 = all in one cycle).
    #[arg(long = "sync.max-blocks-per-cycle")]
    pub max_blocks_per_cycle: Option<u64>,
    /// `UseMemDB`.
    #[arg(long = "sync.use-mem-db")]
    pub use_mem_db: Option<bool>,
    /// `LogProgress`.
    #[arg(long = "sync.log-progress")]
    pub log_progress: Option<bool>,
    /// `DebugMode`.
    #[arg(long = "sync.debug-mode")]
    pub debug_mode: Option<bool>,
}

impl SyncFlags {
    /// Applies the flags to `c` and validates the result.
    pub fn apply(&self, c: &mut Config) -> Result<(), CliError> {
        let s = &mut c.sync;
        if let Some(m) = self.mode {
            if m != 0 {
                return Err(config::ConfigError::ModeUnavailable(m).into());
            }
        }
        macro_rules! set {
            ($($flag:ident => $($field:ident).+),* $(,)?) => {
                $( if let Some(v) = self.$flag { s.$($field).+ = v; } )*
            };
        }
        set!(
            enabled => enabled, downloader => client, concurrency => concurrency,
            min_peers => min_peers, init_peers => init_streams,
            heads_votes_per_ip => heads_votes_per_ip,
            max_inbound_streams => limits.max_inbound_streams,
            max_outbound_streams => limits.max_outbound_streams,
            streams_per_ip => limits.streams_per_ip,
            max_pending_handshakes => limits.max_pending_handshakes,
            handshakes_per_ip => limits.handshakes_per_ip,
            read_buffer_budget => limits.read_buffer_budget,
            server_workers => limits.server_workers,
            server_queue => limits.server_queue,
            stream_request_rate => limits.stream_request_rate,
            stream_request_burst => limits.stream_request_burst,
            stream_byte_rate => limits.stream_byte_rate,
            stream_byte_burst => limits.stream_byte_burst,
            stream_block_rate => limits.stream_block_rate,
            stream_block_burst => limits.stream_block_burst,
            global_request_rate => limits.global_request_rate,
            global_request_burst => limits.global_request_burst,
            global_byte_rate => limits.global_byte_rate,
            global_byte_burst => limits.global_byte_burst,
            global_block_rate => limits.global_block_rate,
            global_block_burst => limits.global_block_burst,
            rate_limit_tolerance => limits.rate_limit_tolerance,
            max_advertise_wait_time => max_advertise_wait_time,
            soft_low_cap => disc_soft_low_cap, hard_low_cap => disc_hard_low_cap,
            hi_cap => disc_high_cap, disc_batch => disc_batch,
            verify_all_sig => staged.verify_all_sig,
            max_blocks_per_cycle => staged.max_blocks_per_sync_cycle,
            use_mem_db => staged.use_mem_db, log_progress => staged.log_progress,
            debug_mode => staged.debug_mode,
        );
        c.validate()?;
        Ok(())
    }
}

fn peer_addr(s: &str) -> Result<PeerAddr, CliError> {
    let m: libp2p_core::Multiaddr = s
        .parse()
        .map_err(|e| format!("{s}: not a multiaddr: {e}"))?;
    match from_multiaddr(&m) {
        Some((addr, Some(peer))) => Ok(PeerAddr { peer, addr }),
        _ => Err(format!("{s}: expected /ip4/A/tcp/P/p2p/PEERID").into()),
    }
}

/// The `/status` JSON of a node.
pub fn status_json(s: &NodeStatus) -> serde_json::Value {
    serde_json::json!({
        "stage": s.sync.stage,
        "head": s.sync.head,
        "target": s.sync.target,
        "hashes_staged_to": s.sync.hashes_staged_to,
        "bodies_staged_to": s.sync.bodies_staged_to,
        "synced": s.sync.synced,
        "blocks_per_sec": s.sync.blocks_per_sec,
        "blocks_synced": s.sync.blocks_synced,
        "bytes_synced": s.sync.bytes_synced,
        "sigs_verified": s.sync.sigs_verified,
        "invalid_blocks": s.sync.invalid_blocks,
        "unwinds": s.sync.unwinds,
        "liars_proven": s.sync.liars_proven,
        "streams_serve_only": s.host.serve_only,
        "cycles": s.sync.cycles,
        "last_error": s.sync.last_error,
        "streams_active": s.host.active,
        "streams_reserved": s.host.reserved,
        "streams_in_cooldown": s.host.cooling,
        "discovery": format!("{:?}", s.host.discovery),
        "health": {
            "total_streams": s.host.health.total_streams,
            "available_streams": s.host.health.available_streams,
            "total_failures": s.host.health.total_failures,
            "average_failures": s.host.health.average_failures,
        },
    })
}

pub fn run(a: Args) -> Result<(), CliError> {
    let mut cfg = match &a.config {
        Some(p) => config::load_file(p, a.network)?,
        None => Config::for_network(a.network.unwrap_or(Network::Mainnet)),
    };
    a.sync.apply(&mut cfg)?;
    if !cfg.sync.enabled {
        return Err("Sync.Enabled is false: nothing to run".into());
    }
    let listen = {
        let m: libp2p_core::Multiaddr = a.listen.parse().map_err(|e| format!("--listen: {e}"))?;
        from_multiaddr(&m)
            .ok_or("--listen: expected /ip4/A/tcp/P")?
            .0
    };
    let spec = GenesisSpec {
        seed: a.genesis.seed,
        network: cfg.network.name().to_string(),
        shard_id: a.genesis.shard,
        epoch_len: a.genesis.epoch_len,
        committee_size: a.genesis.committee,
        accounts: a.genesis.accounts,
    };
    let opts = StoreOptions {
        durable: true,
        ..StoreOptions::default()
    };
    let store = if a.dir.datadir.join("data.mdb").exists() {
        let s = Store::open(&a.dir.datadir, opts)?;
        if s.chain_spec().network != cfg.network {
            return Err(format!(
                "{} holds a {} chain, but the node runs {}",
                a.dir.datadir.display(),
                s.chain_spec().network,
                cfg.network
            )
            .into());
        }
        s
    } else {
        Store::open_or_create(&a.dir.datadir, &spec.build()?, opts)?
    };
    let store = Arc::new(store);
    let identity = NodeIdentity::load_or_create(&a.dir.datadir.join("identity.key"))?;
    let mut ncfg = NodeConfig::new(cfg.clone(), listen);
    ncfg.shard = store.chain_spec().shard_id;
    ncfg.boot = a
        .boot
        .iter()
        .map(|s| peer_addr(s))
        .collect::<Result<_, _>>()?;
    ncfg.trusted = a
        .trusted
        .iter()
        .map(|s| peer_addr(s))
        .collect::<Result<_, _>>()?;
    ncfg.exit_when_synced = a.exit_when_synced;
    let mut host =
        streamsync::runtime::HostConfig::from_config(&cfg, listen, store.chain_spec().shard_id);
    host.net.link = a.link.profile();
    host.peers_file = Some(
        a.dir
            .datadir
            .join(streamsync::runtime::known_peers::FILE_NAME),
    );
    ncfg.host = Some(host);
    let topic = ProtocolId::sync(cfg.network, ncfg.shard).to_string();
    let metrics_handle = match a.metrics {
        Some(_) => Some(streamsync::metrics::install_global(&topic)?),
        None => None,
    };
    // Handlers first: a signal at any point after "listening" stops
    // cleanly; a second one exits at once.
    let stop = StopSignal::install()?;
    let started = Instant::now();
    let start_head = store.head()?.number;
    let node = Arc::new(Node::start(
        ncfg,
        store.clone(),
        identity.clone(),
        Some(store.clone()),
    )?);
    println!(
        "listening {}",
        to_multiaddr(node.host().net().local_addr(), Some(identity.peer_id()))
    );
    let mut metrics_server = match (a.metrics, metrics_handle) {
        (Some(addr), Some(h)) => {
            let n = node.clone();
            let status: streamsync::metrics::server::StatusFn =
                Arc::new(move || status_json(&n.status()).to_string());
            let s = MetricsServer::start(addr, h, Some(status))?;
            println!(
                "metrics http://{}/metrics status http://{}/status",
                s.addr(),
                s.addr()
            );
            Some(s)
        }
        _ => None,
    };
    let client = cfg.sync.client;
    // Until a signal, or the sync thread ends (synced with
    // --exit-when-synced, or failed); a server-only node asked to exit
    // when synced has nothing to wait for.
    let done = || (client && node.sync_finished()) || (a.exit_when_synced && !client);
    while stop.received().is_none() && !done() {
        std::thread::park_timeout(Duration::from_millis(100));
    }
    let status = node.status();
    let cpu = cpu_seconds();
    if let Some(m) = metrics_server.as_mut() {
        m.shutdown();
    }
    drop(metrics_server);
    let outcome = match Arc::try_unwrap(node) {
        Ok(n) => n.shutdown(),
        Err(n) => n.sync_outcome(),
    };
    match outcome {
        Some(SyncOutcome::Failed(why)) => return Err(format!("sync failed: {why}").into()),
        Some(SyncOutcome::Synced { .. }) => {}
        // Stopped first (or still running when the process must end):
        // not synced, whatever the report would say.
        _ if a.exit_when_synced && client => {
            let target = status.sync.target;
            return Err(format!(
                "stopped before synced: head {}, target {}",
                store.head()?.number,
                if target > 0 {
                    target.to_string()
                } else {
                    "not decided yet".into()
                }
            )
            .into());
        }
        _ => {}
    }
    if a.exit_when_synced {
        let head = store.head()?;
        let secs = started.elapsed().as_secs_f64();
        let blocks = head.number - start_head;
        let per_block = |x: f64| (blocks > 0).then(|| x / blocks as f64);
        let report = serde_json::json!({
            "head": head.number,
            "head_hash": to_hex(&head.hash),
            "blocks": blocks,
            "seconds": secs,
            "blocks_per_sec": blocks as f64 / secs.max(1e-9),
            "mb_per_sec": status.sync.bytes_synced as f64 / 1e6 / secs.max(1e-9),
            "sigs_verified": status.sync.sigs_verified,
            "invalid_blocks": status.sync.invalid_blocks,
            "unwinds": status.sync.unwinds,
            "liars_proven": status.sync.liars_proven,
            "restored_hashes": status.sync.restored_hashes,
            "restored_blocks": status.sync.restored_blocks,
            "blocks_requested": status.sync.blocks_requested,
            "hedges": status.sync.hedges,
            "budget_peak_mb": status.sync.budget_peak as f64 / (1 << 20) as f64,
            "streams_used": status.host.streams_used,
            "streams_removed": status.host.streams_removed,
            "peak_rss_mb": peak_rss_mb(),
            "bytes_synced": status.sync.bytes_synced,
            "block_bytes_avg": per_block(status.sync.bytes_synced as f64),
            "cpu_seconds": cpu,
            "cpu_us_per_block": per_block(cpu * 1e6),
            "time_to_first_block_s": status.sync.first_commit_ms.map(|ms| ms as f64 / 1e3),
            "steady_blocks_per_sec": status.sync.steady_blocks_per_sec(),
            "link": a.link.json(),
        });
        if a.json {
            println!("{report}");
        } else {
            println!(
                "synced to {} {} in {secs:.1} s",
                head.number,
                to_hex(&head.hash)
            );
        }
    }
    Ok(())
}
