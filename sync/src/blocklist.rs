//! Block lists on the wire. A short list travels inline with its file's
//! entry; a long one (a large file has thousands of blocks) travels as the
//! hashes of its *pieces*, and a member fetches only the pieces it does not
//! already hold.
//!
//! Pieces are cut where the content says, like the blocks themselves: a
//! piece ends after a block whose hash has its low five bits zero (about
//! one block in 32), or after [`MAX_PIECE`] blocks. An edit or an insertion
//! in a file changes one or two blocks, hence one or two pieces, so a
//! changed 256 MiB file costs about 4 KB of piece hashes plus one piece,
//! instead of its whole 150 KB list.
//!
//! A piece is the plain concatenation of its entries (32-byte hash, then
//! the block size as a big-endian u32) and is named by its blake3 hash.

use crate::chunk::Hash;
use std::ops::Range;

/// Lists of at most this many blocks travel inline.
pub const INLINE: usize = 64;
/// Most blocks in one piece.
pub const MAX_PIECE: usize = 256;
/// Bytes per entry in a piece.
pub const ENTRY: usize = 36;

/// One entry of a block list: a block's hash and size.
pub type Entry = (Hash, u32);

/// Whether a piece ends after the block with this hash.
fn ends_piece(hash: &Hash) -> bool {
    hash[31] & 0x1f == 0
}

/// The ranges of `entries` that make its pieces.
pub fn split(entries: &[Entry]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, (hash, _)) in entries.iter().enumerate() {
        if ends_piece(hash) || i + 1 - start == MAX_PIECE {
            out.push(start..i + 1);
            start = i + 1;
        }
    }
    if start < entries.len() {
        out.push(start..entries.len());
    }
    out
}

/// The bytes of a list of entries (a piece, or a whole list as the index
/// stores it).
pub fn encode(entries: impl IntoIterator<Item = Entry>) -> Vec<u8> {
    let entries = entries.into_iter();
    let mut out = Vec::with_capacity(entries.size_hint().0 * ENTRY);
    for (hash, size) in entries {
        out.extend_from_slice(&hash);
        out.extend_from_slice(&size.to_be_bytes());
    }
    out
}

/// The entries of [`encode`]d bytes (a trailing partial entry is ignored).
pub fn entries(bytes: &[u8]) -> impl Iterator<Item = Entry> + '_ {
    bytes.chunks_exact(ENTRY).map(|c| {
        (
            c[..32].try_into().expect("32 bytes"),
            u32::from_be_bytes(c[32..].try_into().expect("4 bytes")),
        )
    })
}

/// A piece's entries, or `None` if the bytes are not a piece.
pub fn decode(bytes: &[u8]) -> Option<Vec<Entry>> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(ENTRY) || bytes.len() / ENTRY > MAX_PIECE {
        return None;
    }
    Some(entries(bytes).collect())
}

/// The pieces of a list: each piece's hash and its entries.
pub fn pieces(entries: &[Entry]) -> Vec<(Hash, &[Entry])> {
    split(entries)
        .into_iter()
        .map(|r| {
            (*blake3::hash(&encode(entries[r.clone()].iter().copied())).as_bytes(), &entries[r])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn list(n: usize, seed: u64) -> Vec<Entry> {
        (0..n as u64)
            .map(|i| {
                (
                    *blake3::hash(&[seed.to_le_bytes(), i.to_le_bytes()].concat()).as_bytes(),
                    1000 + i as u32,
                )
            })
            .collect()
    }

    fn new_pieces(before: &[Entry], after: &[Entry]) -> usize {
        let old: HashSet<Hash> = pieces(before).into_iter().map(|(h, _)| h).collect();
        pieces(after).into_iter().filter(|(h, _)| !old.contains(h)).count()
    }

    #[test]
    fn pieces_tile_the_list_and_roundtrip() {
        let l = list(4000, 1);
        let p = pieces(&l);
        assert!((60..250).contains(&p.len()), "about one piece per 32 blocks: {}", p.len());
        let joined: Vec<Entry> = p
            .iter()
            .flat_map(|(h, e)| {
                let bytes = encode(e.iter().copied());
                assert_eq!(*blake3::hash(&bytes).as_bytes(), *h);
                decode(&bytes).unwrap()
            })
            .collect();
        assert_eq!(joined, l);
        assert!(p.iter().all(|(_, e)| e.len() <= MAX_PIECE));
    }

    #[test]
    fn an_edit_or_insertion_changes_few_pieces() {
        let l = list(4000, 2);
        let mut edited = l.clone();
        edited[2000] = ([9; 32], 5);
        assert!(new_pieces(&l, &edited) <= 2);
        let mut inserted = vec![([7; 32], 17)];
        inserted.extend_from_slice(&l);
        assert!(new_pieces(&l, &inserted) <= 2, "later pieces do not shift");
    }

    #[test]
    fn garbage_is_not_a_piece() {
        assert!(decode(&[]).is_none());
        assert!(decode(&[1; 35]).is_none());
        assert!(decode(&vec![0; ENTRY * (MAX_PIECE + 1)]).is_none());
        assert_eq!(decode(&[1; 36]).unwrap(), vec![([1; 32], 0x0101_0101)]);
    }
}
