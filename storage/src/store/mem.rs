//! In-memory share store: the twin of [`super::FsStore`] for tests.

use super::{Expect, Layout, ShareMeta, ShareStore, ShareWriter, StorageIndex, StoreError};
use crate::root::Hash;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Inner {
    shares: HashMap<(StorageIndex, u8), Vec<u8>>,
    leases: HashMap<StorageIndex, HashMap<String, u64>>,
    slots: std::collections::BTreeMap<(StorageIndex, [u8; 16]), super::SlotRow>,
    reserved: u64,
    /// Test hook: reads of blocks from this segment on hang (a holder that
    /// went silent mid-transfer) until it is lifted.
    stall_from: Option<u64>,
    /// Test hook: the next read of a block of this segment ends the
    /// server's session (as a holder whose process died under the read).
    break_at: Option<u64>,
}

/// Shares in a map; clones share the map.
#[derive(Clone)]
pub struct MemStore {
    inner: Arc<Mutex<Inner>>,
    capacity: u64,
    traffic: Arc<super::TrafficCounters>,
}

impl MemStore {
    /// A store that accepts up to `capacity` bytes.
    pub fn new(capacity: u64) -> Self {
        MemStore { inner: Arc::default(), capacity, traffic: Arc::default() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn blob(&self, si: &StorageIndex, share: u8) -> Result<Vec<u8>, StoreError> {
        let inner = self.lock();
        inner
            .shares
            .get(&(*si, share))
            .cloned()
            .ok_or(StoreError::NotFound { si: hex::encode(si), share })
    }

    fn layout(&self, si: &StorageIndex, share: u8, blob: &[u8]) -> Result<Layout, StoreError> {
        Layout::read(blob.len() as u64, |at, n| slice(blob, at, n))
            .map_err(|reason| StoreError::Damaged { si: hex::encode(si), share, reason })
    }

    /// Test hook: reads of blocks of segment `from` and later hang until
    /// [`MemStore::unstall`], as a holder that went silent mid-transfer.
    pub fn stall_from(&self, from: u64) {
        self.lock().stall_from = Some(from);
    }

    /// Lifts [`MemStore::stall_from`].
    pub fn unstall(&self) {
        self.lock().stall_from = None;
    }

    /// Test hook: the next read of a block of `segment` ends the session
    /// that asked for it, once (the server's task for the session unwinds,
    /// so the reader sees its stream end without an answer), as a holder
    /// that restarted under a read.
    pub fn break_once_at(&self, segment: u64) {
        self.lock().break_at = Some(segment);
    }

    /// Test hook: flips one byte of a stored share (simulated bit rot).
    pub fn corrupt(&self, si: &StorageIndex, share: u8, offset: usize) {
        if let Some(b) = self.lock().shares.get_mut(&(*si, share)).and_then(|v| v.get_mut(offset)) {
            *b ^= 0xff;
        }
    }
}

fn slice(blob: &[u8], at: u64, n: usize) -> Option<Vec<u8>> {
    let at = usize::try_from(at).ok()?;
    blob.get(at..at.checked_add(n)?).map(|s| s.to_vec())
}

impl ShareStore for MemStore {
    fn create(
        &self,
        si: &StorageIndex,
        share: u8,
        len: u64,
    ) -> Result<Box<dyn ShareWriter>, StoreError> {
        let mut inner = self.lock();
        let used: u64 = inner.shares.values().map(|v| v.len() as u64).sum::<u64>() + inner.reserved;
        let free = self.capacity.saturating_sub(used);
        if len > free {
            return Err(StoreError::Full { needed: len, free });
        }
        inner.reserved += len;
        let expect = Expect { si: *si, share, len, written: 0 };
        Ok(Box::new(MemWriter { store: self.clone(), buf: Vec::new(), expect, done: false }))
    }

    fn list(&self, si: &StorageIndex) -> Result<Vec<u8>, StoreError> {
        let mut v: Vec<u8> =
            self.lock().shares.keys().filter(|(s, _)| s == si).map(|(_, n)| *n).collect();
        v.sort();
        Ok(v)
    }

    fn read_meta(&self, si: &StorageIndex, share: u8) -> Result<ShareMeta, StoreError> {
        let blob = self.blob(si, share)?;
        self.layout(si, share, &blob)?.meta(si, share, |at, n| slice(&blob, at, n))
    }

    fn read_block(
        &self,
        si: &StorageIndex,
        share: u8,
        segment: u64,
    ) -> Result<Vec<u8>, StoreError> {
        while self.lock().stall_from.is_some_and(|from| segment >= from) {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        if self.lock().break_at.take_if(|at| *at == segment).is_some() {
            std::panic::resume_unwind(Box::new("test hook: the session ends under a read"));
        }
        let blob = self.blob(si, share)?;
        let block = self
            .layout(si, share, &blob)?
            .block(si, share, segment, |at, n| slice(&blob, at, n))?;
        self.traffic.read(block.len());
        Ok(block)
    }

    fn remove(&self, si: &StorageIndex, share: u8) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        let removed = inner.shares.remove(&(*si, share)).is_some();
        if !inner.shares.keys().any(|(s, _)| s == si) {
            inner.leases.remove(si);
        }
        Ok(removed)
    }

    fn renew(&self, si: &StorageIndex, owner: &str, until: u64) -> Result<usize, StoreError> {
        let mut inner = self.lock();
        let mut slots = 0;
        for row in inner.slots.values_mut().filter(|r| r.si == *si) {
            row.until = row.until.max(until);
            slots += 1;
        }
        let held = inner.shares.keys().filter(|(s, _)| s == si).count();
        if held > 0 {
            let end =
                inner.leases.entry(*si).or_default().entry(owner.to_string()).or_insert(until);
            *end = (*end).max(until);
        }
        Ok(held + slots)
    }

    fn expired(&self, now: u64) -> Result<Vec<StorageIndex>, StoreError> {
        let inner = self.lock();
        Ok(inner
            .leases
            .iter()
            .filter(|(_, l)| l.values().all(|until| *until < now))
            .map(|(si, _)| *si)
            .filter(|si| inner.shares.keys().any(|(s, _)| s == si))
            .collect())
    }

    fn traffic(&self) -> super::Traffic {
        self.traffic.get()
    }

    fn usage(&self) -> Result<std::collections::BTreeMap<String, u64>, StoreError> {
        let inner = self.lock();
        let mut out = std::collections::BTreeMap::new();
        for ((si, _), blob) in &inner.shares {
            for owner in inner.leases.get(si).into_iter().flat_map(|l| l.keys()) {
                *out.entry(owner.clone()).or_insert(0) += blob.len() as u64;
            }
        }
        for row in inner.slots.values() {
            *out.entry(row.owner.clone()).or_insert(0) += row.bytes.len() as u64;
        }
        Ok(out)
    }

    fn put_slot(&self, row: super::SlotRow) -> Result<super::SlotPut, StoreError> {
        let mut inner = self.lock();
        let held = inner.slots.get(&(row.si, row.writer)).map(|r| (r.seqnum, r.bytes.as_slice()));
        let writers = inner.slots.keys().filter(|(si, _)| *si == row.si).count();
        let put = super::slot_rule(held, writers, &row);
        if put == super::SlotPut::Stored {
            inner.slots.insert((row.si, row.writer), row);
        }
        Ok(put)
    }

    fn slots(&self, si: &StorageIndex) -> Result<Vec<Vec<u8>>, StoreError> {
        let inner = self.lock();
        Ok(inner.slots.values().filter(|r| r.si == *si).map(|r| r.bytes.clone()).collect())
    }

    fn expire_slots(&self, now: u64) -> Result<usize, StoreError> {
        let mut inner = self.lock();
        let before = inner.slots.len();
        inner.slots.retain(|_, r| r.until >= now);
        Ok(before - inner.slots.len())
    }

    fn used(&self) -> u64 {
        let inner = self.lock();
        inner.shares.values().map(|v| v.len() as u64).sum::<u64>() + inner.reserved
    }

    fn free(&self) -> u64 {
        self.capacity.saturating_sub(self.used())
    }
}

struct MemWriter {
    store: MemStore,
    buf: Vec<u8>,
    expect: Expect,
    done: bool,
}

impl ShareWriter for MemWriter {
    fn write_block(&mut self, block: &[u8]) -> Result<(), StoreError> {
        self.expect.block(block.len())?;
        self.buf.extend_from_slice(block);
        self.store.traffic.written(block.len());
        Ok(())
    }

    fn finish(mut self: Box<Self>, root: &[u8], hashes: &[Hash]) -> Result<(), StoreError> {
        self.expect.finish(root, hashes)?;
        let mut blob = std::mem::take(&mut self.buf);
        for h in hashes {
            blob.extend_from_slice(h);
        }
        blob.extend_from_slice(root);
        blob.extend_from_slice(&super::trailer(root.len()));
        let mut inner = self.store.lock();
        inner.reserved -= self.expect.len;
        inner.shares.insert((self.expect.si, self.expect.share), blob);
        self.done = true;
        Ok(())
    }
}

impl Drop for MemWriter {
    fn drop(&mut self) {
        if !self.done {
            self.store.lock().reserved -= self.expect.len;
        }
    }
}

impl std::fmt::Debug for MemStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemStore").finish_non_exhaustive()
    }
}
