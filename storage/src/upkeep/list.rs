//! The list of files a node maintains: verify capabilities (they can check
//! and repair but not read), with the outcome of the last check. Kept in
//! SQLite (`maintained.sqlite` in the data directory); [`Maintained::in_memory`]
//! is its twin for tests.

use crate::capability::{Cap, VerifyCap};
use crate::store::now_secs;
use cloudy_overlay::PeerId;
use std::path::Path;
use std::sync::Mutex;

/// Errors of the list.
#[derive(Debug, thiserror::Error)]
#[error("maintained-files list {path}: {reason}")]
pub struct ListError {
    path: String,
    reason: String,
}

/// One maintained file.
/// The outcome of a maintained file's last check, kept in the list as the
/// text [`fmt::Display`] writes (`healthy`, `error: …`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    /// Not checked yet.
    Unchecked,
    /// All n shares present.
    Healthy,
    /// Shares were missing and were regenerated.
    Repaired,
    /// Fewer than n shares but recoverable (within the tolerance, or a
    /// repair fell short).
    Degraded,
    /// Fewer than k shares: the file cannot be rebuilt.
    Unrecoverable,
    /// The check or repair could not run.
    Error(String),
}

impl std::fmt::Display for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Health::Unchecked => f.write_str("unchecked"),
            Health::Healthy => f.write_str("healthy"),
            Health::Repaired => f.write_str("repaired"),
            Health::Degraded => f.write_str("degraded"),
            Health::Unrecoverable => f.write_str("unrecoverable"),
            Health::Error(e) => write!(f, "error: {e}"),
        }
    }
}

impl Health {
    /// Reads what [`std::fmt::Display`] wrote (unknown text is an error).
    fn parse(s: &str) -> Health {
        match s {
            "unchecked" => Health::Unchecked,
            "healthy" => Health::Healthy,
            "repaired" => Health::Repaired,
            "degraded" => Health::Degraded,
            "unrecoverable" => Health::Unrecoverable,
            s => Health::Error(s.strip_prefix("error: ").unwrap_or(s).to_string()),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// Its verify capability.
    pub cap: VerifyCap,
    /// When it was added (Unix seconds).
    pub added: u64,
    /// When it was last checked (Unix seconds), if ever.
    pub checked: Option<u64>,
    /// Good shares at the last check (after any repair).
    pub good: Option<u8>,
    /// Outcome of the last check.
    pub status: Health,
    /// Servers that held shares at the last check.
    pub holders: Vec<PeerId>,
}

/// The maintained-files list.
#[derive(Debug)]
pub struct Maintained {
    db: Mutex<rusqlite::Connection>,
    path: String,
}

const SCHEMA: &str = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;
CREATE TABLE IF NOT EXISTS maintained (
    cap TEXT PRIMARY KEY,
    added INTEGER NOT NULL,
    checked INTEGER,
    good INTEGER,
    status TEXT NOT NULL DEFAULT 'unchecked',
    holders TEXT NOT NULL DEFAULT ''
)";

impl Maintained {
    /// Opens (creating if needed) the list at `path`.
    pub fn open(path: &Path) -> Result<Self, ListError> {
        let p = path.display().to_string();
        let db = rusqlite::Connection::open(path)
            .map_err(|e| ListError { path: p.clone(), reason: e.to_string() })?;
        Self::with(db, p)
    }

    /// An in-memory list.
    pub fn in_memory() -> Self {
        let db = rusqlite::Connection::open_in_memory().expect("in-memory SQLite");
        Self::with(db, ":memory:".into()).expect("schema")
    }

    fn with(db: rusqlite::Connection, path: String) -> Result<Self, ListError> {
        db.execute_batch(SCHEMA)
            .map_err(|e| ListError { path: path.clone(), reason: e.to_string() })?;
        Ok(Maintained { db: Mutex::new(db), path })
    }

    fn err(&self, e: rusqlite::Error) -> ListError {
        ListError { path: self.path.clone(), reason: e.to_string() }
    }

    /// Adds a file; `false` if it was already listed.
    pub fn add(&self, cap: &VerifyCap) -> Result<bool, ListError> {
        let db = self.db.lock().expect("list lock");
        let n = db
            .execute(
                "INSERT OR IGNORE INTO maintained (cap, added) VALUES (?1, ?2)",
                rusqlite::params![Cap::Verify(cap.clone()).to_string(), now_secs() as i64],
            )
            .map_err(|e| self.err(e))?;
        Ok(n == 1)
    }

    /// Removes a file; `false` if it was not listed.
    pub fn remove(&self, cap: &VerifyCap) -> Result<bool, ListError> {
        let db = self.db.lock().expect("list lock");
        let n = db
            .execute(
                "DELETE FROM maintained WHERE cap = ?1",
                [Cap::Verify(cap.clone()).to_string()],
            )
            .map_err(|e| self.err(e))?;
        Ok(n == 1)
    }

    /// Every maintained file, oldest first.
    pub fn all(&self) -> Result<Vec<Entry>, ListError> {
        let db = self.db.lock().expect("list lock");
        let mut stmt = db
            .prepare("SELECT cap, added, checked, good, status, holders FROM maintained ORDER BY added, cap")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                    r.get::<_, Option<i64>>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (cap, added, checked, good, status, holders) = row.map_err(|e| self.err(e))?;
            // A row that does not parse was not written by us; skip it.
            let Ok(Cap::Verify(cap)) = cap.parse::<Cap>() else { continue };
            out.push(Entry {
                cap,
                added: added as u64,
                checked: checked.map(|c| c as u64),
                good: good.map(|g| g as u8),
                status: Health::parse(&status),
                holders: holders.split_whitespace().filter_map(|p| p.parse().ok()).collect(),
            });
        }
        Ok(out)
    }

    /// Records the outcome of a check.
    pub fn record(
        &self,
        cap: &VerifyCap,
        good: Option<u8>,
        status: &Health,
        holders: &[PeerId],
    ) -> Result<(), ListError> {
        let holders: Vec<String> = holders.iter().map(|p| p.to_string()).collect();
        let db = self.db.lock().expect("list lock");
        db.execute(
            "UPDATE maintained SET checked = ?2, good = ?3, status = ?4, holders = ?5 WHERE cap = ?1",
            rusqlite::params![
                Cap::Verify(cap.clone()).to_string(),
                now_secs() as i64,
                good.map(i64::from),
                status.to_string(),
                holders.join(" ")
            ],
        )
        .map_err(|e| self.err(e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(i: u8) -> VerifyCap {
        VerifyCap { storage_index: [i; 16], root: [i; 32], k: 3, n: 5, size: 1000 + i as u64 }
    }

    #[test]
    fn add_record_remove_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.sqlite");
        let peer = PeerId::random();
        {
            let list = Maintained::open(&path).unwrap();
            assert!(list.add(&cap(1)).unwrap());
            assert!(!list.add(&cap(1)).unwrap(), "adding twice is a no-op");
            assert!(list.add(&cap(2)).unwrap());
            list.record(&cap(1), Some(4), &Health::Degraded, &[peer]).unwrap();
        }
        let list = Maintained::open(&path).unwrap();
        let all = list.all().unwrap();
        assert_eq!(all.len(), 2);
        let one = all.iter().find(|e| e.cap == cap(1)).unwrap();
        assert_eq!(
            (one.good, &one.status, one.holders.clone()),
            (Some(4), &Health::Degraded, vec![peer])
        );
        assert!(one.checked.is_some());
        let two = all.iter().find(|e| e.cap == cap(2)).unwrap();
        assert_eq!((two.checked, &two.status), (None, &Health::Unchecked));
        assert!(list.remove(&cap(2)).unwrap());
        assert!(!list.remove(&cap(2)).unwrap());
        assert_eq!(list.all().unwrap().len(), 1);
    }

    #[test]
    fn an_unwritable_path_is_named() {
        let err = Maintained::open(Path::new("/nonexistent-dir/m.sqlite")).err().unwrap();
        assert!(err.to_string().contains("/nonexistent-dir/m.sqlite"), "{err}");
    }
}
