//! Hostile peers against a real node over loopback (DESIGN.md §15, issue
//! 10): each test runs one attack and asserts that an honest peer is still
//! served while it runs, and that the attacker pays for it.
#![cfg(feature = "testkit")] // the direct client (tests/common/peer.rs) is test support

mod common;

use std::time::{Duration, Instant};

use common::peer::*;
use streamsync::net::{CloseReason, NetEvent};
use streamsync::server::RateLimits;
use streamsync::wire::{Message, Request, Response};

const T: Duration = Duration::from_secs(10);

/// An authenticated peer pipelines requests whose answers (~25 MiB) far
/// exceed the socket buffers and never reads: the node's write capacity
/// must not be held by its unread frames (on 78dc348 the 32 global write
/// permits were, and the node answered no one), and it is disconnected
/// once it has taken nothing for the write-progress deadline.
#[test]
fn a_peer_that_does_not_read_freezes_no_one_and_is_dropped() {
    // 128 blocks of ~2 KiB: a GetBlocksByNumber(1..=128) answer is ~256 KiB.
    let (genesis, _, blocks) = common::chain(common::spec(1, 1000, 4), 40, 128);
    let mut cfg = net_config(localnet());
    cfg.write_progress_timeout = Duration::from_secs(2);
    let a = serving_node(&genesis, &blocks, cfg, RateLimits::default());
    let mut attacker = RawPeer::honest(a.addr(), localnet());
    a.wait_up();
    for i in 1..=100 {
        attacker.send(&Message::Request(
            i,
            Request::GetBlocksByNumber((1..=128).collect()),
        ));
    }
    let honest = client_node(net_config(localnet()));
    let s = honest.connect(&a);
    // Served at once, many times over, while the attacker holds its
    // answers unread.
    for _ in 0..20 {
        let t = Instant::now();
        let r = honest.client.request(s.id, Request::GetBlockNumber, T);
        assert!(
            matches!(r, Ok(Response::BlockNumber { number: 128, .. })),
            "honest peer not served while a peer does not read: {r:?} after {:?}",
            t.elapsed()
        );
    }
    // The attacker is dropped for not reading (the first stream to go
    // down, within `wait_down`'s limit); the honest stream stays.
    assert_eq!(a.wait_down(), CloseReason::WriteStalled);
    assert!(
        honest
            .client
            .request(s.id, Request::GetBlockNumber, T)
            .is_ok(),
        "honest stream still served"
    );
    drop(attacker);
}

/// TCP connections that never say a word arrive faster than the handshake
/// deadline expires them: on 78dc348 they kept all 64 pre-handshake slots
/// full and 0 of 14 honest dials got through. The oldest pending handshake
/// is evicted for a newcomer, so every honest dial completes, from the
/// same 127.0.0.1 as the attacker.
#[test]
fn silent_sockets_cannot_keep_honest_dials_out() {
    let (genesis, _, blocks) = common::chain(common::spec(1, 1000, 4), 2, 8);
    let mut cfg = net_config(localnet());
    cfg.handshake_timeout = Duration::from_secs(10); // the default
    let a = serving_node(&genesis, &blocks, cfg, RateLimits::default());
    let addr = a.addr();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (burst_done, burst) = crossbeam::channel::bounded(1);
    let attacker = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            // 200 at once, then 50 a second: far more than 64 slots can
            // hold for a 10 s handshake deadline.
            for i in 0.. {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                if let Ok(s) = std::net::TcpStream::connect(addr) {
                    held.push(s);
                }
                if i == 200 {
                    let _ = burst_done.send(());
                }
                if i >= 200 {
                    std::thread::sleep(Duration::from_millis(20)); // attack pacing
                }
            }
            held.len()
        })
    };
    burst.recv_timeout(T).expect("the burst was sent");
    let mut served = 0;
    for _ in 0..14 {
        let honest = client_node(net_config(localnet()));
        let s = honest.connect(&a);
        if honest
            .client
            .request(s.id, Request::GetBlockNumber, T)
            .is_ok()
        {
            served += 1;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = attacker.join().expect("attacker");
    assert!(sent > 200, "the attack opened {sent} sockets");
    assert_eq!(
        served, 14,
        "honest dials served while silent sockets arrive"
    );
}

/// Keys of a new identity for the localnet protocol.
fn fresh_keys() -> streamsync::net::session::LocalKeys {
    streamsync::net::session::LocalKeys::new(
        &streamsync::crypto::NodeIdentity::generate(),
        localnet(),
    )
    .expect("keys")
}

/// Resident memory of this test process, bytes (`VmRSS`).
fn rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Peers each answer a request of ours with a frame announced at 16 MiB
/// and sent but for a few bytes: on 78dc348 each held ~16 MiB with no
/// overall limit (200 peers, 3.2 GiB). The inbound budget closes the
/// connections holding the largest partial frames, and the node keeps
/// being served by an honest peer throughout.
#[test]
fn partial_frames_cannot_exhaust_memory() {
    const ATTACKERS: usize = 16;
    const FRAME: usize = 16 << 20;
    let (genesis, _, blocks) = common::chain(common::spec(1, 1000, 4), 2, 8);
    let a = serving_node(
        &genesis,
        &blocks,
        net_config(localnet()),
        RateLimits::default(),
    );
    let mut cfg = net_config(localnet());
    cfg.read_buffer_budget = 32 << 20;
    let victim = client_node(cfg);
    let s = victim.connect(&a);
    let before = rss();
    let chunk = vec![0x5a; 1 << 20];
    let mut attackers = Vec::new();
    let evicted = std::cell::Cell::new(0);
    let count = |e: NetEvent| match e {
        NetEvent::StreamDown(d) if d.reason == CloseReason::ReadBudget => {
            evicted.set(evicted.get() + 1)
        }
        NetEvent::StreamDown(d) => panic!("a stream closed for another reason: {}", d.reason),
        _ => {}
    };
    for _ in 0..ATTACKERS {
        let mut p = RawPeer::honest(victim.addr(), localnet());
        let id = loop {
            match victim.next_event() {
                NetEvent::StreamUp(i) => break i.id,
                e => count(e),
            }
        };
        // The node asks; the attacker "answers" with a partial frame (a
        // large frame is only valid as an answer).
        victim
            .net
            .handle()
            .send(id, &Message::Request(7, Request::GetBlockNumber))
            .expect("send");
        while !matches!(p.recv(), Some(Message::Request(..)) | None) {}
        p.send_unframed(&(FRAME as u32).to_be_bytes());
        for _ in 0..FRAME / chunk.len() - 1 {
            p.send_unframed(&chunk);
        }
        p.send_unframed(&chunk[..chunk.len() - 16]);
        attackers.push(p);
        assert!(
            victim
                .client
                .request(s.id, Request::GetBlockNumber, T)
                .is_ok(),
            "the node still served by its honest peer during the attack"
        );
    }
    let grown = rss().saturating_sub(before);
    // The budget (32 MiB), one frame over it before the eviction, and the
    // allocator's slack; without a budget the partial frames alone hold
    // 16 × 16 MiB = 256 MiB.
    assert!(grown < 128 << 20, "RSS grew {} MiB", grown >> 20);
    while evicted.get() < ATTACKERS - 2 {
        let e = victim.next_event();
        count(e);
    }
    assert!(
        victim
            .client
            .request(s.id, Request::GetBlockNumber, T)
            .is_ok(),
        "served after the attack"
    );
}

/// A peer that starts a frame and stops (slowloris) is closed at the frame
/// deadline instead of holding its buffer for as long as it stays
/// connected (78dc348 had no such deadline).
#[test]
fn a_started_frame_must_complete_in_time() {
    let (genesis, _, blocks) = common::chain(common::spec(1, 1000, 4), 2, 8);
    let mut cfg = net_config(localnet());
    cfg.frame_timeout = Duration::from_secs(1);
    let a = serving_node(&genesis, &blocks, cfg, RateLimits::default());
    let mut slow = RawPeer::honest(a.addr(), localnet());
    a.wait_up();
    slow.send_unframed(&1000u32.to_be_bytes());
    slow.send_unframed(&[0x5a; 100]);
    let honest = client_node(net_config(localnet()));
    let s = honest.connect(&a);
    assert!(honest
        .client
        .request(s.id, Request::GetBlockNumber, T)
        .is_ok());
    assert_eq!(a.wait_down(), CloseReason::FrameTimeout);
    assert!(honest
        .client
        .request(s.id, Request::GetBlockNumber, T)
        .is_ok());
}

/// Authenticated peers that connect and idle: on 78dc348 1,100 of them were
/// all accepted. Inbound connections are capped (`MaxInboundStreams`) and
/// the node can still dial out: outbound slots are its own.
#[test]
fn idle_inbound_streams_are_capped_and_cannot_take_outbound_slots() {
    let (genesis, _, blocks) = common::chain(common::spec(1, 1000, 4), 2, 8);
    let mut cfg = net_config(localnet());
    cfg.max_inbound = 16;
    let a = serving_node(&genesis, &blocks, cfg, RateLimits::default());
    let keys = fresh_keys();
    let mut idle = Vec::new();
    let mut refused = 0;
    for _ in 0..24 {
        match RawPeer::connect(a.addr(), &keys) {
            Ok(p) => idle.push(p),
            Err(_) => refused += 1,
        }
    }
    assert_eq!(idle.len(), 16, "inbound capped");
    assert_eq!(refused, 8);
    // Inbound full: the node still dials out.
    let other = serving_node(
        &genesis,
        &blocks,
        net_config(localnet()),
        RateLimits::default(),
    );
    a.net
        .handle()
        .dial(other.addr(), Some(other.identity.peer_id()))
        .expect("dial");
    let up = loop {
        match a.next_event() {
            NetEvent::StreamUp(i) if !i.inbound => break i,
            NetEvent::StreamDown(d) if !d.inbound => panic!("dial failed: {}", d.reason),
            _ => {}
        }
    };
    assert_eq!(up.peer_id, other.identity.peer_id());
}

/// `StreamsPerIP`: past the cap, streams from the same address are refused
/// at accept.
#[test]
fn streams_from_one_ip_are_capped() {
    let (genesis, _, blocks) = common::chain(common::spec(1, 1000, 4), 2, 8);
    let mut cfg = net_config(localnet());
    cfg.max_streams_per_ip = 4;
    let a = serving_node(&genesis, &blocks, cfg, RateLimits::default());
    let keys = fresh_keys();
    let opened: Vec<_> = (0..6)
        .filter_map(|_| RawPeer::connect(a.addr(), &keys).ok())
        .collect();
    assert_eq!(opened.len(), 4);
}

/// A peer that owes no answer announces a 16 MiB frame: only an answer may
/// be that large, so it is closed when the 4 length bytes arrive, before it
/// can make the node buffer anything (78dc348 buffered up to 16 MiB).
#[test]
fn a_peer_owed_nothing_cannot_announce_a_large_frame() {
    // A node that only makes requests: it asks the attacker nothing.
    let victim = client_node(net_config(localnet()));
    let mut p = RawPeer::honest(victim.addr(), localnet());
    victim.wait_up();
    p.send_unframed(&(16u32 << 20).to_be_bytes());
    p.send_unframed(&[0x5a; 1000]);
    assert_eq!(victim.wait_down(), CloseReason::UnsolicitedLargeFrame);
}
