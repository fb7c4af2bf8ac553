//! Churn benchmark (issue 21): N real `cloudy-p2p` processes on 127.0.0.1;
//! every minute a tenth of them restart, half with `stop` and half with
//! `kill -9`, while a stable member reads a file over and over.
//!
//! ```text
//! cargo bench -p cloudy-cli --bench churn -- [--nodes 100] [--minutes 5] [--percent 10]
//! ```
//!
//! Prints: false failures among the stable nodes (nodes that never
//! restarted, seen failed by a stable node), suspicions of members while
//! they ran (before their stop was asked), how long each restarted node
//! took to be seen alive by every running node (from its start, or from
//! the observer's own start for one restarted later in the same round), reads
//! that succeeded, and how long after the last restart the file (stored
//! 3-of-5 and maintained by its uploader) was healthy again, and the
//! continuity of a live channel that plays throughout: a 1 Mbit/s film
//! published on node 0 (a stable member) and watched on five stable
//! members and five that restart (each starts watching again once back);
//! continuity is measured on the stable viewers, over the chunks cut
//! during the churn (`n/a` without `ffmpeg`).
#![allow(clippy::unwrap_used)] // test and benchmark code: a failed unwrap is a failed run

use cloudy_node::control::client::Client;
use cloudy_node::process::{init_local_home, NodeProcess};
use cloudy_node::Home;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

const EXE: &str = env!("CARGO_BIN_EXE_cloudy-p2p");

#[path = "common/args.rs"]
mod args;
#[path = "common/live.rs"]
mod live;
#[path = "common/tracker.rs"]
mod tracker;
use args::arg;

fn secs(v: f64) -> String {
    format!("{v:.2} s")
}

#[tokio::main]
async fn main() {
    let n = arg("--nodes", 100) as usize;
    let minutes = arg("--minutes", 5) as usize;
    let per_round = (n * arg("--percent", 10) as usize / 100).max(2);
    let dir = args::homes_dir();
    let (tx, mut bench) = tracker::follow();
    // The film plays through the churn and the health check after it.
    let ffmpeg = std::process::Command::new("ffmpeg").arg("-version").output().is_ok();
    let film = match ffmpeg {
        true => Some(live::encode(dir.path(), minutes as u64 * 60 + 360).await),
        false => None,
    };
    println!("starting {n} node processes on 127.0.0.1 ...");
    let mut nodes: Vec<NodeProcess> = Vec::new();
    for i in 0..n {
        let home = Home::new(dir.path().join(format!("n{i}")));
        let boot = nodes.first().map(|f| f.listen.clone()).unwrap_or_default();
        init_local_home(&home, boot).unwrap();
        nodes.push(NodeProcess::start(Path::new(EXE), &home, i, Some(tx.clone())).await.unwrap());
    }
    let all = bench
        .wait(Duration::from_secs(60 + n as u64), |t| {
            (0..n).all(|i| t.alive.get(&i).is_some_and(|s| s.len() == n - 1)).then_some(())
        })
        .await;
    assert!(all.is_some(), "not every node saw every other alive");
    println!("all {n} alive; storing the file");

    // A 4 MiB file stored 3-of-5 by node 0, which maintains it.
    let up = Client::for_home(&nodes[0].home).unwrap();
    let src = dir.path().join("file.bin");
    let data: Vec<u8> =
        (0..4u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(&src, &data).unwrap();
    let f = tokio::fs::File::open(&src).await.unwrap();
    let cap = up.put(f, Some(data.len() as u64), "k=3&n=5&happy=5").await.unwrap().cap;

    // Nodes 0 to n/2 never restart; the others take turns.
    let stable: Vec<usize> = (0..n / 2).collect();
    let pool: Vec<usize> = (n / 2..n).collect();
    let ids: Vec<String> = nodes.iter().map(|p| p.peer_id.clone()).collect();
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (ok, failed, stop) = (ok.clone(), failed.clone(), stop.clone());
        let client = Client::for_home(&nodes[1].home).unwrap();
        let (cap, data) = (cap.clone(), data.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let mut out = Vec::new();
                match client.get_file(&cap, &mut out).await {
                    Ok(_) if out == data => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        })
    };

    // The live channel, watched by five stable members and five that churn.
    let viewers: Vec<usize> = (2..7).chain(pool.iter().copied().take(5)).collect();
    let mut channel = None;
    if let Some(film) = &film {
        let (ffmpeg, publish, id, mut stdin, mut src) =
            live::source(Path::new(EXE), nodes[0].home.root(), film).await;
        let pump = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut buf = vec![0u8; 16 * 1024];
            while let Ok(k) = src.read(&mut buf).await {
                if k == 0 || stdin.write_all(&buf[..k]).await.is_err() {
                    break;
                }
            }
        });
        tokio::time::sleep(Duration::from_secs(3)).await;
        for &v in &viewers {
            watch(&nodes[v].home, &id);
        }
        channel = Some((ffmpeg, publish, id, pump));
    }
    tokio::time::sleep(Duration::from_secs(5)).await;

    let churn_start = Instant::now();
    let churn_start_ms = unix_ms();
    let mut rejoin = Vec::new();
    // How long each restarted process took to answer on its API.
    let mut ready: Vec<f64> = Vec::new();
    let mut next = 0;
    let mut last_restart = Instant::now();
    // Each node's runs during the churn: (node, from, until its stop was asked).
    let mut up_from: Vec<Instant> = vec![churn_start; n];
    let mut runs: Vec<(usize, Instant, Instant)> = Vec::new();
    for round in 0..minutes {
        let round_start = Instant::now();
        let chosen: Vec<usize> = (0..per_round).map(|j| pool[(next + j) % pool.len()]).collect();
        next += per_round;
        for (j, &i) in chosen.iter().enumerate() {
            runs.push((i, up_from[i], Instant::now()));
            if j % 2 == 0 {
                let c = Client::for_home(&nodes[i].home).unwrap();
                let _ = c.shutdown().await;
                nodes[i].wait_exit(Duration::from_secs(15)).await;
            } else {
                nodes[i].kill9().await;
            }
        }
        let mut started = Vec::new();
        for &i in &chosen {
            let home = nodes[i].home.clone();
            // Its start: the moment the process is spawned.
            let at = Instant::now();
            nodes[i] =
                NodeProcess::start(Path::new(EXE), &home, i, Some(tx.clone())).await.unwrap();
            ready.push(at.elapsed().as_secs_f64());
            started.push((i, at));
            up_from[i] = at;
            if let Some((_, _, id, _)) = &channel {
                if viewers.contains(&i) {
                    watch(&nodes[i].home, id);
                }
            }
        }
        last_restart = Instant::now();
        // A member restarted after `i` can only learn of it once it runs
        // itself: its delay counts from its own spawn.
        let spawned: std::collections::HashMap<usize, Instant> = started.iter().copied().collect();
        for &(i, at) in &started {
            let peer = ids[i].clone();
            let took = bench
                .wait(Duration::from_secs(30), |t| {
                    let delays: Option<Vec<f64>> = (0..n)
                        .filter(|o| *o != i)
                        .map(|o| {
                            let from = spawned.get(&o).map_or(at, |s| at.max(*s));
                            let seen = t.alive_at.get(&(o, peer.clone())).copied();
                            seen.filter(|a| *a >= from).map(|a| (a - from).as_secs_f64())
                        })
                        .collect();
                    delays.map(|v| v.into_iter().fold(0.0, f64::max))
                })
                .await;
            if took.is_none_or(|t| t > 5.0) {
                explain_slow(&bench, &ids, i, at);
            }
            rejoin.push(took);
        }
        println!("round {}: restarted {} nodes", round + 1, chosen.len());
        if round + 1 == minutes {
            break;
        }
        let wait = Duration::from_secs(60).saturating_sub(round_start.elapsed());
        tokio::time::sleep(wait).await;
    }

    // The maintained file healthy again after the last restart.
    let mut healthy_after = None;
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut last_good = None;
    while Instant::now() < deadline {
        let asked = Instant::now();
        if let Ok(r) = up.check(&cap, false).await {
            if last_good != Some(r.good_shares) {
                let t = (Instant::now() - last_restart).as_secs_f64();
                let took = asked.elapsed().as_secs_f64();
                println!(
                    "{t:.0} s after the last restart: {} of {} shares good (the check took {took:.1} s)",
                    r.good_shares, r.n
                );
                last_good = Some(r.good_shares);
            }
            if r.healthy {
                healthy_after = Some((Instant::now() - last_restart).as_secs_f64());
                break;
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let _ = reader.await;

    // Continuity on the stable viewers over the chunks cut during the churn.
    let churn_end_ms = unix_ms();
    let mut continuity: Vec<f64> = Vec::new();
    if let Some((mut ffmpeg, mut publish, id, pump)) = channel {
        let published = Client::for_home(&nodes[0].home).unwrap().channel(&id).await;
        let cut: Vec<(u64, u64)> = published
            .map(|st| live::arrivals(&serde_json::to_value(st).unwrap()))
            .unwrap_or_default()
            .into_iter()
            .map(|a| (a.0, a.1))
            .filter(|(_, at)| *at >= churn_start_ms && *at < churn_end_ms)
            .collect();
        for &v in viewers.iter().filter(|v| stable.contains(v)) {
            let c = Client::for_home(&nodes[v].home).unwrap();
            let Ok(st) = c.channel(&id).await else { continue };
            let st = serde_json::to_value(st).unwrap();
            let first = st["stats"]["first_played"].as_u64().unwrap_or(u64::MAX);
            let seqs: Vec<u64> = cut.iter().map(|c| c.0).filter(|s| *s >= first).collect();
            continuity.push(live::on_time(&st, &seqs));
        }
        let _ = ffmpeg.kill().await;
        let _ = publish.kill().await;
        pump.abort();
    }

    let false_failures = {
        let t = bench.tracker.lock().unwrap();
        t.failed
            .iter()
            .filter(|((o, p), at)| {
                stable.contains(o) && **at >= churn_start && stable.iter().any(|s| ids[*s] == **p)
            })
            .count()
    };
    // Suspicions of members while they ran (each refuted, or a false
    // failure), by whether the member was one that restarted. A restarted
    // member counts from the moment the observer took its new run alive: a
    // suspicion of its previous process (a kill -9 that its accusers found
    // out) may reach an observer after the new process started.
    let (stable_suspected, restarted_suspected) = {
        let churn_end = Instant::now();
        runs.extend((0..n).map(|i| (i, up_from[i], churn_end)));
        let t = bench.tracker.lock().unwrap();
        let mut counts = (0, 0);
        for &(i, from, until) in &runs {
            let is_stable = stable.contains(&i);
            for o in (0..n).filter(|o| *o != i) {
                let Some(events) = t.timeline.get(&(o, ids[i].clone())) else { continue };
                let taken = if is_stable {
                    Some(from)
                } else {
                    events
                        .iter()
                        .find(|(at, what)| *at >= from && (what == "alive" || what == "restarted"))
                        .map(|(at, _)| *at)
                };
                let Some(taken) = taken else { continue };
                let k = events
                    .iter()
                    .filter(|(at, what)| *at >= taken && *at < until && what == "suspect")
                    .count();
                if is_stable {
                    counts.0 += k;
                } else {
                    counts.1 += k;
                }
            }
        }
        counts
    };
    let missing = rejoin.iter().filter(|r| r.is_none()).count();
    let times: Vec<f64> = rejoin.iter().flatten().copied().collect();
    let max = times.iter().copied().fold(f64::NAN, f64::max);
    let mean = times.iter().sum::<f64>() / times.len().max(1) as f64;
    let within = times.iter().filter(|t| **t <= 5.0).count();
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    println!();
    println!("| figure ({n} nodes, {per_round} restarted a minute for {minutes} min) | measured | target |");
    println!("|---|---|---|");
    println!("| false failures among stable nodes | {false_failures} | 0 |");
    println!(
        "| suspicions of running members, per observer (refuted or not): stable / restarted | {stable_suspected} / {restarted_suspected} | – |"
    );
    println!(
        "| restarted node alive everywhere, mean / max | {} / {} | ≤ 5 s |",
        if times.is_empty() { "n/a".into() } else { secs(mean) },
        if times.is_empty() { "n/a".into() } else { secs(max) }
    );
    println!("| restarts seen alive everywhere within 5 s | {within} of {} ({missing} never within 30 s) | all |", rejoin.len());
    let ready_max = ready.iter().copied().fold(f64::NAN, f64::max);
    let ready_mean = ready.iter().sum::<f64>() / ready.len().max(1) as f64;
    println!(
        "| of which the process starting (spawn to its API answering), mean / max | {} / {} | – |",
        secs(ready_mean),
        secs(ready_max)
    );
    println!("| reads of the file that succeeded | {ok} of {} | all |", ok + failed);
    println!(
        "| maintained file healthy after the last restart | {} | ≤ 120 s |",
        healthy_after.map_or("not within 300 s".into(), secs)
    );
    let worst = continuity.iter().copied().reduce(f64::min);
    let mean = continuity.iter().sum::<f64>() / continuity.len().max(1) as f64;
    println!(
        "| live channel continuity on the stable viewers, worst / mean | {} | ≥ 0.99 |",
        worst
            .map_or("n/a".into(), |w| format!("{w:.3} / {mean:.3} ({} viewers)", continuity.len()))
    );
    for node in &mut nodes {
        if let Ok(c) = Client::for_home(&node.home) {
            let _ = c.shutdown().await;
        }
    }
    for node in &mut nodes {
        node.wait_exit(Duration::from_secs(10)).await;
    }
    args::keep_if_asked(dir);
}

/// Plays `channel` on the node of `home` into nothing, in the background
/// (it ends when the node does).
fn watch(home: &Home, channel: &str) {
    let client = Client::for_home(home).unwrap();
    let id = channel.to_string();
    tokio::spawn(async move {
        let mut sink = tokio::io::sink();
        let _ = client.play_channel(&id, &mut sink).await;
    });
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Prints, for a restart seen late, the three observers that took it in
/// last and what each logged of the restarted node, from its spawn.
fn explain_slow(bench: &tracker::Bench, ids: &[String], i: usize, at: Instant) {
    let t = bench.tracker.lock().unwrap();
    let peer = &ids[i];
    let last_alive = |o: usize| t.alive_at.get(&(o, peer.clone())).copied().filter(|a| *a >= at);
    let mut late: Vec<(usize, Option<Instant>)> =
        (0..ids.len()).filter(|o| *o != i).map(|o| (o, last_alive(o))).collect();
    late.sort_by_key(|(_, a)| a.map_or(Duration::MAX, |a| a - at));
    println!("  node {i} seen late; the last observers:");
    for (o, _) in late.iter().rev().take(3) {
        let events: Vec<String> = t
            .timeline
            .get(&(*o, peer.clone()))
            .map(|v| {
                v.iter()
                    .filter(|(when, _)| *when + Duration::from_secs(10) >= at)
                    .map(|(when, what)| {
                        let dt = if *when >= at {
                            (*when - at).as_secs_f64()
                        } else {
                            -(at - *when).as_secs_f64()
                        };
                        format!("{what} at {dt:+.2} s")
                    })
                    .collect()
            })
            .unwrap_or_default();
        println!(
            "    node {o}: {}",
            if events.is_empty() { "nothing".into() } else { events.join(", ") }
        );
    }
}
