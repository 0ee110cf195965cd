//! Signed peer records for peer exchange (`GetPeers`).
//!
//! A record is a libp2p [`SignedEnvelope`] (protobuf, as libp2p peer records
//! are) signed by the peer's own identity key, with domain
//! [`RECORD_DOMAIN`], payload type [`RECORD_PAYLOAD_TYPE`] and payload
//!
//! ```text
//! RLP [ peer_id: bytes, protocol_id: string, seq: u64, addrs: [multiaddr bytes, ...] (≤ 8) ]
//! ```
//!
//! Because the peer signs its own addresses and protocol id, a relaying peer
//! can pass records on but cannot forge or alter them, and records of other
//! networks are recognised. `seq` grows with each re-signing; the highest wins.

use std::collections::HashMap;
use std::net::SocketAddr;

use alloy_rlp::{Bytes, RlpDecodable, RlpEncodable};
use libp2p_core::{Multiaddr, SignedEnvelope};
use libp2p_identity::PeerId;

use crate::crypto::NodeIdentity;
use crate::net::{from_multiaddr, to_multiaddr};
use crate::wire::ProtocolId;

/// Signature domain of streamsync peer records.
pub const RECORD_DOMAIN: &str = "streamsync-peer-record";
/// Payload type of streamsync peer records.
pub const RECORD_PAYLOAD_TYPE: &[u8] = b"/streamsync/peer-record/1";
/// Most addresses in one record.
pub const MAX_RECORD_ADDRS: usize = 8;
/// Most records the cache keeps.
pub const MAX_CACHED_RECORDS: usize = 1024;

#[derive(RlpEncodable, RlpDecodable)]
struct Payload {
    peer_id: Bytes,
    protocol: Bytes,
    seq: u64,
    addrs: Vec<Bytes>,
}

/// A verified record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerRecord {
    /// The peer (its signing key's `PeerId`).
    pub peer: PeerId,
    /// The protocol it serves.
    pub protocol: ProtocolId,
    /// Sequence number (higher = newer).
    pub seq: u64,
    /// Its TCP addresses.
    pub addrs: Vec<SocketAddr>,
    /// The envelope as received, for relaying unchanged.
    pub envelope: Bytes,
}

/// Why a record was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Not a decodable envelope or payload.
    #[error("malformed peer record")]
    Malformed,
    /// The signature does not verify (or wrong domain / payload type).
    #[error("peer record signature invalid")]
    BadSignature,
    /// The payload names another peer than the key that signed it.
    #[error("peer record claims another PeerId than its signer")]
    PeerIdMismatch,
    /// A record of a peer serving another network, shard or major version.
    #[error("peer record of another protocol: {0}")]
    OtherProtocol(String),
}

impl RecordError {
    /// Whether the record proves the relaying peer sent forged or garbage
    /// data (cool it down), as opposed to a merely useless record.
    pub fn is_proof_of_invalid_data(&self) -> bool {
        !matches!(self, RecordError::OtherProtocol(_))
    }
}

/// Signs `identity`'s record for `protocol` at `addrs` with sequence `seq`.
pub fn sign_record(
    identity: &NodeIdentity,
    protocol: &ProtocolId,
    seq: u64,
    addrs: &[SocketAddr],
) -> Option<Bytes> {
    let payload = Payload {
        peer_id: identity.peer_id().to_bytes().into(),
        protocol: protocol.to_string().into_bytes().into(),
        seq,
        addrs: addrs
            .iter()
            .take(MAX_RECORD_ADDRS)
            .map(|a| to_multiaddr(*a, None).to_vec().into())
            .collect(),
    };
    let env = SignedEnvelope::new(
        identity.keypair(),
        RECORD_DOMAIN.to_string(),
        RECORD_PAYLOAD_TYPE.to_vec(),
        alloy_rlp::encode(&payload),
    )
    .ok()?;
    Some(env.into_protobuf_encoding().into())
}

/// Verifies a record and checks it serves a protocol matching `ours`.
pub fn verify_record(bytes: &Bytes, ours: &ProtocolId) -> Result<PeerRecord, RecordError> {
    let env = SignedEnvelope::from_protobuf_encoding(bytes).map_err(|_| RecordError::Malformed)?;
    let (payload, key) = env
        .payload_and_signing_key(RECORD_DOMAIN.to_string(), RECORD_PAYLOAD_TYPE)
        .map_err(|_| RecordError::BadSignature)?;
    let p: Payload = alloy_rlp::decode_exact(payload).map_err(|_| RecordError::Malformed)?;
    let signer = key.to_peer_id();
    let claimed = PeerId::from_bytes(&p.peer_id).map_err(|_| RecordError::Malformed)?;
    if claimed != signer {
        return Err(RecordError::PeerIdMismatch);
    }
    let protocol: ProtocolId = std::str::from_utf8(&p.protocol)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(RecordError::Malformed)?;
    if !ours.matches(&protocol) {
        return Err(RecordError::OtherProtocol(protocol.to_string()));
    }
    if p.addrs.len() > MAX_RECORD_ADDRS {
        return Err(RecordError::Malformed);
    }
    let addrs = p
        .addrs
        .iter()
        .filter_map(|a| Multiaddr::try_from(a.to_vec()).ok())
        .filter_map(|m| from_multiaddr(&m))
        .map(|(a, _)| a)
        .collect();
    Ok(PeerRecord {
        peer: signer,
        protocol,
        seq: p.seq,
        addrs,
        envelope: bytes.clone(),
    })
}

/// Records learned from peers, newest per peer, bounded.
#[derive(Debug, Default)]
pub struct RecordCache {
    records: HashMap<PeerId, PeerRecord>,
}

impl RecordCache {
    /// Keeps `r` if it is newer than what is cached for its peer. Returns
    /// whether it was new.
    pub fn insert(&mut self, r: PeerRecord) -> bool {
        if self
            .records
            .get(&r.peer)
            .is_some_and(|old| old.seq >= r.seq)
        {
            return false;
        }
        if self.records.len() >= MAX_CACHED_RECORDS && !self.records.contains_key(&r.peer) {
            // Drop the record with the lowest sequence number (equal ones
            // by PeerId: the choice never depends on the map's order).
            if let Some(victim) = self
                .records
                .iter()
                .min_by_key(|(p, r)| (r.seq, **p))
                .map(|(p, _)| *p)
            {
                self.records.remove(&victim);
            }
        }
        self.records.insert(r.peer, r);
        true
    }

    /// The cached record of `peer`.
    pub fn get(&self, peer: &PeerId) -> Option<&PeerRecord> {
        self.records.get(peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Network;

    fn proto() -> ProtocolId {
        ProtocolId::sync(Network::Localnet, 0)
    }

    #[test]
    fn record_round_trips() {
        let id = NodeIdentity::generate();
        let addr: SocketAddr = "127.0.0.1:4000".parse().expect("addr");
        let bytes = sign_record(&id, &proto(), 7, &[addr]).expect("sign");
        let r = verify_record(&bytes, &proto()).expect("valid");
        assert_eq!((r.peer, r.seq, r.addrs), (id.peer_id(), 7, vec![addr]));
    }

    #[test]
    fn tampered_record_is_refused() {
        let id = NodeIdentity::generate();
        let addr: SocketAddr = "127.0.0.1:4000".parse().expect("addr");
        let bytes = sign_record(&id, &proto(), 1, &[addr]).expect("sign");
        let mut v = bytes.to_vec();
        // Flip a byte inside the payload (the port): signature must fail.
        let pos = v.len() - 80;
        v[pos] ^= 1;
        let e = verify_record(&Bytes::from(v), &proto()).unwrap_err();
        assert!(e.is_proof_of_invalid_data(), "{e}");
    }

    #[test]
    fn record_of_another_network_is_recognised() {
        let id = NodeIdentity::generate();
        let bytes = sign_record(&id, &ProtocolId::sync(Network::Testnet, 0), 1, &[]).expect("sign");
        let e = verify_record(&bytes, &proto()).unwrap_err();
        assert!(matches!(e, RecordError::OtherProtocol(_)));
        assert!(!e.is_proof_of_invalid_data());
    }

    #[test]
    fn cache_keeps_the_newest_record() {
        let id = NodeIdentity::generate();
        let mut c = RecordCache::default();
        let r = |seq| {
            verify_record(
                &sign_record(&id, &proto(), seq, &[]).expect("sign"),
                &proto(),
            )
            .expect("valid")
        };
        assert!(c.insert(r(2)));
        assert!(!c.insert(r(1)));
        assert!(c.insert(r(3)));
        assert_eq!(c.get(&id.peer_id()).map(|r| r.seq), Some(3));
    }
}
