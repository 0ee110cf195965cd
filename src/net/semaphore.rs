//! The write semaphore: a bounded channel of tokens capping how many frames
//! wait for the network thread at once (Harmony's `writeConcurrency`, 32).
//!
//! A sender takes a [`WritePermit`] before handing a frame over; the network
//! thread drops it as soon as the frame is queued on its connection, which
//! returns the token. A token is never held for a peer: one that does not
//! read is bounded by `NetConfig::write_buffer_limit` and the write-progress
//! deadline (`NetConfig::write_progress_timeout`) instead, so a sender waits
//! only for the network thread, never for a peer (DESIGN.md §15).

use crossbeam::channel::{bounded, Receiver, Sender};

/// Default number of concurrent writes.
pub const DEFAULT_WRITE_CONCURRENCY: usize = 32;

/// A pool of write tokens.
#[derive(Clone, Debug)]
pub struct WriteSemaphore {
    give: Sender<()>,
    take: Receiver<()>,
}

/// One write token; returned to the pool when dropped.
#[derive(Debug)]
pub struct WritePermit {
    give: Sender<()>,
}

impl Drop for WritePermit {
    fn drop(&mut self) {
        // Capacity equals the number of permits: this never blocks.
        let _ = self.give.try_send(());
    }
}

impl WriteSemaphore {
    /// A pool of `n` (≥ 1) tokens.
    pub fn new(n: usize) -> Self {
        let (give, take) = bounded(n.max(1));
        for _ in 0..n.max(1) {
            let _ = give.try_send(());
        }
        WriteSemaphore { give, take }
    }

    /// Waits for a token.
    pub fn acquire(&self) -> WritePermit {
        // The pool holds a sender itself, so the channel never disconnects.
        let _ = self.take.recv();
        WritePermit {
            give: self.give.clone(),
        }
    }

    /// A token if one is free now.
    #[cfg(any(test, feature = "testkit"))]
    pub fn try_acquire(&self) -> Option<WritePermit> {
        self.take.try_recv().ok().map(|_| WritePermit {
            give: self.give.clone(),
        })
    }

    /// Tokens free now.
    #[cfg(any(test, feature = "testkit"))]
    pub fn available(&self) -> usize {
        self.take.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_cap_concurrent_writes_and_return_on_drop() {
        let s = WriteSemaphore::new(2);
        let a = s.acquire();
        let b = s.acquire();
        assert!(s.try_acquire().is_none());
        drop(a);
        assert_eq!(s.available(), 1);
        drop(b);
        assert_eq!(s.available(), 2);
    }
}
