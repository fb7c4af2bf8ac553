//! Folder sync between real processes, through the CLI.

use super::{cli, fails_with, json, start_nodes, wait_json, EXE};
use cloudy_node::process::NodeProcess;
use std::path::Path;
use std::time::Duration;

/// Waits (20 s at most) until the file at `p` holds `want`.
async fn wait_file(p: &Path, want: &[u8]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while std::fs::read(p).ok().as_deref() != Some(want) {
        assert!(tokio::time::Instant::now() < deadline, "{} never got the expected content", p.display());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (20 s at most) until `done` holds.
async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Two nodes, and empty folders `a` and `b` beside their homes.
async fn two_nodes_with_folders(dir: &Path, prefix: &str) -> (Vec<NodeProcess>, Vec<std::path::PathBuf>, std::path::PathBuf, std::path::PathBuf) {
    let (nodes, h) = start_nodes(dir, prefix, 2).await;
    let (a, b) = (dir.join("a"), dir.join("b"));
    std::fs::create_dir(&a).unwrap();
    std::fs::create_dir(&b).unwrap();
    (nodes, h, a, b)
}

/// Shares `a` on node 0 with node 1 (named `name`), and joins it at `b`;
/// returns the invite.
async fn share(h: &[std::path::PathBuf], nodes: &[NodeProcess], a: &Path, b: &Path, name: &str) -> String {
    let out = cli(&h[0], &["sync", "add", a.to_str().unwrap(), "--name", name, "--member", &nodes[1].peer_id]).await;
    assert!(out.ok, "{}", out.stderr);
    let invite = out.stdout.split_whitespace().find(|w| w.starts_with("cloudy-sync:")).expect("an invite").to_string();
    let out = cli(&h[1], &["sync", "join", &invite, b.to_str().unwrap()]).await;
    assert!(out.ok, "{}", out.stderr);
    invite
}

fn write_at_time(p: &Path, data: &[u8], unix: u64) {
    std::fs::write(p, data).unwrap();
    let f = std::fs::File::options().write(true).open(p).unwrap();
    f.set_modified(std::time::UNIX_EPOCH + Duration::from_secs(unix)).unwrap();
}

/// The files in `dir` whose name has `part`, as their contents.
fn contents_named(dir: &Path, part: &str) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = std::fs::read_dir(dir)
        .map(|d| d.flatten().filter(|e| e.file_name().to_string_lossy().contains(part)).filter_map(|e| std::fs::read(e.path()).ok()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renames_deletes_conflicts_and_an_offline_member_across_processes() {
    let dir = tempfile::tempdir().unwrap();
    let (mut nodes, h, a, b) = two_nodes_with_folders(dir.path(), "r").await;
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2654435761) >> 9) as u8).collect();
    std::fs::write(a.join("big.bin"), &big).unwrap();
    std::fs::write(a.join("f.txt"), b"base").unwrap();
    std::fs::write(a.join("d.txt"), b"to be deleted").unwrap();
    share(&h, &nodes, &a, &b, "docs").await;
    wait_file(&b.join("big.bin"), &big).await;
    wait_file(&b.join("f.txt"), b"base").await;
    wait_file(&b.join("d.txt"), b"to be deleted").await;
    let downloaded = |v: &serde_json::Value| v[0]["downloaded"].as_u64().unwrap_or(0);
    let before = downloaded(&json(&h[1], &["sync", "status", "docs", "--json"]).await);
    assert!(before >= big.len() as u64, "the first copy was downloaded: {before}");

    // A rename is rebuilt from the blocks already here: nothing downloaded.
    std::fs::rename(a.join("big.bin"), a.join("moved.bin")).unwrap();
    wait_file(&b.join("moved.bin"), &big).await;
    wait_until("the old name to go", || !b.join("big.bin").exists()).await;
    let after = downloaded(&json(&h[1], &["sync", "status", "docs", "--json"]).await);
    assert_eq!(after, before, "a rename downloads no file data");

    // A deletion propagates, and the deleted file is kept as a version.
    std::fs::remove_file(a.join("d.txt")).unwrap();
    wait_until("the deletion", || !b.join("d.txt").exists()).await;
    assert_eq!(contents_named(&b.join(".cloudy-versions"), "d.txt~"), vec![b"to be deleted".to_vec()]);

    // Node 1 goes offline; both edit f.txt (node 1's edit is the later
    // one) and node 0 adds a file.
    assert!(cli(&h[1], &["stop"]).await.ok);
    nodes[1].wait_exit(Duration::from_secs(10)).await.expect("node 1 stops");
    write_at_time(&a.join("f.txt"), b"from node 0", 1_790_000_000);
    write_at_time(&b.join("f.txt"), b"from node 1, later", 1_790_000_100);
    std::fs::write(a.join("offline.txt"), b"made while node 1 was away").unwrap();
    wait_json(&h[0], &["sync", "status", "docs", "--json"], "node 0 to index its changes", 20, |v| v[0]["files"] == 3).await;
    let home = nodes[1].home.clone();
    nodes[1] = NodeProcess::start(Path::new(EXE), &home, 1, None).await.unwrap();
    wait_file(&b.join("offline.txt"), b"made while node 1 was away").await;
    // Both versions everywhere: the later edit keeps the name.
    for d in [&a, &b] {
        wait_file(&d.join("f.txt"), b"from node 1, later").await;
        wait_until("the conflict copy", || contents_named(d, "sync-conflict") == vec![b"from node 0".to_vec()]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_sync_through_the_cli_and_a_stranger_waits_for_admission() {
    let dir = tempfile::tempdir().unwrap();
    let (nodes, h) = start_nodes(dir.path(), "y", 3).await;
    let d: Vec<_> = (0..3).map(|i| dir.path().join(format!("folder{i}"))).collect();
    for p in &d {
        std::fs::create_dir(p).unwrap();
    }
    // Bad folders are named.
    fails_with(&h[0], &["sync", "add", "/nonexistent/dir"], "/nonexistent/dir").await;
    let file = dir.path().join("plain.txt");
    std::fs::write(&file, b"x").unwrap();
    fails_with(&h[0], &["sync", "add", file.to_str().unwrap()], "not a directory").await;
    fails_with(&h[1], &["sync", "join", "cloudy-sync:nope", d[1].to_str().unwrap()], "bad invite").await;

    std::fs::write(d[0].join("hello.txt"), b"hello from node 0").unwrap();
    let invite = share(&h, &nodes, &d[0], &d[1], "docs").await;
    wait_file(&d[1].join("hello.txt"), b"hello from node 0").await;
    std::fs::create_dir(d[1].join("sub")).unwrap();
    std::fs::write(d[1].join("sub/reply.txt"), b"reply from node 1").unwrap();
    wait_file(&d[0].join("sub/reply.txt"), b"reply from node 1").await;

    // Node 2 was not named: it waits for admission and gets nothing.
    let out = cli(&h[2], &["sync", "join", &invite, d[2].to_str().unwrap()]).await;
    assert!(out.ok, "{}", out.stderr);
    let id2 = nodes[2].peer_id.clone();
    wait_json(&h[0], &["sync", "status", "docs", "--json"], "the join request", 20, |v| {
        v[0]["pending"].as_array().is_some_and(|p| p.iter().any(|x| x == id2.as_str()))
    })
    .await;
    assert_eq!(std::fs::read_dir(&d[2]).unwrap().count(), 0, "a stranger receives nothing");
    fails_with(&h[1], &["sync", "admit", "docs", &id2], "only the folder's owner").await;
    let out = cli(&h[0], &["sync", "admit", "docs", &id2]).await;
    assert!(out.ok, "{}", out.stderr);
    wait_file(&d[2].join("sub/reply.txt"), b"reply from node 1").await;
    wait_json(&h[2], &["sync", "list", "--json"], "in sync", 20, |v| v[0]["state"] == "in sync" && v[0]["files"] == 3).await;

    // Removing keeps the files and stops syncing.
    let out = cli(&h[2], &["sync", "remove", "docs"]).await;
    assert!(out.ok && out.stdout.contains("its files stay"), "{}", out.stderr);
    assert!(d[2].join("hello.txt").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_pull_leaves_no_corrupt_file_and_sync_resumes_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (mut nodes, h, a, b) = two_nodes_with_folders(dir.path(), "z").await;
    let data: Vec<u8> = (0..96_000_000u32).map(|i| (i.wrapping_mul(2654435761) >> 11) as u8).collect();
    std::fs::write(a.join("big.bin"), &data).unwrap();
    share(&h, &nodes, &a, &b, "big").await;
    // Kill node 1 as soon as it is writing the file.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let pulling = || std::fs::read_dir(&b).unwrap().flatten().any(|e| e.file_name().to_string_lossy().starts_with(".cloudy-tmp-"));
    while !pulling() {
        assert!(tokio::time::Instant::now() < deadline, "node 1 never started pulling");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    nodes[1].kill9().await;
    let visible = std::fs::read(b.join("big.bin")).ok();
    assert!(visible.is_none() || visible.as_ref() == Some(&data), "a partial file is visible under the real name");
    // Restarted, it cleans up and finishes.
    let home = nodes[1].home.clone();
    nodes[1] = NodeProcess::start(Path::new(EXE), &home, 1, None).await.unwrap();
    wait_file(&b.join("big.bin"), &data).await;
    wait_json(&h[1], &["sync", "list", "--json"], "in sync", 20, |v| v[0]["state"] == "in sync").await;
    assert!(!pulling(), "the interrupted pull's temporary file is gone");
}
