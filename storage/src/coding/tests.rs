use super::*;
use crate::capability::ReadCap;
use proptest::prelude::*;

/// What an upload produced.
struct Upload {
    cap: ReadCap,
    root: Vec<u8>,
    hashes: Vec<Vec<Hash>>,
    /// `blocks[segment][share]`.
    blocks: Vec<Vec<Vec<u8>>>,
}

fn upload(data: &[u8], p: Params) -> Upload {
    let key: [u8; 32] = rand::random();
    let (record, hashes, blocks) = encode_all(key, p, data);
    let cap = ReadCap { key, root: record.hash(), k: p.k, n: p.n, size: data.len() as u64 };
    Upload { cap, root: record.encode(), hashes, blocks }
}

fn download(
    cap: &ReadCap,
    root: &[u8],
    hashes: &[Vec<Hash>],
    blocks: &[Vec<Vec<u8>>],
    shares: &[usize],
) -> Result<Vec<u8>, CodingError> {
    let mut dec = Decoder::for_read(cap, root)?;
    for &s in shares {
        dec.accept_hashes(s, hashes[s].clone())?;
    }
    let mut out = Vec::new();
    for (seg, row) in blocks.iter().enumerate() {
        let chosen = shares.iter().map(|&s| (s, row[s].clone())).collect();
        out.extend(dec.plaintext(seg as u64, chosen)?);
    }
    dec.finish()?;
    Ok(out)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn roundtrip_from_any_k_shares(
        data in proptest::collection::vec(any::<u8>(), 0..5000),
        k in 1u8..5, extra in 0u8..4, seg in 1u32..1500, pick in any::<u64>(),
    ) {
        let p = Params { k, n: k + extra, segment_size: seg };
        let Upload { cap, root, hashes, blocks } = upload(&data, p);
        let mut shares: Vec<usize> = (0..p.n as usize).collect();
        shares.rotate_left(pick as usize % p.n as usize);
        shares.truncate(k as usize);
        prop_assert_eq!(download(&cap, &root, &hashes, &blocks, &shares).unwrap(), data);
    }
}

#[test]
fn sizes_around_segment_boundaries() {
    let p = Params { k: 3, n: 6, segment_size: 1024 };
    for size in [0usize, 1, 1023, 1024, 1025, 3 * 1024, 3 * 1024 + 7] {
        let data: Vec<u8> = (0..size).map(|i| (i * 7) as u8).collect();
        let Upload { cap, root, hashes, blocks } = upload(&data, p);
        assert_eq!(blocks.len(), size.div_ceil(1024).max(1), "size {size}");
        assert_eq!(
            download(&cap, &root, &hashes, &blocks, &[5, 1, 3]).unwrap(),
            data,
            "size {size}"
        );
    }
}

#[test]
fn corruption_is_caught_where_it_happens() {
    let p = Params { k: 2, n: 4, segment_size: 100 };
    let data = vec![42u8; 350];
    let Upload { cap, root, hashes, mut blocks } = upload(&data, p);
    // A flipped bit in one block: named by share and segment.
    blocks[2][1][0] ^= 1;
    assert_eq!(
        download(&cap, &root, &hashes, &blocks, &[1, 3]),
        Err(CodingError::CorruptBlock { share: 1, segment: 2 })
    );
    // Other shares still rebuild the file.
    assert_eq!(download(&cap, &root, &hashes, &blocks, &[0, 3]).unwrap(), data);
    // A tampered hash list or root record is refused up front.
    let mut bad_hashes = hashes.clone();
    bad_hashes[0][0][0] ^= 1;
    assert_eq!(
        download(&cap, &root, &bad_hashes, &blocks, &[0, 3]),
        Err(CodingError::CorruptShareHashes { share: 0 })
    );
    let mut bad_root = root.clone();
    *bad_root.last_mut().unwrap() ^= 1;
    assert_eq!(
        download(&cap, &bad_root, &hashes, &blocks, &[0, 3]).err(),
        Some(CodingError::RootMismatch)
    );
    // The wrong key cannot decrypt even with a matching root.
    let wrong = ReadCap { key: [0; 32], ..cap.clone() };
    assert_eq!(download(&wrong, &root, &hashes, &blocks, &[0, 3]), Err(CodingError::Decrypt(0)));
}

#[test]
fn verify_cap_repairs_without_reading() {
    let p = Params { k: 2, n: 4, segment_size: 64 };
    let data: Vec<u8> = (0..200).map(|i| i as u8).collect();
    let Upload { cap, root, hashes, blocks } = upload(&data, p);
    let mut dec = Decoder::for_verify(&cap.verify_cap(), &root).unwrap();
    for s in [0, 2] {
        dec.accept_hashes(s, hashes[s].clone()).unwrap();
    }
    for (seg, row) in blocks.iter().enumerate() {
        let chosen = vec![(0, row[0].clone()), (2, row[2].clone())];
        let sealed = dec.ciphertext(seg as u64, chosen.clone()).unwrap();
        // Regenerated blocks equal the originals, so lost shares can be rebuilt.
        assert_eq!(&dec.blocks_of(&sealed), row);
        assert_eq!(dec.plaintext(seg as u64, chosen), Err(CodingError::Decrypt(seg as u64)));
    }
}

#[test]
fn too_few_shares_and_wrong_segment_lengths() {
    let p = Params { k: 3, n: 5, segment_size: 10 };
    let Upload { cap, root, hashes, blocks } = upload(&[1u8; 25], p);
    assert_eq!(
        download(&cap, &root, &hashes, &blocks, &[0, 4]),
        Err(CodingError::NotEnoughBlocks { segment: 0, k: 3, have: 2 })
    );
    let mut enc = Encoder::new([0; 32], p, 25).unwrap();
    assert!(enc.push(&[0u8; 9]).is_err());
    enc.push(&[0u8; 10]).unwrap();
    assert!(matches!(enc.finish(), Err(CodingError::SegmentLength { index: 1, .. })));
    assert!(Params { k: 0, n: 3, segment_size: 1 }.validate().is_err());
    assert!(Params { k: 1, n: 3, segment_size: MAX_SEGMENT + 1 }.validate().is_err());
}
