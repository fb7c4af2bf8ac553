//! Applying a batch of a member's index entries: decide, fetch the
//! blocks, assemble, make durable, install, and record what failed.

use super::*;

/// Files of a batch assembled at once.
const FILES_AT_ONCE: usize = 32;

/// Why a batch's block lists could not be had.
#[derive(Debug, thiserror::Error)]
enum PiecesError {
    /// The local index failed.
    #[error(transparent)]
    Index(#[from] crate::index::IndexError),
    /// No member gave a piece.
    #[error("block list: {0}")]
    Fetch(#[from] crate::fetch_error::FetchError),
}

/// The block-list pieces a batch refers to: from local files' lists where
/// possible, else fetched (and checked) from the members.
async fn resolve_pieces(
    r: &Running,
    files: &[WireFile],
    source: &MemberBlocks,
) -> Result<HashMap<Hash, Vec<Entry>>, PiecesError> {
    let mut lists: HashMap<Hash, Vec<Entry>> = HashMap::new();
    let mut fetch = Vec::new();
    for h in files.iter().flat_map(|w| &w.pieces) {
        if lists.contains_key(h) || fetch.contains(h) {
            continue;
        }
        lists.extend(r.index.pieces_beside(h)?);
        if !lists.contains_key(h) {
            fetch.push(*h);
        }
    }
    type Piece = (Hash, Vec<Entry>);
    let jobs: Vec<BoxFuture<'_, Result<Piece, _>>> = fetch
        .into_iter()
        .map(|h| Box::pin(async move { source.list(h).await.map(|e| (h, e)) }) as BoxFuture<'_, _>)
        .collect();
    let fetched: Vec<_> = futures::stream::iter(jobs).buffer_unordered(FETCH_AHEAD).collect().await;
    for f in fetched {
        let (h, e) = f?;
        lists.insert(h, e);
    }
    Ok(lists)
}

/// Applies one batch of `peer`'s entries; `false` if any must be retried.
pub(super) async fn apply_batch(
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
        st.state = FolderState::Syncing;
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
    // Settled; whether in or out of sync follows the errors recorded above
    // (see `Running::status`).
    r.set_state(FolderState::InSync);
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
            r.set_state(FolderState::DiskFull { detail: format!("{path}: {reason}") });
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
