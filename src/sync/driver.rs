//! The `sync` thread: a thin driver of the [`SyncMachine`]. It owns the
//! I/O the machine may not touch: it submits the machine's requests to the
//! request manager (each reply comes back on a channel), runs `Verify` jobs
//! on rayon, hands commits and staging writes to the writer thread
//! ([`super::writer`]), tells the stream manager whom to penalise, records
//! metrics and publishes the status. It waits on its channel with the
//! machine's next deadline as timeout (`crossbeam::select!`), and polls the
//! host's stream pool every 100 ms.
//!
//! Before the machine starts, the driver audits the node's own chain
//! (`chain::audit`) and unwinds an invalid branch, then reads the stage
//! checkpoints and what is staged (`UseMemDB = false`) so the machine
//! resumes where the last run stopped.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam::channel::{select, unbounded, Receiver, Sender};
use parking_lot::RwLock;

use rand_core::RngCore;

use super::finish::Stat;
use super::machine::{Action, BatchId, CommitError, ReqId, Restored, Start, SyncMachine};
use super::resume;
use super::settings::SyncSettings;
use super::status::SyncStatus;
use super::writer::{self, WriterJob};
use super::{StageError, SyncOutcome};
use crate::chain::audit::audit_chain;
use crate::chain::verify::SegmentCheck;
use crate::chain::{ChainBackend, SealedBlock, StageId};
use crate::metrics::names;
use crate::request::RequestOptions;
use crate::runtime::{HostHandle, RequestResult};
use crate::store::LmdbStaging;

/// How often the driver reads the host's stream pool.
const POOL_POLL: Duration = Duration::from_millis(100);

/// What reaches the `sync` thread.
#[derive(Debug)]
pub enum Input {
    /// A request's outcome.
    Response(ReqId, RequestResult),
    /// A verification's result.
    Verified(BatchId, SegmentCheck),
    /// A commit's result.
    Committed(BatchId, Result<(), CommitError>),
    /// Checkpoints persisted with staged data.
    Staged(Vec<(StageId, u64)>),
}

/// Everything the `sync` thread needs.
pub struct SyncThread {
    /// The chain.
    pub backend: Arc<dyn ChainBackend>,
    /// Requests and blame.
    pub host: HostHandle,
    /// Settings.
    pub settings: SyncSettings,
    /// LMDB staging (`UseMemDB = false`), if the chain is the LMDB store.
    pub staging: Option<LmdbStaging>,
    /// The boot peers, asked for blocks only when too few others are live
    /// ([`SyncMachine::with_entry_peers`]).
    pub entry: Vec<libp2p_identity::PeerId>,
    /// Published status.
    pub status: Arc<RwLock<SyncStatus>>,
    /// Set to stop.
    pub stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for SyncThread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncThread").finish()
    }
}

impl SyncThread {
    /// Runs the sync until stopped (or synced, with `exit_when_synced`).
    pub fn run(
        self,
        triggers: &Receiver<()>,
        offers: &Receiver<SealedBlock>,
        exit_when_synced: bool,
    ) -> SyncOutcome {
        if let Err(e) = self.check_own_chain() {
            tracing::error!(error = %e, "cannot sync");
            self.status.write().last_error = Some(e.to_string());
            return SyncOutcome::Failed(e.to_string());
        }
        let init = self.settings.init_streams;
        let have = self.wait_for_streams(init, self.settings.init_wait);
        tracing::info!(streams = have, wanted = init, "sync starting");
        let mut machine = match self.machine(exit_when_synced) {
            Ok(mut m) => {
                m.carry_status(&self.status.read());
                m
            }
            Err(e) => {
                self.status.write().last_error = Some(e.to_string());
                return SyncOutcome::Failed(e.to_string());
            }
        };
        let (in_tx, in_rx) = unbounded::<Input>();
        let (job_tx, job_rx) = unbounded::<WriterJob>();
        let writer = match writer::spawn(
            self.backend.clone(),
            self.staging.clone(),
            job_rx,
            in_tx.clone(),
        ) {
            Ok(w) => w,
            Err(e) => return SyncOutcome::Failed(format!("cannot start the writer: {e}")),
        };
        let outcome = self.drive(
            &mut machine,
            triggers,
            offers,
            &in_tx,
            &in_rx,
            &job_tx,
            &writer,
        );
        drop(job_tx);
        if writer.join().is_err() {
            return SyncOutcome::Failed("the sync writer thread panicked".into());
        }
        outcome
    }

    #[allow(clippy::too_many_arguments)]
    fn drive(
        &self,
        m: &mut SyncMachine,
        triggers: &Receiver<()>,
        offers: &Receiver<SealedBlock>,
        in_tx: &Sender<Input>,
        in_rx: &Receiver<Input>,
        jobs: &Sender<WriterJob>,
        writer: &std::thread::JoinHandle<()>,
    ) -> SyncOutcome {
        let mut keys: HashSet<ReqId> = HashSet::new();
        let mut next_poll = Instant::now();
        loop {
            if self.stop.load(Ordering::Relaxed) {
                for id in &keys {
                    self.host.requests().cancel(*id);
                }
                return self.stopped(m);
            }
            if writer.is_finished() {
                tracing::error!("the sync writer thread died");
                return SyncOutcome::Failed("the sync writer thread died".into());
            }
            let now = Instant::now();
            if now >= next_poll {
                m.handle_streams(&self.host.status().streams, now);
                next_poll = now + POOL_POLL;
            }
            self.execute(m, in_tx, jobs, &mut keys);
            if let Some(o) = m.outcome() {
                return o.clone();
            }
            let wake = m.next_deadline().map_or(next_poll, |d| d.min(next_poll));
            let timeout = wake.saturating_duration_since(Instant::now());
            select! {
                recv(in_rx) -> i => {
                    let now = Instant::now();
                    match i {
                        Ok(Input::Response(id, r)) => {
                            keys.remove(&id);
                            m.handle_response(id, r, now)
                        }
                        Ok(Input::Verified(b, c)) => m.handle_verified(b, c, now),
                        Ok(Input::Committed(b, r)) => m.handle_committed(b, r, now),
                        Ok(Input::Staged(p)) => m.handle_staged(&p),
                        Err(_) => return self.stopped(m),
                    }
                    // Take whatever else is queued, then schedule once.
                    m.begin_inputs();
                    while let Ok(i) = in_rx.try_recv() {
                        let now = Instant::now();
                        match i {
                            Input::Response(id, r) => {
                                keys.remove(&id);
                                m.handle_response(id, r, now)
                            }
                            Input::Verified(b, c) => m.handle_verified(b, c, now),
                            Input::Committed(b, r) => m.handle_committed(b, r, now),
                            Input::Staged(p) => m.handle_staged(&p),
                        }
                    }
                    m.end_inputs(Instant::now());
                }
                recv(triggers) -> t => {
                    if t.is_ok() && !self.stop.load(Ordering::Relaxed) {
                        metrics::counter!(names::CONSENSUS_TRIGGER).increment(1);
                        m.handle_trigger(Instant::now());
                    }
                }
                recv(offers) -> b => {
                    if let Ok(b) = b {
                        let number = b.number();
                        if let Err(e) = m.handle_offered(b, Instant::now()) {
                            tracing::debug!(number, error = %e, "offered block refused");
                        }
                    }
                }
                default(timeout) => m.handle_timeout(Instant::now()),
            }
        }
    }

    /// Carries out the machine's actions.
    fn execute(
        &self,
        m: &mut SyncMachine,
        in_tx: &Sender<Input>,
        jobs: &Sender<WriterJob>,
        keys: &mut HashSet<ReqId>,
    ) {
        while let Some(a) = m.poll_action() {
            match a {
                Action::Submit {
                    id,
                    request,
                    stream,
                    priority,
                    timeout,
                } => {
                    let tx = in_tx.clone();
                    keys.insert(id);
                    self.host.requests().submit_keyed(
                        id,
                        request,
                        RequestOptions {
                            priority,
                            whitelist: Some(vec![stream]),
                            blacklist: vec![],
                            timeout: Some(timeout),
                        },
                        Box::new(move |r| {
                            let _ = tx.send(Input::Response(id, r));
                        }),
                    );
                }
                Action::Cancel { id } => {
                    if keys.remove(&id) {
                        self.host.requests().cancel(id);
                    }
                }
                Action::Blame {
                    stream,
                    peer,
                    fault,
                    why,
                } => {
                    if let Some(reason) = fault.removal() {
                        tracing::warn!(stream, reason = reason.label(), why, "blaming stream");
                        match peer {
                            Some(p) => self.host.penalize_peer(p, reason),
                            None => self.host.remove_stream(stream, reason),
                        }
                    }
                }
                Action::Verify(job) => {
                    let tx = in_tx.clone();
                    rayon::spawn(move || {
                        let check = job.run();
                        let _ = tx.send(Input::Verified(job.batch, check));
                    });
                }
                Action::Commit(job) => {
                    let _ = jobs.send(WriterJob::Commit(job));
                }
                Action::Stage(w) => {
                    let _ = jobs.send(WriterJob::Stage(w));
                }
                Action::Unstage { number } => {
                    let _ = jobs.send(WriterJob::Unstage(number));
                }
                Action::Status(s) => {
                    let mut s = *s;
                    s.budget_used = m.budget_used() as u64;
                    let mut cur = self.status.write();
                    s.budget_peak = cur.budget_peak.max(s.budget_used);
                    *cur = s;
                }
                Action::Stat(Stat::Counter(name, n)) => metrics::counter!(name).increment(n),
                Action::Stat(Stat::Histogram(name, v)) => metrics::histogram!(name).record(v),
            }
        }
        let used = m.budget_used() as u64;
        let mut s = self.status.write();
        s.budget_used = used;
        s.budget_peak = s.budget_peak.max(used);
    }

    fn stopped(&self, m: &SyncMachine) -> SyncOutcome {
        SyncOutcome::Stopped {
            head: self.backend.head().map_or(m.head(), |h| h.number),
            target: m.status().target,
        }
    }

    /// Builds the machine at the head, with what is staged.
    fn machine(&self, exit_when_synced: bool) -> Result<SyncMachine, StageError> {
        let (tip, committees) = resume::tip_and_committees(&*self.backend)?;
        let spec = self.backend.chain_spec().clone();
        let persist = self.staging.is_some() && !self.settings.staged.use_mem_db;
        let restored = match (&self.staging, persist) {
            (Some(s), true) => self.restore(s, tip.header.number)?,
            (Some(s), false) => {
                let _ = s.clear();
                Restored::default()
            }
            _ => Restored::default(),
        };
        Ok(SyncMachine::new(
            self.settings.clone(),
            spec,
            Start {
                tip,
                committees,
                restored,
                persist,
                exit_when_synced,
            },
            Instant::now(),
        )
        .with_tie_salt(rand_core::OsRng.next_u64())
        .with_entry_peers(self.entry.iter().copied()))
    }

    /// Reads what a previous run staged up to its checkpoints (dropping a
    /// stale staging).
    fn restore(&self, s: &LmdbStaging, head: u64) -> Result<Restored, StageError> {
        let local = |e: crate::store::StoreError| StageError::Local(e.into());
        let max = self.settings.max_staged_bytes / 4;
        let r = resume::restore(
            head,
            s.progress(StageId::BlockHashes).map_err(local)?,
            s.progress(StageId::BlockBodies).map_err(local)?,
            |from, to| s.hashes(from, to),
            |from, to| s.blocks(from, to, max),
        )
        .map_err(local)?;
        Ok(r.unwrap_or_else(|| {
            let _ = s.clear();
            Restored::default()
        }))
    }

    /// Audits the node's own chain and unwinds it to its last verified
    /// block if it is on an invalid branch.
    fn check_own_chain(&self) -> Result<(), StageError> {
        let audit = audit_chain(&*self.backend)?;
        self.status.write().sigs_verified += audit.sigs_checked as u64;
        let Some(error) = audit.error else {
            return Ok(());
        };
        tracing::warn!(
            head = audit.head,
            last_verified = audit.verified_to,
            %error,
            "the chain is on an invalid branch: unwinding to its last verified block"
        );
        let head = self
            .backend
            .unwind_to(audit.verified_to)
            .map_err(|e| StageError::CannotUnwind(e.to_string()))?;
        if let Some(s) = &self.staging {
            let _ = s.clear();
        }
        let mut s = self.status.write();
        s.unwinds += 1;
        s.head = head.number;
        tracing::warn!(
            from = audit.head,
            to = head.number,
            "unwound: the blocks above were not covered by verified signatures"
        );
        Ok(())
    }

    /// Waits up to `d` (or until stopped) for the host to have `n` streams.
    fn wait_for_streams(&self, n: usize, d: Duration) -> usize {
        let deadline = Instant::now() + d;
        loop {
            let have = self.host.status().ready;
            if have >= n || Instant::now() >= deadline || self.stop.load(Ordering::Relaxed) {
                return have;
            }
            // The host publishes its pool asynchronously; poll it.
            std::thread::park_timeout(Duration::from_millis(50));
        }
    }
}
