//! Per-segment encryption (chacha20poly1305) and key derivation.
//!
//! - The file key is convergent by default: a keyed blake3 hash, under the
//!   node's convergence secret, of the encoding parameters and the content.
//!   The same file uploaded from the same node with the same parameters
//!   gets the same key, so the same capability. A random key is used on
//!   request.
//! - Segment `i` is sealed with the file key and the 96-bit nonce
//!   `0u32 ‖ i as u64 (big-endian)`; each segment grows by a 16-byte tag.
//! - The storage index (what servers file shares under) is derived from the
//!   key one way, so a server learns nothing about the key.

use crate::error::CodingError;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

/// Bytes added to each segment by the AEAD tag.
pub const TAG_LEN: usize = 16;
/// Length of a storage index.
pub const SI_LEN: usize = 16;

/// Streaming convergent-key derivation.
#[derive(Debug)]
pub struct ConvergentKey(blake3::Hasher);

impl ConvergentKey {
    /// Starts a key for parameters `(k, n, segment_size)` under `secret`.
    pub fn new(secret: &[u8; 32], k: usize, n: usize, segment_size: usize) -> Self {
        let mut h = blake3::Hasher::new_keyed(secret);
        h.update(b"cloudy-p2p convergent key v1");
        h.update(&(k as u64).to_be_bytes());
        h.update(&(n as u64).to_be_bytes());
        h.update(&(segment_size as u64).to_be_bytes());
        ConvergentKey(h)
    }

    /// Feeds content.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// The key.
    pub fn finish(&self) -> [u8; 32] {
        *self.0.finalize().as_bytes()
    }
}

/// The storage index of a file key.
pub fn storage_index(key: &[u8; 32]) -> [u8; SI_LEN] {
    let full = blake3::derive_key("cloudy-p2p storage index v1", key);
    let mut si = [0u8; SI_LEN];
    si.copy_from_slice(&full[..SI_LEN]);
    si
}

fn nonce(segment: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&segment.to_be_bytes());
    Nonce::from(n)
}

/// Encrypts segment `segment` of a file.
pub fn seal(key: &[u8; 32], segment: u64, plaintext: &[u8]) -> Vec<u8> {
    let cipher = ChaCha20Poly1305::new(Key::from_slice(key));
    // Encryption only fails for inputs beyond 256 GiB per segment.
    cipher.encrypt(&nonce(segment), plaintext).unwrap_or_default()
}

/// Decrypts and authenticates segment `segment`.
pub fn open(key: &[u8; 32], segment: u64, ciphertext: &[u8]) -> Result<Vec<u8>, CodingError> {
    let cipher = ChaCha20Poly1305::new(Key::from_slice(key));
    cipher.decrypt(&nonce(segment), ciphertext).map_err(|_| CodingError::Decrypt(segment))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_and_tamper() {
        let key = [7u8; 32];
        let c = seal(&key, 3, b"secret segment");
        assert_eq!(c.len(), 14 + TAG_LEN);
        assert_eq!(open(&key, 3, &c).unwrap(), b"secret segment");
        assert_eq!(open(&key, 4, &c), Err(CodingError::Decrypt(4)), "nonce is bound to the index");
        let mut bad = c.clone();
        bad[0] ^= 1;
        assert!(open(&key, 3, &bad).is_err());
    }

    #[test]
    fn convergence_depends_on_secret_params_and_content() {
        let key = |secret: u8, k, data: &[u8]| {
            let mut c = ConvergentKey::new(&[secret; 32], k, 6, 1 << 20);
            c.update(data);
            c.finish()
        };
        assert_eq!(key(1, 3, b"x"), key(1, 3, b"x"));
        assert_ne!(key(1, 3, b"x"), key(2, 3, b"x"));
        assert_ne!(key(1, 3, b"x"), key(1, 4, b"x"));
        assert_ne!(key(1, 3, b"x"), key(1, 3, b"y"));
        assert_ne!(storage_index(&[1; 32]), storage_index(&[2; 32]));
    }
}
