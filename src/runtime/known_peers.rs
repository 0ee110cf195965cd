//! The peers a node knew, kept in its datadir across restarts
//! (`<datadir>/known_peers`, one multiaddr `/ip4/…/tcp/…/p2p/…` per line,
//! least recently used first).
//!
//! The boot list is the only other way into the network: a node restarted
//! after its boot peers went away (the simulator's `boot-loss` scenario)
//! would otherwise find nobody. The stream manager offers these peers at
//! every discovery, as it offers the ones it met in this run.
//!
//! The file is the operator's disk, not the network's, but it is still
//! read defensively: at most `MAX_KNOWN` (the stream manager's cap) lines
//! of 256 bytes are read, a line that does not parse is skipped (and
//! logged), and at most `MAX_KNOWN` peers are kept.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;

use crate::stream::{PeerAddr, MAX_KNOWN};

/// The file's name in the datadir.
pub const FILE_NAME: &str = "known_peers";

/// Bytes read from the file at most: `MAX_KNOWN` lines of 256 bytes.
pub(crate) const MAX_FILE_BYTES: u64 = (MAX_KNOWN * 256) as u64;

/// Reads the known peers saved at `path`: none if the file does not exist;
/// lines that are not a multiaddr with an IP, a TCP port and a PeerId are
/// skipped; the last `MAX_KNOWN` are returned, in the file's order.
pub(crate) fn load(path: &Path) -> std::io::Result<Vec<PeerAddr>> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut peers = Vec::new();
    // By bytes, not `lines()`: a line that is not UTF-8 is one bad line to
    // skip, not an error that loses the whole file.
    for (n, line) in BufReader::new(file.take(MAX_FILE_BYTES))
        .split(b'\n')
        .enumerate()
    {
        let line = line?;
        let line = String::from_utf8_lossy(&line);
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.parse::<PeerAddr>() {
            Ok(p) => peers.push(p),
            Err(e) => {
                tracing::warn!(file = %path.display(), line = n + 1, error = %e, "known peer skipped")
            }
        }
    }
    let skip = peers.len().saturating_sub(MAX_KNOWN);
    Ok(peers.split_off(skip))
}

/// Saves `peers` at `path` atomically: a temporary file beside it, synced,
/// then renamed over the old one, so a crash leaves the old list or the new
/// one, never half of one.
pub(crate) fn save(path: &Path, peers: &[PeerAddr]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut text = String::with_capacity(peers.len() * 96);
    for p in peers.iter().take(MAX_KNOWN) {
        text.push_str(&p.to_string());
        text.push('\n');
    }
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::NodeIdentity;

    fn peer(i: u16) -> PeerAddr {
        PeerAddr {
            peer: NodeIdentity::generate().peer_id(),
            addr: ([10, 0, 0, 1], 9000 + i).into(),
        }
    }

    #[test]
    fn saved_peers_load_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        assert!(load(&path).unwrap().is_empty(), "no file: no peers");
        let peers: Vec<PeerAddr> = (0..5).map(peer).collect();
        save(&path, &peers).unwrap();
        assert_eq!(load(&path).unwrap(), peers);
    }

    #[test]
    fn lines_that_are_not_dialable_peers_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let good = peer(1);
        let text = format!(
            "# comment\n\ngarbage\n/ip4/10.0.0.2/tcp/9\n{}\n\u{0}\u{ff}\n",
            good
        );
        std::fs::write(&path, text).unwrap();
        assert_eq!(load(&path).unwrap(), vec![good]);
    }

    #[test]
    fn a_line_that_is_not_utf8_is_skipped_not_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let good = peer(1);
        let mut bytes = b"\xff\xfe not text\n".to_vec();
        bytes.extend(good.to_string().bytes());
        std::fs::write(&path, bytes).unwrap();
        assert_eq!(load(&path).unwrap(), vec![good]);
    }

    /// Nothing past [`MAX_FILE_BYTES`] is read: a valid line after that
    /// much filler is not seen (without the budget it would be loaded).
    #[test]
    fn a_huge_file_is_read_only_up_to_its_budget() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let good = peer(1);
        let filler = "#".repeat(MAX_FILE_BYTES as usize) + "\n";
        let text = filler + &good.to_string() + "\n";
        std::fs::write(&path, text).unwrap();
        assert!(load(&path).unwrap().is_empty());
    }
}
