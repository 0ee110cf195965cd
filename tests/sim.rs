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
