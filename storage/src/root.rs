//! The root record of a stored file and per-share block-hash lists.
//!
//! Every storage server keeps the root record beside each share. Its blake3
//! hash is inside the capability, so a downloader checks any server's copy.
//! The record names the codec and parameters, the sizes, the root of each
//! share's block-hash list and the hash of the whole ciphertext.
//!
//! A share's *block-hash list* is the blake3 hash of each of its blocks, in
//! segment order. Its root is `blake3("cloudy share hashes v1" ‖ n ‖ hashes)`.
//! A downloader fetches the list (32 bytes per segment), checks it against
//! the root, and then checks each block on its own, so a single segment can
//! be read without the rest.
//!
//! Encoding (big-endian): `b"CLDYROOT" ‖ version:u8 ‖ codec:u8 ‖ k:u8 ‖ n:u8
//! ‖ segment_size:u32 ‖ size:u64 ‖ ciphertext_hash:[32] ‖ n × share_root:[32]`.

use crate::erasure::Codec;
use crate::error::CodingError;

const MAGIC: &[u8; 8] = b"CLDYROOT";
const VERSION: u8 = 1;
const HEADER_LEN: usize = 8 + 1 + 1 + 1 + 1 + 4 + 8 + 32;

/// A 32-byte blake3 hash.
pub type Hash = [u8; 32];

/// Describes one stored file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RootRecord {
    /// Erasure codec.
    pub codec: Codec,
    /// Blocks needed.
    pub k: u8,
    /// Blocks made.
    pub n: u8,
    /// Plaintext bytes per segment (the last may be shorter).
    pub segment_size: u32,
    /// Plaintext size of the file.
    pub size: u64,
    /// blake3 of the whole ciphertext (all sealed segments in order).
    pub ciphertext_hash: Hash,
    /// Root of each share's block-hash list.
    pub share_roots: Vec<Hash>,
}

impl RootRecord {
    /// Number of segments.
    pub fn segments(&self) -> u64 {
        self.size.div_ceil(self.segment_size as u64).max(1)
    }

    /// Plaintext length of segment `i`.
    pub fn segment_len(&self, i: u64) -> usize {
        let start = i * self.segment_size as u64;
        (self.size.saturating_sub(start)).min(self.segment_size as u64) as usize
    }

    /// Encodes as bytes (see module docs).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + 32 * self.share_roots.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&[VERSION, self.codec as u8, self.k, self.n]);
        out.extend_from_slice(&self.segment_size.to_be_bytes());
        out.extend_from_slice(&self.size.to_be_bytes());
        out.extend_from_slice(&self.ciphertext_hash);
        for r in &self.share_roots {
            out.extend_from_slice(r);
        }
        out
    }

    /// The hash that goes into capabilities.
    pub fn hash(&self) -> Hash {
        *blake3::hash(&self.encode()).as_bytes()
    }

    /// Decodes and checks a record.
    pub fn decode(b: &[u8]) -> Result<RootRecord, CodingError> {
        let bad = |m: &str| Err(CodingError::MalformedRoot(m.to_string()));
        if b.len() < HEADER_LEN || &b[..8] != MAGIC {
            return bad("not a root record");
        }
        if b[8] != VERSION {
            return bad(&format!("version {} is not supported", b[8]));
        }
        let Some(codec) = Codec::from_byte(b[9]) else {
            return bad(&format!("unknown codec {}", b[9]));
        };
        let (k, n) = (b[10], b[11]);
        if k == 0 || k > n {
            return bad(&format!("bad parameters k={k} n={n}"));
        }
        let segment_size = u32::from_be_bytes(b[12..16].try_into().expect("4 bytes"));
        let size = u64::from_be_bytes(b[16..24].try_into().expect("8 bytes"));
        if segment_size == 0 {
            return bad("segment size 0");
        }
        let ciphertext_hash: Hash = b[24..56].try_into().expect("32 bytes");
        let rest = &b[HEADER_LEN..];
        if rest.len() != 32 * n as usize {
            return bad(&format!("{} bytes of share roots for n={n}", rest.len()));
        }
        let share_roots = rest.chunks(32).map(|c| c.try_into().expect("32 bytes")).collect();
        Ok(RootRecord { codec, k, n, segment_size, size, ciphertext_hash, share_roots })
    }
}

/// Hash of one block.
pub fn block_hash(block: &[u8]) -> Hash {
    *blake3::hash(block).as_bytes()
}

/// Root of a share's block-hash list.
pub fn hashes_root(hashes: &[Hash]) -> Hash {
    let mut h = blake3::Hasher::new();
    h.update(b"cloudy share hashes v1");
    h.update(&(hashes.len() as u64).to_be_bytes());
    for x in hashes {
        h.update(x);
    }
    *h.finalize().as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> RootRecord {
        RootRecord {
            codec: Codec::ReedSolomon,
            k: 3,
            n: 6,
            segment_size: 1 << 20,
            size: 5 << 20,
            ciphertext_hash: [9; 32],
            share_roots: (0..6).map(|i| [i as u8; 32]).collect(),
        }
    }

    #[test]
    fn roundtrip_and_sizes() {
        let r = record();
        assert_eq!(RootRecord::decode(&r.encode()).unwrap(), r);
        assert_eq!(r.segments(), 5);
        assert_eq!(r.segment_len(4), 1 << 20);
        let odd = RootRecord { size: (1 << 20) + 5, ..record() };
        assert_eq!((odd.segments(), odd.segment_len(1)), (2, 5));
        let empty = RootRecord { size: 0, ..record() };
        assert_eq!((empty.segments(), empty.segment_len(0)), (1, 0));
    }

    #[test]
    fn every_truncation_and_corruption_is_rejected() {
        let bytes = record().encode();
        for cut in 0..bytes.len() {
            assert!(RootRecord::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(RootRecord::decode(&extra).is_err());
        let mut v2 = bytes.clone();
        v2[8] = 2;
        assert!(RootRecord::decode(&v2).unwrap_err().to_string().contains("version 2"));
        let mut codec = bytes;
        codec[9] = 77;
        assert!(RootRecord::decode(&codec).unwrap_err().to_string().contains("unknown codec 77"));
    }
}
