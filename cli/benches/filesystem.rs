//! Filesystem benchmark: 6 real `cloudy-p2p` processes on 127.0.0.1, a
//! 3-of-6 grid, driven through the CLI as a user does.
//!
//! ```text
//! cargo bench -p cloudy-cli --bench filesystem -- [--files 1000] [--runs 5]
//! ```
//!
//! Prints, with Tahoe-LAFS 1.20's figures on this machine kind beside
//! them: `cp -r` of 1,000 small (4 KiB) files and of 1,000 files of 4 KiB
//! to 1 MiB into new directories; `ls` of a 1,000-entry directory (on the
//! writing node and on another); one `mv`; a first `backup` of the mixed
//! tree and a second with nothing changed; `deep-check` of the tree, then
//! after two of the six servers were killed, `deep-check --repair` of a
//! 200-file directory and of the rest. Every timed command is a whole CLI
//! process, start to exit. Medians of `--runs` for `ls` and `mv`.
#![allow(clippy::unwrap_used)] // test and benchmark code: a failed unwrap is a failed run

use cloudy_node::process::NodeProcess;
use cloudy_node::Home;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const EXE: &str = env!("CARGO_BIN_EXE_cloudy-p2p");

#[path = "common/args.rs"]
mod args;
use args::arg;

/// Runs the CLI against `home`; panics with its stderr if it fails.
/// Returns its stdout and how long it ran.
fn cli(home: &Path, args: &[&str]) -> (String, Duration) {
    let t = Instant::now();
    let out = std::process::Command::new(EXE).arg("--home").arg(home).args(args).output().unwrap();
    let took = t.elapsed();
    assert!(
        out.status.success() || args[0] == "deep-check",
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (String::from_utf8_lossy(&out.stdout).into_owned(), took)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// `n` files named `f0000…` under `dir/sub{i % dirs}`, sizes from `size(i)`.
fn tree(dir: &Path, n: usize, dirs: usize, size: impl Fn(usize) -> usize) -> u64 {
    use rand::RngCore;
    let mut total = 0;
    for i in 0..n {
        let sub = if dirs > 1 { dir.join(format!("sub{}", i % dirs)) } else { dir.to_path_buf() };
        std::fs::create_dir_all(&sub).unwrap();
        let mut data = vec![0u8; size(i)];
        rand::thread_rng().fill_bytes(&mut data);
        total += data.len() as u64;
        std::fs::write(sub.join(format!("f{i:04}")), data).unwrap();
    }
    total
}

/// 4 KiB to 1 MiB, spread evenly on a log scale.
fn mixed(i: usize) -> usize {
    let steps = [4, 8, 16, 32, 64, 128, 256, 512, 1024];
    (steps[i % steps.len()] << 10) - (i % 97)
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

#[tokio::main]
async fn main() {
    let files = arg("--files", 1000) as usize;
    let runs = arg("--runs", 5).max(1) as usize;
    let dir = tempfile::tempdir().unwrap();
    println!("starting 6 node processes on 127.0.0.1 ...");
    let mut nodes: Vec<NodeProcess> = Vec::new();
    for i in 0..6 {
        let home = Home::new(dir.path().join(format!("n{i}")));
        let node =
            NodeProcess::start_local(Path::new(EXE), &home, nodes.first(), i, None).await.unwrap();
        nodes.push(node);
    }
    let h0: PathBuf = nodes[0].home.root().to_path_buf();
    let h3: PathBuf = nodes[3].home.root().to_path_buf();
    let deadline = Instant::now() + Duration::from_secs(30);
    for h in [&h0, &h3] {
        loop {
            let (out, _) = cli(h, &["services", "storage", "--json"]);
            let v: serde_json::Value = serde_json::from_str(&out).unwrap();
            if v.as_array().unwrap().len() == 6 {
                break;
            }
            assert!(Instant::now() < deadline, "six storage servers not seen within 30 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    cli(&h0, &["alias", "create", "bench"]);
    let (caps, _) = cli(&h0, &["alias", "list", "--json"]);
    let root: serde_json::Value = serde_json::from_str(&caps).unwrap();
    let root = root["bench"].as_str().unwrap().to_string();
    cli(&h3, &["alias", "add", "bench", &root]);
    let enc = ["--k", "3", "--n", "6", "--happy", "4"];

    // cp -r of small files into one new directory.
    let small = dir.path().join("small");
    tree(&small, files, 1, |_| 4096);
    let mut args = vec!["cp", "-r"];
    args.extend(enc);
    let small_s = small.to_str().unwrap().to_string();
    args.extend([small_s.as_str(), "bench:small"]);
    let (_, cp_small) = cli(&h0, &args);

    // ls of that directory, here and on another node; one mv.
    let ls_here = median((0..runs).map(|_| cli(&h0, &["ls", "bench:small"]).1).collect());
    let ls_there = median((0..runs).map(|_| cli(&h3, &["ls", "bench:small"]).1).collect());
    let (listed, _) = cli(&h3, &["ls", "bench:small"]);
    assert_eq!(listed.lines().count(), files, "every entry listed");
    let mv = median(
        (0..runs)
            .map(|i| {
                let (a, b) = (format!("bench:small/f{i:04}"), format!("bench:small/moved{i:04}"));
                cli(&h0, &["mv", &a, &b]).1
            })
            .collect(),
    );

    // cp -r of mixed sizes in five directories.
    let mixed_dir = dir.path().join("mixed");
    let bytes = tree(&mixed_dir, files, 5, mixed);
    let mixed_s = mixed_dir.to_str().unwrap().to_string();
    let mut args = vec!["cp", "-r"];
    args.extend(enc);
    args.extend([mixed_s.as_str(), "bench:mixed"]);
    let (_, cp_mixed) = cli(&h0, &args);

    // Backups of the mixed tree.
    let (_, backup_first) = cli(&h0, &["backup", &mixed_s, "bench:backups"]);
    let (said, backup_again) = cli(&h0, &["backup", &mixed_s, "bench:backups"]);
    assert!(said.contains(&format!("(0 stored, {files} unchanged)")), "{said}");

    // Deep checks: healthy; then two servers gone, repair.
    let (_, check_healthy) = cli(&h0, &["deep-check", "bench:mixed"]);
    nodes[4].kill9().await;
    nodes[5].kill9().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (out, _) = cli(&h0, &["services", "storage", "--json"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        if v.as_array().unwrap().len() == 4 {
            break;
        }
        assert!(Instant::now() < deadline, "the two killed servers still listed after 60 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, check_degraded) = cli(&h0, &["deep-check", "bench:mixed"]);
    let per_dir = files / 5;
    let (out, repair_200) = cli(&h0, &["deep-check", "--repair", "bench:mixed/sub0"]);
    assert!(!out.contains("NOT recoverable"), "{out}");
    let mut rest = Duration::ZERO;
    for i in 1..5 {
        rest += cli(&h0, &["deep-check", "--repair", &format!("bench:mixed/sub{i}")]).1;
    }
    // The top directory itself (its subdirectories are whole now).
    rest += cli(&h0, &["deep-check", "--repair", "bench:mixed"]).1;
    let (after, _) = cli(&h0, &["deep-check", "bench:mixed"]);
    assert!(after.contains(" 0 not"), "healthy after repair: {after}");

    let rate = |n: usize, d: Duration| format!("{:.1} files/s", n as f64 / d.as_secs_f64());
    println!();
    println!("| figure | cloudy-p2p | target | Tahoe-LAFS 1.20 |");
    println!("|---|---|---|---|");
    println!(
        "| cp -r of {files} × 4 KiB | {} ({}) | ≥ 100 files/s | 7.9 files/s |",
        rate(files, cp_small),
        secs(cp_small)
    );
    println!(
        "| cp -r of {files} files, 4 KiB–1 MiB ({:.1} MB) | {} , {:.1} MB/s ({}) | – | n/a |",
        bytes as f64 / 1e6,
        rate(files, cp_mixed),
        bytes as f64 / 1e6 / cp_mixed.as_secs_f64(),
        secs(cp_mixed)
    );
    println!("| ls of {files} entries, writing node | {} | ≤ 0.3 s | n/a |", secs(ls_here));
    println!("| ls of {files} entries, another node | {} | ≤ 0.3 s | n/a |", secs(ls_there));
    println!("| one mv, end to end | {} | ≤ 0.1 s | n/a |", secs(mv));
    println!("| first backup of the mixed tree | {} | – | n/a |", secs(backup_first));
    println!("| backup with nothing changed | {} | ≤ 2 s | n/a |", secs(backup_again));
    println!("| deep-check of {files} files, healthy | {} | – | n/a |", secs(check_healthy));
    println!("| deep-check, 2 of 6 servers gone | {} | – | n/a |", secs(check_degraded));
    println!("| deep-check --repair of {per_dir} files | {} | ≤ 5 s | 42.6 s |", secs(repair_200));
    println!(
        "| deep-check --repair of the other {} files and the top | {} | – | n/a |",
        files - per_dir,
        secs(rest)
    );
    for node in &mut nodes[..4] {
        let _ = std::process::Command::new(EXE)
            .arg("--home")
            .arg(node.home.root())
            .arg("stop")
            .output();
        node.wait_exit(Duration::from_secs(10)).await;
    }
}
