//! Shares as files under a directory, with an SQLite index.
//!
//! `<dir>/<si hex>/<share>` holds one share blob (see the module above);
//! `<dir>/index.sqlite` lists `(si, share, len)`. A share is written to
//! `<share>.tmp-<random>`, synced and renamed into place before its index
//! row is added. Opening the store deletes leftover temporary files (half
//! shares from a crash) and brings the index in line with the files.

use super::{Expect, Layout, ShareMeta, ShareStore, ShareWriter, StorageIndex, StoreError};
use crate::root::Hash;
use rusqlite::OptionalExtension;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

struct Inner {
    dir: PathBuf,
    db: Mutex<rusqlite::Connection>,
    capacity: u64,
    used: AtomicU64,
    reserved: AtomicU64,
    traffic: super::TrafficCounters,
}

/// Share files on disk; clones share one store.
#[derive(Clone)]
pub struct FsStore(Arc<Inner>);

fn io_err(path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::Io { path: path.display().to_string(), reason: e.to_string() }
}

impl FsStore {
    /// Opens (or creates) the store in `dir`, accepting up to `capacity` bytes.
    pub fn open(dir: &Path, capacity: u64) -> Result<Self, StoreError> {
        fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        let db_path = dir.join("index.sqlite");
        let db = rusqlite::Connection::open(&db_path).map_err(|e| io_err(&db_path, e))?;
        // WAL with synchronous=NORMAL: a commit no longer waits for an
        // fsync (one per share stored, the servers' largest cost in a burst
        // of small uploads). A power cut may lose the last commits but never
        // corrupts the index; the shares table is rebuilt from the share
        // files at start, and a lost lease renewal is made again at the
        // next hourly check.
        db.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=NORMAL;
             CREATE TABLE IF NOT EXISTS shares (si TEXT NOT NULL, share INTEGER NOT NULL, len INTEGER NOT NULL,
                                                PRIMARY KEY (si, share));
             CREATE TABLE IF NOT EXISTS leases (si TEXT NOT NULL, owner TEXT NOT NULL, until INTEGER NOT NULL,
                                                PRIMARY KEY (si, owner));
             CREATE TABLE IF NOT EXISTS slots (si TEXT NOT NULL, writer BLOB NOT NULL, seqnum INTEGER NOT NULL,
                                               bytes BLOB NOT NULL, owner TEXT NOT NULL, until INTEGER NOT NULL,
                                               PRIMARY KEY (si, writer));",
        )
        .map_err(|e| io_err(&db_path, e))?;
        let store = FsStore(Arc::new(Inner {
            dir: dir.to_path_buf(),
            db: Mutex::new(db),
            capacity,
            used: AtomicU64::new(0),
            reserved: AtomicU64::new(0),
            traffic: Default::default(),
        }));
        store.reconcile()?;
        Ok(store)
    }

    fn db(&self) -> std::sync::MutexGuard<'_, rusqlite::Connection> {
        self.0.db.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn db_err(&self, e: rusqlite::Error) -> StoreError {
        io_err(&self.0.dir.join("index.sqlite"), e)
    }

    fn path(&self, si: &StorageIndex, share: u8) -> PathBuf {
        self.0.dir.join(hex::encode(si)).join(share.to_string())
    }

    /// Removes temporary files and makes the index list exactly the share
    /// files present.
    fn reconcile(&self) -> Result<(), StoreError> {
        let mut found: Vec<(String, u8, u64)> = Vec::new();
        let entries = fs::read_dir(&self.0.dir).map_err(|e| io_err(&self.0.dir, e))?;
        for si_dir in entries.flatten().filter(|e| e.path().is_dir()) {
            let si = si_dir.file_name().to_string_lossy().to_string();
            for f in fs::read_dir(si_dir.path()).map_err(|e| io_err(&si_dir.path(), e))?.flatten() {
                let name = f.file_name().to_string_lossy().to_string();
                if name.contains(".tmp-") {
                    let _ = fs::remove_file(f.path());
                } else if let (Ok(share), Ok(meta)) = (name.parse::<u8>(), f.metadata()) {
                    found.push((si.clone(), share, meta.len()));
                }
            }
        }
        let mut db = self.db();
        let tx = db.transaction().map_err(|e| self.db_err(e))?;
        tx.execute("DELETE FROM shares", []).map_err(|e| self.db_err(e))?;
        for (si, share, len) in &found {
            tx.execute(
                "INSERT INTO shares (si, share, len) VALUES (?1, ?2, ?3)",
                rusqlite::params![si, share, *len as i64],
            )
            .map_err(|e| self.db_err(e))?;
        }
        // Shares found with no lease (from before leases, or a crash between
        // an upload and its lease) get one from now.
        tx.execute(
            "INSERT INTO leases (si, owner, until) SELECT DISTINCT si, 'found at start', ?1 FROM shares
             WHERE si NOT IN (SELECT si FROM leases)",
            [(super::now_secs() + super::LEASE_SECS) as i64],
        )
        .map_err(|e| self.db_err(e))?;
        tx.execute("DELETE FROM leases WHERE si NOT IN (SELECT si FROM shares)", [])
            .map_err(|e| self.db_err(e))?;
        tx.commit().map_err(|e| self.db_err(e))?;
        self.0.used.store(found.iter().map(|f| f.2).sum(), Ordering::SeqCst);
        Ok(())
    }

    fn open_share(&self, si: &StorageIndex, share: u8) -> Result<(File, Layout), StoreError> {
        let path = self.path(si, share);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound { si: hex::encode(si), share })
            }
            Err(e) => return Err(io_err(&path, e)),
        };
        let total = file.metadata().map_err(|e| io_err(&path, e))?.len();
        let layout = Layout::read(total, |at, n| read_at(&file, at, n))
            .map_err(|reason| StoreError::Damaged { si: hex::encode(si), share, reason })?;
        Ok((file, layout))
    }
}

fn read_at(file: &File, at: u64, n: usize) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; n];
    file.read_exact_at(&mut buf, at).ok()?;
    Some(buf)
}

impl FsStore {
    /// Bytes the filesystem still offers, less what writers under way have
    /// reserved but not yet written (an estimate: they may have written some).
    fn disk_free(&self, reserved: u64) -> u64 {
        match rustix::fs::statvfs(&self.0.dir) {
            Ok(st) => (st.f_bavail * st.f_frsize).saturating_sub(reserved),
            // Cannot tell: the capacity alone decides, and a write that
            // hits a full disk still fails cleanly as "full".
            Err(_) => u64::MAX,
        }
    }
}

impl ShareStore for FsStore {
    fn create(
        &self,
        si: &StorageIndex,
        share: u8,
        len: u64,
    ) -> Result<Box<dyn ShareWriter>, StoreError> {
        let reserved = self.0.reserved.fetch_add(len, Ordering::SeqCst);
        let used = self.0.used.load(Ordering::SeqCst) + reserved;
        let free = self.0.capacity.saturating_sub(used).min(self.disk_free(reserved));
        if len > free {
            self.0.reserved.fetch_sub(len, Ordering::SeqCst);
            return Err(StoreError::Full { needed: len, free });
        }
        let writer = FsWriter::create(self.clone(), si, share, len);
        if writer.is_err() {
            self.0.reserved.fetch_sub(len, Ordering::SeqCst);
        }
        Ok(Box::new(writer?))
    }

    fn list(&self, si: &StorageIndex) -> Result<Vec<u8>, StoreError> {
        let db = self.db();
        let mut stmt = db
            .prepare_cached("SELECT share FROM shares WHERE si = ?1 ORDER BY share")
            .map_err(|e| self.db_err(e))?;
        let rows =
            stmt.query_map([hex::encode(si)], |r| r.get::<_, u8>(0)).map_err(|e| self.db_err(e))?;
        rows.collect::<Result<Vec<u8>, _>>().map_err(|e| self.db_err(e))
    }

    fn read_meta(&self, si: &StorageIndex, share: u8) -> Result<ShareMeta, StoreError> {
        let (file, l) = self.open_share(si, share)?;
        l.meta(si, share, |at, n| read_at(&file, at, n))
    }

    fn read_block(
        &self,
        si: &StorageIndex,
        share: u8,
        segment: u64,
    ) -> Result<Vec<u8>, StoreError> {
        let (file, l) = self.open_share(si, share)?;
        let block = l.block(si, share, segment, |at, n| read_at(&file, at, n))?;
        self.0.traffic.read(block.len());
        Ok(block)
    }

    fn remove(&self, si: &StorageIndex, share: u8) -> Result<bool, StoreError> {
        let path = self.path(si, share);
        let len = match fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(_) => return Ok(false),
        };
        fs::remove_file(&path).map_err(|e| io_err(&path, e))?;
        let db = self.db();
        db.execute(
            "DELETE FROM shares WHERE si = ?1 AND share = ?2",
            rusqlite::params![hex::encode(si), share],
        )
        .map_err(|e| self.db_err(e))?;
        db.execute(
            "DELETE FROM leases WHERE si = ?1 AND si NOT IN (SELECT si FROM shares)",
            [hex::encode(si)],
        )
        .map_err(|e| self.db_err(e))?;
        drop(db);
        self.0.used.fetch_sub(len, Ordering::SeqCst);
        Ok(true)
    }

    fn renew(&self, si: &StorageIndex, owner: &str, until: u64) -> Result<usize, StoreError> {
        let db = self.db();
        let si = hex::encode(si);
        let slots = db
            .prepare_cached("UPDATE slots SET until = MAX(until, ?2) WHERE si = ?1")
            .and_then(|mut st| st.execute(rusqlite::params![si, until as i64]))
            .map_err(|e| self.db_err(e))?;
        let held: i64 = db
            .prepare_cached("SELECT COUNT(*) FROM shares WHERE si = ?1")
            .and_then(|mut st| st.query_row([&si], |r| r.get(0)))
            .map_err(|e| self.db_err(e))?;
        if held > 0 {
            db.prepare_cached(
                "INSERT INTO leases (si, owner, until) VALUES (?1, ?2, ?3)
                 ON CONFLICT (si, owner) DO UPDATE SET until = MAX(until, excluded.until)",
            )
            .and_then(|mut st| st.execute(rusqlite::params![si, owner, until as i64]))
            .map_err(|e| self.db_err(e))?;
        }
        Ok(held as usize + slots)
    }

    fn expired(&self, now: u64) -> Result<Vec<StorageIndex>, StoreError> {
        let db = self.db();
        let mut stmt = db
            .prepare("SELECT si FROM leases WHERE si IN (SELECT si FROM shares) GROUP BY si HAVING MAX(until) < ?1")
            .map_err(|e| self.db_err(e))?;
        let rows =
            stmt.query_map([now as i64], |r| r.get::<_, String>(0)).map_err(|e| self.db_err(e))?;
        let mut out = Vec::new();
        for si in rows {
            let si = si.map_err(|e| self.db_err(e))?;
            if let Some(si) = hex::decode(&si).ok().and_then(|b| StorageIndex::try_from(b).ok()) {
                out.push(si);
            }
        }
        Ok(out)
    }

    fn traffic(&self) -> super::Traffic {
        self.0.traffic.get()
    }

    fn used_by(&self, owner: &str) -> Result<u64, StoreError> {
        let bytes: i64 = self
            .db()
            .query_row(
                "SELECT COALESCE((SELECT SUM(s.len) FROM leases l JOIN shares s ON s.si = l.si WHERE l.owner = ?1), 0)
                      + COALESCE((SELECT SUM(LENGTH(bytes)) FROM slots WHERE owner = ?1), 0)",
                [owner],
                |r| r.get(0),
            )
            .map_err(|e| self.db_err(e))?;
        Ok(bytes.max(0) as u64)
    }

    fn usage(&self) -> Result<std::collections::BTreeMap<String, u64>, StoreError> {
        let db = self.db();
        let mut stmt = db
            .prepare(
                "SELECT owner, SUM(b) FROM (SELECT l.owner AS owner, s.len AS b FROM leases l JOIN shares s ON s.si = l.si
                                            UNION ALL SELECT owner, LENGTH(bytes) FROM slots) GROUP BY owner",
            )
            .map_err(|e| self.db_err(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(|e| self.db_err(e))?;
        let mut out = std::collections::BTreeMap::new();
        for row in rows {
            let (owner, bytes) = row.map_err(|e| self.db_err(e))?;
            out.insert(owner, bytes.max(0) as u64);
        }
        Ok(out)
    }

    fn used(&self) -> u64 {
        self.0.used.load(Ordering::SeqCst) + self.0.reserved.load(Ordering::SeqCst)
    }

    fn put_slot(&self, row: super::SlotRow) -> Result<super::SlotPut, StoreError> {
        let mut db = self.db();
        let tx = db.transaction().map_err(|e| self.db_err(e))?;
        let si = hex::encode(row.si);
        let held: Option<(i64, Vec<u8>)> = tx
            .query_row(
                "SELECT seqnum, bytes FROM slots WHERE si = ?1 AND writer = ?2",
                rusqlite::params![si, row.writer.as_slice()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.db_err(e))?;
        let writers: i64 = tx
            .query_row("SELECT COUNT(*) FROM slots WHERE si = ?1", [&si], |r| r.get(0))
            .map_err(|e| self.db_err(e))?;
        let put = super::slot_rule(
            held.as_ref().map(|(s, b)| (*s as u64, b.as_slice())),
            writers as usize,
            &row,
        );
        if put == super::SlotPut::Stored {
            tx.execute(
                "INSERT OR REPLACE INTO slots (si, writer, seqnum, bytes, owner, until) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                rusqlite::params![si, row.writer.as_slice(), row.seqnum as i64, row.bytes, row.owner, row.until as i64],
            )
            .map_err(|e| self.db_err(e))?;
        }
        tx.commit().map_err(|e| self.db_err(e))?;
        Ok(put)
    }

    fn slots(&self, si: &StorageIndex) -> Result<Vec<Vec<u8>>, StoreError> {
        let db = self.db();
        let mut stmt =
            db.prepare("SELECT bytes FROM slots WHERE si = ?1").map_err(|e| self.db_err(e))?;
        let rows = stmt
            .query_map([hex::encode(si)], |r| r.get::<_, Vec<u8>>(0))
            .map_err(|e| self.db_err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.db_err(e))
    }

    fn expire_slots(&self, now: u64) -> Result<usize, StoreError> {
        self.db()
            .execute("DELETE FROM slots WHERE until < ?1", [now as i64])
            .map_err(|e| self.db_err(e))
    }

    fn free(&self) -> u64 {
        let reserved = self.0.reserved.load(Ordering::SeqCst);
        self.0.capacity.saturating_sub(self.used()).min(self.disk_free(reserved))
    }
}

struct FsWriter {
    store: FsStore,
    out: Option<BufWriter<File>>,
    tmp: PathBuf,
    expect: Expect,
}

impl FsWriter {
    fn create(store: FsStore, si: &StorageIndex, share: u8, len: u64) -> Result<Self, StoreError> {
        let dir = store.0.dir.join(hex::encode(si));
        fs::create_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
        let tmp = dir.join(format!("{share}.tmp-{:016x}", rand::random::<u64>()));
        let file = File::create(&tmp).map_err(|e| io_err(&tmp, e))?;
        let expect = Expect { si: *si, share, len, written: 0 };
        Ok(FsWriter { store, out: Some(BufWriter::new(file)), tmp, expect })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        let out = self.out.as_mut().expect("open until finished");
        out.write_all(bytes).map_err(|e| disk_error(&self.tmp, e, self.expect.len))
    }
}

/// A full disk is reported as such, not as a generic I/O error.
fn disk_error(path: &Path, e: std::io::Error, needed: u64) -> StoreError {
    if e.kind() == std::io::ErrorKind::StorageFull {
        StoreError::Full { needed, free: 0 }
    } else {
        io_err(path, e)
    }
}

impl ShareWriter for FsWriter {
    fn write_block(&mut self, block: &[u8]) -> Result<(), StoreError> {
        self.expect.block(block.len())?;
        self.write(block)?;
        self.store.0.traffic.written(block.len());
        Ok(())
    }

    fn finish(mut self: Box<Self>, root: &[u8], hashes: &[Hash]) -> Result<(), StoreError> {
        self.expect.finish(root, hashes)?;
        for h in hashes {
            self.write(h)?;
        }
        self.write(root)?;
        self.write(&super::trailer(root.len()))?;
        let file = self
            .out
            .take()
            .expect("open until finished")
            .into_inner()
            .map_err(|e| io_err(&self.tmp, e.error()))?;
        file.sync_all().map_err(|e| disk_error(&self.tmp, e, self.expect.len))?;
        let dest = self.store.path(&self.expect.si, self.expect.share);
        fs::rename(&self.tmp, &dest).map_err(|e| io_err(&dest, e))?;
        if let Some(dir) = dest.parent().and_then(|d| File::open(d).ok()) {
            let _ = dir.sync_all();
        }
        let (si, share, len) = (hex::encode(self.expect.si), self.expect.share, self.expect.len);
        self.store
            .db()
            .prepare_cached("INSERT OR REPLACE INTO shares (si, share, len) VALUES (?1, ?2, ?3)")
            .and_then(|mut st| st.execute(rusqlite::params![si, share, len as i64]))
            .map_err(|e| self.store.db_err(e))?;
        self.store.0.used.fetch_add(len, Ordering::SeqCst);
        self.store.0.reserved.fetch_sub(len, Ordering::SeqCst);
        self.out = None;
        self.tmp = PathBuf::new();
        Ok(())
    }
}

impl Drop for FsWriter {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            self.out = None;
            let _ = fs::remove_file(&self.tmp);
            self.store.0.reserved.fetch_sub(self.expect.len, Ordering::SeqCst);
        }
    }
}

impl std::fmt::Debug for FsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FsStore").finish_non_exhaustive()
    }
}
