//! Types of the filesystem API (`/v1/fs/…`): directories and paths on the
//! grid.

use serde::{Deserialize, Serialize};

/// Whether `name` can be an alias (`ALIAS:path`): letters, digits, `-`
/// and `_`, and not `cloudy` (capabilities start with `cloudy:`).
pub fn valid_alias(name: &str) -> bool {
    !name.is_empty()
        && name != "cloudy"
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// A directory capability and a path under it (`""`: the directory itself).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FsPath {
    /// Directory capability.
    pub cap: String,
    /// Path under it, `/`-separated.
    #[serde(default)]
    pub path: String,
}

/// `POST /v1/fs/mkdir`: a new directory at `path` under `cap` (with its
/// parents), or a new unlinked directory if `cap` is absent.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Mkdir {
    /// Directory to make it in.
    #[serde(default)]
    pub cap: Option<String>,
    /// Path of the new directory.
    #[serde(default)]
    pub path: String,
}

/// Answer of `POST /v1/fs/mkdir`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Made {
    /// Write capability of the directory.
    pub cap: String,
    /// Its read capability.
    pub read_cap: String,
}

/// One entry of a listing.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DirEntry {
    /// Name (a conflict name when two entries share one).
    pub name: String,
    /// `file` or `dir`.
    pub kind: String,
    /// The best capability the caller may have (write for a mutable child
    /// of a writable directory, otherwise read).
    pub cap: String,
    /// Its read capability.
    pub read_cap: String,
    /// Bytes (files).
    pub size: u64,
    /// Modification time, Unix seconds.
    pub mtime: u64,
    /// The name is a conflict name.
    #[serde(default)]
    pub conflict: bool,
}

/// `POST /v1/fs/ls` answer, and `GET /uri/DIRCAP[/path]?t=json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DirListing {
    /// The directory's capability as given (or as reached).
    pub cap: String,
    /// Its read capability.
    pub read_cap: String,
    /// Whether the caller can change it.
    pub writable: bool,
    /// Writers that have written it.
    pub writers: usize,
    /// Entries by name.
    pub entries: Vec<DirEntry>,
    /// Entries that could not be read, each named with what is wrong.
    #[serde(default)]
    pub bad: Vec<String>,
}

/// What `POST /v1/fs/stat` says a path is.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Stat {
    /// `file` or `dir`.
    pub kind: String,
    /// Its capability (write if the caller may have it).
    pub cap: String,
    /// Bytes (files; 0 for directories).
    pub size: u64,
    /// Modification time, Unix seconds (0 if not known).
    pub mtime: u64,
}

/// One new entry of `POST /v1/fs/link`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NewLink {
    /// Its name.
    pub name: String,
    /// The child's capability.
    pub cap: String,
    /// Bytes.
    #[serde(default)]
    pub size: u64,
    /// Modification time.
    #[serde(default)]
    pub mtime: u64,
}

/// `POST /v1/fs/link`: add entries to the directory at `path` under
/// `cap` (made with its parents if missing), in one update.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Link {
    /// Root directory.
    pub cap: String,
    /// Directory path under it.
    #[serde(default)]
    pub path: String,
    /// New entries.
    pub entries: Vec<NewLink>,
    /// Replace entries of the same names (otherwise 409 if one exists).
    #[serde(default)]
    pub replace: bool,
}

/// `POST /v1/fs/mv`: move (or rename) `from` to `to`; if `to` names a
/// directory, into it under the same name.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Move {
    /// Entry to move.
    pub from: FsPath,
    /// Where to.
    pub to: FsPath,
}

/// `POST /v1/fs/deep-check`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeepCheck {
    /// Root directory capability.
    pub cap: String,
    /// Path under it.
    #[serde(default)]
    pub path: String,
    /// Fetch and verify every block.
    #[serde(default)]
    pub verify: bool,
    /// Repair what is not healthy.
    #[serde(default)]
    pub repair: bool,
}

/// One thing a deep check found not healthy.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeepProblem {
    /// Path under the root.
    pub path: String,
    /// What is wrong.
    pub what: String,
    /// Whether it can be repaired.
    pub recoverable: bool,
    /// Whether this run repaired it.
    pub repaired: bool,
}

/// Answer of `POST /v1/fs/deep-check`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeepCheckReport {
    /// Directories walked.
    pub dirs: usize,
    /// Files checked.
    pub files: usize,
    /// Objects found healthy.
    pub healthy: usize,
    /// The rest.
    pub problems: Vec<DeepProblem>,
}
