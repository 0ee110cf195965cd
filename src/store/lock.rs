//! One process per datadir: an exclusive advisory lock on `DIR/LOCK`.
//!
//! LMDB lets several processes open one environment, so nothing stopped two
//! nodes from writing one chain at once. A [`Store`](super::Store) now holds
//! an exclusive `flock(2)` on the datadir's `LOCK` file for as long as it is
//! open. `flock` locks belong to the open file description, so the kernel
//! drops the lock when the file is closed, including when the process dies
//! (`kill -9`, a crash): a stale `LOCK` file never blocks a restart. Being
//! per open file description, a second open in the same process is refused
//! too (LMDB forbids that anyway).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;

use super::error::StoreError;

/// The lock file's name inside a datadir. It holds the decimal process id
/// of the holder, for the message a second opener gets.
pub const LOCK_FILE: &str = "LOCK";

/// The datadir's lock, held while this value lives.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    /// Takes the lock of `dir` (which must exist) without waiting, and
    /// writes this process' id into it. Refuses with
    /// [`StoreError::InUse`] if another open holds it.
    pub(crate) fn acquire(dir: &Path) -> Result<DirLock, StoreError> {
        let path = dir.join(LOCK_FILE);
        let io = |source| StoreError::Io {
            path: path.clone(),
            source,
        };
        // Not truncated on open: until we hold the lock, the pid in it is
        // the holder's.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        if !try_lock_exclusive(&file).map_err(io)? {
            // The file is another process' to write: read at most a few
            // bytes, and take them only if they are a number.
            let mut text = String::new();
            let pid = (&mut file)
                .take(32)
                .read_to_string(&mut text)
                .ok()
                .and_then(|_| text.trim().parse().ok());
            return Err(StoreError::InUse {
                path: dir.to_path_buf(),
                pid,
            });
        }
        file.set_len(0).map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(DirLock { _file: file })
    }
}

/// Whether `dir` holds anything besides its lock file: what a failed
/// creation leaves is the lock file alone, and anything else is some other
/// program's. An absent `dir` holds nothing.
pub(crate) fn holds_foreign_files(dir: &Path) -> Result<bool, StoreError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(source) => {
            return Err(StoreError::Io {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    Ok(entries
        .into_iter()
        .any(|e| e.map_or(true, |e| e.file_name() != LOCK_FILE)))
}

/// `flock(LOCK_EX | LOCK_NB)`: true if taken, false if another open holds it.
#[cfg(unix)]
fn try_lock_exclusive(file: &File) -> std::io::Result<bool> {
    use std::os::unix::io::AsRawFd;
    // SAFETY: `flock` only reads the descriptor number, and `file` keeps
    // that descriptor open for the duration of the call.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(err)
    }
}

/// Elsewhere there is no lock: every open succeeds, as before.
#[cfg(not(unix))]
fn try_lock_exclusive(_file: &File) -> std::io::Result<bool> {
    Ok(true)
}
