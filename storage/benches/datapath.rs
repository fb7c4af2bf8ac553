//! Throughput of the pure storage data path on one core: seal + erasure
//! code + hash (upload side) and check + rebuild + open (download side),
//! with no network. Prints a table.
//!
//! ```text
//! cargo bench -p cloudy-storage --bench datapath -- [--mib 256]
//! ```
#![allow(clippy::unwrap_used)] // test and benchmark code: a failed unwrap is a failed run

use cloudy_storage::capability::ReadCap;
use cloudy_storage::coding::{Decoder, Encoder, Params};
use std::time::Instant;

fn arg(name: &str, default: u64) -> u64 {
    let a: Vec<String> = std::env::args().collect();
    a.iter()
        .position(|x| x == name)
        .and_then(|i| a.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let mib = arg("--mib", 256) as usize;
    let segment = 1u32 << 20;
    let one_segment: Vec<u8> =
        (0..segment).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    let size = (mib as u64) << 20;
    println!("storage data path, {mib} MiB file, 1 MiB segments, one core");
    println!("| k-of-n | encode MB/s | decode MB/s (from parity shares) |");
    println!("|---|---|---|");
    for (k, n) in [(3u8, 6u8), (3, 5), (2, 4)] {
        let p = Params { k, n, segment_size: segment };
        let key = [5u8; 32];
        // Encode, keeping only one segment's blocks (memory stays bounded).
        let t = Instant::now();
        let mut enc = Encoder::new(key, p, size).unwrap();
        let mut kept = Vec::new();
        while enc.next_segment_len().is_some() {
            kept = enc.push(&one_segment).unwrap();
        }
        let (record, hashes) = enc.finish().unwrap();
        let enc_rate = size as f64 / t.elapsed().as_secs_f64() / 1e6;
        // Decode the kept segment `segments` times from the last k shares
        // (all parity where possible), the worst case for reconstruction.
        let cap = ReadCap { key, root: record.hash(), k, n, size };
        let mut dec = Decoder::for_read(&cap, &record.encode()).unwrap();
        let shares: Vec<usize> = (n as usize - k as usize..n as usize).collect();
        for &s in &shares {
            dec.accept_hashes(s, hashes[s].clone()).unwrap();
        }
        let last = record.segments() - 1;
        let t = Instant::now();
        for _ in 0..record.segments() {
            let blocks = shares.iter().map(|&s| (s, kept[s].clone())).collect();
            let out = dec.plaintext(last, blocks).unwrap();
            assert_eq!(out.len(), segment as usize);
        }
        let dec_rate = size as f64 / t.elapsed().as_secs_f64() / 1e6;
        println!("| {k}-of-{n} | {enc_rate:.0} | {dec_rate:.0} |");
    }
}
