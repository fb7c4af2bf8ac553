//! Where a storage server keeps shares: the [`ShareStore`] trait, an
//! in-memory twin ([`MemStore`]) and files on disk ([`FsStore`]).
//!
//! A share is stored as one blob:
//!
//! ```text
//! block 0 ‖ block 1 ‖ … ‖ block S−1 ‖ S × 32-byte block hashes ‖ root record ‖ b"CLDYSHR1" ‖ root_len:u32
//! ```
//!
//! The trailer gives the root record, and the record gives the block sizes,
//! so any block can be read without reading the rest. A share is written
//! block by block (in segment order, as the upload streams) and becomes
//! visible only when [`ShareWriter::finish`] has the whole blob in place.
//! On disk that means a temporary file renamed over the final name, so a
//! crash never leaves a half share that looks whole.

mod fs;
mod mem;
mod piped;

pub use fs::FsStore;
pub use mem::MemStore;
pub use piped::PipedWriter;

use crate::crypt::{SI_LEN, TAG_LEN};
use crate::erasure::{self, Codec};
use crate::root::{Hash, RootRecord};

/// Where servers file a file's shares.
pub type StorageIndex = [u8; SI_LEN];

const MAGIC: &[u8; 8] = b"CLDYSHR1";
/// Bytes of the trailer.
pub const TRAILER_LEN: usize = 12;
/// How long a lease lasts from its last renewal: 31 days, as in Tahoe.
pub const LEASE_SECS: u64 = 31 * 24 * 3600;

/// What is wrong with a stored share blob.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Damage {
    /// Too short to hold its trailer.
    #[error("shorter than its trailer")]
    Short,
    /// A part could not be read back.
    #[error("cannot read its {0}")]
    Unreadable(&'static str),
    /// The trailer does not start with the magic bytes.
    #[error("bad trailer magic")]
    Magic,
    /// A part claims more bytes than the blob has.
    #[error("its {0} is longer than the share")]
    TooLong(&'static str),
    /// The root record does not parse.
    #[error(transparent)]
    Root(#[from] crate::CodingError),
    /// The blob's length disagrees with its root record.
    #[error("{total} bytes, the root record implies {implied}")]
    Length {
        /// Bytes in the blob.
        total: u64,
        /// Bytes the root record implies.
        implied: u64,
    },
    /// A block past the last segment was asked for.
    #[error("no segment {0}")]
    NoSegment(u64),
}

/// What was wrong with an upload, against the share it declared.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum BadShare {
    /// More block bytes than declared.
    #[error("more than the declared {0} bytes")]
    TooLong(u64),
    /// The root record does not parse.
    #[error(transparent)]
    Root(#[from] crate::CodingError),
    /// The finished share's length disagrees.
    #[error("{written} bytes written, {declared} declared, {implied} implied by the root record")]
    Length {
        /// Bytes the writer received, with hashes, root and trailer.
        written: u64,
        /// Bytes declared at `Put`.
        declared: u64,
        /// Bytes the root record implies.
        implied: u64,
    },
}

/// Errors of a share store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Not enough room for the share.
    #[error("storage full: share needs {needed} bytes, {free} free of the configured capacity")]
    Full {
        /// Bytes needed.
        needed: u64,
        /// Bytes free.
        free: u64,
    },
    /// No such share here.
    #[error("no share {share} of storage index {si}")]
    NotFound {
        /// Storage index, hex.
        si: String,
        /// Share number.
        share: u8,
    },
    /// The stored blob is damaged beyond reading its layout.
    #[error("share {share} of storage index {si} is damaged: {reason}")]
    Damaged {
        /// Storage index, hex.
        si: String,
        /// Share number.
        share: u8,
        /// What is wrong.
        #[source]
        reason: Damage,
    },
    /// The writer was given more or other data than the declared share.
    #[error("share {share} of storage index {si}: {reason}")]
    BadUpload {
        /// Storage index, hex.
        si: String,
        /// Share number.
        share: u8,
        /// What was wrong.
        #[source]
        reason: BadShare,
    },
    /// Disk or database trouble.
    #[error("{path}: {reason}")]
    Io {
        /// File or database involved.
        path: String,
        /// What the OS or SQLite said.
        reason: String,
    },
}

/// What a share says about the file, besides its blocks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShareMeta {
    /// The root record bytes (check their hash against the capability).
    pub root: Vec<u8>,
    /// The share's block hashes.
    pub hashes: Vec<Hash>,
}

/// Share storage of one server.
pub trait ShareStore: Send + Sync + 'static {
    /// Starts writing share `share` of `si`, `len` bytes in all.
    fn create(
        &self,
        si: &StorageIndex,
        share: u8,
        len: u64,
    ) -> Result<Box<dyn ShareWriter>, StoreError>;
    /// Share numbers of `si` held here.
    fn list(&self, si: &StorageIndex) -> Result<Vec<u8>, StoreError>;
    /// Root record and block hashes of a share.
    fn read_meta(&self, si: &StorageIndex, share: u8) -> Result<ShareMeta, StoreError>;
    /// One block of a share.
    fn read_block(&self, si: &StorageIndex, share: u8, segment: u64)
        -> Result<Vec<u8>, StoreError>;
    /// Deletes a share; `false` if it was not here.
    fn remove(&self, si: &StorageIndex, share: u8) -> Result<bool, StoreError>;
    /// Sets `owner`'s lease on every share of `si` held here to end no
    /// earlier than `until` (Unix seconds); returns how many shares that is.
    fn renew(&self, si: &StorageIndex, owner: &str, until: u64) -> Result<usize, StoreError>;
    /// Storage indexes held here whose leases all ended before `now`.
    /// Shares with no lease yet (one is added right after an upload) are
    /// never expired.
    fn expired(&self, now: u64) -> Result<Vec<StorageIndex>, StoreError>;
    /// Bytes of finished shares plus space reserved by writers under way.
    fn used(&self) -> u64;
    /// Bytes of the shares under each owner's leases (a share leased by
    /// several owners counts for each).
    fn usage(&self) -> Result<std::collections::BTreeMap<String, u64>, StoreError>;
    /// Bytes of the shares under `owner`'s leases (its entry in
    /// [`ShareStore::usage`], without adding up everyone else's).
    fn used_by(&self, owner: &str) -> Result<u64, StoreError> {
        Ok(self.usage()?.get(owner).copied().unwrap_or(0))
    }
    /// Bytes a new share may still take: what the capacity leaves, and on
    /// disk also what the filesystem has.
    fn free(&self) -> u64;
    /// Block bytes read from and written to this store since it opened.
    fn traffic(&self) -> Traffic;
    /// Keeps a mutable slot (already verified by the caller) unless a newer
    /// one, or an equal one with other contents, is held.
    fn put_slot(&self, row: SlotRow) -> Result<SlotPut, StoreError>;
    /// Every slot of `si` held here, in wire form.
    fn slots(&self, si: &StorageIndex) -> Result<Vec<Vec<u8>>, StoreError>;
    /// Drops slots whose leases ended before `now`; returns how many.
    fn expire_slots(&self, now: u64) -> Result<usize, StoreError>;
}

/// Most writers' slots kept under one storage index.
pub const MAX_WRITERS: usize = 64;

/// A slot to keep.
#[derive(Clone, Debug)]
pub struct SlotRow {
    /// Storage index.
    pub si: StorageIndex,
    /// Writer id.
    pub writer: [u8; 16],
    /// Version.
    pub seqnum: u64,
    /// Wire form.
    pub bytes: Vec<u8>,
    /// Who stored it (its lease and quota).
    pub owner: String,
    /// When its lease ends.
    pub until: u64,
}

/// What became of a slot offered to a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotPut {
    /// Kept (or already held, identical).
    Stored,
    /// A newer version, or the same version with other contents, is held.
    Stale {
        /// The version held.
        held: u64,
    },
    /// The storage index already has [`MAX_WRITERS`] writers.
    TooManyWriters,
}

/// The rule both backends follow: given what is held for the slot and how
/// many writers the storage index has, what to do with `row`.
pub(crate) fn slot_rule(held: Option<(u64, &[u8])>, writers: usize, row: &SlotRow) -> SlotPut {
    match held {
        Some((seq, _)) if seq > row.seqnum => SlotPut::Stale { held: seq },
        Some((seq, bytes)) if seq == row.seqnum && bytes != row.bytes.as_slice() => {
            SlotPut::Stale { held: seq }
        }
        None if writers >= MAX_WRITERS => SlotPut::TooManyWriters,
        _ => SlotPut::Stored,
    }
}

/// Block bytes a store has read (served) and written (received).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Bytes of blocks read.
    pub read: u64,
    /// Bytes of blocks written.
    pub written: u64,
}

/// Counters behind [`ShareStore::traffic`].
#[derive(Debug, Default)]
pub(crate) struct TrafficCounters {
    read: std::sync::atomic::AtomicU64,
    written: std::sync::atomic::AtomicU64,
}

impl TrafficCounters {
    pub(crate) fn read(&self, n: usize) {
        self.read.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
    }
    pub(crate) fn written(&self, n: usize) {
        self.written.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
    }
    pub(crate) fn get(&self) -> Traffic {
        use std::sync::atomic::Ordering::Relaxed;
        Traffic { read: self.read.load(Relaxed), written: self.written.load(Relaxed) }
    }
}

/// A share being written. Dropping it unfinished discards it.
pub trait ShareWriter: Send {
    /// Appends the next block (segment order).
    fn write_block(&mut self, block: &[u8]) -> Result<(), StoreError>;
    /// Appends hashes and root record and makes the share visible.
    fn finish(self: Box<Self>, root: &[u8], hashes: &[Hash]) -> Result<(), StoreError>;
}

/// Total bytes of a share blob for a file described by `record`.
pub fn share_len(record: &RootRecord) -> u64 {
    let root_len = record.encode().len() as u64;
    let blocks: u64 = (0..record.segments()).map(|i| block_len(record, i) as u64).sum();
    blocks + 32 * record.segments() + root_len + TRAILER_LEN as u64
}

/// Length of every share's block for segment `i`.
pub fn block_len(record: &RootRecord, i: u64) -> usize {
    let Codec::ReedSolomon = record.codec;
    erasure::block_len(record.segment_len(i) + TAG_LEN, record.k as usize)
}

/// The trailer that ends a share blob.
fn trailer(root_len: usize) -> [u8; TRAILER_LEN] {
    let mut t = [0u8; TRAILER_LEN];
    t[..8].copy_from_slice(MAGIC);
    t[8..].copy_from_slice(&(root_len as u32).to_be_bytes());
    t
}

/// Positions inside a share blob, read from its tail.
struct Layout {
    record: RootRecord,
    root: Vec<u8>,
    hashes_at: u64,
}

impl Layout {
    /// From the blob length and a reader of `(offset, len)` ranges.
    fn read(
        total: u64,
        mut read: impl FnMut(u64, usize) -> Option<Vec<u8>>,
    ) -> Result<Layout, Damage> {
        let t = read(total.checked_sub(TRAILER_LEN as u64).ok_or(Damage::Short)?, TRAILER_LEN)
            .ok_or(Damage::Unreadable("trailer"))?;
        if &t[..8] != MAGIC {
            return Err(Damage::Magic);
        }
        let root_len = u32::from_be_bytes(t[8..].try_into().expect("4 bytes")) as u64;
        let root_at = (total - TRAILER_LEN as u64)
            .checked_sub(root_len)
            .ok_or(Damage::TooLong("root record"))?;
        let root = read(root_at, root_len as usize).ok_or(Damage::Unreadable("root record"))?;
        let record = RootRecord::decode(&root)?;
        let hashes_at =
            root_at.checked_sub(32 * record.segments()).ok_or(Damage::TooLong("hash list"))?;
        if share_len(&record) != total {
            return Err(Damage::Length { total, implied: share_len(&record) });
        }
        Ok(Layout { record, root, hashes_at })
    }

    fn block_range(&self, segment: u64) -> Option<(u64, usize)> {
        if segment >= self.record.segments() {
            return None;
        }
        let full = block_len(&self.record, 0) as u64;
        Some((segment * full, block_len(&self.record, segment)))
    }

    fn hashes(&self, read: impl FnOnce(u64, usize) -> Option<Vec<u8>>) -> Option<Vec<Hash>> {
        let raw = read(self.hashes_at, 32 * self.record.segments() as usize)?;
        Some(raw.chunks(32).map(|c| c.try_into().expect("32 bytes")).collect())
    }

    /// Root record and hash list, via `read`; both backends use this.
    fn meta(
        self,
        si: &StorageIndex,
        share: u8,
        read: impl FnOnce(u64, usize) -> Option<Vec<u8>>,
    ) -> Result<ShareMeta, StoreError> {
        let hashes = self.hashes(read).ok_or(StoreError::Damaged {
            si: hex::encode(si),
            share,
            reason: Damage::Unreadable("hash list"),
        })?;
        Ok(ShareMeta { root: self.root, hashes })
    }

    /// One block, via `read`; both backends use this.
    fn block(
        &self,
        si: &StorageIndex,
        share: u8,
        segment: u64,
        read: impl FnOnce(u64, usize) -> Option<Vec<u8>>,
    ) -> Result<Vec<u8>, StoreError> {
        let damaged = |reason| StoreError::Damaged { si: hex::encode(si), share, reason };
        let (at, n) =
            self.block_range(segment).ok_or_else(|| damaged(Damage::NoSegment(segment)))?;
        read(at, n).ok_or_else(|| damaged(Damage::Unreadable("block")))
    }
}

/// Checks what a writer receives against the share it declared.
struct Expect {
    si: StorageIndex,
    share: u8,
    len: u64,
    written: u64,
}

impl Expect {
    fn bad(&self, reason: BadShare) -> StoreError {
        StoreError::BadUpload { si: hex::encode(self.si), share: self.share, reason }
    }

    fn block(&mut self, n: usize) -> Result<(), StoreError> {
        self.written += n as u64;
        if self.written > self.len {
            return Err(self.bad(BadShare::TooLong(self.len)));
        }
        Ok(())
    }

    fn finish(&self, root: &[u8], hashes: &[Hash]) -> Result<(), StoreError> {
        let record = RootRecord::decode(root).map_err(|e| self.bad(e.into()))?;
        let total =
            self.written + 32 * hashes.len() as u64 + root.len() as u64 + TRAILER_LEN as u64;
        if hashes.len() as u64 != record.segments()
            || total != share_len(&record)
            || total != self.len
        {
            return Err(self.bad(BadShare::Length {
                written: total,
                declared: self.len,
                implied: share_len(&record),
            }));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;

/// Seconds since the Unix epoch (lease times).
pub fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
