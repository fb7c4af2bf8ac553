//! A folder's index: what this member knows of every path, in SQLite
//! (`Index::open`) or in memory (`Index::in_memory`, the same code on an
//! in-memory database).
//!
//! Every change gets the next local sequence number, so a peer that saw
//! everything up to `s` asks for what changed after `s` ([`Index::changes_for`]).
//! The index also remembers, per peer, the highest sequence of theirs we
//! applied, which local file holds each block (for local reuse) and each
//! block-list piece (see [`crate::blocklist`]), and which peer an entry was
//! taken from unchanged (so it is not sent back to that peer).

use crate::blocklist;
use crate::chunk::{Block, Hash};
use crate::path::RelPath;
use crate::vv::VersionVector;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Mutex;

/// What a path is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link, stored as its target text (never followed).
    Symlink(String),
}

/// One path's entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileInfo {
    /// Where, relative to the folder root.
    pub path: RelPath,
    /// File, directory or link.
    pub kind: Kind,
    /// Bytes (files).
    pub size: u64,
    /// Modification time, Unix nanoseconds.
    pub mtime_ns: i128,
    /// Permission bits.
    pub mode: u32,
    /// Its version.
    pub version: VersionVector,
    /// Deleted (a tombstone, kept so the deletion propagates).
    pub deleted: bool,
    /// Member that made this version.
    pub modified_by: u64,
    /// Content blocks, in order (files).
    pub blocks: Vec<Block>,
    /// Local sequence number of this entry (set by [`Index::put`]).
    pub sequence: u64,
}

impl FileInfo {
    /// A file made by member `by` for tests (mode 0640, a fixed mtime).
    #[cfg(test)]
    pub(crate) fn test_file(path: &str, blocks: Vec<Block>, by: u64) -> FileInfo {
        FileInfo {
            path: RelPath::parse(path).expect("a valid test path"),
            kind: Kind::File,
            size: blocks.iter().map(|b| b.size as u64).sum(),
            mtime_ns: 1_795_000_000_000_000_000,
            mode: 0o640,
            version: VersionVector::new().bumped(by),
            deleted: false,
            modified_by: by,
            blocks,
            sequence: 0,
        }
    }

    /// Its block list as (hash, size) entries.
    pub fn entries(&self) -> Vec<blocklist::Entry> {
        self.blocks.iter().map(|b| (b.hash, b.size)).collect()
    }
}

/// Where a block was found: a local file, the offset and the size.
pub type Found = (RelPath, u64, u32);

/// Index errors.
#[derive(Debug, thiserror::Error)]
#[error("folder index {path}: {reason}")]
pub struct IndexError {
    path: String,
    reason: String,
}

/// One folder's index.
#[derive(Debug)]
pub struct Index {
    db: Mutex<rusqlite::Connection>,
    path: String,
}

const SCHEMA: &str = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-512;
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY, kind TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns TEXT NOT NULL,
    mode INTEGER NOT NULL, version TEXT NOT NULL, deleted INTEGER NOT NULL, modified_by TEXT NOT NULL,
    blocks BLOB NOT NULL, sequence INTEGER NOT NULL UNIQUE, origin TEXT);
CREATE TABLE IF NOT EXISTS blocks (hash BLOB NOT NULL, path TEXT NOT NULL, offset INTEGER NOT NULL, size INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS blocks_by_hash ON blocks (hash);
CREATE INDEX IF NOT EXISTS blocks_by_path ON blocks (path);
CREATE TABLE IF NOT EXISTS pieces (hash BLOB NOT NULL, path TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS pieces_by_hash ON pieces (hash);
CREATE INDEX IF NOT EXISTS pieces_by_path ON pieces (path);
CREATE TABLE IF NOT EXISTS peers (peer TEXT PRIMARY KEY, seen INTEGER NOT NULL);";

/// A block list as stored: the same bytes as a list piece on the wire
/// (see [`blocklist::encode`]); offsets follow from the sizes.
fn decode_blocks(raw: &[u8]) -> Vec<Block> {
    let mut offset = 0u64;
    blocklist::entries(raw)
        .map(|(hash, size)| {
            let b = Block { hash, offset, size };
            offset += size as u64;
            b
        })
        .collect()
}

fn encode_version(v: &VersionVector) -> String {
    v.pairs().map(|(m, c)| format!("{m:x}:{c}")).collect::<Vec<_>>().join(",")
}

fn decode_version(s: &str) -> VersionVector {
    VersionVector::from_pairs(s.split(',').filter_map(|p| {
        let (m, c) = p.split_once(':')?;
        Some((u64::from_str_radix(m, 16).ok()?, c.parse().ok()?))
    }))
}

impl Index {
    /// Opens (creating) the index at `path`.
    pub fn open(path: &Path) -> Result<Index, IndexError> {
        let p = path.display().to_string();
        let db = rusqlite::Connection::open(path)
            .map_err(|e| IndexError { path: p.clone(), reason: e.to_string() })?;
        Self::with(db, p)
    }

    /// An index in memory.
    pub fn in_memory() -> Index {
        Self::with(
            rusqlite::Connection::open_in_memory().expect("in-memory SQLite"),
            ":memory:".into(),
        )
        .expect("schema")
    }

    fn with(db: rusqlite::Connection, path: String) -> Result<Index, IndexError> {
        let err = |e: rusqlite::Error| IndexError { path: path.clone(), reason: e.to_string() };
        db.execute_batch(SCHEMA).map_err(err)?;
        // Indexes made before entries had an origin.
        let has_origin: bool = db
            .query_row(
                "SELECT COUNT(*) FROM pragma_table_info('files') WHERE name = 'origin'",
                [],
                |r| r.get(0),
            )
            .map_err(err)?;
        if !has_origin {
            db.execute_batch("ALTER TABLE files ADD COLUMN origin TEXT").map_err(err)?;
        }
        Ok(Index { db: Mutex::new(db), path })
    }

    fn err(&self, e: rusqlite::Error) -> IndexError {
        IndexError { path: self.path.clone(), reason: e.to_string() }
    }

    fn db(&self) -> std::sync::MutexGuard<'_, rusqlite::Connection> {
        self.db.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The highest local sequence number (0 when empty).
    pub fn max_sequence(&self) -> Result<u64, IndexError> {
        self.db()
            .query_row("SELECT COALESCE(MAX(sequence), 0) FROM files", [], |r| r.get::<_, i64>(0))
            .map(|v| v as u64)
            .map_err(|e| self.err(e))
    }

    /// Stores `info` under the next sequence number, which it returns.
    pub fn put(&self, info: &FileInfo) -> Result<u64, IndexError> {
        self.put_from(info, None)
    }

    /// Stores `info`, taken unchanged from peer `origin` if given (it is
    /// then not sent back to that peer, which has it already).
    pub fn put_from(&self, info: &FileInfo, origin: Option<&str>) -> Result<u64, IndexError> {
        let mut db = self.db();
        let tx = db.transaction().map_err(|e| self.err(e))?;
        let seq: i64 = tx
            .query_row("SELECT COALESCE(MAX(sequence), 0) + 1 FROM files", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        let kind = serde_json::to_string(&info.kind).expect("kind serialises");
        tx.execute(
            "INSERT OR REPLACE INTO files VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            rusqlite::params![
                info.path.as_str(),
                kind,
                info.size as i64,
                info.mtime_ns.to_string(),
                info.mode,
                encode_version(&info.version),
                info.deleted,
                format!("{:x}", info.modified_by),
                blocklist::encode(info.blocks.iter().map(|b| (b.hash, b.size))),
                seq,
                origin
            ],
        )
        .map_err(|e| self.err(e))?;
        tx.execute("DELETE FROM blocks WHERE path = ?1", [info.path.as_str()])
            .map_err(|e| self.err(e))?;
        tx.execute("DELETE FROM pieces WHERE path = ?1", [info.path.as_str()])
            .map_err(|e| self.err(e))?;
        if !info.deleted {
            let mut stmt = tx
                .prepare("INSERT INTO blocks VALUES (?1, ?2, ?3, ?4)")
                .map_err(|e| self.err(e))?;
            for b in &info.blocks {
                stmt.execute(rusqlite::params![
                    &b.hash[..],
                    info.path.as_str(),
                    b.offset as i64,
                    b.size
                ])
                .map_err(|e| self.err(e))?;
            }
            if info.blocks.len() > blocklist::INLINE {
                let mut stmt =
                    tx.prepare("INSERT INTO pieces VALUES (?1, ?2)").map_err(|e| self.err(e))?;
                for (hash, _) in blocklist::pieces(&info.entries()) {
                    stmt.execute(rusqlite::params![&hash[..], info.path.as_str()])
                        .map_err(|e| self.err(e))?;
                }
            }
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok(seq as u64)
    }

    fn rows(&self, sql: &str, params: impl rusqlite::Params) -> Result<Vec<FileInfo>, IndexError> {
        Ok(self.rows_with_origin(sql, params)?.into_iter().map(|(f, _)| f).collect())
    }

    fn rows_with_origin(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<(FileInfo, Option<String>)>, IndexError> {
        let db = self.db();
        let mut stmt = db.prepare(sql).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params, |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, u32>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, bool>(6)?,
                    r.get::<_, String>(7)?,
                    r.get::<_, Vec<u8>>(8)?,
                    r.get::<_, i64>(9)?,
                    r.get::<_, Option<String>>(10)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (path, kind, size, mtime, mode, version, deleted, by, blocks, seq, origin) =
                row.map_err(|e| self.err(e))?;
            // Rows are only written by `put`, from checked values.
            let (Ok(path), Ok(kind)) = (RelPath::parse(&path), serde_json::from_str(&kind)) else {
                continue;
            };
            let info = FileInfo {
                path,
                kind,
                size: size as u64,
                mtime_ns: mtime.parse().unwrap_or(0),
                mode,
                version: decode_version(&version),
                deleted,
                modified_by: u64::from_str_radix(&by, 16).unwrap_or(0),
                blocks: decode_blocks(&blocks),
                sequence: seq as u64,
            };
            out.push((info, origin));
        }
        Ok(out)
    }

    /// The entry of `path`, if any (tombstones included).
    pub fn get(&self, path: &RelPath) -> Result<Option<FileInfo>, IndexError> {
        Ok(self.rows("SELECT * FROM files WHERE path = ?1", [path.as_str()])?.pop())
    }

    /// What to send `peer` after `since`: the next `limit` changes, less
    /// those taken unchanged from `peer`, and the sequence they reach.
    pub fn changes_for(
        &self,
        since: u64,
        limit: u32,
        peer: &str,
    ) -> Result<(Vec<FileInfo>, u64), IndexError> {
        let rows = self.rows_with_origin(
            "SELECT * FROM files WHERE sequence > ?1 ORDER BY sequence LIMIT ?2",
            rusqlite::params![since as i64, limit],
        )?;
        let reached = rows.last().map_or(since, |(f, _)| f.sequence);
        Ok((
            rows.into_iter().filter(|(_, o)| o.as_deref() != Some(peer)).map(|(f, _)| f).collect(),
            reached,
        ))
    }

    /// The block-list piece with this hash, from a local file's list.
    pub fn find_piece(&self, hash: &Hash) -> Result<Option<Vec<blocklist::Entry>>, IndexError> {
        Ok(self.pieces_beside(hash)?.into_iter().find(|(h, _)| h == hash).map(|(_, e)| e))
    }

    /// Every piece of the local file whose list has the piece `hash` (none
    /// if no file has it): a file's pieces are usually wanted together.
    pub fn pieces_beside(
        &self,
        hash: &Hash,
    ) -> Result<Vec<(Hash, Vec<blocklist::Entry>)>, IndexError> {
        let found = self.db().query_row(
            "SELECT path FROM pieces WHERE hash = ?1 LIMIT 1",
            [&hash[..]],
            |r| r.get::<_, String>(0),
        );
        let path = match found {
            Ok(p) => p,
            Err(rusqlite::Error::QueryReturnedNoRows) => return Ok(Vec::new()),
            Err(e) => return Err(self.err(e)),
        };
        let Some(info) = RelPath::parse(&path).ok().map(|p| self.get(&p)).transpose()?.flatten()
        else {
            return Ok(Vec::new());
        };
        let entries = info.entries();
        Ok(blocklist::pieces(&entries).into_iter().map(|(h, e)| (h, e.to_vec())).collect())
    }

    /// Every entry, by path.
    pub fn all(&self) -> Result<Vec<FileInfo>, IndexError> {
        self.rows("SELECT * FROM files ORDER BY path", [])
    }

    /// For each hash, a local file holding that block: (path, offset, size).
    pub fn find_blocks<'a>(
        &self,
        hashes: impl Iterator<Item = &'a Hash>,
    ) -> Result<Vec<Option<Found>>, IndexError> {
        let db = self.db();
        let mut stmt = db
            .prepare_cached("SELECT path, offset, size FROM blocks WHERE hash = ?1 LIMIT 1")
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for hash in hashes {
            let found = stmt.query_row([&hash[..]], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, u32>(2)?))
            });
            out.push(match found {
                Ok((p, o, s)) => RelPath::parse(&p).ok().map(|p| (p, o as u64, s)),
                Err(rusqlite::Error::QueryReturnedNoRows) => None,
                Err(e) => return Err(self.err(e)),
            });
        }
        Ok(out)
    }

    /// A local file holding a block with this hash: (path, offset, size).
    pub fn find_block(&self, hash: &Hash) -> Result<Option<Found>, IndexError> {
        Ok(self.find_blocks(std::iter::once(hash))?.pop().flatten())
    }

    /// The highest sequence of `peer`'s index applied here.
    pub fn peer_seen(&self, peer: &str) -> Result<u64, IndexError> {
        match self
            .db()
            .query_row("SELECT seen FROM peers WHERE peer = ?1", [peer], |r| r.get::<_, i64>(0))
        {
            Ok(v) => Ok(v as u64),
            Err(rusqlite::Error::QueryReturnedNoRows) => Ok(0),
            Err(e) => Err(self.err(e)),
        }
    }

    /// How far each peer's index was applied here.
    pub fn peers_seen(&self) -> Result<std::collections::BTreeMap<String, u64>, IndexError> {
        let db = self.db();
        let mut stmt = db.prepare("SELECT peer, seen FROM peers").map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64)))
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Forgets how far every peer's index was applied (it is then asked for
    /// from the start).
    pub fn forget_peers(&self) -> Result<(), IndexError> {
        self.db().execute("DELETE FROM peers", []).map(|_| ()).map_err(|e| self.err(e))
    }

    /// Records that `peer`'s index up to `seen` was applied.
    pub fn set_peer_seen(&self, peer: &str, seen: u64) -> Result<(), IndexError> {
        self.db()
            .execute(
                "INSERT OR REPLACE INTO peers VALUES (?1, ?2)",
                rusqlite::params![peer, seen as i64],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(path: &str, blocks: Vec<Block>) -> FileInfo {
        FileInfo::test_file(path, blocks, 7)
    }

    fn check(ix: &Index) {
        let b = |n: u8, offset, size| Block { hash: [n; 32], offset, size };
        assert_eq!(ix.max_sequence().unwrap(), 0);
        let a = info("a.txt", vec![b(1, 0, 10), b(2, 10, 5)]);
        assert_eq!(ix.put(&a).unwrap(), 1);
        let link =
            FileInfo { kind: Kind::Symlink("a.txt".into()), blocks: vec![], ..info("l", vec![]) };
        assert_eq!(ix.put(&link).unwrap(), 2);
        let got = ix.get(&a.path).unwrap().unwrap();
        assert_eq!(got, FileInfo { sequence: 1, ..a.clone() });
        assert_eq!(ix.get(&link.path).unwrap().unwrap().kind, Kind::Symlink("a.txt".into()));
        assert_eq!(ix.find_block(&[2; 32]).unwrap(), Some((a.path.clone(), 10, 5)));
        // A change moves the entry to the next sequence.
        let gone = FileInfo { deleted: true, version: a.version.bumped(7), ..a.clone() };
        assert_eq!(ix.put(&gone).unwrap(), 3);
        let since: Vec<String> = ix
            .changes_for(1, 100, "nobody")
            .unwrap()
            .0
            .iter()
            .map(|f| f.path.to_string())
            .collect();
        assert_eq!(since, vec!["l", "a.txt"]);
        assert_eq!(
            ix.find_block(&[2; 32]).unwrap(),
            None,
            "a deleted file's blocks are not reusable"
        );
        assert_eq!(ix.all().unwrap().len(), 2);
        assert_eq!(ix.peer_seen("p").unwrap(), 0);
        ix.set_peer_seen("p", 42).unwrap();
        assert_eq!(ix.peer_seen("p").unwrap(), 42);
        assert_eq!(ix.peers_seen().unwrap(), [("p".to_string(), 42)].into());
        ix.forget_peers().unwrap();
        assert_eq!(ix.peer_seen("p").unwrap(), 0);
        ix.set_peer_seen("p", 42).unwrap();

        // A long list's pieces are found through any file holding them.
        let long: Vec<Block> = (0..300u64)
            .map(|i| Block {
                hash: *blake3::hash(&i.to_le_bytes()).as_bytes(),
                offset: i * 10,
                size: 10,
            })
            .collect();
        let big = info("big", long);
        // Taken unchanged from peer "p": not sent back to "p".
        assert_eq!(ix.put_from(&big, Some("p")).unwrap(), 4);
        for (hash, entries) in crate::blocklist::pieces(&big.entries()) {
            assert_eq!(ix.find_piece(&hash).unwrap().as_deref(), Some(entries));
        }
        assert_eq!(ix.find_piece(&[0; 32]).unwrap(), None);
        let (to_p, reached) = ix.changes_for(2, 10, "p").unwrap();
        assert_eq!((to_p.len(), reached), (1, 4), "a.txt only, and the sequence still moves on");
        assert_eq!(ix.changes_for(2, 10, "q").unwrap().0.len(), 2);
        // Once changed here, it goes to everyone again.
        ix.put(&FileInfo { version: big.version.bumped(8), ..big.clone() }).unwrap();
        assert_eq!(ix.changes_for(4, 10, "p").unwrap().0.len(), 1);
    }

    #[test]
    fn in_memory() {
        check(&Index::in_memory());
    }

    #[test]
    fn on_disk_and_reopened() {
        let dir = tempfile::tempdir().unwrap();
        check(&Index::open(&dir.path().join("ix.sqlite")).unwrap());
        let ix = Index::open(&dir.path().join("ix.sqlite")).unwrap();
        assert_eq!(ix.max_sequence().unwrap(), 5);
        assert_eq!(ix.peer_seen("p").unwrap(), 42);
        assert!(Index::open(Path::new("/nonexistent/ix.sqlite")).is_err());
    }
}
