//! The handshake payload decoder and a responder session fed arbitrary
//! bytes: never panic, never accept an identity that did not sign.
#![no_main]

use libfuzzer_sys::fuzz_target;
use streamsync::config::Network;
use streamsync::crypto::NodeIdentity;
use streamsync::net::session::{LocalKeys, Session};
use streamsync::wire::handshake::decode_hello;
use streamsync::wire::ProtocolId;

fuzz_target!(|data: &[u8]| {
    // A payload checked against a fixed Noise static key: random bytes can
    // never carry a valid signature over it.
    assert!(decode_hello(data, &[7u8; 32]).is_err());
    // A responder session fed the bytes as if from the network.
    thread_local! {
        static KEYS: LocalKeys = LocalKeys::new(
            &NodeIdentity::from_seed([1; 32]),
            ProtocolId::sync(Network::Localnet, 0),
        ).expect("keys");
    }
    KEYS.with(|keys| {
        let mut s = Session::responder(keys).expect("session");
        let mut frames = Vec::new();
        let _ = s.receive(data, &mut frames);
        assert!(frames.is_empty(), "frames before a handshake");
    });
});
