//! Folder sync between real processes, through the CLI: three members,
//! renames, deletes, an offline member that catches up with a conflict, a
//! stranger admitted, and a kill -9 in the middle of a pull.

use cloudy_interop_tests::{wait_file, wait_until, Community, Member};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `n` nodes, and an empty folder `dir/folder<i>` for each.
pub(crate) async fn nodes_with_folders(n: usize) -> (Community, Vec<PathBuf>) {
    let c = Community::start(n).await;
    let d: Vec<PathBuf> = (0..n).map(|i| c.dir().join(format!("folder{i}"))).collect();
    for p in &d {
        std::fs::create_dir(p).unwrap();
    }
    (c, d)
}

/// Shares `folder` on node 0 as `name`, naming `members` in advance;
/// returns the invite.
pub(crate) async fn share(
    owner: &Member,
    folder: &Path,
    name: &str,
    members: &[&Member],
) -> String {
    let mut args = vec!["sync", "add", folder.to_str().unwrap(), "--name", name];
    for m in members {
        args.extend(["--member", m.peer_id()]);
    }
    let out = owner.ok(&args).await;
    out.split_whitespace().find(|w| w.starts_with("cloudy-sync:")).expect("an invite").to_string()
}

/// `sync join INVITE folder` on `node`.
pub(crate) async fn join(node: &Member, invite: &str, folder: &Path) {
    node.ok(&["sync", "join", invite, folder.to_str().unwrap()]).await;
}

pub(crate) fn write_at_time(p: &Path, data: &[u8], unix: u64) {
    std::fs::write(p, data).unwrap();
    let f = std::fs::File::options().write(true).open(p).unwrap();
    f.set_modified(std::time::UNIX_EPOCH + Duration::from_secs(unix)).unwrap();
}

/// The files in `dir` whose name has `part`, as their contents.
pub(crate) fn contents_named(dir: &Path, part: &str) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().contains(part))
                .filter_map(|e| std::fs::read(e.path()).ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_with_renames_deletes_and_an_offline_member_catching_up() {
    let (mut c, d) = nodes_with_folders(3).await;
    // The node's home, or a directory holding it, is never shared: its
    // keys would reach every member.
    let home = c[0].home().to_str().unwrap().to_string();
    c[0].fails_with(&["sync", "add", &home], "must never leave this machine").await;
    let parent = c[0].home().parent().unwrap().to_str().unwrap().to_string();
    c[0].fails_with(&["sync", "add", &parent], "holds this node's home").await;
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2654435761) >> 9) as u8).collect();
    std::fs::write(d[0].join("big.bin"), &big).unwrap();
    std::fs::write(d[0].join("f.txt"), b"base").unwrap();
    std::fs::write(d[0].join("d.txt"), b"to be deleted").unwrap();
    let invite = share(&c[0], &d[0], "docs", &[&c[1], &c[2]]).await;
    join(&c[1], &invite, &d[1]).await;
    join(&c[2], &invite, &d[2]).await;
    for f in &d[1..] {
        wait_file(&f.join("big.bin"), &big, 20).await;
        wait_file(&f.join("f.txt"), b"base", 20).await;
        wait_file(&f.join("d.txt"), b"to be deleted", 20).await;
    }
    let downloaded = |v: &serde_json::Value| v[0]["downloaded"].as_u64().unwrap_or(0);
    let before = downloaded(&c[1].json(&["sync", "status", "docs", "--json"]).await);
    assert!(before > 0, "node 1 downloaded the first copy");

    // A rename is rebuilt from the blocks already here: nothing downloaded.
    std::fs::rename(d[0].join("big.bin"), d[0].join("moved.bin")).unwrap();
    wait_file(&d[1].join("moved.bin"), &big, 20).await;
    wait_until("the old name to go", 20, || !d[1].join("big.bin").exists()).await;
    let after = downloaded(&c[1].json(&["sync", "status", "docs", "--json"]).await);
    assert_eq!(after, before, "a rename downloads no file data");

    // A deletion propagates, and the deleted file is kept as a version.
    std::fs::remove_file(d[0].join("d.txt")).unwrap();
    for f in &d[1..] {
        wait_until("the deletion", 20, || !f.join("d.txt").exists()).await;
        assert_eq!(
            contents_named(&f.join(".cloudy-versions"), "d.txt~"),
            vec![b"to be deleted".to_vec()]
        );
    }

    // Node 1 goes offline; both node 0 and node 1 edit f.txt (node 1's
    // edit is the later one), and node 2 adds a file.
    c[1].stop().await;
    write_at_time(&d[0].join("f.txt"), b"from node 0", 1_790_000_000);
    write_at_time(&d[1].join("f.txt"), b"from node 1, later", 1_790_000_100);
    std::fs::write(d[2].join("offline.txt"), b"made while node 1 was away").unwrap();
    wait_file(&d[0].join("offline.txt"), b"made while node 1 was away", 20).await;
    wait_file(&d[2].join("f.txt"), b"from node 0", 20).await;
    c[1].restart().await;
    wait_file(&d[1].join("offline.txt"), b"made while node 1 was away", 30).await;
    // Both versions everywhere: the later edit keeps the name.
    for f in &d {
        wait_file(&f.join("f.txt"), b"from node 1, later", 30).await;
        wait_until("the conflict copy", 30, || {
            contents_named(f, "sync-conflict") == vec![b"from node 0".to_vec()]
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_sync_through_the_cli_and_a_stranger_waits_for_admission() {
    let (c, d) = nodes_with_folders(3).await;
    // Bad folders are named.
    c[0].fails_with(&["sync", "add", "/nonexistent/dir"], "/nonexistent/dir").await;
    let file = c.dir().join("plain.txt");
    std::fs::write(&file, b"x").unwrap();
    c[0].fails_with(&["sync", "add", file.to_str().unwrap()], "not a directory").await;
    c[1].fails_with(&["sync", "join", "cloudy-sync:nope", d[1].to_str().unwrap()], "bad invite")
        .await;

    std::fs::write(d[0].join("hello.txt"), b"hello from node 0").unwrap();
    let invite = share(&c[0], &d[0], "docs", &[&c[1]]).await;
    join(&c[1], &invite, &d[1]).await;
    wait_file(&d[1].join("hello.txt"), b"hello from node 0", 20).await;
    std::fs::create_dir(d[1].join("sub")).unwrap();
    std::fs::write(d[1].join("sub/reply.txt"), b"reply from node 1").unwrap();
    wait_file(&d[0].join("sub/reply.txt"), b"reply from node 1", 20).await;

    // Node 2 was not named: it waits for admission and gets nothing.
    let out = c[2].cli(&["sync", "join", &invite, d[2].to_str().unwrap()]).await;
    assert!(out.ok, "{}", out.stderr);
    let id2 = c[2].peer_id().to_string();
    c[0].wait_json(&["sync", "status", "docs", "--json"], "the join request", 20, |v| {
        v[0]["pending"].as_array().is_some_and(|p| p.iter().any(|x| x == id2.as_str()))
    })
    .await;
    assert_eq!(std::fs::read_dir(&d[2]).unwrap().count(), 0, "a stranger receives nothing");
    c[1].fails_with(&["sync", "admit", "docs", &id2], "only the folder's owner").await;
    let out = c[0].cli(&["sync", "admit", "docs", &id2]).await;
    assert!(out.ok, "{}", out.stderr);
    wait_file(&d[2].join("sub/reply.txt"), b"reply from node 1", 20).await;
    c[2].wait_json(&["sync", "list", "--json"], "in sync", 20, |v| {
        v[0]["state"] == "in sync" && v[0]["files"] == 3
    })
    .await;

    // Removing keeps the files and stops syncing.
    let out = c[2].cli(&["sync", "remove", "docs"]).await;
    assert!(out.ok && out.stdout.contains("its files stay"), "{}", out.stderr);
    assert!(d[2].join("hello.txt").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_pull_leaves_no_corrupt_file_and_sync_resumes_after_restart() {
    let (mut c, d) = nodes_with_folders(2).await;
    let (a, b) = (&d[0], &d[1]);
    let data: Vec<u8> =
        (0..96_000_000u32).map(|i| (i.wrapping_mul(2654435761) >> 11) as u8).collect();
    std::fs::write(a.join("big.bin"), &data).unwrap();
    let invite = share(&c[0], a, "big", &[&c[1]]).await;
    join(&c[1], &invite, b).await;
    // Kill node 1 as soon as it is writing the file.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let pulling = || {
        std::fs::read_dir(b)
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with(".cloudy-tmp-"))
    };
    while !pulling() {
        assert!(tokio::time::Instant::now() < deadline, "node 1 never started pulling");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    c[1].kill9().await;
    let visible = std::fs::read(b.join("big.bin")).ok();
    assert!(
        visible.is_none() || visible.as_ref() == Some(&data),
        "a partial file is visible under the real name"
    );
    // Restarted, it cleans up and finishes.
    c[1].restart().await;
    wait_file(&b.join("big.bin"), &data, 30).await;
    c[1].wait_json(&["sync", "list", "--json"], "in sync", 20, |v| v[0]["state"] == "in sync")
        .await;
    assert!(!pulling(), "the interrupted pull's temporary file is gone");
}
