//! Storage grid benchmark: 6 real `cloudy-p2p` processes on 127.0.0.1.
//!
//! ```text
//! cargo bench -p cloudy-cli --bench grid -- [--nodes 6] [--k 3] [--n 6] [--happy 4] [--small 200] [--runs 1] [--large 1] [--convergent]
//! ```
//!
//! Node 0 uploads and node 3 downloads, through the same control API the
//! CLI uses. Prints put and get MB/s (MB = 10^6 bytes of file) for 64 MiB
//! and 256 MiB random files, small files per second (sequential puts of
//! 4 KiB random files; a second pass of other files once every server has
//! been reached), and the peak RSS of the uploading node and of a
//! storage node during each transfer (VmHWM, reset before each one through
//! `/proc/PID/clear_refs`). Every download is compared with its file.
//! `--large 0` skips the large files (small files only).
#![allow(clippy::unwrap_used)] // test and benchmark code: a failed unwrap is a failed run

use cloudy_node::control::client::Client;
use cloudy_node::process::NodeProcess;
use cloudy_node::Home;
use std::path::Path;
use std::time::{Duration, Instant};

#[path = "common/procfs.rs"]
mod procfs;
use procfs::{na, peak_rss_mb, reset_peak};

const EXE: &str = env!("CARGO_BIN_EXE_cloudy-p2p");

#[path = "common/args.rs"]
mod args;
use args::arg;

fn random_file(path: &Path, len: usize) {
    use rand::RngCore;
    let mut data = vec![0u8; len];
    rand::thread_rng().fill_bytes(&mut data);
    std::fs::write(path, data).expect("write test file");
}

fn mbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

#[tokio::main]
async fn main() {
    let n_nodes = arg("--nodes", 6) as usize;
    let (k, n, happy) = (arg("--k", 3), arg("--n", 6), arg("--happy", 4));
    let small = arg("--small", 200) as usize;
    let runs = arg("--runs", 1).max(1) as usize;
    let large: &[u64] = if arg("--large", 1) == 0 { &[] } else { &[64, 256] };
    let dir = args::homes_dir();
    println!("starting {n_nodes} node processes on 127.0.0.1 ...");
    let mut nodes: Vec<NodeProcess> = Vec::new();
    for i in 0..n_nodes {
        let home = Home::new(dir.path().join(format!("n{i}")));
        let node = NodeProcess::start_local(Path::new(EXE), &home, nodes.first(), i, None)
            .await
            .expect("start");
        nodes.push(node);
    }
    let up = Client::for_home(&nodes[0].home).expect("client");
    let down = Client::for_home(&nodes[3.min(n_nodes - 1)].home).expect("client");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let a = up.services(Some("storage")).await.map(|s| s.len()).unwrap_or(0);
        let b = down.services(Some("storage")).await.map(|s| s.len()).unwrap_or(0);
        if a == n_nodes && b == n_nodes {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "storage servers not all visible after 30 s ({a}, {b} of {n_nodes})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Random keys by default (the body is encoded as it arrives);
    // --convergent uses the CLI's default key (the body is spooled and
    // hashed first).
    let convergent = std::env::args().any(|a| a == "--convergent");
    let query = format!("k={k}&n={n}&happy={happy}&random_key={}", !convergent);
    let (up_pid, store_pid) = (nodes[0].pid(), nodes[n_nodes - 1].pid());
    let mut rows = Vec::new();
    for &mib in large {
        for run in 0..runs {
            let bytes = mib << 20;
            let src = dir.path().join(format!("f{mib}"));
            random_file(&src, bytes as usize);
            reset_peak(up_pid);
            reset_peak(store_pid);
            let t = Instant::now();
            let file = tokio::fs::File::open(&src).await.expect("open");
            let stored = up.put(file, Some(bytes), &query).await.expect("put");
            let put = t.elapsed();
            let (up_rss, store_rss) = (peak_rss_mb(up_pid), peak_rss_mb(store_pid));
            let dst = dir.path().join(format!("g{mib}"));
            let t = Instant::now();
            let mut out = tokio::fs::File::create(&dst).await.expect("create");
            down.get_file(&stored.cap, &mut out).await.expect("get");
            drop(out);
            let get = t.elapsed();
            let same = std::fs::read(&src).ok() == std::fs::read(&dst).ok();
            assert!(same, "downloaded {mib} MiB file differs from the original");
            rows.push((mib, run, mbps(bytes, put), mbps(bytes, get), up_rss, store_rss));
            let _ = std::fs::remove_file(&dst);
        }
    }

    // Small files: sequential puts of distinct 4 KiB files, then gets;
    // twice: the first pass also pays the first connection to each server
    // (on N processes sharing this machine, both ends' handshakes), the
    // second does not.
    let mut small_rows = Vec::new();
    if small > 0 {
        for pass in ["first", "again"] {
            let base = dir.path().join(format!("small-{pass}"));
            small_rows.push((pass, small_files(&up, &down, &base, small, &query).await));
        }
    }

    for node in &nodes {
        if let Ok(c) = Client::for_home(&node.home) {
            let _ = c.shutdown().await;
        }
    }
    for node in &mut nodes {
        node.wait_exit(Duration::from_secs(10)).await;
    }
    args::keep_if_asked(dir);

    println!();
    let keys = if convergent { "convergent keys" } else { "random keys" };
    println!("cloudy-p2p grid benchmark: {n_nodes} processes on 127.0.0.1, {k}-of-{n}, happy {happy}, random files, {keys}");
    println!("| file | put MB/s | get MB/s | peak RSS uploader | peak RSS storage node |");
    println!("|---|---|---|---|---|");
    for (mib, run, put, get, ur, sr) in rows {
        let label =
            if runs > 1 { format!("{mib} MiB (run {})", run + 1) } else { format!("{mib} MiB") };
        println!("| {label} | {put:.1} | {get:.1} | {} MB | {} MB |", na(ur, 1), na(sr, 1));
    }
    for (pass, (put, get)) in small_rows {
        let label = match pass {
            "first" => format!("{small} x 4 KiB"),
            _ => format!("{small} x 4 KiB again (servers reached)"),
        };
        println!("| {label} | {put:.1} files/s | {get:.1} files/s | - | - |");
    }
    println!();
    println!("targets (256 MiB): put >= 100 MB/s, get >= 150 MB/s, >= 100 small files/s, uploader peak RSS <= 64 MB");
    println!("Tahoe-LAFS 1.20, 6 nodes 3-of-6, same machine: 256 MiB put 44.8 MB/s, get 55.2 MB/s; 200 x 4 KiB put 14.5 files/s; client RSS 120 MB");
}

/// Puts `count` distinct 4 KiB files one after another through `up`, then
/// gets each through `down`: files per second each way.
async fn small_files(
    up: &Client,
    down: &Client,
    base: &Path,
    count: usize,
    query: &str,
) -> (f64, f64) {
    std::fs::create_dir_all(base).expect("mkdir");
    let mut files = Vec::new();
    for i in 0..count {
        let p = base.join(format!("s{i}"));
        random_file(&p, 4096);
        files.push(p);
    }
    let t = Instant::now();
    let mut caps = Vec::new();
    for p in &files {
        let f = tokio::fs::File::open(p).await.expect("open");
        caps.push(up.put(f, Some(4096), query).await.expect("small put").cap);
    }
    let put = count as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    for (p, cap) in files.iter().zip(&caps) {
        let mut out = Vec::new();
        down.get_file(cap, &mut out).await.expect("small get");
        assert_eq!(out, std::fs::read(p).expect("read"), "small file differs");
    }
    (put, count as f64 / t.elapsed().as_secs_f64())
}
