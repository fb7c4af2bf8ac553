//! Storage errors of the pure data path.

/// Errors encoding, verifying or decoding a file.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodingError {
    /// Parameters out of range.
    #[error("invalid encoding parameters: {0}")]
    Params(String),
    /// A segment of the wrong length was given to the encoder.
    #[error("segment {index} has {got} bytes, expected {expected}")]
    SegmentLength {
        /// Segment index.
        index: u64,
        /// Bytes given.
        got: usize,
        /// Bytes expected.
        expected: usize,
    },
    /// Fewer than k verified blocks for a segment.
    #[error("segment {segment}: need {k} good blocks, have {have}")]
    NotEnoughBlocks {
        /// Segment index.
        segment: u64,
        /// Blocks needed.
        k: usize,
        /// Good blocks available.
        have: usize,
    },
    /// A block does not match its hash: the share is corrupt.
    #[error("share {share} block {segment} is corrupt (hash mismatch)")]
    CorruptBlock {
        /// Share number.
        share: usize,
        /// Segment index.
        segment: u64,
    },
    /// A share's block-hash list does not match the root record.
    #[error("share {share}: block hashes do not match the root record")]
    CorruptShareHashes {
        /// Share number.
        share: usize,
    },
    /// The root record does not hash to the capability's root hash.
    #[error("root record does not match the capability (wrong file or tampered record)")]
    RootMismatch,
    /// The root record cannot be parsed.
    #[error("malformed root record: {0}")]
    MalformedRoot(String),
    /// Decryption failed (wrong key or tampered ciphertext).
    #[error("segment {0} failed to decrypt: wrong key or tampered data")]
    Decrypt(u64),
    /// Ciphertext hash mismatch after a full read.
    #[error("ciphertext hash does not match the root record")]
    CiphertextMismatch,
}
