//! Videos held on this node: the ones it published (pinned) and the
//! pieces it fetched as a viewer, within a size limit (least recently used
//! videos go first). Blocking file I/O: call from the blocking pool.
//!
//! Per video, in the cache directory: `ID.manifest` (the encoded
//! manifest), `ID.data` (pieces at their offsets, a sparse file), `ID.have`
//! (one byte per piece held) and, for published videos, `ID.pin`.

use super::manifest::{Manifest, ManifestError, VodId};
use std::collections::HashMap;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Cache failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// A file of the cache.
    #[error("{path}: {source}")]
    Io {
        /// Which.
        path: PathBuf,
        /// What.
        source: std::io::Error,
    },
    /// A manifest or piece is wrong.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CacheError + '_ {
    move |source| CacheError::Io { path: path.to_path_buf(), source }
}

struct Entry {
    manifest: Arc<Manifest>,
    have: Vec<bool>,
    pinned: bool,
    used: Instant,
}

/// The cache.
pub struct Cache {
    dir: PathBuf,
    capacity: u64,
    map: Mutex<HashMap<VodId, Entry>>,
}

impl Cache {
    /// Opens the cache in `dir`, holding at most `capacity` bytes of
    /// fetched pieces (published videos do not count).
    pub fn open(dir: &Path, capacity: u64) -> Result<Cache, CacheError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let mut map = HashMap::new();
        for e in std::fs::read_dir(dir).map_err(io(dir))?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(text) = name.strip_suffix(".manifest") else { continue };
            let Ok(id) = VodId::parse(text) else { continue };
            let path = e.path();
            let Ok(m) = std::fs::read(&path)
                .map_err(io(&path))
                .and_then(|b| Ok(Manifest::decode(&id, &b)?))
            else {
                tracing::warn!(file = %path.display(), "dropping a corrupt cached manifest");
                let _ = std::fs::remove_file(&path);
                continue;
            };
            let mut have: Vec<bool> = std::fs::read(dir.join(format!("{id}.have")))
                .unwrap_or_default()
                .iter()
                .map(|b| *b == 1)
                .collect();
            have.resize(m.pieces() as usize, false);
            let pinned = dir.join(format!("{id}.pin")).exists();
            map.insert(id, Entry { manifest: Arc::new(m), have, pinned, used: Instant::now() });
        }
        Ok(Cache { dir: dir.to_path_buf(), capacity, map: Mutex::new(map) })
    }

    fn file(&self, id: &VodId, ext: &str) -> PathBuf {
        self.dir.join(format!("{id}.{ext}"))
    }

    /// Copies the file at `path` in as a published (pinned) video.
    pub fn publish(&self, path: &Path) -> Result<Arc<Manifest>, CacheError> {
        let f = std::fs::File::open(path).map_err(io(path))?;
        let m = Manifest::build(std::io::BufReader::with_capacity(1 << 20, f)).map_err(io(path))?;
        let id = m.id();
        let data = self.file(&id, "data");
        std::fs::copy(path, &data).map_err(io(path))?;
        // The file may have changed while it was read twice: check.
        let copy = std::fs::File::open(&data).map_err(io(&data))?;
        if Manifest::build(std::io::BufReader::with_capacity(1 << 20, copy)).map_err(io(&data))?
            != m
        {
            let _ = std::fs::remove_file(&data);
            return Err(CacheError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::other("the file changed while it was being published"),
            });
        }
        self.put_manifest(&m, true)?;
        let n = m.pieces() as usize;
        let m = Arc::new(m);
        let mut map = self.map.lock().expect("cache lock");
        map.insert(
            id,
            Entry { manifest: m.clone(), have: vec![true; n], pinned: true, used: Instant::now() },
        );
        drop(map);
        self.save_have(&id)?;
        Ok(m)
    }

    fn put_manifest(&self, m: &Manifest, pinned: bool) -> Result<(), CacheError> {
        let id = m.id();
        let path = self.file(&id, "manifest");
        cloudy_overlay::fsutil::write_whole(&path, &m.encode(), None).map_err(io(&path))?;
        if pinned {
            let pin = self.file(&id, "pin");
            std::fs::write(&pin, b"").map_err(io(&pin))?;
        }
        Ok(())
    }

    /// Adds a fetched (verified) manifest.
    pub fn add(&self, m: Manifest) -> Result<Arc<Manifest>, CacheError> {
        let id = m.id();
        if let Some(existing) = self.manifest(&id) {
            return Ok(existing);
        }
        self.put_manifest(&m, false)?;
        let n = m.pieces() as usize;
        let m = Arc::new(m);
        self.map.lock().expect("cache lock").insert(
            id,
            Entry {
                manifest: m.clone(),
                have: vec![false; n],
                pinned: false,
                used: Instant::now(),
            },
        );
        Ok(m)
    }

    /// The manifest of `id`, if held.
    pub fn manifest(&self, id: &VodId) -> Option<Arc<Manifest>> {
        let mut map = self.map.lock().expect("cache lock");
        map.get_mut(id).map(|e| {
            e.used = Instant::now();
            e.manifest.clone()
        })
    }

    /// Which pieces of `id` are held.
    pub fn have(&self, id: &VodId) -> Vec<bool> {
        self.map.lock().expect("cache lock").get(id).map(|e| e.have.clone()).unwrap_or_default()
    }

    /// Whether `id` was published here (a pinned copy).
    pub fn pinned(&self, id: &VodId) -> bool {
        self.map.lock().expect("cache lock").get(id).is_some_and(|e| e.pinned)
    }

    /// Whether piece `i` of `id` is held.
    pub fn has(&self, id: &VodId, i: u64) -> bool {
        self.map
            .lock()
            .expect("cache lock")
            .get(id)
            .is_some_and(|e| e.have.get(i as usize) == Some(&true))
    }

    /// Reads piece `i` of `id` and checks it (a piece damaged on disk is
    /// dropped, not served).
    pub fn read(&self, id: &VodId, i: u64) -> Result<Option<Vec<u8>>, CacheError> {
        let Some(m) = self.manifest(id) else { return Ok(None) };
        if !self.has(id, i) {
            return Ok(None);
        }
        let r = m.range(i);
        let path = self.file(id, "data");
        let f = std::fs::File::open(&path).map_err(io(&path))?;
        let mut buf = vec![0u8; (r.end - r.start) as usize];
        f.read_exact_at(&mut buf, r.start).map_err(io(&path))?;
        if let Err(e) = m.verify(i, &buf) {
            tracing::warn!(video = %id, piece = i, "a cached piece is damaged; dropping it");
            if let Some(e) = self.map.lock().expect("cache lock").get_mut(id) {
                e.have[i as usize] = false;
            }
            let _ = self.save_have(id);
            return Err(e.into());
        }
        Ok(Some(buf))
    }

    /// Stores verified piece `i` of `id`, then evicts other videos if the
    /// cache is over its size.
    pub fn write(&self, id: &VodId, i: u64, data: &[u8]) -> Result<(), CacheError> {
        let Some(m) = self.manifest(id) else { return Ok(()) };
        m.verify(i, data)?;
        let path = self.file(id, "data");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(&path)
            .map_err(io(&path))?;
        f.write_all_at(data, m.range(i).start).map_err(io(&path))?;
        if let Some(e) = self.map.lock().expect("cache lock").get_mut(id) {
            e.have[i as usize] = true;
        }
        self.save_have(id)?;
        self.evict(id);
        Ok(())
    }

    fn save_have(&self, id: &VodId) -> Result<(), CacheError> {
        let bytes: Vec<u8> = self.have(id).iter().map(|h| u8::from(*h)).collect();
        let path = self.file(id, "have");
        std::fs::write(&path, bytes).map_err(io(&path))
    }

    /// Bytes of fetched pieces held.
    pub fn used(&self) -> u64 {
        let map = self.map.lock().expect("cache lock");
        map.values()
            .filter(|e| !e.pinned)
            .map(|e| e.have.iter().filter(|h| **h).count() as u64 * super::manifest::PIECE)
            .sum()
    }

    /// Drops least recently used unpinned videos (never `keep`) until the
    /// cache fits.
    fn evict(&self, keep: &VodId) {
        while self.used() > self.capacity {
            let victim = {
                let map = self.map.lock().expect("cache lock");
                map.iter()
                    .filter(|(id, e)| !e.pinned && *id != keep)
                    .min_by_key(|(_, e)| e.used)
                    .map(|(id, _)| *id)
            };
            let Some(id) = victim else { return };
            tracing::info!(video = %id, "cache full: dropping a video watched earlier");
            self.map.lock().expect("cache lock").remove(&id);
            for ext in ["data", "have", "manifest"] {
                let _ = std::fs::remove_file(self.file(&id, ext));
            }
        }
    }

    /// Every video held: its manifest, pieces held, pinned.
    pub fn list(&self) -> Vec<(VodId, u64, u64, bool)> {
        let map = self.map.lock().expect("cache lock");
        map.iter()
            .map(|(id, e)| {
                (*id, e.manifest.size, e.have.iter().filter(|h| **h).count() as u64, e.pinned)
            })
            .collect()
    }
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vod::manifest::PIECE;

    #[test]
    fn publish_fetch_evict_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("film.ts");
        let film: Vec<u8> = (0..(2 * PIECE + 5) as u32).map(|i| (i % 249) as u8).collect();
        std::fs::write(&src, &film).unwrap();
        let cache = Cache::open(&dir.path().join("c"), 2 * PIECE).unwrap();
        let m = cache.publish(&src).unwrap();
        let id = m.id();
        assert_eq!(cache.read(&id, 2).unwrap().unwrap(), film[2 * PIECE as usize..]);
        // A viewer's cache: fetched pieces, verified, and evicted LRU.
        let other = Cache::open(&dir.path().join("v"), PIECE).unwrap();
        other.add((*m).clone()).unwrap();
        assert!(other.read(&id, 0).unwrap().is_none());
        assert!(
            other.write(&id, 0, &film[1..PIECE as usize + 1]).is_err(),
            "a wrong piece is refused"
        );
        other.write(&id, 0, &film[..PIECE as usize]).unwrap();
        assert!(other.has(&id, 0));
        // Reopened, it still holds it.
        drop(other);
        let other = Cache::open(&dir.path().join("v"), PIECE).unwrap();
        assert!(other.has(&id, 0) && !other.has(&id, 1));
        // Damage on disk is caught at read.
        let data = dir.path().join("v").join(format!("{id}.data"));
        let mut bytes = std::fs::read(&data).unwrap();
        bytes[10] ^= 1;
        std::fs::write(&data, bytes).unwrap();
        assert!(other.read(&id, 0).is_err());
        assert!(!other.has(&id, 0));
        // A second video over the limit pushes the first out.
        let src2 = dir.path().join("b.ts");
        std::fs::write(&src2, vec![9u8; PIECE as usize]).unwrap();
        let m2 = cache.publish(&src2).unwrap();
        other.write(&id, 1, &film[PIECE as usize..2 * PIECE as usize]).unwrap();
        other.add((*m2).clone()).unwrap();
        other.write(&m2.id(), 0, &vec![9u8; PIECE as usize]).unwrap();
        assert!(other.manifest(&id).is_none(), "the older video was evicted");
        assert_eq!(other.used(), PIECE);
        assert_eq!(cache.used(), 0, "published videos do not count");
    }
}
