//! Five hosts in network namespaces on links like a community network's:
//! 5 Mbit/s each way with 2 % of packets lost on the way into every host
//! (see `cloudy_interop_tests::netns`). A 20 MiB storage get, a 1 Mbit/s
//! live channel to four viewers and a five-member sync folder; then a
//! partition that splits the community in two, writes on both sides, and
//! heals. Skipped, saying why, where namespaces cannot be made.

use super::sync::{contents_named, join, share, write_at_time};
use cloudy_interop_tests::media::{check_received, ffmpeg_live, finished, play, publish, pump};
use cloudy_interop_tests::netns::{testbed_or_skip, Link, Testbed};
use cloudy_interop_tests::{peer_state, wait_file, wait_until, Community, Options};
use std::path::PathBuf;
use std::time::Duration;

const SLOW_LOSSY: Link = Link { kbit: 5_000, loss_per_mille: 20 };

/// Five nodes, one per host, each with an empty folder; all alive.
async fn community_on(bed: &Testbed) -> (Community, Vec<PathBuf>) {
    let c = Community::start_with(
        bed.hosts.len(),
        Options { hosts: bed.hosts.clone(), ..Options::default() },
    )
    .await;
    c.wait_alive(bed.hosts.len() - 1, 60).await;
    let d: Vec<PathBuf> = (0..c.len()).map(|i| c.dir().join(format!("folder{i}"))).collect();
    for p in &d {
        std::fs::create_dir(p).unwrap();
    }
    (c, d)
}

/// Shares `d[0]` on node 0 with every other node, named in advance.
async fn share_with_all(c: &Community, d: &[PathBuf], name: &str) {
    let others: Vec<_> = c.members()[1..].iter().collect();
    let invite = share(&c[0], &d[0], name, &others).await;
    for i in 1..c.len() {
        join(&c[i], &invite, &d[i]).await;
    }
}

pub(crate) fn pseudo_random(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_add(seed).wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_lossy_links_carry_a_storage_get_a_live_channel_and_a_sync_folder() {
    let Some(bed) = testbed_or_skip("slow_lossy_links…", 5, Link::FAST) else { return };
    let (c, d) = community_on(&bed).await;

    // A 20 MiB file is stored while links are fast, then fetched on slow, lossy ones.
    let data = pseudo_random(20 << 20, 1);
    let input = c.dir().join("film.bin");
    std::fs::write(&input, &data).unwrap();
    let cap =
        c[0].ok(&["put", input.to_str().unwrap(), "--k", "3", "--n", "5", "--happy", "5"]).await;
    bed.set_link(SLOW_LOSSY).unwrap();
    let fetched = c.dir().join("fetched.bin");
    let started = std::time::Instant::now();
    let get = ["get", &cap, "-o", fetched.to_str().unwrap()];
    let out = tokio::time::timeout(Duration::from_secs(180), c[4].cli(&get))
        .await
        .expect("the get finished within 180 s");
    eprintln!(
        "20 MiB get over 5 Mbit/s links with 2 % loss: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(out.ok, "{}", out.stderr);
    assert!(std::fs::read(&fetched).unwrap() == data, "the file fetched over lossy links differs");

    // A live channel of about 1 Mbit/s, 30 s, to four viewers.
    let mut ffmpeg = ffmpeg_live(30, 850);
    let (mut publisher, stdin, id) = publish(&c[0], "camera").await;
    let source = tokio::spawn(pump(ffmpeg.stdout.take().unwrap(), stdin));
    let outs: Vec<PathBuf> = (1..5).map(|i| c.dir().join(format!("recv{i}.ts"))).collect();
    let players: Vec<_> = (1..5).map(|i| play(&c[i], &id, &outs[i - 1])).collect();
    let source = source.await.unwrap();
    assert!(publisher.wait().await.unwrap().success(), "publish exits 0 when its input ends");
    for (i, p) in players.into_iter().enumerate() {
        let (ok, err) = finished(p, 60).await;
        assert!(ok && err.contains("ended"), "viewer {} ended cleanly: {err}", i + 1);
        let st = c[i + 1].json(&["stream", "status", &id, "--json"]).await;
        let n = &st["stats"];
        eprintln!(
            "viewer {}: played {}, skipped {}, request timeouts {}, sessions {}/{} opened/closed, latency p50/p95/max {} ms",
            i + 1,
            n["played"],
            n["skipped"],
            n["timeouts"],
            n["sessions_opened"],
            n["sessions_closed"],
            st["latency_ms"]
        );
        check_received(i + 1, &source, &outs[i]);
        let continuity = st["continuity"].as_f64().unwrap_or(0.0);
        assert!(continuity >= 0.99, "viewer {}: continuity {continuity} < 0.99: {st}", i + 1);
    }
    let _ = ffmpeg.wait().await;

    // A folder shared by all five converges: 4 MiB in 40 files.
    for f in 0..40 {
        std::fs::write(d[0].join(format!("f{f:02}.bin")), pseudo_random(100 << 10, f + 7)).unwrap();
    }
    share_with_all(&c, &d, "docs").await;
    for folder in &d[1..] {
        for f in 0..40 {
            wait_file(&folder.join(format!("f{f:02}.bin")), &pseudo_random(100 << 10, f + 7), 120)
                .await;
        }
    }
    // An edit on one member reaches the others.
    std::fs::write(d[3].join("f05.bin"), b"edited on node 3").unwrap();
    for i in [0, 1, 2, 4] {
        wait_file(&d[i].join("f05.bin"), b"edited on node 3", 60).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_splits_the_community_and_everything_converges_after_it_heals() {
    let Some(bed) = testbed_or_skip("a_partition…", 5, SLOW_LOSSY) else { return };
    let (c, d) = community_on(&bed).await;
    let ids: Vec<String> = c.members().iter().map(|m| m.peer_id().to_string()).collect();
    std::fs::write(d[0].join("shared.txt"), b"base").unwrap();
    share_with_all(&c, &d, "docs").await;
    for f in &d[1..] {
        wait_file(&f.join("shared.txt"), b"base", 60).await;
    }
    // One share on every node: k = 2 are reachable on either side.
    let before = c.dir().join("before.bin");
    let before_data = pseudo_random(300_000, 3);
    std::fs::write(&before, &before_data).unwrap();
    let cap_before =
        c[0].ok(&["put", before.to_str().unwrap(), "--k", "2", "--n", "5", "--happy", "5"]).await;
    // A grid directory that node 1 (side A) and node 4 (side B) can write.
    c[0].ok(&["alias", "create", "home"]).await;
    let aliases = c[0].json(&["alias", "list", "--json"]).await;
    let home = aliases["home"].as_str().unwrap().to_string();
    for i in [1, 4] {
        c[i].ok(&["alias", "add", "home", &home]).await;
    }

    // Split {0, 1, 2} from {3, 4}; each side sees the other fail.
    let (a, b) = ([0, 1, 2], [3, 4]);
    bed.partition(&a, &b).unwrap();
    for (side, other) in [(&a[..], &b[..]), (&b[..], &a[..])] {
        for &i in side {
            for &j in other {
                let what = format!("node {j} failed");
                c[i].wait_json(&["peers", "--json"], &what, 60, |v| {
                    peer_state(v, &ids[j]) == Some("failed")
                })
                .await;
            }
        }
    }

    // Writes on both sides: the same file edited (side B later), new files,
    // and a file stored on side A's servers only.
    write_at_time(&d[1].join("shared.txt"), b"from side A", 1_790_000_000);
    write_at_time(&d[4].join("shared.txt"), b"from side B, later", 1_790_000_100);
    std::fs::write(d[2].join("a.txt"), b"written on side A").unwrap();
    std::fs::write(d[3].join("b.txt"), b"written on side B").unwrap();
    wait_file(&d[0].join("a.txt"), b"written on side A", 60).await;
    wait_file(&d[4].join("b.txt"), b"written on side B", 60).await;
    // Both sides write the directory: a subdirectory made on both, the same
    // name in it, and a name of their own each (small files: they live in
    // their capabilities, so each side's servers keep only directory logs).
    for (i, side) in [(1, "A"), (4, "B")] {
        let f = c.dir().join(format!("from{side}.txt"));
        std::fs::write(&f, format!("report from side {side}")).unwrap();
        c[i].ok(&["cp", f.to_str().unwrap(), "home:inbox/report.txt"]).await;
        c[i].ok(&["cp", f.to_str().unwrap(), &format!("home:only-{side}.txt")]).await;
    }
    let during = c.dir().join("during.bin");
    let during_data = pseudo_random(200_000, 5);
    std::fs::write(&during, &during_data).unwrap();
    let cap_during =
        c[1].ok(&["put", during.to_str().unwrap(), "--k", "2", "--n", "3", "--happy", "3"]).await;
    // The earlier file is readable on both sides: each holds k shares.
    for i in [2, 3] {
        let out = c.dir().join(format!("before{i}.bin"));
        c[i].ok(&["get", &cap_before, "-o", out.to_str().unwrap()]).await;
        assert!(
            std::fs::read(&out).unwrap() == before_data,
            "node {i} read the file during the partition"
        );
    }

    // Heal: everyone alive again, both sides' writes everywhere, the
    // concurrent edit kept as a conflict copy.
    bed.heal().unwrap();
    c.wait_alive(4, 90).await;
    for f in &d {
        wait_file(&f.join("a.txt"), b"written on side A", 90).await;
        wait_file(&f.join("b.txt"), b"written on side B", 90).await;
        wait_file(&f.join("shared.txt"), b"from side B, later", 90).await;
        wait_until("the conflict copy", 90, || {
            contents_named(f, "sync-conflict") == vec![b"from side A".to_vec()]
        })
        .await;
    }
    // Every entry of both sides is in the directory, on every node: one
    // inbox, the report twice (the later one under a conflict name).
    for i in [0, 2, 3] {
        let names = |v: serde_json::Value| -> Vec<String> {
            let entries = v["entries"].as_array().unwrap();
            entries.iter().map(|e| e["name"].as_str().unwrap().to_string()).collect()
        };
        let root = names(c[i].json(&["ls", "--json", &home]).await);
        assert_eq!(root, vec!["inbox", "only-A.txt", "only-B.txt"], "node {i}");
        let inbox = names(c[i].json(&["ls", "--json", &format!("{home}/inbox")]).await);
        assert_eq!(inbox.len(), 2, "node {i}: {inbox:?}");
        assert!(inbox.contains(&"report.txt".to_string()), "{inbox:?}");
        assert!(inbox.iter().any(|n| n.starts_with("report.conflict-")), "{inbox:?}");
    }
    let out = c.dir().join("during4.bin");
    c[4].ok(&["get", &cap_during, "-o", out.to_str().unwrap()]).await;
    assert!(
        std::fs::read(&out).unwrap() == during_data,
        "side B reads what side A stored during the partition"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_find_each_other_again_after_a_partition_with_nothing_else_running() {
    let Some(bed) = testbed_or_skip("members_find_each_other_again…", 4, Link::FAST) else {
        return;
    };
    let c =
        Community::start_with(4, Options { hosts: bed.hosts.clone(), ..Options::default() }).await;
    c.wait_alive(3, 60).await;
    bed.partition(&[0, 1], &[2, 3]).unwrap();
    c.wait_alive(1, 60).await;
    bed.heal().unwrap();
    c.wait_alive(3, 60).await;
}
