//! Live channels between real processes, through the CLI: an ffmpeg
//! stream to several viewers, a viewer killed, opaque bytes, a publisher
//! killed, and names that do not exist.

use super::{cli, fails_with, json, start_nodes, wait_json, EXE};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, Command};

/// `stream publish NAME` on `home`, reading stdin; returns the process,
/// its stdin and the channel id it printed.
async fn publish(home: &Path, name: &str) -> (Child, ChildStdin, String) {
    let mut child = Command::new(EXE)
        .arg("--home")
        .arg(home)
        .args(["stream", "publish", name])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run cloudy-p2p");
    let stdin = child.stdin.take().expect("stdin");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let id = tokio::time::timeout(Duration::from_secs(20), lines.next_line()).await.expect("publish printed the id in time").unwrap().expect("a line");
    (child, stdin, id)
}

/// `stream play ID -o out` on `home`.
fn play(home: &Path, id: &str, out: &Path) -> Child {
    Command::new(EXE)
        .arg("--home")
        .arg(home)
        .args(["stream", "play", id, "-o"])
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run cloudy-p2p")
}

/// Waits for a player to exit (60 s at most): `(success, stderr)`.
async fn finished(mut c: Child) -> (bool, String) {
    let mut err = String::new();
    let mut stderr = c.stderr.take().expect("stderr");
    let status = tokio::time::timeout(Duration::from_secs(60), async {
        let _ = stderr.read_to_string(&mut err).await;
        c.wait().await
    })
    .await
    .expect("the player exited in time")
    .unwrap();
    (status.success(), err)
}

/// What `ffmpeg -v error` says decoding `file` (empty: no error).
fn decode_errors(file: &Path) -> String {
    let out = std::process::Command::new("ffmpeg").args(["-v", "error", "-i"]).arg(file).args(["-f", "null", "-"]).output().expect("ffmpeg");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// An ffmpeg live source: `secs` of H.264 + AAC MPEG-TS in real time on stdout.
fn ffmpeg_live(secs: u32) -> Child {
    let secs = secs.to_string();
    Command::new("ffmpeg")
        .args(["-v", "error", "-re", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-f", "lavfi", "-i", "sine=frequency=440", "-t", &secs])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-b:v", "700k", "-c:a", "aac", "-f", "mpegts", "-"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("ffmpeg is needed for this test; scripts/test installs it")
}

/// Copies `from` into the publisher's stdin, keeping a copy; closes stdin at the end.
async fn pump(mut from: impl tokio::io::AsyncRead + Unpin, mut to: ChildStdin) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = from.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        all.extend_from_slice(&buf[..n]);
        to.write_all(&buf[..n]).await.unwrap();
    }
    drop(to);
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ffmpeg_channel_reaches_five_viewers_and_survives_a_killed_one() {
    let dir = tempfile::tempdir().unwrap();
    let (mut nodes, h) = start_nodes(dir.path(), "s", 6).await;
    wait_json(&h[0], &["peers", "--json"], "five alive members", 20, |v| v.as_array().unwrap().iter().filter(|p| p["state"] == "alive").count() == 5).await;
    let mut ffmpeg = ffmpeg_live(10);
    let (mut publisher, stdin, id) = publish(&h[0], "camera").await;
    let source = tokio::spawn(pump(ffmpeg.stdout.take().unwrap(), stdin));
    let outs: Vec<PathBuf> = (1..6).map(|i| dir.path().join(format!("recv{i}.ts"))).collect();
    let mut players: Vec<Option<Child>> = (1..6).map(|i| Some(play(&h[i], "camera", &outs[i - 1]))).collect();
    // The directory shows the channel, its publisher and its viewers.
    let rows = wait_json(&h[5], &["stream", "list", "--json"], "five viewers listed", 20, |v| v[0]["viewers"] == 5).await;
    assert_eq!((rows[0]["id"].as_str(), rows[0]["name"].as_str()), (Some(id.as_str()), Some("camera")));
    assert_eq!(rows[0]["publisher"], nodes[0].peer_id.as_str());
    // Kill a viewer's node while the stream flows.
    tokio::time::sleep(Duration::from_secs(2)).await;
    nodes[3].kill9().await;
    drop(players[2].take());
    let source = source.await.unwrap();
    assert!(publisher.wait().await.unwrap().success(), "publish exits 0 when its input ends");
    assert!(source.len() > 400_000, "ffmpeg made {} bytes", source.len());
    for (i, p) in players.into_iter().enumerate() {
        let Some(p) = p else { continue };
        let (ok, err) = finished(p).await;
        assert!(ok && err.contains("ended"), "viewer {} ended cleanly: {err}", i + 1);
        let got = std::fs::read(&outs[i]).unwrap();
        assert!(got.len() >= source.len() / 2, "viewer {} got {} of {} bytes", i + 1, got.len(), source.len());
        assert!(source.ends_with(&got), "viewer {} has the source byte for byte from its first chunk", i + 1);
        assert_eq!(decode_errors(&outs[i]), "", "viewer {} decodes cleanly", i + 1);
        let st = json(&h[i + 1], &["stream", "status", &id, "--json"]).await;
        assert_eq!(st["state"], "ended");
        assert_eq!(st["stats"]["skipped"], 0, "viewer {}: {st}", i + 1);
    }
    let _ = ffmpeg.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opaque_bytes_unknown_channels_and_a_killed_publisher() {
    let dir = tempfile::tempdir().unwrap();
    let (mut nodes, h) = start_nodes(dir.path(), "o", 3).await;
    wait_json(&h[2], &["peers", "--json"], "two alive members", 20, |v| v.as_array().unwrap().iter().filter(|p| p["state"] == "alive").count() == 2).await;
    fails_with(&h[1], &["stream", "play", "not-a-channel!"], "unknown channel").await;
    fails_with(&h[1], &["stream", "play", "12D3KooWnope"], "not a channel id").await;
    fails_with(&h[1], &["stream", "play", "12D3KooWN4aihBqGyP3pNXD9wxEfGP7dY4u6YFejG8CNpMs8UybT"], "unknown channel").await;
    fails_with(&h[0], &["stream", "publish", "x", "--input", "/no/such/file"], "cannot read /no/such/file").await;
    fails_with(&h[0], &["stream", "publish", "bad name"], "bad channel name").await;

    // Not MPEG-TS: carried exactly, at about 1 Mbit/s.
    let (mut publisher, mut stdin, id) = publish(&h[0], "bytes").await;
    let out = dir.path().join("bytes.out");
    let player = play(&h[1], &id, &out);
    let source: Vec<u8> = (0..400_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let feed = source.clone();
    tokio::spawn(async move {
        for piece in feed.chunks(16 * 1024) {
            stdin.write_all(piece).await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let (ok, err) = finished(player).await;
    assert!(ok, "{err}");
    assert!(publisher.wait().await.unwrap().success());
    let got = std::fs::read(&out).unwrap();
    assert!(got.len() >= source.len() * 3 / 4 && source.ends_with(&got), "got {} of {} bytes, a suffix of the input", got.len(), source.len());

    // The publisher's node dies: the viewer's player stops with a clear error.
    let (_publisher, mut stdin, id) = publish(&h[0], "doomed").await;
    let player = play(&h[2], &id, &dir.path().join("doomed.out"));
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
        let out = cli(&h[2], &["stream", "status", &id, "--json"]).await;
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_default();
        if v["stats"]["played"].as_u64() > Some(2) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the viewer never played: {}", out.stderr);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    nodes[0].kill9().await;
    let (ok, err) = finished(player).await;
    assert!(!ok && err.contains("was lost"), "{err}");
    writer.abort();
    let out = cli(&h[2], &["stream", "list"]).await;
    assert!(out.ok && !out.stdout.contains("doomed"), "a dead publisher's channel leaves the list: {}", out.stdout);
}

/// `GET path` on `home`'s node with the token in the query, as a player
/// does; `range` is a `Range` header value.
async fn media(home: &Path, path: &str, range: Option<&str>) -> reqwest::Response {
    let client = cloudy_node::control::client::Client::for_home(&cloudy_node::Home::new(home)).unwrap();
    let mut req = reqwest::Client::new().get(client.media_url(path));
    if let Some(r) = range {
        req = req.header("range", r);
    }
    req.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_video_on_demand_is_watched_with_seeking_and_outlives_its_publisher() {
    let dir = tempfile::tempdir().unwrap();
    let (mut nodes, h) = start_nodes(dir.path(), "v", 3).await;
    wait_json(&h[2], &["peers", "--json"], "two alive members", 20, |v| v.as_array().unwrap().iter().filter(|p| p["state"] == "alive").count() == 2).await;
    let film: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
    let src = dir.path().join("film.ts");
    std::fs::write(&src, &film).unwrap();
    let out = cli(&h[0], &["stream", "vod", "publish", src.to_str().unwrap()]).await;
    assert!(out.ok, "{}", out.stderr);
    let id = out.stdout.trim().to_string();
    assert_eq!(id.len(), 64);

    // Watched on node 1: the whole file, then a seek by HTTP Range.
    let got = dir.path().join("got.ts");
    let out = cli(&h[1], &["stream", "play", &id, "-o", got.to_str().unwrap()]).await;
    assert!(out.ok, "{}", out.stderr);
    assert!(std::fs::read(&got).unwrap() == film, "byte-identical");
    let resp = media(&h[1], &format!("/vod/{id}"), Some("bytes=2000000-2000099")).await;
    assert_eq!(resp.status(), 206);
    assert_eq!(resp.headers()["content-range"], format!("bytes 2000000-2000099/{}", film.len()).as_str());
    assert_eq!(resp.bytes().await.unwrap().as_ref(), &film[2_000_000..2_000_100]);
    assert_eq!(media(&h[1], &format!("/vod/{id}"), Some("bytes=9000000-")).await.status(), 416);
    let listed = json(&h[1], &["stream", "vod", "list", "--json"]).await;
    assert_eq!(listed["videos"][0]["id"], id.as_str());
    assert_eq!(listed["videos"][0]["held"], listed["videos"][0]["pieces"]);

    // The publisher dies; node 2 seeks into the film and gets it from node 1.
    nodes[0].kill9().await;
    let resp = media(&h[2], &format!("/vod/{id}"), Some("bytes=1000000-")).await;
    assert_eq!(resp.status(), 206);
    assert!(resp.bytes().await.unwrap().as_ref() == &film[1_000_000..], "fetched from the viewer that cached it");
    let served = json(&h[1], &["stream", "vod", "list", "--json"]).await;
    assert!(served["stats"]["served"].as_u64().unwrap() >= 2_000_000, "node 1 served it: {served}");

    // Bad ids.
    fails_with(&h[2], &["stream", "play", &"ab".repeat(32)], "unknown video").await;
    let resp = media(&h[2], "/vod/not-a-video", None).await;
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("not a video id"));
    fails_with(&h[1], &["stream", "vod", "publish", "/no/such/film"], "/no/such/film").await;
}
