//! A live channel for the benchmarks: a test film, its publisher, and
//! what a viewer's node says it received. Shared by the stream and churn
//! benchmarks; needs `ffmpeg`.
#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::io::AsyncBufReadExt;

/// `(seq, cut ms, latency ms)` of a node's status.
pub(crate) fn arrivals(st: &Value) -> Vec<(u64, u64, u64)> {
    st["stats"]["arrivals"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|t| (t[0].as_u64().unwrap(), t[1].as_u64().unwrap(), t[2].as_u64().unwrap()))
                .collect()
        })
        .unwrap_or_default()
}

/// Share of the publisher's chunks in `seqs` that `st` got within 3 s.
pub(crate) fn on_time(st: &Value, seqs: &[u64]) -> f64 {
    let got: std::collections::HashMap<u64, u64> =
        arrivals(st).into_iter().map(|a| (a.0, a.2)).collect();
    let ok = seqs.iter().filter(|s| got.get(s).is_some_and(|l| *l <= 3000)).count();
    ok as f64 / seqs.len().max(1) as f64
}

/// Encodes `secs` of 1 Mbit/s H.264 + AAC MPEG-TS (picture groups of 2 s)
/// into `dir/film.ts`.
pub(crate) async fn encode(dir: &Path, secs: u64) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let film = dir.join("film.ts");
    let made = tokio::process::Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=640x360:rate=25",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440",
            "-t",
            &secs.to_string(),
        ])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "50",
            "-b:v",
            "900k",
            "-maxrate",
            "900k",
            "-bufsize",
            "450k",
            "-c:a",
            "aac",
            "-b:a",
            "96k",
            "-f",
            "mpegts",
        ])
        .arg(&film)
        .status()
        .await
        .expect("ffmpeg");
    assert!(made.success(), "ffmpeg could not encode the test film");
    film
}

/// `ffmpeg -re -c copy` of `film` and `stream publish bench` on the node of
/// `home`: both processes, the channel id, the publisher's input and
/// ffmpeg's output (the caller pumps one into the other).
pub(crate) async fn source(
    exe: &Path,
    home: &Path,
    film: &Path,
) -> (
    tokio::process::Child,
    tokio::process::Child,
    String,
    tokio::process::ChildStdin,
    tokio::process::ChildStdout,
) {
    let mut ffmpeg = tokio::process::Command::new("ffmpeg")
        .args(["-v", "error", "-re", "-i"])
        .arg(film)
        .args(["-c", "copy", "-f", "mpegts", "-"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("ffmpeg");
    let mut publish = tokio::process::Command::new(exe)
        .arg("--home")
        .arg(home)
        .args(["stream", "publish", "bench"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("publish");
    let stdin = publish.stdin.take().unwrap();
    let id = tokio::io::BufReader::new(publish.stdout.take().unwrap())
        .lines()
        .next_line()
        .await
        .unwrap()
        .expect("channel id");
    let src = ffmpeg.stdout.take().unwrap();
    (ffmpeg, publish, id, stdin, src)
}
