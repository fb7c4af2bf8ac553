//! Content-defined chunking: files are cut into blocks by FastCDC (2020),
//! so an insertion near the start of a large file changes one or two
//! blocks, not every later one. Each block is named by its blake3 hash.

use std::io::Read;

/// Smallest block, except a file's last.
pub const MIN_BLOCK: u32 = 16 << 10;
/// Target average block size.
pub const AVG_BLOCK: u32 = 48 << 10;
/// Largest block.
pub const MAX_BLOCK: u32 = 128 << 10;

/// A block's hash.
pub type Hash = [u8; 32];

/// One block of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Block {
    /// blake3 of the block's bytes.
    pub hash: Hash,
    /// Where it starts in the file.
    pub offset: u64,
    /// Its length.
    pub size: u32,
}

/// Inputs at least this large are hashed on a second thread while the
/// first one cuts.
const PARALLEL_FROM: u64 = 4 << 20;

/// Cuts everything `reader` yields into blocks. `len` is how much it is
/// expected to yield: a large input is cut on this thread and hashed on
/// another, at once.
pub fn blocks_of(reader: impl Read + Send, len: u64) -> std::io::Result<Vec<Block>> {
    let cuts = fastcdc::v2020::StreamCDC::new(reader, MIN_BLOCK, AVG_BLOCK, MAX_BLOCK).map(|c| {
        c.map_err(|e| match e {
            fastcdc::v2020::Error::IoError(e) => e,
            other => std::io::Error::other(other.to_string()),
        })
    });
    let block = |offset: u64, data: &[u8]| Block {
        hash: *blake3::hash(data).as_bytes(),
        offset,
        size: data.len() as u32,
    };
    if len < PARALLEL_FROM {
        return cuts.map(|c| c.map(|c| block(c.offset, &c.data))).collect();
    }
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<(u64, Vec<u8>)>(8);
        let hasher = s.spawn(move || {
            rx.into_iter().map(|(offset, data)| block(offset, &data)).collect::<Vec<Block>>()
        });
        for c in cuts {
            let c = c?;
            if tx.send((c.offset, c.data)).is_err() {
                break;
            }
        }
        drop(tx);
        hasher.join().map_err(|_| std::io::Error::other("the hashing thread panicked"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngCore, SeedableRng};
    use std::collections::HashSet;

    fn random(len: usize, seed: u64) -> Vec<u8> {
        let mut v = vec![0u8; len];
        rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut v);
        v
    }

    fn new_blocks(before: &[Block], after: &[Block]) -> Vec<Block> {
        let old: HashSet<Hash> = before.iter().map(|b| b.hash).collect();
        after.iter().filter(|b| !old.contains(&b.hash)).copied().collect()
    }

    #[test]
    fn blocks_tile_the_file_within_bounds() {
        let data = random(3 << 20, 1);
        let blocks = blocks_of(&data[..], data.len() as u64).unwrap();
        assert_eq!(
            blocks_of(&data[..], u64::MAX).unwrap(),
            blocks,
            "hashing on a second thread gives the same blocks"
        );
        let mut at = 0u64;
        for (i, b) in blocks.iter().enumerate() {
            assert_eq!(b.offset, at);
            assert!(b.size <= MAX_BLOCK);
            assert!(b.size >= MIN_BLOCK || i == blocks.len() - 1);
            let slice = &data[at as usize..at as usize + b.size as usize];
            assert_eq!(b.hash, *blake3::hash(slice).as_bytes());
            at += b.size as u64;
        }
        assert_eq!(at, data.len() as u64);
        assert!(blocks_of(&[][..], 0).unwrap().is_empty(), "an empty file has no blocks");
    }

    #[test]
    fn a_changed_byte_or_an_insertion_touches_few_blocks() {
        let data = random(8 << 20, 2);
        let before = blocks_of(&data[..], data.len() as u64).unwrap();
        let mut changed = data.clone();
        changed[4 << 20] ^= 1;
        let fresh = new_blocks(&before, &blocks_of(&changed[..], changed.len() as u64).unwrap());
        assert!(fresh.len() <= 2, "{} new blocks after a 1-byte change", fresh.len());
        let mut inserted = vec![7u8];
        inserted.extend_from_slice(&data);
        let fresh = new_blocks(&before, &blocks_of(&inserted[..], inserted.len() as u64).unwrap());
        assert!(fresh.len() <= 2, "{} new blocks after a 1-byte insertion", fresh.len());
        let bytes: u64 = fresh.iter().map(|b| b.size as u64).sum();
        assert!(bytes <= 2 * MAX_BLOCK as u64);
    }
}
