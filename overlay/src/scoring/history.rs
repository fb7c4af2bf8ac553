//! Availability history: how much of the time each member was seen up, and
//! how often it failed recently. Kept across restarts by a [`HistoryStore`]
//! ([`SqliteHistory`] on disk, [`MemHistory`] as its in-memory twin).

use libp2p::PeerId;
use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

/// Half-life of the failure counter: a failure an hour ago counts half.
pub const FAILURE_HALF_LIFE_MS: f64 = 3_600_000.0;
/// Weight of the prior (availability 0.5) in milliseconds of observation:
/// a member seen for ten minutes is judged half on evidence, half on prior.
pub const PRIOR_MS: f64 = 600_000.0;

/// What we know of one member's past, as persisted.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Availability {
    /// Milliseconds during which the member was known and seen up.
    pub up_ms: u64,
    /// Milliseconds during which we were running and knew the member.
    pub observed_ms: u64,
    /// Failure count, decayed with [`FAILURE_HALF_LIFE_MS`] up to `failures_at_ms`.
    pub failures: f64,
    /// Unix time (ms) at which `failures` was last brought up to date.
    pub failures_at_ms: u64,
}

impl Availability {
    /// Accounts `dt_ms` of observation in which the member was up or not.
    pub fn observe(&mut self, dt_ms: u64, up: bool) {
        self.observed_ms = self.observed_ms.saturating_add(dt_ms);
        if up {
            self.up_ms = self.up_ms.saturating_add(dt_ms);
        }
    }

    /// Counts one failure (a member marked failed, or a failed request).
    pub fn record_failure(&mut self, now_ms: u64) {
        self.failures = self.failures_at(now_ms) + 1.0;
        self.failures_at_ms = now_ms;
    }

    /// The decayed failure count as of `now_ms`.
    pub fn failures_at(&self, now_ms: u64) -> f64 {
        let age = now_ms.saturating_sub(self.failures_at_ms) as f64;
        self.failures * 0.5f64.powf(age / FAILURE_HALF_LIFE_MS)
    }

    /// Fraction of observed time the member was up, pulled towards 0.5 while
    /// there is little evidence: `(up + 0.5·P) / (observed + P)`.
    pub fn ratio(&self) -> f64 {
        (self.up_ms as f64 + 0.5 * PRIOR_MS) / (self.observed_ms as f64 + PRIOR_MS)
    }
}

/// Error of a history backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HistoryError {
    /// The SQLite database could not be opened, read or written.
    #[error("availability history database {path}: {source}")]
    Sqlite {
        /// Database file.
        path: String,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
}

/// Where availability history is kept between runs.
pub trait HistoryStore: Send + 'static {
    /// Everything saved so far.
    fn load(&mut self) -> Result<HashMap<PeerId, Availability>, HistoryError>;
    /// Upserts the given rows.
    fn save(&mut self, rows: &[(PeerId, Availability)]) -> Result<(), HistoryError>;
}

/// In-memory history; clones share one map, so a test can "restart" a node
/// by giving the new one a clone.
#[derive(Debug, Clone, Default)]
pub struct MemHistory(Arc<Mutex<HashMap<PeerId, Availability>>>);

impl HistoryStore for MemHistory {
    fn load(&mut self) -> Result<HashMap<PeerId, Availability>, HistoryError> {
        Ok(self.0.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }
    fn save(&mut self, rows: &[(PeerId, Availability)]) -> Result<(), HistoryError> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for (peer, a) in rows {
            map.insert(*peer, a.clone());
        }
        Ok(())
    }
}

/// History in an SQLite file (WAL mode; a save is one transaction).
#[derive(Debug)]
pub struct SqliteHistory {
    conn: rusqlite::Connection,
    path: String,
}

impl SqliteHistory {
    /// Opens or creates the database at `path`.
    pub fn open(path: &Path) -> Result<Self, HistoryError> {
        let display = path.display().to_string();
        let err = |source| HistoryError::Sqlite { path: display.clone(), source };
        let conn = rusqlite::Connection::open(path).map_err(err)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;
             CREATE TABLE IF NOT EXISTS availability (
                 peer TEXT PRIMARY KEY, up_ms INTEGER NOT NULL, observed_ms INTEGER NOT NULL,
                 failures REAL NOT NULL, failures_at_ms INTEGER NOT NULL)",
        )
        .map_err(err)?;
        Ok(SqliteHistory { conn, path: display })
    }

    fn err(&self, source: rusqlite::Error) -> HistoryError {
        HistoryError::Sqlite { path: self.path.clone(), source }
    }
}

impl HistoryStore for SqliteHistory {
    fn load(&mut self) -> Result<HashMap<PeerId, Availability>, HistoryError> {
        let mut stmt = self
            .conn
            .prepare("SELECT peer, up_ms, observed_ms, failures, failures_at_ms FROM availability")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                let peer: String = r.get(0)?;
                let a = Availability {
                    up_ms: r.get::<_, i64>(1)? as u64,
                    observed_ms: r.get::<_, i64>(2)? as u64,
                    failures: r.get(3)?,
                    failures_at_ms: r.get::<_, i64>(4)? as u64,
                };
                Ok((peer, a))
            })
            .map_err(|e| self.err(e))?;
        let mut out = HashMap::new();
        for row in rows {
            let (peer, a) = row.map_err(|e| self.err(e))?;
            // A row with an unparsable peer id cannot belong to anyone: skip it.
            if let Ok(peer) = PeerId::from_str(&peer) {
                out.insert(peer, a);
            }
        }
        Ok(out)
    }

    fn save(&mut self, rows: &[(PeerId, Availability)]) -> Result<(), HistoryError> {
        let path = self.path.clone();
        let err = |source| HistoryError::Sqlite { path: path.clone(), source };
        let tx = self.conn.transaction().map_err(err)?;
        {
            let mut stmt = tx
                .prepare(
                    "INSERT INTO availability (peer, up_ms, observed_ms, failures, failures_at_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT(peer) DO UPDATE SET up_ms=?2, observed_ms=?3, failures=?4, failures_at_ms=?5",
                )
                .map_err(err)?;
            for (peer, a) in rows {
                stmt.execute(rusqlite::params![
                    peer.to_string(),
                    a.up_ms as i64,
                    a.observed_ms as i64,
                    a.failures,
                    a.failures_at_ms as i64
                ])
                .map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(mut store: impl HistoryStore, mut reopen: impl FnMut() -> Box<dyn HistoryStore>) {
        let peer = PeerId::random();
        let mut a = Availability::default();
        a.observe(9_000, true);
        a.observe(1_000, false);
        a.record_failure(1_000);
        store.save(&[(peer, a.clone())]).unwrap();
        a.observe(5_000, true);
        store.save(&[(peer, a.clone())]).unwrap();
        drop(store);
        let loaded = reopen().load().unwrap();
        assert_eq!(loaded.get(&peer), Some(&a));
    }

    #[test]
    fn mem_history_survives_restart() {
        let store = MemHistory::default();
        let twin = store.clone();
        roundtrip(store, move || Box::new(twin.clone()));
    }

    #[test]
    fn sqlite_history_survives_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.sqlite");
        let store = SqliteHistory::open(&path).unwrap();
        roundtrip(store, || Box::new(SqliteHistory::open(&path).unwrap()));
    }

    #[test]
    fn sqlite_names_the_file_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("no-such-dir").join("h.sqlite");
        let err = SqliteHistory::open(&bad).expect_err("must fail").to_string();
        assert!(err.contains("no-such-dir"), "{err}");
    }

    #[test]
    fn availability_ratio_and_failure_decay() {
        let mut a = Availability::default();
        assert!((a.ratio() - 0.5).abs() < 1e-9, "no evidence means the prior");
        a.observe(100 * PRIOR_MS as u64, true);
        assert!(a.ratio() > 0.99);
        let mut b = Availability::default();
        b.observe(100 * PRIOR_MS as u64, false);
        assert!(b.ratio() < 0.01);
        a.record_failure(0);
        assert!((a.failures_at(FAILURE_HALF_LIFE_MS as u64) - 0.5).abs() < 1e-9);
    }
}
