//! `streamsync node`: run a node (server always; the sync client when
//! `Client` / `--sync.downloader` is on).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use streamsync::chain::{ChainBackend, GenesisSpec};
use streamsync::crypto::hash::to_hex;
use streamsync::crypto::NodeIdentity;
use streamsync::metrics::MetricsServer;
use streamsync::net::from_multiaddr;
use streamsync::node::{Node, NodeConfig};
use streamsync::store::{LmdbStaging, Store, StoreOptions};
use streamsync::stream::PeerAddr;
use streamsync::sync::SyncOutcome;
use streamsync::wire::ProtocolId;

use super::config_flags::ConfigArgs;
use super::signals::StopSignal;
use super::status::status_json;
use super::{cpu_seconds, peak_rss_mb, CliError, LinkArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The node's data directory (an LMDB environment); not needed with
    /// `--print-config`.
    #[arg(long, value_name = "DIR", required_unless_present = "print_config")]
    datadir: Option<PathBuf>,
    /// Print the effective configuration (TOML, as `dump-config` does) and
    /// exit without starting anything.
    #[arg(long)]
    print_config: bool,
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
    /// Network, file and `--sync.*` flags: the effective configuration.
    /// Last, as its help headings hold for the arguments after it.
    #[command(flatten)]
    cfg: ConfigArgs,
}

/// The genesis of a new datadir (ignored when the datadir has a chain).
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Genesis of a new datadir")]
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

fn peer_addr(s: &str) -> Result<PeerAddr, CliError> {
    Ok(s.parse::<PeerAddr>()?)
}

pub fn run(a: Args) -> Result<(), CliError> {
    let cfg = a.cfg.effective()?;
    if a.print_config {
        print!("{}", cfg.to_toml());
        return Ok(());
    }
    let Some(datadir) = a.datadir.clone() else {
        return Err("--datadir is required to run a node".into());
    };
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
    let store = if datadir.join("data.mdb").exists() {
        let s = Store::open(&datadir, opts)?;
        if s.chain_spec().network != cfg.network {
            return Err(format!(
                "{} holds a {} chain, but the node runs {}",
                datadir.display(),
                s.chain_spec().network,
                cfg.network
            )
            .into());
        }
        s
    } else {
        Store::open_or_create(&datadir, &spec.build()?, opts)?
    };
    let store = Arc::new(store);
    let identity = NodeIdentity::load_or_create(&datadir.join("identity.key"))?;
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
    host.peers_file = Some(datadir.join(streamsync::runtime::known_peers::FILE_NAME));
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
        Some(LmdbStaging::new(store.clone())),
    )?);
    println!("listening {}", node.peer_addr());
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
