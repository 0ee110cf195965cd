//! Embeds a node over a host's chain (any `ChainBackend`; the crate's LMDB
//! store stands in here). `cargo run --example embed -- [BOOT_MULTIADDR…]`
use std::sync::Arc;

use streamsync::chain::GenesisSpec;
use streamsync::{ChainBackend, Config, Network, Node, NodeConfig, NodeIdentity, Store};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let genesis = GenesisSpec::with_defaults("localnet", 1).build()?;
    let chain: Arc<dyn ChainBackend> = Arc::new(Store::open_or_create(
        dir.path(),
        &genesis,
        Default::default(),
    )?);
    let mut config = Config::for_network(Network::Localnet);
    config.sync.client = true; // sync, not only serve
    let mut cfg = NodeConfig::new(config, "127.0.0.1:0".parse()?);
    for boot in std::env::args().skip(1) {
        cfg.boot.push(boot.parse()?);
    }
    let node = Node::start(cfg, chain, NodeIdentity::generate(), None)?;
    // The host hands consensus blocks in with `node.offer_block(block)`.
    println!("{:?} at head {}", node.peer_addr(), node.status().sync.head);
    node.shutdown();
    Ok(())
}
