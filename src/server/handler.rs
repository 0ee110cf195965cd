//! Answers one request from a [`ChainBackend`]. Pure: no I/O besides the
//! backend's reads, no rate limiting (see [`super::rate_limit`]).

use alloy_rlp::Bytes;

use crate::chain::ChainBackend;
use crate::wire::limits::{MAX_BLOCKS_PER_REQUEST, MAX_HASHES_PER_REQUEST, MAX_PEERS_PER_RESPONSE};
use crate::wire::{ErrorCode, Request, Response};

/// Supplies signed peer records for `GetPeers` (the stream manager plugs in
/// its connected peers); returns at most `max` records.
pub type PeerSource = dyn Fn(usize) -> Vec<Bytes> + Send + Sync;

fn error(code: ErrorCode, message: impl Into<String>) -> Response {
    Response::Error {
        code,
        retry_after_ms: 0,
        message: message.into(),
    }
}

/// Answers `req`. Unknown blocks are answered as absent (`None`), never as
/// zero hashes or empty blocks. Block responses stop once `soft_limit` bytes
/// of blocks are in (after at least one block). Storage failures answer
/// `Internal` (a local fault: the requester is not to blame).
pub fn answer(
    backend: &dyn ChainBackend,
    req: &Request,
    soft_limit: usize,
    peers: &PeerSource,
) -> Response {
    match answer_inner(backend, req, soft_limit, peers) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "server storage read failed");
            error(ErrorCode::Internal, "storage error")
        }
    }
}

fn answer_inner(
    backend: &dyn ChainBackend,
    req: &Request,
    soft_limit: usize,
    peers: &PeerSource,
) -> Result<Response, crate::chain::BackendError> {
    Ok(match req {
        Request::GetBlockNumber => {
            let h = backend.head()?;
            Response::BlockNumber {
                number: h.number,
                hash: h.hash,
            }
        }
        Request::GetBlockHashes(nums) => {
            if nums.len() > MAX_HASHES_PER_REQUEST {
                return Ok(error(ErrorCode::TooManyItems, "too many numbers"));
            }
            Response::BlockHashes(
                nums.iter()
                    .map(|n| backend.hash_by_number(*n))
                    .collect::<Result<_, _>>()?,
            )
        }
        Request::GetBlocksByNumber(nums) => {
            if nums.len() > MAX_BLOCKS_PER_REQUEST {
                return Ok(error(ErrorCode::TooManyItems, "too many blocks"));
            }
            blocks(
                nums.iter().map(|n| backend.block_with_sig_bytes(*n)),
                soft_limit,
            )?
        }
        Request::GetBlocksByHashes(hashes) => {
            if hashes.len() > MAX_BLOCKS_PER_REQUEST {
                return Ok(error(ErrorCode::TooManyItems, "too many blocks"));
            }
            blocks(
                hashes
                    .iter()
                    .map(|h| backend.block_with_sig_bytes_by_hash(h)),
                soft_limit,
            )?
        }
        Request::GetEpochState(epoch) => {
            let spec = backend.chain_spec();
            let number = match epoch.checked_sub(1) {
                None => Some(0),
                Some(prev) => prev
                    .checked_add(1)
                    .and_then(|e| e.checked_mul(spec.epoch_len))
                    .map(|n| n - 1),
            };
            let bytes = match number {
                Some(n) => backend.block_with_sig_bytes(n)?.map(Bytes::from),
                None => None,
            };
            Response::EpochState(bytes)
        }
        Request::GetPeers(max) => {
            Response::Peers(peers((*max as usize).min(MAX_PEERS_PER_RESPONSE)))
        }
    })
}

/// The blocks `items` reads (lazily: reading stops once `soft_limit` bytes
/// are in, after at least one block).
fn blocks(
    items: impl Iterator<Item = Result<Option<Vec<u8>>, crate::chain::BackendError>>,
    soft_limit: usize,
) -> Result<Response, crate::chain::BackendError> {
    let mut out = Vec::new();
    let mut size = 0usize;
    for b in items {
        if size >= soft_limit && !out.is_empty() {
            break;
        }
        let b = b?.map(Bytes::from);
        size += b.as_ref().map_or(1, |b| b.len());
        out.push(b);
    }
    Ok(Response::Blocks(out))
}
