//! The player page in a real browser (Debian's Chromium, headless, driven
//! by playwright-core: `interop-tests/js/player.mjs`): an ffmpeg channel
//! published on node 0 and watched through the mesh on node 1, a channel
//! of opaque bytes, and a video with two seeks. Prints the browser-side
//! figures (startup, live latency, stalls, dropped frames, seek times).

use cloudy_interop_tests::js::js_dir;
use cloudy_interop_tests::media::{ffmpeg_live, publish, pump};
use cloudy_interop_tests::Community;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

fn screenshots() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/player-screenshots")
}

/// A 12 s H.264 + AAC file (MPEG-TS or MP4, by `path`'s extension).
async fn film(path: &Path) {
    let out = tokio::process::Command::new("ffmpeg")
        .args(["-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=300", "-t", "12"])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-c:a", "aac"])
        .args(["-movflags", "+faststart", "-y"])
        .arg(path)
        .output()
        .await
        .expect("ffmpeg is needed; scripts/test installs it");
    assert!(out.status.success(), "ffmpeg: {}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_and_videos_play_in_the_browser() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(Path::new(&chromium).exists(), "{chromium} is missing: scripts/test installs it");
    let mut c = Community::start(2).await;
    c.wait_alive(1, 30).await;

    // A live channel (long enough for the whole browser run), a channel of
    // opaque bytes, and a video, all published on node 0.
    let mut ffmpeg = ffmpeg_live(70, 500);
    let (mut live, stdin, live_id) = publish(&c[0], "camera").await;
    let source = tokio::spawn(pump(ffmpeg.stdout.take().unwrap(), stdin));
    let (mut opaque, mut junk, opaque_id) = publish(&c[0], "opaque").await;
    let noise = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let mut n = 0u32;
        loop {
            tick.tick().await;
            let bytes: Vec<u8> = (0..8192u32).map(|i| (i.wrapping_mul(n | 1) >> 3) as u8).collect();
            if junk.write_all(&bytes).await.is_err() {
                break;
            }
            n += 1;
        }
    });
    let file = c.dir().join("film.ts");
    film(&file).await;
    let out = c[0].cli(&["stream", "vod", "publish", file.to_str().unwrap()]).await;
    assert!(
        out.stderr.contains("found: MPEG-TS, H.264 + AAC, 12.0 s: plays in browsers"),
        "{out:?}"
    );
    let vod = out.stdout.trim().to_string();
    let mp4 = c.dir().join("card.mp4");
    film(&mp4).await;
    let args = ["stream", "vod", "publish", mp4.to_str().unwrap(), "--title", "Test card"];
    let out = c[0].cli(&args).await;
    assert!(out.stderr.contains("found: MP4, H.264 + AAC, 12.0 s: plays in browsers"), "{out:?}");
    let mp4 = out.stdout.trim().to_string();
    // Every member lists both, with their titles and durations.
    let list = c[1]
        .wait_json(&["stream", "vod", "list", "--json"], "the catalogue on node 1", 20, |v| {
            v["catalogue"].as_array().is_some_and(|c| c.len() == 2)
        })
        .await;
    let titles: Vec<&str> =
        list["catalogue"].as_array().unwrap().iter().filter_map(|r| r["title"].as_str()).collect();
    assert_eq!(titles, ["Test card", "film"], "{list}");
    assert_eq!(list["catalogue"][0]["duration_s"], 12.0, "{list}");
    assert_eq!(list["catalogue"][0]["publisher"], c[0].peer_id(), "{list}");
    assert!(c[1].ok(&["stream", "vod", "list"]).await.contains("Test card"));

    // The browser watches on node 1: the channel comes through the mesh,
    // the video from node 0.
    let token = std::fs::read_to_string(c[1].home().join("api.token")).unwrap();
    let cfg = serde_json::json!({
        "url": format!("http://{}/", c[1].api()),
        "token": token.trim(),
        "live": live_id,
        "opaque": opaque_id,
        "vod": vod,
        "mp4": mp4,
        "out": screenshots(),
    });
    let mut run = tokio::process::Command::new("node")
        .arg(js_dir().join("player.mjs"))
        .arg(cfg.to_string())
        .env("CHROMIUM", &chromium)
        .current_dir(js_dir())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node");
    // When the page asks, node 1 restarts on the same API port (the page's
    // origin), as a node with a fixed `api` address does.
    let mut lines = tokio::io::BufReader::new(run.stdout.take().unwrap()).lines();
    let mut said = String::new();
    let driven = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line == "restart: now" {
                let api = c[1].api().to_string();
                c[1].stop().await;
                let config = c[1].home().join("config.toml");
                let text = std::fs::read_to_string(&config).unwrap();
                let fixed = text.replace("api = \"127.0.0.1:0\"", &format!("api = \"{api}\""));
                assert_ne!(fixed, text, "the config names the API address");
                std::fs::write(&config, fixed).unwrap();
                c[1].restart().await;
                assert_eq!(c[1].api(), api, "the node came back on the same API port");
            }
            said.push_str(&line);
            said.push('\n');
        }
        run.wait().await.unwrap()
    };
    let status = tokio::time::timeout(Duration::from_secs(240), driven)
        .await
        .expect("the browser test finished in time");
    let mut err = String::new();
    run.stderr.take().unwrap().read_to_string(&mut err).await.unwrap();
    said.push_str(&err);
    eprintln!("{said}");
    assert!(
        status.success(),
        "the browser test failed (screenshots in {}):\n{said}",
        screenshots().display()
    );
    assert_eq!(said.matches("ok: ").count(), 6, "{said}");
    let figures = said.lines().find_map(|l| l.strip_prefix("figures: ")).expect("figures");
    let figures: serde_json::Value = serde_json::from_str(figures).unwrap();
    assert!(figures["live_latency_p50_s"].is_number(), "a live latency was measured: {figures}");

    // Node 1 watched both videos: it is a holder now, beside the publisher.
    let (p0, p1) = (c[0].peer_id().to_string(), c[1].peer_id().to_string());
    c[0].wait_json(&["stream", "vod", "list", "--json"], "both holders listed", 20, |v| {
        v["catalogue"].as_array().is_some_and(|rows| {
            rows.iter().all(|r| {
                let h = r["holders"].to_string();
                h.contains(&p0) && h.contains(&p1)
            })
        })
    })
    .await;

    noise.abort();
    let _ = opaque.kill().await;
    let _ = live.kill().await;
    source.abort();
    let _ = ffmpeg.kill().await;
}
