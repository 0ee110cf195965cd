//! Every message decoder on arbitrary bytes: never panics; whatever decodes
//! re-encodes to a message that decodes to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use streamsync::wire::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Message::decode(data) {
        let again = Message::decode(&m.encode()).expect("own encoding decodes");
        assert_eq!(again, m);
    }
});
