//! Many real nodes over loopback: the stream manager keeps its pools within
//! caps while peers come and go, finds peers through peer exchange, never
//! removes a trusted peer, and cools down peers that relay forged records.
#![cfg(feature = "testkit")] // the direct client (tests/common/peer.rs) is test support

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy_rlp::Bytes;
use crossbeam::channel::Receiver;
use streamsync::config::{Config, Network};
use streamsync::crypto::NodeIdentity;
use streamsync::net::session::LocalKeys;
use streamsync::net::{Net, NetConfig};
use streamsync::runtime::{Host, HostConfig, StreamEvent};
use streamsync::server::{Server, ServerConfig};
use streamsync::store::{Store, StoreOptions};
use streamsync::stream::record::sign_record;
use streamsync::stream::{PeerAddr, RemovalReason};
use streamsync::wire::{Message, ProtocolId, Request, Response};

use common::peer::RawPeer;

const WAIT: Duration = Duration::from_secs(20);

struct Node {
    host: Host,
    _dir: tempfile::TempDir,
}

fn store(dir: &std::path::Path) -> Arc<Store> {
    let genesis = common::spec(1, 10, 4).build().expect("genesis");
    let opts = StoreOptions {
        durable: false,
        ..StoreOptions::default()
    };
    Arc::new(Store::open_or_create(dir, &genesis, opts).expect("store"))
}

fn config(trusted: Vec<PeerAddr>, boot: Vec<PeerAddr>) -> HostConfig {
    let mut c = HostConfig::from_config(
        &Config::for_network(Network::Localnet),
        "127.0.0.1:0".parse().expect("addr"),
        0,
    );
    c.streams.hard_low_cap = 2;
    c.streams.soft_low_cap = 3;
    c.streams.high_cap = 4;
    c.streams.max_reserved = 2;
    c.streams.disc_batch = 4;
    c.streams.check_interval = Duration::from_millis(200);
    c.streams.discovery_backoff = Duration::from_millis(200);
    c.streams.discovery_timeout = Duration::from_secs(2);
    c.streams.connect_timeout = Duration::from_secs(5);
    c.trusted = trusted;
    c.boot = boot;
    c
}

fn node(trusted: Vec<PeerAddr>, boot: Vec<PeerAddr>) -> Node {
    node_with(config(trusted, boot))
}

fn node_with(cfg: HostConfig) -> Node {
    let dir = tempfile::tempdir().expect("tmp");
    let host = Host::start(cfg, NodeIdentity::generate(), store(dir.path()), vec![]).expect("host");
    Node { host, _dir: dir }
}

/// A well-provisioned hub everybody boots from.
fn hub() -> Node {
    let mut c = config(vec![], vec![]);
    c.streams.high_cap = 64;
    c.streams.soft_low_cap = 1;
    c.streams.hard_low_cap = 1;
    node_with(c)
}

/// Waits (woken by stream events, at most `WAIT`) until `cond` holds.
fn wait_until(events: &Receiver<StreamEvent>, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        let _ = events.recv_timeout(Duration::from_millis(100));
    }
}

#[test]
fn pools_stay_within_caps_while_peers_come_and_go_and_peer_exchange_finds_new_ones() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let hub = hub();
    let hub_addr = hub.host.peer_addr();
    // The others have room for everybody: S's own caps are under test.
    let roomy = || {
        let mut c = config(vec![], vec![hub_addr]);
        c.streams.high_cap = 16;
        node_with(c)
    };
    let mut others: Vec<Node> = (0..6).map(|_| roomy()).collect();
    let s = node(vec![hub_addr], vec![]);
    let events = s.host.subscribe();
    eprintln!(
        "S = {} hub = {}",
        s.host.identity().peer_id(),
        hub_addr.peer
    );
    let status = || s.host.status();
    let check_caps = || {
        let st = status();
        assert!(st.active <= 4, "active {} over DiscHighCap", st.active);
        assert!(
            st.reserved <= 2,
            "reserve {} over MaxReservedStreams",
            st.reserved
        );
        st
    };
    // S was told only about the hub; it fills its pools through peer exchange.
    wait_until(&events, "full pools", || {
        let st = check_caps();
        st.active == 4 && st.reserved >= 1
    });
    // Every peer but the hub dies; three new ones start. S only learns of
    // them through peer exchange with the hub.
    others.clear();
    let newcomers: Vec<Node> = (0..3).map(|_| roomy()).collect();
    let newcomer_ids: Vec<_> = newcomers
        .iter()
        .map(|n| n.host.identity().peer_id())
        .collect();
    let mut seen_newcomer = false;
    let mut active: std::collections::HashMap<u64, libp2p_identity::PeerId> = Default::default();
    let deadline = Instant::now() + WAIT;
    while !(seen_newcomer && status().active >= 3) {
        assert!(Instant::now() < deadline, "never reconnected to a newcomer");
        check_caps();
        match events.recv_timeout(Duration::from_millis(100)) {
            Ok(StreamEvent::Activated(i)) => {
                seen_newcomer |= newcomer_ids.contains(&i.peer_id);
                active.insert(i.id, i.peer_id);
            }
            Ok(StreamEvent::Deactivated(id)) => {
                assert_ne!(
                    active.remove(&id),
                    Some(hub_addr.peer),
                    "trusted hub deactivated"
                );
            }
            Err(_) => {}
        }
    }
    // Asking to remove the trusted hub, even for a critical error, keeps it.
    let hub_stream = status()
        .streams
        .iter()
        .find(|i| i.peer_id == hub_addr.peer)
        .expect("hub active")
        .id;
    s.host
        .remove_stream(hub_stream, RemovalReason::CriticalError);
    // Commands are handled in order: once a new subscription has replayed
    // the pool, the removal request has been handled.
    let replay = s.host.subscribe();
    replay.recv_timeout(WAIT).expect("replay");
    assert!(
        status().streams.iter().any(|i| i.id == hub_stream),
        "trusted hub removed"
    );
    assert!(
        !status()
            .in_cooldown
            .iter()
            .any(|(p, _)| *p == hub_addr.peer),
        "trusted hub cooled down"
    );
    drop(newcomers);
}

#[test]
fn peer_relaying_forged_records_is_cooled_down() {
    // A server whose GetPeers answer carries records of another network, a
    // forged signature, and garbage.
    let dir = tempfile::tempdir().expect("tmp");
    let id = NodeIdentity::generate();
    let net = Net::start(
        NetConfig::new(
            "127.0.0.1:0".parse().expect("addr"),
            ProtocolId::sync(Network::Localnet, 0),
        ),
        &id,
    )
    .expect("net");
    let own = sign_record(
        &id,
        &ProtocolId::sync(Network::Localnet, 0),
        1,
        &[net.handle().local_addr()],
    )
    .expect("sign");
    let other_net = sign_record(
        &NodeIdentity::generate(),
        &ProtocolId::sync(Network::Testnet, 0),
        1,
        &[],
    )
    .expect("sign");
    let mut forged = sign_record(
        &NodeIdentity::generate(),
        &ProtocolId::sync(Network::Localnet, 0),
        1,
        &[],
    )
    .expect("sign")
    .to_vec();
    let n = forged.len();
    forged[n - 1] ^= 0xff;
    let records = vec![
        own,
        other_net,
        Bytes::from(forged),
        Bytes::from_static(b"garbage"),
    ];
    let peers = Arc::new(move |_max: usize| records.clone());
    let server = Server::start(
        ServerConfig::default(),
        store(dir.path()),
        net.handle(),
        net.requests().clone(),
        peers,
    )
    .expect("server");
    let liar = PeerAddr {
        peer: id.peer_id(),
        addr: net.handle().local_addr(),
    };

    let s = node(vec![], vec![liar]);
    let events = s.host.subscribe();
    wait_until(&events, "the liar cooled down", || {
        let st = s.host.status();
        st.in_cooldown.iter().map(|(p, _)| *p).eq([liar.peer]) && st.records_rejected >= 3
    });
    assert_eq!(s.host.status().active, 0, "liar's stream removed");
    drop(server);
}

#[test]
fn peer_advertising_itself_under_another_peer_id_is_cooled_down() {
    // Its GetPeers answer leads with a genuine record of somebody else.
    let dir = tempfile::tempdir().expect("tmp");
    let id = NodeIdentity::generate();
    let net = Net::start(
        NetConfig::new(
            "127.0.0.1:0".parse().expect("addr"),
            ProtocolId::sync(Network::Localnet, 0),
        ),
        &id,
    )
    .expect("net");
    let someone = sign_record(
        &NodeIdentity::generate(),
        &ProtocolId::sync(Network::Localnet, 0),
        1,
        &[net.handle().local_addr()],
    )
    .expect("sign");
    let peers = Arc::new(move |_max: usize| vec![someone.clone()]);
    let server = Server::start(
        ServerConfig::default(),
        store(dir.path()),
        net.handle(),
        net.requests().clone(),
        peers,
    )
    .expect("server");
    let impostor = PeerAddr {
        peer: id.peer_id(),
        addr: net.handle().local_addr(),
    };
    let s = node(vec![], vec![impostor]);
    let events = s.host.subscribe();
    wait_until(&events, "the impostor cooled down", || {
        s.host
            .status()
            .in_cooldown
            .iter()
            .map(|(p, _)| *p)
            .eq([impostor.peer])
    });
    drop(server);
}

/// The node's own view of `peer`: is it in the active pool?
fn is_active(host: &Host, peer: &libp2p_identity::PeerId) -> bool {
    host.status().streams.iter().any(|i| i.peer_id == *peer)
}

/// Asks for the block number on `p` and says whether it was answered
/// (skipping the node's own requests, e.g. its peer exchange).
fn served(p: &mut RawPeer, id: u64) -> bool {
    p.send(&Message::Request(id, Request::GetBlockNumber));
    loop {
        match p.recv() {
            Some(Message::Response(got, Response::BlockNumber { .. })) if got == id => return true,
            Some(Message::Request(..)) => continue,
            _ => return false,
        }
    }
}

/// A peer whose process dies (its connections just end, no goodbye) and
/// restarts is taken back and served at once, however often it restarts:
/// a disconnect is not a failure and never accumulates into a cooldown.
#[test]
fn a_restarted_peer_is_served_again_at_once() {
    let server = hub();
    let addr = server.host.net().local_addr();
    let restarting = NodeIdentity::generate();
    let peer = restarting.peer_id();
    let keys = LocalKeys::new(&restarting, ProtocolId::sync(Network::Localnet, 0)).expect("keys");
    let events = server.host.subscribe();
    for restart in 0..4u64 {
        let mut p = RawPeer::connect(addr, &keys).expect("handshake");
        wait_until(&events, "the peer taken back", || {
            is_active(&server.host, &peer)
        });
        assert!(served(&mut p, restart + 1), "restart {restart}: not served");
        drop(p);
        wait_until(&events, "the dead connection noticed", || {
            !is_active(&server.host, &peer)
        });
    }
    assert!(server.host.status().in_cooldown.is_empty());
}

/// Cooldowns decide whom the node dials and asks, not whom it serves: a
/// peer removed for a critical error that reconnects is served (kept as a
/// serve-only stream), while it stays in cooldown.
#[test]
fn a_peer_cooling_down_is_still_served_when_it_reconnects() {
    let server = hub();
    let addr = server.host.net().local_addr();
    let identity = NodeIdentity::generate();
    let peer = identity.peer_id();
    let keys = LocalKeys::new(&identity, ProtocolId::sync(Network::Localnet, 0)).expect("keys");
    let events = server.host.subscribe();
    let mut p = RawPeer::connect(addr, &keys).expect("handshake");
    wait_until(&events, "the peer active", || {
        is_active(&server.host, &peer)
    });
    let stream = server
        .host
        .status()
        .streams
        .iter()
        .find(|i| i.peer_id == peer)
        .map(|i| i.id)
        .expect("its stream");
    server
        .host
        .remove_stream(stream, RemovalReason::CriticalError);
    p.expect_closed();
    wait_until(&events, "the peer cooling down", || {
        server
            .host
            .status()
            .in_cooldown
            .iter()
            .any(|(p, _)| *p == peer)
    });
    let mut again = RawPeer::connect(addr, &keys).expect("handshake");
    wait_until(&events, "the peer kept to be served", || {
        server.host.status().serve_only == 1
    });
    assert!(served(&mut again, 7), "a peer in cooldown was not served");
    assert!(!is_active(&server.host, &peer), "asked while cooling down");
    assert!(server
        .host
        .status()
        .in_cooldown
        .iter()
        .any(|(p, _)| *p == peer));
}

/// The peers a node knew are saved in its peers file and dialled again
/// after a restart, so a node restarted while its only boot peer is gone
/// still finds the network (on the code before, it found nobody).
#[test]
fn a_node_restarted_after_its_boot_peer_is_gone_redials_the_peers_it_saved() {
    let hub = hub();
    let hub_addr = hub.host.peer_addr();
    let other = node(vec![], vec![hub_addr]);
    let other_id = other.host.identity().peer_id();
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join(streamsync::runtime::known_peers::FILE_NAME);
    let with_file = || {
        let mut c = config(vec![], vec![hub_addr]);
        c.peers_file = Some(file.clone());
        node_with(c)
    };
    // First run: it meets `other` through the hub's peer exchange.
    let mut first = with_file();
    let events = first.host.subscribe();
    wait_until(&events, "a stream to the other peer", || {
        is_active(&first.host, &other_id)
    });
    first.host.shutdown();
    drop(first);
    drop(hub);
    // Second run: the boot peer is gone; the saved peer is dialled.
    let second = with_file();
    let events = second.host.subscribe();
    wait_until(&events, "a stream to the saved peer", || {
        is_active(&second.host, &other_id)
    });
}
