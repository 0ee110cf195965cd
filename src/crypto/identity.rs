//! Node identity: a libp2p ed25519 key. Its `PeerId` names the node; during
//! the Noise handshake it signs the node's Noise static key so every stream
//! is bound to an authenticated `PeerId` (DESIGN.md §6).

use std::path::Path;

use libp2p_identity::{Keypair, PeerId, PublicKey};

/// Prefix of the message an identity key signs to vouch for a Noise static
/// key (as libp2p's Noise spec does, under our own domain).
pub const NOISE_STATIC_SIG_DOMAIN: &[u8] = b"streamsync-noise-static-key:";

/// Identity errors.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Reading or writing the key file failed.
    #[error("{path}: {source}")]
    Io {
        /// Key file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The key file does not hold an ed25519 key.
    #[error("{path}: not an ed25519 identity key")]
    BadKeyFile {
        /// Key file.
        path: String,
    },
    /// Signing failed.
    #[error("signing with the identity key failed")]
    Signing,
}

/// A node's identity key pair.
#[derive(Clone)]
pub struct NodeIdentity {
    keypair: Keypair,
}

impl std::fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeIdentity")
            .field("peer_id", &self.peer_id())
            .finish()
    }
}

impl NodeIdentity {
    /// A fresh random identity.
    pub fn generate() -> Self {
        NodeIdentity {
            keypair: Keypair::generate_ed25519(),
        }
    }

    /// A deterministic identity from a 32-byte seed (tests, localnet).
    pub fn from_seed(mut seed: [u8; 32]) -> Self {
        let keypair =
            Keypair::ed25519_from_bytes(&mut seed).unwrap_or_else(|_| Keypair::generate_ed25519());
        NodeIdentity { keypair }
    }

    /// Loads the key at `path`, or creates it (mode 0600) if absent.
    pub fn load_or_create(path: &Path) -> Result<Self, IdentityError> {
        let p = path.display().to_string();
        match std::fs::read(path) {
            Ok(bytes) => Keypair::from_protobuf_encoding(&bytes)
                .ok()
                .filter(|k| k.key_type() == libp2p_identity::KeyType::Ed25519)
                .map(|keypair| NodeIdentity { keypair })
                .ok_or(IdentityError::BadKeyFile { path: p }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let id = Self::generate();
                let bytes = id
                    .keypair
                    .to_protobuf_encoding()
                    .map_err(|_| IdentityError::BadKeyFile { path: p.clone() })?;
                write_private(path, &bytes)
                    .map_err(|source| IdentityError::Io { path: p, source })?;
                Ok(id)
            }
            Err(source) => Err(IdentityError::Io { path: p, source }),
        }
    }

    /// The node's `PeerId`.
    pub fn peer_id(&self) -> PeerId {
        self.keypair.public().to_peer_id()
    }

    /// The public key.
    pub fn public(&self) -> PublicKey {
        self.keypair.public()
    }

    /// The underlying libp2p key pair (for signed peer records).
    pub fn keypair(&self) -> &Keypair {
        &self.keypair
    }

    /// Signs a Noise static public key.
    pub fn sign_noise_static(&self, noise_static: &[u8]) -> Result<Vec<u8>, IdentityError> {
        self.keypair
            .sign(&[NOISE_STATIC_SIG_DOMAIN, noise_static].concat())
            .map_err(|_| IdentityError::Signing)
    }
}

/// Checks that `identity` signed `noise_static`.
pub fn verify_noise_static(identity: &PublicKey, noise_static: &[u8], sig: &[u8]) -> bool {
    identity.verify(&[NOISE_STATIC_SIG_DOMAIN, noise_static].concat(), sig)
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)?.write_all(bytes)
}
