//! Folder sync benchmark: 2 real `cloudy-p2p` processes on 127.0.0.1.
//!
//! ```text
//! cargo bench -p cloudy-cli --bench sync
//! ```
//!
//! Node 0 shares a folder, node 1 joins it; each step changes node 0's
//! folder and waits until node 1's copy is byte-identical. Prints seconds
//! per step, MB/s for the large file, bytes on the wire for the small
//! edits (the loopback interface's byte counter, both directions, QUIC
//! headers included), and both nodes' RSS once idle.
#![allow(clippy::unwrap_used)] // test and benchmark code: a failed unwrap is a failed run

use cloudy_node::control::api::{AddFolder, JoinFolder};
use cloudy_node::control::client::Client;
use cloudy_node::process::NodeProcess;
use cloudy_node::Home;
use rand::RngCore;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[path = "common/procfs.rs"]
mod procfs;
use procfs::{delta, lo_bytes, na, rss_mb};

const EXE: &str = env!("CARGO_BIN_EXE_cloudy-p2p");

fn random(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rand::thread_rng().fill_bytes(&mut v);
    v
}

/// Polls `done` every 20 ms (120 s at most); returns the time from
/// `start` to the start of the check that passed (so the cost of reading
/// the files to compare them is not counted).
async fn until(start: Instant, what: &str, mut done: impl FnMut() -> bool) -> Duration {
    loop {
        let at = start.elapsed();
        if done() {
            return at;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "{what}: not done after 120 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Byte-identical to `want`. Size and mtime (the receiver copies the
/// sender's) are compared first, so polling does not read both files every
/// time; then the receiver's file is streamed against `want`.
fn same_file(a: &Path, b: &Path, want: &[u8]) -> bool {
    use std::io::Read;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y))
            if x.len() == y.len()
                && y.len() == want.len() as u64
                && x.modified().ok() == y.modified().ok() =>
        {
            let Ok(mut f) = std::fs::File::open(b) else { return false };
            let mut buf = vec![0u8; 1 << 20];
            let mut at = 0;
            loop {
                match f.read(&mut buf) {
                    Ok(0) => return at == want.len(),
                    Ok(n) if want.get(at..at + n) == Some(&buf[..n]) => at += n,
                    _ => return false,
                }
            }
        }
        _ => false,
    }
}

/// Flushes what earlier steps wrote, so its writeback is not timed in the
/// next step.
fn settle_disk() {
    let _ = std::process::Command::new("sync").status();
    if std::env::var_os("SYNC_BENCH_LOGS").is_some() {
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        eprintln!("step starts at {:.3} (Unix time)", now.as_secs_f64());
    }
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut nodes: Vec<NodeProcess> = Vec::new();
    for i in 0..2 {
        let home = Home::new(dir.path().join(format!("n{i}")));
        nodes.push(
            NodeProcess::start_local(Path::new(EXE), &home, nodes.first(), i, None)
                .await
                .expect("start"),
        );
    }
    let (a, b): (PathBuf, PathBuf) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir(&a).unwrap();
    std::fs::create_dir(&b).unwrap();
    let c0 = Client::for_home(&nodes[0].home).unwrap();
    let c1 = Client::for_home(&nodes[1].home).unwrap();
    let f = c0
        .add_folder(&AddFolder {
            path: a.display().to_string(),
            name: Some("bench".into()),
            members: vec![nodes[1].peer_id.clone()],
        })
        .await
        .expect("add");
    c1.join_folder(&JoinFolder { invite: f.invite.clone(), path: b.display().to_string() })
        .await
        .expect("join");
    let start = Instant::now();
    loop {
        let rows = c1.folders().await.unwrap_or_default();
        if rows
            .first()
            .is_some_and(|r| r.members.len() == 2 && r.status.state.to_string() == "in sync")
        {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "the folders never connected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // 1000 files of 4 KiB.
    let names: Vec<String> = (0..1000).map(|i| format!("small/f{i:04}.bin")).collect();
    std::fs::create_dir(a.join("small")).unwrap();
    let contents: Vec<Vec<u8>> = names.iter().map(|_| random(4096)).collect();
    settle_disk();
    let t = Instant::now();
    for (n, c) in names.iter().zip(&contents) {
        std::fs::write(a.join(n), c).unwrap();
    }
    let small = until(t, "1000 files", || {
        names.iter().zip(&contents).all(|(n, c)| same_file(&a.join(n), &b.join(n), c))
    })
    .await;

    // One 256 MiB file.
    let big = random(256 << 20);
    settle_disk();
    let t = Instant::now();
    std::fs::write(a.join("big.bin"), &big).unwrap();
    let large_write = t.elapsed();
    let large =
        until(t, "256 MiB", || same_file(&a.join("big.bin"), &b.join("big.bin"), &big)).await;

    // One byte changed in the middle.
    let mut edited = big.clone();
    edited[128 << 20] ^= 0xff;
    settle_disk();
    let (t, wire) = (Instant::now(), lo_bytes());
    std::fs::write(a.join("big.bin"), &edited).unwrap();
    let change_write = t.elapsed();
    let change =
        until(t, "1-byte change", || same_file(&a.join("big.bin"), &b.join("big.bin"), &edited))
            .await;
    let change_wire = delta(wire, lo_bytes());

    // One byte inserted at the start.
    let mut inserted = vec![42u8];
    inserted.extend_from_slice(&edited);
    settle_disk();
    let (t, wire) = (Instant::now(), lo_bytes());
    std::fs::write(a.join("big.bin"), &inserted).unwrap();
    let insert_write = t.elapsed();
    let insert = until(t, "1-byte insertion", || {
        same_file(&a.join("big.bin"), &b.join("big.bin"), &inserted)
    })
    .await;
    let insert_wire = delta(wire, lo_bytes());

    // 100 files deleted.
    settle_disk();
    let t = Instant::now();
    for n in &names[..100] {
        std::fs::remove_file(a.join(n)).unwrap();
    }
    let delete =
        until(t, "100 deletions", || names[..100].iter().all(|n| !b.join(n).exists())).await;

    let conflicts = std::fs::read_dir(&b)
        .unwrap()
        .filter(|e| {
            e.as_ref().is_ok_and(|e| e.file_name().to_string_lossy().contains("sync-conflict"))
        })
        .count();
    let versions = std::fs::read_dir(b.join(".cloudy-versions")).map(|d| d.count()).unwrap_or(0);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss: Vec<Option<f64>> = nodes.iter().map(|n| rss_mb(n.pid())).collect();
    for c in [&c0, &c1] {
        let _ = c.shutdown().await;
    }
    for n in &mut nodes {
        n.wait_exit(Duration::from_secs(10)).await;
    }
    // SYNC_BENCH_LOGS=DIR keeps both nodes' logs.
    if let Ok(keep) = std::env::var("SYNC_BENCH_LOGS") {
        for (i, n) in nodes.iter().enumerate() {
            let _ = std::fs::copy(&n.log, Path::new(&keep).join(format!("node{i}.log")));
        }
    }

    let mbps = (256u64 << 20) as f64 / 1e6 / large.as_secs_f64();
    println!();
    println!("cloudy-p2p sync benchmark: 2 processes on 127.0.0.1");
    println!("| step | measured | target | Syncthing 1.19 |");
    println!("|---|---|---|---|");
    println!("| initial sync, 1000 x 4 KiB | {} | <= 2 s | 2.56 s |", secs(small));
    println!(
        "| one 256 MiB file | {} ({mbps:.0} MB/s) | <= 3 s (>= 100 MB/s) | 2.93 s (91.7 MB/s) |",
        secs(large)
    );
    println!("| 1 byte changed in the middle | {}, {} KB on the wire | <= 2 s, <= 200 KB | 2.52 s, 354 KB |", secs(change), na(change_wire.map(|b| b as f64 / 1e3), 0));
    println!(
        "| 1 byte inserted at the start | {}, {} KB on the wire | <= 2 s, <= 300 KB | 6.62 s, 357 KB |",
        secs(insert),
        na(insert_wire.map(|b| b as f64 / 1e3), 0)
    );
    println!("| delete 100 files | {} | <= 1.5 s | - |", secs(delete));
    println!("| conflict copies made (should be none) / versions kept on node 1 | {conflicts} / {versions} | 0 / - | - |");
    println!(
        "| idle RSS after sync, node 0 / node 1 | {} MB / {} MB | <= 30 MB | 65-85 MB |",
        na(rss[0], 1),
        na(rss[1], 1)
    );
    println!();
    println!(
        "Of which the benchmark's own write of the 256 MiB file (before the node can see it): {} / {} / {} (large / change / insertion).",
        secs(large_write),
        secs(change_write),
        secs(insert_write)
    );
}
