//! Real nodes over loopback for sync tests: serving peers (honest,
//! byzantine with the `testkit` feature, or over any backend) and syncing
//! nodes.

use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "testkit")]
use streamsync::byzantine::{Behaviour, ByzantineBackend};
use streamsync::chain::{BlockWithSig, ChainBackend, Genesis};
use streamsync::config::{Config, Network};
use streamsync::crypto::NodeIdentity;
use streamsync::node::{Node, NodeConfig};
use streamsync::runtime::HostConfig;
use streamsync::store::{LmdbStaging, Store};
use streamsync::stream::PeerAddr;
use streamsync::sync::SyncSettings;

/// A running node with its store.
pub struct Running {
    pub node: Node,
    pub store: Arc<Store>,
    pub _dir: tempfile::TempDir,
}

/// A node serving `genesis` + `blocks` honestly.
pub fn serving(genesis: &Genesis, blocks: &[BlockWithSig]) -> Running {
    serving_through(genesis, blocks, |s| s)
}

/// A node serving `genesis` + `blocks` honestly that dials `peer` (so a
/// node whose boot peers are gone gets a stream to it).
pub fn serving_and_dialling(genesis: &Genesis, blocks: &[BlockWithSig], peer: PeerAddr) -> Running {
    serving_from(genesis, blocks, |_| {}, vec![peer], |s| s)
}

/// A node serving `genesis` + `blocks` through the backend `wrap` builds
/// over its store.
pub fn serving_through(
    genesis: &Genesis,
    blocks: &[BlockWithSig],
    wrap: impl FnOnce(Arc<dyn ChainBackend>) -> Arc<dyn ChainBackend>,
) -> Running {
    serving_from(genesis, blocks, |_| {}, vec![], wrap)
}

/// A serving node whose host settings `tune` adjusts.
fn serving_from(
    genesis: &Genesis,
    blocks: &[BlockWithSig],
    tune: impl FnOnce(&mut HostConfig),
    boot: Vec<PeerAddr>,
    wrap: impl FnOnce(Arc<dyn ChainBackend>) -> Arc<dyn ChainBackend>,
) -> Running {
    let (store, dir) = super::store(genesis, blocks);
    let config = Config::for_network(Network::Localnet);
    let listen = "127.0.0.1:0".parse().expect("addr");
    let mut host = HostConfig::from_config(&config, listen, 0);
    tune(&mut host);
    let mut cfg = NodeConfig::new(config, listen);
    cfg.host = Some(host);
    cfg.boot = boot;
    let backend = wrap(store.clone());
    let node = Node::start(cfg, backend, NodeIdentity::generate(), None).expect("node");
    Running {
        node,
        store,
        _dir: dir,
    }
}

/// A node serving `genesis` + `blocks` with byzantine behaviour `b` (a
/// silent one answers nothing).
#[cfg(feature = "testkit")]
pub fn byzantine(genesis: &Genesis, blocks: &[BlockWithSig], b: Behaviour) -> Running {
    let answer = b != Behaviour::Silence;
    serving_from(
        genesis,
        blocks,
        |host| host.server.answer = answer,
        vec![],
        |s| Arc::new(ByzantineBackend::new(s, b)),
    )
}

/// A fresh node syncing from `boot`, leaving once synced.
pub fn syncing(
    genesis: &Genesis,
    boot: Vec<PeerAddr>,
    tune: impl FnOnce(&mut Config, &mut SyncSettings),
) -> Running {
    let (store, dir) = super::store(genesis, &[]);
    let node = syncing_node(store.clone(), boot, tune);
    Running {
        node,
        store,
        _dir: dir,
    }
}

/// A client node over `store`, booting from `boot`, leaving once synced.
pub fn syncing_node(
    store: Arc<Store>,
    boot: Vec<PeerAddr>,
    tune: impl FnOnce(&mut Config, &mut SyncSettings),
) -> Node {
    syncing_through(store.clone(), store, boot, tune)
}

/// Like [`syncing_node`], with `backend` (e.g. a recording wrapper of
/// `store`) as the chain the sync writes to.
pub fn syncing_through(
    backend: Arc<dyn ChainBackend>,
    store: Arc<Store>,
    boot: Vec<PeerAddr>,
    tune: impl FnOnce(&mut Config, &mut SyncSettings),
) -> Node {
    let mut config = Config::for_network(Network::Localnet);
    config.sync.client = true;
    let mut settings = SyncSettings::from_sync(&config.sync);
    settings.init_streams = boot.len();
    settings.init_wait = Duration::from_secs(10);
    // Any answering peer lets Heads decide (by majority); tests of the
    // quorum itself set MinPeers.
    settings.min_peers = 1;
    tune(&mut config, &mut settings);
    settings.staged = config.sync.staged.clone();
    let mut cfg = NodeConfig::new(config, "127.0.0.1:0".parse().expect("addr"));
    // Boot peers, not trusted ones: a peer proven to lie must be removable.
    cfg.boot = boot;
    cfg.exit_when_synced = true;
    cfg.sync = Some(settings);
    Node::start(
        cfg,
        backend,
        NodeIdentity::generate(),
        Some(LmdbStaging::new(store)),
    )
    .expect("node")
}

/// The head hash of a store.
pub fn head_hash(s: &Store) -> [u8; 32] {
    s.head().expect("head").hash
}
