use super::*;
use crate::chunk::{blocks_of, Block};
use crate::fetch_error::{AskError, FetchError};
use crate::scan::scan;
use std::collections::HashMap;
use std::sync::Mutex;

/// Blocks served from memory; counts what was fetched.
#[derive(Default)]
struct Mem {
    blocks: HashMap<Hash, Vec<u8>>,
    fetched: Mutex<usize>,
}

impl Mem {
    fn with(data: &[u8]) -> (Mem, Vec<Block>) {
        let blocks = blocks_of(data, data.len() as u64).unwrap();
        let mut m = Mem::default();
        for b in &blocks {
            m.blocks.insert(
                b.hash,
                data[b.offset as usize..(b.offset + b.size as u64) as usize].to_vec(),
            );
        }
        (m, blocks)
    }
}

impl BlockSource for Mem {
    fn fetch(&self, hash: Hash, _size: u32) -> BoxFuture<'_, Result<Verified, FetchError>> {
        *self.fetched.lock().unwrap() += 1;
        // A member standing in for the memory, so errors read as they do.
        let peer = cloudy_overlay::PeerId::from_bytes(&[0, 2, 0, 0]).unwrap();
        let fail = |e| FetchError(vec![e]);
        let got = self.blocks.get(&hash).cloned().ok_or(fail(AskError::Missing(peer)));
        let got = got.and_then(|b| {
            Verified::check(&hash, b).map_err(|_| fail(AskError::Corrupt { peer, what: "block" }))
        });
        Box::pin(async move { got })
    }
}

fn remote(path: &str, blocks: Vec<Block>, by: u64) -> FileInfo {
    FileInfo::test_file(path, blocks, by)
}

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| ((i * 31 + seed as usize * 7) % 251) as u8 ^ (i >> 9) as u8).collect()
}

#[tokio::test]
async fn a_file_arrives_whole_and_a_rescan_sees_no_change() {
    let dir = tempfile::tempdir().unwrap();
    let ix = Index::in_memory();
    let content = data(300_000, 1);
    let (src, blocks) = Mem::with(&content);
    let f = remote("sub/new.bin", blocks, 2);
    take(dir.path(), &ix, &f, &src, None).await.unwrap();
    let on_disk = dir.path().join("sub/new.bin");
    assert_eq!(std::fs::read(&on_disk).unwrap(), content);
    assert_eq!(on_disk.metadata().unwrap().permissions().mode() & 0o777, 0o640);
    let indexed = ix.get(&f.path).unwrap().unwrap();
    assert_eq!(indexed.version, f.version);
    let r = scan(dir.path(), &ix, 1, &crate::scan::Hold::default()).unwrap();
    assert!(!r.changed.iter().any(|p| p.as_str() == "sub/new.bin"), "{r:?}");
}

#[tokio::test]
async fn a_renamed_file_is_built_from_local_blocks_without_fetching() {
    let dir = tempfile::tempdir().unwrap();
    let ix = Index::in_memory();
    let content = data(500_000, 2);
    std::fs::write(dir.path().join("old.bin"), &content).unwrap();
    scan(dir.path(), &ix, 1, &crate::scan::Hold::default()).unwrap();
    let src = Mem::default(); // has nothing: every fetch would fail
    let f = remote("new.bin", blocks_of(&content[..], content.len() as u64).unwrap(), 2);
    take(dir.path(), &ix, &f, &src, None).await.unwrap();
    assert_eq!(std::fs::read(dir.path().join("new.bin")).unwrap(), content);
    assert_eq!(*src.fetched.lock().unwrap(), 0);
}

#[tokio::test]
async fn a_corrupt_block_is_refused_and_nothing_replaces_the_old_file() {
    let dir = tempfile::tempdir().unwrap();
    let ix = Index::in_memory();
    std::fs::write(dir.path().join("f"), b"the good old content").unwrap();
    scan(dir.path(), &ix, 1, &crate::scan::Hold::default()).unwrap();
    let content = data(100_000, 3);
    let (mut src, blocks) = Mem::with(&content);
    for v in src.blocks.values_mut() {
        v[0] ^= 1;
    }
    let mut f = remote("f", blocks, 2);
    f.version = ix.get(&f.path).unwrap().unwrap().version.bumped(2);
    let err = take(dir.path(), &ix, &f, &src, None).await.unwrap_err();
    assert!(err.to_string().contains("block does not match its hash"), "{err}");
    assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"the good old content");
    let names: Vec<_> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 1, "no temporary file left: {names:?}");
}

#[tokio::test]
async fn deletions_and_replacements_keep_a_version() {
    let dir = tempfile::tempdir().unwrap();
    let ix = Index::in_memory();
    std::fs::write(dir.path().join("a"), b"version one").unwrap();
    scan(dir.path(), &ix, 1, &crate::scan::Hold::default()).unwrap();
    let ours = ix.get(&RelPath::parse("a").unwrap()).unwrap().unwrap();
    let (src, blocks) = Mem::with(b"version two, longer");
    let newer = FileInfo { version: ours.version.bumped(2), ..remote("a", blocks, 2) };
    take(dir.path(), &ix, &newer, &src, None).await.unwrap();
    assert_eq!(std::fs::read(dir.path().join("a")).unwrap(), b"version two, longer");
    let gone = FileInfo {
        deleted: true,
        blocks: vec![],
        version: newer.version.bumped(2),
        ..newer.clone()
    };
    take(dir.path(), &ix, &gone, &src, None).await.unwrap();
    assert!(!dir.path().join("a").exists());
    let mut kept: Vec<Vec<u8>> = std::fs::read_dir(dir.path().join(VERSIONS_DIR))
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    kept.sort();
    assert_eq!(kept, vec![b"version one".to_vec(), b"version two, longer".to_vec()]);
    assert!(ix.get(&gone.path).unwrap().unwrap().deleted);
}

#[tokio::test]
async fn nothing_is_written_through_a_symbolic_link() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join("escape")).unwrap();
    let ix = Index::in_memory();
    let (src, blocks) = Mem::with(b"payload");
    let err =
        take(dir.path(), &ix, &remote("escape/evil", blocks, 2), &src, None).await.unwrap_err();
    assert!(matches!(err, ApplyError::ThroughLink(_)), "{err}");
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
}

#[tokio::test]
async fn their_losing_content_is_saved_as_a_conflict_copy() {
    let dir = tempfile::tempdir().unwrap();
    let ix = Index::in_memory();
    let (src, blocks) = Mem::with(b"their edit");
    let theirs = remote("notes.txt", blocks, 0xABCDEF0123456789);
    let name = save_conflict_copy(dir.path(), &ix, &theirs, false, &src).await.unwrap();
    assert_eq!(name.as_str(), "notes.sync-conflict-20261118-110640-ABCDEF0.txt");
    assert_eq!(std::fs::read(name.under(dir.path())).unwrap(), b"their edit");
}

#[tokio::test]
async fn a_file_changed_here_and_not_yet_scanned_is_never_replaced_nor_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let ix = Index::in_memory();
    let a = dir.path().join("a");
    std::fs::write(&a, b"scanned").unwrap();
    scan(dir.path(), &ix, 1, &crate::scan::Hold::default()).unwrap();
    let ours = ix.get(&RelPath::parse("a").unwrap()).unwrap().unwrap();
    // Edited here; the scanner has not seen it yet.
    std::fs::write(&a, b"edited here, longer").unwrap();
    let (src, blocks) = Mem::with(b"their newer version");
    let newer = FileInfo { version: ours.version.bumped(2), ..remote("a", blocks, 2) };
    let err = take(dir.path(), &ix, &newer, &src, None).await.unwrap_err();
    assert!(matches!(err, ApplyError::ChangedHere(_)), "{err}");
    let gone = FileInfo { deleted: true, blocks: vec![], ..newer.clone() };
    assert!(matches!(
        take(dir.path(), &ix, &gone, &src, None).await.unwrap_err(),
        ApplyError::ChangedHere(_)
    ));
    assert_eq!(std::fs::read(&a).unwrap(), b"edited here, longer");
    let names: Vec<_> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 1, "no temporary file or version left: {names:?}");
    // A file that was never scanned at all is left alone too.
    std::fs::write(dir.path().join("b"), b"never scanned").unwrap();
    let (src, blocks) = Mem::with(b"theirs");
    let err = take(dir.path(), &ix, &remote("b", blocks, 2), &src, None).await.unwrap_err();
    assert!(matches!(err, ApplyError::ChangedHere(_)), "{err}");
    assert_eq!(std::fs::read(dir.path().join("b")).unwrap(), b"never scanned");
}
