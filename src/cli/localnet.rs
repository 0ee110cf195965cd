//! `streamsync localnet`, the main job (DESIGN.md §12): generate a chain,
//! start serving peers on loopback (some byzantine if asked: `--byzantine`,
//! `--behaviours` and `--flood` exist in a build with the `testkit`
//! feature), start a fresh node as a child process that finds them (boot
//! peer + peer exchange) and full-syncs, show its progress, and report.
//!
//! Stopped by SIGINT/SIGTERM, it stops the syncing node (SIGTERM, then
//! SIGKILL after [`CHILD_STOP_DEADLINE`]) and the serving peers (threads of
//! this process), removes the work directory unless `--keep DIR` named it,
//! and exits with 128 + the signal. A second signal exits at once; the
//! child then gets SIGTERM from the kernel (Linux: `PR_SET_PDEATHSIG`).
//! The child runs in its own process group, so a Ctrl-C reaches only us.

use std::io::{BufRead, BufReader, IsTerminal};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
#[cfg(feature = "testkit")]
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
#[cfg(feature = "testkit")]
use streamsync::byzantine::flood::Flood;
#[cfg(feature = "testkit")]
use streamsync::byzantine::{Behaviour, ByzantineBackend};
use streamsync::chain::backend::InsertBatch;
use streamsync::chain::generator::{txs_for_block_size, Generator};
use streamsync::chain::{ChainBackend, GenesisSpec};
use streamsync::config::{Config, Network};
use streamsync::crypto::hash::to_hex;
use streamsync::crypto::NodeIdentity;
use streamsync::net::to_multiaddr;
use streamsync::node::{Node, NodeConfig, SHUTDOWN_DEADLINE};
use streamsync::runtime::HostConfig;
use streamsync::store::{Store, StoreOptions};
use streamsync::stream::PeerAddr;
#[cfg(feature = "testkit")]
use streamsync::wire::ProtocolId;

use super::localnet_plot;
use super::signals::StopSignal;
use super::status::http_get_json;
use super::{CliError, LinkArgs};

/// Blocks per generated insert batch.
const GEN_BATCH: usize = 1024;

/// How long the syncing node gets to exit after SIGTERM before it is
/// killed: its own shutdown deadline plus 5 s to write its report and exit.
const CHILD_STOP_DEADLINE: Duration = SHUTDOWN_DEADLINE.saturating_add(Duration::from_secs(5));

/// The syncing node's process. Dropping it stops it (SIGTERM, then SIGKILL
/// after [`CHILD_STOP_DEADLINE`]) and reaps it, so no way out of
/// [`run_in`] leaves it running.
struct ChildNode(Child);

impl ChildNode {
    /// Asks the node to stop (SIGTERM) unless it has exited, waits for it
    /// at most [`CHILD_STOP_DEADLINE`], then kills it; returns how it ended.
    fn stop(&mut self) -> std::io::Result<ExitStatus> {
        if let Some(st) = self.0.try_wait()? {
            return Ok(st);
        }
        if let Ok(pid) = libc::pid_t::try_from(self.0.id()) {
            // SAFETY: `kill(2)` with a plain pid and signal number. The pid
            // is our child's, not reaped yet (`try_wait` just found it
            // running), so it cannot have been reused.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + CHILD_STOP_DEADLINE;
        loop {
            if let Some(st) = self.0.try_wait()? {
                return Ok(st);
            }
            if Instant::now() >= deadline {
                tracing::warn!(
                    pid = self.0.id(),
                    deadline_s = CHILD_STOP_DEADLINE.as_secs_f64(),
                    "the syncing node did not exit after SIGTERM: killing it"
                );
                self.0.kill()?;
                return self.0.wait();
            }
            std::thread::park_timeout(Duration::from_millis(20));
        }
    }
}

impl Drop for ChildNode {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!(error = %e, "cannot stop the syncing node");
        }
    }
}

/// Makes the child this process' alone to stop: in its own process group,
/// so a Ctrl-C at the terminal reaches only us and the child gets one
/// SIGTERM from us (a second signal would make it exit without its
/// graceful stop), and, on Linux, sent SIGTERM by the kernel when this
/// process ends, however it ends (a second signal, SIGKILL, a crash).
fn tie_to_parent(cmd: &mut Command) {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        let parent = libc::pid_t::try_from(std::process::id()).unwrap_or(0);
        // SAFETY: the closure runs in the forked child before exec and
        // only calls `prctl` and `getppid`, both async-signal-safe, and
        // builds its errors from OS error numbers, without allocating.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // We may have died before the line above took effect.
                if libc::getppid() != parent {
                    return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
    }
}

/// Shuts the serving peers down in parallel, each within its own
/// [`SHUTDOWN_DEADLINE`].
fn stop_peers(peers: Vec<Node>) {
    std::thread::scope(|s| {
        for p in peers {
            s.spawn(move || p.shutdown());
        }
    });
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Blocks in the chain.
    #[arg(long, default_value_t = 10_000)]
    blocks: u64,
    /// Serving peers.
    #[arg(long, default_value_t = 4)]
    peers: usize,
    /// How many of the peers serve corrupted data (wrong bodies, bad
    /// signatures, lying heights, garbage, silence, forged fork, fake
    /// hashes, broken links, in turn).
    #[cfg(feature = "testkit")]
    #[arg(long, default_value_t = 0)]
    byzantine: usize,
    /// Behaviours of the byzantine peers instead, comma-separated (e.g.
    /// `forged-fork` or `fake-hashes,broken-links`); one peer each.
    #[cfg(feature = "testkit")]
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    behaviours: Vec<Behaviour>,
    /// Serve the syncing node's `/metrics` and `/status` here.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
    /// Print the report as one JSON line.
    #[arg(long)]
    json: bool,
    /// Verify every block's commit signature (`VerifyAllSig`).
    #[arg(long)]
    verify_all_sig: bool,
    /// `MaxBlocksPerSyncCycle` of the syncing node (0 = all in one cycle).
    #[arg(long)]
    max_blocks_per_cycle: Option<u64>,
    /// Seed of the chain.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Committee members per epoch.
    #[arg(long, default_value_t = 64)]
    committee: u32,
    /// Blocks per epoch.
    #[arg(long = "epoch-len", default_value_t = 1000)]
    epoch_len: u64,
    /// Transfers per block (4 make blocks of ~560 bytes).
    #[arg(long, default_value_t = 4)]
    txs: u32,
    /// Approximate average size of a generated block, bytes, as sent (block
    /// and commit signature encoded): picks the transfers per block (about
    /// 47 bytes each), e.g. 2048 or 20480. Not with `--txs`.
    #[arg(long, value_name = "BYTES", conflicts_with = "txs")]
    block_size: Option<usize>,
    /// Junk connections (silent, slowloris, partial frame, in equal parts)
    /// kept up against the serving peers during the sync. The run then
    /// syncs twice, side by side: undisturbed first, then under the flood,
    /// and reports both rates.
    #[cfg(feature = "testkit")]
    #[arg(long, value_name = "N", default_value_t = 0)]
    flood: usize,
    /// Keep the work files (chain, logs) in this directory; without it they
    /// go to a temporary directory removed at the end, also when stopped
    /// by SIGINT/SIGTERM.
    #[arg(long, value_name = "DIR")]
    keep: Option<PathBuf>,
    /// The WAN link of every node: the serving peers and the syncing node.
    #[command(flatten)]
    link: LinkArgs,
    /// Draw the run into this SVG file: blocks over time per stage, and
    /// each serving peer's share of the blocks served.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
}

/// Time the serving peers get to take a flood's opening burst.
#[cfg(feature = "testkit")]
const FLOOD_SETTLE: Duration = Duration::from_secs(3);

fn bar(len: u64, template: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(len);
    if let Some(s) = super::bar_style(template) {
        b.set_style(s);
    }
    b
}

fn free_port() -> Result<SocketAddr, CliError> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// Commit signatures of up to 512 blocks of `store`, verified in parallel
/// batches on rayon as States does; returns signatures per second (best of
/// three runs).
fn isolated_verify_rate(store: &Store) -> Result<f64, CliError> {
    use streamsync::chain::verify::{sig_job, CommitteeKeys};
    let head = store.head()?.number;
    let from = head.saturating_sub(511).max(1);
    let spec = store.chain_spec().clone();
    let mut keys = std::collections::HashMap::new();
    let mut jobs = Vec::new();
    for n in from..=head {
        let Some(b) = store.block_with_sig(n)? else {
            continue;
        };
        let e = spec.epoch_of(n);
        if let std::collections::hash_map::Entry::Vacant(v) = keys.entry(e) {
            let c = store.committee(e)?.ok_or("committee missing")?;
            v.insert(CommitteeKeys::new(e, &c, n)?);
        }
        let h = &b.block.header;
        jobs.push(sig_job(n, &h.hash(), h.view_id, &b.commit_sig, &keys[&e])?);
    }
    if jobs.is_empty() {
        return Ok(0.0);
    }
    let mut best = 0.0f64;
    for _ in 0..3 {
        let t = Instant::now();
        let bad = streamsync::crypto::verify_batch(&jobs);
        if !bad.is_empty() {
            return Err("generated chain has invalid signatures".into());
        }
        best = best.max(jobs.len() as f64 / t.elapsed().as_secs_f64());
    }
    Ok(best)
}

impl Args {
    /// Serving peers that misbehave (the last ones): none without the
    /// `testkit` feature.
    fn byzantine_count(&self) -> usize {
        #[cfg(feature = "testkit")]
        return self.byzantine;
        #[cfg(not(feature = "testkit"))]
        0
    }

    /// Junk connections against the serving peers: none without the
    /// `testkit` feature.
    fn flood_count(&self) -> usize {
        #[cfg(feature = "testkit")]
        return self.flood;
        #[cfg(not(feature = "testkit"))]
        0
    }

    /// The byzantine peers' behaviours by name, for the report.
    fn behaviour_names(&self) -> Vec<&'static str> {
        #[cfg(feature = "testkit")]
        return self.behaviours.iter().map(|b| b.name()).collect();
        #[cfg(not(feature = "testkit"))]
        Vec::new()
    }

    /// `--byzantine` and `--behaviours` agreed: one behaviour per byzantine
    /// peer, `--byzantine N` handing out `Behaviour::ALL` in turn.
    #[cfg(feature = "testkit")]
    fn settle_behaviours(mut self) -> Result<Args, CliError> {
        if !self.behaviours.is_empty() {
            if self.byzantine != 0 && self.byzantine != self.behaviours.len() {
                return Err(format!(
                    "--byzantine {} but --behaviours names {}",
                    self.byzantine,
                    self.behaviours.len()
                )
                .into());
            }
            self.byzantine = self.behaviours.len();
        } else {
            self.behaviours = (0..self.byzantine)
                .map(|i| Behaviour::ALL[i % Behaviour::ALL.len()])
                .collect();
        }
        if self.peers == 0 || self.byzantine >= self.peers {
            return Err(format!(
                "--byzantine {} needs at least one honest peer of --peers {}",
                self.byzantine, self.peers
            )
            .into());
        }
        Ok(self)
    }
}

/// What serving peer `i` serves and how its label names it: the last
/// `--byzantine` peers serve `source` corrupted (and a silent one answers
/// nothing), the others `source` as it is. The name is the behaviour's
/// (`Debug`, command-line name) for a byzantine peer.
#[cfg(feature = "testkit")]
fn peer_backend(
    a: &Args,
    i: usize,
    source: &Arc<Store>,
    host: &mut HostConfig,
) -> (Arc<dyn ChainBackend>, Option<(String, &'static str)>) {
    let first_byzantine = a.peers - a.byzantine;
    if i < first_byzantine {
        return (source.clone(), None);
    }
    let b = a.behaviours[i - first_byzantine];
    host.server.answer = b != Behaviour::Silence;
    let backend = Arc::new(ByzantineBackend::new(source.clone(), b));
    (backend, Some((format!("{b:?}"), b.name())))
}

/// Without the `testkit` feature every serving peer is honest.
#[cfg(not(feature = "testkit"))]
fn peer_backend(
    _: &Args,
    _: usize,
    source: &Arc<Store>,
    _: &mut HostConfig,
) -> (Arc<dyn ChainBackend>, Option<(String, &'static str)>) {
    (source.clone(), None)
}

/// `--flood N`: N junk connections against the serving `peers`, started
/// once their opening burst is taken; `None` without `--flood`.
#[cfg(feature = "testkit")]
fn start_flood(a: &Args, peers: &[Node], say: impl Fn(String)) -> Option<Flood> {
    (a.flood > 0).then(|| {
        let targets: Vec<SocketAddr> = peers.iter().map(|p| p.peer_addr().addr).collect();
        let f = Flood::start(&targets, a.flood, ProtocolId::sync(Network::Localnet, 0));
        // The peers take the opening burst (handshakes, megabytes of
        // partial frames to decrypt) before the sync starts: what is
        // measured is a sync while the junk is held, not the burst.
        std::thread::park_timeout(FLOOD_SETTLE);
        say(format!(
            "flood: {} junk connections up ({} handshaken) against {} peers",
            f.stats.opened.load(Ordering::Relaxed),
            f.stats.handshakes.load(Ordering::Relaxed),
            targets.len()
        ));
        f
    })
}

/// The flood's counters for the report; stops the flood.
#[cfg(feature = "testkit")]
fn stop_flood(a: &Args, f: Flood) -> serde_json::Value {
    serde_json::json!({
        "connections": a.flood,
        "opened": f.stats.opened.load(Ordering::Relaxed),
        "handshakes": f.stats.handshakes.load(Ordering::Relaxed),
        "closed_by_target": f.stats.closed_by_target.load(Ordering::Relaxed),
    })
}

pub fn run(a: Args) -> Result<(), CliError> {
    // Before anything is created: from here on a signal cleans up.
    let stop = StopSignal::install()?;
    #[cfg(feature = "testkit")]
    let a = a.settle_behaviours()?;
    #[cfg(not(feature = "testkit"))]
    if a.peers == 0 {
        return Err("--peers 0: localnet needs a serving peer".into());
    }
    let work = match &a.keep {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("streamsync-localnet-{}", std::process::id())),
    };
    if work.exists() {
        std::fs::remove_dir_all(&work)?;
    }
    std::fs::create_dir_all(&work)?;
    let result = run_in(&a, &work, &stop);
    if a.keep.is_none() {
        if let Err(e) = std::fs::remove_dir_all(&work) {
            tracing::warn!(dir = %work.display(), error = %e, "cannot remove the work directory");
        }
    }
    // A signal that arrived while the work was ending still says why.
    match (result, stop.interrupted()) {
        (Err(_), Some(i)) => Err(i.into()),
        (r, _) => r,
    }
}

fn run_in(a: &Args, work: &std::path::Path, stop: &StopSignal) -> Result<(), CliError> {
    let interrupted = || stop.interrupted().map_or(Ok(()), Err);
    let say = |m: String| {
        if !a.json {
            eprintln!("{m}");
        }
    };
    // 1. The chain.
    let spec = GenesisSpec {
        seed: a.seed,
        network: Network::Localnet.name().into(),
        shard_id: 0,
        epoch_len: a.epoch_len,
        committee_size: a.committee,
        accounts: 256,
    };
    let txs = match a.block_size {
        Some(bytes) => {
            let n = txs_for_block_size(&spec, bytes).map_err(|e| format!("--block-size: {e}"))?;
            say(format!("--block-size {bytes}: {n} transfers per block"));
            n
        }
        None => a.txs,
    };
    let (mut gen, genesis) = Generator::new(spec.clone(), txs)?;
    let opts = StoreOptions {
        durable: false,
        ..StoreOptions::default()
    };
    let source = Arc::new(Store::open_or_create(&work.join("source"), &genesis, opts)?);
    let t0 = Instant::now();
    let gbar = bar(
        a.blocks,
        "{spinner} generating [{bar:40}] {pos}/{len} blocks {rate}",
    );
    let mut left = a.blocks;
    while left > 0 {
        interrupted()?;
        let n = left.min(GEN_BATCH as u64) as usize;
        let blocks = (0..n)
            .map(|_| gen.next_block())
            .collect::<Result<Vec<_>, _>>()?;
        source.insert_batch(&InsertBatch::seal(blocks, vec![]))?;
        left -= n as u64;
        gbar.set_position(a.blocks - left);
    }
    gbar.finish_and_clear();
    let source_head = source.head()?;
    say(format!(
        "generated {} blocks in {:.1} s; head {}",
        a.blocks,
        t0.elapsed().as_secs_f64(),
        to_hex(&source_head.hash)
    ));

    interrupted()?;
    let isolated = isolated_verify_rate(&source)?;
    say(format!(
        "isolated batch verification: {isolated:.0} signatures/s on {} threads",
        rayon::current_num_threads()
    ));

    say(format!("every link: {}", a.link.describe()));

    // 2. Serving peers; the byzantine ones are the last ones, peer 0 (the
    // boot peer) is honest.
    let mut peers: Vec<Node> = Vec::new();
    let mut labels: Vec<String> = Vec::new();
    let mut boot = None;
    for i in 0..a.peers {
        let config = Config::for_network(Network::Localnet);
        let listen: SocketAddr = "127.0.0.1:0".parse()?;
        let mut host = HostConfig::from_config(&config, listen, 0);
        let (backend, byz) = peer_backend(a, i, &source, &mut host);
        host.net.link = a.link.profile();
        let mut cfg = NodeConfig::new(config, listen);
        cfg.boot = boot.into_iter().collect();
        cfg.host = Some(host);
        let node = Node::start(cfg, backend, NodeIdentity::generate(), None)?;
        if i == 0 {
            boot = Some(node.peer_addr());
        }
        say(format!(
            "peer {i}: {}{}",
            to_multiaddr(node.peer_addr().addr, Some(node.peer_addr().peer)),
            byz.as_ref()
                .map(|(b, _)| format!(" (byzantine: {b})"))
                .unwrap_or_default()
        ));
        peers.push(node);
        labels.push(match byz {
            Some((_, name)) => format!("peer {i} ({name})"),
            None => format!("peer {i}"),
        });
    }
    let boot = boot.ok_or("no boot peer")?;
    if let Some(i) = stop.interrupted() {
        stop_peers(peers);
        return Err(i.into());
    }

    // 3. The syncing node, a child process (its own memory, its own report).
    // Heads needs MinPeers answering peers; the byzantine ones end up
    // removed, so no more than the honest ones.
    let min_peers = Config::for_network(Network::Localnet)
        .sync
        .min_peers
        .min(a.peers - a.byzantine_count())
        .max(1);
    let r0 = if a.flood_count() > 0 {
        // Side by side in one run: the same sync undisturbed, then under
        // the flood.
        say("syncing once undisturbed, for the reference".into());
        match sync_once(
            a,
            work,
            "sync-calm",
            &boot,
            min_peers,
            source_head.number,
            stop,
            &mut Vec::new(),
        ) {
            Ok(r) => Some(r),
            Err(e) => {
                stop_peers(peers);
                return Err(e);
            }
        }
    } else {
        None
    };
    #[cfg(feature = "testkit")]
    let flood = start_flood(a, &peers, say);
    let served_before: Vec<u64> = peers.iter().map(|p| p.blocks_served()).collect();
    let mut samples = Vec::new();
    let outcome = sync_once(
        a,
        work,
        "sync",
        &boot,
        min_peers,
        source_head.number,
        stop,
        &mut samples,
    );
    // What each peer served to this sync (not to the reference run).
    let served: Vec<localnet_plot::Served> = peers
        .iter()
        .zip(&labels)
        .zip(&served_before)
        .map(|((p, label), before)| localnet_plot::Served {
            label: label.clone(),
            blocks: p.blocks_served().saturating_sub(*before),
        })
        .collect();
    #[cfg(feature = "testkit")]
    let flood_stats = flood.map(|f| stop_flood(a, f));
    #[cfg(not(feature = "testkit"))]
    let flood_stats: Option<serde_json::Value> = None;
    stop_peers(peers);
    let r = outcome?;
    let head_hash = r["head_hash"].as_str().unwrap_or_default().to_string();
    let head_match = head_hash == to_hex(&source_head.hash);
    let report = serde_json::json!({
        "blocks": r["blocks"],
        "seconds": r["seconds"],
        "blocks_per_sec": r["blocks_per_sec"],
        "mb_per_sec": r["mb_per_sec"],
        "head": r["head"],
        "head_hash": head_hash,
        "head_match": head_match,
        "peers": a.peers,
        "byzantine": a.byzantine_count(),
        "behaviours": a.behaviour_names(),
        "unwinds": r["unwinds"],
        "streams_used": r["streams_used"],
        "streams_removed": r["streams_removed"],
        "sigs_verified": r["sigs_verified"],
        "invalid_blocks": r["invalid_blocks"],
        "verify_all_sig": a.verify_all_sig,
        "isolated_verify_sigs_per_sec": isolated,
        "peak_rss_mb": r["peak_rss_mb"],
        "cpu_seconds": r["cpu_seconds"],
        "cpu_us_per_block": r["cpu_us_per_block"],
        "time_to_first_block_s": r["time_to_first_block_s"],
        "steady_blocks_per_sec": r["steady_blocks_per_sec"],
        "block_bytes_avg": r["block_bytes_avg"],
        "txs_per_block": txs,
        "link": a.link.json(),
        "flood": flood_stats,
        "undisturbed_steady_blocks_per_sec": r0.as_ref().map(|r| r["steady_blocks_per_sec"].clone()),
        "undisturbed_time_to_first_block_s": r0.as_ref().map(|r| r["time_to_first_block_s"].clone()),
    });
    if a.json {
        println!("{report}");
    } else {
        println!(
            "synced {} blocks in {:.2} s: {:.0} blocks/s, {:.1} MB/s; streams used {}, removed {}; {} signatures verified; peak RSS {:.0} MiB",
            r["blocks"], r["seconds"].as_f64().unwrap_or(0.0), r["blocks_per_sec"].as_f64().unwrap_or(0.0),
            r["mb_per_sec"].as_f64().unwrap_or(0.0), r["streams_used"], r["streams_removed"], r["sigs_verified"],
            r["peak_rss_mb"].as_f64().unwrap_or(0.0)
        );
        let steady = match r["steady_blocks_per_sec"].as_f64().unwrap_or(0.0) {
            s if s > 0.0 => format!("then {s:.0} blocks/s steady"),
            _ => "no steady rate (one commit)".into(),
        };
        println!(
            "CPU {:.2} s ({:.0} µs/block); first block after {:.2} s, {steady}; blocks {:.0} bytes on average ({txs} transfers)",
            r["cpu_seconds"].as_f64().unwrap_or(0.0),
            r["cpu_us_per_block"].as_f64().unwrap_or(0.0),
            r["time_to_first_block_s"].as_f64().unwrap_or(0.0),
            r["block_bytes_avg"].as_f64().unwrap_or(0.0),
        );
        println!("link: {}", a.link.describe());
        if let (Some(r0), Some(f)) = (&r0, &flood_stats) {
            let calm = r0["steady_blocks_per_sec"].as_f64().unwrap_or(0.0);
            let under = r["steady_blocks_per_sec"].as_f64().unwrap_or(0.0);
            println!(
                "under a flood of {} junk connections: {under:.0} blocks/s steady, {:.0} % of the undisturbed {calm:.0} blocks/s",
                f["connections"],
                if calm > 0.0 { 100.0 * under / calm } else { 0.0 }
            );
        }
        println!(
            "head {} {} — matches the source: {}",
            r["head"],
            head_hash,
            if head_match { "yes" } else { "NO" }
        );
    }
    if let Some(path) = &a.plot {
        localnet_plot::draw(&samples, &served, path)?;
        say(format!("picture: {}", path.display()));
    }
    if !head_match {
        return Err("synced head differs from the source".into());
    }
    Ok(())
}

/// Runs one syncing node (a child process, its own memory and report) in
/// `work/name` until it is synced, and returns its `--json` report. On a
/// stop signal the child is stopped and the interruption returned.
#[allow(clippy::too_many_arguments)]
fn sync_once(
    a: &Args,
    work: &std::path::Path,
    name: &str,
    boot: &PeerAddr,
    min_peers: usize,
    target: u64,
    stop: &StopSignal,
    samples: &mut Vec<localnet_plot::Sample>,
) -> Result<serde_json::Value, CliError> {
    let status_addr = match a.metrics {
        Some(m) => m,
        None => free_port()?,
    };
    let exe = std::env::current_exe()?;
    let log = std::fs::File::create(work.join(format!("{name}.log")))?;
    let mut cmd = Command::new(exe);
    cmd.arg("node")
        .arg("--datadir")
        .arg(work.join(name))
        .args(["--network", "localnet"])
        .args(["--boot", &boot.to_string()])
        .args(["--sync.downloader", "true"])
        .args(["--sync.init-peers", &a.peers.to_string()])
        .args(["--sync.min-peers", &min_peers.to_string()])
        .args([
            "--sync.staged.verify-all-sig",
            &a.verify_all_sig.to_string(),
        ])
        .args(["--metrics", &status_addr.to_string()])
        .args(["--genesis-seed", &a.seed.to_string()])
        .args(["--committee", &a.committee.to_string()])
        .args(["--epoch-len", &a.epoch_len.to_string()])
        .args(a.link.to_args())
        .args(["--exit-when-synced", "--json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log));
    tie_to_parent(&mut cmd);
    if let Some(m) = a.max_blocks_per_cycle {
        cmd.args(["--sync.staged.max-blocks-per-sync-cycle", &m.to_string()]);
    }
    let mut child = ChildNode(cmd.spawn()?);
    let pbar = bar(target, "{spinner} {msg} [{bar:30}] {pos}/{len}");
    let started = Instant::now();
    let exit = loop {
        if let Some(st) = child.0.try_wait()? {
            break st;
        }
        if let Some(i) = stop.interrupted() {
            pbar.finish_and_clear();
            let st = child.stop()?;
            tracing::info!(status = %st, "stopped the syncing node");
            return Err(i.into());
        }
        if let Some(s) = http_get_json(status_addr, "/status") {
            samples.push(localnet_plot::Sample {
                t: started.elapsed().as_secs_f64(),
                hashes: s["hashes_staged_to"].as_u64().unwrap_or(0),
                bodies: s["bodies_staged_to"].as_u64().unwrap_or(0),
                head: s["head"].as_u64().unwrap_or(0),
            });
            pbar.set_position(s["head"].as_u64().unwrap_or(0));
            pbar.set_message(format!(
                "{:<11} {:>8.0} blocks/s  streams {}",
                s["stage"].as_str().unwrap_or("idle"),
                s["blocks_per_sec"].as_f64().unwrap_or(0.0),
                s["stream_count"].as_u64().unwrap_or(0)
            ));
        }
        if started.elapsed() > Duration::from_secs(3600) {
            return Err("sync did not finish within an hour".into());
        }
        // Finer samples for the picture.
        let poll = if a.plot.is_some() { 25 } else { 200 };
        std::thread::park_timeout(Duration::from_millis(poll));
    };
    let ended = started.elapsed().as_secs_f64();
    pbar.finish_and_clear();
    let mut last = String::new();
    if let Some(out) = child.0.stdout.take() {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            last = line;
        }
    }
    if !exit.success() {
        return Err(
            format!("syncing node failed ({exit}); see its log in --keep DIR/{name}.log").into(),
        );
    }
    let report: serde_json::Value = serde_json::from_str(&last)
        .map_err(|e| -> CliError { format!("syncing node report: {e}: {last}").into() })?;
    if let Some(head) = report["head"].as_u64() {
        // The node has left: its last state is its report's.
        samples.push(localnet_plot::Sample {
            t: ended,
            hashes: head,
            bodies: head,
            head,
        });
    }
    Ok(report)
}
