//! Test helper (feature `test-utils`): a real, small filesystem to fill,
//! for the services' full-disk tests.

use std::path::Path;
use std::process::Command;

/// A tmpfs of a given size mounted on a new temporary directory, unmounted
/// on drop. Mounting needs root (CI and the dev machine run tests as root).
#[derive(Debug)]
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `bytes`. Returns `None` only when not running as
    /// root, after printing a `SKIPPED` line that `.ci/run` counts; as root
    /// (CI runs as root) a failure to mount fails the test.
    pub fn mount(bytes: u64) -> Option<Tmpfs> {
        if !rustix::process::geteuid().is_root() {
            skipped("mounting a small filesystem needs root");
            return None;
        }
        let dir = tempfile::tempdir().expect("temporary directory");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(status.success(), "cannot mount a tmpfs on {}", dir.path().display());
        Some(Tmpfs { dir })
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the filesystem until fewer than `leave` bytes are free.
    pub fn fill(&self, leave: u64) {
        let st = rustix::fs::statvfs(self.path()).expect("statvfs");
        let free = st.f_bavail * st.f_frsize;
        let filler = vec![0u8; free.saturating_sub(leave) as usize];
        std::fs::write(self.path().join("filler"), filler).expect("write filler");
    }

    /// Makes the filesystem read-only (writes fail even for root).
    pub fn read_only(&self) {
        let status = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(self.dir.path())
            .status()
            .expect("run mount");
        assert!(status.success(), "cannot remount {} read-only", self.dir.path().display());
    }

    /// Removes what [`Tmpfs::fill`] wrote.
    pub fn unfill(&self) {
        let _ = std::fs::remove_file(self.path().join("filler"));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// Prints `SKIPPED <test>: <why>` straight to stderr, past the test
/// harness's output capture, so that a skip shows in the log and `.ci/run`
/// counts it apart from the passes.
pub fn skipped(why: &str) {
    use std::io::Write;
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a test");
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}
