//! The LMDB writer thread: the one thread that writes the chain. It takes
//! jobs in the order the machine emitted them (staging writes, commits,
//! unstaging), so a commit is never ahead of the staged data its
//! checkpoints claim, and reports each commit back to the `sync` thread.
//! While it commits a batch, rayon verifies the next and the network
//! fetches the ones after.

use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam::channel::{Receiver, Sender};

use super::driver::Input;
use super::machine::{CommitError, CommitJob};
use crate::chain::backend::InsertBatch;
use crate::chain::ChainBackend;
use crate::store::{LmdbStaging, StageWrite};

/// A job for the writer.
#[derive(Debug)]
pub enum WriterJob {
    /// Commit a verified batch.
    Commit(CommitJob),
    /// Persist staged data (`UseMemDB = false`).
    Stage(StageWrite),
    /// Drop staged data above a block.
    Unstage(u64),
}

/// Starts the writer thread; it ends when `jobs` closes.
pub fn spawn(
    backend: Arc<dyn ChainBackend>,
    staging: Option<LmdbStaging>,
    jobs: Receiver<WriterJob>,
    results: Sender<Input>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("sync-writer".into())
        .spawn(move || {
            for job in jobs {
                match job {
                    WriterJob::Commit(c) => {
                        let r = commit(&*backend, staging.as_ref(), &c);
                        if results.send(Input::Committed(c.batch, r)).is_err() {
                            return;
                        }
                    }
                    WriterJob::Stage(w) => {
                        if let Some(s) = &staging {
                            match s.write(&w) {
                                Ok(()) if !w.progress.is_empty() => {
                                    if results.send(Input::Staged(w.progress)).is_err() {
                                        return;
                                    }
                                }
                                Ok(()) => {}
                                Err(e) => tracing::warn!(error = %e, "staging write failed"),
                            }
                        }
                    }
                    WriterJob::Unstage(n) => {
                        if let Some(s) = &staging {
                            if let Err(e) = s.remove(n, true) {
                                tracing::warn!(error = %e, "staging cleanup failed");
                            }
                        }
                    }
                }
            }
        })
}

/// Inserts a batch with its checkpoints, then drops its staged copy.
fn commit(
    backend: &dyn ChainBackend,
    staging: Option<&LmdbStaging>,
    c: &CommitJob,
) -> Result<(), CommitError> {
    let batch = InsertBatch {
        blocks: c.blocks.clone(),
        progress: c.progress.clone(),
    };
    backend
        .insert_verified_batch(&batch)
        .map_err(|e| CommitError(e.to_string()))?;
    if let (true, Some(s), Some(last)) = (c.unstage, staging, c.blocks.last()) {
        // Below the head staging is dead weight; a crash before this only
        // leaves entries the next start ignores.
        if let Err(e) = s.remove(last.number(), false) {
            tracing::warn!(error = %e, "staging cleanup failed");
        }
    }
    Ok(())
}
