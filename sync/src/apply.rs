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

use crate::chunk::{Block, Hash};
use crate::conflict::{conflict_name, Side};
use crate::index::{FileInfo, Index, IndexError, Kind};
use crate::path::{RelPath, VERSIONS_DIR};
use crate::scan::TMP_PREFIX;
use futures::future::BoxFuture;
use futures::StreamExt;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Blocks fetched at once for one file.
pub const FETCH_AHEAD: usize = 8;

/// Where missing blocks come from (the network, in the node).
pub trait BlockSource: Send + Sync {
    /// The bytes of the block with `hash` (`size` bytes), or why not.
    fn fetch(&self, hash: Hash, size: u32) -> BoxFuture<'_, Result<Vec<u8>, String>>;
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
        reason: String,
    },
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
    let stamp = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!("[year][month][day]-[hour][minute][second]"))
        .unwrap_or_default();
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

/// Reads a block from a local file and checks it.
fn local_block(root: &Path, index: &Index, b: &Block) -> Option<Vec<u8>> {
    let (path, offset, size) = index.find_block(&b.hash).ok()??;
    let mut f = std::fs::File::open(path.under(root)).ok()?;
    f.seek(SeekFrom::Start(offset)).ok()?;
    let mut buf = vec![0u8; size as usize];
    f.read_exact(&mut buf).ok()?;
    (*blake3::hash(&buf).as_bytes() == b.hash).then_some(buf)
}

/// Whether the file at `rel` already has exactly `theirs`'s content.
fn already_there(index: &Index, theirs: &FileInfo, target: &Path) -> bool {
    let Ok(Some(ours)) = index.get(&theirs.path) else { return false };
    !ours.deleted
        && ours.kind == Kind::File
        && ours.blocks.iter().map(|b| b.hash).eq(theirs.blocks.iter().map(|b| b.hash))
        && target.metadata().is_ok_and(|m| m.len() == ours.size && m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128 == ours.mtime_ns)
}

/// One block of a file being assembled: from the folder if any file has
/// it, else from `source`; checked against its hash either way.
fn block_bytes<'a>(
    root: &'a Path,
    index: &'a Index,
    source: &'a dyn BlockSource,
    rel: &'a RelPath,
    i: usize,
    b: &'a Block,
) -> BoxFuture<'a, Result<Vec<u8>, ApplyError>> {
    Box::pin(async move {
        if let Some(bytes) = local_block(root, index, b) {
            return Ok(bytes);
        }
        let bad = |reason: String| ApplyError::Block { path: rel.to_string(), block: i, reason };
        let bytes = source.fetch(b.hash, b.size).await.map_err(bad)?;
        if *blake3::hash(&bytes).as_bytes() != b.hash {
            return Err(bad("hash mismatch".into()));
        }
        Ok(bytes)
    })
}

/// Writes file `theirs` at `rel` (its own path, or a conflict name).
/// A file assembled in its temporary name, waiting to be installed.
pub struct Prepared {
    tmp: PathBuf,
}

/// Assembles `theirs` into a temporary file beside `rel` (not yet synced).
async fn assemble(root: &Path, index: &Index, theirs: &FileInfo, rel: &RelPath, source: &dyn BlockSource) -> Result<Prepared, ApplyError> {
    let target = rel.under(root);
    let dir = target.parent().map_or_else(|| root.to_path_buf(), Path::to_path_buf);
    std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
    let tmp: PathBuf = dir.join(format!("{TMP_PREFIX}{:08x}-{}", rand::random::<u32>(), rel.file_name()));
    let result = async {
        let mut out = std::fs::File::create(&tmp).map_err(|e| io(&tmp, e))?;
        // Blocks in order, up to FETCH_AHEAD fetched at once; local ones
        // are read from the folder.
        let wanted: Vec<BoxFuture<'_, Result<Vec<u8>, ApplyError>>> =
            theirs.blocks.iter().enumerate().map(|(i, b)| block_bytes(root, index, source, rel, i, b)).collect();
        let mut blocks = futures::stream::iter(wanted).buffered(FETCH_AHEAD);
        while let Some(bytes) = blocks.next().await {
            out.write_all(&bytes?).map_err(|e| io(&tmp, e))?;
        }
        out.set_permissions(std::fs::Permissions::from_mode(theirs.mode)).map_err(|e| io(&tmp, e))?;
        let mtime = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(theirs.mtime_ns.max(0) as u64);
        out.set_modified(mtime).map_err(|e| io(&tmp, e))
    }
    .await;
    match result {
        Ok(()) => Ok(Prepared { tmp }),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Moves a synced temporary file into place at `rel` (keeping what was there).
fn install(root: &Path, rel: &RelPath, p: Prepared) -> Result<(), ApplyError> {
    let target = rel.under(root);
    let done = keep_version(root, rel).and_then(|()| std::fs::rename(&p.tmp, &target).map_err(|e| io(&target, e)));
    if done.is_err() {
        let _ = std::fs::remove_file(&p.tmp);
    }
    done
}

/// Assembles, syncs and installs one file.
async fn write_file(root: &Path, index: &Index, theirs: &FileInfo, rel: &RelPath, source: &dyn BlockSource) -> Result<(), ApplyError> {
    let p = assemble(root, index, theirs, rel, source).await?;
    if let Err(e) = std::fs::File::open(&p.tmp).and_then(|f| f.sync_all()) {
        let _ = std::fs::remove_file(&p.tmp);
        return Err(io(&p.tmp, e));
    }
    install(root, rel, p)
}

/// First half of taking a plain file in a batch: assembles it (`None`
/// when the folder already holds exactly it). The caller syncs the
/// filesystem once for the whole batch, then calls [`commit`].
pub async fn prepare(root: &Path, index: &Index, theirs: &FileInfo, source: &dyn BlockSource) -> Result<Option<Prepared>, ApplyError> {
    no_links_above(root, &theirs.path)?;
    if already_there(index, theirs, &theirs.path.under(root)) {
        return Ok(None);
    }
    assemble(root, index, theirs, &theirs.path, source).await.map(Some)
}

/// Second half: installs a prepared file and indexes it.
pub fn commit(root: &Path, index: &Index, theirs: &FileInfo, p: Option<Prepared>) -> Result<(), ApplyError> {
    if let Some(p) = p {
        install(root, &theirs.path, p)?;
    }
    index.put(&as_on_disk(root, theirs))?;
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
            info.mtime_ns = m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128;
            info.mode = m.permissions().mode() & 0o7777;
        }
    }
    info
}

/// Makes the folder hold `theirs` at its path and indexes it.
pub async fn take(root: &Path, index: &Index, theirs: &FileInfo, source: &dyn BlockSource) -> Result<(), ApplyError> {
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
            Ok(m) if m.file_type().is_symlink() => std::fs::remove_file(&target).map_err(|e| io(&target, e))?,
            Ok(_) => keep_version(root, rel)?,
            Err(_) => {}
        }
    } else {
        match &theirs.kind {
            Kind::Dir => {
                std::fs::create_dir_all(&target).map_err(|e| io(&target, e))?;
                std::fs::set_permissions(&target, std::fs::Permissions::from_mode(theirs.mode)).map_err(|e| io(&target, e))?;
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
    index.put(&as_on_disk(root, theirs))?;
    Ok(())
}

/// Saves `loser`'s content under its conflict name (synced as a new file
/// by the next scan). `loser` may be ours (moved) or theirs (fetched).
pub async fn save_conflict_copy(root: &Path, index: &Index, loser: &FileInfo, ours: bool, source: &dyn BlockSource) -> Result<RelPath, ApplyError> {
    let side = Side { deleted: false, mtime_ns: loser.mtime_ns, by: loser.modified_by };
    let name = conflict_name(&loser.path, &side, &member_name(loser.modified_by))
        .map_err(|e| ApplyError::Io { path: loser.path.to_string(), reason: e.to_string(), full: false })?;
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
