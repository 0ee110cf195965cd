//! The frame decoder fed arbitrary bytes in arbitrary chunks: never panics,
//! never yields a frame over the cap, and what it yields re-encodes to a
//! prefix of the input (nothing invented, nothing reordered).
#![no_main]

use libfuzzer_sys::fuzz_target;
use streamsync::wire::{encode_frame, FrameDecoder, MAX_FRAME_LEN};

fuzz_target!(|data: &[u8]| {
    // First byte picks the chunk size; the rest is the stream.
    let Some((&k, stream)) = data.split_first() else { return };
    let chunk = usize::from(k).max(1);
    let mut d = FrameDecoder::default();
    let mut frames = Vec::new();
    'feed: for c in stream.chunks(chunk) {
        d.push(c);
        loop {
            match d.next_frame() {
                Ok(Some(f)) => {
                    assert!(f.len() <= MAX_FRAME_LEN);
                    frames.push(f);
                }
                Ok(None) => break,
                Err(_) => break 'feed,
            }
        }
    }
    let mut re = Vec::new();
    for f in &frames {
        encode_frame(f, &mut re).expect("within cap");
    }
    assert_eq!(&stream[..re.len()], &re[..]);
});
