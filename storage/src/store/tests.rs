use super::*;
use crate::capability::ReadCap;
use crate::coding::{Decoder, Params};

const SI: StorageIndex = [3; 16];
const P: Params = Params { k: 2, n: 3, segment_size: 1000 };

/// A file encoded into shares: (capability, root bytes, hashes, blocks[segment][share]).
struct Encoded {
    cap: ReadCap,
    root: Vec<u8>,
    hashes: Vec<Vec<Hash>>,
    blocks: Vec<Vec<Vec<u8>>>,
    data: Vec<u8>,
}

fn encode(size: usize) -> Encoded {
    let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let (record, hashes, blocks) = crate::coding::encode_all([9; 32], P, &data);
    let cap = ReadCap { key: [9; 32], root: record.hash(), k: P.k, n: P.n, size: size as u64 };
    Encoded { cap, root: record.encode(), hashes, blocks, data }
}

fn store_share(s: &dyn ShareStore, e: &Encoded, share: u8) -> Result<(), StoreError> {
    store_share_at(s, &SI, e, share)
}

fn store_share_at(
    s: &dyn ShareStore,
    si: &StorageIndex,
    e: &Encoded,
    share: u8,
) -> Result<(), StoreError> {
    let len = share_len(&RootRecord::decode(&e.root).unwrap());
    let mut w = s.create(si, share, len)?;
    for row in &e.blocks {
        w.write_block(&row[share as usize])?;
    }
    w.finish(&e.root, &e.hashes[share as usize])
}

fn read_back(
    s: &dyn ShareStore,
    e: &Encoded,
    shares: &[u8],
) -> Result<Vec<u8>, crate::CodingError> {
    let mut dec = Decoder::for_read(&e.cap, &s.read_meta(&SI, shares[0]).unwrap().root)?;
    for &sh in shares {
        dec.accept_hashes(sh as usize, s.read_meta(&SI, sh).unwrap().hashes)?;
    }
    let mut out = Vec::new();
    for seg in 0..e.blocks.len() as u64 {
        let blocks =
            shares.iter().map(|&sh| (sh as usize, s.read_block(&SI, sh, seg).unwrap())).collect();
        out.extend(dec.plaintext(seg, blocks)?);
    }
    Ok(out)
}

fn roundtrip(s: &dyn ShareStore) {
    for size in [0, 1, 999, 1000, 2500] {
        let e = encode(size);
        for share in 0..3 {
            store_share(s, &e, share).unwrap();
        }
        assert_eq!(s.list(&SI).unwrap(), vec![0, 1, 2]);
        assert_eq!(read_back(s, &e, &[2, 0]).unwrap(), e.data, "size {size}");
        for share in 0..3 {
            assert!(s.remove(&SI, share).unwrap());
        }
        assert!(!s.remove(&SI, 0).unwrap());
        assert_eq!(s.used(), 0);
    }
}

fn full_and_bad_uploads(s: &dyn ShareStore, capacity: u64) {
    let err = s.create(&SI, 0, capacity + 1).err().expect("over capacity");
    assert!(
        matches!(err, StoreError::Full { needed, free } if needed == capacity + 1 && free == capacity),
        "{err}"
    );
    // A writer holds its reservation until dropped.
    let w = s.create(&SI, 0, capacity).unwrap();
    assert!(matches!(s.create(&SI, 1, 1), Err(StoreError::Full { free: 0, .. })));
    drop(w);
    assert_eq!(s.used(), 0);
    // More bytes than declared, or a root record that disagrees: refused, nothing visible.
    let e = encode(2500);
    let mut w = s.create(&SI, 0, 10).unwrap();
    assert!(matches!(w.write_block(&[0u8; 11]), Err(StoreError::BadUpload { .. })));
    drop(w);
    let len = share_len(&RootRecord::decode(&e.root).unwrap());
    let mut w = s.create(&SI, 0, len).unwrap();
    for row in &e.blocks {
        w.write_block(&row[0]).unwrap();
    }
    let err = w.finish(&e.root, &e.hashes[0][..1]).unwrap_err().to_string();
    assert!(err.contains("implied by the root record"), "{err}");
    assert!(s.list(&SI).unwrap().is_empty());
    assert!(matches!(s.read_block(&SI, 0, 0), Err(StoreError::NotFound { share: 0, .. })));
    assert_eq!(s.used(), 0);
}

#[test]
fn roundtrip_mem() {
    roundtrip(&MemStore::new(1 << 30));
}

#[test]
fn roundtrip_fs() {
    let dir = tempfile::tempdir().unwrap();
    roundtrip(&FsStore::open(dir.path(), 1 << 30).unwrap());
}

#[test]
fn full_and_bad_uploads_mem() {
    full_and_bad_uploads(&MemStore::new(50_000), 50_000);
}

#[test]
fn full_and_bad_uploads_fs() {
    let dir = tempfile::tempdir().unwrap();
    full_and_bad_uploads(&FsStore::open(dir.path(), 50_000).unwrap(), 50_000);
}

#[test]
fn corruption_on_disk_is_detected_and_other_shares_serve() {
    let dir = tempfile::tempdir().unwrap();
    let s = FsStore::open(dir.path(), 1 << 30).unwrap();
    let e = encode(2500);
    for share in 0..3 {
        store_share(&s, &e, share).unwrap();
    }
    // Flip a byte inside segment 1's block of share 0.
    let path = dir.path().join(hex::encode(SI)).join("0");
    let mut bytes = std::fs::read(&path).unwrap();
    let full = block_len(&RootRecord::decode(&e.root).unwrap(), 0);
    bytes[full + 3] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    assert_eq!(
        read_back(&s, &e, &[0, 1]),
        Err(crate::CodingError::CorruptBlock { share: 0, segment: 1 })
    );
    assert_eq!(read_back(&s, &e, &[1, 2]).unwrap(), e.data);
    // The in-memory twin can simulate the same.
    let m = MemStore::new(1 << 30);
    store_share(&m, &e, 0).unwrap();
    store_share(&m, &e, 1).unwrap();
    m.corrupt(&SI, 1, 0);
    assert_eq!(
        read_back(&m, &e, &[0, 1]),
        Err(crate::CodingError::CorruptBlock { share: 1, segment: 0 })
    );
}

#[test]
fn crash_mid_write_leaves_no_share_and_index_follows_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let e = encode(2500);
    {
        let s = FsStore::open(dir.path(), 1 << 30).unwrap();
        store_share(&s, &e, 0).unwrap();
        store_share(&s, &e, 1).unwrap();
        let mut w = s.create(&SI, 2, 100_000).unwrap();
        w.write_block(&e.blocks[0][2]).unwrap();
        // A crash: the writer is never finished nor dropped.
        std::mem::forget(w);
    }
    std::fs::remove_file(dir.path().join(hex::encode(SI)).join("1")).unwrap();
    let s = FsStore::open(dir.path(), 1 << 30).unwrap();
    assert_eq!(s.list(&SI).unwrap(), vec![0], "half share gone, deleted share unlisted");
    let leftovers: Vec<_> =
        std::fs::read_dir(dir.path().join(hex::encode(SI))).unwrap().flatten().collect();
    assert_eq!(leftovers.len(), 1, "temporary file removed");
    assert_eq!(s.used(), share_len(&RootRecord::decode(&e.root).unwrap()));
}

#[test]
fn truncated_share_file_is_reported_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let s = FsStore::open(dir.path(), 1 << 30).unwrap();
    let e = encode(2500);
    store_share(&s, &e, 0).unwrap();
    let path = dir.path().join(hex::encode(SI)).join("0");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 5]).unwrap();
    let err = s.read_block(&SI, 0, 0).unwrap_err();
    assert!(matches!(err, StoreError::Damaged { share: 0, .. }), "{err}");
}

#[test]
fn a_real_full_disk_refuses_up_front_or_mid_write_and_loses_nothing() {
    let Some(fs) = cloudy_overlay::tmpfs::Tmpfs::mount(256 << 10) else { return };
    // Capacity far above the disk: the filesystem is what runs out.
    let s = FsStore::open(&fs.path().join("shares"), 1 << 30).unwrap();
    let small = encode(20_000);
    store_share(&s, &small, 0).unwrap();
    // A share larger than the disk is refused before anything is written.
    let big = encode(1_000_000);
    let err = store_share(&s, &big, 0).unwrap_err();
    assert!(matches!(err, StoreError::Full { .. }), "{err}");
    assert!(s.free() < 256 << 10);
    // The disk fills up while a share is being written: refused as full,
    // the half share disappears, the earlier share is intact.
    let mid = encode(60_000);
    let len = share_len(&RootRecord::decode(&mid.root).unwrap());
    let mut w = s.create(&SI, 1, len).unwrap();
    fs.fill(4096);
    let mut failed = None;
    for row in &mid.blocks {
        if let Err(e) = w.write_block(&row[1]) {
            failed = Some(e);
            break;
        }
    }
    let err = match failed {
        Some(e) => e,
        None => w.finish(&mid.root, &mid.hashes[1]).unwrap_err(),
    };
    assert!(matches!(err, StoreError::Full { .. }), "{err}");
    assert_eq!(s.list(&SI).unwrap(), vec![0]);
    assert_eq!(s.read_block(&SI, 0, 0).unwrap(), small.blocks[0][0]);
    // Space freed: writing works again.
    fs.unfill();
    store_share(&s, &mid, 1).unwrap();
    assert_eq!(s.list(&SI).unwrap(), vec![0, 1]);
}

fn leases(s: &dyn ShareStore) {
    let e = encode(2500);
    store_share(s, &e, 0).unwrap();
    assert!(
        s.expired(u64::MAX).unwrap().is_empty(),
        "a share without a lease yet is never expired"
    );
    assert_eq!(s.renew(&SI, "a", 100).unwrap(), 1);
    assert_eq!(s.renew(&SI, "a", 50).unwrap(), 1, "renewing never shortens a lease");
    assert!(s.expired(100).unwrap().is_empty());
    assert_eq!(s.expired(101).unwrap(), vec![SI]);
    s.renew(&SI, "b", 200).unwrap();
    assert!(s.expired(150).unwrap().is_empty(), "every owner's lease counts");
    assert_eq!(s.expired(201).unwrap(), vec![SI]);
    assert_eq!(s.renew(&[7; 16], "a", 100).unwrap(), 0, "nothing to lease");
    // Both owners' leases cover the share: it counts for each.
    let usage = s.usage().unwrap();
    assert!(usage["a"] > 0 && usage["a"] == usage["b"], "{usage:?}");
    assert_eq!((s.used_by("a").unwrap(), s.used_by("nobody").unwrap()), (usage["a"], 0));
    assert!(s.remove(&SI, 0).unwrap());
    assert_eq!(s.used_by("a").unwrap(), 0, "usage goes with the share");
    assert!(s.expired(u64::MAX).unwrap().is_empty(), "leases go with the last share");
}

#[test]
fn leases_mem() {
    leases(&MemStore::new(1 << 30));
}

#[test]
fn leases_fs_and_they_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    leases(&FsStore::open(dir.path(), 1 << 30).unwrap());
    let s = FsStore::open(dir.path(), 1 << 30).unwrap();
    let e = encode(2500);
    store_share(&s, &e, 1).unwrap();
    s.renew(&SI, "a", 300).unwrap();
    drop(s);
    let s = FsStore::open(dir.path(), 1 << 30).unwrap();
    assert_eq!(s.expired(301).unwrap(), vec![SI], "the lease was kept");
    // A share found with no lease at all (written before leases existed)
    // gets one from the time the store opens.
    let other: StorageIndex = [4; 16];
    store_share_at(&s, &other, &e, 0).unwrap();
    drop(s);
    let s = FsStore::open(dir.path(), 1 << 30).unwrap();
    let now = super::now_secs();
    assert!(!s.expired(now + 60).unwrap().contains(&other));
    assert!(s.expired(now + LEASE_SECS + 60).unwrap().contains(&other));
}

fn row(writer: u8, seqnum: u64, body: &[u8]) -> SlotRow {
    SlotRow {
        si: SI,
        writer: [writer; 16],
        seqnum,
        bytes: body.to_vec(),
        owner: "a".into(),
        until: 100,
    }
}

fn slots(s: &dyn ShareStore) {
    assert_eq!(s.put_slot(row(1, 2, b"two")).unwrap(), SlotPut::Stored);
    assert_eq!(s.put_slot(row(1, 2, b"two")).unwrap(), SlotPut::Stored, "the same again");
    assert_eq!(s.put_slot(row(1, 1, b"one")).unwrap(), SlotPut::Stale { held: 2 }, "no rollback");
    assert_eq!(
        s.put_slot(row(1, 2, b"other")).unwrap(),
        SlotPut::Stale { held: 2 },
        "same version, other contents"
    );
    assert_eq!(s.put_slot(row(2, 1, b"b1")).unwrap(), SlotPut::Stored);
    assert_eq!(s.put_slot(row(1, 3, b"three")).unwrap(), SlotPut::Stored);
    let mut held = s.slots(&SI).unwrap();
    held.sort();
    assert_eq!(held, vec![b"b1".to_vec(), b"three".to_vec()]);
    assert!(s.slots(&[9; 16]).unwrap().is_empty());
    assert_eq!(s.used_by("a").unwrap(), 7, "slots count for their owner");
    for w in 3..MAX_WRITERS as u8 + 1 {
        assert_eq!(s.put_slot(row(w, 1, b"x")).unwrap(), SlotPut::Stored);
    }
    assert_eq!(s.put_slot(row(200, 1, b"x")).unwrap(), SlotPut::TooManyWriters);
    assert_eq!(s.renew(&SI, "a", 500).unwrap(), MAX_WRITERS, "a renewal covers slots");
    assert_eq!(s.expire_slots(400).unwrap(), 0);
    assert_eq!(s.expire_slots(501).unwrap(), MAX_WRITERS);
    assert!(s.slots(&SI).unwrap().is_empty());
}

#[test]
fn slots_mem() {
    slots(&MemStore::new(1 << 30));
}

#[test]
fn slots_fs_and_they_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    slots(&FsStore::open(dir.path(), 1 << 30).unwrap());
    let s = FsStore::open(dir.path(), 1 << 30).unwrap();
    s.put_slot(row(1, 5, b"five")).unwrap();
    drop(s);
    let s = FsStore::open(dir.path(), 1 << 30).unwrap();
    assert_eq!(s.slots(&SI).unwrap(), vec![b"five".to_vec()]);
    assert_eq!(s.put_slot(row(1, 4, b"four")).unwrap(), SlotPut::Stale { held: 5 });
}
