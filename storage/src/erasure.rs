//! Erasure coding behind a small interface, so that stored files name the
//! codec they were made with and a faster codec can be added later.
//!
//! [`Codec::ReedSolomon`] is `reed-solomon-erasure` over GF(2^8) in pure
//! Rust, *without* its `simd-accel` feature (that feature compiles AVX2 C
//! code with no runtime check, which would crash on Atom-class boxes).

use crate::error::CodingError;
use reed_solomon_erasure::galois_8::ReedSolomon;

/// The codecs a root record may name. The discriminant is stored on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Codec {
    /// Systematic Reed-Solomon over GF(2^8), `reed-solomon-erasure` 6.
    ReedSolomon = 1,
}

impl Codec {
    /// From the stored byte.
    pub fn from_byte(b: u8) -> Option<Codec> {
        (b == 1).then_some(Codec::ReedSolomon)
    }
}

/// Length of each of the blocks that `len` bytes are coded into with k
/// data blocks (the last data block is zero-padded; never empty).
pub fn block_len(len: usize, k: usize) -> usize {
    len.div_ceil(k).max(1)
}

/// A k-of-n coder for one parameter set.
#[derive(Debug)]
pub struct Coder {
    k: usize,
    n: usize,
    /// `None` when k = n: no parity, nothing to compute.
    rs: Option<ReedSolomon>,
}

impl Coder {
    /// A coder for `codec` with k data and n total blocks (1 ≤ k ≤ n ≤ 255).
    pub fn new(codec: Codec, k: usize, n: usize) -> Result<Self, CodingError> {
        let Codec::ReedSolomon = codec;
        if k == 0 || k > n || n > 255 {
            return Err(CodingError::Params(format!("need 1 <= k <= n <= 255, got k={k} n={n}")));
        }
        let rs = match n - k {
            0 => None,
            parity => Some(
                ReedSolomon::new(k, parity).map_err(|e| CodingError::Params(format!("{e:?}")))?,
            ),
        };
        Ok(Coder { k, n, rs })
    }

    /// Length of each block for `len` bytes of input.
    pub fn block_len(&self, len: usize) -> usize {
        block_len(len, self.k)
    }

    /// Splits `data` into k blocks (zero-padded) and adds n−k parity blocks.
    pub fn encode(&self, data: &[u8]) -> Vec<Vec<u8>> {
        let bl = self.block_len(data.len());
        let mut blocks: Vec<Vec<u8>> = (0..self.n).map(|_| vec![0u8; bl]).collect();
        for (i, chunk) in data.chunks(bl).enumerate() {
            blocks[i][..chunk.len()].copy_from_slice(chunk);
        }
        if let Some(rs) = &self.rs {
            // Cannot fail: n blocks of equal, non-zero length.
            let _ = rs.encode(&mut blocks);
        }
        blocks
    }

    /// Rebuilds the `len` original bytes from any k blocks `(index, block)`.
    pub fn decode(
        &self,
        blocks: Vec<(usize, Vec<u8>)>,
        len: usize,
        segment: u64,
    ) -> Result<Vec<u8>, CodingError> {
        let have = blocks.len();
        let mut shards: Vec<Option<Vec<u8>>> = vec![None; self.n];
        for (i, b) in blocks {
            if i < self.n && b.len() == self.block_len(len) {
                shards[i] = Some(b);
            }
        }
        let present = shards.iter().filter(|s| s.is_some()).count();
        if present < self.k {
            return Err(CodingError::NotEnoughBlocks {
                segment,
                k: self.k,
                have: present.min(have),
            });
        }
        if let (true, Some(rs)) = (shards[..self.k].iter().any(|s| s.is_none()), &self.rs) {
            rs.reconstruct_data(&mut shards).map_err(|_| CodingError::NotEnoughBlocks {
                segment,
                k: self.k,
                have: present,
            })?;
        }
        let mut out = Vec::with_capacity(len);
        for shard in shards.into_iter().take(self.k).flatten() {
            out.extend_from_slice(&shard);
        }
        out.truncate(len);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_k_blocks_rebuild(data in proptest::collection::vec(any::<u8>(), 0..3000), k in 1usize..6, extra in 0usize..5, seed in any::<u64>()) {
            let n = k + extra;
            let c = Coder::new(Codec::ReedSolomon, k, n).unwrap();
            let blocks = c.encode(&data);
            prop_assert_eq!(blocks.len(), n);
            // Pick k distinct blocks pseudo-randomly.
            let mut idx: Vec<usize> = (0..n).collect();
            let mut s = seed;
            for i in (1..n).rev() {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                idx.swap(i, (s >> 33) as usize % (i + 1));
            }
            let chosen: Vec<(usize, Vec<u8>)> = idx[..k].iter().map(|&i| (i, blocks[i].clone())).collect();
            prop_assert_eq!(c.decode(chosen, data.len(), 0).unwrap(), data);
        }
    }

    #[test]
    fn too_few_blocks_is_an_error_naming_k() {
        let c = Coder::new(Codec::ReedSolomon, 3, 6).unwrap();
        let blocks = c.encode(b"hello world");
        let two = vec![(0, blocks[0].clone()), (5, blocks[5].clone())];
        let err = c.decode(two, 11, 7).unwrap_err();
        assert_eq!(err, CodingError::NotEnoughBlocks { segment: 7, k: 3, have: 2 });
        assert!(Coder::new(Codec::ReedSolomon, 4, 3).is_err());
        assert!(Coder::new(Codec::ReedSolomon, 0, 3).is_err());
    }
}
