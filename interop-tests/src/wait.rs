//! Waiting for a condition with a deadline, never a bare sleep.

use std::path::Path;
use std::time::Duration;
use tokio::time::Instant;

/// Polls `done` every 50 ms until it holds; panics naming `what` after `secs`.
pub async fn wait_until(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "timed out after {secs} s waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (`secs` at most) until the file at `p` holds exactly `want`.
pub async fn wait_file(p: &Path, want: &[u8], secs: u64) {
    let what = format!("{} to hold the expected {} bytes", p.display(), want.len());
    wait_until(&what, secs, || std::fs::read(p).ok().as_deref() == Some(want)).await;
}
