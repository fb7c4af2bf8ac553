//! Paths inside a shared folder, as they appear in indexes from peers.
//! A [`RelPath`] is always relative, `/`-separated and free of `.` / `..`,
//! so joining it to the folder root can never leave the folder.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where versions of replaced and deleted files are kept, in the folder.
pub const VERSIONS_DIR: &str = ".cloudy-versions";
/// Longest path accepted, in bytes.
pub const MAX_PATH: usize = 4096;

/// Why a path from a peer (or the disk) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refused path {path:?}: {reason}")]
pub struct PathError {
    /// The path as given (lossy).
    pub path: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// A safe path relative to a folder's root.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RelPath(String);

impl RelPath {
    /// Checks a path as received in an index.
    pub fn parse(s: &str) -> Result<RelPath, PathError> {
        let bad = |reason| Err(PathError { path: s.chars().take(200).collect(), reason });
        if s.is_empty() {
            return bad("empty");
        }
        if s.len() > MAX_PATH {
            return bad("too long");
        }
        if s.starts_with('/') {
            return bad("absolute");
        }
        if s.contains('\0') || s.contains('\\') {
            return bad("contains NUL or backslash");
        }
        for part in s.split('/') {
            match part {
                "" => return bad("empty component"),
                "." | ".." => return bad("contains . or .."),
                p if p.len() > 255 => return bad("component too long"),
                _ => {}
            }
        }
        if s == VERSIONS_DIR || s.starts_with(&format!("{VERSIONS_DIR}/")) {
            return bad("inside the versions directory");
        }
        Ok(RelPath(s.to_string()))
    }

    /// The path of `file` under `root`, if it is a plain, safe path.
    pub fn from_fs(root: &Path, file: &Path) -> Result<RelPath, PathError> {
        let rel = file.strip_prefix(root).map_err(|_| PathError {
            path: file.display().to_string(),
            reason: "outside the folder",
        })?;
        let s = rel
            .to_str()
            .ok_or(PathError { path: rel.display().to_string(), reason: "not UTF-8" })?;
        RelPath::parse(s)
    }

    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Where it is under `root`.
    pub fn under(&self, root: &Path) -> PathBuf {
        root.join(&self.0)
    }

    /// The last component.
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// The parent directory, if any.
    pub fn parent(&self) -> Option<RelPath> {
        self.0.rsplit_once('/').map(|(p, _)| RelPath(p.to_string()))
    }

    /// The same directory, another file name (which must be a single safe component).
    pub fn with_file_name(&self, name: &str) -> Result<RelPath, PathError> {
        match self.parent() {
            Some(p) => RelPath::parse(&format!("{}/{name}", p.0)),
            None => RelPath::parse(name),
        }
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_and_odd_paths_are_refused() {
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/./b",
            "a//b",
            "a/",
            "a\\..\\b",
            "x\0y",
            ".cloudy-versions/a",
            ".cloudy-versions",
        ] {
            assert!(RelPath::parse(bad).is_err(), "{bad:?} accepted");
        }
        let long = "a/".repeat(3000);
        assert_eq!(RelPath::parse(&long).unwrap_err().reason, "too long");
        for good in ["a", "a/b.txt", ".hidden", "dir/.cloudy-versions-not", "ünï/cödé"] {
            assert_eq!(RelPath::parse(good).unwrap().as_str(), good);
        }
    }

    #[test]
    fn names_and_parents() {
        let p = RelPath::parse("docs/report.pdf").unwrap();
        assert_eq!(p.file_name(), "report.pdf");
        assert_eq!(p.parent().unwrap().as_str(), "docs");
        assert_eq!(p.with_file_name("x.pdf").unwrap().as_str(), "docs/x.pdf");
        assert!(p.with_file_name("../x").is_err());
        let root = Path::new("/srv/f");
        assert_eq!(p.under(root), Path::new("/srv/f/docs/report.pdf"));
        assert_eq!(RelPath::from_fs(root, Path::new("/srv/f/docs/report.pdf")).unwrap(), p);
        assert!(RelPath::from_fs(root, Path::new("/srv/other")).is_err());
    }
}
