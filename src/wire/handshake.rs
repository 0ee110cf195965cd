//! The Noise handshake payload: who the sender is and what it speaks.
//!
//! Sent encrypted inside Noise XX messages 2 (responder) and 3 (initiator):
//!
//! ```text
//! payload = RLP [ version: u8 = 1,
//!                 identity_key: bytes,   libp2p PublicKey, protobuf (ed25519)
//!                 signature: bytes,      identity signs "streamsync-noise-static-key:" ‖ noise static key
//!                 protocol_id: string ]  e.g. "streamsync/sync/mainnet/0/1.0.0"
//! ```
//!
//! The receiver verifies the signature against the Noise static key the
//! handshake authenticated; the stream's `PeerId` is the identity key's.

use alloy_rlp::{Bytes, RlpDecodable, RlpEncodable};
use libp2p_identity::{PeerId, PublicKey};

use super::protocol_id::ProtocolId;
use crate::crypto::identity::{verify_noise_static, NodeIdentity};

/// Version of the payload format.
pub const HANDSHAKE_VERSION: u8 = 1;
/// Largest payload accepted, bytes.
pub const MAX_HANDSHAKE_PAYLOAD: usize = 1024;

#[derive(RlpEncodable, RlpDecodable)]
struct Raw {
    version: u8,
    identity_key: Bytes,
    signature: Bytes,
    protocol_id: Bytes,
}

/// A verified handshake payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerHello {
    /// The authenticated peer.
    pub peer_id: PeerId,
    /// Its public identity key.
    pub public_key: PublicKey,
    /// The protocol it speaks.
    pub protocol: ProtocolId,
}

/// Why a handshake payload was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// Payload over `MAX_HANDSHAKE_PAYLOAD`.
    #[error("handshake payload of {0} bytes is too large")]
    TooLarge(usize),
    /// Not decodable.
    #[error("malformed handshake payload: {0}")]
    Malformed(String),
    /// Unknown payload version.
    #[error("unsupported handshake version {0}")]
    Version(u8),
    /// The identity key does not decode (or is not ed25519).
    #[error("bad identity key")]
    BadKey,
    /// The identity key did not sign this Noise static key.
    #[error("identity signature does not cover the Noise static key")]
    BadSignature,
    /// The protocol id does not parse.
    #[error("{0}")]
    BadProtocol(String),
}

/// Builds our payload for a handshake whose Noise static key is `noise_static`.
pub fn encode_hello(
    identity: &NodeIdentity,
    noise_static: &[u8],
    protocol: &ProtocolId,
) -> Result<Vec<u8>, crate::crypto::IdentityError> {
    let raw = Raw {
        version: HANDSHAKE_VERSION,
        identity_key: identity.public().encode_protobuf().into(),
        signature: identity.sign_noise_static(noise_static)?.into(),
        protocol_id: protocol.to_string().into_bytes().into(),
    };
    Ok(alloy_rlp::encode(&raw))
}

/// Decodes and verifies a peer's payload against the Noise static key the
/// handshake authenticated for it.
pub fn decode_hello(
    payload: &[u8],
    remote_noise_static: &[u8],
) -> Result<PeerHello, HandshakeError> {
    if payload.len() > MAX_HANDSHAKE_PAYLOAD {
        return Err(HandshakeError::TooLarge(payload.len()));
    }
    let raw: Raw =
        alloy_rlp::decode_exact(payload).map_err(|e| HandshakeError::Malformed(e.to_string()))?;
    if raw.version != HANDSHAKE_VERSION {
        return Err(HandshakeError::Version(raw.version));
    }
    let public_key =
        PublicKey::try_decode_protobuf(&raw.identity_key).map_err(|_| HandshakeError::BadKey)?;
    if public_key.key_type() != libp2p_identity::KeyType::Ed25519 {
        return Err(HandshakeError::BadKey);
    }
    if !verify_noise_static(&public_key, remote_noise_static, &raw.signature) {
        return Err(HandshakeError::BadSignature);
    }
    let protocol = std::str::from_utf8(&raw.protocol_id)
        .map_err(|_| HandshakeError::BadProtocol("protocol id is not UTF-8".into()))?
        .parse::<ProtocolId>()
        .map_err(|e| HandshakeError::BadProtocol(e.to_string()))?;
    Ok(PeerHello {
        peer_id: public_key.to_peer_id(),
        public_key,
        protocol,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Network;

    #[test]
    fn hello_round_trips_and_binds_the_noise_key() {
        let id = NodeIdentity::generate();
        let proto = ProtocolId::sync(Network::Localnet, 0);
        let p = encode_hello(&id, b"static-key-A", &proto).expect("sign");
        let hello = decode_hello(&p, b"static-key-A").expect("valid");
        assert_eq!(hello.peer_id, id.peer_id());
        assert_eq!(hello.protocol, proto);
        assert_eq!(
            decode_hello(&p, b"static-key-B"),
            Err(HandshakeError::BadSignature)
        );
    }

    #[test]
    fn key_not_matching_its_signature_is_refused() {
        let (a, b) = (NodeIdentity::generate(), NodeIdentity::generate());
        let proto = ProtocolId::sync(Network::Localnet, 0);
        let mut raw: Raw =
            alloy_rlp::decode_exact(encode_hello(&a, b"k", &proto).expect("sign")).expect("raw");
        raw.identity_key = b.public().encode_protobuf().into();
        assert_eq!(
            decode_hello(&alloy_rlp::encode(&raw), b"k"),
            Err(HandshakeError::BadSignature)
        );
    }
}
