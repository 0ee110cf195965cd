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
