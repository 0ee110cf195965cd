//! The many-node simulator (`testkit::Sim`, DESIGN.md §14): whole nodes in
//! one thread, virtual time, no sockets, no wall clock.
#![cfg(feature = "testkit")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use streamsync::chain::backend::InsertBatch;
use streamsync::chain::ChainBackend;
use streamsync::config::Network;
use streamsync::sync::SyncOutcome;
use streamsync::testkit::sim::scenario;
use streamsync::testkit::{LinkConfig, MemChain, Sim, SimConfig};

const BLOCKS: usize = 3000;

/// A source chain of `BLOCKS` blocks (epochs of 100) and an empty network
/// with 50 ms ± 20 ms links.
fn network(seed: u64) -> Sim {
    let (genesis, _, blocks) = common::chain(common::spec(11, 100, 4), 2, BLOCKS);
    let source = Arc::new(MemChain::new(&genesis).expect("chain"));
    for batch in blocks.chunks(500) {
        source
            .insert_verified_batch(&InsertBatch::seal(batch.to_vec(), vec![]))
            .expect("source");
    }
    let link = LinkConfig {
        latency: Duration::from_millis(50),
        jitter: Duration::from_millis(20),
        ..LinkConfig::default()
    };
    let mut cfg = SimConfig::new(Network::Localnet, seed, link);
    cfg.sync.min_peers = 2;
    Sim::new(cfg, genesis, source)
}

fn head(sim: &Sim, i: usize) -> u64 {
    sim.nodes()[i].head()
}

#[test]
fn a_joiner_finds_eight_servers_through_the_boot_node_and_syncs_from_all() {
    let mut sim = network(1);
    let servers: Vec<usize> = (0..8).map(|_| sim.add_server()).collect();
    sim.set_boot(&servers[..1]);
    let j = sim
        .add_syncer(Duration::from_secs(5), true)
        .expect("joiner");
    let synced = sim.run_until(Duration::from_secs(120), |s| {
        matches!(s.nodes()[j].outcome, Some(SyncOutcome::Synced { .. }))
    });
    assert!(synced, "head {} after {:?}", head(&sim, j), sim.elapsed());
    assert_eq!(
        sim.nodes()[j].backend.head().expect("head").hash,
        sim.source().head().expect("head").hash
    );
    let asked: Vec<u64> = servers
        .iter()
        .map(|s| sim.nodes()[*s].stats.served_block_requests)
        .collect();
    assert!(
        asked.iter().filter(|n| **n > 0).count() >= 6,
        "block requests per server: {asked:?}"
    );
}

#[test]
fn a_joiner_crashed_mid_sync_keeps_what_it_committed_and_resumes_from_there() {
    let mut sim = network(2);
    let servers: Vec<usize> = (0..4).map(|_| sim.add_server()).collect();
    sim.set_boot(&servers);
    let j = sim.add_syncer(Duration::ZERO, true).expect("joiner");
    assert!(sim.run_until(Duration::from_secs(60), |s| head(s, j) >= 1000));
    sim.crash(j);
    let kept = head(&sim, j);
    assert!(kept >= 1000, "committed blocks survive the crash: {kept}");
    sim.run_until(Duration::from_secs(5), |_| false);
    assert_eq!(head(&sim, j), kept);
    let served_before: u64 = servers
        .iter()
        .map(|s| sim.nodes()[*s].stats.served_block_requests)
        .sum();
    sim.restart(j).expect("restart");
    assert!(sim.run_until(Duration::from_secs(120), |s| matches!(
        s.nodes()[j].outcome,
        Some(SyncOutcome::Synced { .. })
    )));
    assert_eq!(head(&sim, j), BLOCKS as u64);
    let served_after: u64 = servers
        .iter()
        .map(|s| sim.nodes()[*s].stats.served_block_requests)
        .sum();
    assert!(
        served_after > served_before,
        "the restarted sync asked again"
    );
}

/// No single point of failure: with the only boot node gone, a node whose
/// link went down (every stream lost, so no peer to ask for peers) finds
/// its way back to the peers it knew and follows the tip again.
#[test]
fn a_node_cut_off_while_its_boot_node_is_gone_reconnects_to_peers_it_knew() {
    let (genesis, _, blocks) = common::chain(common::spec(11, 100, 4), 2, 800);
    let source = Arc::new(MemChain::new(&genesis).expect("chain"));
    source
        .insert_verified_batch(&InsertBatch::seal(blocks[..600].to_vec(), vec![]))
        .expect("source");
    let mut cfg = SimConfig::new(Network::Localnet, 3, LinkConfig::default());
    cfg.sync.min_peers = 2;
    let mut sim = Sim::new(cfg, genesis, source);
    let servers: Vec<usize> = (0..6).map(|_| sim.add_server()).collect();
    sim.set_boot(&servers[..1]);
    let j = sim.add_syncer(Duration::ZERO, false).expect("joiner");
    assert!(sim.run_until(Duration::from_secs(120), |s| head(s, j) >= 600));
    sim.crash(servers[0]);
    sim.partition(&[j], 1);
    sim.run_until(Duration::from_secs(120), |_| false);
    sim.heal();
    sim.grow(blocks[600..].to_vec(), Duration::from_secs(1));
    let caught_up = sim.run_until(Duration::from_secs(1200), |s| head(s, j) >= 800);
    assert!(
        caught_up,
        "head {} of 800; dials {}, failed {:?}",
        head(&sim, j),
        sim.dials,
        sim.dial_failures
    );
}

/// The report without its time series, for assertion messages.
fn summary(r: &scenario::Report) -> String {
    serde_json::to_string(r).unwrap_or_default()
}

/// A small run of the named scenario `name`: `nodes` nodes, `blocks`
/// blocks, epochs of 100, no tip growth, no churn.
fn small(name: &str, nodes: usize, blocks: usize, seed: u64) -> scenario::Scenario {
    let mut s = scenario::Scenario::named(name, Some(nodes), seed).expect("scenario");
    s.blocks = blocks;
    s.epoch_len = 100;
    s.tip_every_s = 0;
    s.churn_per_hour = 0.0;
    s.boot_nodes = 3;
    s.join_window_s = 20;
    s.limit_s = 900;
    s
}

#[test]
fn one_seed_reproduces_a_run_exactly_and_another_seed_does_not() {
    let s = small("scale", 30, 600, 7);
    let a = scenario::run(&s, |_, _, _| {}).expect("run");
    let b = scenario::run(&s, |_, _, _| {}).expect("run");
    assert_eq!(a.events, b.events);
    assert_eq!(a.digest, b.digest, "same seed, different run");
    assert_eq!(a.served, b.served);
    assert_eq!(a.times_to_sync, b.times_to_sync);
    let c = scenario::run(&small("scale", 30, 600, 8), |_, _, _| {}).expect("run");
    assert_ne!(a.digest, c.digest, "another seed, the same run");
}

#[test]
fn byzantine_nodes_of_every_kind_leave_no_foreign_block_and_no_honest_peer_is_blamed() {
    let mut s = small("byzantine", 60, 1200, 3);
    s.byzantine = 0.34;
    let r = scenario::run(&s, |_, _, _| {}).expect("run");
    assert_eq!(r.joiners_synced, r.joiners, "{}", summary(&r));
    assert_eq!(r.honest_wrong_head, 0);
    assert_eq!(r.foreign_blocks_stored, 0);
    assert_eq!(r.honest_blamed_critical, 0, "an honest peer was blamed");
    assert!(
        r.byzantine_met_pairs > 0,
        "the joiners met no liar: {}",
        summary(&r)
    );
    assert!(
        r.byzantine_removed_pairs > 0,
        "no liar was removed: {}",
        summary(&r)
    );
}

#[test]
fn a_partition_heals_and_every_honest_node_converges_on_the_honest_head() {
    let mut s = small("partition", 24, 600, 5);
    // Joiners trickle in: a node whose peers are mostly at genesis decides
    // by quorum that genesis is the head (see the closing note of issue 11).
    s.joiners = 0.5;
    s.join_window_s = 60;
    s.tip_every_s = 2;
    s.tip_blocks = 100;
    s.partition_s = Some(60);
    s.limit_s = 7200;
    let r = scenario::run(&s, |_, _, _| {}).expect("run");
    // The cut side fell behind while the tip grew on the other side...
    assert!(
        r.behind_at_heal.is_some_and(|n| n > 0),
        "the partition cost nothing: {}",
        summary(&r)
    );
    // ... and caught up after the heal, on the honest chain only.
    assert!(
        r.converged_after_heal_s.is_some(),
        "did not converge: {}",
        summary(&r)
    );
    assert_eq!(r.honest_wrong_head, 0);
    assert_eq!(r.foreign_blocks_stored, 0);
    assert_eq!(r.honest_synced, r.honest_nodes, "{}", summary(&r));
}

/// No single point of failure: the boot nodes go away after the joiners
/// started; they finish their sync, and each one, restarted once after the
/// loss while the tip grows, finds the network again through the peers it
/// saved and reaches the new head.
#[test]
fn joiners_keep_syncing_and_rejoin_after_a_restart_when_every_boot_node_goes_offline() {
    let mut s = small("boot-loss", 40, 3000, 9);
    s.join_window_s = 10;
    s.boot_loss_at_s = Some(12);
    s.tip_every_s = 2;
    s.tip_blocks = 300;
    let r = scenario::run(&s, |_, _, _| {}).expect("run");
    assert_eq!(r.joiners_synced, r.joiners, "{}", summary(&r));
    assert_eq!(r.restarted_after_loss, Some(r.joiners), "{}", summary(&r));
    assert_eq!(r.rejoined_after_loss, Some(r.joiners), "{}", summary(&r));
    assert_eq!(r.honest_wrong_head, 0);
    assert_eq!(r.foreign_blocks_stored, 0);
}
