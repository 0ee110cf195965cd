//! One connection's protocol state, without I/O: the Noise XX handshake with
//! identity binding and protocol matching, then encrypted frames.
//!
//! The reactor feeds it the bytes it reads ([`Session::receive`]) and writes
//! out what it produces ([`Session::take_output`]). Tests drive two sessions
//! against each other with no sockets.

use snow::{HandshakeState, TransportState};

use crate::wire::frame::{encode_frame, FrameDecoder, FrameError, FRAME_HEADER_LEN, MAX_FRAME_LEN};
use crate::wire::handshake::{decode_hello, HandshakeError, PeerHello};
use crate::wire::ProtocolId;

/// The Noise protocol of every stream.
pub const NOISE_PARAMS: &str = "Noise_XX_25519_ChaChaPoly_BLAKE2s";
/// Largest Noise message (u16 length prefix).
pub const NOISE_MAX_MSG: usize = 65535;
/// Noise AEAD tag, bytes.
const NOISE_TAG: usize = 16;
/// Largest plaintext per Noise transport message.
pub const NOISE_MAX_PLAINTEXT: usize = NOISE_MAX_MSG - NOISE_TAG;

/// Why a session failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// Noise rejected a message (bad MAC, wrong state): the peer sent garbage.
    #[error("noise: {0}")]
    Noise(String),
    /// The peer's handshake payload is invalid (forged identity, ...).
    #[error("handshake: {0}")]
    Handshake(#[from] HandshakeError),
    /// The peer speaks another network, shard, service or major version.
    #[error("protocol mismatch: we speak {ours}, peer speaks {theirs}")]
    ProtocolMismatch {
        /// Our protocol id.
        ours: String,
        /// Theirs.
        theirs: String,
    },
    /// A frame broke the size limit.
    #[error("{0}")]
    Frame(#[from] FrameError),
    /// Data arrived before the handshake finished, or a send was attempted
    /// before it.
    #[error("{0}")]
    State(&'static str),
}

enum State {
    Handshake(Box<HandshakeState>),
    Open(Box<TransportState>),
    Failed,
}

/// Our side of the handshake: the Noise static key and the signed payload.
#[derive(Clone)]
pub struct LocalKeys {
    /// Noise static private key (X25519).
    pub noise_private: Vec<u8>,
    /// Handshake payload, signed for our Noise static public key.
    pub hello: Vec<u8>,
    /// The protocol we speak.
    pub protocol: ProtocolId,
}

impl std::fmt::Debug for LocalKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalKeys")
            .field("protocol", &self.protocol)
            .finish()
    }
}

impl LocalKeys {
    /// Generates a Noise static key and signs it with `identity`.
    pub fn new(
        identity: &crate::crypto::NodeIdentity,
        protocol: ProtocolId,
    ) -> Result<Self, SessionError> {
        let params = NOISE_PARAMS.parse().map_err(noise)?;
        let kp = snow::Builder::new(params)
            .generate_keypair()
            .map_err(noise)?;
        let hello = crate::wire::handshake::encode_hello(identity, &kp.public, &protocol)
            .map_err(|e| SessionError::Noise(e.to_string()))?;
        Ok(LocalKeys {
            noise_private: kp.private,
            hello,
            protocol,
        })
    }
}

fn noise(e: impl std::fmt::Display) -> SessionError {
    SessionError::Noise(e.to_string())
}

/// One side of one connection.
pub struct Session {
    initiator: bool,
    state: State,
    local: LocalKeys,
    rx: Vec<u8>,
    frames: FrameDecoder,
    out: Vec<u8>,
    remote: Option<PeerHello>,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("initiator", &self.initiator)
            .field("open", &self.is_open())
            .field("remote", &self.remote)
            .finish()
    }
}

impl Session {
    /// Starts a handshake as the dialling side (writes Noise message 1).
    pub fn initiator(local: &LocalKeys) -> Result<Self, SessionError> {
        let mut s = Self::new(local, true)?;
        let mut msg = vec![0u8; NOISE_MAX_MSG];
        let n = s.hs()?.write_message(&[], &mut msg).map_err(noise)?;
        s.push_noise(&msg[..n]);
        Ok(s)
    }

    /// Waits for a handshake as the accepting side.
    pub fn responder(local: &LocalKeys) -> Result<Self, SessionError> {
        Self::new(local, false)
    }

    fn new(local: &LocalKeys, initiator: bool) -> Result<Self, SessionError> {
        let params = NOISE_PARAMS.parse().map_err(noise)?;
        let b = snow::Builder::new(params)
            .local_private_key(&local.noise_private)
            .map_err(noise)?;
        let hs = if initiator {
            b.build_initiator()
        } else {
            b.build_responder()
        }
        .map_err(noise)?;
        Ok(Session {
            initiator,
            state: State::Handshake(Box::new(hs)),
            local: local.clone(),
            rx: Vec::new(),
            frames: FrameDecoder::new(MAX_FRAME_LEN),
            out: Vec::new(),
            remote: None,
            scratch: vec![0u8; NOISE_MAX_MSG],
        })
    }

    fn hs(&mut self) -> Result<&mut HandshakeState, SessionError> {
        match &mut self.state {
            State::Handshake(h) => Ok(h),
            _ => Err(SessionError::State("not in handshake")),
        }
    }

    fn push_noise(&mut self, msg: &[u8]) {
        // Callers never produce more than NOISE_MAX_MSG bytes.
        self.out
            .extend_from_slice(&(msg.len() as u16).to_be_bytes());
        self.out.extend_from_slice(msg);
    }

    /// Whether the handshake completed and frames may flow.
    pub fn is_open(&self) -> bool {
        matches!(self.state, State::Open(_))
    }

    /// The authenticated peer, once the handshake has verified it.
    pub fn remote(&self) -> Option<&PeerHello> {
        self.remote.as_ref()
    }

    /// Bytes to write to the socket (drained).
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// Bytes of memory the receive buffers hold (their capacities): what
    /// the network thread charges to its inbound budget.
    pub fn buffer_capacity(&self) -> usize {
        self.rx.capacity() + self.frames.capacity()
    }

    /// The length announced by the frame being received, once its header
    /// has arrived.
    pub fn announced_frame(&self) -> Option<usize> {
        self.frames.announced()
    }

    /// Whether a frame (or a Noise message) has started arriving and is
    /// not complete.
    pub fn in_frame(&self) -> bool {
        !self.rx.is_empty() || self.frames.in_frame()
    }

    /// Feeds bytes read from the socket. Complete frame payloads are appended
    /// to `frames`. Returns `true` when this call completed the handshake.
    /// After an error the session is dead: close the connection (after
    /// flushing [`Session::take_output`], which may hold our last handshake
    /// message so the peer learns of a protocol mismatch too).
    pub fn receive(
        &mut self,
        data: &[u8],
        frames: &mut Vec<Vec<u8>>,
    ) -> Result<bool, SessionError> {
        let r = self.receive_inner(data, frames);
        if r.is_err() {
            self.state = State::Failed;
        }
        r
    }

    fn receive_inner(
        &mut self,
        data: &[u8],
        frames: &mut Vec<Vec<u8>>,
    ) -> Result<bool, SessionError> {
        if matches!(self.state, State::Failed) {
            return Err(SessionError::State("session failed"));
        }
        self.rx.extend_from_slice(data);
        let mut opened = false;
        let mut pos = 0;
        while self.rx.len() - pos >= 2 {
            let len = u16::from_be_bytes([self.rx[pos], self.rx[pos + 1]]) as usize;
            if self.rx.len() - pos - 2 < len {
                break;
            }
            let msg = self.rx[pos + 2..pos + 2 + len].to_vec();
            pos += 2 + len;
            match &mut self.state {
                State::Handshake(_) => opened |= self.on_handshake_msg(&msg)?,
                State::Open(t) => {
                    let n = t.read_message(&msg, &mut self.scratch).map_err(noise)?;
                    self.frames.push(&self.scratch[..n]);
                    while let Some(f) = self.frames.next_frame()? {
                        frames.push(f);
                    }
                }
                State::Failed => return Err(SessionError::State("session failed")),
            }
        }
        self.rx.drain(..pos);
        if self.rx.is_empty() && self.rx.capacity() > crate::wire::frame::IDLE_CAPACITY {
            self.rx = Vec::new();
        }
        Ok(opened)
    }

    fn on_handshake_msg(&mut self, msg: &[u8]) -> Result<bool, SessionError> {
        let mut payload = vec![0u8; NOISE_MAX_MSG];
        let n = self.hs()?.read_message(msg, &mut payload).map_err(noise)?;
        let payload = &payload[..n];
        if self.initiator {
            // Message 2: the responder's identity; answer with message 3.
            let hello = self.verify_peer(payload)?;
            self.send_hello()?;
            self.finish(hello)
        } else if !self.hs()?.is_handshake_finished() {
            // Message 1 read: send message 2 with our identity.
            self.send_hello()?;
            Ok(false)
        } else {
            // Message 3: the initiator's identity.
            let hello = self.verify_peer(payload)?;
            self.finish(hello)
        }
    }

    /// Writes the next handshake message carrying our signed hello.
    fn send_hello(&mut self) -> Result<(), SessionError> {
        let mut out = vec![0u8; NOISE_MAX_MSG];
        let local_hello = self.local.hello.clone();
        let n = self
            .hs()?
            .write_message(&local_hello, &mut out)
            .map_err(noise)?;
        self.push_noise(&out[..n]);
        Ok(())
    }

    fn verify_peer(&mut self, payload: &[u8]) -> Result<PeerHello, SessionError> {
        let remote_static = self
            .hs()?
            .get_remote_static()
            .ok_or(SessionError::State("no remote static key"))?
            .to_vec();
        Ok(decode_hello(payload, &remote_static)?)
    }

    fn finish(&mut self, hello: PeerHello) -> Result<bool, SessionError> {
        let State::Handshake(hs) = std::mem::replace(&mut self.state, State::Failed) else {
            return Err(SessionError::State("not in handshake"));
        };
        let matches = self.local.protocol.matches(&hello.protocol);
        let theirs = hello.protocol.to_string();
        self.remote = Some(hello);
        if !matches {
            return Err(SessionError::ProtocolMismatch {
                ours: self.local.protocol.to_string(),
                theirs,
            });
        }
        self.state = State::Open(Box::new(hs.into_transport_mode().map_err(noise)?));
        Ok(true)
    }

    /// Encrypts raw plaintext bytes into the output without framing them.
    /// For tests and fuzzing of the peer's frame decoder only: the engine
    /// always sends whole frames with [`Session::send_frame`].
    pub fn send_unframed(&mut self, plaintext: &[u8]) -> Result<(), SessionError> {
        let State::Open(t) = &mut self.state else {
            return Err(SessionError::State("send before handshake"));
        };
        for chunk in plaintext.chunks(NOISE_MAX_PLAINTEXT) {
            let n = t.write_message(chunk, &mut self.scratch).map_err(noise)?;
            self.out.extend_from_slice(&(n as u16).to_be_bytes());
            self.out.extend_from_slice(&self.scratch[..n]);
        }
        Ok(())
    }

    /// Encrypts one frame (`payload` ≤ 16 MiB) into the output.
    pub fn send_frame(&mut self, payload: &[u8]) -> Result<(), SessionError> {
        if !matches!(self.state, State::Open(_)) {
            return Err(SessionError::State("send before handshake"));
        }
        let mut plain = Vec::with_capacity(payload.len() + 4);
        encode_frame(payload, &mut plain)?;
        self.send_unframed(&plain)
    }
}

/// Bytes [`Session::send_frame`] writes on the wire for a `payload`-byte
/// frame: the 4-byte frame header, then one Noise message (2-byte length,
/// ciphertext, 16-byte tag) per [`NOISE_MAX_PLAINTEXT`] bytes.
pub fn wire_len(payload: usize) -> usize {
    let plain = payload + FRAME_HEADER_LEN;
    plain + plain.div_ceil(NOISE_MAX_PLAINTEXT) * (2 + NOISE_TAG)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Network;
    use crate::crypto::NodeIdentity;

    fn keys(net: Network) -> (NodeIdentity, LocalKeys) {
        let id = NodeIdentity::generate();
        let k = LocalKeys::new(&id, ProtocolId::sync(net, 0)).expect("keys");
        (id, k)
    }

    /// Shuttles bytes between two sessions until both are quiet.
    fn pump(
        a: &mut Session,
        b: &mut Session,
    ) -> (Result<(), SessionError>, Result<(), SessionError>) {
        let mut ra = Ok(());
        let mut rb = Ok(());
        let mut sink = Vec::new();
        for _ in 0..10 {
            let x = a.take_output();
            if !x.is_empty() && rb.is_ok() {
                rb = b.receive(&x, &mut sink).map(|_| ());
            }
            let y = b.take_output();
            if !y.is_empty() && ra.is_ok() {
                ra = a.receive(&y, &mut sink).map(|_| ());
            }
        }
        (ra, rb)
    }

    #[test]
    fn handshake_binds_both_peer_ids_and_frames_flow() {
        let (ida, ka) = keys(Network::Localnet);
        let (idb, kb) = keys(Network::Localnet);
        let mut a = Session::initiator(&ka).expect("init");
        let mut b = Session::responder(&kb).expect("resp");
        let (ra, rb) = pump(&mut a, &mut b);
        ra.expect("a ok");
        rb.expect("b ok");
        assert!(a.is_open() && b.is_open());
        assert_eq!(a.remote().expect("remote").peer_id, idb.peer_id());
        assert_eq!(b.remote().expect("remote").peer_id, ida.peer_id());
        let big = vec![0xAB; 200_000];
        a.send_frame(&big).expect("send");
        let mut bytes = a.take_output();
        assert_eq!(bytes.len(), wire_len(big.len()));
        a.send_frame(b"x").expect("send");
        let x = a.take_output();
        assert_eq!(x.len(), wire_len(1));
        bytes.extend_from_slice(&x);
        let mut frames = Vec::new();
        // Byte by byte for the first part: any chunking works.
        for c in bytes.chunks(997) {
            b.receive(c, &mut frames).expect("recv");
        }
        assert_eq!(frames, vec![big, b"x".to_vec()]);
    }

    #[test]
    fn network_mismatch_is_refused_on_both_sides() {
        let (_, ka) = keys(Network::Localnet);
        let (_, kb) = keys(Network::Testnet);
        let mut a = Session::initiator(&ka).expect("init");
        let mut b = Session::responder(&kb).expect("resp");
        let (ra, rb) = pump(&mut a, &mut b);
        assert!(
            matches!(ra, Err(SessionError::ProtocolMismatch { .. })),
            "{ra:?}"
        );
        assert!(
            matches!(rb, Err(SessionError::ProtocolMismatch { .. })),
            "{rb:?}"
        );
    }

    #[test]
    fn garbage_instead_of_a_handshake_is_an_error() {
        let (_, kb) = keys(Network::Localnet);
        let mut b = Session::responder(&kb).expect("resp");
        let mut sink = Vec::new();
        assert!(b.receive(&[0, 5, 1, 2, 3, 4, 5], &mut sink).is_err());
    }
}
