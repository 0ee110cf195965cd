//! A small simulated network (`testkit::Sim`) built and scripted from the
//! fuzzer's bytes (issue 11, item 4). Safety only, never liveness: no
//! honest node may store a block that is not the source chain's, whatever
//! the mix of honest servers, syncers, byzantine nodes of every kind,
//! links, crashes, restarts, partitions and tip growth. A violation
//! panics (libFuzzer's crash signal) with the decoded plan.
//!
//! Input layout (bytes past the end read as 0; every value is clamped):
//!
//! | bytes | meaning |
//! | --- | --- |
//! | 8 | sim seed (u64 LE) |
//! | 1 | honest servers: 2 + b % 5 |
//! | 1 | byzantine nodes: b % 5 |
//! | 2 per byzantine | kind: `Byzantine::all()[b % 10]`; sybil (shared IP): second byte & 1 |
//! | 1 | honest syncers: 1 + b % 3 |
//! | 2 per syncer | join delay: b % 61 s; exits once synced: second byte & 1 |
//! | 2 | boot list: u16 LE mask over node indices (servers, byzantine, syncers); empty → server 0 |
//! | 1 | `MinPeers`: 1 + b % 3 |
//! | 1 | latency: 1 + b ms (1–256) |
//! | 1 | jitter: b % (latency + 1) ms |
//! | 1 | loss: b / 255 × 0.3 |
//! | 1 | bandwidth: 0 → unlimited, else b % 100 + 1 Mbit/s |
//! | 2 | tip growth from the start: blocks b % (TIP + 1), one every 1 + b % 10 s |
//! | 1 | virtual time limit: 60 + 2 × b s (60–570) |
//! | 1 | script events: b % 9 |
//! | 4 per event | after b s (0–255) from the previous event; op b % 5 (crash, restart, partition, heal, grow); two argument bytes |
#![no_main]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use streamsync::chain::backend::InsertBatch;
use streamsync::chain::generator::Generator;
use streamsync::chain::{BlockWithSig, ChainBackend, Genesis, GenesisSpec};
use streamsync::config::Network;
use streamsync::crypto::hash::to_hex;
use streamsync::crypto::B256;
use streamsync::testkit::{Byzantine, LinkConfig, MemChain, Sim, SimConfig};

/// Blocks of the source chain when a run starts.
const BASE: usize = 400;
/// Blocks the tip can grow by during a run.
const TIP: usize = 100;
/// Blocks per epoch: the base crosses three epoch boundaries.
const EPOCH_LEN: u64 = 100;

/// The chain every run starts from, generated (and signed) once per process.
struct Fixture {
    genesis: Genesis,
    base: Vec<BlockWithSig>,
    tip: Vec<BlockWithSig>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let spec = GenesisSpec {
            seed: 11,
            network: "localnet".into(),
            shard_id: 0,
            epoch_len: EPOCH_LEN,
            committee_size: 4,
            accounts: 16,
        };
        let (mut g, genesis) = Generator::new(spec, 2).expect("valid spec");
        let mut next = |n: usize| -> Vec<BlockWithSig> {
            (0..n).map(|_| g.next_block().expect("generates")).collect()
        };
        let base = next(BASE);
        let tip = next(TIP);
        Fixture { genesis, base, tip }
    })
}

/// The fuzzer's bytes, read front to back; past the end every byte is 0.
struct Bytes<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos = self.pos.saturating_add(1);
        b
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        for x in &mut b {
            *x = self.u8();
        }
        u64::from_le_bytes(b)
    }
}

/// One scripted event.
#[derive(Debug, Clone)]
enum Op {
    Crash(usize),
    Restart(usize),
    Partition(Vec<usize>, u32),
    Heal,
    Grow(usize, Duration),
}

/// What the bytes decode to.
#[derive(Debug)]
struct Plan {
    seed: u64,
    servers: usize,
    byzantine: Vec<(Byzantine, bool)>,
    /// (join delay, exit once synced)
    syncers: Vec<(Duration, bool)>,
    boot: Vec<usize>,
    min_peers: usize,
    link: LinkConfig,
    grow: (usize, Duration),
    limit: Duration,
    /// (virtual time since the start, event), in time order.
    script: Vec<(Duration, Op)>,
}

impl Plan {
    fn nodes(&self) -> usize {
        self.servers + self.byzantine.len() + self.syncers.len()
    }

    fn decode(data: &[u8]) -> Plan {
        let mut b = Bytes { data, pos: 0 };
        let seed = b.u64();
        let servers = 2 + usize::from(b.u8() % 5);
        let kinds = Byzantine::all();
        let n_byz = usize::from(b.u8() % 5);
        let byzantine = (0..n_byz)
            .map(|_| {
                let kind = kinds[usize::from(b.u8()) % kinds.len()];
                (kind, b.u8() & 1 == 1)
            })
            .collect();
        let n_sync = 1 + usize::from(b.u8() % 3);
        let syncers = (0..n_sync)
            .map(|_| {
                let delay = Duration::from_secs(u64::from(b.u8() % 61));
                (delay, b.u8() & 1 == 1)
            })
            .collect();
        let mut plan = Plan {
            seed,
            servers,
            byzantine,
            syncers,
            boot: Vec::new(),
            min_peers: 1,
            link: LinkConfig::default(),
            grow: (0, Duration::from_secs(1)),
            limit: Duration::ZERO,
            script: Vec::new(),
        };
        let n = plan.nodes();
        let mask = b.u16();
        plan.boot = (0..n).filter(|i| mask & (1 << i) != 0).collect();
        if plan.boot.is_empty() {
            plan.boot.push(0);
        }
        plan.min_peers = 1 + usize::from(b.u8() % 3);
        let latency = 1 + u64::from(b.u8());
        let jitter = u64::from(b.u8()) % (latency + 1);
        let loss = f64::from(b.u8()) / 255.0 * 0.3;
        let bw = b.u8();
        plan.link = LinkConfig {
            latency: Duration::from_millis(latency),
            jitter: Duration::from_millis(jitter),
            bandwidth_bps: if bw == 0 {
                0
            } else {
                (u64::from(bw) % 100 + 1) * 1_000_000
            },
            loss,
            ..LinkConfig::default()
        };
        plan.grow = (
            usize::from(b.u8()) % (TIP + 1),
            Duration::from_secs(1 + u64::from(b.u8() % 10)),
        );
        plan.limit = Duration::from_secs(60 + 2 * u64::from(b.u8()));
        let events = b.u8() % 9;
        let mut at = Duration::ZERO;
        for _ in 0..events {
            at += Duration::from_secs(u64::from(b.u8()));
            let op = b.u8() % 5;
            let (x, y) = (b.u8(), b.u8());
            let node = usize::from(x) % n;
            let op = match op {
                0 => Op::Crash(node),
                1 => Op::Restart(node),
                2 => {
                    let mask = u16::from_le_bytes([x, y]);
                    let side = (0..n).filter(|i| mask & (1 << i) != 0).collect();
                    Op::Partition(side, 1 + u32::from(y >> 7))
                }
                3 => Op::Heal,
                _ => Op::Grow(
                    1 + usize::from(x) % TIP,
                    Duration::from_secs(1 + u64::from(y % 10)),
                ),
            };
            if at < plan.limit {
                plan.script.push((at, op));
            }
        }
        plan
    }
}

/// A hash for a message: hex, or "none".
fn hex(h: Option<B256>) -> String {
    h.map_or_else(|| "none".into(), |h| to_hex(&h))
}

/// The first honest node whose committed head is not on the source chain
/// (a foreign block, or a number the source does not have).
fn head_violation(sim: &Sim) -> Option<String> {
    let source = sim.source();
    for (i, n) in sim.nodes().iter().enumerate().filter(|(_, n)| n.honest()) {
        let head = match n.backend.head() {
            Ok(h) => h,
            Err(e) => return Some(format!("node {i} ({:?}): head unreadable: {e}", n.role)),
        };
        let ours = source.hash_by_number(head.number).ok().flatten();
        if ours != Some(head.hash) {
            let src = source.head().map(|h| h.number).unwrap_or(0);
            return Some(format!(
                "node {i} ({:?}) at virtual {:?}: head {} {}, the source has {} there (source head {src})",
                n.role,
                sim.elapsed(),
                head.number,
                hex(Some(head.hash)),
                hex(ours),
            ));
        }
    }
    None
}

/// Every block every honest node stores, compared with the source's.
fn full_check(sim: &Sim) -> Option<String> {
    let source = sim.source();
    for (i, n) in sim.nodes().iter().enumerate().filter(|(_, n)| n.honest()) {
        let head = match n.backend.head() {
            Ok(h) => h.number,
            Err(e) => return Some(format!("node {i}: head unreadable: {e}")),
        };
        for k in 0..=head {
            let hash = n.backend.hash_by_number(k).ok().flatten();
            let want = source.hash_by_number(k).ok().flatten();
            if hash.is_none() || hash != want {
                return Some(format!(
                    "node {i} ({:?}) stores {} at {k}, the source {}",
                    n.role,
                    hex(hash),
                    hex(want),
                ));
            }
            let block = n.backend.block_by_number(k).ok().flatten();
            let want_block = source.block_by_number(k).ok().flatten();
            if block.map(|b| b.to_bytes()) != want_block.map(|b| b.to_bytes()) {
                return Some(format!(
                    "node {i} ({:?}) stores a block at {k} whose bytes differ from the source's",
                    n.role
                ));
            }
        }
    }
    None
}

/// Appends up to `k` blocks of the fixture's tip, from where the source is
/// now, one every `every`.
fn grow(sim: &mut Sim, k: usize, every: Duration) {
    let f = fixture();
    let head = sim.source().head().map_or(0, |h| h.number) as usize;
    let from = head.saturating_sub(BASE).min(TIP);
    let to = from.saturating_add(k).min(TIP);
    if to > from {
        sim.grow(f.tip[from..to].to_vec(), every);
    }
}

/// Runs `sim` for `d`, checking every honest head whenever virtual time
/// advances; panics on the first foreign one.
fn run(sim: &mut Sim, plan: &Plan, d: Duration, mut done: impl FnMut(&Sim) -> bool) -> bool {
    let mut bad = None;
    let finished = sim.run_until(d, |s| {
        bad = head_violation(s);
        bad.is_some() || done(s)
    });
    if let Some(msg) = bad {
        panic!("an honest node stores a foreign block: {msg}\nplan: {plan:#?}");
    }
    finished
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let plan = Plan::decode(data);

    let source = Arc::new(MemChain::new(&f.genesis).expect("source genesis"));
    source
        .insert_verified_batch(&InsertBatch::seal(f.base.clone(), vec![]))
        .expect("source blocks");
    let mut cfg = SimConfig::new(Network::Localnet, plan.seed, plan.link);
    cfg.sync.min_peers = plan.min_peers;
    let mut sim = Sim::new(cfg, f.genesis.clone(), source);

    for _ in 0..plan.servers {
        sim.add_server();
    }
    let sybil = IpAddr::V4(Ipv4Addr::new(172, 16, 0, 1));
    for (kind, shared) in &plan.byzantine {
        sim.add_byzantine(*kind, shared.then_some(sybil));
    }
    let mut syncers = Vec::new();
    for (delay, exit) in &plan.syncers {
        syncers.push(sim.add_syncer(*delay, *exit).expect("syncer"));
    }
    sim.set_boot(&plan.boot);
    let mut final_tip = BASE;
    if plan.grow.0 > 0 {
        grow(&mut sim, plan.grow.0, plan.grow.1);
        final_tip = BASE + plan.grow.0.min(TIP);
    }

    for (at, op) in &plan.script {
        let d = at.saturating_sub(sim.elapsed());
        run(&mut sim, &plan, d, |_| false);
        match op {
            Op::Crash(i) => sim.crash(*i),
            Op::Restart(i) => {
                // Fails only when a syncer's own store is unreadable.
                if let Err(e) = sim.restart(*i) {
                    panic!("restart of node {i} failed: {e}\nplan: {plan:#?}");
                }
            }
            Op::Partition(side, group) => sim.partition(side, *group),
            Op::Heal => sim.heal(),
            Op::Grow(k, every) => {
                let head = sim.source().head().map_or(0, |h| h.number) as usize;
                grow(&mut sim, *k, *every);
                final_tip = (head.max(BASE) + k).min(BASE + TIP);
            }
        }
    }

    // The rest of the time; stop early once nothing can change any more:
    // the tip has grown all it will, every syncer has started, and every
    // one up holds the source's head.
    let started = plan
        .syncers
        .iter()
        .map(|(d, _)| *d)
        .max()
        .unwrap_or_default();
    let rest = plan.limit.saturating_sub(sim.elapsed());
    run(&mut sim, &plan, rest, |s| {
        let Ok(head) = s.source().head() else {
            return false;
        };
        s.elapsed() > started
            && head.number as usize >= final_tip
            && syncers.iter().all(|j| {
                let n = &s.nodes()[*j];
                !n.online || n.backend.head().is_ok_and(|h| h.hash == head.hash)
            })
    });

    if let Some(msg) = full_check(&sim) {
        panic!("an honest node stores a foreign block: {msg}\nplan: {plan:#?}");
    }
});
