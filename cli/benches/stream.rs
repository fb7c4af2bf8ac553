//! Live streaming benchmark: 1 publisher + N viewer processes on 127.0.0.1.
//!
//! ```text
//! cargo bench -p cloudy-cli --bench stream            # N = 10 and 30, 60 s each
//! STREAM_BENCH_N=10 STREAM_BENCH_SECS=30 cargo bench -p cloudy-cli --bench stream
//! STREAM_BENCH_N=5 STREAM_BENCH_COMMUNITY=100 STREAM_BENCH_NO_VOD=1 STREAM_BENCH_BROWSERS=0 \
//!     cargo bench -p cloudy-cli --bench stream   # 5 viewers among 100 members
//! ```
//!
//! A 1 Mbit/s H.264 + AAC MPEG-TS film, encoded beforehand, is sent in real
//! time by `ffmpeg -re -c copy` into `stream publish` on node 0. After 3 s the viewers join, 100 ms
//! apart, each playing `GET /stream/ID` from its own node into a file.
//! At two thirds of the run 30 % of the viewers' nodes are killed with
//! SIGKILL. Printed per N:
//!
//! - startup: join (the HTTP request) → first byte written, median and max;
//! - continuity: share of the publisher's chunks from a viewer's first
//!   played chunk on that arrived within 3 s of being cut, worst and mean;
//! - latency from cut to arrival, p50 / p95 / max over all viewers;
//! - source upload ÷ stream bytes, on the wire (an nftables counter on
//!   the publisher's ports at the output hook: IP, UDP and QUIC included);
//! - total overhead ÷ media bytes: every node's wire bytes during the run
//!   minus the media bytes the viewers received, over the latter (the
//!   overlay's own membership traffic is included and printed apart);
//! - Jain's fairness index over the viewers' chunk uploads;
//! - the survivors' continuity for the chunks cut in the 10 s after the kill;
//! - CPU (share of one core over the run) and RSS per viewer node;
//! - viewers whose file decodes with zero errors (`ffmpeg -v error`).
//!
//! Wire counters need root and `nft`; without them those rows say n/a.
//!
//! Then video on demand (`STREAM_BENCH_NO_VOD` skips it): a 1 Mbit/s film
//! published on node 0, 10 viewers joining 1 s apart, each a paced player
//! (2 s start buffer, 8 s read-ahead) that plays 15 s, seeks to 70 % and
//! plays 5 s more. Printed: startup (join → 2 s buffered), viewers with no
//! stall, the seeder's upload ÷ the file, and seek time (Range request →
//! 2 s buffered).
//!
//! Then browser viewers (`STREAM_BENCH_BROWSERS`, 3 by default; 0 skips):
//! each on its own node's player page in headless Chromium
//! (`interop-tests/js/watch.mjs`, needs `node` and that directory's
//! packages, which `scripts/test` installs). Printed: startup (page load →
//! first frame), live latency publisher → screen, stalls per minute, frames
//! shown and dropped.
#![allow(clippy::unwrap_used)] // test and benchmark code: a failed unwrap is a failed run

use cloudy_node::control::client::Client;
use cloudy_node::process::NodeProcess;
use cloudy_node::Home;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const EXE: &str = env!("CARGO_BIN_EXE_cloudy-p2p");

#[path = "common/wire.rs"]
mod wire;
use wire::Wire;
#[path = "common/live.rs"]
mod live;
use live::{arrivals, encode, on_time, source};
#[path = "common/procfs.rs"]
mod procfs;
use procfs::{cpu_secs, delta, mean_max, na, peak_rss_mb, rss_mb, udp_drops};

/// A file that notes when its first byte was written.
struct Recorder {
    file: std::fs::File,
    first: Arc<Mutex<Option<Instant>>>,
}

impl tokio::io::AsyncWrite for Recorder {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        use std::io::Write;
        let me = self.get_mut();
        me.first.lock().unwrap().get_or_insert_with(Instant::now);
        Poll::Ready(me.file.write_all(buf).map(|_| buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

fn pct(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn jain(x: &[f64]) -> f64 {
    let s: f64 = x.iter().sum();
    let q: f64 = x.iter().map(|v| v * v).sum();
    if q == 0.0 {
        return f64::NAN;
    }
    s * s / (x.len() as f64 * q)
}

/// Starts `n + 1` nodes in `dir` and waits until node 0 sees them all alive.
async fn community(n: usize, dir: &Path) -> (Vec<NodeProcess>, Vec<Client>) {
    let mut nodes: Vec<NodeProcess> = Vec::new();
    for i in 0..=n {
        let home = Home::new(dir.join(format!("node{i}")));
        nodes.push(
            NodeProcess::start_local(Path::new(EXE), &home, nodes.first(), i, None)
                .await
                .expect("start"),
        );
    }
    let clients: Vec<Client> = nodes.iter().map(|p| Client::for_home(&p.home).unwrap()).collect();
    let t = Instant::now();
    while clients[0].peers().await.unwrap().iter().filter(|p| p.state == "alive").count() < n {
        assert!(t.elapsed() < Duration::from_secs(60), "the community did not form");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    (nodes, clients)
}

async fn run(n: usize, secs: u64, root: &Path) {
    // Members that watch nothing, so the channel runs inside a large
    // community (issue 15: a channel on 100 nodes as on 6).
    let size = community_size().max(n + 1);
    let bystanders = size - n - 1;
    println!(
        "\n== 1 publisher + {n} viewers{}, {secs} s of 1 Mbit/s MPEG-TS ==",
        if bystanders > 0 { format!(" in a community of {size}") } else { String::new() }
    );
    let dir = root.join(format!("n{n}"));
    let (mut nodes, clients) = community(size - 1, &dir).await;
    let wire = Wire::setup("cloudybench", &nodes);
    tokio::time::sleep(Duration::from_secs(5)).await;
    // The overlay's own traffic over one whole heartbeat period: every
    // member's full-state heartbeat falls in it once. (A shorter window
    // catches a varying share of them, as the members started together.)
    let idle_secs =
        cloudy_node::config::MembershipConfig::default().heartbeat_interval.as_secs_f64();
    let idle0 = wire.as_ref().map(|w| w.read());
    tokio::time::sleep(Duration::from_secs_f64(idle_secs)).await;
    // Bytes per second each node sent while idle.
    let idle_rates: Option<Vec<f64>> = wire
        .as_ref()
        .zip(idle0)
        .map(|(w, a)| w.read().iter().zip(&a).map(|(y, x)| (y - x) as f64 / idle_secs).collect());
    let idle_rate: Option<f64> = idle_rates.as_ref().map(|r| r.iter().sum());

    let idle_rss: Vec<Option<f64>> = nodes[1..=n].iter().map(|p| rss_mb(p.pid())).collect();
    // The source.
    // Encoded beforehand and sent in real time by `ffmpeg -re -c copy`, so
    // the encoder's CPU does not weigh on the nodes being measured.
    let film = encode(&dir, secs).await;
    let (mut ffmpeg, mut publish, id, mut stdin, mut src) =
        source(Path::new(EXE), nodes[0].home.root(), &film).await;
    let pump = tokio::spawn(async move {
        let mut total = 0u64;
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(k) = src.read(&mut buf).await {
            if k == 0 || stdin.write_all(&buf[..k]).await.is_err() {
                break;
            }
            total += k as u64;
        }
        total
    });
    let wire0 = wire.as_ref().map(|w| w.read());
    let packets0 = wire.as_ref().map(|w| w.packets());
    let sizes0 = wire.as_ref().map(|w| w.sizes());
    let drops0 = udp_drops();
    let cpu0: Vec<Option<f64>> = nodes.iter().map(|p| cpu_secs(p.pid())).collect();
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Viewers join, 100 ms apart.
    let mut players = Vec::new();
    let mut joined = Vec::new();
    for (i, client) in clients.iter().enumerate().take(n + 1).skip(1) {
        let out = dir.join(format!("recv{i}.ts"));
        let first = Arc::new(Mutex::new(None));
        let mut rec = Recorder { file: std::fs::File::create(&out).unwrap(), first: first.clone() };
        let c = Client::for_home(&nodes[i].home).unwrap();
        let id = id.clone();
        joined.push((Instant::now(), first, out, unix_ms()));
        players.push(tokio::spawn(async move { c.play_channel(&id, &mut rec).await }));
        let _ = client;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Kill 30 % at two thirds of the run.
    let kill_at = Duration::from_secs(secs * 2 / 3);
    tokio::time::sleep(kill_at.saturating_sub(started.elapsed())).await;
    let killed: Vec<usize> =
        (1..=n).filter(|i| i % 10 == 2 || i % 10 == 5 || i % 10 == 8).collect();
    let kill_ms = unix_ms();
    let mut last_status = std::collections::HashMap::new();
    for &k in &killed {
        if let Ok(st) = clients[k].channel(&id).await {
            last_status.insert(k, serde_json::to_value(st).unwrap());
        }
        nodes[k].kill9().await;
    }
    let media = pump.await.unwrap();
    let _ = publish.wait().await;
    let elapsed = started.elapsed().as_secs_f64();
    let wire1 = wire.as_ref().map(|w| w.read());
    let packets1 = wire.as_ref().map(|w| w.packets());
    let sizes1 = wire.as_ref().map(|w| w.sizes());
    let drops = delta(drops0, udp_drops());
    let cpu1: Vec<Option<f64>> = nodes.iter().map(|p| cpu_secs(p.pid())).collect();
    for p in players.iter() {
        let t = Instant::now();
        while !p.is_finished() && t.elapsed() < Duration::from_secs(20) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let pub_st = serde_json::to_value(clients[0].channel(&id).await.unwrap()).unwrap();
    let all_seqs: Vec<(u64, u64)> = arrivals(&pub_st).into_iter().map(|a| (a.0, a.1)).collect();
    let survivors: Vec<usize> = (1..=n).filter(|i| !killed.contains(i)).collect();
    let mut statuses = std::collections::HashMap::new();
    for &v in &survivors {
        statuses.insert(v, serde_json::to_value(clients[v].channel(&id).await.unwrap()).unwrap());
    }
    statuses.extend(last_status);

    // Figures.
    let mut startup: Vec<f64> = joined
        .iter()
        .filter_map(|(at, first, _, _)| {
            first.lock().unwrap().map(|f| f.duration_since(*at).as_secs_f64())
        })
        .collect();
    let started_n = startup.len();
    let (smed, smax) = (pct(&mut startup, 0.5), pct(&mut startup, 1.0));
    let mut conts = Vec::new();
    let mut lat = Vec::new();
    for &v in &survivors {
        let st = &statuses[&v];
        let first = st["stats"]["first_played"].as_u64().unwrap_or(u64::MAX);
        let seqs: Vec<u64> = all_seqs.iter().map(|s| s.0).filter(|s| *s >= first).collect();
        conts.push(on_time(st, &seqs));
        // Chunks cut after the viewer joined: the ones before it are the
        // picture group it starts with, fetched at once by design.
        let join_ms = joined[v - 1].3;
        lat.extend(arrivals(st).iter().filter(|a| a.1 >= join_ms).map(|a| a.2 as f64 / 1000.0));
    }
    let worst = conts.iter().copied().fold(f64::INFINITY, f64::min);
    let mean = conts.iter().sum::<f64>() / conts.len().max(1) as f64;
    let after: Vec<u64> =
        all_seqs.iter().filter(|s| s.1 >= kill_ms && s.1 < kill_ms + 10_000).map(|s| s.0).collect();
    let mut post: Vec<f64> = survivors.iter().map(|v| on_time(&statuses[v], &after)).collect();
    let ups: Vec<f64> = (1..=n)
        .filter_map(|v| statuses.get(&v))
        .map(|s| s["stats"]["bytes_up"].as_f64().unwrap_or(0.0))
        .collect();
    let received: f64 = statuses
        .values()
        .map(|s| {
            s["stats"]["bytes_down"].as_f64().unwrap_or(0.0)
                - s["stats"]["bytes_dup"].as_f64().unwrap_or(0.0)
        })
        .sum();
    let mut clean = 0;
    for &v in &survivors {
        let out = std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(&joined[v - 1].2)
            .args(["-f", "null", "-"])
            .output()
            .unwrap();
        if out.stderr.is_empty()
            && std::fs::metadata(&joined[v - 1].2).map(|m| m.len()).unwrap_or(0) > 0
        {
            clean += 1;
        }
    }
    let cpu: Vec<Option<f64>> =
        survivors.iter().map(|v| Some((cpu1[*v]? - cpu0[*v]?) / elapsed * 100.0)).collect();
    let rss: Vec<Option<f64>> = survivors.iter().map(|v| peak_rss_mb(nodes[*v].pid())).collect();
    let pub_app = pub_st["stats"]["bytes_up"].as_f64().unwrap_or(0.0);
    let dup: f64 = statuses.values().map(|s| s["stats"]["bytes_dup"].as_f64().unwrap_or(0.0)).sum();

    println!(
        "media: {:.2} MB in {elapsed:.0} s ({:.2} Mbit/s); {} chunks",
        media as f64 / 1e6,
        media as f64 * 8.0 / elapsed / 1e6,
        all_seqs.len()
    );
    println!("| figure | measured | target |");
    println!("|---|---|---|");
    println!("| startup median / max | {smed:.2} s / {smax:.2} s ({started_n} of {n} started) | ≤ 2 s / ≤ 4 s |");
    println!("| continuity within 3 s, worst / mean | {worst:.3} / {mean:.4} | ≥ 0.99 / ≥ 0.998 |");
    println!("| latency p50 / p95 / max (chunks cut after the join) | {:.2} / {:.2} / {:.2} s | ≤ 0.5 / 1.5 / 3 s |", pct(&mut lat, 0.5), pct(&mut lat, 0.95), pct(&mut lat, 1.0));
    match (&wire0, &wire1) {
        (Some(a), Some(b)) => {
            let sent: Vec<f64> = a.iter().zip(b).map(|(x, y)| (y - x) as f64).collect();
            let total: f64 = sent.iter().sum();
            let packets: u64 = packets1
                .as_ref()
                .zip(packets0.as_ref())
                .map(|(b, a)| b.iter().sum::<u64>() - a.iter().sum::<u64>())
                .unwrap_or(0);
            let tcp_dialer = match (sizes0, sizes1) {
                (Some(a), Some(b)) => (b[3].1 - a[3].1) as f64,
                _ => 0.0,
            };
            let total = total + tcp_dialer;
            if let (Some([s0, l0, t0, d0]), Some([s1, l1, t1, d1])) = (sizes0, sizes1) {
                let (sp, sb, lp, lb) = (s1.0 - s0.0, s1.1 - s0.1, l1.0 - l0.0, l1.1 - l0.1);
                println!(
                    "(UDP datagrams under 300 bytes: {sp}, {:.1} MB; 300 bytes and over: {lp}, {:.1} MB, {:.0} bytes each; libp2p over TCP: {:.2} MB)",
                    sb as f64 / 1e6,
                    lb as f64 / 1e6,
                    lb as f64 / lp.max(1) as f64,
                    (t1.1 - t0.1 + d1.1 - d0.1) as f64 / 1e6
                );
            }
            println!("(wire: {packets} packets, {} dropped by full receive buffers, {:.0} bytes each on average; chunk payload sent by all {:.2} MB, received {:.2} MB)", na(drops.map(|d| d as f64), 0), total / packets.max(1) as f64, statuses.values().map(|s| s["stats"]["bytes_up"].as_f64().unwrap_or(0.0)).sum::<f64>() / 1e6 + pub_app / 1e6, received / 1e6);
            // The channel's members (the publisher, nodes[0], and the
            // viewers, nodes[1..=n]), less their own idle traffic: in a
            // community larger than the channel, the bystanders' traffic
            // (membership news of the killed viewers, say) is not the
            // channel's.
            let members = n + 1;
            let channel: f64 = sent[..members].iter().sum::<f64>() + tcp_dialer;
            let channel_idle =
                idle_rates.as_ref().map_or(0.0, |r| r[..members].iter().sum::<f64>() * elapsed);
            println!(
                "| source upload ÷ stream (wire) | {:.2}× (chunk payload alone {:.2}×) | ≤ 2.0× |",
                sent[0] / media as f64,
                pub_app / media as f64
            );
            println!(
                "| streaming overhead ÷ media (wire, the channel's members, without their idle traffic) | {:.1} % | ≤ 10 % |",
                (channel - channel_idle - received) / received * 100.0
            );
            println!(
                "| all traffic ÷ media (with membership, probes, DHT: {:.1} KB/s per node idle) | {:.1} % | — |",
                idle_rate.unwrap_or(0.0) / size as f64 / 1e3,
                (total - received) / received * 100.0
            );
        }
        _ => println!(
            "| source upload ÷ stream | n/a on the wire (no nft); chunk payload {:.2}× | ≤ 2.0× |",
            pub_app / media as f64
        ),
    }
    println!("| fairness (Jain, viewers' uploads) | {:.3} | ≥ 0.8 |", jain(&ups));
    println!("| survivors' continuity, 10 s after killing {} of {n} | worst {:.3}, mean {:.3} | ≥ 0.98 |", killed.len(), pct(&mut post, 0.0), post.iter().sum::<f64>() / post.len().max(1) as f64);
    let (cpu, rss) = (mean_max(&cpu), mean_max(&rss));
    println!(
        "| CPU per viewer, mean / max | {} % / {} % of a core | ≤ 5 % |",
        na(cpu.map(|c| c.0), 1),
        na(cpu.map(|c| c.1), 1)
    );
    println!(
        "| peak RSS per viewer, mean / max | {} / {} MB | ≤ 30 MB |",
        na(rss.map(|r| r.0), 1),
        na(rss.map(|r| r.1), 1)
    );
    println!("| viewers decoding with zero errors | {clean} of {} | all |", survivors.len());
    println!("(duplicate chunk bytes: {:.1} % of those received; idle RSS before the stream: mean {} MB)", dup / received * 100.0, na(mean_max(&idle_rss).map(|r| r.0), 1));
    let _ = ffmpeg.wait().await;
    for mut p in nodes {
        p.kill9().await;
    }
    drop(wire);
}

/// `STREAM_BENCH_COMMUNITY`: members in all, viewers and publisher
/// included (the rest watch nothing); 0 (the default) for none besides.
fn community_size() -> usize {
    std::env::var("STREAM_BENCH_COMMUNITY").ok().and_then(|s| s.parse().ok()).unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let secs: u64 =
        std::env::var("STREAM_BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    let ns: Vec<usize> = std::env::var("STREAM_BENCH_N")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or(vec![10, 30]);
    let keep = std::env::var_os("STREAM_BENCH_DIR").map(PathBuf::from);
    let tmp = tempfile::tempdir().unwrap();
    let root = keep.unwrap_or_else(|| tmp.path().to_path_buf());
    for n in ns {
        run(n, secs, &root).await;
    }
    if std::env::var_os("STREAM_BENCH_NO_VOD").is_none() {
        vod(10, secs.min(40), &root).await;
    }
    let browsers: usize =
        std::env::var("STREAM_BENCH_BROWSERS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    if browsers > 0 {
        in_browsers(browsers, secs, &root).await;
    }
}

/// Seconds, or `n/a`.
fn secs_or_na(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |x| format!("{x:.2} s"))
}

/// `n` browser viewers (headless Chromium, `interop-tests/js/watch.mjs`),
/// each on its own node's player page, for `secs` seconds of a live
/// channel published on node 0.
async fn in_browsers(n: usize, secs: u64, root: &Path) {
    println!("\n== {n} browser viewers (headless Chromium, the player page), {secs} s ==");
    let dir = root.join("browsers");
    let (nodes, clients) = community(n, &dir).await;
    let film = encode(&dir, secs + 30).await;
    let (mut ffmpeg, mut publish, id, mut stdin, mut src) =
        source(Path::new(EXE), nodes[0].home.root(), &film).await;
    let pump = tokio::spawn(async move { tokio::io::copy(&mut src, &mut stdin).await });
    let viewers: Vec<Value> = nodes[1..]
        .iter()
        .zip(&clients[1..])
        .map(|(p, c)| {
            let token = std::fs::read_to_string(p.home.root().join("api.token")).unwrap();
            let url = c.media_url("/");
            let base = url.split('?').next().unwrap_or(&url).to_string();
            serde_json::json!({ "url": base, "token": token.trim() })
        })
        .collect();
    let cfg = serde_json::json!({ "viewers": viewers, "channel": id, "secs": secs });
    let js = Path::new(env!("CARGO_MANIFEST_DIR")).join("../interop-tests/js");
    let out = tokio::process::Command::new("node")
        .arg(js.join("watch.mjs"))
        .arg(cfg.to_string())
        .current_dir(&js)
        .output()
        .await;
    pump.abort();
    let _ = publish.kill().await;
    let _ = ffmpeg.kill().await;
    drop(nodes);
    let results: Vec<Value> = match &out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect(),
        Ok(o) => {
            println!("(the browsers failed: {})", String::from_utf8_lossy(&o.stderr).trim());
            Vec::new()
        }
        Err(e) => {
            println!("(no browser run: `node` is needed, with interop-tests/js's packages: {e})");
            Vec::new()
        }
    };
    let mut startup: Vec<f64> =
        results.iter().filter_map(|r| r["startup_ms"].as_f64()).map(|ms| ms / 1000.0).collect();
    let mut latency: Vec<f64> = results
        .iter()
        .flat_map(|r| r["latency"].as_array().cloned().unwrap_or_default())
        .filter_map(|v| v.as_f64())
        .collect();
    let stalls: f64 = results.iter().filter_map(|r| r["stalls"].as_f64()).sum();
    let frames: f64 = results.iter().filter_map(|r| r["frames"].as_f64()).sum();
    let dropped: f64 = results.iter().filter_map(|r| r["dropped"].as_f64()).sum();
    let errors: Vec<String> =
        results.iter().filter_map(|r| r["error"].as_str().map(str::to_string)).collect();
    let some = |v: &[f64]| !v.is_empty();
    let minutes = secs as f64 / 60.0 * results.len().max(1) as f64;
    println!("| figure | measured | target |");
    println!("|---|---|---|");
    println!(
        "| startup, page load to first frame, median / max | {} / {} ({} of {n} played) | ≤ 2 s |",
        secs_or_na(some(&startup).then(|| pct(&mut startup, 0.5))),
        secs_or_na(some(&startup).then(|| pct(&mut startup, 1.0))),
        startup.len()
    );
    println!(
        "| live latency, publisher to screen, p50 / max | {} / {} | ≤ 3 s |",
        secs_or_na(some(&latency).then(|| pct(&mut latency, 0.5))),
        secs_or_na(some(&latency).then(|| pct(&mut latency, 1.0)))
    );
    println!(
        "| stalls per minute (all viewers) | {} | 0 in 60 s |",
        if results.is_empty() { "n/a".to_string() } else { format!("{:.2}", stalls / minutes) }
    );
    println!(
        "| frames shown / dropped (all viewers) | {} | - |",
        if results.is_empty() { "n/a".to_string() } else { format!("{frames} / {dropped}") }
    );
    println!(
        "| page errors | {} | none |",
        if errors.is_empty() { "none".into() } else { errors.join("; ") }
    );
}

/// What a paced player saw.
#[derive(Default)]
struct Watched {
    startup: Option<f64>,
    stalls: u32,
    seek: Option<f64>,
}

/// Plays `url` from `from` like a player with a 2 s start buffer and an
/// 8 s read-ahead, consuming `rate` bytes/s, for `play` seconds (or to the
/// end). Returns the time to fill the start buffer and the stalls.
async fn player(url: &str, from: u64, size: u64, rate: f64, play: Duration) -> (Option<f64>, u32) {
    let t0 = Instant::now();
    let mut resp = reqwest::Client::new()
        .get(url)
        .header("range", format!("bytes={from}-"))
        .send()
        .await
        .expect("GET /vod");
    assert!(resp.status().is_success(), "GET /vod: {}", resp.status());
    let total = size - from;
    let (mut got, mut pos) = (0u64, 0f64);
    let mut playing: Option<Instant> = None;
    let mut base = 0f64;
    let (mut startup, mut stalls) = (None, 0);
    loop {
        let now = Instant::now();
        if let Some(t) = playing {
            pos = base + now.duration_since(t).as_secs_f64() * rate;
            if pos >= got as f64 && got < total {
                stalls += 1;
                base = got as f64;
                playing = None;
            }
            if pos >= total as f64 || now.duration_since(t0) >= play {
                break;
            }
        } else if got as f64 - base >= 2.0 * rate || got == total {
            startup.get_or_insert(now.duration_since(t0).as_secs_f64());
            playing = Some(now);
        }
        if got as f64 - pos > 8.0 * rate || got == total {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        match tokio::time::timeout(Duration::from_millis(50), resp.chunk()).await {
            Ok(Ok(Some(b))) => got += b.len() as u64,
            Ok(Err(e)) => panic!("video download broke: {e}"),
            Ok(Ok(None)) | Err(_) => {}
        }
    }
    (startup, stalls)
}

async fn vod(n: usize, secs: u64, root: &Path) {
    println!("\n== on demand: 1 seeder + {n} viewers, a {secs} s 1 Mbit/s video ==");
    let dir = root.join("vod");
    std::fs::create_dir_all(&dir).unwrap();
    let film = encode(&dir, secs).await;
    let size = std::fs::metadata(&film).unwrap().len();
    let rate = size as f64 / secs as f64;
    let (nodes, clients) = community(n, &dir).await;
    let req = cloudy_node::control::api::PublishVideo {
        path: film.display().to_string(),
        title: Some("benchmark film".into()),
        description: None,
    };
    let id = clients[0].publish_video(&req).await.unwrap().id;
    // Viewers join 1 s apart; each plays 15 s, seeks to 70 %, plays 5 s.
    let mut tasks = Vec::new();
    for (i, c) in clients.iter().enumerate().skip(1) {
        let url = c.media_url(&format!("/vod/{id}"));
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(i as u64 - 1)).await;
            let (startup, s1) = player(&url, 0, size, rate, Duration::from_secs(15)).await;
            let (seek, s2) = player(&url, size * 7 / 10, size, rate, Duration::from_secs(5)).await;
            Watched { startup, stalls: s1 + s2, seek }
        }));
    }
    let mut seen = Vec::new();
    for t in tasks {
        seen.push(t.await.unwrap());
    }
    let served = clients[0].videos().await.unwrap().stats.served;
    let mut startup: Vec<f64> = seen.iter().filter_map(|w| w.startup).collect();
    let mut seek: Vec<f64> = seen.iter().filter_map(|w| w.seek).collect();
    let smooth = seen.iter().filter(|w| w.stalls == 0).count();
    println!("video: {:.2} MB, {} pieces", size as f64 / 1e6, size.div_ceil(256 * 1024));
    println!("| figure | measured | target |");
    println!("|---|---|---|");
    println!(
        "| startup (join → 2 s buffered), median / max | {:.2} / {:.2} s | ≤ 1.5 s |",
        pct(&mut startup, 0.5),
        pct(&mut startup, 1.0)
    );
    println!("| viewers with no stall (2 s buffer) | {smooth} of {n} | ≥ 95 % |");
    println!("| seeder upload ÷ file | {:.2}× | ≤ 3× |", served as f64 / size as f64);
    println!(
        "| seek (Range request → 2 s buffered), median / max | {:.2} / {:.2} s | ≤ 2 s |",
        pct(&mut seek, 0.5),
        pct(&mut seek, 1.0)
    );
    for mut p in nodes {
        p.kill9().await;
    }
}

/// Unix time in milliseconds (as the chunks' timestamps are).
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
