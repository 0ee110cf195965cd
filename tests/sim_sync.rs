//! The sync's rules in the simulator (DESIGN.md §14): whole nodes in one
//! thread, virtual time, seeded, no sockets, no wall clock. Each test is
//! named after the rule it checks and counts what really happened in the
//! run (requests sent, signatures checked, blocks committed, streams
//! removed and why), from the node's own cores or the simulator's log of
//! its links and store.
//!
//! - Stages: across epochs, every signature from six peers, short range
//!   after the source grows, a serving peer killed mid-sync.
//! - Crash windows, named as redb names its crash tests: killed after
//!   staging hashes, after staging blocks, between a batch's verification
//!   and its commit, during map growth, after a commit before its staged
//!   copy is dropped.
//! - Byzantine peers, each behaviour alone next to an honest peer, and the
//!   trust rules (forged hand-over, bad signatures, hashes nobody serves,
//!   broken links, heights nobody serves, the Heads quorum).
//! - Restarts: a peer that restarts is served again at once.
#![cfg(feature = "testkit")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use streamsync::byzantine::Behaviour;
use streamsync::chain::backend::InsertBatch;
use streamsync::chain::{BlockWithSig, ChainBackend, StageId};
use streamsync::config::Network;
use streamsync::crypto::B256;
use streamsync::stream::RemovalReason;
use streamsync::sync::SyncOutcome;
use streamsync::testkit::sim::{CrashPoint, NodeLog};
use streamsync::testkit::{Byzantine, LinkConfig, MemChain, Sim, SimConfig};

/// Virtual time any sync here may take (a bound, not a wait).
const LIMIT: Duration = Duration::from_secs(600);

/// A network whose honest chain is the first `blocks` of a chain of
/// `blocks + extra` (epochs of `epoch_len`), links of 20 ms ± 5 ms, and
/// the rest of the chain (for [`Sim::grow`]). `tune` adjusts the settings
/// (by default Heads decides with one answering peer, and the first cycle
/// waits for one stream).
fn network(
    seed: u64,
    epoch_len: u64,
    blocks: usize,
    extra: usize,
    tune: impl FnOnce(&mut SimConfig),
) -> (Sim, Vec<BlockWithSig>) {
    let (genesis, _, mut all) = common::chain(common::spec(seed, epoch_len, 8), 1, blocks + extra);
    let rest = all.split_off(blocks);
    let source = Arc::new(MemChain::new(&genesis).expect("chain"));
    for batch in all.chunks(500) {
        source
            .insert_verified_batch(&InsertBatch::seal(batch.to_vec(), vec![]))
            .expect("source");
    }
    let link = LinkConfig {
        latency: Duration::from_millis(20),
        jitter: Duration::from_millis(5),
        ..LinkConfig::default()
    };
    let mut cfg = SimConfig::new(Network::Localnet, seed, link);
    cfg.sync.min_peers = 1;
    cfg.sync.init_streams = 1;
    tune(&mut cfg);
    (Sim::new(cfg, genesis, source), rest)
}

/// Staging on disk (`UseMemDB = false`): what the crash windows are about.
fn staged_on_disk(c: &mut SimConfig) {
    c.sync.staged.use_mem_db = false;
}

/// Small batches over short cycles: every peer gets work, and each
/// cycle's last block (whose carried signature is checked) comes from
/// either.
fn small_batches(c: &mut SimConfig) {
    c.sync.staged.max_blocks_per_sync_cycle = 16;
    c.sync.hash_batch = 4;
    c.sync.body_batch = 4;
    c.sync.request_timeout = Duration::from_secs(3);
}

fn synced(sim: &Sim, j: usize) -> bool {
    matches!(sim.nodes()[j].outcome, Some(SyncOutcome::Synced { .. }))
}

/// Runs until node `j` ends its sync synced (it must).
fn sync_to_the_end(sim: &mut Sim, j: usize) {
    let done = sim.run_until(LIMIT, |s| synced(s, j));
    let n = &sim.nodes()[j];
    assert!(
        done,
        "node {j} did not sync: head {}, outcome {:?}, status {:?}",
        n.head(),
        n.outcome,
        n.status
    );
}

fn head_hash(sim: &Sim, i: usize) -> B256 {
    sim.nodes()[i].backend.head().expect("head").hash
}

fn source_head(sim: &Sim) -> (u64, B256) {
    let h = sim.source().head().expect("head");
    (h.number, h.hash)
}

/// Node `j` holds the honest chain's head.
fn assert_at_the_source_head(sim: &Sim, j: usize) {
    let (n, h) = source_head(sim);
    assert_eq!(sim.nodes()[j].head(), n, "node {j}'s head");
    assert_eq!(head_hash(sim, j), h, "node {j}'s head hash");
}

fn log(sim: &Sim, j: usize) -> &NodeLog {
    sim.nodes()[j]
        .stats
        .log
        .as_ref()
        .expect("a log was started")
}

/// Blocks of `range` whose commit signature node `j` never handed to the
/// pairing check.
fn unchecked(sim: &Sim, j: usize, range: std::ops::RangeInclusive<u64>) -> Vec<u64> {
    let l = log(sim, j);
    range.filter(|n| !l.sigs_checked.contains_key(n)).collect()
}

/// Every block node `j` ever committed is the honest chain's.
fn assert_only_honest_blocks_committed(sim: &Sim, j: usize) {
    for (n, h) in &log(sim, j).committed {
        assert_eq!(
            sim.source().hash_by_number(*n).expect("read"),
            Some(*h),
            "block {n} committed off the honest chain"
        );
    }
}

/// The removals node `j`'s stream manager decided, as (node, reason).
fn removals(sim: &Sim, j: usize) -> Vec<(usize, RemovalReason)> {
    sim.stream_status(j)
        .map(|s| s.recent_removals)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(p, r)| sim.node_of(&p).map(|k| (k, r)))
        .collect()
}

// ---- stages ----

/// `MaxBlocksPerSyncCycle` 100 over 333 blocks in epochs of 50: cycle
/// after cycle, each epoch's committee taken over at its hand-over, to
/// the source's head.
#[test]
fn a_sync_across_epochs_runs_cycle_after_cycle_to_the_source_head() {
    let (mut sim, _) = network(21, 50, 333, 0, |c| {
        c.sync.staged.max_blocks_per_sync_cycle = 100;
    });
    let src = sim.add_server();
    sim.set_boot(&[src]);
    let j = sim.add_syncer(Duration::ZERO, true).expect("syncer");
    sim.log(j);
    sync_to_the_end(&mut sim, j);
    assert_at_the_source_head(&sim, j);
    let st = sim.nodes()[j].status.clone().expect("status");
    assert!(
        st.cycles >= 4,
        "333 blocks, cycles of 100: {} cycles",
        st.cycles
    );
    let backend = &sim.nodes()[j].backend;
    for e in 1..=6 {
        assert_eq!(
            backend.committee(e).expect("read"),
            sim.source().committee(e).expect("read"),
            "epoch {e}'s committee"
        );
    }
    // Each commit extends the last: no block twice, none skipped.
    let numbers: Vec<u64> = log(&sim, j).committed.iter().map(|(n, _)| *n).collect();
    assert_eq!(numbers, (1..=333).collect::<Vec<u64>>());
}

/// `VerifyAllSig` with six serving peers: every block's commit signature
/// is handed to the pairing check, and the blocks come from all six.
#[test]
fn a_sync_from_six_peers_with_verify_all_sig_checks_every_signature() {
    let (mut sim, _) = network(22, 40, 400, 0, |c| {
        c.sync.staged.verify_all_sig = true;
        c.sync.staged.max_blocks_per_sync_cycle = 0;
        c.sync.init_streams = 6;
        c.sync.body_batch = 16;
    });
    let servers: Vec<usize> = (0..6).map(|_| sim.add_server()).collect();
    sim.set_boot(&servers);
    let j = sim.add_syncer(Duration::ZERO, true).expect("syncer");
    sim.log(j);
    sync_to_the_end(&mut sim, j);
    assert_at_the_source_head(&sim, j);
    let missed = unchecked(&sim, j, 1..=400);
    assert!(
        missed.is_empty(),
        "{} signatures never checked, from {:?}",
        missed.len(),
        missed.first()
    );
    let idle: Vec<usize> = servers
        .iter()
        .copied()
        .filter(|s| sim.nodes()[*s].stats.served_block_requests == 0)
        .collect();
    assert!(idle.is_empty(), "peers that served no block: {idle:?}");
}

/// A node synced by long range follows the source as it grows ten blocks
/// past it: within `ShortRange`'s threshold it catches up by short range,
/// every signature of those blocks checked.
#[test]
fn short_range_catches_up_after_the_source_grows() {
    let (mut sim, more) = network(23, 100, 50, 10, |_| {});
    let src = sim.add_server();
    sim.set_boot(&[src]);
    let j = sim.add_syncer(Duration::ZERO, false).expect("syncer");
    sim.log(j);
    assert!(sim.run_until(LIMIT, |s| s.nodes()[j].head() == 50));
    let st = sim.nodes()[j].status.clone().expect("status");
    assert_eq!(st.short_ranges, 0, "50 blocks: long range");
    // All ten at once: one short range of ten blocks.
    sim.grow(more, Duration::from_millis(1));
    let reported = |s: &Sim| s.nodes()[j].status.as_ref().is_some_and(|st| st.head == 60);
    assert!(
        sim.run_until(LIMIT, reported),
        "stuck at {}",
        sim.nodes()[j].head()
    );
    assert_at_the_source_head(&sim, j);
    let st = sim.nodes()[j].status.clone().expect("status");
    assert!(
        st.short_ranges >= 1,
        "caught up without a short range: {st:?}"
    );
    let missed = unchecked(&sim, j, 51..=60);
    assert!(
        missed.is_empty(),
        "short range left signatures unchecked: {missed:?}"
    );
}

/// One of three serving peers dies mid-sync: the node drops its stream,
/// at once asks the others for what it had asked the dead one, and
/// reaches the head.
#[test]
fn a_serving_peer_killed_mid_sync_does_not_stop_the_sync() {
    let (mut sim, _) = network(24, 100, 1500, 0, |c| {
        c.sync.staged.max_blocks_per_sync_cycle = 64;
        c.sync.init_streams = 3;
        c.link.bandwidth_bps = 4_000_000;
    });
    let servers: Vec<usize> = (0..3).map(|_| sim.add_server()).collect();
    sim.set_boot(&servers);
    let j = sim.add_syncer(Duration::ZERO, true).expect("syncer");
    // Killed as soon as it has answered one block request: most of the
    // chain is still to be asked for (a later trigger, such as a head, may
    // come when every block is already downloaded, and prove nothing).
    let victim = servers[0];
    assert!(sim.run_until(LIMIT, |s| s.nodes()[victim].stats.served_block_requests > 0));
    let served = sim.nodes()[victim].stats.served_block_requests;
    assert!(served > 0, "the victim served nothing before it died");
    sim.crash(victim);
    let others_before: u64 = servers[1..]
        .iter()
        .map(|s| sim.nodes()[*s].stats.served_block_requests)
        .sum();
    let died = sim.elapsed();
    sync_to_the_end(&mut sim, j);
    // Its requests went to the others when its stream closed, not after
    // their time limit.
    let rest = sim.elapsed() - died;
    let limit = sim.config().sync.request_timeout;
    assert!(
        rest < limit,
        "the rest of the sync took {rest:?}: the dead peer's requests were waited out ({limit:?})"
    );
    assert_at_the_source_head(&sim, j);
    let others_after: u64 = servers[1..]
        .iter()
        .map(|s| sim.nodes()[*s].stats.served_block_requests)
        .sum();
    assert!(
        others_after > others_before,
        "the others served nothing after"
    );
    let st = sim.stream_status(j).expect("up");
    assert!(
        st.removed_total >= 1,
        "the dead peer's stream was not removed"
    );
}

// ---- crash windows ----

/// A 1,500-block network (epochs of 100) of two servers and one syncer
/// from `seed`, `tune`d; the syncer is armed to crash at `point` once its
/// head reaches `from`. Returns the network and the syncer.
fn armed(
    seed: u64,
    tune: impl FnOnce(&mut SimConfig),
    from: u64,
    point: CrashPoint,
) -> (Sim, usize) {
    let (mut sim, _) = network(seed, 100, 1500, 0, tune);
    let servers: Vec<usize> = (0..2).map(|_| sim.add_server()).collect();
    sim.set_boot(&servers);
    let j = sim.add_syncer(Duration::ZERO, true).expect("syncer");
    if from > 0 {
        assert!(sim.run_until(LIMIT, |s| s.nodes()[j].head() >= from));
    }
    sim.crash_on(j, point);
    (sim, j)
}

/// Restarts the crashed node `j` with its log on, syncs it to the end,
/// checks it holds the source's head, and returns its log.
fn restarted_to_the_source_head(sim: &mut Sim, j: usize) -> &NodeLog {
    sim.log(j);
    sim.restart(j).expect("restart");
    sync_to_the_end(sim, j);
    assert_at_the_source_head(sim, j);
    log(sim, j)
}

/// Runs until node `j` has crashed at the point it was armed for.
fn crashed(sim: &mut Sim, j: usize) -> streamsync::testkit::sim::Crashed {
    let n = sim.nodes()[j].stats.crashes.len();
    let done = sim.run_until(LIMIT, |s| s.nodes()[j].stats.crashes.len() > n);
    assert!(done, "node {j} never reached its crash point");
    assert!(!sim.nodes()[j].online);
    sim.nodes()[j].stats.crashes[n].clone()
}

/// Killed right after a staging write took BlockHashes' checkpoint past
/// the head: the restarted node keeps those hashes and never asks for
/// them again, and reaches the source's head.
#[test]
fn killed_after_staging_hashes_resumes_without_refetching_them() {
    let (mut sim, j) = armed(41, staged_on_disk, 0, CrashPoint::AfterStagingHashes);
    crashed(&mut sim, j);
    let head = sim.nodes()[j].head();
    let staging = sim.nodes()[j].staging();
    let hashed_to = staging.progress(StageId::BlockHashes);
    assert!(hashed_to > head, "nothing staged above the head {head}");
    assert_eq!(
        staging.hashes(head + 1..=hashed_to).len() as u64,
        hashed_to - head,
        "every hash up to the checkpoint is on disk"
    );
    let l = restarted_to_the_source_head(&mut sim, j);
    assert_eq!(
        l.hashes_asked_in(head + 1..=hashed_to),
        0,
        "hashes staged before the crash ({}..={hashed_to}) were asked again",
        head + 1
    );
    assert!(
        l.hashes_asked_in(hashed_to + 1..=1500) > 0,
        "the restarted node asked no hash at all: the count proves nothing"
    );
    let st = sim.nodes()[j].status.as_ref().expect("status");
    assert_eq!(st.restored_hashes, hashed_to - head);
}

/// Killed right after a staging write took BlockBodies' checkpoint past
/// the head (the process-kill test of `tests/resume.rs`, at an exact
/// point): the restarted node downloads no block it committed or staged,
/// and every other block once.
#[test]
fn killed_after_staging_blocks_resumes_without_redownloading_committed_or_staged_blocks() {
    // 2 Mbit/s: blocks arrive slower than they verify, so some are
    // staged above the head when the node dies.
    let slow_links = |c: &mut SimConfig| {
        staged_on_disk(c);
        c.link.bandwidth_bps = 2_000_000;
    };
    let (mut sim, j) = armed(42, slow_links, 300, CrashPoint::AfterStagingBodies);
    crashed(&mut sim, j);
    let head = sim.nodes()[j].head();
    let bodies_to = sim.nodes()[j].staging().progress(StageId::BlockBodies);
    assert!(bodies_to > head, "no block staged above the head {head}");
    let l = restarted_to_the_source_head(&mut sim, j);
    assert_eq!(
        l.blocks_asked_in(0..=bodies_to),
        0,
        "blocks committed (to {head}) or staged (to {bodies_to}) were downloaded again"
    );
    assert_eq!(
        l.blocks_asked_in(bodies_to + 1..=1500) as u64,
        1500 - bodies_to,
        "a block above the staged ones was never asked"
    );
    let st = sim.nodes()[j].status.as_ref().expect("status");
    assert_eq!(st.restored_blocks, bodies_to - head);
}

/// Killed when a batch is verified and its commit emitted, before the
/// insert: nothing of the batch is stored; the restarted node starts from
/// the head before it, takes the batch's blocks from staging instead of
/// the network, and commits them again.
#[test]
fn killed_between_a_batchs_verification_and_its_commit_stores_nothing_of_it() {
    let (mut sim, j) = armed(43, staged_on_disk, 300, CrashPoint::BetweenVerifyAndCommit);
    let c = crashed(&mut sim, j);
    let batch = c.blocks.clone();
    assert_eq!(c.head + 1, *batch.start(), "the batch extends the head");
    assert_eq!(
        sim.nodes()[j].head(),
        c.head,
        "part of the batch was stored"
    );
    let backend = &sim.nodes()[j].backend;
    assert_eq!(backend.hash_by_number(*batch.start()).expect("read"), None);
    let l = restarted_to_the_source_head(&mut sim, j);
    assert_eq!(
        l.blocks_asked_in(batch.clone()),
        0,
        "the batch's staged blocks were downloaded again"
    );
    let first = l.committed.first().map(|(n, _)| *n);
    assert_eq!(
        first,
        Some(*batch.start()),
        "the restarted node's first commit does not start at the uncommitted batch"
    );
}

/// Killed inside a commit's insert while LMDB grows its map (in the
/// simulator: an insert that does not land). With staging in memory
/// (`UseMemDB`), the batch is gone with the process: nothing of it is
/// stored, and the restarted node downloads every block of it again and
/// commits it.
#[test]
fn killed_during_map_growth_stores_nothing_of_the_batch_and_fetches_it_again() {
    let (mut sim, j) = armed(44, |_| {}, 300, CrashPoint::DuringMapGrowth);
    let c = crashed(&mut sim, j);
    let batch = c.blocks.clone();
    assert_eq!(
        sim.nodes()[j].head(),
        c.head,
        "part of the batch was stored"
    );
    assert_eq!(c.head + 1, *batch.start());
    let l = restarted_to_the_source_head(&mut sim, j);
    assert_eq!(
        l.blocks_asked_in(batch.clone()),
        batch.clone().count(),
        "a block of the lost batch was not downloaded again"
    );
    assert_eq!(
        l.blocks_asked_in(0..=c.head),
        0,
        "a committed block was downloaded again"
    );
    assert_eq!(l.committed.first().map(|(n, _)| *n), Some(*batch.start()));
}

/// Killed after a commit landed, before its staged copy was dropped: the
/// stale staged blocks at or below the head are ignored on restart (not
/// taken for blocks above it), nothing committed is asked again, and the
/// next commit drops them.
#[test]
fn killed_after_a_commit_before_its_staged_copy_is_dropped_ignores_the_stale_copy() {
    let (mut sim, j) = armed(
        45,
        staged_on_disk,
        300,
        CrashPoint::AfterCommitBeforeUnstage,
    );
    let c = crashed(&mut sim, j);
    let batch = c.blocks.clone();
    let head = sim.nodes()[j].head();
    assert_eq!(head, *batch.end(), "the commit landed");
    let stale = sim.nodes()[j]
        .staging()
        .blocks(batch.clone(), usize::MAX)
        .len();
    assert_eq!(
        stale,
        batch.clone().count(),
        "the staged copy is still there"
    );
    let l = restarted_to_the_source_head(&mut sim, j);
    assert_eq!(
        l.blocks_asked_in(0..=head),
        0,
        "a committed block was asked again"
    );
    assert_eq!(l.committed.first().map(|(n, _)| *n), Some(head + 1));
    assert_eq!(
        sim.nodes()[j].staging().blocks(0..=head, usize::MAX).len(),
        0,
        "the stale copy outlived the next commit"
    );
}

// ---- byzantine peers, each alone next to an honest one ----

/// A node syncing 220 blocks (epochs of 50) in small batches from honest
/// peers and one peer behaving as `kind`.
struct Duel {
    sim: Sim,
    node: usize,
    honest: Vec<usize>,
    liar: usize,
}

impl Duel {
    /// One honest peer and the liar.
    fn run(kind: Byzantine, seed: u64) -> Duel {
        Duel::with_honest(kind, seed, 1)
    }

    /// `honest` honest peers and the liar.
    fn with_honest(kind: Byzantine, seed: u64, honest: usize) -> Duel {
        let d = Duel::start(kind, seed, honest);
        d.assert_honest_outcome(kind);
        d
    }

    /// The run, before any assertion.
    fn start(kind: Byzantine, seed: u64, honest: usize) -> Duel {
        let (mut sim, _) = network(seed, 50, 220, 0, |c| {
            small_batches(c);
            c.sync.init_streams = honest + 1;
        });
        let honest: Vec<usize> = (0..honest).map(|_| sim.add_server()).collect();
        let liar = sim.add_byzantine(kind, None);
        let mut boot = honest.clone();
        boot.push(liar);
        sim.set_boot(&boot);
        let node = sim.add_syncer(Duration::ZERO, true).expect("syncer");
        sim.log(node);
        sync_to_the_end(&mut sim, node);
        Duel {
            sim,
            node,
            honest,
            liar,
        }
    }

    /// What holds whatever the liar does: the node holds the honest head,
    /// asked the liar something, never removed an honest peer, and
    /// committed only honest blocks.
    fn assert_honest_outcome(&self, kind: Byzantine) {
        let (sim, j) = (&self.sim, self.node);
        assert_at_the_source_head(sim, j);
        assert!(
            sim.nodes()[j].stats.met.contains(&self.liar),
            "{kind:?}: the node never asked the liar anything"
        );
        let r = removals(sim, j);
        assert!(
            !r.iter().any(|(k, _)| self.honest.contains(k)),
            "{kind:?}: an honest peer was removed: {r:?}"
        );
        assert_only_honest_blocks_committed(sim, j);
    }

    fn removals(&self) -> Vec<(usize, RemovalReason)> {
        removals(&self.sim, self.node)
    }

    fn assert_liar_removed_critically(&self) {
        let r = self.removals();
        assert!(
            r.contains(&(self.liar, RemovalReason::CriticalError)),
            "the liar was not removed for a critical error: {r:?}"
        );
    }

    fn assert_liar_never_removed_critically(&self) {
        let r = self.removals();
        assert!(
            !r.contains(&(self.liar, RemovalReason::CriticalError)),
            "a peer that proved no lie was removed for a critical error: {r:?}"
        );
    }

    /// Removed, for a fault short of a proven lie (unresponsive).
    fn assert_liar_removed_softly(&self) {
        let r = self.removals();
        assert!(
            r.iter().any(|(k, _)| *k == self.liar),
            "the peer was never removed: {r:?}"
        );
        self.assert_liar_never_removed_critically();
    }

    fn outcome(&self) -> Option<SyncOutcome> {
        self.sim.nodes()[self.node].outcome.clone()
    }
}

#[test]
fn a_peer_serving_wrong_bodies_is_removed_critically_and_the_honest_one_never() {
    let d = Duel::run(Byzantine::Serves(Behaviour::WrongBodies), 51);
    d.assert_liar_removed_critically();
}

#[test]
fn a_peer_serving_bad_signatures_is_removed_critically_and_the_honest_one_never() {
    let d = Duel::run(Byzantine::Serves(Behaviour::BadSignatures), 52);
    d.assert_liar_removed_critically();
}

#[test]
fn a_peer_lying_about_its_height_does_not_set_the_target() {
    let d = Duel::run(Byzantine::Serves(Behaviour::LyingHeights), 53);
    d.assert_liar_never_removed_critically();
    assert!(
        matches!(
            d.outcome(),
            Some(SyncOutcome::Synced {
                head: 220,
                target: 220
            })
        ),
        "{:?}",
        d.outcome()
    );
}

#[test]
fn a_peer_serving_garbage_is_removed_critically_and_the_honest_one_never() {
    let d = Duel::run(Byzantine::Serves(Behaviour::Garbage), 54);
    d.assert_liar_removed_critically();
}

/// Silence proves no lie: the peer is dropped as unresponsive.
#[test]
fn a_silent_peer_is_dropped_as_unresponsive_not_as_a_liar() {
    let d = Duel::run(Byzantine::Serves(Behaviour::Silence), 55);
    d.assert_liar_removed_softly();
}

#[test]
fn a_peer_serving_a_forged_fork_is_removed_critically_and_the_honest_one_never() {
    let d = Duel::run(Byzantine::Serves(Behaviour::ForgedFork), 56);
    d.assert_liar_removed_critically();
}

/// A stream whose hashes nobody can serve (it cannot serve them itself)
/// pays critically once the canonical blocks at those numbers are
/// committed and prove its claims false.
#[test]
fn a_hash_source_whose_hashes_nobody_can_serve_pays() {
    let d = Duel::run(Byzantine::Serves(Behaviour::FakeHashes), 57);
    d.assert_liar_removed_critically();
    let st = d.sim.nodes()[d.node].status.clone().expect("status");
    assert!(st.liars_proven >= 1, "no liar proven");
}

/// A stream claims the hash of a forged block and serves it; the honest
/// block after it (from the other peer) does not link. The hash list that
/// is not a chain proves its source lied; the honest sender of the next
/// block is not blamed.
#[test]
fn a_broken_link_blames_the_hash_source_not_the_next_sender() {
    let d = Duel::run(Byzantine::Serves(Behaviour::BrokenLinks), 58);
    d.assert_liar_removed_critically();
}

/// A peer that claims the honest head and answers every hash and block
/// request "absent", next to an honest majority: its vote is capped at
/// what it served and outvoted, it proved no lie, and the sync reaches the
/// head from the others.
#[test]
fn a_withholding_peer_next_to_an_honest_majority_neither_stops_the_sync_nor_is_blamed_for_a_lie() {
    let d = Duel::with_honest(Byzantine::Withholding, 59, 2);
    d.assert_liar_never_removed_critically();
}

/// The same peer next to a single honest peer: the sync still reaches
/// the head the honest peer serves.
#[test]
fn a_withholding_peer_alone_with_one_honest_peer_does_not_stop_the_sync_short_of_the_head() {
    let d = Duel::run(Byzantine::Withholding, 59);
    d.assert_liar_never_removed_critically();
}

/// When a background Heads round lowers the target to the node's head in
/// the middle of a cycle, the cycle ends at once: nothing is left to do,
/// so nothing waits for the stall watchdog.
#[test]
#[ignore = "premise gone: since Heads takes the MinPeers-th vote, the Withholding peer's capped vote (seed 59) no longer lowers the target, so this run passes without reaching the path it was written for (finish::set_target with cycle_end < cycle_start, head == target), which is unchanged; it needs a run where a background Heads round lowers the target to the head mid-cycle"]
fn a_target_lowered_to_the_head_mid_cycle_ends_the_cycle_without_waiting_for_the_watchdog() {
    let d = Duel::start(Byzantine::Withholding, 59, 1);
    let st = d.sim.nodes()[d.node].status.clone().expect("status");
    let watchdog = d.sim.config().sync.stall_timeout;
    assert!(
        d.sim.elapsed() < watchdog,
        "ended after {:?} (the watchdog fires after {watchdog:?}): {:?}",
        d.sim.elapsed(),
        st.last_error
    );
}

/// A peer whose every answer comes after the request's time limit is
/// dropped as unresponsive, not as a liar; the honest peer serves it all.
#[test]
fn a_slow_drip_peer_is_dropped_as_unresponsive_not_as_a_liar() {
    let d = Duel::run(Byzantine::SlowDrip, 60);
    d.assert_liar_removed_softly();
}

/// Two honest peers and four liars (wrong bodies, bad signatures, lying
/// heights, garbage): the node reaches the honest head, commits only
/// honest blocks and never removes an honest peer.
#[test]
fn mixed_byzantine_peers_with_an_honest_majority_of_votes_leave_the_honest_head() {
    let (mut sim, _) = network(61, 50, 300, 0, |c| {
        c.sync.staged.max_blocks_per_sync_cycle = 100;
        c.sync.init_streams = 6;
    });
    let honest: Vec<usize> = (0..2).map(|_| sim.add_server()).collect();
    let liars: Vec<usize> = Behaviour::ALL[..4]
        .iter()
        .map(|b| sim.add_byzantine(Byzantine::Serves(*b), None))
        .collect();
    let boot: Vec<usize> = honest.iter().chain(&liars).copied().collect();
    sim.set_boot(&boot);
    let j = sim.add_syncer(Duration::ZERO, true).expect("syncer");
    sim.log(j);
    sync_to_the_end(&mut sim, j);
    assert_at_the_source_head(&sim, j);
    let r = removals(&sim, j);
    assert!(
        !r.iter().any(|(k, _)| honest.contains(k)),
        "an honest peer was removed: {r:?}"
    );
    assert_only_honest_blocks_committed(&sim, j);
    let met = &sim.nodes()[j].stats.met;
    assert!(
        liars.iter().filter(|l| met.contains(l)).count() >= 3,
        "the node met too few liars to prove anything: {met:?}"
    );
}

// ---- trust ----

/// A peer serving real blocks up to an epoch's last block, then a forged
/// last block naming its own committee, then blocks it signs. With the
/// default (sampled) verification the node alone with it commits nothing
/// from the hand-over on and removes it critically; an honest peer found
/// later brings it to the honest head. Every block ever committed is the
/// honest chain's.
#[test]
fn a_forged_committee_hand_over_is_never_committed() {
    let (mut sim, _) = network(31, 100, 400, 0, small_batches);
    let hand_over = sim.source().chain_spec().epoch_last_block(1);
    let liar = sim.add_byzantine(Byzantine::Serves(Behaviour::ForgedFork), None);
    sim.set_boot(&[liar]);
    let j = sim.add_syncer(Duration::ZERO, true).expect("syncer");
    sim.log(j);
    let critical = (liar, RemovalReason::CriticalError);
    sim.run_until(LIMIT, |s| {
        removals(s, j).contains(&critical) || s.nodes()[j].head() >= hand_over
    });
    assert!(
        sim.nodes()[j].head() < hand_over,
        "committed to {} with only the forger; the hand-over is {hand_over}",
        sim.nodes()[j].head()
    );
    assert!(
        removals(&sim, j).contains(&critical),
        "the forger was not removed: {:?}",
        removals(&sim, j)
    );
    // An honest peer appears (the node finds it by discovery).
    let honest = sim.add_server();
    sim.set_boot(&[liar, honest]);
    sync_to_the_end(&mut sim, j);
    assert_at_the_source_head(&sim, j);
    assert_only_honest_blocks_committed(&sim, j);
    let r = removals(&sim, j);
    assert!(!r.iter().any(|(k, _)| *k == honest), "{r:?}");
}

/// The commit signature stored for each block is the one the hash chain
/// covers (or, for the head, the one verified), never a copy a peer sent
/// beside a block: next to a `BadSignatures` peer that serves blocks, the
/// node stores exactly the source's signatures, block by block. (One
/// epoch: SyncEpoch, which checks the copies sent beside epoch blocks,
/// would remove the liar before it serves any.)
#[test]
fn a_node_synced_next_to_a_bad_signatures_peer_stores_exactly_the_sources_signatures() {
    let (mut sim, _) = network(32, 1000, 220, 0, |c| {
        c.sync.staged.max_blocks_per_sync_cycle = 0;
        c.sync.body_batch = 4;
        c.sync.hash_batch = 16;
        c.sync.init_streams = 3;
    });
    let a = sim.add_server();
    let b = sim.add_server();
    let liar = sim.add_byzantine(Byzantine::Serves(Behaviour::BadSignatures), None);
    sim.set_boot(&[a, b, liar]);
    let j = sim.add_syncer(Duration::ZERO, true).expect("syncer");
    sync_to_the_end(&mut sim, j);
    assert_at_the_source_head(&sim, j);
    assert!(
        sim.nodes()[liar].stats.served_block_requests > 0,
        "the liar served no block: the comparison proves nothing"
    );
    let backend = &sim.nodes()[j].backend;
    for n in 0..=220u64 {
        assert_eq!(
            backend.commit_sig(n).expect("read"),
            sim.source().commit_sig(n).expect("read"),
            "block {n}: stored signature differs from the source's"
        );
    }
}

/// The only peer claims a height a million blocks ahead while serving
/// 600. The sync fetches everything it has, treats its claim as 600 (what
/// it showed it can serve) and ends synced there, instead of asking again
/// and again for blocks it does not have.
#[test]
fn a_height_no_one_can_serve_does_not_stall_the_sync() {
    let (mut sim, _) = network(35, 100, 600, 0, |_| {});
    let liar = sim.add_byzantine(Byzantine::Serves(Behaviour::LyingHeights), None);
    sim.set_boot(&[liar]);
    let j = sim.add_syncer(Duration::ZERO, true).expect("syncer");
    sim.log(j);
    sync_to_the_end(&mut sim, j);
    assert_at_the_source_head(&sim, j);
    assert_eq!(
        sim.nodes()[j].outcome,
        Some(SyncOutcome::Synced {
            head: 600,
            target: 600
        })
    );
    let l = log(&sim, j);
    // At most the hash requests already in flight when its first "absent"
    // came back (4 per stream, 1,024 numbers each); never asked again.
    let past: u32 = l.hashes_asked.range(601..).map(|(_, k)| *k).sum();
    assert!(
        past <= 4 * 1024,
        "asked {past} times for hashes past the peer's chain"
    );
}

/// Heads needs `MinPeers` answering peers. With two of three the node
/// decides nothing (it neither syncs nor declares itself synced); when a
/// third appears, it syncs.
#[test]
fn heads_needs_min_peers_answering_peers() {
    let (mut sim, _) = network(36, 50, 120, 0, |c| {
        c.sync.min_peers = 3;
        c.sync.init_wait = Duration::ZERO;
    });
    let a = sim.add_server();
    let b = sim.add_server();
    sim.set_boot(&[a, b]);
    let j = sim.add_syncer(Duration::ZERO, true).expect("syncer");
    // A minute with two of the three: nothing decided.
    sim.run_until(Duration::from_secs(60), |_| false);
    let n = &sim.nodes()[j];
    let st = n.status.clone().expect("status");
    assert_eq!(n.head(), 0, "synced without a quorum");
    assert!(!st.synced, "declared synced without a quorum");
    assert!(n.outcome.is_none() && n.syncing());
    let why = st.last_error.unwrap_or_default();
    assert!(why.contains("need 3"), "{why}");
    let c = sim.add_server();
    sim.set_boot(&[a, b, c]);
    sync_to_the_end(&mut sim, j);
    assert_at_the_source_head(&sim, j);
}

// ---- restarts ----

/// A node that dies (its connections just end) and restarts, twice, is
/// taken back and served by its peers at once each time: a disconnect is
/// not a failure, and cooldowns decide whom a node dials, not whom it
/// serves.
#[test]
fn a_peer_restarted_twice_is_served_again_at_once() {
    let (mut sim, _) = network(71, 100, 1500, 0, |c| {
        c.sync.init_streams = 3;
        c.link.bandwidth_bps = 4_000_000;
    });
    let servers: Vec<usize> = (0..3).map(|_| sim.add_server()).collect();
    sim.set_boot(&servers);
    let j = sim.add_syncer(Duration::ZERO, true).expect("syncer");
    let served =
        |s: &Sim| -> Vec<u64> { servers.iter().map(|k| s.nodes()[*k].stats.served).collect() };
    for round in 0..2 {
        let at = sim.nodes()[j].head() + 200;
        assert!(
            sim.run_until(LIMIT, |s| s.nodes()[j].head() >= at),
            "round {round}"
        );
        sim.crash(j);
        sim.restart(j).expect("restart");
        let before = served(&sim);
        let again = |s: &Sim| {
            let now = served(s);
            s.nodes()[j].active_streams() == servers.len()
                && now.iter().zip(&before).all(|(a, b)| a > b)
        };
        assert!(
            sim.run_until(Duration::from_secs(1), again),
            "round {round}: not taken back and served by every peer within 1 s: \
             {} streams, served {:?} before, {:?} after",
            sim.nodes()[j].active_streams(),
            before,
            served(&sim)
        );
        for k in &servers {
            let st = sim.stream_status(*k).expect("up");
            let me = sim.nodes()[j].peer_id;
            assert!(
                !st.in_cooldown.iter().any(|(p, _)| *p == me),
                "round {round}: server {k} put the restarted peer in cooldown"
            );
        }
    }
    sync_to_the_end(&mut sim, j);
    assert_at_the_source_head(&sim, j);
}
