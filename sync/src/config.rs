//! Sync settings.

use std::path::PathBuf;
use std::time::Duration;

/// Sync settings.
#[derive(Clone, Debug)]
pub struct SyncConfig {
    /// Full rescan period (the watcher catches changes in between).
    pub rescan: Duration,
    /// Quiet time after a filesystem event before scanning.
    pub debounce: Duration,
    /// A file modified more recently than this is not indexed yet (it may
    /// still be being written); the scan is repeated after this long.
    pub settle: Duration,
    /// Kept versions older than this are deleted (zero: kept for ever).
    pub keep_versions: Duration,
    /// Directories whose files never leave this node (the node's home, with
    /// its keys and token): a folder that holds one or lies inside one is
    /// refused, and one made so before is paused.
    pub private: Vec<PathBuf>,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            rescan: Duration::from_secs(60),
            debounce: Duration::from_millis(100),
            settle: Duration::from_millis(300),
            keep_versions: Duration::from_secs(30 * 86_400),
            private: Vec::new(),
        }
    }
}
