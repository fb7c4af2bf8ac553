//! Scanning a folder into its index: new and changed paths get a new
//! version (this member's counter bumped), vanished ones a deletion
//! tombstone. Ignored paths (`.cloudyignore` at the root, gitignore syntax),
//! the versions directory and temporary files are never indexed, so they
//! are never sent nor deleted.
//!
//! A file is left for a later scan, never indexed half-written, when a
//! writer still has it open (the watcher saw it modified and not yet
//! closed), when its size or mtime changes while it is hashed, or when it
//! was modified less than `settle` ago. (One large `write` moves the mtime
//! only when it starts, and truncating a large file can take a while, so
//! the size and mtime alone can look settled while a writer is busy.)

use crate::chunk::blocks_of;
use crate::index::{FileInfo, Index, IndexError, Kind};
use crate::path::{RelPath, VERSIONS_DIR};
use crate::vv::VersionVector;
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use std::collections::HashSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// File name of the ignore patterns.
pub const IGNORE_FILE: &str = ".cloudyignore";
/// Prefix of files being pulled.
pub const TMP_PREFIX: &str = ".cloudy-tmp-";

/// Scan failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScanError {
    /// The folder root cannot be read.
    #[error("cannot read folder {path}: {reason}")]
    Root {
        /// The folder.
        path: String,
        /// Why.
        reason: String,
    },
    /// The index failed.
    #[error(transparent)]
    Index(#[from] IndexError),
}

/// What a scan changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanReport {
    /// Paths newly indexed or changed.
    pub changed: Vec<RelPath>,
    /// Paths marked deleted.
    pub deleted: Vec<RelPath>,
    /// Files that changed while being hashed (retried next scan).
    pub unstable: Vec<RelPath>,
}

/// The folder's ignore patterns.
pub fn ignores(root: &Path) -> Gitignore {
    let mut b = GitignoreBuilder::new(root);
    // A missing or unreadable file means no patterns.
    let _ = b.add(root.join(IGNORE_FILE));
    b.build().unwrap_or_else(|_| Gitignore::empty())
}

/// True for paths the scanner and puller leave alone.
pub fn is_ignored(ig: &Gitignore, path: &RelPath, is_dir: bool) -> bool {
    let name = path.file_name();
    name == IGNORE_FILE
        || name.starts_with(TMP_PREFIX)
        || path.as_str() == VERSIONS_DIR
        || ig.matched_path_or_any_parents(path.as_str(), is_dir).is_ignore()
}

fn mtime_ns(m: &std::fs::Metadata) -> i128 {
    m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128
}

/// The parts of an entry a scan compares to decide whether it changed.
fn same(old: &FileInfo, kind: &Kind, m: &std::fs::Metadata) -> bool {
    let mode = m.permissions().mode() & 0o7777;
    match kind {
        Kind::Dir => old.kind == Kind::Dir && old.mode == mode,
        Kind::Symlink(_) => &old.kind == kind,
        Kind::File => {
            old.kind == Kind::File
                && old.size == m.len()
                && old.mtime_ns == mtime_ns(m)
                && old.mode == mode
        }
    }
}

/// What a scan must leave alone for now.
#[derive(Clone, Debug, Default)]
pub struct Hold {
    /// Files modified more recently than this are not indexed yet.
    pub settle: std::time::Duration,
    /// Files a writer still has open (from the watcher's open/close events).
    pub busy: HashSet<std::path::PathBuf>,
    /// Files whose writer closed them after its last write: they are done,
    /// so they need not wait out `settle`.
    pub closed: HashSet<std::path::PathBuf>,
}

/// Deletes temporary files left by a pull that was interrupted (a crash or
/// kill); returns how many. Run before a folder's first scan.
pub fn remove_stale_temps(root: &Path) -> usize {
    walkdir::WalkDir::new(root)
        .follow_links(false)
        .into_iter()
        .filter_entry(|e| e.file_name() != VERSIONS_DIR)
        .flatten()
        .filter(|e| {
            e.file_type().is_file() && e.file_name().to_string_lossy().starts_with(TMP_PREFIX)
        })
        .filter(|e| std::fs::remove_file(e.path()).is_ok())
        .count()
}

/// Scans `root` into `index` as member `me`; files that `hold` names, or
/// that changed while hashed, are reported unstable instead.
pub fn scan(root: &Path, index: &Index, me: u64, hold: &Hold) -> Result<ScanReport, ScanError> {
    let settle = hold.settle;
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128);
    std::fs::read_dir(root)
        .map_err(|e| ScanError::Root { path: root.display().to_string(), reason: e.to_string() })?;
    let ig = ignores(root);
    let mut report = ScanReport::default();
    let mut seen = HashSet::new();
    let walk =
        walkdir::WalkDir::new(root).min_depth(1).follow_links(false).into_iter().filter_entry(
            |e| match RelPath::from_fs(root, e.path()) {
                Ok(p) => !is_ignored(&ig, &p, e.file_type().is_dir()),
                Err(_) => false,
            },
        );
    for entry in walk {
        // Entries that vanish or cannot be read are picked up next scan.
        let Ok(entry) = entry else { continue };
        let Ok(path) = RelPath::from_fs(root, entry.path()) else { continue };
        let Ok(m) = entry.path().symlink_metadata() else { continue };
        seen.insert(path.clone());
        let kind = if m.file_type().is_symlink() {
            match std::fs::read_link(entry.path()).ok().and_then(|t| t.to_str().map(String::from)) {
                Some(t) => Kind::Symlink(t),
                None => continue,
            }
        } else if m.is_dir() {
            Kind::Dir
        } else if m.is_file() {
            Kind::File
        } else {
            continue; // sockets, fifos, devices
        };
        let old = index.get(&path)?;
        if old.as_ref().is_some_and(|o| !o.deleted && same(o, &kind, &m)) {
            continue;
        }
        let blocks = match kind {
            Kind::File
                if hold.busy.contains(entry.path())
                    || (now_ns - mtime_ns(&m) < settle.as_nanos() as i128
                        && !hold.closed.contains(entry.path())) =>
            {
                report.unstable.push(path);
                continue;
            }
            Kind::File => {
                let hashed = std::fs::File::open(entry.path()).and_then(|f| blocks_of(f, m.len()));
                let after = entry.path().symlink_metadata();
                match (hashed, after) {
                    (Ok(b), Ok(a)) if a.len() == m.len() && mtime_ns(&a) == mtime_ns(&m) => b,
                    _ => {
                        report.unstable.push(path);
                        continue;
                    }
                }
            }
            _ => Vec::new(),
        };
        let version =
            old.as_ref().map_or_else(VersionVector::new, |o| o.version.clone()).bumped(me);
        let info = FileInfo {
            path: path.clone(),
            size: if kind == Kind::File { m.len() } else { 0 },
            kind,
            mtime_ns: mtime_ns(&m),
            mode: m.permissions().mode() & 0o7777,
            version,
            deleted: false,
            modified_by: me,
            blocks,
            sequence: 0,
        };
        index.put(&info)?;
        report.changed.push(path);
    }
    for old in index.all()? {
        if old.deleted
            || seen.contains(&old.path)
            || is_ignored(&ig, &old.path, old.kind == Kind::Dir)
        {
            continue;
        }
        let gone = FileInfo {
            version: old.version.bumped(me),
            deleted: true,
            modified_by: me,
            blocks: Vec::new(),
            size: 0,
            ..old.clone()
        };
        index.put(&gone)?;
        report.deleted.push(old.path);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[RelPath]) -> Vec<&str> {
        let mut n: Vec<&str> = v.iter().map(|p| p.as_str()).collect();
        n.sort();
        n
    }

    #[test]
    fn new_changed_deleted_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let ix = Index::in_memory();
        std::fs::create_dir(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/a.txt"), b"hello").unwrap();
        std::fs::write(root.join("empty"), b"").unwrap();
        std::fs::write(root.join("scratch.tmp"), b"x").unwrap();
        std::fs::write(root.join(IGNORE_FILE), b"*.tmp\n").unwrap();
        std::fs::write(root.join(".cloudy-tmp-123"), b"half").unwrap();
        std::fs::create_dir(root.join(VERSIONS_DIR)).unwrap();
        std::fs::write(root.join(VERSIONS_DIR).join("old"), b"v").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("link")).unwrap();
        let r = scan(root, &ix, 1, &Hold::default()).unwrap();
        assert_eq!(names(&r.changed), vec!["empty", "link", "sub", "sub/a.txt"]);
        let a = ix.get(&RelPath::parse("sub/a.txt").unwrap()).unwrap().unwrap();
        assert_eq!((a.size, a.blocks.len(), a.modified_by), (5, 1, 1));
        let link = ix.get(&RelPath::parse("link").unwrap()).unwrap().unwrap();
        assert_eq!(
            link.kind,
            Kind::Symlink("/etc/passwd".into()),
            "links are stored, not followed"
        );

        // Nothing changed: nothing indexed.
        assert_eq!(scan(root, &ix, 1, &Hold::default()).unwrap(), ScanReport::default());
        // A change and a deletion.
        std::fs::write(root.join("sub/a.txt"), b"hello, world").unwrap();
        std::fs::remove_file(root.join("empty")).unwrap();
        std::fs::remove_file(root.join("scratch.tmp")).unwrap();
        let r = scan(root, &ix, 1, &Hold::default()).unwrap();
        assert_eq!(names(&r.changed), vec!["sub/a.txt"]);
        assert_eq!(names(&r.deleted), vec!["empty"]);
        let a2 = ix.get(&RelPath::parse("sub/a.txt").unwrap()).unwrap().unwrap();
        assert_eq!(a2.version.compare(&a.version), crate::vv::Order::Newer);
        let gone = ix.get(&RelPath::parse("empty").unwrap()).unwrap().unwrap();
        assert!(gone.deleted);
        assert!(scan(Path::new("/nonexistent/folder"), &ix, 1, &Hold::default())
            .unwrap_err()
            .to_string()
            .contains("/nonexistent/folder"));
    }

    #[test]
    fn a_file_modified_just_now_waits() {
        let dir = tempfile::tempdir().unwrap();
        let ix = Index::in_memory();
        std::fs::write(dir.path().join("fresh"), b"being written").unwrap();
        let settle = Hold { settle: std::time::Duration::from_secs(60), ..Hold::default() };
        let r = scan(dir.path(), &ix, 1, &settle).unwrap();
        assert_eq!(names(&r.unstable), vec!["fresh"]);
        let busy = Hold { busy: [dir.path().join("fresh")].into(), ..Hold::default() };
        assert_eq!(
            names(&scan(dir.path(), &ix, 1, &busy).unwrap().unstable),
            vec!["fresh"],
            "a writer has it open"
        );
        assert!(ix.all().unwrap().is_empty(), "not indexed yet");
        // Its writer closed it: no need to wait.
        let closed = Hold { closed: [dir.path().join("fresh")].into(), ..settle };
        assert_eq!(names(&scan(dir.path(), &ix, 1, &closed).unwrap().changed), vec!["fresh"]);
    }
}
