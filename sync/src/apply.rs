//! Carrying out decisions on disk: writing a peer's version of a path
//! into the folder, safely.
//!
//! - A file is assembled in `.cloudy-tmp-*` beside its target from blocks
//!   already in the folder (any file, found through the index) or fetched
//!   from a [`BlockSource`]. Every block is checked against its hash. The
//!   file is synced and renamed over the target, and only then indexed:
//!   a crash leaves either the old file or the new one, never a mix.
//! - A file that is replaced or deleted is first moved to
//!   `.cloudy-versions/` with a time stamp.
//! - No path is written through a symbolic link: a parent that is a link
//!   is refused, so a link in the folder cannot redirect a write outside.
//! - The index records the version from the peer, with size, mtime and
//!   mode as they are on our disk, so the next scan sees no change.

use crate::chunk::Hash;
use crate::conflict::{conflict_name, Side};
use crate::fetch_error::FetchError;
use crate::index::{FileInfo, Index, IndexError, Kind};
use crate::path::{RelPath, VERSIONS_DIR};
use crate::scan::TMP_PREFIX;
use futures::future::BoxFuture;
use futures::StreamExt;
use std::collections::HashMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Blocks fetched at once for one file.
pub const FETCH_AHEAD: usize = 32;

/// A block's bytes, checked against its hash: [`Verified::check`] is the
/// only way to make one, so whatever a source returns was checked.
#[derive(Debug)]
pub struct Verified(Vec<u8>);

impl Verified {
    /// `bytes` if they hash to `hash`; else the bytes back.
    pub fn check(hash: &Hash, bytes: Vec<u8>) -> Result<Verified, Vec<u8>> {
        if blake3::hash(&bytes).as_bytes() == hash {
            Ok(Verified(bytes))
        } else {
            Err(bytes)
        }
    }

    /// The bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

/// Where missing blocks come from (the network, in the node).
pub trait BlockSource: Send + Sync {
    /// The bytes of the block with `hash` (`size` bytes), or why not.
    fn fetch(&self, hash: Hash, size: u32) -> BoxFuture<'_, Result<Verified, FetchError>>;
}

/// Failures applying an entry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    /// Disk trouble (a full disk among others) at `path`.
    #[error("{path}: {reason}")]
    Io {
        /// The file involved.
        path: String,
        /// What the OS said.
        reason: String,
        /// The disk is full.
        full: bool,
    },
    /// A block could not be had from anywhere, or was corrupt everywhere.
    #[error("{path}: block {block} unavailable: {reason}")]
    Block {
        /// The file.
        path: String,
        /// Which block.
        block: usize,
        /// Why.
        #[source]
        reason: FetchError,
    },
    /// The file was changed here and not scanned yet: it is left alone
    /// until the next scan has indexed it (then the two are compared).
    #[error("{0}: changed here since the last scan; it will be compared after the next one")]
    ChangedHere(String),
    /// The path would be written through a symbolic link.
    #[error("{0}: a parent directory is a symbolic link; refused")]
    ThroughLink(String),
    /// The index failed.
    #[error(transparent)]
    Index(#[from] IndexError),
}

fn io(path: &Path, e: std::io::Error) -> ApplyError {
    ApplyError::Io {
        path: path.display().to_string(),
        full: e.kind() == std::io::ErrorKind::StorageFull,
        reason: e.to_string(),
    }
}

/// Short display name of a member, used in conflict names.
pub fn member_name(id: u64) -> String {
    format!("{:016X}", id)[..7].to_string()
}

/// Checks that no directory between `root` and `rel` is a symbolic link.
fn no_links_above(root: &Path, rel: &RelPath) -> Result<(), ApplyError> {
    let mut at = root.to_path_buf();
    let mut parent = rel.parent();
    let mut parts = Vec::new();
    while let Some(p) = parent {
        parts.push(p.file_name().to_string());
        parent = p.parent();
    }
    for part in parts.iter().rev() {
        at.push(part);
        if at.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(ApplyError::ThroughLink(rel.to_string()));
        }
    }
    Ok(())
}

/// Moves what is at `rel` into the versions directory (files only).
fn keep_version(root: &Path, rel: &RelPath) -> Result<(), ApplyError> {
    let from = rel.under(root);
    match from.symlink_metadata() {
        Ok(m) if m.is_file() => {}
        _ => return Ok(()),
    }
    let stamp = crate::versions::stamp(std::time::SystemTime::now());
    let mut to = root.join(VERSIONS_DIR).join(format!("{rel}~{stamp}"));
    // Two versions within one second: number the later ones.
    let mut n = 1;
    while to.symlink_metadata().is_ok() {
        to = root.join(VERSIONS_DIR).join(format!("{rel}~{stamp}-{n}"));
        n += 1;
    }
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    }
    std::fs::rename(&from, &to).map_err(|e| io(&from, e))
}

/// Whether the file at `rel` already has exactly `theirs`'s content.
fn already_there(index: &Index, theirs: &FileInfo, target: &Path) -> bool {
    let Ok(Some(ours)) = index.get(&theirs.path) else { return false };
    !ours.deleted
        && ours.kind == Kind::File
        && ours.blocks.iter().map(|b| b.hash).eq(theirs.blocks.iter().map(|b| b.hash))
        && target.metadata().is_ok_and(|m| m.len() == ours.size && mtime_ns(&m) == ours.mtime_ns)
}

/// A block to copy from a local file into the file being assembled.
struct LocalCopy {
    /// Its index in the new file's list.
    i: usize,
    from: PathBuf,
    from_offset: u64,
    hash: Hash,
    size: u32,
    to_offset: u64,
}

/// Largest run of local blocks read and written at once.
const RUN: u64 = 4 << 20;

/// Copies blocks found in the folder into `out` (at their offsets), each
/// checked against its hash; returns the ones that could not be had
/// locally (the file changed since it was indexed, or is gone). Blocks
/// that follow each other in both files are read and written as one run,
/// so rebuilding a large file after a small edit costs few system calls.
fn copy_local(
    out: &std::fs::File,
    tmp: &Path,
    copies: Vec<LocalCopy>,
) -> Result<Vec<usize>, ApplyError> {
    use std::os::unix::fs::FileExt;
    let mut open: HashMap<PathBuf, Option<std::fs::File>> = HashMap::new();
    let mut buf = Vec::new();
    let mut missed = Vec::new();
    let mut rest = &copies[..];
    while let Some(first) = rest.first() {
        // The run: blocks contiguous in the source and in the new file.
        let mut len = first.size as u64;
        let mut n = 1;
        while let Some(c) = rest.get(n) {
            let follows = c.from == first.from
                && c.from_offset == first.from_offset + len
                && c.to_offset == first.to_offset + len;
            if !follows || len + c.size as u64 > RUN {
                break;
            }
            len += c.size as u64;
            n += 1;
        }
        let (run, after) = rest.split_at(n);
        rest = after;
        let from =
            open.entry(first.from.clone()).or_insert_with(|| std::fs::File::open(&first.from).ok());
        buf.resize(len as usize, 0);
        if from.as_ref().is_none_or(|f| f.read_exact_at(&mut buf, first.from_offset).is_err()) {
            missed.extend(run.iter().map(|c| c.i));
            continue;
        }
        let at = |c: &LocalCopy| {
            (c.to_offset - first.to_offset) as usize
                ..(c.to_offset - first.to_offset + c.size as u64) as usize
        };
        let good: Vec<bool> =
            run.iter().map(|c| blake3::hash(&buf[at(c)]).as_bytes() == &c.hash).collect();
        if good.iter().all(|g| *g) {
            out.write_all_at(&buf, first.to_offset).map_err(|e| io(tmp, e))?;
            continue;
        }
        for (c, ok) in run.iter().zip(good) {
            if ok {
                out.write_all_at(&buf[at(c)], c.to_offset).map_err(|e| io(tmp, e))?;
            } else {
                missed.push(c.i);
            }
        }
    }
    Ok(missed)
}

/// A file assembled in its temporary name, waiting to be installed.
#[derive(Debug)]
pub struct Prepared {
    tmp: PathBuf,
}

impl Prepared {
    /// Makes its content and its metadata (mode, mtime) durable.
    pub fn sync(&self) -> Result<(), ApplyError> {
        std::fs::File::open(&self.tmp).and_then(|f| f.sync_all()).map_err(|e| io(&self.tmp, e))
    }
}

impl Drop for Prepared {
    /// A prepared file that is not installed (it failed, was given up, or
    /// its batch was dropped) leaves no temporary file; once installed,
    /// there is none left to remove.
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.tmp);
    }
}

/// Assembles `theirs` into a temporary file beside `rel` (not yet synced).
async fn assemble(
    root: &Path,
    index: &Index,
    theirs: &FileInfo,
    rel: &RelPath,
    source: &dyn BlockSource,
) -> Result<Prepared, ApplyError> {
    let target = rel.under(root);
    let dir = target.parent().map_or_else(|| root.to_path_buf(), Path::to_path_buf);
    std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
    // Made first, so that any failure below removes the temporary file.
    let prepared = Prepared {
        tmp: dir.join(format!("{TMP_PREFIX}{:08x}-{}", rand::random::<u32>(), rel.file_name())),
    };
    let tmp = &prepared.tmp;
    let out = std::fs::File::create(tmp).map_err(|e| io(tmp, e))?;
    // Blocks any file in the folder has are copied on the blocking
    // pool; the others are fetched, up to FETCH_AHEAD at once. Each is
    // written at its offset, so the order they come in does not matter.
    let found = index.find_blocks(theirs.blocks.iter().map(|b| &b.hash))?;
    let mut missing = Vec::new();
    let mut copies = Vec::new();
    for (i, (b, f)) in theirs.blocks.iter().zip(found).enumerate() {
        match f {
            Some((path, from_offset, size)) if size == b.size => copies.push(LocalCopy {
                i,
                from: path.under(root),
                from_offset,
                hash: b.hash,
                size,
                to_offset: b.offset,
            }),
            _ => missing.push(i),
        }
    }
    let out = if copies.is_empty() {
        out
    } else {
        let t = tmp.clone();
        let (out, missed) = tokio::task::spawn_blocking(move || {
            let missed = copy_local(&out, &t, copies);
            (out, missed)
        })
        .await
        .map_err(|e| ApplyError::Io {
            path: tmp.display().to_string(),
            reason: e.to_string(),
            full: false,
        })?;
        missing.extend(missed?);
        out
    };
    let fetch =
        |i: usize| {
            let b = &theirs.blocks[i];
            let out = &out;
            async move {
                let bytes = source.fetch(b.hash, b.size).await.map_err(|reason| {
                    ApplyError::Block { path: rel.to_string(), block: i, reason }
                })?;
                std::os::unix::fs::FileExt::write_all_at(out, &bytes.into_bytes(), b.offset)
                    .map_err(|e| io(tmp, e))
            }
        };
    let mut fetched =
        futures::stream::iter(missing.into_iter().map(fetch)).buffer_unordered(FETCH_AHEAD);
    while let Some(r) = fetched.next().await {
        r?;
    }
    drop(fetched);
    out.set_permissions(std::fs::Permissions::from_mode(theirs.mode)).map_err(|e| io(tmp, e))?;
    let mtime =
        std::time::UNIX_EPOCH + std::time::Duration::from_nanos(theirs.mtime_ns.max(0) as u64);
    out.set_modified(mtime).map_err(|e| io(tmp, e))?;
    Ok(prepared)
}

/// Refuses to replace or delete a file whose size or mtime on disk is not
/// what the index says: it was changed here since the last scan (or was
/// never scanned), and must be compared as a local change first.
fn unchanged_since_scan(root: &Path, index: &Index, rel: &RelPath) -> Result<(), ApplyError> {
    let Ok(m) = rel.under(root).symlink_metadata() else { return Ok(()) };
    if !m.is_file() {
        return Ok(());
    }
    match index.get(rel)? {
        Some(f)
            if !f.deleted
                && f.kind == Kind::File
                && f.size == m.len()
                && f.mtime_ns == mtime_ns(&m) =>
        {
            Ok(())
        }
        _ => Err(ApplyError::ChangedHere(rel.to_string())),
    }
}

fn mtime_ns(m: &std::fs::Metadata) -> i128 {
    m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128
}

/// Moves a synced temporary file into place at `rel` (keeping what was
/// there, unless it changed since the last scan).
fn install(root: &Path, index: &Index, rel: &RelPath, p: Prepared) -> Result<(), ApplyError> {
    let target = rel.under(root);
    unchanged_since_scan(root, index, rel)?;
    keep_version(root, rel)?;
    std::fs::rename(&p.tmp, &target).map_err(|e| io(&target, e))
}

/// Assembles, syncs and installs one file.
async fn write_file(
    root: &Path,
    index: &Index,
    theirs: &FileInfo,
    rel: &RelPath,
    source: &dyn BlockSource,
) -> Result<(), ApplyError> {
    let p = assemble(root, index, theirs, rel, source).await?;
    p.sync()?;
    install(root, index, rel, p)
}

/// First half of taking a plain file in a batch: assembles it (`None`
/// when the folder already holds exactly it). The caller syncs the
/// filesystem once for the whole batch, then calls [`commit`].
pub async fn prepare(
    root: &Path,
    index: &Index,
    theirs: &FileInfo,
    source: &dyn BlockSource,
) -> Result<Option<Prepared>, ApplyError> {
    no_links_above(root, &theirs.path)?;
    if already_there(index, theirs, &theirs.path.under(root)) {
        return Ok(None);
    }
    assemble(root, index, theirs, &theirs.path, source).await.map(Some)
}

/// Second half: installs a prepared file and indexes it as taken from
/// peer `origin`.
pub fn commit(
    root: &Path,
    index: &Index,
    theirs: &FileInfo,
    p: Option<Prepared>,
    origin: Option<&str>,
) -> Result<(), ApplyError> {
    if let Some(p) = p {
        install(root, index, &theirs.path, p)?;
    }
    index.put_from(&as_on_disk(root, theirs), origin)?;
    Ok(())
}

/// Makes everything written so far in `root`'s filesystem durable.
pub fn sync_filesystem(root: &Path) -> Result<(), ApplyError> {
    let dir = std::fs::File::open(root).map_err(|e| io(root, e))?;
    rustix::fs::syncfs(&dir).map_err(|e| io(root, e.into()))
}

/// The index entry for what is now on disk at `theirs.path`: their
/// version, our disk's size, mtime and mode.
fn as_on_disk(root: &Path, theirs: &FileInfo) -> FileInfo {
    let mut info = theirs.clone();
    if let Ok(m) = theirs.path.under(root).symlink_metadata() {
        if !theirs.deleted && !m.file_type().is_symlink() {
            info.size = if m.is_file() { m.len() } else { 0 };
            info.mtime_ns = mtime_ns(&m);
            info.mode = m.permissions().mode() & 0o7777;
        }
    }
    info
}

/// Makes the folder hold `theirs` at its path and indexes it as taken from
/// peer `origin`.
pub async fn take(
    root: &Path,
    index: &Index,
    theirs: &FileInfo,
    source: &dyn BlockSource,
    origin: Option<&str>,
) -> Result<(), ApplyError> {
    let rel = &theirs.path;
    no_links_above(root, rel)?;
    let target = rel.under(root);
    if theirs.deleted {
        match target.symlink_metadata() {
            Ok(m) if m.is_dir() => {
                // Children go first (deletions are applied deepest first);
                // a directory still holding files is left in place.
                let _ = std::fs::remove_dir(&target);
            }
            Ok(m) if m.file_type().is_symlink() => {
                std::fs::remove_file(&target).map_err(|e| io(&target, e))?
            }
            Ok(_) => {
                unchanged_since_scan(root, index, rel)?;
                keep_version(root, rel)?
            }
            Err(_) => {}
        }
    } else {
        match &theirs.kind {
            Kind::Dir => {
                std::fs::create_dir_all(&target).map_err(|e| io(&target, e))?;
                std::fs::set_permissions(&target, std::fs::Permissions::from_mode(theirs.mode))
                    .map_err(|e| io(&target, e))?;
            }
            Kind::Symlink(to) => {
                if target.symlink_metadata().is_ok() {
                    keep_version(root, rel)?;
                    let _ = std::fs::remove_file(&target);
                }
                std::os::unix::fs::symlink(to, &target).map_err(|e| io(&target, e))?;
            }
            Kind::File if already_there(index, theirs, &target) => {}
            Kind::File => write_file(root, index, theirs, rel, source).await?,
        }
    }
    index.put_from(&as_on_disk(root, theirs), origin)?;
    Ok(())
}

/// Saves `loser`'s content under its conflict name (synced as a new file
/// by the next scan). `loser` may be ours (moved) or theirs (fetched).
pub async fn save_conflict_copy(
    root: &Path,
    index: &Index,
    loser: &FileInfo,
    ours: bool,
    source: &dyn BlockSource,
) -> Result<RelPath, ApplyError> {
    let side = Side { deleted: false, mtime_ns: loser.mtime_ns, by: loser.modified_by };
    let name = conflict_name(&loser.path, &side, &member_name(loser.modified_by)).map_err(|e| {
        ApplyError::Io { path: loser.path.to_string(), reason: e.to_string(), full: false }
    })?;
    no_links_above(root, &name)?;
    if ours {
        let (from, to) = (loser.path.under(root), name.under(root));
        std::fs::rename(&from, &to).map_err(|e| io(&from, e))?;
    } else if loser.kind == Kind::File {
        write_file(root, index, loser, &name, source).await?;
    }
    Ok(name)
}

#[cfg(test)]
#[path = "apply_tests.rs"]
mod tests;
