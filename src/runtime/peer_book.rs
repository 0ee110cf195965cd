//! Our own signed record and the records learned from peers, shared with the
//! server's `GetPeers` answers.

use std::collections::HashSet;
use std::net::SocketAddr;

use alloy_rlp::Bytes;
use libp2p_identity::PeerId;

use crate::crypto::NodeIdentity;
use crate::stream::record::{sign_record, PeerRecord, RecordCache};
use crate::stream::sample::{os_seeded, random_prefix};
use crate::wire::ProtocolId;

/// Records for peer exchange.
#[derive(Debug)]
pub struct PeerBook {
    own: Option<Bytes>,
    seq: u64,
    protocol: ProtocolId,
    addrs: Vec<SocketAddr>,
    cache: RecordCache,
    connected: HashSet<PeerId>,
}

impl PeerBook {
    /// A book holding our freshly signed record.
    pub fn new(identity: &NodeIdentity, protocol: ProtocolId, addrs: Vec<SocketAddr>) -> Self {
        let mut b = PeerBook {
            own: None,
            seq: 0,
            protocol,
            addrs,
            cache: RecordCache::default(),
            connected: HashSet::new(),
        };
        b.resign(identity);
        b
    }

    /// Re-signs our record with the next sequence number.
    pub fn resign(&mut self, identity: &NodeIdentity) {
        self.seq += 1;
        self.own = sign_record(identity, &self.protocol, self.seq, &self.addrs);
    }

    /// What `GetPeers` answers: our own record first, then records of a
    /// random sample of the peers we have a stream to (all serve our
    /// protocol), at most `max` in all. Random, because a node with more
    /// peers than an answer holds would otherwise name the same ones to
    /// every newcomer, making them the network's busiest servers (seen in
    /// the simulator).
    pub fn records_to_share(&self, max: usize) -> Vec<Bytes> {
        let mut known: Vec<&Bytes> = self
            .connected
            .iter()
            .filter_map(|p| self.cache.get(p))
            .map(|r| &r.envelope)
            .collect();
        let want = max.saturating_sub(usize::from(self.own.is_some()));
        let chosen = random_prefix(&mut known, want, &mut os_seeded());
        self.own
            .iter()
            .chain(chosen.iter().copied())
            .take(max)
            .cloned()
            .collect()
    }

    /// Learns a verified record; true if it was new.
    pub fn learn(&mut self, r: PeerRecord) -> bool {
        self.cache.insert(r)
    }

    /// Marks `peer` connected or not.
    pub fn set_connected(&mut self, peer: PeerId, connected: bool) {
        if connected {
            self.connected.insert(peer);
        } else {
            self.connected.remove(&peer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Network;
    use crate::stream::record::verify_record;

    #[test]
    fn peer_exchange_answers_name_every_connected_peer_in_turn() {
        let protocol = ProtocolId::sync(Network::Mainnet, 0);
        let me = NodeIdentity::generate();
        let mut book = PeerBook::new(
            &me,
            protocol.clone(),
            vec!["127.0.0.1:9000".parse().unwrap()],
        );
        let mut all = std::collections::HashSet::new();
        for i in 0..40u16 {
            let id = NodeIdentity::generate();
            let addr: SocketAddr = format!("127.0.0.1:{}", 10_000 + i).parse().unwrap();
            let bytes = sign_record(&id, &protocol, 1, &[addr]).expect("signed");
            let r = verify_record(&bytes, &protocol).expect("valid");
            book.learn(r);
            book.set_connected(id.peer_id(), true);
            all.insert(bytes);
        }
        let mut named = std::collections::HashSet::new();
        for _ in 0..200 {
            let answer = book.records_to_share(5);
            assert_eq!(answer.len(), 5);
            assert_eq!(Some(&answer[0]), book.own.as_ref(), "our own record first");
            named.extend(answer.into_iter().skip(1));
        }
        // 200 answers of 4 from 40 peers: a fixed order names 4; a random
        // one misses a given peer with probability 0.9^200 < 1e-9.
        assert_eq!(named, all);
    }
}
