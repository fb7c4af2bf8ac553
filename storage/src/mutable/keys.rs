//! Keys of a mutable file or directory, each derived one way from the one
//! above it:
//!
//! ```text
//! write key  sk (32 random bytes; an Ed25519 signing key)
//!   └─ read key  rk = derive("read key", sk), with vkh = blake3(vk)
//!        └─ verify key  vkh
//!             └─ storage index  = derive("storage index", vkh)[..16]
//! ```
//!
//! Slot payloads are sealed with XChaCha20-Poly1305 under a key derived
//! from `rk`, with a random nonce per version (two writers racing on the
//! same version never reuse one).

use crate::crypt::SI_LEN;
use crate::store::StorageIndex;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use cloudy_overlay::ed25519;
use rand::RngCore;

const NONCE_LEN: usize = 24;

/// The key that can change a mutable file or directory.
#[derive(Clone, PartialEq, Eq)]
pub struct WriteKey(pub [u8; 32]);

/// The key that can read one (and find and check it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadKey {
    /// Decrypts slot payloads.
    pub key: [u8; 32],
    /// Hash of the verifying key.
    pub vkh: [u8; 32],
}

/// The key that can find and check one, not read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifyKey {
    /// Hash of the verifying key.
    pub vkh: [u8; 32],
}

/// A payload did not decrypt: wrong key, or changed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "the contents do not decrypt with this capability (wrong capability, or changed on a server)"
)]
pub struct OpenError;

impl WriteKey {
    /// A new random key.
    pub fn generate() -> Self {
        let mut k = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut k);
        WriteKey(k)
    }

    /// The signing keypair.
    pub fn keypair(&self) -> ed25519::Keypair {
        let secret = ed25519::SecretKey::try_from_bytes(self.0).expect("any 32 bytes are a key");
        ed25519::Keypair::from(secret)
    }

    /// The verifying key, raw.
    pub fn verifying(&self) -> [u8; 32] {
        self.keypair().public().to_bytes()
    }

    /// The read key.
    pub fn read(&self) -> ReadKey {
        ReadKey {
            key: blake3::derive_key("cloudy-p2p mutable read key v1", &self.0),
            vkh: *blake3::hash(&self.verifying()).as_bytes(),
        }
    }

    /// Key that seals the write capabilities of a directory's children, so
    /// that holders of its read capability see read capabilities only.
    pub fn child_key(&self) -> [u8; 32] {
        blake3::derive_key("cloudy-p2p directory child write caps v1", &self.0)
    }
}

impl std::fmt::Debug for WriteKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WriteKey(…)")
    }
}

impl ReadKey {
    /// The verify key.
    pub fn verify(&self) -> VerifyKey {
        VerifyKey { vkh: self.vkh }
    }

    fn payload_key(&self) -> [u8; 32] {
        blake3::derive_key("cloudy-p2p mutable payload key v1", &self.key)
    }

    /// Encrypts a payload (nonce ‖ ciphertext).
    pub fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        seal(&self.payload_key(), plaintext)
    }

    /// Decrypts what [`ReadKey::seal`] made.
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
        open(&self.payload_key(), sealed)
    }
}

impl VerifyKey {
    /// Where servers file its slots.
    pub fn storage_index(&self) -> StorageIndex {
        storage_index(&self.vkh)
    }
}

/// The storage index of verifying-key hash `vkh`.
pub fn storage_index(vkh: &[u8; 32]) -> StorageIndex {
    let full = blake3::derive_key("cloudy-p2p mutable storage index v1", vkh);
    let mut si = [0u8; SI_LEN];
    si.copy_from_slice(&full[..SI_LEN]);
    si
}

/// Seals `plaintext` under `key` with a random nonce.
pub fn seal(key: &[u8; 32], plaintext: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::thread_rng().fill_bytes(&mut nonce);
    let cipher = XChaCha20Poly1305::new(key.into());
    // Encryption only fails for inputs beyond 256 GiB.
    let ct = cipher.encrypt(XNonce::from_slice(&nonce), plaintext).unwrap_or_default();
    [nonce.as_slice(), &ct].concat()
}

/// Opens what [`seal`] made.
pub fn open(key: &[u8; 32], sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
    if sealed.len() < NONCE_LEN {
        return Err(OpenError);
    }
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    XChaCha20Poly1305::new(key.into()).decrypt(XNonce::from_slice(nonce), ct).map_err(|_| OpenError)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_derive_one_way_and_seal_round_trips() {
        let w = WriteKey::generate();
        let r = w.read();
        assert_eq!(r, w.read(), "deterministic");
        assert_ne!(r.key, w.0);
        assert_ne!(WriteKey::generate().read().vkh, r.vkh);
        let sealed = r.seal(b"hello");
        assert_eq!(r.open(&sealed).unwrap(), b"hello");
        assert_ne!(sealed, r.seal(b"hello"), "fresh nonce each time");
        let other = WriteKey::generate().read();
        assert_eq!(other.open(&sealed), Err(OpenError));
        let mut bad = sealed.clone();
        bad[30] ^= 1;
        assert_eq!(r.open(&bad), Err(OpenError));
        assert_eq!(r.open(&[1, 2]), Err(OpenError));
        assert_eq!(r.verify().storage_index(), storage_index(&r.vkh));
    }
}
