//! SIGINT and SIGTERM for the long-running commands (`node`, `localnet`):
//! the first asks for a graceful stop, which the command polls for; a
//! second one exits at once with status 128 + signal (130 for SIGINT, 143
//! for SIGTERM), so a shutdown that hangs never needs SIGKILL.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

use signal_hook::consts::{SIGINT, SIGTERM};

/// The first SIGINT/SIGTERM the process received, once it has.
#[derive(Clone, Debug)]
pub struct StopSignal(Arc<AtomicI32>);

impl StopSignal {
    /// Installs the handlers: the first signal is recorded (see
    /// [`StopSignal::received`]) and announced on stderr; a second writes
    /// a line to stderr and ends the process at once (`_exit`, nothing
    /// cleaned up) with status 128 + its number.
    pub fn install() -> std::io::Result<StopSignal> {
        let first = Arc::new(AtomicI32::new(0));
        for sig in [SIGINT, SIGTERM] {
            let seen = first.clone();
            let (stopping, exiting) = lines(sig);
            let action = move || {
                if seen
                    .compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
                {
                    write_stderr(stopping);
                } else {
                    write_stderr(exiting);
                    signal_hook::low_level::exit(128 + sig);
                }
            };
            // SAFETY: the action is async-signal-safe: an atomic
            // compare-exchange on memory the `Arc` keeps alive, `write(2)`
            // of a static buffer and `_exit(2)`; it neither allocates nor
            // takes a lock.
            unsafe { signal_hook::low_level::register(sig, action) }?;
        }
        Ok(StopSignal(first))
    }

    /// The signal that asked the process to stop (SIGINT or SIGTERM), if
    /// one has.
    pub fn received(&self) -> Option<i32> {
        match self.0.load(Ordering::SeqCst) {
            0 => None,
            s => Some(s),
        }
    }

    /// The error a command returns when it stopped early because of the
    /// signal, if one was received.
    pub fn interrupted(&self) -> Option<Interrupted> {
        self.received().map(Interrupted)
    }
}

/// What the handlers of `sig` write: on the first signal, and on a second.
fn lines(sig: i32) -> (&'static [u8], &'static [u8]) {
    if sig == SIGINT {
        (
            b"streamsync: SIGINT received: stopping gracefully; send SIGINT or SIGTERM again to exit at once\n",
            b"streamsync: second signal (SIGINT): exiting at once with status 130, without cleaning up\n",
        )
    } else {
        (
            b"streamsync: SIGTERM received: stopping gracefully; send SIGINT or SIGTERM again to exit at once\n",
            b"streamsync: second signal (SIGTERM): exiting at once with status 143, without cleaning up\n",
        )
    }
}

/// One `write(2)` to stderr; what it returns is of no use in a handler.
fn write_stderr(line: &[u8]) {
    // SAFETY: `line` is a valid buffer of `line.len()` bytes; `write` does
    // not keep it.
    let _ = unsafe { libc::write(libc::STDERR_FILENO, line.as_ptr().cast(), line.len()) };
}

/// A command stopped early because of a signal: the process exits with
/// status 128 + the signal's number (130 for SIGINT, 143 for SIGTERM).
#[derive(Clone, Copy, Debug)]
pub struct Interrupted(pub i32);

impl Interrupted {
    /// The process exit status: 128 + the signal's number.
    pub fn exit_status(self) -> u8 {
        u8::try_from(128 + self.0).unwrap_or(1)
    }
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = signal_hook::low_level::signal_name(self.0).unwrap_or("a signal");
        write!(f, "interrupted by {name}")
    }
}

impl std::error::Error for Interrupted {}
