//! A direct request/response call path over one stream.
//!
//! Owns the network's event channel: a pump thread matches each response to
//! the caller waiting on (stream, request id) and forwards stream events to
//! [`DirectClient::stream_events`]. A response to an id that was never
//! issued on that stream is a protocol violation (the stream is closed); one
//! for a request that already timed out is dropped and counted.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam::channel::{bounded, unbounded, Receiver, RecvTimeoutError, Sender};
use parking_lot::Mutex;

use crate::metrics::names;
use crate::net::{CloseReason, NetEvent, NetHandle, StreamId, StreamInfo};
use crate::wire::{Message, Request, RequestId, Response, WireError};

/// How many timed-out request ids are remembered to tell late responses from
/// unsolicited ones.
const EXPIRED_MEMORY: usize = 4096;

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// No response in time.
    #[error("request timed out")]
    Timeout,
    /// The stream closed before the response.
    #[error("stream closed: {0}")]
    StreamClosed(String),
    /// The network thread stopped.
    #[error("network stopped")]
    Stopped,
}

type Waiter = Sender<Result<Response, ClientError>>;

#[derive(Default)]
struct Table {
    pending: HashMap<(StreamId, RequestId), Waiter>,
    expired: HashSet<(StreamId, RequestId)>,
    expired_order: VecDeque<(StreamId, RequestId)>,
    streams: HashMap<StreamId, StreamInfo>,
    stale: u64,
}

/// Direct request/response client.
pub struct DirectClient {
    net: NetHandle,
    table: Arc<Mutex<Table>>,
    next_id: AtomicU64,
    events: Receiver<NetEvent>,
    pump: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for DirectClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectClient")
            .field("net", &self.net)
            .finish()
    }
}

impl DirectClient {
    /// Starts the pump on the network's `events` channel.
    pub fn start(net: NetHandle, events: Receiver<NetEvent>) -> Self {
        let table = Arc::new(Mutex::new(Table::default()));
        let (fwd_tx, fwd_rx) = unbounded();
        let pump = {
            let table = table.clone();
            let net = net.clone();
            std::thread::Builder::new()
                .name("client-pump".into())
                .spawn(move || pump(&events, &table, &net, &fwd_tx))
                .ok()
        };
        DirectClient {
            net,
            table,
            next_id: AtomicU64::new(1),
            events: fwd_rx,
            pump,
        }
    }

    /// Stream up/down events (responses are consumed by the client).
    pub fn stream_events(&self) -> &Receiver<NetEvent> {
        &self.events
    }

    /// Streams currently open.
    pub fn streams(&self) -> Vec<StreamInfo> {
        self.table.lock().streams.values().cloned().collect()
    }

    /// Responses that arrived after their request timed out.
    pub fn stale_responses(&self) -> u64 {
        self.table.lock().stale
    }

    /// Sends `req` on `stream` and waits up to `timeout` for its response.
    pub fn request(
        &self,
        stream: StreamId,
        req: Request,
        timeout: Duration,
    ) -> Result<Response, ClientError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = bounded(1);
        {
            let mut t = self.table.lock();
            if !t.streams.contains_key(&stream) {
                return Err(ClientError::StreamClosed("no such stream".into()));
            }
            t.pending.insert((stream, id), tx);
        }
        let started = Instant::now();
        metrics::counter!(names::CLIENT_REQUEST).increment(1);
        if self.net.send(stream, &Message::Request(id, req)).is_err() {
            self.table.lock().pending.remove(&(stream, id));
            return Err(ClientError::Stopped);
        }
        let r = match rx.recv_timeout(timeout) {
            Ok(r) => r,
            Err(RecvTimeoutError::Timeout) => {
                let mut t = self.table.lock();
                t.pending.remove(&(stream, id));
                t.expired.insert((stream, id));
                t.expired_order.push_back((stream, id));
                if t.expired_order.len() > EXPIRED_MEMORY {
                    if let Some(old) = t.expired_order.pop_front() {
                        t.expired.remove(&old);
                    }
                }
                Err(ClientError::Timeout)
            }
            Err(RecvTimeoutError::Disconnected) => Err(ClientError::Stopped),
        };
        metrics::histogram!(names::CLIENT_REQUEST_DELAY).record(started.elapsed().as_secs_f64());
        if r.is_err() {
            metrics::counter!(names::FAILED_CLIENT_REQUEST).increment(1);
        }
        r
    }
}

impl Drop for DirectClient {
    fn drop(&mut self) {
        // The pump ends when the network thread drops its event sender.
        if let Some(p) = self.pump.take() {
            if p.is_finished() {
                let _ = p.join();
            }
        }
    }
}

fn pump(
    events: &Receiver<NetEvent>,
    table: &Mutex<Table>,
    net: &NetHandle,
    fwd: &Sender<NetEvent>,
) {
    for ev in events.iter() {
        match ev {
            NetEvent::Response {
                stream,
                id,
                response,
            } => {
                let mut t = table.lock();
                if let Some(w) = t.pending.remove(&(stream, id)) {
                    let _ = w.send(Ok(response));
                } else if t.expired.remove(&(stream, id)) {
                    t.stale += 1;
                    tracing::debug!(stream, id, "late response dropped");
                } else {
                    drop(t);
                    tracing::warn!(stream, id, "unsolicited response: closing stream");
                    let _ = net.close(
                        stream,
                        CloseReason::Wire(WireError::UnsolicitedResponse(id)),
                    );
                }
            }
            NetEvent::StreamUp(info) => {
                table.lock().streams.insert(info.id, info.clone());
                let _ = fwd.send(NetEvent::StreamUp(info));
            }
            NetEvent::StreamDown(closed) => {
                let mut t = table.lock();
                t.streams.remove(&closed.id);
                let failed: Vec<_> = t
                    .pending
                    .keys()
                    .filter(|(s, _)| *s == closed.id)
                    .copied()
                    .collect();
                for k in failed {
                    if let Some(w) = t.pending.remove(&k) {
                        let _ = w.send(Err(ClientError::StreamClosed(closed.reason.to_string())));
                    }
                }
                drop(t);
                let _ = fwd.send(NetEvent::StreamDown(closed));
            }
        }
    }
}
