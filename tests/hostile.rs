//! Hostile peers against a real node over loopback (DESIGN.md §15, issue
//! 10): each test runs one attack and asserts that an honest peer is still
//! served while it runs, and that the attacker pays for it.

mod common;

use std::time::{Duration, Instant};

use common::peer::*;
use streamsync::net::CloseReason;
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
