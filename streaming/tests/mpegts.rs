//! The cutter on a real MPEG-TS stream made by ffmpeg (H.264 + AAC): every
//! key chunk is a place a player can start from with no decoding error,
//! and the chunks put back together are the stream, byte for byte.
#![allow(clippy::unwrap_used)] // test and benchmark code: a failed unwrap is a failed run

use cloudy_streaming::cutter::Cutter;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn ffmpeg(args: &[&str], input: Option<&[u8]>) -> std::process::Output {
    let mut child = Command::new("ffmpeg")
        .args(args)
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ffmpeg is needed for this test; scripts/test installs it");
    if let Some(bytes) = input {
        let mut stdin = child.stdin.take().expect("stdin");
        let bytes = bytes.to_vec();
        std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &bytes));
    }
    child.wait_with_output().expect("ffmpeg ran")
}

#[test]
fn every_key_chunk_of_an_ffmpeg_stream_decodes_cleanly_and_others_need_not() {
    let made = ffmpeg(
        &[
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440",
            "-t",
            "4",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-g",
            "25",
            "-b:v",
            "800k",
            "-c:a",
            "aac",
            "-f",
            "mpegts",
            "-",
        ],
        None,
    );
    assert!(made.status.success(), "ffmpeg: {}", String::from_utf8_lossy(&made.stderr));
    let stream = made.stdout;
    let mut cutter = Cutter::new(32 << 10, Duration::from_millis(250));
    let now = Instant::now();
    let mut cuts = Vec::new();
    for piece in stream.chunks(5000) {
        cuts.extend(cutter.push(piece, now));
    }
    assert_eq!(cutter.is_ts(), Some(true));
    cuts.extend(cutter.finish());
    assert_eq!(
        cuts.iter().flat_map(|c| c.data.iter().copied()).collect::<Vec<u8>>(),
        stream,
        "byte-exact"
    );
    let mut starts = Vec::new();
    let mut at = 0;
    for c in &cuts {
        starts.push((at, c.key));
        at += c.data.len();
    }
    let keys: Vec<usize> = starts.iter().filter(|(_, k)| *k).map(|(a, _)| *a).collect();
    assert!(keys.len() >= 4, "a key chunk per second of a 1-second GOP: {keys:?}");
    for k in keys {
        let out = ffmpeg(&["-v", "error", "-i", "-", "-f", "null", "-"], Some(&stream[k..]));
        assert!(
            out.stderr.is_empty() && out.status.success(),
            "decoding from byte {k}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The test can fail: starting at a chunk that is not key does show errors.
    let (mid, _) =
        starts.iter().find(|(a, k)| !*k && *a > 0).copied().expect("a chunk that is not key");
    let out = ffmpeg(&["-v", "error", "-i", "-", "-f", "null", "-"], Some(&stream[mid..]));
    assert!(!out.stderr.is_empty(), "decoding from the middle of a picture group shows errors");
}
