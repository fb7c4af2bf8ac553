//! A folder's scanner: watches the directory, scans it when something
//! changed or the rescan interval passed, and prunes old versions.

use super::*;

/// Scans folder `id`; returns whether some files were not stable yet.
async fn scan_now(
    inner: &Inner,
    id: &str,
    r: &Running,
    busy: HashSet<PathBuf>,
    closed: HashSet<PathBuf>,
) -> bool {
    let Some(root) = root_of(inner, id) else { return false };
    let _guard = r.lock.lock().await;
    let index_path = inner.dir.join(format!("{id}.sqlite"));
    let me = inner.member;
    let hold = Hold { settle: inner.cfg.settle, busy, closed };
    // The scan runs on the blocking pool with its own connection to the
    // index (SQLite in WAL mode serialises the writes).
    let started = std::time::Instant::now();
    let result = tokio::task::spawn_blocking(move || {
        let ix = Index::open(&index_path).map_err(|e| e.to_string())?;
        scan(&root, &ix, me, &hold).map_err(|e| e.to_string())
    })
    .await;
    tracing::debug!(target: "cloudy::_events::sync", folder = %id, took = ?started.elapsed(), "scanned");

    match result {
        Ok(Ok(report)) => {
            // What was waiting for a scan has now been indexed.
            r.errors.clear(|a| matches!(a, About::Unscanned(_) | About::Folder));
            if !report.changed.is_empty() || !report.deleted.is_empty() {
                info!(target: "cloudy::_events::sync", folder = %id, changed = report.changed.len(), deleted = report.deleted.len(), "local changes");
                r.changed();
            }
            !report.unstable.is_empty()
        }
        Ok(Err(e)) => {
            r.error(About::Folder, format!("scanning: {e}"));
            false
        }
        Err(e) => {
            r.error(About::Folder, format!("scanning: {e}"));
            false
        }
    }
}

/// What the watcher saw.
enum Seen {
    /// A file is being written (modified or created, not yet closed).
    Writing(PathBuf),
    /// A writer closed it.
    Closed(PathBuf),
    /// Anything else (renames, deletions, attributes).
    Other,
}

/// How long a file with no close event counts as being written.
const BUSY_FOR: Duration = Duration::from_secs(30);

pub(super) async fn scanner(inner: Arc<Inner>, id: String, r: Arc<Running>) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Seen>(4096);
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        use notify::event::{AccessKind, AccessMode, CreateKind, EventKind, ModifyKind};
        let Ok(ev) = ev else { return };
        let path = ev.paths.first().cloned().unwrap_or_default();
        let seen = match ev.kind {
            EventKind::Modify(ModifyKind::Data(_)) | EventKind::Create(CreateKind::File) => {
                Seen::Writing(path)
            }
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => Seen::Closed(path),
            EventKind::Access(_) => return,
            _ => Seen::Other,
        };
        // A full queue only delays a scan: the next event or rescan comes.
        let _ = tx.try_send(seen);
    })
    .ok();
    let mut busy: HashMap<PathBuf, tokio::time::Instant> = HashMap::new();
    let mut closed: HashSet<PathBuf> = HashSet::new();
    if let Some(root) = root_of(&inner, &id) {
        let removed = tokio::task::spawn_blocking(move || crate::scan::remove_stale_temps(&root))
            .await
            .unwrap_or(0);
        if removed > 0 {
            info!(folder = %id, removed, "removed temporary files of an interrupted pull");
        }
    }
    if let (Some(w), Some(root)) = (watcher.as_mut(), root_of(&inner, &id)) {
        if let Err(e) = w.watch(&root, notify::RecursiveMode::Recursive) {
            warn!(folder = %id, "no filesystem watcher ({e}); relying on rescans");
        }
    }
    let mut tick = tokio::time::interval(inner.cfg.rescan);
    let mut again: Option<tokio::time::Instant> = None;
    let mut pruned: Option<tokio::time::Instant> = None;
    let mut patterns: Option<blake3::Hash> = None;
    loop {
        let retry = async {
            match again {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = r.cancel.cancelled() => break,
            _ = tick.tick() => {}
            _ = retry => {}
            Some(seen) = rx.recv() => {
                // Let a burst of events settle, then scan once.
                note(&mut busy, &mut closed, seen);
                tokio::time::sleep(inner.cfg.debounce).await;
                while let Ok(seen) = rx.try_recv() {
                    note(&mut busy, &mut closed, seen);
                }
            }
        }
        busy.retain(|_, at| at.elapsed() < BUSY_FOR);
        if pruned.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) && !inner.cfg.keep_versions.is_zero()
        {
            pruned = Some(tokio::time::Instant::now());
            prune_versions(&inner, &id).await;
        }
        // Files still being written are looked at again once settled.
        let unstable =
            scan_now(&inner, &id, &r, busy.keys().cloned().collect(), std::mem::take(&mut closed))
                .await;
        if let Some(root) = root_of(&inner, &id) {
            let now = blake3::hash(
                &std::fs::read(root.join(crate::scan::IGNORE_FILE)).unwrap_or_default(),
            );
            if patterns.is_some_and(|before| before != now) {
                unignore(&id, &r);
            }
            patterns = Some(now);
        }
        again = unstable.then(|| tokio::time::Instant::now() + inner.cfg.settle);
        let mut st = r.status.lock().expect("status lock");
        if st.state == FolderState::Scanning {
            st.state = FolderState::InSync;
        }
    }
}

/// The ignore patterns changed: members' indexes are asked for again from
/// the start, so files no longer ignored are fetched (entries already here
/// are recognised and cost nothing but their index entries).
fn unignore(id: &str, r: &Running) {
    info!(target: "cloudy::_events::sync", folder = %id, "ignore patterns changed; asking members for their whole index again");
    // Sessions learn of it first: one that records its progress after this
    // sees the change and takes the record back (see `follow`).
    r.resubscribe.send_modify(|g| *g += 1);
    if let Err(e) = r.index.forget_peers() {
        r.error(About::Folder, e.to_string());
    }
}

/// How often old versions are looked for.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Deletes versions older than the retention.
async fn prune_versions(inner: &Inner, id: &str) {
    let Some(root) = root_of(inner, id) else { return };
    let keep = inner.cfg.keep_versions;
    let removed = tokio::task::spawn_blocking(move || {
        crate::versions::prune(&root, keep, std::time::SystemTime::now())
    })
    .await
    .unwrap_or(0);
    if removed > 0 {
        info!(target: "cloudy::_events::sync", folder = %id, removed, "deleted versions past their retention");
    }
}

fn note(
    busy: &mut HashMap<PathBuf, tokio::time::Instant>,
    closed: &mut HashSet<PathBuf>,
    seen: Seen,
) {
    match seen {
        Seen::Writing(p) => {
            closed.remove(&p);
            busy.insert(p, tokio::time::Instant::now());
        }
        Seen::Closed(p) => {
            busy.remove(&p);
            closed.insert(p);
        }
        Seen::Other => {}
    }
}
