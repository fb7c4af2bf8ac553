//! Mutable files and directories on an in-process grid of five nodes.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed run

mod common;
use cloudy_storage::capability::{Access, Cap, MutCap, MutKind};
use cloudy_storage::client::{PutOptions, SlotWriteError};
use cloudy_storage::dirs::{split, Change, DirError, Dirs, Kind, Log, NewEntry};
use cloudy_storage::mutable::{Slot, WriteKey, FILE_WRITER};
use cloudy_storage::store::{now_secs, ShareStore, SlotRow};
use common::grid;

/// Directories as node `i` of the grid reads and writes them.
fn dirs_of(g: &common::Grid, i: usize) -> Dirs {
    Dirs::new(g.clients[i].clone(), g.net.nodes[i].handle.local_peer_id())
}

async fn stored(client: &cloudy_storage::client::Client, data: &[u8]) -> Cap {
    let opts = PutOptions { happy: 4, ..PutOptions::default() };
    let src = Box::new(std::io::Cursor::new(data.to_vec()));
    client.put_source(src, "test data", data.len() as u64, None, opts).await.unwrap()
}

async fn read(client: &cloudy_storage::client::Client, cap: &Cap) -> Vec<u8> {
    match cap {
        Cap::Literal(d) => d.clone(),
        Cap::Read(r) => {
            let mut out = Vec::new();
            client.get(r, &mut out).await.unwrap();
            out
        }
        other => panic!("not file contents: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mutable_file_changes_in_place_and_old_or_forged_versions_are_ignored() {
    let g = grid(5).await;
    let key = WriteKey::generate();
    let v1 = stored(&g.clients[0], &vec![1u8; 5000]).await;
    assert_eq!(g.clients[0].publish(&key, &v1).await.unwrap(), 1);
    let (seq, cap) = g.clients[3].resolve(&key.read()).await.unwrap();
    assert_eq!((seq, read(&g.clients[3], &cap).await), (1, vec![1u8; 5000]));

    // Keep server 0's version 1 aside, then change the file.
    let si = key.read().verify().storage_index();
    let old = g.stores.iter().find_map(|s| s.slots(&si).unwrap().pop()).unwrap();
    let v2 = stored(&g.clients[1], b"second version, long enough to need a server").await;
    assert_eq!(g.clients[1].publish(&key, &v2).await.unwrap(), 2);

    // A server that offers the old version, or a forged newer one, is
    // ignored: the newest valid version is read.
    let forged = {
        let mut s = Slot::decode(&old).unwrap();
        s.seqnum = 99;
        s.encode()
    };
    for store in &g.stores {
        let _ = store.expire_slots(u64::MAX);
    }
    let row = |bytes: Vec<u8>, seqnum| SlotRow {
        si,
        writer: FILE_WRITER,
        seqnum,
        bytes,
        owner: "test".into(),
        until: now_secs() + 60,
    };
    g.stores[0].put_slot(row(old.clone(), 1)).unwrap();
    g.stores[1].put_slot(row(forged, 99)).unwrap();
    let fresh = Slot::sign(&key, FILE_WRITER, 3, key.read().seal(v2.to_string().as_bytes()));
    g.stores[2].put_slot(row(fresh.encode(), 3)).unwrap();
    let read_back = g.clients[4].slots_of(&si).await;
    assert!(!read_back.invalid.is_empty(), "the forged slot is reported");
    let (seq, cap) = g.clients[4].resolve(&key.read()).await.unwrap();
    assert_eq!(seq, 3);
    assert_eq!(cap, v2);

    // A server refuses a forged slot and a rollback.
    let other = WriteKey::generate();
    let mut bad = Slot::sign(&other, FILE_WRITER, 5, vec![1]);
    bad.si = si;
    let err = g.clients[0].write_slot(&bad, 5, 1, &[]).await.unwrap_err();
    assert!(err.to_string().contains("does not match its storage index"), "{err}");
    let stale = Slot::sign(&key, FILE_WRITER, 2, vec![2]);
    let err = g.clients[0].write_slot(&stale, 5, 5, &[]).await.unwrap_err();
    assert!(matches!(err, SlotWriteError::Stale { tried: 2, .. }), "{err}");
    // A server claiming a newer version it cannot show does not stop a
    // change: the next version is written and read.
    let v3 = stored(&g.clients[0], &vec![3u8; 4000]).await;
    assert_eq!(g.clients[0].publish(&key, &v3).await.unwrap(), 4);
    assert_eq!(g.clients[2].resolve(&key.read()).await.unwrap(), (4, v3));

    // A key nobody wrote under: one clear line.
    let err = g.clients[0].resolve(&WriteKey::generate().read()).await.unwrap_err();
    assert!(err.to_string().contains("no server holds"), "{err}");
    g.cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directories_merge_concurrent_writers_and_hide_write_caps_from_readers() {
    let g = grid(5).await;
    let a = dirs_of(&g, 0);
    let b = dirs_of(&g, 1);
    let root = a.create().await.unwrap();
    let photos = a.mkdir_p(&root, &split("photos/2026")).await.unwrap();
    assert_eq!(a.lookup(&root, &split("photos/2026")).await.unwrap(), photos);

    // Two nodes add at once, one entry each and one of the same name,
    // both without looking, as writers cut off from each other would (a
    // `link_many` that looks first refuses a name the other already
    // wrote, which made this test fail when b's write landed first).
    let (fa, fb) = (stored(&g.clients[0], b"from a").await, stored(&g.clients[1], b"from b").await);
    let add =
        |name: &str, cap: &Cap| NewEntry { name: name.into(), cap: cap.clone(), size: 6, mtime: 1 };
    let blind = |name: &str, cap: &Cap| Change::Add {
        name: name.into(),
        cap: cap.clone(),
        size: 6,
        mtime: 1,
    };
    let from_a = vec![blind("a.txt", &fa), blind("same.txt", &fa)];
    let from_b = vec![blind("b.txt", &fb), blind("same.txt", &fb)];
    let (ra, rb) = tokio::join!(
        a.update(&photos, move |_| Ok(from_a)),
        b.update(&photos, move |_| Ok(from_b)),
    );
    ra.unwrap();
    rb.unwrap();
    let reader = dirs_of(&g, 3);
    let listing = reader.list(&photos).await.unwrap();
    let names: Vec<&str> = listing.entries.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(listing.entries.len(), 4, "{names:?}");
    assert!(names.contains(&"a.txt") && names.contains(&"b.txt") && names.contains(&"same.txt"));
    let conflict = listing.entries.iter().find(|c| c.conflict).unwrap();
    assert!(conflict.name.starts_with("same.conflict-"), "{}", conflict.name);
    assert_eq!(listing.writers, 2);
    // Two nodes making the same directory at once make one directory.
    let (x, y) = tokio::join!(a.mkdir_p(&photos, &["inbox"]), b.mkdir_p(&photos, &["inbox"]));
    assert_eq!(x.unwrap(), y.unwrap());
    let inboxes = reader.list(&photos).await.unwrap();
    assert_eq!(inboxes.entries.iter().filter(|c| c.name.starts_with("inbox")).count(), 1);
    a.unlink(&photos, "inbox").await.unwrap();
    assert!(reader.list(&photos).await.unwrap().get("inbox").is_none(), "removed for good");
    // Every reader lists the same.
    let again = b.list(&photos).await.unwrap();
    assert_eq!(
        again.entries.iter().map(|c| &c.name).collect::<Vec<_>>(),
        listing.entries.iter().map(|c| &c.name).collect::<Vec<_>>()
    );

    // A mutable child: the write capability through the write cap of the
    // directory, the read capability only through its read cap.
    let mkey = WriteKey::generate();
    g.clients[0].publish(&mkey, &fa).await.unwrap();
    let mutable = Cap::Mutable(MutCap { kind: MutKind::File, access: Access::Write(mkey) });
    a.link_many(&root, vec![add("notes", &mutable)], false).await.unwrap();
    let Cap::Mutable(root_m) = &root else { panic!() };
    let ro_root = Cap::Mutable(root_m.to_read());
    let through_write = a.child(&root, "notes").await.unwrap();
    assert_eq!(through_write.cap, mutable);
    let through_read = reader.child(&ro_root, "notes").await.unwrap();
    assert!(matches!(&through_read.cap, Cap::Mutable(m) if m.write_key().is_none()));
    let sub = reader.lookup(&ro_root, &split("photos")).await.unwrap();
    assert!(matches!(&sub, Cap::Mutable(m) if m.write_key().is_none()), "read-only, transitively");
    let err = reader.link_many(&ro_root, vec![add("x", &fa)], false).await.unwrap_err();
    assert!(matches!(err, DirError::ReadOnly), "{err}");

    // Rename within a directory, move across, remove.
    a.rename(&photos, "a.txt", &photos, "renamed.txt").await.unwrap();
    b.rename(&photos, "b.txt", &root, "moved.txt").await.unwrap();
    a.unlink(&photos, "renamed.txt").await.unwrap();
    let names = |l: cloudy_storage::dirs::Listing| {
        l.entries.into_iter().map(|c| c.name).collect::<Vec<String>>()
    };
    let p = names(reader.list(&photos).await.unwrap());
    assert!(!p.iter().any(|n| n == "a.txt" || n == "b.txt" || n == "renamed.txt"), "{p:?}");
    assert!(names(reader.list(&root).await.unwrap()).contains(&"moved.txt".to_string()));
    let err = a.unlink(&photos, "nothing").await.unwrap_err();
    assert_eq!(err.to_string(), "no entry \"nothing\"");
    let err = a.link_many(&photos, vec![add("same.txt", &fa)], false).await.unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    g.cancel.cancel();
}

/// A new directory of `a` with `batches` × 100 entries of `file`, added
/// 100 at a time (`f<batch>-<i>`): large enough for chunks.
async fn large_dir(a: &Dirs, file: &Cap, batches: usize) -> Cap {
    let dir = a.create().await.unwrap();
    for batch in 0..batches {
        let entries = (0..100)
            .map(|i| NewEntry {
                name: format!("f{batch}-{i:03}"),
                cap: file.clone(),
                size: 4,
                mtime: 2,
            })
            .collect();
        a.link_many(&dir, entries, false).await.unwrap();
    }
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_directory_moves_old_entries_into_chunks_and_a_bad_entry_is_named() {
    let g = grid(5).await;
    let a = dirs_of(&g, 0);
    let file = Cap::Literal(b"tiny".to_vec());
    let dir = large_dir(&a, &file, 6).await;
    let reader = dirs_of(&g, 2);
    let listing = reader.list(&dir).await.unwrap();
    assert_eq!(listing.entries.len(), 600);
    assert!(listing.bad.is_empty(), "{:?}", listing.bad);

    // Another writer's log holding one entry that does not decode.
    let Cap::Mutable(m) = &dir else { panic!() };
    let key = m.write_key().unwrap();
    let log = Log {
        v: 1,
        peer: "a stranger".into(),
        chunks: vec![],
        ops: vec![
            serde_json::json!({"id": {"writer": "07070707070707070707070707070707", "counter": 1},
                               "lamport": 1, "action": {"add": {"name": "broken", "kind": "sofa"}}}),
            serde_json::json!({"id": {"writer": "07070707070707070707070707070707", "counter": 2},
                               "lamport": 1, "action": {"add": {"name": "fine", "kind": "file",
                               "ro": file.to_string()}}}),
        ],
    };
    let slot = Slot::sign(key, [7; 16], 1, key.read().seal(&serde_json::to_vec(&log).unwrap()));
    g.clients[0].write_slot(&slot, 5, 4, &[]).await.unwrap();
    let listing = reader.list(&dir).await.unwrap();
    assert_eq!(listing.entries.len(), 601, "the good entry is listed");
    assert!(listing.get("fine").is_some_and(|c| c.kind == Kind::File));
    assert_eq!(listing.bad.len(), 1);
    assert!(listing.bad[0].contains("\"broken\""), "{:?}", listing.bad);
    g.cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_holding_a_stale_version_is_brought_up_to_date_by_repair() {
    let g = grid(5).await;
    let a = dirs_of(&g, 0);
    let dir = a.create().await.unwrap();
    let Cap::Mutable(m) = &dir else { panic!() };
    let si = m.verify_key().storage_index();
    // Every server holds version 1 of node 0's log; one is then left behind.
    let stale_store = &g.stores[4];
    let before = stale_store.slots(&si).unwrap();
    assert_eq!(before.len(), 1, "every server holds the new directory");
    let file = Cap::Literal(b"x".to_vec());
    a.link_many(&dir, vec![NewEntry { name: "x".into(), cap: file, size: 1, mtime: 1 }], false)
        .await
        .unwrap();
    let _ = stale_store.expire_slots(u64::MAX);
    let row = SlotRow {
        si,
        writer: Slot::decode(&before[0]).unwrap().writer,
        seqnum: 1,
        bytes: before[0].clone(),
        owner: "test".into(),
        until: now_secs() + 60,
    };
    stale_store.put_slot(row).unwrap();
    let report = a.deep_check(&dir, false, false).await;
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    let report = a.deep_check(&dir, false, true).await;
    assert!(report.problems.iter().all(|p| p.repaired), "{:?}", report.problems);
    let held = Slot::decode(&stale_store.slots(&si).unwrap()[0]).unwrap();
    assert_eq!(held.seqnum, 2, "the stale server holds the newest version again");
    assert!(a.deep_check(&dir, false, false).await.problems.is_empty());
    g.cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_log_chunk_is_named_and_nothing_is_concluded_or_written_from_it() {
    let g = grid(5).await;
    let a = dirs_of(&g, 0);
    let file = Cap::Literal(b"tiny".to_vec());
    let dir = large_dir(&a, &file, 3).await;
    let listing = dirs_of(&g, 2).list(&dir).await.unwrap();
    assert!(!listing.chunks.is_empty() && listing.unread.is_empty(), "{:?}", listing.bad);
    // Every share of the first chunk gone from every server.
    let Ok(Cap::Read(chunk)) = listing.chunks[0].parse::<Cap>() else { panic!() };
    let si = chunk.verify_cap().storage_index;
    for store in &g.stores {
        for share in 0..chunk.n {
            store.remove(&si, share).unwrap();
        }
    }

    // A reader that never held the chunk: the listing says what is
    // missing; a name it would hold is not called absent.
    let reader = dirs_of(&g, 3);
    let listing = reader.list(&dir).await.unwrap();
    assert_eq!(listing.unread.len(), 1, "{:?}", listing.bad);
    assert!(listing.entries.len() < 300);
    let gone = listing.entries.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
    let missing = (0..100).map(|i| format!("f0-{i:03}")).find(|n| !gone.contains(n)).unwrap();
    let err = reader.lookup(&dir, &[missing.as_str()]).await.unwrap_err();
    assert!(matches!(err, DirError::Unread(_)), "{err}");
    assert!(err.to_string().contains("could not be read just now"), "{err}");
    let err = reader.child(&dir, &missing).await.unwrap_err();
    assert!(matches!(err, DirError::Unread(_)), "{err}");

    // A writer that cannot read all of it changes nothing.
    let writer = dirs_of(&g, 4);
    let one = NewEntry { name: missing.clone(), cap: file.clone(), size: 4, mtime: 3 };
    let err = writer.link_many(&dir, vec![one], false).await.unwrap_err();
    assert!(err.to_string().contains("nothing was changed"), "{err}");
    let err = writer.mkdir_p(&dir, &[missing.as_str(), "below"]).await.unwrap_err();
    assert!(matches!(err, DirError::Unread(_)), "{err}");
    assert_eq!(a.list(&dir).await.unwrap().writers, 1, "no second writer's log was written");
    g.cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_made_by_another_node_a_moment_ago_is_found_on_a_path() {
    let g = grid(5).await;
    let (a, reader) = (dirs_of(&g, 0), dirs_of(&g, 3));
    let root = a.create().await.unwrap();
    // The reader keeps the root's listing for path walks (`WALK_TTL`)...
    assert!(reader.list(&root).await.unwrap().entries.is_empty());
    // ...and another node adds a directory with a file in it at once.
    let sub = a.mkdir_p(&root, &["sub"]).await.unwrap();
    let x = Cap::Literal(b"x".to_vec());
    a.link_many(
        &sub,
        vec![NewEntry { name: "x".into(), cap: x.clone(), size: 1, mtime: 1 }],
        false,
    )
    .await
    .unwrap();
    assert_eq!(reader.lookup(&root, &split("sub/x")).await.unwrap(), x);
    let err = reader.lookup(&root, &split("nothing/x")).await.unwrap_err();
    assert!(matches!(err, DirError::NoEntry(ref p) if p == "nothing"), "{err}");
    g.cancel.cancel();
}

/// Many uploads into one new folder at once (a WebDAV client with eight
/// transfers) each make the folder: on one node they all write this
/// writer's first log of one directory. Once, whichever version the
/// servers kept was taken as "changed by someone else" and the folder
/// could never be made, on any retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_making_the_same_directory_many_times_at_once_makes_it_once() {
    let g = grid(5).await;
    let a = dirs_of(&g, 0);
    let root = a.create().await.unwrap();
    let made = futures::future::join_all((0..8).map(|_| a.mkdir_p(&root, &["tree", "d0"]))).await;
    let caps: Vec<Cap> = made.into_iter().map(|r| r.unwrap()).collect();
    assert!(caps.iter().all(|c| *c == caps[0]), "one directory for every caller");
    let listing = a.list(&root).await.unwrap();
    assert_eq!(listing.entries.len(), 1, "{:?}", listing.entries);
    // Made again later, it is the same directory, and it takes entries.
    assert_eq!(a.mkdir_p(&root, &["tree", "d0"]).await.unwrap(), caps[0]);
    let x = Cap::Literal(b"x".to_vec());
    let entry = NewEntry { name: "x".into(), cap: x.clone(), size: 1, mtime: 1 };
    a.link_many(&caps[0], vec![entry], false).await.unwrap();
    assert_eq!(dirs_of(&g, 2).lookup(&root, &split("tree/d0/x")).await.unwrap(), x);
    g.cancel.cancel();
}
