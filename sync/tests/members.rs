//! In-process members on QUIC at 127.0.0.1 syncing real directories.
#![allow(clippy::unwrap_used)] // test and benchmark code: a failed unwrap is a failed run

use cloudy_overlay::tasks::Tasks;
use cloudy_overlay::testing::{fast_config, TestNet};
use cloudy_sync::folder_state::FolderState;
use cloudy_sync::service::{SyncConfig, SyncService};
use std::path::Path;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

struct Member {
    sync: SyncService,
    dir: tempfile::TempDir,
    _data: tempfile::TempDir,
}

const CFG: SyncConfig = SyncConfig {
    rescan: Duration::from_secs(30),
    debounce: Duration::from_millis(50),
    settle: Duration::from_millis(100),
    keep_versions: Duration::from_secs(86_400),
    private: Vec::new(),
};

/// `n` overlay nodes; the first `with_sync` of them run sync.
async fn members(n: usize, with_sync: usize) -> (TestNet, Vec<Member>, CancellationToken) {
    let net = TestNet::start(n, fast_config()).await.unwrap();
    net.wait_all_alive().await.unwrap();
    let cancel = CancellationToken::new();
    let mut out = Vec::new();
    for node in &net.nodes[..with_sync] {
        let data = tempfile::tempdir().unwrap();
        let sync = SyncService::start(
            node.handle.clone(),
            data.path(),
            CFG,
            &Tasks::new("test", cancel.clone()),
        )
        .unwrap();
        out.push(Member { sync, dir: tempfile::tempdir().unwrap(), _data: data });
    }
    (net, out, cancel)
}

/// Waits (20 s at most) until `pred` holds.
async fn until(what: &str, mut pred: impl FnMut() -> bool) {
    for _ in 0..400 {
        if pred() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Starts sync again on a node whose sync was stopped (the old session's
/// protocol registration may take a moment to go away).
async fn restart(
    node: &cloudy_overlay::Handle,
    data: &Path,
    cancel: &CancellationToken,
) -> SyncService {
    let mut s = None;
    until("sync to restart", || {
        s = s.take().or_else(|| {
            SyncService::start(node.clone(), data, CFG, &Tasks::new("test", cancel.clone())).ok()
        });
        s.is_some()
    })
    .await;
    s.expect("started")
}

fn read(p: &Path) -> Option<Vec<u8>> {
    std::fs::read(p).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_members_sync_edits_deletes_renames_and_a_stranger_is_refused() {
    let (net, m, cancel) = members(3, 3).await;
    let ids: Vec<String> = net.nodes.iter().map(|n| n.handle.local_peer_id().to_string()).collect();
    let (a, b) = (&m[0], &m[1]);
    std::fs::write(a.dir.path().join("before.txt"), b"existed before sharing").unwrap();
    let folder = a.sync.add(a.dir.path(), Some("docs".into()), vec![ids[1].clone()]).unwrap();
    b.sync.join(&folder.invite(), b.dir.path()).unwrap();
    let bp = b.dir.path().to_path_buf();
    until("the first file", || {
        read(&bp.join("before.txt")).as_deref() == Some(&b"existed before sharing"[..])
    })
    .await;

    // New file, nested.
    std::fs::create_dir(a.dir.path().join("sub")).unwrap();
    let big: Vec<u8> = (0..700_000u32).map(|i| (i * 7 % 253) as u8).collect();
    std::fs::write(a.dir.path().join("sub/big.bin"), &big).unwrap();
    until("a new file", || read(&bp.join("sub/big.bin")).as_ref() == Some(&big)).await;
    // An edit on B comes back to A.
    std::fs::write(b.dir.path().join("before.txt"), b"edited on b").unwrap();
    let ap = a.dir.path().to_path_buf();
    until("the edit", || read(&ap.join("before.txt")).as_deref() == Some(&b"edited on b"[..]))
        .await;
    // A rename on A.
    std::fs::rename(a.dir.path().join("sub/big.bin"), a.dir.path().join("sub/moved.bin")).unwrap();
    until("the rename", || {
        read(&bp.join("sub/moved.bin")).as_ref() == Some(&big) && !bp.join("sub/big.bin").exists()
    })
    .await;
    // A delete keeps a version on the other side.
    std::fs::remove_file(a.dir.path().join("before.txt")).unwrap();
    until("the delete", || !bp.join("before.txt").exists()).await;
    let versions = bp.join(".cloudy-versions");
    assert!(
        std::fs::read_dir(&versions).unwrap().count() >= 1,
        "the deleted file is kept as a version"
    );

    // A stranger that was not admitted gets nothing.
    let c = &m[2];
    c.sync.join(&folder.invite(), c.dir.path()).unwrap();
    until("the join request", || a.sync.list()[0].0.pending.contains(&ids[2])).await;
    assert_eq!(std::fs::read_dir(c.dir.path()).unwrap().count(), 0);
    // Admitted, it catches up.
    a.sync.admit(&folder.id, &ids[2]).unwrap();
    let cp = c.dir.path().to_path_buf();
    until("the admitted member to catch up", || {
        read(&cp.join("sub/moved.bin")).as_ref() == Some(&big)
    })
    .await;
    cancel.cancel();
}

fn set_mtime(p: &Path, secs: u64) {
    let f = std::fs::File::options().write(true).open(p).unwrap();
    f.set_modified(std::time::UNIX_EPOCH + Duration::from_secs(secs)).unwrap();
}

/// The files whose name contains `part`, with their contents.
fn matching(dir: &Path, part: &str) -> Vec<Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(part))
        .filter_map(|e| std::fs::read(e.path()).ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_edits_keep_both_and_an_offline_member_catches_up() {
    let (net, m, cancel) = members(2, 1).await;
    let b_id = net.nodes[1].handle.local_peer_id().to_string();
    let folder = m[0].sync.add(m[0].dir.path(), None, vec![b_id]).unwrap();
    // B runs under its own token so it can be stopped and started again.
    let b_cancel = CancellationToken::new();
    let b_data = tempfile::tempdir().unwrap();
    let b = SyncService::start(
        net.nodes[1].handle.clone(),
        b_data.path(),
        CFG,
        &Tasks::new("test", b_cancel.clone()),
    )
    .unwrap();
    let b_dir = tempfile::tempdir().unwrap();
    b.join(&folder.invite(), b_dir.path()).unwrap();
    let (ap, bp) = (m[0].dir.path().to_path_buf(), b_dir.path().to_path_buf());
    std::fs::write(ap.join("f.txt"), b"base").unwrap();
    until("the base version", || read(&bp.join("f.txt")).as_deref() == Some(&b"base"[..])).await;

    // B goes offline; both edit the same file; A adds another.
    b_cancel.cancel();
    drop(b);
    std::fs::write(ap.join("f.txt"), b"from a").unwrap();
    set_mtime(&ap.join("f.txt"), 1_790_000_000);
    std::fs::write(ap.join("offline.txt"), b"made while b was away").unwrap();
    std::fs::write(bp.join("f.txt"), b"from b, later").unwrap();
    set_mtime(&bp.join("f.txt"), 1_790_000_100);
    // A sees its own changes before B returns.
    until("a to index its edit", || m[0].sync.list()[0].1.files >= 2).await;

    // B comes back.
    let b_cancel = CancellationToken::new();
    let _b = restart(&net.nodes[1].handle, b_data.path(), &b_cancel).await;
    until("b to catch up", || {
        read(&bp.join("offline.txt")).as_deref() == Some(&b"made while b was away"[..])
    })
    .await;
    // The later edit keeps the name everywhere; the other is kept beside it.
    for dir in [&ap, &bp] {
        until("the winner", || read(&dir.join("f.txt")).as_deref() == Some(&b"from b, later"[..]))
            .await;
        until("the conflict copy", || matching(dir, "sync-conflict") == vec![b"from a".to_vec()])
            .await;
    }
    // Both say "in sync" with nothing outstanding: errors that no longer
    // apply (a conflict copy "changed here since the last scan") have
    // cleared, and a folder with errors is never called in sync.
    for (who, sync) in [("a", &m[0].sync), ("b", &_b)] {
        until(&format!("{who} in sync without errors"), || {
            let st = &sync.list()[0].1;
            st.state == FolderState::InSync && st.errors.is_empty()
        })
        .await;
    }
    cancel.cancel();
    b_cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn successive_rewrites_of_a_large_file_never_look_like_conflicts() {
    let (net, m, cancel) = members(2, 2).await;
    let b_id = net.nodes[1].handle.local_peer_id().to_string();
    let folder = m[0].sync.add(m[0].dir.path(), None, vec![b_id]).unwrap();
    m[1].sync.join(&folder.invite(), m[1].dir.path()).unwrap();
    let (ap, bp) = (m[0].dir.path().to_path_buf(), m[1].dir.path().to_path_buf());
    let mut data: Vec<u8> =
        (0..24_000_000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    for step in 0..4 {
        match step {
            0 => {}
            1 => data[12_000_000] ^= 0xff,
            2 => data.insert(0, 42),
            _ => data.truncate(20_000_000),
        }
        std::fs::write(ap.join("big.bin"), &data).unwrap();
        until("the rewrite", || read(&bp.join("big.bin")).as_ref() == Some(&data)).await;
    }
    for dir in [&ap, &bp] {
        assert!(
            matching(dir, "sync-conflict").is_empty(),
            "a spurious conflict in {}",
            dir.display()
        );
    }
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_with_escaping_paths_from_a_member_are_refused() {
    // Node 1 is a member that speaks the protocol by hand and lies.
    let (net, m, cancel) = members(2, 1).await;
    let liar = net.nodes[1].handle.clone();
    // The folder sits one level down in a directory of this test's own,
    // so that what would escape it lands where nothing else writes.
    let parent = m[0].dir.path().to_path_buf();
    let dir = parent.join("folder");
    std::fs::create_dir(&dir).unwrap();
    let folder = m[0].sync.add(&dir, None, vec![liar.local_peer_id().to_string()]).unwrap();
    let good = b"a fine file".to_vec();
    let entry = |path: &str| wire_file(path, &good);
    let absolute = parent.join("absolute.txt");
    let files = vec![
        entry("../escaped.txt"),
        entry(absolute.to_str().unwrap()),
        entry("ok/../../x"),
        entry("fine.txt"),
    ];
    serve_lies(&liar, &folder.id, files, good.clone());
    until("the honest entry", || read(&dir.join("fine.txt")).as_deref() == Some(&good[..])).await;
    for escaped in [parent.join("escaped.txt"), absolute, parent.join("x")] {
        assert!(!escaped.exists(), "{} was written", escaped.display());
    }
    let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("fine.txt")], "only the honest file arrived");
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_pauses_the_folder_keeps_the_old_file_and_resumes() {
    let Some(disk) = cloudy_overlay::tmpfs::Tmpfs::mount(4 << 20) else { return };
    let (net, m, cancel) = members(2, 1).await;
    let b_data = tempfile::tempdir().unwrap();
    let b = SyncService::start(
        net.nodes[1].handle.clone(),
        b_data.path(),
        CFG,
        &Tasks::new("test", cancel.clone()),
    )
    .unwrap();
    let bp = disk.path().join("folder");
    std::fs::create_dir(&bp).unwrap();
    let folder = m[0]
        .sync
        .add(m[0].dir.path(), None, vec![net.nodes[1].handle.local_peer_id().to_string()])
        .unwrap();
    b.join(&folder.invite(), &bp).unwrap();
    let ap = m[0].dir.path().to_path_buf();
    let old: Vec<u8> = (0..200_000u32).map(|i| (i * 13 % 251) as u8).collect();
    std::fs::write(ap.join("doc.bin"), &old).unwrap();
    until("the first version", || read(&bp.join("doc.bin")).as_ref() == Some(&old)).await;

    // The disk fills up; a new version cannot fit.
    disk.fill(100_000);
    let new: Vec<u8> = (0..1_000_000u32).map(|i| (i.wrapping_mul(2654435761) >> 9) as u8).collect();
    std::fs::write(ap.join("doc.bin"), &new).unwrap();
    until("the folder to pause", || matches!(b.list()[0].1.state, FolderState::DiskFull { .. }))
        .await;
    assert_eq!(read(&bp.join("doc.bin")).as_ref(), Some(&old), "the good old file stays");
    let temps = std::fs::read_dir(&bp)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with(".cloudy-tmp"))
        .count();
    assert_eq!(temps, 0, "no half-written file is left");
    // Space comes back: the folder resumes by itself.
    disk.unfill();
    until("the new version", || read(&bp.join("doc.bin")).as_ref() == Some(&new)).await;
    cancel.cancel();
}

/// An index entry for a one-block file holding `data`.
fn wire_file(path: &str, data: &[u8]) -> cloudy_sync::protocol::WireFile {
    cloudy_sync::protocol::WireFile {
        path: path.into(),
        kind: cloudy_sync::index::Kind::File,
        size: data.len() as u64,
        mtime_ns: 1_790_000_000_000_000_000,
        mode: 0o644,
        version: vec![(7, 1)],
        deleted: false,
        modified_by: 7,
        blocks: vec![(*blake3::hash(data).as_bytes(), data.len() as u32)],
        pieces: vec![],
    }
}

/// Makes `liar` answer sync sessions by hand: `files` as its index, and
/// `served` for every block asked of it.
fn serve_lies(
    liar: &cloudy_overlay::Handle,
    folder: &str,
    files: Vec<cloudy_sync::protocol::WireFile>,
    served: Vec<u8>,
) {
    use cloudy_sync::protocol::{recv, send, Request, Response, PROTOCOL};
    use futures::StreamExt;
    let mut incoming =
        liar.stream_control().accept(cloudy_overlay::StreamProtocol::new(PROTOCOL)).unwrap();
    let name = folder.to_string();
    tokio::spawn(async move {
        while let Some((_, mut s)) = incoming.next().await {
            let (files, served, name) = (files.clone(), served.clone(), name.clone());
            tokio::spawn(async move {
                while let Ok(Some(req)) = recv::<_, Request>(&mut s).await {
                    let answer = match req {
                        Request::Index { .. } => {
                            let _ = send(
                                &mut s,
                                &Response::Members { name: name.clone(), members: vec![] },
                            )
                            .await;
                            Response::Files { files: files.clone(), seq: 1 }
                        }
                        Request::Block { .. } => Response::Data(served.clone()),
                        Request::List { .. } => Response::Missing,
                        Request::Join { .. } => Response::Pending,
                    };
                    if send(&mut s, &answer).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_block_from_one_member_is_fetched_from_another_and_costs_its_score() {
    let (net, m, cancel) = members(3, 1).await;
    let (liar, honest) = (net.nodes[1].handle.clone(), net.nodes[2].handle.clone());
    let ids = [liar.local_peer_id().to_string(), honest.local_peer_id().to_string()];
    // Node 0 ignores the honest member's copy, so the good bytes can only
    // come as blocks fetched from it.
    std::fs::write(m[0].dir.path().join(".cloudyignore"), b"copy.bin\n").unwrap();
    let folder = m[0].sync.add(m[0].dir.path(), None, ids.to_vec()).unwrap();
    let data: Vec<u8> = (0..50_000u32).map(|i| (i * 7 % 241) as u8).collect();
    let mut rotten = data.clone();
    rotten[100] ^= 1;
    serve_lies(&liar, &folder.id, vec![wire_file("f.bin", &data)], rotten);
    let ap = m[0].dir.path().to_path_buf();
    let liar_id = liar.local_peer_id();
    until("the liar's score to drop", || {
        m[0].sync.list()[0].1.errors.iter().any(|e| e.contains("does not match its hash"))
            && net.nodes[0].handle.snapshot().peers.get(&liar_id).is_some_and(|p| p.failures > 0.0)
    })
    .await;
    assert!(!ap.join("f.bin").exists(), "nothing corrupt is written");
    // An honest member holding the same bytes (under another name) joins.
    let h_data = tempfile::tempdir().unwrap();
    let h_dir = tempfile::tempdir().unwrap();
    std::fs::write(h_dir.path().join("copy.bin"), &data).unwrap();
    let h = SyncService::start(honest, h_data.path(), CFG, &Tasks::new("test", cancel.clone()))
        .unwrap();
    h.join(&folder.invite(), h_dir.path()).unwrap();
    until("the good file", || read(&ap.join("f.bin")).as_ref() == Some(&data)).await;
    assert!(!ap.join("copy.bin").exists());
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symbolic_links_travel_as_links_and_are_never_followed() {
    let (net, m, cancel) = members(2, 2).await;
    let b_id = net.nodes[1].handle.local_peer_id().to_string();
    let (ap, bp) = (m[0].dir.path().to_path_buf(), m[1].dir.path().to_path_buf());
    std::fs::write(ap.join("target.txt"), b"pointed at").unwrap();
    std::os::unix::fs::symlink("target.txt", ap.join("inside")).unwrap();
    // A link out of the folder is carried as its text, never as the
    // content it points to.
    std::os::unix::fs::symlink("/etc/hostname", ap.join("outside")).unwrap();
    let folder = m[0].sync.add(&ap, None, vec![b_id]).unwrap();
    m[1].sync.join(&folder.invite(), &bp).unwrap();
    let link = |p: &Path| {
        std::fs::symlink_metadata(p)
            .ok()
            .filter(|m| m.file_type().is_symlink())
            .and_then(|_| std::fs::read_link(p).ok())
    };
    until("both links", || {
        link(&bp.join("inside")).is_some() && link(&bp.join("outside")).is_some()
    })
    .await;
    assert_eq!(link(&bp.join("inside")).unwrap(), Path::new("target.txt"));
    assert_eq!(link(&bp.join("outside")).unwrap(), Path::new("/etc/hostname"));
    until("the target", || read(&bp.join("inside")).as_deref() == Some(&b"pointed at"[..])).await;
    // A link retargeted on B comes back to A as a link.
    std::fs::remove_file(bp.join("inside")).unwrap();
    std::os::unix::fs::symlink("elsewhere.txt", bp.join("inside")).unwrap();
    until("the new target on a", || {
        link(&ap.join("inside")).as_deref() == Some(Path::new("elsewhere.txt"))
    })
    .await;
    assert_eq!(
        read(&ap.join("target.txt")).as_deref(),
        Some(&b"pointed at"[..]),
        "nothing was written through the link"
    );
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_no_longer_ignored_arrives_from_every_member_that_has_it() {
    let (net, m, cancel) = members(4, 4).await;
    let ids: Vec<String> = net.nodes.iter().map(|n| n.handle.local_peer_id().to_string()).collect();
    let folder = m[0].sync.add(m[0].dir.path(), None, ids[1..].to_vec()).unwrap();
    // D ignores films for now.
    std::fs::write(m[3].dir.path().join(".cloudyignore"), b"*.bin\n").unwrap();
    for x in &m[1..] {
        x.sync.join(&folder.invite(), x.dir.path()).unwrap();
    }
    let data: Vec<u8> =
        (0..12_000_000u32).map(|i| (i.wrapping_mul(2654435761) >> 7) as u8).collect();
    std::fs::write(m[0].dir.path().join("film.bin"), &data).unwrap();
    for x in &m[1..3] {
        until("the film on b and c", || {
            read(&x.dir.path().join("film.bin")).as_ref() == Some(&data)
        })
        .await;
    }
    // D has seen A, B and C announce it, and did not fetch it.
    let status = |i: usize| m[i].sync.list()[0].1.clone();
    until("d to have applied every member's index", || {
        let d = status(3);
        (0..3).all(|i| {
            d.applied
                .get(&ids[i])
                .is_some_and(|seen| *seen >= status(i).sequence && status(i).sequence > 0)
        })
    })
    .await;
    assert!(!m[3].dir.path().join("film.bin").exists() && status(3).downloaded == 0);
    let before: Vec<u64> = (0..3).map(|i| status(i).uploaded).collect();
    // Films are welcome now: it arrives, from all three.
    std::fs::write(m[3].dir.path().join(".cloudyignore"), b"").unwrap();
    until("the film on d", || read(&m[3].dir.path().join("film.bin")).as_ref() == Some(&data))
        .await;
    let by: Vec<u64> = (0..3).map(|i| status(i).uploaded - before[i]).collect();
    eprintln!("bytes served to d by a, b, c: {by:?}");
    assert_eq!(
        status(3).downloaded,
        by.iter().sum::<u64>(),
        "what d downloaded is what the others served"
    );
    assert!(by.iter().all(|b| *b > 0), "blocks came from every member: {by:?}");
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_that_cannot_be_written_is_refused_at_add_and_at_join() {
    let Some(disk) = cloudy_overlay::tmpfs::Tmpfs::mount(1 << 20) else { return };
    disk.read_only();
    let (_net, m, cancel) = members(2, 2).await;
    let err = m[0].sync.add(disk.path(), None, vec![]).unwrap_err().to_string();
    assert!(
        err.contains("not writable") && err.contains(&disk.path().display().to_string()),
        "{err}"
    );
    let folder = m[0].sync.add(m[0].dir.path(), None, vec![]).unwrap();
    let err = m[1].sync.join(&folder.invite(), disk.path()).unwrap_err().to_string();
    assert!(err.contains("not writable"), "{err}");
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_is_in_one_folder_only() {
    let (_net, m, cancel) = members(2, 2).await;
    let (a, b) = (&m[0], &m[1]);
    let f = a.sync.add(a.dir.path(), Some("docs".into()), Vec::new()).unwrap();
    let twice = a.sync.add(a.dir.path(), None, Vec::new()).unwrap_err().to_string();
    assert!(twice.contains("is already shared as folder docs"), "{twice}");
    let inner = a.dir.path().join("inner");
    std::fs::create_dir(&inner).unwrap();
    let nested = a.sync.add(&inner, None, Vec::new()).unwrap_err().to_string();
    assert!(nested.contains("is inside folder docs"), "{nested}");
    assert_eq!(a.sync.list().len(), 1, "no second folder was made");

    // Joining: once per folder, and not into a directory another folder has.
    let mine = b.sync.add(b.dir.path(), Some("mine".into()), Vec::new()).unwrap();
    let err = b.sync.join(&f.invite(), b.dir.path()).unwrap_err().to_string();
    assert!(err.contains("is already shared as folder mine"), "{err}");
    let elsewhere = tempfile::tempdir().unwrap();
    b.sync.join(&f.invite(), elsewhere.path()).unwrap();
    let other = tempfile::tempdir().unwrap();
    let again = b.sync.join(&f.invite(), other.path()).unwrap_err().to_string();
    assert!(again.contains("this node already has folder"), "{again}");
    let paths: Vec<_> = b.sync.list().into_iter().map(|(f, _)| f.path).collect();
    assert!(paths.contains(&std::fs::canonicalize(elsewhere.path()).unwrap()), "{paths:?}");
    assert!(paths.iter().any(|p| *p == std::fs::canonicalize(b.dir.path()).unwrap()), "{mine:?}");
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nodes_home_is_never_shared_and_a_folder_holding_it_is_paused() {
    let (net, m, cancel) = members(2, 1).await;
    let b_id = net.nodes[1].handle.local_peer_id().to_string();
    // A directory holding a node's home, with its keys.
    let shared = tempfile::tempdir().unwrap();
    let home = shared.path().join("node-home");
    std::fs::create_dir(&home).unwrap();
    std::fs::write(home.join("identity.key"), b"secret key bytes").unwrap();
    std::fs::write(shared.path().join("notes.txt"), b"ordinary file").unwrap();
    let home = std::fs::canonicalize(&home).unwrap();
    let private = SyncConfig { private: vec![home.clone()], ..CFG };
    let b_data = tempfile::tempdir().unwrap();
    let b_cancel = CancellationToken::new();
    let b = SyncService::start(
        net.nodes[1].handle.clone(),
        b_data.path(),
        private.clone(),
        &Tasks::new("test", b_cancel.clone()),
    )
    .unwrap();
    // The home itself, a directory holding it, one inside it: refused,
    // naming the home.
    let inside = home.join("sub");
    std::fs::create_dir(&inside).unwrap();
    for (dir, how) in
        [(&home, "is"), (&shared.path().to_path_buf(), "holds"), (&inside, "is inside")]
    {
        let err = b.add(dir, None, vec![]).unwrap_err().to_string();
        assert!(err.contains(&format!("{how} this node's home {}", home.display())), "{err}");
        let invite = m[0].sync.add(&tempfile::tempdir().unwrap().keep(), None, vec![]).unwrap();
        let err = b.join(&invite.invite(), dir).unwrap_err().to_string();
        assert!(err.contains("must never leave this machine"), "{err}");
    }
    assert!(b.list().is_empty(), "nothing was added");
    b_cancel.cancel();
    drop(b);

    // A folder made before the check (sync started without it) that holds
    // the home: after a restart with the check it is paused, says why, and
    // a member gets nothing from it.
    let b_cancel = CancellationToken::new();
    let open = restart(&net.nodes[1].handle, b_data.path(), &b_cancel).await;
    let folder = open.add(shared.path(), None, vec![m[0].sync.list()[0].0.owner.clone()]).unwrap();
    b_cancel.cancel();
    drop(open);
    let b_cancel = CancellationToken::new();
    let mut b = None;
    until("sync to restart with the check", || {
        b = b.take().or_else(|| {
            SyncService::start(
                net.nodes[1].handle.clone(),
                b_data.path(),
                private.clone(),
                &Tasks::new("test", b_cancel.clone()),
            )
            .ok()
        });
        b.is_some()
    })
    .await;
    let b = b.expect("started");
    let st = b.list()[0].1.clone();
    assert!(
        matches!(&st.state, FolderState::Paused { why } if why.contains("holds this node's home")),
        "{:?}",
        st.state
    );
    let a_dir = tempfile::tempdir().unwrap();
    m[0].sync.join(&folder.invite(), a_dir.path()).unwrap();
    // The member's session is refused; wait until it has tried, then check
    // that nothing arrived.
    until("the member to ask", || {
        m[0].sync.list().iter().any(|(f, st)| f.id == folder.id && !st.errors.is_empty())
    })
    .await;
    assert!(!a_dir.path().join("node-home/identity.key").exists());
    assert!(!a_dir.path().join("notes.txt").exists());
    let _ = b_id;
    cancel.cancel();
    b_cancel.cancel();
}
