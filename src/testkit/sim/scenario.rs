//! Named network-scale scenarios (`streamsync simulate`, issue 11) and
//! their report: who synced, how fast, who served, who was caught lying.
//!
//! - `scale`: 90 % synced serving nodes, 10 % joining over two virtual
//!   minutes; 100 ms ± 50 ms links at 50 Mbit/s; 10 % churn per virtual
//!   hour; the tip grows.
//! - `byzantine`: the same with 30 % byzantine nodes of every behaviour
//!   ([`Byzantine::all`]), a fifth of them in sybil groups of eight on one
//!   address; they name only each other in peer exchange.
//! - `boot-loss`: the same as `scale`, with joiners starting in the first
//!   minute and the ten boot nodes gone after it; then every joiner
//!   restarts once (down 30 s, within two minutes of the loss) and must
//!   find the network again without a boot node, from the peers it saved
//!   (`<datadir>/known_peers`). A node that never ran cannot join once
//!   every address it was given is gone, in this network as in any other:
//!   no joiner starts after the loss.
//! - `partition`: 10 % consensus-fed servers, 90 % nodes that sync; once
//!   all are synced, a third of the syncers is cut off for five virtual
//!   minutes while the tip grows on the other side, then the cut heals and
//!   the tip stops (so "converged" is one head every node must hold, not
//!   a moving one).
//!
//! Verification: real, memoized across nodes, charged as virtual CPU time
//! ([`super::CpuModel`]) in every scenario.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::stats::{gini, percentile, top_share};
use super::{Byzantine, LinkConfig, Role, Sim, SimConfig};
use crate::chain::backend::InsertBatch;
use crate::chain::generator::Generator;
use crate::chain::{BlockWithSig, ChainBackend, GenesisSpec};
use crate::config::Network;
use crate::testkit::MemChain;

/// The scenarios `streamsync simulate` knows.
pub const NAMES: [&str; 4] = ["scale", "byzantine", "boot-loss", "partition"];

/// A scenario's parameters.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Scenario {
    /// Its name.
    pub name: String,
    /// Nodes in all.
    pub nodes: usize,
    /// Share of the nodes that join (sync from genesis).
    pub joiners: f64,
    /// Share of the nodes that are byzantine.
    pub byzantine: f64,
    /// Blocks of the honest chain when the run starts.
    pub blocks: usize,
    /// Blocks per epoch.
    pub epoch_len: u64,
    /// Transactions per block.
    pub txs_per_block: u32,
    /// One-way latency, ms.
    pub latency_ms: u64,
    /// ± jitter of a connection's latency, ms.
    pub jitter_ms: u64,
    /// Each node's uplink and downlink, Mbit/s (0: unlimited).
    pub bandwidth_mbit: u64,
    /// Chance a message suffers a loss (a retransmission delay).
    pub loss: f64,
    /// Joiners start spread evenly over this many virtual seconds.
    pub join_window_s: u64,
    /// Share of the nodes that crash per virtual hour (each comes back
    /// after `churn_down_s`).
    pub churn_per_hour: f64,
    /// How long a churned node stays down, virtual seconds.
    pub churn_down_s: u64,
    /// Boot nodes (honest servers everyone discovers first).
    pub boot_nodes: usize,
    /// The boot nodes go offline at this virtual second.
    pub boot_loss_at_s: Option<u64>,
    /// A new block at the tip every this many virtual seconds (0: none).
    pub tip_every_s: u64,
    /// Blocks added at the tip during the run, at most.
    pub tip_blocks: usize,
    /// Partition: starts this many virtual seconds after every node
    /// synced, lasts `partition_s`.
    pub partition_s: Option<u64>,
    /// Virtual time limit, seconds.
    pub limit_s: u64,
    /// Seed of the run.
    pub seed: u64,
}

impl Scenario {
    /// The named scenario with `nodes` nodes (its default when `None`).
    pub fn named(name: &str, nodes: Option<usize>, seed: u64) -> Result<Self, String> {
        let base = Scenario {
            name: name.to_string(),
            nodes: 1000,
            joiners: 0.10,
            byzantine: 0.0,
            blocks: 10_000,
            epoch_len: 1000,
            txs_per_block: 2,
            latency_ms: 100,
            jitter_ms: 50,
            bandwidth_mbit: 50,
            loss: 0.0,
            join_window_s: 120,
            churn_per_hour: 0.10,
            churn_down_s: 120,
            boot_nodes: 10,
            boot_loss_at_s: None,
            tip_every_s: 2,
            tip_blocks: 1000,
            partition_s: None,
            limit_s: 1800,
            seed,
        };
        let mut s = match name {
            "scale" => base,
            "byzantine" => Scenario {
                byzantine: 0.30,
                ..base
            },
            "boot-loss" => Scenario {
                // The last joiner starts 2 s before the loss: time to reach
                // a boot node and hear of others (one started at the loss
                // itself knows nobody but the boot nodes).
                join_window_s: 58,
                boot_loss_at_s: Some(60),
                ..base
            },
            "partition" => Scenario {
                nodes: 200,
                joiners: 0.90,
                blocks: 2_000,
                partition_s: Some(300),
                churn_per_hour: 0.0,
                ..base
            },
            other => {
                return Err(format!(
                    "unknown scenario {other:?}: one of {}",
                    NAMES.join(", ")
                ))
            }
        };
        if let Some(n) = nodes {
            s.nodes = n;
        }
        if s.nodes < s.boot_nodes + 2 {
            return Err(format!(
                "{} nodes are too few: at least {}",
                s.nodes,
                s.boot_nodes + 2
            ));
        }
        Ok(s)
    }
}

/// Head over time of one sampled node.
#[derive(Clone, Debug, Serialize)]
pub struct Trace {
    /// Node index.
    pub node: usize,
    /// (virtual seconds, committed head) samples.
    pub heads: Vec<(f64, u64)>,
}

/// What a run measured.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// Seed.
    pub seed: u64,
    /// Nodes in all.
    pub nodes: usize,
    /// Honest nodes (servers and syncers).
    pub honest_nodes: usize,
    /// Honest nodes at or above their goal on the honest chain at the end.
    pub honest_synced: usize,
    /// Honest nodes whose head is not the honest chain's block.
    pub honest_wrong_head: usize,
    /// Blocks stored by honest nodes that are not the honest chain's.
    pub foreign_blocks_stored: u64,
    /// Honest joiners.
    pub joiners: usize,
    /// Honest joiners that reached their goal.
    pub joiners_synced: usize,
    /// Time from start to goal of the joiners, virtual seconds, p50.
    pub time_to_sync_p50_s: Option<f64>,
    /// The same, p99.
    pub time_to_sync_p99_s: Option<f64>,
    /// Share of block requests served by the busiest 1 % of the honest
    /// nodes (all of them serve).
    pub top1pct_request_share: f64,
    /// Gini coefficient of block requests served per honest node.
    pub gini: f64,
    /// Honest nodes that served at least one block request.
    pub serving_nodes: usize,
    /// Block requests served in all.
    pub block_requests: u64,
    /// Bytes served in all.
    pub bytes_served: u64,
    /// Byzantine nodes.
    pub byzantine_nodes: usize,
    /// (honest node, byzantine node) pairs where the honest node sent the
    /// byzantine one a sync request.
    pub byzantine_met_pairs: usize,
    /// Of those, the pairs where the honest node removed it.
    pub byzantine_removed_pairs: usize,
    /// Per behaviour: (name, met pairs, removed pairs).
    pub byzantine_by_behaviour: Vec<(String, usize, usize)>,
    /// Honest nodes removed by honest nodes for a critical fault (must be 0:
    /// blame only what is proven).
    pub honest_blamed_critical: usize,
    /// Removals decided by honest nodes, by reason: (reason, of honest
    /// peers, of byzantine peers).
    pub removals: Vec<(String, usize, usize)>,
    /// `partition`: honest nodes online that were not at the honest head
    /// when the cut healed (0 would mean the partition cost nothing, and
    /// the convergence afterwards proves nothing).
    pub behind_at_heal: Option<usize>,
    /// Seconds from the heal until every honest node online held the
    /// honest head (virtual), if they did.
    pub converged_after_heal_s: Option<f64>,
    /// `boot-loss`: joiners started and not yet synced when the boot nodes
    /// went away.
    pub joiners_in_flight_at_loss: Option<usize>,
    /// `boot-loss`: joiners restarted after the loss (every one).
    pub restarted_after_loss: Option<usize>,
    /// `boot-loss`: of those, the ones that reached the honest head of
    /// their restart again, on the honest chain.
    pub rejoined_after_loss: Option<usize>,
    /// Dials attempted.
    pub dials: u64,
    /// Failed dials by reason.
    pub dial_failures: Vec<(String, u64)>,
    /// Virtual seconds simulated.
    pub virtual_s: f64,
    /// Events handled.
    pub events: u64,
    /// Digest of the run (equal digests: the same run).
    pub digest: String,
    /// Pairing checks really computed, and answered from the memo.
    pub sigs_computed: u64,
    /// Pairing checks answered from the memo.
    pub sigs_remembered: u64,
    /// Wall-clock seconds (filled by the caller).
    pub wall_s: f64,
    /// Peak RSS, MiB (filled by the caller).
    pub peak_rss_mb: f64,
    /// Sampled nodes' heads over time.
    #[serde(skip)]
    pub traces: Vec<Trace>,
    /// Time to sync of every joiner that synced, virtual seconds.
    #[serde(skip)]
    pub times_to_sync: Vec<f64>,
    /// Block requests served per honest node (all honest nodes).
    #[serde(skip)]
    pub served: Vec<u64>,
}

/// A generated honest chain: genesis, the source store holding `blocks`
/// blocks, and `extra` more blocks for the tip to grow by.
pub fn source_chain(
    s: &Scenario,
) -> Result<(crate::chain::Genesis, Arc<MemChain>, Vec<BlockWithSig>), String> {
    let spec = GenesisSpec {
        seed: s.seed,
        network: "mainnet".into(),
        shard_id: 0,
        epoch_len: s.epoch_len,
        committee_size: 4,
        accounts: 64,
    };
    let (mut g, genesis) = Generator::new(spec, s.txs_per_block).map_err(|e| e.to_string())?;
    let source = Arc::new(MemChain::new(&genesis).map_err(|e| e.to_string())?);
    let mut batch = Vec::with_capacity(1000);
    for _ in 0..s.blocks {
        batch.push(g.next_block().map_err(|e| e.to_string())?);
        if batch.len() == 1000 {
            source
                .insert_verified_batch(&InsertBatch::seal(std::mem::take(&mut batch), vec![]))
                .map_err(|e| e.to_string())?;
        }
    }
    if !batch.is_empty() {
        source
            .insert_verified_batch(&InsertBatch::seal(batch, vec![]))
            .map_err(|e| e.to_string())?;
    }
    let tip = if s.tip_every_s > 0 { s.tip_blocks } else { 0 };
    let extra = (0..tip)
        .map(|_| g.next_block().map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((genesis, source, extra))
}

/// Builds and runs `s`; `progress` is called about every virtual 10 s
/// with (virtual seconds, joiners synced, joiners).
pub fn run(s: &Scenario, mut progress: impl FnMut(f64, usize, usize)) -> Result<Report, String> {
    let (genesis, source, extra) = source_chain(s)?;
    let link = LinkConfig {
        latency: Duration::from_millis(s.latency_ms),
        jitter: Duration::from_millis(s.jitter_ms),
        bandwidth_bps: s.bandwidth_mbit * 1_000_000,
        loss: s.loss,
        ..LinkConfig::default()
    };
    let cfg = SimConfig::new(Network::Mainnet, s.seed, link);
    let mut sim = Sim::new(cfg, genesis, source);

    let n = s.nodes;
    let n_byz = (n as f64 * s.byzantine).round() as usize;
    let n_join = ((n as f64 * s.joiners).round() as usize).min(n - n_byz - s.boot_nodes);
    let n_serv = n - n_byz - n_join;
    let boot: Vec<usize> = (0..s.boot_nodes).map(|_| sim.add_server()).collect();
    sim.set_boot(&boot);
    for _ in s.boot_nodes..n_serv {
        sim.add_server();
    }
    let kinds = Byzantine::all();
    let sybil = n_byz / 5;
    for k in 0..n_byz {
        let ip = (k < sybil).then(|| IpAddr::V4(Ipv4Addr::new(172, 16, (k / 8) as u8, 1)));
        sim.add_byzantine(kinds[k % kinds.len()], ip);
    }
    let mut joiners = Vec::with_capacity(n_join);
    let window = Duration::from_secs(s.join_window_s);
    for k in 0..n_join {
        let delay = if n_join > 1 {
            window.mul_f64(k as f64 / (n_join - 1) as f64)
        } else {
            Duration::from_millis(10 * k as u64)
        };
        joiners.push(sim.add_syncer(delay, false)?);
    }
    if s.tip_every_s > 0 && !extra.is_empty() {
        sim.grow(extra, Duration::from_secs(s.tip_every_s));
    }
    if s.churn_per_hour > 0.0 {
        let per_hour = s.churn_per_hour * n as f64;
        sim.churn(
            Duration::from_secs_f64(3600.0 / per_hour.max(1e-9)),
            Duration::from_secs(s.churn_down_s),
        );
    }
    let sampled: Vec<usize> = joiners
        .iter()
        .step_by((joiners.len() / 12).max(1))
        .copied()
        .take(12)
        .collect();
    let mut traces: Vec<Trace> = sampled
        .iter()
        .map(|i| Trace {
            node: *i,
            heads: Vec::new(),
        })
        .collect();
    let limit = Duration::from_secs(s.limit_s);
    let step = Duration::from_secs(1);
    let mut boot_lost = false;
    let mut in_flight = None;
    let mut bounces: Vec<Bounce> = Vec::new();
    let mut partition: Option<(Duration, Duration)> = None;
    let mut healed = false;
    let mut behind_at_heal = None;
    let mut converged_after_heal_s = None;
    let side: Vec<usize> = joiners.iter().step_by(3).copied().collect();
    let all_synced = |sim: &Sim| {
        joiners.iter().all(|j| {
            let node = &sim.nodes()[*j];
            node.stats.synced.is_some()
        })
    };
    while sim.elapsed() < limit {
        sim.run_until(step, |_| false);
        let t = sim.elapsed();
        for tr in &mut traces {
            tr.heads
                .push((t.as_secs_f64(), sim.nodes()[tr.node].head()));
        }
        if t.as_millis() % 10_000 < 1000 {
            let done = joiners
                .iter()
                .filter(|j| sim.nodes()[**j].stats.synced.is_some())
                .count();
            progress(t.as_secs_f64(), done, joiners.len());
        }
        if let Some(at) = s.boot_loss_at_s {
            if !boot_lost && t >= Duration::from_secs(at) {
                for b in &boot {
                    sim.crash(*b);
                }
                boot_lost = true;
                in_flight = Some(
                    joiners
                        .iter()
                        .filter(|j| {
                            let n = &sim.nodes()[**j];
                            n.online && n.stats.synced.is_none()
                        })
                        .count(),
                );
                // Every joiner restarts once in the next two minutes.
                for j in &joiners {
                    let down_at = t + Duration::from_millis(sim.draw(120_000));
                    bounces.push(Bounce {
                        node: *j,
                        down_at,
                        up_at: down_at + BOUNCE_DOWN,
                        goal: None,
                    });
                }
            }
            for b in &mut bounces {
                if b.goal.is_none() && t >= b.up_at {
                    sim.restart(b.node)?;
                    b.goal = Some(sim.source().head().map_or(0, |h| h.number));
                } else if t >= b.down_at && t < b.up_at {
                    sim.crash(b.node);
                }
            }
        }
        if let Some(len) = s.partition_s {
            match partition {
                None if all_synced(&sim) => {
                    let start = t + Duration::from_secs(30);
                    partition = Some((start, start + Duration::from_secs(len)));
                }
                Some((start, _))
                    if t >= start && !healed && !side.is_empty() && sim.group_of(side[0]) == 0 =>
                {
                    sim.partition(&side, 1);
                }
                Some((_, end)) if t >= end && !healed => {
                    behind_at_heal = Some(behind(&sim));
                    sim.stop_growth();
                    sim.heal();
                    healed = true;
                }
                _ => {}
            }
            if healed && behind(&sim) == 0 {
                if let Some((_, end)) = partition {
                    converged_after_heal_s = Some(t.saturating_sub(end).as_secs_f64());
                }
                break;
            }
            continue;
        }
        let rejoined = bounces.iter().all(|b| rejoined(&sim, b));
        if all_synced(&sim) && boot_lost == s.boot_loss_at_s.is_some() && rejoined {
            break;
        }
    }
    let mut r = report(s, &sim, &joiners, traces);
    r.behind_at_heal = behind_at_heal;
    r.converged_after_heal_s = converged_after_heal_s;
    if boot_lost {
        r.joiners_in_flight_at_loss = in_flight;
        r.restarted_after_loss = Some(bounces.iter().filter(|b| b.goal.is_some()).count());
        r.rejoined_after_loss = Some(bounces.iter().filter(|b| rejoined(&sim, b)).count());
    }
    Ok(r)
}

/// How long a joiner restarted after the boot loss stays down.
const BOUNCE_DOWN: Duration = Duration::from_secs(30);

/// A joiner's restart after the boot loss.
struct Bounce {
    node: usize,
    down_at: Duration,
    up_at: Duration,
    /// The honest head when it came back (`None`: not back yet).
    goal: Option<u64>,
}

/// Whether a restarted joiner holds, on the honest chain, the honest head
/// of its restart (or a later one).
fn rejoined(sim: &Sim, b: &Bounce) -> bool {
    let Some(goal) = b.goal else {
        return false;
    };
    let n = &sim.nodes()[b.node];
    n.backend.head().ok().is_some_and(|h| {
        h.number >= goal && sim.source().hash_by_number(h.number).ok().flatten() == Some(h.hash)
    })
}

/// Honest nodes online that do not hold the honest head.
fn behind(sim: &Sim) -> usize {
    let head = sim.source().head().ok().map(|h| h.hash);
    sim.nodes()
        .iter()
        .filter(|n| n.honest() && n.online)
        .filter(|n| n.backend.head().ok().map(|h| h.hash) != head)
        .count()
}

fn report(s: &Scenario, sim: &Sim, joiners: &[usize], traces: Vec<Trace>) -> Report {
    let source = sim.source();
    let mut honest = 0;
    let mut synced = 0;
    let mut wrong = 0;
    let mut foreign = 0u64;
    let mut served = Vec::new();
    let mut blamed_critical = 0;
    for n in sim.nodes().iter().filter(|n| n.honest()) {
        honest += 1;
        served.push(n.stats.served_block_requests);
        let Ok(h) = n.backend.head() else {
            wrong += 1;
            continue;
        };
        let on_chain = source.hash_by_number(h.number).ok().flatten() == Some(h.hash);
        if !on_chain {
            wrong += 1;
        } else if h.number >= n.stats.goal {
            synced += 1;
        }
        if n.role == Role::Syncer {
            for k in 1..=h.number {
                if n.backend.hash_by_number(k).ok().flatten()
                    != source.hash_by_number(k).ok().flatten()
                {
                    foreign += 1;
                }
            }
        }
        blamed_critical += n
            .stats
            .removed
            .iter()
            .filter(|(k, r)| sim.nodes()[**k].honest() && r.is_critical())
            .count();
    }
    let times: Vec<f64> = joiners
        .iter()
        .filter_map(|j| {
            let st = &sim.nodes()[*j].stats;
            Some((st.synced? - st.joined?).as_secs_f64())
        })
        .collect();
    // Every honest node serves (joiners once they have blocks): the spread
    // is over all of them, idle ones included.
    let all: Vec<f64> = served.iter().map(|v| *v as f64).collect();
    let serving_nodes = served.iter().filter(|v| **v > 0).count();
    let mut by: std::collections::BTreeMap<&'static str, (usize, usize)> = Default::default();
    let (mut met, mut removed) = (0, 0);
    for n in sim.nodes().iter().filter(|n| n.honest()) {
        for k in &n.stats.met {
            if let Role::Byzantine(b) = sim.nodes()[*k].role {
                let e = by.entry(b.name()).or_default();
                e.0 += 1;
                met += 1;
                if n.stats.removed.contains_key(k) {
                    e.1 += 1;
                    removed += 1;
                }
            }
        }
    }
    let block_requests = served.iter().sum();
    let mut removals: std::collections::BTreeMap<&'static str, (usize, usize)> = Default::default();
    for n in sim.nodes().iter().filter(|n| n.honest()) {
        for (k, reason) in &n.stats.removed {
            let e = removals.entry(reason.label()).or_default();
            if sim.nodes()[*k].honest() {
                e.0 += 1;
            } else {
                e.1 += 1;
            }
        }
    }
    Report {
        scenario: s.name.clone(),
        seed: s.seed,
        nodes: sim.nodes().len(),
        honest_nodes: honest,
        honest_synced: synced,
        honest_wrong_head: wrong,
        foreign_blocks_stored: foreign,
        joiners: joiners.len(),
        joiners_synced: times.len(),
        time_to_sync_p50_s: percentile(&times, 0.5),
        time_to_sync_p99_s: percentile(&times, 0.99),
        top1pct_request_share: top_share(&all, 0.01),
        gini: gini(&all),
        serving_nodes,
        block_requests,
        bytes_served: sim
            .nodes()
            .iter()
            .filter(|n| n.honest())
            .map(|n| n.stats.served_bytes)
            .sum(),
        byzantine_nodes: sim.nodes().iter().filter(|n| !n.honest()).count(),
        byzantine_met_pairs: met,
        byzantine_removed_pairs: removed,
        byzantine_by_behaviour: by
            .into_iter()
            .map(|(k, (m, r))| (k.to_string(), m, r))
            .collect(),
        honest_blamed_critical: blamed_critical,
        removals: removals
            .into_iter()
            .map(|(k, (h, b))| (k.to_string(), h, b))
            .collect(),
        behind_at_heal: None,
        converged_after_heal_s: None,
        joiners_in_flight_at_loss: None,
        restarted_after_loss: None,
        rejoined_after_loss: None,
        dials: sim.dials,
        dial_failures: sim
            .dial_failures
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect(),
        virtual_s: sim.elapsed().as_secs_f64(),
        events: sim.events,
        digest: format!("{:016x}", sim.digest),
        sigs_computed: sim.memo().sigs_computed,
        sigs_remembered: sim.memo().sigs_remembered,
        wall_s: 0.0,
        peak_rss_mb: 0.0,
        traces,
        times_to_sync: times,
        served,
    }
}
