//! The many-node simulator (`testkit::Sim`, DESIGN.md §14): whole nodes in
//! one thread, virtual time, no sockets, no wall clock.
#![cfg(feature = "testkit")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use streamsync::chain::backend::InsertBatch;
use streamsync::chain::ChainBackend;
use streamsync::sync::SyncOutcome;
use streamsync::testkit::{MemChain, Sim};

const BLOCKS: usize = 3000;

/// A source chain of `BLOCKS` blocks (epochs of 100) and a fresh sim.
fn network(seed: u64) -> (Arc<MemChain>, Sim) {
    let (genesis, _, blocks) = common::chain(common::spec(11, 100, 4), 2, BLOCKS);
    let source = Arc::new(MemChain::new(&genesis).expect("chain"));
    for batch in blocks.chunks(500) {
        source
            .insert_verified_batch(&InsertBatch::seal(batch.to_vec(), vec![]))
            .expect("source");
    }
    let sim = Sim::new(
        genesis,
        seed,
        Duration::from_millis(50),
        Duration::from_millis(20),
    );
    (source, sim)
}

#[test]
fn a_joiner_syncs_from_eight_nodes_over_100ms_round_trips_and_uses_them_all() {
    let (source, mut sim) = network(1);
    let servers: Vec<usize> = (0..8).map(|_| sim.add_server(source.clone())).collect();
    let j = sim.add_joiner(&servers).expect("joiner");
    let synced = sim.run_until(Duration::from_secs(120), |s| {
        s.nodes()[j].chain.head().map_or(0, |h| h.number) == BLOCKS as u64
    });
    assert!(
        synced,
        "head {:?} after {:?}",
        sim.nodes()[j].chain.head(),
        sim.elapsed()
    );
    assert_eq!(
        sim.nodes()[j].chain.head().expect("head").hash,
        source.head().expect("head").hash
    );
    for s in &servers {
        assert!(sim.nodes()[*s].served > 0, "server {s} never asked");
    }
    // Virtual time: a handful of round trips of start-up, then the window.
    assert!(
        sim.elapsed() < Duration::from_secs(30),
        "{:?}",
        sim.elapsed()
    );
}

#[test]
fn a_joiner_crashed_mid_sync_keeps_what_it_committed_and_resumes_from_there() {
    let (source, mut sim) = network(2);
    let servers: Vec<usize> = (0..4).map(|_| sim.add_server(source.clone())).collect();
    let j = sim.add_joiner(&servers).expect("joiner");
    let head = |s: &Sim| s.nodes()[j].chain.head().map_or(0, |h| h.number);
    assert!(sim.run_until(Duration::from_secs(60), |s| head(s) >= 1000));
    sim.crash(j);
    let kept = head(&sim);
    assert!(kept >= 1000, "committed blocks survive the crash: {kept}");
    // Down for a while: nothing happens to it.
    sim.run_until(Duration::from_secs(5), |_| false);
    assert_eq!(head(&sim), kept);
    let served_before: u64 = servers.iter().map(|s| sim.nodes()[*s].served).sum();
    sim.restart(j).expect("restart");
    assert!(sim.run_until(Duration::from_secs(60), |s| matches!(
        s.nodes()[j].outcome,
        Some(SyncOutcome::Synced { .. })
    )));
    assert_eq!(head(&sim), BLOCKS as u64);
    assert_eq!(
        sim.nodes()[j].chain.head().expect("head").hash,
        source.head().expect("head").hash
    );
    let served_after: u64 = servers.iter().map(|s| sim.nodes()[*s].served).sum();
    assert!(
        served_after > served_before,
        "the restarted sync asked again"
    );
}
