//! Junk connections against serving nodes (DESIGN.md §15, issue 10): what a
//! cheap attacker throws at every public node, to measure an honest sync
//! while it runs (`streamsync localnet --flood N`).
//!
//! Three kinds, in equal parts, kept up until stopped (a closed one is
//! opened again):
//! - **silent**: a TCP connection that never says a word (holds a
//!   pre-handshake slot until evicted or timed out);
//! - **slowloris**: a full handshake under a fresh identity, then a frame
//!   announced at 60 KiB (small enough to be a valid request) and one byte
//!   of it every second;
//! - **partial frame**: a full handshake, then a frame announced at 16 MiB;
//!   if the connection survives the announcement, 2 MiB of it the next
//!   round, then silence.
//!
//! One thread drives them all with blocking sockets and short timeouts; it
//! paces itself (one round a second) and runs at the lowest CPU priority
//! (the attacker shares the benchmark machine with its victims).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::crypto::NodeIdentity;
use crate::net::session::{LocalKeys, Session};
use crate::wire::ProtocolId;

/// Time given to a connect or a handshake step.
const STEP: Duration = Duration::from_millis(500);
/// Bytes sent of a partial frame (of 16 MiB announced).
const PARTIAL_BYTES: usize = 2 << 20;

/// What kind of junk a connection is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Junk {
    /// Connects, says nothing.
    Silent,
    /// Handshakes, then trickles a frame one byte a second.
    Slowloris,
    /// Handshakes, sends 2 MiB of a 16 MiB frame, then nothing.
    PartialFrame,
}

struct Conn {
    kind: Junk,
    target: SocketAddr,
    sock: Option<TcpStream>,
    session: Option<Session>,
    /// Partial frame: the bulk was sent.
    bulk_sent: bool,
}

/// Counts of what the flood did, shared with its thread.
#[derive(Debug, Default)]
pub struct FloodStats {
    /// Connections opened (TCP connects that succeeded), reopenings included.
    pub opened: AtomicU64,
    /// Handshakes completed.
    pub handshakes: AtomicU64,
    /// Connections found closed by the target.
    pub closed_by_target: AtomicU64,
}

/// A running flood; stops (and closes every junk connection) on drop.
pub struct Flood {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// What it did so far.
    pub stats: Arc<FloodStats>,
}

impl std::fmt::Debug for Flood {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flood")
            .field("running", &self.thread.is_some())
            .finish_non_exhaustive()
    }
}

impl Flood {
    /// Starts `n` junk connections spread over `targets` (kinds in turn),
    /// speaking `protocol`. Returns once each has been opened once.
    pub fn start(targets: &[SocketAddr], n: usize, protocol: ProtocolId) -> Flood {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(FloodStats::default());
        let kinds = [Junk::Silent, Junk::Slowloris, Junk::PartialFrame];
        let mut conns: Vec<Conn> = (0..n)
            .filter_map(|i| {
                let target = *targets.get(i % targets.len().max(1))?;
                Some(Conn {
                    kind: kinds[i % kinds.len()],
                    target,
                    sock: None,
                    session: None,
                    bulk_sent: false,
                })
            })
            .collect();
        for c in conns.iter_mut() {
            open(c, &protocol, &stats);
        }
        let thread = {
            let stop = stop.clone();
            let stats = stats.clone();
            std::thread::Builder::new()
                .name("flood".into())
                .spawn(move || {
                    lowest_priority();
                    while !stop.load(Ordering::Relaxed) {
                        let round = Instant::now();
                        for c in conns.iter_mut() {
                            if stop.load(Ordering::Relaxed) {
                                break;
                            }
                            keep_up(c, &protocol, &stats);
                        }
                        // One round a second: the attack's pace.
                        let rest = Duration::from_secs(1).saturating_sub(round.elapsed());
                        std::thread::park_timeout(rest);
                    }
                })
                .ok()
        };
        Flood {
            stop,
            thread,
            stats,
        }
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// Opens `c` and does what its kind does first.
fn open(c: &mut Conn, protocol: &ProtocolId, stats: &FloodStats) {
    c.sock = None;
    c.session = None;
    let Ok(mut sock) = TcpStream::connect_timeout(&c.target, STEP) else {
        return;
    };
    stats.opened.fetch_add(1, Ordering::Relaxed);
    let _ = sock.set_read_timeout(Some(STEP));
    let _ = sock.set_write_timeout(Some(STEP));
    if c.kind == Junk::Silent {
        c.sock = Some(sock);
        return;
    }
    let Some(mut session) = handshake(&mut sock, protocol) else {
        return;
    };
    stats.handshakes.fetch_add(1, Ordering::Relaxed);
    let announced: u32 = match c.kind {
        Junk::Slowloris => 60 << 10,
        _ => 16 << 20,
    };
    let mut first = announced.to_be_bytes().to_vec();
    first.resize(4 + 16, 0x5a);
    if session.send_unframed(&first).is_err() || sock.write_all(&session.take_output()).is_err() {
        return;
    }
    c.bulk_sent = false;
    c.sock = Some(sock);
    c.session = Some(session);
}

/// One round for `c`: reopen it if the target closed it; a slowloris
/// sends its next byte.
fn keep_up(c: &mut Conn, protocol: &ProtocolId, stats: &FloodStats) {
    let alive = c.sock.as_mut().is_some_and(|s| {
        let _ = s.set_nonblocking(true);
        let mut buf = [0u8; 4096];
        let alive = loop {
            match s.read(&mut buf) {
                Ok(0) => break false,
                Ok(_) => continue, // whatever the target says is ignored
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break true,
                Err(_) => break false,
            }
        };
        let _ = s.set_nonblocking(false);
        alive
    });
    if !alive {
        if c.sock.is_some() {
            stats.closed_by_target.fetch_add(1, Ordering::Relaxed);
        }
        open(c, protocol, stats);
        return;
    }
    if c.kind == Junk::PartialFrame && !c.bulk_sent {
        // Still up after the announcement: send the bulk, once.
        c.bulk_sent = true;
        if let (Some(s), Some(session)) = (c.sock.as_mut(), c.session.as_mut()) {
            let bulk = vec![0x5a; PARTIAL_BYTES];
            if session.send_unframed(&bulk).is_err() || s.write_all(&session.take_output()).is_err()
            {
                c.sock = None;
            }
        }
    }
    if c.kind == Junk::Slowloris {
        if let (Some(s), Some(session)) = (c.sock.as_mut(), c.session.as_mut()) {
            if session.send_unframed(&[0x5a]).is_err()
                || s.write_all(&session.take_output()).is_err()
            {
                c.sock = None;
            }
        }
    }
}

/// A Noise handshake as a fresh identity; `None` if the target refused.
fn handshake(sock: &mut TcpStream, protocol: &ProtocolId) -> Option<Session> {
    let keys = LocalKeys::new(&NodeIdentity::generate(), protocol.clone()).ok()?;
    let mut session = Session::initiator(&keys).ok()?;
    let mut frames = Vec::new();
    let mut buf = [0u8; 65536];
    let deadline = Instant::now() + 4 * STEP;
    while !session.is_open() {
        if Instant::now() > deadline {
            return None;
        }
        sock.write_all(&session.take_output()).ok()?;
        let n = sock.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        session.receive(&buf[..n], &mut frames).ok()?;
    }
    sock.write_all(&session.take_output()).ok()?;
    Some(session)
}

/// Runs the calling thread at the lowest CPU priority (nice 19): on a
/// benchmark machine the attacker shares the cores with its victims, which
/// a real attacker does not; this keeps what is measured the victims' cost
/// of the junk they hold, not the attacker's own work. Best effort.
fn lowest_priority() {
    // SAFETY: setpriority only reads its arguments; on Linux, PRIO_PROCESS
    // with `who` = 0 applies to the calling thread.
    let _ = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 19) };
}
