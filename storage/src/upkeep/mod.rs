//! Automatic upkeep: the node checks the files it maintains and repairs
//! them when too few good shares are left, with no one asking.
//!
//! - **What**: the verify capabilities in [`Maintained`] — every file
//!   uploaded through the node (unless turned off) and any file a member
//!   asked it to maintain. Verify capabilities cannot decrypt, so the list
//!   leaks no content.
//! - **When**: every `interval` (the first pass one interval after start,
//!   once the node knows the grid); `after_failure` after the overlay
//!   reports a server failed or left, for the files it held at their last
//!   check, and for files not checked yet (so a node that restarts within
//!   that delay costs nothing); `first_check` after a file is added; and on
//!   demand ([`Upkeep::run_now`]).
//! - **Threshold**: a file is repaired when more than `tolerance` of its n
//!   shares have no good copy. Checks are the cheap kind (which server
//!   holds which share); a repair verifies every block it reads.
//! - **Leases**: each pass renews this node's lease on every share of the
//!   files it checked, so servers that expire leases keep them.

pub mod decide;
mod list;

pub use list::{Entry, Health, ListError, Maintained};

use crate::client::Client;
use cloudy_overlay::tasks::Tasks;
use cloudy_overlay::{MemberState, PeerId, PeerScores};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::{info, warn};

/// Upkeep settings.
#[derive(Clone, Copy, Debug)]
pub struct UpkeepConfig {
    /// Period of the full check of every maintained file.
    pub interval: Duration,
    /// Delay between a server failing and checking the files it held.
    pub after_failure: Duration,
    /// Missing shares tolerated before a repair.
    pub tolerance: u8,
    /// Delay between a file being added and its first check; files added
    /// meanwhile are checked together (uploads just met happiness, and a
    /// burst of small uploads should not pay for a check each).
    pub first_check: Duration,
}

impl Default for UpkeepConfig {
    fn default() -> Self {
        UpkeepConfig {
            interval: Duration::from_secs(3600),
            after_failure: Duration::from_secs(60),
            tolerance: 0,
            first_check: Duration::from_secs(10),
        }
    }
}

/// Handle on the upkeep task.
#[derive(Debug, Clone)]
pub struct Upkeep {
    list: Arc<Maintained>,
    full_pass: Arc<Notify>,
    new_files: Arc<Notify>,
    repairs: Arc<std::sync::atomic::AtomicU64>,
}

impl Upkeep {
    /// The maintained-files list.
    pub fn list(&self) -> &Maintained {
        &self.list
    }

    /// Adds a file and has it checked soon; `false` if already listed.
    pub fn add(&self, cap: &crate::capability::VerifyCap) -> Result<bool, ListError> {
        let added = self.list.add(cap)?;
        if added {
            self.new_files.notify_one();
        }
        Ok(added)
    }

    /// Files repaired by this task since it started.
    pub fn repairs(&self) -> u64 {
        self.repairs.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Checks (and repairs) every maintained file now.
    pub fn run_now(&self) {
        self.full_pass.notify_one();
    }
}

/// Members that are failed or gone.
fn down(s: &PeerScores) -> HashSet<PeerId> {
    s.peers
        .values()
        .filter(|p| matches!(p.state, MemberState::Failed | MemberState::Left))
        .map(|p| p.peer)
        .collect()
}

/// Starts the upkeep task for `list` as one of `tasks`, using `client` to
/// check and repair.
pub fn start(client: Client, list: Arc<Maintained>, cfg: UpkeepConfig, tasks: &Tasks) -> Upkeep {
    let up = Upkeep {
        list,
        full_pass: Arc::new(Notify::new()),
        new_files: Arc::new(Notify::new()),
        repairs: Arc::default(),
    };
    let me = up.clone();
    let cancel = tasks.cancel().clone();
    tasks.spawn_loop("upkeep", async move {
        let mut members = client.overlay().watch();
        let mut gone = down(&members.borrow());
        let mut pending: HashSet<PeerId> = HashSet::new();
        let mut deadline: Option<Instant> = None;
        let mut first_checks: Option<Instant> = None;
        let mut tick = tokio::time::interval_at(Instant::now() + cfg.interval, cfg.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let at = |d: Option<Instant>| async move {
                match d {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tick.tick() => pass(&client, &me, cfg, |_| true).await,
                _ = me.full_pass.notified() => pass(&client, &me, cfg, |_| true).await,
                _ = me.new_files.notified() => {
                    first_checks.get_or_insert(Instant::now() + cfg.first_check);
                }
                _ = at(first_checks) => {
                    first_checks = None;
                    pass(&client, &me, cfg, |e| e.checked.is_none()).await;
                }
                changed = members.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let now = down(&members.borrow_and_update());
                    let fresh: Vec<PeerId> = now.difference(&gone).copied().collect();
                    gone = now;
                    if !fresh.is_empty() {
                        pending.extend(fresh);
                        deadline.get_or_insert(Instant::now() + cfg.after_failure);
                    }
                }
                _ = at(deadline) => {
                    let lost = std::mem::take(&mut pending);
                    deadline = None;
                    pass(&client, &me, cfg, |e| e.checked.is_none() || e.holders.iter().any(|h| lost.contains(h))).await;
                }
            }
        }
    });
    up
}

/// Checks (and if needed repairs) the listed files that `select` picks.
async fn pass(client: &Client, up: &Upkeep, cfg: UpkeepConfig, select: impl Fn(&Entry) -> bool) {
    let list = &up.list;
    let entries = match list.all() {
        Ok(v) => v,
        Err(e) => return warn!("upkeep: {e}"),
    };
    for e in entries.into_iter().filter(|e| select(e)) {
        let (good, status, holders) = upkeep_one(client, &e, cfg.tolerance).await;
        if status == Health::Repaired {
            up.repairs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        // Keep the file's leases running while it is maintained.
        client.renew(&e.cap, &holders).await;
        if let Err(err) = list.record(&e.cap, good, &status, &holders) {
            warn!("upkeep: {err}");
        }
    }
}

/// Checks one file and repairs it if needed: (good shares, status, holders).
async fn upkeep_one(
    client: &Client,
    e: &Entry,
    tolerance: u8,
) -> (Option<u8>, Health, Vec<PeerId>) {
    let si = hex::encode(e.cap.storage_index);
    let report = match client.check(&e.cap, false).await {
        Ok(r) => r,
        Err(err) => return (None, Health::Error(err.to_string()), Vec::new()),
    };
    let holders = |r: &crate::client::Report| -> Vec<PeerId> {
        let set: HashSet<PeerId> = r.good.values().flatten().copied().collect();
        set.into_iter().collect()
    };
    let good = report.good_shares() as u8;
    match decide::decide(good, e.cap.k, e.cap.n, tolerance) {
        decide::Decision::Healthy => return (Some(good), Health::Healthy, holders(&report)),
        decide::Decision::Degraded => return (Some(good), Health::Degraded, holders(&report)),
        decide::Decision::Unrecoverable | decide::Decision::Repair => {}
    }
    if !report.recoverable() {
        warn!(target: "cloudy::_events::upkeep", si = %si, good, k = e.cap.k, "file unrecoverable: too few shares left");
        return (Some(good), Health::Unrecoverable, holders(&report));
    }
    match client.repair(&e.cap).await {
        Ok(r) if r.placed.is_empty() && r.failures.is_empty() && r.before.healthy() => {
            // The repair's own check, which verifies every copy, found every
            // share: another member repaired the file meanwhile, or a
            // holder the cheap check missed answered this time.
            info!(target: "cloudy::_events::upkeep", si = %si, before = good, "file healthy on a second look: nothing to repair");
            (Some(e.cap.n), Health::Healthy, holders(&r.before))
        }
        Ok(r) => {
            let mut all = holders(&r.before);
            all.extend(r.placed.iter().map(|(_, p)| *p));
            let after = (r.before.good_shares() + r.placed.len()) as u8;
            let shares: Vec<u8> = r.placed.iter().map(|(s, _)| *s).collect();
            info!(target: "cloudy::_events::upkeep", si = %si, before = good, after, placed = ?shares, "file repaired");
            for f in &r.failures {
                warn!(si = %si, "upkeep repair: {f}");
            }
            let status = if r.failures.is_empty() && after >= e.cap.n {
                Health::Repaired
            } else {
                Health::Degraded
            };
            (Some(after), status, all)
        }
        Err(err) => (Some(good), Health::Error(err.to_string()), holders(&report)),
    }
}
