//! One folder at work: scanning (a filesystem watcher with a short
//! debounce, plus a periodic full rescan) and one subscription per other
//! member, which applies that member's index changes as they arrive.
//!
//! Scans and applied batches take the folder's lock in turn, so a scan
//! never sees a file the puller is halfway through installing.

use crate::apply::{self, ApplyError, FETCH_AHEAD};
use crate::blocklist::Entry;
use crate::chunk::Hash;
use crate::decide::{decide, Action};
use crate::errors::{About, Errors};
use crate::index::{FileInfo, Index};
use crate::path::RelPath;
use crate::protocol::{recv, send, Request, Response, WireFile, PROTOCOL};
use crate::scan::{ignores, is_ignored, scan, Hold};
use crate::service::{Inner, Status};
use crate::source::{MemberBlocks, TIMEOUT};
use crate::vv::VersionVector;
use cloudy_overlay::{PeerId, StreamProtocol};
use futures::future::BoxFuture;
use futures::StreamExt;
use notify::Watcher;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// A running folder.
pub(crate) struct Running {
    pub index: Index,
    seq: watch::Sender<u64>,
    lock: tokio::sync::Mutex<()>,
    status: Mutex<Status>,
    /// Outstanding errors, each cleared once it no longer applies.
    errors: Errors,
    /// Block bytes downloaded from members.
    downloaded: Arc<std::sync::atomic::AtomicU64>,
    /// Block bytes served to members.
    pub uploaded: std::sync::atomic::AtomicU64,
    /// The version of each path each member last announced, so a file's
    /// blocks can be asked of every member that has that very version.
    announced: Mutex<HashMap<RelPath, HashMap<PeerId, VersionVector>>>,
    /// Woken when the member list changed (subscriptions start at once).
    members_changed: tokio::sync::Notify,
    /// Bumped when the owner changed the member list: sessions it serves
    /// send the new list at once, so members learn of an admitted peer
    /// without waiting for their session to start over.
    roster: watch::Sender<u64>,
    /// Bumped to make every subscription start over from what the index
    /// says (after the ignore patterns changed).
    resubscribe: watch::Sender<u64>,
    pub cancel: CancellationToken,
}

impl Running {
    /// Its status, with fresh totals.
    pub(crate) fn status(&self) -> Status {
        let mut st = self.status.lock().expect("status lock").clone();
        st.downloaded = self.downloaded.load(std::sync::atomic::Ordering::Relaxed);
        st.uploaded = self.uploaded.load(std::sync::atomic::Ordering::Relaxed);
        st.errors = self.errors.messages();
        // A folder with outstanding errors is not in sync, whatever the
        // last batch said.
        if st.state == "in sync" && !st.errors.is_empty() {
            st.state = format!("out of sync: {} errors (see errors)", st.errors.len());
        }
        st.sequence = self.index.max_sequence().unwrap_or(0);
        st.applied = self.index.peers_seen().unwrap_or_default();
        if let Ok(all) = self.index.all() {
            let live: Vec<&FileInfo> = all.iter().filter(|f| !f.deleted).collect();
            st.files = live.len() as u64;
            st.bytes = live.iter().map(|f| f.size).sum();
        }
        st
    }

    fn set_state(&self, state: &str) {
        self.status.lock().expect("status lock").state = state.to_string();
    }

    fn error(&self, about: About, e: String) {
        self.errors.set(about, e);
    }

    /// Records what `peer` announced.
    fn note_announced(&self, peer: PeerId, files: &[FileInfo]) {
        let mut a = self.announced.lock().expect("announced lock");
        for f in files {
            let by = a.entry(f.path.clone()).or_default();
            if f.deleted {
                by.remove(&peer);
            } else {
                by.insert(peer, f.version.clone());
            }
        }
    }

    /// The members that announced exactly `f`'s version.
    fn holders(&self, f: &FileInfo) -> Vec<PeerId> {
        let a = self.announced.lock().expect("announced lock");
        a.get(&f.path)
            .map(|by| by.iter().filter(|(_, v)| **v == f.version).map(|(p, _)| *p).collect())
            .unwrap_or_default()
    }

    /// Notified when the local index changes.
    pub(crate) fn watch_seq(&self) -> watch::Receiver<u64> {
        self.seq.subscribe()
    }

    /// Changes of the member list made here (by the owner).
    pub(crate) fn watch_roster(&self) -> watch::Receiver<u64> {
        self.roster.subscribe()
    }

    /// The owner changed the member list.
    pub(crate) fn roster_changed(&self) {
        self.roster.send_modify(|g| *g += 1);
    }

    fn changed(&self) {
        if let Ok(s) = self.index.max_sequence() {
            self.seq.send_replace(s);
        }
    }

    /// The bytes of a block found in the folder, checked against its hash.
    pub(crate) async fn read_block(&self, root: &Path, hash: &[u8; 32]) -> Option<Vec<u8>> {
        let (path, offset, size) = self.index.find_block(hash).ok()??;
        let file = path.under(root);
        let hash = *hash;
        tokio::task::spawn_blocking(move || {
            use std::os::unix::fs::FileExt;
            let f = std::fs::File::open(file).ok()?;
            let mut buf = vec![0u8; size as usize];
            f.read_exact_at(&mut buf, offset).ok()?;
            (*blake3::hash(&buf).as_bytes() == hash).then_some(buf)
        })
        .await
        .ok()?
    }
}

/// Starts folder `id` with its index.
pub(crate) fn start(inner: Arc<Inner>, id: String, index: Index) -> Arc<Running> {
    let seq = index.max_sequence().unwrap_or(0);
    let running = Arc::new(Running {
        index,
        seq: watch::channel(seq).0,
        lock: tokio::sync::Mutex::new(()),
        status: Mutex::new(Status { state: "scanning".into(), ..Status::default() }),
        errors: Errors::default(),
        downloaded: Default::default(),
        uploaded: Default::default(),
        announced: Default::default(),
        members_changed: Default::default(),
        roster: watch::Sender::new(0),
        resubscribe: watch::channel(0).0,
        cancel: inner.tasks.cancel().child_token(),
    });
    inner.tasks.spawn("sync scanner", scanner(inner.clone(), id.clone(), running.clone()));
    let tasks = inner.tasks.clone();
    tasks.spawn("sync subscriptions", members(inner, id, running.clone()));
    running
}

fn root_of(inner: &Inner, id: &str) -> Option<PathBuf> {
    inner.folders.get(id).map(|f| f.path)
}

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

async fn scanner(inner: Arc<Inner>, id: String, r: Arc<Running>) {
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
        if st.state == "scanning" {
            st.state = "in sync".into();
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

/// Keeps one subscription per other member running.
async fn members(inner: Arc<Inner>, id: String, r: Arc<Running>) {
    let mut subs: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = r.cancel.cancelled() => break,
            _ = tick.tick() => {}
            _ = r.members_changed.notified() => {}
        }
        let Some(f) = inner.folders.get(&id) else { break };
        for m in f.members.iter().filter(|m| **m != inner.me) {
            if subs.get(m).is_some_and(|h| !h.is_finished()) {
                continue;
            }
            let Ok(peer) = m.parse::<PeerId>() else { continue };
            subs.insert(
                m.clone(),
                inner.tasks.spawn(
                    "sync subscription",
                    subscribe(inner.clone(), id.clone(), r.clone(), peer),
                ),
            );
        }
    }
    for h in subs.values() {
        h.abort();
    }
}

/// Follows `peer`'s index of folder `id` and applies what changes.
async fn subscribe(inner: Arc<Inner>, id: String, r: Arc<Running>, peer: PeerId) {
    let mut snapshots = inner.overlay.watch();
    let mut again = r.resubscribe.subscribe();
    loop {
        // Wait until the peer is up (alive, or suspected but not yet failed).
        let up = snapshots.wait_for(|s| s.peers.get(&peer).is_some_and(|p| p.state.is_up()));
        tokio::select! {
            _ = r.cancel.cancelled() => return,
            ok = up => if ok.is_err() { return },
        }
        // A member that fails or leaves ends the session at once: its
        // connection may take a while to time out, and it may be back with
        // a new one before that. A mere suspicion does not: on a lossy
        // link a missed probe or two is common, and ending the session on
        // each one restarted every pull in the lossy testbed.
        let gone = snapshots.wait_for(|s| s.peers.get(&peer).is_none_or(|p| !p.state.is_up()));
        again.borrow_and_update();
        let outcome = tokio::select! {
            _ = r.cancel.cancelled() => return,
            o = follow(&inner, &id, &r, peer) => o,
            _ = gone => Err("the member left or failed".into()),
            _ = again.changed() => continue,
        };
        match outcome {
            Err(e) => r.error(About::Member(peer.to_string()), format!("{peer}: {e}")),
            Ok(()) => r.errors.clear(|a| *a == About::Member(peer.to_string())),
        }
        tokio::select! {
            _ = r.cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// One `Index` session with `peer`, until it ends.
async fn follow(inner: &Inner, id: &str, r: &Running, peer: PeerId) -> Result<(), String> {
    let generation = *r.resubscribe.borrow();
    let mut control = inner.overlay.stream_control();
    let open = control.open_stream(peer, StreamProtocol::new(PROTOCOL));
    let mut s = tokio::time::timeout(TIMEOUT, open)
        .await
        .map_err(|_| "no session in time".to_string())?
        .map_err(|e| e.to_string())?;
    let seen = r.index.peer_seen(&peer.to_string()).map_err(|e| e.to_string())?;
    send(&mut s, &Request::Index { folder: id.to_string(), since: seen })
        .await
        .map_err(|e| e.to_string())?;
    let me = inner.overlay.local_peer_id();
    let others: Vec<PeerId> = inner
        .folders
        .get(id)
        .map(|f| f.members.iter().filter_map(|m| m.parse().ok()).filter(|p| *p != me).collect())
        .unwrap_or_default();
    let source = MemberBlocks::new(
        inner.overlay.clone(),
        &inner.tasks,
        id,
        peer,
        others,
        r.downloaded.clone(),
    );
    loop {
        let msg = recv::<_, Response>(&mut s).await.map_err(|e| e.to_string())?;
        match msg {
            None => return Ok(()),
            Some(Response::Refused { reason }) => {
                ask_to_join(inner, id, peer).await;
                return Err(format!("refused: {reason}"));
            }
            Some(Response::Members { name, members }) => {
                // Only the owner's word counts for the name and the members.
                let owner = inner.folders.get(id).map(|f| f.owner);
                if owner.as_deref() == Some(&peer.to_string()) {
                    take_members(inner, id, name, members);
                    r.members_changed.notify_one();
                }
            }
            Some(Response::Files { files, seq }) => {
                let clean = apply_batch(inner, id, r, peer, files, &source).await;
                if clean {
                    r.errors.clear(|a| *a == About::Member(peer.to_string()));
                    r.index.set_peer_seen(&peer.to_string(), seq).map_err(|e| e.to_string())?;
                    if *r.resubscribe.borrow() != generation {
                        r.index.set_peer_seen(&peer.to_string(), 0).map_err(|e| e.to_string())?;
                        return Ok(());
                    }
                } else {
                    // Retry the batch on a new session.
                    return Err("some changes could not be applied yet".into());
                }
            }
            Some(other) => return Err(format!("unexpected {other:?}")),
        }
    }
}

/// Records the folder's name and member list as its owner gave them.
fn take_members(inner: &Inner, id: &str, name: String, members: Vec<String>) {
    let _ = inner.folders.update(id, |f| {
        f.map(|mut f| {
            f.name = name;
            f.members = members;
            f
        })
    });
}

async fn ask_to_join(inner: &Inner, id: &str, peer: PeerId) {
    let Some(f) = inner.folders.get(id) else { return };
    if f.owner != peer.to_string() {
        return;
    }
    let ask = async {
        let mut s = inner
            .overlay
            .stream_control()
            .open_stream(peer, StreamProtocol::new(PROTOCOL))
            .await
            .ok()?;
        send(&mut s, &Request::Join { folder: id.to_string() }).await.ok()?;
        recv::<_, Response>(&mut s).await.ok()?
    };
    if let Ok(Some(Response::Joined { name, members })) = tokio::time::timeout(TIMEOUT, ask).await {
        take_members(inner, id, name, members);
    } else if let Some(r) = inner.running.lock().expect("running lock").get(id) {
        r.set_state("waiting for admission");
    }
}

/// Files of a batch assembled at once.
const FILES_AT_ONCE: usize = 32;

/// The block-list pieces a batch refers to: from local files' lists where
/// possible, else fetched (and checked) from the members.
async fn resolve_pieces(
    r: &Running,
    files: &[WireFile],
    source: &MemberBlocks,
) -> Result<HashMap<Hash, Vec<Entry>>, String> {
    let mut lists: HashMap<Hash, Vec<Entry>> = HashMap::new();
    let mut fetch = Vec::new();
    for h in files.iter().flat_map(|w| &w.pieces) {
        if lists.contains_key(h) || fetch.contains(h) {
            continue;
        }
        lists.extend(r.index.pieces_beside(h).map_err(|e| e.to_string())?);
        if !lists.contains_key(h) {
            fetch.push(*h);
        }
    }
    type Piece = (Hash, Vec<Entry>);
    let jobs: Vec<BoxFuture<'_, Result<Piece, String>>> = fetch
        .into_iter()
        .map(|h| Box::pin(async move { source.list(h).await.map(|e| (h, e)) }) as BoxFuture<'_, _>)
        .collect();
    let fetched: Vec<_> = futures::stream::iter(jobs).buffer_unordered(FETCH_AHEAD).collect().await;
    for f in fetched {
        let (h, e) = f.map_err(|e| format!("block list: {e}"))?;
        lists.insert(h, e);
    }
    Ok(lists)
}

/// Applies one batch of `peer`'s entries; `false` if any must be retried.
async fn apply_batch(
    inner: &Inner,
    id: &str,
    r: &Running,
    peer: PeerId,
    files: Vec<WireFile>,
    source: &MemberBlocks,
) -> bool {
    let Some(root) = root_of(inner, id) else { return true };
    let origin = peer.to_string();
    let lists = match resolve_pieces(r, &files, source).await {
        Ok(l) => l,
        Err(e) => {
            r.error(About::Member(peer.to_string()), format!("{peer}: {e}"));
            return false;
        }
    };
    let mut infos = Vec::new();
    for w in files {
        match w.into_info(|h| lists.get(h).map(Vec::as_slice)) {
            Ok(i) => infos.push(i),
            Err(e) => {
                warn!(target: "cloudy::_events::sync", folder = %id, "refused an entry from a peer: {e}")
            }
        }
    }
    drop(lists);
    r.note_announced(peer, &infos);
    // Additions first, parents before children (so renames find their
    // blocks before the old name is deleted); deletions deepest first.
    infos.sort_by(|a, b| {
        a.deleted.cmp(&b.deleted).then_with(|| {
            if a.deleted {
                b.path.cmp(&a.path)
            } else {
                a.path.cmp(&b.path)
            }
        })
    });
    tracing::debug!(target: "cloudy::_events::sync", folder = %id, entries = infos.len(), "batch received");
    let _guard = r.lock.lock().await;
    let ig = ignores(&root);
    {
        let mut st = r.status.lock().expect("status lock");
        st.state = "syncing".into();
        st.need_files = infos.iter().filter(|f| !f.deleted).count() as u64;
        st.need_bytes = infos.iter().filter(|f| !f.deleted).map(|f| f.size).sum();
    }
    let mut clean = true;
    let mut plan = Vec::new();
    for theirs in &infos {
        if is_ignored(&ig, &theirs.path, theirs.kind == crate::index::Kind::Dir) {
            continue;
        }
        match r.index.get(&theirs.path) {
            Ok(ours) => plan.push((theirs, decide(ours.as_ref(), theirs), ours)),
            Err(e) => {
                r.error(About::File(theirs.path.to_string()), e.to_string());
                clean = false;
            }
        }
    }
    // Plain new versions of files are assembled several at a time, before
    // anything is deleted (a rename reuses the old name's blocks), and
    // installed after one filesystem sync for the whole batch.
    let jobs: Vec<BoxFuture<'_, _>> = plan
        .iter()
        .filter(|(t, a, _)| plain(t, a))
        .map(|(t, _, _)| Box::pin(prepare_one(&root, r, t, source)) as BoxFuture<'_, _>)
        .collect();
    let started = std::time::Instant::now();
    let assembled: Vec<(&FileInfo, Result<Option<apply::Prepared>, ApplyError>)> =
        futures::stream::iter(jobs).buffer_unordered(FILES_AT_ONCE).collect().await;
    tracing::debug!(target: "cloudy::_events::sync", folder = %id, took = ?started.elapsed(), "files assembled");
    let mut prepared = Vec::new();
    let mut full = false;
    for (theirs, p) in assembled {
        match p {
            Ok(p) => prepared.push((theirs, p)),
            Err(e) => {
                full |= !record(r, theirs, e);
                clean = false;
            }
        }
    }
    // Returning early drops what was prepared, and with it the temporary
    // files (see `apply::Prepared`).
    if full {
        return false;
    }
    for (theirs, action, ours) in plan.into_iter().filter(|(t, a, _)| !plain(t, a)) {
        match apply_one(inner, &root, r, theirs, ours, action, source, &origin).await {
            Ok(()) => applied(r, theirs),
            Err(e) => {
                if !record(r, theirs, e) {
                    return false;
                }
                clean = false;
            }
        }
        done(r, theirs);
    }
    if let Err(e) = make_durable(&root, &prepared) {
        if let Some((first, _)) = prepared.first() {
            record(r, first, e);
        }
        return false;
    }
    for (theirs, p) in prepared {
        match apply::commit(&root, &r.index, theirs, p, Some(&origin)) {
            Ok(()) => applied(r, theirs),
            Err(e) => {
                if !record(r, theirs, e) {
                    return false;
                }
                clean = false;
            }
        }
    }
    tracing::debug!(target: "cloudy::_events::sync", folder = %id, entries = infos.len(), clean, "batch applied");
    r.set_state(if clean { "in sync" } else { "out of sync: see errors" });
    // Members subscribed here learn of what was taken or merged (entries
    // taken unchanged skip the member they came from: see
    // `Index::changes_for`).
    if !infos.is_empty() {
        r.changed();
    }
    clean
}

/// Up to this many new files are synced one by one; more, and the whole
/// filesystem is synced once (one `syncfs` is much cheaper than a thousand
/// `fsync`s, but it also flushes whatever else is waiting on that disk).
const SYNC_EACH: usize = 16;

/// Makes the assembled files durable before they are installed.
fn make_durable(
    root: &Path,
    prepared: &[(&FileInfo, Option<apply::Prepared>)],
) -> Result<(), ApplyError> {
    let files: Vec<&apply::Prepared> = prepared.iter().filter_map(|(_, p)| p.as_ref()).collect();
    match files.len() {
        0 => Ok(()),
        n if n <= SYNC_EACH => files.iter().try_for_each(|p| p.sync()),
        _ => apply::sync_filesystem(root),
    }
}

/// A plain new version of a file, taken as is.
fn plain(theirs: &FileInfo, action: &Action) -> bool {
    *action == Action::Take && !theirs.deleted && theirs.kind == crate::index::Kind::File
}

/// Assembles a plain new version of a file (see [`apply::prepare`]).
async fn prepare_one<'a>(
    root: &Path,
    r: &Running,
    theirs: &'a FileInfo,
    source: &MemberBlocks,
) -> (&'a FileInfo, Result<Option<apply::Prepared>, ApplyError>) {
    let p = apply::prepare(root, &r.index, theirs, &source.for_file(|| r.holders(theirs))).await;
    done(r, theirs);
    (theirs, p)
}

/// Counts an entry of the batch as dealt with in the folder's status.
fn done(r: &Running, theirs: &FileInfo) {
    let mut st = r.status.lock().expect("status lock");
    if !theirs.deleted {
        st.need_files = st.need_files.saturating_sub(1);
        st.need_bytes = st.need_bytes.saturating_sub(theirs.size);
    }
}

/// Records a failure in the folder's status; `false` when the disk is full
/// (the folder pauses and the batch stops).
fn record(r: &Running, file: &FileInfo, e: ApplyError) -> bool {
    let path = file.path.to_string();
    match e {
        ApplyError::Io { full: true, path, reason } => {
            r.set_state(&format!("paused: disk full ({path}: {reason})"));
            false
        }
        e @ ApplyError::ChangedHere(_) => {
            r.error(About::Unscanned(path), e.to_string());
            true
        }
        e => {
            r.error(About::File(path), e.to_string());
            true
        }
    }
}

/// `file` was applied: what was said of it no longer holds.
fn applied(r: &Running, file: &FileInfo) {
    let path = file.path.to_string();
    r.errors.clear(|a| matches!(a, About::File(p) | About::Unscanned(p) if *p == path));
}

/// Applies one entry from peer `origin`.
#[allow(clippy::too_many_arguments)]
async fn apply_one(
    inner: &Inner,
    root: &Path,
    r: &Running,
    theirs: &FileInfo,
    ours: Option<FileInfo>,
    action: Action,
    source: &MemberBlocks,
    origin: &str,
) -> Result<(), ApplyError> {
    let source = &source.for_file(|| r.holders(theirs));
    match action {
        Action::Nothing => Ok(()),
        Action::Take => apply::take(root, &r.index, theirs, source, Some(origin)).await,
        Action::MergeSame => {
            let ours = ours.expect("merge needs ours");
            r.index.put(&FileInfo { version: ours.version.merged(&theirs.version), ..ours })?;
            Ok(())
        }
        Action::KeepOurs { copy_theirs } => {
            if copy_theirs {
                let name = apply::save_conflict_copy(root, &r.index, theirs, false, source).await?;
                info!(target: "cloudy::_events::sync", path = %theirs.path, copy = %name, "conflict: kept ours, saved theirs");
            }
            let ours = ours.expect("keep needs ours");
            let version = ours.version.merged(&theirs.version).bumped(inner.member);
            r.index.put(&FileInfo { version, ..ours })?;
            Ok(())
        }
        Action::TakeTheirs { copy_ours } => {
            if let (true, Some(ours)) = (copy_ours, &ours) {
                let name = apply::save_conflict_copy(root, &r.index, ours, true, source).await?;
                info!(target: "cloudy::_events::sync", path = %theirs.path, copy = %name, "conflict: took theirs, saved ours");
            }
            apply::take(root, &r.index, theirs, source, Some(origin)).await
        }
    }
}
