//! Live channels between real processes, through the CLI: an ffmpeg
//! stream to several viewers, a viewer killed, opaque bytes, a publisher
//! killed, and names that do not exist.

use cloudy_interop_tests::media::{check_received, ffmpeg_live, finished, play, publish, pump};
use cloudy_interop_tests::Community;
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::process::Child;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ffmpeg_channel_reaches_five_viewers_and_survives_a_killed_one() {
    let mut c = Community::start(6).await;
    c.wait_alive_on(&[0], 5, 20).await;
    let mut ffmpeg = ffmpeg_live(10, 700);
    let (mut publisher, stdin, id) = publish(&c[0], "camera").await;
    let source = tokio::spawn(pump(ffmpeg.stdout.take().unwrap(), stdin));
    let outs: Vec<PathBuf> = (1..6).map(|i| c.dir().join(format!("recv{i}.ts"))).collect();
    let mut players: Vec<Option<Child>> =
        (1..6).map(|i| Some(play(&c[i], "camera", &outs[i - 1]))).collect();
    // The directory shows the channel, its publisher and its viewers.
    let rows = c[5]
        .wait_json(&["stream", "list", "--json"], "five viewers listed", 20, |v| {
            v[0]["viewers"] == 5
        })
        .await;
    assert_eq!(
        (rows[0]["id"].as_str(), rows[0]["name"].as_str()),
        (Some(id.as_str()), Some("camera"))
    );
    assert_eq!(rows[0]["publisher"], c[0].peer_id());
    // Kill a viewer's node while the stream flows: once it has played some
    // chunks, and so relays to others.
    c[3].wait_json(&["stream", "status", &id, "--json"], "viewer 3 playing", 20, |v| {
        v["stats"]["played"].as_u64() >= Some(4)
    })
    .await;
    c[3].kill9().await;
    drop(players[2].take());
    let source = source.await.unwrap();
    assert!(publisher.wait().await.unwrap().success(), "publish exits 0 when its input ends");
    assert!(source.len() > 400_000, "ffmpeg made {} bytes", source.len());
    for (i, p) in players.into_iter().enumerate() {
        let Some(p) = p else { continue };
        let (ok, err) = finished(p, 60).await;
        assert!(ok && err.contains("ended"), "viewer {} ended cleanly: {err}", i + 1);
        check_received(i + 1, &source, &outs[i]);
        let st = c[i + 1].json(&["stream", "status", &id, "--json"]).await;
        assert_eq!(st["state"], "ended");
        assert_eq!(st["stats"]["skipped"], 0, "viewer {}: {st}", i + 1);
    }
    // Accounting by member: the publisher sent chunks to its neighbours.
    let u = c[0].json(&["usage", "--json"]).await;
    let sent: u64 =
        u["members"].as_array().unwrap().iter().filter_map(|m| m["stream_sent"].as_u64()).sum();
    assert!(sent > 100_000, "the publisher's live bytes by member: {u}");
    // The same figures are metrics.
    let m = c[0].metrics().await;
    let sent_metric: f64 = m
        .lines()
        .filter(|l| {
            l.starts_with("cloudy_stream_member_bytes_total{") && l.contains("direction=\"sent\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(sent_metric >= sent as f64, "cloudy_stream_member_bytes_total: {sent_metric} < {sent}");
    let _ = ffmpeg.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opaque_bytes_unknown_channels_and_a_killed_publisher() {
    let mut c = Community::start(3).await;
    c.wait_alive_on(&[2], 2, 20).await;
    c[1].fails_with(&["stream", "play", "not-a-channel!"], "unknown channel").await;
    c[1].fails_with(&["stream", "play", "12D3KooWnope"], "not a channel id").await;
    c[1].fails_with(
        &["stream", "play", "12D3KooWN4aihBqGyP3pNXD9wxEfGP7dY4u6YFejG8CNpMs8UybT"],
        "unknown channel",
    )
    .await;
    c[0].fails_with(
        &["stream", "publish", "x", "--input", "/no/such/file"],
        "cannot read /no/such/file",
    )
    .await;
    c[0].fails_with(&["stream", "publish", "bad name"], "bad channel name").await;

    // Not MPEG-TS: carried exactly, at about 1 Mbit/s.
    let (mut publisher, mut stdin, id) = publish(&c[0], "bytes").await;
    let out = c.dir().join("bytes.out");
    let player = play(&c[1], &id, &out);
    let source: Vec<u8> =
        (0..400_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let feed = source.clone();
    tokio::spawn(async move {
        for piece in feed.chunks(16 * 1024) {
            stdin.write_all(piece).await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let (ok, err) = finished(player, 60).await;
    assert!(ok, "{err}");
    assert!(publisher.wait().await.unwrap().success());
    let got = std::fs::read(&out).unwrap();
    assert!(
        got.len() >= source.len() * 3 / 4 && source.ends_with(&got),
        "got {} of {} bytes, a suffix of the input",
        got.len(),
        source.len()
    );

    // The publisher's node dies: the viewer's player stops with a clear error.
    let (_publisher, mut stdin, id) = publish(&c[0], "doomed").await;
    let player = play(&c[2], &id, &c.dir().join("doomed.out"));
    let writer = tokio::spawn(async move {
        loop {
            if stdin.write_all(&[0u8; 8192]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let out = c[2].cli(&["stream", "status", &id, "--json"]).await;
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_default();
        if v["stats"]["played"].as_u64() > Some(2) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the viewer never played: {}", out.stderr);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c[0].kill9().await;
    let (ok, err) = finished(player, 60).await;
    assert!(!ok && err.contains("was lost"), "{err}");
    writer.abort();
    let out = c[2].cli(&["stream", "list"]).await;
    assert!(
        out.ok && !out.stdout.contains("doomed"),
        "a dead publisher's channel leaves the list: {}",
        out.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_video_on_demand_is_watched_with_seeking_and_outlives_its_publisher() {
    let mut c = Community::start(3).await;
    c.wait_alive_on(&[2], 2, 20).await;
    let film: Vec<u8> =
        (0..3_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
    let src = c.dir().join("film.ts");
    std::fs::write(&src, &film).unwrap();
    let out = c[0].cli(&["stream", "vod", "publish", src.to_str().unwrap()]).await;
    assert!(out.ok, "{}", out.stderr);
    let id = out.stdout.trim().to_string();
    assert_eq!(id.len(), 64);

    // Watched on node 1: the whole file, then a seek by HTTP Range.
    let got = c.dir().join("got.ts");
    let out = c[1].cli(&["stream", "play", &id, "-o", got.to_str().unwrap()]).await;
    assert!(out.ok, "{}", out.stderr);
    assert!(std::fs::read(&got).unwrap() == film, "byte-identical");
    let resp = c[1].media(&format!("/vod/{id}"), Some("bytes=2000000-2000099")).await;
    assert_eq!(resp.status(), 206);
    assert_eq!(
        resp.headers()["content-range"],
        format!("bytes 2000000-2000099/{}", film.len()).as_str()
    );
    assert_eq!(resp.bytes().await.unwrap().as_ref(), &film[2_000_000..2_000_100]);
    assert_eq!(c[1].media(&format!("/vod/{id}"), Some("bytes=9000000-")).await.status(), 416);
    let listed = c[1].json(&["stream", "vod", "list", "--json"]).await;
    assert_eq!(listed["videos"][0]["id"], id.as_str());
    assert_eq!(listed["videos"][0]["held"], listed["videos"][0]["pieces"]);

    // The publisher dies; node 2 seeks into the film and gets it from node 1.
    c[0].kill9().await;
    let asked = std::time::Instant::now();
    let resp = c[2].media(&format!("/vod/{id}"), Some("bytes=1000000-")).await;
    assert_eq!(resp.status(), 206);
    eprintln!("time to first byte with the publisher just killed: {:?}", asked.elapsed());
    assert!(
        resp.bytes().await.unwrap().as_ref() == &film[1_000_000..],
        "fetched from the viewer that cached it"
    );
    let served = c[1].json(&["stream", "vod", "list", "--json"]).await;
    assert!(served["stats"]["served"].as_u64().unwrap() >= 2_000_000, "node 1 served it: {served}");
    // Accounting by member: node 1 served node 2 and fetched from node 0.
    let u = c[1].json(&["usage", "--json"]).await;
    let row = |id: &str| {
        u["members"].as_array().unwrap().iter().find(|m| m["peer"] == id).cloned().unwrap()
    };
    assert!(row(c[2].peer_id())["video_sent"].as_u64() >= Some(2_000_000), "{u}");
    assert!(row(c[0].peer_id())["video_received"].as_u64() >= Some(1_000_000), "{u}");
    let line = format!(
        "cloudy_video_member_bytes_total{{member=\"{}\",direction=\"sent\"}}",
        c[2].peer_id()
    );
    let m = c[1].metrics().await;
    let v = m
        .lines()
        .find(|l| l.starts_with(&line))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok());
    assert!(v >= Some(2_000_000.0), "{line}: {v:?}");

    // Bad ids.
    c[2].fails_with(&["stream", "play", &"ab".repeat(32)], "unknown video").await;
    let resp = c[2].media("/vod/not-a-video", None).await;
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("not a video id"));
    c[1].fails_with(&["stream", "vod", "publish", "/no/such/film"], "/no/such/film").await;
}
