//! Availability history is saved to SQLite and reloaded by a restarted node.
#![allow(clippy::unwrap_used)] // test and benchmark code: a failed unwrap is a failed run

use cloudy_overlay::testing::{fast_config, wait_until, TestNode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn availability_history_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let observed = TestNode::start(fast_config()).await.unwrap();
    let pid = observed.handle.local_peer_id();
    let mut cfg = fast_config();
    cfg.bootstrap = vec![observed.addr()];
    cfg.history_path = Some(dir.path().join("history.sqlite"));

    let observer = TestNode::start(cfg.clone()).await.unwrap();
    // A fresh member scores exactly 0.5 (the prior); about 2 s of uptime
    // moves it above 0.5015.
    wait_until(&observer.handle, "uptime accounted", |s| {
        s.peers.get(&pid).is_some_and(|p| p.availability > 0.5015)
    })
    .await
    .unwrap();
    observer.cancel.cancel();
    observer.task.await.unwrap();

    let restarted = TestNode::start(cfg).await.unwrap();
    let s = wait_until(&restarted.handle, "member seen again", |s| s.peers.contains_key(&pid))
        .await
        .unwrap();
    let a = s.peers[&pid].availability;
    assert!(a > 0.5015, "history was not reloaded: availability {a}");
}
