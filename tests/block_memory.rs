//! What a downloaded block really holds in memory, counted by the
//! allocator, against what the sync charges to its byte budget
//! (`SealedBlock::mem_bytes`, DESIGN.md §9 "bounded in bytes").

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use streamsync::chain::SealedBlock;

/// The system allocator, counting live bytes (this test binary only).
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::SeqCst);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::SeqCst);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::SeqCst);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static A: Counting = Counting;

/// Live bytes of `n` blocks decoded from the wire and boxed (as the sync
/// holds them), and what they are charged.
fn held(txs: u32, epoch_len: u64) -> (usize, usize, usize) {
    // One count at a time: the tests of this binary run in parallel.
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let (_, _, blocks) = common::chain(common::spec(1, epoch_len, 4), txs, 64);
    let raws: Vec<Vec<u8>> = blocks.iter().map(|b| b.to_bytes()).collect();
    drop(blocks);
    let before = LIVE.load(Ordering::SeqCst);
    let sealed: Vec<Box<SealedBlock>> = raws
        .iter()
        .map(|r| Box::new(SealedBlock::from_raw(r).expect("decodes")))
        .collect();
    let live = (LIVE.load(Ordering::SeqCst) - before) as usize
        - sealed.capacity() * std::mem::size_of::<Box<SealedBlock>>();
    let charged = sealed.iter().map(|b| b.mem_bytes()).sum();
    let raw = raws.iter().map(Vec::len).sum();
    (live, charged, raw)
}

#[test]
fn a_decoded_block_holds_no_more_than_it_is_charged() {
    for (txs, epoch_len) in [(2, 1000), (40, 1000), (400, 1000), (40, 2)] {
        let (live, charged, raw) = held(txs, epoch_len);
        assert!(
            live <= charged,
            "{txs} transfers: {live} bytes live, {charged} charged ({raw} raw)"
        );
        // The charge is not a blanket over-estimate either.
        assert!(
            charged <= live + live / 4,
            "{txs} transfers: {charged} charged for {live} live"
        );
    }
}

#[test]
fn a_decoded_block_holds_about_twice_its_raw_size() {
    // Raw bytes plus decoded transfers (56 bytes for ~47 on the wire): the
    // decoder's doubling growth used to leave up to 1.8 × more.
    let (live, _, raw) = held(40, 1000);
    assert!(live <= raw * 5 / 2, "{live} bytes live for {raw} raw");
}
