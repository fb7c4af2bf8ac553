//! Membership benchmark: N real `cloudy-p2p` processes on 127.0.0.1.
//!
//! ```text
//! cargo bench -p cloudy-cli --bench membership -- [--nodes 20] [--settle-secs 10] [--idle-secs 60]
//! ```
//!
//! Prints a table: time until every node sees all others alive (from the
//! start of the last process), time from `kill -9` of one node until all
//! others mark it failed, time for an announcement to reach every node,
//! false suspicions and failures during the idle period, and idle RSS and
//! CPU per node, measured after a settling period (start-up work such as
//! Kademlia bootstrap queries is not "idle").
//! Times come from the nodes' own `cloudy::_events` log lines, stamped as
//! they are read from each process's stderr.

use cloudy_node::control::api::Announce;
use cloudy_node::control::client::Client;
use cloudy_node::process::{init_local_home, LogLine, NodeProcess};
use cloudy_node::Home;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

const EXE: &str = env!("CARGO_BIN_EXE_cloudy-p2p");
const SVC: &str = "bench-svc";

#[derive(Default)]
struct Tracker {
    /// Per observer: peers it currently believes alive.
    alive: HashMap<usize, HashSet<String>>,
    /// (observer, peer) → when it logged the peer failed.
    failed: HashMap<(usize, String), Instant>,
    /// observer → when it saw the benchmark service.
    announced: HashMap<usize, Instant>,
    /// Every suspect or failed transition: (when, observer, peer, state).
    suspicions: Vec<(Instant, usize, String, String)>,
}

fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.split_whitespace().find_map(|w| w.strip_prefix(key)).map(|v| v.trim_matches('"'))
}

impl Tracker {
    fn on_line(&mut self, l: &LogLine) {
        let (Some(peer), t) = (field(&l.text, "peer="), &l.text) else { return };
        if t.contains("member state changed") {
            let state = field(t, "state=").unwrap_or_default();
            let set = self.alive.entry(l.index).or_default();
            if state == "alive" {
                set.insert(peer.to_string());
            } else {
                set.remove(peer);
                self.suspicions.push((l.at, l.index, peer.to_string(), state.to_string()));
            }
            if state == "failed" {
                self.failed.entry((l.index, peer.to_string())).or_insert(l.at);
            }
        } else if t.contains("service announced") && field(t, "name=") == Some(SVC) {
            self.announced.entry(l.index).or_insert(l.at);
        }
    }
}

struct Bench {
    tracker: Arc<Mutex<Tracker>>,
    changed: watch::Receiver<u64>,
}

impl Bench {
    /// Waits until `pred` holds; returns when it first did (or None on timeout).
    async fn wait<T>(&mut self, timeout: Duration, pred: impl Fn(&Tracker) -> Option<T>) -> Option<T> {
        let fut = async {
            loop {
                if let Some(v) = pred(&self.tracker.lock().unwrap()) {
                    return v;
                }
                if self.changed.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::time::timeout(timeout, fut).await.ok()
    }
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// (RSS bytes, CPU ticks) of a process from /proc.
fn proc_usage(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb: u64 = status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After "pid (comm) ", field 14 (utime) and 15 (stime) are at 11 and 12.
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some((rss_kb * 1024, ticks))
}

fn secs(d: Option<Duration>) -> String {
    d.map_or("not reached".into(), |d| format!("{:.3} s", d.as_secs_f64()))
}

#[tokio::main]
async fn main() {
    let n = arg("--nodes", 20) as usize;
    let idle = Duration::from_secs(arg("--idle-secs", 60));
    let settle = Duration::from_secs(arg("--settle-secs", 10));
    let dir = tempfile::tempdir().expect("tempdir");
    let (tx, mut rx) = mpsc::channel::<LogLine>(100_000);
    let tracker = Arc::new(Mutex::new(Tracker::default()));
    let (changed_tx, changed) = watch::channel(0u64);
    let t2 = tracker.clone();
    tokio::spawn(async move {
        while let Some(line) = rx.recv().await {
            t2.lock().unwrap().on_line(&line);
            changed_tx.send_modify(|v| *v += 1);
        }
    });
    let mut bench = Bench { tracker, changed };

    println!("starting {n} node processes on 127.0.0.1 ...");
    let mut nodes: Vec<NodeProcess> = Vec::new();
    let mut last_start = Instant::now();
    for i in 0..n {
        let home = Home::new(dir.path().join(format!("n{i}")));
        let boot = nodes.first().map(|f| f.listen.clone()).unwrap_or_default();
        init_local_home(&home, boot).expect("init");
        last_start = Instant::now();
        nodes.push(NodeProcess::start(Path::new(EXE), &home, i, Some(tx.clone())).await.expect("start"));
    }
    let ids: Vec<String> = nodes.iter().map(|p| p.peer_id.clone()).collect();
    let all_alive = bench
        .wait(Duration::from_secs(30), |t| {
            (0..n).all(|i| t.alive.get(&i).is_some_and(|s| s.len() == n - 1)).then(Instant::now)
        })
        .await
        .map(|at| at - last_start);

    // Announcement propagation.
    let client = Client::for_home(&nodes[1].home).expect("client");
    let sent = Instant::now();
    client.announce(&Announce { name: SVC.into(), meta: Default::default() }).await.expect("announce");
    let announce = bench
        .wait(Duration::from_secs(10), |t| {
            let others: Vec<_> = (0..n).filter(|i| *i != 1).collect();
            others.iter().all(|i| t.announced.contains_key(i)).then(|| others.iter().map(|i| t.announced[i]).max())
        })
        .await
        .flatten()
        .map(|at| at - sent);

    // Idle period: resource use and false suspicions.
    tokio::time::sleep(settle).await;
    println!("idling {} s ...", idle.as_secs());
    let before: Vec<_> = nodes.iter().map(|p| proc_usage(p.pid().unwrap_or(0))).collect();
    let idle_start = Instant::now();
    let suspicions_before = bench.tracker.lock().unwrap().suspicions.len();
    tokio::time::sleep(idle).await;
    let idle_elapsed = idle_start.elapsed().as_secs_f64();
    let after: Vec<_> = nodes.iter().map(|p| proc_usage(p.pid().unwrap_or(0))).collect();
    let (false_suspects, false_failed) = {
        let t = bench.tracker.lock().unwrap();
        let new = &t.suspicions[suspicions_before..];
        (new.iter().filter(|s| s.3 == "suspect").count(), new.iter().filter(|s| s.3 == "failed").count())
    };
    let mut rss = Vec::new();
    let mut cpu = Vec::new();
    for (b, a) in before.iter().zip(&after) {
        if let (Some((_, t0)), Some((r, t1))) = (b, a) {
            rss.push(*r as f64 / 1e6);
            cpu.push((t1 - t0) as f64 / 100.0 / idle_elapsed * 100.0);
        }
    }

    // Failure detection.
    let victim = n - 1;
    let killed = Instant::now();
    nodes[victim].kill9().await;
    let vid = ids[victim].clone();
    let detect = bench
        .wait(Duration::from_secs(30), |t| {
            let times: Option<Vec<Instant>> = (0..n - 1).map(|i| t.failed.get(&(i, vid.clone())).copied()).collect();
            times.map(|v| v.into_iter().max())
        })
        .await
        .flatten()
        .map(|at| at - killed);

    for node in &mut nodes[..victim] {
        if let Ok(c) = Client::for_home(&node.home) {
            let _ = c.shutdown().await;
        }
    }
    for node in &mut nodes {
        node.wait_exit(Duration::from_secs(10)).await;
    }

    let stat = |v: &[f64]| {
        let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
        (mean, v.iter().cloned().fold(0.0, f64::max))
    };
    let (rss_mean, rss_max) = stat(&rss);
    let (cpu_mean, cpu_max) = stat(&cpu);
    println!();
    println!("cloudy-p2p membership benchmark, N = {n} processes on 127.0.0.1, idle window {} s", idle.as_secs());
    println!("| metric | measured | target | Serf 0.9 (N = 20) |");
    println!("|---|---|---|---|");
    println!("| all alive, from start of last node | {} | <= 1 s | 0.6 s |", secs(all_alive));
    println!("| kill -9 to failed on all others | {} | <= 5 s | 7.8 s |", secs(detect));
    println!("| announcement visible on all | {} | <= 0.5 s | 0.4-0.5 s |", secs(announce));
    println!("| members falsely marked failed during idle | {false_failed} | 0 | - |");
    println!("| false suspicions during idle (refuted) | {false_suspects} | - | - |");
    println!("| idle RSS per node, mean / max | {rss_mean:.1} MB / {rss_max:.1} MB | <= 25 MB | 14.6 MB |");
    println!("| idle CPU per node, mean / max | {cpu_mean:.2} % / {cpu_max:.2} % | <= 0.5 % | 0.27 % |");
}
