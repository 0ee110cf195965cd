//! Protocol messages: one type byte, then the RLP list of the message's
//! fields (see the module docs of [`super`] for the full table).
//!
//! Decoding checks every list's length against its limit while iterating,
//! so a message can never make the decoder hold more items than allowed.

use alloy_rlp::{Buf, Bytes, Decodable, Encodable, Header};

use super::limits::*;
use crate::crypto::B256;

/// Request id: chosen by the requester, echoed in the response.
pub type RequestId = u64;

/// Type bytes of every message. 0x07/0x08 are reserved for receipts and
/// state ranges.
pub mod msg_type {
    /// `GetBlockNumber`.
    pub const GET_BLOCK_NUMBER: u8 = 0x01;
    /// `GetBlockHashes`.
    pub const GET_BLOCK_HASHES: u8 = 0x02;
    /// `GetBlocksByNumber`.
    pub const GET_BLOCKS_BY_NUMBER: u8 = 0x03;
    /// `GetBlocksByHashes`.
    pub const GET_BLOCKS_BY_HASHES: u8 = 0x04;
    /// `GetEpochState`.
    pub const GET_EPOCH_STATE: u8 = 0x05;
    /// `GetPeers`.
    pub const GET_PEERS: u8 = 0x06;
    /// Reserved: `GetReceipts`.
    #[cfg(test)]
    pub const RESERVED_GET_RECEIPTS: u8 = 0x07;
    /// Reserved: `GetStateRange`.
    #[cfg(test)]
    pub const RESERVED_GET_STATE_RANGE: u8 = 0x08;
    /// `BlockNumber` response.
    pub const BLOCK_NUMBER: u8 = 0x41;
    /// `BlockHashes` response.
    pub const BLOCK_HASHES: u8 = 0x42;
    /// `Blocks` response (to both block requests).
    pub const BLOCKS: u8 = 0x43;
    /// `EpochState` response.
    pub const EPOCH_STATE: u8 = 0x45;
    /// `Peers` response.
    pub const PEERS: u8 = 0x46;
    /// `ErrorResponse`.
    pub const ERROR: u8 = 0x7f;
}

/// A request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// The peer's head number.
    GetBlockNumber,
    /// Hashes of these canonical block numbers (≤ [`MAX_HASHES_PER_REQUEST`]).
    GetBlockHashes(Vec<u64>),
    /// Blocks with these numbers (≤ [`MAX_BLOCKS_PER_REQUEST`]).
    GetBlocksByNumber(Vec<u64>),
    /// Blocks with these hashes (≤ [`MAX_BLOCKS_PER_REQUEST`]).
    GetBlocksByHashes(Vec<B256>),
    /// The block that names the committee of this epoch (last block of the
    /// previous epoch; genesis for epoch 0).
    GetEpochState(u64),
    /// Up to this many signed peer records (≤ [`MAX_PEERS_PER_RESPONSE`]).
    GetPeers(u32),
}

/// Why a request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// Over the server's rate limit: retry after `retry_after_ms`.
    RateLimited,
    /// The request breaks a limit (too many items).
    TooManyItems,
    /// The server failed locally; not the requester's fault.
    Internal,
    /// A request type the server does not serve.
    Unsupported,
    /// Sent with request id 0 just before closing a stream on purpose (pools
    /// full, duplicate stream, shutdown): not a failure of either side.
    GoingAway,
    /// A code this implementation does not know (kept for forward compatibility).
    Other(u64),
}

impl ErrorCode {
    fn to_u64(self) -> u64 {
        match self {
            ErrorCode::RateLimited => 1,
            ErrorCode::TooManyItems => 2,
            ErrorCode::Internal => 3,
            ErrorCode::Unsupported => 4,
            ErrorCode::GoingAway => 5,
            ErrorCode::Other(c) => c,
        }
    }

    fn from_u64(c: u64) -> Self {
        match c {
            1 => ErrorCode::RateLimited,
            2 => ErrorCode::TooManyItems,
            3 => ErrorCode::Internal,
            4 => ErrorCode::Unsupported,
            5 => ErrorCode::GoingAway,
            c => ErrorCode::Other(c),
        }
    }
}

/// A response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// Head number and hash.
    BlockNumber {
        /// Head number.
        number: u64,
        /// Head hash.
        hash: B256,
    },
    /// One entry per requested number, `None` where the block is unknown.
    BlockHashes(Vec<Option<B256>>),
    /// RLP of `BlockWithSig` per requested block, in request order, `None`
    /// where unknown; may stop early at the soft byte limit.
    Blocks(Vec<Option<Bytes>>),
    /// RLP of the `BlockWithSig` naming the committee, `None` if unknown.
    EpochState(Option<Bytes>),
    /// Signed peer records (libp2p envelopes, protobuf).
    Peers(Vec<Bytes>),
    /// The request was refused.
    Error {
        /// Why.
        code: ErrorCode,
        /// For `RateLimited`: when to retry, milliseconds.
        retry_after_ms: u64,
        /// Human-readable detail (≤ [`MAX_ERROR_MESSAGE_LEN`] bytes).
        message: String,
    },
}

/// One protocol message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A request with its id.
    Request(RequestId, Request),
    /// A response to request `id`.
    Response(RequestId, Response),
}

/// A message that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Empty frame.
    #[error("empty message")]
    Empty,
    /// Unknown or reserved type byte.
    #[error("unknown message type {0:#04x}")]
    UnknownType(u8),
    /// Malformed RLP.
    #[error("malformed {what}: {source}")]
    Rlp {
        /// Message type name.
        what: &'static str,
        /// The decoder's reason.
        source: alloy_rlp::Error,
    },
    /// A list over its limit.
    #[error("{what} carries more than {limit} items")]
    TooMany {
        /// Which list.
        what: &'static str,
        /// The limit.
        limit: usize,
    },
    /// A response to a request id never issued on that stream.
    #[error("response to request {0}, which was never sent on this stream")]
    UnsolicitedResponse(RequestId),
    /// A string over its limit.
    #[error("{what} is longer than {limit} bytes")]
    TooLong {
        /// Which field.
        what: &'static str,
        /// The limit.
        limit: usize,
    },
}

fn enc_list(out: &mut Vec<u8>, ty: u8, fields: &[&dyn Encodable]) {
    out.push(ty);
    let payload_length = fields.iter().map(|f| f.length()).sum();
    Header {
        list: true,
        payload_length,
    }
    .encode(out);
    for f in fields {
        f.encode(out);
    }
}

/// Encodes an RLP list of items given as encodables.
struct ListOf<'a, T>(&'a [T]);

impl<T: Encodable> Encodable for ListOf<'_, T> {
    fn length(&self) -> usize {
        let p: usize = self.0.iter().map(Encodable::length).sum();
        p + alloy_rlp::length_of_length(p)
    }

    fn encode(&self, out: &mut dyn alloy_rlp::BufMut) {
        let payload_length = self.0.iter().map(Encodable::length).sum();
        Header {
            list: true,
            payload_length,
        }
        .encode(out);
        for x in self.0 {
            x.encode(out);
        }
    }
}

/// An optional byte string: empty string = absent.
struct Opt<'a>(&'a [u8]);

impl Encodable for Opt<'_> {
    fn length(&self) -> usize {
        self.0.length()
    }

    fn encode(&self, out: &mut dyn alloy_rlp::BufMut) {
        self.0.encode(out)
    }
}

/// Request id reserved for stream-level announcements (never a request's).
pub const STREAM_LEVEL_ID: RequestId = 0;

impl Message {
    /// The goodbye announcement: "I am closing this stream on purpose".
    pub fn going_away(why: &str) -> Message {
        Message::Response(
            STREAM_LEVEL_ID,
            Response::Error {
                code: ErrorCode::GoingAway,
                retry_after_ms: 0,
                message: why.to_string(),
            },
        )
    }

    /// Whether this is the goodbye announcement.
    pub fn is_going_away(&self) -> bool {
        matches!(
            self,
            Message::Response(
                STREAM_LEVEL_ID,
                Response::Error {
                    code: ErrorCode::GoingAway,
                    ..
                }
            )
        )
    }

    /// Encodes the message (type byte + RLP).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// Appends the encoding to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        use msg_type::*;
        match self {
            Message::Request(id, r) => match r {
                Request::GetBlockNumber => enc_list(out, GET_BLOCK_NUMBER, &[id]),
                Request::GetBlockHashes(n) => enc_list(out, GET_BLOCK_HASHES, &[id, &ListOf(n)]),
                Request::GetBlocksByNumber(n) => {
                    enc_list(out, GET_BLOCKS_BY_NUMBER, &[id, &ListOf(n)])
                }
                Request::GetBlocksByHashes(h) => {
                    enc_list(out, GET_BLOCKS_BY_HASHES, &[id, &ListOf(h)])
                }
                Request::GetEpochState(e) => enc_list(out, GET_EPOCH_STATE, &[id, e]),
                Request::GetPeers(m) => enc_list(out, GET_PEERS, &[id, m]),
            },
            Message::Response(id, r) => match r {
                Response::BlockNumber { number, hash } => {
                    enc_list(out, BLOCK_NUMBER, &[id, number, hash])
                }
                Response::BlockHashes(hs) => {
                    let items: Vec<Opt<'_>> = hs
                        .iter()
                        .map(|h| Opt(h.as_ref().map_or(&[][..], |h| &h[..])))
                        .collect();
                    enc_list(out, BLOCK_HASHES, &[id, &ListOf(&items)])
                }
                Response::Blocks(bs) => {
                    let items: Vec<Opt<'_>> = bs
                        .iter()
                        .map(|b| Opt(b.as_deref().unwrap_or(&[])))
                        .collect();
                    enc_list(out, BLOCKS, &[id, &ListOf(&items)])
                }
                Response::EpochState(b) => {
                    enc_list(out, EPOCH_STATE, &[id, &Opt(b.as_deref().unwrap_or(&[]))])
                }
                Response::Peers(rs) => enc_list(out, PEERS, &[id, &ListOf(rs)]),
                Response::Error {
                    code,
                    retry_after_ms,
                    message,
                } => {
                    let msg = truncate(message, MAX_ERROR_MESSAGE_LEN);
                    enc_list(out, ERROR, &[id, &code.to_u64(), retry_after_ms, &msg])
                }
            },
        }
    }

    /// Decodes one message from a frame's payload.
    pub fn decode(bytes: &[u8]) -> Result<Message, WireError> {
        use msg_type::*;
        let (&ty, rest) = bytes.split_first().ok_or(WireError::Empty)?;
        let what = type_name(ty).ok_or(WireError::UnknownType(ty))?;
        let rlp = |source| WireError::Rlp { what, source };
        let mut buf = rest;
        let header = Header::decode(&mut buf).map_err(rlp)?;
        if !header.list {
            return Err(rlp(alloy_rlp::Error::UnexpectedString));
        }
        if buf.len() != header.payload_length {
            return Err(rlp(alloy_rlp::Error::UnexpectedLength));
        }
        let b = &mut buf;
        let id = u64::decode(b).map_err(rlp)?;
        let msg = match ty {
            GET_BLOCK_NUMBER => Message::Request(id, Request::GetBlockNumber),
            GET_BLOCK_HASHES => Message::Request(
                id,
                Request::GetBlockHashes(decode_list(b, what, MAX_HASHES_PER_REQUEST, u64::decode)?),
            ),
            GET_BLOCKS_BY_NUMBER => Message::Request(
                id,
                Request::GetBlocksByNumber(decode_list(
                    b,
                    what,
                    MAX_BLOCKS_PER_REQUEST,
                    u64::decode,
                )?),
            ),
            GET_BLOCKS_BY_HASHES => Message::Request(
                id,
                Request::GetBlocksByHashes(decode_list(
                    b,
                    what,
                    MAX_BLOCKS_PER_REQUEST,
                    <[u8; 32]>::decode,
                )?),
            ),
            GET_EPOCH_STATE => {
                Message::Request(id, Request::GetEpochState(u64::decode(b).map_err(rlp)?))
            }
            GET_PEERS => {
                let max = u32::decode(b).map_err(rlp)?;
                if max as usize > MAX_PEERS_PER_RESPONSE {
                    return Err(WireError::TooMany {
                        what,
                        limit: MAX_PEERS_PER_RESPONSE,
                    });
                }
                Message::Request(id, Request::GetPeers(max))
            }
            BLOCK_NUMBER => {
                let number = u64::decode(b).map_err(rlp)?;
                let hash = <[u8; 32]>::decode(b).map_err(rlp)?;
                Message::Response(id, Response::BlockNumber { number, hash })
            }
            BLOCK_HASHES => Message::Response(
                id,
                Response::BlockHashes(decode_list(b, what, MAX_HASHES_PER_REQUEST, |b| {
                    let s = Header::decode_bytes(b, false)?;
                    match s.len() {
                        0 => Ok(None),
                        32 => {
                            let mut h = [0u8; 32];
                            h.copy_from_slice(s);
                            Ok(Some(h))
                        }
                        _ => Err(alloy_rlp::Error::UnexpectedLength),
                    }
                })?),
            ),
            BLOCKS => Message::Response(
                id,
                Response::Blocks(decode_list(b, what, MAX_BLOCKS_PER_REQUEST, |b| {
                    let s = Header::decode_bytes(b, false)?;
                    Ok((!s.is_empty()).then(|| Bytes::copy_from_slice(s)))
                })?),
            ),
            EPOCH_STATE => {
                let s = Header::decode_bytes(b, false).map_err(rlp)?;
                Message::Response(
                    id,
                    Response::EpochState((!s.is_empty()).then(|| Bytes::copy_from_slice(s))),
                )
            }
            PEERS => Message::Response(
                id,
                Response::Peers(decode_list(b, what, MAX_PEERS_PER_RESPONSE, |b| {
                    let s = Header::decode_bytes(b, false)?;
                    if s.len() > MAX_PEER_RECORD_LEN {
                        return Err(alloy_rlp::Error::Custom("peer record too long"));
                    }
                    Ok(Bytes::copy_from_slice(s))
                })?),
            ),
            ERROR => {
                let code = ErrorCode::from_u64(u64::decode(b).map_err(rlp)?);
                let retry_after_ms = u64::decode(b).map_err(rlp)?;
                let s = Header::decode_bytes(b, false).map_err(rlp)?;
                if s.len() > MAX_ERROR_MESSAGE_LEN {
                    return Err(WireError::TooLong {
                        what,
                        limit: MAX_ERROR_MESSAGE_LEN,
                    });
                }
                Message::Response(
                    id,
                    Response::Error {
                        code,
                        retry_after_ms,
                        message: String::from_utf8_lossy(s).into_owned(),
                    },
                )
            }
            _ => return Err(WireError::UnknownType(ty)),
        };
        if !b.is_empty() {
            return Err(rlp(alloy_rlp::Error::ListLengthMismatch {
                expected: header.payload_length - b.len(),
                got: header.payload_length,
            }));
        }
        Ok(msg)
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Name of a message type, `None` for unknown and reserved types.
pub fn type_name(ty: u8) -> Option<&'static str> {
    use msg_type::*;
    Some(match ty {
        GET_BLOCK_NUMBER => "GetBlockNumber",
        GET_BLOCK_HASHES => "GetBlockHashes",
        GET_BLOCKS_BY_NUMBER => "GetBlocksByNumber",
        GET_BLOCKS_BY_HASHES => "GetBlocksByHashes",
        GET_EPOCH_STATE => "GetEpochState",
        GET_PEERS => "GetPeers",
        BLOCK_NUMBER => "BlockNumber",
        BLOCK_HASHES => "BlockHashes",
        BLOCKS => "Blocks",
        EPOCH_STATE => "EpochState",
        PEERS => "Peers",
        ERROR => "ErrorResponse",
        _ => return None,
    })
}

/// Decodes an RLP list, refusing more than `limit` items as soon as item
/// `limit + 1` is seen.
fn decode_list<T>(
    buf: &mut &[u8],
    what: &'static str,
    limit: usize,
    item: impl Fn(&mut &[u8]) -> alloy_rlp::Result<T>,
) -> Result<Vec<T>, WireError> {
    let rlp = |source| WireError::Rlp { what, source };
    let header = Header::decode(buf).map_err(rlp)?;
    if !header.list {
        return Err(rlp(alloy_rlp::Error::UnexpectedString));
    }
    if buf.len() < header.payload_length {
        return Err(rlp(alloy_rlp::Error::InputTooShort));
    }
    let mut payload = &buf[..header.payload_length];
    buf.advance(header.payload_length);
    let mut out = Vec::new();
    while !payload.is_empty() {
        if out.len() == limit {
            return Err(WireError::TooMany { what, limit });
        }
        out.push(item(&mut payload).map_err(rlp)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn samples() -> Vec<Message> {
        vec![
            Message::Request(1, Request::GetBlockNumber),
            Message::Request(2, Request::GetBlockHashes(vec![0, 1, 1000, u64::MAX])),
            Message::Request(3, Request::GetBlocksByNumber(vec![5, 6])),
            Message::Request(4, Request::GetBlocksByHashes(vec![[1; 32], [2; 32]])),
            Message::Request(5, Request::GetEpochState(9)),
            Message::Request(6, Request::GetPeers(16)),
            Message::Response(
                7,
                Response::BlockNumber {
                    number: 77,
                    hash: [3; 32],
                },
            ),
            Message::Response(8, Response::BlockHashes(vec![Some([4; 32]), None])),
            Message::Response(
                9,
                Response::Blocks(vec![Some(Bytes::from_static(b"\xc0")), None]),
            ),
            Message::Response(10, Response::EpochState(None)),
            Message::Response(11, Response::Peers(vec![Bytes::from_static(b"rec")])),
            Message::Response(
                12,
                Response::Error {
                    code: ErrorCode::RateLimited,
                    retry_after_ms: 250,
                    message: "slow down".into(),
                },
            ),
            Message::going_away("pools full"),
        ]
    }

    #[test]
    fn every_message_round_trips() {
        for m in samples() {
            assert_eq!(Message::decode(&m.encode()), Ok(m.clone()), "{m:?}");
        }
    }

    #[test]
    fn every_truncation_is_an_error() {
        for m in samples() {
            let bytes = m.encode();
            for len in 0..bytes.len() {
                assert!(
                    Message::decode(&bytes[..len]).is_err(),
                    "{m:?} cut at {len}"
                );
            }
        }
    }

    #[test]
    fn garbage_after_a_message_is_an_error() {
        let mut bytes = Message::Request(1, Request::GetBlockNumber).encode();
        bytes.push(0x00);
        assert!(Message::decode(&bytes).is_err());
    }

    #[test]
    fn unknown_and_reserved_types_are_refused() {
        for ty in [
            0x00,
            msg_type::RESERVED_GET_RECEIPTS,
            msg_type::RESERVED_GET_STATE_RANGE,
            0x99,
        ] {
            assert_eq!(
                Message::decode(&[ty, 0xc1, 0x01]),
                Err(WireError::UnknownType(ty))
            );
        }
    }

    #[test]
    fn request_over_the_caps_is_refused() {
        let m = Message::Request(
            1,
            Request::GetBlocksByNumber((0..=MAX_BLOCKS_PER_REQUEST as u64).collect()),
        );
        assert!(matches!(
            Message::decode(&m.encode()),
            Err(WireError::TooMany { limit: 128, .. })
        ));
        let m = Message::Request(
            1,
            Request::GetBlockHashes((0..=MAX_HASHES_PER_REQUEST as u64).collect()),
        );
        assert!(matches!(
            Message::decode(&m.encode()),
            Err(WireError::TooMany { limit: 1024, .. })
        ));
        let m = Message::Request(1, Request::GetPeers(MAX_PEERS_PER_RESPONSE as u32 + 1));
        assert!(matches!(
            Message::decode(&m.encode()),
            Err(WireError::TooMany { .. })
        ));
    }
}
