//! The pure data path: segments in, blocks out, and back again.
//!
//! Upload, per segment: seal with chacha20poly1305 (crate::crypt), erasure
//! code into n blocks (crate::erasure), hash every block. Block i of every
//! segment forms share i. At the end the [`RootRecord`] ties it together.
//! Memory use is one segment and its blocks, whatever the file size.
//!
//! Download, per segment: take blocks from any k shares whose block-hash
//! lists were checked against the root record, check each block, rebuild
//! the ciphertext, open it. A [`Decoder`] made from a verify capability
//! can rebuild ciphertext and regenerate blocks for repair, but not decrypt.

use crate::capability::{ReadCap, VerifyCap};
use crate::crypt::{open, seal, TAG_LEN};
use crate::erasure::{Codec, Coder};
use crate::error::CodingError;
use crate::root::{block_hash, hashes_root, Hash, RootRecord};

/// Encoding parameters of one upload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// Blocks needed to rebuild a segment.
    pub k: u8,
    /// Blocks made per segment (one per share).
    pub n: u8,
    /// Plaintext bytes per segment.
    pub segment_size: u32,
}

/// Largest segment we accept (memory per transfer is a few segments).
pub const MAX_SEGMENT: u32 = 8 << 20;

impl Params {
    /// The root record of a file of `size` bytes under these parameters,
    /// before its hashes are known (zeros): enough for sizes and share
    /// lengths.
    pub fn unsealed(&self, size: u64) -> RootRecord {
        RootRecord {
            codec: crate::erasure::Codec::ReedSolomon,
            k: self.k,
            n: self.n,
            segment_size: self.segment_size,
            size,
            ciphertext_hash: [0; 32],
            share_roots: vec![[0; 32]; self.n as usize],
        }
    }

    /// Checks the ranges.
    pub fn validate(&self) -> Result<(), CodingError> {
        if self.k == 0 || self.k > self.n {
            return Err(CodingError::Params(format!(
                "need 1 <= k <= n, got k={} n={}",
                self.k, self.n
            )));
        }
        if self.segment_size == 0 || self.segment_size > MAX_SEGMENT {
            return Err(CodingError::Params(format!(
                "segment size must be 1..={MAX_SEGMENT}, got {}",
                self.segment_size
            )));
        }
        Ok(())
    }
}

/// Encodes one file, segment by segment.
#[derive(Debug)]
pub struct Encoder {
    key: [u8; 32],
    coder: Coder,
    record: RootRecord,
    next: u64,
    ciphertext: blake3::Hasher,
    hashes: Vec<Vec<Hash>>,
}

impl Encoder {
    /// Starts encoding a file of `size` bytes under `key`.
    pub fn new(key: [u8; 32], p: Params, size: u64) -> Result<Self, CodingError> {
        p.validate()?;
        let record = p.unsealed(size);
        Ok(Encoder {
            key,
            coder: Coder::new(Codec::ReedSolomon, p.k as usize, p.n as usize)?,
            next: 0,
            ciphertext: blake3::Hasher::new(),
            hashes: vec![Vec::with_capacity(record.segments() as usize); p.n as usize],
            record,
        })
    }

    /// Plaintext length the next segment must have, or `None` when done.
    pub fn next_segment_len(&self) -> Option<usize> {
        (self.next < self.record.segments()).then(|| self.record.segment_len(self.next))
    }

    /// Encodes the next segment; returns its n blocks (block i is for share i).
    pub fn push(&mut self, plaintext: &[u8]) -> Result<Vec<Vec<u8>>, CodingError> {
        let expected = self.next_segment_len().unwrap_or(0);
        if self.next >= self.record.segments() || plaintext.len() != expected {
            return Err(CodingError::SegmentLength {
                index: self.next,
                got: plaintext.len(),
                expected,
            });
        }
        let sealed = seal(&self.key, self.next, plaintext);
        self.ciphertext.update(&sealed);
        let blocks = self.coder.encode(&sealed);
        for (i, b) in blocks.iter().enumerate() {
            self.hashes[i].push(block_hash(b));
        }
        self.next += 1;
        Ok(blocks)
    }

    /// Finishes: the root record and each share's block-hash list.
    pub fn finish(mut self) -> Result<(RootRecord, Vec<Vec<Hash>>), CodingError> {
        if let Some(len) = self.next_segment_len() {
            return Err(CodingError::SegmentLength { index: self.next, got: 0, expected: len });
        }
        self.record.ciphertext_hash = *self.ciphertext.finalize().as_bytes();
        self.record.share_roots = self.hashes.iter().map(|h| hashes_root(h)).collect();
        Ok((self.record, self.hashes))
    }
}

/// Checks and decodes one file's blocks.
#[derive(Debug)]
pub struct Decoder {
    key: Option<[u8; 32]>,
    record: RootRecord,
    coder: Coder,
    hashes: Vec<Option<Vec<Hash>>>,
    next: u64,
    ciphertext: blake3::Hasher,
}

impl Decoder {
    /// For reading: checks `root` against the capability.
    pub fn for_read(cap: &ReadCap, root: &[u8]) -> Result<Self, CodingError> {
        Self::new(Some(cap.key), cap.root, (cap.k, cap.n, cap.size), root)
    }

    /// For checking and repair (cannot decrypt).
    pub fn for_verify(cap: &VerifyCap, root: &[u8]) -> Result<Self, CodingError> {
        Self::new(None, cap.root, (cap.k, cap.n, cap.size), root)
    }

    fn new(
        key: Option<[u8; 32]>,
        root_hash: Hash,
        (k, n, size): (u8, u8, u64),
        root: &[u8],
    ) -> Result<Self, CodingError> {
        if *blake3::hash(root).as_bytes() != root_hash {
            return Err(CodingError::RootMismatch);
        }
        let record = RootRecord::decode(root)?;
        if (record.k, record.n, record.size) != (k, n, size) {
            return Err(CodingError::RootMismatch);
        }
        let coder = Coder::new(record.codec, k as usize, n as usize)?;
        let hashes = vec![None; n as usize];
        Ok(Decoder { key, record, coder, hashes, next: 0, ciphertext: blake3::Hasher::new() })
    }

    /// The checked root record.
    pub fn record(&self) -> &RootRecord {
        &self.record
    }

    /// Checks a share's block-hash list against the root record and keeps it.
    pub fn accept_hashes(&mut self, share: usize, hashes: Vec<Hash>) -> Result<(), CodingError> {
        let ok = share < self.hashes.len()
            && hashes.len() as u64 == self.record.segments()
            && hashes_root(&hashes) == self.record.share_roots[share];
        if !ok {
            return Err(CodingError::CorruptShareHashes { share });
        }
        self.hashes[share] = Some(hashes);
        Ok(())
    }

    /// Checks one block; the share's hash list must have been accepted.
    pub fn check_block(&self, share: usize, segment: u64, block: &[u8]) -> Result<(), CodingError> {
        let expected =
            self.hashes.get(share).and_then(|h| h.as_ref()).and_then(|h| h.get(segment as usize));
        match expected {
            Some(h) if *h == block_hash(block) => Ok(()),
            _ => Err(CodingError::CorruptBlock { share, segment }),
        }
    }

    /// Rebuilds the ciphertext of a segment from k checked blocks.
    pub fn ciphertext(
        &mut self,
        segment: u64,
        blocks: Vec<(usize, Vec<u8>)>,
    ) -> Result<Vec<u8>, CodingError> {
        for (share, b) in &blocks {
            self.check_block(*share, segment, b)?;
        }
        let len = self.record.segment_len(segment) + TAG_LEN;
        let sealed = self.coder.decode(blocks, len, segment)?;
        if segment == self.next {
            self.ciphertext.update(&sealed);
            self.next += 1;
        }
        Ok(sealed)
    }

    /// Rebuilds and decrypts a segment.
    pub fn plaintext(
        &mut self,
        segment: u64,
        blocks: Vec<(usize, Vec<u8>)>,
    ) -> Result<Vec<u8>, CodingError> {
        let sealed = self.ciphertext(segment, blocks)?;
        let key = self.key.ok_or(CodingError::Decrypt(segment))?;
        open(&key, segment, &sealed)
    }

    /// All n blocks of a segment regenerated from its ciphertext (repair).
    pub fn blocks_of(&self, ciphertext: &[u8]) -> Vec<Vec<u8>> {
        self.coder.encode(ciphertext)
    }

    /// After every segment was read in order, checks the whole-ciphertext
    /// hash; a partial or out-of-order read has nothing to check.
    pub fn finish(&self) -> Result<(), CodingError> {
        if self.next == self.record.segments()
            && *self.ciphertext.finalize().as_bytes() != self.record.ciphertext_hash
        {
            return Err(CodingError::CiphertextMismatch);
        }
        Ok(())
    }
}

/// Every block of a file: `blocks[segment][share]`.
#[cfg(test)]
pub(crate) type AllBlocks = Vec<Vec<Vec<u8>>>;

/// Test helper: encodes `data` whole; returns the record, the hash lists
/// and all blocks.
#[cfg(test)]
pub(crate) fn encode_all(
    key: [u8; 32],
    p: Params,
    data: &[u8],
) -> (RootRecord, Vec<Vec<Hash>>, AllBlocks) {
    let mut enc = Encoder::new(key, p, data.len() as u64).expect("valid params");
    let mut blocks = Vec::new();
    let mut off = 0;
    while let Some(len) = enc.next_segment_len() {
        blocks.push(enc.push(&data[off..off + len]).expect("right length"));
        off += len;
    }
    let (record, hashes) = enc.finish().expect("all segments");
    (record, hashes, blocks)
}

#[cfg(test)]
mod tests;
