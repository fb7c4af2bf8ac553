//! Maintained trees: directories (and mutable files) this node keeps
//! healthy with everything reachable from them — a deep check with repair
//! of each, every upkeep interval, soon after a member fails, and on
//! `maintain run`. Kept in `data/maintained-trees.json` (mode 0600: it
//! holds read capabilities, which stay on this node).

use cloudy_overlay::tasks::Tasks;
use cloudy_overlay::MemberState;
use cloudy_storage::capability::Cap;
use cloudy_storage::dirs::Dirs;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// One maintained tree.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TreeRow {
    /// Its read capability.
    pub cap: String,
    /// When it was added (Unix seconds).
    pub added: u64,
    /// When it was last checked.
    pub checked: Option<u64>,
    /// Objects found healthy then.
    pub healthy: Option<usize>,
    /// Problems found then (before repair).
    pub problems: Option<usize>,
    /// Problems left after the repair.
    pub unrepaired: Option<usize>,
}

/// The maintained trees of one node.
#[derive(Clone, Debug)]
pub struct Trees {
    file: PathBuf,
    rows: Arc<Mutex<BTreeMap<String, TreeRow>>>,
    run: Arc<Notify>,
}

impl Trees {
    /// The list kept in `file` (empty if it does not exist yet).
    pub fn open(file: PathBuf) -> Trees {
        let rows = std::fs::read(&file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Trees { file, rows: Arc::new(Mutex::new(rows)), run: Arc::new(Notify::new()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, TreeRow>> {
        self.rows.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn save(&self, rows: &BTreeMap<String, TreeRow>) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(rows).map_err(std::io::Error::other)?;
        cloudy_overlay::fsutil::write_whole(&self.file, &json, Some(0o600))
    }

    /// Maintains the tree of `cap` (kept by its read capability); `false`
    /// if it already was.
    pub fn add(&self, cap: &Cap) -> std::io::Result<bool> {
        let Cap::Mutable(m) = cap else { return Ok(false) };
        let key = Cap::Mutable(m.to_verify()).to_string();
        let mut rows = self.lock();
        if rows.contains_key(&key) {
            return Ok(false);
        }
        let row = TreeRow {
            cap: Cap::Mutable(m.to_read()).to_string(),
            added: cloudy_storage::store::now_secs(),
            checked: None,
            healthy: None,
            problems: None,
            unrepaired: None,
        };
        rows.insert(key, row);
        self.save(&rows)?;
        self.run.notify_one();
        Ok(true)
    }

    /// Stops maintaining the tree of `cap`; `false` if it was not.
    pub fn remove(&self, cap: &Cap) -> std::io::Result<bool> {
        let Cap::Mutable(m) = cap else { return Ok(false) };
        let mut rows = self.lock();
        let removed = rows.remove(&Cap::Mutable(m.to_verify()).to_string()).is_some();
        if removed {
            self.save(&rows)?;
        }
        Ok(removed)
    }

    /// Every maintained tree.
    pub fn all(&self) -> Vec<TreeRow> {
        self.lock().values().cloned().collect()
    }

    /// Checks every tree now.
    pub fn run_now(&self) {
        self.run.notify_one();
    }

    async fn pass(&self, dirs: &Dirs) {
        let keys: Vec<(String, String)> =
            self.lock().iter().map(|(k, r)| (k.clone(), r.cap.clone())).collect();
        for (key, cap) in keys {
            let Ok(parsed) = cap.parse::<Cap>() else { continue };
            let report = dirs.deep_check(&parsed, false, true).await;
            let unrepaired = report.problems.iter().filter(|p| !p.repaired).count();
            if unrepaired > 0 {
                tracing::warn!("maintained tree {cap}: {unrepaired} problems left after repair");
            }
            let mut rows = self.lock();
            if let Some(row) = rows.get_mut(&key) {
                row.checked = Some(cloudy_storage::store::now_secs());
                row.healthy = Some(report.healthy);
                row.problems = Some(report.problems.len());
                row.unrepaired = Some(unrepaired);
            }
            if let Err(e) = self.save(&rows) {
                tracing::warn!("cannot save {}: {e}", self.file.display());
            }
        }
    }

    /// Runs the passes: every `interval`, `after_failure` after a member
    /// fails, and on [`Trees::run_now`].
    pub fn start(&self, dirs: Dirs, interval: Duration, after_failure: Duration, tasks: &Tasks) {
        let me = self.clone();
        let cancel = tasks.cancel().clone();
        tasks.spawn_loop("maintained trees", async move {
            let mut members = dirs.client().overlay().watch();
            let failed = |s: &cloudy_overlay::PeerScores| {
                s.peers.values().filter(|p| matches!(p.state, MemberState::Failed)).count()
            };
            let mut seen = failed(&members.borrow());
            let mut tick =
                tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut after: Option<tokio::time::Instant> = None;
            loop {
                let due = async {
                    match after {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tick.tick() => me.pass(&dirs).await,
                    _ = me.run.notified() => me.pass(&dirs).await,
                    _ = due => {
                        after = None;
                        me.pass(&dirs).await;
                    }
                    changed = members.changed() => {
                        if changed.is_err() {
                            break;
                        }
                        let now = failed(&members.borrow_and_update());
                        if now > seen {
                            after.get_or_insert(tokio::time::Instant::now() + after_failure);
                        }
                        seen = now;
                    }
                }
            }
        });
    }
}
