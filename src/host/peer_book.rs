//! Our own signed record and the records learned from peers, shared with the
//! server's `GetPeers` answers.

use std::collections::HashSet;
use std::net::SocketAddr;

use alloy_rlp::Bytes;
use libp2p_identity::PeerId;

use crate::crypto::NodeIdentity;
use crate::stream::record::{sign_record, PeerRecord, RecordCache};
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

    /// What `GetPeers` answers: our own record first, then records of peers
    /// we have a stream to (all serve our protocol), at most `max`.
    pub fn records_to_share(&self, max: usize) -> Vec<Bytes> {
        self.own
            .iter()
            .cloned()
            .chain(
                self.connected
                    .iter()
                    .filter_map(|p| self.cache.get(p))
                    .map(|r| r.envelope.clone()),
            )
            .take(max)
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
